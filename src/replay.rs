//! The replay cache (SPEC §4.1, §6): a single-use token — a SAML assertion with
//! `<OneTimeUse/>`, or any assertion of a `one_time_use` issuer — is accepted once per
//! (issuer, token id), on every replica, because the record lives in the database.
//!
//! The id is stored as its SHA-256 (bounded size whatever the IdP sends). Entries carry the
//! token's expiry and are pruned in the background once past it.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::audit::AuditLog;
use crate::clock::{SharedClock, UnixTime};
use crate::store::batch::{Write, Written};
use crate::store::replay::{self, Seen};
use crate::store::{Store, StoreError};

/// Identifies a single-use token: the same (issuer, id) is accepted once, until it
/// expires (SPEC §4.1 replay). `issuer` is a registry issuer id, or `client:<id>` for a
/// `private_key_jwt` client assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey {
    pub issuer: String,
    pub id: crate::protocol::Jti,
    /// Until when the key must be remembered (the token's expiry plus skew).
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct ReplayCache {
    store: Store,
    /// Recording rides the audit writer's group commit.
    writes: AuditLog,
}

impl ReplayCache {
    pub fn new(store: Store, writes: AuditLog) -> Self {
        Self { store, writes }
    }

    /// The write that records `key` (alone, or with an audit row: `AuditLog::record_guarded`).
    pub fn write_for(key: &ReplayKey) -> Write {
        Write::Replay {
            issuer: key.issuer.clone(),
            token_id: hex::encode(Sha256::digest(key.id.as_bytes())),
            expires_at: key.expires_at,
        }
    }

    /// Records `key`; `Seen::Before` means the token was already used.
    pub async fn consume(&self, key: &ReplayKey) -> Result<Seen, StoreError> {
        match self.writes.write(Self::write_for(key)).await? {
            Written::Replay(seen) => Ok(seen),
            Written::Rotate(_) => Err(StoreError::Batch(
                "a replay write answered as a rotation".into(),
            )),
        }
    }

    /// Whether `key` was already used, recording nothing (explain).
    pub async fn was_used(&self, key: &ReplayKey) -> Result<bool, StoreError> {
        let issuer = key.issuer.clone();
        let token_id = hex::encode(Sha256::digest(key.id.as_bytes()));
        self.store
            .run(move |conn| replay::is_recorded(conn, &issuer, &token_id))
            .await
    }

    /// Deletes expired entries every `interval`, forever (abort the handle to stop).
    pub fn spawn_pruner(
        &self,
        clock: SharedClock,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = clock.now();
                match store.run(move |conn| replay::prune(conn, now)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(pruned = n, "replay cache pruned"),
                    Err(e) => tracing::warn!(error = %e, "replay cache prune failed"),
                }
            }
        })
    }
}
