//! STUB — to be replaced: CEL mapping compiled once at load.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{field}: CEL does not compile: {message}")]
    Compile { field: String, message: String },
    #[error("mapping condition is false")]
    ConditionFalse,
    #[error("mapping condition failed to evaluate: {message}")]
    ConditionError { message: String },
    #[error("mapped subject is empty or missing")]
    SubjectMissing,
}

#[derive(Debug)]
pub struct Mapping {}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub subject: String,
    pub claims: Map<String, Value>,
}

impl Mapping {
    /// `default_subject` is used when `subject` is `None` (e.g. `assertion.sub`).
    pub fn compile(
        subject: Option<&str>,
        claims: &BTreeMap<String, String>,
        condition: Option<&str>,
        default_subject: &str,
    ) -> Result<Self, MappingError> {
        let _ = (subject, claims, condition, default_subject);
        unimplemented!()
    }

    pub fn apply(&self, assertion: &Map<String, Value>) -> Result<Mapped, MappingError> {
        let _ = assertion;
        unimplemented!()
    }
}
