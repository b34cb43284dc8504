//! tessera's refresh tokens as state (SPEC §3, §6), in the database, so every replica
//! honours rotation, reuse detection and revocation at once: the spend that decides them
//! is always a database write. Only digests of refresh tokens are stored or compared,
//! beside each token's public place in its family.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::UnixTime;
use crate::store::refresh::{self, CreateError, FamilyRow, Found};
use crate::store::{Store, StoreError};

/// What every tessera refresh token starts with: it tells `/introspect` and `/revoke`
/// which table to look in, and a secret scanner what it found.
pub const PREFIX: &str = "trt_";

/// A refresh token's place in the store, read off the token: `trt_<family>.<key>.<secret>`,
/// where `<key>` is `rt` and a UUIDv7, drawn at issue. The family and key are not secret
/// (a family id is in the `exchanged_from` of every access token the family issues); the
/// 256-bit secret is, and only a digest of the whole token is stored and compared.
///
/// Why this shape: a redemption finds the family's live token (its head) by the family
/// id, and a rotation rewrites that head and appends the successor under a key that grows
/// with time, so the pages a batch of rotations writes are few and shared (see migration
/// 000011). An old token presented again is found by its key, for the reuse it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    /// The row's key in the token history.
    pub key: String,
    /// SHA-256 of the whole token, hex.
    pub digest: String,
    /// The family, when the token names it (every form but the first).
    pub family: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("key", &self.key)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Presented {
    /// Where to look for `token`. Earlier forms are still found: `trt_<family>.<generation>.
    /// <secret>` (migration 000010 to 000011) at `<family>.<generation>`, zero-padded;
    /// `trt_<secret>` (before 000010) and anything unparsable by digest, where the
    /// unparsable find nothing.
    pub fn of(token: &str) -> Self {
        let digest = digest(token);
        match parse(token) {
            Some((family, key)) => Self {
                key,
                digest,
                family: Some(family.to_owned()),
            },
            None => Self {
                key: digest.clone(),
                digest,
                family: None,
            },
        }
    }
}

/// The family and the store key of a token of the current or the previous form, or None.
fn parse(token: &str) -> Option<(&str, String)> {
    let mut parts = token.strip_prefix(PREFIX)?.split('.');
    let (family, place, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(is_id(family, "rf") && secret_ok) || parts.next().is_some() {
        return None;
    }
    if is_id(place, KEY_PREFIX) {
        return Some((family, place.to_owned()));
    }
    // The previous form's generation.
    let generation_ok =
        !place.is_empty() && place.len() <= 19 && place.bytes().all(|b| b.is_ascii_digit());
    if !generation_ok {
        return None;
    }
    let generation: u64 = place.parse().ok()?;
    Some((family, format!("{family}.{generation:010}")))
}

/// What starts a token's key in the history.
const KEY_PREFIX: &str = "rt";

/// `<prefix>` and 32 lowercase hex digits (a UUID, simple form).
fn is_id(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + 32
        && s.starts_with(prefix)
        && s[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stored form of a refresh token: SHA-256, hex. The token has 256 random bits, so a
/// plain hash is enough (nothing to brute-force).
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new refresh token of `family_id`: the prefix, its family, a key that grows with time
/// (a UUIDv7: one process's are strictly ordered, so a batch's successors are appended
/// side by side) and 256 random bits, base64url; with what the store keeps of it.
pub fn new_token(family_id: &str) -> (crate::secret::Secret, Presented) {
    use base64::Engine;
    let key = format!("{KEY_PREFIX}{}", uuid::Uuid::now_v7().simple());
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "{PREFIX}{family_id}.{key}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let stored = Presented {
        key,
        digest: digest(&token),
        family: Some(family_id.to_owned()),
    };
    (crate::secret::Secret::new(token), stored)
}

/// A family's reads and its rare writes (creation, revocation). A rotation is not here:
/// it commits with the request's audit row (`AuditLog::record_guarded`).
#[derive(Clone)]
pub struct RefreshTokens {
    store: Store,
    newest: Arc<Mutex<Newest>>,
}

/// Families this replica has lately issued a token of, each with that newest token (its
/// digest, which names it as the family's head does, and when it was issued) and the
/// family row as read or written then.
///
/// Why: a redeemed token was, nearly always, issued by the same replica a moment ago, and
/// reading it back cost a blocking-pool hop and a cold B-tree walk (SQLite drops a
/// reader's page cache whenever another connection has committed): a tenth of a refresh
/// grant's CPU. What the read decides is decided again where it counts, so a stale entry
/// can never let a token through:
/// - the digest is compared here, in constant time, as the read would;
/// - "not spent" and "family not revoked" are re-checked by the spend itself, in the
///   commit that must succeed before the token leaves (`store::refresh::rotate`): a token
///   spent on another replica is found there and is a reuse, as it would be after a read;
/// - the family's id and lineage are checked against this replica's revocation set, as
///   after a read.
///
/// Two generations of at most [`NEWEST_PER_GENERATION`] families: when the current one
/// fills it becomes the previous, and the previous is dropped, so memory stays bounded and
/// a family in use (re-inserted at each rotation) stays.
#[derive(Default)]
struct Newest {
    current: HashMap<String, Arc<Issued>>,
    previous: HashMap<String, Arc<Issued>>,
}

const NEWEST_PER_GENERATION: usize = 4096;

struct Issued {
    digest: String,
    issued_at: UnixTime,
    family: FamilyRow,
}

impl Newest {
    fn get(&self, family_id: &str) -> Option<&Arc<Issued>> {
        self.current
            .get(family_id)
            .or_else(|| self.previous.get(family_id))
    }

    fn insert(&mut self, issued: Issued) {
        if self.current.len() >= NEWEST_PER_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(&issued.family.family_id);
        self.current
            .insert(issued.family.family_id.clone(), Arc::new(issued));
    }

    fn remove(&mut self, family_id: &str) {
        self.current.remove(family_id);
        self.previous.remove(family_id);
    }
}

impl RefreshTokens {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            newest: Arc::default(),
        }
    }

    fn newest(&self) -> std::sync::MutexGuard<'_, Newest> {
        // A panic while holding this lock leaves at worst a stale entry, which the checks
        // above make harmless.
        self.newest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers that this replica issued `token` (stored as `token`) of `family` at
    /// `issued_at`: the family's newest token, unspent when it left.
    pub fn issued(&self, family: &FamilyRow, token: &Presented, issued_at: UnixTime) {
        self.newest().insert(Issued {
            digest: token.digest.clone(),
            issued_at,
            family: family.clone(),
        });
    }

    /// Forgets a family whose last rotation here failed or which was revoked: its next
    /// token is read from the database.
    pub fn forget(&self, family_id: &str) {
        self.newest().remove(family_id);
    }

    /// The family's newest token as this replica issued it, if `presented` is exactly it.
    fn newest_issued(&self, presented: &Presented) -> Option<Found> {
        let issued = self.newest().get(presented.family.as_deref()?)?.clone();
        // The digest covers the whole token, its family and key with its secret.
        let same = bool::from(issued.digest.as_bytes().ct_eq(presented.digest.as_bytes()));
        same.then(|| Found {
            issued_at: issued.issued_at,
            spent: false,
            family: issued.family.clone(),
        })
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

    /// The presented token's row and family, if tessera issued exactly this token: from
    /// what this replica issued last of its family when it is that token (see [`Newest`]
    /// for why that is safe), else from the database.
    pub async fn find(&self, presented: Presented) -> Result<Option<Found>, StoreError> {
        if let Some(found) = self.newest_issued(&presented) {
            return Ok(Some(found));
        }
        self.find_stored(presented).await
    }

    /// The presented token as the database holds it now, whatever this replica remembers:
    /// for explain, whose account of a token spent on another replica must be the reuse
    /// the spend would find, and for `/introspect` and `/revoke`, whose answer must not
    /// call a token spent elsewhere active.
    pub async fn find_stored(&self, presented: Presented) -> Result<Option<Found>, StoreError> {
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
        self.forget(&family.family_id);
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
        let (token, stored) = new_token(FAMILY);
        assert!(
            token.expose().starts_with(&format!("trt_{FAMILY}.rt0")),
            "{}",
            token.expose()
        );
        assert!(is_id(&stored.key, KEY_PREFIX), "{}", stored.key);
        assert_eq!(stored.family.as_deref(), Some(FAMILY));
        let presented = Presented::of(token.expose());
        assert_eq!(presented, stored);
        // The place is readable, the secret is not kept: only the digest of the whole.
        let secret = token.expose().rsplit('.').next().unwrap();
        assert!(!stored.key.contains(secret) && !stored.digest.contains(secret));
        // Keys grow with time: a batch's successors are appended side by side.
        let (_, next) = new_token(FAMILY);
        assert!(stored.key < next.key);
    }

    #[test]
    fn a_token_of_the_previous_form_is_found_at_its_generation() {
        let secret = "A".repeat(43);
        let p = Presented::of(&format!("trt_{FAMILY}.7.{secret}"));
        assert_eq!(p.key, format!("{FAMILY}.0000000007"));
        assert_eq!(p.family.as_deref(), Some(FAMILY));
    }

    #[test]
    fn earlier_and_malformed_tokens_are_looked_up_by_digest() {
        let secret = "A".repeat(43);
        let key = format!("rt{}", "0".repeat(32));
        for token in [
            format!("trt_{secret}"),                  // before migration 000010
            format!("trt_{FAMILY}.7"),                // no secret
            format!("trt_{FAMILY}.{key}.{secret}.x"), // a part too many
            format!("trt_{FAMILY}.-7.{secret}"),      // not a generation
            format!("trt_{FAMILY}.99999999999999999999.{secret}"), // too large
            format!("trt_{FAMILY}.rt0193.{secret}"),  // a short key
            format!("trt_{FAMILY}.{}.{secret}", key.to_uppercase()), // not lowercase hex
            format!("trt_rf0193.{key}.{secret}"),     // not a family id
            format!("trt_{FAMILY}.{key}.{}", "A".repeat(42)), // short secret
            format!("trt_{FAMILY}.{key}.{}", "A=".repeat(22)), // not base64url
        ] {
            let p = Presented::of(&token);
            assert_eq!(p.key, digest(&token), "{token}");
            assert_eq!(p.family, None);
        }
    }

    #[test]
    fn debug_shows_the_place_only() {
        let (_, stored) = new_token(FAMILY);
        let shown = format!("{stored:?}");
        assert!(
            shown.contains(FAMILY) && !shown.contains(&stored.digest),
            "{shown}"
        );
    }

    fn family(id: &str) -> FamilyRow {
        FamilyRow {
            family_id: id.to_owned(),
            client_id: "c".into(),
            audience_id: "a".into(),
            grant_json: "{}".into(),
            dpop_bound: false,
            created_at: 1_800_000_000,
            expires_at: 1_800_086_400,
            idle_secs: None,
            revoked_at: None,
            revoked_reason: None,
        }
    }

    /// A store that is never opened: a hit of the newest-token cache needs no database.
    fn tokens() -> RefreshTokens {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("never-opened.db").display());
        RefreshTokens::new(Store::connect_lazy(&url, Some(1)).unwrap())
    }

    #[test]
    fn only_the_exact_newest_token_is_answered_from_memory() {
        let tokens = tokens();
        let (t1, p1) = new_token(FAMILY);
        let (t2, p2) = new_token(FAMILY);
        tokens.issued(&family(FAMILY), &p1, 1_800_000_100);
        let found = tokens.newest_issued(&Presented::of(t1.expose())).unwrap();
        assert_eq!((found.issued_at, found.spent), (1_800_000_100, false));
        assert_eq!(found.family, family(FAMILY));
        // Its successor issued: the spent token is no longer answered here (the database
        // says it is spent), nor is a forged secret at the live place.
        tokens.issued(&family(FAMILY), &p2, 1_800_000_200);
        assert!(tokens.newest_issued(&Presented::of(t1.expose())).is_none());
        let live = t2.expose();
        let last = if live.ends_with('A') { "B" } else { "A" };
        let forged = format!("{}{last}", &live[..live.len() - 1]);
        assert!(tokens.newest_issued(&Presented::of(&forged)).is_none());
        assert!(tokens.newest_issued(&Presented::of(t2.expose())).is_some());
        // Forgotten (a failed rotation, a revocation): read from the database again.
        tokens.forget(FAMILY);
        assert!(tokens.newest_issued(&Presented::of(t2.expose())).is_none());
    }

    #[test]
    fn the_newest_token_cache_is_bounded_and_keeps_families_in_use() {
        let tokens = tokens();
        let id = |i: usize| format!("rf{i:032x}");
        let (kept, kept_stored) = new_token(&id(0));
        for i in 0..3 * NEWEST_PER_GENERATION {
            let (_, stored) = new_token(&id(i));
            tokens.issued(&family(&id(i)), &stored, 1_800_000_000);
            if i % 1000 == 0 {
                // Family 0 keeps rotating: re-issued, it stays.
                tokens.issued(&family(&id(0)), &kept_stored, 1_800_000_000);
            }
        }
        let newest = tokens.newest();
        assert!(newest.current.len() + newest.previous.len() <= 2 * NEWEST_PER_GENERATION);
        assert!(newest.get(&id(1)).is_none(), "the oldest are dropped");
        drop(newest);
        assert!(tokens
            .newest_issued(&Presented::of(kept.expose()))
            .is_some());
    }
}
