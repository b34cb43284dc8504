//! The rules that shape an issued token (SPEC §2.1, §5): which audience, which scopes,
//! how long, which claims, and who acts for whom. Pure functions over registry entries,
//! so each rule is testable on its own.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::trust::mapping::RESERVED_CLAIMS;
use crate::trust::{AudienceEntry, ClientEntry, OnBehalfOf, Registry};

use super::error::{ExchangeError, TokenRole};
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
                "{param} `{value}` is not a registered target"
            )));
        };
        if !client.audiences.contains(&entry.id) {
            return Err(ExchangeError::InvalidTarget(format!(
                "{param} `{value}` is not allowed for this client"
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
                    "scope `{bad}` is not allowed for this client and audience"
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
                reason: "no_lifetime_left",
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

/// RFC 8693 §4.1: an `act` claim is an object naming its actor in a string `sub`, and
/// any earlier actor nests the same way. Anything else (`null`, a string, an actor with no
/// `sub`) is refused rather than copied: a downstream service may read a malformed `act`
/// as "nobody acts", and the chain must never silently vanish (SPEC §2.1).
pub fn check_act_shape(role: TokenRole, act: Option<&Value>) -> Result<(), ExchangeError> {
    let refuse = |message: String| ExchangeError::Unacceptable {
        role,
        reason: "malformed_act",
        message,
    };
    let mut next = act;
    for depth in 1.. {
        let Some(value) = next else { break };
        if depth > MAX_ACT_DEPTH {
            return Err(refuse(format!(
                "act nests more than {MAX_ACT_DEPTH} actors"
            )));
        }
        let obj = value
            .as_object()
            .filter(|obj| matches!(obj.get("sub"), Some(Value::String(s)) if !s.is_empty()))
            .ok_or_else(|| {
                refuse("act must be an object with a non-empty string sub, at every level".into())
            })?;
        next = obj.get("act");
    }
    Ok(())
}

/// Longest delegation chain accepted in a presented `act` (each hop adds one).
const MAX_ACT_DEPTH: usize = 16;

/// RFC 8693 §4.1 `act`: the current actor on top, earlier actors nested inside. A subject
/// token that carries `act` never loses it (SPEC §2.1), even under `impersonate`.
pub fn act_claim(
    on_behalf_of: OnBehalfOf,
    client_id: &str,
    actor: Option<&Actor>,
    subject_act: Option<&Value>,
) -> Option<Value> {
    let top = match (actor, on_behalf_of) {
        (Some(a), _) => Some(a.clone()),
        (None, OnBehalfOf::Delegate) => Some(Actor {
            sub: client_id.to_owned(),
            iss: None,
        }),
        (None, OnBehalfOf::Impersonate) => None,
    };
    match top {
        None => subject_act.cloned(),
        Some(a) => {
            let mut obj = Map::new();
            obj.insert("sub".into(), Value::String(a.sub));
            if let Some(iss) = a.iss {
                obj.insert("iss".into(), Value::String(iss));
            }
            if let Some(prev) = subject_act {
                obj.insert("act".into(), prev.clone());
            }
            Some(Value::Object(obj))
        }
    }
}

/// RFC 8693 §4.4: when the subject token names who may act for it, the actor must match
/// every member it names (`sub`, and `iss` when given). `actor_iss` is the actor's issuer
/// URL (tessera's own for the calling client). `role` is the subject's: a refusal is
/// `invalid_request` for token exchange and `invalid_grant` for the bearer grant.
pub fn check_may_act(
    role: TokenRole,
    may_act: Option<&Value>,
    actor_sub: &str,
    actor_iss: &str,
) -> Result<(), ExchangeError> {
    let Some(may_act) = may_act else {
        return Ok(());
    };
    let refuse = |why: &str| {
        Err(ExchangeError::Unacceptable {
            role,
            reason: "may_act_refused",
            message: format!("may_act does not admit this actor: {why}"),
        })
    };
    let Some(obj) = may_act.as_object() else {
        return refuse("may_act is not an object");
    };
    match obj.get("sub") {
        Some(Value::String(s)) if s == actor_sub => {}
        Some(_) => return refuse("sub differs"),
        None => return refuse("may_act names no sub"),
    }
    match obj.get("iss") {
        None => Ok(()),
        Some(Value::String(s)) if s == actor_iss => Ok(()),
        Some(_) => refuse("iss differs"),
    }
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

/// `aud` of a verified token as a set of strings (string or array form).
pub fn token_audiences(claims: &Map<String, Value>) -> BTreeSet<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => BTreeSet::from([s.as_str()]),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

/// Space-separated `scope` claim of a token, if any (RFC 9068 §2.2.3 / RFC 8693 §4.2).
pub fn token_scopes(claims: &Map<String, Value>) -> Option<Vec<String>> {
    claims.get("scope").and_then(Value::as_str).map(|s| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

#[cfg(test)]
mod tests;
