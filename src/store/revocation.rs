//! The `revoked_tokens` table: tessera tokens revoked through `/revoke` (RFC 7009), shared
//! by every replica through the database (SPEC §6). Rows go once the token has expired.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use diesel::PgConnection;

use super::schema::revoked_tokens;
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

/// The PostgreSQL channel a revocation is announced on (payload: the jti), so every
/// replica hears of it at once instead of at its next poll (SPEC §6: within 1 s).
pub const CHANNEL: &str = "tessera_revoked";

/// Records `jti` as revoked until `expires_at`, and on PostgreSQL announces it on
/// [`CHANNEL`] (delivered when the statement's transaction commits). Revoking twice is not
/// an error.
pub fn record(
    conn: &mut DbConn,
    jti: &str,
    expires_at: UnixTime,
    now: UnixTime,
    by: &str,
) -> Result<(), StoreError> {
    // In a savepoint (a transaction of its own when there is no outer one): on PostgreSQL
    // a failed statement aborts its whole transaction, and a duplicate is no failure here.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(jti),
                revoked_tokens::expires_at.eq(expires_at),
                revoked_tokens::revoked_at.eq(now),
                revoked_tokens::revoked_by.eq(by),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) | Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(e) => return Err(e.into()),
    }
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(jti)
            .execute(pg)?;
    }
    Ok(())
}

/// A dedicated (unpooled) PostgreSQL connection listening on [`CHANNEL`].
pub struct Listener(PgConnection);

impl Listener {
    /// The revoked jtis announced since the last call. Never blocks: it reads what the
    /// server has already sent. An error means the connection is gone.
    pub fn drain(&mut self) -> Result<Vec<String>, StoreError> {
        self.0
            .notifications_iter()
            .map(|n| n.map(|n| n.payload).map_err(StoreError::from))
            .collect()
    }

    /// A round trip: a connection a NAT or proxy dropped without a word reads as healthy
    /// to [`Listener::drain`] but fails here (within the TCP timeouts the connection was
    /// opened with).
    pub fn ping(&mut self) -> Result<(), StoreError> {
        diesel::sql_query("SELECT 1").execute(&mut self.0)?;
        Ok(())
    }
}

/// libpq parameters of the LISTEN connection: connecting may not hang the sync loop, and a
/// silently dropped connection must fail a ping within seconds, not minutes.
const LISTEN_PARAMS: &str =
    "connect_timeout=3&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=2&tcp_user_timeout=5000";

fn listen_uri(target: &str) -> String {
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("{target}{sep}{LISTEN_PARAMS}")
}

impl super::Store {
    /// Opens a [`Listener`]; `None` on SQLite, which has no notifications (one process
    /// revokes into its own set at once; other processes on the file poll). Blocking.
    pub fn revocation_listener(&self) -> Result<Option<Listener>, StoreError> {
        if self.backend() != super::Backend::Postgres {
            return Ok(None);
        }
        let mut conn = PgConnection::establish(&listen_uri(&self.target.target))
            .map_err(|e| StoreError::Listen(format!("{}: {e}", self.redacted_url())))?;
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        Ok(Some(Listener(conn)))
    }
}

/// Every revoked jti whose token has not expired yet.
pub fn unexpired(conn: &mut DbConn, now: UnixTime) -> Result<Vec<String>, StoreError> {
    Ok(revoked_tokens::table
        .filter(revoked_tokens::expires_at.ge(now))
        .select(revoked_tokens::jti)
        .load(conn)?)
}

/// Whether any of `jtis` is revoked (a direct read, for `/introspect`).
pub fn any_revoked(conn: &mut DbConn, jtis: &[&str]) -> Result<bool, StoreError> {
    Ok(!revoked_among(conn, jtis)?.is_empty())
}

/// Which of `jtis` are revoked (a direct read).
pub fn revoked_among(conn: &mut DbConn, jtis: &[&str]) -> Result<Vec<String>, StoreError> {
    Ok(revoked_tokens::table
        .filter(revoked_tokens::jti.eq_any(jtis))
        .select(revoked_tokens::jti)
        .load(conn)?)
}

/// Drops rows of expired tokens (an expired token is refused as expired anyway).
pub fn prune(conn: &mut DbConn, now: UnixTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(conn)?,
    )
}
