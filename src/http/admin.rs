//! `/admin/*`: bearer secret from `TESSERA_ADMIN_TOKEN`; without it the endpoints are off.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, ErrorCode, OAuthError};

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), OAuthError> {
    let Some(expected) = &state.admin_token_sha256 else {
        return Err(OAuthError::new(
            ErrorCode::NotFound,
            StatusCode::NOT_FOUND,
            "admin endpoints are off (TESSERA_ADMIN_TOKEN is not set)",
        ));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest = Sha256::digest(presented.as_bytes());
    if bool::from(digest.as_slice().ct_eq(expected)) && !presented.is_empty() {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidClient,
            StatusCode::UNAUTHORIZED,
            "admin bearer token required",
        ))
    }
}

/// Reloads the trust registry; an invalid registry is refused and the old one keeps serving.
pub async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    authorize(&req, &state)?;
    match crate::startup::reload_trust(&state.trust, &state.verifier, &state.metrics) {
        Ok(summary) => {
            Ok(HttpResponse::Ok().json(json!({"status": "reloaded", "entries": summary})))
        }
        Err(e) => Ok(HttpResponse::UnprocessableEntity()
            .json(json!({"status": "refused", "error": e.to_string()}))),
    }
}
