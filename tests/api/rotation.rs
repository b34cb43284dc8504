//! Rotation by construction (SPEC §6): scheduled rotation once per interval between the
//! replicas, never a token signed by a key another replica does not publish, and a replica
//! that cannot read the key state stops issuing.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const INTERVAL: u64 = 3600;

fn scheduled(c: &mut tessera::config::Config) {
    c.tokens.rotation_interval = Some(Duration::from_secs(INTERVAL));
    c.tokens.key_refresh_interval = Duration::from_millis(100);
    c.tokens.publish_guard = Duration::from_secs(2);
}

/// Exchanges at `base` (a replica's address); the issued token's `kid`.
async fn kid_issued_at(http: &reqwest::Client, base: &str, token: &str) -> String {
    let resp = http
        .post(format!("{base}/token"))
        .basic_auth("orders-service", Some(ORDERS_SECRET))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", ID_TOKEN),
            ("audience", "inventory"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    header.kid.unwrap()
}

async fn published_at(http: &reqwest::Client, base: &str) -> BTreeSet<String> {
    let jwks: Value = http
        .get(format!("{base}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn replicas_rotate_on_schedule_once_per_interval_and_sign_only_with_published_keys() {
    for kind in backends() {
        let app = TestApp::builder(kind).configure(scheduled).spawn().await;
        let replicas = [app.spawn_replica().await, app.spawn_replica().await];
        let bases: Vec<String> = std::iter::once(app.address.clone())
            .chain(replicas.iter().map(|r| r.address.clone()))
            .collect();
        let t0 = tessera::clock::Clock::now(&*app.clock);
        let token = app
            .issuer
            .id_token()
            .sub("alice")
            .lifetime(3 * 86400)
            .sign();
        let mut currents = vec![kid_issued_at(&app.http, &bases[0], &token).await];

        for round in 1..=3 {
            // The replicas have had time to publish the next key (several refreshes).
            tokio::time::sleep(Duration::from_millis(500)).await;
            app.clock.advance(INTERVAL as i64);
            let due = std::time::Instant::now();
            // Every replica signs with the new key within a few refreshes.
            let mut seen = BTreeSet::new();
            for _ in 0..100 {
                seen.clear();
                for base in &bases {
                    let kid = kid_issued_at(&app.http, base, &token).await;
                    // Whatever key a replica signs with, every replica publishes it.
                    for other in &bases {
                        assert!(
                            published_at(&app.http, other).await.contains(&kid),
                            "{kind:?} round {round}: {kid} signed at {base} is not published at {other}"
                        );
                    }
                    seen.insert(kid);
                }
                if seen.len() == 1 && !seen.contains(currents.last().unwrap()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(seen.len(), 1, "{kind:?} round {round}: {seen:?}");
            eprintln!(
                "{kind:?} round {round}: every replica signs with the new key {:?} after the \
                 rotation fell due (key_refresh_interval 100 ms)",
                due.elapsed()
            );
            currents.push(seen.into_iter().next().unwrap());
        }

        // One rotation per interval between the three replicas, each at its due time; the
        // key retired first is gone: its publication (max_lifetime + 60 s) ended.
        let keys = tessera::issue::list_keys(&app.store).await.unwrap();
        let state = |s| keys.iter().filter(move |k| k.state == s);
        use tessera::issue::KeyState::{Current, Next, Retired};
        let current = state(Current).next().unwrap();
        assert_eq!(
            current.activated_at,
            Some(t0 + 3 * INTERVAL as i64),
            "{kind:?}"
        );
        let retired_at: BTreeSet<_> = state(Retired).map(|k| k.retired_at.unwrap()).collect();
        let due = |n: i64| t0 + n * INTERVAL as i64;
        assert_eq!(retired_at, [due(2), due(3)].into(), "{kind:?}: {keys:?}");
        assert_eq!(
            (state(Next).count(), keys.len()),
            (1, 4),
            "{kind:?}: {keys:?}"
        );
        let distinct: BTreeSet<_> = currents.iter().collect();
        assert_eq!(
            distinct.len(),
            4,
            "a new current key each round: {currents:?}"
        );
        // A retired key stays published while tokens it signed may live.
        let jwks = published_at(&app.http, &bases[1]).await;
        assert!(
            jwks.contains(&currents[2]),
            "the key retired an interval ago is published"
        );
    }
}

/// A replica that cannot read the key state for longer than the publish guard stops
/// issuing (503, not ready) rather than sign with a key that may have been retired, and
/// issues again once it can read it.
#[tokio::test]
async fn a_replica_that_cannot_read_the_key_state_stops_issuing_until_it_can() {
    for kind in backends() {
        let app = TestApp::builder(kind)
            .configure(|c| {
                c.tokens.key_refresh_interval = Duration::from_millis(100);
                c.tokens.publish_guard = Duration::from_secs(2);
            })
            .spawn()
            .await;
        let token = app.issuer.id_token().sub("alice").lifetime(3600).sign();
        let exchange = || app.exchange(&token, ID_TOKEN, &[("audience", "inventory")]);
        assert_eq!(exchange().await.status(), StatusCode::OK);

        let rename = |from: &'static str, to: &'static str| {
            app.store.run(move |conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query(format!("ALTER TABLE {from} RENAME TO {to}")).execute(conn)?;
                Ok(())
            })
        };
        rename("signing_keys", "signing_keys_away").await.unwrap();
        tokio::time::sleep(Duration::from_millis(2600)).await;

        let resp = exchange().await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{kind:?}");
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(body.get("access_token").is_none());
        let row = app.audit_rows().await.remove(0);
        assert_eq!(
            (row.outcome.as_str(), row.reason.as_deref()),
            ("error", Some("issue"))
        );
        assert!(audit_says(&row, "signing_keys_unavailable"), "{row:?}");
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ready: Value = ready.json().await.unwrap();
        assert!(
            ready["signing_keys"]
                .as_str()
                .unwrap()
                .contains("not signing"),
            "{ready}"
        );

        rename("signing_keys_away", "signing_keys").await.unwrap();
        let mut status = StatusCode::SERVICE_UNAVAILABLE;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = exchange().await.status();
            if status == StatusCode::OK {
                break;
            }
        }
        assert_eq!(status, StatusCode::OK, "{kind:?}: issues again");
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    }
}
