//! The refresh token tables (SPEC §3 `refresh_token` grant): families, each family's live
//! token (its head), the digests of every token a family issued, and the tessera tokens
//! each family descends from. Holds no policy: the exchange layer decides what a row
//! means; this module makes each change atomic, so two replicas redeeming one token cannot
//! both win.

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;
use subtle::ConstantTimeEq;

use super::schema::{
    refresh_families, refresh_heads, refresh_lineage, refresh_tokens, revoked_tokens,
};
use super::{revocation, DbConn, StoreError};
use crate::clock::UnixTime;

/// A family as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRow {
    pub family_id: String,
    pub client_id: String,
    pub audience_id: String,
    pub grant_json: String,
    pub dpop_bound: bool,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub idle_secs: Option<i64>,
    pub revoked_at: Option<UnixTime>,
    pub revoked_reason: Option<String>,
}

type FamilyTuple = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

impl From<FamilyTuple> for FamilyRow {
    fn from(t: FamilyTuple) -> Self {
        Self {
            family_id: t.0,
            client_id: t.1,
            audience_id: t.2,
            grant_json: t.3,
            dpop_bound: t.4 != 0,
            created_at: t.5,
            expires_at: t.6,
            idle_secs: t.7,
            revoked_at: t.8,
            revoked_reason: t.9,
        }
    }
}

/// A refresh token found by its digest, with its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub issued_at: UnixTime,
    /// No longer its family's head: redeemed once, so presented again it is a reuse.
    pub spent: bool,
    pub family: FamilyRow,
}

impl Found {
    /// When the family dies unless used: its absolute end, or sooner its idle limit. A
    /// family's last use is when its newest token was issued (every use issues one), and
    /// an unspent token is always its family's newest: so the idle clock runs from this
    /// token's `issued_at`, with no write to the family at each use. (For a spent token
    /// the answer is moot: presenting it is a reuse.)
    pub fn deadline(&self) -> UnixTime {
        match self.family.idle_secs {
            Some(idle) => self
                .family
                .expires_at
                .min(self.issued_at.saturating_add(idle)),
            None => self.family.expires_at,
        }
    }
}

/// Why a family was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A token of its lineage was revoked meanwhile (between the exchange's check against
    /// this replica's revoked set and this transaction): the family would outlive it.
    #[error("a token the family descends from was revoked")]
    LineageRevoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token's row (a macro: `create` inserts through the multi-backend connection, `rotate`
/// through SQLite's own). Every token a family issues has one, for good: it is how an old
/// token presented again is known to be genuine.
macro_rules! insert_token {
    ($conn:expr, $key:expr, $digest:expr, $family_id:expr, $now:expr) => {
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_key.eq($key),
                refresh_tokens::digest.eq($digest),
                refresh_tokens::family_id.eq($family_id),
                refresh_tokens::issued_at.eq($now),
            ))
            .execute($conn)
    };
}

/// Starts a family: its row, its first token (as its head and in its history) and its
/// lineage, in one transaction that re-reads the revocations of its lineage, so a
/// revocation committed before it is never missed.
pub fn create(
    conn: &mut DbConn,
    family: &FamilyRow,
    (first_key, first_digest): (&str, &str),
    lineage: &[String],
) -> Result<(), CreateError> {
    let created = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::insert_into(refresh_families::table)
            .values((
                refresh_families::family_id.eq(&family.family_id),
                refresh_families::client_id.eq(&family.client_id),
                refresh_families::audience_id.eq(&family.audience_id),
                refresh_families::grant_json.eq(&family.grant_json),
                refresh_families::dpop_bound.eq(i64::from(family.dpop_bound)),
                refresh_families::created_at.eq(family.created_at),
                refresh_families::expires_at.eq(family.expires_at),
                refresh_families::idle_secs.eq(family.idle_secs),
            ))
            .execute(conn)?;
        insert_token!(
            conn,
            first_key,
            first_digest,
            &family.family_id,
            family.created_at
        )?;
        diesel::insert_into(refresh_heads::table)
            .values((
                refresh_heads::family_id.eq(&family.family_id),
                refresh_heads::digest.eq(first_digest),
                refresh_heads::issued_at.eq(family.created_at),
            ))
            .execute(conn)?;
        for jti in lineage {
            diesel::insert_into(refresh_lineage::table)
                .values((
                    refresh_lineage::jti.eq(jti),
                    refresh_lineage::family_id.eq(&family.family_id),
                ))
                .execute(conn)?;
        }
        let revoked: i64 = revoked_tokens::table
            .filter(revoked_tokens::jti.eq_any(lineage))
            .count()
            .get_result(conn)?;
        if revoked > 0 {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(())
    });
    match created {
        Ok(()) => Ok(()),
        Err(diesel::result::Error::RollbackTransaction) => Err(CreateError::LineageRevoked),
        Err(e) => Err(CreateError::Store(e.into())),
    }
}

const FAMILY_COLUMNS: (
    refresh_families::family_id,
    refresh_families::client_id,
    refresh_families::audience_id,
    refresh_families::grant_json,
    refresh_families::dpop_bound,
    refresh_families::created_at,
    refresh_families::expires_at,
    refresh_families::idle_secs,
    refresh_families::revoked_at,
    refresh_families::revoked_reason,
) = (
    refresh_families::family_id,
    refresh_families::client_id,
    refresh_families::audience_id,
    refresh_families::grant_json,
    refresh_families::dpop_bound,
    refresh_families::created_at,
    refresh_families::expires_at,
    refresh_families::idle_secs,
    refresh_families::revoked_at,
    refresh_families::revoked_reason,
);

/// The token stored under `key` and its family, if its digest is `digest`: tessera issued
/// exactly this token (and its family has not been pruned). A token whose place is right
/// but whose secret is not was never issued, and finds nothing. It is spent unless it is
/// its family's head.
pub fn find(conn: &mut DbConn, key: &str, digest: &str) -> Result<Option<Found>, StoreError> {
    let query = refresh_tokens::table
        .inner_join(refresh_families::table)
        .left_join(refresh_heads::table)
        .filter(refresh_tokens::token_key.eq(key))
        .select((
            refresh_tokens::digest,
            refresh_tokens::issued_at,
            refresh_heads::digest.nullable(),
            FAMILY_COLUMNS,
        ));
    // Not `first`: its `LIMIT ?` makes SQLite (the bundled 3.53) re-plan the statement at
    // every execution, as the bound limit may change the plan; the key is the primary
    // key, so there is at most one row anyway. And on each backend's own connection: the
    // multi-backend wrapper would render the SQL text at every call to find its cached
    // statement, where the backend's own finds it by the query's type.
    // (stored digest, issued at, the family's head's digest, family)
    let row: Option<(String, i64, Option<String>, FamilyTuple)> = match conn {
        DbConn::Sqlite(c) => query.get_result(c),
        DbConn::Pg(c) => query.get_result(c),
    }
    .optional()?;
    // Migration 000011 undone and done again leaves the tokens of its form keyed by their
    // digest: looked for there too (only a token not found at its key pays the read).
    let row = match row {
        None if key.starts_with("rt") && key != digest => return find(conn, digest, digest),
        row => row,
    };
    Ok(row
        .filter(|(stored, ..)| bool::from(stored.as_bytes().ct_eq(digest.as_bytes())))
        .map(|(stored, issued_at, head, family)| Found {
            issued_at,
            spent: head != Some(stored),
            family: family.into(),
        }))
}

/// What redeeming a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is spent and the new one stored.
    Rotated,
    /// Another request spent the token first (a concurrent reuse): nothing changed.
    AlreadyUsed,
    /// The family was revoked meanwhile: nothing changed.
    FamilyRevoked,
}

/// Spends the token whose digest is `old` and stores `new` in its family. Runs inside the
/// caller's transaction (the group commit, `batch`), with no savepoint of its own. The
/// spend is one conditional statement that moves the family's head from `old` to `new`
/// if the head is `old` and the family live, so a refused rotation changes nothing; the
/// write lock it takes makes it the arbiter between racing replicas (only one sees the
/// head move). SQLite only: PostgreSQL rotates a batch at once (`batch::pg`).
pub fn rotate(
    conn: &mut SqliteConnection,
    family_id: &str,
    old_digest: &str,
    (new_key, new_digest): (&str, &str),
    now: UnixTime,
) -> Result<Rotation, StoreError> {
    // The successor first: should its insert fail, nothing has changed (this runs with no
    // savepoint of its own), where a head moved without its history row would leave the
    // new token unknown.
    insert_token!(conn, new_key, new_digest, family_id, now)?;
    let spent = Spend {
        family_id,
        old: old_digest,
        new: new_digest,
        now,
    }
    .execute(conn)?;
    if spent == 0 {
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::token_key.eq(new_key)))
            .execute(conn)?;
        // Rare: tell a concurrent spend from a family revoked meanwhile.
        let revoked = refresh_families::table
            .filter(refresh_families::family_id.eq(family_id))
            .filter(refresh_families::revoked_at.is_not_null())
            .count()
            .get_result::<i64>(conn)?;
        return Ok(if revoked > 0 {
            Rotation::FamilyRevoked
        } else {
            Rotation::AlreadyUsed
        });
    }
    Ok(Rotation::Rotated)
}

/// `UPDATE refresh_heads SET (digest, issued_at) = new WHERE family_id = family AND digest =
/// old AND the family is live`, written out so that diesel caches its prepared statement:
/// diesel never caches an `UPDATE` it builds, and on SQLite parsing and planning this one
/// again at every rotation was a tenth of a refresh grant's CPU. The column names are
/// checked against the schema by the store's tests of the group commit's rotations.
struct Spend<'a> {
    family_id: &'a str,
    old: &'a str,
    new: &'a str,
    now: UnixTime,
}

impl QueryId for Spend<'_> {
    type QueryId = Spend<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for Spend<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_heads SET digest = ");
        out.push_bind_param::<Text, _>(self.new)?;
        out.push_sql(", issued_at = ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(" WHERE family_id = ");
        out.push_bind_param::<Text, _>(self.family_id)?;
        out.push_sql(" AND digest = ");
        out.push_bind_param::<Text, _>(self.old)?;
        out.push_sql(
            " AND family_id IN (SELECT family_id FROM refresh_families WHERE family_id = ",
        );
        out.push_bind_param::<Text, _>(self.family_id)?;
        out.push_sql(" AND revoked_at IS NULL)");
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for Spend<'_> {}

/// How long past a family's end its revocation is kept: the skew a presented token of it
/// is still allowed, with room (as for revoked access tokens).
pub const REVOCATION_MARGIN_SECS: i64 = 300;

/// Revokes a family (reuse, `/revoke`), every family descending from its access tokens,
/// and through the revocation list every access token any of them issued: those carry
/// their family's id in their lineage. Revoking twice is not an error. Returns whether the
/// family was live until now.
pub fn revoke_family(
    conn: &mut DbConn,
    family: &FamilyRow,
    now: UnixTime,
    reason: &str,
) -> Result<bool, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        let changed = diesel::update(
            refresh_families::table
                .filter(refresh_families::family_id.eq(&family.family_id))
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set((
            refresh_families::revoked_at.eq(now),
            refresh_families::revoked_reason.eq(reason),
        ))
        .execute(conn)?;
        record_family(
            conn,
            &family.family_id,
            family.expires_at,
            now,
            &family.client_id,
        )?;
        revoke_descendants(conn, &[family.family_id.as_str()], now)?;
        Ok(changed > 0)
    })
}

/// The family id on the revocation list until the family's end (its access tokens never
/// outlive it), announced to the other replicas like any revocation.
fn record_family(
    conn: &mut DbConn,
    family_id: &str,
    expires_at: UnixTime,
    now: UnixTime,
    by: &str,
) -> Result<(), StoreError> {
    let until = expires_at.saturating_add(REVOCATION_MARGIN_SECS);
    revocation::record(conn, family_id, until, now, by)
}

/// Ends every live family descending from one of `jtis` (a revoked tessera token or
/// family: SPEC §2.1, "every refresh family started from it") and puts each on the
/// revocation list, so the access tokens it issued are refused as long as they live. A
/// lineage lists every ancestor, so one pass reaches every generation. Returns how many
/// ended.
pub fn revoke_descendants(
    conn: &mut DbConn,
    jtis: &[&str],
    now: UnixTime,
) -> Result<usize, StoreError> {
    let families = refresh_lineage::table
        .filter(refresh_lineage::jti.eq_any(jtis))
        .select(refresh_lineage::family_id);
    let ending: Vec<(String, i64, String)> = refresh_families::table
        .filter(refresh_families::family_id.eq_any(families))
        .filter(refresh_families::revoked_at.is_null())
        .select((
            refresh_families::family_id,
            refresh_families::expires_at,
            refresh_families::client_id,
        ))
        .load(conn)?;
    for (family_id, expires_at, client_id) in &ending {
        diesel::update(refresh_families::table.filter(refresh_families::family_id.eq(family_id)))
            .set((
                refresh_families::revoked_at.eq(now),
                refresh_families::revoked_reason.eq("lineage revoked"),
            ))
            .execute(conn)?;
        record_family(conn, family_id, *expires_at, now, client_id)?;
    }
    Ok(ending.len())
}

/// Drops families that ended before `before` with their heads and lineage, and tokens of
/// ended families: a token pruned reads as unknown, which is refused as surely as expired.
pub fn prune(conn: &mut DbConn, before: UnixTime) -> Result<usize, StoreError> {
    // One transaction (one commit, not one per statement), of a bounded size: on SQLite
    // it holds the write lock every group commit waits for. The rest go at the next run.
    conn.transaction(|conn| {
        let families = prune_families(conn, before, PRUNE_FAMILIES)?;
        prune_tokens(conn, before, PRUNE_TOKENS)?;
        Ok(families)
    })
}

/// Most families one prune drops.
const PRUNE_FAMILIES: i64 = 5_000;
/// How far apart replicas' clocks may be for pruning never to take a live family's token.
const CLOCK_SKEW_MARGIN_SECS: i64 = 3600;
/// Most tokens one prune drops (a few hundred milliseconds of SQLite's write lock at most).
const PRUNE_TOKENS: i64 = 50_000;

fn prune_families(conn: &mut DbConn, before: UnixTime, most: i64) -> Result<usize, StoreError> {
    let gone: Vec<String> = refresh_families::table
        .filter(refresh_families::expires_at.lt(before))
        .select(refresh_families::family_id)
        .limit(most)
        .load(conn)?;
    diesel::delete(refresh_heads::table.filter(refresh_heads::family_id.eq_any(&gone)))
        .execute(conn)?;
    diesel::delete(refresh_lineage::table.filter(refresh_lineage::family_id.eq_any(&gone)))
        .execute(conn)?;
    Ok(
        diesel::delete(refresh_families::table.filter(refresh_families::family_id.eq_any(&gone)))
            .execute(conn)?,
    )
}

/// Tokens issued before the oldest family still stored began: no family has a token older
/// than itself, so these are all of ended families. Found by issue time (an index that a
/// rotation appends to), where finding a family's tokens would need an index on the
/// family written all over at each rotation. A long-lived family holds back the pruning
/// of what was issued after it began, never more than the longest `refresh_lifetime`.
/// Never past `before` (an hour ago): a family created meanwhile, seen or not, began
/// after it. And [`CLOCK_SKEW_MARGIN_SECS`] earlier still: a family's creation and its
/// tokens' issue times are read off the clocks of the replicas that wrote them, and a
/// token rotated at once on a replica whose clock lags may look older than its family.
fn prune_tokens(conn: &mut DbConn, before: UnixTime, most: i64) -> Result<usize, StoreError> {
    let oldest: Option<i64> = refresh_families::table
        .select(diesel::dsl::min(refresh_families::created_at))
        .get_result(conn)?;
    let horizon = oldest
        .map_or(before, |o| o.min(before))
        .saturating_sub(CLOCK_SKEW_MARGIN_SECS);
    let ended = || refresh_tokens::table.filter(refresh_tokens::issued_at.lt(horizon));
    // At most `most`: up to the issue time of the first token past them (or one second
    // past the oldest, should more than `most` share it: always some progress).
    let times = ended()
        .select(refresh_tokens::issued_at)
        .order(refresh_tokens::issued_at);
    let first: Option<i64> = times.first(conn).optional()?;
    let cut: Option<i64> = times.offset(most).first(conn).optional()?;
    let upto = match (first, cut) {
        (Some(first), Some(cut)) => cut.max(first.saturating_add(1)),
        _ => horizon,
    };
    Ok(diesel::delete(ended().filter(refresh_tokens::issued_at.lt(upto))).execute(conn)?)
}
