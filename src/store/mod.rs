//! STUB — persistence.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(String),
}

#[derive(Debug, Clone)]
pub struct Store {}

impl Store {
    pub fn connect(url: &str, pool_size: Option<u32>) -> Result<Self, StoreError> {
        let _ = (url, pool_size);
        unimplemented!()
    }
    pub fn run_migrations(&self) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub async fn ping(&self) -> Result<(), StoreError> {
        unimplemented!()
    }
}
