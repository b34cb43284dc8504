//! A signer's public key, parsed once from its certificate when the registry or metadata
//! is loaded, so that verifying a signature costs the RSA or ECDSA operation only.

use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

use super::SignatureMethod;

/// An RSA or EC public key from an X.509 certificate (trusted as a key, SPEC §4.1: its
/// dates and issuer are not checked).
#[derive(Clone)]
pub struct PublicKey(PKey<Public>);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({:?}, {} bits)", self.0.id(), self.0.bits())
    }
}

/// Smallest RSA signing key accepted by default, as on the JWT path (NIST SP 800-131A:
/// 1024-bit RSA signatures have been disallowed since 2013).
pub const MIN_RSA_BITS: u32 = 2048;
/// Smallest RSA key an issuer may opt into with `allow_rsa_1024` (legacy IdPs); nothing
/// below is ever accepted (a 512-bit key is factored in hours).
pub const LEGACY_MIN_RSA_BITS: u32 = 1024;

/// Why a certificate's key cannot verify SAML signatures (security review F-3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejected {
    #[error("is not a valid X.509 certificate")]
    NotACertificate,
    #[error("has neither an RSA nor an EC public key")]
    KeyType,
    #[error(
        "has a {bits}-bit RSA key; at least {min} bits are required{}",
        if *bits >= LEGACY_MIN_RSA_BITS { " (allow_rsa_1024 = true admits a legacy IdP's 1024-bit key)" } else { "" }
    )]
    WeakRsa { bits: u32, min: u32 },
    #[error("has an EC key on a curve other than P-256, P-384 or P-521")]
    Curve,
}

impl PublicKey {
    /// The key of a DER certificate: RSA of at least `min_rsa_bits` (never below
    /// [`LEGACY_MIN_RSA_BITS`]), or EC on a NIST prime curve. openssl parses what strict
    /// Rust parsers refuse in real IdP certificates (negative serial numbers).
    pub fn from_certificate(der: &[u8], min_rsa_bits: u32) -> Result<Self, KeyRejected> {
        let key = openssl::x509::X509::from_der(der)
            .and_then(|c| c.public_key())
            .map_err(|_| KeyRejected::NotACertificate)?;
        match key.id() {
            Id::RSA => {
                let min = min_rsa_bits.max(LEGACY_MIN_RSA_BITS);
                if key.bits() < min {
                    return Err(KeyRejected::WeakRsa {
                        bits: key.bits(),
                        min,
                    });
                }
            }
            Id::EC => {
                let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
                if !matches!(
                    curve,
                    Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1)
                ) {
                    return Err(KeyRejected::Curve);
                }
            }
            _ => return Err(KeyRejected::KeyType),
        }
        Ok(Self(key))
    }

    /// Whether `signature` (a `SignatureValue`, decoded) is `method`'s signature of `data`
    /// by this key. A method of the other key type never verifies.
    pub fn verifies(&self, method: SignatureMethod, data: &[u8], signature: &[u8]) -> bool {
        let (digest, ecdsa) = (method.digest().message_digest(), method.is_ecdsa());
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
