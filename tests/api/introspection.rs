//! Opaque access tokens and foreign refresh tokens from `introspection` issuers (SPEC §2,
//! §2.1, §4; RFC 7662), end to end: a real foreign authorization server (an actix server on
//! 127.0.0.1:0 with an RFC 7662 endpoint that checks tessera's credentials, counts calls,
//! records each `token_type_hint`, and can be made slow or down), the real broker, and the
//! audit trail.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const AS_CLIENT: &str = "tessera-at-partner";
const AS_SECRET: &str = "partner introspection secret/+=";
const SECRET_ENV: &str = "TESSERA_TEST_PARTNER_INTROSPECTION_SECRET";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// A foreign authorization server's RFC 7662 endpoint.
pub(crate) struct TestAs {
    pub(crate) url: String,
    state: Arc<AsState>,
}

#[derive(Default)]
struct AsState {
    /// Access tokens, looked up for `token_type_hint=access_token`.
    tokens: Mutex<HashMap<String, Value>>,
    /// Refresh tokens, looked up for `token_type_hint=refresh_token`: this server keeps
    /// the kinds apart, so an answer tells which hint it was asked with.
    refresh_tokens: Mutex<HashMap<String, Value>>,
    /// The `token_type_hint` of every call, in order.
    hints: Mutex<Vec<String>>,
    calls: AtomicUsize,
    /// 0 = answer; 1 = 500; otherwise sleep that many seconds first.
    mode: AtomicU64,
    /// Expect credentials in the form (client_secret_post) instead of Basic.
    post_auth: bool,
}

impl TestAs {
    pub(crate) async fn start(post_auth: bool) -> Self {
        let state = Arc::new(AsState {
            post_auth,
            ..AsState::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/introspect", web::post().to(introspect))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url, state }
    }

    fn add(&self, token: &str, response: Value) {
        self.state
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), response);
    }

    fn add_refresh(&self, token: &str, response: Value) {
        self.state
            .refresh_tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), response);
    }

    fn hints(&self) -> Vec<String> {
        self.state.hints.lock().unwrap().clone()
    }

    pub(crate) fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    fn set_mode(&self, mode: u64) {
        self.state.mode.store(mode, Ordering::SeqCst);
    }
}

async fn introspect(
    state: web::Data<AsState>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    state.calls.fetch_add(1, Ordering::SeqCst);
    match state.mode.load(Ordering::SeqCst) {
        0 => {}
        1 => return HttpResponse::InternalServerError().finish(),
        secs => tokio::time::sleep(Duration::from_secs(secs)).await,
    }
    let authenticated = if state.post_auth {
        form.get("client_id").map(String::as_str) == Some(AS_CLIENT)
            && form.get("client_secret").map(String::as_str) == Some(AS_SECRET)
            && req.headers().get("authorization").is_none()
    } else {
        // RFC 6749 §2.3.1: both parts form-urlencoded inside the Basic credentials.
        let expected = base64::engine::general_purpose::STANDARD.encode(format!(
            "{AS_CLIENT}:{}",
            url::form_urlencoded::byte_serialize(AS_SECRET.as_bytes()).collect::<String>()
        ));
        req.headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            == Some(format!("Basic {expected}").as_str())
            && !form.contains_key("client_secret")
    };
    if !authenticated {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let hint = form.get("token_type_hint").cloned().unwrap_or_default();
    state.hints.lock().unwrap().push(hint.clone());
    let tokens = match hint.as_str() {
        "access_token" => &state.tokens,
        "refresh_token" => &state.refresh_tokens,
        _ => return HttpResponse::BadRequest().finish(),
    };
    let answer = form
        .get("token")
        .and_then(|t| tokens.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| json!({"active": false}));
    HttpResponse::Ok().json(answer)
}

fn issuer_file(id: &str, issuer: &str, endpoint: &str, extra: &str) -> (String, String) {
    (
        format!("issuers/{id}.toml"),
        format!(
            r#"kind = "introspection"
issuer = "{issuer}"
introspection_endpoint = "{endpoint}"
client_id = "{AS_CLIENT}"
client_secret_env = "{SECRET_ENV}"
audiences = ["tessera"]
{extra}
[mapping]
claims = {{ email = "assertion.email" }}
"#
        ),
    )
}

/// `gateway` presents opaque tokens: `partner-b` is tried first, then `partner`, then the
/// JWT issuer `acme`.
fn gateway_file() -> (String, String) {
    (
        "clients/gateway.toml".to_owned(),
        format!(
            r#"client_id = "gateway"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["partner-b", "partner", "acme"]
audiences = ["inventory"]
scopes = ["inventory:read"]
"#,
            secret_hash("gateway-secret")
        ),
    )
}

struct Setup {
    app: TestApp,
    partner: TestAs,
    partner_b: TestAs,
}

async fn setup(timeout: Option<Duration>) -> Setup {
    setup_with(timeout, "").await
}

/// `partner_extra`: more settings of the `partner` entry (its `token_types`).
async fn setup_with(timeout: Option<Duration>, partner_extra: &str) -> Setup {
    std::env::set_var(SECRET_ENV, AS_SECRET);
    let partner = TestAs::start(false).await;
    let partner_b = TestAs::start(true).await;
    let kind = backends()[0];
    let mut builder = TestApp::builder(kind);
    for (path, content) in [
        issuer_file(
            "partner",
            "https://as.partner.example",
            &partner.url,
            partner_extra,
        ),
        issuer_file(
            "partner-b",
            "https://as-b.partner.example",
            &partner_b.url,
            "introspection_auth = \"client_secret_post\"\ncache_ttl = \"5m\"",
        ),
        gateway_file(),
    ] {
        builder = builder.file(&path, &content);
    }
    if let Some(t) = timeout {
        builder = builder.configure(move |c| c.outbound.timeout = t);
    }
    let app = builder.spawn().await;
    Setup {
        app,
        partner,
        partner_b,
    }
}

fn active(app: &TestApp, sub: &str, extra: Value) -> Value {
    let now = app.issuer.now();
    let mut v = json!({
        "active": true,
        "iss": "https://as.partner.example",
        "sub": sub,
        "aud": "tessera",
        "client_id": "partner-web",
        "scope": "read write",
        "exp": now + 3600,
        "iat": now - 10,
        "email": format!("{sub}@partner.example"),
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            if x.is_null() {
                v.remove(k);
            } else {
                v.insert(k.clone(), x.clone());
            }
        }
    }
    v
}

async fn gateway_exchange(app: &TestApp, token: &str) -> reqwest::Response {
    gateway_exchange_as(app, token, ACCESS_TOKEN).await
}

async fn gateway_exchange_as(app: &TestApp, token: &str, token_type: &str) -> reqwest::Response {
    app.post_token(
        Auth::Basic("gateway", "gateway-secret"),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", token_type),
        ],
    )
    .await
}

#[tokio::test]
async fn an_opaque_token_is_exchanged_and_a_steady_stream_costs_one_introspection() {
    let s = setup(None).await;
    s.partner
        .add("opaque-alice", active(&s.app, "alice", json!({})));

    for _ in 0..5 {
        let resp = gateway_exchange(&s.app, "opaque-alice").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let (_, claims) = s
            .app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], "inventory");
        assert_eq!(claims["email"], "alice@partner.example");
        assert_eq!(claims["act"], json!({"sub": "gateway"}));
    }
    assert_eq!(s.partner.calls(), 1, "cached after the first introspection");
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"tessera_introspections_total{issuer="partner",outcome="active"} 1"#)
            && metrics
                .contains(r#"tessera_introspections_total{issuer="partner",outcome="cached"} 4"#),
        "{metrics}"
    );
    // partner-b (tried first) does not know it: asked once, its "inactive" cached too.
    assert_eq!(s.partner_b.calls(), 1);
    let row = &s.app.audit_rows().await[0];
    assert_eq!(row.outcome, "issued");
    assert_eq!(row.issuer.as_deref(), Some("partner"));
    assert_eq!(row.subject.as_deref(), Some("alice"));
}

#[tokio::test]
async fn an_inactive_token_is_refused_and_not_re_asked() {
    let s = setup(None).await;
    for _ in 0..3 {
        let resp = gateway_exchange(&s.app, "opaque-unknown").await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("not active"),
            "{body}"
        );
        s.app.assert_refusal_audited("inactive").await;
    }
    assert_eq!(s.partner.calls(), 1);
    assert_eq!(s.partner_b.calls(), 1);
}

#[tokio::test]
async fn the_response_is_checked_like_a_jwt_and_every_refusal_is_audited() {
    let s = setup(None).await;
    let now = s.app.issuer.now();
    let cases = [
        ("t-aud", json!({"aud": "someone-else"}), "wrong_audience"),
        ("t-exp", json!({"exp": now - 3600}), "expired"),
        ("t-noexp", json!({"exp": null}), "missing_claim"),
        (
            "t-iss",
            json!({"iss": "https://evil.example"}),
            "wrong_issuer",
        ),
        ("t-nbf", json!({"nbf": now + 3600}), "not_yet_valid"),
        ("t-sub", json!({"sub": 7}), "malformed_claim"),
        ("t-nosub", json!({"sub": null}), "mapping_refused"),
    ];
    for (token, extra, reason) in &cases {
        s.partner
            .add(token, active(&s.app, "mallory", extra.clone()));
        let resp = gateway_exchange(&s.app, token).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        s.app.assert_refusal_audited(reason).await;
        assert_eq!(
            s.app.audit_rows().await[0].issuer.as_deref(),
            Some("partner")
        );
    }
    // An introspection response without iss is the endpoint's issuer's.
    s.partner
        .add("t-noiss", active(&s.app, "bob", json!({"iss": null})));
    let resp = gateway_exchange(&s.app, "t-noiss").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn issuers_are_tried_in_the_clients_order_with_each_entrys_authentication() {
    let s = setup(None).await;
    // Both know the token: partner-b (client_secret_post, listed first) decides.
    let mut b = active(&s.app, "carol-at-b", json!({}));
    b["iss"] = json!("https://as-b.partner.example");
    s.partner_b.add("shared", b);
    s.partner.add("shared", active(&s.app, "carol", json!({})));
    let resp = gateway_exchange(&s.app, "shared").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let row = &s.app.audit_rows().await[0];
    assert_eq!(row.issuer.as_deref(), Some("partner-b"));
    assert_eq!(row.subject.as_deref(), Some("carol-at-b"));
    assert_eq!(s.partner.calls(), 0, "the first active answer decides");
}

#[tokio::test]
async fn a_down_or_slow_endpoint_is_refused_within_the_timeout_and_other_issuers_are_unaffected() {
    let s = setup(Some(Duration::from_secs(2))).await;
    s.partner
        .add("opaque-dave", active(&s.app, "dave", json!({})));

    // Down: one introspection issuer answering 500 while the other says inactive. Not the
    // caller's fault: 503 with a retry hint, as for a JWKS that cannot be fetched.
    s.partner.set_mode(1);
    let resp = gateway_exchange(&s.app, "opaque-dave").await;
    assert_eq!(resp.headers()["retry-after"], "5");
    let body = assert_oauth_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );
    let row = &s.app.audit_rows().await[0];
    assert_eq!(
        row.outcome, "error",
        "the foreign issuer's fault, not the caller's"
    );
    assert!(audit_says(row, "issuer_unreachable"), "{row:?}");
    assert!(row.jti.is_none());

    // Slow: the endpoint would answer after 60 s; the caller has its answer after 1 s
    // (the call goes on until the outbound timeout, 2 s).
    s.partner.set_mode(60);
    let slow = {
        let app_url = s.app.url("/token");
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(app_url)
                .basic_auth("gateway", Some("gateway-secret"))
                .form(&[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", "opaque-dave"),
                    ("subject_token_type", ACCESS_TOKEN),
                ])
                .send()
                .await
                .unwrap()
        })
    };
    // Meanwhile an ID token of another issuer is exchanged at once.
    let id_token = s.app.issuer.id_token().sub("erin").lifetime(600).sign();
    let resp = s
        .app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !slow.is_finished(),
        "the ID token did not wait for the slow endpoint"
    );
    let resp = slow.await.unwrap();
    let body = assert_oauth_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("unreachable"));

    // Back up: nothing was cached from the failures (once the call in flight has ended).
    s.partner.set_mode(0);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..60 {
        status = gateway_exchange(&s.app, "opaque-dave").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

/// Concurrent first presentations of one opaque token cost one introspection call; an
/// endpoint slower than a second answers those callers 503 at one second, and its answer,
/// when it comes, serves the retries without another call.
#[tokio::test]
async fn concurrent_presentations_share_one_call_that_goes_on_after_the_callers_wait() {
    let s = setup(None).await;
    s.partner
        .add("opaque-dave", active(&s.app, "dave", json!({})));
    s.partner.set_mode(2);
    let firsts =
        futures_util::future::join_all((0..10).map(|_| gateway_exchange(&s.app, "opaque-dave")))
            .await;
    for resp in firsts {
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key("retry-after"));
    }
    assert_eq!(s.partner.calls(), 1, "one call for ten presentations");
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = gateway_exchange(&s.app, "opaque-dave").await.status();
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK, "the call's answer serves the retry");
    assert_eq!(s.partner.calls(), 1, "and no other call was made");
}

#[tokio::test]
async fn a_jwt_never_goes_to_introspection() {
    let s = setup(None).await;
    let at = s
        .app
        .issuer
        .access_token()
        .sub("frank")
        .aud("tessera")
        .sign();
    let resp = gateway_exchange(&s.app, &at).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.partner.calls() + s.partner_b.calls(), 0);
    assert_eq!(s.app.audit_rows().await[0].issuer.as_deref(), Some("acme"));
}

/// `partner` accepts refresh tokens (SPEC §2); `partner-b` keeps the default, access
/// tokens only.
async fn refresh_setup() -> Setup {
    setup_with(None, "token_types = [\"access_token\", \"refresh_token\"]").await
}

#[tokio::test]
async fn a_foreign_refresh_token_is_exchanged_by_introspection_with_the_refresh_token_hint() {
    let s = refresh_setup().await;
    s.partner
        .add_refresh("rt-alice", active(&s.app, "alice", json!({})));
    let resp = gateway_exchange_as(&s.app, "rt-alice", REFRESH_TOKEN).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = s
        .app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "inventory");
    assert_eq!(claims["email"], "alice@partner.example");
    // RFC 7662 §2.1: asked as what it was declared; partner-b, which does not list
    // refresh_token, is never asked.
    assert_eq!(s.partner.hints(), ["refresh_token"]);
    assert_eq!(s.partner_b.calls(), 0);
    let row = &s.app.audit_rows().await[0];
    assert_eq!(row.outcome, "issued");
    assert_eq!(row.issuer.as_deref(), Some("partner"));
    assert_eq!(row.subject.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_refresh_token_that_looks_like_a_jwt_is_introspected_not_verified_as_one() {
    let s = refresh_setup().await;
    // A valid acme JWT (it would pass as an access token): as a refresh token only its
    // issuer's endpoint could vouch for it, and it does not know it.
    let at = s
        .app
        .issuer
        .access_token()
        .sub("frank")
        .aud("tessera")
        .sign();
    let resp = gateway_exchange_as(&s.app, &at, REFRESH_TOKEN).await;
    assert_invalid_request_saying(resp, "not active").await;
    assert_eq!(s.partner.hints(), ["refresh_token"]);
    s.app.assert_refusal_audited("inactive").await;
}

/// One opaque string presented as both types: each type is its own question to the
/// endpoint and its own cache entry, so an answer about the string as one type never
/// decides it as the other.
#[tokio::test]
async fn an_answer_for_one_token_type_never_serves_the_other() {
    let s = refresh_setup().await;
    s.partner
        .add_refresh("rt-only", active(&s.app, "alice", json!({})));
    s.partner.add("at-only", active(&s.app, "bob", json!({})));
    let ok = |t: &'static str, tt: &'static str| {
        let app = &s.app;
        async move { gateway_exchange_as(app, t, tt).await.status() }
    };
    // A refresh token: active as one, then asked again as an access token (inactive).
    assert_eq!(ok("rt-only", REFRESH_TOKEN).await, StatusCode::OK);
    assert_eq!(ok("rt-only", ACCESS_TOKEN).await, StatusCode::BAD_REQUEST);
    assert_eq!(s.partner.hints(), ["refresh_token", "access_token"]);
    // Vice versa: an access token is asked again as a refresh token (inactive).
    assert_eq!(ok("at-only", ACCESS_TOKEN).await, StatusCode::OK);
    assert_eq!(ok("at-only", REFRESH_TOKEN).await, StatusCode::BAD_REQUEST);
    let asked = [
        "refresh_token",
        "access_token",
        "access_token",
        "refresh_token",
    ];
    assert_eq!(s.partner.hints(), asked);
    // Every answer is now cached under its own type, and each still decides only it.
    for (token, tt, status) in [
        ("rt-only", REFRESH_TOKEN, StatusCode::OK),
        ("rt-only", ACCESS_TOKEN, StatusCode::BAD_REQUEST),
        ("at-only", ACCESS_TOKEN, StatusCode::OK),
        ("at-only", REFRESH_TOKEN, StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(ok(token, tt).await, status, "{token} as {tt}");
    }
    assert_eq!(s.partner.hints(), asked, "answered from the cache");
    s.app.assert_last_refused("inactive").await;
}

#[tokio::test]
async fn an_introspection_issuer_without_refresh_token_in_token_types_refuses_refresh_tokens() {
    // Neither partner nor partner-b lists refresh_token, though partner would say active.
    let s = setup(None).await;
    s.partner
        .add_refresh("rt-alice", active(&s.app, "alice", json!({})));
    let resp = gateway_exchange_as(&s.app, "rt-alice", REFRESH_TOKEN).await;
    assert_invalid_request_saying(
        resp,
        "no introspection issuer of this client accepts refresh_token tokens",
    )
    .await;
    s.app
        .assert_refusal_audited("token_type_not_accepted")
        .await;
    let row = &s.app.audit_rows().await[0];
    assert!(
        row.detail
            .as_deref()
            .is_some_and(|d| d.contains("token_types include refresh_token")),
        "the operator is told which setting: {row:?}"
    );
    assert_eq!(s.partner.calls() + s.partner_b.calls(), 0, "nobody asked");
}
