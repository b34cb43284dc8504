//! The `audit_events` table. Rows are only ever inserted (by the `audit` writer, in group
//! commits) and read back for tests and operators (`tessera audit tail | search`, through
//! [`search_events`], [`recent_events`] and [`events_after`]); nothing here updates, and
//! only retention ([`prune_before`]) deletes.
//! Writers return diesel's error so they compose inside a caller's transaction; readers
//! return `StoreError`.

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::schema::audit_events;
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

/// One row as stored; serialised (`audit search --json`) under the column names.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: UnixTime,
    pub grant_type: String,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub audience: Option<String>,
    pub scopes: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub jti: Option<String>,
    pub subject_token_sha256: Option<String>,
    /// How many requests the row stands for: more than 1 only for a summary of refusals.
    pub requests: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
// NULL, not DEFAULT, for None: lets diesel write a batch as one multi-row INSERT on SQLite
// (with DEFAULT it falls back to one statement per row).
#[diesel(treat_none_as_default_value = false)]
pub struct NewAuditRow<'a> {
    pub at: UnixTime,
    pub grant_type: &'a str,
    pub client_id: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub scopes: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub jti: Option<&'a str>,
    pub subject_token_sha256: Option<&'a str>,
    pub requests: i64,
}

/// Rows per multi-row `INSERT`: 14 binds each stays far below SQLite's and PostgreSQL's
/// bind-parameter limits.
const ROWS_PER_INSERT: usize = 128;

/// Inserts all rows in one transaction, as multi-row `INSERT`s on the concrete backend (the
/// combined `MultiConnection` backend cannot batch). Either every row is committed or none
/// is. Batching matters: one statement per row cost a quarter of the broker's CPU under load.
pub fn insert_events(conn: &mut DbConn, rows: &[NewAuditRow<'_>]) -> Result<(), DieselError> {
    macro_rules! insert_in_chunks {
        ($c:expr) => {
            $c.transaction(|c| {
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    diesel::insert_into(audit_events::table)
                        .values(chunk)
                        .execute(c)?;
                }
                Ok(())
            })
        };
    }
    match conn {
        DbConn::Sqlite(c) => insert_in_chunks!(c),
        DbConn::Pg(c) => insert_in_chunks!(c),
    }
}

/// The `limit` newest events, newest first.
pub fn recent_events(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_events::table
        .order(audit_events::id.desc())
        .limit(limit)
        .load(conn)?)
}

/// What `tessera audit search` asks for. Every filter that is set must hold (AND); text
/// filters match the stored value exactly. Times are Unix seconds: `since` inclusive,
/// `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub client: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub actor: Option<String>,
    /// `issued`, `refused`, `error` (exchanges) or `ok` (introspection, revocation).
    pub outcome: Option<String>,
    /// The failing step of a refusal: the `reason` column.
    pub step: Option<String>,
    pub since: Option<UnixTime>,
    pub until: Option<UnixTime>,
}

/// The `limit` newest events that pass `filter`, newest first (by `at`, then by id for
/// rows of the same second). `step` is read through its own index, everything else
/// through the `at` index within the time window, stopping at `limit` matches: see the
/// migration `audit_search` for which indexes and why.
pub fn search_events(
    conn: &mut DbConn,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    use audit_events as t;
    let mut query = t::table.into_boxed();
    if let Some(v) = &filter.client {
        query = query.filter(t::client_id.eq(v));
    }
    if let Some(v) = &filter.subject {
        query = query.filter(t::subject.eq(v));
    }
    if let Some(v) = &filter.issuer {
        query = query.filter(t::issuer.eq(v));
    }
    if let Some(v) = &filter.audience {
        query = query.filter(t::audience.eq(v));
    }
    if let Some(v) = &filter.actor {
        query = query.filter(t::actor.eq(v));
    }
    if let Some(v) = &filter.outcome {
        query = query.filter(t::outcome.eq(v));
    }
    if let Some(v) = &filter.step {
        query = query.filter(t::reason.eq(v));
    }
    if let Some(since) = filter.since {
        query = query.filter(t::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(t::at.lt(until));
    }
    Ok(query
        .order((t::at.desc(), t::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// Up to `limit` events committed with an id above `after`, oldest first: what
/// `audit tail --follow` has not printed yet.
pub fn events_after(
    conn: &mut DbConn,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::id.gt(after))
        .order(audit_events::id.asc())
        .limit(limit)
        .load(conn)?)
}

/// The events among `ids` that exist now, by id: ids a follower skipped because their
/// transaction had not committed yet when a later id was already visible (PostgreSQL
/// hands out ids before commit, and replicas commit in any order).
pub fn events_with_ids(conn: &mut DbConn, ids: &[i64]) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::id.eq_any(ids))
        .order(audit_events::id.asc())
        .load(conn)?)
}

/// Events that recorded the issued token `jti`.
pub fn events_by_jti(conn: &mut DbConn, jti: &str) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::jti.eq(jti))
        .order(audit_events::id.asc())
        .load(conn)?)
}

/// Ids per `DELETE` in [`prune_before`]. Each window is its own short transaction, so
/// the audit writer of a running broker waits milliseconds, never for the whole prune.
const PRUNE_WINDOW: i64 = 5_000;

/// Deletes events recorded before `cutoff` (unix seconds), oldest first, one id window
/// per transaction; returns how many rows went. Blocking.
///
/// It walks primary-key windows (contiguous rows, short transactions) rather than the
/// `at` index: ids are assigned in commit order, so `at` grows with `id` give or take the
/// moments a batch waits. A binary search over the primary key finds the first id recorded at or after
/// the cutoff; the deletes only walk ids below it, by primary key, and still test `at`, so
/// a row recorded at or after the cutoff is never deleted. The few older rows committed
/// out of order past that id are left for the next prune.
pub fn prune_before(conn: &mut DbConn, cutoff: UnixTime) -> Result<u64, StoreError> {
    use diesel::dsl::{max, min};
    let (first, last): (Option<i64>, Option<i64>) = audit_events::table
        .select((min(audit_events::id), max(audit_events::id)))
        .first(conn)?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(0);
    };
    // Invariant: every row below `lo` is older than the cutoff; the first row at or after
    // `hi` (if any) is not.
    let (mut lo, mut hi) = (first, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let probe: Option<(i64, UnixTime)> = audit_events::table
            .filter(audit_events::id.ge(mid))
            .order(audit_events::id.asc())
            .select((audit_events::id, audit_events::at))
            .first(conn)
            .optional()?;
        match probe {
            Some((id, at)) if at < cutoff => lo = id + 1,
            _ => hi = mid,
        }
    }
    let boundary = lo;
    let mut deleted = 0u64;
    let mut start = first;
    while start < boundary {
        let end = start.saturating_add(PRUNE_WINDOW).min(boundary);
        let n = diesel::delete(
            audit_events::table
                .filter(audit_events::id.ge(start))
                .filter(audit_events::id.lt(end))
                .filter(audit_events::at.lt(cutoff)),
        )
        .execute(conn)?;
        deleted += u64::try_from(n).unwrap_or(0);
        start = end;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
