//! RFC 8414 authorization server metadata and the published signing keys.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::exchange::request::{GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE};

use super::AppState;

pub async fn authorization_server(state: web::Data<AppState>) -> HttpResponse {
    let issuer = &state.issuer;
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "grant_types_supported": [GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": [],
    });
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(body)
}

/// Current, next and still-valid retired keys. Short cache: a rotation pre-publishes the
/// next key, and resource servers should see it before it signs anything.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .content_type("application/json")
        .body(state.keys.jwks_json().to_string())
}
