//! The integration test binary (one binary, modules per feature). Every test boots the
//! real server on a random port (SQLite, and PostgreSQL when TESSERA_TEST_DATABASE_URL is
//! set) and talks HTTP to it; foreign issuers are real HTTP servers (`issuer`).
// Test code fails loudly by design: a panic with a message is the test's verdict.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod audit_bench;
mod cli;
mod client_auth;
mod dpop;
mod endpoints;
mod exchange;
mod explain;
mod helpers;
mod introspection;
mod issuer;
mod limits;
mod local_tokens;
mod prometheus;
mod refresh;
mod rejections;
mod rotation;
mod saml;
mod saml_encrypted;
mod saml_idp;
mod saml_vectors;
mod signing;
mod trust_test;
mod vectors;
mod verify;
