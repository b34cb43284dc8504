//! Every refusal: the RFC error code and status, no token in the response, no token ever
//! issued, and an audit row that says why.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::issuer::TestIssuer;

type Build = fn(&TestIssuer) -> String;

struct Case {
    name: &'static str,
    token: Build,
    token_type: &'static str,
    extra: &'static [(&'static str, &'static str)],
    code: &'static str,
    reason: &'static str,
}

const INV: &[(&str, &str)] = &[("audience", "inventory")];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "expired",
            token: |i| i.id_token().lifetime(-120).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "expired",
        },
        Case {
            name: "numeric sub (RFC 7519 StringOrURI)",
            token: |i| i.id_token().claim("sub", json!(7)).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "malformed_claim",
        },
        Case {
            name: "not yet valid",
            token: |i| {
                let now = i.now();
                i.id_token().nbf(now + 600).sign()
            },
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "not_yet_valid",
        },
        Case {
            name: "issued in the future",
            token: |i| {
                let now = i.now();
                i.id_token().iat(now + 600).exp(now + 900).sign()
            },
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "issued_in_future",
        },
        Case {
            name: "unknown issuer",
            token: |i| i.id_token().iss("https://evil.example").sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "unknown_issuer",
        },
        Case {
            name: "wrong audience",
            token: |i| i.id_token().aud(json!("someone-else")).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "wrong_audience",
        },
        Case {
            name: "id token with an extra audience",
            token: |i| i.id_token().aud(json!(["tessera", "someone-else"])).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "wrong_audience",
        },
        Case {
            name: "bad signature",
            token: |i| i.id_token().bad_signature().sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "bad_signature",
        },
        Case {
            name: "alg none",
            token: |i| i.id_token().alg_none().sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "alg_not_allowed",
        },
        Case {
            name: "HS256 keyed with the issuer's public key",
            token: |i| i.id_token().hs256_with_public_key().sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "alg_not_allowed",
        },
        Case {
            name: "crit header",
            token: |i| i.id_token().header("crit", json!(["exp"])).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "unsupported_jose",
        },
        Case {
            name: "duplicate claim",
            token: |i| i.id_token().duplicate_claim("sub", json!("mallory")).sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "duplicate_member",
        },
        Case {
            name: "ID token presented as access token",
            token: |i| i.id_token().sign(),
            token_type: ACCESS_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "wrong_typ",
        },
        Case {
            name: "access token presented as ID token",
            token: |i| i.access_token().sign(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "wrong_typ",
        },
        Case {
            name: "not a JWT",
            token: |_| "not-a-token".to_owned(),
            token_type: ID_TOKEN,
            extra: INV,
            code: "invalid_request",
            reason: "malformed",
        },
        Case {
            name: "audience the client may not use",
            token: |i| i.id_token().sign(),
            token_type: ID_TOKEN,
            extra: &[("audience", "https://elsewhere.example")],
            code: "invalid_target",
            reason: "invalid_target",
        },
        Case {
            name: "no audience with two allowed",
            token: |i| i.id_token().sign(),
            token_type: ID_TOKEN,
            extra: &[],
            code: "invalid_target",
            reason: "invalid_target",
        },
        Case {
            name: "two targets",
            token: |i| i.id_token().sign(),
            token_type: ID_TOKEN,
            extra: &[
                ("audience", "inventory"),
                ("resource", "https://api.orders.example/"),
            ],
            code: "invalid_target",
            reason: "invalid_target",
        },
        Case {
            name: "scope escalation",
            token: |i| i.id_token().sign(),
            token_type: ID_TOKEN,
            extra: &[
                ("audience", "inventory"),
                ("scope", "inventory:read orders:write"),
            ],
            code: "invalid_scope",
            reason: "invalid_scope",
        },
        Case {
            name: "unsupported subject token type",
            token: |i| i.id_token().sign(),
            token_type: "urn:example:weird",
            extra: INV,
            code: "invalid_request",
            reason: "invalid_request",
        },
    ]
}

#[tokio::test]
async fn every_rejection_has_its_code_and_an_audit_row_and_issues_nothing() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        for case in cases() {
            let token = (case.token)(&app.issuer);
            let resp = app.exchange(&token, case.token_type, case.extra).await;
            let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, case.code).await;
            let description = body["error_description"].as_str().unwrap();
            assert!(!description.contains(&token), "{}: token echoed", case.name);
            let rows = app.audit_rows().await;
            let last = &rows[0];
            assert_eq!(last.outcome, "refused", "{}", case.name);
            assert!(
                audit_says(last, case.reason),
                "{}: audit reason {:?}, wanted {}",
                case.name,
                last.reason,
                case.reason
            );
        }
        assert!(app
            .audit_rows()
            .await
            .iter()
            .all(|r| r.outcome != "issued" && r.jti.is_none()));
    }
}

/// SPEC §5, issue 13 point 3: `/token` and explain are one pipeline. Every refusal case
/// of this table goes through both; the outcome, the failing step (the audit `reason`)
/// and the RFC error agree, and explain leaves no audit row behind.
#[tokio::test]
async fn token_and_explain_agree_on_every_refusal() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        for case in cases() {
            let token = (case.token)(&app.issuer);
            let before = app.audit_rows().await.len();
            let explained = app
                .explain_exchange(&token, case.token_type, case.extra)
                .await;
            assert_eq!(
                app.audit_rows().await.len(),
                before,
                "{}: explain audited",
                case.name
            );
            let resp = app.exchange(&token, case.token_type, case.extra).await;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            let row = app.audit_rows().await.remove(0);
            let step = explained.failing_step.expect("explain refuses too");
            assert_eq!(explained.outcome, row.outcome, "{}", case.name);
            assert_eq!(
                Some(step.name()),
                row.reason.as_deref().and_then(|r| r.split(": ").next()),
                "{}: the failing step is the audit reason",
                case.name
            );
            let error = explained.error.expect("explain names the error");
            assert_eq!(error.status, status, "{}", case.name);
            assert_eq!(error.error.as_str(), body["error"], "{}", case.name);
            assert_eq!(
                error.error_description, body["error_description"],
                "{}",
                case.name
            );
            let last = explained.steps.last().expect("steps");
            assert_eq!(
                last.step, step,
                "{}: the record ends at the failing step",
                case.name
            );
            assert!(
                !serde_json::to_string(&explained.steps)
                    .unwrap()
                    .contains(&token),
                "{}: token text in the record",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn unknown_kid_triggers_one_refresh_then_refusal() {
    let app = TestApp::spawn(backends()[0]).await;
    // Warm the cache with a good exchange.
    let ok = app.issuer.id_token().sign();
    assert_eq!(
        app.exchange(&ok, ID_TOKEN, INV).await.status(),
        StatusCode::OK
    );
    // Past the cooldown that the first fetch started (SPEC §6: one refresh per 30 s).
    app.clock.advance(31);
    let before = app.issuer.fetch_count();
    let bad = app.issuer.id_token().kid(Some("no-such-key")).sign();
    let resp = app.exchange(&bad, ID_TOKEN, INV).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.issuer.fetch_count(), before + 1, "exactly one refresh");
    // Within the cooldown a second unknown kid does not fetch again.
    let resp = app.exchange(&bad, ID_TOKEN, INV).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.issuer.fetch_count(), before + 1, "cooldown honoured");
    app.assert_refusal_audited_after_issue("unknown_kid").await;
}

#[tokio::test]
async fn a_rotated_issuer_key_is_picked_up_by_the_refresh() {
    let app = TestApp::spawn(backends()[0]).await;
    let ok = app.issuer.id_token().sign();
    assert_eq!(
        app.exchange(&ok, ID_TOKEN, INV).await.status(),
        StatusCode::OK
    );
    app.issuer.rotate_key();
    let fresh = app.issuer.id_token().sign();
    // Within the cooldown of the last fetch the new kid is refused without a fetch…
    let resp = app.exchange(&fresh, ID_TOKEN, INV).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    // …and once it has passed, one refresh picks the new key up.
    app.clock.advance(31);
    let fresh = app.issuer.id_token().sign();
    assert_eq!(
        app.exchange(&fresh, ID_TOKEN, INV).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_dead_jwks_endpoint_keeps_the_last_good_keys_working() {
    let app = TestApp::spawn(backends()[0]).await;
    let first = app.issuer.id_token().sub("a").sign();
    assert_eq!(
        app.exchange(&first, ID_TOKEN, INV).await.status(),
        StatusCode::OK
    );
    app.issuer.set_down(true);
    let second = app.issuer.id_token().sub("b").sign();
    let resp = app.exchange(&second, ID_TOKEN, INV).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_issuer_that_never_answered_is_a_503_not_the_callers_fault() {
    let issuer = std::sync::Arc::new(TestIssuer::start().await);
    issuer.set_down(true);
    let app = TestApp::builder(backends()[0])
        .with_issuer(issuer)
        .spawn()
        .await;
    let t = app.issuer.id_token().sign();
    let resp = app.exchange(&t, ID_TOKEN, INV).await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_oauth_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    let rows = app.audit_rows().await;
    assert_eq!(rows[0].outcome, "error");
    assert!(rows[0].jti.is_none());
}

#[tokio::test]
async fn a_wrong_client_secret_is_401_with_a_basic_challenge() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t = app.issuer.id_token().sign();
        let resp = app
            .post_token(
                Auth::Basic("orders-service", "wrong"),
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &t),
                    ("subject_token_type", ID_TOKEN),
                    ("audience", "inventory"),
                ],
            )
            .await;
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        app.assert_refusal_audited("client_secret_mismatch").await;

        // Unknown client, and the right secret sent the wrong way (post for a basic client).
        let resp = app
            .post_token(
                Auth::Basic("nobody", "x"),
                &[("grant_type", TOKEN_EXCHANGE)],
            )
            .await;
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let resp = app
            .post_token(
                Auth::None,
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("client_id", "orders-service"),
                    ("client_secret", ORDERS_SECRET),
                ],
            )
            .await;
        assert_basic_challenge(&resp);
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let resp = app
            .post_token(Auth::None, &[("grant_type", TOKEN_EXCHANGE)])
            .await;
        assert_basic_challenge(&resp);
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
        app.assert_refusal_audited("client_unauthenticated").await;
    }
}

fn assert_basic_challenge(resp: &reqwest::Response) {
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Basic realm=\"tessera\"")),
        "RFC 9110 §15.5.2: every 401 carries a challenge, got {challenge:?}"
    );
}

#[tokio::test]
async fn every_token_401_carries_a_basic_challenge() {
    let app = TestApp::spawn(backends()[0]).await;
    let params = [
        ("grant_type", TOKEN_EXCHANGE),
        ("client_id", "batch-job"),
        ("client_secret", "wrong"),
    ];
    // No credentials, a non-Basic scheme, a malformed Basic value, a wrong post secret.
    let requests = [
        app.http
            .post(app.url("/token"))
            .form(&[("grant_type", TOKEN_EXCHANGE)]),
        app.http
            .post(app.url("/token"))
            .bearer_auth("xyz")
            .form(&[("grant_type", TOKEN_EXCHANGE)]),
        app.http
            .post(app.url("/token"))
            .header("authorization", "Basic !!!")
            .form(&[("grant_type", TOKEN_EXCHANGE)]),
        app.http.post(app.url("/token")).form(&params),
    ];
    for req in requests {
        let resp = req.send().await.unwrap();
        assert_basic_challenge(&resp);
        assert_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

/// RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E only.
fn in_error_description_charset(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

#[tokio::test]
async fn error_descriptions_stay_in_the_rfc6749_charset() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t = app.issuer.id_token().sign();
        let resp = app
            .exchange(&t, ID_TOKEN, &[("audience", "h\u{e9}llo\\x\"\u{7}")])
            .await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
        let d = body["error_description"].as_str().unwrap();
        assert!(in_error_description_charset(d), "{d:?}");
        assert!(
            d.contains("h?llo"),
            "the value is still recognisable: {d:?}"
        );
        // The audit row keeps the reason, not a mangled description.
        app.assert_refusal_audited("invalid_target").await;

        let long = "a".repeat(5000);
        let resp = app.exchange(&t, ID_TOKEN, &[("audience", &long)]).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
        let d = body["error_description"].as_str().unwrap();
        assert!(d.len() <= 200, "capped: {} chars", d.len());

        // typ is named in plain words, not as a Rust `Some("JWT")`.
        let resp = app
            .exchange(&t, ACCESS_TOKEN, &[("audience", "inventory")])
            .await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert_eq!(
            body["error_description"],
            "typ: subject token: token typ JWT is not acceptable for an access_token"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_with_the_rfc_codes() {
    let app = TestApp::spawn(backends()[0]).await;
    let basic = Auth::Basic("orders-service", ORDERS_SECRET);
    let resp = app.post_token(basic, &[("grant_type", "password")]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let resp = app.post_token(basic, &[("scope", "x")]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let resp = app
        .post_token(
            basic,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("grant_type", TOKEN_EXCHANGE),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let resp = app
        .post_token(
            basic,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
    let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("subject_token"));
    app.assert_refusal_audited("invalid_request").await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_and_audited() {
    let app = TestApp::spawn(backends()[0]).await;
    let big = "a".repeat(70 * 1024);
    let resp = app
        .post_token(
            Auth::Basic("orders-service", ORDERS_SECRET),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &big),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
    assert_oauth_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    app.assert_refusal_audited("body_too_large").await;
}

#[tokio::test]
async fn a_non_form_body_is_415() {
    let app = TestApp::spawn(backends()[0]).await;
    let resp = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request").await;
    app.assert_refusal_audited("unsupported_media_type").await;
}

#[tokio::test]
async fn a_client_bound_to_its_app_audience_refuses_other_tokens() {
    let app = TestApp::spawn(backends()[0]).await;
    let bound = Auth::Basic("app-bound", "app-secret");
    let foreign = app.issuer.id_token().sign(); // aud "tessera"
    let params = |t: &str| {
        vec![
            ("grant_type", TOKEN_EXCHANGE.to_owned()),
            ("subject_token", t.to_owned()),
            ("subject_token_type", ID_TOKEN.to_owned()),
        ]
    };
    let p = params(&foreign);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = app.post_token(bound, &p).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_refusal_audited("subject_audience_not_allowed")
        .await;

    let own = app.issuer.id_token().aud(json!("app-only")).sign();
    let p = params(&own);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(app.post_token(bound, &p).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_mapping_condition_that_is_false_refuses_the_token() {
    let app = TestApp::builder(backends()[0])
        .file(
            "issuers/acme.toml",
            r#"kind = "oidc"
issuer = "{issuer}"
jwks_uri = "{issuer}/jwks.json"
audiences = ["tessera"]
[mapping]
subject = "assertion.email"
condition = "assertion.email.endsWith('@acme.example')"
"#,
        )
        .spawn()
        .await;
    let ok = app
        .issuer
        .id_token()
        .claim("email", json!("bob@acme.example"))
        .sign();
    let resp = app.exchange(&ok, ID_TOKEN, INV).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "bob@acme.example");

    let evil = app
        .issuer
        .id_token()
        .claim("email", json!("eve@evil.example"))
        .sign();
    let resp = app.exchange(&evil, ID_TOKEN, INV).await;
    assert_invalid_request_saying(resp, "mapping.condition is false").await;
    // A token without the claim is told apart from one the condition refuses (issue 13).
    let missing = app.issuer.id_token().sign();
    let resp = app.exchange(&missing, ID_TOKEN, INV).await;
    assert_invalid_request_saying(resp, "mapping.condition: no such key: email").await;
    app.assert_refusal_audited_after_issue("mapping_refused")
        .await;
}

#[tokio::test]
async fn no_token_leaves_when_its_audit_row_cannot_be_written() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t = app.issuer.id_token().sign();
        assert_eq!(
            app.exchange(&t, ID_TOKEN, INV).await.status(),
            StatusCode::OK
        );
        // Break the audit table underneath the running broker.
        app.store
            .run(|conn| {
                use diesel::connection::SimpleConnection;
                conn.batch_execute("DROP TABLE audit_events")
                    .map_err(tessera::store::StoreError::from)
            })
            .await
            .unwrap();
        let t = app.issuer.id_token().sign();
        let resp = app.exchange(&t, ID_TOKEN, INV).await;
        assert!(resp.headers().contains_key("retry-after"));
        let body = assert_oauth_error(
            resp,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
        assert!(body.get("access_token").is_none());
    }
}

#[tokio::test]
async fn bearer_grant_refusals_are_invalid_grant_whatever_check_failed() {
    let app = TestApp::spawn(backends()[0]).await;
    let token_endpoint = format!("{ISSUER}/token");
    let bearer = |assertion: String| {
        let app = &app;
        async move {
            app.post_token(
                Auth::Basic("orders-service", ORDERS_SECRET),
                &[
                    ("grant_type", JWT_BEARER),
                    ("assertion", &assertion),
                    ("audience", "inventory"),
                ],
            )
            .await
        }
    };
    // Expired 5 s ago: inside the 60 s skew, so it verifies, but no life is left to give.
    let now = app.issuer.now();
    let expired = app
        .issuer
        .id_token()
        .header_typ(None)
        .aud(json!(token_endpoint))
        .iat(now - 60)
        .exp(now - 5)
        .sign();
    assert_oauth_error(
        bearer(expired).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.assert_refusal_audited("no_lifetime_left").await;

    let not_admitted = app
        .issuer
        .id_token()
        .header_typ(None)
        .aud(json!(token_endpoint))
        .claim("may_act", json!({"sub": "someone-else"}))
        .sign();
    assert_oauth_error(
        bearer(not_admitted).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.assert_refusal_audited("may_act_refused").await;
}

#[tokio::test]
async fn a_subject_token_whose_act_is_not_an_actor_object_is_refused() {
    let app = TestApp::spawn(backends()[0]).await;
    for act in [
        Value::Null,
        json!("robot"),
        json!({"iss": "https://idp"}),
        json!({"sub": "svc", "act": null}),
    ] {
        let t = app.issuer.id_token().claim("act", act.clone()).sign();
        let resp = app
            .exchange(&t, ID_TOKEN, &[("audience", "inventory")])
            .await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("act must be an object")),
            "{act}: {body}"
        );
        app.assert_refusal_audited("malformed_act").await;
    }
}

#[tokio::test]
async fn refusals_of_a_registered_issuer_carry_its_id_in_metrics_and_audit() {
    let app = TestApp::spawn(backends()[0]).await;
    let expired = app.issuer.id_token().lifetime(-120).sign();
    let resp = app.exchange(&expired, ID_TOKEN, INV).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.issuer.as_deref(), Some("acme"), "{row:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"tessera_exchanges_total{grant="token_exchange",subject_token_type="id_token",issuer="acme",outcome="refused"} 1"#
        ),
        "{metrics}"
    );
    // An unknown issuer stays unknown.
    let foreign = app.issuer.id_token().iss("https://evil.example").sign();
    app.exchange(&foreign, ID_TOKEN, INV).await;
    assert_eq!(app.audit_rows().await.remove(0).issuer, None);
}

#[tokio::test]
async fn request_values_reach_the_audit_trail_escaped() {
    let app = TestApp::spawn(backends()[0]).await;
    let t = app.issuer.id_token().sign();
    let forged = "x\nexchange outcome=issued client_id=admin";
    let resp = app.exchange(&t, ID_TOKEN, &[("audience", forged)]).await;
    let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
    assert!(!body["error_description"].as_str().unwrap().contains('\n'));
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.reason.as_deref(), Some("target"));
    let detail = row.detail.unwrap();
    assert!(!detail.contains('\n'), "{detail:?}");
    assert!(
        detail.contains(r"x\nexchange"),
        "escaped, not dropped: {detail:?}"
    );
}

/// Security review F-6: request text copied into the audit trail and the log line is cut
/// where it is quoted, and Unicode format characters (a bidi override) are escaped, not
/// stored raw. A 60 KB `audience` once made a 60 KB audit reason.
#[tokio::test]
async fn request_values_reach_the_audit_trail_cut_and_escaped() {
    let app = TestApp::spawn(backends()[0]).await;
    let token = app.issuer.id_token().sign();
    let audience = format!("https://evil\u{202E}moc.example/{}", "a".repeat(60_000));
    let resp = app
        .exchange(&token, ID_TOKEN, &[("audience", &audience)])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
    app.assert_refusal_audited("invalid_target").await;
    let reason = app.audit_rows().await.remove(0).detail.unwrap();
    assert!(reason.len() < 600, "audit detail of {} bytes", reason.len());
    assert!(!reason.contains('\u{202E}'), "raw bidi override: {reason}");
    assert!(reason.contains("\\u{202e}"), "{reason}");
    assert!(reason.contains("bytes)"), "says how much was cut: {reason}");

    let scope = format!("orders:read\u{2066}{}", "s".repeat(30_000));
    let resp = app
        .exchange(
            &token,
            ID_TOKEN,
            &[("audience", "inventory"), ("scope", &scope)],
        )
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let reason = app.audit_rows().await.remove(0).detail.unwrap();
    assert!(reason.len() < 600, "audit detail of {} bytes", reason.len());
    assert!(
        !reason.contains('\u{2066}') && reason.contains("\\u{2066}"),
        "{reason}"
    );

    // Names from tokens too (found by review): a mapped subject is an IdP's text (up to
    // the 1 KiB a mapped subject may be; a longer one is refused at the mapping step).
    let sub = format!("admin\u{202E}\nFORGED\u{1b}[31m{}", "A".repeat(1_000));
    let token = app.issuer.id_token().sub(&sub).sign();
    let resp = app
        .exchange(&token, ID_TOKEN, &[("audience", "elsewhere")])
        .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
    let subject = app.audit_rows().await.remove(0).subject.unwrap();
    assert!(
        subject.len() < 1100,
        "audit subject of {} bytes",
        subject.len()
    );
    assert!(
        subject.starts_with("admin\\u{202e}\\nFORGED\\u{1b}[31m") && subject.ends_with("…(cut)"),
        "{}",
        &subject[..60]
    );
}
