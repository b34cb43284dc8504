//! Verification of presented tokens (SPEC §4): one door for every kind.
//!
//! [`Verifier::verify`] takes a presented token (its declared type and its text) and what
//! the caller expects (which issuers, for which purpose), and returns a kind-neutral
//! [`VerifiedSubject`]: the resolved issuer, the `assertion` view CEL mappings read,
//! audiences, times, the `act` chain and `may_act` as types, scopes where the kind has
//! them, and a replay key where the token is single-use. Each kind is a path behind it
//! (`oidc` for JWTs and tessera's own tokens, `saml` for SAML 2.0 assertions,
//! `introspection` for opaque tokens). The exchange pipeline reads no claim by name: the
//! members tessera wrote into its own tokens come back as a [`LocalToken`], and only
//! `/introspect` copies its RFC 7662 members out of `assertion`, by an allow-list.

pub mod act;
pub mod cache;
pub mod dpop;
pub mod error;
pub mod fetch;
pub mod introspection;
pub mod jwt;
pub mod keys;
pub mod oidc;
pub mod online;
pub mod saml;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::{SharedClock, UnixTime};
use crate::metrics::Metrics;
use crate::protocol::Jti;
use crate::trust::{IssuerEntry, IssuerId, IssuerKind, Registry, TokenType};
use crate::verify::fetch::OutboundConfig;

pub use act::{Act, MayAct};
pub use error::{SamlError, VerifyError};
pub use oidc::JwtVerifier;
pub use saml::SamlVerifier;

/// A token as the caller presented it.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    /// The declared type (`subject_token_type`, or the bearer grant's).
    pub token_type: TokenType,
    pub text: &'a str,
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("token_type", &self.token_type)
            .field("text", &format_args!("[{} bytes]", self.text.len()))
            .finish()
    }
}

/// Why the token is presented: it decides which audiences it must name and how strict
/// the SAML confirmation rules are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// RFC 8693 subject or actor token: addressed to one of the issuer entry's
    /// `audiences` (for SAML also `saml.entity_id`).
    Exchange,
    /// RFC 7523 / RFC 7522 bearer grant: addressed to tessera itself (token endpoint,
    /// `server.issuer`, for SAML also `saml.entity_id`), under those RFCs' strict rules.
    BearerGrant,
}

#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// Registry ids the caller may present tokens from.
    pub allowed_issuers: &'a [IssuerId],
    pub purpose: Purpose,
}

/// How tessera names itself to the tokens presented to it (SPEC §2.1, §4).
#[derive(Debug, Clone, Default)]
pub struct BrokerIdentity {
    /// The token endpoint URL: a bearer assertion's audience, a SAML Recipient/Destination.
    pub token_endpoint: String,
    /// `server.issuer`: also a bearer assertion's audience.
    pub issuer: String,
    /// `saml.entity_id`: the broker's SAML audience.
    pub saml_entity_id: String,
}

impl BrokerIdentity {
    /// What a bearer-grant JWT must be addressed to.
    pub fn bearer_audiences(&self) -> Vec<String> {
        vec![self.token_endpoint.clone(), self.issuer.clone()]
    }
}

/// Identifies a single-use token (defined beside the cache that consumes it).
pub use crate::replay::ReplayKey;

/// A verified token, whatever its kind.
#[derive(Debug, Clone)]
pub struct VerifiedSubject {
    pub issuer: Arc<IssuerEntry>,
    pub token_type: TokenType,
    /// What `mapping` sees as `assertion`: the JWT claims, or the SAML view.
    pub assertion: Map<String, Value>,
    pub audiences: Vec<String>,
    pub expires_at: UnixTime,
    pub issued_at: Option<UnixTime>,
    /// The delegation chain the token itself carries (RFC 8693 §4.1).
    pub act: Option<Act>,
    /// Who may act for this subject (RFC 8693 §4.4).
    pub may_act: Option<MayAct>,
    /// Space-separated `scope` of the token, where the kind has one.
    pub scopes: Option<crate::protocol::ScopeSet>,
    /// Set when the token must be accepted only once.
    pub replay: Option<ReplayKey>,
    /// For tessera's own tokens: what tessera wrote into them, read back as types.
    pub local: Option<LocalToken>,
    /// How it was verified, for the decision record (explain).
    pub evidence: Evidence,
}

/// How a token was verified: what explain shows of the signature step. Labels only
/// (an algorithm, a `kid`, a certificate fingerprint, an endpoint), never key material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub typ: Option<String>,
    pub alg: Option<String>,
    /// The key that verified the signature (`kid …`, `certificate sha256:…`), or the
    /// introspection endpoint that vouched for an opaque token.
    pub key: Option<String>,
}

/// The members of a local token that tessera itself wrote and reads back (SPEC §5): parsed
/// once, here, so that nothing above `verify` reads them by name. A member of the wrong
/// shape is refused, not skipped: tessera signed it, so it is a bug or a forgery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalToken {
    pub jti: crate::protocol::Jti,
    /// The client the token was issued to.
    pub client_id: crate::protocol::ClientId,
    /// This token's `jti` and every tessera token it descends from, each once: the subject
    /// tokens it was exchanged from (`exchanged_from`) and the actor tokens of those
    /// exchanges (`acted_from`). A revocation of any of them refuses this token.
    pub lineage: Vec<crate::protocol::Jti>,
    /// The issuer that authenticated `sub`; absent on tokens minted before it was recorded.
    pub src_iss: Option<String>,
}

impl VerifiedSubject {
    /// RFC 7800 `cnf` as RFC 9449 §6 uses it: the thumbprint of the key this token is
    /// bound to. A token bound by another confirmation method (an mTLS certificate's
    /// `x5t#S256`, RFC 8705) is refused rather than unbound: tessera cannot check it, and
    /// accepting it would launder a bound token into a bearer one.
    pub fn binding(&self) -> Result<Option<&str>, &'static str> {
        // A SAML view has no `cnf` (holder-of-key confirmations are refused in verify).
        if self.token_type == TokenType::Saml2 {
            return Ok(None);
        }
        match self.assertion.get("cnf") {
            None => Ok(None),
            Some(Value::Object(cnf)) => match cnf.get("jkt") {
                Some(Value::String(jkt)) if cnf.len() == 1 && !jkt.is_empty() => Ok(Some(jkt)),
                _ => Err(
                    "its cnf names a confirmation method tessera cannot check (only jkt, RFC 9449)",
                ),
            },
            Some(_) => Err("its cnf claim is not an object"),
        }
    }

    /// For a local token, its `jti` and every tessera token it descends from
    /// ([`LocalToken::lineage`]); empty for a foreign token.
    pub fn lineage(&self) -> &[crate::protocol::Jti] {
        self.local.as_ref().map_or(&[], |l| l.lineage.as_slice())
    }
}

impl LocalToken {
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Self, VerifyError> {
        let string = |claim: &'static str| match claims.get(claim) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(VerifyError::MalformedClaim {
                claim,
                expected: "a non-empty string (tessera writes one)",
            }),
        };
        let list = |claim: &'static str| -> Result<Vec<Jti>, VerifyError> {
            let malformed = VerifyError::MalformedClaim {
                claim,
                expected: "an array of token ids",
            };
            match claims.get(claim) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(Jti::from).ok_or(malformed.clone()))
                    .collect(),
                Some(_) => Err(malformed),
            }
        };
        let jti = Jti::new(string("jti")?);
        let mut lineage = vec![jti.clone()];
        for id in list("exchanged_from")?
            .into_iter()
            .chain(list("acted_from")?)
        {
            // An actor ancestor may also be a subject ancestor: listed once.
            if !lineage.contains(&id) {
                lineage.push(id);
            }
        }
        let src_iss = match claims.get("src_iss") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(VerifyError::MalformedClaim {
                    claim: "src_iss",
                    expected: "a string",
                })
            }
        };
        Ok(Self {
            client_id: string("client_id")?.into(),
            jti,
            lineage,
            src_iss,
        })
    }
}

/// A refused token, with the registry entry it resolved to when it got that far (so
/// metrics and the audit row name the partner whose tokens fail).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    pub issuer: Option<IssuerId>,
    #[source]
    pub error: VerifyError,
}

impl From<VerifyError> for Refusal {
    fn from(error: VerifyError) -> Self {
        Self {
            issuer: None,
            error,
        }
    }
}

impl VerifyError {
    /// This error, about a token that resolved to `issuer`.
    pub fn of(self, issuer: &IssuerEntry) -> Refusal {
        Refusal {
            issuer: Some(issuer.id.clone()),
            error: self,
        }
    }
}

/// Why something `trust test` supplies in place of the network cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("issuer {issuer} fetches no {what}")]
    NotFetched {
        issuer: IssuerId,
        what: &'static str,
    },
    #[error(transparent)]
    Document(#[from] fetch::FetchError),
    #[error(transparent)]
    Introspection(#[from] introspection::IntrospectionError),
}

/// The one entry point for presented tokens. Owns the per-kind verifiers and their key
/// caches; cheap to share, create one per process.
pub struct Verifier {
    jwt: JwtVerifier,
    saml: SamlVerifier,
    opaque: introspection::IntrospectionVerifier,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(
        outbound: &OutboundConfig,
        broker: BrokerIdentity,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let broker = Arc::new(broker);
        Ok(Self {
            jwt: JwtVerifier::new(outbound, broker.clone(), clock.clone(), metrics.clone())?,
            saml: SamlVerifier::new(outbound, broker, clock.clone(), metrics.clone())?,
            opaque: introspection::IntrospectionVerifier::new(outbound, clock, metrics)?,
        })
    }

    /// `saml.entity_id`, which every SAML issuer's assertions may be addressed to.
    pub fn saml_entity_id(&self) -> &str {
        self.saml.entity_id()
    }

    /// Every issuer whose keys or metadata are fetched, and whether they are in hand
    /// (`/readyz`), sorted by issuer id.
    pub fn issuer_status(&self) -> Vec<(String, cache::SlotStatus)> {
        let mut all = self.jwt.key_status();
        all.extend(self.saml.metadata_status());
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// `local` tokens are verified with tessera's published keys, read through `keys`.
    pub fn with_local_keys(mut self, keys: oidc::LocalKeys) -> Self {
        self.jwt.set_local_keys(keys);
        self
    }

    /// EncryptedAssertions are opened with `key` (`saml.decryption_key_file`).
    pub fn with_saml_decryption_key(mut self, key: saml::decrypt::DecryptionKey) -> Self {
        self.saml.set_decryption_key(key);
        self
    }

    /// Verifies `token` for `expect`, by the path its declared type names. An access
    /// token that is not a JWT (SPEC §2.1: "neither a JWT nor an assertion") goes to the
    /// caller's introspection issuers, when it has any. A refresh token goes there
    /// always: whatever it looks like, only its issuer's RFC 7662 endpoint vouches for it
    /// (SPEC §2).
    pub async fn verify(
        &self,
        registry: &Registry,
        token: Presented<'_>,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, Refusal> {
        match token.token_type {
            TokenType::Saml2 => self.saml.verify(registry, token.text, expect).await,
            TokenType::RefreshToken => {
                self.verify_refresh_token(registry, token.text, expect)
                    .await
            }
            TokenType::AccessToken
                if !jwt::looks_like_jws(token.text)
                    && introspection::IntrospectionVerifier::applies(
                        registry,
                        token.token_type,
                        expect,
                    ) =>
            {
                self.opaque
                    .verify(registry, token.text, token.token_type, expect)
                    .await
            }
            TokenType::AccessToken | TokenType::IdToken | TokenType::Jwt => {
                self.jwt
                    .verify(registry, token.text, token.token_type, expect)
                    .await
            }
        }
    }

    /// A foreign refresh token (RFC 6749 §1.5) is opaque to everyone but its issuer:
    /// never read as a JWT, even one that looks like a JWS, and refused outright when no
    /// introspection issuer of the caller lists `refresh_token` in its `token_types`.
    async fn verify_refresh_token(
        &self,
        registry: &Registry,
        text: &str,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, Refusal> {
        let token_type = TokenType::RefreshToken;
        if !introspection::IntrospectionVerifier::applies(registry, token_type, expect) {
            return Err(VerifyError::TokenTypeNotAccepted {
                issuer: None,
                token_type: token_type.label(),
            }
            .into());
        }
        self.opaque.verify(registry, text, token_type, expect).await
    }

    /// RFC 7523 client authentication (`private_key_jwt`): see
    /// [`JwtVerifier::verify_client_assertion`].
    pub async fn verify_client_assertion(
        &self,
        client_id: &str,
        keys: &crate::trust::KeySource,
        token: &str,
    ) -> Result<oidc::ClientAssertion, VerifyError> {
        self.jwt
            .verify_client_assertion(client_id, keys, token)
            .await
    }

    /// `trust test` (an offline verifier, `outbound.offline`): `jwks` serves as the keys
    /// of the `discovery_url` / `jwks_uri` issuer `entry`, as if fetched, never refreshed.
    pub fn seed_jwks(&self, entry: &IssuerEntry, jwks: &Value) -> Result<(), SeedError> {
        self.jwt.seed_jwks(entry, jwks)
    }

    /// `trust test`: `metadata` as the document the `metadata_url` of `entry` serves.
    pub fn seed_saml_metadata(
        &self,
        entry: &IssuerEntry,
        metadata: &[u8],
    ) -> Result<(), SeedError> {
        self.saml.seed_metadata(entry, metadata)
    }

    /// `trust test`: pinned signing certificates in place of `entry`'s `metadata_url`.
    pub fn seed_saml_certs(
        &self,
        entry: &IssuerEntry,
        certs: Vec<crate::trust::SigningCert>,
    ) -> Result<(), SeedError> {
        self.saml.seed_certs(entry, certs)
    }

    /// `trust test`: what the introspection endpoint of `entry` answers for `token`
    /// presented as `token_type`.
    pub fn seed_introspection(
        &self,
        entry: &IssuerEntry,
        token_type: TokenType,
        token: &str,
        answer: Map<String, Value>,
    ) -> Result<(), SeedError> {
        self.opaque.seed(entry, token_type, token, answer)
    }

    /// Starts background key/metadata fetches for URL-keyed issuers and drops caches of
    /// issuers no longer registered; call it at start and after each reload.
    pub fn warm_up(&self, registry: &Registry) {
        self.jwt.warm_up(registry);
        self.saml.warm_up(registry);
    }
}

/// Keeps a per-token memo map (introspection answers, verified signatures) below `max`
/// entries: when full, expired entries go, then arbitrary ones down to nine tenths, so a
/// flood of one-off tokens costs one sweep per `max / 10` inserts (not one per insert)
/// and never empties the map of the answers legitimate traffic reuses.
pub(crate) fn bound_memo<K, V>(
    map: &mut std::collections::HashMap<K, V>,
    max: usize,
    expired: impl Fn(&V) -> bool,
) where
    K: Eq + std::hash::Hash + Clone,
{
    if map.len() < max {
        return;
    }
    map.retain(|_, v| !expired(v));
    let target = max - max / 10;
    if map.len() > target {
        let surplus: Vec<K> = map.keys().take(map.len() - target).cloned().collect();
        for k in surplus {
            map.remove(&k);
        }
    }
}

/// Whole seconds of a configured duration, saturating (clock skew, TTLs, max_age).
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The registry entry of `kind` that an (unverified) issuer name selects, checked for
/// what is common to every kind: the caller may present tokens from this issuer, and the
/// issuer is trusted for this token type.
pub(crate) fn admitted_issuer<'r>(
    registry: &'r Registry,
    iss: &str,
    kind: IssuerKind,
    token_type: TokenType,
    expect: &Expectation<'_>,
) -> Result<&'r Arc<IssuerEntry>, Refusal> {
    let entry = registry
        .issuer_by_iss(iss, kind)
        .ok_or_else(|| VerifyError::UnknownIssuer {
            iss: iss.to_owned(),
            near: error::near_miss(iss, registry.issuers.values().map(|e| e.issuer.as_str()))
                .map(str::to_owned),
        })?;
    if !expect.allowed_issuers.contains(&entry.id) {
        return Err(VerifyError::IssuerNotAllowed {
            issuer: entry.id.clone(),
        }
        .of(entry));
    }
    if !entry.token_types.contains(&token_type) {
        return Err(VerifyError::TokenTypeNotAccepted {
            issuer: Some(entry.id.clone()),
            token_type: token_type.label(),
        }
        .of(entry));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_local_tokens_own_members_are_read_as_types_or_refused() {
        let t = LocalToken::from_claims(&claims(json!({
            "jti": "c", "client_id": "svc", "src_iss": "https://idp",
            "exchanged_from": ["b", "a"], "acted_from": ["x", "a"],
        })))
        .unwrap();
        assert_eq!(
            t.lineage,
            ["c", "b", "a", "x"],
            "each ancestor once, nearest first"
        );
        assert_eq!(
            (t.client_id.as_str(), t.src_iss.as_deref()),
            ("svc", Some("https://idp"))
        );
        let legacy = LocalToken::from_claims(&claims(json!({"jti": "c", "client_id": "svc"})));
        assert_eq!(legacy.unwrap().src_iss, None);
        for bad in [
            json!({"client_id": "svc"}),
            json!({"jti": "c"}),
            json!({"jti": "c", "client_id": "svc", "exchanged_from": "a"}),
            json!({"jti": "c", "client_id": "svc", "acted_from": [7]}),
            json!({"jti": "c", "client_id": "svc", "src_iss": 1}),
        ] {
            assert!(
                LocalToken::from_claims(&claims(bad.clone())).is_err(),
                "{bad}"
            );
        }
    }
}
