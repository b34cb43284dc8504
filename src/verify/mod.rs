//! STUB — verification of presented tokens.
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::{SharedClock, UnixTime};
use crate::config::OutboundConfig;
use crate::metrics::Metrics;
use crate::trust::{IssuerEntry, Registry, TokenType};

/// A token whose signature, issuer, audience and times have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issuer: Arc<IssuerEntry>,
    pub token_type: TokenType,
    /// The verified claims: what `mapping` sees as `assertion`.
    pub claims: Map<String, Value>,
    pub expires_at: UnixTime,
    pub issued_at: Option<UnixTime>,
}

#[derive(Debug, Clone, Copy)]
pub enum AudienceRule<'a> {
    /// The issuer entry's `audiences` (token exchange).
    Issuer,
    /// Exactly these (RFC 7523 bearer grant: tessera's token endpoint or issuer).
    OneOf(&'a [String]),
}

#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    pub token_type: TokenType,
    /// Registry ids the caller may present tokens from.
    pub allowed_issuers: &'a [String],
    pub audience: AudienceRule<'a>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("issuer {issuer} is temporarily unavailable")]
    IssuerUnavailable { issuer: String },
}

impl VerifyError {
    pub fn reason(&self) -> &'static str {
        "malformed"
    }
}

#[derive(Debug)]
pub struct JwtVerifier {}

impl JwtVerifier {
    pub fn new(
        outbound: &OutboundConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let _ = (outbound, clock, metrics);
        unimplemented!()
    }

    pub async fn verify(
        &self,
        registry: &Registry,
        token: &str,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedToken, VerifyError> {
        let _ = (registry, token, expect);
        unimplemented!()
    }

    /// Starts background key fetches for every URL-keyed issuer; returns at once.
    pub fn warm_up(&self, registry: &Registry) {
        let _ = registry;
    }
}
