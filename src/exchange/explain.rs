//! `tessera explain`, `POST /admin/explain`, `trust test` and the shadow registry: the
//! `/token` pipeline run as a dry run. The same verification and the same
//! [`policy::decide`] as `/token`; only the side effects differ: no client credentials
//! are checked (the operator names the client), no single-use id is consumed (explain
//! looks it up), nothing is signed, stored or audited.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::trust::Registry;
use crate::verify::VerifiedSubject;

use super::decision::{Detail, Record, Step, StepRecord};
use super::error::{ClientAuthFailure, ErrorCode, ExchangeError, TokenRole};
use super::request::{Form, Grant};
use super::{policy, replayed, Exchanger, Trail};

/// What a dry run does about single-use tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Explain: a single-use id already used refuses, as `/token` would; nothing is
    /// recorded.
    Explain,
    /// The shadow registry: the live exchange owns the single-use ids (it has just
    /// consumed them), so the candidate does not look.
    Shadow,
}

/// The decision record as explain prints it (SPEC §1, §3 `/admin/explain`).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `issued` (would issue), `refused` (the caller's fault) or `error` (an issuer's or
    /// ours).
    pub outcome: &'static str,
    pub steps: Vec<StepRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<Step>,
    /// The answer `/token` would give on a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExplainedError>,
    /// The claims of the token that would be issued (`jti` aside: drawn when minting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Value>,
    /// The algorithm it would be signed with: the audience's `signing_alg`, else
    /// `tokens.signing_alg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<&'static str>,
    /// `Bearer`, or `DPoP` for a token bound to the request's proof key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Whether a refresh token would come with it (a family started, or rotated).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refresh_token: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedError {
    pub status: u16,
    pub error: ErrorCode,
    pub error_description: String,
}

impl Explanation {
    fn new(
        record: Record,
        result: Result<policy::Plan, ExchangeError>,
        iss: &str,
        default_alg: crate::issue::SigningAlg,
    ) -> Self {
        match result {
            Ok(plan) => Self {
                outcome: "issued",
                steps: record.into_steps(),
                failing_step: None,
                error: None,
                token: Some(would_issue(&plan, iss)),
                signing_alg: Some(
                    plan.audience
                        .signing_alg
                        .and_then(super::signing_alg)
                        .unwrap_or(default_alg)
                        .as_str(),
                ),
                token_type: Some(if plan.binding.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                }),
                refresh_token: plan.refresh.is_some(),
            },
            Err(e) => Self {
                outcome: match e.fault() {
                    super::Fault::Caller => "refused",
                    super::Fault::Issuer | super::Fault::Broker => "error",
                },
                steps: record.into_steps(),
                failing_step: Some(e.step()),
                error: Some(ExplainedError {
                    status: e.http_status(),
                    error: e.error_code(),
                    error_description: e.public_description(),
                }),
                token: None,
                signing_alg: None,
                token_type: None,
                refresh_token: false,
            },
        }
    }

    pub fn issued(&self) -> bool {
        self.outcome == "issued"
    }
}

/// The issued token's claims, as `mint` would write them.
fn would_issue(plan: &policy::Plan, iss: &str) -> Value {
    let scope = plan.scope();
    let claims = super::AccessTokenClaims::of(
        plan,
        iss,
        "(drawn when signing)",
        &scope,
        &plan.exchanged_from,
    );
    let mut v = serde_json::to_value(&claims).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("jti");
    }
    v
}

impl Exchanger {
    /// Explains `form` (the `/token` form) for the client `client_id` against the live
    /// registry and the issuers' live keys.
    pub async fn explain(&self, client_id: &str, form: &Form) -> Explanation {
        let registry = self.trust.snapshot();
        self.explain_against(&registry, client_id, form, DryRun::Explain)
            .await
    }

    /// The same against any registry (`trust test`, the shadow registry).
    pub async fn explain_against(
        &self,
        registry: &Registry,
        client_id: &str,
        form: &Form,
        mode: DryRun,
    ) -> Explanation {
        let mut record = Record::detailed();
        let mut trail = Trail::default();
        let result = self
            .dry_run(registry, client_id, form, mode, &mut trail, &mut record)
            .await;
        if let Err(e) = &result {
            record.fail(e);
        }
        Explanation::new(
            record,
            result,
            &self.settings.issuer,
            self.keys.current_alg(),
        )
    }

    async fn dry_run(
        &self,
        registry: &Registry,
        client_id: &str,
        form: &Form,
        mode: DryRun,
        trail: &mut Trail,
        record: &mut Record,
    ) -> Result<policy::Plan, ExchangeError> {
        let grant_type = form.single("grant_type")?;
        let client = registry
            .client(client_id)
            .ok_or(ExchangeError::InvalidClient(
                ClientAuthFailure::UnknownClient,
            ))?
            .clone();
        record.pass(Step::Client, None, || {
            Detail::new(format!(
                "client {} (named, not authenticated: a dry run checks no credentials)",
                client.client_id
            ))
            .with(
                "method",
                serde_json::to_value(client.auth).unwrap_or_default(),
            )
        });
        let grant = self.grant(grant_type, form, trail, record)?;
        // A dry run takes the request's DPoP proof as the form member `dpop` (at /token it
        // is the `DPoP` header, and a form member of that name is ignored).
        let proof = self.proof(Ok(form.single("dpop")?), record)?;
        let plan = match grant {
            Grant::Refresh(req) => {
                let redeem = super::refresh::Redeem {
                    req,
                    proof: proof.as_ref(),
                    mode: super::refresh::Redemption::DryRun,
                };
                self.redeem(registry, &client, redeem, trail, record)
                    .await?
            }
            grant => {
                self.decide(registry, &client, grant, proof.as_ref(), trail, record)
                    .await?
            }
        };
        if mode == DryRun::Explain {
            self.look_up_single_use(&plan, record).await?;
        }
        record.pass(Step::Issue, None, || {
            Detail::new("would sign with the current key (nothing signed, stored or audited)")
        });
        Ok(plan)
    }

    /// SPEC §4.1 replay, read only: explain must never use up a single-use token.
    async fn look_up_single_use(
        &self,
        plan: &policy::Plan,
        record: &mut Record,
    ) -> Result<(), ExchangeError> {
        let proof = plan.proof_replay.iter().map(|k| (None, k));
        let keys = plan.single_use.iter().map(|(r, k)| (Some(*r), k));
        for (role, key) in keys.chain(proof) {
            match self.replay.was_used(key).await {
                Ok(false) => {}
                Ok(true) => {
                    return Err(match role {
                        Some(role) => replayed(role),
                        None => ExchangeError::Dpop(crate::verify::dpop::DpopError::Replayed),
                    })
                }
                Err(e) => {
                    tracing::error!(error = %e, "replay cache unavailable");
                    return Err(ExchangeError::ReplayCacheUnavailable);
                }
            }
        }
        record.pass(Step::Replay, None, || {
            Detail::new(match plan.single_use.len() {
                0 => "nothing single-use".to_owned(),
                n => format!("{n} single-use id(s) not used yet (explain consumed none)"),
            })
        });
        Ok(())
    }
}

/// The verification steps of a token that passed, with what each compared (explain).
/// The checks themselves ran in `verify`; a refusal there is the failing step instead.
pub(super) fn verified_steps(
    record: &mut Record,
    role: TokenRole,
    token: &VerifiedSubject,
    now: UnixTime,
    saml_entity_id: &str,
) {
    let entry = &token.issuer;
    let r = Some(role);
    record.pass(Step::Issuer, r, || {
        Detail::new(format!(
            "registry entry {} ({}): the token's issuer is `{}`",
            entry.id,
            entry.source.display(),
            entry.issuer
        ))
        .with("entry", entry.id.as_str())
        .with("iss", entry.issuer.as_str())
        .with("token_type", token.token_type.label())
    });
    let ev = &token.evidence;
    if let Some(typ) = &ev.typ {
        record.pass(Step::Typ, r, || Detail::new(format!("typ `{typ}`")));
    }
    if let Some(alg) = &ev.alg {
        record.pass(Step::Algorithm, r, || {
            Detail::new(format!("`{alg}` is on the issuer's allow-list"))
        });
    }
    if let Some(key) = &ev.key {
        record.pass(Step::Key, r, || Detail::new(key.clone()));
        record.pass(Step::Signature, r, || Detail::new("verifies"));
    }
    record.pass(Step::Audience, r, || {
        // SAML assertions may also be addressed to tessera itself (saml.entity_id).
        let mut accepted = entry.audiences.clone();
        if entry.kind() == crate::trust::IssuerKind::Saml
            && !accepted.iter().any(|a| a == saml_entity_id)
        {
            accepted.push(saml_entity_id.to_owned());
        }
        Detail::new("the token names an accepted audience")
            .with("token_aud", token.audiences.clone())
            .with("accepted", accepted)
    });
    record.pass(Step::Expiry, r, || {
        Detail::new(format!(
            "expires {} ({} s from now, clock skew {} s)",
            rfc3339(token.expires_at),
            token.expires_at - now,
            entry.clock_skew.as_secs()
        ))
        .with("exp", token.expires_at)
        .with("now", now)
    });
    if let Some(iat) = token.issued_at {
        record.pass(Step::NotBefore, r, || {
            Detail::new(format!("issued {} ({} s ago)", rfc3339(iat), now - iat)).with("iat", iat)
        });
    }
    record.pass(Step::Claims, r, || {
        let mut values = Map::new();
        if let Some(a) = &token.act {
            values.insert("act".into(), serde_json::to_value(a).unwrap_or_default());
        }
        Detail {
            summary: "the required claims are present and well-formed".into(),
            values,
        }
    });
}

/// A Unix time as RFC 3339 (UTC), for people reading the record.
fn rfc3339(t: UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}
