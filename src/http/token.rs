//! `POST /token`: reads the body within its limit, checks the content type, and hands the
//! form to the exchange pipeline.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::exchange::{ExchangeError, Form, Lifecycle};
use crate::verify::dpop::DpopError;

use super::{client_auth, AppState, OAuthError, MAX_BODY_BYTES};

pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let exchanger = &state.exchanger;
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        // Refusals before the pipeline are audited too.
        Err(FormError::Refused(e)) => return Err(exchanger.refuse(e).await.into()),
        Err(FormError::Unreadable) => return Err(unreadable()),
    };
    let credentials = client_auth::credentials(&req);
    let response = exchanger
        .token_with_proof(credentials, &form, dpop_header(&req))
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(response))
}

/// RFC 9449 §4.3 check 1: at most one `DPoP` header, and it must be text.
fn dpop_header(req: &HttpRequest) -> Result<Option<&str>, DpopError> {
    let mut values = req.headers().get_all("dpop");
    let first = values.next();
    if values.next().is_some() {
        return Err(DpopError::Multiple);
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| DpopError::Malformed("the DPoP header is not ASCII"))
        })
        .transpose()
}

/// `POST /introspect` (RFC 7662 §2): the token's state as JSON, `{"active":false}` for
/// anything the caller may not see. Every call is audited, refusals before the form too.
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let exchanger = &state.exchanger;
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(FormError::Refused(e)) => {
            return Err(exchanger
                .refuse_call(Lifecycle::Introspection, e)
                .await
                .into())
        }
        Err(FormError::Unreadable) => return Err(unreadable()),
    };
    let answer = exchanger
        .introspect(client_auth::credentials(&req), &form)
        .await?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}

/// `POST /revoke` (RFC 7009 §2): 200 with an empty body once revoked (or when the token
/// is not a tessera token at all, §2.2).
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let exchanger = &state.exchanger;
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(FormError::Refused(e)) => {
            return Err(exchanger.refuse_call(Lifecycle::Revocation, e).await.into())
        }
        Err(FormError::Unreadable) => return Err(unreadable()),
    };
    exchanger
        .revoke(client_auth::credentials(&req), &form)
        .await?;
    Ok(no_store(HttpResponse::Ok()).finish())
}

pub(super) fn no_store(
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

pub(super) enum FormError {
    Refused(ExchangeError),
    Unreadable,
}

impl FormError {
    pub(super) fn into_oauth(self) -> OAuthError {
        match self {
            Self::Refused(e) => e.into(),
            Self::Unreadable => unreadable(),
        }
    }
}

fn unreadable() -> OAuthError {
    OAuthError::invalid_request("request body could not be read")
}

/// The form body, within [`MAX_BODY_BYTES`], of an `application/x-www-form-urlencoded`
/// request.
pub(super) async fn read_form(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Form, FormError> {
    if !is_form(req) {
        return Err(FormError::Refused(ExchangeError::UnsupportedMediaType));
    }
    let too_large = || {
        FormError::Refused(ExchangeError::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        })
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| FormError::Unreadable)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Form::parse(&body).map_err(FormError::Refused)
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
