//! Fresh, isolated databases for tests: a temporary SQLite file, or a PostgreSQL schema of
//! its own on the server named by `TESSERA_TEST_DATABASE_URL`.
//!
//! Rule: every test gets its own database and cleans it up on drop, so tests run in
//! parallel. PostgreSQL isolation is a schema selected through libpq's `options`
//! (`-c search_path=<schema>`), which every pooled connection — and diesel's migration
//! table — honours. Compiled into the library (not `cfg(test)`) so the integration tests
//! in `tests/` can use it; it touches nothing unless called.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// Environment variable naming the PostgreSQL server used by the PostgreSQL test variants.
pub const TEST_DATABASE_URL_ENV: &str = "TESSERA_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDbKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    #[error("{TEST_DATABASE_URL_ENV} is not set")]
    NotConfigured,
    #[error("test database: {0}")]
    Setup(String),
}

/// A database that exists until this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Pass this to `Store::connect`.
    pub url: String,
    pub kind: TestDbKind,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    SqliteFile(PathBuf),
    PgSchema { admin_url: String, schema: String },
}

/// The kinds to run a backend-agnostic test against: SQLite always, PostgreSQL when
/// `TESSERA_TEST_DATABASE_URL` is set.
pub fn test_kinds() -> Vec<TestDbKind> {
    let mut kinds = vec![TestDbKind::Sqlite];
    if postgres_admin_url().is_some() {
        kinds.push(TestDbKind::Postgres);
    }
    kinds
}

/// `TESSERA_TEST_DATABASE_URL`, when set and non-empty.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A fresh empty database of `kind` (not migrated).
pub fn fresh_database_url(kind: TestDbKind) -> Result<TestDatabase, TestDbError> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match kind {
        TestDbKind::Sqlite => {
            let path = std::env::temp_dir().join(format!("tessera-test-{unique}.db"));
            Ok(TestDatabase {
                url: format!("sqlite://{}", path.display()),
                kind,
                cleanup: Cleanup::SqliteFile(path),
            })
        }
        TestDbKind::Postgres => {
            let admin_url = postgres_admin_url().ok_or(TestDbError::NotConfigured)?;
            // Lowercase hex only: needs no quoting in SQL or in the URL.
            let schema = format!("tessera_test_{unique}");
            let mut conn = PgConnection::establish(&admin_url)
                .map_err(|e| TestDbError::Setup(format!("connect: {e}")))?;
            conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .map_err(|e| TestDbError::Setup(format!("create schema: {e}")))?;
            // application_name lets a test find (and kill) exactly its own sessions.
            let url = format!(
                "{}&application_name={schema}",
                with_search_path(&admin_url, &schema)
            );
            Ok(TestDatabase {
                url,
                kind,
                cleanup: Cleanup::PgSchema { admin_url, schema },
            })
        }
    }
}

/// `url` with `options=-csearch_path=<schema>` (percent-encoded) appended.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

impl TestDatabase {
    /// The PostgreSQL schema of this database, if it is one.
    pub fn schema(&self) -> Option<&str> {
        match &self.cleanup {
            Cleanup::PgSchema { schema, .. } => Some(schema),
            Cleanup::SqliteFile(_) => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::PgSchema { admin_url, schema } => {
                // Best effort: a leftover schema only costs disk, and a panic in drop
                // would hide the test's own failure.
                if let Ok(mut conn) = PgConnection::establish(admin_url) {
                    let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            }
        }
    }
}

/// A bare `issued` audit row recorded at `at`, for tests that plant old rows.
pub fn audit_row_at(at: crate::clock::UnixTime) -> super::audit::NewAuditRow<'static> {
    super::audit::NewAuditRow {
        at,
        grant_type: "token_exchange",
        client_id: None,
        issuer: None,
        subject: None,
        actor: None,
        audience: None,
        scopes: None,
        outcome: "issued",
        reason: None,
        detail: None,
        jti: None,
        subject_token_sha256: None,
        requests: 1,
    }
}
