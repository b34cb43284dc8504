//! Logging set-up and the one way a token may appear in a log line: a SHA-256 prefix.

use sha2::{Digest, Sha256};
use tracing_subscriber::{fmt, EnvFilter};

/// First 16 hex characters of SHA-256 over the token: enough to correlate, useless to replay.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hex::encode(&digest[..8])
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `TESSERA_LOG_FORMAT=json`
/// switches to JSON lines.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
