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
    #[error("token issuer is not a registered issuer")]
    UnknownIssuer,
    #[error("tokens from issuer {issuer} are not accepted from this client")]
    IssuerNotAllowed { issuer: String },
    #[error("issuer {issuer} is not trusted for {token_type} tokens")]
    TokenTypeNotAccepted {
        issuer: String,
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
    #[error("token kid is not among issuer {issuer}'s keys")]
    UnknownKeyId { issuer: String },
    #[error("no key of issuer {issuer} fits the token")]
    NoMatchingKey { issuer: String },
    #[error("token signature is invalid")]
    SignatureInvalid,
    #[error("token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("token claim {0} is not a valid NumericDate")]
    BadNumericDate(&'static str),
    #[error("token audience is not acceptable")]
    WrongAudience,
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
    IssuerUnavailable { issuer: String },
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
            Self::UnknownIssuer => "unknown_issuer",
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
            Self::BadNumericDate(_) => "bad_numeric_date",
            Self::WrongAudience => "wrong_audience",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::TooOld { .. } => "too_old",
            Self::IssuerUnavailable { .. } => "issuer_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// True when the failure is the issuer's side (keys unobtainable), not the token's:
    /// the HTTP layer answers 503 `temporarily_unavailable` instead of blaming the caller.
    pub fn is_issuer_unavailable(&self) -> bool {
        matches!(self, Self::IssuerUnavailable { .. })
    }
}

/// Plain text, not `Debug`: `Some("JWT")` in an error description reads as a Rust leak.
fn wrong_typ_message(typ: Option<&str>, token_type: &str) -> String {
    // The labels are access_token, id_token, jwt, saml2: a vowel means "an".
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

/// Header text echoed in an error (`alg`, `typ`): printable ASCII only, at most 32 chars,
/// so a hostile header cannot inject into logs or error descriptions.
pub(crate) fn sanitize_label(s: &str) -> String {
    s.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
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
