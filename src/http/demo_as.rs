//! `tessera dev opaque-as`: the demo authorization server's RFC 7662 endpoint, so the
//! demo registry's `introspection` issuer can be tried end to end (see
//! [`crate::dev::opaque`]). A developer tool, not part of the broker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::clock::SystemClock;
use crate::dev::opaque::DemoAs;
use crate::exchange::ClientCredentials;

/// Serves `POST /introspect` on `listen` until the process ends.
pub async fn serve(demo: DemoAs, listen: SocketAddr) -> std::io::Result<()> {
    let demo = web::Data::new(Arc::new(demo));
    HttpServer::new(move || {
        App::new()
            .app_data(demo.clone())
            .route("/introspect", web::post().to(introspect))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}

/// RFC 7662 §2.1: the caller authenticates (Basic, or the form's client_id and
/// client_secret); the answer is the token's claims with `active`, or `active: false`.
async fn introspect(
    demo: web::Data<Arc<DemoAs>>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let (id, secret) = match super::client_auth::credentials(&req) {
        Ok(ClientCredentials::Basic { client_id, secret }) => (client_id, secret.expose().clone()),
        _ => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if !demo.is_caller(&id, &secret) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    HttpResponse::Ok().json(demo.introspect(token, &SystemClock))
}
