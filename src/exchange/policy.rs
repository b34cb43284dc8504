//! The rules that shape an issued token (SPEC §2.1, §5): which audience, which scopes,
//! how long, which claims, and who acts for whom. Pure functions over registry entries,
//! so each rule is testable on its own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::telemetry::echo;
use crate::trust::mapping::RESERVED_CLAIMS;
use crate::trust::{AudienceEntry, ClientEntry, OnBehalfOf, Registry};
use crate::verify::{Act, MayAct};

use super::error::{ExchangeError, Refused, TokenRole};
use super::request::Target;

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
    requested: Option<&[String]>,
    client: &ClientEntry,
    audience: &AudienceEntry,
    subject_scopes: Option<&[String]>,
) -> Result<Vec<String>, ExchangeError> {
    let allowed: Vec<&String> = client
        .scopes
        .iter()
        .filter(|s| audience.scopes.contains(s))
        .filter(|s| subject_scopes.is_none_or(|sub| sub.contains(s)))
        .collect();
    let granted: Vec<String> = match requested {
        None => allowed.into_iter().cloned().collect(),
        Some(req) => {
            if let Some(bad) = req.iter().find(|s| !allowed.contains(s)) {
                return Err(ExchangeError::InvalidScope(format!(
                    "scope `{}` is not allowed for this client and audience",
                    echo(bad)
                )));
            }
            req.to_vec()
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
pub fn check_lineage(role: TokenRole, lineage: &[String]) -> Result<(), ExchangeError> {
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

#[cfg(test)]
mod tests;
