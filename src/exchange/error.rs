//! What can go wrong in an exchange, as data. `http::error` maps each variant to an RFC
//! error code and status in one exhaustive match; `reason()` gives the stable label used
//! in metrics and audit rows.

use crate::verify::VerifyError;

/// Which presented token a verification error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// RFC 8693 `subject_token`.
    Subject,
    /// RFC 8693 `actor_token`.
    Actor,
    /// RFC 7523 `assertion` (bearer grant: errors are `invalid_grant`).
    Assertion,
}

impl TokenRole {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject token",
            Self::Actor => "actor token",
            Self::Assertion => "assertion",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("client authentication failed")]
    InvalidClient { reason: &'static str },
    /// A `private_key_jwt` client assertion failed a check (RFC 7523 §3): said which, as
    /// the legitimate client needs to know (expired, wrong aud, unknown kid).
    #[error("client authentication failed: client assertion: {0}")]
    ClientAssertion(VerifyError),
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    #[error("{}: {error}", role.name())]
    Token { role: TokenRole, error: VerifyError },
    #[error("{}: {message}", role.name())]
    Unacceptable {
        role: TokenRole,
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("issuer {issuer} is temporarily unavailable")]
    IssuerUnavailable { issuer: String },
    #[error("the audit log could not record the exchange")]
    AuditUnavailable,
    /// The replay cache could not be consulted: a single-use token is not accepted
    /// unless its use is recorded.
    #[error("the replay cache could not record a single-use token")]
    ReplayCacheUnavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExchangeError {
    /// Stable snake_case label: `tessera_rejections_total{reason}` and the audit `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidClient { reason, .. } => reason,
            Self::ClientAssertion(_) => "client_assertion_invalid",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::Token { error, .. } => error.reason(),
            Self::Unacceptable { reason, .. } => reason,
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidScope(_) => "invalid_scope",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::AuditUnavailable => "audit_unavailable",
            Self::ReplayCacheUnavailable => "replay_cache_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The operator's account of the failure (audit `reason`, log line): the caller's
    /// message plus what was withheld from the caller (a decrypted assertion's real
    /// refusal, SamlError::Undecryptable).
    pub fn operator_text(&self) -> String {
        let withheld = match self {
            Self::Token {
                error: VerifyError::Saml(e),
                ..
            } => e.withheld(),
            _ => None,
        };
        match withheld {
            Some(cause) => format!(
                "{self} (withheld from the caller: {}: {cause})",
                cause.reason()
            ),
            None => self.to_string(),
        }
    }

    /// Failures that are ours or a foreign issuer's, not the caller's.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            Self::IssuerUnavailable { .. }
                // invalid_request to the caller (the rule), but the fault is the
                // foreign issuer's: outcome `error`.
                | Self::Token {
                    error: VerifyError::IssuerUnreachable { .. },
                    ..
                }
                | Self::AuditUnavailable
                | Self::ReplayCacheUnavailable
                | Self::Internal(_)
        )
    }
}
