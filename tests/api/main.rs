//! The integration test binary (one binary, modules per feature).
mod issuer;
mod verify;
