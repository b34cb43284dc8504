//! Persistence: one connection pool over SQLite (embedded default) or PostgreSQL (replicas),
//! chosen by the URL scheme, and the per-backend migrations.
//!
//! Rule: this is the only module that names diesel backends. Everything else calls
//! [`Store::run`] with a closure over `&mut DbConn` and the table functions in the submodules,
//! which hold no policy. diesel is blocking: it only ever runs on the blocking thread pool.

pub mod audit;
pub mod batch;
pub mod keys;
pub mod refresh;
pub mod replay;
pub mod revocation;
pub mod schema;
pub mod testing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a request waits for a pooled connection. Short on purpose: a dead database
/// must turn into `temporarily_unavailable` within a couple of seconds, not a hung request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// libpq `connect_timeout` (seconds) added to PostgreSQL URLs that do not set one, so a
/// black-holed host fails as fast as a refused port.
const PG_CONNECT_TIMEOUT_SECS: u32 = 2;
/// SQLite waits this long for the write lock before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (or is locked past the busy timeout): a transient
    /// condition the HTTP layer answers with 503 `temporarily_unavailable`.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DieselError),
    /// No pooled connection within the timeout: the database is down or saturated.
    #[error("database unavailable: {url}: {source}")]
    Pool {
        url: Arc<str>,
        #[source]
        source: diesel::r2d2::PoolError,
    },
    /// `database.url` names nothing tessera can open.
    #[error("database.url {0}")]
    Url(String),
    /// The LISTEN connection for revocations could not be opened.
    #[error("database unavailable for notifications: {0}")]
    Listen(String),
    #[error("database error: {0}")]
    Query(#[source] DieselError),
    /// A write of the token path's group commit failed (its own error, or the batch's).
    #[error("database write failed: {0}")]
    Batch(String),
    #[error("database task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("migration failed: {0}")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the database is absent right now (503 and retry), rather than wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Pool { .. } | Self::Batch(_)
        )
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Query(e)
        }
    }
}

/// Errors that say "the database is not there right now", not "the query is wrong".
fn is_transient(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => true,
            // SQLite reports lock contention past busy_timeout as an unclassified error.
            _ => is_sqlite_busy(info.message()),
        },
        _ => false,
    }
}

/// True for the errors a racing writer produces (unique violation, serialization failure,
/// SQLite lock contention): the transaction is worth re-running from a fresh read.
pub fn is_conflict(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure => true,
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => false,
            _ => is_sqlite_busy(info.message()),
        },
        _ => false,
    }
}

fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// One connection of either backend. Built by [`Store`] from the URL scheme, never through
/// the derived `establish` (which tries each backend and silently creates a SQLite file
/// named like a PostgreSQL URL when PostgreSQL is down).
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `database.url`: which backend, what to hand it, and a form safe to log.
#[derive(Clone)]
struct DatabaseTarget {
    backend: Backend,
    /// SQLite: the file path; PostgreSQL: the libpq URI.
    target: String,
    /// The URL with any password replaced, for errors and logs.
    redacted: Arc<str>,
}

impl DatabaseTarget {
    fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Url("`sqlite://` names no file".to_owned()));
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_owned(),
                redacted: url.into(),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let redacted = redact_url(url);
            let target = if has_query_param(url, "connect_timeout") {
                url.to_owned()
            } else {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
            };
            return Ok(Self {
                backend: Backend::Postgres,
                target,
                redacted: redacted.into(),
            });
        }
        Err(StoreError::Url(format!(
            "`{}`: unsupported scheme (use sqlite://path, postgres:// or postgresql://)",
            redact_url(url)
        )))
    }
}

fn has_query_param(url: &str, name: &str) -> bool {
    url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.split('=').next().is_some_and(|k| k == name))
    })
}

/// The URL with its password replaced by `***` (never log a database password).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable database URL>".to_owned(),
    }
}

/// r2d2 manager that builds the variant the URL names (vaultwarden's approach).
#[derive(Clone)]
pub struct ConnectionManager {
    target: DatabaseTarget,
}

impl fmt::Debug for ConnectionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionManager")
            .field("url", &self.target.redacted)
            .finish()
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match self.target.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target.target)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; busy_timeout makes writers
                // queue instead of failing; FULL sync because an audit row must survive a
                // crash once `record` returned; foreign_keys is off by default in SQLite.
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            Backend::Postgres => PgConnection::establish(&self.target.target)
                .map(DbConn::Pg)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Logs pool errors through tracing (r2d2's default goes to the `log` crate).
#[derive(Debug)]
struct TracingErrorHandler;

impl diesel::r2d2::HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

pub type PooledConn = PooledConnection<ConnectionManager>;

/// The error of a store function run inside a caller's [`locked_transaction`]: callers
/// above `store` name it through this alias, never diesel.
pub type QueryError = DieselError;

/// The shared handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager>,
    backend: Backend,
    redacted_url: Arc<str>,
    /// For the connections that are not pooled (a LISTEN connection).
    target: Arc<DatabaseTarget>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.redacted_url)
            .finish()
    }
}

impl Store {
    /// Builds the pool and checks that one connection can be made, so `serve` fails at
    /// start with a clear message when the database is unreachable. Blocking.
    pub fn connect(url: &str, pool_size: Option<u32>) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(url, pool_size)?;
        drop(store.get()?);
        Ok(store)
    }

    /// Builds the pool without connecting: connections are made on demand, so a store
    /// opened while the database is down starts working when it comes back.
    pub fn connect_lazy(url: &str, pool_size: Option<u32>) -> Result<Self, StoreError> {
        let target = DatabaseTarget::parse(url)?;
        let default_size = match target.backend {
            // Readers (the audit writer has a connection of its own, `dedicated`).
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        Ok(Self::pool_on(target, pool_size.unwrap_or(default_size)))
    }

    /// A store of one connection of its own on the same database, for a single writer
    /// (the audit log's group commit): every token-path request waits for its commits, so
    /// it must never queue for a connection behind the readers of the shared pool.
    pub fn dedicated(&self) -> Self {
        Self::pool_on((*self.target).clone(), 1)
    }

    fn pool_on(target: DatabaseTarget, size: u32) -> Self {
        let backend = target.backend;
        let redacted_url = target.redacted.clone();
        let unpooled = Arc::new(target.clone());
        let pool = Pool::builder()
            .max_size(size.max(1))
            // No idle minimum: nothing is attempted in the background while the database
            // is down, and `build_unchecked` never fails on an unreachable database.
            .min_idle(Some(0))
            .connection_timeout(CONNECTION_TIMEOUT)
            .error_handler(Box::new(TracingErrorHandler))
            .build_unchecked(ConnectionManager { target });
        Self {
            pool,
            backend,
            redacted_url,
            target: unpooled,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL with its password redacted.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// A pooled connection, blocking up to the pool's connection timeout.
    /// Blocking: call from the CLI or inside [`Store::run`], never on an async worker.
    pub fn get(&self) -> Result<PooledConn, StoreError> {
        self.pool.get().map_err(|source| StoreError::Pool {
            url: self.redacted_url.clone(),
            source,
        })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, keeping the caller's
    /// tracing span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = store.get()?;
            f(&mut conn)
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// Applies pending migrations of this backend. Blocking.
    ///
    /// On PostgreSQL the run holds a session advisory lock (per schema), so replicas
    /// starting together on a fresh database migrate it once: the others wait, then find
    /// nothing pending.
    pub fn run_migrations(&self) -> Result<(), StoreError> {
        let mut conn = self.get()?;
        let applied = match &mut *conn {
            DbConn::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.len())
                .map_err(StoreError::Migration)?,
            DbConn::Pg(c) => {
                diesel::sql_query(
                    "SELECT pg_advisory_lock(hashtext('tessera:migrate:' || current_schema()))",
                )
                .execute(c)?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|v| v.len());
                let unlocked = diesel::sql_query(
                    "SELECT pg_advisory_unlock(hashtext('tessera:migrate:' || current_schema()))",
                )
                .execute(c);
                let applied = result.map_err(StoreError::Migration)?;
                unlocked?;
                applied
            }
        };
        if applied > 0 {
            tracing::info!(applied, url = %self.redacted_url, "database migrated");
        }
        Ok(())
    }

    /// Readiness probe: can this broker write its audit trail right now? On SQLite that
    /// means taking the write lock (and letting it go at once): a file another process
    /// holds locked answers `SELECT 1` happily while every audit commit fails. On
    /// PostgreSQL one round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            match conn {
                DbConn::Sqlite(c) => c.batch_execute("BEGIN IMMEDIATE; ROLLBACK;")?,
                DbConn::Pg(c) => c.batch_execute("SELECT 1")?,
            }
            Ok(())
        })
        .await
    }
}

/// Runs `f` in a transaction that holds the named write lock for its duration, re-running
/// it (up to a few times) when a racing writer makes it conflict.
///
/// PostgreSQL: a transaction-scoped advisory lock per (name, schema). SQLite: the first
/// statement is a write, so the transaction takes the database write lock up front and
/// waits on `busy_timeout` instead of failing when it would upgrade a stale read snapshot
/// (the no-op write names `signing_keys` only because the first migration guarantees it;
/// SQLite has one write lock for the whole file).
pub fn locked_transaction<T, F>(conn: &mut DbConn, lock: &str, mut f: F) -> Result<T, StoreError>
where
    F: FnMut(&mut DbConn) -> Result<T, DieselError>,
{
    const ATTEMPTS: usize = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = conn.transaction::<T, DieselError, _>(|conn| {
            match conn {
                DbConn::Pg(pg) => {
                    diesel::sql_query(
                        "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || current_schema()))",
                    )
                    .bind::<diesel::sql_types::Text, _>(lock)
                    .execute(pg)?;
                }
                DbConn::Sqlite(lite) => {
                    // A write that changes nothing still begins the write transaction.
                    lite.batch_execute("DELETE FROM signing_keys WHERE 0 = 1")?;
                }
            }
            f(conn)
        });
        match result {
            Err(e) if attempt < ATTEMPTS && is_conflict(&e) => {
                tracing::debug!(error = %e, attempt, "transaction conflicted; retrying");
            }
            other => return other.map_err(StoreError::from),
        }
    }
}

#[cfg(test)]
mod tests;
