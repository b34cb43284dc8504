//! tessera's refresh tokens (issue 15 part 1, SPEC §3): a family started by an exchange,
//! redeemed with the RFC 6749 §6 grant on two replicas of one database, rotated on every
//! use; reuse revokes the family (RFC 9700 §4.14.2); narrowing, widening, another client,
//! idle and absolute limits, introspection, revocation and lineage revocation.

use reqwest::StatusCode;
use serde_json::Value;
use tessera::clock::Clock;
use tessera::store::testing::TestDbKind;

use crate::helpers::*;

const REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";

fn orders_client() -> String {
    format!(
        r#"client_id = "orders-service"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme", "local"]
actor_issuers = ["acme"]
audiences = ["orders", "inventory"]
scopes = ["orders:read", "orders:write", "inventory:read"]
refresh_tokens = true
max_lifetime = "15m"
"#,
        secret_hash(ORDERS_SECRET)
    )
}

/// A second client that may also refresh for `orders` (to show it cannot use the first
/// client's family).
fn other_client() -> String {
    format!(
        r#"client_id = "reports"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
audiences = ["orders"]
scopes = ["orders:read"]
refresh_tokens = true
"#,
        secret_hash("reports-secret")
    )
}

pub(crate) async fn app(kind: TestDbKind) -> TestApp {
    TestApp::builder(kind)
        .file("clients/orders-service.toml", &orders_client())
        .file("clients/reports.toml", &other_client())
        .file(
            "audiences/orders.toml",
            r#"audience = "https://api.orders.example"
resources = ["https://api.orders.example/"]
scopes = ["orders:read", "orders:write"]
lifetime = "10m"
claims = ["email", "groups"]
refresh_lifetime = "3h"
refresh_idle = "1h"
"#,
        )
        .spawn()
        .await
}

/// Starts a family: the exchange's JSON answer.
async fn start_family(app: &TestApp) -> Value {
    let id_token = app
        .issuer
        .id_token()
        .sub("alice")
        .claim("email", "alice@acme.example".into())
        .sign();
    let resp = app
        .exchange(
            &id_token,
            ID_TOKEN,
            &[
                ("audience", "https://api.orders.example"),
                ("requested_token_type", REFRESH),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["refresh_token"].as_str().unwrap().starts_with("trt_"));
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body
}

/// The refresh grant at `base` (a replica's address) by `client`.
pub(crate) async fn refresh_at(
    base: &str,
    client: (&str, &str),
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    params.extend_from_slice(extra);
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&params)
        .send()
        .await
        .unwrap()
}

const ORDERS: (&str, &str) = ("orders-service", ORDERS_SECRET);
const REPORTS: (&str, &str) = ("reports", "reports-secret");

async fn post(base: &str, path: &str, client: (&str, &str), params: &[(&str, &str)]) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .basic_auth(client.0, Some(client.1))
        .form(params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    if path == "/revoke" {
        return Value::Null;
    }
    resp.json().await.unwrap()
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[tokio::test]
async fn a_family_rotates_across_replicas_and_a_reuse_revokes_it() {
    for kind in backends() {
        let app = app(kind).await;
        let b = app.spawn_replica().await;
        let first = start_family(&app).await;
        let (_, hop1) = app.verify_issued(str_of(&first, "access_token")).await;
        let family = hop1["exchanged_from"][0].as_str().unwrap().to_owned();
        assert!(family.starts_with("rf"), "{hop1}");

        // Redeemed on the other replica: the same subject, act and mapped claims.
        let rt1 = str_of(&first, "refresh_token");
        let resp = refresh_at(&b.address, ORDERS, rt1, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let second: Value = resp.json().await.unwrap();
        assert!(second.get("issued_token_type").is_none(), "RFC 6749 §5.1");
        let rt2 = str_of(&second, "refresh_token");
        assert_ne!(rt1, rt2, "every use rotates");
        let (_, hop2) = app.verify_issued(str_of(&second, "access_token")).await;
        for claim in ["sub", "act", "email", "src_iss", "aud", "client_id"] {
            assert_eq!(hop2[claim], hop1[claim], "{claim}");
        }
        assert_eq!(hop2["exchanged_from"][0], family.as_str());
        assert_eq!(str_of(&second, "scope"), "orders:read orders:write");

        // Narrowing is allowed; widening (or another audience's scope) is not, and
        // spends nothing.
        let resp = refresh_at(&app.address, ORDERS, rt2, &[("scope", "orders:read")]).await;
        let third: Value = resp.json().await.unwrap();
        assert_eq!(str_of(&third, "scope"), "orders:read");
        let rt3 = str_of(&third, "refresh_token");
        let resp = refresh_at(
            &b.address,
            ORDERS,
            rt3,
            &[("scope", "orders:read inventory:read")],
        )
        .await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_scope").await;
        app.assert_last_refused("scope").await;
        // Another client may not redeem it, and that too spends nothing.
        let resp = refresh_at(&app.address, REPORTS, rt3, &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(str_of(&body, "error_description").contains("another client"));
        app.assert_last_refused("refresh_token_other_client").await;
        // So rt3 still works, once.
        let resp = refresh_at(&b.address, ORDERS, rt3, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let fourth: Value = resp.json().await.unwrap();
        let rt4 = str_of(&fourth, "refresh_token");
        let at4 = str_of(&fourth, "access_token");
        assert_eq!(str_of(&fourth, "scope"), "orders:read orders:write");

        // rt3 again, on the other replica: a reuse. The family is revoked, so rt4 and
        // the access tokens it issued are refused too, on every replica.
        let resp = refresh_at(&app.address, ORDERS, rt3, &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(str_of(&body, "error_description").contains("already used"));
        app.assert_last_refused("refresh_token_reused").await;
        let resp = refresh_at(&b.address, ORDERS, rt4, &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(str_of(&body, "error_description").contains("revoked"));
        let seen = post(&b.address, "/introspect", ORDERS, &[("token", at4)]).await;
        assert_eq!(seen["active"], false, "{seen}");
        let resp = app
            .exchange(at4, ACCESS_TOKEN, &[("audience", "inventory")])
            .await;
        assert_invalid_request_saying(resp, "revoked").await;

        let metrics = app.get("/metrics").await.text().await.unwrap();
        for line in [
            r#"tessera_refresh_tokens_total{outcome="issued"} 1"#,
            r#"tessera_refresh_tokens_total{outcome="reused"} 1"#,
        ] {
            assert!(metrics.contains(line), "{line}");
        }
        assert!(metrics.contains(
            r#"tessera_exchanges_total{grant="refresh_token",subject_token_type="refresh_token",issuer="local",outcome="issued"} 1"#
        ), "replica A redeemed one refresh token");
        // The database holds digests and places only, never a token's secret.
        let stored = app
            .store
            .run(|conn| {
                use diesel::prelude::*;
                use tessera::store::schema::refresh_tokens::dsl::*;
                refresh_tokens
                    .select((token_key, digest))
                    .load::<(String, String)>(conn)
                    .map_err(tessera::store::StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 4, "{}", kind_name(kind));
        for t in [rt1, rt2, rt3, rt4] {
            let secret = t.rsplit('.').next().unwrap();
            assert_eq!(secret.len(), 43, "{t}");
            assert!(!stored
                .iter()
                .any(|(k, d)| k.contains(secret) || d.contains(secret)));
        }
    }
}

#[tokio::test]
async fn idle_and_absolute_limits_end_a_family() {
    for kind in backends() {
        let app = app(kind).await;
        // Idle: unused for more than refresh_idle (1h).
        let first = start_family(&app).await;
        app.clock.advance(3601);
        let resp = refresh_at(&app.address, ORDERS, str_of(&first, "refresh_token"), &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(
            str_of(&body, "error_description").contains("idle"),
            "{body}"
        );
        app.assert_last_refused("refresh_family_idle").await;

        // Absolute: used every 50 minutes, it still ends at refresh_lifetime (3h), and
        // its last access token does not outlive it.
        let mut body = start_family(&app).await;
        for _ in 0..3 {
            app.clock.advance(50 * 60);
            let rt = str_of(&body, "refresh_token").to_owned();
            let resp = refresh_at(&app.address, ORDERS, &rt, &[]).await;
            assert_eq!(resp.status(), StatusCode::OK);
            body = resp.json().await.unwrap();
        }
        app.clock.advance(25 * 60);
        let rt = str_of(&body, "refresh_token").to_owned();
        let resp = refresh_at(&app.address, ORDERS, &rt, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        body = resp.json().await.unwrap();
        assert_eq!(body["expires_in"], 300, "5 minutes of the family were left");
        app.clock.advance(301);
        let rt = str_of(&body, "refresh_token").to_owned();
        let resp = refresh_at(&app.address, ORDERS, &rt, &[]).await;
        let err = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(
            str_of(&err, "error_description").contains("absolute"),
            "{err}"
        );
        app.assert_last_refused("refresh_family_expired").await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains(r#"tessera_refresh_tokens_total{outcome="expired"} 2"#));
    }
}

#[tokio::test]
async fn introspection_and_revocation_accept_refresh_tokens() {
    for kind in backends() {
        let app = app(kind).await;
        let first = start_family(&app).await;
        let rt = str_of(&first, "refresh_token");
        let at = str_of(&first, "access_token");
        let seen = post(
            &app.address,
            "/introspect",
            ORDERS,
            &[("token", rt), ("token_type_hint", "refresh_token")],
        )
        .await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["token_type"], "refresh_token");
        assert_eq!(seen["sub"], "alice");
        assert_eq!(seen["client_id"], "orders-service");
        assert_eq!(
            seen["exp"],
            app.clock.now() + 3600,
            "the idle deadline comes first"
        );
        // To its own client only.
        let hidden = post(&app.address, "/introspect", REPORTS, &[("token", rt)]).await;
        assert_eq!(hidden, serde_json::json!({"active": false}));
        // Another client may not revoke it.
        let resp = reqwest::Client::new()
            .post(app.url("/revoke"))
            .basic_auth(REPORTS.0, Some(REPORTS.1))
            .form(&[("token", rt)])
            .send()
            .await
            .unwrap();
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client").await;
        // Its client revokes the family, and the access tokens it issued with it.
        post(
            &app.address,
            "/revoke",
            ORDERS,
            &[("token", rt), ("token_type_hint", "refresh_token")],
        )
        .await;
        let seen = post(&app.address, "/introspect", ORDERS, &[("token", rt)]).await;
        assert_eq!(seen["active"], false);
        let seen = post(&app.address, "/introspect", ORDERS, &[("token", at)]).await;
        assert_eq!(seen["active"], false);
        let resp = refresh_at(&app.address, ORDERS, rt, &[]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        app.assert_last_refused("refresh_family_revoked").await;
    }
}

#[tokio::test]
async fn revoking_the_token_a_family_was_exchanged_from_ends_the_family() {
    for kind in backends() {
        let app = app(kind).await;
        let b = app.spawn_replica().await;
        // A local token, then a family exchanged from it.
        let id_token = app.issuer.id_token().sub("alice").sign();
        let resp = app
            .exchange(
                &id_token,
                ID_TOKEN,
                &[("audience", "https://api.orders.example")],
            )
            .await;
        let parent: Value = resp.json().await.unwrap();
        let parent = str_of(&parent, "access_token");
        let resp = app
            .exchange(
                parent,
                ACCESS_TOKEN,
                &[
                    ("audience", "https://api.orders.example"),
                    ("scope", "orders:read"),
                    ("requested_token_type", REFRESH),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let family: Value = resp.json().await.unwrap();
        let rt = str_of(&family, "refresh_token");
        post(&app.address, "/revoke", ORDERS, &[("token", parent)]).await;
        // Refused on the other replica, long after the parent itself expired.
        app.clock.advance(30 * 60);
        let resp = refresh_at(&b.address, ORDERS, rt, &[]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        app.assert_last_refused("refresh_family_revoked").await;
    }
}

#[tokio::test]
async fn refresh_tokens_only_where_client_and_audience_allow_them() {
    let app = app(TestDbKind::Sqlite).await;
    let id_token = app.issuer.id_token().sub("alice").sign();
    // The audience has no refresh_lifetime.
    let resp = app
        .exchange(
            &id_token,
            ID_TOKEN,
            &[("audience", "inventory"), ("requested_token_type", REFRESH)],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
    app.assert_refusal_audited("refresh_not_allowed_for_audience")
        .await;
    // The client may not ask for refresh tokens.
    let resp = app
        .post_token(
            Auth::None,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", "batch-job"),
                ("client_secret", BATCH_SECRET),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
                ("requested_token_type", REFRESH),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    app.assert_refusal_audited("refresh_not_allowed_for_client")
        .await;
    // An unknown refresh token.
    let resp = refresh_at(&app.address, ORDERS, "trt_not-one-of-ours", &[]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    app.assert_refusal_audited("refresh_token_unknown").await;
}

#[tokio::test]
async fn explain_shows_a_refresh_family_without_spending_it() {
    let app = app(TestDbKind::Sqlite).await;
    let first = start_family(&app).await;
    let rt = str_of(&first, "refresh_token");
    let params = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let explained = app.explain("orders-service", &params).await;
    assert!(explained.issued(), "{explained:?}");
    let json = serde_json::to_value(&explained).unwrap();
    let steps: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in ["refresh", "scope", "dpop", "lifetime"] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    // Explaining it twice spends nothing: it still redeems.
    app.explain("orders-service", &params).await;
    let resp = refresh_at(&app.address, ORDERS, rt, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // And a spent one is explained as a reuse, without revoking the family.
    let explained = app.explain("orders-service", &params).await;
    assert!(!explained.issued());
    let json = serde_json::to_value(&explained).unwrap();
    assert_eq!(json["failing_step"], "refresh", "{json}");
}

#[tokio::test]
async fn a_revoked_family_ends_the_families_exchanged_from_its_tokens() {
    for kind in backends() {
        let app = app(kind).await;
        let b = app.spawn_replica().await;
        let first = start_family(&app).await;
        let rt1 = str_of(&first, "refresh_token").to_owned();
        // A second family, exchanged from the first family's access token.
        let resp = app
            .exchange(
                str_of(&first, "access_token"),
                ACCESS_TOKEN,
                &[
                    ("audience", "https://api.orders.example"),
                    ("requested_token_type", REFRESH),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let derived: Value = resp.json().await.unwrap();
        let rt2 = str_of(&derived, "refresh_token").to_owned();
        // The first family is revoked (twice: RFC 7009 makes that a 200 too).
        post(&app.address, "/revoke", ORDERS, &[("token", &rt1)]).await;
        post(&b.address, "/revoke", ORDERS, &[("token", &rt1)]).await;
        // The derived family ended with it, and its access token is inactive.
        let resp = refresh_at(&b.address, ORDERS, &rt2, &[]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        app.assert_last_refused("refresh_family_revoked").await;
        let seen = post(
            &app.address,
            "/introspect",
            ORDERS,
            &[("token", str_of(&derived, "access_token"))],
        )
        .await;
        assert_eq!(seen["active"], false, "{}", kind_name(kind));
    }
}

#[tokio::test]
async fn a_family_ends_when_its_issuer_is_no_longer_trusted_or_its_policy_shrinks() {
    let app = app(TestDbKind::Sqlite).await;
    let first = start_family(&app).await;
    let second = start_family(&app).await;
    // The audience's refresh_lifetime shrinks to 30 minutes: both families end then.
    std::fs::write(
        app.trust_dir.join("audiences/orders.toml"),
        "audience = \"https://api.orders.example\"\nscopes = [\"orders:read\", \"orders:write\"]\nrefresh_lifetime = \"30m\"\n",
    )
    .unwrap();
    app.exchanger.reload_trust().unwrap();
    app.clock.advance(29 * 60);
    let resp = refresh_at(&app.address, ORDERS, str_of(&second, "refresh_token"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["expires_in"], 60,
        "bounded by the shortened family life"
    );
    app.clock.advance(61);
    let resp = refresh_at(&app.address, ORDERS, str_of(&body, "refresh_token"), &[]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    app.assert_last_refused("refresh_family_expired").await;
    // The client no longer trusts the IdP that authenticated the subject.
    std::fs::write(
        app.trust_dir.join("audiences/orders.toml"),
        "audience = \"https://api.orders.example\"\nscopes = [\"orders:read\", \"orders:write\"]\nrefresh_lifetime = \"3h\"\n",
    )
    .unwrap();
    std::fs::write(
        app.trust_dir.join("clients/orders-service.toml"),
        orders_client().replace(
            r#"subject_issuers = ["acme", "local"]"#,
            r#"subject_issuers = ["local"]"#,
        ),
    )
    .unwrap();
    app.exchanger.reload_trust().unwrap();
    let resp = refresh_at(&app.address, ORDERS, str_of(&first, "refresh_token"), &[]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    app.assert_last_refused("refresh_issuer_no_longer_trusted")
        .await;
}

#[tokio::test]
async fn concurrent_redemptions_of_one_token_issue_once() {
    for kind in backends() {
        let app = app(kind).await;
        let b = app.spawn_replica().await;
        let first = start_family(&app).await;
        let rt = str_of(&first, "refresh_token").to_owned();
        // Eight at once, on two replicas: they share group commits and race in the
        // database; exactly one wins, and the others read as the reuse they are.
        let sends = (0..8).map(|i| {
            let base = if i % 2 == 0 {
                app.address.clone()
            } else {
                b.address.clone()
            };
            let rt = rt.clone();
            async move { refresh_at(&base, ORDERS, &rt, &[]).await.status() }
        });
        let statuses = futures_util::future::join_all(sends).await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "{statuses:?} on {}", kind_name(kind));
        assert!(statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST));
    }
}

/// A token's place (family and generation) is not secret: it is in the token and the
/// family id in every access token. A forged token at a real place, with a wrong secret,
/// was never issued: refused as unknown, and it neither spends nor revokes anything (else
/// anyone who saw an access token could end its family by presenting a fake "reuse").
#[tokio::test]
async fn a_forged_secret_at_a_real_place_is_unknown_and_ends_nothing() {
    let app = app(TestDbKind::Sqlite).await;
    let first = start_family(&app).await;
    let rt1 = str_of(&first, "refresh_token");
    let resp = refresh_at(&app.address, ORDERS, rt1, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let second: Value = resp.json().await.unwrap();
    let rt2 = str_of(&second, "refresh_token");
    let forge = |t: &str| {
        let (place, secret) = t.rsplit_once('.').unwrap();
        let other = if secret.starts_with('A') { "B" } else { "A" };
        format!("{place}.{other}{}", &secret[1..])
    };
    // At the spent place (a real reuse would revoke the family) and at the live one.
    for forged in [forge(rt1), forge(rt2)] {
        let resp = refresh_at(&app.address, ORDERS, &forged, &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(
            !str_of(&body, "error_description").contains("already used"),
            "{body}"
        );
        app.assert_last_refused("refresh_token_unknown").await;
    }
    // The family is untouched: rt2 still redeems, once.
    let resp = refresh_at(&app.address, ORDERS, rt2, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A replica remembers the newest token it issued of a family, to skip reading it back.
/// That memory must never outvote the database: here the token this replica issued last
/// is spent on the other replica, and presented here again it is the reuse it is.
#[tokio::test]
async fn a_token_spent_on_another_replica_is_a_reuse_where_it_was_issued() {
    for kind in backends() {
        let app = app(kind).await;
        let b = app.spawn_replica().await;
        let first = start_family(&app).await;
        let rt1 = str_of(&first, "refresh_token");
        let resp = refresh_at(&b.address, ORDERS, rt1, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let second: Value = resp.json().await.unwrap();
        let rt2 = str_of(&second, "refresh_token");

        // Explain, on the replica that still remembers rt1 as the newest, gives the
        // database's account: a reuse (and revokes nothing).
        let params = [("grant_type", "refresh_token"), ("refresh_token", rt1)];
        let explained = app.explain("orders-service", &params).await;
        let json = serde_json::to_value(&explained).unwrap();
        assert!(!explained.issued(), "{json}");
        assert_eq!(json["failing_step"], "refresh", "{json}");
        // So does introspection there: not active, where the memory would say it is.
        let seen = post(
            &app.address,
            "/introspect",
            ORDERS,
            &[("token", rt1), ("token_type_hint", "refresh_token")],
        )
        .await;
        assert_eq!(seen["active"], false, "{kind:?}: {seen}");

        let resp = refresh_at(&app.address, ORDERS, rt1, &[]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        assert!(body.get("access_token").is_none(), "{body}");
        assert!(
            str_of(&body, "error_description").contains("already used"),
            "{body}"
        );
        app.assert_last_refused("refresh_token_reused").await;
        // The family is revoked on both replicas.
        for base in [&app.address, &b.address] {
            let resp = refresh_at(base, ORDERS, rt2, &[]).await;
            let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
            assert!(
                str_of(&body, "error_description").contains("revoked"),
                "{body}"
            );
        }
    }
}
