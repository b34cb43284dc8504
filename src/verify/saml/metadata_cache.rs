//! `metadata_url` issuers: IdP metadata fetched from the registry's URL, cached per issuer
//! with the same rules as JWKS (SPEC §4, §6): refreshed in the background when due, at most
//! one fetch per issuer in flight (single flight) and per `refresh_cooldown`, the last good
//! copy kept serving when a fetch fails (for at most `max_stale`, and never past its
//! `validUntil`), a dead IdP never blocking another.
//!
//! When it is due: `cacheDuration` from the metadata, else `outbound.keys_ttl`, and never
//! later than `validUntil`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;
use url::Url;

use crate::clock::{SharedClock, UnixTime};
use crate::config::OutboundConfig;
use crate::metrics::{FetchLabels, IssuerLabels, Metrics};
use crate::trust::metadata::{read_idp_metadata, MetadataError, MetadataSigners};
use crate::trust::{IssuerEntry, Registry, SamlKeySource, SigningCert};
use crate::verify::error::VerifyError;
use crate::verify::fetch::{FetchError, Fetcher};

/// One fetched copy.
#[derive(Debug)]
struct Fetched {
    certs: Arc<Vec<SigningCert>>,
    fetched_at: UnixTime,
    /// When a background refresh is due.
    refresh_at: UnixTime,
    /// Never served after this (`validUntil`).
    valid_until: UnixTime,
}

#[derive(Debug)]
struct Entry {
    issuer_id: String,
    entity_id: String,
    url: Url,
    /// `metadata_signing_cert_file`: every fetched copy must be signed by one of these.
    signers: Option<Arc<Vec<SigningCert>>>,
    allow_sha1: bool,
    current: ArcSwapOption<Fetched>,
    flight: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    last_attempt: AtomicI64,
    background: AtomicBool,
    fetch_ok: Counter,
    fetch_error: Counter,
    age: Gauge<f64, AtomicU64>,
}

const NEVER: UnixTime = i64::MIN;

pub struct MetadataCache {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Fetcher,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    timeout: Duration,
    cooldown: i64,
    ttl: i64,
    max_stale: i64,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

use crate::verify::secs;

impl MetadataCache {
    pub fn new(
        outbound: &OutboundConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let fetcher = Fetcher::new(outbound.timeout, outbound.max_response_bytes)
            .map_err(|_| VerifyError::Internal("cannot build the outbound HTTP client"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                fetcher,
                clock,
                metrics,
                timeout: outbound.timeout,
                cooldown: secs(outbound.refresh_cooldown),
                ttl: secs(outbound.keys_ttl),
                max_stale: secs(outbound.max_stale),
                entries: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The signing certificates usable now, fetching (single flight) when there are none.
    pub async fn certs(&self, issuer: &IssuerEntry) -> Result<Arc<Vec<SigningCert>>, ()> {
        let inner = &self.inner;
        let entry = inner.entry_for(issuer).ok_or(())?;
        let gen = entry.generation.load(Ordering::Acquire);
        if let Some(certs) = inner.usable(&entry) {
            return Ok(certs);
        }
        inner.refresh(&entry, gen).await;
        inner.usable(&entry).ok_or(())
    }

    /// Starts fetches for every metadata_url issuer not fetched yet, and forgets issuers
    /// no longer registered (call after each reload).
    pub fn warm_up(&self, registry: &Registry) {
        let inner = &self.inner;
        {
            let mut map = inner
                .entries
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            map.retain(|id, e| registry.issuers.get(id).is_some_and(|i| e.serves(i)));
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for issuer in registry.issuers.values() {
            let Some(entry) = inner.entry_for(issuer) else {
                continue;
            };
            if entry.current.load().is_some() {
                continue;
            }
            let gen = entry.generation.load(Ordering::Acquire);
            let inner = self.inner.clone();
            rt.spawn(async move { inner.refresh(&entry, gen).await });
        }
    }
}

impl Entry {
    /// Whether this entry was built for `issuer` as it is registered now (a reload that
    /// changes its URL, entity id or metadata signers gets a fresh entry).
    fn serves(&self, issuer: &IssuerEntry) -> bool {
        let Some(saml) = issuer.saml() else {
            return false;
        };
        let SamlKeySource::MetadataUrl { url, signers } = &saml.keys else {
            return false;
        };
        let same_signers = match (&self.signers, signers) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        *url == self.url
            && issuer.issuer == self.entity_id
            && same_signers
            && saml.allow_sha1 == self.allow_sha1
    }
}

impl Inner {
    /// The cache entry of a metadata_url issuer (None for other issuers).
    fn entry_for(&self, issuer: &IssuerEntry) -> Option<Arc<Entry>> {
        let saml = issuer.saml()?;
        let SamlKeySource::MetadataUrl { url, signers } = &saml.keys else {
            return None;
        };
        let same = |e: &Entry| e.serves(issuer);
        if let Some(e) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&issuer.id)
            .filter(|e| same(e))
        {
            return Some(e.clone());
        }
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get(&issuer.id).filter(|e| same(e)) {
            return Some(e.clone());
        }
        let label = |outcome| FetchLabels {
            issuer: issuer.id.clone(),
            outcome,
        };
        // One handle per statement: each get_or_create holds a read guard.
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
        let age = self
            .metrics
            .issuer_keys_age
            .get_or_create(&IssuerLabels {
                issuer: issuer.id.clone(),
            })
            .clone();
        let entry = Arc::new(Entry {
            issuer_id: issuer.id.clone(),
            entity_id: issuer.issuer.clone(),
            url: url.clone(),
            signers: signers.clone(),
            allow_sha1: saml.allow_sha1,
            current: ArcSwapOption::empty(),
            flight: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_attempt: AtomicI64::new(NEVER),
            background: AtomicBool::new(false),
            fetch_ok,
            fetch_error,
            age,
        });
        map.insert(issuer.id.clone(), entry.clone());
        Some(entry)
    }

    /// The current copy if it may still serve; queues a background refresh when due.
    fn usable(self: &Arc<Self>, entry: &Arc<Entry>) -> Option<Arc<Vec<SigningCert>>> {
        let now = self.clock.now();
        let current = entry.current.load_full()?;
        if now >= current.valid_until || now.saturating_sub(current.fetched_at) > self.max_stale {
            return None;
        }
        #[expect(clippy::cast_precision_loss, reason = "a gauge of seconds")]
        entry.age.set(now.saturating_sub(current.fetched_at) as f64);
        if now >= current.refresh_at && !entry.background.swap(true, Ordering::AcqRel) {
            let inner = self.clone();
            let bg = entry.clone();
            let gen = entry.generation.load(Ordering::Acquire);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    inner.refresh(&bg, gen).await;
                    bg.background.store(false, Ordering::Release);
                });
            } else {
                entry.background.store(false, Ordering::Release);
            }
        }
        Some(current.certs.clone())
    }

    /// One fetch attempt; waiters that saw generation `seen` return when it moves.
    async fn refresh(&self, entry: &Entry, seen: u64) {
        let _flight = entry.flight.lock().await;
        if entry.generation.load(Ordering::Acquire) != seen {
            return;
        }
        let now = self.clock.now();
        let last = entry.last_attempt.load(Ordering::Acquire);
        if last != NEVER && now.saturating_sub(last) < self.cooldown {
            return;
        }
        entry.last_attempt.store(now, Ordering::Release);
        let result = match tokio::time::timeout(self.timeout, self.fetch(entry)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        match result {
            Ok(fetched) => {
                tracing::info!(
                    issuer = %entry.issuer_id,
                    certs = fetched.certs.len(),
                    "SAML metadata fetched"
                );
                entry.fetch_ok.inc();
                entry.age.set(0.0);
                entry.current.store(Some(Arc::new(fetched)));
            }
            Err(e) => {
                tracing::warn!(issuer = %entry.issuer_id, error = %e, "SAML metadata fetch failed");
                entry.fetch_error.inc();
            }
        }
        entry.generation.fetch_add(1, Ordering::AcqRel);
    }

    async fn fetch(&self, entry: &Entry) -> Result<Fetched, FetchError> {
        let bytes = self
            .fetcher
            .get_bytes(&entry.url, "application/samlmetadata+xml, application/xml")
            .await?;
        let md = match &entry.signers {
            // roxmltree only, bounded: on this task (metadata is small).
            None => read_idp_metadata(&bytes, &entry.entity_id, None)?,
            // xmlsec verifies the signature: blocking, off the async workers.
            Some(signers) => {
                let (signers, entity_id) = (signers.clone(), entry.entity_id.clone());
                let allow_sha1 = entry.allow_sha1;
                tokio::task::spawn_blocking(move || {
                    let policy = MetadataSigners {
                        certs: &signers,
                        allow_sha1,
                    };
                    read_idp_metadata(&bytes, &entity_id, Some(policy))
                })
                .await
                .map_err(|_| FetchError::Metadata(MetadataError::Unsigned))??
            }
        };
        let now = self.clock.now();
        let valid_until = md.valid_until.unwrap_or(i64::MAX);
        if now >= valid_until {
            return Err(FetchError::Metadata(MetadataError::Expired));
        }
        let refresh_at = now
            .saturating_add(md.cache_duration.unwrap_or(self.ttl).min(self.ttl))
            .min(valid_until);
        Ok(Fetched {
            certs: Arc::new(md.certs),
            fetched_at: now,
            refresh_at,
            valid_until,
        })
    }
}
