//! tessera's refresh tokens as state (SPEC §3, §6): every call a database round trip, so
//! every replica honours rotation, reuse detection and revocation at once. Only digests of
//! refresh tokens are stored or compared.

use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::store::refresh::{self, CreateError, FamilyRow, Found};
use crate::store::{Store, StoreError};

/// What every tessera refresh token starts with: it tells `/introspect` and `/revoke`
/// which table to look in, and a secret scanner what it found.
pub const PREFIX: &str = "trt_";

/// The stored form of a refresh token: SHA-256, hex. The token has 256 random bits, so a
/// plain hash is enough (nothing to brute-force) and lookups stay one indexed read.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new refresh token: the prefix and 256 random bits, base64url.
pub fn new_token() -> crate::secret::Secret {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    crate::secret::Secret::new(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
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
        first_digest: String,
        lineage: Vec<String>,
    ) -> Result<(), CreateError> {
        self.store
            .run(move |conn| Ok(refresh::create(conn, &family, &first_digest, &lineage)))
            .await?
    }

    pub async fn find(&self, digest: String) -> Result<Option<Found>, StoreError> {
        self.store
            .run(move |conn| refresh::find(conn, &digest))
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
