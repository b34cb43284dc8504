//! The `audit_events` table. Rows are only ever inserted (by the `audit` writer, in group
//! commits) and read back for tests and operators; nothing here updates or deletes.
//! Writers return diesel's error so they compose inside a caller's transaction; readers
//! return `StoreError`.

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::schema::audit_events;
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
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
    pub jti: Option<String>,
    pub subject_token_sha256: Option<String>,
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
    pub jti: Option<&'a str>,
    pub subject_token_sha256: Option<&'a str>,
}

/// Rows per multi-row `INSERT`: 12 binds each stays far below SQLite's and PostgreSQL's
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

/// Events that recorded the issued token `jti`.
pub fn events_by_jti(conn: &mut DbConn, jti: &str) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::jti.eq(jti))
        .order(audit_events::id.asc())
        .load(conn)?)
}
