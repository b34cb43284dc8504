//! STUB — to be replaced: reads `trust/{issuers,clients,audiences}/*.toml`.
use std::path::{Path, PathBuf};

use super::Registry;

/// Every problem found while loading, each naming its file and field.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{}: {field}: {problem}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{}: {problem}", file.display())]
    File { file: PathBuf, problem: String },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<TrustError>),
}

pub fn load_registry(dir: &Path) -> Result<Registry, TrustError> {
    let _ = dir;
    unimplemented!("trust loader")
}

impl super::ClientEntry {
    pub fn secret_matches(&self, presented: &str) -> bool {
        let _ = presented;
        unimplemented!()
    }
}

pub fn describe(registry: &Registry) -> Vec<String> {
    let _ = registry;
    unimplemented!()
}
