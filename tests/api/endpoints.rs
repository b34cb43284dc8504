//! Metadata, keys, health, metrics, admin and unknown paths.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn metadata_describes_the_token_endpoint() {
    let app = TestApp::spawn(backends()[0]).await;
    let resp = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/jwks.json"));
    let grants = m["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&Value::from(TOKEN_EXCHANGE)));
    let auth = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(auth.contains(&Value::from("client_secret_basic")));
}

#[tokio::test]
async fn jwks_publishes_current_and_next_public_keys_only() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let jwks: Value = app.get("/jwks.json").await.json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "current + next: {jwks}");
        for k in keys {
            assert_eq!(k["kty"], "EC");
            assert!(k["kid"].is_string());
            assert!(k.get("d").is_none(), "no private material");
        }
    }
}

#[tokio::test]
async fn health_readiness_and_unknown_paths() {
    let app = TestApp::spawn(backends()[0]).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let resp = app.get("/nope").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let resp = app.get("/token").await; // GET on a POST endpoint
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_exchanges_with_bounded_labels() {
    let app = TestApp::spawn(backends()[0]).await;
    let ok = app.issuer.id_token().sign();
    app.exchange(&ok, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let bad = app
        .issuer
        .id_token()
        .iss("https://attacker-chosen.example")
        .sign();
    app.exchange(&bad, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(
        r#"tessera_exchanges_total{grant="token_exchange",subject_token_type="id_token",issuer="acme",outcome="issued"} 1"#
    ), "{text}");
    assert!(
        text.contains(r#"issuer="unknown",outcome="refused"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains("attacker-chosen"),
        "request input never becomes a label"
    );
    assert!(text.contains(r#"tessera_rejections_total{reason="unknown_issuer"} 1"#));
    assert!(text.contains("tessera_exchange_duration_seconds_bucket"));
    assert!(text.contains("tessera_issuer_key_fetches_total"));
    assert!(text.contains("tessera_signing_key_age_seconds"));
    assert!(text.contains("tessera_audit_queue_depth"));
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(
        text.contains("# TYPE process_cpu_seconds counter"),
        "{text}"
    );
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    assert!(!text.contains("tessera_process_"), "{text}");
    assert!(text.contains(r#"tessera_trust_reloads_total{outcome="refused"} 0"#));
    // Refused before the grant was known (bad client secret): counted by reason only,
    // since grant and subject_token_type are closed label sets (SPEC §2).
    let resp = app
        .post_token(
            Auth::Basic("orders-service", "wrong"),
            &[("grant_type", TOKEN_EXCHANGE)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"tessera_rejections_total{reason="client_secret_mismatch"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"grant="unknown""#), "{text}");
    assert!(!text.contains(r#"subject_token_type="unknown""#), "{text}");
}

#[tokio::test]
async fn admin_reload_needs_the_admin_token_and_keeps_a_valid_registry() {
    // TESSERA_ADMIN_TOKEN is read at start; this test owns the variable.
    std::env::set_var("TESSERA_ADMIN_TOKEN", "admin-secret-for-tests");
    let app = TestApp::spawn(backends()[0]).await;
    std::env::remove_var("TESSERA_ADMIN_TOKEN");
    let reload = |token: Option<&str>| {
        let mut req = app.http.post(app.url("/admin/reload"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        reload(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        reload(Some("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        reload(Some("admin-secret-for-tests"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A broken registry is refused and the old one keeps serving.
    std::fs::write(
        app.trust_dir.join("issuers/broken.toml"),
        "kind = \"oidc\"\n",
    )
    .unwrap();
    let resp = reload(Some("admin-secret-for-tests")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("broken.toml"),
        "{body}"
    );
    let t = app.issuer.id_token().sign();
    assert_eq!(
        app.exchange(&t, ID_TOKEN, &[("audience", "inventory")])
            .await
            .status(),
        StatusCode::OK
    );
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"tessera_trust_reloads_total{outcome="refused"} 1"#));
}
