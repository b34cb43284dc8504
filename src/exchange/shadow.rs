//! The shadow registry (`serve --shadow-trust DIR`, SPEC §1): every live exchange is
//! decided again against a candidate registry, after the live answer is settled and
//! without changing it. Each disagreement is counted
//! (`tessera_shadow_disagreements_total{issuer,step}`) and logged with both outcomes and
//! failing steps, never token text, so a partner's registry change can be watched on
//! real traffic before it is switched in.

use std::sync::Arc;

use crate::metrics::ShadowLabels;
use crate::trust::TrustStore;

use super::decision::Step;
use super::explain::{DryRun, Explanation};
use super::request::Form;
use super::Exchanger;

/// The candidate: its registry and a pipeline of its own (its own verifier, so its key
/// caches never disturb the live ones), sharing the live store and metrics.
pub struct Shadow {
    pub trust: Arc<TrustStore>,
    pub exchanger: Arc<Exchanger>,
}

/// How the live decision ended, as the shadow compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOutcome {
    pub issued: bool,
    pub failing_step: Option<Step>,
}

impl Shadow {
    /// Decides `form` for `client_id` against the candidate; on a disagreement with
    /// `live`, counts and logs it. `issuer` labels the metric (the live registry id).
    pub async fn compare(&self, client_id: &str, form: &Form, live: LiveOutcome, issuer: &str) {
        let registry = self.trust.snapshot();
        let candidate = self
            .exchanger
            .explain_against(&registry, client_id, form, DryRun::Shadow)
            .await;
        let Some(step) = parting_step(live, &candidate) else {
            return;
        };
        self.exchanger
            .metrics
            .shadow_disagreements
            .get_or_create(&ShadowLabels {
                issuer: issuer.to_owned(),
                step: step.name(),
            })
            .inc();
        tracing::warn!(
            target: "shadow",
            client_id,
            issuer,
            step = step.name(),
            live = if live.issued { "issued" } else { "refused" },
            live_step = live.failing_step.map_or("-", Step::name),
            candidate = candidate.outcome,
            candidate_step = candidate.failing_step.map_or("-", Step::name),
            candidate_error = candidate
                .error
                .as_ref()
                .map_or("-", |e| e.error_description.as_str()),
            "shadow registry disagrees"
        );
    }
}

/// Where two decisions part, if they do (SPEC §1): the candidate's failing step when it
/// refuses (whatever the live one did), else the live one's.
pub fn parting_step(live: LiveOutcome, candidate: &Explanation) -> Option<Step> {
    let same = live.issued == candidate.issued() && live.failing_step == candidate.failing_step;
    if same {
        return None;
    }
    candidate.failing_step.or(live.failing_step)
}
