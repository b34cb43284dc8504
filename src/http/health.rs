//! Liveness, readiness and the Prometheus scrape.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::verify::cache::SlotStatus;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers, a registry is loaded and the signing key state was
/// read within the publish guard (else `/token` answers 503 anyway).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (ready, body) = readiness(&state).await;
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether the broker is ready, and the detail `/readyz` shows; sets `tessera_ready`.
async fn readiness(state: &AppState) -> (bool, serde_json::Value) {
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
    let ready = database.is_ok() && loaded && stale.is_none();
    state.metrics.ready.set(i64::from(ready));
    (ready, body)
}

/// The Prometheus text format 0.0.4 by default; OpenMetrics when the scraper's `Accept`
/// asks for it (Prometheus itself does, with a preference).
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    state.keys.record_metrics(&state.metrics);
    readiness(&state).await;
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(state.metrics.encode())
    } else {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(state.metrics.encode_text_004())
    }
}
