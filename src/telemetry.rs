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

/// Control characters (newlines above all) and Unicode format characters (bidi overrides
/// such as U+202E, zero-width and invisible ones) escaped as `\n`, `\u{202e}`, ...:
/// request values reach log lines and audit reasons this way, so they can never forge a
/// line, nor make one read differently on screen from what is stored.
pub fn escape_invisible(s: &str) -> std::borrow::Cow<'_, str> {
    let invisible = |c: char| c.is_control() || is_format(c);
    if !s.chars().any(invisible) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Unicode general category Cf (format), the line and paragraph separators (Zl, Zp), which
/// std does not classify, and the other characters that render as nothing.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            // Not Cf, but invisible on screen: the combining grapheme joiner, Hangul
            // fillers, the braille blank, and variation selectors.
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Longest request value (an audience, a scope) a message quotes.
pub const MAX_ECHOED_CHARS: usize = 128;

/// A request value as a message quotes it: at most [`MAX_ECHOED_CHARS`] characters, the
/// rest counted rather than copied (a 60 KB `audience` once made a 60 KB audit reason and
/// log line; security review F-6). Escaping is [`escape_invisible`]'s, where the message
/// is written.
pub fn echo(value: &str) -> std::borrow::Cow<'_, str> {
    match split_at_char(value, MAX_ECHOED_CHARS) {
        None => value.into(),
        Some((head, rest)) => format!("{head}…(+{} bytes)", rest.len()).into(),
    }
}

/// `s` split after its first `n` characters, when it has more.
fn split_at_char(s: &str, n: usize) -> Option<(&str, &str)> {
    s.char_indices().nth(n).map(|(at, _)| s.split_at(at))
}

/// Longest audit reason and log `error` field: a backstop for texts built from several
/// parts (each request value in them is already [`echo`]ed).
pub const MAX_REASON_CHARS: usize = 1024;

/// `text` escaped ([`escape_invisible`]) and cut at [`MAX_REASON_CHARS`] characters.
pub fn bounded_reason(text: &str) -> String {
    bounded(text, MAX_REASON_CHARS)
}

/// Longest subject or actor name an audit row keeps: a mapped subject comes from a token,
/// and some IdPs put user-chosen text there (a username, an email).
pub const MAX_NAME_CHARS: usize = 512;

/// A name from a token (the mapped subject, an actor's `sub`) as the audit trail keeps
/// it: escaped ([`escape_invisible`]) and cut at [`MAX_NAME_CHARS`] characters.
pub fn audited_name(name: &str) -> String {
    bounded(name, MAX_NAME_CHARS)
}

/// `text` escaped, then cut after `max` characters with a mark saying so.
fn bounded(text: &str, max: usize) -> String {
    let escaped = escape_invisible(text);
    match split_at_char(&escaped, max) {
        None => escaped.into_owned(),
        Some((head, _)) => format!("{head}…(cut)"),
    }
}

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `TESSERA_LOG_FORMAT=json`
/// switches to JSON lines. Lines are written by a background thread (one `write` per
/// batch instead of one per exchange on the request path); it never drops a line (it
/// blocks instead when 128k lines are queued). Keep the returned guard until exit: dropping
/// it flushes what is queued.
pub fn init() -> Option<WorkerGuard> {
    init_with_default("info")
}

/// [`init`] with another level than `info` when `RUST_LOG` is not set (a command whose
/// output is its report, such as `trust test`, logs only warnings by default).
pub fn init_with_default(level: &str) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
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
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(
            escape_invisible("plain `audience`"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(escape_invisible("a\nb\r\u{1b}[31m"), "a\\nb\\r\\u{1b}[31m");
    }

    #[test]
    fn invisible_characters_are_escaped_and_long_values_cut() {
        assert_eq!(escape_invisible("plain"), "plain");
        assert_eq!(escape_invisible("a\nb"), "a\\nb");
        assert_eq!(escape_invisible("x\u{202E}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(
            escape_invisible("\u{200B}\u{FEFF}\u{2066}"),
            "\\u{200b}\\u{feff}\\u{2066}"
        );
        assert_eq!(escape_invisible("é日本"), "é日本");
        let long = "a".repeat(60_000);
        assert_eq!(echo(&long), format!("{}…(+59872 bytes)", "a".repeat(128)));
        assert_eq!(echo("short"), "short");
        assert_eq!(
            echo(&"é".repeat(200)).chars().count(),
            128 + "…(+144 bytes)".chars().count()
        );
        assert_eq!(
            bounded_reason(&long).chars().count(),
            MAX_REASON_CHARS + "…(cut)".chars().count()
        );
    }
}
