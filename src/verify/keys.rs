//! Issuer verification keys: a JWKS parsed once per fetch into `DecodingKey`s, and where
//! the issuer-document cache ([`super::cache`]) gets it (SPEC §4, §6).
//!
//! Rule: a JWKS is read leniently key by key — a key with an unsupported `kty`, a
//! `use` other than `sig`, or garbled members is skipped, not fatal (real JWKS such as
//! Entra's carry odd fields) — but a set with no usable key is an error, so the last good
//! keys keep serving.

use std::sync::Arc;

use aws_lc_rs::signature::{ParsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::cache::{Fetched, Source};
use super::fetch::{FetchError, Fetcher};
use crate::clock::UnixTime;
use crate::trust::{JwsAlg, KeySource};

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// What a key is, as far as algorithm fit is concerned (SPEC §4.1: `alg` must fit the
/// key's `kty`/`crv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// `alg` ↔ key type (RFC 7518 §3.3–3.5, RFC 8037 §3.1).
pub fn alg_fits(alg: JwsAlg, kind: KeyKind) -> bool {
    use JwsAlg::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => kind == KeyKind::Rsa,
        ES256 => kind == KeyKind::EcP256,
        ES384 => kind == KeyKind::EcP384,
        EdDSA => kind == KeyKind::Ed25519,
    }
}

pub fn jwt_algorithm(alg: JwsAlg) -> Algorithm {
    match alg {
        JwsAlg::RS256 => Algorithm::RS256,
        JwsAlg::RS384 => Algorithm::RS384,
        JwsAlg::RS512 => Algorithm::RS512,
        JwsAlg::PS256 => Algorithm::PS256,
        JwsAlg::PS384 => Algorithm::PS384,
        JwsAlg::PS512 => Algorithm::PS512,
        JwsAlg::ES256 => Algorithm::ES256,
        JwsAlg::ES384 => Algorithm::ES384,
        JwsAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// One usable verification key.
pub struct VerifyKey {
    pub kid: Option<crate::protocol::Kid>,
    pub x5t: Option<String>,
    pub kind: KeyKind,
    /// The JWK's own `alg`, when it names a JWS algorithm: then only that one.
    pub alg: Option<JwsAlg>,
    pub key: DecodingKey,
    /// The key pre-parsed once per fetch for each algorithm it accepts: verifying through
    /// `jsonwebtoken::crypto::verify` rebuilds the backend key object on every call
    /// (measured 30.2 µs against 24.2 µs per RS256 verify).
    parsed: Vec<(JwsAlg, ParsedPublicKey)>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    pub fn accepts(&self, alg: JwsAlg) -> bool {
        alg_fits(alg, self.kind) && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks a JWS signature (base64url, as in the token) over `message` with `alg`,
    /// which the caller has already matched against the issuer's allow-list and `accepts`.
    pub fn verify_signature(&self, alg: JwsAlg, message: &[u8], signature_b64: &str) -> bool {
        match self.parsed.iter().find(|(a, _)| *a == alg) {
            Some((_, parsed)) => URL_SAFE_NO_PAD
                .decode(signature_b64)
                .is_ok_and(|sig| parsed.verify_sig(message, &sig).is_ok()),
            // A key aws-lc would not pre-parse still gets jsonwebtoken's own path.
            None => {
                jsonwebtoken::crypto::verify(signature_b64, message, &self.key, jwt_algorithm(alg))
                    .unwrap_or(false)
            }
        }
    }
}

fn verification_algorithm(alg: JwsAlg) -> &'static dyn VerificationAlgorithm {
    use aws_lc_rs::signature as s;
    match alg {
        JwsAlg::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        JwsAlg::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        JwsAlg::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        JwsAlg::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        JwsAlg::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        JwsAlg::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        JwsAlg::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        JwsAlg::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        JwsAlg::EdDSA => &s::ED25519,
    }
}

/// Every JWS algorithm `kind` can verify, pre-parsed from the key's public bytes (RSA:
/// PKCS#1 `RSAPublicKey` DER; EC: uncompressed point; Ed25519: the raw key).
fn preparse(kind: KeyKind, public: &[u8]) -> Vec<(JwsAlg, ParsedPublicKey)> {
    [
        JwsAlg::RS256,
        JwsAlg::RS384,
        JwsAlg::RS512,
        JwsAlg::PS256,
        JwsAlg::PS384,
        JwsAlg::PS512,
        JwsAlg::ES256,
        JwsAlg::ES384,
        JwsAlg::EdDSA,
    ]
    .into_iter()
    .filter(|a| alg_fits(*a, kind))
    .filter_map(|a| {
        ParsedPublicKey::new(verification_algorithm(a), public)
            .ok()
            .map(|p| (a, p))
    })
    .collect()
}

fn rsa_public_der(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    let n = openssl::bn::BigNum::from_slice(n).ok()?;
    let e = openssl::bn::BigNum::from_slice(e).ok()?;
    openssl::rsa::Rsa::from_public_components(n, e)
        .ok()?
        .public_key_to_der_pkcs1()
        .ok()
}

/// A parsed JWKS and when it was obtained.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<VerifyKey>,
    pub fetched_at: UnixTime,
    /// JWKs skipped as unusable (logged once per fetch).
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("JWKS is not an object with a keys array")]
    NotAJwks,
    #[error("JWKS has no usable signing key ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
}

/// Parses a JWKS (RFC 7517 §5) into decoding keys, skipping what cannot be used.
pub fn parse_jwks(jwks: &Value, fetched_at: UnixTime) -> Result<KeySet, JwksError> {
    let list = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NotAJwks)?;
    let mut keys = Vec::with_capacity(list.len());
    let mut skipped = 0;
    for jwk in list {
        match parse_jwk(jwk) {
            Some(k) => keys.push(k),
            None => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { skipped });
    }
    Ok(KeySet {
        keys,
        fetched_at,
        skipped,
    })
}

fn str_member<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// One JWK, or `None` when it is not a usable signature-verification key.
pub(crate) fn parse_jwk(jwk: &Value) -> Option<VerifyKey> {
    // RFC 7517 §4.2/4.3: a key meant for encryption is not a signing key.
    if let Some(u) = jwk.get("use") {
        if u.as_str() != Some("sig") {
            return None;
        }
    }
    // RFC 7517 §4.3: skip a key whose registered `key_ops` exclude "verify". Values
    // outside the registry (Entra's source JWKS says "signing") are not held against it.
    if let Some(ops) = jwk.get("key_ops") {
        const OTHER_OPS: [&str; 7] = [
            "sign",
            "encrypt",
            "decrypt",
            "wrapKey",
            "unwrapKey",
            "deriveKey",
            "deriveBits",
        ];
        let ops = ops.as_array()?;
        if ops
            .iter()
            .all(|o| o.as_str().is_some_and(|o| OTHER_OPS.contains(&o)))
        {
            return None;
        }
    }
    // A JWK `alg` naming something else than a supported JWS alg (Entra's source JWKS
    // says "SHA256") is ignored; a real one pins the key to that algorithm.
    let alg = str_member(jwk, "alg").and_then(JwsAlg::parse);
    if let Some(a) = str_member(jwk, "alg") {
        if a == "none" || a.starts_with("HS") {
            return None;
        }
        // RFC 7517 §4.4: an `alg` that is no JWS algorithm we know (RSA-OAEP, ECDH-ES: a
        // key for encryption) on a key that does not say `use: "sig"` is not a signing
        // key (security review I-7). Only a key that says it signs keeps a quirky alg.
        if alg.is_none() && jwk.get("use").is_none() {
            return None;
        }
    }
    let (kind, key, public) = match str_member(jwk, "kty")? {
        "RSA" => {
            let n = b64(str_member(jwk, "n")?)?;
            let e = b64(str_member(jwk, "e")?)?;
            let n_trim = n.iter().skip_while(|b| **b == 0).count();
            let e_trim = e.iter().skip_while(|b| **b == 0).count();
            if !(MIN_RSA_MODULUS_BYTES..=2048).contains(&n_trim) || !(1..=8).contains(&e_trim) {
                return None;
            }
            let public = rsa_public_der(&n, &e).unwrap_or_default();
            (
                KeyKind::Rsa,
                DecodingKey::from_rsa_raw_components(&n, &e),
                public,
            )
        }
        "EC" => {
            let (kind, len) = match str_member(jwk, "crv")? {
                "P-256" => (KeyKind::EcP256, 32),
                "P-384" => (KeyKind::EcP384, 48),
                _ => return None,
            };
            let x = str_member(jwk, "x")?;
            let y = str_member(jwk, "y")?;
            let (xb, yb) = (b64(x)?, b64(y)?);
            if xb.len() != len || yb.len() != len {
                return None;
            }
            let public = [&[0x04][..], &xb, &yb].concat();
            (kind, DecodingKey::from_ec_components(x, y).ok()?, public)
        }
        "OKP" => {
            if str_member(jwk, "crv")? != "Ed25519" {
                return None;
            }
            let x = str_member(jwk, "x")?;
            let public = b64(x)?;
            if public.len() != 32 {
                return None;
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_components(x).ok()?,
                public,
            )
        }
        _ => return None,
    };
    if alg.is_some_and(|a| !alg_fits(a, kind)) {
        return None;
    }
    Some(VerifyKey {
        kid: str_member(jwk, "kid").map(crate::protocol::Kid::from),
        x5t: str_member(jwk, "x5t").map(str::to_owned),
        kind,
        alg,
        key,
        parsed: preparse(kind, &public),
    })
}

/// Where one issuer's JWKS comes from: discovery, a `jwks_uri`, or a file read at load.
/// `issuer` is the entry's `iss`: a discovery document must name exactly this issuer.
#[derive(Debug, Clone)]
pub struct JwksSource {
    pub issuer: String,
    pub keys: CachedSource,
}

/// The key source a cache slot was built for; a registry reload that changes an issuer's
/// key source gets a fresh slot, one that keeps it keeps the cached keys.
#[derive(Debug, Clone)]
pub enum CachedSource {
    Discovery(url::Url),
    JwksUri(url::Url),
    File(Arc<Value>),
    /// tessera's own keys: read from the key ring, never through this cache.
    Local,
}

impl JwksSource {
    pub fn of(issuer: &str, source: &KeySource) -> Self {
        let keys = match source {
            KeySource::Discovery(u) => CachedSource::Discovery(u.clone()),
            KeySource::JwksUri(u) => CachedSource::JwksUri(u.clone()),
            KeySource::JwksFile { jwks, .. } => CachedSource::File(jwks.clone()),
            KeySource::Local => CachedSource::Local,
        };
        Self {
            issuer: issuer.to_owned(),
            keys,
        }
    }
}

impl Source for JwksSource {
    type Value = KeySet;

    async fn fetch(&self, fetcher: &Fetcher, now: UnixTime) -> Result<Fetched<KeySet>, FetchError> {
        let doc = match &self.keys {
            CachedSource::Discovery(url) => {
                let learnt = fetcher.discover_jwks_uri(url, &self.issuer).await?;
                fetcher.get_learnt_json(&learnt, url).await?
            }
            CachedSource::JwksUri(url) => fetcher.get_json(url).await?,
            CachedSource::File(_) | CachedSource::Local => {
                return Err(FetchError::BadJwksUri("file source"))
            }
        };
        Ok(Fetched::new(parse_jwks(&doc, now)?))
    }

    fn same_as(&self, other: &Self) -> bool {
        let same_keys = match (&self.keys, &other.keys) {
            (CachedSource::Discovery(a), CachedSource::Discovery(b)) => a == b,
            (CachedSource::JwksUri(a), CachedSource::JwksUri(b)) => a == b,
            // The loader parses the file into a fresh Arc on each reload; the slot holds
            // its Arc, so the pointer cannot be reused while we compare.
            (CachedSource::File(a), CachedSource::File(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_keys && self.issuer == other.issuer
    }

    fn describe(set: &KeySet) -> String {
        format!("keys={} skipped={}", set.keys.len(), set.skipped)
    }

    fn is_local(&self) -> bool {
        matches!(self.keys, CachedSource::File(_))
    }

    fn local(&self, now: UnixTime) -> Option<KeySet> {
        let CachedSource::File(jwks) = &self.keys else {
            return None;
        };
        match parse_jwks(jwks, now) {
            Ok(set) => Some(set),
            Err(e) => {
                // The loader refuses such files; a slot without keys refuses every token.
                tracing::error!(issuer = %self.issuer, error = %e, "jwks_file has no usable key");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(dir: &str, file: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/oidc/{dir}/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn parses_the_entra_jwks_and_skips_what_it_cannot_use() {
        let mut jwks = fixture("entra-id-v1-id-token-2014-cyrano", "jwks.json");
        let keys = jwks["keys"].as_array_mut().unwrap();
        keys.push(json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!({"kty": "oct", "k": "c2VjcmV0"}));
        keys.push(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}));
        keys.push(json!(42));
        let set = parse_jwks(&jwks, 7).unwrap();
        assert_eq!((set.keys.len(), set.skipped, set.fetched_at), (2, 4, 7));
        assert!(set
            .keys
            .iter()
            .all(|k| k.kind == KeyKind::Rsa && k.x5t.is_some()));
    }

    #[test]
    fn the_non_base64url_source_jwks_has_no_usable_key() {
        // `n` in standard base64 with padding: refused key by key, so the whole set is.
        let jwks = fixture("entra-id-v1-id-token-2014-cyrano", "jwks.source.json");
        assert!(matches!(
            parse_jwks(&jwks, 0),
            Err(JwksError::NoUsableKey { .. })
        ));
        assert_eq!(parse_jwks(&json!([]), 0).unwrap_err(), JwksError::NotAJwks);
    }

    /// Security review I-7: an encryption `alg` on a key without `use` is not a signing
    /// key; a key that says `use: "sig"` keeps an alg we do not know (Entra's "SHA256").
    #[test]
    fn a_key_with_an_encryption_alg_and_no_use_does_not_sign() {
        let jwks = fixture("entra-id-v1-id-token-2014-cyrano", "jwks.json");
        let mut key = jwks["keys"][0].clone();
        key.as_object_mut().unwrap().remove("use");
        key["alg"] = json!("RSA-OAEP");
        assert!(parse_jwk(&key).is_none());
        key["use"] = json!("sig");
        key["alg"] = json!("SHA256");
        assert!(parse_jwk(&key).is_some());
        key.as_object_mut().unwrap().remove("use");
        key["alg"] = json!("RS256");
        assert!(parse_jwk(&key).is_some(), "a JWS alg needs no use");
    }

    #[test]
    fn algorithms_fit_key_types() {
        assert!(alg_fits(JwsAlg::PS256, KeyKind::Rsa));
        assert!(!alg_fits(JwsAlg::ES256, KeyKind::Rsa));
        assert!(!alg_fits(JwsAlg::ES256, KeyKind::EcP384));
        assert!(alg_fits(JwsAlg::ES384, KeyKind::EcP384));
        assert!(alg_fits(JwsAlg::EdDSA, KeyKind::Ed25519));
    }
}
