//! tessera — a federation broker.
//!
//! Takes credentials minted in another trust domain (OIDC ID tokens, JWT access tokens,
//! SAML 2.0 assertions, opaque tokens by introspection, and its own tokens), verifies them
//! against a registry of trusted issuers and mints a short-lived local access token for
//! the next hop (RFC 8693).
//!
//! Dependency direction: `http → exchange → {trust, verify, issue, audit} → store`.
//! Nothing below `http` names actix; only `store` names diesel backends.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod dev;
pub mod exchange;
pub mod http;
pub mod issue;
pub mod limits;
pub mod metrics;
pub mod metrics_process;
pub mod protocol;
pub mod refresh;
pub mod replay;
pub mod revocation;
pub mod secret;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trust;
pub mod verify;
pub mod xml;
pub mod xmldsig;
