//! The HTTP edge (actix-web lives only here): routes, body limits, content types, and the
//! mapping of domain results to responses.

pub mod admin;
pub mod client_auth;
pub mod demo_as;
pub mod error;
pub mod health;
pub mod metadata;
pub mod token;

use std::sync::Arc;

use actix_web::{guard, web, HttpResponse, Resource, Route};

use crate::exchange::Exchanger;
use crate::issue::KeyRing;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::trust::TrustStore;
use crate::verify::Verifier;

pub use error::{ErrorCode, OAuthError};

/// Request bodies beyond this get 413 (SPEC §3).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared, immutable-after-start state of the server; cheap to clone per worker.
pub struct AppState {
    pub exchanger: Arc<Exchanger>,
    pub store: Store,
    pub trust: Arc<TrustStore>,
    pub verifier: Arc<Verifier>,
    pub keys: Arc<KeyRing>,
    pub metrics: Arc<Metrics>,
    /// `server.issuer`.
    pub issuer: String,
    /// SHA-256 of `TESSERA_ADMIN_TOKEN`; `None` switches `/admin/*` off.
    pub admin_token_sha256: Option<[u8; 32]>,
}

impl AppState {
    /// Reloads the registry (SIGHUP, `POST /admin/reload`) and creates the keys of any
    /// signing algorithm a new audience names, before the first of its tokens is asked
    /// for. An invalid registry is refused and the old one keeps serving.
    pub async fn reload_registry(&self) -> Result<usize, crate::trust::TrustError> {
        let entries = self.exchanger.reload_trust()?;
        let algs = crate::exchange::audience_algs(&self.trust.snapshot());
        if let Err(error) = self.keys.ensure_algs(&self.store, &algs).await {
            tracing::error!(%error, "the keys of an audience's signing_alg could not be created; its tokens are refused until they can");
        }
        Ok(entries)
    }
}

const ALLOW_POST: &str = "POST";
const ALLOW_GET: &str = "GET, HEAD";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/token", ALLOW_POST).route(web::post().to(token::token)))
        .service(endpoint("/introspect", ALLOW_POST).route(web::post().to(token::introspect)))
        .service(endpoint("/revoke", ALLOW_POST).route(web::post().to(token::revoke)))
        .service(
            endpoint("/.well-known/oauth-authorization-server", ALLOW_GET)
                .route(get().to(metadata::authorization_server)),
        )
        .service(endpoint("/jwks.json", ALLOW_GET).route(get().to(metadata::jwks)))
        .service(endpoint("/metrics", ALLOW_GET).route(get().to(health::metrics)))
        .service(endpoint("/healthz", ALLOW_GET).route(get().to(health::healthz)))
        .service(endpoint("/readyz", ALLOW_GET).route(get().to(health::readyz)))
        .service(endpoint("/admin/reload", ALLOW_POST).route(web::post().to(admin::reload)))
        .service(endpoint("/admin/explain", ALLOW_POST).route(web::post().to(admin::explain)))
        .default_service(web::to(not_found));
}

/// A path whose other methods get 405 with `Allow` (RFC 9110 §15.5.6); a bare
/// `cfg.route` would let them fall through to the app-wide 404.
fn endpoint(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(OAuthError::method_not_allowed(allow))
    }))
}

/// GET, and HEAD with it (RFC 9110 §9.1); actix drops the body of a HEAD response.
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Counts every response by endpoint (a route of `metrics::ENDPOINTS`, else `other`) and
/// status class: `tessera_http_responses_total` (5xx alerts).
pub async fn count_responses(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        metrics.http_response(response.request().path(), response.status().as_u16());
    }
    Ok(response)
}

async fn not_found() -> Result<actix_web::HttpResponse, OAuthError> {
    Err(OAuthError::new(
        ErrorCode::NotFound,
        actix_web::http::StatusCode::NOT_FOUND,
        "no such endpoint",
    ))
}
