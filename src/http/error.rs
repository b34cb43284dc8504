//! The one place where errors become HTTP: RFC 6749 §5.2 JSON bodies, `WWW-Authenticate`
//! on every 401 (RFC 9110 §15.5.2), `Allow` on 405, `Cache-Control: no-store` on every error.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::exchange::ExchangeError;

pub use crate::exchange::ErrorCode;

#[derive(Debug, Serialize)]
pub struct OAuthError {
    #[serde(rename = "error")]
    pub code: ErrorCode,
    /// Kept as written (logs may show it); sanitised only on its way into the body.
    #[serde(rename = "error_description", serialize_with = "serialize_description")]
    pub description: Cow<'static, str>,
    #[serde(skip)]
    pub status: StatusCode,
    /// `WWW-Authenticate` value; RFC 9110 §15.5.2 requires one on every 401.
    #[serde(skip)]
    pub challenge: Option<&'static str>,
    /// `Allow` value; RFC 9110 §15.5.6 requires one on every 405.
    #[serde(skip)]
    pub allow: Option<&'static str>,
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

/// `/token`'s client authentication challenge (RFC 6749 §5.2, RFC 7617).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\", charset=\"UTF-8\"";
/// `/admin/*`'s challenge (RFC 6750 §3).
pub const ADMIN_BEARER_CHALLENGE: &str = "Bearer realm=\"tessera-admin\"";

/// Longest `error_description` sent; the full text stays in logs and audit reasons.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// RFC 6749 §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in `error_description`, and
/// descriptions can echo request values (an audience, a `typ`), so every one is forced into
/// that set here: `"` becomes `'` (keeps quoting readable), anything else outside it `?`.
pub fn sanitize_description(s: &str) -> Cow<'_, str> {
    let allowed = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    if s.chars().count() <= MAX_DESCRIPTION_CHARS && s.chars().all(allowed) {
        return Cow::Borrowed(s);
    }
    s.chars()
        .take(MAX_DESCRIPTION_CHARS)
        .map(|c| match c {
            '"' => '\'',
            c if allowed(c) => c,
            _ => '?',
        })
        .collect::<String>()
        .into()
}

fn serialize_description<S: serde::Serializer>(d: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&sanitize_description(d))
}

impl OAuthError {
    pub fn new(
        code: ErrorCode,
        status: StatusCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code,
            description: description.into(),
            status,
            challenge: None,
            allow: None,
            retry_after: None,
        }
    }

    /// 405 for a registered path asked with a method it does not serve; `allow` is the
    /// `Allow` header value, e.g. `"GET, HEAD"`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let description = format!("method not allowed; use {}", allow.replace(", ", " or "));
        Self {
            allow: Some(allow),
            ..Self::new(
                ErrorCode::InvalidRequest,
                StatusCode::METHOD_NOT_ALLOWED,
                description,
            )
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            StatusCode::BAD_REQUEST,
            description,
        )
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.description)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if let Some(challenge) = self.challenge {
            resp.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        if let Some(allow) = self.allow {
            resp.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs));
        }
        resp.json(self)
    }
}

impl From<ExchangeError> for OAuthError {
    /// The code and status are the exchange's own decision ([`ExchangeError::error_code`],
    /// [`ExchangeError::http_status`], and the retry hint, `retry_after_secs`); here only
    /// what HTTP adds: the challenge and descriptions that withhold our own faults.
    fn from(e: ExchangeError) -> Self {
        let code = e.error_code();
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let description: Cow<'static, str> = e.public_description().into();
        let base = Self::new(code, status, description);
        match e {
            // Challenged even when no or non-Basic credentials came: RFC 9110 §15.5.2
            // wants a challenge on every 401, and Basic is the scheme that works here.
            ExchangeError::InvalidClient(_) | ExchangeError::ClientAssertion(_) => Self {
                challenge: Some(BASIC_CHALLENGE),
                ..base
            },
            _ => Self {
                retry_after: e
                    .retry_after_secs()
                    .map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
                ..base
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sanitize_description as clean, MAX_DESCRIPTION_CHARS};

    fn in_rfc6749_set(s: &str) -> bool {
        s.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
    }

    #[test]
    fn descriptions_are_forced_into_the_rfc6749_character_set() {
        assert_eq!(clean("subject token expired"), "subject token expired");
        assert_eq!(
            clean("audience \"h\u{e9}llo\\x\" is not a registered target"),
            "audience 'h?llo?x' is not a registered target"
        );
        assert_eq!(clean("a\tb\nc\u{7f}d\u{0}"), "a?b?c?d?");
        // One `?` per char, not per byte: multi-byte input does not grow.
        assert_eq!(clean("\u{1f600}\u{e9}"), "??");
        let hostile: String = (0u32..0x300).filter_map(char::from_u32).collect();
        assert!(in_rfc6749_set(&clean(&hostile)));
    }

    #[test]
    fn descriptions_are_capped() {
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 50);
        assert_eq!(clean(&long).len(), MAX_DESCRIPTION_CHARS);
        let exact = "y".repeat(MAX_DESCRIPTION_CHARS);
        assert_eq!(clean(&exact), exact);
    }
}
