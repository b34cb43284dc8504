//! The audit trail: one durable row per token request outcome, written before the response
//! leaves (SPEC §5).
//!
//! Rule: [`AuditLog::record`] returns only once the row is committed; if it returns an
//! error the caller must not hand out the token. Requests are batched into group commits by
//! one writer task (up to [`MAX_BATCH`] rows per transaction), so the cost of a durable
//! commit is shared by everyone waiting. Never a token here: only `jti` and a SHA-256 prefix
//! of the subject token.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::UnixTime;
use crate::metrics::Metrics;
use crate::store::audit::{insert_events, prune_before, NewAuditRow};
use crate::store::{Store, StoreError};

/// Rows per transaction at most.
pub const MAX_BATCH: usize = 512;

/// Events waiting beyond this make `record` wait for room (back-pressure, bounded memory).
const QUEUE_CAPACITY: usize = 16 * 1024;
/// `record` gives up after this long: an answer of `temporarily_unavailable` beats a hung
/// request when the database stalls (a pool checkout alone may take 2 s on a dead server).
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// `shutdown` waits at most this long for the final flush: one group commit, normally
/// milliseconds. With `server.shutdown_timeout` (8 s) it bounds the exit within 10 s.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1500);

/// The `outcome` column. `refused` and `error` mean the same for every endpoint: the
/// caller's fault (with the failing step in `reason`), or ours or a foreign issuer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// `/token` handed out a token.
    Issued,
    Refused,
    Error,
    /// `/introspect` or `/revoke` answered an authenticated client as the RFC says: an
    /// introspection answer (active or not, `detail` says which and why), a revocation
    /// done or, RFC 7009 §2.2, nothing to revoke. Not `issued`: nothing was.
    Ok,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Issued => "issued",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Error => "error",
            AuditOutcome::Ok => "ok",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: UnixTime,
    pub grant: &'static str,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub audience: Option<String>,
    pub scopes: Option<String>,
    pub outcome: AuditOutcome,
    /// The stable label of a refusal: the failing step's name (what `--step` matches).
    pub reason: Option<String>,
    /// The operator's account: what was compared and why it failed (or, for the lifecycle
    /// endpoints, what was answered). Never token text.
    pub detail: Option<String>,
    pub jti: Option<String>,
    pub subject_token_sha256: Option<String>,
}

impl AuditEvent {
    fn as_row(&self) -> NewAuditRow<'_> {
        NewAuditRow {
            at: self.at,
            grant_type: self.grant,
            client_id: self.client_id.as_deref(),
            issuer: self.issuer.as_deref(),
            subject: self.subject.as_deref(),
            actor: self.actor.as_deref(),
            audience: self.audience.as_deref(),
            scopes: self.scopes.as_deref(),
            outcome: self.outcome.as_str(),
            reason: self.reason.as_deref(),
            detail: self.detail.as_deref(),
            jti: self.jti.as_deref(),
            subject_token_sha256: self.subject_token_sha256.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

type Ack = oneshot::Sender<Result<(), String>>;

enum Message {
    // Boxed: events are large and the channel slot is sized by the largest variant.
    Event(Box<AuditEvent>, Ack),
    /// Everything queued before this is flushed, then the writer stops and acks.
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Spawns the writer task. Must be called within a Tokio runtime.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(writer(store, rx, metrics.clone()));
        Self { tx, metrics }
    }

    /// Enqueues `event` and waits until its row is committed.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (ack, committed) = oneshot::channel();
        let wait = async {
            // Counted before the send so the writer's decrement never runs first.
            self.metrics.audit_queue_depth.inc();
            if self
                .tx
                .send(Message::Event(Box::new(event), ack))
                .await
                .is_err()
            {
                self.metrics.audit_queue_depth.dec();
                return Err(AuditError::Unavailable("audit writer stopped".to_owned()));
            }
            match committed.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(AuditError::Unavailable(e)),
                Err(_) => Err(AuditError::Unavailable("audit writer stopped".to_owned())),
            }
        };
        tokio::time::timeout(RECORD_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("audit commit timed out".to_owned())))
    }

    /// Flushes everything queued so far and stops the writer; later `record`s fail.
    pub async fn shutdown(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Message::Shutdown(done)).await.is_ok()
            && tokio::time::timeout(SHUTDOWN_TIMEOUT, flushed)
                .await
                .is_err()
        {
            tracing::warn!("audit flush did not finish before the shutdown deadline");
        }
    }
}

/// Retention (`tessera audit prune`): deletes the events recorded before `cutoff` in
/// short transactions, beside running writers; returns how many went.
pub async fn prune(store: &Store, cutoff: UnixTime) -> Result<u64, StoreError> {
    store.run(move |conn| prune_before(conn, cutoff)).await
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Message>, metrics: Arc<Metrics>) {
    let mut batch: Vec<AuditEvent> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<Ack> = Vec::with_capacity(MAX_BATCH);
    let mut stop: Option<oneshot::Sender<()>> = None;
    while stop.is_none() {
        // Wait for one message, then take whatever else is already queued: the batch grows
        // with load and a lone request is written at once.
        let Some(first) = rx.recv().await else { break };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Event(event, ack) => {
                    batch.push(*event);
                    acks.push(ack);
                }
                Message::Shutdown(done) => {
                    stop = Some(done);
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if batch.is_empty() {
            continue;
        }
        let taken = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        metrics.audit_queue_depth.dec_by(taken);
        let failed = commit(&store, std::mem::take(&mut batch), &mut acks)
            .await
            .err();
        if let Some(error) = failed {
            // The database is failing: everyone already waiting would most likely fail
            // the same way after another connection timeout, so answer them now.
            let mut drained = 0;
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Message::Event(_, ack) => {
                        drained += 1;
                        let _ = ack.send(Err(error.clone()));
                    }
                    Message::Shutdown(done) => {
                        stop = Some(done);
                        break;
                    }
                }
            }
            metrics.audit_queue_depth.dec_by(drained);
        }
    }
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// Commits `events` in one transaction and acks every waiter with the outcome.
async fn commit(store: &Store, events: Vec<AuditEvent>, acks: &mut Vec<Ack>) -> Result<(), String> {
    let count = events.len();
    let result = store
        .run(move |conn| {
            let rows: Vec<NewAuditRow<'_>> = events.iter().map(AuditEvent::as_row).collect();
            insert_events(conn, &rows)?;
            Ok(())
        })
        .await
        .map_err(|e| e.to_string());
    match &result {
        Ok(()) => tracing::debug!(events = count, "audit batch committed"),
        Err(error) => tracing::error!(%error, events = count, "audit commit failed"),
    }
    for ack in acks.drain(..) {
        let _ = ack.send(result.clone());
    }
    result
}

pub mod query;

#[cfg(test)]
mod tests;
