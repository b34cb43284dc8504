//! The audit trail end to end: `/introspect` and `/revoke` leave one row per call, and
//! the real `tessera audit search | tail` binary finds the rows a running broker wrote,
//! by every filter, as a table and as JSON lines, following new ones, and ending quietly
//! when its reader goes away.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera::clock::Clock;
use tessera::store::audit::AuditRow;
use tessera::store::testing::TestDbKind;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const APP_SECRET: &str = "app-secret";
/// Generous: a deadline for a child process that should have answered long before, not
/// a measurement.
const DEADLINE: Duration = Duration::from_secs(60);

async fn post(
    app: &TestApp,
    path: &str,
    (id, secret): (&str, &str),
    params: &[(&str, &str)],
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .basic_auth(id, Some(secret))
        .form(params)
        .send()
        .await
        .unwrap()
}

/// alice's ID token exchanged by orders-service for `inventory`: (access token, jti).
async fn issue(app: &TestApp) -> (String, String) {
    let id_token = app.issuer.id_token().sub("alice").sign();
    let resp = app
        .exchange(&id_token, ID_TOKEN, &[("audience", "inventory")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = app.verify_issued(&token).await;
    (token, claims["jti"].as_str().unwrap().to_owned())
}

fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

async fn newest(app: &TestApp) -> AuditRow {
    app.audit_rows().await.remove(0)
}

#[tokio::test]
async fn introspection_and_revocation_leave_one_audit_row_per_call() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let (token, jti) = issue(&app).await;
        let before = app.audit_rows().await.len();
        let owner = ("orders-service", ORDERS_SECRET);

        let resp = post(&app, "/introspect", owner, &[("token", &token)]).await;
        assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);
        let row = newest(&app).await;
        assert_eq!(
            (row.grant_type.as_str(), row.outcome.as_str()),
            ("introspection", "ok"),
            "{kind:?}"
        );
        assert_eq!(row.client_id.as_deref(), Some("orders-service"));
        assert_eq!(row.jti.as_deref(), Some(jti.as_str()));
        assert_eq!(row.subject.as_deref(), Some("alice"));
        assert_eq!(row.issuer.as_deref(), Some("local"));
        assert_eq!(row.audience.as_deref(), Some("inventory"));
        assert_eq!(row.scopes.as_deref(), Some("inventory:read"));
        assert_eq!((row.reason, row.detail.as_deref()), (None, Some("active")));
        assert_eq!(row.subject_token_sha256, Some(fingerprint(&token)));

        // Not a tessera token: inactive is an answer, not a refusal.
        post(&app, "/introspect", owner, &[("token", "x.y.z")]).await;
        let row = newest(&app).await;
        assert_eq!(row.outcome, "ok");
        assert!(
            row.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("inactive: not a valid tessera token (")),
            "{row:?}"
        );
        assert_eq!(row.jti, None);

        // Failed authentication: refused, under the id presented, escaped.
        let resp = post(
            &app,
            "/introspect",
            ("orders-service", "wrong"),
            &[("token", &token)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let row = newest(&app).await;
        assert_eq!(row.outcome, "refused");
        assert_eq!(row.client_id.as_deref(), Some("orders-service"));
        assert_eq!(row.reason.as_deref(), Some("client"));
        assert!(audit_says(&row, "client_secret_mismatch"), "{row:?}");
        post(
            &app,
            "/introspect",
            ("evil\u{202e}id", "x"),
            &[("token", &token)],
        )
        .await;
        // An unregistered id is no column (a summary row is keyed by it): the detail
        // tells it, escaped.
        let row = newest(&app).await;
        assert_eq!(row.client_id, None);
        assert!(
            row.detail
                .as_deref()
                .unwrap()
                .contains("presented client_id `evil\\u{202e}id`"),
            "{row:?}"
        );

        // Another client may not revoke it: refused, and the row names the token.
        let resp = post(
            &app,
            "/revoke",
            ("app-bound", APP_SECRET),
            &[("token", &token)],
        )
        .await;
        assert_oauth_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client").await;
        let row = newest(&app).await;
        assert_eq!(
            (row.grant_type.as_str(), row.outcome.as_str()),
            ("revocation", "refused")
        );
        assert_eq!(row.reason.as_deref(), Some("grant"));
        assert!(audit_says(&row, "unauthorized_client"), "{row:?}");
        assert_eq!(row.client_id.as_deref(), Some("app-bound"));
        assert_eq!(row.jti.as_deref(), Some(jti.as_str()));

        let resp = post(&app, "/revoke", owner, &[("token", &token)]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let row = newest(&app).await;
        assert_eq!(
            (row.outcome.as_str(), row.detail.as_deref()),
            ("ok", Some("revoked"))
        );
        assert_eq!(row.jti.as_deref(), Some(jti.as_str()));

        post(&app, "/introspect", owner, &[("token", &token)]).await;
        let row = newest(&app).await;
        assert!(
            row.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("inactive: revoked")),
            "{row:?}"
        );

        // Refused before the form is read: audited too.
        let resp = app
            .http
            .post(app.url("/revoke"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let row = newest(&app).await;
        assert_eq!(
            (row.grant_type.as_str(), row.reason.as_deref()),
            ("revocation", Some("request"))
        );
        assert!(audit_says(&row, "unsupported_media_type"), "{row:?}");

        let rows = app.audit_rows().await;
        assert_eq!(rows.len(), before + 8, "one row per call: {kind:?}");
        for row in &rows {
            let text = format!("{row:?}");
            assert!(!text.contains(&token), "a token in the trail: {text}");
        }
    }
}

/// The revocation holds when its audit row cannot be written; the caller is told 503 so
/// that it retries, and nothing says "done" without a row.
#[tokio::test]
async fn a_revocation_whose_row_cannot_be_written_stands_and_answers_503() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let (token, jti) = issue(&app).await;
        app.store
            .run(|conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query("DROP TABLE audit_events").execute(conn)?;
                Ok(())
            })
            .await
            .unwrap();
        let resp = post(
            &app,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", &token)],
        )
        .await;
        assert_oauth_error(
            resp,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
        )
        .await;
        let j = jti.clone();
        let revoked = app
            .store
            .run(move |conn| tessera::store::revocation::any_revoked(conn, &[j.as_str()]))
            .await
            .unwrap();
        assert!(revoked, "{kind:?}: the revocation was recorded and stays");
        let resp = post(
            &app,
            "/introspect",
            ("orders-service", ORDERS_SECRET),
            &[("token", &token)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{kind:?}");
    }
}

/// The binary on `app`'s database, as an operator runs it beside the broker.
fn tessera(app: &TestApp, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TESSERA_CONFIG")
        .env_remove("RUST_LOG")
        .env("TESSERA_DATABASE__URL", app.database_url())
        .current_dir(std::env::temp_dir());
    cmd
}

fn run(app: &TestApp, args: &[&str]) -> Output {
    let out = tessera(app, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `audit search --json` with `args`: the ids printed, in order.
fn search_ids(app: &TestApp, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["audit", "search", "--json"];
    all.extend_from_slice(args);
    json_lines(&run(app, &all).stdout)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rfc3339(at: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap()),
    )
    .to_string()
}

/// Ids of `rows` (newest first, as `audit_rows` gives them) that pass `keep`, newest
/// first by time then id: what `audit search` must print.
fn expected(rows: &[AuditRow], keep: impl Fn(&AuditRow) -> bool) -> Vec<i64> {
    let mut hits: Vec<(i64, i64)> = rows
        .iter()
        .filter(|r| keep(r))
        .map(|r| (r.at, r.id))
        .collect();
    hits.sort_by(|a, b| b.cmp(a));
    hits.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn audit_search_and_tail_find_what_the_broker_recorded() {
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t0 = app.clock.now();
        // Minute 0: one token issued, one expired subject token refused.
        let (token, jti) = issue(&app).await;
        let expired = app.issuer.id_token().sub("bob").lifetime(-3600).sign();
        let resp = app
            .exchange(&expired, ID_TOKEN, &[("audience", "inventory")])
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // Minute 2: introspection, a refused and a done revocation.
        app.clock.advance(120);
        post(
            &app,
            "/introspect",
            ("orders-service", ORDERS_SECRET),
            &[("token", &token)],
        )
        .await;
        post(
            &app,
            "/revoke",
            ("app-bound", APP_SECRET),
            &[("token", &token)],
        )
        .await;
        post(
            &app,
            "/revoke",
            ("orders-service", ORDERS_SECRET),
            &[("token", &token)],
        )
        .await;
        // Minute 4: an exchange refused for a scope orders-service may not have.
        app.clock.advance(120);
        let id_token = app.issuer.id_token().sub("alice").sign();
        let resp = app
            .exchange(
                &id_token,
                ID_TOKEN,
                &[("audience", "inventory"), ("scope", "orders:write")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let rows = app.audit_rows().await;
        assert_eq!(rows.len(), 6, "{kind:?}: {rows:#?}");
        let name = kind_name(kind);

        // Every row, newest first, with every column by name; never a token.
        let out = run(&app, &["audit", "search", "--json"]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            !text.contains(&token) && !text.contains(&expired),
            "{name}: {text}"
        );
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 6, "{name}");
        for line in &lines {
            for key in [
                "id",
                "at",
                "grant_type",
                "client_id",
                "issuer",
                "subject",
                "actor",
                "audience",
                "scopes",
                "outcome",
                "reason",
                "detail",
                "jti",
                "subject_token_sha256",
            ] {
                assert!(line.get(key).is_some(), "{name}: {key} missing in {line}");
            }
        }
        assert_eq!(
            lines
                .iter()
                .map(|l| l["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            expected(&rows, |_| true),
            "{name}"
        );
        let issued = &lines.iter().find(|l| l["outcome"] == "issued").unwrap();
        assert_eq!(issued["jti"], jti.as_str());
        assert_eq!(issued["at"], t0);

        let is = |v: &Option<String>, want: &str| v.as_deref() == Some(want);
        let since = rfc3339(t0 + 120);
        let until = rfc3339(t0 + 240);
        let cases: Vec<(Vec<&str>, Vec<i64>)> = vec![
            (
                vec!["--client", "orders-service"],
                expected(&rows, |r| is(&r.client_id, "orders-service")),
            ),
            (
                vec!["--client", "app-bound"],
                expected(&rows, |r| is(&r.client_id, "app-bound")),
            ),
            (
                vec!["--subject", "alice"],
                expected(&rows, |r| is(&r.subject, "alice")),
            ),
            (
                vec!["--issuer", "acme"],
                expected(&rows, |r| is(&r.issuer, "acme")),
            ),
            (
                vec!["--issuer", "local"],
                expected(&rows, |r| is(&r.issuer, "local")),
            ),
            (
                vec!["--audience", "inventory"],
                expected(&rows, |r| is(&r.audience, "inventory")),
            ),
            (
                vec!["--actor", "orders-service"],
                expected(&rows, |r| is(&r.actor, "orders-service")),
            ),
            (
                vec!["--outcome", "issued"],
                expected(&rows, |r| r.outcome == "issued"),
            ),
            (
                vec!["--outcome", "refused"],
                expected(&rows, |r| r.outcome == "refused"),
            ),
            (
                vec!["--outcome", "ok"],
                expected(&rows, |r| r.outcome == "ok"),
            ),
            (vec!["--outcome", "error"], vec![]),
            (
                vec!["--step", "expiry"],
                expected(&rows, |r| is(&r.reason, "expiry")),
            ),
            (
                vec!["--step", "scope"],
                expected(&rows, |r| is(&r.reason, "scope")),
            ),
            (
                vec!["--since", &since],
                expected(&rows, |r| r.at >= t0 + 120),
            ),
            (
                vec!["--until", &since],
                expected(&rows, |r| r.at < t0 + 120),
            ),
            (
                vec!["--since", &since, "--until", &until],
                expected(&rows, |r| r.at == t0 + 120),
            ),
            // The app's clock started at the real time: a week back covers everything.
            (vec!["--since", "7d"], expected(&rows, |_| true)),
            (vec!["--until", "7d"], vec![]),
            (
                vec![
                    "--client",
                    "orders-service",
                    "--outcome",
                    "ok",
                    "--since",
                    &since,
                ],
                expected(&rows, |r| {
                    is(&r.client_id, "orders-service") && r.outcome == "ok" && r.at >= t0 + 120
                }),
            ),
            (
                vec!["--limit", "2"],
                expected(&rows, |_| true)[..2].to_vec(),
            ),
        ];
        for (args, want) in &cases {
            assert_eq!(
                &search_ids(&app, args),
                want,
                "{name}: audit search {args:?}"
            );
        }
        // Not degenerate: the filters above each picked something and left something.
        for (args, want) in &cases[..13] {
            if args[1] != "error" {
                assert!(
                    !want.is_empty() && want.len() < 6,
                    "{name}: {args:?} {want:?}"
                );
            }
        }

        // The table: a header, one line per row, the time in RFC 3339 UTC.
        let out = run(&app, &["audit", "search", "--step", "expiry"]);
        let table = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{name}: {table}");
        assert!(lines[0].starts_with("TIME "), "{table}");
        assert!(
            lines[1].starts_with(&format!("{}  refused", rfc3339(t0))),
            "{table}"
        );
        assert!(
            lines[1].contains("acme") && lines[1].contains("expired"),
            "{table}"
        );
        let out = run(&app, &["audit", "search", "--client", "nobody"]);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "no matching audit events\n"
        );

        // Bad values: one clear line, usage exit status.
        for bad in [
            vec!["--since", "yesterday"],
            vec!["--outcome", "maybe"],
            vec!["--step", "Not A Step"],
        ] {
            let mut args = vec!["audit", "search"];
            args.extend_from_slice(&bad);
            let out = tessera(&app, &args).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{bad:?}");
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.starts_with("error: invalid value"), "{bad:?}: {err}");
        }
        let out = tessera(&app, &["audit", "search", "--since", "1h", "--until", "2h"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not before --until"), "{err}");

        // tail: the newest N, oldest first.
        let out = run(&app, &["audit", "tail", "-n", "3", "--json"]);
        let mut last3: Vec<i64> = rows.iter().take(3).map(|r| r.id).collect();
        last3.reverse();
        assert_eq!(
            json_lines(&out.stdout)
                .iter()
                .map(|v| v["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            last3,
            "{name}"
        );
    }
}

/// Reads the first `n` lines of `child`'s stdout on a thread (so the test can wait for
/// each with a deadline), then closes the pipe, as `| head -n` does.
fn head(child: &mut Child, n: usize) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(n) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        // The reader (and with it the pipe's only read end) is dropped here.
    });
    rx
}

/// Waits for `child` to exit, within the deadline (killed, and the test failed, if not).
fn exit_of(mut child: Child) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the child did not exit: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn tail_follow_prints_new_rows_and_ends_when_its_reader_goes_away() {
    let app = TestApp::spawn(backends()[0]).await;
    let (first, _) = issue(&app).await;
    let mut child = tessera(&app, &["audit", "tail", "--follow", "-n", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = head(&mut child, 2);
    let newest = app.audit_rows().await[0].id;
    let line: Value = serde_json::from_str(&lines.recv_timeout(DEADLINE).unwrap()).unwrap();
    assert_eq!(line["id"], newest, "the newest row first");

    // Rows committed after the follower started are printed as they come.
    post(
        &app,
        "/introspect",
        ("orders-service", ORDERS_SECRET),
        &[("token", &first)],
    )
    .await;
    let line: Value = serde_json::from_str(&lines.recv_timeout(DEADLINE).unwrap()).unwrap();
    assert_eq!(line["grant_type"], "introspection");
    assert_eq!(line["id"], newest + 1);

    // The reader went away after two lines (`| head -2`): with nothing new to print, the
    // follower notices anyway and ends.
    let out = exit_of(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Error"),
        "{stderr}"
    );
}

/// `audit search ... | head -1`: more output than a pipe holds, and the reader leaves
/// after one line; the command ends at once, successfully, without a word.
#[tokio::test]
async fn search_into_a_closed_pipe_exits_cleanly() {
    let app = TestApp::spawn(TestDbKind::Sqlite).await;
    let now = app.clock.now();
    app.store
        .run(move |conn| {
            let rows: Vec<_> = (0..3_000)
                .map(|i| tessera::store::testing::audit_row_at(now - i))
                .collect();
            Ok(tessera::store::audit::insert_events(conn, &rows)?)
        })
        .await
        .unwrap();
    for args in [
        &["audit", "search", "--limit", "3000", "--json"][..],
        &["audit", "search", "--limit", "3000"],
        &["audit", "tail", "-n", "3000"],
    ] {
        let mut child = tessera(&app, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = head(&mut child, 1);
        lines.recv_timeout(DEADLINE).unwrap();
        let out = exit_of(child);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}: {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
