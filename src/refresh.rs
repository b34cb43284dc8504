//! tessera's refresh tokens as state (SPEC §3, §6): every call a database round trip, so
//! every replica honours rotation, reuse detection and revocation at once. Only digests of
//! refresh tokens are stored or compared, beside each token's public place in its family.

use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::store::refresh::{self, CreateError, FamilyRow, Found};
use crate::store::{Store, StoreError};

/// What every tessera refresh token starts with: it tells `/introspect` and `/revoke`
/// which table to look in, and a secret scanner what it found.
pub const PREFIX: &str = "trt_";

/// A refresh token's place in the store, read off the token: `trt_<family>.<generation>.
/// <secret>`. The family and generation are not secret (a family id is in the
/// `exchanged_from` of every access token the family issues); the 256-bit secret is, and
/// only a digest of the whole token is stored and compared.
///
/// Keyed by family and generation rather than by a digest, a family's tokens sit side by
/// side in the table: a rotation spends one row and inserts the next beside it, one page,
/// where random digest keys dirtied pages all over the table in every group commit.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    /// The row's key, `<family>.<generation>` with the generation zero-padded so that a
    /// family's rows sort in order.
    pub key: String,
    /// SHA-256 of the whole token, hex.
    pub digest: String,
    /// The next token of this family is generation + 1.
    pub generation: u64,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Presented {
    /// Where to look for `token`. A token of the earlier form (`trt_<secret>`, stored by its
    /// digest before migration 000009) and anything unparsable are looked up by digest:
    /// the unparsable find nothing.
    pub fn of(token: &str) -> Self {
        let digest = digest(token);
        match parse(token) {
            Some((family, generation)) => Self {
                key: key(family, generation),
                digest,
                generation,
            },
            None => Self {
                key: digest.clone(),
                digest,
                generation: 0,
            },
        }
    }
}

/// `<family>.<generation>` of a token of the current form, or None.
fn parse(token: &str) -> Option<(&str, u64)> {
    let mut parts = token.strip_prefix(PREFIX)?.split('.');
    let (family, generation, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let family_ok = family.len() == 34
        && family.starts_with("rf")
        && family[2..].bytes().all(|b| b.is_ascii_hexdigit());
    let generation_ok = !generation.is_empty()
        && generation.len() <= 19
        && generation.bytes().all(|b| b.is_ascii_digit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(family_ok && generation_ok && secret_ok) || parts.next().is_some() {
        return None;
    }
    Some((family, generation.parse().ok()?))
}

/// The store key of a family's token of this generation.
pub fn key(family_id: &str, generation: u64) -> String {
    format!("{family_id}.{generation:010}")
}

/// The stored form of a refresh token: SHA-256, hex. The token has 256 random bits, so a
/// plain hash is enough (nothing to brute-force).
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new refresh token of `family_id`, generation `generation`: the prefix, its place and
/// 256 random bits, base64url; with what the store keeps of it.
pub fn new_token(family_id: &str, generation: u64) -> (crate::secret::Secret, Presented) {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "{PREFIX}{family_id}.{generation}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let stored = Presented {
        key: key(family_id, generation),
        digest: digest(&token),
        generation,
    };
    (crate::secret::Secret::new(token), stored)
}

/// A family's reads and its rare writes (creation, revocation). A rotation is not here:
/// it commits with the request's audit row (`AuditLog::record_guarded`).
#[derive(Clone)]
pub struct RefreshTokens {
    store: Store,
}

impl RefreshTokens {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn create(
        &self,
        family: FamilyRow,
        first: Presented,
        lineage: Vec<String>,
    ) -> Result<(), CreateError> {
        self.store
            .run(move |conn| {
                Ok(refresh::create(
                    conn,
                    &family,
                    (&first.key, &first.digest),
                    &lineage,
                ))
            })
            .await?
    }

    /// The presented token's row and family, if tessera issued exactly this token.
    pub async fn find(&self, presented: Presented) -> Result<Option<Found>, StoreError> {
        self.store
            .run(move |conn| refresh::find(conn, &presented.key, &presented.digest))
            .await
    }

    /// Revokes the family and the access tokens issued from it (through the revocation
    /// list, which the caller's replica learns of from the database like any other).
    pub async fn revoke_family(
        &self,
        family: FamilyRow,
        now: UnixTime,
        reason: &'static str,
    ) -> Result<bool, StoreError> {
        self.store
            .run(move |conn| refresh::revoke_family(conn, &family, now, reason))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "rf0193a2b4c5d6e7f8091a2b3c4d5e6f70";

    #[test]
    fn a_new_token_is_found_at_its_place_by_its_digest() {
        let (token, stored) = new_token(FAMILY, 7);
        assert!(
            token.expose().starts_with("trt_rf0193"),
            "{}",
            token.expose()
        );
        assert_eq!(stored.key, format!("{FAMILY}.0000000007"));
        let presented = Presented::of(token.expose());
        assert_eq!(presented, stored);
        // The place is readable, the secret is not kept: only the digest of the whole.
        let secret = token.expose().rsplit('.').next().unwrap();
        assert!(!stored.key.contains(secret) && !stored.digest.contains(secret));
        // Keys of one family sort by generation.
        assert!(key(FAMILY, 9) < key(FAMILY, 10));
    }

    #[test]
    fn earlier_and_malformed_tokens_are_looked_up_by_digest() {
        let secret = "A".repeat(43);
        for token in [
            format!("trt_{secret}"),              // before migration 000009
            format!("trt_{FAMILY}.7"),            // no secret
            format!("trt_{FAMILY}.7.{secret}.x"), // a part too many
            format!("trt_{FAMILY}.-7.{secret}"),  // not a generation
            format!("trt_{FAMILY}.99999999999999999999.{secret}"), // too large
            format!("trt_rf0193.7.{secret}"),     // not a family id
            format!("trt_{FAMILY}.7.{}", "A".repeat(42)), // short secret
            format!("trt_{FAMILY}.7.{}", "A=".repeat(22)), // not base64url
        ] {
            let p = Presented::of(&token);
            assert_eq!(p.key, digest(&token), "{token}");
            assert_eq!(p.generation, 0);
        }
    }

    #[test]
    fn debug_shows_the_place_only() {
        let (_, stored) = new_token(FAMILY, 1);
        let shown = format!("{stored:?}");
        assert!(
            shown.contains(FAMILY) && !shown.contains(&stored.digest),
            "{shown}"
        );
    }
}
