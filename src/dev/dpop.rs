//! `tessera dev dpop-proof`: RFC 9449 proofs a client would send, so a DPoP-bound exchange
//! can be tried with curl (and load-tested). The key is the client's own: read from a PEM
//! file, or created there (P-256) on first use.

use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::pkey::{Id, PKey, Private};
use serde_json::{json, Map, Value};

use super::args::DpopProofArgs;
use super::JwtKey;
use crate::clock::Clock;

/// A new EC P-256 key (a client's DPoP key; `trust test` makes one per run).
pub fn ephemeral_key() -> anyhow::Result<PKey<Private>> {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?)
}

/// The client key at `path`, created (EC P-256, PKCS#8, mode 0600) when absent.
fn client_key(path: &Path) -> anyhow::Result<(PKey<Private>, Vec<u8>)> {
    if !path.exists() {
        let pkey = ephemeral_key()?;
        let pem = pkey.private_key_to_pem_pkcs8()?;
        write_private(path, &pem).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("created a new P-256 DPoP key in {}", path.display());
    }
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let pkey = PKey::private_key_from_pem(&pem)
        .with_context(|| format!("{}: not a PEM private key", path.display()))?;
    Ok((pkey, pem))
}

fn write_private(path: &Path, pem: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(pem)
}

/// The public half as a JWK (RFC 7517/7518/8037 members only).
fn public_jwk(pkey: &PKey<Private>) -> anyhow::Result<Value> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Ok(match pkey.id() {
        Id::EC => {
            let ec = pkey.ec_key()?;
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let (mut x, mut y) = (openssl::bn::BigNum::new()?, openssl::bn::BigNum::new()?);
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)?;
            json!({"kty": "EC", "crv": "P-256",
                   "x": b64(&x.to_vec_padded(32)?), "y": b64(&y.to_vec_padded(32)?)})
        }
        Id::RSA => {
            let rsa = pkey.rsa()?;
            json!({"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())})
        }
        Id::ED25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&pkey.raw_public_key()?)}),
        other => bail!("unsupported key type {other:?} (EC P-256, RSA or Ed25519)"),
    })
}

/// `args.count` proofs for `htu`, each with its own `jti`; the key's thumbprint (what
/// issued tokens carry as `cnf.jkt`) on standard error.
pub fn mint_proofs(
    args: &DpopProofArgs,
    htu: &str,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<String>> {
    let (pkey, pem) = client_key(&args.key)?;
    let jwk = public_jwk(&pkey)?;
    let signer = JwtKey::from_pem(&pem).with_context(|| args.key.display().to_string())?;
    eprintln!(
        "jkt {}",
        crate::verify::dpop::thumbprint(&jwk).unwrap_or_default()
    );
    let now = clock.now();
    (0..args.count.max(1))
        .map(|_| sign(&signer, &jwk, &args.htm, htu, now))
        .collect()
}

/// One POST proof for `htu` at `now` by `pkey`.
pub fn proof(pkey: &PKey<Private>, htu: &str, now: i64) -> anyhow::Result<String> {
    let jwk = public_jwk(pkey)?;
    let signer = JwtKey::from_pem(&pkey.private_key_to_pem_pkcs8()?)?;
    sign(&signer, &jwk, "POST", htu, now)
}

fn sign(signer: &JwtKey, jwk: &Value, htm: &str, htu: &str, now: i64) -> anyhow::Result<String> {
    let mut claims = Map::new();
    claims.insert(
        "jti".into(),
        uuid::Uuid::new_v4().simple().to_string().into(),
    );
    claims.insert("htm".into(), htm.into());
    claims.insert("htu".into(), htu.into());
    claims.insert("iat".into(), now.into());
    signer.sign_with_jwk(jwk, "dpop+jwt", &claims)
}
