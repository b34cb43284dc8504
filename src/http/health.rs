//! Liveness, readiness and the Prometheus scrape.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::verify::cache::SlotStatus;

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
    // Issuers whose keys or metadata are not in hand are shown, with the last fetch
    // error, but do not make the broker unready: one partner's outage would otherwise take
    // every replica out of the load balancer, refusing every other partner too.
    let issuers: serde_json::Map<String, serde_json::Value> = state
        .exchanger
        .verifier
        .issuer_status()
        .into_iter()
        .map(|(id, status)| {
            let text = match status {
                SlotStatus::Ready => "ok".to_owned(),
                SlotStatus::Missing(None) => "no keys yet: not fetched yet".to_owned(),
                SlotStatus::Missing(Some(e)) => format!("no keys: {e}"),
            };
            (id, text.into())
        })
        .collect();
    let body = json!({
        "issuers": issuers,
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
