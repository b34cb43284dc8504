//! The operator's commands: `serve`, `migrate`, `keys`, `audit prune`, `trust check`,
//! `clients new-secret`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::cli::KeysCommand;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::startup::{open_store, Application};

use super::print_lines;

/// `serve [--shadow-trust DIR]`: the broker until SIGTERM/SIGINT.
pub async fn serve(mut config: Config, shadow_trust: Option<PathBuf>) -> anyhow::Result<()> {
    if shadow_trust.is_some() {
        config.trust.shadow_dir = shadow_trust;
    }
    let app = Application::build(config.clone()).await?;
    tracing::info!(
        listen = %config.server.listen,
        port = app.port(),
        issuer = %config.server.issuer,
        "tessera serving"
    );
    app.run_until_stopped().await?;
    tracing::info!("tessera stopped");
    Ok(())
}

/// `migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    open_store(config).await?;
    print_lines(["migrations applied"])
}

/// `keys list | rotate`: rotate first when asked, then the key table.
pub async fn keys(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let clock = Arc::new(SystemClock);
    let mut lines = Vec::new();
    if let KeysCommand::Rotate {
        insecure_skip_publish_wait,
    } = cmd
    {
        let kek = crate::issue::KeyEncryptionKey::from_env()?;
        let min_next_age = if insecure_skip_publish_wait {
            std::time::Duration::ZERO
        } else {
            config.tokens.publish_guard
        };
        // Every algorithm in use (audiences' signing_alg) rotates, the default first.
        let mut algs = vec![config.tokens.signing_alg];
        for alg in crate::issue::algs_with_keys(&store).await? {
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        for alg in algs {
            let current = crate::issue::rotate_with(
                &store,
                alg,
                clock.clone(),
                config.tokens.max_lifetime,
                kek.as_ref(),
                min_next_age,
            )
            .await
            .with_context(|| format!("rotating the {alg} signing keys"))?;
            lines.push(format!(
                "rotated {alg}: {} is now current; replicas sign with it within {}",
                current.kid,
                humantime::format_duration(config.tokens.key_refresh_interval)
            ));
        }
    }
    let now = clock.now();
    lines.push(format!(
        "{:<45} {:<6} {:<8} {:>12}  published until",
        "kid", "alg", "state", "age"
    ));
    for key in crate::issue::list_keys(&store).await? {
        let age = humantime::format_duration(std::time::Duration::from_secs(
            u64::try_from(now.saturating_sub(key.created_at)).unwrap_or(0),
        ));
        let until = match (key.state, key.publish_until) {
            (crate::issue::KeyState::Retired, Some(t)) => format!("{t} (unix)"),
            _ => "-".to_owned(),
        };
        lines.push(format!(
            "{:<45} {:<6} {:<8} {:>12}  {until}{}",
            key.kid,
            key.alg,
            key.state.as_str(),
            age.to_string(),
            if key.encrypted { "  [encrypted]" } else { "" }
        ));
    }
    print_lines(lines)
}

/// `audit prune --older-than D`: retention, never younger than `tokens.max_lifetime`.
pub async fn audit_prune(config: &Config, older_than: std::time::Duration) -> anyhow::Result<()> {
    if older_than < config.tokens.max_lifetime {
        bail!(
            "--older-than {} is younger than tokens.max_lifetime ({}): the audit \
             trail of tokens that may still be valid is kept",
            humantime::format_duration(older_than),
            humantime::format_duration(config.tokens.max_lifetime)
        );
    }
    let store = open_store(config).await?;
    let age = i64::try_from(older_than.as_secs()).context("--older-than is too large")?;
    let cutoff = SystemClock.now().saturating_sub(age);
    let deleted = crate::audit::prune(&store, cutoff)
        .await
        .context("pruning the audit trail")?;
    let before =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(cutoff).unwrap_or(0));
    print_lines([format!(
        "pruned {deleted} audit events recorded before {}",
        humantime::format_rfc3339_seconds(before)
    )])
}

/// `trust check [--online]`: the listing, then (online) one line per remote key source;
/// any registry problem or failed source is a non-zero exit.
pub fn trust_check(dir: &std::path::Path, config: &Config, online: bool) -> anyhow::Result<()> {
    let registry = match crate::trust::load_registry_for(dir, Some(&config.server.issuer)) {
        Ok(registry) => registry,
        Err(e) => {
            // One line per problem, each naming its file and field.
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut lines = crate::trust::describe(&registry);
    lines.push(format!(
        "ok: {} issuers, {} clients, {} audiences in {}",
        registry.issuers.len(),
        registry.clients.len(),
        registry.audiences.len(),
        dir.display()
    ));
    if !online {
        return print_lines(lines);
    }
    let checks = actix_web::rt::System::new()
        .block_on(crate::verify::online::check_remote_sources(
            &registry,
            &config.outbound,
            SystemClock.now(),
        ))
        .context("building the outbound HTTP client")?;
    let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
    if checks.is_empty() {
        lines.push("online: the registry names no remote key source".to_owned());
    }
    lines.extend(checks.iter().map(|c| c.line()));
    print_lines(lines)?;
    if failed > 0 {
        bail!(
            "{failed} of {} remote key sources failed (see the FAILED lines)",
            checks.len()
        );
    }
    Ok(())
}

/// SPEC §2.1: 256-bit base64url secret; `secret_hash` is SHA-256 of its UTF-8 bytes.
pub fn new_secret() -> anyhow::Result<()> {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    print_lines([
        format!("secret: {secret}"),
        format!("secret_hash = \"sha256:{hash}\""),
    ])
}

/// `audit tail [--follow]`: the newest rows, then (following) each new one.
pub async fn audit_tail(config: &Config, args: &crate::cli::AuditTailArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let closed = crate::audit::query::stdout_closed();
    Ok(crate::audit::query::tail(&store, args, std::io::stdout(), closed).await?)
}

/// `audit search`: the rows every filter admits, newest first.
pub async fn audit_search(
    config: &Config,
    args: &crate::cli::AuditSearchArgs,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let now = SystemClock.now();
    Ok(crate::audit::query::search(&store, args, now, std::io::stdout()).await?)
}
