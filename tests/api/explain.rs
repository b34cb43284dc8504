//! The decision record from outside (issue 13): explain of an issuable token, explain
//! changing nothing, and the shadow registry watching live traffic.

use std::sync::Arc;

use serde_json::Value;
use tessera::exchange::{Step, Verdict};

use crate::helpers::*;
use crate::issuer::TestIssuer;

const INV: &[(&str, &str)] = &[("audience", "inventory")];

/// orders-service's audiences and scopes, and the candidate's edit of them.
const NARROWED: (&str, &str) = (
    "audiences = [\"orders\", \"inventory\"]\nscopes = [\"orders:read\", \"orders:write\", \"inventory:read\"]",
    "audiences = [\"orders\"]\nscopes = [\"orders:read\", \"orders:write\"]",
);

#[tokio::test]
async fn explain_of_an_issuable_token_shows_each_step_and_the_claims_it_would_issue() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t = app
            .issuer
            .id_token()
            .claim("email", "alice@example.com".into())
            .sign();
        let e = app.explain_exchange(&t, ID_TOKEN, INV).await;
        assert_eq!(e.outcome, "issued", "{e:#?}");
        assert!(e.error.is_none() && e.failing_step.is_none());
        let steps: Vec<Step> = e.steps.iter().map(|s| s.step).collect();
        for wanted in [
            Step::Client,
            Step::Grant,
            Step::Issuer,
            Step::Algorithm,
            Step::Key,
            Step::Signature,
            Step::Audience,
            Step::Expiry,
            Step::Revocation,
            Step::Mapping,
            Step::Target,
            Step::Scope,
            Step::Lifetime,
            Step::MayAct,
            Step::Act,
            Step::Lineage,
            Step::Replay,
            Step::Issue,
        ] {
            assert!(steps.contains(&wanted), "{wanted} missing from {steps:?}");
        }
        assert!(e.steps.iter().all(|s| s.verdict == Verdict::Pass));
        // What was compared is shown: the key, the scope sets, every lifetime bound.
        let key = e.steps.iter().find(|s| s.step == Step::Key).unwrap();
        assert!(key.summary.contains("kid"), "{key:?}");
        let scope = e.steps.iter().find(|s| s.step == Step::Scope).unwrap();
        assert_eq!(
            scope.values["audience"],
            serde_json::json!(["inventory:read"])
        );
        assert!(scope.summary.contains("inventory:read"), "{scope:?}");
        let lifetime = e.steps.iter().find(|s| s.step == Step::Lifetime).unwrap();
        assert_eq!(lifetime.values["audience_lifetime"], 300);
        assert!(
            !serde_json::to_string(&e).unwrap().contains(&t),
            "no token text"
        );
        // Explain audits, signs and stores nothing.
        assert!(app.audit_rows().await.is_empty());

        // The token /token then issues is the one explain described.
        let would = e.token.expect("the claims it would issue");
        let resp = app.exchange(&t, ID_TOKEN, INV).await;
        let body: Value = resp.json().await.unwrap();
        let (_, claims) = app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        for name in [
            "iss",
            "sub",
            "aud",
            "scope",
            "client_id",
            "exp",
            "iat",
            "act",
            "email",
        ] {
            assert_eq!(claims[name], would[name], "{name}");
        }
        assert!(would.get("jti").is_none(), "jti is drawn when signing");
    }
}

#[tokio::test]
async fn explain_names_the_failing_step_of_each_class_of_refusal() {
    let app = TestApp::spawn(backends()[0]).await;
    let i = &app.issuer;
    let now = i.now();
    type Case = (
        String,
        &'static [(&'static str, &'static str)],
        Step,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            i.id_token().sign(),
            &[("audience", "nope")],
            Step::Target,
            "invalid_target",
        ),
        (
            i.id_token().sign(),
            &[("audience", "inventory"), ("scope", "orders:write")],
            Step::Scope,
            "invalid_scope",
        ),
        (
            i.id_token().lifetime(-120).sign(),
            INV,
            Step::Expiry,
            "invalid_request",
        ),
        (
            i.id_token().aud("someone-else").sign(),
            INV,
            Step::Audience,
            "invalid_request",
        ),
        (
            i.id_token().iat(now + 600).exp(now + 900).sign(),
            INV,
            Step::NotBefore,
            "invalid_request",
        ),
        (
            i.id_token().bad_signature().sign(),
            INV,
            Step::Signature,
            "invalid_request",
        ),
        (
            i.id_token().kid(Some("no-such-kid")).sign(),
            INV,
            Step::Key,
            "invalid_request",
        ),
    ];
    for (token, extra, step, code) in cases {
        let e = app.explain_exchange(&token, ID_TOKEN, extra).await;
        assert_eq!(e.outcome, "refused");
        assert_eq!(e.failing_step, Some(step), "{e:#?}");
        assert_eq!(e.error.as_ref().unwrap().error.as_str(), code);
        let last = e.steps.last().unwrap();
        assert_eq!((last.step, last.verdict), (step, Verdict::Fail));
        assert!(e.token.is_none());
    }
    assert!(app.audit_rows().await.is_empty(), "explain audits nothing");
}

#[tokio::test]
async fn a_shadow_registry_counts_disagreements_and_never_changes_an_answer() {
    let issuer = Arc::new(TestIssuer::start().await);
    // The candidate: the live registry with one edit: orders-service loses the inventory
    // audience, so the candidate would refuse its inventory exchanges (step `target`).
    let candidate = tempfile::tempdir().unwrap();
    for (path, content) in default_registry() {
        let content = content
            .replace("{issuer}", issuer.url())
            .replace(NARROWED.0, NARROWED.1);
        let file = candidate.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let shadow_dir = candidate.path().to_path_buf();
    let app = TestApp::builder(backends()[0])
        .with_issuer(issuer)
        .configure(move |c| c.trust.shadow_dir = Some(shadow_dir))
        .spawn()
        .await;
    let counter = r#"tessera_shadow_disagreements_total{issuer="acme",step="target"}"#;

    // Live issues; the candidate would refuse at `scope`: counted, answer unchanged.
    let t = app.issuer.id_token().sign();
    let resp = app.exchange(&t, ID_TOKEN, INV).await;
    assert_eq!(resp.status(), 200, "the live answer is the live registry's");
    assert_eq!(wait_for_metric(&app, counter, 1.0).await, Some(1.0));
    // Both issue for orders: no disagreement.
    let t = app.issuer.id_token().sign();
    let resp = app
        .exchange(&t, ID_TOKEN, &[("audience", "https://api.orders.example")])
        .await;
    assert_eq!(resp.status(), 200);
    // Both refuse at the same step: no disagreement either.
    let t = app.issuer.id_token().lifetime(-120).sign();
    let resp = app.exchange(&t, ID_TOKEN, INV).await;
    assert_eq!(resp.status(), 400);
    // A second inventory exchange is the next disagreement. The series stays one (one
    // issuer, one step): the orders and the expired exchanges added none.
    let t = app.issuer.id_token().sign();
    assert_eq!(app.exchange(&t, ID_TOKEN, INV).await.status(), 200);
    assert_eq!(wait_for_metric(&app, counter, 2.0).await, Some(2.0));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metrics
            .matches("tessera_shadow_disagreements_total{")
            .count(),
        1,
        "{metrics}"
    );

    // Reload reloads both: the candidate fixed, the next inventory exchange agrees.
    let file = candidate.path().join("clients/orders-service.toml");
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replace(NARROWED.1, NARROWED.0);
    std::fs::write(&file, fixed).unwrap();
    app.exchanger.reload_trust().unwrap();
    let t = app.issuer.id_token().sign();
    assert_eq!(app.exchange(&t, ID_TOKEN, INV).await.status(), 200);
    let t = app.issuer.id_token().lifetime(-120).sign();
    assert_eq!(app.exchange(&t, ID_TOKEN, INV).await.status(), 400);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        metric(&app, counter).await,
        Some(2.0),
        "no new disagreement"
    );
}

async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// The shadow decides in a task of its own, after the answer: poll until the series
/// reaches `at_least` (a bound on waiting, not a timing assertion), then return it.
async fn wait_for_metric(app: &TestApp, series: &str, at_least: f64) -> Option<f64> {
    for _ in 0..100 {
        if metric(app, series).await.is_some_and(|v| v >= at_least) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    metric(app, series).await
}

/// Issue 13 point 7: a refusal's audit row holds the failing step (`reason`) and, in its
/// `detail`, the finer check and what it compared
/// (the token's values against the registry's, a "did you mean" on a near miss), while
/// the caller gets only what it sent itself; no token text anywhere.
#[tokio::test]
async fn refusals_record_what_was_compared_with_a_did_you_mean() {
    let app = TestApp::spawn(backends()[0]).await;
    let slash = format!("{}/", app.issuer.url());
    let t = app.issuer.id_token().iss(&slash).sign();
    let resp = app.exchange(&t, ID_TOKEN, INV).await;
    let body: Value = resp.json().await.unwrap();
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("issuer: "), "{description}");
    assert!(
        description.contains(&slash),
        "the caller's own iss: {description}"
    );
    assert!(!description.contains("did you mean"), "{description}");
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.reason.as_deref(), Some("issuer"));
    let reason = row.detail.clone().unwrap();
    assert!(reason.starts_with("unknown_issuer: "), "{reason}");
    assert!(
        reason.contains(&format!(
            "did you mean the registered issuer `{}`",
            app.issuer.url()
        )),
        "{reason}"
    );
    assert!(!reason.contains(&t));

    let t = app.issuer.access_token().aud("Tessera").sign();
    let resp = app.exchange(&t, ACCESS_TOKEN, INV).await;
    assert_eq!(resp.status(), 400);
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.reason.as_deref(), Some("audience"));
    let reason = row.detail.unwrap();
    assert!(reason.starts_with("wrong_audience: "), "{reason}");
    assert!(reason.contains("`Tessera`"), "the token's aud: {reason}");
    assert!(
        reason.contains("accepted: `tessera`, `app-only`"),
        "{reason}"
    );
    assert!(reason.contains("did you mean `tessera`"), "{reason}");

    let t = app.issuer.id_token().kid(Some("gone")).sign();
    app.exchange(&t, ID_TOKEN, INV).await;
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.reason.as_deref(), Some("key"));
    let reason = row.detail.unwrap();
    assert!(reason.starts_with("unknown_kid: "), "{reason}");
    assert!(reason.contains("`gone`"), "{reason}");
}
