//! The audit trail: one durable row per token request outcome, written before the response
//! leaves (SPEC §5).
//!
//! Rule: [`AuditLog::record`] returns only once the row is committed; if it returns an
//! error the caller must not hand out the token. Requests are batched into group commits by
//! one writer task (up to [`MAX_BATCH`] rows per transaction), so the cost of a durable
//! commit is shared by everyone waiting. Never a token here: only `jti` and a SHA-256 prefix
//! of the subject token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::UnixTime;
use crate::metrics::Metrics;
use crate::store::audit::{prune_before, NewAuditRow};
use crate::store::batch::{self, Write, Written};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    fn as_row(&self, requests: i64) -> NewAuditRow<'_> {
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
            requests,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The answer to a token-path write ([`AuditLog::write`]).
type WriteAck = oneshot::Sender<Result<Written, String>>;
/// The answer to a guarded row ([`AuditLog::record_guarded`]): what each write found.
type GuardAck = oneshot::Sender<Result<Vec<Written>, String>>;

enum Message {
    // Boxed: events are large and the channel slot is sized by the largest variant.
    // With the number of requests the row stands for (1, or a summary's count).
    Event(Box<(AuditEvent, i64)>, Ack),
    /// A write of the token path (a single-use id, a refresh rotation): committed in the
    /// same transaction as the audit rows of its batch.
    Write(Write, WriteAck),
    /// A row committed only if each of its writes wins, in the same transaction.
    Guarded(Box<AuditEvent>, Vec<Write>, GuardAck),
    /// Everything queued before this is flushed, then the writer stops and acks.
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    summaries: Arc<Summaries>,
}

/// Default of `limits.refusal_summary_interval`.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

impl AuditLog {
    /// Spawns the writer task. Must be called within a Tokio runtime.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> Self {
        Self::start_with(store, metrics, SUMMARY_INTERVAL)
    }

    /// [`AuditLog::start`], writing the pending summaries every `summary_interval`.
    pub fn start_with(store: Store, metrics: Arc<Metrics>, summary_interval: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        // A connection of its own: the group commit never waits behind pooled readers.
        // And a thread of its own: every token-path request waits for this loop, which
        // blocks in each commit; on the blocking pool each batch paid a hand-over to a
        // pool thread and back to a runtime, a quarter of the commit's wall time under
        // load. The thread ends when the channel closes or at `shutdown`.
        let (writer_store, writer_metrics) = (store.dedicated(), metrics.clone());
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(&writer_store, rx, &writer_metrics));
        if let Err(error) = spawned {
            // Every record then fails as "audit writer stopped": no token leaves unaudited.
            tracing::error!(%error, "the audit writer thread could not start");
        }
        let log = Self {
            tx,
            metrics,
            summaries: Arc::default(),
        };
        let flusher = log.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(summary_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if flusher.tx.is_closed() {
                    break;
                }
                flusher.flush_summaries().await;
            }
        });
        log
    }

    /// Counts `event` toward a summary row instead of writing it now (SPEC §3): for
    /// refusals before the client is authenticated and requests over a rate limit, so a
    /// flood of them adds at most one row per kind and interval and never waits on a
    /// commit. `event.client_id` must be a registered client or `None`: keys stay bounded.
    pub fn summarise(&self, event: AuditEvent) {
        self.metrics.refusals_summarised.inc();
        self.summaries.add(event);
    }

    /// Writes one row per pending summary and waits for the commit. A summary that could
    /// not be written is kept and retried with the next ones: nothing is lost.
    pub async fn flush_summaries(&self) {
        for (key, pending) in self.summaries.take() {
            let requests = pending.requests;
            // No deadline here: a row queued and then given up on could still commit, and
            // be written again from the restored summary. The writer answers every row.
            if let Err(e) = self.commit_row(pending.row(), requests, None).await {
                tracing::error!(error = %e, requests, "audit summary not written; kept for the next try");
                self.summaries.restore(key, pending);
            }
        }
    }

    /// Enqueues `event` and waits until its row is committed.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.commit_row(event, 1, Some(RECORD_TIMEOUT)).await
    }

    /// Commits `event` together with `writes` (a refresh rotation, a DPoP proof's `jti`):
    /// the row is inserted only if each write wins, in the same transaction, so a token
    /// and its audit row are durable at once (one commit, like any exchange's) or the
    /// row is not there and the caller refuses. Returns what each write found.
    pub async fn record_guarded(
        &self,
        event: AuditEvent,
        writes: Vec<Write>,
    ) -> Result<Vec<Written>, AuditError> {
        let (ack, done) = oneshot::channel();
        let gone = || AuditError::Unavailable("audit writer stopped".to_owned());
        let wait = async {
            self.tx
                .send(Message::Guarded(Box::new(event), writes, ack))
                .await
                .map_err(|_| gone())?;
            done.await
                .map_err(|_| gone())?
                .map_err(AuditError::Unavailable)
        };
        tokio::time::timeout(RECORD_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("audit commit timed out".to_owned())))
    }

    /// Applies a token-path write (a single-use id recorded, a refresh token rotated) in
    /// the writer's next group commit, beside the audit rows of that batch: one commit
    /// (one fsync) for both, instead of one per write. Each write runs in a savepoint of
    /// its own, so one write's refusal (a unique violation: a replay) undoes nothing else.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (ack, done) = oneshot::channel();
        let gone = || StoreError::Batch("the audit writer has stopped".into());
        let wait = async {
            self.tx
                .send(Message::Write(write, ack))
                .await
                .map_err(|_| gone())?;
            done.await.map_err(|_| gone())?.map_err(StoreError::Batch)
        };
        tokio::time::timeout(RECORD_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| Err(StoreError::Batch("the group commit timed out".into())))
    }

    async fn commit_row(
        &self,
        event: AuditEvent,
        requests: i64,
        deadline: Option<Duration>,
    ) -> Result<(), AuditError> {
        let (ack, committed) = oneshot::channel();
        let wait = async {
            // Counted before the send so the writer's decrement never runs first.
            self.metrics.audit_queue_depth.inc();
            if self
                .tx
                .send(Message::Event(Box::new((event, requests)), ack))
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
        match deadline {
            Some(d) => tokio::time::timeout(d, wait).await.unwrap_or_else(|_| {
                Err(AuditError::Unavailable("audit commit timed out".to_owned()))
            }),
            None => wait.await,
        }
    }

    /// Writes the pending summaries, flushes everything queued so far and stops the
    /// writer; later `record`s fail.
    pub async fn shutdown(&self) {
        self.flush_summaries().await;
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

fn writer(store: &Store, mut rx: mpsc::Receiver<Message>, metrics: &Metrics) {
    let mut batch: Vec<(AuditEvent, i64)> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<Ack> = Vec::with_capacity(MAX_BATCH);
    let mut writes: Vec<(Write, WriteAck)> = Vec::new();
    let mut guarded: Vec<(AuditEvent, Vec<Write>, GuardAck)> = Vec::new();
    let mut stop: Option<oneshot::Sender<()>> = None;
    while stop.is_none() {
        // Wait for one message, then take whatever else is already queued: the batch grows
        // with load and a lone request is written at once.
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Event(event, ack) => {
                    batch.push(*event);
                    acks.push(ack);
                }
                Message::Write(write, ack) => writes.push((write, ack)),
                Message::Guarded(event, w, ack) => guarded.push((*event, w, ack)),
                Message::Shutdown(done) => {
                    stop = Some(done);
                    break;
                }
            }
            if batch.len() + writes.len() + guarded.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if batch.is_empty() && writes.is_empty() && guarded.is_empty() {
            continue;
        }
        let taken = i64::try_from(batch.len()).unwrap_or(i64::MAX);
        metrics.audit_queue_depth.dec_by(taken);
        let failed = commit(
            store,
            std::mem::take(&mut batch),
            &mut acks,
            std::mem::take(&mut writes),
            std::mem::take(&mut guarded),
        )
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
                    Message::Write(_, ack) => {
                        let _ = ack.send(Err(error.clone()));
                    }
                    Message::Guarded(_, _, ack) => {
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

/// Commits `writes`, `events` and the `guarded` rows in one transaction and acks every
/// waiter with the outcome: each write's own result, each guarded row's writes' results,
/// and the batch's for the plain audit rows.
fn commit(
    store: &Store,
    mut events: Vec<(AuditEvent, i64)>,
    acks: &mut Vec<Ack>,
    writes: Vec<(Write, WriteAck)>,
    guarded: Vec<(AuditEvent, Vec<Write>, GuardAck)>,
) -> Result<(), String> {
    let count = events.len() + guarded.len();
    let (mut all_writes, write_acks): (Vec<Write>, Vec<WriteAck>) = writes.into_iter().unzip();
    // Guarded rows go after the plain ones, their writes after the plain writes.
    let mut guards = Vec::with_capacity(guarded.len());
    let mut guard_acks = Vec::with_capacity(guarded.len());
    for (event, w, ack) in guarded {
        let range = all_writes.len()..all_writes.len() + w.len();
        guards.push((events.len(), range.clone()));
        events.push((event, 1));
        all_writes.extend(w);
        guard_acks.push((range, ack));
    }
    let committed = store
        .get()
        .and_then(|mut conn| {
            let rows: Vec<NewAuditRow<'_>> = events.iter().map(|(e, n)| e.as_row(*n)).collect();
            batch::commit(&mut conn, all_writes, &rows, &guards)
        })
        .map_err(|e| e.to_string());
    let result = committed.as_ref().map(drop).map_err(Clone::clone);
    match &result {
        Ok(()) => tracing::debug!(events = count, "audit batch committed"),
        Err(error) => tracing::error!(%error, events = count, "audit commit failed"),
    }
    for ack in acks.drain(..) {
        let _ = ack.send(result.clone());
    }
    match committed {
        Ok(written) => {
            for (ack, w) in write_acks.into_iter().zip(&written) {
                let _ = ack.send(answer(w));
            }
            for (range, ack) in guard_acks {
                let _ = ack.send(written[range].iter().map(answer).collect());
            }
        }
        Err(e) => {
            for ack in write_acks {
                let _ = ack.send(Err(e.clone()));
            }
            for (_, ack) in guard_acks {
                let _ = ack.send(Err(e.clone()));
            }
        }
    }
    result
}

fn answer(w: &Result<Written, StoreError>) -> Result<Written, String> {
    w.as_ref().map(|w| *w).map_err(ToString::to_string)
}

/// Most kinds of refusal pending at once; beyond it new kinds lose their client id (they
/// are counted under "no client"), so memory stays bounded whatever arrives.
const MAX_SUMMARY_KINDS: usize = 1024;

/// What makes two refusals "of one kind": one summary row each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SummaryKey {
    grant: &'static str,
    client_id: Option<String>,
    outcome: AuditOutcome,
    reason: Option<String>,
    /// The detail's leading check label (`unknown_client`, `client_secret_mismatch`, ...).
    check: Option<String>,
}

struct Pending {
    /// The first event of the kind: its detail (what was compared) is kept as an example.
    first: AuditEvent,
    last_at: UnixTime,
    /// Arrival order of the kind's latest request: summaries are written in it, so the
    /// newest row is the kind refused last.
    last_seq: u64,
    requests: i64,
}

#[derive(Default)]
struct Summaries(Mutex<(HashMap<SummaryKey, Pending>, u64)>);

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Summaries")
    }
}

impl Summaries {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<SummaryKey, Pending>, u64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, mut event: AuditEvent) {
        let check = event
            .detail
            .as_deref()
            .and_then(|d| d.split_once(": "))
            .map(|(check, _)| check.to_owned());
        let mut key = SummaryKey {
            grant: event.grant,
            client_id: event.client_id.clone(),
            outcome: event.outcome,
            reason: event.reason.clone(),
            check,
        };
        let mut guard = self.lock();
        let (map, seq) = &mut *guard;
        *seq += 1;
        if map.len() >= MAX_SUMMARY_KINDS && !map.contains_key(&key) {
            key.client_id = None;
            event.client_id = None;
        }
        let (at, last_seq) = (event.at, *seq);
        map.entry(key)
            .and_modify(|p| {
                p.requests += 1;
                p.last_at = p.last_at.max(at);
                p.last_seq = last_seq;
            })
            .or_insert(Pending {
                first: event,
                last_at: at,
                last_seq,
                requests: 1,
            });
    }

    /// Every pending summary in arrival order of its latest request, the map emptied.
    fn take(&self) -> Vec<(SummaryKey, Pending)> {
        let mut all: Vec<_> = std::mem::take(&mut self.lock().0).into_iter().collect();
        all.sort_by_key(|(_, p)| p.last_seq);
        all
    }

    /// Puts back a summary whose row could not be written, merged with what arrived since.
    fn restore(&self, key: SummaryKey, pending: Pending) {
        let mut guard = self.lock();
        match guard.0.get_mut(&key) {
            Some(newer) => {
                newer.requests += pending.requests;
                newer.first = pending.first;
            }
            None => {
                guard.0.insert(key, pending);
            }
        }
    }
}

impl Pending {
    /// The summary row: the first event, stamped with the last one's time, its detail
    /// saying how many requests it stands for and over which span.
    fn row(&self) -> AuditEvent {
        let mut row = self.first.clone();
        let first_at = row.at;
        row.detail = Some(match row.detail.take() {
            Some(d) => format!(
                "{}: {} requests from {first_at} to {} (unix seconds), summarised; the first: {}",
                d.split_once(": ").map_or("summary", |(check, _)| check),
                self.requests,
                self.last_at,
                d.split_once(": ").map_or(d.as_str(), |(_, rest)| rest),
            ),
            None => format!(
                "{} requests from {first_at} to {} (unix seconds), summarised",
                self.requests, self.last_at
            ),
        });
        row.at = self.last_at;
        row
    }
}

pub mod query;

#[cfg(test)]
mod tests;
