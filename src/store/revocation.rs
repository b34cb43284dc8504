//! The `revoked_tokens` table: tessera tokens revoked through `/revoke` (RFC 7009), shared
//! by every replica through the database (SPEC §6). Rows go once the token has expired.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::revoked_tokens;
use super::{DbConn, StoreError};
use crate::clock::UnixTime;

/// Records `jti` as revoked until `expires_at`. Revoking twice is not an error.
pub fn record(
    conn: &mut DbConn,
    jti: &str,
    expires_at: UnixTime,
    now: UnixTime,
    by: &str,
) -> Result<(), StoreError> {
    let inserted = diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::expires_at.eq(expires_at),
            revoked_tokens::revoked_at.eq(now),
            revoked_tokens::revoked_by.eq(by),
        ))
        .execute(conn);
    match inserted {
        Ok(_) | Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        Err(e) => Err(e.into()),
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
    let n: i64 = revoked_tokens::table
        .filter(revoked_tokens::jti.eq_any(jtis))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Drops rows of expired tokens (an expired token is refused as expired anyway).
pub fn prune(conn: &mut DbConn, now: UnixTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(conn)?,
    )
}
