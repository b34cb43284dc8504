//! Fair use (SPEC §1 `limits`, §3): per-client rate limits, and refusals before client
//! authentication that cost no commit each and add a bounded number of audit rows.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `orders-service` limited to `rate`, `batch-job` on the broker's default.
fn limited_orders(rate: &str) -> String {
    format!(
        r#"client_id = "orders-service"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
audiences = ["orders", "inventory"]
scopes = ["orders:read", "inventory:read"]
rate_limit = "{rate}"
"#,
        secret_hash(ORDERS_SECRET)
    )
}

async fn batch_exchange(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_token(
        Auth::None,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", ID_TOKEN),
            ("audience", "inventory"),
            ("client_id", "batch-job"),
            ("client_secret", BATCH_SECRET),
        ],
    )
    .await
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_and_other_clients_are_unaffected() {
    for kind in backends() {
        let app = TestApp::builder(kind)
            .file("clients/orders-service.toml", &limited_orders("3/m"))
            .configure(|c| c.limits.client_rate = Some("100/s".parse().unwrap()))
            .spawn()
            .await;
        let token = app.issuer.id_token().sub("alice").lifetime(3600).sign();
        let orders = || app.exchange(&token, ID_TOKEN, &[("audience", "inventory")]);
        for i in 0..3 {
            assert_eq!(orders().await.status(), StatusCode::OK, "request {i}");
        }
        let before = app.audit_rows().await.len();

        let resp = orders().await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{kind:?}");
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=20).contains(&retry),
            "3/m admits one every 20 s: {retry}"
        );
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "slow_down");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("rate_limit: "), "{description}");
        assert!(description.contains("3/m"), "{description}");
        assert!(body.get("access_token").is_none());
        for _ in 0..5 {
            assert_eq!(orders().await.status(), StatusCode::TOO_MANY_REQUESTS);
        }

        // Another client keeps its own budget (the broker's default, 100/s).
        for _ in 0..5 {
            assert_eq!(batch_exchange(&app, &token).await.status(), StatusCode::OK);
        }

        // The six refusals are one summary row, and counted per client.
        let rows = app.audit_rows().await;
        let limited: Vec<_> = rows
            .iter()
            .filter(|r| r.reason.as_deref() == Some("rate_limit"))
            .collect();
        assert_eq!(limited.len(), 1, "{kind:?}: {limited:?}");
        assert_eq!(limited[0].requests, 6);
        assert_eq!(limited[0].client_id.as_deref(), Some("orders-service"));
        assert_eq!(limited[0].outcome, "refused");
        assert!(audit_says(limited[0], "rate_limited"), "{:?}", limited[0]);
        assert_eq!(
            rows.len(),
            before + 5 + 1,
            "5 issued to batch-job, 1 summary"
        );
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("tessera_rate_limited_total{client=\"orders-service\"} 6"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn rate_limit_off_exempts_a_client_from_the_default() {
    let app = TestApp::builder(backends()[0])
        .file("clients/orders-service.toml", &limited_orders("off"))
        .configure(|c| c.limits.client_rate = Some("2/h".parse().unwrap()))
        .spawn()
        .await;
    let token = app.issuer.id_token().sub("alice").lifetime(3600).sign();
    for _ in 0..4 {
        let resp = app
            .exchange(&token, ID_TOKEN, &[("audience", "inventory")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let statuses = [
        batch_exchange(&app, &token).await.status(),
        batch_exchange(&app, &token).await.status(),
        batch_exchange(&app, &token).await.status(),
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "batch-job is on the default, 2/h"
    );
}

#[tokio::test]
async fn a_bad_rate_limit_is_refused_naming_file_and_field() {
    let app = TestApp::spawn(backends()[0]).await;
    std::fs::write(
        app.trust_dir.join("clients/orders-service.toml"),
        limited_orders("lots/s"),
    )
    .unwrap();
    let err = tessera::trust::load_registry(&app.trust_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("orders-service.toml"), "{err}");
    assert!(err.contains("rate_limit"), "{err}");
    assert!(err.contains("`lots/s` is not a rate"), "{err}");
}

/// A flood of requests that never authenticate, beside a legitimate client: the client is
/// served throughout, and the flood adds one summary row per kind, not a row each.
#[tokio::test]
async fn a_junk_flood_adds_a_bounded_number_of_audit_rows_while_a_client_is_served() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let token = app.issuer.id_token().sub("alice").lifetime(3600).sign();
        let before = app.audit_rows().await.len();

        let junk = |i: usize| {
            let app = &app;
            async move {
                let auth = match i % 3 {
                    0 => Auth::Basic("no-such-client", "x"),
                    1 => Auth::Basic("orders-service", "wrong secret"),
                    _ => Auth::None,
                };
                app.post_token(auth, &[("grant_type", TOKEN_EXCHANGE)])
                    .await
                    .status()
            }
        };
        let flood = futures_util::future::join_all((0..300).map(junk));
        let legit = async {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                let resp = app
                    .exchange(&token, ID_TOKEN, &[("audience", "inventory")])
                    .await;
                statuses.push(resp.status());
            }
            statuses
        };
        let (junk_statuses, legit_statuses) = tokio::join!(flood, legit);
        assert!(
            legit_statuses.iter().all(|s| *s == StatusCode::OK),
            "{legit_statuses:?}"
        );
        assert!(junk_statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));

        let rows = app.audit_rows().await;
        let new = &rows[..rows.len() - before];
        let issued = new.iter().filter(|r| r.outcome == "issued").count();
        let summaries: Vec<_> = new.iter().filter(|r| r.outcome == "refused").collect();
        assert_eq!(issued, 10, "{kind:?}");
        assert!(
            summaries.len() <= 3,
            "{kind:?}: one row per kind of junk, got {}: {summaries:?}",
            summaries.len()
        );
        let total: i64 = summaries.iter().map(|r| r.requests).sum();
        assert_eq!(total, 300, "every junk request is counted");
        let wrong_secret = summaries
            .iter()
            .find(|r| r.client_id.as_deref() == Some("orders-service"))
            .expect("a registered client's failures are summarised under its id");
        assert_eq!(wrong_secret.requests, 100);
        assert!(
            audit_says(wrong_secret, "client_secret_mismatch"),
            "{wrong_secret:?}"
        );
        assert!(
            summaries
                .iter()
                .all(|r| r.client_id.as_deref() != Some("no-such-client")),
            "an unregistered id never becomes a summary key"
        );
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("tessera_refusals_summarised_total 300"),
            "{metrics}"
        );
    }
}

/// The summary is written by the broker itself, every `limits.refusal_summary_interval`
/// (here without the test helper's flush).
#[tokio::test]
async fn summaries_are_written_on_their_interval() {
    let app = TestApp::builder(backends()[0])
        .configure(|c| c.limits.refusal_summary_interval = std::time::Duration::from_millis(200))
        .spawn()
        .await;
    let rows = || async {
        app.store
            .run(|conn| tessera::store::audit::recent_events(conn, 10))
            .await
            .unwrap()
    };
    let before = rows().await.len();
    for _ in 0..4 {
        let resp = app
            .post_token(
                Auth::Basic("nobody", "x"),
                &[("grant_type", TOKEN_EXCHANGE)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let mut written = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = rows().await;
        if now.len() > before {
            written = Some(now);
            break;
        }
    }
    let now = written.expect("the summary row is written within the interval");
    assert_eq!(now.len(), before + 1);
    assert_eq!(now[0].requests, 4);
    assert_eq!(now[0].reason.as_deref(), Some("client"));
    assert!(audit_says(&now[0], "client_unknown"), "{:?}", now[0]);
    assert!(
        now[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("presented client_id `nobody`"),
        "the first request's presented id is told: {:?}",
        now[0].detail
    );
    assert!(
        now[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("4 requests from"),
        "{:?}",
        now[0].detail
    );
}

/// Bounded CEL (SPEC §6): a mapping whose worst case is over the budget is refused at load,
/// naming file and field; a token carrying more than a mapping is fed (1,500 groups) is
/// refused at the mapping step, audited, instead of being evaluated.
#[tokio::test]
async fn an_expensive_mapping_is_refused_at_load_and_an_oversized_token_at_the_mapping_step() {
    let app = TestApp::spawn(backends()[0]).await;
    let token = app
        .issuer
        .id_token()
        .sub("alice")
        .lifetime(600)
        .claim(
            "groups",
            serde_json::json!((0..1500).map(|i| format!("g{i}")).collect::<Vec<_>>()),
        )
        .sign();
    let resp = app
        .exchange(&token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("mapping: "), "{description}");
    assert!(description.contains("1500 items"), "{description}");
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.reason.as_deref(), Some("mapping"), "{row:?}");
    assert!(row.jti.is_none());

    std::fs::write(
        app.trust_dir.join("issuers/acme.toml"),
        format!(
            r#"kind = "oidc"
issuer = "{}"
discovery_url = "{}/.well-known/openid-configuration"
audiences = ["tessera"]
algorithms = ["RS256", "ES256"]
token_types = ["id_token"]
[mapping]
claims = {{ pairs = "assertion.groups.map(g, assertion.groups.map(h, g + h))" }}
"#,
            app.issuer.url(),
            app.issuer.url()
        ),
    )
    .unwrap();
    let err = tessera::trust::load_registry(&app.trust_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("acme.toml"), "{err}");
    assert!(err.contains("mapping.claims.pairs"), "{err}");
    assert!(err.contains("over the budget"), "{err}");
}
