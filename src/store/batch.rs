//! The small writes of the token path: a single-use id recorded (replay cache, DPoP
//! `jti`, client assertion `jti`) and a refresh token rotated. Each must be durable and
//! decided by the database before the answer leaves; alone, each would be one commit (one
//! fsync on SQLite, one WAL flush on PostgreSQL) per request, serialised on SQLite's
//! single writer. So they ride the audit writer's group commit (`crate::audit`): one
//! transaction for a batch of audit rows and writes, each write in a savepoint of its own
//! so that one write's refusal (a unique violation: a replay) never undoes another's.
//!
//! The database stays the arbiter between replicas: the same constraints and conditional
//! updates decide, only the commits are shared.

use diesel::Connection;

use super::audit::{insert_events, NewAuditRow};
use super::refresh::{self, Rotation};
use super::replay::{self, Seen};
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

/// One write on the token path.
#[derive(Debug)]
pub enum Write {
    /// Record (issuer, hashed token id) until `expires_at`: the first presentation wins.
    Replay {
        issuer: String,
        token_id: String,
        expires_at: UnixTime,
    },
    /// Spend refresh token `old` of `family_id` and store `new`.
    Rotate {
        family_id: String,
        old: String,
        new: String,
        now: UnixTime,
    },
}

/// What a write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Replay(Seen),
    Rotate(Rotation),
}

/// Applies one write (inside the caller's transaction; the functions it calls take their
/// own savepoints).
pub fn apply(conn: &mut DbConn, write: Write) -> Result<Written, StoreError> {
    match write {
        Write::Replay {
            issuer,
            token_id,
            expires_at,
        } => replay::record(conn, &issuer, &token_id, expires_at).map(Written::Replay),
        Write::Rotate {
            family_id,
            old,
            new,
            now,
        } => refresh::rotate(conn, &family_id, &old, &new, now).map(Written::Rotate),
    }
}

/// One group commit: `writes` (each in its savepoint, each with its own result) and the
/// audit `rows`, in one transaction. An error here (the transaction or the rows failed)
/// fails the whole batch.
pub fn commit(
    conn: &mut DbConn,
    writes: Vec<Write>,
    rows: &[NewAuditRow<'_>],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        let written = writes.into_iter().map(|w| apply(conn, w)).collect();
        if !rows.is_empty() {
            insert_events(conn, rows)?;
        }
        Ok(written)
    })
}
