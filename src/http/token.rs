//! `POST /token`: reads the body within its limit, checks the content type, and hands the
//! form to the exchange pipeline.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::exchange::{ExchangeError, Form};

use super::{client_auth, AppState, OAuthError, MAX_BODY_BYTES};

pub async fn token(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let exchanger = &state.exchanger;
    if !is_form(&req) {
        return Err(exchanger
            .refuse(ExchangeError::UnsupportedMediaType)
            .await
            .into());
    }
    let too_large = ExchangeError::BodyTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(exchanger.refuse(too_large).await.into());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| OAuthError::invalid_request("request body could not be read"))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(exchanger.refuse(too_large).await.into());
        }
        body.extend_from_slice(&chunk);
    }
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return Err(exchanger.refuse(e).await.into()),
    };
    let credentials = client_auth::credentials(&req);
    let response = exchanger.token(credentials, &form).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}
