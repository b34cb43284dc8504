//! DPoP at the token endpoint (issue 15 part 3, RFC 9449). Proofs are made here with a JOSE
//! library (jsonwebtoken signs, openssl makes the keys) and thumbprints computed with its
//! RFC 7638 code, never tessera's: every refusal of §4.3, the binding of issued tokens,
//! and sender constraint kept across an exchange and a refresh family.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::clock::Clock;
use tessera::store::testing::TestDbKind;

use crate::helpers::*;
use crate::issuer::TestKey;
use crate::refresh::refresh_at;

const HTU: &str = "https://tessera.test/token";
const REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The public JWK a client puts in its proofs.
fn public_jwk(key: &TestKey) -> Value {
    let mut jwk = key.jwk.clone();
    let obj = jwk.as_object_mut().unwrap();
    obj.remove("kid");
    obj.remove("use");
    jwk
}

/// RFC 7638 thumbprint, by jsonwebtoken.
fn jkt(key: &TestKey) -> String {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public_jwk(key)).unwrap();
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap()
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A proof: `header` and `claims` as given, signed by `signer` with its algorithm.
fn signed(header: &Value, claims: &Value, signer: &TestKey) -> String {
    let input = format!("{}.{}", b64json(header), b64json(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signer.encoding, signer.alg).unwrap();
    format!("{input}.{sig}")
}

fn alg_name(key: &TestKey) -> String {
    serde_json::to_value(key.alg)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn header(key: &TestKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg_name(key), "jwk": public_jwk(key)})
}

fn claims(now: i64) -> Value {
    json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": HTU, "iat": now})
}

/// A good proof by `key` at `now`.
fn proof(key: &TestKey, now: i64) -> String {
    signed(&header(key), &claims(now), key)
}

/// POST /token with `proofs` as DPoP headers.
async fn post_with(
    base: &str,
    client: (&str, &str),
    params: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(params);
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.send().await.unwrap()
}

const ORDERS: (&str, &str) = ("orders-service", ORDERS_SECRET);

async fn exchange_with(
    app: &TestApp,
    subject: &str,
    kind: &str,
    extra: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let mut params = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", kind),
    ];
    params.extend_from_slice(extra);
    post_with(&app.address, ORDERS, &params, proofs).await
}

const TO_ORDERS: [(&str, &str); 1] = [("audience", "https://api.orders.example")];

async fn bound_token(resp: reqwest::Response, app: &TestApp) -> (Value, Value) {
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    (body, claims)
}

#[tokio::test]
async fn a_proof_binds_the_issued_token_and_introspection_says_so() {
    let app = crate::refresh::app(TestDbKind::Sqlite).await;
    let key = TestKey::ec_p256("client-key");
    let now = app.clock.now();
    let id_token = app.issuer.id_token().sub("alice").sign();
    let resp = exchange_with(&app, &id_token, ID_TOKEN, &TO_ORDERS, &[&proof(&key, now)]).await;
    let (body, claims) = bound_token(resp, &app).await;
    assert_eq!(claims["cnf"]["jkt"], jkt(&key));
    let seen: Value = reqwest::Client::new()
        .post(app.url("/introspect"))
        .basic_auth(ORDERS.0, Some(ORDERS.1))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(seen["cnf"]["jkt"], jkt(&key));
    // An RSA key works too; without a proof, a bearer token as before.
    let rsa = TestKey::rsa("rsa-client");
    let id_token = app.issuer.id_token().sub("alice").sign();
    let resp = exchange_with(&app, &id_token, ID_TOKEN, &TO_ORDERS, &[&proof(&rsa, now)]).await;
    let (_, claims) = bound_token(resp, &app).await;
    assert_eq!(claims["cnf"]["jkt"], jkt(&rsa));
    let meta = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "RS256", "PS256", "EdDSA"])
    );
}

#[tokio::test]
async fn every_refusal_of_rfc_9449_section_4_3() {
    for kind in backends() {
        let app = crate::refresh::app(kind).await;
        let replica = app.spawn_replica().await;
        let key = TestKey::ec_p256("k1");
        let other = TestKey::ec_p256("k2");
        let now = app.clock.now();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims(now);
            f(&mut c);
            signed(&header(&key), &c, &key)
        };
        let mut private = header(&key);
        private["jwk"]["d"] = json!("c2VjcmV0LXNjYWxhci1ub3QtYS1yZWFsLW9uZS0tLS0");
        let hs_key = jsonwebtoken::EncodingKey::from_secret(b"shared-secret");
        let hs_input = format!(
            "{}.{}",
            b64json(&json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_jwk(&key)})),
            b64json(&claims(now))
        );
        let hs256 = format!(
            "{hs_input}.{}",
            jsonwebtoken::crypto::sign(
                hs_input.as_bytes(),
                &hs_key,
                jsonwebtoken::Algorithm::HS256
            )
            .unwrap()
        );
        let none = format!(
            "{}.{}.",
            b64json(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(&key)})),
            b64json(&claims(now))
        );
        let replayed = proof(&key, now);
        let first = exchange_with(
            &app,
            &app.issuer.id_token().sign(),
            ID_TOKEN,
            &TO_ORDERS,
            &[&replayed],
        )
        .await;
        assert_eq!(first.status(), StatusCode::OK);
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            (
                "wrong htu",
                vec![with(&|c| {
                    c["htu"] = json!("https://elsewhere.example/token")
                })],
                "dpop_htu",
            ),
            (
                "wrong htm",
                vec![with(&|c| c["htm"] = json!("GET"))],
                "dpop_htm",
            ),
            (
                "stale iat",
                vec![with(&|c| c["iat"] = json!(now - 600))],
                "dpop_iat",
            ),
            (
                "future iat",
                vec![with(&|c| c["iat"] = json!(now + 600))],
                "dpop_iat",
            ),
            (
                "no jti",
                vec![with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                })],
                "dpop_claim",
            ),
            ("alg none", vec![none], "dpop_alg"),
            ("HS256", vec![hs256], "dpop_alg"),
            (
                "private key in jwk",
                vec![signed(&private, &claims(now), &key)],
                "dpop_private_key",
            ),
            (
                "signed by another key",
                vec![signed(&header(&key), &claims(now), &other)],
                "dpop_signature",
            ),
            (
                "typ jwt",
                vec![signed(
                    &json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&key)}),
                    &claims(now),
                    &key,
                )],
                "dpop_typ",
            ),
            (
                "no jwk",
                vec![signed(
                    &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                    &claims(now),
                    &key,
                )],
                "dpop_jwk",
            ),
            (
                "two headers",
                vec![proof(&key, now), proof(&key, now)],
                "dpop_multiple_headers",
            ),
            ("not a JWT", vec!["not-a-jwt".into()], "dpop_malformed"),
            // Used once on the first replica; presented to the second.
            ("replayed jti", vec![replayed.clone()], "dpop_replayed"),
        ];
        for (name, proofs, check) in cases {
            let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            let id_token = app.issuer.id_token().sign();
            let mut params = vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", id_token.as_str()),
                ("subject_token_type", ID_TOKEN),
            ];
            params.extend_from_slice(&TO_ORDERS);
            let resp = post_with(&replica.address, ORDERS, &params, &refs).await;
            let body =
                assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
            assert!(
                body["error_description"].as_str().unwrap().contains("DPoP"),
                "{name}: {body}"
            );
            app.assert_last_refused(check).await;
        }
    }
}

#[tokio::test]
async fn sender_constraint_is_never_lost_across_an_exchange() {
    let app = crate::refresh::app(TestDbKind::Sqlite).await;
    let k1 = TestKey::ec_p256("k1");
    let k2 = TestKey::ec_p256("k2");
    let now = app.clock.now();
    let id_token = app.issuer.id_token().sub("alice").sign();
    let resp = exchange_with(&app, &id_token, ID_TOKEN, &TO_ORDERS, &[&proof(&k1, now)]).await;
    let (body, _) = bound_token(resp, &app).await;
    let bound = body["access_token"].as_str().unwrap().to_owned();
    let next = [
        ("audience", "https://api.orders.example"),
        ("scope", "orders:read"),
    ];

    // Tessera's own bound token: no proof, a proof by another key — refused.
    let resp = exchange_with(&app, &bound, ACCESS_TOKEN, &next, &[]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    app.assert_last_refused("dpop_required").await;
    let resp = exchange_with(&app, &bound, ACCESS_TOKEN, &next, &[&proof(&k2, now)]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    app.assert_last_refused("dpop_key_mismatch").await;
    // The same key: issued, and bound to it again.
    let resp = exchange_with(&app, &bound, ACCESS_TOKEN, &next, &[&proof(&k1, now)]).await;
    let (_, claims) = bound_token(resp, &app).await;
    assert_eq!(claims["cnf"]["jkt"], jkt(&k1));

    // A foreign access token carrying cnf.jkt: the same rule.
    let foreign = app
        .issuer
        .access_token()
        .sub("alice")
        .aud("tessera")
        .claim("cnf", json!({"jkt": jkt(&k2)}))
        .sign();
    let resp = exchange_with(&app, &foreign, ACCESS_TOKEN, &TO_ORDERS, &[]).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    let resp = exchange_with(
        &app,
        &foreign,
        ACCESS_TOKEN,
        &TO_ORDERS,
        &[&proof(&k1, now)],
    )
    .await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    let resp = exchange_with(
        &app,
        &foreign,
        ACCESS_TOKEN,
        &TO_ORDERS,
        &[&proof(&k2, now)],
    )
    .await;
    let (_, claims) = bound_token(resp, &app).await;
    assert_eq!(claims["cnf"]["jkt"], jkt(&k2));
    // Bound by a method tessera cannot check (mTLS): refused, never unbound.
    let mtls = app
        .issuer
        .access_token()
        .sub("alice")
        .aud("tessera")
        .claim(
            "cnf",
            json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        )
        .sign();
    let resp = exchange_with(&app, &mtls, ACCESS_TOKEN, &TO_ORDERS, &[&proof(&k1, now)]).await;
    assert_invalid_request_saying(resp, "cnf").await;
    app.assert_last_refused("unsupported_binding").await;
}

#[tokio::test]
async fn require_dpop_audiences_and_bound_refresh_families() {
    for kind in backends() {
        let app = TestApp::builder(kind)
            .file(
                "clients/orders-service.toml",
                &format!(
                    "client_id = \"orders-service\"\nauth = \"client_secret_basic\"\nsecret_hash = \"{}\"\nsubject_issuers = [\"acme\"]\naudiences = [\"orders\"]\nscopes = [\"orders:read\"]\nrefresh_tokens = true\n",
                    secret_hash(ORDERS_SECRET)
                ),
            )
            .file(
                "audiences/orders.toml",
                "audience = \"https://api.orders.example\"\nscopes = [\"orders:read\"]\nrequire_dpop = true\nrefresh_lifetime = \"2h\"\n",
            )
            .spawn()
            .await;
        let replica = app.spawn_replica().await;
        let k1 = TestKey::ec_p256("k1");
        let k2 = TestKey::ec_p256("k2");
        let now = app.clock.now();
        let id_token = app.issuer.id_token().sub("alice").sign();
        // No proof: nothing for this audience.
        let resp = exchange_with(
            &app,
            &id_token,
            ID_TOKEN,
            &[("requested_token_type", REFRESH)],
            &[],
        )
        .await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .contains("require_dpop"));
        app.assert_refusal_audited("dpop_required").await;
        // With one: a bound token and a family that needs a proof at every refresh.
        let resp = exchange_with(
            &app,
            &id_token,
            ID_TOKEN,
            &[("requested_token_type", REFRESH)],
            &[&proof(&k1, now)],
        )
        .await;
        let (body, _) = bound_token(resp, &app).await;
        let rt = body["refresh_token"].as_str().unwrap().to_owned();
        let resp = refresh_at(&replica.address, ORDERS, &rt, &[]).await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
        app.assert_last_refused("dpop_required").await;
        // Any key the client holds (the refresh token is bound to its authentication):
        // the access token is bound to that proof's key.
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ];
        let resp = post_with(&replica.address, ORDERS, &params, &[&proof(&k2, now)]).await;
        let (body, claims) = bound_token(resp, &app).await;
        assert_eq!(claims["cnf"]["jkt"], jkt(&k2));
        assert!(body["refresh_token"].is_string());
    }
}

#[tokio::test]
async fn explain_checks_the_proof_and_says_the_token_would_be_bound() {
    let app = crate::refresh::app(TestDbKind::Sqlite).await;
    let key = TestKey::ec_p256("k1");
    let now = app.clock.now();
    let id_token = app.issuer.id_token().sub("alice").sign();
    let good = proof(&key, now);
    let params = |p: &str| {
        vec![
            ("grant_type".to_owned(), TOKEN_EXCHANGE.to_owned()),
            ("subject_token".to_owned(), id_token.clone()),
            ("subject_token_type".to_owned(), ID_TOKEN.to_owned()),
            (
                "audience".to_owned(),
                "https://api.orders.example".to_owned(),
            ),
            ("dpop".to_owned(), p.to_owned()),
        ]
    };
    let explain = |p: &str| {
        let form = tessera::exchange::Form::from_pairs(params(p));
        let exchanger = app.exchanger.clone();
        async move { exchanger.explain("orders-service", &form).await }
    };
    let e = explain(&good).await;
    assert!(e.issued(), "{e:?}");
    assert_eq!(e.token_type, Some("DPoP"));
    assert_eq!(e.token.as_ref().unwrap()["cnf"]["jkt"], jkt(&key));
    assert!(e.steps.iter().any(|s| s.step.name() == "dpop"));
    // Explaining used nothing up: the proof still works at /token, once.
    let resp = exchange_with(&app, &id_token, ID_TOKEN, &TO_ORDERS, &[&good]).await;
    bound_token(resp, &app).await;
    let e = explain(&good).await;
    assert_eq!(e.failing_step.map(|s| s.name()), Some("dpop"), "{e:?}");
    let stale = signed(&header(&key), &claims(now - 3600), &key);
    let e = explain(&stale).await;
    assert_eq!(e.failing_step.map(|s| s.name()), Some("dpop"));
    assert_eq!(e.error.unwrap().error.as_str(), "invalid_dpop_proof");
}
