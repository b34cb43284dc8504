//! `private_key_jwt` client authentication (RFC 7523 §2.2 client assertions) end to end:
//! keys from the client's `jwks_file` or `jwks_uri` (a real HTTP server), `jti` single-use
//! in the database, and every refusal audited with no token issued.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::issuer::{TestIssuer, TestKey};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn client_file(id: &str, keys: &str) -> (String, String) {
    (
        format!("clients/{id}.toml"),
        format!(
            r#"client_id = "{id}"
auth = "private_key_jwt"
{keys}
subject_issuers = ["acme"]
audiences = ["inventory"]
scopes = ["inventory:read"]
"#
        ),
    )
}

struct Setup {
    app: TestApp,
    key: Arc<TestKey>,
    /// Serves the `uri-client`'s keys: its own JWKS endpoint.
    keyserver: TestIssuer,
}

async fn setup() -> Setup {
    let key = Arc::new(TestKey::rsa("file-client-key"));
    let keyserver = TestIssuer::start().await;
    let jwks = json!({"keys": [key.jwk.clone()]}).to_string();
    let mut b = TestApp::builder(backends()[0]).file("clients/file-client.jwks.json", &jwks);
    for (p, c) in [
        client_file("file-client", r#"jwks_file = "file-client.jwks.json""#),
        client_file(
            "uri-client",
            &format!(r#"jwks_uri = "{}""#, keyserver.jwks_uri()),
        ),
    ] {
        b = b.file(&p, &c);
    }
    Setup {
        app: b.spawn().await,
        key,
        keyserver,
    }
}

/// A client assertion for `id` signed by `signer`'s key, with `edit` applied.
fn assertion(
    s: &Setup,
    signer: &TestIssuer,
    key: Option<&Arc<TestKey>>,
    id: &str,
    edit: impl FnOnce(crate::issuer::TokenBuilder) -> crate::issuer::TokenBuilder,
) -> String {
    let mut b = signer
        .id_token()
        .iss(id)
        .sub(id)
        .aud(json!(ISSUER))
        .lifetime(60)
        .claim("jti", json!(uuid::Uuid::new_v4().to_string()));
    if let Some(k) = key {
        b = b.with_key(k.clone());
    }
    let _ = s;
    edit(b).sign()
}

async fn exchange_as(app: &TestApp, client_id: Option<&str>, assertion: &str) -> reqwest::Response {
    let id_token = app.issuer.id_token().sub("alice").sign();
    let mut params = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", id_token.as_str()),
        ("subject_token_type", ID_TOKEN),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        params.push(("client_id", id));
    }
    app.post_token(Auth::None, &params).await
}

#[tokio::test]
async fn a_client_assertion_authenticates_once() {
    let s = setup().await;
    let a = assertion(&s, &s.keyserver, Some(&s.key), "file-client", |b| b);
    let resp = exchange_as(&s.app, Some("file-client"), &a).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = s
        .app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["client_id"], "file-client");

    // The same jti again: refused, on every replica (it is in the database).
    let resp = exchange_as(&s.app, Some("file-client"), &a).await;
    assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    s.app.assert_last_refused("client_assertion_replayed").await;

    // jwks_uri, and client_id taken from the assertion's sub when the form has none.
    let a = assertion(&s, &s.keyserver, None, "uri-client", |b| b);
    let resp = exchange_as(&s.app, None, &a).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.keyserver.fetch_count(), 1);
}

#[tokio::test]
async fn every_failed_check_of_a_client_assertion_is_invalid_client_and_audited() {
    let s = setup().await;
    let now = s.app.issuer.now();
    let other_key = Arc::new(TestKey::rsa("file-client-key"));
    type Edit = Box<dyn FnOnce(crate::issuer::TokenBuilder) -> crate::issuer::TokenBuilder>;
    let cases: Vec<(&str, Option<&Arc<TestKey>>, Edit, &str)> = vec![
        (
            "wrong aud",
            Some(&s.key),
            Box::new(|b| b.aud(json!("https://elsewhere.example/token"))),
            "server.issuer as a single string",
        ),
        // Security review F-5, the 2025 audience-injection class (CVE-2025-27370/27371):
        // another AS may have asked the client to sign for tessera's token endpoint, or
        // for an array naming both.
        (
            "aud is the token endpoint URL",
            Some(&s.key),
            Box::new(|b| b.aud(json!(format!("{ISSUER}/token")))),
            "server.issuer as a single string",
        ),
        (
            "aud is an array holding the issuer",
            Some(&s.key),
            Box::new(|b| b.aud(json!([ISSUER, "https://other-as.example/token"]))),
            "server.issuer as a single string",
        ),
        (
            "aud is an array of the issuer alone",
            Some(&s.key),
            Box::new(|b| b.aud(json!([ISSUER]))),
            "server.issuer as a single string",
        ),
        (
            "expired",
            Some(&s.key),
            Box::new(move |b| b.iat(now - 600).exp(now - 300)),
            "expired",
        ),
        (
            "lives an hour",
            Some(&s.key),
            Box::new(|b| b.lifetime(3600)),
            "at most 5 minutes",
        ),
        (
            "no jti",
            Some(&s.key),
            Box::new(|b| b.without_claim("jti")),
            "no jti",
        ),
        (
            "sub is not the client",
            Some(&s.key),
            Box::new(|b| b.sub("someone-else")),
            "sub",
        ),
        (
            "iss is not the client",
            Some(&s.key),
            Box::new(|b| b.iss("someone-else")),
            "iss",
        ),
        (
            "signed by another key",
            Some(&other_key),
            Box::new(|b| b),
            "signature",
        ),
        (
            "HS256 with the public key",
            Some(&s.key),
            Box::new(|b| b.alg("HS256")),
            "not allowed",
        ),
    ];
    for (what, key, edit, words) in cases {
        let a = assertion(&s, &s.keyserver, key, "file-client", edit);
        let resp = exchange_as(&s.app, Some("file-client"), &a).await;
        let body = assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let text = body["error_description"].as_str().unwrap();
        assert!(text.contains(words), "{what}: {text}");
        s.app
            .assert_refusal_audited("client_assertion_invalid")
            .await;
    }
}

#[tokio::test]
async fn the_registered_method_is_the_only_one_and_metadata_lists_it() {
    let s = setup().await;
    // A secret client presenting an assertion, and an assertion client sending a secret.
    let a = assertion(&s, &s.keyserver, Some(&s.key), "orders-service", |b| b);
    let resp = exchange_as(&s.app, Some("orders-service"), &a).await;
    assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    s.app
        .assert_refusal_audited("client_auth_method_mismatch")
        .await;
    let id_token = s.app.issuer.id_token().sign();
    let resp = s
        .app
        .post_token(
            Auth::Basic("file-client", "anything"),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Both at once.
    let a = assertion(&s, &s.keyserver, Some(&s.key), "file-client", |b| b);
    let resp = s
        .app
        .post_token(
            Auth::Basic("file-client", "x"),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &id_token),
                ("subject_token_type", ID_TOKEN),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &a),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;

    let md = s
        .app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(md["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert!(md["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
}
