//! STUB — issuing: signing keys (current/next/retired) and the signer.
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::clock::{SharedClock, UnixTime};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    ES256,
    RS256,
    PS256,
    EdDSA,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("key: {0}")]
    Key(String),
}

#[derive(Debug, Clone)]
pub struct SignedToken {
    pub token: String,
    pub kid: String,
}

#[derive(Debug)]
pub struct KeyRing {}

impl KeyRing {
    pub async fn open(
        store: &Store,
        alg: SigningAlg,
        clock: SharedClock,
    ) -> Result<Self, IssueError> {
        let _ = (store, alg, clock);
        unimplemented!()
    }
    pub async fn refresh(&self, store: &Store) -> Result<(), IssueError> {
        let _ = store;
        unimplemented!()
    }
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<SignedToken, IssueError> {
        let _ = claims;
        unimplemented!()
    }
    pub fn jwks_json(&self) -> Arc<str> {
        unimplemented!()
    }
    pub fn current_created_at(&self) -> UnixTime {
        unimplemented!()
    }
}
