//! Logging set-up and the one way a token may appear in a log line: a SHA-256 prefix.

use std::io::IsTerminal;

use sha2::{Digest, Sha256};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, EnvFilter};

/// First 16 hex characters of SHA-256 over the token: enough to correlate, useless to replay.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hex::encode(&digest[..8])
}

/// Control characters (newlines above all) escaped as `\n`, `\u{1b}`, ...: request
/// values reach log lines and audit reasons this way, so they can never forge a line.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `TESSERA_LOG_FORMAT=json`
/// switches to JSON lines. Lines are written by a background thread (one `write` per
/// batch instead of one per exchange on the request path); it never drops a line (it
/// blocks instead when 128k lines are queued). Keep the returned guard until exit: dropping
/// it flushes what is queued.
pub fn init() -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    // A second init (tests) keeps the first subscriber; its guard is then not needed.
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    installed.ok().map(|()| guard)
}

/// Header text echoed in an error (`alg`, `typ`): printable ASCII only, at most 32 chars,
/// so a hostile header cannot inject into logs or error descriptions.
pub fn sanitize_label(s: &str) -> String {
    s.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(
            super::escape_controls("plain `audience`"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            super::escape_controls("a\nb\r\u{1b}[31m"),
            "a\\nb\\r\\u{1b}[31m"
        );
    }
}
