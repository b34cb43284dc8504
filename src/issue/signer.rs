//! The hot-path signer: a pre-parsed key pair and a pre-encoded JOSE header, so signing a
//! token is one JSON serialisation, two base64 encodings and one signature.
//!
//! Rule: nothing here locks or re-parses keys. `jsonwebtoken::encode` re-parses the key on
//! every call (and its signer is not `Send`), so tessera signs with aws-lc-rs directly — the
//! same primitives as jsonwebtoken's `aws_lc_rs` backend — and the start-up self-test
//! verifies the result through jsonwebtoken.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaEncoding, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use super::{keys, IssueError, Kid, SigningAlg};

enum KeyPair {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ed(Ed25519KeyPair),
}

pub struct Signer {
    kid: Kid,
    alg: SigningAlg,
    /// base64url of `{"alg":…,"typ":"at+jwt","kid":…}` (RFC 9068 §2.1).
    header_b64: String,
    key: KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Builds a signer from a PKCS#8 PEM.
    pub fn from_pem(alg: SigningAlg, kid: &str, pem: &str) -> Result<Self, IssueError> {
        let pkey = keys::parse_private_pem(alg, pem)?;
        let der = pkey.private_key_to_pkcs8().map_err(IssueError::Openssl)?;
        let bad = |what: &str| IssueError::Key(format!("signing key {kid}: {what}"));
        let key = match alg {
            SigningAlg::ES256 => KeyPair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|_| bad("not a P-256 PKCS#8 key"))?,
            ),
            SigningAlg::RS256 => KeyPair::Rsa(
                RsaKeyPair::from_pkcs8(&der).map_err(|_| bad("not an RSA PKCS#8 key"))?,
                &RSA_PKCS1_SHA256,
            ),
            SigningAlg::PS256 => KeyPair::Rsa(
                RsaKeyPair::from_pkcs8(&der).map_err(|_| bad("not an RSA PKCS#8 key"))?,
                &RSA_PSS_SHA256,
            ),
            SigningAlg::EdDSA => KeyPair::Ed(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|_| bad("not an Ed25519 PKCS#8 key"))?,
            ),
        };
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": kid });
        Ok(Self {
            kid: Kid::new(kid),
            alg,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            key,
        })
    }

    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The compact JWS of `claims`.
    pub fn sign<T: Serialize + ?Sized>(&self, claims: &T) -> Result<String, IssueError> {
        let payload = serde_json::to_vec(claims)
            .map_err(|e| IssueError::Key(format!("claims do not serialise: {e}")))?;
        // header . payload . signature (≤ 342 base64 chars for RSA-2048)
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let failed = |_| IssueError::Key("signing failed".to_owned());
        match &self.key {
            KeyPair::Ecdsa(k) => {
                let sig = k
                    .sign(&SystemRandom::new(), token.as_bytes())
                    .map_err(failed)?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
            }
            KeyPair::Rsa(k, padding) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(*padding, &SystemRandom::new(), token.as_bytes(), &mut sig)
                    .map_err(failed)?;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
            }
            KeyPair::Ed(k) => {
                let sig = k.sign(token.as_bytes());
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
            }
        }
        Ok(token)
    }
}
