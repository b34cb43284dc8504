//! Liveness, readiness and the Prometheus scrape.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers and a registry is loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.ping().await;
    let registry = state.trust.snapshot();
    let loaded = !(registry.issuers.is_empty() && registry.clients.is_empty());
    let body = json!({
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "registry": if loaded { "loaded" } else { "empty" },
    });
    if database.is_ok() && loaded {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.keys.record_metrics(&state.metrics);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
