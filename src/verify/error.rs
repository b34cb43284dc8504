//! `VerifyError`: which check refused a presented token. Every variant carries structured
//! data, and its `Display` text is safe to show a caller: it never contains the token,
//! key material or anything the token said beyond a short, sanitised `alg`/`typ` label.

/// A failed verification. `reason()` is the stable `tessera_rejections_total{reason}` label;
/// `is_issuer_unavailable()` tells issuer-side failures (answer 503) from bad tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// JWE, nested JWTs (`cty: JWT`) and `crit` headers (SPEC §4.1).
    #[error("unsupported JOSE feature: {0}")]
    UnsupportedJose(&'static str),
    #[error("duplicate JSON member in the token {part}")]
    DuplicateMember { part: &'static str },
    /// `iss` is the token's own (the caller sent it, so it may be quoted back); `near`
    /// a registered issuer it nearly is (trailing slash, case), for the operator only.
    #[error(
        "token issuer `{}` is not a registered issuer",
        crate::telemetry::echo(iss)
    )]
    UnknownIssuer { iss: String, near: Option<String> },
    #[error("tokens from issuer {issuer} are not accepted from this client")]
    IssuerNotAllowed { issuer: crate::protocol::IssuerId },
    /// `issuer: None`: no introspection issuer the caller may use lists the type (a
    /// refresh token has no `iss` to select an entry by, and only introspection issuers
    /// verify it).
    #[error("{}", not_accepted_message(issuer.as_ref(), token_type))]
    TokenTypeNotAccepted {
        issuer: Option<crate::protocol::IssuerId>,
        token_type: &'static str,
    },
    #[error("token iss does not match issuer {issuer}")]
    WrongIssuer { issuer: String },
    #[error("signing algorithm {alg} is not allowed")]
    AlgorithmNotAllowed { alg: String },
    #[error("signing algorithm {alg} does not fit the key")]
    AlgorithmKeyMismatch { alg: String },
    #[error("{}", wrong_typ_message(typ.as_deref(), token_type))]
    WrongTyp {
        typ: Option<String>,
        token_type: &'static str,
    },
    #[error(
        "token kid `{}` is not among issuer {issuer}'s keys",
        crate::telemetry::echo(kid)
    )]
    UnknownKeyId { issuer: String, kid: String },
    #[error("no key of issuer {issuer} fits the token")]
    NoMatchingKey { issuer: String },
    #[error("token signature is invalid")]
    SignatureInvalid,
    #[error("token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("token claim {claim} is not {expected}")]
    MalformedClaim {
        claim: &'static str,
        expected: &'static str,
    },
    /// RFC 8693 §4.1: the presented `act` is not a chain of actors with a `sub` each.
    #[error("{0}")]
    MalformedAct(&'static str),
    /// A SAML assertion failed one of SPEC §4.1's checks.
    #[error("{0}")]
    Saml(#[from] SamlError),
    #[error("token claim {0} is not a valid NumericDate")]
    BadNumericDate(&'static str),
    /// `aud` is the token's; `accepted` the registry's (for the operator only).
    #[error("token audience {} is not acceptable", quoted(aud))]
    WrongAudience {
        aud: Vec<String>,
        accepted: Vec<String>,
    },
    #[error("token expired")]
    Expired { exp: i64, now: i64 },
    #[error("token is not yet valid")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("token was issued in the future")]
    IssuedInFuture { iat: i64, now: i64 },
    #[error("token was issued too long ago")]
    TooOld { iat: i64, max_age_secs: u64 },
    /// The issuer's keys could not be obtained (discovery/JWKS down, no good keys left).
    #[error("issuer {issuer} is temporarily unavailable")]
    IssuerUnavailable { issuer: crate::protocol::IssuerId },
    /// RFC 7662: the issuer says the opaque token is not active (or no issuer the
    /// caller may use knows it).
    #[error("token is not active")]
    Inactive,
    /// The introspection endpoint did not answer (down, slow beyond the outbound
    /// timeout, or not an RFC 7662 answer): the token could not be checked.
    #[error("issuer {issuer} is unreachable: the token could not be introspected")]
    IssuerUnreachable { issuer: crate::protocol::IssuerId },
    /// A local failure (e.g. the HTTP client could not be built); not the caller's fault.
    #[error("internal verifier error: {0}")]
    Internal(&'static str),
}

impl VerifyError {
    /// Stable snake_case label for `tessera_rejections_total{reason}` (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedJose(_) => "unsupported_jose",
            Self::DuplicateMember { .. } => "duplicate_member",
            Self::UnknownIssuer { .. } => "unknown_issuer",
            Self::IssuerNotAllowed { .. } => "issuer_not_allowed",
            Self::TokenTypeNotAccepted { .. } => "token_type_not_accepted",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::AlgorithmNotAllowed { .. } => "alg_not_allowed",
            Self::AlgorithmKeyMismatch { .. } => "alg_key_mismatch",
            Self::WrongTyp { .. } => "wrong_typ",
            Self::UnknownKeyId { .. } => "unknown_kid",
            Self::NoMatchingKey { .. } => "no_matching_key",
            Self::SignatureInvalid => "bad_signature",
            Self::MissingClaim(_) => "missing_claim",
            Self::MalformedClaim { .. } => "malformed_claim",
            Self::MalformedAct(_) => "malformed_act",
            Self::Saml(e) => e.reason(),
            Self::BadNumericDate(_) => "bad_numeric_date",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::TooOld { .. } => "too_old",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::Inactive => "inactive",
            Self::IssuerUnreachable { .. } => "issuer_unreachable",
            Self::Internal(_) => "internal",
        }
    }

    /// What the check compared against the registry, for the operator (audit `detail`,
    /// log line; never the caller): the registry's values and a "did you mean" on a near
    /// miss (a trailing slash, letter case), the commonest misconfiguration.
    pub fn compared(&self) -> Option<String> {
        match self {
            Self::UnknownIssuer { near: Some(n), .. } => {
                Some(format!("did you mean the registered issuer `{n}`?"))
            }
            Self::UnknownIssuer { near: None, .. } => {
                Some("no registry entry has this issuer (`issuer` in trust/issuers/*.toml)".into())
            }
            Self::WrongAudience { aud, accepted } => Some(expected(aud, accepted)),
            Self::TokenTypeNotAccepted {
                issuer: None,
                token_type,
            } => Some(format!(
                "only an introspection issuer whose token_types include {token_type} verifies \
                 it (trust/issuers/*.toml); none in this client's list does"
            )),
            Self::Saml(e) => e.compared(),
            _ => None,
        }
    }

    /// True when the failure is the issuer's side (keys unobtainable), not the token's:
    /// the HTTP layer answers 503 `temporarily_unavailable` instead of blaming the caller.
    pub fn is_issuer_unavailable(&self) -> bool {
        matches!(self, Self::IssuerUnavailable { .. })
    }
}

/// Which SAML check refused an assertion (SPEC §4, §4.1). Messages name the check and
/// never echo the document's content beyond a sanitised algorithm URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    #[error("assertion is not base64 (base64url per RFC 8693, or standard base64)")]
    NotBase64,
    #[error("assertion XML refused: {0}")]
    Xml(#[from] crate::xml::XmlError),
    #[error("not a SAML 2.0 Assertion or Response")]
    NotSaml,
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is malformed")]
    Malformed(&'static str),
    #[error(
        "Conditions hold a condition tessera does not understand (SAML core 2.5.1: the \
         assertion is then Indeterminate)"
    )]
    UnknownCondition,
    #[error("the document holds {0} assertions; exactly one is required")]
    AssertionCount(usize),
    #[error("the Response status is not Success")]
    Status,
    #[error("the Response Issuer differs from the assertion's")]
    ResponseIssuer,
    #[error("the verified Issuer is not the registered issuer")]
    Issuer,
    #[error(
        "the Response Destination `{}` is not the token endpoint or an accepted recipient",
        crate::telemetry::echo(found)
    )]
    Destination {
        found: String,
        accepted: Vec<String>,
    },
    #[error("neither the assertion nor the Response is signed")]
    Unsigned,
    #[error("signature is not acceptable: {0}")]
    SignatureShape(&'static str),
    #[error("signature algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("SHA-1 signatures and digests are not allowed for this issuer (allow_sha1)")]
    Sha1,
    #[error("signature transform {0} is not allowed")]
    Transform(String),
    #[error("an ID occurs more than once in the document")]
    DuplicateId,
    #[error("signature does not verify with the issuer's signing certificates")]
    Signature,
    #[error("assertion has no AudienceRestriction (it would be addressed to anyone)")]
    NoAudienceRestriction,
    #[error(
        "an AudienceRestriction ({}) does not name this broker or an accepted audience",
        quoted(found)
    )]
    Audience {
        found: Vec<String>,
        accepted: Vec<String>,
    },
    #[error("assertion expired (Conditions NotOnOrAfter)")]
    Expired,
    #[error("assertion is not yet valid (Conditions NotBefore)")]
    NotYetValid,
    #[error("assertion IssueInstant is in the future")]
    IssuedInFuture,
    #[error("assertion IssueInstant is older than the issuer's max_age")]
    TooOld,
    #[error("assertion has no NotOnOrAfter (Conditions or bearer SubjectConfirmationData)")]
    NoExpiry,
    #[error("assertion has no bearer SubjectConfirmation")]
    NoBearer,
    #[error("no bearer SubjectConfirmationData is acceptable: {0}")]
    Confirmation(&'static str),
    #[error("the session ended (AuthnStatement SessionNotOnOrAfter)")]
    SessionEnded,
    #[error("EncryptedAssertion received but saml.decryption_key_file is not configured")]
    EncryptionNotConfigured,
    /// The cause, when the plaintext got as far as a check, is for the operator (audit
    /// row, log) only: the caller sees one message whatever failed, since telling a
    /// padding error from a parse error is the XML Encryption CBC oracle.
    #[error("EncryptedAssertion: it does not decrypt with saml.decryption_key_file to a well-formed assertion signed by the issuer")]
    Undecryptable(Option<Box<SamlError>>),
    #[error("EncryptedAssertion algorithm {0} is not allowed (RSA-OAEP key transport, AES-CBC or AES-GCM content)")]
    EncryptionAlgorithm(String),
}

impl From<crate::xmldsig::DsigError> for SamlError {
    fn from(e: crate::xmldsig::DsigError) -> Self {
        use crate::xmldsig::DsigError;
        match e {
            DsigError::Shape(s) => Self::SignatureShape(s),
            DsigError::Algorithm(a) => Self::Algorithm(a),
            DsigError::Sha1 => Self::Sha1,
            DsigError::Transform(t) => Self::Transform(t),
            DsigError::Invalid => Self::Signature,
        }
    }
}

impl SamlError {
    /// See [`VerifyError::compared`].
    pub fn compared(&self) -> Option<String> {
        match self {
            Self::Audience { found, accepted } => Some(expected(found, accepted)),
            Self::Destination { found, accepted } => {
                Some(expected(std::slice::from_ref(found), accepted))
            }
            Self::Undecryptable(Some(inner)) => inner.compared(),
            _ => None,
        }
    }

    /// What refused a decrypted assertion, withheld from the caller (see `Undecryptable`).
    pub fn withheld(&self) -> Option<&SamlError> {
        match self {
            Self::Undecryptable(cause) => cause.as_deref(),
            _ => None,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotBase64 => "not_base64",
            Self::Xml(crate::xml::XmlError::Doctype) => "doctype",
            Self::Xml(crate::xml::XmlError::TooDeep) => "too_deep",
            Self::Xml(crate::xml::XmlError::TooManyChildren) => "too_wide",
            Self::Xml(crate::xml::XmlError::TooManyNamespaces) => "too_many_namespaces",
            Self::Xml(crate::xml::XmlError::NotUtf8) => "not_utf8",
            Self::Xml(crate::xml::XmlError::NotText(_)) => "malformed",
            Self::Xml(_) => "malformed_xml",
            Self::NotSaml | Self::Missing(_) | Self::Malformed(_) => "malformed",
            Self::UnknownCondition => "unknown_condition",
            Self::AssertionCount(_) => "assertion_count",
            Self::Status => "response_status",
            Self::ResponseIssuer => "response_issuer",
            Self::Issuer => "wrong_issuer",
            Self::Destination { .. } => "wrong_destination",
            Self::Unsigned => "unsigned",
            Self::SignatureShape(_) => "signature_shape",
            Self::Algorithm(_) => "alg_not_allowed",
            Self::Sha1 => "sha1_not_allowed",
            Self::Transform(_) => "transform_not_allowed",
            Self::DuplicateId => "duplicate_id",
            Self::Signature => "bad_signature",
            Self::NoAudienceRestriction => "no_audience_restriction",
            Self::Audience { .. } => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NoExpiry => "no_expiry",
            Self::IssuedInFuture => "issued_in_future",
            Self::TooOld => "too_old",
            Self::NoBearer => "no_bearer_confirmation",
            Self::Confirmation(_) => "bad_confirmation",
            Self::SessionEnded => "session_ended",
            Self::EncryptionNotConfigured => "encryption_not_configured",
            Self::Undecryptable(_) => "decryption_failed",
            Self::EncryptionAlgorithm(_) => "encryption_alg_not_allowed",
        }
    }
}

fn not_accepted_message(issuer: Option<&crate::protocol::IssuerId>, token_type: &str) -> String {
    match issuer {
        Some(issuer) => format!("issuer {issuer} is not trusted for {token_type} tokens"),
        None => format!("no introspection issuer of this client accepts {token_type} tokens"),
    }
}

/// Plain text, not `Debug`: `Some("JWT")` in an error description reads as a Rust leak.
fn wrong_typ_message(typ: Option<&str>, token_type: &str) -> String {
    // The labels are access_token, id_token, jwt, saml2, refresh_token: a vowel means "an".
    let article = if token_type.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    match typ {
        Some(typ) => format!("token typ {typ} is not acceptable for {article} {token_type}"),
        None => format!("token has no typ, which is not acceptable for {article} {token_type}"),
    }
}

pub(crate) use crate::telemetry::sanitize_label;

/// Values a token carried, quoted for a message: each escaped and cut, at most four.
fn quoted(values: &[String]) -> String {
    let mut shown: Vec<String> = values
        .iter()
        .take(4)
        .map(|v| format!("`{}`", crate::telemetry::echo(v)))
        .collect();
    if values.len() > 4 {
        shown.push(format!("… {} more", values.len() - 4));
    }
    if shown.is_empty() {
        "(none)".to_owned()
    } else {
        shown.join(", ")
    }
}

/// "expected one of …", with a "did you mean" when a found value nearly is one.
fn expected(found: &[String], accepted: &[String]) -> String {
    let near = found
        .iter()
        .find_map(|f| near_miss(f, accepted.iter().map(String::as_str)).map(|a| (f, a)));
    let mut text = format!("accepted: {}", quoted(accepted));
    if let Some((f, a)) = near {
        text.push_str(&format!(
            "; did you mean `{a}` (the token says `{}`)?",
            crate::telemetry::echo(f)
        ));
    }
    text
}

/// A registered value that `found` nearly is: equal but for a trailing slash, letter
/// case or surrounding spaces. `None` for an exact match (not a miss) or no near one.
pub fn near_miss<'a>(found: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let f = norm(found);
    candidates.filter(|c| *c != found).find(|c| norm(c) == f)
}

#[cfg(test)]
mod tests {
    use super::VerifyError;

    #[test]
    fn wrong_typ_reads_as_plain_text() {
        let e = |typ: Option<&str>, token_type| VerifyError::WrongTyp {
            typ: typ.map(str::to_owned),
            token_type,
        };
        assert_eq!(
            e(Some("JWT"), "access_token").to_string(),
            "token typ JWT is not acceptable for an access_token"
        );
        assert_eq!(
            e(None, "access_token").to_string(),
            "token has no typ, which is not acceptable for an access_token"
        );
        assert_eq!(
            e(Some("at+jwt"), "jwt").to_string(),
            "token typ at+jwt is not acceptable for a jwt"
        );
    }
}
