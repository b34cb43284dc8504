//! Unverified parsing of a compact JWS and the claim checks (SPEC §4.1, JWTs).
//!
//! Rule: nothing parsed here is trusted. The header only names an algorithm that must then
//! be in the issuer's allow-list, and the payload's `iss` only selects the registry entry;
//! claims are checked after the signature verifies, against the injected clock.

use std::cell::Cell;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use std::sync::Arc;

use super::{Act, MayAct, VerifiedSubject, VerifyError};
use crate::trust::{IssuerEntry, TokenType};

/// SPEC §4.1 limits: any token 48 KiB, checked before anything else.
pub const MAX_TOKEN_BYTES: usize = 48 * 1024;
/// Deepest JSON nesting accepted in a header or payload (real tokens stay below 5;
/// Entra's `_claim_sources` is 3).
pub const MAX_JSON_DEPTH: usize = 16;
/// Largest NumericDate accepted: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// RFC 7515 §2 base64url without padding; trailing bits must be zero, `=` refused.
pub(crate) const B64URL_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The JOSE header members tessera looks at. Everything else is ignored; in particular
/// `jku`, `x5u`, `jwk` and `x5c` are never used (SPEC §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<crate::protocol::Kid>,
    pub x5t: Option<String>,
}

/// A compact JWS split and parsed, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedJwt<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    /// The third part, still base64url.
    pub signature: &'a str,
    pub header: JoseHeader,
    pub claims: Map<String, Value>,
}

/// Splits and parses a compact JWS (SPEC §4.1): size cap, 3 parts (5 = JWE, refused),
/// strict base64url, header and payload JSON objects with duplicate members refused and
/// nesting bounded; `crit` and nested JWTs refused. No key, no clock, no registry here.
/// Whether `token` has the shape of a compact JWS or JWE (dot-separated parts whose
/// first decodes to a JSON object): what selects the JWT path for an access token.
pub fn looks_like_jws(token: &str) -> bool {
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    B64URL_STRICT
        .decode(header)
        .is_ok_and(|h| h.first() == Some(&b'{'))
}

pub fn parse_unverified(token: &str) -> Result<UnverifiedJwt<'_>, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::TooLarge {
            limit: MAX_TOKEN_BYTES,
        });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed("not a compact JWS"));
    };
    match parts.count() {
        0 => {}
        // RFC 7516 §7.1: five parts is a JWE compact serialization.
        2 => return Err(VerifyError::UnsupportedJose("encrypted JWT (JWE)")),
        _ => return Err(VerifyError::Malformed("not a compact JWS")),
    }
    if h.is_empty() || p.is_empty() {
        return Err(VerifyError::Malformed("empty JWS part"));
    }
    let header_bytes = B64URL_STRICT
        .decode(h)
        .map_err(|_| VerifyError::Malformed("header is not base64url"))?;
    let header_obj = parse_object(&header_bytes, "header")?;
    let header = parse_header(&header_obj)?;
    let payload_bytes = B64URL_STRICT
        .decode(p)
        .map_err(|_| VerifyError::Malformed("payload is not base64url"))?;
    let claims = parse_object(&payload_bytes, "payload")?;
    Ok(UnverifiedJwt {
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
        header,
        claims,
    })
}

fn opt_str(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, VerifyError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VerifyError::Malformed("header member has the wrong type")),
    }
}

fn parse_header(obj: &Map<String, Value>) -> Result<JoseHeader, VerifyError> {
    // RFC 7515 §4.1.11: tessera understands no extension, so any `crit` is refused.
    if obj.contains_key("crit") {
        return Err(VerifyError::UnsupportedJose("crit header"));
    }
    // RFC 7516: `enc` only appears in JWE headers.
    if obj.contains_key("enc") {
        return Err(VerifyError::UnsupportedJose("encrypted JWT (JWE)"));
    }
    // RFC 7519 §5.2: `cty: JWT` marks a nested JWT; SPEC §4.1 refuses them.
    if let Some(cty) = opt_str(obj, "cty")? {
        let cty = strip_application(&cty);
        if cty.eq_ignore_ascii_case("jwt") {
            return Err(VerifyError::UnsupportedJose("nested JWT (cty: JWT)"));
        }
    }
    let alg = opt_str(obj, "alg")?.ok_or(VerifyError::Malformed("header has no alg"))?;
    Ok(JoseHeader {
        alg,
        typ: opt_str(obj, "typ")?,
        kid: opt_str(obj, "kid")?.map(crate::protocol::Kid::from),
        x5t: opt_str(obj, "x5t")?,
    })
}

/// RFC 7515 §4.1.9: `application/` may be omitted from a media type in `typ`/`cty`.
fn strip_application(s: &str) -> &str {
    match s.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &s[12..],
        _ => s,
    }
}

/// SPEC §4.1 `typ` table (case-insensitive, `application/` prefix allowed):
/// `id_token`: absent or `JWT`, every `*+jwt` profile refused; `access_token`: `at+jwt`
/// required unless `require_access_token_typ = false` (then absent/`JWT`/`at+jwt`);
/// `jwt`: absent, `JWT` or `at+jwt`.
pub fn check_typ(
    typ: Option<&str>,
    token_type: TokenType,
    require_access_token_typ: bool,
) -> Result<(), VerifyError> {
    let t = typ.map(strip_application);
    let is = |want: &str| t.is_some_and(|t| t.eq_ignore_ascii_case(want));
    let ok = match token_type {
        TokenType::IdToken => t.is_none() || is("jwt"),
        TokenType::AccessToken if require_access_token_typ => is("at+jwt"),
        TokenType::AccessToken | TokenType::Jwt => t.is_none() || is("jwt") || is("at+jwt"),
        TokenType::Saml2 | TokenType::RefreshToken => false,
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::WrongTyp {
            typ: typ.map(super::error::sanitize_label),
            token_type: token_type.label(),
        })
    }
}

/// What the claim checks need from the issuer entry and the caller's expectation.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    pub issuer: &'a str,
    pub issuer_id: &'a str,
    pub audiences: &'a [String],
    pub token_type: TokenType,
    /// Seconds of clock skew allowed (issuer `clock_skew`).
    pub skew: i64,
    pub max_age: Option<u64>,
    pub now: i64,
}

/// The checked times of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedTimes {
    pub exp: i64,
    pub iat: Option<i64>,
}

/// SPEC §4.1 claim checks, in order: `iss` exact; `aud`; `exp` required; `nbf` when
/// present; `iat` (required for ID tokens, not in the future beyond skew); `max_age`.
pub fn check_claims(
    claims: &Map<String, Value>,
    rules: &ClaimRules<'_>,
) -> Result<CheckedTimes, VerifyError> {
    // OIDC Core §3.1.3.7 step 2 / RFC 7519 §4.1.1: iss exactly the registered issuer.
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == rules.issuer => {}
        Some(_) => {
            return Err(VerifyError::WrongIssuer {
                issuer: rules.issuer_id.to_owned(),
            })
        }
        None => return Err(VerifyError::MissingClaim("iss")),
    }
    check_audience(claims.get("aud"), rules)?;
    // RFC 7519 §4.1.2: sub is a StringOrURI. A number is refused, not stringified: two
    // IdP users 7 and "7" must never map to one subject.
    if claims.get("sub").is_some_and(|s| !s.is_string()) {
        return Err(VerifyError::MalformedClaim {
            claim: "sub",
            expected: "a string (RFC 7519 StringOrURI)",
        });
    }

    let now = rules.now;
    let skew = rules.skew;
    // RFC 7519 §4.1.4: now must be before exp (plus skew).
    let exp = numeric_date(claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(skew) {
        return Err(VerifyError::Expired { exp, now });
    }
    // RFC 7519 §4.1.5: not before nbf (minus skew).
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now.saturating_add(skew) < nbf {
            return Err(VerifyError::NotYetValid { nbf, now });
        }
    }
    // OIDC Core §2: iat is required in ID tokens; never accept it in the future.
    let iat = numeric_date(claims, "iat")?;
    if iat.is_none() && rules.token_type == TokenType::IdToken {
        return Err(VerifyError::MissingClaim("iat"));
    }
    if let Some(iat) = iat {
        if iat > now.saturating_add(skew) {
            return Err(VerifyError::IssuedInFuture { iat, now });
        }
    }
    // SPEC §2.1: max_age counts from iat.
    if let Some(max_age) = rules.max_age {
        let iat = iat.ok_or(VerifyError::MissingClaim("iat"))?;
        let limit = i64::try_from(max_age)
            .unwrap_or(i64::MAX)
            .saturating_add(skew);
        if now.saturating_sub(iat) > limit {
            return Err(VerifyError::TooOld {
                iat,
                max_age_secs: max_age,
            });
        }
    }
    Ok(CheckedTimes { exp, iat })
}

/// Longest `jti` remembered (single-use issuers, client assertions).
const MAX_JTI_CHARS: usize = 256;

/// The `jti` a single-use check remembers: `None` when absent; a non-string, empty or
/// over-long one is malformed (it is stored, so its size is bounded).
pub fn jti(claims: &Map<String, Value>) -> Result<Option<String>, VerifyError> {
    match claims.get("jti") {
        None => Ok(None),
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_JTI_CHARS => Ok(Some(j.clone())),
        Some(_) => Err(VerifyError::MalformedClaim {
            claim: "jti",
            expected: "a non-empty string of at most 256 characters",
        }),
    }
}

/// The kind-neutral view of a verified JWT: its claims as the CEL `assertion`, and the
/// members the pipeline needs as types (`aud`, `act`, `may_act`, `scope`).
pub fn into_subject(
    issuer: Arc<IssuerEntry>,
    token_type: TokenType,
    claims: Map<String, Value>,
    times: CheckedTimes,
) -> Result<VerifiedSubject, VerifyError> {
    let audiences = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let act = claims.get("act").map(Act::from_claim).transpose()?;
    let may_act = claims.get("may_act").map(MayAct::from_claim).transpose()?;
    // RFC 9068 §2.2.3 / RFC 8693 §4.2: a space-separated string. Foreign tokens' scopes
    // do not narrow what is issued, so another shape is not held against them.
    let scopes = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(crate::protocol::ScopeSet::lenient);
    // SPEC §4.1 replay: an issuer marked `one_time_use` has each token accepted once, by
    // its `jti`, remembered until the token could no longer pass (exp + skew).
    let replay = if issuer.one_time_use {
        let id = jti(&claims)?.ok_or(VerifyError::MalformedClaim {
            claim: "jti",
            expected: "present: this issuer's tokens are single-use (one_time_use)",
        })?;
        Some(super::ReplayKey {
            issuer: issuer.id.to_string(),
            id: id.into(),
            expires_at: times.exp.saturating_add(super::secs(issuer.clock_skew)),
        })
    } else {
        None
    };
    Ok(VerifiedSubject {
        issuer,
        token_type,
        assertion: claims,
        audiences,
        expires_at: times.exp,
        issued_at: times.iat,
        act,
        may_act,
        scopes,
        replay,
        local: None,
        evidence: super::Evidence::default(),
    })
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3). An ID token listing any
/// audience outside the accepted set is refused (OIDC Core §3.1.3.7 step 3); other
/// tokens need at least one accepted audience.
fn check_audience(aud: Option<&Value>, rules: &ClaimRules<'_>) -> Result<(), VerifyError> {
    let accepted = |a: &str| rules.audiences.iter().any(|x| x == a);
    let all_must_match = rules.token_type == TokenType::IdToken;
    let wrong = || VerifyError::WrongAudience {
        aud: match aud {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        },
        accepted: rules.audiences.to_vec(),
    };
    let ok = match aud {
        None => return Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(a)) => accepted(a),
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return Err(wrong());
            }
            let mut any = false;
            let mut all = true;
            for v in list {
                let Value::String(a) = v else {
                    return Err(VerifyError::Malformed(
                        "aud is not a string or string array",
                    ));
                };
                let hit = accepted(a);
                any |= hit;
                all &= hit;
            }
            if all_must_match {
                all
            } else {
                any
            }
        }
        Some(_) => {
            return Err(VerifyError::Malformed(
                "aud is not a string or string array",
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// RFC 7519 §2 NumericDate: a finite JSON number (fractions truncated), within
/// 0..=9999-12-31. Strings, negatives and out-of-range values are refused.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, VerifyError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(VerifyError::BadNumericDate(name));
    };
    let secs = if let Some(i) = n.as_i64() {
        i
    } else if let Some(f) = n.as_f64() {
        if !f.is_finite() || f < 0.0 || f > MAX_NUMERIC_DATE as f64 {
            return Err(VerifyError::BadNumericDate(name));
        }
        #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
        let t = f.trunc() as i64;
        t
    } else {
        return Err(VerifyError::BadNumericDate(name));
    };
    if !(0..=MAX_NUMERIC_DATE).contains(&secs) {
        return Err(VerifyError::BadNumericDate(name));
    }
    Ok(Some(secs))
}

/// Why strict parsing failed, carried out of serde's error type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    None,
    Duplicate,
    TooDeep,
}

/// Parses a JSON object, refusing duplicate member names at any depth and nesting
/// deeper than [`MAX_JSON_DEPTH`] (RFC 7515 §4 / RFC 7519 §4: duplicates MUST be
/// rejected or last-wins; SPEC §4.1 rejects).
pub fn parse_object(bytes: &[u8], part: &'static str) -> Result<Map<String, Value>, VerifyError> {
    let failure = Cell::new(Failure::None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = StrictSeed {
        depth: 0,
        failure: &failure,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, failure.get()) {
        (Ok(Value::Object(map)), _) => Ok(map),
        (Ok(_), _) => Err(VerifyError::Malformed(if part == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
        (Err(_), Failure::Duplicate) => Err(VerifyError::DuplicateMember { part }),
        (Err(_), Failure::TooDeep) => Err(VerifyError::Malformed("JSON nested too deeply")),
        (Err(_), Failure::None) => Err(VerifyError::Malformed(if part == "header" {
            "header is not JSON"
        } else {
            "payload is not JSON"
        })),
    }
}

#[derive(Clone, Copy)]
struct StrictSeed<'f> {
    depth: usize,
    failure: &'f Cell<Failure>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl StrictSeed<'_> {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            self.failure.set(Failure::TooDeep);
            return Err(E::custom("nested too deeply"));
        }
        Ok(Self {
            depth: self.depth + 1,
            failure: self.failure,
        })
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                self.failure.set(Failure::Duplicate);
                return Err(de::Error::custom("duplicate member"));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64URL_STRICT.encode(s)
    }

    fn token(h: &str, p: &str) -> String {
        format!("{}.{}.c2ln", b64(h), b64(p))
    }

    #[test]
    fn parses_a_plain_jws() {
        let t = token(
            r#"{"alg":"RS256","typ":"JWT","kid":"k1","x5t":"t","jku":"https://evil"}"#,
            r#"{"iss":"https://i","n":{"a":[1,2,{"b":null}]}}"#,
        );
        let u = parse_unverified(&t).unwrap();
        assert_eq!(u.header.alg, "RS256");
        assert_eq!(u.header.kid.as_deref(), Some("k1"));
        assert_eq!(u.header.x5t.as_deref(), Some("t"));
        assert_eq!(u.signature, "c2ln");
        assert_eq!(u.claims["iss"], "https://i");
        assert!(t.starts_with(u.signing_input));
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth() {
        for (h, p, part) in [
            (r#"{"alg":"RS256","alg":"none"}"#, "{}", "header"),
            (r#"{"alg":"RS256"}"#, r#"{"sub":"a","sub":"b"}"#, "payload"),
            (r#"{"alg":"RS256"}"#, r#"{"x":{"y":1,"y":2}}"#, "payload"),
            (r#"{"alg":"RS256"}"#, r#"{"x":[{"y":1,"y":2}]}"#, "payload"),
        ] {
            assert_eq!(
                parse_unverified(&token(h, p)).unwrap_err(),
                VerifyError::DuplicateMember { part },
                "{h} {p}"
            );
        }
    }

    #[test]
    fn refuses_jwe_crit_nested_and_garbage() {
        let hdr = r#"{"alg":"RS256"}"#;
        assert!(matches!(
            parse_unverified("a.b.c.d.e"),
            Err(VerifyError::UnsupportedJose(_))
        ));
        for h in [
            r#"{"alg":"RS256","crit":["exp"]}"#,
            r#"{"alg":"RS256","cty":"JWT"}"#,
            r#"{"alg":"RS256","cty":"application/jwt"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#,
        ] {
            assert!(
                matches!(
                    parse_unverified(&token(h, "{}")),
                    Err(VerifyError::UnsupportedJose(_))
                ),
                "{h}"
            );
        }
        for bad in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{}=.{}.c", b64(hdr), b64("{}")),
            format!("{}.{}.c", b64(hdr), "e30+"),
            token("[1]", "{}"),
            token(hdr, "[]"),
            token(hdr, "{} x"),
            token(r#"{"typ":"JWT"}"#, "{}"),
            token(r#"{"alg":1}"#, "{}"),
            format!(".{}.c", b64("{}")),
        ] {
            assert!(
                matches!(parse_unverified(&bad), Err(VerifyError::Malformed(_))),
                "{bad}"
            );
        }
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            parse_unverified(&big),
            Err(VerifyError::TooLarge { .. })
        ));
    }

    #[test]
    fn bounds_nesting_depth() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            parse_unverified(&token(r#"{"alg":"RS256"}"#, &deep)).unwrap_err(),
            VerifyError::Malformed("JSON nested too deeply")
        );
    }

    #[test]
    fn typ_table() {
        use TokenType::*;
        let cases: &[(Option<&str>, TokenType, bool, bool)] = &[
            (None, IdToken, true, true),
            (Some("JWT"), IdToken, true, true),
            (Some("jwt"), IdToken, true, true),
            (Some("application/JWT"), IdToken, true, true),
            (Some("at+jwt"), IdToken, true, false),
            (Some("logout+jwt"), IdToken, true, false),
            (Some("secevent+jwt"), IdToken, true, false),
            (Some("JOSE"), IdToken, true, false),
            (Some("at+jwt"), AccessToken, true, true),
            (Some("application/AT+JWT"), AccessToken, true, true),
            (Some("JWT"), AccessToken, true, false),
            (None, AccessToken, true, false),
            (Some("JWT"), AccessToken, false, true),
            (None, AccessToken, false, true),
            (Some("logout+jwt"), AccessToken, false, false),
            (None, Jwt, true, true),
            (Some("JWT"), Jwt, true, true),
            (Some("at+jwt"), Jwt, true, true),
            (Some("logout+jwt"), Jwt, true, false),
        ];
        for &(typ, tt, strict, ok) in cases {
            assert_eq!(
                check_typ(typ, tt, strict).is_ok(),
                ok,
                "{typ:?} {tt:?} {strict}"
            );
        }
    }

    fn rules(tt: TokenType) -> ClaimRules<'static> {
        static AUD: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        ClaimRules {
            issuer: "https://i",
            issuer_id: "i",
            audiences: AUD.get_or_init(|| vec!["a".into(), "b".into()]),
            token_type: tt,
            skew: 60,
            max_age: None,
            now: 1_000_000,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn claim_checks() {
        use serde_json::json;
        let r = rules(TokenType::IdToken);
        let base = json!({"iss":"https://i","aud":"a","exp":1_000_100,"iat":999_900});
        assert!(check_claims(&claims(base.clone()), &r).is_ok());
        let with = |k: &str, v: Value| {
            let mut m = claims(base.clone());
            m.insert(k.into(), v);
            check_claims(&m, &r)
        };
        assert!(matches!(
            with("iss", json!("https://j")),
            Err(VerifyError::WrongIssuer { .. })
        ));
        assert!(matches!(
            with("aud", json!(["a", "c"])),
            Err(VerifyError::WrongAudience { aud, .. }) if aud == ["a", "c"]
        ));
        assert!(with("aud", json!(["a", "b"])).is_ok());
        assert!(matches!(
            with("aud", json!([])),
            Err(VerifyError::WrongAudience { .. })
        ));
        assert!(matches!(
            with("exp", json!(999_940)),
            Err(VerifyError::Expired { .. })
        ));
        assert!(with("exp", json!(999_941)).is_ok());
        assert!(matches!(
            with("nbf", json!(1_000_061)),
            Err(VerifyError::NotYetValid { .. })
        ));
        assert!(with("nbf", json!(1_000_060)).is_ok());
        assert!(matches!(
            with("iat", json!(1_000_061)),
            Err(VerifyError::IssuedInFuture { .. })
        ));
        assert_eq!(
            with("exp", json!("1000100")),
            Err(VerifyError::BadNumericDate("exp"))
        );
        assert_eq!(
            with("exp", json!(-1)),
            Err(VerifyError::BadNumericDate("exp"))
        );
        assert_eq!(
            with("exp", json!(1e300)),
            Err(VerifyError::BadNumericDate("exp"))
        );
        assert!(with("exp", json!(1_000_100.5)).is_ok());
        let mut no_iat = claims(base.clone());
        no_iat.remove("iat");
        assert_eq!(
            check_claims(&no_iat, &r),
            Err(VerifyError::MissingClaim("iat"))
        );
        assert!(check_claims(&no_iat, &rules(TokenType::AccessToken)).is_ok());
        let mut at = rules(TokenType::AccessToken);
        let mut m = claims(base.clone());
        m.insert("aud".into(), json!(["a", "c"]));
        assert!(check_claims(&m, &at).is_ok());
        at.max_age = Some(30);
        assert!(matches!(
            check_claims(&m, &at),
            Err(VerifyError::TooOld { .. })
        ));
    }
}
