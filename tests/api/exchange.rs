//! Token exchange end to end over HTTP: what is issued, and every way it is refused.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn exchange_issues_an_access_token_for_an_id_token() {
    for kind in backends() {
        // Arrange
        let app = TestApp::spawn(kind).await;
        let id_token = app
            .issuer
            .id_token()
            .sub("alice")
            .lifetime(3600)
            .claim("email", json!("alice@acme.example"))
            .claim("groups", json!(["buyers"]))
            .claim("phone", json!("+1 555"))
            .sign();

        // Act
        let resp = app
            .exchange(
                &id_token,
                ID_TOKEN,
                &[
                    ("audience", "https://api.orders.example"),
                    ("scope", "orders:read"),
                ],
            )
            .await;

        // Assert
        assert_eq!(resp.status(), StatusCode::OK, "{}", kind_name(kind));
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["pragma"], "no-cache");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
        assert_eq!(body["scope"], "orders:read");
        assert_eq!(body["expires_in"], 600); // audience 10m < client 15m < max 1h
        let token = body["access_token"].as_str().unwrap();
        let (header, claims) = app.verify_issued(token).await;
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], "https://api.orders.example");
        assert_eq!(claims["client_id"], "orders-service");
        assert_eq!(claims["scope"], "orders:read");
        assert_eq!(claims["act"], json!({"sub": "orders-service"}));
        assert_eq!(claims["email"], "alice@acme.example");
        assert_eq!(claims["groups"], json!(["buyers"]));
        assert!(claims.get("phone").is_none(), "unmapped claims never pass");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );

        let rows = app.audit_rows().await;
        let row = &rows[0];
        assert_eq!(row.outcome, "issued");
        assert_eq!(row.jti.as_deref(), claims["jti"].as_str());
        assert_eq!(row.client_id.as_deref(), Some("orders-service"));
        assert_eq!(row.issuer.as_deref(), Some("acme"));
        assert_eq!(row.subject.as_deref(), Some("alice"));
        assert_eq!(row.audience.as_deref(), Some("https://api.orders.example"));
        let fp = row.subject_token_sha256.as_deref().unwrap();
        assert!(fp.len() <= 64 && !id_token.contains(fp));
    }
}

#[tokio::test]
async fn exchange_accepts_an_rfc9068_access_token_and_a_resource_indicator() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let at = app.issuer.access_token().sub("svc-7").sign();
        let resp = app
            .exchange(
                &at,
                ACCESS_TOKEN,
                &[("resource", "https://api.orders.example/")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        // No scope parameter: every scope client and audience both allow.
        assert_eq!(body["scope"], "orders:read orders:write");
        let (_, claims) = app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(claims["aud"], "https://api.orders.example");
        assert_eq!(claims["sub"], "svc-7");
    }
}

#[tokio::test]
async fn exchange_lifetime_is_bounded_by_the_subject_token() {
    let app = TestApp::spawn(backends()[0]).await;
    let short = app.issuer.id_token().lifetime(42).sign();
    let resp = app
        .exchange(&short, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 42);
}

#[tokio::test]
async fn impersonating_client_with_client_secret_post_gets_no_act() {
    let app = TestApp::spawn(backends()[0]).await;
    let id_token = app
        .issuer
        .id_token()
        .claim("email", json!("a@acme.example"))
        .sign();
    let resp = app
        .post_token(
            Auth::None,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", "batch-job"),
                ("client_secret", BATCH_SECRET),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 300); // inventory's 5m
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["aud"], "inventory");
    assert!(claims.get("act").is_none());
    assert_eq!(claims["client_id"], "batch-job");
    assert_eq!(claims["email"], "a@acme.example");
}

/// A foreign token's own `act` is kept, marked as the foreign issuer's (never passed off
/// as a link tessera recorded), and the audit row names the outermost actor.
#[tokio::test]
async fn an_existing_act_is_nested_attributed_to_its_issuer_and_never_dropped() {
    let app = TestApp::spawn(backends()[0]).await;
    let prior = json!({"sub": "gateway"});
    let id_token = app.issuer.id_token().claim("act", prior.clone()).sign();
    let resp = app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    let foreign = json!({"sub": "gateway", "iss": app.issuer.url()});
    assert_eq!(
        claims["act"],
        json!({"sub": "orders-service", "act": foreign})
    );
    assert_eq!(
        app.audit_rows().await[0].actor.as_deref(),
        Some("orders-service")
    );

    // Under impersonate the existing act survives as it is.
    let resp = app
        .post_token(
            Auth::None,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", "batch-job"),
                ("client_secret", BATCH_SECRET),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["act"], foreign);
    assert_ne!(claims["act"], prior, "no link without its issuer");
    assert_eq!(app.audit_rows().await[0].actor.as_deref(), Some("gateway"));
}

#[tokio::test]
async fn an_actor_token_becomes_the_act_claim() {
    let app = TestApp::spawn(backends()[0]).await;
    let subject = app.issuer.id_token().sub("alice").sign();
    let actor = app.issuer.access_token().sub("robot").sign();
    let resp = app
        .exchange(
            &subject,
            ID_TOKEN,
            &[
                ("audience", "inventory"),
                ("actor_token", &actor),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        claims["act"],
        json!({"sub": "robot", "iss": app.issuer.url()})
    );
    let row = &app.audit_rows().await[0];
    assert_eq!(row.actor.as_deref(), Some("robot"));
}

#[tokio::test]
async fn may_act_admits_only_the_named_actor() {
    let app = TestApp::spawn(backends()[0]).await;
    // The calling client is a principal of tessera's: a may_act naming tessera admits it.
    let ok = app
        .issuer
        .id_token()
        .claim("may_act", json!({"sub": "orders-service", "iss": ISSUER}))
        .sign();
    let resp = app
        .exchange(&ok, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Security review F-1: without iss, may_act names the IdP's own principal
    // `orders-service`, which the tessera client of that id is not.
    let idp_principal = app
        .issuer
        .id_token()
        .claim("may_act", json!({"sub": "orders-service"}))
        .sign();
    let resp = app
        .exchange(&idp_principal, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("may_act_refused").await;

    let other = app
        .issuer
        .id_token()
        .claim("may_act", json!({"sub": "someone-else"}))
        .sign();
    let resp = app
        .exchange(&other, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_refusal_audited_after_issue("may_act_refused")
        .await;
}

#[tokio::test]
async fn requested_token_type_jwt_is_echoed() {
    let app = TestApp::spawn(backends()[0]).await;
    let t = app.issuer.id_token().sign();
    let resp = app
        .exchange(
            &t,
            ID_TOKEN,
            &[("audience", "inventory"), ("requested_token_type", JWT)],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["issued_token_type"], JWT);
}

#[tokio::test]
async fn jwt_bearer_grant_requires_the_token_endpoint_as_audience() {
    let app = TestApp::spawn(backends()[0]).await;
    let good = app
        .issuer
        .id_token()
        .header_typ(None)
        .aud(json!(format!("{ISSUER}/token")))
        .sign();
    let resp = app
        .post_token(
            Auth::Basic("orders-service", ORDERS_SECRET),
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &good),
                ("audience", "inventory"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let wrong = app.issuer.id_token().header_typ(None).sign(); // aud "tessera"
    let resp = app
        .post_token(
            Auth::Basic("orders-service", ORDERS_SECRET),
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &wrong),
                ("audience", "inventory"),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

impl TestApp {
    /// Like `assert_refusal_audited`, for tests that issued a token earlier.
    pub async fn assert_refusal_audited_after_issue(&self, reason: &str) {
        let rows = self.audit_rows().await;
        let last = rows.first().expect("an audit row");
        assert_eq!(last.outcome, "refused");
        assert!(audit_says(last, reason), "{last:?}");
        assert!(last.jti.is_none());
    }
}

/// SPEC §4.1 replay for JWT issuers: with `one_time_use = true` each token is accepted
/// once (by `jti`, recorded in the database so every replica agrees), and a token without
/// a `jti` is refused; both refusals audited, nothing issued for them.
#[tokio::test]
async fn a_single_use_jwt_issuer_accepts_each_token_once() {
    let (_, acme) = default_registry()
        .into_iter()
        .find(|(p, _)| p == "issuers/acme.toml")
        .unwrap();
    let app = TestApp::builder(backends()[0])
        .file("issuers/acme.toml", &format!("one_time_use = true\n{acme}"))
        .spawn()
        .await;
    let token = app.issuer.id_token().claim("jti", json!("jti-1")).sign();
    let resp = app
        .exchange(&token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let replica = app.spawn_replica().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/token", replica.address))
        .basic_auth("orders-service", Some(ORDERS_SECRET))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token.as_str()),
            ("subject_token_type", ID_TOKEN),
            ("audience", "inventory"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("replayed").await;

    let no_jti = app.issuer.id_token().without_claim("jti").sign();
    let resp = app
        .exchange(&no_jti, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_invalid_request_saying(resp, "single-use").await;
    app.assert_last_refused("malformed_claim").await;
}

/// SPEC §6: an issuer whose JWKS endpoint accepts connections and never answers costs a
/// caller one second (the single-flight fetch goes on in the background), and requests
/// that need no fetch are not held at all.
#[tokio::test]
async fn a_hanging_jwks_endpoint_costs_a_caller_a_second_not_the_timeout() {
    let app = TestApp::builder(backends()[0])
        .configure(|c| c.outbound.timeout = std::time::Duration::from_secs(30))
        .spawn()
        .await;
    let known = app.issuer.id_token().sub("alice").lifetime(600).sign();
    let resp = app
        .exchange(&known, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "keys fetched while the issuer answered"
    );

    app.issuer.set_delay(std::time::Duration::from_secs(120));
    // Past the refresh cooldown: an unknown kid may fetch again.
    app.clock.advance(31);
    let fetches = app.issuer.fetch_count() + app.issuer.discovery_count();
    let unknown_kid = app.issuer.id_token().kid(Some("rotated-away")).sign();
    let started = std::time::Instant::now();
    let (unknown, known_again) = tokio::join!(
        app.exchange(&unknown_kid, ID_TOKEN, &[("audience", "inventory")]),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            app.exchange(&known, ID_TOKEN, &[("audience", "inventory")])
                .await
        }
    );
    let waited = started.elapsed();
    assert_eq!(
        known_again.status(),
        StatusCode::OK,
        "a cached key needs no fetch"
    );
    let body = assert_oauth_error(unknown, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("rotated-away"),
        "{body}"
    );
    let rows = app.audit_rows().await;
    let refused: Vec<_> = rows.iter().filter(|r| r.outcome == "refused").collect();
    assert_eq!(refused.len(), 1, "{rows:?}");
    assert!(audit_says(refused[0], "unknown_kid"), "{:?}", refused[0]);
    assert!(refused[0].jti.is_none());
    assert_eq!(
        app.issuer.fetch_count() + app.issuer.discovery_count(),
        fetches + 1,
        "one fetch, still hanging"
    );
    // Far below the 30 s outbound timeout the fetch is still waiting on.
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
}
