//! `tessera dev …`: mint subject tokens with a demo issuer's published private key, so a
//! newcomer can try an exchange with curl. Only issuers with `demo_signing_key_file` can
//! be used: real issuers' keys are never on this machine.

pub mod args;
pub mod dpop;
pub mod opaque;
pub mod saml;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::trust::{IssuerEntry, KeySource};
use args::IdTokenArgs;

/// The demo issuer `id` of the registry in `dir` and its published private key (PEM):
/// only entries with `demo_signing_key_file` can be used.
pub(crate) fn demo_issuer(dir: &Path, id: &str) -> anyhow::Result<(Arc<IssuerEntry>, Vec<u8>)> {
    let registry = crate::trust::load_registry(dir)
        .with_context(|| format!("loading the trust registry in {}", dir.display()))?;
    let Some(issuer) = registry.issuers.get(id) else {
        bail!("no issuer {id:?} in {}/issuers", dir.display());
    };
    let Some(key_file) = &issuer.demo_signing_key_file else {
        bail!("issuer {id:?} is not a demo issuer (it has no demo_signing_key_file)");
    };
    let pem = std::fs::read(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    Ok((issuer.clone(), pem))
}

/// Mints `args.count` tokens (subjects suffixed `-1`…`-N` when more than one).
pub fn mint_id_tokens(
    dir: &Path,
    args: &IdTokenArgs,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<String>> {
    let (issuer, pem) = demo_issuer(dir, &args.issuer)?;
    let key = JwtKey::from_pem(&pem).context("demo_signing_key_file")?;
    let kid = key.kid_in(issuer.oidc().map(|o| &o.keys));
    let now = clock.now();
    let lifetime = i64::try_from(args.lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.issuer.clone().into());
    claims.insert("sub".into(), args.sub.clone().into());
    let aud = if args.aud.is_empty() {
        issuer.audiences.first().cloned().into_iter().collect()
    } else {
        args.aud.clone()
    };
    claims.insert(
        "aud".into(),
        if aud.len() == 1 {
            Value::String(aud[0].clone())
        } else {
            aud.into()
        },
    );
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(lifetime).into());
    claims.insert("auth_time".into(), now.into());
    for (k, v) in &args.claims {
        claims.insert(k.clone(), v.clone());
    }
    (1..=args.count.max(1))
        .map(|i| {
            if args.count > 1 {
                claims.insert("sub".into(), format!("{}-{i}", args.sub).into());
            }
            key.sign(kid.clone(), &args.typ, &claims)
        })
        .collect()
}

/// A private key (PEM) that signs JWTs as a foreign issuer would: `tessera dev id-token`
/// with a demo issuer's key, `trust test` with a case's.
pub struct JwtKey {
    alg: Algorithm,
    key: EncodingKey,
    /// The JWK `kty` of its public half.
    kty: &'static str,
}

impl JwtKey {
    /// RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA).
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let pkey =
            openssl::pkey::PKey::private_key_from_pem(pem).context("not a PEM private key")?;
        let (alg, key, kty) = match pkey.id() {
            openssl::pkey::Id::RSA => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem)?, "RSA"),
            openssl::pkey::Id::EC => (Algorithm::ES256, EncodingKey::from_ec_pem(pem)?, "EC"),
            openssl::pkey::Id::ED25519 => (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem)?, "OKP"),
            other => bail!("unsupported key type {other:?} (RSA, EC P-256 or Ed25519)"),
        };
        Ok(Self { alg, key, kty })
    }

    /// The `kid` of the first key of this key's type in a JWKS file the issuer names.
    pub fn kid_in(&self, keys: Option<&KeySource>) -> Option<String> {
        match keys {
            Some(KeySource::JwksFile { jwks, .. }) => self.kid_in_jwks(jwks),
            _ => None,
        }
    }

    /// The `kid` of the first key of this key's type in `jwks`.
    pub fn kid_in_jwks(&self, jwks: &Value) -> Option<String> {
        jwks.get("keys")
            .and_then(Value::as_array)
            .and_then(|keys| {
                keys.iter()
                    .find(|k| k.get("kty").and_then(Value::as_str) == Some(self.kty))
            })
            .and_then(|k| k.get("kid"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// A compact JWS of `claims` with `kid` and `typ` in its header.
    pub fn sign(
        &self,
        kid: Option<String>,
        typ: &str,
        claims: &Map<String, Value>,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = kid;
        header.typ = Some(typ.to_owned());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }

    /// A compact JWS carrying its public key in the header (an RFC 9449 proof).
    pub fn sign_with_jwk(
        &self,
        jwk: &Value,
        typ: &str,
        claims: &Map<String, Value>,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg);
        header.typ = Some(typ.to_owned());
        header.jwk = Some(serde_json::from_value(jwk.clone()).context("the public JWK")?);
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// `tessera dev inspect`: decodes first (header and claims, unverified, so a token whose
/// key is missing can still be read), then verifies the signature against `jwks_url`.
/// The decoded parts are printed either way; a signature that cannot be verified is an
/// error after them.
pub async fn inspect(jwks_url: &str, token: &str) -> anyhow::Result<()> {
    let mut out = crate::commands::Lines::stdout();
    let header = jsonwebtoken::decode_header(token).context("not a JWT")?;
    let claims = crate::verify::jwt::parse_unverified(token)
        .map(|j| serde_json::Value::Object(j.claims))
        .map_err(|e| anyhow::anyhow!("claims do not decode: {e}"))?;
    out.line(format!(
        "header: {}",
        serde_json::to_string_pretty(&header)?
    ))?;
    out.line(format!(
        "claims (unverified): {}",
        serde_json::to_string_pretty(&claims)?
    ))?;
    let verdict = verify_against(jwks_url, token, &header).await;
    match &verdict {
        Ok(kid) => out.line(format!("signature: valid (kid {kid}, {:?})", header.alg))?,
        Err(e) => out.line(format!("signature: NOT verified: {e:#}"))?,
    };
    out.finish()?;
    verdict.map(|_| ())
}

async fn verify_against(
    jwks_url: &str,
    token: &str,
    header: &jsonwebtoken::Header,
) -> anyhow::Result<String> {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::Client::new()
        .get(jwks_url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("fetching {jwks_url}"))?
        .error_for_status()?
        .json()
        .await
        .context("JWKS is not valid JSON")?;
    let kid = header.kid.clone().context("token has no kid")?;
    let jwk = jwks
        .find(&kid)
        .with_context(|| format!("no key {kid} in {jwks_url}"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    // Only the signature is checked here: audience and times belong to the resource server.
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .context("signature does not verify")?;
    Ok(kid)
}
