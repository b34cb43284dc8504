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
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

const POST_ENDPOINTS: &[&str] = &["/token", "/admin/reload"];
const GET_ENDPOINTS: &[&str] = &[
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
    "/metrics",
    "/healthz",
    "/readyz",
];

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_unknown_paths_stay_404() {
    let app = TestApp::spawn(backends()[0]).await;
    use reqwest::Method;
    let mut cases = vec![];
    for path in POST_ENDPOINTS {
        for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            cases.push((*path, m, "POST", "method not allowed; use POST"));
        }
    }
    for path in GET_ENDPOINTS {
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            cases.push((*path, m, "GET, HEAD", "method not allowed; use GET or HEAD"));
        }
    }
    for (path, method, allow, description) in cases {
        let what = format!("{method} {path}");
        let resp = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{what}");
        assert_eq!(resp.headers()["allow"], allow, "{what}");
        if method == Method::HEAD {
            continue;
        }
        let body =
            assert_oauth_error(resp, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
        assert_eq!(body["error_description"], description, "{what}");
    }
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let resp = app
            .http
            .request(method, app.url("/token/extra"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = TestApp::spawn(backends()[0]).await;
    for path in GET_ENDPOINTS {
        let get = app.get(path).await;
        let head = app.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        for h in ["content-type", "cache-control"] {
            assert_eq!(
                head.headers().get(h),
                get.headers().get(h),
                "HEAD {path}: {h}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }

    // reqwest never reads a HEAD body, so check the wire itself: nothing after the headers.
    let addr = app.address.trim_start_matches("http://").to_owned();
    let raw = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    })
    .await
    .unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let (_, body) = raw.split_once("\r\n\r\n").expect("end of headers");
    assert_eq!(body, "", "HEAD response carries no body: {raw:?}");
}

#[tokio::test]
async fn metadata_lists_the_scopes_of_the_registered_audiences() {
    let app = TestApp::spawn(backends()[0]).await;
    let m: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    // default_registry: orders has orders:read/orders:write, inventory has inventory:read.
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["inventory:read", "orders:read", "orders:write"]),
        "{m}"
    );

    // Two audiences sharing a scope list it once; no audiences at all omit the field.
    let app = TestApp::builder(backends()[0])
        .file(
            "audiences/billing.toml",
            "audience = \"billing\"\nscopes = [\"orders:read\", \"billing:read\"]\n",
        )
        .spawn()
        .await;
    let m: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!([
            "billing:read",
            "inventory:read",
            "orders:read",
            "orders:write"
        ]),
        "{m}"
    );
    let app = TestApp::builder(backends()[0])
        .empty_registry()
        .spawn()
        .await;
    let m: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(m.get("scopes_supported").is_none(), "{m}");
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
    assert!(
        text.contains(r#"tessera_rejections_total{reason="issuer",issuer="unknown"} 1"#),
        "{text}"
    );
    assert!(text.contains("tessera_exchange_duration_seconds_bucket"));
    assert!(text.contains("tessera_issuer_key_fetches_total"));
    assert!(text.contains("tessera_signing_key_age_seconds"));
    assert!(text.contains("tessera_audit_queue_depth"));
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter"),
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
        text.contains(r#"tessera_rejections_total{reason="client",issuer="unknown"} 1"#),
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
    for token in [None, Some("wrong")] {
        let resp = reload(token).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"tessera-admin\""
        );
    }
    // The auth scheme is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER"] {
        let resp = app
            .http
            .post(app.url("/admin/reload"))
            .header("authorization", format!("{scheme} admin-secret-for-tests"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
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

    // POST /admin/explain: the same admin bearer; the /token form plus client_id.
    let t = app.issuer.id_token().sign();
    let form = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", t.as_str()),
        ("subject_token_type", ID_TOKEN),
        ("audience", "inventory"),
        ("scope", "orders:write"),
        ("client_id", "orders-service"),
    ];
    let explain = |token: Option<&'static str>| {
        let mut req = app.http.post(app.url("/admin/explain")).form(&form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        explain(Some("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let rows = app.audit_rows().await.len();
    let resp = explain(Some("admin-secret-for-tests")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["outcome"], "refused", "{body}");
    assert_eq!(body["failing_step"], "scope", "{body}");
    assert_eq!(body["error"]["error"], "invalid_scope", "{body}");
    assert_eq!(body["steps"][0]["step"], "client", "{body}");
    assert!(!body.to_string().contains(&t), "no token text");
    assert_eq!(app.audit_rows().await.len(), rows, "explain audits nothing");
}

/// SPEC §1, §7: an issuer whose discovery URL never answered is visible (readiness detail
/// with the fetch's root cause, `tessera_issuer_keys_available` 0, no key age) and does not
/// make the broker unready for every other issuer.
#[tokio::test]
async fn an_issuer_without_keys_is_visible_in_readiness_and_metrics() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::builder(backends()[0])
        .file(
            "issuers/dead.toml",
            &format!(
                r#"kind = "oidc"
issuer = "http://127.0.0.1:{closed}"
discovery_url = "http://127.0.0.1:{closed}/.well-known/openid-configuration"
audiences = ["tessera"]
algorithms = ["RS256"]
token_types = ["id_token"]
"#
            ),
        )
        .spawn()
        .await;
    let mut ready = Value::Null;
    for _ in 0..50 {
        let resp = app.get("/readyz").await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "one dead issuer: still ready"
        );
        ready = resp.json().await.unwrap();
        if ready["issuers"]["dead"]
            .as_str()
            .is_some_and(|s| s.contains("refused"))
            && ready["issuers"]["acme"] == "ok"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dead = ready["issuers"]["dead"].as_str().unwrap();
    assert!(dead.starts_with("no keys: "), "{ready}");
    assert!(
        dead.to_lowercase().contains("connect"),
        "root cause kept: {dead}"
    );
    assert!(
        !dead.contains("http://"),
        "/readyz is public: no URL in it: {dead}"
    );
    assert_eq!(ready["issuers"]["acme"], "ok", "{ready}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tessera_issuer_keys_available{issuer=\"dead\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("tessera_issuer_keys_available{issuer=\"acme\"} 1"));
    assert!(
        !metrics.contains("tessera_issuer_keys_age_seconds{issuer=\"dead\"}"),
        "no age for keys never fetched"
    );
    assert!(metrics.contains("tessera_issuer_keys_age_seconds{issuer=\"acme\"}"));
}
