//! SQLite WAL checkpoints, kept off the audit writer's commits.
//!
//! In WAL mode a commit appends pages to the WAL; a checkpoint copies them back into the
//! database file and fsyncs it. By default the connection whose commit takes the WAL past
//! 1,000 pages runs that checkpoint inside its commit, and on a broker that is always the
//! audit writer, which every token-path request waits for: each checkpoint stalled a whole
//! batch of requests for the copy and the second fsync. Profiling the refresh grant
//! (whose rotations dirty a page per family) put 4 % of the server's CPU in checkpoints
//! run by the writer, with the latency of the database file's fsync on top.
//!
//! So the writer's connection checkpoints only past [`WRITER_AUTOCHECKPOINT_PAGES`] (a
//! safety net), and a thread of its own runs a `PASSIVE` checkpoint every
//! [`INTERVAL`]. `PASSIVE` never takes the write lock and never waits (SQLite §"Checkpoint
//! a database"): it copies what no reader still needs; the writer restarts the WAL from its
//! start once a checkpoint has copied all of it. Durability is unchanged: a commit is
//! durable when its WAL frames are synced (`synchronous = FULL`), checkpointed or not.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::ManageConnection;

use super::{ConnectionManager, DbConn};

/// How often the checkpoint thread copies the WAL back.
const INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own `wal_autocheckpoint`: only if the checkpoint thread falls this far
/// behind (about 40 MB of WAL) does a commit checkpoint, as SQLite would by default.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Runs checkpoints while it lives; dropping it (with the last clone of the writer's
/// store) stops the thread at its next tick.
#[derive(Debug)]
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread; it connects on its first tick and again after any failure, so a
    /// database that is down at start is checkpointed once it is back.
    pub(super) fn start(manager: ConnectionManager) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&manager, &stopped));
        if let Err(error) = spawned {
            // Without the thread the writer's safety-net autocheckpoint still bounds the
            // WAL: slower commits, nothing lost.
            tracing::warn!(%error, "the WAL checkpoint thread could not start");
        }
        Self { _stop: stop }
    }
}

fn run(manager: &ConnectionManager, stopped: &mpsc::Receiver<()>) {
    let mut conn: Option<DbConn> = None;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        if conn.is_none() {
            conn = manager.connect().ok();
        }
        let Some(DbConn::Sqlite(c)) = conn.as_mut() else {
            continue;
        };
        if let Err(error) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(%error, "WAL checkpoint failed; reconnecting at the next tick");
            conn = None;
        }
    }
}
