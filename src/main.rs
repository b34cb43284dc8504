//! The `tessera` binary: parse the command line, set up logging, dispatch.

use std::sync::Arc;

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use sha2::{Digest, Sha256};

use tessera::cli::{
    AuditCommand, Cli, ClientsCommand, Command, DevCommand, KeysCommand, TrustCommand,
};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::startup::Application;

/// A refused command prints its message and cause chain, one line, never a backtrace
/// (anyhow's `Debug` adds one whenever `RUST_BACKTRACE` is set).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_guard = tessera::telemetry::init();
    match cli.command {
        Command::Clients(ClientsCommand::NewSecret) => {
            new_secret();
            Ok(())
        }
        Command::Trust(TrustCommand::Check { dir }) => {
            let config = Config::load(cli.config.as_deref())?;
            let dir = dir.unwrap_or_else(|| config.trust.dir.clone());
            trust_check(&dir, &config.server.issuer)
        }
        Command::Dev(DevCommand::IdToken(args)) => {
            let dir = match &args.dir {
                Some(d) => d.clone(),
                None => Config::load(cli.config.as_deref())?.trust.dir,
            };
            for token in tessera::dev::mint_id_tokens(&dir, &args, &SystemClock)? {
                println!("{token}");
            }
            Ok(())
        }
        Command::Dev(DevCommand::SamlAssertion(args)) => {
            let config = Config::load(cli.config.as_deref())?;
            let dir = args.dir.clone().unwrap_or_else(|| config.trust.dir.clone());
            let broker = config.broker_identity();
            for token in
                tessera::dev::saml::mint_saml_assertions(&dir, &args, &broker, &SystemClock)?
            {
                println!("{token}");
            }
            Ok(())
        }
        Command::Dev(DevCommand::OpaqueToken(args)) => {
            let dir = match &args.dir {
                Some(d) => d.clone(),
                None => Config::load(cli.config.as_deref())?.trust.dir,
            };
            let demo = tessera::dev::opaque::DemoAs::load(&dir, &args.issuer)?;
            let lifetime = i64::try_from(args.lifetime.as_secs()).unwrap_or(i64::MAX);
            for i in 1..=args.count {
                let sub = if args.count > 1 {
                    format!("{}-{i}", args.sub)
                } else {
                    args.sub.clone()
                };
                println!(
                    "{}",
                    demo.mint(&sub, &args.scope, &args.claims, lifetime, &SystemClock)?
                );
            }
            Ok(())
        }
        Command::Dev(DevCommand::OpaqueAs {
            issuer,
            listen,
            dir,
        }) => {
            let dir = match dir {
                Some(d) => d,
                None => Config::load(cli.config.as_deref())?.trust.dir,
            };
            let demo = tessera::dev::opaque::DemoAs::load(&dir, &issuer)?;
            eprintln!("demo authorization server: POST http://{listen}/introspect (Ctrl-C stops)");
            actix_web::rt::System::new()
                .block_on(tessera::http::demo_as::serve(
                    std::sync::Arc::new(demo),
                    listen,
                ))
                .with_context(|| format!("serving on {listen}"))?;
            Ok(())
        }
        Command::Dev(DevCommand::Inspect { jwks_url, token }) => {
            let token = if token == "-" {
                std::io::read_to_string(std::io::stdin())?.trim().to_owned()
            } else {
                token
            };
            let report =
                actix_web::rt::System::new().block_on(tessera::dev::inspect(&jwks_url, &token))?;
            println!("{report}");
            Ok(())
        }
        command => {
            let config = Config::load(cli.config.as_deref())?;
            actix_web::rt::System::new().block_on(run_async(command, config))
        }
    }
}

async fn run_async(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
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
        Command::Migrate => {
            tessera::startup::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys(cmd) => {
            let store = tessera::startup::open_store(&config).await?;
            let clock = Arc::new(SystemClock);
            if let KeysCommand::Rotate {
                insecure_skip_publish_wait,
            } = cmd
            {
                let kek = tessera::issue::KeyEncryptionKey::from_env()?;
                let min_next_age = if insecure_skip_publish_wait {
                    std::time::Duration::ZERO
                } else {
                    tessera::issue::NEXT_KEY_MIN_AGE
                };
                let current = tessera::issue::rotate_with(
                    &store,
                    config.tokens.signing_alg,
                    clock.clone(),
                    config.tokens.max_lifetime,
                    kek.as_ref(),
                    min_next_age,
                )
                .await
                .context("rotating signing keys")?;
                println!(
                    "rotated: {} is now current; replicas sign with it within {}",
                    current.kid,
                    humantime::format_duration(config.tokens.key_refresh_interval)
                );
            }
            let now = clock.now();
            println!(
                "{:<45} {:<6} {:<8} {:>12}  published until",
                "kid", "alg", "state", "age"
            );
            for key in tessera::issue::list_keys(&store).await? {
                let age = humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(now.saturating_sub(key.created_at)).unwrap_or(0),
                ));
                let until = match (key.state, key.publish_until) {
                    (tessera::issue::KeyState::Retired, Some(t)) => format!("{t} (unix)"),
                    _ => "-".to_owned(),
                };
                println!(
                    "{:<45} {:<6} {:<8} {:>12}  {until}{}",
                    key.kid,
                    key.alg,
                    key.state.as_str(),
                    age.to_string(),
                    if key.encrypted { "  [encrypted]" } else { "" }
                );
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Prune { older_than }) => {
            if older_than < config.tokens.max_lifetime {
                bail!(
                    "--older-than {} is younger than tokens.max_lifetime ({}): the audit \
                     trail of tokens that may still be valid is kept",
                    humantime::format_duration(older_than),
                    humantime::format_duration(config.tokens.max_lifetime)
                );
            }
            let store = tessera::startup::open_store(&config).await?;
            let age = i64::try_from(older_than.as_secs()).context("--older-than is too large")?;
            let cutoff = SystemClock.now().saturating_sub(age);
            let deleted = tessera::audit::prune(&store, cutoff)
                .await
                .context("pruning the audit trail")?;
            let before = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(cutoff).unwrap_or(0));
            println!(
                "pruned {deleted} audit events recorded before {}",
                humantime::format_rfc3339_seconds(before)
            );
            Ok(())
        }
        Command::Audit(AuditCommand::Tail(args)) => {
            let store = tessera::startup::open_store(&config).await?;
            let closed = tessera::audit::query::stdout_closed();
            Ok(tessera::audit::query::tail(&store, &args, std::io::stdout(), closed).await?)
        }
        Command::Audit(AuditCommand::Search(args)) => {
            let store = tessera::startup::open_store(&config).await?;
            let now = SystemClock.now();
            Ok(tessera::audit::query::search(&store, &args, now, std::io::stdout()).await?)
        }
        Command::Trust(_) | Command::Clients(_) | Command::Dev(_) => bail!("unreachable command"),
    }
}

fn trust_check(dir: &std::path::Path, own_issuer: &str) -> anyhow::Result<()> {
    match tessera::trust::load_registry_for(dir, Some(own_issuer)) {
        Ok(registry) => {
            for line in tessera::trust::describe(&registry) {
                println!("{line}");
            }
            println!(
                "ok: {} issuers, {} clients, {} audiences in {}",
                registry.issuers.len(),
                registry.clients.len(),
                registry.audiences.len(),
                dir.display()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// SPEC §2.1: 256-bit base64url secret; `secret_hash` is SHA-256 of its UTF-8 bytes.
fn new_secret() {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    println!("secret: {secret}");
    println!("secret_hash = \"sha256:{hash}\"");
}
