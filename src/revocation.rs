//! Revocation of tessera's own tokens (RFC 7009, SPEC §3, §6).
//!
//! The record lives in the database, so every replica honours it. The token endpoint's
//! hot path never reads the database for it: each replica keeps the set of revoked,
//! unexpired `jti`s in memory (small: only revoked tokens that have not expired yet, and
//! tessera's tokens live at most `tokens.max_lifetime`). It learns of a revocation
//! (SPEC §6: every replica within 1 s):
//! - made here: at once;
//! - made on another replica, on PostgreSQL: from the LISTEN connection, polled every
//!   [`LISTEN_POLL`] (the announcement is a `pg_notify` in the revoking statement);
//! - otherwise (SQLite, or while the LISTEN connection is down): from a full reload
//!   every [`FALLBACK_SYNC`]; with LISTEN up the reload runs every [`SAFETY_SYNC`] only.
//!
//! `/introspect` reads the database directly (exact, not the hot path), and what it finds
//! revoked enters this replica's set at once: a token this replica reported inactive is
//! never exchanged here afterwards.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::clock::{SharedClock, UnixTime};
use crate::protocol::Jti;
use crate::store::{refresh, revocation};
use crate::store::{Store, StoreError};

/// How often the LISTEN connection is read (no query: what the server already sent).
pub const LISTEN_POLL: Duration = Duration::from_millis(100);
/// Full reload of the revoked set when no LISTEN connection is up.
pub const FALLBACK_SYNC: Duration = Duration::from_millis(500);
/// Full reload while LISTEN is up: a safety net for anything missed.
pub const SAFETY_SYNC: Duration = Duration::from_secs(5);
/// How often the LISTEN connection is proven alive with a round trip.
const LISTEN_PING: Duration = Duration::from_secs(2);
/// How often expired revocations are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long an ended refresh family is kept before its rows go: a token of it presented
/// meanwhile is still recognised (and answered "expired", not "unknown").
const REFRESH_PRUNE_MARGIN_SECS: i64 = 3600;
/// Wait before trying to open a lost LISTEN connection again.
const LISTEN_RETRY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Revocations {
    store: Store,
    clock: SharedClock,
    revoked: Arc<ArcSwap<HashSet<String>>>,
    /// What was added to `revoked` while a full reload was reading the database: the
    /// reload keeps it, so a revocation learnt meanwhile is never dropped.
    learnt_during_sync: Arc<std::sync::Mutex<Option<HashSet<String>>>>,
    last_prune: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Revocations {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            revoked: Arc::new(ArcSwap::from_pointee(HashSet::new())),
            learnt_during_sync: Arc::default(),
            last_prune: Arc::default(),
        }
    }

    /// Records `jti` (a token of `client_id` valid until `expires_at`) as revoked, in the
    /// database and in this replica's set.
    pub async fn revoke(
        &self,
        jti: &Jti,
        expires_at: UnixTime,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let (j, by, now) = (jti.to_string(), client_id.to_owned(), self.clock.now());
        self.store
            .run(move |conn| {
                revocation::record(conn, &j, expires_at, now, &by)?;
                // SPEC §2.1: every refresh family started from it ends too.
                refresh::revoke_descendants(conn, &[j.as_str()], now).map(drop)
            })
            .await?;
        self.learn([jti.as_str()]);
        Ok(())
    }

    /// Hot path: whether any of `jtis` (a token and the tokens it was exchanged from) is
    /// in this replica's revoked set. One atomic load, no database read.
    pub fn any_revoked<'a>(&self, jtis: impl IntoIterator<Item = &'a Jti>) -> bool {
        let set = self.revoked.load();
        jtis.into_iter().any(|j| set.contains(j.as_str()))
    }

    /// Exact answer from the database (for `/introspect`). What it finds revoked enters
    /// this replica's set before the answer leaves.
    pub async fn any_revoked_now(&self, jtis: Vec<Jti>) -> Result<bool, StoreError> {
        let revoked = self
            .store
            .run(move |conn| {
                let jtis: Vec<&str> = jtis.iter().map(Jti::as_str).collect();
                revocation::revoked_among(conn, &jtis)
            })
            .await?;
        self.learn(revoked.iter().map(String::as_str));
        Ok(!revoked.is_empty())
    }

    /// Adds `jtis` to this replica's set (revoked elsewhere, or found revoked here).
    fn learn<'a>(&self, jtis: impl IntoIterator<Item = &'a str>) {
        let fresh: Vec<&str> = {
            let set = self.revoked.load();
            jtis.into_iter().filter(|j| !set.contains(*j)).collect()
        };
        if fresh.is_empty() {
            return;
        }
        if let Some(during) = lock(&self.learnt_during_sync).as_mut() {
            during.extend(fresh.iter().map(|j| (*j).to_owned()));
        }
        self.revoked.rcu(|set| {
            let mut set = HashSet::clone(set);
            set.extend(fresh.iter().map(|j| (*j).to_owned()));
            set
        });
    }

    /// Reloads the revoked set now (and prunes expired rows).
    pub async fn sync(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        *lock(&self.learnt_during_sync) = Some(HashSet::new());
        // Pruning writes (on SQLite it takes the one write lock the audit writer needs):
        // once a minute is plenty; reading is what must be frequent.
        let prune = {
            let mut last = lock(&self.last_prune);
            let due = last.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let read = self
            .store
            .run(move |conn| {
                if prune {
                    revocation::prune(conn, now)?;
                    refresh::prune(conn, now.saturating_sub(REFRESH_PRUNE_MARGIN_SECS))?;
                }
                revocation::unexpired(conn, now)
            })
            .await;
        // What was learnt while the read ran may have committed after it: kept.
        let during = lock(&self.learnt_during_sync).take().unwrap_or_default();
        let mut set: HashSet<String> = read?.into_iter().collect();
        set.extend(during);
        self.revoked.store(Arc::new(set));
        Ok(())
    }

    /// Keeps this replica's set current, forever (abort to stop): the LISTEN connection
    /// on PostgreSQL, full reloads as the fallback. Failures keep the previous set, are
    /// logged and retried.
    pub fn spawn_sync(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut listener: Option<revocation::Listener> = None;
            let mut next_listen = Instant::now();
            let mut last_full: Option<Instant> = None;
            let mut last_ping = Instant::now();
            loop {
                if listener.is_none() && Instant::now() >= next_listen {
                    listener = this.listen().await;
                    next_listen = Instant::now() + LISTEN_RETRY;
                    // Whatever was announced while nobody listened: reload now.
                    last_full = None;
                }
                if let Some(l) = listener.take() {
                    let ping = last_ping.elapsed() >= LISTEN_PING;
                    if ping {
                        last_ping = Instant::now();
                    }
                    listener = this.drain(l, ping).await;
                }
                let every = if listener.is_some() {
                    SAFETY_SYNC
                } else {
                    FALLBACK_SYNC
                };
                if last_full.is_none_or(|t| t.elapsed() >= every) {
                    match this.sync().await {
                        Ok(()) => last_full = Some(Instant::now()),
                        Err(e) => tracing::warn!(error = %e, "revocation list reload failed"),
                    }
                }
                tokio::time::sleep(LISTEN_POLL).await;
            }
        })
    }

    /// Opens the LISTEN connection (PostgreSQL only).
    async fn listen(&self) -> Option<revocation::Listener> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.revocation_listener()).await {
            Ok(Ok(listener)) => listener,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "revocations: no LISTEN connection; polling");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocations: LISTEN task failed; polling");
                None
            }
        }
    }

    /// Applies what the LISTEN connection received (after a round trip when `ping`);
    /// `None` once the connection is gone.
    async fn drain(&self, mut l: revocation::Listener, ping: bool) -> Option<revocation::Listener> {
        let read = move || {
            if ping {
                l.ping()?;
            }
            l.drain().map(|jtis| (l, jtis))
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok((l, jtis))) => {
                self.learn(jtis.iter().map(String::as_str));
                Some(l)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "revocations: LISTEN connection lost; polling");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocations: LISTEN task failed; polling");
                None
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
