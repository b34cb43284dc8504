//! Signing key material: generation (openssl) and the public JWK each key is published as.
//!
//! Rule: keys leave this module as PKCS#8 PEM (the form both `jsonwebtoken`'s
//! `EncodingKey::from_*_pem` and the hot-path signer accept) plus a public JWK whose `kid`
//! is its RFC 7638 thumbprint, so a kid names exactly one public key on every replica.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use sha2::{Digest, Sha256};

use super::{IssueError, Kid, SigningAlg};

const RSA_BITS: u32 = 2048;

/// A freshly generated key pair.
///
/// # Security Warning
/// `private_pem` is the private key in clear; encrypt it before storing when a key
/// encryption key is configured. `Debug` is redacted.
pub struct GeneratedKey {
    pub kid: Kid,
    pub private_pem: String,
    /// The public JWK (`kty`, key members, `kid`, `alg`, `use: sig`) as JSON text.
    pub public_jwk: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("private_pem", &"[redacted]")
            .finish()
    }
}

fn ossl(e: openssl::error::ErrorStack) -> IssueError {
    IssueError::Openssl(e)
}

/// Generates a new key pair for `alg`: EC P-256, RSA 2048 or Ed25519.
pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, IssueError> {
    let pkey: PKey<Private> = match alg {
        SigningAlg::ES256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ossl)?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(ossl)?).map_err(ossl)?
        }
        SigningAlg::RS256 | SigningAlg::PS256 => {
            PKey::from_rsa(Rsa::generate(RSA_BITS).map_err(ossl)?).map_err(ossl)?
        }
        SigningAlg::EdDSA => PKey::generate_ed25519().map_err(ossl)?,
    };
    let pem = pkey.private_key_to_pem_pkcs8().map_err(ossl)?;
    let private_pem = String::from_utf8(pem)
        .map_err(|_| IssueError::Key("openssl produced a non-UTF-8 PEM".to_owned()))?;
    let (kid, public_jwk) = public_jwk(alg, &pkey)?;
    Ok(GeneratedKey {
        kid: Kid::new(kid),
        private_pem,
        public_jwk,
    })
}

/// Parses a stored PKCS#8 PEM and checks that its key type fits `alg`.
pub fn parse_private_pem(alg: SigningAlg, pem: &str) -> Result<PKey<Private>, IssueError> {
    let pkey = PKey::private_key_from_pem(pem.as_bytes()).map_err(|_| {
        IssueError::Key("stored signing key is not a valid PEM private key".to_owned())
    })?;
    let fits = match alg {
        SigningAlg::ES256 => {
            pkey.id() == Id::EC
                && pkey.ec_key().ok().and_then(|k| k.group().curve_name())
                    == Some(Nid::X9_62_PRIME256V1)
        }
        SigningAlg::RS256 | SigningAlg::PS256 => pkey.id() == Id::RSA && pkey.bits() >= RSA_BITS,
        SigningAlg::EdDSA => pkey.id() == Id::ED25519,
    };
    if fits {
        Ok(pkey)
    } else {
        Err(IssueError::Key(format!(
            "stored signing key does not fit its algorithm {}",
            alg.as_str()
        )))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// (kid, public JWK JSON). The kid is the RFC 7638 thumbprint: SHA-256 over the required
/// members in lexicographic order, no whitespace.
pub fn public_jwk(alg: SigningAlg, pkey: &PKey<Private>) -> Result<(String, String), IssueError> {
    // Values are base64url, so no JSON escaping is needed in the canonical form.
    let (canonical, members): (String, Vec<(&str, String)>) = match alg {
        SigningAlg::ES256 => {
            let ec = pkey.ec_key().map_err(ossl)?;
            let mut ctx = BigNumContext::new().map_err(ossl)?;
            let mut x = BigNum::new().map_err(ossl)?;
            let mut y = BigNum::new().map_err(ossl)?;
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .map_err(ossl)?;
            let x = b64(&x.to_vec_padded(32).map_err(ossl)?);
            let y = b64(&y.to_vec_padded(32).map_err(ossl)?);
            (
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                vec![
                    ("kty", "EC".into()),
                    ("crv", "P-256".into()),
                    ("x", x),
                    ("y", y),
                ],
            )
        }
        SigningAlg::RS256 | SigningAlg::PS256 => {
            let rsa = pkey.rsa().map_err(ossl)?;
            let n = b64(&rsa.n().to_vec());
            let e = b64(&rsa.e().to_vec());
            (
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
                vec![("kty", "RSA".into()), ("n", n), ("e", e)],
            )
        }
        SigningAlg::EdDSA => {
            let x = b64(&pkey.raw_public_key().map_err(ossl)?);
            (
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                vec![("kty", "OKP".into()), ("crv", "Ed25519".into()), ("x", x)],
            )
        }
    };
    let kid = b64(&Sha256::digest(canonical.as_bytes()));
    let mut jwk = serde_json::Map::new();
    for (k, v) in members {
        jwk.insert(k.to_owned(), serde_json::Value::String(v));
    }
    jwk.insert("kid".to_owned(), kid.clone().into());
    jwk.insert("alg".to_owned(), alg.as_str().into());
    jwk.insert("use".to_owned(), "sig".into());
    Ok((kid, serde_json::Value::Object(jwk).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            b64(&Sha256::digest(canonical.as_bytes())),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_parse_back_and_publish_their_members() {
        for (alg, kty) in [
            (SigningAlg::ES256, "EC"),
            (SigningAlg::RS256, "RSA"),
            (SigningAlg::EdDSA, "OKP"),
        ] {
            let k = generate(alg).unwrap();
            let pkey = parse_private_pem(alg, &k.private_pem).unwrap();
            let (kid, jwk) = public_jwk(alg, &pkey).unwrap();
            assert_eq!(k.kid, kid);
            let jwk: serde_json::Value = serde_json::from_str(&jwk).unwrap();
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.as_str());
            assert!(jwk.get("d").is_none(), "private member published");
            assert!(!format!("{k:?}").contains("BEGIN"));
        }
    }

    #[test]
    fn a_key_of_the_wrong_type_is_refused() {
        let ec = generate(SigningAlg::ES256).unwrap();
        assert!(parse_private_pem(SigningAlg::RS256, &ec.private_pem).is_err());
        assert!(parse_private_pem(SigningAlg::EdDSA, &ec.private_pem).is_err());
    }
}
