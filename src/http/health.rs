//! Liveness, readiness and the Prometheus scrape.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers, a registry is loaded and the signing key state was
/// read within the publish guard (else `/token` answers 503 anyway).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.ping().await;
    let registry = state.trust.snapshot();
    let loaded = !(registry.issuers.is_empty() && registry.clients.is_empty());
    let stale = state.keys.stale_for();
    let body = json!({
        "database": if database.is_ok() { "ok" } else { "unreachable" },
        "registry": if loaded { "loaded" } else { "empty" },
        "signing_keys": match stale {
            None => "ok".to_owned(),
            Some((since, _)) => format!("not read for {} s: not signing", since.as_secs()),
        },
    });
    if database.is_ok() && loaded && stale.is_none() {
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
