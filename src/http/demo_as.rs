//! `tessera dev opaque-as`: the demo authorization server's RFC 7662 endpoint, so the
//! demo registry's `introspection` issuer can be tried end to end. A developer tool, not
//! part of the broker: what it answers comes from a [`DemoIntrospection`] (the `dev`
//! module's demo AS implements it), so the HTTP layer depends on no developer tool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::exchange::ClientCredentials;

/// What a demo authorization server answers at its introspection endpoint.
pub trait DemoIntrospection: Send + Sync + 'static {
    /// Whether `id`/`secret` are the credentials of a caller allowed to introspect.
    fn is_caller(&self, id: &str, secret: &str) -> bool;
    /// RFC 7662 §2.2: the token's claims with `active`, or `{"active": false}`.
    fn introspect(&self, token: &str, clock: &dyn Clock) -> Value;
}

/// Serves `POST /introspect` on `listen` until the process ends.
pub async fn serve(demo: Arc<dyn DemoIntrospection>, listen: SocketAddr) -> std::io::Result<()> {
    let demo = web::Data::new(demo);
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
    demo: web::Data<Arc<dyn DemoIntrospection>>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let (id, secret) = match super::client_auth::credentials(&req) {
        Ok(ClientCredentials::Basic { client_id, secret }) => {
            (client_id.into_string(), secret.expose().clone())
        }
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
