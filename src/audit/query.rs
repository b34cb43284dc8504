//! `tessera audit tail | search`: the audit trail read without SQL (SPEC §1).
//!
//! Rule: output goes through one checked writer. A closed pipe (`| head`) ends the
//! command quietly and successfully; any other write error is reported. Values are
//! printed escaped (`telemetry::escape_invisible`), so a stored name can never move the
//! terminal's cursor or reorder what is shown; `--json` prints each row's columns as
//! stored.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

use crate::audit::AuditOutcome;
use crate::cli::{AuditSearchArgs, AuditTailArgs};
use crate::clock::UnixTime;
use crate::store::audit::{
    events_after, events_with_ids, recent_events, search_events, AuditFilter, AuditRow,
};
use crate::store::{Store, StoreError};
use crate::telemetry::{audited_name, escape_invisible};

/// How often `tail --follow` looks for new rows.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// Rows read per look; a fuller backlog is read in further looks without waiting.
const FOLLOW_BATCH: i64 = 1_000;
/// Looks (about 30 s) during which `tail --follow` keeps asking for an id it skipped:
/// PostgreSQL hands ids out before commit, so with several replicas (or a slow batch) a
/// later id can be visible before an earlier one. A skipped id that never appears (a
/// rolled-back batch, a pruned row) is forgotten after that.
const GAP_LOOKS: u32 = 60;
/// Skipped ids remembered at most; a larger jump (a pruned range) is not waited for.
const MAX_GAPS: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("--since ({since}) is not before --until ({until}): no event can match")]
    EmptyWindow { since: String, until: String },
    #[error("reading the audit trail: {0}")]
    Store(#[source] StoreError),
    #[error("writing the output: {0}")]
    Write(#[source] io::Error),
}

/// What a write came to: carry on, or stop because the reader went away.
enum Flow {
    Continue,
    Closed,
}

fn checked(result: io::Result<()>) -> Result<Flow, QueryError> {
    match result {
        Ok(()) => Ok(Flow::Continue),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::Closed),
        Err(e) => Err(QueryError::Write(e)),
    }
}

/// The store filter for `args`, `--since`/`--until` resolved against `now`. Names are
/// matched in the form the trail stores them (`telemetry::audited_name`), so a name with
/// a control character is found whether it is given raw or as printed.
pub fn filter_for(args: &AuditSearchArgs, now: UnixTime) -> Result<AuditFilter, QueryError> {
    let name = |v: &Option<String>| v.as_deref().map(audited_name);
    let filter = AuditFilter {
        client: name(&args.client),
        subject: name(&args.subject),
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        actor: name(&args.actor),
        outcome: args
            .outcome
            .map(|o| AuditOutcome::from(o).as_str().to_owned()),
        step: args.step.clone(),
        since: args.since.map(|t| t.resolve(now, false)),
        until: args.until.map(|t| t.resolve(now, true)),
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since >= until {
            return Err(QueryError::EmptyWindow {
                since: rfc3339(since),
                until: rfc3339(until),
            });
        }
    }
    Ok(filter)
}

/// `tessera audit search`: the newest matching events, newest first.
pub async fn search(
    store: &Store,
    args: &AuditSearchArgs,
    now: UnixTime,
    out: impl Write,
) -> Result<(), QueryError> {
    let filter = filter_for(args, now)?;
    let limit = i64::from(args.limit);
    let rows = store
        .run(move |conn| search_events(conn, &filter, limit))
        .await
        .map_err(QueryError::Store)?;
    let mut printer = Printer::new(out, args.json, Widths::fit(&rows));
    if rows.is_empty() && !args.json {
        checked(printer.note("no matching audit events"))?;
        return Ok(());
    }
    checked(printer.print(&rows))?;
    Ok(())
}

/// `tessera audit tail [--follow]`: the newest `--lines` events, oldest first; then, with
/// `--follow`, every event committed after them, until the output is closed: a failed
/// write says so, and `reader_gone` (see [`stdout_closed`]) while there is nothing to
/// write.
pub async fn tail(
    store: &Store,
    args: &AuditTailArgs,
    out: impl Write,
    reader_gone: impl std::future::Future<Output = ()>,
) -> Result<(), QueryError> {
    let wanted = i64::from(args.lines);
    // One more than asked, so `-n 0` still learns where the trail ends.
    let mut newest = store
        .run(move |conn| recent_events(conn, wanted.max(1)))
        .await
        .map_err(QueryError::Store)?;
    let mut follower = Follower::after(newest.first().map_or(0, |r| r.id));
    newest.truncate(usize::try_from(wanted).unwrap_or(usize::MAX));
    newest.reverse();
    // Following, the columns cannot fit rows not read yet: they take their widest.
    let widths = if args.follow {
        Widths::widest()
    } else {
        Widths::fit(&newest)
    };
    let mut printer = Printer::new(out, args.json, widths);
    if let Flow::Closed = checked(printer.print(&newest))? {
        return Ok(());
    }
    if !args.follow {
        return Ok(());
    }
    let mut reader_gone = std::pin::pin!(reader_gone);
    loop {
        let rows = follower.look(store).await?;
        let full = rows.len() >= usize::try_from(FOLLOW_BATCH).unwrap_or(usize::MAX);
        if let Flow::Closed = checked(printer.print(&rows))? {
            return Ok(());
        }
        if !full {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                () = &mut reader_gone => return Ok(()),
            }
        }
    }
}

/// Resolves once nobody can read standard output any more: a pipe whose reader exited
/// (`tail --follow | head -3`), which Linux reports as an error condition on the
/// writing end. Never resolves where that cannot be watched (a terminal, a file): there
/// the next failed write tells.
pub async fn stdout_closed() {
    #[cfg(unix)]
    #[expect(
        deprecated,
        reason = "AsyncFd's safe constructors are deprecated for I/O safety (a descriptor \
                  closed and reused while registered); this process never closes its \
                  standard output, and the replacement is `unsafe`, which the crate forbids"
    )]
    {
        use tokio::io::unix::AsyncFd;
        use tokio::io::Interest;
        if let Ok(fd) = AsyncFd::with_interest(io::stdout(), Interest::ERROR) {
            if fd.ready(Interest::ERROR).await.is_ok() {
                return;
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Where `tail --follow` stands: the highest id printed, and the ids below it it has not
/// seen yet (each with the looks left to wait for it).
struct Follower {
    last: i64,
    gaps: VecDeque<(i64, u32)>,
}

impl Follower {
    fn after(last: i64) -> Self {
        Self {
            last,
            gaps: VecDeque::new(),
        }
    }

    /// The rows committed since the last look: late ones (skipped ids that appeared)
    /// first, then the new ones in id order.
    async fn look(&mut self, store: &Store) -> Result<Vec<AuditRow>, QueryError> {
        let last = self.last;
        let waiting: Vec<i64> = self.gaps.iter().map(|(id, _)| *id).collect();
        let (mut late, new) = store
            .run(move |conn| {
                let late = if waiting.is_empty() {
                    Vec::new()
                } else {
                    events_with_ids(conn, &waiting)?
                };
                Ok((late, events_after(conn, last, FOLLOW_BATCH)?))
            })
            .await
            .map_err(QueryError::Store)?;
        self.gaps.retain_mut(|(id, looks)| {
            *looks = looks.saturating_sub(1);
            *looks > 0 && !late.iter().any(|r| r.id == *id)
        });
        for row in &new {
            let skipped = row.id - self.last - 1;
            if skipped > 0 && usize::try_from(skipped).is_ok_and(|n| n <= MAX_GAPS) {
                self.gaps
                    .extend((self.last + 1..row.id).map(|id| (id, GAP_LOOKS)));
            }
            self.last = row.id;
        }
        while self.gaps.len() > MAX_GAPS {
            self.gaps.pop_front();
        }
        late.extend(new);
        Ok(late)
    }
}

/// Unix seconds as RFC 3339 UTC, to the second.
fn rfc3339(at: UnixTime) -> String {
    let secs = u64::try_from(at).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The table's columns: header, and the most characters a value keeps (the last column
/// is not padded, only cut).
const COLUMNS: [(&str, usize); 11] = [
    ("TIME", 20),
    ("OUTCOME", 16),
    ("GRANT", 14),
    ("CLIENT", 24),
    ("ISSUER", 20),
    ("SUBJECT", 28),
    ("ACTOR", 20),
    ("AUDIENCE", 32),
    ("SCOPES", 24),
    ("REASON", 28),
    ("DETAIL", 80),
];

/// The table cells of `row`, in [`COLUMNS`] order; absent values as `-`.
fn cells(row: &AuditRow) -> [String; 11] {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map_or("-".into(), |s| escape_invisible(s).into_owned())
    };
    [
        rfc3339(row.at),
        // A summary row (SPEC §3) says how many requests it stands for.
        match row.requests {
            1 => escape_invisible(&row.outcome).into_owned(),
            n => format!("{} x{n}", escape_invisible(&row.outcome)),
        },
        escape_invisible(&row.grant_type).into_owned(),
        text(&row.client_id),
        text(&row.issuer),
        text(&row.subject),
        text(&row.actor),
        text(&row.audience),
        text(&row.scopes),
        text(&row.reason),
        text(&row.detail),
    ]
}

/// Column widths in characters.
struct Widths([usize; 11]);

impl Widths {
    /// As wide as the widest value of `rows` (or the header), within each column's cap.
    fn fit(rows: &[AuditRow]) -> Self {
        let mut w = COLUMNS.map(|(header, _)| header.chars().count());
        for row in rows {
            for (i, cell) in cells(row).iter().enumerate() {
                w[i] = w[i].max(cell.chars().count()).min(COLUMNS[i].1);
            }
        }
        Self(w)
    }

    fn widest() -> Self {
        Self(COLUMNS.map(|(_, cap)| cap))
    }
}

/// `value` cut to `width` characters, the cut marked with `…`.
fn cut(value: &str, width: usize) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(width) {
        None => value.into(),
        Some(_) => {
            let keep: String = value.chars().take(width.saturating_sub(1)).collect();
            format!("{keep}…").into()
        }
    }
}

/// Writes rows as an aligned table (header once, before the first row) or as JSON
/// lines, and flushes after each batch so a follower's reader sees rows as they come.
struct Printer<W: Write> {
    out: io::BufWriter<W>,
    json: bool,
    widths: Widths,
    header_done: bool,
}

impl<W: Write> Printer<W> {
    fn new(out: W, json: bool, widths: Widths) -> Self {
        Self {
            out: io::BufWriter::new(out),
            json,
            widths,
            header_done: false,
        }
    }

    fn note(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    fn print(&mut self, rows: &[AuditRow]) -> io::Result<()> {
        if !self.json && !self.header_done {
            self.header_done = true;
            let header = COLUMNS.map(|(h, _)| h.to_owned());
            self.line(&header)?;
        }
        for row in rows {
            if self.json {
                serde_json::to_writer(&mut self.out, row)?;
                self.out.write_all(b"\n")?;
            } else {
                self.line(&cells(row))?;
            }
        }
        self.out.flush()
    }

    fn line(&mut self, cells: &[String; 11]) -> io::Result<()> {
        let last = cells.len() - 1;
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = self.widths.0[i];
            let value = cut(cell, width);
            if i == last {
                line.push_str(&value);
            } else {
                let pad = width.saturating_sub(value.chars().count());
                line.push_str(&value);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(self.out, "{}", line.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_time, TimeArg};

    fn row(id: i64) -> AuditRow {
        AuditRow {
            id,
            at: 1_800_000_000 + id,
            grant_type: "token_exchange".into(),
            client_id: Some("orders".into()),
            issuer: Some("acme-oidc".into()),
            subject: Some("alice\u{202e}moc".into()),
            actor: None,
            audience: Some("https://api.orders.example".into()),
            scopes: Some("orders:read".into()),
            outcome: "refused".into(),
            reason: Some("expired".into()),
            detail: Some("subject token: expired ".repeat(10)),
            jti: None,
            subject_token_sha256: Some("9f86d081884c7d65".into()),
            requests: 1,
        }
    }

    #[test]
    fn times_are_rfc3339_with_a_zone_or_durations_ago() {
        let at = |s: &str| match parse_time(s).unwrap() {
            TimeArg::At { secs, nanos } => (secs, nanos),
            TimeArg::Ago(d) => panic!("{s}: read as {d:?} ago"),
        };
        assert_eq!(at("2027-01-15T08:00:00Z"), (1_800_000_000, 0));
        assert_eq!(at("2027-01-15t08:00:00z"), (1_800_000_000, 0));
        assert_eq!(at("2027-01-15T10:00:00+02:00"), (1_800_000_000, 0));
        assert_eq!(at("2027-01-15T03:30:00-04:30"), (1_800_000_000, 0));
        assert_eq!(at("2027-01-15T08:00:00.25Z"), (1_800_000_000, 250_000_000));
        assert_eq!(
            parse_time("15m").unwrap(),
            TimeArg::Ago(Duration::from_secs(900))
        );
        assert_eq!(
            parse_time("7d").unwrap(),
            TimeArg::Ago(Duration::from_secs(604_800))
        );
        for bad in [
            "2027-01-15T08:00:00",       // no zone: which one?
            "2027-01-15",                // no time
            "2027-01-15T08:00:00+25:00", // no such offset
            "2027-13-15T08:00:00Z",
            "yesterday",
            "-5m",
            "",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(
                err.contains("RFC 3339") && !err.contains('\n'),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bounds_resolve_against_now_and_round_outwards() {
        let now = 1_800_000_000;
        let ago = TimeArg::Ago(Duration::from_secs(3_600));
        assert_eq!(ago.resolve(now, false), now - 3_600);
        assert_eq!(ago.resolve(now, true), now - 3_600);
        let frac = TimeArg::At {
            secs: 100,
            nanos: 1,
        };
        assert_eq!(
            (frac.resolve(now, false), frac.resolve(now, true)),
            (100, 101)
        );
        let whole = TimeArg::At {
            secs: 100,
            nanos: 0,
        };
        assert_eq!(
            (whole.resolve(now, false), whole.resolve(now, true)),
            (100, 100)
        );
    }

    fn args() -> AuditSearchArgs {
        AuditSearchArgs {
            client: None,
            subject: None,
            issuer: None,
            audience: None,
            actor: None,
            outcome: None,
            step: None,
            since: None,
            until: None,
            limit: 100,
            json: false,
        }
    }

    #[test]
    fn an_empty_window_is_one_clear_error() {
        let mut a = args();
        a.since = Some(TimeArg::Ago(Duration::from_secs(60)));
        a.until = Some(TimeArg::Ago(Duration::from_secs(3_600)));
        let err = filter_for(&a, 1_800_000_000).unwrap_err().to_string();
        assert_eq!(
            err,
            "--since (2027-01-15T07:59:00Z) is not before --until (2027-01-15T07:00:00Z): \
             no event can match"
        );
    }

    #[test]
    fn names_are_matched_as_the_trail_stores_them() {
        let mut a = args();
        a.subject = Some("alice\nbob".into());
        a.outcome = Some(crate::cli::OutcomeArg::Ok);
        let f = filter_for(&a, 0).unwrap();
        assert_eq!(f.subject.as_deref(), Some("alice\\nbob"));
        assert_eq!(f.outcome.as_deref(), Some("ok"));
    }

    #[test]
    fn the_table_is_aligned_escaped_and_cut() {
        let rows = [row(1), row(2)];
        let mut printer = Printer::new(Vec::new(), false, Widths::fit(&rows));
        printer.print(&rows).unwrap();
        let text = String::from_utf8(printer.out.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("TIME                  OUTCOME  GRANT"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("2027-01-15T08:00:01Z  refused  token_exchange"),
            "{text}"
        );
        let col = |l: &str| l.find("acme-oidc");
        assert_eq!(col(lines[1]), col(lines[2]), "aligned:\n{text}");
        assert!(lines[1].contains("alice\\u{202e}moc"), "escaped: {text}");
        assert!(!text.contains('\u{202e}'));
        assert!(lines[1].ends_with('…'), "the detail is cut: {}", lines[1]);
        assert!(lines[1].chars().count() < 300);
    }

    #[test]
    fn json_lines_carry_every_column_by_name() {
        let mut printer = Printer::new(Vec::new(), true, Widths::widest());
        printer.print(&[row(7)]).unwrap();
        let text = String::from_utf8(printer.out.into_inner().unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = [
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
            "requests",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["id"], 7);
        assert_eq!(v["at"], 1_800_000_007);
        assert_eq!(v["actor"], serde_json::Value::Null);
        assert_eq!(v["subject"], "alice\u{202e}moc", "as stored");
    }

    /// A reader that went away: every write fails as a closed pipe does.
    struct ClosedPipe;
    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_pipe_ends_quietly_and_other_write_errors_do_not() {
        let mut printer = Printer::new(ClosedPipe, false, Widths::widest());
        assert!(matches!(
            checked(printer.print(&[row(1)])),
            Ok(Flow::Closed)
        ));
        let full: io::Result<()> = Err(io::Error::other("disk full"));
        assert!(matches!(checked(full), Err(QueryError::Write(_))));
    }
}
