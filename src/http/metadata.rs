//! RFC 8414 authorization server metadata and the published signing keys.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::exchange::request::{
    GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN, GRANT_SAML2_BEARER, GRANT_TOKEN_EXCHANGE,
};
use crate::trust::Registry;

use super::AppState;

/// Every scope some registered audience grants, sorted and de-duplicated.
fn scopes_supported(registry: &Registry) -> Vec<&str> {
    let scopes: BTreeSet<&str> = registry
        .audiences
        .values()
        .flat_map(|a| a.scopes.iter().map(|s| s.as_str()))
        .collect();
    scopes.into_iter().collect()
}

/// Client authentication at every endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

pub async fn authorization_server(state: web::Data<AppState>) -> HttpResponse {
    let issuer = &state.issuer;
    let signing_algs: Vec<String> = crate::verify::oidc::CLIENT_ASSERTION_ALGS
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let mut body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "grant_types_supported": [
            GRANT_TOKEN_EXCHANGE,
            GRANT_JWT_BEARER,
            GRANT_SAML2_BEARER,
            GRANT_REFRESH_TOKEN
        ],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "response_types_supported": [],
        // RFC 9449 §5.1: the proof algorithms /token accepts.
        "dpop_signing_alg_values_supported": crate::verify::dpop::DPOP_ALGS
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>(),
    });
    // An empty array would claim "no scopes at all"; RFC 8414 §2 lets the field be omitted.
    let registry = state.trust.snapshot();
    let scopes = scopes_supported(&registry);
    if !scopes.is_empty() {
        body["scopes_supported"] = json!(scopes);
    }
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
