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

/// The insert of (issuer, token id, expires_at), on either backend's connection.
///
/// ON CONFLICT DO NOTHING rather than catching the unique violation: on PostgreSQL a
/// failed statement aborts its transaction (the group commit, `batch`), and a savepoint
/// around it would cost two more round trips per record.
macro_rules! insert {
    ($conn:expr, $issuer:expr, $token_id:expr, $expires_at:expr) => {
        diesel::insert_into(replay_cache::table)
            .values((
                replay_cache::issuer.eq($issuer),
                replay_cache::token_id.eq($token_id),
                replay_cache::expires_at.eq($expires_at),
            ))
            .on_conflict_do_nothing()
            .execute($conn)
    };
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
    seen(match conn {
        DbConn::Sqlite(c) => insert!(c, issuer, token_id, expires_at),
        DbConn::Pg(c) => insert!(c, issuer, token_id, expires_at),
    })
}

/// [`record`] on a SQLite connection (the group commit's one-by-one path).
pub fn record_sqlite(
    conn: &mut SqliteConnection,
    issuer: &str,
    token_id: &str,
    expires_at: UnixTime,
) -> Result<Seen, StoreError> {
    seen(insert!(conn, issuer, token_id, expires_at))
}

fn seen(inserted: QueryResult<usize>) -> Result<Seen, StoreError> {
    match inserted {
        Ok(0) => Ok(Seen::Before),
        Ok(_) => Ok(Seen::First),
        // A racing insert that committed between our check and our write.
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
