use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::FixedClock;
use crate::store::testing::{fresh_database_url, test_kinds, TestDatabase, TestDbKind};

const T0: UnixTime = 1_800_000_000;

fn migrated(kind: TestDbKind) -> (TestDatabase, Store) {
    let db = fresh_database_url(kind).unwrap();
    let store = Store::connect(&db.url, None).unwrap();
    store.run_migrations().unwrap();
    (db, store)
}

fn clock() -> (Arc<FixedClock>, SharedClock) {
    let c = Arc::new(FixedClock::new(T0));
    (c.clone(), c)
}

fn states(keys: &[KeyInfo]) -> Vec<(KeyState, String)> {
    let mut s: Vec<_> = keys.iter().map(|k| (k.state, k.kid.to_string())).collect();
    s.sort_by_key(|(state, _)| state.as_str());
    s
}

fn jwks_kids(ring: &KeyRing) -> Vec<Kid> {
    let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Kid::from(k["kid"].as_str().unwrap()))
        .collect()
}

/// Verifies `token` with jsonwebtoken against the ring's published JWKS, as a resource
/// server would.
fn verify(ring: &KeyRing, token: &str, alg: SigningAlg) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, alg.to_jsonwebtoken());
    let kid = header.kid.unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&ring.jwks_json()).unwrap();
    let jwk = jwks.find(&kid).expect("signing key is published");
    let mut validation = jsonwebtoken::Validation::new(alg.to_jsonwebtoken());
    validation.set_audience(&["api"]);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn open_creates_a_current_and_a_next_key_once() {
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        let (_c, clock) = clock();
        let ring = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
            .await
            .unwrap();
        let keys = list_keys(&store).await.unwrap();
        let s = states(&keys);
        assert_eq!(
            s.iter().map(|(st, _)| *st).collect::<Vec<_>>(),
            [KeyState::Current, KeyState::Next]
        );
        assert_eq!(ring.current_kid(), s[0].1);
        assert_eq!(ring.current_created_at(), T0);
        assert!(keys.iter().all(|k| !k.encrypted && k.alg == "ES256"));
        // JWKS: current then next, public members only.
        assert_eq!(jwks_kids(&ring), [s[0].1.clone(), s[1].1.clone()]);
        assert!(!ring.jwks_json().contains("\"d\""));
        // Re-opening (a restart, a second replica) keeps the same keys.
        let again = KeyRing::open_with(&store, SigningAlg::ES256, clock, None)
            .await
            .unwrap();
        assert_eq!(again.current_kid(), ring.current_kid());
        assert_eq!(states(&list_keys(&store).await.unwrap()), s);
    }
}

#[tokio::test]
async fn replicas_opening_a_fresh_database_together_agree_on_one_key_set() {
    for kind in test_kinds() {
        let (db, store) = migrated(kind);
        let (_c, clock) = clock();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            // Separate pools, as separate processes would have.
            let store = Store::connect(&db.url, Some(2)).unwrap();
            let clock = clock.clone();
            tasks.push(tokio::spawn(async move {
                KeyRing::open_with(&store, SigningAlg::ES256, clock, None)
                    .await
                    .map(|r| r.current_kid())
            }));
        }
        let mut kids = Vec::new();
        for t in tasks {
            kids.push(t.await.unwrap().unwrap());
        }
        kids.dedup();
        assert_eq!(
            kids.len(),
            1,
            "{kind:?}: every replica signs with the same key"
        );
        assert_eq!(list_keys(&store).await.unwrap().len(), 2, "{kind:?}");
    }
}

#[tokio::test]
async fn every_algorithm_signs_tokens_jsonwebtoken_verifies() {
    let (_db, store) = migrated(TestDbKind::Sqlite);
    for alg in [
        SigningAlg::ES256,
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::EdDSA,
    ] {
        // One database per algorithm: the key set is per database.
        let (_db, store) = if alg == SigningAlg::ES256 {
            (None, store.clone())
        } else {
            let (db, s) = migrated(TestDbKind::Sqlite);
            (Some(db), s)
        };
        let (_c, clock) = clock();
        let ring = KeyRing::open_with(&store, alg, clock, None).await.unwrap();
        let claims = serde_json::json!({ "sub": "alice", "aud": "api", "scope": "a b" });
        let signed = ring.sign(&claims).unwrap();
        assert_eq!(signed.kid, ring.current_kid());
        assert_eq!(
            verify(&ring, signed.token.expose(), alg)["sub"],
            "alice",
            "{alg}"
        );
        let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        assert_eq!(jwks["keys"][0]["alg"], alg.as_str());
    }
}

#[tokio::test]
async fn rotation_moves_states_and_keeps_retired_keys_published_until_tokens_expire() {
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        let (fixed, clock) = clock();
        let ring = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
            .await
            .unwrap();
        let old_current = ring.current_kid();
        let old_token = ring.sign(&serde_json::json!({ "aud": "api" })).unwrap();
        let [_, old_next] = <[Kid; 2]>::try_from(jwks_kids(&ring)).unwrap();

        // A next key published a moment ago must not sign yet.
        fixed.advance(5);
        let early = rotate_with(
            &store,
            SigningAlg::ES256,
            clock.clone(),
            Duration::from_secs(3600),
            None,
            NEXT_KEY_MIN_AGE,
        )
        .await;
        assert!(early
            .unwrap_err()
            .to_string()
            .contains("every replica publishes it"));

        fixed.advance(60);
        let promoted = rotate_with(
            &store,
            SigningAlg::ES256,
            clock.clone(),
            Duration::from_secs(3600),
            None,
            NEXT_KEY_MIN_AGE,
        )
        .await
        .unwrap();
        assert_eq!(promoted.kid, old_next);
        assert_eq!(promoted.state, KeyState::Current);
        let rotated_at = T0 + 65;
        assert_eq!(promoted.activated_at, Some(rotated_at));

        let keys = list_keys(&store).await.unwrap();
        let retired = keys.iter().find(|k| k.kid == old_current).unwrap();
        assert_eq!(retired.state, KeyState::Retired);
        assert_eq!(retired.retired_at, Some(rotated_at));
        assert_eq!(retired.publish_until, Some(rotated_at + 3600 + 60));
        let new_next = keys
            .iter()
            .find(|k| k.state == KeyState::Next)
            .unwrap()
            .kid
            .clone();

        // Until refreshed, this replica still signs with the old key (still published).
        assert_eq!(ring.current_kid(), old_current);
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.current_kid(), old_next);
        assert_eq!(
            jwks_kids(&ring),
            [old_next.clone(), new_next.clone(), old_current.clone()]
        );
        // A token signed before the rotation still verifies.
        verify(&ring, old_token.token.expose(), SigningAlg::ES256);
        assert_eq!(ring.sign(&serde_json::json!({})).unwrap().kid, old_next);

        // Past publish_until the retired key leaves the JWKS.
        fixed.set(rotated_at + 3600 + 60);
        ring.refresh(&store).await.unwrap();
        assert_eq!(jwks_kids(&ring), [old_next.clone(), new_next.clone()]);

        // The next rotation deletes it from the database.
        rotate_with(
            &store,
            SigningAlg::ES256,
            clock,
            Duration::from_secs(3600),
            None,
            NEXT_KEY_MIN_AGE,
        )
        .await
        .unwrap();
        let keys = list_keys(&store).await.unwrap();
        assert!(keys.iter().all(|k| k.kid != old_current), "{kind:?}");
        assert_eq!(keys.len(), 3);
    }
}

#[tokio::test]
async fn another_replica_sees_a_rotation_on_refresh() {
    let (_db, store) = migrated(TestDbKind::Sqlite);
    let (fixed, clock) = clock();
    let a = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
        .await
        .unwrap();
    let b = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
        .await
        .unwrap();
    fixed.advance(3600);
    let promoted = rotate_with(
        &store,
        SigningAlg::ES256,
        clock,
        Duration::from_secs(600),
        None,
        Duration::ZERO,
    )
    .await
    .unwrap();
    for ring in [&a, &b] {
        ring.refresh(&store).await.unwrap();
        assert_eq!(ring.current_kid(), promoted.kid);
        assert_eq!(ring.current_created_at(), T0);
    }
    assert_eq!(a.jwks_json(), b.jwks_json());
}

#[tokio::test]
async fn keys_are_encrypted_at_rest_when_a_key_encryption_key_is_set() {
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        let (fixed, clock) = clock();
        let kek = KeyEncryptionKey::generate().unwrap();
        let ring = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), Some(kek.clone()))
            .await
            .unwrap();
        let keys = list_keys(&store).await.unwrap();
        assert!(keys.iter().all(|k| k.encrypted), "{kind:?}");
        let stored = store
            .run(|c| Ok(crate::store::keys::all_keys(c)?))
            .await
            .unwrap();
        assert!(stored
            .iter()
            .all(|r| r.private_key.starts_with("enc:v1:") && !r.private_key.contains("PRIVATE")));
        verify(
            &ring,
            ring.sign(&serde_json::json!({ "aud": "api" }))
                .unwrap()
                .token
                .expose(),
            SigningAlg::ES256,
        );

        // The same key reopens; rotation keeps encrypting.
        KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), Some(kek.clone()))
            .await
            .unwrap();
        fixed.advance(60);
        rotate_with(
            &store,
            SigningAlg::ES256,
            clock.clone(),
            Duration::from_secs(60),
            Some(&kek),
            NEXT_KEY_MIN_AGE,
        )
        .await
        .unwrap();
        assert!(list_keys(&store).await.unwrap().iter().all(|k| k.encrypted));

        // Missing or wrong key: a clear error naming the variable, no key material.
        let missing = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
            .await
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("TESSERA_KEY_ENCRYPTION_KEY is not set"),
            "{missing}"
        );
        let wrong = KeyEncryptionKey::generate().unwrap();
        let wrong = KeyRing::open_with(&store, SigningAlg::ES256, clock, Some(wrong))
            .await
            .unwrap_err();
        assert!(
            wrong
                .to_string()
                .contains("wrong TESSERA_KEY_ENCRYPTION_KEY"),
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn open_fails_when_the_database_is_unreachable() {
    let store = Store::connect_lazy("postgres://postgres@127.0.0.1:1/x", Some(1)).unwrap();
    let (_c, clock) = clock();
    let err = KeyRing::open_with(&store, SigningAlg::ES256, clock, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IssueError::Store(e) if e.is_unavailable()),
        "{err}"
    );
}

#[test]
fn signing_alg_names_round_trip() {
    for alg in [
        SigningAlg::ES256,
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::EdDSA,
    ] {
        assert_eq!(alg.as_str().parse::<SigningAlg>().unwrap(), alg);
        assert_eq!(serde_json::to_string(&alg).unwrap(), format!("\"{alg}\""));
    }
    assert!("HS256".parse::<SigningAlg>().is_err());
    assert_eq!(SigningAlg::default(), SigningAlg::ES256);
}

#[tokio::test]
async fn the_refresher_picks_up_rotations_and_reports_key_age() {
    let (_db, store) = migrated(TestDbKind::Sqlite);
    let (fixed, clock) = clock();
    let ring = Arc::new(
        KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
            .await
            .unwrap(),
    );
    let metrics = Arc::new(crate::metrics::Metrics::new());
    fixed.advance(120);
    let promoted = rotate_with(
        &store,
        SigningAlg::ES256,
        clock,
        Duration::from_secs(60),
        None,
        NEXT_KEY_MIN_AGE,
    )
    .await
    .unwrap();
    let task = spawn_refresher(
        ring.clone(),
        store.clone(),
        Duration::from_secs(1),
        None,
        metrics.clone(),
    );
    for _ in 0..50 {
        if ring.current_kid() == promoted.kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(ring.current_kid(), promoted.kid);
    // The promoted key was created at T0 (as next) and it is now T0 + 120.
    assert_eq!(metrics.signing_key_age.get(), 120.0);
}

/// An audience's algorithm without keys yet is refused by name (503 upstream), and keys
/// created for it sign at once, published beside the default algorithm's.
#[tokio::test]
async fn each_algorithm_in_use_has_its_own_keys() {
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        let (_fixed, clock) = clock();
        let ring = KeyRing::open_with(&store, SigningAlg::ES256, clock.clone(), None)
            .await
            .unwrap();
        let claims = serde_json::json!({ "aud": "api" });
        assert!(matches!(
            ring.sign_with(&claims, SigningAlg::RS256),
            Err(IssueError::NoKeyFor {
                alg: SigningAlg::RS256
            })
        ));
        assert_eq!(
            crate::exchange::ExchangeError::from_signing(IssueError::NoKeyFor {
                alg: SigningAlg::RS256
            })
            .http_status(),
            503
        );
        ring.ensure_algs(&store, &[SigningAlg::RS256])
            .await
            .unwrap();
        let rs = ring.sign_with(&claims, SigningAlg::RS256).unwrap();
        let es = ring.sign(&claims).unwrap();
        assert_eq!(
            verify(&ring, rs.token.expose(), SigningAlg::RS256)["aud"],
            "api"
        );
        assert_eq!(
            verify(&ring, es.token.expose(), SigningAlg::ES256)["aud"],
            "api"
        );
        assert_eq!(
            jwks_kids(&ring).len(),
            4,
            "a current and a next key of each"
        );
    }
}
