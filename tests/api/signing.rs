//! Per-audience signing algorithms (an audience's `signing_alg`): each algorithm in use has
//! its own keys, published in one JWKS and rotated like the default one; every token is
//! verified by a JOSE library (jsonwebtoken) against `/jwks.json`, as a resource server
//! would.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const LEGACY_AUD: &str = "https://legacy.example";

fn orders_with_legacy() -> String {
    format!(
        r#"client_id = "orders-service"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
audiences = ["orders", "inventory", "legacy"]
scopes = ["orders:read", "inventory:read", "legacy:read"]
"#,
        secret_hash(ORDERS_SECRET)
    )
}

async fn app(kind: tessera::store::testing::TestDbKind) -> TestApp {
    TestApp::builder(kind)
        .file(
            "audiences/legacy.toml",
            &format!(
                "audience = \"{LEGACY_AUD}\"\nscopes = [\"legacy:read\"]\nsigning_alg = \"RS256\"\n"
            ),
        )
        .file("clients/orders-service.toml", &orders_with_legacy())
        .configure(|c| c.tokens.key_refresh_interval = Duration::from_millis(100))
        .spawn()
        .await
}

/// The issued token for `audience`, verified with jsonwebtoken against the JWKS: its alg.
async fn issued_and_verified(app: &TestApp, token: &str, audience: &str) -> (String, String) {
    let resp = app
        .exchange(token, ID_TOKEN, &[("audience", audience)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let alg = verify(
        app,
        &access,
        if audience == "legacy" {
            LEGACY_AUD
        } else {
            audience
        },
    )
    .await;
    (access, alg)
}

async fn verify(app: &TestApp, token: &str, aud: &str) -> String {
    let jwks: jsonwebtoken::jwk::JwkSet = app.get("/jwks.json").await.json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().unwrap();
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is published"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[ISSUER]);
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &v).unwrap();
    format!("{:?}", header.alg)
}

#[tokio::test]
async fn rs256_and_es256_audiences_side_by_side_through_a_rotation() {
    for kind in backends() {
        let app = app(kind).await;
        let id = app.issuer.id_token().sub("alice").lifetime(3600).sign();
        let (es_before, es_alg) = issued_and_verified(&app, &id, "inventory").await;
        let (rs_before, rs_alg) = issued_and_verified(&app, &id, "legacy").await;
        assert_eq!(
            (es_alg.as_str(), rs_alg.as_str()),
            ("ES256", "RS256"),
            "{kind:?}"
        );
        // Explain says which algorithm a token would be signed with.
        for (aud, alg) in [("legacy", "RS256"), ("inventory", "ES256")] {
            let e = app
                .explain_exchange(&id, ID_TOKEN, &[("audience", aud)])
                .await;
            assert_eq!(e.signing_alg, Some(alg), "{kind:?} {aud}: {e:#?}");
        }

        // Both algorithms publish a current and a next key, and keys list shows them.
        let keys = tessera::issue::list_keys(&app.store).await.unwrap();
        for alg in ["ES256", "RS256"] {
            let states: Vec<_> = keys
                .iter()
                .filter(|k| k.alg == alg)
                .map(|k| k.state)
                .collect();
            assert_eq!(states.len(), 2, "{kind:?} {alg}: {keys:?}");
        }

        // Rotate each algorithm, as `tessera keys rotate` does.
        app.clock.advance(60);
        let clock: tessera::clock::SharedClock = app.clock.clone();
        for alg in tessera::issue::algs_with_keys(&app.store).await.unwrap() {
            tessera::issue::rotate_with(
                &app.store,
                alg,
                clock.clone(),
                Duration::from_secs(3600),
                None,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        }
        let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
        let mut after = (String::new(), String::new());
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let es = issued_and_verified(&app, &id, "inventory").await.0;
            let rs = issued_and_verified(&app, &id, "legacy").await.0;
            after = (es, rs);
            if kid(&after.0) != kid(&es_before) && kid(&after.1) != kid(&rs_before) {
                break;
            }
        }
        assert_ne!(kid(&after.0), kid(&es_before), "{kind:?}: ES256 rotated");
        assert_ne!(kid(&after.1), kid(&rs_before), "{kind:?}: RS256 rotated");
        // Tokens signed before the rotation still verify: retired keys stay published.
        assert_eq!(verify(&app, &es_before, "inventory").await, "ES256");
        assert_eq!(verify(&app, &rs_before, LEGACY_AUD).await, "RS256");
        assert_eq!(verify(&app, &after.1, LEGACY_AUD).await, "RS256");
    }
}

#[tokio::test]
async fn an_algorithm_tessera_does_not_sign_with_is_refused_naming_file_and_field() {
    let app = app(backends()[0]).await;
    std::fs::write(
        app.trust_dir.join("audiences/legacy.toml"),
        format!("audience = \"{LEGACY_AUD}\"\nsigning_alg = \"HS256\"\n"),
    )
    .unwrap();
    let err = tessera::trust::load_registry(&app.trust_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("legacy.toml"), "{err}");
    assert!(err.contains("signing_alg"), "{err}");
    assert!(
        err.contains("\"HS256\" is not an algorithm tessera signs with"),
        "{err}"
    );
}
