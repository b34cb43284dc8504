//! Group commit for the small writes on the token path: a single-use id recorded (replay
//! cache, DPoP `jti`, client assertion `jti`) and a refresh token rotated. Each must be
//! durable and decided by the database before the answer leaves, and each alone would be
//! one commit (one fsync on SQLite, one WAL flush on PostgreSQL) per request, serialised
//! on SQLite's single writer. One writer task takes whatever is queued (up to
//! [`MAX_BATCH`]) and applies it in one transaction, each write in a savepoint of its own so
//! that one write's refusal (a unique violation: a replay) never undoes another's.
//!
//! The database stays the arbiter between replicas: the same constraints and conditional
//! updates decide, only the commits are shared.

use diesel::Connection;
use tokio::sync::{mpsc, oneshot};

use super::refresh::{self, Rotation};
use super::replay::{self, Seen};
use super::{DbConn, Store, StoreError};
use crate::clock::UnixTime;

/// Most writes per transaction.
pub const MAX_BATCH: usize = 256;
/// Writes waiting for the writer; a full queue makes callers wait (backpressure).
const QUEUE_CAPACITY: usize = 4096;

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

type Job = (Write, oneshot::Sender<Result<Written, String>>);

/// The handle callers share; the writer task ends when the last handle is dropped.
#[derive(Clone)]
pub struct WriteBatcher {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for WriteBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatcher").finish_non_exhaustive()
    }
}

impl WriteBatcher {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(writer(store, rx));
        Self { tx }
    }

    /// Applies `write` in the next group commit; answers once it is committed.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (ack, done) = oneshot::channel();
        let gone = || StoreError::Batch("the write batcher has stopped".into());
        self.tx.send((write, ack)).await.map_err(|_| gone())?;
        done.await
            .map_err(|_| gone())?
            .map_err(StoreError::Batch)
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (writes, acks): (Vec<Write>, Vec<_>) = jobs.into_iter().unzip();
        match store.run(move |conn| apply(conn, writes)).await {
            Ok(results) => {
                for (ack, result) in acks.into_iter().zip(results) {
                    let _ = ack.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a group commit of token-path writes failed");
                let message = e.to_string();
                for ack in acks {
                    let _ = ack.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Every write in one transaction, each in its own savepoint.
fn apply(conn: &mut DbConn, writes: Vec<Write>) -> Result<Vec<Result<Written, String>>, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        Ok(writes
            .into_iter()
            .map(|w| apply_one(conn, w).map_err(|e| e.to_string()))
            .collect())
    })
}

fn apply_one(conn: &mut DbConn, write: Write) -> Result<Written, StoreError> {
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
