//! The HTTP edge (actix-web lives only here): routes, body limits, content types, and the
//! mapping of domain results to responses.

pub mod admin;
pub mod client_auth;
pub mod error;
pub mod health;
pub mod metadata;
pub mod token;

use std::sync::Arc;

use actix_web::web;

use crate::exchange::Exchanger;
use crate::issue::KeyRing;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::trust::TrustStore;
use crate::verify::JwtVerifier;

pub use error::{ErrorCode, OAuthError};

/// Request bodies beyond this get 413 (SPEC §3).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared, immutable-after-start state of the server; cheap to clone per worker.
pub struct AppState {
    pub exchanger: Arc<Exchanger>,
    pub store: Store,
    pub trust: Arc<TrustStore>,
    pub verifier: Arc<JwtVerifier>,
    pub keys: Arc<KeyRing>,
    pub metrics: Arc<Metrics>,
    /// `server.issuer`.
    pub issuer: String,
    /// SHA-256 of `TESSERA_ADMIN_TOKEN`; `None` switches `/admin/*` off.
    pub admin_token_sha256: Option<[u8; 32]>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token::token))
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(metadata::authorization_server),
        )
        .route("/jwks.json", web::get().to(metadata::jwks))
        .route("/metrics", web::get().to(health::metrics))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/admin/reload", web::post().to(admin::reload))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, OAuthError> {
    Err(OAuthError::new(
        ErrorCode::NotFound,
        actix_web::http::StatusCode::NOT_FOUND,
        "no such endpoint",
    ))
}
