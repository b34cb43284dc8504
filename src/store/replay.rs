//! The `replay_cache` table: single-use token ids seen, shared by every replica through
//! the database (SPEC §4.1, §6). Holds no policy: the caller decides what is single-use
//! and for how long.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::replay_cache;
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

/// What recording a token id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Recorded now: the first presentation.
    First,
    /// Already recorded (by this replica or another): a replay.
    Before,
}

/// Records (issuer, token id) until `expires_at`. The primary key makes the database the
/// arbiter between racing replicas: the loser's insert fails with a unique violation,
/// which is a replay, never retried as a transient error.
pub fn record(
    conn: &mut DbConn,
    issuer: &str,
    token_id: &str,
    expires_at: UnixTime,
) -> Result<Seen, StoreError> {
    // In a savepoint when inside a group commit (`batch`): on PostgreSQL a unique
    // violation aborts its transaction, and here it only means "seen before".
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(replay_cache::table)
            .values((
                replay_cache::issuer.eq(issuer),
                replay_cache::token_id.eq(token_id),
                replay_cache::expires_at.eq(expires_at),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(Seen::First),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(Seen::Before),
        Err(e) => Err(e.into()),
    }
}

/// Whether (issuer, token id) is recorded, without recording it (explain, which must
/// never use up a single-use token).
pub fn is_recorded(conn: &mut DbConn, issuer: &str, token_id: &str) -> Result<bool, StoreError> {
    let query = replay_cache::table
        .filter(replay_cache::issuer.eq(issuer))
        .filter(replay_cache::token_id.eq(token_id));
    Ok(diesel::select(diesel::dsl::exists(query)).get_result(conn)?)
}

/// Drops entries whose token has expired (a re-presented expired token is refused as
/// expired anyway). Returns how many went.
pub fn prune(conn: &mut DbConn, now: UnixTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(replay_cache::table.filter(replay_cache::expires_at.lt(now)))
            .execute(conn)?,
    )
}
