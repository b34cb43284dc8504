//! Issuing: tessera's signing keys (next → current → retired, shared by every replica
//! through the database) and the signer for RFC 9068 access tokens.
//!
//! Rule: the key set lives in the database; a [`KeyRing`] is one replica's snapshot of it,
//! swapped atomically on [`KeyRing::refresh`], so [`KeyRing::sign`] is lock-free. A key is
//! published (as `next`) before any replica signs with it, and stays published (as
//! `retired`) until every token it signed has expired.

pub mod crypt;
pub mod keys;
pub mod signer;

use crate::secret::Secret;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, UnixTime};
use crate::metrics::Metrics;
pub use crate::store::keys::KeyState;
use crate::store::keys::{self as key_rows, NewSigningKey, SigningKeyRow, KEYS_LOCK};
use crate::store::{locked_transaction, Store, StoreError};
pub use crypt::{CryptError, KeyEncryptionKey};
use signer::Signer;

pub use crate::protocol::Kid;

/// A replica sees a rotation within its key refresh interval (10 s default, 30 s promised):
/// until then it may still sign with the key just retired. Retired keys stay published this
/// much longer than the longest token lifetime.
pub const REPLICA_LAG_MARGIN: Duration = Duration::from_secs(60);

/// A next key must have been published this long before a rotation makes it current, so
/// every replica (refreshing at least every 30 s) publishes it before anyone signs with it.
pub const NEXT_KEY_MIN_AGE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    #[default]
    ES256,
    RS256,
    PS256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// The same algorithm in jsonwebtoken's terms (for verifying tessera's own tokens).
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::PS256 => jsonwebtoken::Algorithm::PS256,
            SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = IssueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(SigningAlg::ES256),
            "RS256" => Ok(SigningAlg::RS256),
            "PS256" => Ok(SigningAlg::PS256),
            "EdDSA" => Ok(SigningAlg::EdDSA),
            other => Err(IssueError::Key(format!(
                "unknown signing algorithm {other:?}"
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Key material is missing, unusable or undecryptable; the text names the key id and
    /// the fix, never key material.
    #[error("key: {0}")]
    Key(String),
    /// Key material at rest: encryption, decryption, the key-encryption key.
    #[error("key: {0}")]
    Crypt(#[from] CryptError),
    /// openssl refused key material (generation, parsing, encoding).
    #[error("key: openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// The key state has not been read for longer than the publish guard: the current key
    /// may have been retired elsewhere, so this replica does not sign (SPEC §6).
    #[error("the signing keys could not be read for {secs} s (publish guard {guard_secs} s)")]
    KeyStateStale { secs: u64, guard_secs: u64 },
    /// No key of an audience's `signing_alg` yet: they are created at start and at each
    /// registry reload, and that failed (the database was unreachable); retried at the
    /// next reload.
    #[error("no current {alg} signing key yet (created at start and at each registry reload)")]
    NoKeyFor { alg: SigningAlg },
}

#[derive(Debug, Clone)]
pub struct SignedToken {
    pub token: Secret,
    pub kid: Kid,
}

/// What `tessera keys list` shows about a key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: Kid,
    pub alg: String,
    pub state: KeyState,
    pub created_at: UnixTime,
    pub activated_at: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
    pub publish_until: Option<UnixTime>,
    /// Stored encrypted under `TESSERA_KEY_ENCRYPTION_KEY`.
    pub encrypted: bool,
}

impl KeyInfo {
    fn from_row(row: &SigningKeyRow) -> Result<Self, IssueError> {
        Ok(Self {
            kid: Kid::new(row.kid.as_str()),
            alg: row.alg.clone(),
            state: row.state,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            publish_until: row.publish_until,
            encrypted: crypt::is_encrypted(&row.private_key),
        })
    }
}

/// One replica's view of the key set, replaced whole on refresh.
#[derive(Debug)]
struct Snapshot {
    /// The default algorithm's current signer (`tokens.signing_alg`).
    signer: Arc<Signer>,
    /// Every other algorithm's current signer (audiences' `signing_alg`).
    others: Vec<Arc<Signer>>,
    current_created_at: UnixTime,
    jwks: Arc<str>,
    /// (kid, state) of every published key, in JWKS order: what `jwks` was built from.
    published: Vec<(Kid, KeyState)>,
}

#[derive(Debug)]
pub struct KeyRing {
    clock: SharedClock,
    kek: Option<KeyEncryptionKey>,
    /// `tokens.signing_alg`: what [`KeyRing::sign`] uses.
    alg: SigningAlg,
    snapshot: ArcSwap<Snapshot>,
    /// When the key state was last read from the database (milliseconds since `origin`,
    /// monotonic): [`KeyRing::sign`] refuses once it is older than `publish_guard`.
    origin: Instant,
    last_read_ms: AtomicU64,
    /// Set by `serve` (`tokens.publish_guard`), where a refresher keeps the state read; a
    /// ring nobody refreshes (`trust test`, benches) has none.
    publish_guard: Option<Duration>,
}

impl KeyRing {
    /// Opens the key set: creates a current and a next key when missing (safe when several
    /// replicas start together), loads them and self-tests signing. Reads
    /// `TESSERA_KEY_ENCRYPTION_KEY`; see [`KeyRing::open_with`] to pass it explicitly.
    pub async fn open(
        store: &Store,
        alg: SigningAlg,
        clock: SharedClock,
    ) -> Result<Self, IssueError> {
        let kek = KeyEncryptionKey::from_env()?;
        Self::open_with(store, alg, clock, kek).await
    }

    /// [`KeyRing::open`] with the key-encryption key given.
    pub async fn open_with(
        store: &Store,
        alg: SigningAlg,
        clock: SharedClock,
        kek: Option<KeyEncryptionKey>,
    ) -> Result<Self, IssueError> {
        ensure_keys(store, alg, &clock, kek.as_ref()).await?;
        let rows = load_rows(store).await?;
        let snapshot = build_snapshot(&rows, clock.now(), kek.as_ref(), None, alg)?;
        if kek.is_none() {
            tracing::warn!(
                "TESSERA_KEY_ENCRYPTION_KEY is not set: signing keys are stored unencrypted"
            );
        }
        Ok(Self {
            clock,
            kek,
            alg,
            snapshot: ArcSwap::from_pointee(snapshot),
            origin: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            publish_guard: None,
        })
    }

    /// Makes sure every algorithm of `algs` has a current and a next key (audiences'
    /// `signing_alg`: at start and at each registry reload), then re-reads the key set.
    /// A new algorithm's first key signs at once: no token was ever verified against
    /// another key of that algorithm, so there is nothing to publish ahead of it.
    pub async fn ensure_algs(&self, store: &Store, algs: &[SigningAlg]) -> Result<(), IssueError> {
        for alg in algs {
            ensure_keys(store, *alg, &self.clock, self.kek.as_ref()).await?;
        }
        self.refresh(store).await
    }

    /// Sets the publish guard (`tokens.publish_guard`): from now on [`KeyRing::sign`]
    /// refuses when the key state was last read longer ago than that.
    pub fn with_publish_guard(mut self, guard: Duration) -> Self {
        self.publish_guard = Some(guard);
        self.mark_read();
        self
    }

    fn mark_read(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the key state was last read, when that is beyond the publish guard.
    pub fn stale_for(&self) -> Option<(Duration, Duration)> {
        let guard = self.publish_guard?;
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let since =
            Duration::from_millis(now.saturating_sub(self.last_read_ms.load(Ordering::Relaxed)));
        (since > guard).then_some((since, guard))
    }

    /// Re-reads the key set, so a rotation by another process is seen; also drops retired
    /// keys whose publication ended. On error the previous snapshot keeps serving.
    pub async fn refresh(&self, store: &Store) -> Result<(), IssueError> {
        let rows = load_rows(store).await?;
        let now = self.clock.now();
        let old = self.snapshot.load_full();
        if published_keys(&rows, now)
            .map(|r| (r.kid.as_str(), r.state))
            .eq(old.published.iter().map(|(k, s)| (k.as_str(), *s)))
        {
            self.mark_read();
            return Ok(());
        }
        let new = build_snapshot(&rows, now, self.kek.as_ref(), Some(&old), self.alg)?;
        if new.signer.kid() != old.signer.kid() {
            tracing::info!(kid = %new.signer.kid(), "signing with a new current key");
        }
        self.snapshot.store(Arc::new(new));
        self.mark_read();
        Ok(())
    }

    /// Signs `claims` as an RFC 9068 access token with the default algorithm's current key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<SignedToken, IssueError> {
        self.sign_with(claims, self.alg)
    }

    /// Signs `claims` with `alg`'s current key (an audience's `signing_alg`).
    /// Hot path: two atomic loads, no locks, no key parsing.
    pub fn sign_with<T: Serialize>(
        &self,
        claims: &T,
        alg: SigningAlg,
    ) -> Result<SignedToken, IssueError> {
        if let Some((since, guard)) = self.stale_for() {
            return Err(IssueError::KeyStateStale {
                secs: since.as_secs(),
                guard_secs: guard.as_secs(),
            });
        }
        let snapshot = self.snapshot.load();
        let signer = std::iter::once(&snapshot.signer)
            .chain(snapshot.others.iter())
            .find(|s| s.alg() == alg)
            .ok_or(IssueError::NoKeyFor { alg })?;
        let token = signer.sign(claims)?;
        Ok(SignedToken {
            token: Secret::new(token),
            kid: signer.kid().clone(),
        })
    }

    /// `{"keys":[current, next, retired-but-published…]}`.
    pub fn jwks_json(&self) -> Arc<str> {
        self.snapshot.load().jwks.clone()
    }

    pub fn current_created_at(&self) -> UnixTime {
        self.snapshot.load().current_created_at
    }

    pub fn current_kid(&self) -> Kid {
        self.snapshot.load().signer.kid().clone()
    }

    /// Algorithm of the current key (may differ from the configured one after a change).
    pub fn current_alg(&self) -> SigningAlg {
        self.snapshot.load().signer.alg()
    }

    /// Sets `tessera_signing_key_age_seconds` to the current key's age.
    pub fn record_metrics(&self, metrics: &Metrics) {
        let age = self
            .clock
            .now()
            .saturating_sub(self.current_created_at())
            .max(0);
        metrics.signing_key_age.set(age as f64);
    }
}

/// Scheduled rotation (`tokens.rotation_interval`).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub every: Duration,
    /// `tokens.max_lifetime`: how long a retired key stays published (plus the margin).
    pub retire_publish_for: Duration,
    pub publish_guard: Duration,
}

/// Spawns the task that calls [`KeyRing::refresh`] every `every` (`tokens.key_refresh_interval`)
/// and updates the key-age gauge, so this replica sees rotations made elsewhere; with a
/// `schedule`, it first rotates when a rotation is due (one replica does, under the key
/// lock; the others find it done). A failed refresh keeps the previous keys and is retried
/// next tick. Must run within a Tokio runtime.
pub fn spawn_refresher(
    ring: Arc<KeyRing>,
    store: Store,
    every: Duration,
    schedule: Option<Schedule>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(schedule) = &schedule {
                match rotate_if_due(&store, ring.clock.clone(), schedule, ring.kek.as_ref()).await {
                    Ok(keys) => {
                        for key in keys {
                            tracing::info!(kid = %key.kid, alg = %key.alg, "scheduled rotation: a new key is current");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "scheduled rotation failed; retried next tick")
                    }
                }
            }
            if let Err(error) = ring.refresh(&store).await {
                tracing::warn!(%error, "signing key refresh failed; keeping the previous keys");
            }
            ring.record_metrics(&metrics);
        }
    })
}

/// Whether `alg`'s current key has signed for `every` (since it became current) and its
/// next key has been published for the publish guard.
fn rotation_due(
    rows: &[SigningKeyRow],
    alg: SigningAlg,
    now: UnixTime,
    every: i64,
    guard: i64,
) -> bool {
    let of = |state| {
        rows.iter()
            .find(|r| r.state == state && r.alg == alg.as_str())
    };
    let (current, next) = (of(KeyState::Current), of(KeyState::Next));
    match (current, next) {
        (Some(c), Some(n)) => {
            let since = c.activated_at.unwrap_or(c.created_at);
            now.saturating_sub(since) >= every && now.saturating_sub(n.created_at) >= guard
        }
        _ => false,
    }
}

/// Rotates every algorithm in use whose rotation is due; returns the new current keys.
pub async fn rotate_if_due(
    store: &Store,
    clock: SharedClock,
    schedule: &Schedule,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Vec<KeyInfo>, IssueError> {
    let mut rotated = Vec::new();
    for alg in algs_in_use(&load_rows(store).await?) {
        if let Some(key) = rotate_alg_if_due(store, clock.clone(), schedule, alg, kek).await? {
            rotated.push(key);
        }
    }
    Ok(rotated)
}

/// Every algorithm with a current key, in a stable order.
fn algs_in_use(rows: &[SigningKeyRow]) -> Vec<SigningAlg> {
    let mut algs: Vec<SigningAlg> = rows
        .iter()
        .filter(|r| r.state == KeyState::Current)
        .filter_map(|r| SigningAlg::from_str(&r.alg).ok())
        .collect();
    algs.sort_by_key(|a| a.as_str());
    algs.dedup();
    algs
}

/// The algorithms `tessera keys rotate` rotates: every one with a current key.
pub async fn algs_with_keys(store: &Store) -> Result<Vec<SigningAlg>, IssueError> {
    Ok(algs_in_use(&load_rows(store).await?))
}

/// Rotates `alg` when [`rotation_due`]: checked on a plain read first (no key is generated
/// on the ticks that find nothing due), then again under the key lock, so replicas ticking
/// together rotate once per interval between them. Returns the new current key.
async fn rotate_alg_if_due(
    store: &Store,
    clock: SharedClock,
    schedule: &Schedule,
    alg: SigningAlg,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Option<KeyInfo>, IssueError> {
    let (every, guard) = (secs(schedule.every), secs(schedule.publish_guard));
    if !rotation_due(&load_rows(store).await?, alg, clock.now(), every, guard) {
        return Ok(None);
    }
    let [fresh] = prepare_keys::<1>(alg, kek).await?;
    let retire_for = secs(schedule.retire_publish_for).saturating_add(secs(REPLICA_LAG_MARGIN));
    let promoted = store
        .run(move |conn| {
            locked_transaction(conn, KEYS_LOCK, |conn| {
                let now = clock.now();
                if !rotation_due(&key_rows::all_keys(conn)?, alg, now, every, guard) {
                    return Ok(None);
                }
                rotate_locked(conn, now, &fresh, retire_for)
            })
        })
        .await?;
    match promoted {
        None => Ok(None),
        Some(kid) => Ok(list_keys(store).await?.into_iter().find(|k| k.kid == kid)),
    }
}

/// The rotation itself, inside the key lock: current → retired (published until
/// `now + retire_for`), next → current, `fresh` → next, retired keys past their
/// publication deleted. Returns the promoted kid.
fn rotate_locked(
    conn: &mut crate::store::DbConn,
    now: UnixTime,
    fresh: &PreparedKey,
    retire_for: i64,
) -> Result<Option<Kid>, crate::store::QueryError> {
    let alg = fresh.alg.as_str();
    let rows = key_rows::all_keys(conn)?;
    let Some(next) = rows
        .iter()
        .find(|r| r.state == KeyState::Next && r.alg == alg)
    else {
        return Ok(None);
    };
    let promoted = Kid::new(next.kid.as_str());
    key_rows::retire_current(conn, alg, now, now.saturating_add(retire_for))?;
    key_rows::promote_next(conn, alg, now)?;
    key_rows::insert_key(conn, &fresh.as_new(KeyState::Next, now, None))?;
    key_rows::delete_unpublished_retired(conn, now)?;
    Ok(Some(promoted))
}

/// Rotates now: next → current, current → retired (published for `retire_publish_for` —
/// pass `tokens.max_lifetime` — plus [`REPLICA_LAG_MARGIN`]), and a new next key of `alg`.
/// Refuses when the next key is younger than [`NEXT_KEY_MIN_AGE`]. Returns the new current
/// key. Reads `TESSERA_KEY_ENCRYPTION_KEY`.
pub async fn rotate(
    store: &Store,
    alg: SigningAlg,
    clock: SharedClock,
    retire_publish_for: Duration,
) -> Result<KeyInfo, IssueError> {
    let kek = KeyEncryptionKey::from_env()?;
    rotate_with(
        store,
        alg,
        clock,
        retire_publish_for,
        kek.as_ref(),
        NEXT_KEY_MIN_AGE,
    )
    .await
}

/// [`rotate`] with the key-encryption key and the minimum next-key age given.
pub async fn rotate_with(
    store: &Store,
    alg: SigningAlg,
    clock: SharedClock,
    retire_publish_for: Duration,
    kek: Option<&KeyEncryptionKey>,
    min_next_age: Duration,
) -> Result<KeyInfo, IssueError> {
    ensure_keys(store, alg, &clock, kek).await?;
    let [fresh] = prepare_keys::<1>(alg, kek).await?;
    let retire_for = secs(retire_publish_for).saturating_add(secs(REPLICA_LAG_MARGIN));
    let min_age = secs(min_next_age);
    let outcome = store
        .run(move |conn| {
            locked_transaction(conn, KEYS_LOCK, |conn| {
                let now = clock.now();
                let rows = key_rows::all_keys(conn)?;
                let Some(next) = rows
                    .iter()
                    .find(|r| r.state == KeyState::Next && r.alg == alg.as_str())
                else {
                    return Ok(Err(IssueError::Key(format!(
                        "no next {alg} key to promote"
                    ))));
                };
                let age = now.saturating_sub(next.created_at);
                if age < min_age {
                    return Ok(Err(IssueError::Key(format!(
                        "next key {} was published {age}s ago; rotate again after {}s so every \
                         replica publishes it before it signs",
                        next.kid,
                        min_age - age
                    ))));
                }
                match rotate_locked(conn, now, &fresh, retire_for)? {
                    Some(promoted) => Ok(Ok(promoted)),
                    None => Ok(Err(IssueError::Key("no next key to promote".to_owned()))),
                }
            })
        })
        .await??;
    let infos = list_keys(store).await?;
    infos
        .into_iter()
        .find(|k| k.kid == outcome)
        .ok_or_else(|| IssueError::Key("the promoted key vanished".to_owned()))
}

/// Every stored key, newest first.
pub async fn list_keys(store: &Store) -> Result<Vec<KeyInfo>, IssueError> {
    load_rows(store)
        .await?
        .iter()
        .map(KeyInfo::from_row)
        .collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

async fn load_rows(store: &Store) -> Result<Vec<SigningKeyRow>, StoreError> {
    store.run(|conn| Ok(key_rows::all_keys(conn)?)).await
}

/// A generated key, already in its stored form.
struct PreparedKey {
    kid: Kid,
    alg: SigningAlg,
    stored_private: String,
    public_jwk: String,
}

impl PreparedKey {
    fn as_new<'a>(
        &'a self,
        state: KeyState,
        now: UnixTime,
        activated: Option<UnixTime>,
    ) -> NewSigningKey<'a> {
        NewSigningKey {
            kid: &self.kid,
            alg: self.alg.as_str(),
            state: state.as_str(),
            private_key: &self.stored_private,
            public_jwk: &self.public_jwk,
            created_at: now,
            activated_at: activated,
        }
    }
}

/// Generates `N` keys off the async workers (RSA generation takes a while) and encrypts
/// them when a key-encryption key is set.
async fn prepare_keys<const N: usize>(
    alg: SigningAlg,
    kek: Option<&KeyEncryptionKey>,
) -> Result<[PreparedKey; N], IssueError> {
    let kek = kek.cloned();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(N);
        for _ in 0..N {
            let k = keys::generate(alg)?;
            let stored_private = match &kek {
                Some(kek) => crypt::encrypt(kek, &k.kid, &k.private_pem)?,
                None => k.private_pem.clone(),
            };
            out.push(PreparedKey {
                kid: k.kid,
                alg,
                stored_private,
                public_jwk: k.public_jwk,
            });
        }
        out.try_into()
            .map_err(|_| IssueError::Key("key generation count".to_owned()))
    })
    .await
    .map_err(|e| IssueError::Key(format!("key generation task failed: {e}")))?
}

/// Makes sure a current and a next key exist. Keys are generated before the transaction;
/// inside it (under the key lock) the set is re-read, so when two replicas race only one
/// set of keys is written and the other replica's candidates are discarded.
async fn ensure_keys(
    store: &Store,
    alg: SigningAlg,
    clock: &SharedClock,
    kek: Option<&KeyEncryptionKey>,
) -> Result<(), IssueError> {
    let rows = load_rows(store).await?;
    let has = |state: KeyState| {
        rows.iter()
            .any(|r| r.state == state && r.alg == alg.as_str())
    };
    if has(KeyState::Current) && has(KeyState::Next) {
        return Ok(());
    }
    // Two always cover every case (no key; only current; only next).
    let fresh = prepare_keys::<2>(alg, kek).await?;
    let clock = clock.clone();
    store
        .run(move |conn| {
            locked_transaction(conn, KEYS_LOCK, |conn| {
                let now = clock.now();
                let rows = key_rows::all_keys(conn)?;
                let has = |state: KeyState| {
                    rows.iter()
                        .any(|r| r.state == state && r.alg == alg.as_str())
                };
                let mut fresh = fresh.iter();
                let mut created = Vec::new();
                if !has(KeyState::Current) {
                    if has(KeyState::Next) {
                        // The next key is already published: it is the one to sign with.
                        key_rows::promote_next(conn, alg.as_str(), now)?;
                    } else if let Some(k) = fresh.next() {
                        key_rows::insert_key(conn, &k.as_new(KeyState::Current, now, Some(now)))?;
                        created.push(k.kid.clone());
                    }
                }
                let next_exists = key_rows::all_keys(conn)?
                    .iter()
                    .any(|r| r.state == KeyState::Next && r.alg == alg.as_str());
                if !next_exists {
                    if let Some(k) = fresh.next() {
                        key_rows::insert_key(conn, &k.as_new(KeyState::Next, now, None))?;
                        created.push(k.kid.clone());
                    }
                }
                if !created.is_empty() {
                    tracing::info!(kids = ?created, alg = %alg, "created signing keys");
                }
                Ok(())
            })
        })
        .await?;
    Ok(())
}

/// Keys in the JWKS at `now`: current, next, then retired ones still published (newest
/// retirement first).
fn published_keys(rows: &[SigningKeyRow], now: UnixTime) -> impl Iterator<Item = &SigningKeyRow> {
    let by_state = move |state: KeyState| rows.iter().filter(move |r| r.state == state);
    let mut retired: Vec<&SigningKeyRow> = by_state(KeyState::Retired)
        .filter(|r| r.publish_until.is_some_and(|until| until > now))
        .collect();
    retired.sort_by(|a, b| b.retired_at.cmp(&a.retired_at).then(a.kid.cmp(&b.kid)));
    by_state(KeyState::Current)
        .chain(by_state(KeyState::Next))
        .chain(retired)
}

fn build_snapshot(
    rows: &[SigningKeyRow],
    now: UnixTime,
    kek: Option<&KeyEncryptionKey>,
    old: Option<&Snapshot>,
    default_alg: SigningAlg,
) -> Result<Snapshot, IssueError> {
    let current = rows
        .iter()
        .find(|r| r.state == KeyState::Current && r.alg == default_alg.as_str())
        .ok_or_else(|| {
            IssueError::Key(format!(
                "no current {default_alg} signing key in the database"
            ))
        })?;
    let signer = signer_of(current, kek, old)?;
    let others = rows
        .iter()
        .filter(|r| r.state == KeyState::Current && r.alg != default_alg.as_str())
        .map(|r| signer_of(r, kek, old))
        .collect::<Result<Vec<_>, _>>()?;
    let mut published = Vec::new();
    let mut jwks = Vec::new();
    for row in published_keys(rows, now) {
        let is_new_next = row.state == KeyState::Next
            && !old.is_some_and(|o| o.published.iter().any(|(k, _)| *k == row.kid));
        if is_new_next {
            // Fail now, not at the rotation that would make it current.
            open_private(kek, row)?;
        }
        let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk).map_err(|_| {
            IssueError::Key(format!("signing key {}: stored JWK is not JSON", row.kid))
        })?;
        jwks.push(jwk);
        published.push((Kid::new(row.kid.as_str()), row.state));
    }
    Ok(Snapshot {
        signer,
        others,
        current_created_at: current.created_at,
        jwks: serde_json::json!({ "keys": jwks }).to_string().into(),
        published,
    })
}

/// The signer of a current key: the one `old` already has when it is the same key, else
/// opened and self-tested.
fn signer_of(
    row: &SigningKeyRow,
    kek: Option<&KeyEncryptionKey>,
    old: Option<&Snapshot>,
) -> Result<Arc<Signer>, IssueError> {
    let known = old.and_then(|o| {
        std::iter::once(&o.signer)
            .chain(o.others.iter())
            .find(|s| *s.kid() == row.kid)
    });
    if let Some(signer) = known {
        return Ok(signer.clone());
    }
    let alg = SigningAlg::from_str(&row.alg)?;
    let pem = open_private(kek, row)?;
    let signer = Signer::from_pem(alg, &row.kid, &pem)?;
    self_test(&signer, &row.public_jwk, &pem)?;
    Ok(Arc::new(signer))
}

fn open_private(kek: Option<&KeyEncryptionKey>, row: &SigningKeyRow) -> Result<String, IssueError> {
    if kek.is_some() && !crypt::is_encrypted(&row.private_key) {
        tracing::warn!(kid = %row.kid, "signing key is stored unencrypted although TESSERA_KEY_ENCRYPTION_KEY is set; it is encrypted only when rotated out and replaced");
    }
    Ok(crypt::open_stored(kek, &row.kid, &row.private_key)?)
}

/// Signs and verifies through jsonwebtoken with the loaded key: jsonwebtoken panics at run
/// time when built with zero or two crypto backends, and a key whose published JWK does not
/// match its private half would issue tokens nobody can verify. Both must stop start-up,
/// not the first request.
fn self_test(signer: &Signer, public_jwk: &str, pem: &str) -> Result<(), IssueError> {
    let failed = |what: String| {
        IssueError::Key(format!(
            "signing self-test failed for key {}: {what}",
            signer.kid()
        ))
    };
    let alg = signer.alg().to_jsonwebtoken();
    let claims = serde_json::json!({ "sub": "tessera-self-test" });
    let ours = signer.sign(&claims)?;
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_str(public_jwk).map_err(|e| format!("published JWK: {e}"))?;
        let decoding =
            jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| format!("published JWK: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&ours, &decoding, &validation)
            .map_err(|e| format!("verifying tessera's signature: {e}"))?;
        let encoding = match signer.alg() {
            SigningAlg::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlg::RS256 | SigningAlg::PS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            }
            SigningAlg::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .map_err(|e| format!("jsonwebtoken cannot load the key: {e}"))?;
        let theirs = jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &encoding)
            .map_err(|e| format!("jsonwebtoken signing: {e}"))?;
        jsonwebtoken::decode::<serde_json::Value>(&theirs, &decoding, &validation)
            .map_err(|e| format!("jsonwebtoken round trip: {e}"))?;
        Ok(())
    }));
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(what)) => Err(failed(what)),
        Err(_) => Err(failed(
            "jsonwebtoken panicked (is exactly one crypto backend enabled?)".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests;
