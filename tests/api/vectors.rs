//! Real Entra ID (Azure AD v1) tokens from `tests/fixtures/oidc/` (copied from the shared
//! interoperability vectors), exchanged at their valid-at times with the issuer settings
//! SPEC §4.1 describes: no `kid` (only `x5t`), and an access token with `typ: JWT`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc");

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{path}"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_owned()
}

fn entra_registry(builder: TestAppBuilder) -> TestAppBuilder {
    let jwks = fixture("entra-id-v1-id-token-2014-cyrano/jwks.json");
    builder
        .empty_registry()
        .file("issuers/entra.jwks.json", &jwks)
        .file(
            "issuers/entra-cyrano.toml",
            r#"kind = "oidc"
issuer = "https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/"
jwks_file = "entra.jwks.json"
audiences = ["fe78e0b4-6fe7-47e6-812c-fb75cee266a4"]
algorithms = ["RS256"]
[mapping]
claims = { email = "assertion.upn" }
"#,
        )
        .file(
            "issuers/entra-microsoft.toml",
            r#"kind = "oidc"
issuer = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
jwks_file = "entra.jwks.json"
audiences = ["https://graph.windows.net"]
algorithms = ["RS256"]
# Entra ID access tokens say typ "JWT", not "at+jwt".
require_access_token_typ = false
"#,
        )
        .file(
            "clients/portal.toml",
            &format!(
                r#"client_id = "portal"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["entra-cyrano", "entra-microsoft"]
audiences = ["orders"]
scopes = ["orders:read"]
"#,
                secret_hash("portal-secret")
            ),
        )
        .file(
            "audiences/orders.toml",
            r#"audience = "https://api.orders.example"
scopes = ["orders:read"]
claims = ["email"]
"#,
        )
}

async fn exchange(app: &TestApp, token: &str, token_type: &str) -> reqwest::Response {
    app.post_token(
        Auth::Basic("portal", "portal-secret"),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", token_type),
        ],
    )
    .await
}

#[tokio::test]
async fn a_real_entra_id_v1_id_token_is_exchanged_at_its_valid_time() {
    for kind in backends() {
        let app = entra_registry(TestApp::builder(kind))
            .at(1_419_268_580)
            .spawn()
            .await;
        let token = fixture("entra-id-v1-id-token-2014-cyrano/token.jwt");
        let resp = exchange(&app, &token, ID_TOKEN).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let (_, claims) = app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(claims["sub"], "h2xzYW3mgTZfZwpwOWxA1Yp2tjoWsFq9iFkP1N2QRwk");
        assert_eq!(claims["email"], "bob@cyrano.onmicrosoft.com");
        // Bounded by the ID token's own remaining life (exp 1419272420).
        assert!(body["expires_in"].as_i64().unwrap() <= 1_419_272_420 - 1_419_268_580);
    }
}

#[tokio::test]
async fn the_same_entra_id_token_is_refused_once_expired() {
    let app = entra_registry(TestApp::builder(backends()[0]))
        .at(1_419_272_420 + 3600)
        .spawn()
        .await;
    let token = fixture("entra-id-v1-id-token-2014-cyrano/token.jwt");
    let resp = exchange(&app, &token, ID_TOKEN).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_refusal_audited("expired").await;
}

#[tokio::test]
async fn a_real_entra_access_token_with_typ_jwt_needs_the_relaxed_typ_rule() {
    let app = entra_registry(TestApp::builder(backends()[0]))
        .at(1_405_968_982)
        .spawn()
        .await;
    let token = fixture("entra-id-v1-access-token-2014-graph/token.jwt");
    // As access_token: accepted because the entry sets require_access_token_typ = false.
    let resp = exchange(&app, &token, ACCESS_TOKEN).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "5GE0VHAJPniGMIin7wL4PE0Q9203Lm4lrARpkpAAbjk");
    // As jwt: refused, since the entry keeps the default token_types (jwt is opt-in).
    let resp = exchange(&app, &token, JWT).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn the_entra_access_token_is_refused_when_the_typ_rule_is_strict() {
    let app = entra_registry(TestApp::builder(backends()[0]))
        .file(
            "issuers/entra-microsoft.toml",
            r#"kind = "oidc"
issuer = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
jwks_file = "entra.jwks.json"
audiences = ["https://graph.windows.net"]
algorithms = ["RS256"]
"#,
        )
        .at(1_405_968_982)
        .spawn()
        .await;
    let token = fixture("entra-id-v1-access-token-2014-graph/token.jwt");
    let resp = exchange(&app, &token, ACCESS_TOKEN).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_refusal_audited("wrong_typ").await;
}
