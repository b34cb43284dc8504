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

use std::sync::Arc;

use serde_json::Value;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::trust::{
    IssuerEntry, IssuerId, IssuerKind, JwsAlg, KeySource, OidcSettings, Registry, TokenType,
};
use crate::verify::fetch::OutboundConfig;

use super::cache::{Cache, Fetched, Slot, Source};
use super::error::{self, VerifyError};
use super::jwt::{self, ClaimRules, UnverifiedJwt};
use super::keys::{JwksSource, KeySet, VerifyKey};
use super::{admitted_issuer, BrokerIdentity, Expectation, Purpose, Refusal, VerifiedSubject};

/// What a client may sign its assertions with (advertised in the metadata as
/// `token_endpoint_auth_signing_alg_values_supported`).
pub const CLIENT_ASSERTION_ALGS: [JwsAlg; 5] = [
    JwsAlg::RS256,
    JwsAlg::PS256,
    JwsAlg::ES256,
    JwsAlg::ES384,
    JwsAlg::EdDSA,
];

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
    broker: Arc<BrokerIdentity>,
    clock: SharedClock,
    /// Issuer id → JWKS slot (the one issuer-document cache, SPEC §6 rules).
    keys: Arc<Cache<JwksSource>>,
    /// tessera's own published keys, for `local` tokens (none: every local token refused).
    local: Option<LocalKeys>,
    /// Client id → JWKS slot for `private_key_jwt` clients: a cache of its own, so a
    /// client can never be served an issuer's keys (or the reverse) whatever the ids.
    client_keys: Arc<Cache<JwksSource>>,
}

/// What a verified RFC 7523 client assertion says: its id (single-use) and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    pub jti: String,
    pub expires_at: crate::clock::UnixTime,
}

/// A client assertion lives at most this long (RFC 7523 §3 item 4: "reasonably short").
const MAX_CLIENT_ASSERTION_SECS: i64 = 300;
/// Skew allowed on a client assertion's times.
const CLIENT_ASSERTION_SKEW_SECS: i64 = 60;

/// The JWKS tessera publishes (`/jwks.json`: current, next and retired-but-valid keys),
/// as the key ring shares it across replicas, parsed once per change. The verifier reads
/// only the public document: how tessera signs is not its concern.
pub struct LocalKeys {
    published: Box<dyn Fn() -> Arc<str> + Send + Sync>,
    parsed: std::sync::Mutex<Option<(Arc<str>, Arc<KeySet>)>>,
    /// SHA-256 of a local token's signing input and signature → its `exp`: signatures
    /// already verified. The same token presented again (a service fanning one request
    /// out to several hops) skips the ECDSA verification; every claim check, expiry and
    /// revocation still runs on each use. Bounded; a key leaves the JWKS only after the
    /// tokens it signed have expired, so a memo never outlives its key's validity.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], i64>>,
}

/// Verified local signatures remembered at most (expired ones are dropped first).
const MAX_VERIFIED_LOCAL: usize = 100_000;

impl LocalKeys {
    pub fn new(published: impl Fn() -> Arc<str> + Send + Sync + 'static) -> Self {
        Self {
            published: Box::new(published),
            parsed: std::sync::Mutex::new(None),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn digest(jwt: &UnverifiedJwt<'_>) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(jwt.signing_input.as_bytes());
        h.update(b".");
        h.update(jwt.signature.as_bytes());
        h.finalize().into()
    }

    fn already_verified(&self, jwt: &UnverifiedJwt<'_>, now: i64) -> bool {
        let memo = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.get(&Self::digest(jwt)).is_some_and(|exp| *exp > now)
    }

    fn remember(&self, jwt: &UnverifiedJwt<'_>, now: i64) {
        let Some(exp) = jwt.claims.get("exp").and_then(Value::as_i64) else {
            return;
        };
        let mut memo = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        super::bound_memo(&mut memo, MAX_VERIFIED_LOCAL, |exp| *exp <= now);
        memo.insert(Self::digest(jwt), exp);
    }

    fn current(&self, now: crate::clock::UnixTime) -> Option<Arc<KeySet>> {
        let doc = (self.published)();
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, set)) = parsed.as_ref() {
            if Arc::ptr_eq(seen, &doc) {
                return Some(set.clone());
            }
        }
        let value: Value = serde_json::from_str(&doc).ok()?;
        let set = Arc::new(super::keys::parse_jwks(&value, now).ok()?);
        *parsed = Some((doc, set.clone()));
        Some(set)
    }
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
        let keys = Cache::new(outbound, clock.clone(), metrics.clone(), "jwks")
            .map_err(|_| VerifyError::Internal("cannot build the outbound HTTP client"))?;
        let client_keys = Cache::new(outbound, clock.clone(), metrics, "client_jwks")
            .map_err(|_| VerifyError::Internal("cannot build the outbound HTTP client"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                broker,
                clock,
                keys: Arc::new(keys),
                local: None,
                client_keys: Arc::new(client_keys),
            }),
        })
    }

    /// `local` tokens are verified with `keys` (call before the verifier is shared).
    /// Each remote issuer's JWKS state (`/readyz`).
    pub fn key_status(&self) -> Vec<(String, super::cache::SlotStatus)> {
        self.inner.keys.status()
    }

    pub fn set_local_keys(&mut self, keys: LocalKeys) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.local = Some(keys);
        }
    }

    /// RFC 7523 §3 / §2.2 client assertion of `client_id`, with a key from `keys` (the
    /// client's `jwks_file` or `jwks_uri`): `iss` = `sub` = the client id, `aud` the token
    /// endpoint or `server.issuer`, `exp` required and at most 5 minutes away, `nbf`/`iat`
    /// checked, a `jti`. Single use is the caller's to enforce (the database).
    pub async fn verify_client_assertion(
        &self,
        client_id: &str,
        keys: &KeySource,
        token: &str,
    ) -> Result<ClientAssertion, VerifyError> {
        let inner = &self.inner;
        let jwt = jwt::parse_unverified(token)?;
        let alg = JwsAlg::parse(&jwt.header.alg)
            .filter(|a| CLIENT_ASSERTION_ALGS.contains(a))
            .ok_or_else(|| VerifyError::AlgorithmNotAllowed {
                alg: error::sanitize_label(&jwt.header.alg),
            })?;
        jwt::check_typ(jwt.header.typ.as_deref(), TokenType::Jwt, false)?;
        let slot = inner
            .client_keys
            .slot(client_id, JwksSource::of(client_id, keys));
        inner.check_signature(&slot, &jwt, alg).await?;
        // RFC 7523bis (the 2025 audience-injection class, CVE-2025-27370/27371): the
        // authorization server's issuer identifier as the one value, never the token
        // endpoint or an array, which another AS could have asked the client to sign for.
        let issuer = &inner.broker.issuer;
        if jwt.claims.get("aud").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(VerifyError::MalformedClaim {
                claim: "aud",
                expected: "server.issuer as a single string (not the token endpoint, not an array)",
            });
        }
        let now = inner.clock.now();
        let times = jwt::check_claims(
            &jwt.claims,
            &ClaimRules {
                issuer: client_id,
                issuer_id: client_id,
                audiences: std::slice::from_ref(issuer),
                token_type: TokenType::Jwt,
                skew: CLIENT_ASSERTION_SKEW_SECS,
                max_age: None,
                now,
            },
        )?;
        if jwt.claims.get("sub").and_then(Value::as_str) != Some(client_id) {
            return Err(VerifyError::MalformedClaim {
                claim: "sub",
                expected: "the client id (RFC 7523 §3: iss = sub = client_id)",
            });
        }
        if times.exp > now.saturating_add(MAX_CLIENT_ASSERTION_SECS + CLIENT_ASSERTION_SKEW_SECS) {
            return Err(VerifyError::MalformedClaim {
                claim: "exp",
                expected: "at most 5 minutes away",
            });
        }
        let jti = jwt::jti(&jwt.claims)?.ok_or(VerifyError::MissingClaim("jti"))?;
        Ok(ClientAssertion {
            jti,
            expires_at: times.exp.saturating_add(CLIENT_ASSERTION_SKEW_SECS),
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
        let entry = admitted_issuer(registry, iss, IssuerKind::Oidc, token_type, expect)?;
        let Some(oidc) = entry.oidc() else {
            return Err(VerifyError::UnknownIssuer {
                iss: iss.to_owned(),
                near: None,
            }
            .into());
        };
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
        if matches!(oidc.keys, KeySource::Local) {
            inner.check_local_signature(&jwt, alg)?;
        } else {
            let slot = inner
                .keys
                .slot(&entry.id, JwksSource::of(&entry.issuer, &oidc.keys));
            inner.check_signature(&slot, &jwt, alg).await?;
        }

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
        let evidence = super::Evidence {
            typ: jwt.header.typ.clone(),
            alg: Some(error::sanitize_label(&jwt.header.alg)),
            key: Some(match (&jwt.header.kid, &jwt.header.x5t) {
                (Some(kid), _) => format!("kid `{}`", error::sanitize_label(kid)),
                (None, Some(x5t)) => format!("x5t `{}`", error::sanitize_label(x5t)),
                (None, None) => "the one key of a fitting type (no kid)".to_owned(),
            }),
        };
        let mut subject = jwt::into_subject(entry.clone(), token_type, jwt.claims, times)?;
        subject.evidence = evidence;
        if matches!(oidc.keys, KeySource::Local) {
            subject.local = Some(super::LocalToken::from_claims(&subject.assertion)?);
        }
        Ok(subject)
    }

    /// `trust test`: `jwks` serves as the keys of `entry` (a `discovery_url` or `jwks_uri`
    /// issuer) from now on, parsed as a fetched JWKS, and is never fetched.
    pub fn seed_jwks(&self, entry: &IssuerEntry, jwks: &Value) -> Result<(), super::SeedError> {
        let keys = entry
            .oidc()
            .map(|o| &o.keys)
            .filter(|k| matches!(k, KeySource::Discovery(_) | KeySource::JwksUri(_)))
            .ok_or_else(|| super::SeedError::NotFetched {
                issuer: entry.id.clone(),
                what: "JWKS (its keys are not at a discovery_url or jwks_uri)",
            })?;
        let set = super::keys::parse_jwks(jwks, self.inner.clock.now())
            .map_err(super::fetch::FetchError::from)?;
        let source = JwksSource::of(&entry.issuer, keys);
        Ok(self.inner.keys.seed(&entry.id, source, Fetched::new(set))?)
    }

    /// Starts background key fetches for every URL-keyed issuer; returns at once. Also
    /// drops caches of issuers no longer in `registry` (call it after each reload).
    /// Outside a Tokio runtime it only prunes.
    pub fn warm_up(&self, registry: &Registry) {
        let cache = &self.inner.keys;
        let source_of = |e: &IssuerEntry| {
            let keys = &e.oidc()?.keys;
            (!matches!(keys, KeySource::Local)).then(|| JwksSource::of(&e.issuer, keys))
        };
        cache.retain(|id, source| {
            registry
                .issuers
                .get(id)
                .and_then(|e| source_of(e))
                .is_some_and(|now| now.same_as(source))
        });
        for entry in registry.issuers.values() {
            if let Some(source) = source_of(entry) {
                cache.warm(&cache.slot(&entry.id, source));
            }
        }
    }
}

impl Inner {
    /// A local token's signature, with tessera's published keys: the key ring refreshes
    /// them from the database, so there is nothing to fetch and an unknown `kid` is
    /// simply refused.
    fn check_local_signature(
        &self,
        jwt: &UnverifiedJwt<'_>,
        alg: JwsAlg,
    ) -> Result<(), VerifyError> {
        let issuer = || IssuerId::new(crate::trust::LOCAL_ISSUER);
        let local = self
            .local
            .as_ref()
            .ok_or_else(|| VerifyError::IssuerUnavailable { issuer: issuer() })?;
        let now = self.clock.now();
        if local.already_verified(jwt, now) {
            return Ok(());
        }
        let set = local
            .current(now)
            .ok_or_else(|| VerifyError::IssuerUnavailable { issuer: issuer() })?;
        verify_in_set(&set, jwt, alg, true, crate::trust::LOCAL_ISSUER)?;
        local.remember(jwt, now);
        Ok(())
    }

    /// SPEC §4.1 key selection and signature check. An unknown `kid` (or `x5t`) gets one
    /// rate-limited refresh, then is refused.
    async fn check_signature(
        &self,
        slot: &Arc<Slot<JwksSource>>,
        jwt: &UnverifiedJwt<'_>,
        alg: JwsAlg,
    ) -> Result<(), VerifyError> {
        let mut refreshed = false;
        loop {
            let gen = slot.generation();
            let set =
                self.keys
                    .usable(slot)
                    .await
                    .ok_or_else(|| VerifyError::IssuerUnavailable {
                        issuer: IssuerId::new(slot.issuer_id.as_str()),
                    })?;
            match verify_in_set(&set, jwt, alg, refreshed, &slot.issuer_id)? {
                Verdict::Verified => return Ok(()),
                Verdict::Unknown => {
                    self.keys.refresh_detached(slot, gen).await;
                    refreshed = true;
                }
            }
        }
    }
}

/// What one key set says of a token's signature when it does not refuse it.
enum Verdict {
    Verified,
    /// `kid` (or `x5t`) names no key in the set, which a refresh may bring (returned
    /// only while `refreshed` is false).
    Unknown,
}

/// SPEC §4.1 key selection and signature check against one key set: the keys
/// [`select_keys`] names, at most [`MAX_KEYS_TRIED`] of them.
fn verify_in_set(
    set: &KeySet,
    jwt: &UnverifiedJwt<'_>,
    alg: JwsAlg,
    refreshed: bool,
    issuer_id: &str,
) -> Result<Verdict, VerifyError> {
    let candidates = match select_keys(set, jwt, alg, refreshed) {
        Selection::Try(c) => c,
        Selection::Unknown if !refreshed => return Ok(Verdict::Unknown),
        Selection::Unknown if jwt.header.kid.is_some() => {
            return Err(VerifyError::UnknownKeyId {
                issuer: issuer_id.to_owned(),
                kid: jwt.header.kid.as_deref().unwrap_or_default().to_owned(),
            })
        }
        Selection::Unknown | Selection::NoFit => {
            return Err(VerifyError::NoMatchingKey {
                issuer: issuer_id.to_owned(),
            })
        }
        Selection::Mismatch => {
            return Err(VerifyError::AlgorithmKeyMismatch {
                alg: error::sanitize_label(&jwt.header.alg),
            })
        }
    };
    // Signature only: jsonwebtoken's claim validation reads the system clock, so claims
    // are checked by jwt::check_claims with our Clock.
    let verified = candidates
        .into_iter()
        .take(MAX_KEYS_TRIED)
        .any(|k| k.verify_signature(alg, jwt.signing_input.as_bytes(), jwt.signature));
    if verified {
        Ok(Verdict::Verified)
    } else {
        Err(VerifyError::SignatureInvalid)
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

/// The client an RFC 7523 client assertion names itself as (`sub`, RFC 7523 §3 item 2),
/// read unverified: it only selects whose keys must then verify it.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let jwt = jwt::parse_unverified(assertion).ok()?;
    jwt.claims.get("sub")?.as_str().map(str::to_owned)
}
