//! The exchange pipeline: authenticate the client, verify what it presents, apply the
//! registry's policy, sign, audit, answer. No actix here: `http::token` hands over the
//! form and the credentials and maps the result.
//!
//! Rule: nothing leaves without its audit row committed, and a refused request changes
//! no state but the audit trail.

pub mod decision;
pub mod error;
pub mod explain;
mod lifecycle;
pub mod policy;
mod refresh;
pub mod request;
pub mod shadow;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::{AuditEvent, AuditLog, AuditOutcome};
use crate::clock::{SharedClock, UnixTime};
use crate::issue::KeyRing;
use crate::metrics::{
    DurationLabels, ExchangeLabels, IssuerLabels, Metrics, Outcome, OutcomeLabels, ReasonLabels,
};
use crate::protocol::{ClientId, Jti};
use crate::replay::ReplayCache;
use crate::replay::ReplayKey;
use crate::revocation::Revocations;
use crate::secret::Secret;
use crate::store::replay::Seen;
use crate::telemetry::{audited_name, bounded_reason, token_fingerprint};
use crate::trust::{ClientAuthMethod, ClientEntry, Registry, TokenType, TrustError, TrustStore};
use crate::verify::{
    Act, Expectation, Presented, Purpose, Refusal, VerifiedSubject, Verifier, VerifyError,
};

pub use decision::{Detail, Facts, Record, Step, StepRecord, Verdict};
pub use error::{
    ClientAuthFailure, ErrorCode, ExchangeError, Fault, RefreshRefusal, Refused, TokenRole,
};
pub use explain::Explanation;
pub use lifecycle::Lifecycle;
pub use policy::LifetimeBounds;
pub use request::{Form, Grant, GrantKind};

/// Credentials from the `Authorization` header (RFC 6749 §2.3.1); `client_secret_post`
/// credentials travel in the form and are read by `authenticate`.
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    Basic { client_id: ClientId, secret: Secret },
    None,
}

/// The successful token response (RFC 8693 §2.2.1, RFC 6749 §5.1).
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: Secret,
    /// RFC 8693 only; the refresh grant's answer has none.
    pub issued_token_type: Option<&'static str>,
    /// `Bearer`, or `DPoP` for a bound token (RFC 9449 §5).
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    pub refresh_token: Option<Secret>,
}

/// Written by hand: the one place the minted tokens' values leave as text.
impl Serialize for TokenResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = s.serialize_map(None)?;
        out.serialize_entry("access_token", self.access_token.expose())?;
        if let Some(t) = self.issued_token_type {
            out.serialize_entry("issued_token_type", t)?;
        }
        out.serialize_entry("token_type", self.token_type)?;
        out.serialize_entry("expires_in", &self.expires_in)?;
        out.serialize_entry("scope", &self.scope)?;
        if let Some(r) = &self.refresh_token {
            out.serialize_entry("refresh_token", r.expose())?;
        }
        out.end()
    }
}

/// RFC 7800 §3.1 confirmation, with RFC 9449 §6.1's member.
#[derive(Debug, Serialize)]
struct Cnf<'a> {
    jkt: &'a str,
}

/// Claims of an issued access token (RFC 9068 §2.2, RFC 8693 §4).
#[derive(Debug, Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: UnixTime,
    iat: UnixTime,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Act>,
    /// The issuer that authenticated `sub` (the foreign subject token's, carried from hop
    /// to hop): `sub` is a name in its namespace, so names from two IdPs never merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    src_iss: Option<&'a str>,
    /// The subject token's `may_act`, carried forward with its issuer made explicit:
    /// whoever may act for the subject stays bound on every later hop (RFC 8693 §4.4),
    /// and its name keeps the namespace it was written in.
    #[serde(skip_serializing_if = "Option::is_none")]
    may_act: Option<&'a crate::verify::MayAct>,
    /// The `jti`s of the tessera tokens this one was exchanged from, nearest first (and
    /// first of all the id of the refresh family it came from): a revocation of any of
    /// them refuses this one too, without a database read.
    #[serde(skip_serializing_if = "<[Jti]>::is_empty")]
    exchanged_from: &'a [Jti],
    /// The same for the local actor token of the exchange that minted this one (its `jti`
    /// and its own lineage): revoking the actor refuses this token too (SPEC §2.1).
    #[serde(skip_serializing_if = "<[Jti]>::is_empty")]
    acted_from: &'a [Jti],
    /// RFC 9449 §6.1: the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Cnf<'a>>,
    #[serde(flatten)]
    claims: &'a Map<String, Value>,
}

impl<'a> AccessTokenClaims<'a> {
    fn of(
        plan: &'a policy::Plan,
        iss: &'a str,
        jti: &'a str,
        scope: &'a str,
        exchanged_from: &'a [Jti],
    ) -> Self {
        Self {
            iss,
            sub: &plan.subject,
            aud: plan.audience.audience.as_str(),
            exp: plan.issued_at + plan.lifetime,
            iat: plan.issued_at,
            jti,
            client_id: &plan.client_id,
            scope,
            act: plan.act.as_ref(),
            src_iss: plan.src_iss.as_deref(),
            may_act: plan.may_act.as_ref(),
            exchanged_from,
            acted_from: &plan.acted_from,
            cnf: plan.binding.as_deref().map(|jkt| Cnf { jkt }),
            claims: &plan.claims,
        }
    }
}

#[derive(Debug)]
pub struct ExchangeSettings {
    /// `server.issuer`: `iss` of issued tokens.
    pub issuer: String,
    pub lifetimes: LifetimeBounds,
    /// `tokens.max_delegation_depth`.
    pub max_delegation_depth: usize,
    /// The token endpoint's URL: what a DPoP proof's `htu` must name (RFC 9449 §4.3).
    pub token_endpoint: String,
    /// `limits.client_rate`: the request rate of clients without a `rate_limit`.
    pub client_rate: Option<crate::limits::Rate>,
}

pub struct Exchanger {
    pub trust: Arc<TrustStore>,
    pub verifier: Arc<Verifier>,
    pub replay: ReplayCache,
    pub revocations: Revocations,
    pub refresh: crate::refresh::RefreshTokens,
    pub keys: Arc<KeyRing>,
    pub audit: AuditLog,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    pub settings: ExchangeSettings,
    /// Per-client request rates (this replica's count).
    pub limiter: Arc<crate::limits::RateLimiter>,
    /// The candidate registry of `serve --shadow-trust`, when one is loaded.
    pub shadow: Option<Arc<shadow::Shadow>>,
}

/// Who a request's audit row names: the authenticated client, or the registered client
/// whose id was presented without authenticating.
#[derive(Debug, Default)]
pub(crate) struct Caller {
    pub id: Option<String>,
    pub authenticated: bool,
    /// An id presented that names no registered client (escaped): told in the audit
    /// detail, never a column a summary is keyed by.
    pub unregistered: Option<String>,
}

impl Caller {
    /// Whether `error` is recorded in a periodic summary row rather than a row of its own
    /// (SPEC §3): refusals before the client is authenticated cost no commit each, nor do
    /// requests over a rate limit. Everything an authenticated client is refused within
    /// its rate gets its own row.
    pub(crate) fn summarised(&self, error: &ExchangeError) -> bool {
        !self.authenticated || matches!(error, ExchangeError::RateLimited { .. })
    }

    /// The audit `detail` of a refusal: the check, the operator's account, and the id
    /// presented when it names no registered client.
    pub(crate) fn detail(&self, error: &ExchangeError) -> String {
        let text = format!("{}: {}", error.check(), error.operator_text());
        bounded_reason(&match &self.unregistered {
            Some(id) => format!("{text} [presented client_id `{}`]", id),
            None => text,
        })
    }
}

/// What the audit row and the metric labels learn as the pipeline progresses.
#[derive(Debug, Default)]
struct Trail {
    grant: Option<GrantKind>,
    token_type: Option<TokenType>,
    caller: Caller,
    issuer: Option<crate::protocol::IssuerId>,
    subject: Option<String>,
    actor: Option<String>,
    audience: Option<String>,
    scopes: Option<String>,
    jti: Option<crate::protocol::Jti>,
    token_sha256: Option<String>,
    /// Writes that must win for the token to leave (a DPoP proof's `jti`, a refresh
    /// rotation): committed with its audit row, in one transaction (`record_guarded`).
    guards: Vec<crate::store::batch::Write>,
    /// The rotation a guarded write makes (a lost race is a reuse that revokes its family).
    rotating: Option<refresh::Rotating>,
}

impl Trail {
    /// The names the decision learnt, kept for the audit row even when it refused
    /// (moved, not copied: the record needs them no more).
    fn learn(&mut self, facts: Facts) {
        self.subject = facts.subject;
        self.actor = facts.actor;
        self.audience = facts.audience;
        self.scopes = facts.scopes;
    }
}

/// Compared against when the client id is unknown, so unknown clients cost the same
/// hash-and-compare as known ones and response time does not reveal client ids.
const UNKNOWN_CLIENT_SECRET: [u8; 32] = [0x5a; 32];

impl Exchanger {
    /// Handles one `POST /token`. `credentials` is what the HTTP layer read from the
    /// `Authorization` header (an error if that header was malformed).
    pub async fn token(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
    ) -> Result<TokenResponse, ExchangeError> {
        self.token_with_proof(credentials, form, Ok(None)).await
    }

    /// [`Exchanger::token`] with the request's `DPoP` header (RFC 9449 §4.1): absent,
    /// its one value, or refused already (sent twice).
    pub async fn token_with_proof(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
        dpop: Result<Option<&str>, crate::verify::dpop::DpopError>,
    ) -> Result<TokenResponse, ExchangeError> {
        let started = Instant::now();
        let mut trail = Trail::default();
        let mut record = Record::default();
        let dpop_text = dpop.as_ref().ok().copied().flatten();
        let result = match credentials {
            Ok(credentials) => {
                self.run(credentials, form, dpop, &mut trail, &mut record)
                    .await
            }
            Err(e) => Err(e),
        };
        self.shadow(&trail, &result, form, dpop_text);
        self.finish(trail, result, started).await
    }

    /// Hands the request to the shadow registry, if one is loaded, in a task of its own:
    /// the live answer never waits for it. Only requests whose client was authenticated
    /// are compared: before that there is no decision to compare.
    fn shadow(
        &self,
        trail: &Trail,
        result: &Result<TokenResponse, ExchangeError>,
        form: &Form,
        proof: Option<&str>,
    ) {
        let (Some(shadow), Some(client_id)) = (&self.shadow, &trail.caller.id) else {
            return;
        };
        let failing_step = result.as_ref().err().map(ExchangeError::step);
        // Nothing to compare before authentication, and a client over its rate must cost
        // no more than the refusal: the shadow would verify, fetch and introspect anyway.
        // A refresh grant changed state (the token is spent): a dry run after it can only
        // disagree.
        if matches!(
            failing_step,
            Some(Step::Request | Step::Client | Step::RateLimit)
        ) || trail.grant == Some(GrantKind::RefreshToken)
        {
            return;
        }
        let live = shadow::LiveOutcome {
            issued: result.is_ok(),
            failing_step,
        };
        let (shadow, client_id) = (shadow.clone(), client_id.clone());
        // The candidate decides with the same proof (as the explain member `dpop`).
        let form = match proof {
            Some(p) => form.with("dpop", p),
            None => form.clone(),
        };
        let issuer = trail.issuer.as_deref().unwrap_or("unknown").to_owned();
        tokio::spawn(async move { shadow.compare(&client_id, &form, live, &issuer).await });
    }

    /// Audits and counts a request refused before it could be parsed (body too large,
    /// wrong content type), and hands the error back for the response.
    pub async fn refuse(&self, error: ExchangeError) -> ExchangeError {
        match self
            .finish(Trail::default(), Err(error), Instant::now())
            .await
        {
            Err(e) => e,
            Ok(_) => ExchangeError::Internal("refusal turned into a token".into()),
        }
    }

    async fn finish(
        &self,
        mut trail: Trail,
        result: Result<TokenResponse, ExchangeError>,
        started: Instant,
    ) -> Result<TokenResponse, ExchangeError> {
        // Fields the log line and metrics do not need move into the row; the rest is copied.
        let event = AuditEvent {
            at: self.clock.now(),
            grant: trail.grant.map_or("unknown", GrantKind::label),
            client_id: trail.caller.id.clone(),
            issuer: trail.issuer.as_deref().map(str::to_owned),
            // Names come from tokens (a mapped username, an actor's sub): escaped and
            // bounded like request values.
            subject: trail.subject.take().as_deref().map(audited_name),
            actor: trail.actor.take().as_deref().map(audited_name),
            audience: trail.audience.take(),
            scopes: trail.scopes.take(),
            outcome: outcome_of(&result),
            // Request values (an audience, a scope) appear in messages: cut where they are
            // quoted (`telemetry::echo`), and the whole escaped and bounded here, so a
            // newline or a bidi override in a parameter can never forge a line of the trail.
            reason: result.as_ref().err().map(|e| e.reason().to_owned()),
            detail: result.as_ref().err().map(|e| trail.caller.detail(e)),
            jti: trail.jti.as_deref().map(str::to_owned),
            subject_token_sha256: trail.token_sha256.clone(),
        };
        if let Err(e) = &result {
            if trail.caller.summarised(e) {
                self.audit.summarise(event);
                self.observe(&trail, &result, started);
                return result;
            }
        }
        if result.is_ok() && !trail.guards.is_empty() {
            let result = self.commit_guarded(&mut trail, event, result).await;
            self.observe(&trail, &result, started);
            return result;
        }
        // The row must be committed before the token leaves; if it cannot be, the token
        // is never handed out.
        let audited = self.audit.record(event).await;
        let result = match (result, audited) {
            (Ok(resp), Ok(())) => Ok(resp),
            (Ok(_), Err(e)) => {
                tracing::error!(error = %e, "audit write failed; token withheld");
                Err(ExchangeError::AuditUnavailable)
            }
            (Err(e), Err(audit_err)) => {
                tracing::error!(error = %audit_err, "audit write failed for a refusal");
                Err(e)
            }
            (Err(e), Ok(())) => Err(e),
        };
        self.observe(&trail, &result, started);
        result
    }

    /// The issued row and the request's guarded writes in one commit: the token leaves
    /// only if each write won. Otherwise nothing of it was written, and the refusal gets a
    /// row of its own.
    async fn commit_guarded(
        &self,
        trail: &mut Trail,
        event: AuditEvent,
        result: Result<TokenResponse, ExchangeError>,
    ) -> Result<TokenResponse, ExchangeError> {
        let guards = std::mem::take(&mut trail.guards);
        let refused_row = event.clone();
        let written = match self.audit.record_guarded(event, guards).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "audit write failed; token withheld");
                return Err(ExchangeError::AuditUnavailable);
            }
        };
        let rotating = trail.rotating.take();
        let family = rotating.as_ref().map(|r| &r.family);
        let Some(error) = self.guard_refusal(&written, family).await else {
            self.rotated(rotating);
            return result;
        };
        if let Some(family) = family {
            self.refresh.forget(&family.family_id);
        }
        let row = AuditEvent {
            outcome: error_outcome(&error),
            reason: Some(error.reason().to_owned()),
            detail: Some(trail.caller.detail(&error)),
            jti: None,
            ..refused_row
        };
        trail.jti = None;
        if let Err(e) = self.audit.record(row).await {
            tracing::error!(error = %e, "audit write failed for a refusal");
        }
        Err(error)
    }

    /// Metrics and the log line, from the final result (an audit failure has already
    /// turned a token into `audit_unavailable` here).
    fn observe(
        &self,
        trail: &Trail,
        result: &Result<TokenResponse, ExchangeError>,
        started: Instant,
    ) {
        let outcome = outcome_of(result);
        let issuer = trail.issuer.as_deref().unwrap_or("unknown").to_owned();
        // SPEC §2 closes the grant and token type label sets: a request refused before
        // both were known (bad client, 413, 415, missing parameters) is counted in
        // tessera_rejections_total only.
        if let (Some(grant), Some(token_type)) = (trail.grant, trail.token_type) {
            let (grant, subject_token_type) = (grant.label(), token_type.label());
            self.metrics
                .exchange_duration
                .get_or_create(&DurationLabels {
                    grant,
                    subject_token_type,
                    issuer: issuer.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            self.metrics
                .exchanges
                .get_or_create(&ExchangeLabels {
                    grant,
                    subject_token_type,
                    issuer: issuer.clone(),
                    outcome: match outcome {
                        // `Ok` is the lifecycle endpoints' outcome; no exchange has it.
                        AuditOutcome::Issued | AuditOutcome::Ok => Outcome::issued,
                        AuditOutcome::Refused => Outcome::refused,
                        AuditOutcome::Error => Outcome::error,
                    },
                })
                .inc();
        }
        let grant = trail.grant.map_or("unknown", GrantKind::label);
        let client_id = trail.caller.id.as_deref().unwrap_or("-");
        let token_sha256 = trail.token_sha256.as_deref().unwrap_or("-");
        match result {
            Ok(_) => tracing::info!(
                target: "exchange",
                outcome = "issued", grant, issuer, client_id, token_sha256,
                jti = trail.jti.as_deref().unwrap_or("-"),
                "exchange"
            ),
            Err(e) => {
                let reason = e.reason();
                self.metrics
                    .rejections
                    .get_or_create(&ReasonLabels {
                        reason,
                        issuer: issuer.clone(),
                    })
                    .inc();
                let error = bounded_reason(&e.operator_text());
                tracing::info!(
                    target: "exchange",
                    outcome = outcome.as_str(),
                    grant, issuer, client_id, token_sha256, reason, error,
                    "exchange"
                );
            }
        }
    }

    async fn run(
        &self,
        credentials: ClientCredentials,
        form: &Form,
        dpop: Result<Option<&str>, crate::verify::dpop::DpopError>,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<TokenResponse, ExchangeError> {
        let grant_type = form.single("grant_type")?;
        let registry = self.trust.snapshot();
        let (caller, client) = self
            .authenticate_for_audit(&registry, credentials, form)
            .await;
        trail.caller = caller;
        let client = client?;
        record.pass(Step::Client, None, || {
            Detail::new(format!("authenticated as client {}", client.client_id)).with(
                "method",
                serde_json::to_value(client.auth).unwrap_or_default(),
            )
        });
        let grant = self.grant(grant_type, form, trail, record)?;
        let proof = self.proof(dpop, record)?;
        let plan = match grant {
            Grant::Refresh(req) => {
                let redeem = refresh::Redeem {
                    req,
                    proof: proof.as_ref(),
                    mode: refresh::Redemption::Live,
                };
                self.redeem(&registry, &client, redeem, trail, record)
                    .await?
            }
            grant => {
                self.decide(&registry, &client, grant, proof.as_ref(), trail, record)
                    .await?
            }
        };
        self.mint(plan, trail, record).await
    }

    /// RFC 9449 §4.3: the request's DPoP proof, checked against the token endpoint and
    /// the clock. Its `jti` joins the single-use ids minting consumes.
    fn proof(
        &self,
        dpop: Result<Option<&str>, crate::verify::dpop::DpopError>,
        record: &mut Record,
    ) -> Result<Option<crate::verify::dpop::DpopProof>, ExchangeError> {
        let Some(proof) = dpop.map_err(ExchangeError::Dpop)? else {
            return Ok(None);
        };
        let proof = crate::verify::dpop::check_proof(
            proof,
            &self.settings.token_endpoint,
            self.clock.now(),
        )
        .map_err(ExchangeError::Dpop)?;
        record.pass(Step::Dpop, None, || {
            Detail::new(format!(
                "proof by key {} ({}), htm POST, htu the token endpoint, iat within {} s",
                proof.jkt,
                proof.alg.name(),
                crate::verify::dpop::IAT_WINDOW_SECS
            ))
            .with("jkt", proof.jkt.as_str())
        });
        Ok(Some(proof))
    }

    /// RFC 6749 §4.5 / RFC 8693 §2.1: the grant and its parameters.
    fn grant(
        &self,
        grant_type: Option<&str>,
        form: &Form,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<Grant, ExchangeError> {
        let grant_type = grant_type
            .ok_or_else(|| ExchangeError::InvalidRequest("missing parameter grant_type".into()))?;
        let grant = request::parse_grant(grant_type, form)?;
        trail.grant = Some(grant.kind());
        record.pass(Step::Grant, None, || Detail::new(grant.kind().label()));
        Ok(grant)
    }

    /// Everything up to the decision, shared by `/token` and explain: verify what the
    /// grant presents (the steps of each verification reported into `record`), then the
    /// pure decision.
    async fn decide(
        &self,
        registry: &Registry,
        client: &ClientEntry,
        grant: Grant,
        proof: Option<&crate::verify::dpop::DpopProof>,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<policy::Plan, ExchangeError> {
        let (role, subject, actor, target, issued_token_type, wants_refresh) = match grant {
            Grant::TokenExchange(req) => (
                TokenRole::Subject,
                req.subject,
                req.actor,
                req.target,
                req.requested_token_type,
                req.wants_refresh,
            ),
            Grant::Bearer(req) => (
                TokenRole::Assertion,
                req.assertion,
                None,
                req.target,
                TokenType::AccessToken.urn(),
                false,
            ),
            Grant::Refresh(_) => {
                return Err(ExchangeError::Internal(
                    "the refresh grant is redeemed, not decided".into(),
                ))
            }
        };
        trail.token_type = Some(subject.token_type);
        trail.token_sha256 = Some(token_fingerprint(&subject.token));
        let subject = self
            .verify(registry, client, role, &subject, trail, record)
            .await?;
        let actor = match &actor {
            Some(a) => Some(
                self.verify(registry, client, TokenRole::Actor, a, trail, record)
                    .await?,
            ),
            None => None,
        };
        let input = policy::DecisionInput {
            registry,
            client,
            subject: (role, &subject),
            actor: actor.as_ref(),
            target: &target,
            issued_token_type,
            broker_issuer: &self.settings.issuer,
            lifetimes: &self.settings.lifetimes,
            max_delegation_depth: self.settings.max_delegation_depth,
            now: self.clock.now(),
            proof_jkt: proof.map(|p| p.jkt.as_str()),
            wants_refresh,
        };
        let mut plan = policy::decide(&input, record);
        if let Ok(plan) = &mut plan {
            plan.proof_replay = proof.map(refresh::proof_replay_key);
        }
        trail.learn(std::mem::take(&mut record.facts));
        plan
    }

    /// Verifies a presented token and checks its lineage against the revocations.
    async fn verify(
        &self,
        registry: &Registry,
        client: &ClientEntry,
        role: TokenRole,
        presented: &request::PresentedToken,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<VerifiedSubject, ExchangeError> {
        let (allowed, purpose) = match role {
            // A tessera refresh token is redeemed, never verified here.
            TokenRole::Subject | TokenRole::RefreshToken => {
                (&client.subject_issuers, Purpose::Exchange)
            }
            TokenRole::Actor => (&client.actor_issuers, Purpose::Exchange),
            TokenRole::Assertion => (&client.subject_issuers, Purpose::BearerGrant),
        };
        let expect = Expectation {
            allowed_issuers: allowed,
            purpose,
        };
        let token = Presented {
            token_type: presented.token_type,
            text: &presented.token,
        };
        let token = match self.verifier.verify(registry, token, &expect).await {
            Ok(t) => t,
            Err(Refusal { issuer, error }) => {
                // Once the issuer is resolved, refusals carry its id (metrics, audit).
                if role != TokenRole::Actor && issuer.is_some() {
                    trail.issuer = issuer;
                }
                return Err(match error {
                    VerifyError::IssuerUnavailable { issuer } => {
                        ExchangeError::IssuerUnavailable { issuer }
                    }
                    VerifyError::Internal(message) => ExchangeError::Internal(message.to_owned()),
                    error => ExchangeError::Token { role, error },
                });
            }
        };
        if role != TokenRole::Actor {
            trail.issuer = Some(token.issuer.id.clone());
        }
        if record.is_detailed() {
            explain::verified_steps(
                record,
                role,
                &token,
                self.clock.now(),
                self.verifier.saml_entity_id(),
            );
        }
        // A local token's lineage (parsed once, in verify) against the revocations.
        if self.revocations.any_revoked(token.lineage()) {
            return Err(ExchangeError::Unacceptable {
                role,
                refused: Refused::Revoked,
                message: "has been revoked (or a token it was exchanged from has)".into(),
            });
        }
        record.pass(Step::Revocation, Some(role), || {
            Detail::new(format!(
                "none of {} lineage id(s) is revoked",
                token.lineage().len()
            ))
        });
        Ok(token)
    }

    /// SPEC §4.1 replay: a single-use token is accepted once, across replicas. Runs after
    /// every other check so that a refusal for another reason does not use it up.
    async fn consume_single_use(
        &self,
        keys: &[(TokenRole, ReplayKey)],
    ) -> Result<(), ExchangeError> {
        for (role, key) in keys {
            match self.replay.consume(key).await {
                Ok(Seen::First) => {}
                Ok(Seen::Before) => {
                    self.metrics
                        .replays_blocked
                        .get_or_create(&IssuerLabels {
                            issuer: key.issuer.clone(),
                        })
                        .inc();
                    return Err(replayed(*role));
                }
                Err(e) => {
                    tracing::error!(error = %e, "replay cache unavailable");
                    return Err(ExchangeError::ReplayCacheUnavailable);
                }
            }
        }
        Ok(())
    }

    /// RFC 9449 §11.1: a DPoP proof is accepted once, on every replica; consumed last,
    /// so that a request refused for another reason leaves it unused.
    async fn consume_proof(&self, key: Option<&ReplayKey>) -> Result<(), ExchangeError> {
        let Some(key) = key else { return Ok(()) };
        match self.replay.consume(key).await {
            Ok(Seen::First) => Ok(()),
            Ok(Seen::Before) => Err(ExchangeError::Dpop(
                crate::verify::dpop::DpopError::Replayed,
            )),
            Err(e) => {
                tracing::error!(error = %e, "replay cache unavailable");
                Err(ExchangeError::ReplayCacheUnavailable)
            }
        }
    }

    /// The side effects a decision drives, in one place: consume single-use ids, sign.
    /// (The audit row and the metrics follow in `finish`.)
    async fn mint(
        &self,
        plan: policy::Plan,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<TokenResponse, ExchangeError> {
        if plan.single_use.is_empty() {
            // The proof's jti rides the audit row's commit: one commit per request.
            trail
                .guards
                .extend(plan.proof_replay.iter().map(ReplayCache::write_for));
        } else {
            // The proof first: a replayed proof must not use up a single-use assertion.
            self.consume_proof(plan.proof_replay.as_ref()).await?;
            self.consume_single_use(&plan.single_use).await?;
        }
        // Time-ordered (v7): the audit index on jti then grows at its end instead of dirtying
        // a random page per row. 74 random bits still make it unique.
        let jti = crate::protocol::Jti::new(uuid::Uuid::now_v7().simple().to_string());
        let scope = plan.scope();
        let family = refresh::family_of(&plan);
        // A family's id leads the lineage of every token it issues: revoking the family
        // (reuse, /revoke) refuses them all through the revocation list.
        let exchanged_from: Vec<Jti> = family
            .iter()
            .cloned()
            .chain(plan.exchanged_from.iter().cloned())
            .collect();
        let claims =
            AccessTokenClaims::of(&plan, &self.settings.issuer, &jti, &scope, &exchanged_from);
        let signed = match plan.audience.signing_alg {
            None => self.keys.sign(&claims),
            Some(alg) => match signing_alg(alg) {
                Some(alg) => self.keys.sign_with(&claims, alg),
                None => Err(crate::issue::IssueError::Key(format!(
                    "audience {}: tessera does not sign with {}",
                    plan.audience.id,
                    alg.name()
                ))),
            },
        }
        .map_err(ExchangeError::from_signing)?;
        let refresh_token = match family {
            Some(family) => Some(self.store_refresh(&plan, family, trail).await?),
            None => None,
        };
        record.pass(Step::Issue, None, || {
            Detail::new(format!("signed, jti {jti}, kid {}", signed.kid))
        });
        trail.jti = Some(jti);
        Ok(TokenResponse {
            access_token: signed.token,
            issued_token_type: plan.issued_token_type,
            token_type: if plan.binding.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: plan.lifetime,
            scope,
            refresh_token,
        })
    }
}

/// A single-use token presented again.
fn replayed(role: TokenRole) -> ExchangeError {
    ExchangeError::Unacceptable {
        role,
        refused: Refused::Replayed,
        message: "was already used (single-use: OneTimeUse or one_time_use)".into(),
    }
}

impl Exchanger {
    /// [`Exchanger::authenticate_client`], and the client id the audit row names: the
    /// authenticated client's, or on failure the presented one (escaped and bounded: it is
    /// request input), for the operator only, never told to the caller. `/token`,
    /// `/introspect` and `/revoke` all record a caller this way.
    pub(crate) async fn authenticate_for_audit(
        &self,
        registry: &Registry,
        credentials: ClientCredentials,
        form: &Form,
    ) -> (Caller, Result<Arc<ClientEntry>, ExchangeError>) {
        let presented = match &credentials {
            ClientCredentials::Basic { client_id, .. } => Some(audited_name(client_id)),
            ClientCredentials::None => form.single("client_id").ok().flatten().map(audited_name),
        };
        match self.authenticate_client(registry, credentials, form).await {
            Ok(client) => {
                let caller = Caller {
                    id: Some(client.client_id.to_string()),
                    authenticated: true,
                    unregistered: None,
                };
                (caller, self.admit(&client).map(|()| client))
            }
            Err(e) => {
                // Only a registered id is kept: the summary row's key must stay bounded,
                // and an unregistered id is the attacker's text anyway (the check says
                // `unknown_client`).
                let (id, unregistered) = match presented {
                    Some(id) if registry.clients.contains_key(id.as_str()) => (Some(id), None),
                    other => (None, other),
                };
                let caller = Caller {
                    id,
                    authenticated: false,
                    unregistered,
                };
                (caller, Err(e))
            }
        }
    }

    /// The authenticated client's rate limit, checked before anything else is looked at:
    /// a client over its rate costs one map lookup.
    fn admit(&self, client: &ClientEntry) -> Result<(), ExchangeError> {
        let Some(rate) = client.rate_limit.effective(self.settings.client_rate) else {
            return Ok(());
        };
        self.limiter
            .check(&client.client_id, rate)
            .map_err(|limited| {
                self.metrics
                    .rate_limited
                    .get_or_create(&crate::metrics::ClientLabels {
                        client: client.client_id.to_string(),
                    })
                    .inc();
                ExchangeError::RateLimited {
                    client: client.client_id.clone(),
                    limited,
                }
            })
    }
}

/// RFC 7521 §4.2 / RFC 7523 §2.2 client assertion type.
const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl Exchanger {
    /// RFC 6749 §2.3 client authentication: a secret ([`authenticate`]) or, for
    /// `private_key_jwt` clients, an RFC 7523 client assertion verified with the client's
    /// keys and single-use across replicas (its `jti` recorded in the database). Exactly
    /// one method per request, the one the registry names.
    pub(crate) async fn authenticate_client(
        &self,
        registry: &Registry,
        credentials: ClientCredentials,
        form: &Form,
    ) -> Result<Arc<ClientEntry>, ExchangeError> {
        let (kind, assertion) = (
            form.single("client_assertion_type")?,
            form.single("client_assertion")?,
        );
        let assertion = match (kind, assertion) {
            (None, None) => return authenticate(registry, credentials, form),
            (Some(CLIENT_ASSERTION_JWT), Some(a)) => a,
            (Some(_), Some(_)) => {
                return Err(ExchangeError::InvalidRequest(
                    "unsupported client_assertion_type (expected jwt-bearer, RFC 7523)".into(),
                ))
            }
            _ => {
                return Err(ExchangeError::InvalidRequest(
                    "client_assertion and client_assertion_type go together".into(),
                ))
            }
        };
        if !matches!(credentials, ClientCredentials::None)
            || form.single("client_secret")?.is_some()
        {
            return Err(ExchangeError::InvalidRequest(
                "use one client authentication method, not two".into(),
            ));
        }
        // The client is named by the form's client_id, else by the assertion's own sub
        // (unverified: it only selects whose keys must verify it).
        let named = match form.single("client_id")? {
            Some(id) => id.to_owned(),
            None => crate::verify::oidc::claimed_client(assertion).ok_or(
                ExchangeError::InvalidClient(ClientAuthFailure::Unauthenticated),
            )?,
        };
        let client = registry.client(&named).ok_or(ExchangeError::InvalidClient(
            ClientAuthFailure::UnknownClient,
        ))?;
        let (ClientAuthMethod::PrivateKeyJwt, Some(keys)) = (client.auth, &client.jwks) else {
            return Err(ExchangeError::InvalidClient(
                ClientAuthFailure::MethodMismatch,
            ));
        };
        let verified = self
            .verifier
            .verify_client_assertion(&client.client_id, keys, assertion)
            .await
            .map_err(ExchangeError::ClientAssertion)?;
        let key = crate::verify::ReplayKey {
            issuer: format!("client:{}", client.client_id),
            id: verified.jti.into(),
            expires_at: verified.expires_at,
        };
        match self.replay.consume(&key).await {
            Ok(Seen::First) => Ok(client.clone()),
            Ok(Seen::Before) => Err(ExchangeError::InvalidClient(
                ClientAuthFailure::AssertionReplayed,
            )),
            Err(e) => {
                tracing::error!(error = %e, "replay cache unavailable");
                Err(ExchangeError::ReplayCacheUnavailable)
            }
        }
    }
}

/// Issued, refused (the caller's fault) or error (ours or a foreign issuer's): the audit
/// row, the `outcome` label and the log line all classify a result this one way.
fn outcome_of(result: &Result<TokenResponse, ExchangeError>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Issued,
        Err(e) => error_outcome(e),
    }
}

fn error_outcome(e: &ExchangeError) -> AuditOutcome {
    match e.fault() {
        Fault::Caller => AuditOutcome::Refused,
        Fault::Issuer | Fault::Broker => AuditOutcome::Error,
    }
}

/// RFC 6749 §2.3: exactly one authentication method, the one registered for the client,
/// and the secret compared in constant time.
fn authenticate(
    registry: &Registry,
    credentials: ClientCredentials,
    form: &Form,
) -> Result<Arc<ClientEntry>, ExchangeError> {
    let form_id = form.single("client_id")?;
    let form_secret = form.single("client_secret")?;
    let (client_id, secret, method) = match credentials {
        ClientCredentials::Basic { client_id, secret } => {
            if form_secret.is_some() {
                return Err(ExchangeError::InvalidRequest(
                    "use one client authentication method, not two".into(),
                ));
            }
            if form_id.is_some_and(|id| id != client_id) {
                return Err(ExchangeError::InvalidRequest(
                    "client_id differs from the Authorization header".into(),
                ));
            }
            (client_id, secret, ClientAuthMethod::ClientSecretBasic)
        }
        ClientCredentials::None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => (
                ClientId::new(id),
                Secret::new(secret.to_owned()),
                ClientAuthMethod::ClientSecretPost,
            ),
            _ => {
                return Err(ExchangeError::InvalidClient(
                    ClientAuthFailure::Unauthenticated,
                ))
            }
        },
    };
    let client = registry.client(&client_id);
    let matches = match client {
        Some(c) => c.secret_matches(secret.expose()),
        None => {
            // Same work as a known client (see UNKNOWN_CLIENT_SECRET).
            use sha2::Digest;
            use subtle::ConstantTimeEq;
            let digest = sha2::Sha256::digest(secret.expose().as_bytes());
            let _ = digest.as_slice().ct_eq(&UNKNOWN_CLIENT_SECRET);
            false
        }
    };
    match client {
        Some(c) if matches && c.auth == method => Ok(c.clone()),
        // A right secret sent the wrong way is still refused: the registry says how
        // this client authenticates.
        Some(_) if matches => Err(ExchangeError::InvalidClient(
            ClientAuthFailure::MethodMismatch,
        )),
        Some(_) => Err(ExchangeError::InvalidClient(
            ClientAuthFailure::SecretMismatch,
        )),
        None => Err(ExchangeError::InvalidClient(
            ClientAuthFailure::UnknownClient,
        )),
    }
}

/// Warns at start and at each reload while a demo issuer (public private key) is loaded.
pub fn warn_about_demo_issuers(trust: &TrustStore) {
    for issuer in trust.snapshot().demo_issuers() {
        tracing::warn!(
            issuer = %issuer.id,
            "DEMO ISSUER LOADED: its private key is public (demo_signing_key_file); \
             anyone can mint tokens it accepts. Remove it from trust/ before production."
        );
    }
}

impl Exchanger {
    /// Reloads the registry (SIGHUP, `POST /admin/reload`): accepted whole and the
    /// issuers' caches warmed, or refused with the previous registry still serving.
    /// Returns the number of entries.
    pub fn reload_trust(&self) -> Result<usize, TrustError> {
        if let Some(shadow) = &self.shadow {
            // An invalid candidate is refused like an invalid live registry; the old
            // candidate keeps being used, and the live reload goes on regardless.
            match shadow.trust.reload() {
                Ok(candidate) => {
                    shadow.exchanger.verifier.warm_up(&candidate);
                    tracing::info!("shadow registry reloaded");
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "shadow registry reload refused; the previous candidate keeps being used"
                ),
            }
        }
        match self.trust.reload() {
            Ok(registry) => {
                self.metrics
                    .trust_reloads
                    .get_or_create(&OutcomeLabels { outcome: "ok" })
                    .inc();
                self.verifier.warm_up(&registry);
                warn_about_demo_issuers(&self.trust);
                tracing::info!(
                    issuers = registry.issuers.len(),
                    clients = registry.clients.len(),
                    audiences = registry.audiences.len(),
                    "trust registry reloaded"
                );
                Ok(registry.issuers.len() + registry.clients.len() + registry.audiences.len())
            }
            Err(e) => {
                self.metrics
                    .trust_reloads
                    .get_or_create(&OutcomeLabels { outcome: "refused" })
                    .inc();
                tracing::error!(error = %e, "trust registry reload refused; the previous registry keeps serving");
                Err(e)
            }
        }
    }
}

/// A registry signing algorithm as the key ring names it; `None` for one tessera does
/// not sign with (the loader admits only `JwsAlg::LOCAL`).
pub fn signing_alg(alg: crate::trust::JwsAlg) -> Option<crate::issue::SigningAlg> {
    alg.name().parse().ok()
}

/// Every algorithm the registry's audiences sign with, beside `tokens.signing_alg`.
pub fn audience_algs(registry: &Registry) -> Vec<crate::issue::SigningAlg> {
    let mut algs: Vec<_> = registry
        .audiences
        .values()
        .filter_map(|a| a.signing_alg.and_then(signing_alg))
        .collect();
    algs.sort_by_key(|a| a.as_str());
    algs.dedup();
    algs
}
