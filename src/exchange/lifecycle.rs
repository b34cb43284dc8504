//! The lifecycle of tessera's own tokens: RFC 7662 introspection and RFC 7009 revocation
//! (SPEC §3), for authenticated clients.
//!
//! Who may see or revoke what (README "Introspection and revocation"):
//! - a client may introspect a token issued *to* it (`client_id`) or issued *for* one of
//!   its audiences (a resource server registered as a client with that audience);
//!   anything else is answered `{"active": false}`, as RFC 7662 §2.2 allows, so the
//!   endpoint is no oracle for other clients' tokens;
//! - a client may revoke only tokens issued to it (RFC 7009 §2.1). A token that is not a
//!   valid tessera token is answered 200 with nothing done (RFC 7009 §2.2).
//!
//! A token is active when its signature verifies with tessera's published keys, it has
//! not expired, and neither it nor a token it was exchanged from is revoked (read from the
//! database here, not the replica's cached set: exact on every replica).
//!
//! Every call leaves one audit row (grant_type `introspection` or `revocation`) through
//! the exchanges' `AuditLog`, committed before the answer leaves: the client (the id it
//! presented when authentication failed), the token's jti, subject, audience, scopes and
//! actor when it is one of tessera's, a SHA-256 prefix of what was presented (never the
//! token), and the outcome:
//! - `ok`: the endpoint answered as its RFC says; `detail` says what (`active`,
//!   `inactive: revoked`, `revoked`, `nothing to revoke: ...`). An inactive answer is not
//!   a refusal: RFC 7662 §2.2 makes it the answer, and `issued` would claim a token was;
//! - `refused` / `error`: as for `/token` (the caller's fault, or ours), with the step in
//!   `reason` and the account in `detail`.
//!
//! A row that cannot be written turns the answer into 503 `temporarily_unavailable`, as
//! at `/token`. A revocation is recorded before its row and is never undone (a token once
//! revoked stays revoked): the caller learns of the failure, retries (revoking again is
//! harmless) and the retry leaves the row.

use serde_json::{Map, Value};

use crate::audit::{AuditEvent, AuditOutcome};
use crate::protocol::Jti;
use crate::telemetry::{audited_name, token_fingerprint};
use crate::trust::{ClientEntry, IssuerId, Registry, TokenType, LOCAL_ISSUER};
use crate::verify::{Expectation, Presented, Purpose, Refusal, VerifiedSubject};

use super::{ClientCredentials, ExchangeError, Exchanger, Fault, Form};

/// Which lifecycle endpoint a call is: its audit row's `grant_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Introspection,
    Revocation,
}

impl Lifecycle {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Introspection => "introspection",
            Self::Revocation => "revocation",
        }
    }
}

/// What a lifecycle call's audit row learns as it goes.
#[derive(Debug, Default)]
struct CallTrail {
    caller: super::Caller,
    issuer: Option<IssuerId>,
    subject: Option<String>,
    actor: Option<String>,
    audience: Option<String>,
    scopes: Option<String>,
    jti: Option<crate::protocol::Jti>,
    token_sha256: Option<String>,
    /// What an `ok` call answered (the row's `detail`).
    answer: Option<String>,
}

impl CallTrail {
    /// The verified token's names (its jti is no secret, SPEC §6).
    fn token(&mut self, token: &VerifiedSubject) {
        self.issuer = Some(token.issuer.id.clone());
        self.subject = token
            .assertion
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.actor = token.act.as_ref().map(|a| a.sub.clone());
        self.audience = Some(token.audiences.join(" ")).filter(|a| !a.is_empty());
        self.scopes = token.scopes.as_ref().map(ToString::to_string);
        self.jti = token.local.as_ref().map(|l| l.jti.clone());
    }
}

/// How long past its `exp` a revocation is kept: at least the clock skew tessera allows
/// its own tokens (the `local` entry's 60 s), with room.
pub(super) const REVOCATION_MARGIN_SECS: i64 = 300;

/// What introspection reveals of an active token (RFC 7662 §2.2).
const REVEALED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "act",
];

impl Exchanger {
    /// `POST /introspect`: the RFC 7662 §2.2 response object; the call audited.
    pub async fn introspect(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
    ) -> Result<Map<String, Value>, ExchangeError> {
        let mut trail = CallTrail::default();
        let result = self.introspect_call(credentials, form, &mut trail).await;
        self.finish_call(Lifecycle::Introspection, trail, result)
            .await
    }

    /// `POST /revoke`: records the token as revoked when it is the caller's; the call
    /// audited.
    pub async fn revoke(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
    ) -> Result<(), ExchangeError> {
        let mut trail = CallTrail::default();
        let result = self.revoke_call(credentials, form, &mut trail).await;
        self.finish_call(Lifecycle::Revocation, trail, result).await
    }

    /// Audits a lifecycle call refused before its form could be read (body too large,
    /// wrong content type), and hands the error back for the response.
    pub async fn refuse_call(&self, call: Lifecycle, error: ExchangeError) -> ExchangeError {
        match self
            .finish_call::<()>(call, CallTrail::default(), Err(error))
            .await
        {
            Err(e) => e,
            Ok(()) => ExchangeError::Internal("refusal turned into an answer".into()),
        }
    }

    /// Writes the call's audit row; the answer leaves only once it is committed.
    async fn finish_call<T>(
        &self,
        call: Lifecycle,
        trail: CallTrail,
        result: Result<T, ExchangeError>,
    ) -> Result<T, ExchangeError> {
        let (outcome, reason, detail) = match &result {
            Ok(_) => (AuditOutcome::Ok, None, trail.answer),
            Err(e) => (
                match e.fault() {
                    Fault::Caller => AuditOutcome::Refused,
                    Fault::Issuer | Fault::Broker => AuditOutcome::Error,
                },
                Some(e.reason().to_owned()),
                // Escaped and bounded: messages quote request values.
                Some(trail.caller.detail(e)),
            ),
        };
        let jti = trail.jti.clone();
        let summarised = result
            .as_ref()
            .err()
            .is_some_and(|e| trail.caller.summarised(e));
        let event = AuditEvent {
            at: self.clock.now(),
            grant: call.label(),
            client_id: trail.caller.id,
            issuer: trail.issuer.map(String::from),
            // Names come from a token: escaped and bounded as at /token.
            subject: trail.subject.as_deref().map(audited_name),
            actor: trail.actor.as_deref().map(audited_name),
            audience: trail.audience,
            scopes: trail.scopes,
            outcome,
            reason,
            detail,
            jti: trail.jti.map(String::from),
            subject_token_sha256: trail.token_sha256,
        };
        if summarised {
            self.audit.summarise(event);
            return result;
        }
        match (result, self.audit.record(event).await) {
            (Ok(answer), Ok(())) => Ok(answer),
            (Ok(_), Err(e)) => {
                tracing::error!(
                    error = %e, call = call.label(), jti = jti.as_deref().unwrap_or("-"),
                    "audit write failed; answered temporarily_unavailable"
                );
                Err(ExchangeError::AuditUnavailable)
            }
            (Err(e), Err(audit_err)) => {
                tracing::error!(error = %audit_err, call = call.label(), "audit write failed for a refusal");
                Err(e)
            }
            (Err(e), Ok(())) => Err(e),
        }
    }

    /// The client, authenticated; on failure the trail keeps the id it presented.
    async fn authenticate_caller(
        &self,
        registry: &Registry,
        credentials: ClientCredentials,
        form: &Form,
        trail: &mut CallTrail,
    ) -> Result<std::sync::Arc<ClientEntry>, ExchangeError> {
        let (caller, client) = self
            .authenticate_for_audit(registry, credentials, form)
            .await;
        trail.caller = caller;
        client
    }

    async fn introspect_call(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
        trail: &mut CallTrail,
    ) -> Result<Map<String, Value>, ExchangeError> {
        let registry = self.trust.snapshot();
        let client = self
            .authenticate_caller(&registry, credentials?, form, trail)
            .await?;
        let token = required(form, "token")?;
        trail.token_sha256 = Some(token_fingerprint(token));
        // RFC 7662 §2.1: the hint may be ignored; the token's own form says which it is.
        if token.starts_with(crate::refresh::PREFIX) {
            return self.introspect_refresh(&client, token, trail).await;
        }
        let verified = match self.local_token(&registry, token).await {
            Ok(v) => v,
            Err(check) => {
                let why = format!("not a valid tessera token ({check})");
                return Ok(inactive(trail, &why));
            }
        };
        trail.token(&verified);
        // RFC 7662 §2.2: a token past its exp is inactive, whatever skew verification
        // allows a presented token.
        if verified.expires_at <= self.clock.now() {
            return Ok(inactive(trail, "expired"));
        }
        if !may_introspect(&registry, &client, &verified) {
            return Ok(inactive(trail, "not visible to this client"));
        }
        if self.revoked(&verified).await? {
            return Ok(inactive(
                trail,
                "revoked (or a token it was exchanged from is)",
            ));
        }
        trail.answer = Some("active".into());
        let mut out: Map<String, Value> = REVEALED
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), verified.assertion.get(*k)?.clone())))
            .collect();
        out.insert("active".into(), Value::Bool(true));
        // RFC 9449 §6.2: a bound token's introspection says so, with its cnf.
        let bound = verified.binding().ok().flatten().is_some();
        if let Some(cnf) = verified.assertion.get("cnf").filter(|_| bound) {
            out.insert("cnf".into(), cnf.clone());
        }
        let token_type = if bound { "DPoP" } else { "Bearer" };
        out.insert("token_type".into(), Value::String(token_type.into()));
        Ok(out)
    }

    async fn revoke_call(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
        trail: &mut CallTrail,
    ) -> Result<(), ExchangeError> {
        let registry = self.trust.snapshot();
        let client = self
            .authenticate_caller(&registry, credentials?, form, trail)
            .await?;
        let token = required(form, "token")?;
        trail.token_sha256 = Some(token_fingerprint(token));
        // RFC 7009 §2.1: the hint may be ignored; the token's own form says which it is
        // (an unknown hint is fine too, §2.2.1).
        form.single("token_type_hint")?;
        if token.starts_with(crate::refresh::PREFIX) {
            return self.revoke_refresh(&client, token, trail).await;
        }
        let verified = match self.local_token(&registry, token).await {
            Ok(v) => v,
            Err(check) => {
                trail.answer = Some(format!(
                    "nothing to revoke: not a valid tessera token ({check})"
                ));
                return Ok(());
            }
        };
        trail.token(&verified);
        let Some(local) = &verified.local else {
            trail.answer = Some("nothing to revoke: not a token tessera issued".into());
            return Ok(());
        };
        if local.client_id != client.client_id {
            return Err(ExchangeError::UnauthorizedClient(
                "a client may revoke only tokens issued to it",
            ));
        }
        let jti = &local.jti;
        self.revocations
            // Kept past exp by the skew a presented token is allowed (it is still
            // verifiable that long).
            .revoke(
                jti,
                verified.expires_at.saturating_add(REVOCATION_MARGIN_SECS),
                &client.client_id,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocation could not be recorded");
                ExchangeError::AuditUnavailable
            })?;
        tracing::info!(target: "exchange", client_id = %client.client_id, jti = %jti, "token revoked");
        trail.answer = Some("revoked".into());
        Ok(())
    }

    /// RFC 7662 for a tessera refresh token: to its own client only (SPEC §3), active
    /// while unspent, unrevoked and within both its limits; `exp` the earlier deadline.
    async fn introspect_refresh(
        &self,
        client: &ClientEntry,
        token: &str,
        trail: &mut CallTrail,
    ) -> Result<Map<String, Value>, ExchangeError> {
        let Some(found) = self.find_refresh(token, trail).await? else {
            return Ok(inactive(trail, "not a refresh token tessera issued"));
        };
        let family = &found.family;
        if family.client_id != client.client_id.as_str() {
            return Ok(inactive(trail, "not visible to this client"));
        }
        let revoked = self
            .revocations
            .any_revoked_now(vec![Jti::new(family.family_id.clone())])
            .await
            .map_err(ExchangeError::RefreshStoreUnavailable)?;
        let why = match () {
            _ if family.revoked_at.is_some() || revoked => Some("its family was revoked"),
            _ if found.spent => Some("used (rotated)"),
            _ if self.clock.now() >= found.deadline() => Some("expired"),
            _ => None,
        };
        if let Some(why) = why {
            return Ok(inactive(trail, why));
        }
        trail.answer = Some("active".into());
        let grant = super::refresh::FamilyGrant::read(family)?;
        let mut out = Map::new();
        out.insert("active".into(), Value::Bool(true));
        out.insert("token_type".into(), "refresh_token".into());
        out.insert("client_id".into(), family.client_id.clone().into());
        out.insert("sub".into(), grant.subject.into());
        if let Some(a) = &trail.audience {
            out.insert("aud".into(), a.clone().into());
        }
        out.insert("scope".into(), grant.scopes.to_string().into());
        out.insert("iat".into(), found.issued_at.into());
        out.insert("exp".into(), found.deadline().into());
        Ok(out)
    }

    /// RFC 7009 for a tessera refresh token: its client revokes the family, and with it
    /// every access token it issued (RFC 7009 §2.1).
    async fn revoke_refresh(
        &self,
        client: &ClientEntry,
        token: &str,
        trail: &mut CallTrail,
    ) -> Result<(), ExchangeError> {
        let Some(found) = self.find_refresh(token, trail).await? else {
            trail.answer = Some("nothing to revoke: not a refresh token tessera issued".into());
            return Ok(());
        };
        if found.family.client_id != client.client_id.as_str() {
            return Err(ExchangeError::UnauthorizedClient(
                "a client may revoke only tokens issued to it",
            ));
        }
        self.revoke_family(&found.family, "revoked by its client")
            .await?;
        tracing::info!(target: "exchange", client_id = %client.client_id, family = %found.family.family_id, "refresh family revoked");
        trail.answer = Some("revoked (the refresh family and its access tokens)".into());
        Ok(())
    }

    /// The refresh token's row, its family's names in the trail.
    async fn find_refresh(
        &self,
        token: &str,
        trail: &mut CallTrail,
    ) -> Result<Option<crate::store::refresh::Found>, ExchangeError> {
        let found = self
            .refresh
            .find_stored(crate::refresh::Presented::of(token))
            .await
            .map_err(ExchangeError::RefreshStoreUnavailable)?;
        if let Some(f) = &found {
            let registry = self.trust.snapshot();
            trail.issuer = Some(IssuerId::new(LOCAL_ISSUER));
            trail.jti = Some(Jti::new(f.family.family_id.clone()));
            trail.audience = registry
                .audiences
                .get(f.family.audience_id.as_str())
                .map(|a| a.audience.to_string());
            if let Ok(grant) = super::refresh::FamilyGrant::read(&f.family) {
                trail.subject = Some(grant.subject.clone());
                trail.scopes = Some(grant.scopes.to_string());
            }
        }
        Ok(found)
    }

    /// `token` verified as a tessera access token (signature, `typ`, expiry), or the
    /// label of the check it failed.
    async fn local_token(
        &self,
        registry: &Registry,
        token: &str,
    ) -> Result<VerifiedSubject, &'static str> {
        let local = [IssuerId::new(LOCAL_ISSUER)];
        let expect = Expectation {
            allowed_issuers: &local,
            purpose: Purpose::Exchange,
        };
        let presented = Presented {
            token_type: TokenType::AccessToken,
            text: token,
        };
        match self.verifier.verify(registry, presented, &expect).await {
            Ok(v) if v.issuer.id == LOCAL_ISSUER => Ok(v),
            Ok(_) => Err("unknown_issuer"),
            Err(Refusal { error, .. }) => Err(error.reason()),
        }
    }

    async fn revoked(&self, token: &VerifiedSubject) -> Result<bool, ExchangeError> {
        self.revocations
            .any_revoked_now(token.lineage().to_vec())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocations could not be read");
                ExchangeError::AuditUnavailable
            })
    }
}

/// RFC 7662 §2.2's answer for a token the caller may not see or that is not active: the
/// audit row says which.
fn inactive(trail: &mut CallTrail, why: &str) -> Map<String, Value> {
    trail.answer = Some(format!("inactive: {why}"));
    let mut m = Map::new();
    m.insert("active".into(), Value::Bool(false));
    m
}

/// The caller is the token's client, or the token is for one of the caller's audiences.
fn may_introspect(registry: &Registry, client: &ClientEntry, token: &VerifiedSubject) -> bool {
    let own = token
        .local
        .as_ref()
        .is_some_and(|l| l.client_id == client.client_id);
    let for_its_audience = client
        .audiences
        .iter()
        .filter_map(|id| registry.audiences.get(id))
        .any(|a| token.audiences.iter().any(|t| a.audience == t.as_str()));
    own || for_its_audience
}

fn required<'f>(form: &'f Form, name: &'static str) -> Result<&'f str, ExchangeError> {
    form.single(name)?
        .ok_or_else(|| ExchangeError::InvalidRequest(format!("missing parameter {name}")))
}
