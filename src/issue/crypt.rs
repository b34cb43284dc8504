//! Encryption at rest for signing keys: AES-256-GCM under the key in
//! `TESSERA_KEY_ENCRYPTION_KEY` (base64 of 32 bytes).
//!
//! Rule: the environment variable is read here and nowhere else ([`KeyEncryptionKey::from_env`]),
//! and the key never appears in `Debug` output or errors. Stored form:
//! `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), with the key id as associated data so a
//! ciphertext copied onto another row does not decrypt.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

pub const KEY_ENCRYPTION_KEY_ENV: &str = "TESSERA_KEY_ENCRYPTION_KEY";
const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptError {
    #[error("{KEY_ENCRYPTION_KEY_ENV} must be the base64 encoding of exactly 32 bytes")]
    InvalidKey,
    #[error("signing key {kid} is stored encrypted, but {KEY_ENCRYPTION_KEY_ENV} is not set")]
    KeyMissing { kid: String },
    #[error("signing key {kid} cannot be decrypted: wrong {KEY_ENCRYPTION_KEY_ENV}, or the stored key is damaged")]
    DecryptFailed { kid: String },
    #[error("signing key {kid}: unknown encryption format")]
    UnknownFormat { kid: String },
    #[error("encryption failed: {0}")]
    Openssl(String),
}

/// The 256-bit key-encryption key.
///
/// # Security Warning
/// Holds secret key material; `Debug` is redacted. Do not add `Display` or `Serialize`.
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

impl KeyEncryptionKey {
    /// Reads `TESSERA_KEY_ENCRYPTION_KEY`: `Ok(None)` when unset or empty.
    pub fn from_env() -> Result<Option<Self>, CryptError> {
        match std::env::var(KEY_ENCRYPTION_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_base64(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(CryptError::InvalidKey),
        }
    }

    pub fn from_base64(b64: &str) -> Result<Self, CryptError> {
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|_| CryptError::InvalidKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptError::InvalidKey)?;
        Ok(Self(key))
    }

    /// A fresh random key (tests, and `keys` tooling that prints one).
    pub fn generate() -> Result<Self, CryptError> {
        let mut key = [0u8; 32];
        openssl::rand::rand_bytes(&mut key).map_err(|e| CryptError::Openssl(e.to_string()))?;
        Ok(Self(key))
    }

    /// base64 form, as `TESSERA_KEY_ENCRYPTION_KEY` expects.
    ///
    /// # Security Warning
    /// Returns the secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with("enc:")
}

/// Encrypts `plaintext` (a PEM) for the row `kid`.
pub fn encrypt(kek: &KeyEncryptionKey, kid: &str, plaintext: &str) -> Result<String, CryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).map_err(|e| CryptError::Openssl(e.to_string()))?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &kek.0,
        Some(&nonce),
        kid.as_bytes(),
        plaintext.as_bytes(),
        &mut tag,
    )
    .map_err(|e| CryptError::Openssl(e.to_string()))?;
    let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ciphertext);
    blob.extend_from_slice(&tag);
    Ok(format!("{PREFIX}{}", STANDARD.encode(blob)))
}

/// The PEM stored for `kid`: decrypted when stored encrypted, as is otherwise.
pub fn open_stored(
    kek: Option<&KeyEncryptionKey>,
    kid: &str,
    stored: &str,
) -> Result<String, CryptError> {
    if !is_encrypted(stored) {
        return Ok(stored.to_owned());
    }
    let Some(kek) = kek else {
        return Err(CryptError::KeyMissing {
            kid: kid.to_owned(),
        });
    };
    let blob = stored
        .strip_prefix(PREFIX)
        .and_then(|b| STANDARD.decode(b).ok())
        .filter(|b| b.len() > NONCE_LEN + TAG_LEN)
        .ok_or_else(|| CryptError::UnknownFormat {
            kid: kid.to_owned(),
        })?;
    let (nonce, rest) = blob.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let plaintext = decrypt_aead(
        Cipher::aes_256_gcm(),
        &kek.0,
        Some(nonce),
        kid.as_bytes(),
        ciphertext,
        tag,
    )
    .map_err(|_| CryptError::DecryptFailed {
        kid: kid.to_owned(),
    })?;
    String::from_utf8(plaintext).map_err(|_| CryptError::DecryptFailed {
        kid: kid.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_round_trips_and_is_bound_to_its_kid() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let stored = encrypt(&kek, "kid-1", "-----BEGIN PRIVATE KEY-----\n").unwrap();
        assert!(stored.starts_with("enc:v1:"));
        assert!(!stored.contains("BEGIN"));
        assert_eq!(
            open_stored(Some(&kek), "kid-1", &stored).unwrap(),
            "-----BEGIN PRIVATE KEY-----\n"
        );
        assert_eq!(
            open_stored(Some(&kek), "kid-2", &stored),
            Err(CryptError::DecryptFailed {
                kid: "kid-2".into()
            })
        );
    }

    #[test]
    fn wrong_or_missing_key_is_a_clear_error() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let other = KeyEncryptionKey::generate().unwrap();
        let stored = encrypt(&kek, "k", "pem").unwrap();
        let wrong = open_stored(Some(&other), "k", &stored).unwrap_err();
        assert!(wrong
            .to_string()
            .contains("wrong TESSERA_KEY_ENCRYPTION_KEY"));
        let missing = open_stored(None, "k", &stored).unwrap_err();
        assert!(missing
            .to_string()
            .contains("TESSERA_KEY_ENCRYPTION_KEY is not set"));
    }

    #[test]
    fn key_encryption_key_must_be_32_bytes_of_base64() {
        assert_eq!(
            KeyEncryptionKey::from_base64("c2hvcnQ=").unwrap_err(),
            CryptError::InvalidKey
        );
        let kek = KeyEncryptionKey::generate().unwrap();
        assert!(KeyEncryptionKey::from_base64(&kek.to_base64()).is_ok());
        assert_eq!(format!("{kek:?}"), "KeyEncryptionKey([redacted])");
    }
}
