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

/// Inserts all rows in one transaction (row by row: the combined backend has no multi-row
/// insert). Either every row is committed or none is.
pub fn insert_events(conn: &mut DbConn, rows: &[NewAuditRow<'_>]) -> Result<(), DieselError> {
    conn.transaction(|conn| {
        for row in rows {
            diesel::insert_into(audit_events::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    })
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
