//! tessera's own refresh tokens in the exchange (SPEC §3): a family started beside an
//! access token, and the `refresh_token` grant (RFC 6749 §6) with rotation on every use and
//! reuse detection (RFC 9700 §4.14.2).
//!
//! A family is the decision of the exchange that started it, kept: every access token it
//! issues repeats that subject, `act`, mapped claims and lineage, within that scope, for
//! that client and audience. What may change at a refresh is only what narrows: fewer
//! scopes, a shorter life, a proof by a new key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::metrics::OutcomeLabels;
use crate::protocol::{Jti, ScopeSet};
use crate::replay::ReplayKey;
use crate::secret::Secret;
use crate::store::batch::{Write, Written};
use crate::store::refresh::{CreateError, FamilyRow, Found, Rotation};
use crate::telemetry::token_fingerprint;
use crate::trust::{AudienceEntry, ClientEntry, IssuerId, Registry, TokenType, LOCAL_ISSUER};
use crate::verify::dpop::{DpopError, DpopProof, IAT_WINDOW_SECS};
use crate::verify::{Act, MayAct};

use super::decision::{Detail, Record, Step};
use super::error::{ExchangeError, RefreshRefusal, TokenRole};
use super::policy::{self, Plan, RefreshIssue};
use super::request::RefreshRequest;
use super::{Exchanger, Trail};

/// What every access token of a family repeats (stored as JSON: names and claims, never a
/// token).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FamilyGrant {
    pub subject: String,
    pub scopes: ScopeSet,
    act: Option<Value>,
    src_iss: Option<String>,
    may_act: Option<Value>,
    claims: Map<String, Value>,
    exchanged_from: Vec<Jti>,
    acted_from: Vec<Jti>,
    /// The registry entries that vouched for the subject and actor: a family lives only
    /// while the client still trusts them.
    #[serde(default)]
    subject_issuer: Option<IssuerId>,
    #[serde(default)]
    actor_issuer: Option<IssuerId>,
}

impl FamilyGrant {
    fn of(plan: &Plan) -> Self {
        Self {
            subject: plan.subject.clone(),
            scopes: plan.scopes.clone(),
            act: plan.act.as_ref().map(Act::to_value),
            src_iss: plan.src_iss.clone(),
            may_act: plan
                .may_act
                .as_ref()
                .and_then(|m| serde_json::to_value(m).ok()),
            claims: plan.claims.clone(),
            exchanged_from: plan.exchanged_from.clone(),
            acted_from: plan.acted_from.clone(),
            subject_issuer: plan.subject_issuer.clone(),
            actor_issuer: plan.actor_issuer.clone(),
        }
    }

    /// The family's grant as stored; a row tessera cannot read back is its own fault.
    pub(super) fn read(family: &FamilyRow) -> Result<Self, ExchangeError> {
        serde_json::from_str(&family.grant_json).map_err(|e| {
            ExchangeError::Internal(format!(
                "refresh family {} has an unreadable grant: {e}",
                family.family_id
            ))
        })
    }

    /// The tessera tokens the family descends from.
    fn lineage(&self) -> impl Iterator<Item = &Jti> {
        self.exchanged_from.iter().chain(&self.acted_from)
    }

    fn act(&self) -> Result<Option<Act>, ExchangeError> {
        self.act
            .as_ref()
            .map(Act::from_claim)
            .transpose()
            .map_err(|e| ExchangeError::Internal(format!("a stored act: {e}")))
    }

    fn may_act(&self) -> Result<Option<MayAct>, ExchangeError> {
        self.may_act
            .as_ref()
            .map(MayAct::from_claim)
            .transpose()
            .map_err(|e| ExchangeError::Internal(format!("a stored may_act: {e}")))
    }
}

/// The family a minted token belongs to: a new one (its id drawn here, time-ordered like
/// a `jti`), the redeemed token's, or none.
pub(super) fn family_of(plan: &Plan) -> Option<Jti> {
    match &plan.refresh {
        Some(RefreshIssue::Start(_)) => {
            Some(Jti::new(format!("rf{}", uuid::Uuid::now_v7().simple())))
        }
        Some(RefreshIssue::Rotate { family, .. }) => Some(Jti::new(family.family_id.clone())),
        None => None,
    }
}

/// RFC 9449 §11.1: a proof's `jti` is remembered for as long as its `iat` is acceptable
/// (scoped by its key, so two clients' random ids never collide).
pub(super) fn proof_replay_key(proof: &DpopProof) -> ReplayKey {
    ReplayKey {
        issuer: format!("dpop:{}", proof.jkt),
        id: Jti::new(proof.jti.clone()),
        expires_at: proof.iat.saturating_add(2 * IAT_WINDOW_SECS),
    }
}

/// A rotation riding its request's commit: what this replica remembers of the family
/// once the commit says it won (`RefreshTokens::issued`).
#[derive(Debug)]
pub(super) struct Rotating {
    pub family: FamilyRow,
    next: crate::refresh::Presented,
    issued_at: crate::clock::UnixTime,
}

/// A refresh token presented: the request, its DPoP proof, and whether this is `/token`.
pub(super) struct Redeem<'a> {
    pub req: RefreshRequest,
    pub proof: Option<&'a DpopProof>,
    pub mode: Redemption,
}

/// Whether a redemption may change state: `/token` revokes a reused family and counts
/// outcomes; explain does neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redemption {
    Live,
    DryRun,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Exchanger {
    pub(super) fn count_refresh(&self, outcome: &'static str) {
        self.metrics
            .refresh_tokens
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// RFC 6749 §6: the family's decision again, for this request. Reads only, but for a
    /// live reuse, which revokes the family (RFC 9700 §4.14.2).
    pub(super) async fn redeem(
        &self,
        registry: &Registry,
        client: &ClientEntry,
        Redeem { req, proof, mode }: Redeem<'_>,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<Plan, ExchangeError> {
        trail.token_type = Some(TokenType::RefreshToken);
        trail.token_sha256 = Some(token_fingerprint(&req.token));
        trail.issuer = Some(IssuerId::new(LOCAL_ISSUER));
        let presented = crate::refresh::Presented::of(&req.token);
        let found = match mode {
            Redemption::Live => self.refresh.find(presented.clone()).await,
            Redemption::DryRun => self.refresh.find_stored(presented.clone()).await,
        }
        .map_err(ExchangeError::RefreshStoreUnavailable)?
        .ok_or(ExchangeError::Refresh(RefreshRefusal::Unknown))?;
        let grant = FamilyGrant::read(&found.family)?;
        trail.subject = Some(grant.subject.clone());
        trail.scopes = Some(grant.scopes.to_string());
        if let Err(e) = self.check_family(client, &found, &grant, mode) {
            if e == RefreshRefusal::Reused && mode == Redemption::Live {
                return Err(self.revoke_reused(&found.family).await);
            }
            return Err(ExchangeError::Refresh(e));
        }
        record.pass(Step::Refresh, Some(TokenRole::RefreshToken), || {
            family_detail(&found)
        });
        let plan = self.replan(registry, client, (&req, proof), &found, grant, record)?;
        trail.audience = Some(plan.audience.audience.to_string());
        trail.scopes = Some(plan.scope());
        trail.actor = plan.act.as_ref().map(|a| a.sub.clone());
        Ok(Plan {
            refresh: Some(RefreshIssue::Rotate {
                family: Box::new(found.family),
                presented,
            }),
            ..plan
        })
    }

    /// The family's own rules, in the order that spends nothing on a refusal that is not a
    /// reuse: the same client only, not revoked, not spent, within its limits.
    fn check_family(
        &self,
        client: &ClientEntry,
        found: &Found,
        grant: &FamilyGrant,
        mode: Redemption,
    ) -> Result<(), RefreshRefusal> {
        let family = &found.family;
        let now = self.clock.now();
        if family.client_id != client.client_id.as_str() {
            return Err(RefreshRefusal::OtherClient);
        }
        if family.revoked_at.is_some() {
            return Err(RefreshRefusal::FamilyRevoked);
        }
        if found.spent {
            return Err(RefreshRefusal::Reused);
        }
        let expired = if now >= family.expires_at {
            Some(RefreshRefusal::Expired)
        } else if now >= found.deadline() {
            Some(RefreshRefusal::Idle)
        } else {
            None
        };
        if let Some(e) = expired {
            if mode == Redemption::Live {
                self.count_refresh("expired");
            }
            return Err(e);
        }
        // Revoked on another replica a moment ago (the row says so at its next read), or a
        // token it descends from: this replica's revoked set says so already.
        if self
            .revocations
            .any_revoked([&Jti::new(family.family_id.clone())])
        {
            return Err(RefreshRefusal::FamilyRevoked);
        }
        if self.revocations.any_revoked(grant.lineage()) {
            return Err(RefreshRefusal::LineageRevoked);
        }
        Ok(())
    }

    /// The access token a redemption allows: the family's grant under today's registry
    /// (the client and audience must still allow refresh tokens, scopes only narrow).
    fn replan(
        &self,
        registry: &Registry,
        client: &ClientEntry,
        (req, proof): (&RefreshRequest, Option<&DpopProof>),
        found: &Found,
        grant: FamilyGrant,
        record: &mut Record,
    ) -> Result<Plan, ExchangeError> {
        let family = &found.family;
        let audience = self.family_audience(registry, client, req, family)?;
        still_trusted(registry, client, &grant)?;
        let now = self.clock.now();
        let end = current_end(found, &audience, now)?;
        let scopes = policy::grant_scopes(
            req.target.scopes.as_ref(),
            client,
            &audience,
            Some(&grant.scopes),
        )?;
        record.pass(Step::Scope, None, || {
            Detail::new(format!(
                "granted `{scopes}` (the family's `{}`)",
                grant.scopes
            ))
        });
        let jkt = family_binding(family, &audience, proof)?;
        record.pass(Step::Dpop, None, || {
            Detail::new(match &jkt {
                Some(j) => format!("bound to the proof's key (jkt {j})"),
                None => "no DPoP proof: a bearer token".to_owned(),
            })
            .with("family_bound", family.dpop_bound)
        });
        let lifetime = policy::lifetime(
            now,
            &self.settings.lifetimes,
            &audience,
            client,
            &[(TokenRole::RefreshToken, end)],
        )?;
        record.pass(Step::Lifetime, None, || {
            Detail::new(format!("{lifetime} s (the family ends at {end})"))
        });
        Ok(Plan {
            client_id: client.client_id.clone(),
            act: grant.act()?,
            may_act: grant.may_act()?,
            subject: grant.subject,
            claims: policy::audience_claims(&grant.claims, &audience),
            audience,
            scopes,
            issued_at: now,
            lifetime,
            src_iss: grant.src_iss,
            exchanged_from: grant.exchanged_from,
            acted_from: grant.acted_from,
            subject_issuer: grant.subject_issuer,
            actor_issuer: grant.actor_issuer,
            issued_token_type: None,
            single_use: Vec::new(),
            proof_replay: proof.map(proof_replay_key),
            binding: jkt,
            refresh: None,
        })
    }

    /// The family's audience, if the registry still lets this client refresh for it; an
    /// `audience`/`resource` parameter may only name it again (RFC 8707 §2.2).
    fn family_audience(
        &self,
        registry: &Registry,
        client: &ClientEntry,
        req: &RefreshRequest,
        family: &FamilyRow,
    ) -> Result<std::sync::Arc<AudienceEntry>, ExchangeError> {
        let audience = registry
            .audiences
            .get(family.audience_id.as_str())
            .filter(|a| a.refresh.is_some() && client.refresh_tokens)
            .filter(|a| client.audiences.contains(&a.id))
            .cloned()
            .ok_or(ExchangeError::Refresh(RefreshRefusal::NoLongerAllowed))?;
        let named = !req.target.audiences.is_empty() || !req.target.resources.is_empty();
        if named && policy::resolve_audience(registry, client, &req.target)?.id != audience.id {
            return Err(ExchangeError::InvalidTarget(
                "a refresh token is redeemed for its family's audience only".into(),
            ));
        }
        Ok(audience)
    }

    /// Revokes a family whose spent token came back (RFC 9700 §4.14.2), and with it every
    /// access token it issued; this replica learns of it before answering.
    pub(super) async fn revoke_reused(&self, family: &FamilyRow) -> ExchangeError {
        self.count_refresh("reused");
        tracing::warn!(
            target: "exchange",
            family = %family.family_id, client_id = %family.client_id,
            "a spent refresh token was presented again: its family is revoked (RFC 9700 §4.14.2)"
        );
        match self.revoke_family(family, "reused").await {
            Ok(()) => ExchangeError::Refresh(RefreshRefusal::Reused),
            Err(e) => e,
        }
    }

    /// What a guarded commit's writes found, as the request's answer: `None` when each
    /// won; else the refusal (a replayed proof, a token spent meanwhile: a reuse, which
    /// revokes the family, or a family revoked meanwhile).
    pub(super) async fn guard_refusal(
        &self,
        written: &[Written],
        family: Option<&FamilyRow>,
    ) -> Option<ExchangeError> {
        for w in written {
            match (w, family) {
                (Written::Replay(crate::store::replay::Seen::Before), _) => {
                    return Some(ExchangeError::Dpop(DpopError::Replayed))
                }
                (Written::Rotate(Rotation::AlreadyUsed), Some(f)) => {
                    return Some(self.revoke_reused(f).await)
                }
                (Written::Rotate(Rotation::AlreadyUsed | Rotation::FamilyRevoked), _) => {
                    return Some(ExchangeError::Refresh(RefreshRefusal::FamilyRevoked))
                }
                _ => {}
            }
        }
        if written
            .iter()
            .any(|w| matches!(w, Written::Rotate(Rotation::Rotated)))
        {
            self.count_refresh("rotated");
        }
        None
    }

    /// A guarded rotation won: its new token is now the family's newest.
    pub(super) fn rotated(&self, rotating: Option<Rotating>) {
        if let Some(r) = rotating {
            self.refresh.issued(&r.family, &r.next, r.issued_at);
        }
    }

    /// Revokes a family (reuse, `/revoke`): stored, then learnt by this replica.
    pub(super) async fn revoke_family(
        &self,
        family: &FamilyRow,
        reason: &'static str,
    ) -> Result<(), ExchangeError> {
        self.refresh
            .revoke_family(family.clone(), self.clock.now(), reason)
            .await
            .map_err(ExchangeError::RefreshStoreUnavailable)?;
        self.revocations
            .any_revoked_now(vec![Jti::new(family.family_id.clone())])
            .await
            .map_err(ExchangeError::RefreshStoreUnavailable)?;
        Ok(())
    }

    /// Stores what minting issued: a new family and its first token now; for a redeemed
    /// token, its successor and the spend go with the audit row (`trail.guards`). Returns
    /// the new refresh token.
    pub(super) async fn store_refresh(
        &self,
        plan: &Plan,
        family_id: Jti,
        trail: &mut Trail,
    ) -> Result<Secret, ExchangeError> {
        let (token, stored) = crate::refresh::new_token(family_id.as_str());
        let now = plan.issued_at;
        let unavailable = ExchangeError::RefreshStoreUnavailable;
        match &plan.refresh {
            Some(RefreshIssue::Start(terms)) => {
                let row = FamilyRow {
                    family_id: family_id.to_string(),
                    client_id: plan.client_id.to_string(),
                    audience_id: plan.audience.id.to_string(),
                    grant_json: serde_json::to_string(&FamilyGrant::of(plan))
                        .map_err(|e| ExchangeError::Internal(e.to_string()))?,
                    dpop_bound: plan.binding.is_some(),
                    created_at: now,
                    expires_at: now.saturating_add(secs(terms.lifetime)),
                    idle_secs: terms.idle.map(secs),
                    revoked_at: None,
                    revoked_reason: None,
                };
                let first = stored.clone();
                let cached = row.clone();
                let lineage = plan
                    .exchanged_from
                    .iter()
                    .chain(&plan.acted_from)
                    .map(ToString::to_string)
                    .collect();
                self.refresh
                    .create(row, stored, lineage)
                    .await
                    .map_err(|e| match e {
                        CreateError::LineageRevoked => ExchangeError::Unacceptable {
                            role: TokenRole::Subject,
                            refused: crate::exchange::Refused::Revoked,
                            message: "has been revoked (or a token it was exchanged from has)"
                                .into(),
                        },
                        CreateError::Store(e) => unavailable(e),
                    })?;
                self.refresh.issued(&cached, &first, now);
                self.count_refresh("issued");
            }
            Some(RefreshIssue::Rotate { family, presented }) => {
                // Spent in the commit of this request's audit row (`finish`): the new
                // token, the spend and the row are durable together or not at all.
                trail.guards.push(Write::Rotate {
                    family_id: family.family_id.clone(),
                    old: presented.digest.clone(),
                    new: (stored.key.clone(), stored.digest.clone()),
                    now,
                });
                trail.rotating = Some(Rotating {
                    family: FamilyRow::clone(family),
                    next: stored,
                    issued_at: now,
                });
            }
            None => return Err(ExchangeError::Internal("no refresh token to store".into())),
        }
        Ok(token)
    }
}

/// RFC 9449 §5: a family started with a proof needs one at every refresh (any key: its
/// refresh tokens are bound to the client's authentication) and never yields a bearer
/// token; an audience with `require_dpop` gets only bound tokens.
fn family_binding(
    family: &FamilyRow,
    audience: &AudienceEntry,
    proof: Option<&DpopProof>,
) -> Result<Option<String>, ExchangeError> {
    if family.dpop_bound && proof.is_none() {
        return Err(ExchangeError::Dpop(DpopError::Required(
            "the refresh family was started with a DPoP proof",
        )));
    }
    policy::check_required(audience, proof.map(|p| p.jkt.as_str()))?;
    Ok(proof.map(|p| p.jkt.clone()))
}

/// The issuers that vouched for the family's subject and actor are still registered and
/// still trusted by the client for that role: removing a compromised IdP (or an issuer
/// from a client's list) ends its families at their next use.
fn still_trusted(
    registry: &Registry,
    client: &ClientEntry,
    grant: &FamilyGrant,
) -> Result<(), ExchangeError> {
    let trusted = |id: &Option<IssuerId>, allowed: &[IssuerId]| {
        id.as_ref().is_none_or(|id| {
            (id.as_str() == LOCAL_ISSUER || registry.issuers.contains_key(id.as_str()))
                && allowed.contains(id)
        })
    };
    if trusted(&grant.subject_issuer, &client.subject_issuers)
        && trusted(&grant.actor_issuer, &client.actor_issuers)
    {
        Ok(())
    } else {
        Err(ExchangeError::Refresh(
            RefreshRefusal::IssuerNoLongerTrusted,
        ))
    }
}

/// When the family ends under today's audience policy: a `refresh_lifetime` or
/// `refresh_idle` shortened since it started applies to it too (never lengthened).
fn current_end(
    found: &Found,
    audience: &AudienceEntry,
    now: crate::clock::UnixTime,
) -> Result<crate::clock::UnixTime, ExchangeError> {
    let Some(policy) = audience.refresh else {
        return Err(ExchangeError::Refresh(RefreshRefusal::NoLongerAllowed));
    };
    let family = &found.family;
    let end = family
        .expires_at
        .min(family.created_at.saturating_add(secs(policy.lifetime)));
    if now >= end {
        return Err(ExchangeError::Refresh(RefreshRefusal::Expired));
    }
    if let Some(idle) = policy.idle {
        // The family's last use is when this (its newest) token was issued.
        if now >= found.issued_at.saturating_add(secs(idle)) {
            return Err(ExchangeError::Refresh(RefreshRefusal::Idle));
        }
    }
    Ok(end)
}

fn family_detail(found: &Found) -> Detail {
    let f = &found.family;
    Detail::new(format!(
        "family {} of client {}: live, ends at {} (idle deadline {})",
        f.family_id,
        f.client_id,
        f.expires_at,
        found.deadline()
    ))
    .with("family", f.family_id.as_str())
    .with("expires_at", f.expires_at)
    .with("deadline", found.deadline())
    .with("dpop_bound", f.dpop_bound)
}
