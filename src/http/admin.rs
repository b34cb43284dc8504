//! `/admin/*`: bearer secret from `TESSERA_ADMIN_TOKEN`; without it the endpoints are off.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ADMIN_BEARER_CHALLENGE;
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
        .and_then(bearer_token)
        .unwrap_or("");
    let digest = Sha256::digest(presented.as_bytes());
    if bool::from(digest.as_slice().ct_eq(expected)) && !presented.is_empty() {
        Ok(())
    } else {
        Err(OAuthError {
            challenge: Some(ADMIN_BEARER_CHALLENGE),
            ..OAuthError::new(
                ErrorCode::InvalidClient,
                StatusCode::UNAUTHORIZED,
                "admin bearer token required",
            )
        })
    }
}

/// The credentials of a `Bearer` Authorization value; the scheme name is
/// case-insensitive (RFC 9110 §11.1), so `bearer x` and `BEARER x` count too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Reloads the trust registry; an invalid registry is refused and the old one keeps serving.
pub async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    authorize(&req, &state)?;
    match state.reload_registry().await {
        Ok(summary) => {
            Ok(HttpResponse::Ok().json(json!({"status": "reloaded", "entries": summary})))
        }
        Err(e) => Ok(HttpResponse::UnprocessableEntity()
            .json(json!({"status": "refused", "error": e.to_string()}))),
    }
}

/// `POST /admin/explain` (SPEC §3): the decision record of a `/token` request, as JSON,
/// from the running broker's registry and caches. The body is the `/token` form plus
/// `client_id` (the client to decide for; its credentials are not needed and not
/// checked). Signs, stores and audits nothing; a single-use token is looked up, never
/// used up.
pub async fn explain(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    authorize(&req, &state)?;
    let form = super::token::read_form(&req, payload)
        .await
        .map_err(super::token::FormError::into_oauth)?;
    let client_id = form
        .single("client_id")
        .map_err(OAuthError::from)?
        .ok_or_else(|| {
            OAuthError::invalid_request("missing parameter client_id (the client to explain for)")
        })?
        .to_owned();
    let explanation = state.exchanger.explain(&client_id, &form).await;
    Ok(super::token::no_store(HttpResponse::Ok()).json(explanation))
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
