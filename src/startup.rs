//! Builds the broker from its configuration: database, registry, keys, verifier, audit
//! writer, HTTP server. `serve` and the integration tests both go through `Application`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::audit::AuditLog;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::exchange::shadow::Shadow;
use crate::exchange::{ExchangeSettings, Exchanger, LifetimeBounds};
use crate::http::{self, AppState};
use crate::issue::KeyRing;
use crate::metrics::Metrics;
use crate::replay::ReplayCache;
use crate::store::Store;
use crate::trust::TrustStore;
use crate::verify::saml::decrypt::DecryptionKey;
use crate::verify::Verifier;

/// Expired replay-cache entries are deleted this often (each replica prunes; deleting an
/// already deleted row costs nothing).
const REPLAY_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    audit: AuditLog,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let trust = Arc::new(
            TrustStore::load(&config.trust.dir, &config.server.issuer)
                .with_context(|| format!("trust registry in {}", config.trust.dir.display()))?,
        );
        crate::exchange::warn_about_demo_issuers(&trust);
        let metrics = Arc::new(Metrics::new());
        let Parts {
            exchanger,
            verifier,
            keys,
            audit,
            replay,
            revocations,
        } = Parts::build(
            &config,
            &store,
            clock.clone(),
            trust.clone(),
            metrics.clone(),
        )
        .await?;
        let admin_token_sha256 = std::env::var("TESSERA_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.as_bytes()).into());
        let state = web::Data::new(AppState {
            exchanger,
            store: store.clone(),
            trust,
            verifier,
            keys: keys.clone(),
            metrics,
            issuer: config.server.issuer.clone(),
            admin_token_sha256,
        });

        let listener = TcpListener::bind(config.server.listen)
            .with_context(|| format!("binding server.listen = {}", config.server.listen))?;
        let port = listener.local_addr()?.port();
        warn_about_issuer_port(&config.server.issuer, port);
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(actix_web::middleware::from_fn(http::count_responses))
                .configure(http::routes)
        })
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        .listen(listener)?;
        if let Some(n) = config.server.workers {
            server = server.workers(n);
        }
        let server = server.run();

        let background = vec![
            // Rotation by another process or replica reaches this one within the interval.
            crate::issue::spawn_refresher(
                keys,
                store.clone(),
                config.tokens.key_refresh_interval,
                config
                    .tokens
                    .rotation_interval
                    .map(|every| crate::issue::Schedule {
                        every,
                        retire_publish_for: config.tokens.max_lifetime,
                        publish_guard: config.tokens.publish_guard,
                    }),
                state.metrics.clone(),
            ),
            spawn_reload_on_sighup(state.clone()),
            replay.spawn_pruner(clock.clone(), REPLAY_PRUNE_INTERVAL),
            // A revocation on another replica reaches this one within 1 s (LISTEN on
            // PostgreSQL, polling otherwise).
            revocations.spawn_sync(),
        ];

        Ok(Self {
            port,
            server,
            state,
            audit,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// Stops the server from elsewhere (tests; SIGTERM is handled by actix itself).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (actix stops accepting and drains requests in flight),
    /// then flushes the audit queue.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in &self.background {
            task.abort();
        }
        self.audit.shutdown().await;
        result
    }
}

/// The exchange pipeline and the parts the server's background tasks also hold. `serve`
/// and `tessera explain` build it the same way, so explain decides as the server would.
pub struct Parts {
    pub exchanger: Arc<Exchanger>,
    pub verifier: Arc<Verifier>,
    pub keys: Arc<KeyRing>,
    pub audit: AuditLog,
    pub replay: ReplayCache,
    pub revocations: crate::revocation::Revocations,
}

impl Parts {
    pub async fn build(
        config: &Config,
        store: &Store,
        clock: SharedClock,
        trust: Arc<TrustStore>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let keys = Arc::new(
            KeyRing::open(store, config.tokens.signing_alg, clock.clone())
                .await
                .context("opening the signing keys")?
                .with_publish_guard(config.tokens.publish_guard),
        );
        let verifier = verifier(config, &keys, clock.clone(), metrics.clone())?;
        verifier.warm_up(&trust.snapshot());
        Self::assemble(config, store, clock, trust, metrics, keys, verifier).await
    }

    /// `tessera trust test`: the same pipeline on a throwaway `store`, with no network. Its
    /// verifier never makes a request (`outbound.offline`: the caller seeds remote keys and
    /// introspection answers) and nothing is warmed up; the throwaway signing keys are
    /// encrypted with a throwaway key (`TESSERA_KEY_ENCRYPTION_KEY` is not read).
    pub async fn build_offline(
        config: &Config,
        store: &Store,
        clock: SharedClock,
        trust: Arc<TrustStore>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let kek = crate::issue::KeyEncryptionKey::generate()
            .context("a key-encryption key for the throwaway signing keys")?;
        let keys = Arc::new(
            KeyRing::open_with(store, config.tokens.signing_alg, clock.clone(), Some(kek))
                .await
                .context("opening the signing keys")?,
        );
        let verifier = offline_verifier(config, &keys, clock.clone(), metrics.clone())?;
        let mut config = config.clone();
        config.trust.shadow_dir = None;
        Self::assemble(&config, store, clock, trust, metrics, keys, verifier).await
    }

    /// An exchanger like this offline one's with a fresh offline verifier (no key cached,
    /// nothing seeded): each `trust test` case starts from nothing another case supplied.
    pub fn fresh_offline_exchanger(&self, config: &Config) -> anyhow::Result<Exchanger> {
        let live = &self.exchanger;
        let verifier =
            offline_verifier(config, &self.keys, live.clock.clone(), live.metrics.clone())?;
        Ok(sibling(config, live, live.trust.clone(), verifier))
    }

    async fn assemble(
        config: &Config,
        store: &Store,
        clock: SharedClock,
        trust: Arc<TrustStore>,
        metrics: Arc<Metrics>,
        keys: Arc<KeyRing>,
        verifier: Arc<Verifier>,
    ) -> anyhow::Result<Self> {
        // Every algorithm an audience signs with has its keys before the first request.
        keys.ensure_algs(store, &crate::exchange::audience_algs(&trust.snapshot()))
            .await
            .context("creating the keys of the audiences' signing_alg")?;
        let audit = AuditLog::start_with(
            store.clone(),
            metrics.clone(),
            config.limits.refusal_summary_interval,
        );
        let replay = ReplayCache::new(store.clone(), audit.clone());
        let revocations = crate::revocation::Revocations::new(store.clone(), clock.clone());
        revocations
            .sync()
            .await
            .context("reading the revoked tokens")?;
        let mut exchanger = Exchanger {
            trust,
            verifier: verifier.clone(),
            replay: replay.clone(),
            revocations: revocations.clone(),
            refresh: crate::refresh::RefreshTokens::new(store.clone()),
            keys: keys.clone(),
            audit: audit.clone(),
            clock,
            metrics,
            settings: exchange_settings(config),
            limiter: Arc::new(crate::limits::RateLimiter::new()),
            shadow: None,
        };
        if let Some(dir) = &config.trust.shadow_dir {
            exchanger.shadow = Some(shadow(config, dir, &exchanger)?);
        }
        Ok(Self {
            exchanger: Arc::new(exchanger),
            verifier,
            keys,
            audit,
            replay,
            revocations,
        })
    }
}

/// The verifier of presented tokens: tessera's own keys for local tokens, the SAML
/// decryption key when configured.
fn verifier(
    config: &Config,
    keys: &Arc<KeyRing>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Verifier>> {
    let verifier = Verifier::new(&config.outbound, config.broker_identity(), clock, metrics)
        .context("building the token verifier")?;
    let published = keys.clone();
    let verifier = verifier.with_local_keys(crate::verify::oidc::LocalKeys::new(move || {
        published.jwks_json()
    }));
    Ok(Arc::new(match &config.saml.decryption_key_file {
        Some(path) => verifier.with_saml_decryption_key(DecryptionKey::from_pem_file(path)?),
        None => verifier,
    }))
}

fn exchange_settings(config: &Config) -> ExchangeSettings {
    ExchangeSettings {
        issuer: config.server.issuer.clone(),
        lifetimes: LifetimeBounds {
            default_lifetime: config.tokens.default_lifetime,
            max_lifetime: config.tokens.max_lifetime,
        },
        max_delegation_depth: config.tokens.max_delegation_depth,
        token_endpoint: config.token_endpoint(),
        client_rate: config.limits.client_rate,
    }
}

/// [`verifier`] with `outbound.offline`: every fetch fails at once (`trust test`).
fn offline_verifier(
    config: &Config,
    keys: &Arc<KeyRing>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Verifier>> {
    let mut config = config.clone();
    config.outbound.offline = true;
    verifier(&config, keys, clock, metrics)
}

/// An exchanger deciding against `trust` with `verifier`, sharing everything else with
/// `live` (the shadow registry, `trust test` cases).
fn sibling(
    config: &Config,
    live: &Exchanger,
    trust: Arc<TrustStore>,
    verifier: Arc<Verifier>,
) -> Exchanger {
    Exchanger {
        trust,
        verifier,
        replay: live.replay.clone(),
        revocations: live.revocations.clone(),
        refresh: live.refresh.clone(),
        keys: live.keys.clone(),
        audit: live.audit.clone(),
        clock: live.clock.clone(),
        metrics: live.metrics.clone(),
        settings: exchange_settings(config),
        limiter: live.limiter.clone(),
        shadow: None,
    }
}

/// The candidate registry of `--shadow-trust`: refused at start like an invalid live
/// registry. It gets a verifier of its own (its key caches never disturb the live ones)
/// and shares everything else with the live pipeline.
fn shadow(config: &Config, dir: &Path, live: &Exchanger) -> anyhow::Result<Arc<Shadow>> {
    let trust = Arc::new(
        TrustStore::load(dir, &config.server.issuer)
            .with_context(|| format!("shadow trust registry in {}", dir.display()))?,
    );
    let verifier = verifier(config, &live.keys, live.clock.clone(), live.metrics.clone())?;
    verifier.warm_up(&trust.snapshot());
    let exchanger = Arc::new(sibling(config, live, trust.clone(), verifier));
    tracing::info!(dir = %dir.display(), "shadow registry loaded: live exchanges are also decided against it");
    Ok(Arc::new(Shadow { trust, exchanger }))
}

/// Connects to `database.url` and applies pending migrations (`serve`, `migrate`, `keys`).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database.url.clone();
    let pool = config.database.pool_size;
    let store = tokio::task::spawn_blocking(move || -> anyhow::Result<Store> {
        let store = Store::connect(&url, pool).context("connecting to database.url")?;
        store.run_migrations().context("applying migrations")?;
        Ok(store)
    })
    .await
    .context("database set-up task")??;
    Ok(store)
}

#[cfg(unix)]
fn spawn_reload_on_sighup(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /admin/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = state.reload_registry().await;
        }
    })
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {})
}

/// A loopback `server.issuer` with another port than the one listened on is almost always
/// a moved `listen` whose issuer was forgotten: `iss`, the metadata and the SAML Recipient
/// would all name the old port. Only warned (a proxy may forward that port).
fn warn_about_issuer_port(issuer: &str, listening: u16) {
    let Ok(url) = url::Url::parse(issuer) else {
        return;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.port_or_known_default() {
        Some(named) if loopback && named != listening => tracing::warn!(
            server.issuer = issuer,
            listening,
            "server.issuer names port {named} on this machine but tessera listens on port \
             {listening}: issued tokens' iss, the metadata and the SAML Recipient name a port \
             nobody answers on; set server.issuer to the address clients use"
        ),
        _ => {}
    }
}
