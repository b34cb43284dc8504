//! The decision record (SPEC §5): every answer of `/token` is an ordered list of named
//! steps, each with a verdict and the values it compared, ending in the token to mint or
//! in the failing step. `/token`, `tessera explain`, `POST /admin/explain`, `trust test`
//! and the shadow registry all read the same record, so none of them can drift.
//!
//! The step names are one closed enum ([`Step`]): a refusal's audit `reason` and the
//! `tessera_rejections_total{reason}` label are the failing step's name; the finer check
//! (`expired`, `unknown_kid`, ...) opens the audit `detail`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::verify::{SamlError, VerifyError};

use super::error::{ClientAuthFailure, ExchangeError, Refused, TokenRole};

/// Every step an exchange can take, in pipeline order. Closed: the README lists them,
/// operators filter the audit trail by them, `trust test` cases expect them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// The HTTP request and its parameters (size, content type, repeats, missing ones).
    Request,
    /// Client authentication (RFC 6749 §2.3, RFC 7523 §3).
    Client,
    /// The authenticated client's request rate (`rate_limit`, `limits.client_rate`).
    RateLimit,
    /// The grant type and whether the client may use it.
    Grant,
    /// An RFC 9449 DPoP proof, and the binding of presented and issued tokens.
    Dpop,
    /// A tessera refresh token: issuing a family, or redeeming one (RFC 6749 §6).
    Refresh,
    /// The token's syntax and size limits (JWS compact form, base64, XML ground rules).
    TokenFormat,
    /// Which registry entry the token selects (its `iss` / Issuer) and whether the client
    /// may present tokens of that issuer and type.
    Issuer,
    /// The JOSE `typ` header (RFC 8725 §3.11, RFC 9068 §4).
    Typ,
    /// The signature algorithm against the issuer's allow-list.
    Algorithm,
    /// The verification key: `kid`/`x5t` lookup, key fetch.
    Key,
    /// The signature itself (JWS, XML-DSig).
    Signature,
    /// A SAML EncryptedAssertion.
    Decryption,
    /// Required claims and their shapes.
    Claims,
    /// The token's audience (`aud`, AudienceRestriction, Destination).
    Audience,
    /// `exp` / NotOnOrAfter.
    Expiry,
    /// `nbf` / NotBefore / `iat` in the future.
    NotBefore,
    /// `iat` / IssueInstant against `max_age`; SessionNotOnOrAfter.
    MaxAge,
    /// SAML bearer SubjectConfirmation.
    Confirmation,
    /// SAML Conditions tessera must understand.
    Conditions,
    /// RFC 7662 introspection of an opaque token.
    Introspection,
    /// The token or a tessera token it descends from was revoked.
    Revocation,
    /// The client's `subject_audiences`.
    SubjectAudience,
    /// The issuer's CEL mapping and condition.
    Mapping,
    /// The audience or resource asked for (RFC 8693 §2.1, RFC 8707).
    Target,
    /// requested ∩ client ∩ audience (∩ a local subject's) scopes.
    Scope,
    /// The issued token's lifetime and every bound on it.
    Lifetime,
    /// A local actor token's subject.
    Actor,
    /// RFC 8693 §4.4 `may_act`.
    MayAct,
    /// The `act` chain recorded (RFC 8693 §4.1) and its depth.
    Act,
    /// The tessera tokens this one descends from.
    Lineage,
    /// Single-use tokens (OneTimeUse, `one_time_use`), across replicas.
    Replay,
    /// Signing the issued token.
    Issue,
    /// The audit row that must be committed before a token leaves.
    Audit,
    /// A fault of tessera's own that no step explains.
    Internal,
}

impl Step {
    /// Every step, in pipeline order (the README's table).
    pub const ALL: [Step; 35] = [
        Step::Request,
        Step::Client,
        Step::RateLimit,
        Step::Grant,
        Step::Dpop,
        Step::Refresh,
        Step::TokenFormat,
        Step::Issuer,
        Step::Typ,
        Step::Algorithm,
        Step::Key,
        Step::Signature,
        Step::Decryption,
        Step::Claims,
        Step::Audience,
        Step::Expiry,
        Step::NotBefore,
        Step::MaxAge,
        Step::Confirmation,
        Step::Conditions,
        Step::Introspection,
        Step::Revocation,
        Step::SubjectAudience,
        Step::Mapping,
        Step::Target,
        Step::Scope,
        Step::Lifetime,
        Step::Actor,
        Step::MayAct,
        Step::Act,
        Step::Lineage,
        Step::Replay,
        Step::Issue,
        Step::Audit,
        Step::Internal,
    ];

    /// The stable name (audit `reason`, metric label, explain output, `trust test`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Client => "client",
            Self::RateLimit => "rate_limit",
            Self::Grant => "grant",
            Self::Dpop => "dpop",
            Self::Refresh => "refresh",
            Self::TokenFormat => "token_format",
            Self::Issuer => "issuer",
            Self::Typ => "typ",
            Self::Algorithm => "algorithm",
            Self::Key => "key",
            Self::Signature => "signature",
            Self::Decryption => "decryption",
            Self::Claims => "claims",
            Self::Audience => "audience",
            Self::Expiry => "expiry",
            Self::NotBefore => "not_before",
            Self::MaxAge => "max_age",
            Self::Confirmation => "confirmation",
            Self::Conditions => "conditions",
            Self::Introspection => "introspection",
            Self::Revocation => "revocation",
            Self::SubjectAudience => "subject_audience",
            Self::Mapping => "mapping",
            Self::Target => "target",
            Self::Scope => "scope",
            Self::Lifetime => "lifetime",
            Self::Actor => "actor",
            Self::MayAct => "may_act",
            Self::Act => "act",
            Self::Lineage => "lineage",
            Self::Replay => "replay",
            Self::Issue => "issue",
            Self::Audit => "audit",
            Self::Internal => "internal",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Which verification check a [`VerifyError`] is, as a step.
pub fn verify_step(e: &VerifyError) -> Step {
    use VerifyError as V;
    match e {
        V::Malformed(_)
        | V::TooLarge { .. }
        | V::UnsupportedJose(_)
        | V::DuplicateMember { .. } => Step::TokenFormat,
        V::UnknownIssuer { .. }
        | V::IssuerNotAllowed { .. }
        | V::TokenTypeNotAccepted { .. }
        | V::WrongIssuer { .. } => Step::Issuer,
        V::AlgorithmNotAllowed { .. } | V::AlgorithmKeyMismatch { .. } => Step::Algorithm,
        V::WrongTyp { .. } => Step::Typ,
        V::UnknownKeyId { .. } | V::NoMatchingKey { .. } | V::IssuerUnavailable { .. } => Step::Key,
        V::SignatureInvalid => Step::Signature,
        V::MissingClaim(_) | V::MalformedClaim { .. } | V::MalformedAct(_) => Step::Claims,
        V::BadNumericDate(_) => Step::Claims,
        V::Saml(s) => saml_step(s),
        V::WrongAudience { .. } => Step::Audience,
        V::Expired { .. } => Step::Expiry,
        V::NotYetValid { .. } | V::IssuedInFuture { .. } => Step::NotBefore,
        V::TooOld { .. } => Step::MaxAge,
        V::Inactive | V::IssuerUnreachable { .. } => Step::Introspection,
        V::Internal(_) => Step::Internal,
    }
}

fn saml_step(e: &SamlError) -> Step {
    use SamlError as S;
    match e {
        S::NotBase64 | S::Xml(_) | S::NotSaml | S::AssertionCount(_) => Step::TokenFormat,
        S::Missing(_) | S::Malformed(_) | S::Status => Step::Claims,
        S::UnknownCondition => Step::Conditions,
        S::ResponseIssuer | S::Issuer => Step::Issuer,
        S::Destination { .. } | S::NoAudienceRestriction | S::Audience { .. } => Step::Audience,
        S::Unsigned | S::SignatureShape(_) | S::DuplicateId | S::Signature => Step::Signature,
        S::Algorithm(_) | S::Sha1 | S::Transform(_) => Step::Algorithm,
        S::Expired | S::NoExpiry => Step::Expiry,
        S::NotYetValid | S::IssuedInFuture => Step::NotBefore,
        S::TooOld | S::SessionEnded => Step::MaxAge,
        S::NoBearer | S::Confirmation(_) => Step::Confirmation,
        S::EncryptionNotConfigured | S::Undecryptable(_) | S::EncryptionAlgorithm(_) => {
            Step::Decryption
        }
    }
}

impl Refused {
    /// The step whose rule this refusal is.
    pub const fn step(self) -> Step {
        match self {
            Self::SubjectAudienceNotAllowed => Step::SubjectAudience,
            Self::MappingRefused => Step::Mapping,
            Self::Revoked => Step::Revocation,
            Self::Replayed => Step::Replay,
            Self::ActorPassesForClient => Step::Actor,
            Self::ActClaimsTessera | Self::DelegationTooDeep => Step::Act,
            Self::ExchangeChainTooLong => Step::Lineage,
            Self::NoLifetimeLeft => Step::Lifetime,
            Self::MayActRefused => Step::MayAct,
            Self::UnsupportedBinding => Step::Dpop,
        }
    }
}

impl ClientAuthFailure {
    pub const fn step(self) -> Step {
        Step::Client
    }
}

impl ExchangeError {
    /// The failing step: the audit `reason` and the metric label.
    pub fn step(&self) -> Step {
        match self {
            Self::InvalidRequest(_) | Self::BodyTooLarge { .. } | Self::UnsupportedMediaType => {
                Step::Request
            }
            Self::InvalidClient(f) => f.step(),
            Self::ClientAssertion(_) => Step::Client,
            Self::UnauthorizedClient(_) | Self::UnsupportedGrantType => Step::Grant,
            Self::RateLimited { .. } => Step::RateLimit,
            Self::Token { error, .. } => verify_step(error),
            Self::Unacceptable { refused, .. } => refused.step(),
            Self::Refresh(_) | Self::RefreshStoreUnavailable(_) => Step::Refresh,
            Self::Dpop(_) => Step::Dpop,
            Self::InvalidTarget(_) => Step::Target,
            Self::InvalidScope(_) => Step::Scope,
            Self::IssuerUnavailable { .. } => Step::Key,
            Self::AuditUnavailable => Step::Audit,
            Self::ReplayCacheUnavailable => Step::Replay,
            Self::Signing(_) | Self::KeysUnavailable(_) => Step::Issue,
            Self::Internal(_) => Step::Internal,
        }
    }

    /// The token the failing step was about, if any.
    pub fn role(&self) -> Option<TokenRole> {
        match self {
            Self::Token { role, .. } | Self::Unacceptable { role, .. } => Some(*role),
            _ => None,
        }
    }
}

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

/// One step of the record: its name, which token it was about, its verdict, and what it
/// compared (claims and registry values; never token text).
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: Step,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "role_name")]
    pub token: Option<TokenRole>,
    pub verdict: Verdict,
    /// The check's own label on a failure (`expired`, `unknown_kid`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<&'static str>,
    pub summary: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
}

fn role_name<S: serde::Serializer>(role: &Option<TokenRole>, s: S) -> Result<S::Ok, S::Error> {
    match role {
        Some(r) => s.serialize_str(r.name()),
        None => s.serialize_none(),
    }
}

/// What a passing step says: a summary and the values it compared.
pub struct Detail {
    pub summary: String,
    pub values: Map<String, Value>,
}

impl Detail {
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            values: Map::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }
}

/// The ordered steps of one decision. `/token` keeps it lean (names and verdicts only:
/// no summaries are built on the hot path); explain asks for the details.
#[derive(Debug, Clone, Default)]
pub struct Record {
    detailed: bool,
    steps: Vec<StepRecord>,
    /// What the audit row learns along the way, kept on every record.
    pub facts: Facts,
}

/// The names a decision learnt (mapped subject, outermost actor, audience, scopes), for
/// the audit row even when a later step refuses.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub audience: Option<String>,
    pub scopes: Option<String>,
}

impl Record {
    /// A record that keeps each step's summary and values (explain, `trust test`).
    pub fn detailed() -> Self {
        Self {
            detailed: true,
            ..Self::default()
        }
    }

    pub fn is_detailed(&self) -> bool {
        self.detailed
    }

    /// A passed step; `detail` runs only for a detailed record.
    pub fn pass(&mut self, step: Step, token: Option<TokenRole>, detail: impl FnOnce() -> Detail) {
        if !self.detailed {
            return;
        }
        let Detail { summary, values } = detail();
        self.steps.push(StepRecord {
            step,
            token,
            verdict: Verdict::Pass,
            check: None,
            summary,
            values,
        });
    }

    /// The failing step, from the error that ends the decision.
    pub fn fail(&mut self, error: &ExchangeError) {
        if !self.detailed {
            return;
        }
        self.steps.push(StepRecord {
            step: error.step(),
            token: error.role(),
            verdict: Verdict::Fail,
            check: Some(error.check()),
            summary: error.operator_text(),
            values: Map::new(),
        });
    }

    /// Adds values to the last step (a failing step's compared values).
    pub fn annotate(&mut self, values: Map<String, Value>) {
        if let Some(last) = self.steps.last_mut() {
            last.values.extend(values);
        }
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    pub fn into_steps(self) -> Vec<StepRecord> {
        self.steps
    }
}
