//! A signer's public key, parsed once from its certificate when the registry or metadata
//! is loaded, so that verifying a signature costs the RSA or ECDSA operation only.

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

use super::{
    ALG_ECDSA_SHA1, ALG_ECDSA_SHA256, ALG_ECDSA_SHA384, ALG_ECDSA_SHA512, ALG_RSA_SHA1,
    ALG_RSA_SHA256, ALG_RSA_SHA384, ALG_RSA_SHA512,
};

/// An RSA or EC public key from an X.509 certificate (trusted as a key, SPEC §4.1: its
/// dates and issuer are not checked).
#[derive(Clone)]
pub struct PublicKey(PKey<Public>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({:?}, {} bits)", self.0.id(), self.0.bits())
    }
}

impl PublicKey {
    /// The key of a DER certificate; `None` unless it is RSA or EC. openssl parses what
    /// strict Rust parsers refuse in real IdP certificates (negative serial numbers).
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let key = openssl::x509::X509::from_der(der).ok()?.public_key().ok()?;
        matches!(key.id(), Id::RSA | Id::EC).then_some(Self(key))
    }

    /// Whether `signature` (a `SignatureValue`, decoded) is `method`'s signature of `data`
    /// by this key. A method of the other key type never verifies.
    pub fn verifies(&self, method: &str, data: &[u8], signature: &[u8]) -> bool {
        let (digest, ecdsa) = match method {
            ALG_RSA_SHA256 => (MessageDigest::sha256(), false),
            ALG_RSA_SHA384 => (MessageDigest::sha384(), false),
            ALG_RSA_SHA512 => (MessageDigest::sha512(), false),
            ALG_RSA_SHA1 => (MessageDigest::sha1(), false),
            ALG_ECDSA_SHA256 => (MessageDigest::sha256(), true),
            ALG_ECDSA_SHA384 => (MessageDigest::sha384(), true),
            ALG_ECDSA_SHA512 => (MessageDigest::sha512(), true),
            ALG_ECDSA_SHA1 => (MessageDigest::sha1(), true),
            _ => return false,
        };
        let is_ec = self.0.id() == Id::EC;
        if ecdsa != is_ec {
            return false;
        }
        let der;
        let signature = if ecdsa {
            match self.ecdsa_der(signature) {
                Some(d) => {
                    der = d;
                    der.as_slice()
                }
                None => return false,
            }
        } else {
            signature
        };
        Verifier::new(digest, &self.0)
            .and_then(|mut v| v.verify_oneshot(signature, data))
            .unwrap_or(false)
    }

    /// XML-DSig ECDSA signatures are `r || s`, each the curve's field size
    /// (RFC 4050 §3.3 / XML-DSig 1.1 §6.4.3); openssl wants DER.
    fn ecdsa_der(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let field = usize::try_from(self.0.ec_key().ok()?.group().degree())
            .ok()?
            .div_ceil(8);
        if raw.len() != 2 * field {
            return None;
        }
        let (r, s) = raw.split_at(field);
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(r).ok()?,
            BigNum::from_slice(s).ok()?,
        )
        .ok()?;
        sig.to_der().ok()
    }
}
