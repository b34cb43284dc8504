//! The rules that shape an issued token (SPEC §2.1, §5): which audience, which scopes,
//! how long, which claims, and who acts for whom. Pure functions over registry entries,
//! so each rule is testable on its own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::protocol::{ClientId, Jti, ScopeSet};
use crate::telemetry::echo;
use crate::trust::mapping::RESERVED_CLAIMS;
use crate::trust::{AudienceEntry, ClientEntry, OnBehalfOf, Registry};
use crate::verify::{Act, MayAct};

use super::decision::{Detail, Record, Step};
use super::error::{ExchangeError, RefreshRefusal, Refused, TokenRole};
use super::request::Target;
use crate::replay::ReplayKey;
use crate::trust::RefreshPolicy;
use crate::trust::{Mapped, LOCAL_ISSUER};
use crate::verify::dpop::DpopError;
use crate::verify::VerifiedSubject;

/// RFC 8693 §2.1 / RFC 8707: every `audience` and `resource` must name an audience the
/// client may use; together they must name exactly one (one audience per token keeps
/// each token useful at one API only). With neither, the client's only audience.
pub fn resolve_audience(
    registry: &Registry,
    client: &ClientEntry,
    target: &Target,
) -> Result<Arc<AudienceEntry>, ExchangeError> {
    let mut chosen: Option<Arc<AudienceEntry>> = None;
    let named = target
        .audiences
        .iter()
        .map(|a| (a, registry.audience_by_name(a), "audience"))
        .chain(
            target
                .resources
                .iter()
                .map(|r| (r, registry.audience_by_resource(r), "resource")),
        );
    for (value, entry, param) in named {
        let Some(entry) = entry else {
            return Err(ExchangeError::InvalidTarget(format!(
                "{param} `{}` is not a registered target",
                echo(value)
            )));
        };
        if !client.audiences.contains(&entry.id) {
            return Err(ExchangeError::InvalidTarget(format!(
                "{param} `{}` is not allowed for this client",
                echo(value)
            )));
        }
        match &chosen {
            Some(c) if c.id != entry.id => {
                return Err(ExchangeError::InvalidTarget(
                    "audience and resource parameters name more than one target; \
                     request one token per target"
                        .into(),
                ))
            }
            _ => chosen = Some(entry.clone()),
        }
    }
    if let Some(c) = chosen {
        return Ok(c);
    }
    match client.audiences.as_slice() {
        [only] => registry.audiences.get(only).cloned().ok_or_else(|| {
            ExchangeError::Internal(format!("client audience {only} missing from registry"))
        }),
        [] => Err(ExchangeError::InvalidTarget(
            "this client may not obtain tokens for any audience".into(),
        )),
        _ => Err(ExchangeError::InvalidTarget(
            "this client may obtain tokens for more than one audience: name one with \
             audience or resource"
                .into(),
        )),
    }
}

/// Scopes = requested ∩ client ∩ audience (∩ subject's, for local tokens). A requested
/// scope outside the allowed set is `invalid_scope`: never silently narrowed.
pub fn grant_scopes(
    requested: Option<&ScopeSet>,
    client: &ClientEntry,
    audience: &AudienceEntry,
    subject_scopes: Option<&ScopeSet>,
) -> Result<ScopeSet, ExchangeError> {
    let allowed = client.scopes.filter(|s| {
        audience.scopes.contains(s) && subject_scopes.is_none_or(|sub| sub.contains(s))
    });
    let granted = match requested {
        None => allowed,
        Some(req) => {
            if let Some(bad) = req.iter().find(|s| !allowed.contains(s)) {
                return Err(ExchangeError::InvalidScope(format!(
                    "scope `{}` is not allowed for this client and audience",
                    echo(bad)
                )));
            }
            req.clone()
        }
    };
    if granted.is_empty() {
        return Err(ExchangeError::InvalidScope(
            "no scope is allowed for this client and audience".into(),
        ));
    }
    Ok(granted)
}

#[derive(Debug, Clone)]
pub struct LifetimeBounds {
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
}

/// Lifetime = min(audience lifetime or default, client max, broker max, remaining life of
/// the subject and actor tokens). Returns seconds; a token with no life left (expired
/// within the clock skew) is refused, as a refusal of that token.
pub fn lifetime(
    now: UnixTime,
    bounds: &LifetimeBounds,
    audience: &AudienceEntry,
    client: &ClientEntry,
    token_expiries: &[(TokenRole, UnixTime)],
) -> Result<i64, ExchangeError> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let mut life = secs(audience.lifetime.unwrap_or(bounds.default_lifetime));
    life = life.min(secs(bounds.max_lifetime));
    if let Some(m) = client.max_lifetime {
        life = life.min(secs(m));
    }
    for &(role, exp) in token_expiries {
        let left = exp.saturating_sub(now);
        if left <= 0 {
            return Err(ExchangeError::Unacceptable {
                role,
                refused: Refused::NoLifetimeLeft,
                message: "expired (accepted only within the clock skew): no lifetime left \
                          to give an issued token"
                    .into(),
            });
        }
        life = life.min(left);
    }
    if life <= 0 {
        return Err(ExchangeError::Internal(
            "a configured token lifetime is zero".into(),
        ));
    }
    Ok(life)
}

/// Who acts for the subject in the issued token.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub sub: String,
    /// `None` when the actor is known to tessera itself (the calling client, local tokens).
    pub iss: Option<String>,
}

/// RFC 8693 §4.1 `act`: the current actor on top, earlier actors nested inside. A subject
/// token that carries `act` never loses it (SPEC §2.1), even under `impersonate`.
pub fn act_claim(
    on_behalf_of: OnBehalfOf,
    client_id: &str,
    actor: Option<&Actor>,
    subject_act: Option<&Act>,
) -> Option<Act> {
    match (actor, on_behalf_of) {
        (Some(a), _) => Some(Act::over(a.sub.clone(), a.iss.clone(), subject_act)),
        (None, OnBehalfOf::Delegate) => Some(Act::over(client_id.to_owned(), None, subject_act)),
        (None, OnBehalfOf::Impersonate) => subject_act.cloned(),
    }
}

/// `tokens.max_delegation_depth`: an `act` chain longer than `max` is not issued.
pub fn check_delegation_depth(act: Option<&Act>, max: usize) -> Result<(), ExchangeError> {
    match act.map(Act::depth) {
        Some(depth) if depth > max => Err(ExchangeError::Unacceptable {
            role: TokenRole::Subject,
            refused: Refused::DelegationTooDeep,
            message: format!(
                "the delegation chain would hold {depth} actors; at most {max} are allowed"
            ),
        }),
        _ => Ok(()),
    }
}

/// SPEC §2 `subject_audiences`: an app exchanges only tokens addressed to it.
pub fn check_subject_audience(
    role: TokenRole,
    client: &ClientEntry,
    token_audiences: &[String],
) -> Result<(), ExchangeError> {
    match &client.subject_audiences {
        Some(wanted) if !wanted.iter().any(|w| token_audiences.contains(w)) => {
            Err(ExchangeError::Unacceptable {
                role,
                refused: Refused::SubjectAudienceNotAllowed,
                message: "not addressed to an audience this client may exchange".into(),
            })
        }
        _ => Ok(()),
    }
}

/// A local actor is recorded as its subject (with its `src_iss`), a client acting for
/// itself as its id: a local actor token whose subject is a registered client's id would
/// pass for that client, and is refused.
pub fn check_local_actor(registry: &Registry, actor_subject: &str) -> Result<(), ExchangeError> {
    if registry.client(actor_subject).is_some() {
        return Err(ExchangeError::Unacceptable {
            role: TokenRole::Actor,
            refused: Refused::ActorPassesForClient,
            message: "its subject is a registered client's id: as a local actor it would pass \
                      for that client"
                .into(),
        });
    }
    Ok(())
}

/// RFC 8693 §4.4: an iss-less `may_act` names a principal of the subject token's issuer
/// (`subject_iss`), not anyone of that name from any trusted issuer or client (security
/// review F-1). A local token minted before tokens recorded `src_iss` carries its IdP's
/// `may_act` verbatim, and whose name that is can no longer be told: refused.
pub fn attributed_may_act(
    role: TokenRole,
    may_act: Option<&MayAct>,
    subject_iss: Option<&str>,
) -> Result<Option<MayAct>, ExchangeError> {
    match (may_act, subject_iss) {
        (None, _) => Ok(None),
        (Some(m), Some(iss)) => Ok(Some(m.attributed_to(iss))),
        (Some(m), None) if m.iss.is_some() => Ok(Some(m.clone())),
        (Some(_), None) => Err(ExchangeError::Unacceptable {
            role,
            refused: Refused::MayActRefused,
            message: "its may_act names no issuer and the token predates src_iss; exchange \
                      the original token again"
                .into(),
        }),
    }
}

/// A foreign token's own `act` chain is that issuer's assertion, never tessera's record:
/// every link without `iss` is attributed to `token_issuer` (RFC 8693 §4.1), and a link
/// naming tessera (`broker_issuer`) as its issuer is a forgery of tessera's record.
pub fn foreign_act(
    role: TokenRole,
    act: &Act,
    token_issuer: &str,
    broker_issuer: &str,
) -> Result<Act, ExchangeError> {
    if act.names_issuer(broker_issuer) {
        return Err(ExchangeError::Unacceptable {
            role,
            refused: Refused::ActClaimsTessera,
            message: "its act claims a link tessera recorded; only tessera's own tokens can".into(),
        });
    }
    Ok(act.attributed_to(token_issuer))
}

/// Most ancestors an issued token lists in `exchanged_from`, and in `acted_from`.
pub const MAX_LINEAGE: usize = 16;

/// A token's lineage (its `jti` and its ancestors) carried into what is issued: more than
/// [`MAX_LINEAGE`] is refused, since truncating would let a descendant outlive a
/// revocation of its root.
pub fn check_lineage(role: TokenRole, lineage: &[Jti]) -> Result<(), ExchangeError> {
    if lineage.len() > MAX_LINEAGE {
        return Err(ExchangeError::Unacceptable {
            role,
            refused: Refused::ExchangeChainTooLong,
            message: format!(
                "descends from {} tessera tokens already; at most {MAX_LINEAGE} are allowed",
                lineage.len() - 1
            ),
        });
    }
    Ok(())
}

/// RFC 8693 §4.4: when the subject token names who may act for it, the actor must match
/// every member it names (`sub`, and `iss` when given). `actor_iss` is the actor's issuer
/// URL (tessera's own for the calling client). `role` is the subject's: a refusal is
/// `invalid_request` for token exchange and `invalid_grant` for the bearer grant.
pub fn check_may_act(
    role: TokenRole,
    may_act: Option<&MayAct>,
    actor_sub: &str,
    actor_iss: &str,
) -> Result<(), ExchangeError> {
    let Some(may_act) = may_act else {
        return Ok(());
    };
    may_act
        .admits(actor_sub, actor_iss)
        .map_err(|why| ExchangeError::Unacceptable {
            role,
            refused: Refused::MayActRefused,
            message: format!("may_act does not admit this actor: {why}"),
        })
}

/// Data minimisation: only the mapped claims the audience may see. Reserved names are
/// refused at load already; filtering them again keeps a mapping from ever overriding
/// the issued token's own claims.
pub fn audience_claims(
    mapped: &Map<String, Value>,
    audience: &AudienceEntry,
) -> Map<String, Value> {
    mapped
        .iter()
        .filter(|(k, _)| audience.claims.contains(k) && !RESERVED_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Everything the decision reads, typed. Nothing here does I/O or reads a clock: the same
/// input always gives the same decision (SPEC §5).
pub struct DecisionInput<'a> {
    pub registry: &'a Registry,
    pub client: &'a ClientEntry,
    /// The verified subject token (or bearer assertion) and its role.
    pub subject: (TokenRole, &'a VerifiedSubject),
    pub actor: Option<&'a VerifiedSubject>,
    pub target: &'a Target,
    /// Echoed as `issued_token_type`.
    pub issued_token_type: &'static str,
    /// `server.issuer`.
    pub broker_issuer: &'a str,
    pub lifetimes: &'a LifetimeBounds,
    pub max_delegation_depth: usize,
    pub now: UnixTime,
    /// The thumbprint of the key of the request's DPoP proof, when it carried a valid one.
    pub proof_jkt: Option<&'a str>,
    /// `requested_token_type=...:refresh_token`.
    pub wants_refresh: bool,
}

/// What minting does about refresh tokens.
#[derive(Debug, Clone)]
pub enum RefreshIssue {
    /// Start a family beside the access token (the exchange asked for one).
    Start(RefreshPolicy),
    /// Spend the redeemed token of this family and issue its successor.
    Rotate {
        family: Box<crate::store::refresh::FamilyRow>,
        presented: crate::refresh::Presented,
    },
}

/// The token a decision allows: every claim but the `jti`, which minting draws, and the
/// single-use ids minting must consume first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub client_id: ClientId,
    pub subject: String,
    pub audience: Arc<AudienceEntry>,
    pub scopes: ScopeSet,
    pub issued_at: UnixTime,
    pub lifetime: i64,
    pub act: Option<Act>,
    pub src_iss: Option<String>,
    pub may_act: Option<MayAct>,
    pub exchanged_from: Vec<Jti>,
    pub acted_from: Vec<Jti>,
    /// The registry entries that verified the subject and actor tokens (a refresh family
    /// lives only while they are trusted).
    pub subject_issuer: Option<crate::protocol::IssuerId>,
    pub actor_issuer: Option<crate::protocol::IssuerId>,
    pub claims: Map<String, Value>,
    /// `None` for the refresh grant (RFC 6749 §5.1 has no `issued_token_type`).
    pub issued_token_type: Option<&'static str>,
    pub single_use: Vec<(TokenRole, ReplayKey)>,
    /// The request's DPoP proof `jti`, single-use like the above (RFC 9449 §11.1).
    pub proof_replay: Option<ReplayKey>,
    /// RFC 9449 §6.1 `cnf.jkt`: the key the issued token is bound to.
    pub binding: Option<String>,
    pub refresh: Option<RefreshIssue>,
}

impl Plan {
    pub fn scope(&self) -> String {
        self.scopes.to_string()
    }
}

/// The decision (SPEC §2.1, §5): each rule in order, each reporting into `record`, the
/// first refusal ending it. Pure: `/token`, explain, `trust test` and the shadow registry
/// all come here.
pub fn decide(input: &DecisionInput<'_>, record: &mut Record) -> Result<Plan, ExchangeError> {
    let (role, subject) = input.subject;
    check_subject_audience(role, input.client, &subject.audiences)?;
    record.pass(Step::SubjectAudience, Some(role), || {
        subject_audience_detail(input.client, subject)
    });
    let mapped = map(role, subject, record)?;
    record.facts.subject = Some(mapped.subject.clone());
    let actor = match input.actor {
        Some(a) => {
            let m = map(TokenRole::Actor, a, record)?;
            record.facts.actor = Some(m.subject.clone());
            Some((a, m))
        }
        None => None,
    };
    let audience = resolve_audience(input.registry, input.client, input.target)?;
    record.facts.audience = Some(audience.audience.to_string());
    record.pass(Step::Target, None, || {
        target_detail(input.target, &audience)
    });
    let subject_scopes =
        (subject.issuer.id == LOCAL_ISSUER).then(|| subject.scopes.clone().unwrap_or_default());
    let scopes = grant_scopes(
        input.target.scopes.as_ref(),
        input.client,
        &audience,
        subject_scopes.as_ref(),
    )?;
    record.facts.scopes = Some(scopes.to_string());
    record.pass(Step::Scope, None, || {
        scope_detail(input, &audience, subject_scopes.as_ref(), &scopes)
    });
    let mut expiries = vec![(role, subject.expires_at)];
    expiries.extend(input.actor.map(|a| (TokenRole::Actor, a.expires_at)));
    let lifetime = lifetime(
        input.now,
        input.lifetimes,
        &audience,
        input.client,
        &expiries,
    )?;
    record.pass(Step::Lifetime, None, || {
        lifetime_detail(input, &audience, &expiries, lifetime)
    });
    let (act, may_act) = decide_act(input, actor.as_ref(), record)?;
    let exchanged_from = subject.lineage();
    let acted_from = input.actor.map_or(&[][..], |a| a.lineage());
    check_lineage(role, exchanged_from)?;
    check_lineage(TokenRole::Actor, acted_from)?;
    record.pass(Step::Lineage, None, || {
        Detail::new(format!(
            "descends from {} tessera token(s) (at most {MAX_LINEAGE})",
            exchanged_from.len() + acted_from.len()
        ))
        .with("exchanged_from", exchanged_from)
        .with("acted_from", acted_from)
    });
    let binding = decide_binding(input, &audience, record)?;
    let refresh = decide_refresh(input, &audience, record)?;
    let single_use = std::iter::once((role, subject))
        .chain(input.actor.map(|a| (TokenRole::Actor, a)))
        .filter_map(|(r, t)| t.replay.clone().map(|k| (r, k)))
        .collect();
    Ok(Plan {
        client_id: input.client.client_id.clone(),
        subject: mapped.subject,
        claims: audience_claims(&mapped.claims, &audience),
        audience,
        scopes,
        issued_at: input.now,
        lifetime,
        act,
        src_iss: upstream_issuer(subject).map(str::to_owned),
        may_act,
        exchanged_from: exchanged_from.to_vec(),
        acted_from: acted_from.to_vec(),
        subject_issuer: Some(subject.issuer.id.clone()),
        actor_issuer: input.actor.map(|a| a.issuer.id.clone()),
        issued_token_type: Some(input.issued_token_type),
        single_use,
        proof_replay: None,
        binding,
        refresh: refresh.map(RefreshIssue::Start),
    })
}

/// RFC 9449: sender constraint is never lost across an exchange. A presented token bound
/// to a key is accepted only with a proof by that key (§7.1's rule, applied to the token
/// endpoint); an audience with `require_dpop` gets only bound tokens. The issued token is
/// bound to the proof's key whenever there is a proof.
pub fn decide_binding(
    input: &DecisionInput<'_>,
    audience: &AudienceEntry,
    record: &mut Record,
) -> Result<Option<String>, ExchangeError> {
    let presented =
        std::iter::once(input.subject).chain(input.actor.map(|a| (TokenRole::Actor, a)));
    let mut bound = Vec::new();
    for (role, token) in presented {
        let jkt = token.binding().map_err(|why| ExchangeError::Unacceptable {
            role,
            refused: Refused::UnsupportedBinding,
            message: why.into(),
        })?;
        let Some(jkt) = jkt else { continue };
        match input.proof_jkt {
            None => return Err(ExchangeError::Dpop(DpopError::Required(role.name()))),
            Some(p) if p != jkt => {
                return Err(ExchangeError::Dpop(DpopError::KeyMismatch(role.name())))
            }
            Some(_) => bound.push(role.name()),
        }
    }
    check_required(audience, input.proof_jkt)?;
    record.pass(Step::Dpop, None, || {
        binding_detail(input.proof_jkt, &bound, audience)
    });
    Ok(input.proof_jkt.map(str::to_owned))
}

/// `require_dpop`: no proof, no token for this audience.
pub fn check_required(
    audience: &AudienceEntry,
    proof_jkt: Option<&str>,
) -> Result<(), ExchangeError> {
    if audience.require_dpop && proof_jkt.is_none() {
        return Err(ExchangeError::Dpop(DpopError::Required(
            "the audience accepts only DPoP-bound tokens (require_dpop)",
        )));
    }
    Ok(())
}

fn binding_detail(proof_jkt: Option<&str>, bound: &[&str], audience: &AudienceEntry) -> Detail {
    let summary = match (proof_jkt, bound) {
        (Some(jkt), []) => format!("bound to the proof's key (jkt {jkt})"),
        (Some(jkt), b) => format!(
            "the {} bound to the proof's key; issued bound to it too (jkt {jkt})",
            b.join(" and ")
        ),
        (None, _) => "no DPoP proof: a bearer token".to_owned(),
    };
    Detail::new(summary)
        .with("jkt", proof_jkt.map_or(Value::Null, Value::from))
        .with("require_dpop", audience.require_dpop)
}

/// SPEC §3: a refresh token beside the access token only for a client with
/// `refresh_tokens = true` and an audience with `refresh_lifetime`.
pub fn decide_refresh(
    input: &DecisionInput<'_>,
    audience: &AudienceEntry,
    record: &mut Record,
) -> Result<Option<RefreshPolicy>, ExchangeError> {
    if !input.wants_refresh {
        return Ok(None);
    }
    if !input.client.refresh_tokens {
        return Err(ExchangeError::Refresh(RefreshRefusal::NotAllowedForClient));
    }
    let Some(policy) = audience.refresh else {
        return Err(ExchangeError::Refresh(
            RefreshRefusal::NotAllowedForAudience,
        ));
    };
    record.pass(Step::Refresh, None, || {
        Detail::new(format!(
            "a refresh family: at most {} s{}",
            policy.lifetime.as_secs(),
            policy.idle.map_or(String::new(), |i| format!(
                ", idle at most {} s",
                i.as_secs()
            ))
        ))
        .with("refresh_lifetime", policy.lifetime.as_secs())
        .with(
            "refresh_idle",
            policy.idle.map_or(Value::Null, |i| i.as_secs().into()),
        )
    });
    Ok(Some(policy))
}

/// The issuer's mapping (SPEC §2.1) applied to a verified token.
fn map(
    role: TokenRole,
    token: &VerifiedSubject,
    record: &mut Record,
) -> Result<Mapped, ExchangeError> {
    let mapped =
        token
            .issuer
            .mapping
            .apply(&token.assertion)
            .map_err(|e| ExchangeError::Unacceptable {
                role,
                refused: Refused::MappingRefused,
                message: e.to_string(),
            })?;
    record.pass(Step::Mapping, Some(role), || {
        Detail::new(format!(
            "registry entry {}: subject `{}`{}",
            token.issuer.id,
            mapped.subject,
            if token.issuer.mapping.has_condition() {
                ", condition true"
            } else {
                ""
            }
        ))
        .with("subject", mapped.subject.as_str())
        .with("claims", Value::Object(mapped.claims.clone()))
        .with("assertion", Value::Object(token.assertion.clone()))
    });
    Ok(mapped)
}

/// Who acts for whom (RFC 8693 §4.1, §4.4): the local actor rule, `may_act`, the `act`
/// chain and its depth.
fn decide_act(
    input: &DecisionInput<'_>,
    actor: Option<&(&VerifiedSubject, Mapped)>,
    record: &mut Record,
) -> Result<(Option<Act>, Option<MayAct>), ExchangeError> {
    let (role, subject) = input.subject;
    if let Some((a, m)) = actor.filter(|(a, _)| a.issuer.id == LOCAL_ISSUER) {
        check_local_actor(input.registry, &m.subject)?;
        record.pass(Step::Actor, Some(TokenRole::Actor), || {
            Detail::new(format!(
                "local actor `{}` ({}) is not a registered client's id",
                m.subject,
                upstream_issuer(a).unwrap_or("tessera")
            ))
        });
    }
    // Every name with the issuer whose namespace it is in (security review F-1, I-3): a
    // local token's principal keeps the IdP that authenticated it.
    let subject_iss = upstream_issuer(subject);
    let actor_id = actor.map(|(a, m)| Actor {
        sub: m.subject.clone(),
        // SPEC §2.1: iss omitted only when the actor is tessera's own (a local token
        // minted before tokens recorded src_iss).
        iss: upstream_issuer(a).map(str::to_owned),
    });
    // The effective actor: the actor token's subject, else the calling client, whose id
    // is a name in tessera's namespace.
    let (acting_sub, acting_iss) = match &actor_id {
        Some(a) => (
            a.sub.as_str(),
            a.iss.as_deref().unwrap_or(input.broker_issuer),
        ),
        None => (input.client.client_id.as_str(), input.broker_issuer),
    };
    let may_act = attributed_may_act(role, subject.may_act.as_ref(), subject_iss)?;
    check_may_act(role, may_act.as_ref(), acting_sub, acting_iss)?;
    record.pass(Step::MayAct, Some(role), || match &may_act {
        Some(m) => Detail::new(format!("may_act admits `{acting_sub}` of {acting_iss}"))
            .with("may_act", serde_json::to_value(m).unwrap_or(Value::Null)),
        None => Detail::new("the subject token names no may_act"),
    });
    let subject_act = match &subject.act {
        Some(a) if subject.issuer.id == LOCAL_ISSUER => Some(a.clone()),
        Some(a) => Some(foreign_act(
            role,
            a,
            &subject.issuer.issuer,
            input.broker_issuer,
        )?),
        None => None,
    };
    let act = act_claim(
        input.client.on_behalf_of,
        &input.client.client_id,
        actor_id.as_ref(),
        subject_act.as_ref(),
    );
    check_delegation_depth(act.as_ref(), input.max_delegation_depth)?;
    // The audit row names the outermost actor, whoever recorded it.
    record.facts.actor = act.as_ref().map(|a| a.sub.clone());
    record.pass(Step::Act, None, || match &act {
        Some(a) => Detail::new(format!(
            "act `{}` ({} actor(s), at most {})",
            a.sub,
            a.depth(),
            input.max_delegation_depth
        ))
        .with("act", serde_json::to_value(a).unwrap_or(Value::Null)),
        None => Detail::new("no one acts for the subject (impersonation)"),
    });
    Ok((act, may_act))
}

/// The issuer in whose namespace a verified token's subject is named: a foreign token's
/// own issuer; for a local token the `src_iss` it recorded (`None` for one minted before
/// tokens recorded it, whose names were tessera's).
pub fn upstream_issuer(token: &VerifiedSubject) -> Option<&str> {
    match &token.local {
        Some(local) => local.src_iss.as_deref(),
        None => Some(&token.issuer.issuer),
    }
}

fn subject_audience_detail(client: &ClientEntry, subject: &VerifiedSubject) -> Detail {
    let d = Detail::new(match &client.subject_audiences {
        Some(_) => "the token is addressed to an audience this client may exchange",
        None => "the client has no subject_audiences restriction",
    })
    .with("token_aud", subject.audiences.clone());
    match &client.subject_audiences {
        Some(w) => d.with("subject_audiences", w.clone()),
        None => d,
    }
}

fn target_detail(target: &Target, audience: &AudienceEntry) -> Detail {
    Detail::new(format!(
        "audience entry {} (aud `{}`)",
        audience.id, audience.audience
    ))
    .with("requested_audience", target.audiences.clone())
    .with("requested_resource", target.resources.clone())
    .with("aud", audience.audience.as_str())
}

fn scope_detail(
    input: &DecisionInput<'_>,
    audience: &AudienceEntry,
    subject_scopes: Option<&ScopeSet>,
    granted: &ScopeSet,
) -> Detail {
    let d = Detail::new(format!("granted `{granted}`"))
        .with(
            "requested",
            input
                .target
                .scopes
                .as_ref()
                .map_or(Value::Null, Value::from),
        )
        .with("client", &input.client.scopes)
        .with("audience", &audience.scopes);
    match subject_scopes {
        Some(s) => d.with("subject_token", s),
        None => d,
    }
}

fn lifetime_detail(
    input: &DecisionInput<'_>,
    audience: &AudienceEntry,
    expiries: &[(TokenRole, UnixTime)],
    lifetime: i64,
) -> Detail {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let mut d = Detail::new(format!("{lifetime} s"))
        .with(
            "audience_lifetime",
            audience.lifetime.map_or(Value::Null, |l| secs(l).into()),
        )
        .with("default_lifetime", secs(input.lifetimes.default_lifetime))
        .with("max_lifetime", secs(input.lifetimes.max_lifetime))
        .with(
            "client_max_lifetime",
            input
                .client
                .max_lifetime
                .map_or(Value::Null, |l| secs(l).into()),
        );
    for (role, exp) in expiries {
        d = d.with(
            &format!("{}_remaining", role.name().replace(' ', "_")),
            exp.saturating_sub(input.now),
        );
    }
    d.with("exp", input.now + lifetime)
}

#[cfg(test)]
mod tests;
