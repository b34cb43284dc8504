//! Broker configuration: defaults, then `tessera.toml`, then `TESSERA_<SECTION>__<KEY>`
//! environment overrides (figment). Unknown keys are errors that name their source, so a
//! typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::issue::SigningAlg;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub trust: TrustConfig,
    pub tokens: TokensConfig,
    pub saml: SamlConfig,
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The `iss` of issued tokens and the base URL of the endpoints (no trailing slash).
    pub issuer: String,
    /// HTTP worker threads; default: one per core.
    pub workers: Option<usize>,
    /// How long SIGTERM waits for requests in flight. The audit flush after it may take
    /// up to 1.5 s more: the 8 s default keeps the whole exit inside SPEC §6's 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` (embedded default) or `postgres://…` / `postgresql://…`.
    pub url: String,
    /// Connections in the pool; default 4 for SQLite, 8 for PostgreSQL.
    pub pool_size: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    pub dir: PathBuf,
    /// A candidate registry decided beside the live one (`serve --shadow-trust`): never
    /// changes an answer, counts and logs each disagreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    #[serde(with = "humantime_serde")]
    pub default_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    pub signing_alg: SigningAlg,
    /// How often each replica re-reads the signing keys from the database (rotation).
    /// At most `publish_guard`: a replica must see a next key before anyone signs with it.
    #[serde(with = "humantime_serde")]
    pub key_refresh_interval: Duration,
    /// The publish guard (SPEC §6): a next key is published this long before a rotation
    /// may make it current, and a replica that could not read the key state for this long
    /// stops issuing (503) rather than sign with a key that may have been retired.
    #[serde(with = "humantime_serde")]
    pub publish_guard: Duration,
    /// Scheduled rotation: the replicas rotate once per interval between them. Off when
    /// unset (rotate with `tessera keys rotate`).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub rotation_interval: Option<Duration>,
    /// Most actors an issued `act` chain may hold (RFC 8693 §4.1 nesting); a request
    /// that would issue a deeper one is refused.
    #[serde(default = "default_max_delegation_depth")]
    pub max_delegation_depth: usize,
}

const fn default_max_delegation_depth() -> usize {
    4
}

/// `[limits]`: fair use of the broker as shared infrastructure (SPEC §1, §3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Default per-client request rate (`"100/s"`, `"6000/m"`); a client's `rate_limit`
    /// overrides it. Off when unset. Per replica (see `crate::limits`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_rate: Option<crate::limits::Rate>,
    /// Requests refused before their client is authenticated (and requests over a rate
    /// limit) are not audited one row each: they are counted, and every this often one
    /// row per kind of refusal records how many there were.
    #[serde(with = "humantime_serde")]
    pub refusal_summary_interval: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            client_rate: None,
            refusal_summary_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlConfig {
    pub entity_id: Option<String>,
    pub decryption_key_file: Option<PathBuf>,
}

/// `[outbound]`: limits of every request tessera makes to a foreign issuer. Defined beside
/// the fetcher that applies them (config reads the domain; the domain never reads config).
pub use crate::verify::fetch::OutboundConfig;

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                issuer: "http://127.0.0.1:8080".to_owned(),
                workers: None,
                shutdown_timeout: Duration::from_secs(8),
            },
            database: DatabaseConfig {
                url: "sqlite://tessera.db".to_owned(),
                pool_size: None,
            },
            trust: TrustConfig {
                dir: PathBuf::from("trust"),
                shadow_dir: None,
            },
            tokens: TokensConfig {
                default_lifetime: Duration::from_secs(600),
                max_lifetime: Duration::from_secs(3600),
                signing_alg: SigningAlg::ES256,
                key_refresh_interval: Duration::from_secs(10),
                publish_guard: crate::issue::NEXT_KEY_MIN_AGE,
                rotation_interval: None,
                max_delegation_depth: default_max_delegation_depth(),
            },
            saml: SamlConfig::default(),
            outbound: OutboundConfig {
                timeout: Duration::from_secs(5),
                max_response_bytes: 512 * 1024,
                refresh_cooldown: Duration::from_secs(30),
                keys_ttl: Duration::from_secs(3600),
                max_stale: Duration::from_secs(24 * 3600),
                offline: false,
            },
            limits: LimitsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration file {path}: not found")]
    Missing { path: PathBuf },
}

impl Config {
    /// Defaults ← `path` (when given, it must exist; `tessera.toml` in the working directory
    /// is read when present) ← `TESSERA_<SECTION>__<KEY>`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError::Missing {
                        path: p.to_path_buf(),
                    });
                }
                figment = figment.merge(Toml::file_exact(p));
            }
            None => figment = figment.merge(Toml::file("tessera.toml")),
        }
        let figment = figment.merge(
            // Only `TESSERA_<SECTION>__<KEY>` is configuration: every key lives in a
            // section. Other `TESSERA_*` variables (TESSERA_ADMIN_TOKEN, a client's
            // `secret_env`, ...) are not ours to reject; a misspelt section or key still is.
            Env::prefixed("TESSERA_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.server.issuer.ends_with('/') {
            return bad("server.issuer", "must not end with '/'");
        }
        if url::Url::parse(&self.server.issuer).is_err() {
            return bad("server.issuer", "must be an absolute URL");
        }
        if self.tokens.default_lifetime.is_zero() || self.tokens.max_lifetime.is_zero() {
            return bad("tokens", "lifetimes must be positive");
        }
        self.validate_promises()?;
        if !(self.database.url.starts_with("sqlite://")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return bad(
                "database.url",
                "must start with sqlite://, postgres:// or postgresql://",
            );
        }
        Ok(())
    }

    /// Settings that would break a promise of SPEC §6 are refused, naming the setting and
    /// the promise, instead of being accepted and failing quietly later.
    fn validate_promises(&self) -> Result<(), ConfigError> {
        let t = &self.tokens;
        let o = &self.outbound;
        let human = |d: Duration| humantime::format_duration(d).to_string();
        let bad = |key: &str, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if t.default_lifetime > t.max_lifetime {
            return bad(
                "tokens.default_lifetime",
                format!(
                    "{} is longer than tokens.max_lifetime ({})",
                    human(t.default_lifetime),
                    human(t.max_lifetime)
                ),
            );
        }
        // A replica may sign with a just-retired key for up to the guard; a retired key
        // stays published `max_lifetime` + REPLICA_LAG_MARGIN, which must cover it.
        let margin = crate::issue::REPLICA_LAG_MARGIN;
        if t.publish_guard < Duration::from_secs(2) || t.publish_guard > margin {
            return bad(
                "tokens.publish_guard",
                format!(
                    "{} must be between 2s and {}: a replica may sign with a just-retired key \
                     for up to the guard, and a retired key stays published only \
                     tokens.max_lifetime + {} after",
                    human(t.publish_guard),
                    human(margin),
                    human(margin)
                ),
            );
        }
        if t.key_refresh_interval.is_zero() || t.key_refresh_interval >= t.publish_guard {
            return bad(
                "tokens.key_refresh_interval",
                format!(
                    "{} must be shorter than tokens.publish_guard ({}): a replica refreshing \
                     that slowly could still publish an old key set while another signs with \
                     the new key",
                    human(t.key_refresh_interval),
                    human(t.publish_guard)
                ),
            );
        }
        if let Some(every) = t.rotation_interval {
            let least = (t.publish_guard * 2).max(Duration::from_secs(60));
            if every < least {
                return bad(
                    "tokens.rotation_interval",
                    format!(
                        "{} is shorter than {}: the next key must be published by every \
                         replica (tokens.publish_guard) before a rotation makes it current",
                        human(every),
                        human(least)
                    ),
                );
            }
        }
        if self.limits.refusal_summary_interval < Duration::from_millis(100) {
            return bad(
                "limits.refusal_summary_interval",
                format!(
                    "{} must be at least 100ms",
                    human(self.limits.refusal_summary_interval)
                ),
            );
        }
        if o.refresh_cooldown < Duration::from_secs(1) {
            return bad(
                "outbound.refresh_cooldown",
                format!(
                    "{} would let every token with an unknown kid fetch the issuer's keys \
                     (at least 1s; 30s is the default)",
                    human(o.refresh_cooldown)
                ),
            );
        }
        if o.timeout.is_zero() || o.timeout > Duration::from_secs(60) {
            return bad(
                "outbound.timeout",
                format!("{} must be between 1ms and 60s", human(o.timeout)),
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&o.max_response_bytes) {
            return bad(
                "outbound.max_response_bytes",
                format!("{} must be between 1 KiB and 16 MiB", o.max_response_bytes),
            );
        }
        // Each of these must not be shorter than the one before it.
        for (key, value, floor_key, floor) in [
            (
                "outbound.keys_ttl",
                o.keys_ttl,
                "outbound.refresh_cooldown",
                o.refresh_cooldown,
            ),
            (
                "outbound.max_stale",
                o.max_stale,
                "outbound.keys_ttl",
                o.keys_ttl,
            ),
        ] {
            if value < floor {
                return bad(
                    key,
                    format!(
                        "{} is shorter than {floor_key} ({})",
                        human(value),
                        human(floor)
                    ),
                );
            }
        }
        Ok(())
    }

    /// The token endpoint URL: the audience RFC 7523/7522 assertions must name.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.server.issuer)
    }

    /// How tessera names itself to presented tokens: token endpoint, issuer, and the SAML
    /// entity id (`saml.entity_id`, by default `server.issuer`).
    pub fn broker_identity(&self) -> crate::verify::BrokerIdentity {
        crate::verify::BrokerIdentity {
            token_endpoint: self.token_endpoint(),
            issuer: self.server.issuer.clone(),
            saml_entity_id: self
                .saml
                .entity_id
                .clone()
                .unwrap_or_else(|| self.server.issuer.clone()),
        }
    }
}

/// figment errors name the key and where the value came from ("in tessera.toml",
/// "in `TESSERA_SERVER__LISTEN` environment variable"); keep every one of them.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let source = match e.metadata.as_ref() {
                // figment says "`TESSERA_` environment variable(s)"; name the one variable.
                Some(m) if m.name.contains("environment") && !e.path.is_empty() => format!(
                    " (from environment variable TESSERA_{})",
                    e.path.join("__").to_ascii_uppercase()
                ),
                Some(m) => match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                },
                None => String::new(),
            };
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, which is large; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_in_file_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[server]\nlisten = \"127.0.0.1:1\"\nisuer = \"x\"\n",
            )?;
            let err = Config::load(Some(Path::new("t.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("isuer"), "{err}");
            assert!(err.contains("t.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_and_names_the_variable_on_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("t.toml", "[tokens]\ndefault_lifetime = \"5m\"\n")?;
            jail.set_env("TESSERA_TOKENS__DEFAULT_LIFETIME", "7m");
            jail.set_env("TESSERA_CONFIG", "t.toml");
            let c = Config::load(Some(Path::new("t.toml"))).unwrap();
            assert_eq!(c.tokens.default_lifetime, Duration::from_secs(420));
            jail.set_env("TESSERA_TOKENS__MAX_LIFETIME", "forever");
            let err = Config::load(Some(Path::new("t.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("tokens.max_lifetime"), "{err}");
            assert!(err.contains("TESSERA_TOKENS__MAX_LIFETIME"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn settings_that_would_break_a_promise_are_refused_naming_them() {
        for (variable, value, named) in [
            (
                "TESSERA_TOKENS__KEY_REFRESH_INTERVAL",
                "5m",
                "tokens.key_refresh_interval",
            ),
            (
                "TESSERA_TOKENS__KEY_REFRESH_INTERVAL",
                "0s",
                "tokens.key_refresh_interval",
            ),
            (
                "TESSERA_TOKENS__PUBLISH_GUARD",
                "1s",
                "tokens.publish_guard",
            ),
            (
                "TESSERA_TOKENS__PUBLISH_GUARD",
                "5m",
                "tokens.publish_guard",
            ),
            (
                "TESSERA_LIMITS__REFUSAL_SUMMARY_INTERVAL",
                "0s",
                "limits.refusal_summary_interval",
            ),
            (
                "TESSERA_TOKENS__ROTATION_INTERVAL",
                "30s",
                "tokens.rotation_interval",
            ),
            (
                "TESSERA_TOKENS__DEFAULT_LIFETIME",
                "2h",
                "tokens.default_lifetime",
            ),
            (
                "TESSERA_OUTBOUND__REFRESH_COOLDOWN",
                "0s",
                "outbound.refresh_cooldown",
            ),
            ("TESSERA_OUTBOUND__TIMEOUT", "0s", "outbound.timeout"),
            ("TESSERA_OUTBOUND__TIMEOUT", "5m", "outbound.timeout"),
            (
                "TESSERA_OUTBOUND__MAX_RESPONSE_BYTES",
                "10",
                "outbound.max_response_bytes",
            ),
            ("TESSERA_OUTBOUND__KEYS_TTL", "10s", "outbound.keys_ttl"),
            ("TESSERA_OUTBOUND__MAX_STALE", "10m", "outbound.max_stale"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(variable, value);
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains(named), "{variable}={value}: {err}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_TOKENS__ROTATION_INTERVAL", "1d");
            jail.set_env("TESSERA_LIMITS__CLIENT_RATE", "100/s");
            let c = Config::load(None).unwrap();
            assert_eq!(c.tokens.rotation_interval, Some(Duration::from_secs(86400)));
            assert_eq!(c.limits.client_rate.unwrap().to_string(), "100/s");
            jail.set_env("TESSERA_LIMITS__CLIENT_RATE", "fast");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("limits.client_rate"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn only_section_variables_are_configuration() {
        figment::Jail::expect_with(|jail| {
            // A client's secret_env and the broker's own secrets share the prefix.
            jail.set_env("TESSERA_ORDERS_SECRET", "s3cret");
            jail.set_env("TESSERA_ADMIN_TOKEN", "adm1n");
            Config::load(None).unwrap();
            jail.set_env("TESSERA_DATABSE__URL", "sqlite://x.db");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("unknown field: found `databse`"), "{err}");
            assert!(err.contains("TESSERA_DATABSE"), "{err}");
            Ok(())
        });
    }
}
