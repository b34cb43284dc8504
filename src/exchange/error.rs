//! What can go wrong in an exchange, as data. `http::error` maps each variant to an RFC
//! error code and status in one exhaustive match; `reason()` gives the stable label used
//! in metrics and audit rows.

use serde::Serialize;

use crate::verify::VerifyError;

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
    /// The client asks too often (429). RFC 8628 §3.5 registered this code for token
    /// endpoint responses with exactly that meaning; `temporarily_unavailable` would say
    /// the broker is in trouble, which it is not.
    SlowDown,
    /// RFC 9449 §5.10: the DPoP proof is missing where required, invalid, or by another
    /// key than the one a presented token is bound to.
    InvalidDpopProof,
    /// The server met an unexpected condition.
    ServerError,
    /// No such endpoint (not an OAuth code; used for the JSON 404).
    NotFound,
}

impl ErrorCode {
    /// Every code a `/token` answer carries (what `trust test` cases may expect).
    pub const TOKEN_ENDPOINT: [ErrorCode; 11] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::InvalidTarget,
        Self::TemporarilyUnavailable,
        Self::SlowDown,
        Self::InvalidDpopProof,
        Self::ServerError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::SlowDown => "slow_down",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::ServerError => "server_error",
            Self::NotFound => "not_found",
        }
    }
}

/// Which presented token a verification error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// RFC 8693 `subject_token`.
    Subject,
    /// RFC 8693 `actor_token`.
    Actor,
    /// RFC 7523 `assertion` (bearer grant: errors are `invalid_grant`).
    Assertion,
    /// RFC 6749 §6 `refresh_token` (errors are `invalid_grant`).
    RefreshToken,
}

impl TokenRole {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject token",
            Self::Actor => "actor token",
            Self::Assertion => "assertion",
            Self::RefreshToken => "refresh token",
        }
    }
}

/// Why a client was not authenticated (RFC 6749 §5.2 `invalid_client`): one variant per
/// failure, so no call site can invent a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    /// No credentials where the client must send some.
    Unauthenticated,
    /// No client of the presented id (the caller sees the same answer as for a wrong
    /// secret; only the log and audit tell them apart).
    UnknownClient,
    /// A known client whose secret does not match.
    SecretMismatch,
    /// Authenticated with a method the registry does not name for this client.
    MethodMismatch,
    /// A `private_key_jwt` assertion whose `jti` was already used.
    AssertionReplayed,
    /// An `Authorization: Basic` header that does not decode.
    MalformedBasic,
    /// An `Authorization` scheme other than Basic.
    UnsupportedScheme,
}

impl ClientAuthFailure {
    /// The check's label (the audit `detail` opens with it).
    pub const fn check(self) -> &'static str {
        match self {
            Self::Unauthenticated => "client_unauthenticated",
            Self::UnknownClient => "client_unknown",
            Self::SecretMismatch => "client_secret_mismatch",
            Self::MethodMismatch => "client_auth_method_mismatch",
            Self::AssertionReplayed => "client_assertion_replayed",
            Self::MalformedBasic => "malformed_basic_credentials",
            Self::UnsupportedScheme => "unsupported_auth_scheme",
        }
    }
}

/// Why a verified token is not acceptable in this exchange: each rule the pipeline applies
/// after verification is one variant (rustls's `PeerMisbehaved` shape, without a catch-all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// SPEC §2: a client may exchange only tokens addressed to its `subject_audiences`.
    SubjectAudienceNotAllowed,
    /// The issuer's mapping refused the token (condition, or no subject).
    MappingRefused,
    /// The token, or a tessera token it descends from, was revoked.
    Revoked,
    /// A single-use token presented again.
    Replayed,
    /// A local actor token whose subject is a registered client's id.
    ActorPassesForClient,
    /// A foreign token's `act` names tessera as a link's issuer.
    ActClaimsTessera,
    /// More ancestors than a lineage may list.
    ExchangeChainTooLong,
    /// Expired within the clock skew: no lifetime left to give.
    NoLifetimeLeft,
    /// The `act` chain would exceed `tokens.max_delegation_depth`.
    DelegationTooDeep,
    /// RFC 8693 §4.4: the subject's `may_act` does not admit the actor.
    MayActRefused,
    /// A token bound to a key by a method tessera cannot check (RFC 7800 `cnf` other
    /// than RFC 9449 `jkt`).
    UnsupportedBinding,
}

impl Refused {
    /// The check's label (the audit `detail` opens with it).
    pub const fn check(self) -> &'static str {
        match self {
            Self::SubjectAudienceNotAllowed => "subject_audience_not_allowed",
            Self::MappingRefused => "mapping_refused",
            Self::Revoked => "revoked",
            Self::Replayed => "replayed",
            Self::ActorPassesForClient => "actor_passes_for_client",
            Self::ActClaimsTessera => "act_claims_tessera",
            Self::ExchangeChainTooLong => "exchange_chain_too_long",
            Self::NoLifetimeLeft => "no_lifetime_left",
            Self::DelegationTooDeep => "delegation_too_deep",
            Self::MayActRefused => "may_act_refused",
            Self::UnsupportedBinding => "unsupported_binding",
        }
    }
}

/// Why a refresh token is not issued or not redeemed (SPEC §3 `refresh_token` grant): one
/// variant per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefusal {
    #[error("this client may not obtain refresh tokens (refresh_tokens = false)")]
    NotAllowedForClient,
    #[error("the audience issues no refresh tokens (no refresh_lifetime)")]
    NotAllowedForAudience,
    #[error("refresh token is not one tessera issued, or its family has ended long ago")]
    Unknown,
    #[error("refresh token was issued to another client")]
    OtherClient,
    /// RFC 9700 §4.14.2: a spent token presented again; the family is revoked.
    #[error("refresh token was already used: its whole family is now revoked")]
    Reused,
    #[error("refresh token's family was revoked")]
    FamilyRevoked,
    #[error("refresh token's family descends from a revoked token")]
    LineageRevoked,
    #[error("refresh token's family has reached its absolute lifetime (refresh_lifetime)")]
    Expired,
    #[error("refresh token was not used within the idle limit (refresh_idle)")]
    Idle,
    #[error("refresh token's audience or client no longer allows refresh tokens")]
    NoLongerAllowed,
    #[error("refresh token's family was started from an issuer this client no longer trusts")]
    IssuerNoLongerTrusted,
}

impl RefreshRefusal {
    /// The check's label (the audit `detail` opens with it).
    pub const fn check(self) -> &'static str {
        match self {
            Self::NotAllowedForClient => "refresh_not_allowed_for_client",
            Self::NotAllowedForAudience => "refresh_not_allowed_for_audience",
            Self::Unknown => "refresh_token_unknown",
            Self::OtherClient => "refresh_token_other_client",
            Self::Reused => "refresh_token_reused",
            Self::FamilyRevoked => "refresh_family_revoked",
            Self::LineageRevoked => "refresh_lineage_revoked",
            Self::Expired => "refresh_family_expired",
            Self::Idle => "refresh_family_idle",
            Self::NoLongerAllowed => "refresh_no_longer_allowed",
            Self::IssuerNoLongerTrusted => "refresh_issuer_no_longer_trusted",
        }
    }
}

/// Whose fault a failed exchange is ([`ExchangeError::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request or what it presented: the audit outcome is `refused`.
    Caller,
    /// A foreign issuer that could not be reached or answered wrongly: outcome `error`.
    Issuer,
    /// tessera itself (its database, its keys, a bug): outcome `error`.
    Broker,
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
    InvalidClient(ClientAuthFailure),
    /// A `private_key_jwt` client assertion failed a check (RFC 7523 §3): said which, as
    /// the legitimate client needs to know (expired, wrong aud, unknown kid).
    #[error("client authentication failed: client assertion: {0}")]
    ClientAssertion(VerifyError),
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    /// The authenticated client is over its request rate; nothing else was looked at.
    #[error(
        "client {client} is over its rate limit of {}; retry in {} s",
        limited.rate,
        limited.retry_after_secs()
    )]
    RateLimited {
        client: crate::protocol::ClientId,
        limited: crate::limits::Limited,
    },
    #[error("{}: {error}", role.name())]
    Token { role: TokenRole, error: VerifyError },
    #[error("{}: {message}", role.name())]
    Unacceptable {
        role: TokenRole,
        refused: Refused,
        message: String,
    },
    #[error("{0}")]
    Refresh(RefreshRefusal),
    /// RFC 9449 §4.3: the DPoP proof, or its absence where one is required.
    #[error("{0}")]
    Dpop(crate::verify::dpop::DpopError),
    /// The refresh token tables could not be read or written.
    #[error("the refresh token store is unavailable: {0}")]
    RefreshStoreUnavailable(#[source] crate::store::StoreError),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("issuer {issuer} is temporarily unavailable")]
    IssuerUnavailable { issuer: crate::protocol::IssuerId },
    #[error("the audit log could not record the exchange")]
    AuditUnavailable,
    /// The replay cache could not be consulted: a single-use token is not accepted
    /// unless its use is recorded.
    #[error("the replay cache could not record a single-use token")]
    ReplayCacheUnavailable,
    /// The issued token could not be signed: the cause is kept for the log.
    #[error("the token could not be signed: {0}")]
    Signing(#[source] crate::issue::IssueError),
    /// This replica has not read the signing key state for longer than the publish guard
    /// and does not sign (SPEC §6): 503 until the database answers again.
    #[error("the token was not signed: {0}")]
    KeysUnavailable(#[source] crate::issue::IssueError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExchangeError {
    /// A signing failure: ours (500), or the key state out of reach (503).
    pub fn from_signing(e: crate::issue::IssueError) -> Self {
        match e {
            crate::issue::IssueError::KeyStateStale { .. }
            | crate::issue::IssueError::NoKeyFor { .. } => Self::KeysUnavailable(e),
            other => Self::Signing(other),
        }
    }

    /// The failing step's name: `tessera_rejections_total{reason}` and the audit
    /// `reason` (SPEC §5).
    pub fn reason(&self) -> &'static str {
        self.step().name()
    }

    /// The finer label of the check that failed (`expired`, `unknown_kid`, ...): the audit
    /// `detail` and the log line open with it.
    pub fn check(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidClient(failure) => failure.check(),
            Self::ClientAssertion(_) => "client_assertion_invalid",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Token { error, .. } => error.reason(),
            Self::Unacceptable { refused, .. } => refused.check(),
            Self::Refresh(r) => r.check(),
            Self::Dpop(e) => e.check(),
            Self::RefreshStoreUnavailable(_) => "refresh_store_unavailable",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidScope(_) => "invalid_scope",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::AuditUnavailable => "audit_unavailable",
            Self::ReplayCacheUnavailable => "replay_cache_unavailable",
            Self::KeysUnavailable(_) => "signing_keys_unavailable",
            Self::Signing(_) | Self::Internal(_) => "internal",
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
        let mut text = match withheld {
            Some(cause) => format!(
                "{self} (withheld from the caller: {}: {cause})",
                cause.reason()
            ),
            None => self.to_string(),
        };
        // What the check compared against the registry, with a "did you mean" on a near
        // miss: the operator's side of a refusal (issue 13 point 7).
        let compared = match self {
            Self::Token { error, .. } | Self::ClientAssertion(error) => error.compared(),
            _ => None,
        };
        if let Some(c) = compared {
            text.push_str(" [");
            text.push_str(&c);
            text.push(']');
        }
        text
    }

    /// The RFC error code the caller gets: decided here once, for `/token` and for
    /// explain alike. Exhaustive on purpose: a new variant must decide its code.
    pub fn error_code(&self) -> ErrorCode {
        use ErrorCode as C;
        // The issuer's endpoint did not answer: not the caller's fault, whatever the token
        // kind (SPEC §6), as for a JWKS that cannot be fetched.
        if self.issuer_down() {
            return C::TemporarilyUnavailable;
        }
        match self {
            Self::InvalidRequest(_) | Self::BodyTooLarge { .. } | Self::UnsupportedMediaType => {
                C::InvalidRequest
            }
            Self::InvalidClient(_) | Self::ClientAssertion(_) => C::InvalidClient,
            Self::UnauthorizedClient(_) => C::UnauthorizedClient,
            Self::UnsupportedGrantType => C::UnsupportedGrantType,
            // RFC 8693 §2.2.2: an unacceptable subject/actor token is invalid_request; the
            // bearer grants (RFC 7523 §3.1) say invalid_grant.
            Self::Token { role, .. } | Self::Unacceptable { role, .. } => match role {
                TokenRole::Assertion | TokenRole::RefreshToken => C::InvalidGrant,
                TokenRole::Subject | TokenRole::Actor => C::InvalidRequest,
            },
            Self::Refresh(RefreshRefusal::NotAllowedForClient) => C::UnauthorizedClient,
            Self::Refresh(RefreshRefusal::NotAllowedForAudience) => C::InvalidTarget,
            Self::Refresh(_) => C::InvalidGrant,
            Self::Dpop(_) => C::InvalidDpopProof,
            Self::InvalidTarget(_) => C::InvalidTarget,
            Self::InvalidScope(_) => C::InvalidScope,
            Self::RateLimited { .. } => C::SlowDown,
            Self::IssuerUnavailable { .. }
            | Self::AuditUnavailable
            | Self::ReplayCacheUnavailable
            | Self::RefreshStoreUnavailable(_)
            | Self::KeysUnavailable(_) => C::TemporarilyUnavailable,
            Self::Signing(_) | Self::Internal(_) => C::ServerError,
        }
    }

    /// A foreign issuer's endpoint (keys, metadata, introspection) could not be reached.
    fn issuer_down(&self) -> bool {
        matches!(
            self,
            Self::IssuerUnavailable { .. }
                | Self::Token {
                    error: VerifyError::IssuerUnreachable { .. },
                    ..
                }
        )
    }

    /// The HTTP status of the answer: the error code's, but for the request-level 413/415.
    pub fn http_status(&self) -> u16 {
        use ErrorCode as C;
        match (self.error_code(), self) {
            (_, Self::BodyTooLarge { .. }) => 413,
            (_, Self::UnsupportedMediaType) => 415,
            (C::InvalidClient, _) => 401,
            (C::SlowDown, _) => 429,
            (C::TemporarilyUnavailable, _) => 503,
            (C::ServerError, _) => 500,
            _ => 400,
        }
    }

    /// `Retry-After` in seconds, when the caller should come back: an issuer down (5), the
    /// broker's own state briefly out of reach (1), or the client's rate (RFC 6585 §4).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            _ if self.issuer_down() => Some(5),
            Self::AuditUnavailable
            | Self::ReplayCacheUnavailable
            | Self::RefreshStoreUnavailable(_)
            | Self::KeysUnavailable(_) => Some(1),
            Self::RateLimited { limited, .. } => Some(limited.retry_after_secs()),
            _ => None,
        }
    }

    /// The `error_description` the caller gets: the failing step and what failed; our
    /// own faults are not described.
    pub fn public_description(&self) -> String {
        match self {
            Self::AuditUnavailable
            | Self::ReplayCacheUnavailable
            | Self::RefreshStoreUnavailable(_) => {
                "the broker cannot record exchanges right now".into()
            }
            Self::KeysUnavailable(_) => "issue: the broker cannot sign tokens right now".into(),
            Self::Signing(_) | Self::Internal(_) => "internal error".into(),
            _ => format!("{}: {self}", self.step()),
        }
    }

    /// Whose fault the failure is, decided here once: the audit outcome (`refused` for
    /// the caller's, `error` otherwise) and the log follow from it (pingora's
    /// `ErrorSource`). Every variant decides; no catch-all.
    pub fn fault(&self) -> Fault {
        match self {
            Self::InvalidRequest(_)
            | Self::BodyTooLarge { .. }
            | Self::UnsupportedMediaType
            | Self::InvalidClient(_)
            | Self::ClientAssertion(_)
            | Self::UnauthorizedClient(_)
            | Self::UnsupportedGrantType
            | Self::RateLimited { .. }
            | Self::Unacceptable { .. }
            | Self::Refresh(_)
            | Self::Dpop(_)
            | Self::InvalidTarget(_)
            | Self::InvalidScope(_) => Fault::Caller,
            // The foreign issuer's fault: outcome `error`, 503 to the caller.
            Self::Token {
                error: VerifyError::IssuerUnreachable { .. },
                ..
            }
            | Self::IssuerUnavailable { .. } => Fault::Issuer,
            Self::Token { .. } => Fault::Caller,
            Self::AuditUnavailable
            | Self::ReplayCacheUnavailable
            | Self::RefreshStoreUnavailable(_)
            | Self::Signing(_)
            | Self::KeysUnavailable(_)
            | Self::Internal(_) => Fault::Broker,
        }
    }
}
