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

use diesel::{Connection, SqliteConnection};

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
    /// Spend the refresh token of `family_id` whose digest is `old` (the family's head)
    /// and store its successor (key, digest).
    Rotate {
        family_id: String,
        old: String,
        new: (String, String),
        now: UnixTime,
    },
}

/// What a write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Replay(Seen),
    Rotate(Rotation),
}

/// Applies one write inside the caller's transaction, on SQLite (PostgreSQL applies a
/// batch's writes set-based, `pg::apply_all`).
fn apply(lite: &mut SqliteConnection, write: Write) -> Result<Written, StoreError> {
    match write {
        Write::Replay {
            issuer,
            token_id,
            expires_at,
        } => replay::record_sqlite(lite, &issuer, &token_id, expires_at).map(Written::Replay),
        Write::Rotate {
            family_id,
            old,
            new,
            now,
        } => refresh::rotate(lite, &family_id, &old, (&new.0, &new.1), now).map(Written::Rotate),
    }
}

/// One group commit: `writes` (each with its own result) and the audit `rows`, in one
/// transaction. A row listed in `guards` with a range of `writes` is inserted only if each
/// of those writes won (the single-use id was new, the rotation spent its token): the
/// request's token and its row then commit together, or neither does. An error here (the
/// transaction or the rows failed) fails the whole batch.
pub fn commit(
    conn: &mut DbConn,
    writes: Vec<Write>,
    rows: &[NewAuditRow<'_>],
    guards: &[(usize, std::ops::Range<usize>)],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        let written: Vec<Result<Written, StoreError>> = match conn {
            // A statement per write would be a round trip each, in the one writer every
            // request waits for: set-based statements instead, a few per batch.
            DbConn::Pg(pg) => pg::apply_all(pg, writes)?,
            DbConn::Sqlite(lite) => writes.into_iter().map(|w| apply(lite, w)).collect(),
        };
        let lost: Vec<usize> = guards
            .iter()
            .filter(|(_, range)| !written[range.clone()].iter().all(won))
            .map(|(row, _)| *row)
            .collect();
        let kept: Vec<NewAuditRow<'_>> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost.contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        if !kept.is_empty() {
            insert_events(conn, &kept)?;
        }
        Ok(written)
    })
}

/// Whether a write did what its request needs: a new single-use id, a spent token.
pub fn won(written: &Result<Written, StoreError>) -> bool {
    matches!(
        written,
        Ok(Written::Replay(Seen::First)) | Ok(Written::Rotate(Rotation::Rotated))
    )
}

/// PostgreSQL: the batch's writes as a handful of set-based statements, with the same
/// meaning as [`apply`] one by one in batch order (the first of two writes of one key
/// wins, as it would have).
mod pg {
    use std::collections::HashSet;

    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Text, Untyped};
    use diesel::PgConnection;

    use super::{Rotation, Seen, Write, Written};
    use crate::store::schema::refresh_families;
    use crate::store::StoreError;

    pub(super) fn apply_all(
        pg: &mut PgConnection,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let mut first_seen = replays(pg, &writes)?;
        let mut rotated = rotations(pg, &writes)?;
        Ok(writes
            .iter()
            .map(|w| {
                Ok(match w {
                    Write::Replay {
                        issuer, token_id, ..
                    } => {
                        Written::Replay(if first_seen.remove(&(issuer.clone(), token_id.clone())) {
                            Seen::First
                        } else {
                            Seen::Before
                        })
                    }
                    Write::Rotate { old, family_id, .. } => {
                        Written::Rotate(match rotated.spent.remove(old.as_str()) {
                            true => Rotation::Rotated,
                            false if rotated.revoked.contains(family_id.as_str()) => {
                                Rotation::FamilyRevoked
                            }
                            false => Rotation::AlreadyUsed,
                        })
                    }
                })
            })
            .collect())
    }

    /// One INSERT … ON CONFLICT DO NOTHING RETURNING for every single-use id: those it
    /// returns were recorded now (the first presentation).
    fn replays(
        pg: &mut PgConnection,
        writes: &[Write],
    ) -> Result<HashSet<(String, String)>, StoreError> {
        let mut ids: Vec<(&str, &str, i64)> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Replay {
                    issuer,
                    token_id,
                    expires_at,
                } => Some((issuer.as_str(), token_id.as_str(), *expires_at)),
                Write::Rotate { .. } => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        // Recorded in one order by every replica's writer (`INSERT … SELECT` takes the
        // rows in array order): two batches with an id in common wait for each other,
        // never deadlock.
        ids.sort_unstable();
        let inserted: Vec<Recorded> = RecordIds {
            issuer: ids.iter().map(|i| i.0.to_owned()).collect(),
            token_id: ids.iter().map(|i| i.1.to_owned()).collect(),
            expires_at: ids.iter().map(|i| i.2).collect(),
        }
        .load(pg)?;
        Ok(inserted
            .into_iter()
            .map(|r| (r.issuer, r.token_id))
            .collect())
    }

    /// What lets diesel keep a hand-written statement prepared (a static query id) and
    /// load its rows by name.
    macro_rules! prepared {
        ($statement:ident) => {
            impl QueryId for $statement {
                type QueryId = $statement;
                const HAS_STATIC_QUERY_ID: bool = true;
            }

            impl Query for $statement {
                type SqlType = Untyped;
            }

            impl RunQueryDsl<PgConnection> for $statement {}
        };
    }

    /// The batch's single-use ids as one statement, kept prepared (see [`MoveHeads`]):
    /// `INSERT … ON CONFLICT DO NOTHING RETURNING` what was new.
    struct RecordIds {
        issuer: Vec<String>,
        token_id: Vec<String>,
        expires_at: Vec<i64>,
    }

    prepared!(RecordIds);

    impl QueryFragment<Pg> for RecordIds {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(
                "INSERT INTO replay_cache (issuer, token_id, expires_at) SELECT * FROM unnest(",
            );
            out.push_bind_param::<Array<Text>, _>(&self.issuer)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<Text>, _>(&self.token_id)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<BigInt>, _>(&self.expires_at)?;
            out.push_sql(
                "::bigint[]) AS v(issuer, token_id, expires_at) \
                 ON CONFLICT DO NOTHING RETURNING issuer, token_id",
            );
            Ok(())
        }
    }

    #[derive(QueryableByName)]
    struct Recorded {
        #[diesel(sql_type = Text)]
        issuer: String,
        #[diesel(sql_type = Text)]
        token_id: String,
    }

    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = Text)]
        old_digest: String,
    }

    /// The batch's rotations as one statement, the rotations' columns as arrays: moves each
    /// family's head if it is still the old digest and the family is live, appends the
    /// successors of those it moved, and returns their old digests. Written out (with a static
    /// query id) so that diesel keeps it prepared: `sql_query` is parsed and planned again
    /// at every batch, in the writer every request waits for.
    struct MoveHeads {
        family_id: Vec<String>,
        old_digest: Vec<String>,
        new_key: Vec<String>,
        new_digest: Vec<String>,
        now: Vec<i64>,
    }

    prepared!(MoveHeads);

    impl QueryFragment<Pg> for MoveHeads {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH v AS (SELECT * FROM unnest(");
            out.push_bind_param::<Array<Text>, _>(&self.family_id)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<Text>, _>(&self.old_digest)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<Text>, _>(&self.new_key)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<Text>, _>(&self.new_digest)?;
            out.push_sql("::text[], ");
            out.push_bind_param::<Array<BigInt>, _>(&self.now)?;
            out.push_sql(
                "::bigint[]) AS v(family_id, old_digest, new_key, new_digest, now)), \
                 moved AS (UPDATE refresh_heads h SET digest = v.new_digest, \
                 issued_at = v.now FROM v \
                 WHERE h.family_id = v.family_id AND h.digest = v.old_digest \
                 AND EXISTS (SELECT 1 FROM refresh_families f \
                 WHERE f.family_id = v.family_id AND f.revoked_at IS NULL) \
                 RETURNING v.family_id, v.old_digest, v.new_key, v.new_digest, v.now), \
                 appended AS (INSERT INTO refresh_tokens (token_key, family_id, digest, issued_at) \
                 SELECT new_key, family_id, new_digest, now FROM moved) \
                 SELECT old_digest FROM moved",
            );
            Ok(())
        }
    }

    /// A rotation of the batch: family, old digest, (new key, new digest), time.
    type Rot<'a> = (&'a str, &'a str, &'a (String, String), i64);

    struct Rotated {
        /// Old digests spent by this batch.
        spent: HashSet<String>,
        /// Families of the unspent ones that are revoked.
        revoked: HashSet<String>,
    }

    /// One statement moves the head of every family whose head is the presented token and
    /// which is live, and appends the successors of those it moved.
    fn rotations(pg: &mut PgConnection, writes: &[Write]) -> Result<Rotated, StoreError> {
        let rotations: Vec<Rot<'_>> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Rotate {
                    family_id,
                    old,
                    new,
                    now,
                } => Some((family_id.as_str(), old.as_str(), new, *now)),
                Write::Replay { .. } => None,
            })
            .collect();
        let mut out = Rotated {
            spent: HashSet::new(),
            revoked: HashSet::new(),
        };
        if rotations.is_empty() {
            return Ok(out);
        }
        // Two redemptions of one token in a batch (a concurrent reuse): the first in batch
        // order is the one tried, as one by one; the others lose.
        let mut claimed = HashSet::new();
        let mut tried: Vec<&Rot<'_>> = rotations.iter().filter(|r| claimed.insert(r.1)).collect();
        // Sent in family order by every replica's writer, so that the plan PostgreSQL
        // picks for a batch (a nested loop over the arrays) locks heads in one order and
        // two batches touching the same families wait for each other. The order is the
        // plan's, not promised: should two batches ever deadlock, PostgreSQL aborts one,
        // nothing of it is written and its requests are refused as unavailable (a retry
        // then finds its tokens unspent).
        tried.sort_by_key(|r| r.0);
        let column =
            |f: fn(&Rot<'_>) -> String| tried.iter().map(|r| f(r)).collect::<Vec<String>>();
        // One statement, one round trip in the writer every request waits for: the heads
        // moved, and the successors of those that moved appended.
        let moved: Vec<Moved> = MoveHeads {
            family_id: column(|r| r.0.to_owned()),
            old_digest: column(|r| r.1.to_owned()),
            new_key: column(|r| r.2 .0.clone()),
            new_digest: column(|r| r.2 .1.clone()),
            now: tried.iter().map(|r| r.3).collect(),
        }
        .load(pg)?;
        out.spent = moved.into_iter().map(|m| m.old_digest).collect();
        let losers: Vec<&str> = rotations
            .iter()
            .filter(|r| !out.spent.contains(r.1))
            .map(|r| r.0)
            .collect();
        if !losers.is_empty() {
            let revoked: Vec<String> = refresh_families::table
                .filter(refresh_families::family_id.eq_any(&losers))
                .filter(refresh_families::revoked_at.is_not_null())
                .select(refresh_families::family_id)
                .load(pg)?;
            out.revoked = revoked.into_iter().collect();
        }
        Ok(out)
    }
}
