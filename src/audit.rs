//! STUB — audit trail.
use std::sync::Arc;

use crate::clock::UnixTime;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Issued,
    Refused,
    Error,
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
    pub reason: Option<String>,
    pub jti: Option<String>,
    pub subject_token_sha256: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct AuditLog {}

impl AuditLog {
    pub fn start(store: Store, metrics: Arc<Metrics>) -> Self {
        let _ = (store, metrics);
        unimplemented!()
    }
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let _ = event;
        unimplemented!()
    }
    pub async fn shutdown(&self) {}
}
