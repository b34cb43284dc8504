//! Opaque access tokens and foreign refresh tokens behind [`super::Verifier`]: RFC 7662
//! introspection at the issuer (SPEC §2, §2.1, §4).
//!
//! A token that is neither a JWT nor SAML carries no issuer, so it is tried against the
//! calling client's allowed issuers of kind `introspection`, in registry order: the first
//! that says `active` decides. The response is then checked like a JWT's claims (`iss`
//! when present, `aud`, `exp` required, `nbf`, `iat`, `max_age`) and becomes the CEL
//! `assertion`. The request names the declared type in `token_type_hint` (RFC 7662 §2.1),
//! and results are cached per (issuer, declared type, token digest) until the token's `exp`
//! and at most the entry's `cache_ttl`, inactive ones for `cache_ttl`: a steady stream of
//! one token costs one introspection, a refused one is not re-asked on every request, and
//! an answer about a string asked as one type never answers for it as another (an access
//! token never passes as a refresh token, nor the reverse). Nothing but the token's SHA-256
//! is kept.
//!
//! Single flight, as for JWKS fetches: concurrent first presentations of one token share
//! one call, on a task of its own; a caller waits for it at most [`CALLER_WAIT`] (an
//! endpoint that hangs costs a request one second, SPEC §6) and the call goes on, its
//! answer cached for the retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::cache::CALLER_WAIT;
use super::fetch::{FetchError, Fetcher};
use crate::clock::{SharedClock, UnixTime};
use crate::metrics::{FetchLabels, Metrics};
use crate::secret::Secret;
use crate::trust::{IntrospectionAuth, IntrospectionSettings, IssuerEntry, IssuerKind, Registry};
use crate::verify::fetch::OutboundConfig;

use super::error::VerifyError;
use super::jwt::{self, ClaimRules};
use super::{secs, Expectation, Purpose, Refusal, VerifiedSubject};
use crate::trust::TokenType;

/// At most this many cached results ([`super::bound_memo`]): memory stays bounded
/// whatever tokens are sent.
const MAX_CACHED: usize = 100_000;
/// Most introspection calls in flight at once: a call outlives its caller (up to the
/// outbound timeout), so without a cap distinct tokens could pile up calls; beyond it a
/// new token is answered 503 at once.
const MAX_IN_FLIGHT: usize = 256;
/// An introspection response larger than this is refused (RFC 7662 responses are small).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the issuer said about one token.
#[derive(Clone)]
enum Answer {
    Active(Arc<Map<String, Value>>),
    Inactive,
}

#[derive(Clone)]
struct Cached {
    answer: Answer,
    until: UnixTime,
}

/// One cache entry per issuer, declared type and token: the endpoint was asked about the
/// token as that type (its `token_type_hint`), so its answer holds for that type only.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    issuer: crate::protocol::IssuerId,
    token_type: TokenType,
    digest: [u8; 32],
}

impl Key {
    fn new(entry: &IssuerEntry, token_type: TokenType, token: &str) -> Self {
        Self {
            issuer: entry.id.clone(),
            token_type,
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }
}

type Outcome = Option<Result<Answer, Arc<IntrospectionError>>>;

pub struct IntrospectionVerifier {
    fetcher: Fetcher,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    cache: Arc<Mutex<HashMap<Key, Cached>>>,
    /// Calls in flight, by [`Key`]: later callers wait on the first one's.
    in_flight: Arc<Mutex<HashMap<Key, watch::Receiver<Outcome>>>>,
}

/// Why an introspection call failed: for the audit row and logs, never shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectionError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("response is not an RFC 7662 JSON object: {0}")]
    NotJson(VerifyError),
    #[error("response has no boolean active member")]
    NoActive,
    /// [`MAX_IN_FLIGHT`] calls are already waiting for their endpoints.
    #[error("{MAX_IN_FLIGHT} introspection calls are already in flight")]
    Busy,
    /// The call in flight did not answer within [`CALLER_WAIT`]; it goes on, and its
    /// answer serves a retry.
    #[error("no answer within {} s (the call goes on; its answer serves a retry)", CALLER_WAIT.as_secs())]
    Pending,
}

impl IntrospectionVerifier {
    pub fn new(
        outbound: &OutboundConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let fetcher = Fetcher::new(outbound.timeout, MAX_RESPONSE_BYTES, outbound.offline)
            .map_err(|_| VerifyError::Internal("the introspection HTTP client"))?;
        Ok(Self {
            fetcher,
            clock,
            metrics,
            cache: Arc::default(),
            in_flight: Arc::default(),
        })
    }

    /// Whether `expect` admits any introspection issuer for `token_type`: only then is
    /// an access token that is not a JWT, or a refresh token, tried here.
    pub fn applies(registry: &Registry, token_type: TokenType, expect: &Expectation<'_>) -> bool {
        candidates(registry, token_type, expect).next().is_some()
    }

    pub async fn verify(
        &self,
        registry: &Registry,
        token: &str,
        token_type: TokenType,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, Refusal> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge {
                limit: jwt::MAX_TOKEN_BYTES,
            }
            .into());
        }
        let mut unreachable = None;
        let mut tried = Vec::new();
        for entry in candidates(registry, token_type, expect) {
            let Some(settings) = entry.introspection() else {
                continue;
            };
            tried.push(entry);
            let key = Key::new(entry, token_type, token);
            match self.answer(entry, settings, token, key).await {
                Ok(Answer::Active(claims)) => {
                    return self
                        .accept(entry, (*claims).clone(), token_type, expect.purpose)
                        .map_err(|e| e.of(entry));
                }
                Ok(Answer::Inactive) => {}
                Err(cause) => {
                    tracing::warn!(issuer = %entry.id, error = %cause, "introspection failed");
                    unreachable.get_or_insert(entry);
                }
            }
        }
        let only = (tried.len() == 1).then(|| tried[0]);
        Err(match (unreachable, only) {
            (Some(entry), _) => VerifyError::IssuerUnreachable {
                issuer: entry.id.clone(),
            }
            .of(entry),
            (None, Some(entry)) => VerifyError::Inactive.of(entry),
            (None, None) => VerifyError::Inactive.into(),
        })
    }

    /// The cached answer, or the answer of the call in flight (started here when there is
    /// none), waited for at most [`CALLER_WAIT`].
    async fn answer(
        &self,
        entry: &IssuerEntry,
        settings: &IntrospectionSettings,
        token: &str,
        key: Key,
    ) -> Result<Answer, Arc<IntrospectionError>> {
        if let Some(answer) = self.cached(&key) {
            self.count(entry, "cached");
            return Ok(answer);
        }
        let Some(mut rx) = self.flight(entry, settings, token, key) else {
            return Err(Arc::new(IntrospectionError::Busy));
        };
        let outcome = match tokio::time::timeout(CALLER_WAIT, rx.wait_for(Option::is_some)).await {
            Ok(Ok(outcome)) => outcome.clone(),
            // The call's task ended without an answer (it panicked): a failed call.
            Ok(Err(_)) | Err(_) => None,
        };
        outcome.unwrap_or(Err(Arc::new(IntrospectionError::Pending)))
    }

    /// The unexpired answer cached under `key`: about this token asked as this type only.
    fn cached(&self, key: &Key) -> Option<Answer> {
        let now = self.clock.now();
        lock(&self.cache)
            .get(key)
            .filter(|c| c.until > now)
            .map(|c| c.answer.clone())
    }

    /// The receiver of the call in flight for `key`, starting it when there is none.
    fn flight(
        &self,
        entry: &IssuerEntry,
        settings: &IntrospectionSettings,
        token: &str,
        key: Key,
    ) -> Option<watch::Receiver<Outcome>> {
        let mut flights = lock(&self.in_flight);
        if let Some(rx) = flights.get(&key) {
            return Some(rx.clone());
        }
        if flights.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.clone(), rx.clone());
        drop(flights);
        let call = Call {
            fetcher: self.fetcher.clone(),
            endpoint: settings.endpoint.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            auth: settings.auth,
            token: Secret::new(token.to_owned()),
            hint: type_hint(key.token_type),
        };
        let (cache, in_flight, clock) = (
            self.cache.clone(),
            self.in_flight.clone(),
            self.clock.clone(),
        );
        let (metrics, issuer, ttl) = (
            self.metrics.clone(),
            entry.id.to_string(),
            secs(settings.cache_ttl),
        );
        tokio::spawn(async move {
            let answer = call.introspect().await;
            let outcome = match &answer {
                Ok(Answer::Active(_)) => "active",
                Ok(Answer::Inactive) => "inactive",
                Err(_) => "error",
            };
            count(&metrics, issuer, outcome);
            if let Ok(answer) = &answer {
                remember(&cache, key.clone(), answer, clock.now(), ttl);
            }
            lock(&in_flight).remove(&key);
            let _ = tx.send(Some(answer.map_err(Arc::new)));
        });
        Some(rx)
    }

    fn count(&self, entry: &IssuerEntry, outcome: &'static str) {
        count(&self.metrics, entry.id.to_string(), outcome);
    }

    /// `trust test`: `answer` is what `entry`'s endpoint says about `token` asked as
    /// `token_type` (RFC 7662 §2.2), read as a response would be, and serves for as long as
    /// the verifier lives: the token is never sent anywhere.
    pub fn seed(
        &self,
        entry: &IssuerEntry,
        token_type: TokenType,
        token: &str,
        answer: Map<String, Value>,
    ) -> Result<(), super::SeedError> {
        if entry.introspection().is_none() {
            return Err(super::SeedError::NotFetched {
                issuer: entry.id.clone(),
                what: "introspection answers (it is not an introspection issuer)",
            });
        }
        let answer = answer_of(answer)?;
        lock(&self.cache).insert(
            Key::new(entry, token_type, token),
            Cached {
                answer,
                until: UnixTime::MAX,
            },
        );
        Ok(())
    }

    /// SPEC §4 / §4.1 on the introspected claims, as for a JWT: `iss` (when the response
    /// names one, it must be the entry's), `aud`, `exp` (required: it bounds what is
    /// issued), `nbf`, `iat`, `max_age`.
    fn accept(
        &self,
        entry: &Arc<IssuerEntry>,
        mut claims: Map<String, Value>,
        token_type: TokenType,
        purpose: Purpose,
    ) -> Result<VerifiedSubject, VerifyError> {
        if purpose == Purpose::BearerGrant {
            // The bearer grants take assertions (JWT / SAML), never opaque tokens.
            return Err(VerifyError::Malformed(
                "an opaque token is not an assertion",
            ));
        }
        claims.remove("active");
        claims
            .entry("iss")
            .or_insert_with(|| Value::String(entry.issuer.clone()));
        let times = jwt::check_claims(
            &claims,
            &ClaimRules {
                issuer: &entry.issuer,
                issuer_id: &entry.id,
                audiences: &entry.audiences,
                token_type,
                skew: secs(entry.clock_skew),
                max_age: entry.max_age.map(|d| d.as_secs()),
                now: self.clock.now(),
            },
        )?;
        let mut subject = jwt::into_subject(entry.clone(), token_type, claims, times)?;
        subject.evidence.key = entry
            .introspection()
            .map(|i| format!("active at the introspection endpoint {}", i.endpoint));
        Ok(subject)
    }
}

/// An RFC 7662 response: `active` decides, and must be a boolean.
fn answer_of(claims: Map<String, Value>) -> Result<Answer, IntrospectionError> {
    match claims.get("active") {
        Some(Value::Bool(true)) => Ok(Answer::Active(Arc::new(claims))),
        Some(Value::Bool(false)) => Ok(Answer::Inactive),
        _ => Err(IntrospectionError::NoActive),
    }
}

/// The caller's allowed introspection issuers that accept `token_type`, in the caller's
/// order (`subject_issuers` / `actor_issuers`).
fn candidates<'r>(
    registry: &'r Registry,
    token_type: TokenType,
    expect: &'r Expectation<'_>,
) -> impl Iterator<Item = &'r Arc<IssuerEntry>> {
    expect
        .allowed_issuers
        .iter()
        .filter_map(|id| registry.issuers.get(id))
        .filter(move |e| {
            e.kind() == IssuerKind::Introspection && e.token_types.contains(&token_type)
        })
}

/// RFC 7662 §2.1 `token_type_hint`, from the OAuth Token Type Hints registry (RFC 7009
/// §4.1.2): the declared type, so the endpoint looks the token up among its own kind.
/// Introspection issuers accept no other types (the loader refuses them): no hint.
fn type_hint(token_type: TokenType) -> Option<&'static str> {
    match token_type {
        TokenType::AccessToken => Some("access_token"),
        TokenType::RefreshToken => Some("refresh_token"),
        TokenType::IdToken | TokenType::Jwt | TokenType::Saml2 => None,
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A map lock; a panic while holding it left plain values: still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One introspection call with everything it needs, owned: it runs on a task of its own.
struct Call {
    fetcher: Fetcher,
    endpoint: url::Url,
    client_id: String,
    client_secret: Secret,
    auth: IntrospectionAuth,
    token: Secret,
    /// `token_type_hint`: see [`type_hint`].
    hint: Option<&'static str>,
}

impl Call {
    /// RFC 7662 §2.1: POST `token` (and the hint) with tessera's client credentials.
    async fn introspect(&self) -> Result<Answer, IntrospectionError> {
        let mut form = vec![("token", self.token.expose().as_str())];
        if let Some(hint) = self.hint {
            form.push(("token_type_hint", hint));
        }
        // RFC 6749 §2.3.1: id and secret form-urlencoded before Basic encoding.
        let (id, secret) = (
            form_encode(&self.client_id),
            form_encode(self.client_secret.expose()),
        );
        let basic = match self.auth {
            IntrospectionAuth::ClientSecretBasic => Some((id.as_str(), secret.as_str())),
            IntrospectionAuth::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
                None
            }
        };
        let body = self.fetcher.post_form(&self.endpoint, &form, basic).await?;
        let claims = jwt::parse_object(&body, "introspection response")
            .map_err(IntrospectionError::NotJson)?;
        answer_of(claims)
    }
}

/// `tessera_introspections_total{issuer,outcome}`.
fn count(metrics: &Metrics, issuer: String, outcome: &'static str) {
    metrics
        .introspections
        .get_or_create(&FetchLabels { issuer, outcome })
        .inc();
}

/// Caches `answer` until the token's `exp` and at most `ttl`, an inactive one for `ttl`.
fn remember(
    cache: &Mutex<HashMap<Key, Cached>>,
    key: Key,
    answer: &Answer,
    now: UnixTime,
    ttl: i64,
) {
    let until = match answer {
        // Never past exp (a non-number exp is refused later; cache it no longer).
        Answer::Active(claims) => claims
            .get("exp")
            .and_then(Value::as_i64)
            .map_or(now, |exp| exp.min(now.saturating_add(ttl))),
        Answer::Inactive => now.saturating_add(ttl),
    };
    let mut cache = lock(cache);
    super::bound_memo(&mut cache, MAX_CACHED, |c| c.until <= now);
    cache.insert(
        key,
        Cached {
            answer: answer.clone(),
            until,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::trust::{KindSettings, Mapping};
    use serde_json::json;

    const NOW: UnixTime = 1_700_000_000;

    fn entry() -> IssuerEntry {
        IssuerEntry {
            id: "partner".into(),
            issuer: "https://as.partner.example".into(),
            audiences: vec!["tessera".into()],
            token_types: vec![TokenType::AccessToken, TokenType::RefreshToken],
            clock_skew: std::time::Duration::from_secs(60),
            max_age: None,
            one_time_use: false,
            settings: KindSettings::Introspection(IntrospectionSettings {
                endpoint: "https://as.partner.example/introspect".parse().unwrap(),
                client_id: "tessera".into(),
                client_secret: Secret::new("s".to_owned()),
                auth: IntrospectionAuth::ClientSecretBasic,
                cache_ttl: std::time::Duration::from_secs(60),
            }),
            mapping: Mapping::default_for_jwt(),
            demo_signing_key_file: None,
            source: "partner.toml".into(),
        }
    }

    /// An offline verifier: nothing it has not been seeded with can be introspected.
    fn verifier() -> IntrospectionVerifier {
        let mut outbound = crate::config::Config::default().outbound;
        outbound.offline = true;
        let clock: SharedClock = Arc::new(FixedClock::new(NOW));
        IntrospectionVerifier::new(&outbound, clock, Arc::new(Metrics::new())).unwrap()
    }

    fn answer(active: bool) -> Map<String, Value> {
        let v = json!({"active": active, "sub": "alice", "aud": "tessera", "exp": NOW + 600});
        v.as_object().unwrap().clone()
    }

    fn is_active(a: Option<Answer>) -> Option<bool> {
        a.map(|a| matches!(a, Answer::Active(_)))
    }

    #[test]
    fn an_answer_is_cached_for_the_type_it_was_asked_as_only() {
        let (v, e) = (verifier(), entry());
        v.seed(&e, TokenType::AccessToken, "tok", answer(true))
            .unwrap();
        let key = |t| Key::new(&e, t, "tok");
        assert_eq!(
            is_active(v.cached(&key(TokenType::AccessToken))),
            Some(true)
        );
        assert_eq!(is_active(v.cached(&key(TokenType::RefreshToken))), None);
        // Asked as a refresh token it is inactive: the access token's entry is untouched.
        v.seed(&e, TokenType::RefreshToken, "tok", answer(false))
            .unwrap();
        assert_eq!(
            is_active(v.cached(&key(TokenType::RefreshToken))),
            Some(false)
        );
        assert_eq!(
            is_active(v.cached(&key(TokenType::AccessToken))),
            Some(true)
        );
    }

    #[tokio::test]
    async fn an_access_tokens_answer_never_verifies_a_refresh_token() {
        let v = verifier();
        let registry = Registry::new(vec![entry()], vec![], vec![]);
        let allowed = [crate::protocol::IssuerId::from("partner")];
        let expect = Expectation {
            allowed_issuers: &allowed,
            purpose: Purpose::Exchange,
        };
        let e = &registry.issuers["partner"];
        v.seed(e, TokenType::AccessToken, "tok", answer(true))
            .unwrap();
        let ok = v
            .verify(&registry, "tok", TokenType::AccessToken, &expect)
            .await;
        assert_eq!(ok.unwrap().token_type, TokenType::AccessToken);
        // Not in the cache as a refresh token, and offline: the endpoint must be asked.
        let refused = v
            .verify(&registry, "tok", TokenType::RefreshToken, &expect)
            .await
            .unwrap_err();
        assert_eq!(refused.error.reason(), "issuer_unreachable");
    }

    #[test]
    fn the_hint_is_the_declared_type() {
        assert_eq!(type_hint(TokenType::AccessToken), Some("access_token"));
        assert_eq!(type_hint(TokenType::RefreshToken), Some("refresh_token"));
        assert_eq!(type_hint(TokenType::IdToken), None);
    }
}
