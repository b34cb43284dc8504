//! The JWT path behind [`super::Verifier`] (SPEC §4, §4.1): one verifier and one key cache
//! for every JWT kind (ID tokens, access tokens, `jwt`, RFC 7523 assertions).
//!
//! The pipeline, in order: size cap and strict parse ([`jwt::parse_unverified`]); the
//! unverified `iss` only selects the registry entry, which must be allowed for this caller
//! and accept this token type; `alg` must be in that entry's allow-list and `typ` fit the
//! token type; the signature is checked with a key from *that* issuer's JWKS, chosen by
//! `kid` (or `x5t`, or by key type); only then are the claims checked, against the
//! injected [`Clock`](crate::clock::Clock).
//!
//! Keys live in per-issuer caches inside the [`JwtVerifier`] (so they survive registry
//! reloads): read with one atomic load on the hot path; refetched in the background after
//! `keys_ttl`; a failing endpoint keeps the last good keys serving until `max_stale`; an
//! unknown `kid` triggers at most one refresh per `refresh_cooldown`, single-flight per
//! issuer, so a dead issuer never blocks another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::Value;

use crate::clock::SharedClock;
use crate::config::OutboundConfig;
use crate::metrics::{FetchLabels, IssuerLabels, Metrics};
use crate::trust::{IssuerEntry, IssuerKind, JwsAlg, OidcSettings, Registry, TokenType};

use super::error::{self, VerifyError};
use super::fetch::{FetchError, Fetcher};
use super::jwt::{self, ClaimRules, UnverifiedJwt};
use super::keys::{self, CachedSource, KeyCache, KeySet, VerifyKey, NEVER};
use super::{check_admitted, BrokerIdentity, Expectation, Purpose, Refusal, VerifiedSubject};

/// At most this many keys are tried for a token without `kid` (bounds the work a
/// kid-less forgery can cause).
const MAX_KEYS_TRIED: usize = 8;

/// Verifies JWTs from registry issuers; owns the per-issuer key caches. Cheap to share
/// (`Arc` inside); create one per process.
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").finish_non_exhaustive()
    }
}

struct Inner {
    fetcher: Fetcher,
    broker: Arc<BrokerIdentity>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    timeout: Duration,
    cooldown: i64,
    keys_ttl: i64,
    max_stale: i64,
    /// Issuer id → cache. The lock is held only to look up or insert an `Arc`, never
    /// across a fetch.
    caches: RwLock<HashMap<String, Arc<KeyCache>>>,
}

use crate::verify::secs;

/// Result of choosing keys for a token.
enum Selection<'a> {
    Try(Vec<&'a VerifyKey>),
    /// `kid` (or `x5t`) names no key in the set.
    Unknown,
    /// The named key exists but does not fit `alg` (kty/crv/JWK alg).
    Mismatch,
    /// No key of a fitting type at all.
    NoFit,
}

impl JwtVerifier {
    pub fn new(
        outbound: &OutboundConfig,
        broker: Arc<BrokerIdentity>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let fetcher = Fetcher::new(outbound.timeout, outbound.max_response_bytes)
            .map_err(|_| VerifyError::Internal("cannot build the outbound HTTP client"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                fetcher,
                broker,
                clock,
                metrics,
                timeout: outbound.timeout,
                cooldown: secs(outbound.refresh_cooldown),
                keys_ttl: secs(outbound.keys_ttl),
                max_stale: secs(outbound.max_stale),
                caches: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Verifies `token` as `token_type` for `expect`.
    pub async fn verify(
        &self,
        registry: &Registry,
        token: &str,
        token_type: TokenType,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, Refusal> {
        // SPEC §4.1: size cap, compact JWS, strict base64url/JSON, crit/JWE/nested refused.
        let jwt = jwt::parse_unverified(token)?;

        // `none` and HS* are not representable as JwsAlg: refused before anything else.
        let alg =
            JwsAlg::parse(&jwt.header.alg).ok_or_else(|| VerifyError::AlgorithmNotAllowed {
                alg: error::sanitize_label(&jwt.header.alg),
            })?;

        // The unverified iss only selects the registry entry (STYLE: trustpub shape).
        let iss = match jwt.claims.get("iss") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(VerifyError::Malformed("iss is not a string").into()),
            None => return Err(VerifyError::MissingClaim("iss").into()),
        };
        let entry = registry
            .issuer_by_iss(iss, IssuerKind::Oidc)
            .ok_or(VerifyError::UnknownIssuer)?;
        let Some(oidc) = entry.oidc() else {
            return Err(VerifyError::UnknownIssuer.into());
        };
        check_admitted(entry, token_type, expect)?;
        self.verify_for(entry, oidc, jwt, alg, token_type, expect)
            .await
            .map_err(|e| e.of(entry))
    }

    /// The checks once the entry is known; every error here names that entry.
    async fn verify_for(
        &self,
        entry: &Arc<IssuerEntry>,
        oidc: &OidcSettings,
        jwt: UnverifiedJwt<'_>,
        alg: JwsAlg,
        token_type: TokenType,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, VerifyError> {
        let inner = &self.inner;
        // SPEC §4.1: alg from the issuer's allow-list only, never the header's choice.
        if !oidc.algorithms.contains(&alg) {
            return Err(VerifyError::AlgorithmNotAllowed {
                alg: error::sanitize_label(&jwt.header.alg),
            });
        }
        jwt::check_typ(
            jwt.header.typ.as_deref(),
            token_type,
            oidc.require_access_token_typ,
        )?;

        // Keys bound to the issuer that iss selected.
        let cache = inner.cache_for(entry, oidc);
        inner.check_signature(&cache, &jwt, alg).await?;

        let bearer;
        let audiences: &[String] = match expect.purpose {
            Purpose::Exchange => &entry.audiences,
            Purpose::BearerGrant => {
                bearer = inner.broker.bearer_audiences();
                &bearer
            }
        };
        let times = jwt::check_claims(
            &jwt.claims,
            &ClaimRules {
                issuer: &entry.issuer,
                issuer_id: &entry.id,
                audiences,
                token_type,
                skew: secs(entry.clock_skew),
                max_age: entry.max_age.map(|d| d.as_secs()),
                now: inner.clock.now(),
            },
        )?;
        jwt::into_subject(entry.clone(), token_type, jwt.claims, times)
    }

    /// Starts background key fetches for every URL-keyed issuer; returns at once. Also
    /// drops caches of issuers no longer in `registry` (call it after each reload).
    /// Outside a Tokio runtime it only prunes.
    pub fn warm_up(&self, registry: &Registry) {
        let inner = &self.inner;
        {
            let mut map = inner.caches.write().unwrap_or_else(PoisonError::into_inner);
            map.retain(|id, c| {
                registry
                    .issuers
                    .get(id)
                    .and_then(|e| Some((e, e.oidc()?)))
                    .is_some_and(|(e, o)| c.source.matches(&o.keys) && c.issuer == e.issuer)
            });
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("verifier warm-up outside a runtime: keys are fetched on first use");
            return;
        };
        for entry in registry.issuers.values() {
            let Some(oidc) = entry.oidc() else {
                continue;
            };
            let cache = inner.cache_for(entry, oidc);
            if !cache.source.is_remote() || cache.current.load().is_some() {
                continue;
            }
            let gen = cache.generation.load(Ordering::Acquire);
            let inner = self.inner.clone();
            rt.spawn(async move { inner.refresh(&cache, gen).await });
        }
    }
}

impl Inner {
    /// The cache for this entry's (issuer id, key source); a changed source gets a fresh
    /// cache. Never holds the map lock across anything slow.
    fn cache_for(&self, entry: &IssuerEntry, oidc: &OidcSettings) -> Arc<KeyCache> {
        {
            let map = self.caches.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = map.get(&entry.id) {
                if c.source.matches(&oidc.keys) && c.issuer == entry.issuer {
                    return c.clone();
                }
            }
        }
        let mut map = self.caches.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(&entry.id) {
            if c.source.matches(&oidc.keys) && c.issuer == entry.issuer {
                return c.clone();
            }
        }
        let source = CachedSource::of(&oidc.keys);
        let current = match &source {
            CachedSource::File(jwks) => match keys::parse_jwks(jwks, self.clock.now()) {
                Ok(set) => Some(Arc::new(set)),
                Err(e) => {
                    tracing::error!(issuer = %entry.id, error = %e, "jwks_file has no usable key");
                    None
                }
            },
            _ => None,
        };
        let label = |outcome| FetchLabels {
            issuer: entry.id.clone(),
            outcome,
        };
        // Each get_or_create returns a read guard: take one handle per statement, or the
        // second call deadlocks waiting for the first guard.
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
                issuer: entry.id.clone(),
            })
            .clone();
        let cache = Arc::new(KeyCache {
            issuer_id: entry.id.clone(),
            issuer: entry.issuer.clone(),
            source,
            current: ArcSwapOption::new(current),
            flight: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_attempt: AtomicI64::new(NEVER),
            background: AtomicBool::new(false),
            fetch_ok,
            fetch_error,
            age,
        });
        map.insert(entry.id.clone(), cache.clone());
        cache
    }

    /// Keys usable now: fetched on first use (waiting on the single flight), refreshed in
    /// the background after `keys_ttl`, refused as unavailable beyond `max_stale`.
    async fn usable_keys(
        self: &Arc<Self>,
        cache: &Arc<KeyCache>,
    ) -> Result<Arc<KeySet>, VerifyError> {
        let unavailable = || VerifyError::IssuerUnavailable {
            issuer: cache.issuer_id.clone(),
        };
        let gen = cache.generation.load(Ordering::Acquire);
        let current = cache.current.load_full();
        if !cache.source.is_remote() {
            return current.ok_or_else(unavailable);
        }
        let now = self.clock.now();
        let fresh_enough = |set: &KeySet| now.saturating_sub(set.fetched_at) <= self.max_stale;
        match current {
            Some(set) if fresh_enough(&set) => {
                let age = now.saturating_sub(set.fetched_at);
                #[expect(clippy::cast_precision_loss, reason = "a gauge of seconds")]
                cache.age.set(age as f64);
                if age >= self.keys_ttl {
                    self.spawn_background(cache);
                }
                Ok(set)
            }
            // No keys, or only keys older than max_stale: fetch now (single flight,
            // cooldown honoured), then serve what there is or report the issuer down.
            _ => {
                self.refresh(cache, gen).await;
                let now = self.clock.now();
                cache
                    .current
                    .load_full()
                    .filter(|set| now.saturating_sub(set.fetched_at) <= self.max_stale)
                    .ok_or_else(unavailable)
            }
        }
    }

    fn spawn_background(self: &Arc<Self>, cache: &Arc<KeyCache>) {
        if cache.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            cache.background.store(false, Ordering::Release);
            return;
        };
        let inner = self.clone();
        let cache = cache.clone();
        let gen = cache.generation.load(Ordering::Acquire);
        rt.spawn(async move {
            inner.refresh(&cache, gen).await;
            cache.background.store(false, Ordering::Release);
        });
    }

    /// One fetch attempt, single-flight: callers that saw generation `seen` queue on the
    /// issuer's own mutex; when the fetch in flight completes the generation has moved
    /// and they return without fetching again. At most one attempt per `cooldown`.
    async fn refresh(&self, cache: &KeyCache, seen: u64) {
        let _flight = cache.flight.lock().await;
        if cache.generation.load(Ordering::Acquire) != seen {
            return;
        }
        let now = self.clock.now();
        let last = cache.last_attempt.load(Ordering::Acquire);
        if last != NEVER && now.saturating_sub(last) < self.cooldown {
            return;
        }
        cache.last_attempt.store(now, Ordering::Release);
        let result = match tokio::time::timeout(self.timeout, self.fetch_keys(cache)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        match result {
            Ok(set) => {
                tracing::info!(
                    issuer = %cache.issuer_id,
                    keys = set.keys.len(),
                    skipped = set.skipped,
                    "issuer keys fetched"
                );
                cache.fetch_ok.inc();
                cache.age.set(0.0);
                cache.current.store(Some(Arc::new(set)));
            }
            Err(e) => {
                tracing::warn!(issuer = %cache.issuer_id, error = %e, "issuer key fetch failed");
                cache.fetch_error.inc();
            }
        }
        cache.generation.fetch_add(1, Ordering::AcqRel);
    }

    async fn fetch_keys(&self, cache: &KeyCache) -> Result<KeySet, FetchError> {
        let jwks_uri = match &cache.source {
            CachedSource::Discovery(url) => {
                self.fetcher.discover_jwks_uri(url, &cache.issuer).await?
            }
            CachedSource::JwksUri(url) => url.clone(),
            CachedSource::File(_) => return Err(FetchError::BadJwksUri("file source")),
        };
        let doc = self.fetcher.get_json(&jwks_uri).await?;
        Ok(keys::parse_jwks(&doc, self.clock.now())?)
    }

    /// SPEC §4.1 key selection and signature check. An unknown `kid` (or `x5t`) gets one
    /// rate-limited refresh, then is refused.
    async fn check_signature(
        self: &Arc<Self>,
        cache: &Arc<KeyCache>,
        jwt: &UnverifiedJwt<'_>,
        alg: JwsAlg,
    ) -> Result<(), VerifyError> {
        let mut refreshed = false;
        loop {
            let gen = cache.generation.load(Ordering::Acquire);
            let set = self.usable_keys(cache).await?;
            let selection = select_keys(&set, jwt, alg, refreshed);
            let candidates = match selection {
                Selection::Try(c) => c,
                Selection::Unknown if !refreshed => {
                    if cache.source.is_remote() {
                        self.refresh(cache, gen).await;
                    }
                    refreshed = true;
                    continue;
                }
                Selection::Unknown => {
                    return Err(if jwt.header.kid.is_some() {
                        VerifyError::UnknownKeyId {
                            issuer: cache.issuer_id.clone(),
                        }
                    } else {
                        VerifyError::NoMatchingKey {
                            issuer: cache.issuer_id.clone(),
                        }
                    })
                }
                Selection::Mismatch => {
                    return Err(VerifyError::AlgorithmKeyMismatch {
                        alg: error::sanitize_label(&jwt.header.alg),
                    })
                }
                Selection::NoFit => {
                    return Err(VerifyError::NoMatchingKey {
                        issuer: cache.issuer_id.clone(),
                    })
                }
            };
            for key in candidates.into_iter().take(MAX_KEYS_TRIED) {
                // Signature only: jsonwebtoken's claim validation reads the system
                // clock, so claims are checked by jwt::check_claims with our Clock.
                if key.verify_signature(alg, jwt.signing_input.as_bytes(), jwt.signature) {
                    return Ok(());
                }
            }
            return Err(VerifyError::SignatureInvalid);
        }
    }
}

/// SPEC §4.1: `kid` present ⇒ exactly the keys with that `kid`; `kid` absent ⇒ keys whose
/// `x5t` (or `kid`) equals the header's `x5t` (Entra ID v1), else every key of a fitting
/// type. An unmatched `x5t` is `Unknown` until a refresh has been tried.
fn select_keys<'a>(
    set: &'a KeySet,
    jwt: &UnverifiedJwt<'_>,
    alg: JwsAlg,
    refreshed: bool,
) -> Selection<'a> {
    let fits = |named: Vec<&'a VerifyKey>| {
        if named.is_empty() {
            return Selection::Unknown;
        }
        let ok: Vec<_> = named.into_iter().filter(|k| k.accepts(alg)).collect();
        if ok.is_empty() {
            Selection::Mismatch
        } else {
            Selection::Try(ok)
        }
    };
    if let Some(kid) = &jwt.header.kid {
        return fits(
            set.keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
        );
    }
    if let Some(x5t) = &jwt.header.x5t {
        let named: Vec<_> = set
            .keys
            .iter()
            .filter(|k| {
                k.x5t.as_deref() == Some(x5t.as_str()) || k.kid.as_deref() == Some(x5t.as_str())
            })
            .collect();
        if !named.is_empty() {
            return fits(named);
        }
        if !refreshed {
            return Selection::Unknown;
        }
    }
    let any: Vec<_> = set.keys.iter().filter(|k| k.accepts(alg)).collect();
    if any.is_empty() {
        Selection::NoFit
    } else {
        Selection::Try(any)
    }
}
