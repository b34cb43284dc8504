//! A measurement, not a test (ignored; `scripts/audit-search-bench` runs it): how long
//! `tessera audit search` takes over a million audit rows, with and without the search
//! indexes, on SQLite and (with `TESSERA_TEST_DATABASE_URL`) PostgreSQL, and what the
//! indexes cost the audit writer's inserts. Prints a table; asserts nothing about time.
//! `TESSERA_BENCH_MORE_INDEXES=1` adds (client_id, at) and (subject, at), the indexes
//! the migration decided against, to see what they would buy and cost.
//!
//! The rows are shaped like a busy broker's month: `TESSERA_BENCH_ROWS` (default one
//! million) spread evenly over 30 days in id order, 500 clients of very unequal traffic,
//! 50,000 subjects, 10 issuers, 20 audiences, an actor on 30 %, 90 % issued, 8 % refused
//! (15 step labels, each with an account in `detail`), 2 % error; inserted as the writer
//! does, 512 rows per transaction.

use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera::clock::{Clock, SystemClock};
use tessera::store::audit::{insert_events, search_events, AuditFilter, NewAuditRow};
use tessera::store::testing::{fresh_database_url, test_kinds, TestDbKind};
use tessera::store::Store;

use crate::helpers::kind_name;

const DAY: i64 = 86_400;
const CLIENTS: usize = 500;
const BATCH: usize = 512;
const STEPS: [&str; 15] = [
    "expiry",
    "signature",
    "key",
    "audience",
    "client",
    "scope",
    "target",
    "revocation",
    "replay",
    "not_before",
    "mapping",
    "may_act",
    "issuer",
    "claims",
    "typ",
];
/// The indexes the search migration adds (name, columns and predicate), and with
/// `TESSERA_BENCH_MORE_INDEXES` set the two it decided against, to measure them.
fn indexes() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![
        ("audit_events_at", "(at)"),
        (
            "audit_events_reason_at",
            "(reason, at) WHERE reason IS NOT NULL",
        ),
    ];
    if std::env::var_os("TESSERA_BENCH_MORE_INDEXES").is_some() {
        all.push(("audit_events_client_at", "(client_id, at)"));
        all.push(("audit_events_subject_at", "(subject, at)"));
    }
    all
}

/// Client `k`'s traffic falls off steeply with `k`: client-0 is the busiest.
fn client(rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    ((CLIENTS as f64) * u.powi(3)) as usize
}

struct Owned {
    at: i64,
    client: Option<String>,
    issuer: String,
    subject: String,
    actor: Option<String>,
    audience: String,
    outcome: &'static str,
    reason: Option<&'static str>,
    detail: Option<String>,
    jti: Option<String>,
    sha: String,
    grant: &'static str,
}

fn rows(rng: &mut StdRng, from: i64, step_ms: i64, first: usize, n: usize) -> Vec<Owned> {
    (first..first + n)
        .map(|i| {
            let at = from + (i as i64 * step_ms) / 1000;
            let roll = rng.random_range(0..100);
            let (outcome, reason) = match roll {
                0..90 => ("issued", None),
                90..98 => ("refused", Some(STEPS[rng.random_range(0..STEPS.len())])),
                _ => ("error", Some("issuer_unavailable")),
            };
            let jti = (outcome == "issued").then(|| {
                let ts = uuid::Timestamp::from_unix(uuid::NoContext, at as u64, 0);
                uuid::Uuid::new_v7(ts).to_string()
            });
            Owned {
                at,
                client: (rng.random_range(0..200) != 0).then(|| format!("client-{}", client(rng))),
                issuer: format!("issuer-{}", rng.random_range(0..10u32).pow(2) / 10),
                subject: format!("user-{}", rng.random_range(0..50_000)),
                actor: (rng.random_range(0..10) < 3)
                    .then(|| format!("svc-{}", rng.random_range(0..50))),
                audience: format!("https://api-{}.example", rng.random_range(0..20)),
                outcome,
                reason,
                detail: reason.map(|r| format!("subject token: {r}: checked at {at}")),
                jti,
                sha: format!("{:016x}", rng.random::<u64>()),
                grant: if roll % 10 == 0 {
                    "jwt_bearer"
                } else {
                    "token_exchange"
                },
            }
        })
        .collect()
}

/// Inserts `n` rows from row number `first`, `BATCH` per transaction; the time taken.
async fn insert(
    store: &Store,
    rng: &mut StdRng,
    from: i64,
    step_ms: i64,
    first: usize,
    n: usize,
) -> Duration {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let chunk = rows(rng, from, step_ms, first + done, BATCH.min(n - done));
        done += chunk.len();
        store
            .run(move |conn| {
                let new: Vec<NewAuditRow<'_>> = chunk
                    .iter()
                    .map(|o| NewAuditRow {
                        at: o.at,
                        grant_type: o.grant,
                        client_id: o.client.as_deref(),
                        issuer: Some(&o.issuer),
                        subject: Some(&o.subject),
                        actor: o.actor.as_deref(),
                        audience: Some(&o.audience),
                        scopes: Some("orders:read inventory:read"),
                        outcome: o.outcome,
                        reason: o.reason,
                        detail: o.detail.as_deref(),
                        jti: o.jti.as_deref(),
                        subject_token_sha256: Some(&o.sha),
                        requests: 1,
                    })
                    .collect();
                Ok(insert_events(conn, &new)?)
            })
            .await
            .unwrap();
    }
    started.elapsed()
}

async fn sql(store: &Store, statement: String) -> Duration {
    let started = Instant::now();
    store
        .run(move |conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(statement).execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    started.elapsed()
}

async fn set_indexes(store: &Store, present: bool) -> Duration {
    let mut took = Duration::ZERO;
    for (name, columns) in indexes() {
        let statement = if present {
            format!("CREATE INDEX {name} ON audit_events {columns}")
        } else {
            format!("DROP INDEX {name}")
        };
        took += sql(store, statement).await;
    }
    took
}

/// PostgreSQL plans by statistics, which autovacuum keeps after a bulk load; SQLite's
/// planner runs without any here, as in production (nothing runs ANALYZE there).
async fn analyze(store: &Store, kind: TestDbKind) {
    if kind == TestDbKind::Postgres {
        sql(store, "ANALYZE audit_events".into()).await;
    }
}

/// Median of `runs` timings of `f`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One search through the real binary: (median wall time of 5 runs, rows printed).
fn through_binary(url: &str, args: &[String]) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut printed = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["audit", "search", "--json"])
            .args(args)
            .env_remove("TESSERA_CONFIG")
            .env_remove("RUST_LOG")
            .env("TESSERA_DATABASE__URL", url)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed = out.stdout.iter().filter(|b| **b == b'\n').count();
    }
    (median(times), printed)
}

/// The same search in process (no process start, no output): median of 5.
async fn in_process(store: &Store, filter: &AuditFilter) -> Duration {
    let mut times = Vec::new();
    for _ in 0..5 {
        let f = filter.clone();
        let started = Instant::now();
        store.run(move |c| search_events(c, &f, 100)).await.unwrap();
        times.push(started.elapsed());
    }
    median(times)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The searches measured: (label, CLI arguments, the same as a store filter).
fn searches(now: i64) -> Vec<(&'static str, Vec<String>, AuditFilter)> {
    let s = |v: &str| Some(v.to_owned());
    let args = |a: &[&str]| a.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    vec![
        (
            "--client client-0 --since 1d (busiest client)",
            args(&["--client", "client-0", "--since", "1d"]),
            AuditFilter {
                client: s("client-0"),
                since: Some(now - DAY),
                ..Default::default()
            },
        ),
        (
            "--client client-400 --since 7d (a quiet client)",
            args(&["--client", "client-400", "--since", "7d"]),
            AuditFilter {
                client: s("client-400"),
                since: Some(now - 7 * DAY),
                ..Default::default()
            },
        ),
        (
            "--client client-400 --since 30d --until 29d",
            args(&["--client", "client-400", "--since", "30d", "--until", "29d"]),
            AuditFilter {
                client: s("client-400"),
                since: Some(now - 30 * DAY),
                until: Some(now - 29 * DAY),
                ..Default::default()
            },
        ),
        (
            "--subject user-4242",
            args(&["--subject", "user-4242"]),
            AuditFilter {
                subject: s("user-4242"),
                ..Default::default()
            },
        ),
        (
            "--step revocation --since 7d",
            args(&["--step", "revocation", "--since", "7d"]),
            AuditFilter {
                step: s("revocation"),
                since: Some(now - 7 * DAY),
                ..Default::default()
            },
        ),
        (
            "--issuer issuer-8 --outcome refused (no index)",
            args(&["--issuer", "issuer-8", "--outcome", "refused"]),
            AuditFilter {
                issuer: s("issuer-8"),
                outcome: s("refused"),
                ..Default::default()
            },
        ),
        (
            "--actor nobody (no index, no match: whole table)",
            args(&["--actor", "nobody"]),
            AuditFilter {
                actor: s("nobody"),
                ..Default::default()
            },
        ),
        (
            "--since 1h",
            args(&["--since", "1h"]),
            AuditFilter {
                since: Some(now - 3_600),
                ..Default::default()
            },
        ),
        ("(no filter)", args(&[]), AuditFilter::default()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement over a million rows; run by scripts/audit-search-bench"]
async fn audit_search_over_a_million_rows() {
    let n: usize = std::env::var("TESSERA_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let kinds = test_kinds();
    if !kinds.contains(&TestDbKind::Postgres) {
        eprintln!("SKIPPED (PostgreSQL half): needs TESSERA_TEST_DATABASE_URL");
    }
    for kind in kinds {
        let db = fresh_database_url(kind).unwrap();
        let store = Store::connect(&db.url, Some(4)).unwrap();
        store.run_migrations().unwrap();
        // The migration's indexes are there; the others, when asked for, from the start.
        for (name, columns) in indexes().into_iter().skip(2) {
            sql(
                &store,
                format!("CREATE INDEX {name} ON audit_events {columns}"),
            )
            .await;
        }
        let now = SystemClock.now();
        let from = now - 30 * DAY;
        let step_ms = 30 * DAY * 1000 / n as i64;
        let mut rng = StdRng::seed_from_u64(13);
        let name = kind_name(kind);
        println!("\n== {name}: {n} audit rows over 30 days ==");

        let took = insert(&store, &mut rng, from, step_ms, 0, n).await;
        println!(
            "fill, with the {} search indexes: {:.1} s ({:.0} rows/s, {BATCH} per transaction)",
            indexes().len(),
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        analyze(&store, kind).await;

        let mut with = Vec::new();
        for (label, args, filter) in searches(now) {
            let (binary, printed) = through_binary(&db.url, &args);
            with.push((label, binary, printed, in_process(&store, &filter).await));
        }
        let dropped = set_indexes(&store, false).await;
        analyze(&store, kind).await;
        let mut without = Vec::new();
        for (_, args, filter) in searches(now) {
            let (binary, _) = through_binary(&db.url, &args);
            without.push((binary, in_process(&store, &filter).await));
        }
        println!("dropping the {} indexes: {}", indexes().len(), ms(dropped));
        println!(
            "{:<50} {:>6} {:>13} {:>13} {:>13} {:>13}",
            "audit search", "rows", "binary", "query", "binary, no ix", "query, no ix"
        );
        for ((label, binary, printed, query), (binary0, query0)) in with.iter().zip(&without) {
            println!(
                "{label:<50} {printed:>6} {:>13} {:>13} {:>13} {:>13}",
                ms(*binary),
                ms(*query),
                ms(*binary0),
                ms(*query0)
            );
        }

        // What the indexes cost the writer: the same extra rows (5 % of the table), at the
        // end of the month, without and with them, twice each, alternating.
        let extra = n / 20;
        let mut next = n;
        let mut report = Vec::new();
        for present in [false, true, false, true] {
            if present {
                let built = set_indexes(&store, true).await;
                report.push(format!(
                    "building the {} indexes: {}",
                    indexes().len(),
                    ms(built)
                ));
            } else if next > n {
                set_indexes(&store, false).await;
            }
            let took = insert(&store, &mut rng, from, step_ms, next, extra).await;
            next += extra;
            report.push(format!(
                "insert {extra} more rows, {}: {:.0} rows/s",
                if present {
                    "with the indexes"
                } else {
                    "without them"
                },
                extra as f64 / took.as_secs_f64()
            ));
        }
        for line in report {
            println!("{line}");
        }
    }
}
