//! RFC 9449 DPoP proofs at the token endpoint: the checks of §4.3, and the RFC 7638
//! thumbprint (`jkt`) a bound token carries in `cnf` (§6.1).
//!
//! What this module does not do: remember `jti`s. A proof's `jti` is single-use on every
//! replica (§11.1); the exchange consumes it through the shared replay cache, with the
//! other single-use ids, only once every other check has passed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwt::{parse_object, B64URL_STRICT};
use super::keys::parse_jwk;
use crate::clock::UnixTime;
use crate::trust::JwsAlg;

/// The algorithms tessera accepts in a proof, advertised as
/// `dpop_signing_alg_values_supported` (RFC 9449 §5.1): asymmetric only (§4.3 check 5).
pub const DPOP_ALGS: [JwsAlg; 5] = [
    JwsAlg::ES256,
    JwsAlg::ES384,
    JwsAlg::RS256,
    JwsAlg::PS256,
    JwsAlg::EdDSA,
];

/// Largest proof accepted: a proof carries one public key (an RSA 4096 JWK is under 1 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// How far a proof's `iat` may lie from the broker's clock (§4.3 check 11, §11.1): the
/// window its `jti` must be remembered for.
pub const IAT_WINDOW_SECS: i64 = 60;

/// Longest `jti` accepted: it is stored (hashed) for the window above.
const MAX_JTI_BYTES: usize = 256;

/// Members of a JWK that only a private key has (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof that passed every check of §4.3 but the `jti` replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key, base64url: the `cnf.jkt` binding.
    pub jkt: String,
    pub jti: String,
    pub iat: UnixTime,
    pub alg: JwsAlg,
}

/// Why a proof is refused: each §4.3 check one variant (`invalid_dpop_proof`, §5.10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("more than one DPoP header")]
    Multiple,
    #[error("the DPoP proof is larger than {MAX_PROOF_BYTES} bytes")]
    TooLarge,
    #[error("the DPoP proof is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    #[error("the DPoP proof's typ must be dpop+jwt")]
    Typ,
    #[error("the DPoP proof's alg `{0}` is not one of the advertised asymmetric algorithms")]
    Alg(String),
    #[error("the DPoP proof's jwk is missing or not a usable public key for its alg")]
    Jwk,
    #[error("the DPoP proof's jwk contains a private key")]
    PrivateKey,
    #[error("the DPoP proof's signature does not verify with its jwk")]
    Signature,
    #[error("the DPoP proof's htm must be POST")]
    Htm,
    #[error("the DPoP proof's htu does not name the token endpoint")]
    Htu,
    #[error("the DPoP proof's iat is {0} s from the server's time (at most {IAT_WINDOW_SECS} s)")]
    Iat(i64),
    #[error("the DPoP proof's {0} claim is missing or malformed")]
    Claim(&'static str),
    #[error("the DPoP proof was already used (jti)")]
    Replayed,
    #[error("a DPoP proof is required: {0}")]
    Required(&'static str),
    #[error("the DPoP proof is signed by another key than the one the {0} is bound to")]
    KeyMismatch(&'static str),
}

impl DpopError {
    /// The check's label (audit `detail`, explain).
    pub const fn check(&self) -> &'static str {
        match self {
            Self::Multiple => "dpop_multiple_headers",
            Self::TooLarge => "dpop_too_large",
            Self::Malformed(_) => "dpop_malformed",
            Self::Typ => "dpop_typ",
            Self::Alg(_) => "dpop_alg",
            Self::Jwk => "dpop_jwk",
            Self::PrivateKey => "dpop_private_key",
            Self::Signature => "dpop_signature",
            Self::Htm => "dpop_htm",
            Self::Htu => "dpop_htu",
            Self::Iat(_) => "dpop_iat",
            Self::Claim(_) => "dpop_claim",
            Self::Replayed => "dpop_replayed",
            Self::Required(_) => "dpop_required",
            Self::KeyMismatch(_) => "dpop_key_mismatch",
        }
    }
}

/// The §4.3 checks, in order, for a proof sent to `token_endpoint` with `POST` at `now`.
pub fn check_proof(
    proof: &str,
    token_endpoint: &str,
    now: UnixTime,
) -> Result<DpopProof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::TooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed("not a compact JWS"));
    };
    let decode = |part: &str, name| {
        let bytes = B64URL_STRICT
            .decode(part)
            .map_err(|_| DpopError::Malformed("a part is not base64url"))?;
        parse_object(&bytes, name).map_err(|_| DpopError::Malformed("a part is not a JSON object"))
    };
    let header = decode(h, "header")?;
    let claims = decode(p, "payload")?;
    // Check 4: typ dpop+jwt (RFC 7515 §4.1.9: a media type, compared without case, and
    // `application/` may be omitted).
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    let typ = typ
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..]);
    if !typ.eq_ignore_ascii_case("dpop+jwt") {
        return Err(DpopError::Typ);
    }
    // Check 5: an asymmetric algorithm we advertise (`none` and HS* are never in it).
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = JwsAlg::parse(alg_name)
        .filter(|a| DPOP_ALGS.contains(a))
        .ok_or_else(|| DpopError::Alg(crate::telemetry::echo(alg_name).into_owned()))?;
    if header.contains_key("crit") {
        return Err(DpopError::Malformed("crit header"));
    }
    // Check 7: the key is public only; check 6: the signature verifies with it.
    let jwk = header
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or(DpopError::Jwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
        return Err(DpopError::PrivateKey);
    }
    if !canonical_rsa(jwk) {
        return Err(DpopError::Jwk);
    }
    let key = parse_jwk(jwk)
        .filter(|k| k.accepts(alg))
        .ok_or(DpopError::Jwk)?;
    let signing_input = &proof[..h.len() + 1 + p.len()];
    if !key.verify_signature(alg, signing_input.as_bytes(), sig) {
        return Err(DpopError::Signature);
    }
    check_claims(&claims, token_endpoint, now)?;
    Ok(DpopProof {
        jkt: thumbprint(jwk).ok_or(DpopError::Jwk)?,
        jti: string_claim(&claims, "jti")?.to_owned(),
        iat: claims
            .get("iat")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        alg,
    })
}

/// Checks 8–11: `htm`, `htu`, `iat` window, and a `jti` present (its single use is the
/// caller's, across replicas).
fn check_claims(
    claims: &Map<String, Value>,
    token_endpoint: &str,
    now: UnixTime,
) -> Result<(), DpopError> {
    let jti = string_claim(claims, "jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::Claim("jti"));
    }
    if string_claim(claims, "htm")? != "POST" {
        return Err(DpopError::Htm);
    }
    if !same_uri(string_claim(claims, "htu")?, token_endpoint) {
        return Err(DpopError::Htu);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(DpopError::Claim("iat"))?;
    // Compared without negating: `iat` is the caller's number, and i64::MIN has no
    // absolute value.
    if iat < now.saturating_sub(IAT_WINDOW_SECS) || iat > now.saturating_add(IAT_WINDOW_SECS) {
        return Err(DpopError::Iat(iat.saturating_sub(now)));
    }
    Ok(())
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, DpopError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(DpopError::Claim(name))
}

/// §4.3 check 9: the `htu` names the token endpoint, ignoring query and fragment, after
/// RFC 3986 §6.2.2/§6.2.3 normalisation (scheme and host case, default port, which the
/// URL parser applies).
fn same_uri(htu: &str, endpoint: &str) -> bool {
    // What clients send: the endpoint as advertised. Only a differently written URL
    // (case of the host, a default port, a query) is parsed and normalised.
    if htu == endpoint {
        return true;
    }
    let strip = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    match (strip(htu), strip(endpoint)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// RFC 7518 §6.3.1: an RSA key's `n` and `e` have no leading zero octets. One that has
/// them names the same key under another thumbprint, so it is refused.
fn canonical_rsa(jwk: &Value) -> bool {
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return true;
    }
    ["n", "e"].iter().all(|m| {
        jwk.get(*m)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .is_some_and(|b| b.first().is_some_and(|first| *first != 0))
    })
}

/// RFC 7638 §3: SHA-256 over the required members, in lexicographic order, as JSON with
/// no whitespace, base64url. `None` for a key type tessera does not accept.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let required: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    // serde_json's Map keeps keys sorted (no preserve_order feature), which is exactly
    // RFC 7638's lexicographic order; the values are strings, serialised canonically.
    let mut canonical = Map::new();
    for name in required {
        canonical.insert((*name).to_owned(), Value::String(member(name)?.to_owned()));
    }
    let json = serde_json::to_vec(&Value::Object(canonical)).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "x"})), None);
    }

    #[test]
    fn htu_ignores_query_fragment_and_case_of_host() {
        let ep = "https://broker.example/token";
        assert!(same_uri("https://BROKER.example:443/token?x=1#f", ep));
        assert!(!same_uri("https://broker.example/token/", ep));
        assert!(!same_uri("https://other.example/token", ep));
        assert!(!same_uri("not a url", ep));
    }

    #[test]
    fn an_iat_at_the_ends_of_the_range_is_refused_not_panicked() {
        let claims = |iat: i64| {
            serde_json::from_value::<Map<String, Value>>(json!({
                "jti": "j", "htm": "POST", "htu": "https://b/token", "iat": iat
            }))
            .unwrap()
        };
        for iat in [i64::MIN, i64::MIN + 1000, i64::MAX, 0] {
            assert!(matches!(
                check_claims(&claims(iat), "https://b/token", 1_800_000_000),
                Err(DpopError::Iat(_))
            ));
        }
        assert!(check_claims(&claims(1_800_000_030), "https://b/token", 1_800_000_000).is_ok());
    }

    #[test]
    fn malformed_proofs_are_refused_not_panicked() {
        for p in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.e30.",
            "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.x",
        ] {
            assert!(check_proof(p, "https://b/token", 0).is_err(), "{p}");
        }
        assert_eq!(
            check_proof(&"a".repeat(MAX_PROOF_BYTES + 1), "https://b/token", 0),
            Err(DpopError::TooLarge)
        );
    }
}
