//! One cache for everything tessera fetches per issuer (JWKS, SAML metadata), with one set
//! of rules (SPEC §4, §6): fetched on first use or at warm-up; read with one atomic load on
//! the hot path; refreshed in the background when due (`keys_ttl`, or sooner when the
//! document says so: `cacheDuration`); at most one fetch per issuer in flight (single
//! flight) and per `refresh_cooldown`; the last good copy serving when a fetch fails, for at
//! most `max_stale` and never past the document's own `validUntil`; a dead issuer never
//! blocking another (each slot has its own lock, the map's lock is never held across a
//! fetch).
//!
//! What differs per kind is a [`Source`]: how to fetch and parse, and whether two
//! registrations of an issuer are the same source (a reload that changes it gets a fresh
//! slot).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::clock::{SharedClock, UnixTime};
use crate::metrics::{FetchLabels, IssuerLabels, Metrics};
use crate::verify::fetch::OutboundConfig;

use super::fetch::{FetchError, Fetcher};
use super::secs;

/// A freshly fetched document and what it says about its own lifetime.
pub struct Fetched<V> {
    pub value: V,
    /// Refresh no later than this many seconds after the fetch (`cacheDuration`).
    pub refresh_within: Option<i64>,
    /// Never serve at or after this time (`validUntil`).
    pub valid_until: Option<UnixTime>,
}

impl<V> Fetched<V> {
    pub fn new(value: V) -> Self {
        Self {
            value,
            refresh_within: None,
            valid_until: None,
        }
    }
}

/// Where one issuer's document comes from.
pub trait Source: Send + Sync + Sized + 'static {
    type Value: Send + Sync + 'static;

    /// Fetches and parses (bounded by the cache's timeout).
    fn fetch(
        &self,
        fetcher: &Fetcher,
        now: UnixTime,
    ) -> impl Future<Output = Result<Fetched<Self::Value>, FetchError>> + Send;

    /// Registered the same way (same URL, same expected issuer, same trust anchors).
    fn same_as(&self, other: &Self) -> bool;

    /// What the log line says about a fetched value ("keys=3").
    fn describe(value: &Self::Value) -> String;

    /// A document that needs no fetching (a JWKS file): never fetched, served as is.
    fn is_local(&self) -> bool {
        false
    }

    /// A local document's value (`None`: it has nothing usable, every use is refused).
    fn local(&self, _now: UnixTime) -> Option<Self::Value> {
        None
    }
}

/// A cached value with its stamps.
struct Stamped<V> {
    value: Arc<V>,
    fetched_at: UnixTime,
    refresh_at: UnixTime,
    serve_until: UnixTime,
}

/// Longest a request waits on a fetch (SPEC §6: a refusal within a second even while an
/// issuer hangs).
pub const CALLER_WAIT: Duration = Duration::from_secs(1);

/// "Never attempted" marker for `last_attempt`.
const NEVER: UnixTime = i64::MIN;

/// One issuer's cache slot.
pub struct Slot<S: Source> {
    pub issuer_id: String,
    pub source: S,
    current: ArcSwapOption<Stamped<S::Value>>,
    /// Held for the duration of one fetch; waiters re-check `generation` afterwards.
    flight: tokio::sync::Mutex<()>,
    /// Bumped after every completed fetch attempt (success or failure).
    generation: AtomicU64,
    last_attempt: AtomicI64,
    /// A background refresh is queued or running.
    background: AtomicBool,
    /// A local (or seeded) document: never fetched.
    local: bool,
    fetch_ok: Counter,
    fetch_error: Counter,
    /// `tessera_issuer_keys_age_seconds`: created at the first document in hand, so an
    /// issuer that never answered has no age (not an age of 0, as if fresh).
    age: OnceLock<Gauge<f64, AtomicU64>>,
    /// `tessera_issuer_keys_available`: 1 while a document may serve, else 0.
    available: Gauge,
    /// What `/readyz` may say of the last failed fetch ([`FetchError::summary`]), until
    /// one succeeds (the log line has the whole error).
    last_error: ArcSwapOption<String>,
}

/// What `/readyz` says of one issuer's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotStatus {
    Ready,
    /// Nothing that may serve: never fetched, or too stale; with the last fetch error.
    Missing(Option<String>),
}

impl<S: Source> Slot<S> {
    /// The fetch generation, to pass to [`Cache::refresh`] after a look at the value.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn is_remote(&self) -> bool {
        !self.local
    }
}

/// Per-issuer slots for one kind of document. Owned by a verifier, so it survives
/// registry reloads.
pub struct Cache<S: Source> {
    fetcher: Fetcher,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// What is fetched (`jwks`, `saml_metadata`), for log lines.
    what: &'static str,
    timeout: Duration,
    cooldown: i64,
    ttl: i64,
    max_stale: i64,
    /// Issuer id → slot. Locked only to look up or insert, never across a fetch.
    slots: RwLock<HashMap<String, Arc<Slot<S>>>>,
}

impl<S: Source> Cache<S> {
    pub fn new(
        outbound: &OutboundConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        what: &'static str,
    ) -> Result<Self, FetchError> {
        Ok(Self {
            fetcher: Fetcher::new(
                outbound.timeout,
                outbound.max_response_bytes,
                outbound.offline,
            )
            .map_err(FetchError::Http)?,
            clock,
            metrics,
            what,
            timeout: outbound.timeout,
            cooldown: secs(outbound.refresh_cooldown),
            ttl: secs(outbound.keys_ttl),
            max_stale: secs(outbound.max_stale),
            slots: RwLock::new(HashMap::new()),
        })
    }

    /// The slot for `issuer_id` registered with `source`; a different source gets a
    /// fresh slot.
    pub fn slot(&self, issuer_id: &str, source: S) -> Arc<Slot<S>> {
        let find = |map: &HashMap<String, Arc<Slot<S>>>| {
            map.get(issuer_id)
                .filter(|s| s.source.same_as(&source))
                .cloned()
        };
        if let Some(s) = find(&self.slots.read().unwrap_or_else(PoisonError::into_inner)) {
            return s;
        }
        let mut map = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = find(&map) {
            return s;
        }
        let slot = Arc::new(self.new_slot(issuer_id, source));
        map.insert(issuer_id.to_owned(), slot.clone());
        slot
    }

    fn new_slot(&self, issuer_id: &str, source: S) -> Slot<S> {
        let label = |outcome| FetchLabels {
            issuer: issuer_id.to_owned(),
            outcome,
        };
        // Each get_or_create holds a read guard: one handle per statement, or the second
        // call waits for the first guard forever.
        let fetch_ok = self
            .metrics
            .issuer_key_fetches
            .get_or_create(&label("ok"))
            .clone();
        let fetch_error = self
            .metrics
            .issuer_key_fetches
            .get_or_create(&label("error"))
            .clone();
        let available = self
            .metrics
            .issuer_keys_available
            .get_or_create(&IssuerLabels {
                issuer: issuer_id.to_owned(),
            })
            .clone();
        let now = self.clock.now();
        let is_local = source.is_local();
        let local = is_local
            .then(|| source.local(now))
            .flatten()
            .map(|value| Stamped {
                value: Arc::new(value),
                fetched_at: now,
                refresh_at: UnixTime::MAX,
                serve_until: UnixTime::MAX,
            });
        available.set(i64::from(local.is_some()));
        Slot {
            issuer_id: issuer_id.to_owned(),
            local: is_local,
            current: ArcSwapOption::new(local.map(Arc::new)),
            source,
            flight: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_attempt: AtomicI64::new(NEVER),
            background: AtomicBool::new(false),
            fetch_ok,
            fetch_error,
            age: OnceLock::new(),
            available,
            last_error: ArcSwapOption::empty(),
        }
    }

    fn age_gauge(&self, slot: &Slot<S>) -> Gauge<f64, AtomicU64> {
        slot.age
            .get_or_init(|| {
                self.metrics
                    .issuer_keys_age
                    .get_or_create(&IssuerLabels {
                        issuer: slot.issuer_id.clone(),
                    })
                    .clone()
            })
            .clone()
    }

    /// Every remote slot's state, by issuer id (what `/readyz` shows).
    pub fn status(&self) -> Vec<(String, SlotStatus)> {
        let now = self.clock.now();
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = slots
            .values()
            .filter(|s| !s.local)
            .map(|s| {
                let usable = s
                    .current
                    .load()
                    .as_ref()
                    .is_some_and(|c| now < c.serve_until);
                let status = if usable {
                    SlotStatus::Ready
                } else {
                    SlotStatus::Missing(s.last_error.load_full().map(|e| (*e).clone()))
                };
                (s.issuer_id.clone(), status)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Serves `fetched` as `issuer_id`'s document from `source` from now on, as if just
    /// fetched (never past its `validUntil`), and never fetches it: `trust test` runs
    /// offline, and a case supplies what its issuers would publish. Replaces any slot the
    /// issuer had.
    pub fn seed(
        &self,
        issuer_id: &str,
        source: S,
        fetched: Fetched<S::Value>,
    ) -> Result<(), FetchError> {
        let now = self.clock.now();
        let serve_until = fetched.valid_until.unwrap_or(UnixTime::MAX);
        if now >= serve_until {
            return Err(FetchError::Expired);
        }
        let mut slot = self.new_slot(issuer_id, source);
        slot.local = true;
        slot.available.set(1);
        slot.current.store(Some(Arc::new(Stamped {
            value: Arc::new(fetched.value),
            fetched_at: now,
            refresh_at: UnixTime::MAX,
            serve_until,
        })));
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(issuer_id.to_owned(), Arc::new(slot));
        Ok(())
    }

    /// Drops the slots `keep` rejects (issuers removed or changed by a reload).
    pub fn retain(&self, keep: impl Fn(&str, &S) -> bool) {
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, s| keep(id, &s.source));
    }

    /// Starts the first fetch of a remote slot that has nothing yet; returns at once.
    /// Outside a Tokio runtime it does nothing (the first use fetches).
    pub fn warm(self: &Arc<Self>, slot: &Arc<Slot<S>>) {
        if slot.local || slot.current.load().is_some() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, slot, gen) = (self.clone(), slot.clone(), slot.generation());
        rt.spawn(async move { cache.refresh(&slot, gen).await });
    }

    /// The value usable now: fetched on first use (waiting on the single flight),
    /// refreshed in the background when due; `None` when there is none that may serve.
    pub async fn usable(self: &Arc<Self>, slot: &Arc<Slot<S>>) -> Option<Arc<S::Value>> {
        let gen = slot.generation();
        if let Some(value) = self.serving(slot) {
            return Some(value);
        }
        if slot.local {
            return None;
        }
        self.refresh_detached(slot, gen).await;
        self.serving(slot)
    }

    /// [`Cache::refresh`] on its own task, awaited for at most [`CALLER_WAIT`]: a caller
    /// that goes away mid-fetch (a client disconnecting drops its request's future) cannot
    /// abandon the attempt after it set `last_attempt`, which would leave the issuer
    /// refused for a whole cooldown; and an issuer that hangs costs a caller one second,
    /// not the whole outbound timeout (SPEC §6): the fetch goes on and serves later
    /// requests.
    pub async fn refresh_detached(self: &Arc<Self>, slot: &Arc<Slot<S>>, seen: u64) {
        let (cache, slot) = (self.clone(), slot.clone());
        let task = tokio::spawn(async move { cache.refresh(&slot, seen).await });
        // A panicked fetch is a failed attempt, one still running a later one's business:
        // either way the caller finds no value and says so.
        let _ = tokio::time::timeout(CALLER_WAIT, task).await;
    }

    /// The current value if it may still serve; queues a background refresh when due.
    fn serving(self: &Arc<Self>, slot: &Arc<Slot<S>>) -> Option<Arc<S::Value>> {
        let current = slot.current.load_full()?;
        let now = self.clock.now();
        // A local file serves forever; a seeded document until its `validUntil`.
        if now >= current.serve_until {
            slot.available.set(0);
            return None;
        }
        if slot.local {
            return Some(current.value.clone());
        }
        if let Some(age) = slot.age.get() {
            #[expect(clippy::cast_precision_loss, reason = "a gauge of seconds")]
            age.set(now.saturating_sub(current.fetched_at) as f64);
        }
        if now >= current.refresh_at {
            self.spawn_background(slot);
        }
        Some(current.value.clone())
    }

    fn spawn_background(self: &Arc<Self>, slot: &Arc<Slot<S>>) {
        if slot.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            slot.background.store(false, Ordering::Release);
            return;
        };
        let (cache, slot, gen) = (self.clone(), slot.clone(), slot.generation());
        rt.spawn(async move {
            cache.refresh(&slot, gen).await;
            slot.background.store(false, Ordering::Release);
        });
    }

    /// One fetch attempt, single flight: callers that saw generation `seen` queue on the
    /// slot's own mutex; when the fetch in flight completes the generation has moved and
    /// they return without fetching again. At most one attempt per `cooldown`.
    pub async fn refresh(&self, slot: &Slot<S>, seen: u64) {
        if slot.local {
            return;
        }
        let _flight = slot.flight.lock().await;
        if slot.generation() != seen {
            return;
        }
        let now = self.clock.now();
        let last = slot.last_attempt.load(Ordering::Acquire);
        if last != NEVER && now.saturating_sub(last) < self.cooldown {
            return;
        }
        slot.last_attempt.store(now, Ordering::Release);
        let fetch = slot.source.fetch(&self.fetcher, now);
        let result = match tokio::time::timeout(self.timeout, fetch).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        match result.and_then(|f| self.stamp(f, now)) {
            Ok(stamped) => {
                tracing::info!(
                    issuer = %slot.issuer_id,
                    what = self.what,
                    got = %S::describe(&stamped.value),
                    "issuer document fetched"
                );
                slot.fetch_ok.inc();
                self.age_gauge(slot).set(0.0);
                slot.available.set(1);
                slot.last_error.store(None);
                slot.current.store(Some(Arc::new(stamped)));
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %slot.issuer_id,
                    what = self.what,
                    error = %e,
                    "issuer document fetch failed"
                );
                slot.fetch_error.inc();
                slot.last_error.store(Some(Arc::new(e.summary())));
            }
        }
        slot.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Refresh when due (`keys_ttl`, or the document's sooner `cacheDuration`); serve
    /// until `max_stale` after the fetch; never past `validUntil`.
    fn stamp(
        &self,
        fetched: Fetched<S::Value>,
        now: UnixTime,
    ) -> Result<Stamped<S::Value>, FetchError> {
        let valid_until = fetched.valid_until.unwrap_or(UnixTime::MAX);
        if now >= valid_until {
            return Err(FetchError::Expired);
        }
        let within = fetched.refresh_within.map_or(self.ttl, |d| d.min(self.ttl));
        Ok(Stamped {
            value: Arc::new(fetched.value),
            fetched_at: now,
            refresh_at: now.saturating_add(within).min(valid_until),
            serve_until: now.saturating_add(self.max_stale).min(valid_until),
        })
    }
}
