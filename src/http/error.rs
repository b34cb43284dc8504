//! The one place where errors become HTTP: RFC 6749 §5.2 JSON bodies, RFC 6750-style
//! `WWW-Authenticate` on 401, `Cache-Control: no-store` on every error.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::exchange::{ExchangeError, TokenRole};

/// RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed; for
    /// token exchange also: the subject or actor token is invalid or unacceptable.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The provided authorization grant (the bearer grants' assertion) is invalid.
    InvalidGrant,
    /// The authenticated client is not authorized to use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported by the authorization server.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown, or exceeds what may be granted.
    InvalidScope,
    /// The requested audience or resource is invalid or not allowed.
    InvalidTarget,
    /// The server is temporarily unable to handle the request.
    TemporarilyUnavailable,
    /// The server met an unexpected condition.
    ServerError,
    /// No such endpoint (not an OAuth code; used for the JSON 404).
    NotFound,
}

#[derive(Debug, Serialize)]
pub struct OAuthError {
    #[serde(rename = "error")]
    pub code: ErrorCode,
    #[serde(rename = "error_description")]
    pub description: Cow<'static, str>,
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(skip)]
    pub basic_challenge: bool,
    #[serde(skip)]
    pub retry_after: Option<u32>,
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
            basic_challenge: false,
            retry_after: None,
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
        if self.basic_challenge {
            resp.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            ));
        }
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs));
        }
        resp.json(self)
    }
}

impl From<ExchangeError> for OAuthError {
    fn from(e: ExchangeError) -> Self {
        use ErrorCode as C;
        let bad = StatusCode::BAD_REQUEST;
        let description: Cow<'static, str> = e.to_string().into();
        // Exhaustive on purpose: a new variant must decide its code here.
        match e {
            ExchangeError::InvalidRequest(_) => Self::new(C::InvalidRequest, bad, description),
            ExchangeError::BodyTooLarge { .. } => Self::new(
                C::InvalidRequest,
                StatusCode::PAYLOAD_TOO_LARGE,
                description,
            ),
            ExchangeError::UnsupportedMediaType => Self::new(
                C::InvalidRequest,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                description,
            ),
            ExchangeError::InvalidClient {
                basic_attempted, ..
            } => Self {
                basic_challenge: basic_attempted,
                ..Self::new(C::InvalidClient, StatusCode::UNAUTHORIZED, description)
            },
            ExchangeError::UnauthorizedClient(_) => {
                Self::new(C::UnauthorizedClient, bad, description)
            }
            ExchangeError::UnsupportedGrantType => {
                Self::new(C::UnsupportedGrantType, bad, description)
            }
            // RFC 8693 §2.2.2: an unacceptable subject/actor token is invalid_request; the
            // bearer grants (RFC 7523 §3.1) say invalid_grant.
            ExchangeError::Token { role, .. } | ExchangeError::Unacceptable { role, .. } => {
                let code = match role {
                    TokenRole::Assertion => C::InvalidGrant,
                    TokenRole::Subject | TokenRole::Actor => C::InvalidRequest,
                };
                Self::new(code, bad, description)
            }
            ExchangeError::InvalidTarget(_) => Self::new(C::InvalidTarget, bad, description),
            ExchangeError::InvalidScope(_) => Self::new(C::InvalidScope, bad, description),
            // The foreign issuer is down, not the caller wrong: say so and when to retry.
            ExchangeError::IssuerUnavailable { .. } => Self {
                retry_after: Some(5),
                ..Self::new(
                    C::TemporarilyUnavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    description,
                )
            },
            ExchangeError::AuditUnavailable => Self {
                retry_after: Some(1),
                ..Self::new(
                    C::TemporarilyUnavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the broker cannot record exchanges right now",
                )
            },
            ExchangeError::Internal(_) => Self::new(
                C::ServerError,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ),
        }
    }
}
