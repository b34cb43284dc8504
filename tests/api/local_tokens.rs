//! tessera's own tokens as subject and actor tokens (issuer id `local`), delegation chains
//! across hops, and the lifecycle endpoints (`/introspect`, `/revoke`) — over HTTP against
//! the real server, with a second replica on the same database for revocation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use tessera::store::testing::TestDbKind;

const SVC_SECRET: &str = "inventory-svc-secret";
const STRANGER_SECRET: &str = "stranger-secret";

/// Hop 2 is `inventory-svc`: it receives `inventory` tokens and calls `warehouse`.
fn files() -> Vec<(String, String)> {
    vec![
        (
            "clients/inventory-svc.toml".into(),
            format!(
                r#"client_id = "inventory-svc"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["local"]
actor_issuers = ["local", "acme"]
audiences = ["warehouse", "inventory"]
scopes = ["inventory:read", "warehouse:read"]
"#,
                secret_hash(SVC_SECRET)
            ),
        ),
        (
            "clients/stranger.toml".into(),
            format!(
                r#"client_id = "stranger"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
audiences = ["orders"]
scopes = ["orders:read"]
"#,
                secret_hash(STRANGER_SECRET)
            ),
        ),
        (
            "audiences/warehouse.toml".into(),
            r#"audience = "warehouse"
scopes = ["inventory:read", "warehouse:read"]
lifetime = "5m"
claims = ["email"]
"#
            .into(),
        ),
    ]
}

async fn app(kind: TestDbKind) -> TestApp {
    let mut b = TestApp::builder(kind);
    for (p, c) in files() {
        b = b.file(&p, &c);
    }
    b.spawn().await
}

/// Hop 1: alice's ID token → an `inventory` token for orders-service (act: orders-service).
async fn hop1(app: &TestApp) -> (String, Value) {
    let id_token = app
        .issuer
        .id_token()
        .sub("alice")
        .lifetime(3600)
        .claim("email", json!("alice@acme.example"))
        .sign();
    let resp = app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = app.verify_issued(&token).await;
    (token, claims)
}

async fn svc_exchange(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut params = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    params.extend_from_slice(extra);
    app.post_token(Auth::Basic("inventory-svc", SVC_SECRET), &params)
        .await
}

async fn post(
    app_url: &str,
    path: &str,
    (id, secret): (&str, &str),
    params: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{app_url}{path}"))
        .basic_auth(id, Some(secret))
        .form(params)
        .send()
        .await
        .unwrap()
}

/// inventory-svc re-audiences `token` for warehouse with `actor` as actor token.
async fn svc_exchange_with_actor(app: &TestApp, token: &str, actor: &str) -> reqwest::Response {
    svc_exchange(
        app,
        token,
        &[
            ("audience", "warehouse"),
            ("actor_token", actor),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await
}

/// Polls `url`'s token endpoint with `token` until it is refused as revoked (bounded by
/// a deadline, not timed: the replica reloads its revoked set every 2 s).
async fn until_refused_as_revoked(url: &str, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body) = exchange_at(url, token).await;
        if status != StatusCode::OK {
            let text = body["error_description"].as_str().unwrap_or_default();
            assert!(text.contains("revoked"), "{body}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refused as revoked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn three_hops_narrow_scopes_nest_act_and_record_lineage() {
    let app = app(backends()[0]).await;
    let (t1, c1) = hop1(&app).await;
    assert_eq!(c1["act"], json!({"sub": "orders-service"}));

    // Hop 2: inventory-svc re-audiences t1 for warehouse; scopes only narrow.
    let resp = svc_exchange(
        &app,
        &t1,
        &[("audience", "warehouse"), ("scope", "warehouse:read")],
    )
    .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_scope").await;
    app.assert_last_refused("invalid_scope").await;

    // A forged copy (another payload under t1's signature) is refused, even right after
    // t1's own signature was verified.
    use base64::Engine;
    let mut parts: Vec<String> = t1.split('.').map(str::to_owned).collect();
    let forged = json!({"iss": ISSUER, "sub": "mallory", "aud": "inventory",
        "exp": c1["exp"], "iat": c1["iat"], "jti": "forged", "client_id": "orders-service",
        "scope": "inventory:read"});
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let resp = svc_exchange(&app, &parts.join("."), &[("audience", "warehouse")]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("bad_signature").await;

    let resp = svc_exchange(&app, &t1, &[("audience", "warehouse")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["scope"], "inventory:read",
        "∩ the subject token's scope"
    );
    let t2 = body["access_token"].as_str().unwrap().to_owned();
    let (_, c2) = app.verify_issued(&t2).await;
    assert_eq!(c2["sub"], "alice");
    assert_eq!(c2["aud"], "warehouse");
    assert_eq!(c2["client_id"], "inventory-svc");
    assert_eq!(c2["email"], "alice@acme.example");
    // tessera's own links carry no iss (SPEC §2.1).
    assert_eq!(
        c2["act"],
        json!({"sub": "inventory-svc", "act": {"sub": "orders-service"}})
    );
    assert_eq!(c2["exchanged_from"], json!([c1["jti"]]));
    let row = &app.audit_rows().await[0];
    assert_eq!(row.issuer.as_deref(), Some("local"));
    assert_eq!(row.actor.as_deref(), Some("inventory-svc"));

    // Hop 3: back to inventory, narrower still; the lineage grows.
    let resp = svc_exchange(&app, &t2, &[("audience", "inventory")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, c3) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(c3["exchanged_from"], json!([c2["jti"], c1["jti"]]));
    assert_eq!(c3["act"]["act"]["act"], json!({"sub": "orders-service"}));
    assert!(
        c3["exp"].as_i64() <= c2["exp"].as_i64(),
        "never outlives its subject"
    );
}

#[tokio::test]
async fn an_actor_token_of_another_domain_is_recorded_with_its_issuer() {
    let app = app(backends()[0]).await;
    let (t1, _) = hop1(&app).await;
    let robot = app.issuer.access_token().sub("robot-7").sign();
    let resp = svc_exchange_with_actor(&app, &t1, &robot).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, c) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        c["act"],
        json!({"sub": "robot-7", "iss": app.issuer.url(), "act": {"sub": "orders-service"}})
    );
    assert_eq!(app.audit_rows().await[0].actor.as_deref(), Some("robot-7"));

    // A local actor token: recorded with the IdP that authenticated its subject (the
    // token's src_iss), so alice of acme never reads as anyone else's alice (review I-3).
    let (t1b, c1b) = hop1(&app).await;
    assert_eq!(c1b["src_iss"], app.issuer.url());
    let resp = svc_exchange_with_actor(&app, &t1, &t1b).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, c) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(c["act"]["sub"], "alice");
    assert_eq!(c["act"]["iss"], app.issuer.url());
    assert_eq!(c["src_iss"], app.issuer.url(), "carried from hop to hop");
}

#[tokio::test]
async fn may_act_and_the_depth_limit_refuse_and_are_audited() {
    let mut b = TestApp::builder(backends()[0]).configure(|c| c.tokens.max_delegation_depth = 2);
    for (p, c) in files() {
        b = b.file(&p, &c);
    }
    let app = b.spawn().await;
    let (t1, _) = hop1(&app).await;
    // Depth: t1 has one actor; hop 2 makes two (allowed); hop 3 would make three.
    let resp = svc_exchange(&app, &t1, &[("audience", "warehouse")]).await;
    let body: Value = resp.json().await.unwrap();
    let t2 = body["access_token"].as_str().unwrap().to_owned();
    let resp = svc_exchange(&app, &t2, &[("audience", "inventory")]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("delegation_too_deep").await;

    // may_act names someone else than the actor.
    let id_token = app
        .issuer
        .id_token()
        .sub("bob")
        .claim("may_act", json!({"sub": "someone-else"}))
        .sign();
    let resp = app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("may_act_refused").await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_with_everything_exchanged_from_it_on_every_replica() {
    for kind in backends() {
        let app = app(kind).await;
        let replica = app.spawn_replica().await;
        let (t1, c1) = hop1(&app).await;
        let resp = svc_exchange(&app, &t1, &[("audience", "warehouse")]).await;
        let body: Value = resp.json().await.unwrap();
        let t2 = body["access_token"].as_str().unwrap().to_owned();

        // Introspection on the second replica: active, and what it reveals.
        let intro = |url: String, who: (&'static str, &'static str), t: String| async move {
            let resp = post(&url, "/introspect", who, &[("token", &t)]).await;
            assert_eq!(resp.status(), StatusCode::OK);
            resp.json::<Value>().await.unwrap()
        };
        let seen = intro(
            replica.address.clone(),
            ("orders-service", ORDERS_SECRET),
            t1.clone(),
        )
        .await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["sub"], "alice");
        assert_eq!(seen["jti"], c1["jti"]);
        assert_eq!(seen["client_id"], "orders-service");
        assert_eq!(seen["token_type"], "Bearer");
        assert!(seen.get("email").is_none(), "only RFC 7662 members");
        // Its audience's service may introspect it; an unrelated client sees nothing.
        let svc = intro(
            replica.address.clone(),
            ("inventory-svc", SVC_SECRET),
            t1.clone(),
        )
        .await;
        assert_eq!(svc["active"], true);
        let other = intro(
            replica.address.clone(),
            ("stranger", STRANGER_SECRET),
            t1.clone(),
        )
        .await;
        assert_eq!(other, json!({"active": false}));

        // Only its client may revoke it.
        let resp = post(
            &app.address,
            "/revoke",
            ("inventory-svc", SVC_SECRET),
            &[("token", &t1)],
        )
        .await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client").await;
        let resp = post(
            &app.address,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", &t1)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        // Not a tessera token: nothing to do, 200 (RFC 7009 §2.2).
        let resp = post(
            &app.address,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", "garbage")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);

        // The second replica's introspection reads the database: inactive at once.
        let seen = intro(
            replica.address.clone(),
            ("orders-service", ORDERS_SECRET),
            t1.clone(),
        )
        .await;
        assert_eq!(seen, json!({"active": false}), "{}", kind_name(kind));
        let seen = intro(
            replica.address.clone(),
            ("inventory-svc", SVC_SECRET),
            t2.clone(),
        )
        .await;
        assert_eq!(
            seen,
            json!({"active": false}),
            "exchanged from a revoked token"
        );

        // On this replica the hot path refuses it at once, and t2 with it.
        let resp = svc_exchange(&app, &t1, &[("audience", "warehouse")]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        app.assert_last_refused("revoked").await;
        let resp = svc_exchange(&app, &t2, &[("audience", "inventory")]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        app.assert_last_refused("revoked").await;

        // The other replica's token endpoint: at once, as its own introspection reported
        // the token inactive (polled with a deadline all the same).
        until_refused_as_revoked(&replica.address, &t1).await;
    }
}

/// The token endpoint of the replica at `url` exchanging `token` (inventory-svc for
/// warehouse): the status and body.
async fn exchange_at(url: &str, token: &str) -> (StatusCode, Value) {
    let resp = post(
        url,
        "/token",
        ("inventory-svc", SVC_SECRET),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", "warehouse"),
        ],
    )
    .await;
    (resp.status(), resp.json().await.unwrap())
}

/// SPEC §6: a replica never exchanges a token its own `/introspect` reported inactive (no
/// window at all), and the others refuse it within 1 s: on PostgreSQL the revocation is
/// announced (LISTEN/NOTIFY), elsewhere polled every 500 ms. Polled here with a deadline;
/// the time it took is printed, not asserted.
#[tokio::test]
async fn a_revocation_leaves_no_window_at_a_replica_that_reported_it() {
    for kind in backends() {
        let app = app(kind).await;
        let (reporting, other) = (app.spawn_replica().await, app.spawn_replica().await);
        let (t1, _) = hop1(&app).await;
        for r in [&reporting.address, &other.address] {
            assert_eq!(
                exchange_at(r, &t1).await.0,
                StatusCode::OK,
                "active everywhere"
            );
        }
        let resp = post(
            &app.address,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", &t1)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let revoked_at = std::time::Instant::now();

        let resp = post(
            &reporting.address,
            "/introspect",
            ("orders-service", ORDERS_SECRET),
            &[("token", &t1)],
        )
        .await;
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"active": false})
        );
        let (status, body) = exchange_at(&reporting.address, &t1).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind:?}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("revoked"),
            "{body}"
        );

        until_refused_as_revoked(&other.address, &t1).await;
        eprintln!(
            "{}: revocation refused by another replica's token endpoint after {:?}",
            kind_name(kind),
            revoked_at.elapsed()
        );
    }
}

#[tokio::test]
async fn lifecycle_endpoints_authenticate_and_metadata_lists_them() {
    let app = app(backends()[0]).await;
    let (t1, _) = hop1(&app).await;
    let resp = post(
        &app.address,
        "/introspect",
        ("orders-service", "wrong"),
        &[("token", &t1)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = post(
        &app.address,
        "/introspect",
        ("orders-service", ORDERS_SECRET),
        &[],
    )
    .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let resp = post(
        &app.address,
        "/introspect",
        ("orders-service", ORDERS_SECRET),
        &[("token", "x.y.z")],
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
    // A foreign token is not tessera's to describe.
    let foreign = app.issuer.access_token().sub("x").sign();
    let resp = post(
        &app.address,
        "/introspect",
        ("orders-service", ORDERS_SECRET),
        &[("token", &foreign)],
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );

    let md = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(md["introspection_endpoint"], format!("{ISSUER}/introspect"));
    assert_eq!(md["revocation_endpoint"], format!("{ISSUER}/revoke"));
}

/// A real second `tessera serve` process (its own memory, caches and revoked set) on the
/// same database and registry: a revocation made through this one is honoured there,
/// by introspection at once and by its token endpoint within its reload interval.
#[tokio::test]
async fn a_second_server_process_on_the_same_database_honours_a_revocation() {
    for kind in backends() {
        let app = app(kind).await;
        let (t1, _) = hop1(&app).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("serve")
            .env_remove("TESSERA_CONFIG")
            .env("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA_SERVER__ISSUER", ISSUER)
            .env("TESSERA_DATABASE__URL", app.database_url())
            .env("TESSERA_TRUST__DIR", &app.trust_dir)
            .current_dir(home.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let other = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{other}/readyz")).send().await {
                if r.status().is_success() {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ready, "second process became ready");
        let introspect = || async {
            post(
                &other,
                "/introspect",
                ("orders-service", ORDERS_SECRET),
                &[("token", &t1)],
            )
            .await
            .json::<Value>()
            .await
            .unwrap()
        };
        assert_eq!(introspect().await["active"], true);
        let resp = post(
            &app.address,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", &t1)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            introspect().await,
            json!({"active": false}),
            "{}",
            kind_name(kind)
        );
        until_refused_as_revoked(&other, &t1).await;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let _ = child.wait();
    }
}

/// Found by review: past its exp a token is inactive at /introspect even within the skew
/// a presented token is allowed, and a revocation outlives that skew.
#[tokio::test]
async fn an_expired_token_is_inactive_and_a_revocation_outlives_the_skew() {
    let app = app(backends()[0]).await;
    let (t1, c1) = hop1(&app).await;
    let resp = post(
        &app.address,
        "/revoke",
        ("orders-service", ORDERS_SECRET),
        &[("token", &t1)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // 30 s past exp: within the 60 s skew of a presented token.
    let exp = c1["exp"].as_i64().unwrap();
    app.clock.set(exp + 30);
    let seen = post(
        &app.address,
        "/introspect",
        ("orders-service", ORDERS_SECRET),
        &[("token", &t1)],
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(seen, json!({"active": false}));
    // The revocation is still there for the token endpoint, after a reload prunes.
    let revocations = tessera::revocation::Revocations::new(app.store.clone(), app.clock.clone());
    revocations.sync().await.unwrap();
    assert!(revocations.any_revoked([&tessera::protocol::Jti::from(c1["jti"].as_str().unwrap())]));
}

/// Found by review: a foreign token cannot claim a link tessera recorded, and `may_act`
/// binds every later hop, not only the first.
#[tokio::test]
async fn foreign_links_cannot_claim_tessera_and_may_act_binds_later_hops() {
    let app = app(backends()[0]).await;
    let forged = app
        .issuer
        .id_token()
        .sub("alice")
        .claim("act", json!({"sub": "inventory-svc", "iss": ISSUER}))
        .sign();
    let resp = app
        .exchange(&forged, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("act_claims_tessera").await;

    let bound = app
        .issuer
        .id_token()
        .sub("bob")
        .claim("may_act", json!({"sub": "orders-service", "iss": ISSUER}))
        .sign();
    let resp = app
        .exchange(&bound, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let t1 = body["access_token"].as_str().unwrap().to_owned();
    let (_, c1) = app.verify_issued(&t1).await;
    assert_eq!(
        c1["may_act"],
        json!({"sub": "orders-service", "iss": ISSUER})
    );
    // inventory-svc is not admitted by bob's may_act, on this hop either.
    let resp = svc_exchange(&app, &t1, &[("audience", "warehouse")]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("may_act_refused").await;
}

/// Found by review: a local actor is recorded as `{sub}`, as a client delegating is, so a
/// local token whose subject is a client's id cannot be an actor token.
#[tokio::test]
async fn a_local_actor_token_cannot_pass_for_a_client() {
    let app = app(backends()[0]).await;
    let (t1, _) = hop1(&app).await;
    let id_token = app
        .issuer
        .id_token()
        .sub("orders-service")
        .lifetime(600)
        .sign();
    let resp = app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let body: Value = resp.json().await.unwrap();
    let impostor = body["access_token"].as_str().unwrap().to_owned();
    let resp = svc_exchange_with_actor(&app, &t1, &impostor).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_last_refused("actor_passes_for_client").await;
}

/// Security review F-4: revoking the local token that served as the *actor* token of an
/// exchange refuses what that exchange issued, and what was exchanged from that in turn,
/// at the token endpoint and at `/introspect` (`acted_from` records the actor's lineage).
#[tokio::test]
async fn revoking_an_actor_token_refuses_what_was_minted_with_it() {
    let app = app(backends()[0]).await;
    let (t1, _) = hop1(&app).await;
    let robot = app.issuer.id_token().sub("robot").lifetime(3600).sign();
    let resp = app
        .exchange(&robot, ID_TOKEN, &[("audience", "inventory")])
        .await;
    let body: Value = resp.json().await.unwrap();
    let actor = body["access_token"].as_str().unwrap().to_owned();
    let (_, actor_claims) = app.verify_issued(&actor).await;

    let body: Value = svc_exchange_with_actor(&app, &t1, &actor)
        .await
        .json()
        .await
        .unwrap();
    let t2 = body["access_token"].as_str().expect("issued").to_owned();
    let (_, c2) = app.verify_issued(&t2).await;
    assert_eq!(c2["act"]["sub"], "robot");
    assert_eq!(c2["acted_from"], json!([actor_claims["jti"]]));
    let resp = svc_exchange(&app, &t2, &[("audience", "inventory")]).await;
    let body: Value = resp.json().await.unwrap();
    let t3 = body["access_token"].as_str().expect("issued").to_owned();

    let resp = post(
        &app.address,
        "/revoke",
        ("orders-service", ORDERS_SECRET),
        &[("token", &actor)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for (name, token) in [("minted with it", &t2), ("exchanged from that", &t3)] {
        let seen: Value = post(
            &app.address,
            "/introspect",
            ("inventory-svc", SVC_SECRET),
            &[("token", token)],
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(seen, json!({"active": false}), "{name}");
        let resp = svc_exchange(&app, token, &[("audience", "warehouse")]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        app.assert_last_refused("revoked").await;
    }
}

/// A local token minted before tokens recorded `src_iss` and carrying its IdP's iss-less
/// `may_act` verbatim: whose name that is can no longer be told, so it is refused rather
/// than read in tessera's namespace (where it would admit a client of that id).
#[tokio::test]
async fn a_legacy_local_token_with_an_issless_may_act_is_refused() {
    let app = app(backends()[0]).await;
    // Signed with the broker's own current key, as a token of the previous release was.
    let keys =
        tessera::issue::KeyRing::open(&app.store, app.config.tokens.signing_alg, app.clock.clone())
            .await
            .unwrap();
    let now = app.issuer.now();
    let legacy = json!({
        "iss": ISSUER, "sub": "bob", "aud": "inventory", "exp": now + 300, "iat": now,
        "jti": "0123456789abcdef0123456789abcdef", "client_id": "orders-service",
        "scope": "inventory:read", "may_act": {"sub": "inventory-svc"},
    });
    let token = keys.sign(&legacy).unwrap().token.expose().clone();
    let resp = svc_exchange(&app, &token, &[("audience", "warehouse")]).await;
    assert_invalid_request_saying(resp, "predates src_iss").await;
    app.assert_refusal_audited("may_act_refused").await;
}
