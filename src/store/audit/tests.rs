//! `search_events`, `events_after` and `events_with_ids` against a real database of each
//! backend: every filter alone and in combination, checked against the same filter
//! applied to the planted rows in Rust.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

use super::*;
use crate::store::testing::{fresh_database_url, test_kinds, TestDbKind};
use crate::store::{Store, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

fn migrated(kind: TestDbKind) -> (crate::store::testing::TestDatabase, Store) {
    let db = fresh_database_url(kind).unwrap();
    let store = Store::connect(&db.url, None).unwrap();
    store.run_migrations().unwrap();
    (db, store)
}

/// The kinds to run on, saying so when PostgreSQL is left out.
fn kinds() -> Vec<TestDbKind> {
    let kinds = test_kinds();
    if !kinds.contains(&TestDbKind::Postgres) {
        eprintln!("SKIPPED (PostgreSQL half): needs TESSERA_TEST_DATABASE_URL");
    }
    kinds
}

/// Runs `f` on a pooled connection of `store`, here on the test's thread.
trait WithConn {
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
}

impl WithConn for Store {
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.get()?;
        f(&mut conn)
    }
}

/// One planted row, owned, so the oracle can filter the same values.
#[derive(Debug, Clone)]
struct Planted {
    at: i64,
    client: Option<&'static str>,
    subject: Option<String>,
    issuer: Option<&'static str>,
    audience: Option<&'static str>,
    actor: Option<&'static str>,
    outcome: &'static str,
    reason: Option<&'static str>,
}

const CLIENTS: [&str; 3] = ["orders", "billing", "batch"];
const ISSUERS: [&str; 2] = ["acme-oidc", "globex-saml"];
const AUDIENCES: [&str; 4] = [
    "https://api.orders.example",
    "https://api.billing.example",
    "https://api.batch.example",
    "https://api.ledger.example",
];
const ACTORS: [Option<&str>; 3] = [None, Some("gateway"), None];
const OUTCOMES: [&str; 5] = ["issued", "issued", "refused", "error", "ok"];
const STEPS: [&str; 2] = ["expired", "client_secret_mismatch"];

/// 240 rows, two per second from t=1000, plus rows sharing one second; the columns
/// cycle with coprime periods so every combination of values occurs, and some rows
/// lack a client (failed authentication) or an issuer.
fn planted() -> Vec<Planted> {
    (0..240usize)
        .map(|i| {
            let outcome = OUTCOMES[i % 5];
            Planted {
                at: 1_000 + (i as i64) / 2,
                client: (i % 11 != 10).then(|| CLIENTS[i % 3]),
                subject: Some(format!("user-{}", i % 7)),
                issuer: (i % 13 != 12).then(|| ISSUERS[i % 2]),
                audience: Some(AUDIENCES[i % 4]),
                actor: ACTORS[i % 3],
                outcome,
                reason: matches!(outcome, "refused" | "error").then(|| STEPS[i % 2]),
            }
        })
        .collect()
}

fn insert(store: &Store, rows: &[Planted]) {
    let rows = rows.to_vec();
    store
        .with_conn(move |conn| {
            let new: Vec<NewAuditRow<'_>> = rows
                .iter()
                .map(|p| NewAuditRow {
                    at: p.at,
                    grant_type: "token_exchange",
                    client_id: p.client,
                    issuer: p.issuer,
                    subject: p.subject.as_deref(),
                    actor: p.actor,
                    audience: p.audience,
                    scopes: Some("read"),
                    outcome: p.outcome,
                    reason: p.reason,
                    detail: p.reason.map(|_| "what was compared"),
                    jti: None,
                    subject_token_sha256: None,
                    requests: 1,
                })
                .collect();
            Ok(insert_events(conn, &new)?)
        })
        .unwrap();
}

/// The filter applied in Rust: ids (1-based insertion order), newest first.
fn expected(rows: &[Planted], f: &AuditFilter, limit: usize) -> Vec<i64> {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let mut ids: Vec<(i64, i64)> = rows
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            eq(&f.client, p.client)
                && eq(&f.subject, p.subject.as_deref())
                && eq(&f.issuer, p.issuer)
                && eq(&f.audience, p.audience)
                && eq(&f.actor, p.actor)
                && eq(&f.outcome, Some(p.outcome))
                && eq(&f.step, p.reason)
                && f.since.is_none_or(|s| p.at >= s)
                && f.until.is_none_or(|u| p.at < u)
        })
        .map(|(i, p)| (p.at, i as i64 + 1))
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids.into_iter().take(limit).map(|(_, id)| id).collect()
}

/// Every filter at once, with the values of a row that has them all (so the answer is
/// not trivially empty), and a window around it.
fn every_filter(rows: &[Planted]) -> AuditFilter {
    let p = rows
        .iter()
        .find(|p| {
            p.client.is_some() && p.issuer.is_some() && p.actor.is_some() && p.reason.is_some()
        })
        .unwrap();
    let s = |v: Option<&str>| v.map(str::to_owned);
    AuditFilter {
        client: s(p.client),
        subject: p.subject.clone(),
        issuer: s(p.issuer),
        audience: s(p.audience),
        actor: s(p.actor),
        outcome: Some(p.outcome.to_owned()),
        step: s(p.reason),
        since: Some(p.at),
        until: Some(p.at + 100),
    }
}

fn filters(rows: &[Planted]) -> Vec<(&'static str, AuditFilter)> {
    let s = |v: &str| Some(v.to_owned());
    vec![
        ("every filter", every_filter(rows)),
        ("nothing", AuditFilter::default()),
        (
            "client",
            AuditFilter {
                client: s("orders"),
                ..Default::default()
            },
        ),
        (
            "subject",
            AuditFilter {
                subject: s("user-3"),
                ..Default::default()
            },
        ),
        (
            "issuer",
            AuditFilter {
                issuer: s("globex-saml"),
                ..Default::default()
            },
        ),
        (
            "audience",
            AuditFilter {
                audience: s("https://api.ledger.example"),
                ..Default::default()
            },
        ),
        (
            "actor",
            AuditFilter {
                actor: s("gateway"),
                ..Default::default()
            },
        ),
        (
            "outcome",
            AuditFilter {
                outcome: s("refused"),
                ..Default::default()
            },
        ),
        (
            "outcome ok",
            AuditFilter {
                outcome: s("ok"),
                ..Default::default()
            },
        ),
        (
            "step",
            AuditFilter {
                step: s("expired"),
                ..Default::default()
            },
        ),
        // 1000 + 40/2: the two rows of second 1020 are in, the second 1019 is out.
        (
            "since, inclusive",
            AuditFilter {
                since: Some(1_020),
                ..Default::default()
            },
        ),
        // Until is exclusive: rows of second 1030 are out.
        (
            "until, exclusive",
            AuditFilter {
                until: Some(1_030),
                ..Default::default()
            },
        ),
        (
            "window",
            AuditFilter {
                since: Some(1_010),
                until: Some(1_050),
                ..Default::default()
            },
        ),
        (
            "empty window",
            AuditFilter {
                since: Some(1_050),
                until: Some(1_050),
                ..Default::default()
            },
        ),
        (
            "client and window",
            AuditFilter {
                client: s("billing"),
                since: Some(1_005),
                until: Some(1_100),
                ..Default::default()
            },
        ),
        (
            "client and subject",
            AuditFilter {
                client: s("batch"),
                subject: s("user-2"),
                ..Default::default()
            },
        ),
        (
            "step and outcome",
            AuditFilter {
                step: s("client_secret_mismatch"),
                outcome: s("error"),
                ..Default::default()
            },
        ),
        (
            "no such client",
            AuditFilter {
                client: s("nobody"),
                ..Default::default()
            },
        ),
        // Values are matched exactly, never as patterns.
        (
            "a pattern is a value",
            AuditFilter {
                client: s("%"),
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn search_applies_every_filter_and_their_combination_newest_first() {
    for kind in kinds() {
        let (_db, store) = migrated(kind);
        let rows = planted();
        insert(&store, &rows);
        for (name, filter) in filters(&rows) {
            for limit in [1_000usize, 5] {
                let f = filter.clone();
                let got: Vec<i64> = store
                    .with_conn(move |c| search_events(c, &f, limit as i64))
                    .unwrap()
                    .iter()
                    .map(|r| r.id)
                    .collect();
                let want = expected(&rows, &filter, limit);
                assert_eq!(got, want, "{kind:?}: {name} (limit {limit})");
            }
        }
        // The fixture is not degenerate: the every-filter case matches something.
        assert!(!expected(&rows, &every_filter(&rows), 1_000).is_empty());
    }
}

#[test]
fn search_returns_the_columns_as_stored() {
    for kind in kinds() {
        let (_db, store) = migrated(kind);
        insert(&store, &planted()[..3]);
        let f = AuditFilter {
            outcome: Some("refused".into()),
            ..Default::default()
        };
        let rows = store.with_conn(move |c| search_events(c, &f, 10)).unwrap();
        assert_eq!(rows.len(), 1, "{kind:?}");
        let r = &rows[0];
        assert_eq!(
            (r.id, r.at, r.client_id.as_deref(), r.reason.as_deref()),
            (3, 1_001, Some("batch"), Some("expired")),
            "{kind:?}"
        );
        assert_eq!(r.detail.as_deref(), Some("what was compared"), "{kind:?}");
        assert_eq!(r.subject.as_deref(), Some("user-2"), "{kind:?}");
    }
}

#[test]
fn followers_read_rows_after_an_id_and_rows_by_id() {
    for kind in kinds() {
        let (_db, store) = migrated(kind);
        insert(&store, &planted()[..10]);
        let after = store.with_conn(|c| events_after(c, 4, 3)).unwrap();
        assert_eq!(
            after.iter().map(|r| r.id).collect::<Vec<_>>(),
            [5, 6, 7],
            "{kind:?}: oldest first, bounded"
        );
        let none = store.with_conn(|c| events_after(c, 10, 100)).unwrap();
        assert!(none.is_empty(), "{kind:?}");
        let some = store
            .with_conn(|c| events_with_ids(c, &[9, 2, 42]))
            .unwrap();
        assert_eq!(
            some.iter().map(|r| r.id).collect::<Vec<_>>(),
            [2, 9],
            "{kind:?}"
        );
        let newest = store.with_conn(|c| recent_events(c, 2)).unwrap();
        assert_eq!(
            newest.iter().map(|r| r.id).collect::<Vec<_>>(),
            [10, 9],
            "{kind:?}"
        );
    }
}

#[derive(QueryableByName)]
struct Reason {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    detail: Option<String>,
}

/// Rows written before `detail` existed kept "label: text" in `reason`; the migration
/// splits those and leaves any other shape alone.
#[test]
fn the_migration_splits_old_combined_reasons() {
    for kind in kinds() {
        let (_db, store) = migrated(kind);
        let mut conn = store.get().unwrap();
        let mut revert = || match &mut *conn {
            DbConn::Sqlite(c) => c
                .revert_last_migration(SQLITE_MIGRATIONS)
                .map(|v| v.to_string()),
            DbConn::Pg(c) => c
                .revert_last_migration(POSTGRES_MIGRATIONS)
                .map(|v| v.to_string()),
        };
        // Back to before 000005: the later migrations first, newest first.
        let mut reverted = String::new();
        for _ in 0..10 {
            reverted = revert().unwrap();
            if reverted.ends_with("000005") {
                break;
            }
        }
        assert!(
            reverted.ends_with("000005"),
            "{kind:?}: reverted {reverted}"
        );
        for (i, reason) in [
            "expired: subject token: expired at 1700000000 (now 1700000100)",
            "plain_label",
            "Not a label: text",
            "bad_signature: ",
        ]
        .iter()
        .enumerate()
        {
            diesel::sql_query(format!(
                "INSERT INTO audit_events (at, grant_type, outcome, reason) \
                 VALUES ({i}, 'token_exchange', 'refused', '{reason}')"
            ))
            .execute(&mut *conn)
            .unwrap();
        }
        drop(conn);
        store.run_migrations().unwrap();
        let mut conn = store.get().unwrap();
        let rows: Vec<Reason> =
            diesel::sql_query("SELECT reason, detail FROM audit_events ORDER BY id")
                .load(&mut *conn)
                .unwrap();
        let got: Vec<(Option<String>, Option<String>)> =
            rows.into_iter().map(|r| (r.reason, r.detail)).collect();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            got,
            [
                (
                    s("expired"),
                    s("subject token: expired at 1700000000 (now 1700000100)")
                ),
                (s("plain_label"), None),
                (s("Not a label: text"), None),
                (s("bad_signature"), s("")),
            ],
            "{kind:?}"
        );
    }
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// Searches read through the audit indexes in the order they print, never sorting the
/// table (SQLite's planner needs no statistics for this; PostgreSQL's choice depends on
/// the table's size, so its plans were checked on a million rows: see the migration).
#[test]
fn sqlite_searches_use_the_audit_indexes() {
    let (_db, store) = migrated(TestDbKind::Sqlite);
    let mut conn = store.get().unwrap();
    let order = "ORDER BY at DESC, id DESC LIMIT 100";
    for (filter, index) in [
        ("reason = 'expired'", "audit_events_reason_at"),
        ("reason = 'expired' AND at >= 5", "audit_events_reason_at"),
        ("at >= 5 AND at < 9", "audit_events_at"),
        ("client_id = 'c' AND at >= 5", "audit_events_at"),
        ("subject = 's'", "audit_events_at"),
        ("issuer = 'i' AND outcome = 'refused'", "audit_events_at"),
        ("1 = 1", "audit_events_at"),
    ] {
        let plan: Vec<PlanLine> = diesel::sql_query(format!(
            "EXPLAIN QUERY PLAN SELECT * FROM audit_events WHERE {filter} {order}"
        ))
        .load(&mut *conn)
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|l| l.detail).collect();
        assert!(plan.iter().any(|l| l.contains(index)), "{filter}: {plan:?}");
        assert!(
            !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "{filter}: sorted instead of read in order: {plan:?}"
        );
    }
}
