use std::time::{Duration, Instant};

use super::*;
use crate::store::audit::{events_by_jti, recent_events};
use crate::store::testing::{fresh_database_url, test_kinds, TestDbKind};

fn event(n: usize, outcome: AuditOutcome) -> AuditEvent {
    AuditEvent {
        at: 1_800_000_000,
        grant: "token_exchange",
        client_id: Some("orders-service".into()),
        issuer: Some("acme-oidc".into()),
        subject: Some(format!("user-{n}")),
        actor: Some("orders-service".into()),
        audience: Some("https://api.orders.example".into()),
        scopes: Some("orders:read".into()),
        outcome,
        reason: (outcome != AuditOutcome::Issued).then(|| "expired".into()),
        detail: (outcome != AuditOutcome::Issued).then(|| "subject token expired".into()),
        jti: (outcome == AuditOutcome::Issued).then(|| format!("jti-{n}")),
        subject_token_sha256: Some("9f86d081884c7d65".into()),
    }
}

fn migrated(kind: TestDbKind) -> (crate::store::testing::TestDatabase, Store) {
    let db = fresh_database_url(kind).unwrap();
    let store = Store::connect(&db.url, None).unwrap();
    store.run_migrations().unwrap();
    (db, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_all_committed_in_group_commits() {
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        let metrics = Arc::new(Metrics::new());
        let log = AuditLog::start(store.clone(), metrics.clone());
        let n = 2000;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let log = log.clone();
                let outcome = if i % 3 == 0 {
                    AuditOutcome::Refused
                } else {
                    AuditOutcome::Issued
                };
                tokio::spawn(async move { log.record(event(i, outcome)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // Every record returned Ok, so every row is already committed.
        let rows = store.run(move |c| recent_events(c, 10_000)).await.unwrap();
        assert_eq!(rows.len(), n, "{kind:?}");
        assert_eq!(metrics.audit_queue_depth.get(), 0);
        let by_jti = store.run(|c| events_by_jti(c, "jti-1")).await.unwrap();
        assert_eq!(by_jti.len(), 1);
        let row = &by_jti[0];
        assert_eq!(row.grant_type, "token_exchange");
        assert_eq!(row.outcome, "issued");
        assert_eq!(row.subject.as_deref(), Some("user-1"));
        assert_eq!(row.reason, None);
        assert!(rows.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        log.shutdown().await;
    }
}

#[tokio::test]
async fn a_record_against_an_unreachable_database_fails_quickly() {
    let store = Store::connect_lazy("postgres://postgres@127.0.0.1:1/x", Some(2)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let log = AuditLog::start(store, metrics.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(event(i, AuditOutcome::Issued)).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("unavailable"), "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(metrics.audit_queue_depth.get(), 0);
}

#[tokio::test]
async fn shutdown_flushes_queued_events_and_refuses_later_ones() {
    let (_db, store) = migrated(TestDbKind::Sqlite);
    let log = AuditLog::start(store.clone(), Arc::new(Metrics::new()));
    let pending: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(event(i, AuditOutcome::Issued)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    log.shutdown().await;
    let mut committed = 0;
    for t in pending {
        if t.await.unwrap().is_ok() {
            committed += 1;
        }
    }
    let rows = store.run(|c| recent_events(c, 100)).await.unwrap();
    assert_eq!(
        rows.len(),
        committed,
        "a record that returned Ok is in the table"
    );
    assert!(log.record(event(99, AuditOutcome::Issued)).await.is_err());
}

#[tokio::test]
async fn prune_deletes_only_rows_older_than_the_cutoff_across_many_windows() {
    use crate::store::audit::{insert_events, prune_before, NewAuditRow};
    use crate::store::testing::audit_row_at;
    for kind in test_kinds() {
        let (_db, store) = migrated(kind);
        assert_eq!(
            store.run(|c| prune_before(c, 2_000)).await.unwrap(),
            0,
            "empty table"
        );
        // 12,000 rows, ten per second from t=1000; two recorded out of order: row 3 is
        // new (t=5000), row 11,000 is old (t=500).
        let ats: Vec<i64> = (0..12_000i64)
            .map(|i| match i {
                3 => 5_000,
                11_000 => 500,
                _ => 1_000 + i / 10,
            })
            .collect();
        let inserted = ats.clone();
        store
            .run(move |c| {
                let rows: Vec<NewAuditRow<'_>> =
                    inserted.iter().map(|&at| audit_row_at(at)).collect();
                Ok(insert_events(c, &rows)?)
            })
            .await
            .unwrap();
        let cutoff = 2_000;
        let deleted = store.run(move |c| prune_before(c, cutoff)).await.unwrap();
        let left = store.run(|c| recent_events(c, 20_000)).await.unwrap();
        let newer = ats.iter().filter(|&&at| at >= cutoff).count();
        assert!(
            left.iter().filter(|r| r.at >= cutoff).count() == newer,
            "{kind:?}: no row at or after the cutoff is deleted"
        );
        let old_left: Vec<i64> = left
            .iter()
            .filter(|r| r.at < cutoff)
            .map(|r| r.at)
            .collect();
        // The out-of-order old row past the boundary may be left for the next prune.
        assert!(
            old_left.is_empty() || old_left == [500],
            "{kind:?}: {old_left:?}"
        );
        assert_eq!(deleted as usize + left.len(), ats.len(), "{kind:?}");
        assert!(deleted >= 9_999, "{kind:?}: {deleted}");
    }
}
