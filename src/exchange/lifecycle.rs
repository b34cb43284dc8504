//! The lifecycle of tessera's own tokens: RFC 7662 introspection and RFC 7009 revocation
//! (SPEC §3), for authenticated clients.
//!
//! Who may see or revoke what (README "Introspection and revocation"):
//! - a client may introspect a token issued *to* it (`client_id`) or issued *for* one of
//!   its audiences (a resource server registered as a client with that audience);
//!   anything else is answered `{"active": false}`, as RFC 7662 §2.2 allows, so the
//!   endpoint is no oracle for other clients' tokens;
//! - a client may revoke only tokens issued to it (RFC 7009 §2.1). A token that is not a
//!   valid tessera token is answered 200 with nothing done (RFC 7009 §2.2).
//!
//! A token is active when its signature verifies with tessera's published keys, it has
//! not expired, and neither it nor a token it was exchanged from is revoked (read from the
//! database here, not the replica's cached set: exact on every replica).

use serde_json::{Map, Value};

use crate::trust::{ClientEntry, Registry, TokenType, LOCAL_ISSUER};
use crate::verify::{Expectation, Presented, Purpose, VerifiedSubject};

use super::{ClientCredentials, ExchangeError, Exchanger, Form};

/// How long past its `exp` a revocation is kept: at least the clock skew tessera allows
/// its own tokens (the `local` entry's 60 s), with room.
const REVOCATION_MARGIN_SECS: i64 = 300;

/// What introspection reveals of an active token (RFC 7662 §2.2).
const REVEALED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "act",
];

impl Exchanger {
    /// `POST /introspect`: the RFC 7662 §2.2 response object.
    pub async fn introspect(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
    ) -> Result<Map<String, Value>, ExchangeError> {
        let registry = self.trust.snapshot();
        let client = self
            .authenticate_client(&registry, credentials?, form)
            .await?;
        let token = required(form, "token")?;
        let inactive = || {
            let mut m = Map::new();
            m.insert("active".into(), Value::Bool(false));
            m
        };
        let Some(verified) = self.local_token(&registry, token).await else {
            return Ok(inactive());
        };
        // RFC 7662 §2.2: a token past its exp is inactive, whatever skew verification
        // allows a presented token.
        let expired = verified.expires_at <= self.clock.now();
        if expired
            || !may_introspect(&registry, &client, &verified)
            || self.revoked(&verified).await?
        {
            return Ok(inactive());
        }
        let mut out: Map<String, Value> = REVEALED
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), verified.assertion.get(*k)?.clone())))
            .collect();
        out.insert("active".into(), Value::Bool(true));
        out.insert("token_type".into(), Value::String("Bearer".into()));
        Ok(out)
    }

    /// `POST /revoke`: records the token as revoked when it is the caller's.
    pub async fn revoke(
        &self,
        credentials: Result<ClientCredentials, ExchangeError>,
        form: &Form,
    ) -> Result<(), ExchangeError> {
        let registry = self.trust.snapshot();
        let client = self
            .authenticate_client(&registry, credentials?, form)
            .await?;
        let token = required(form, "token")?;
        if let Some(hint) = form.single("token_type_hint")? {
            // RFC 7009 §2.2.1: tessera issues access tokens only; an unknown hint is fine.
            tracing::debug!(hint = %crate::telemetry::escape_invisible(&crate::telemetry::echo(hint)), "revocation hint");
        }
        let Some(verified) = self.local_token(&registry, token).await else {
            return Ok(());
        };
        let Some(local) = &verified.local else {
            return Ok(());
        };
        if local.client_id != client.client_id {
            return Err(ExchangeError::UnauthorizedClient(
                "a client may revoke only tokens issued to it",
            ));
        }
        let jti = local.jti.as_str();
        self.revocations
            // Kept past exp by the skew a presented token is allowed (it is still
            // verifiable that long).
            .revoke(
                jti,
                verified.expires_at.saturating_add(REVOCATION_MARGIN_SECS),
                &client.client_id,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocation could not be recorded");
                ExchangeError::AuditUnavailable
            })?;
        tracing::info!(target: "exchange", client_id = %client.client_id, jti, "token revoked");
        Ok(())
    }

    /// `token` verified as a tessera access token (signature, `typ`, expiry), or `None`.
    async fn local_token(&self, registry: &Registry, token: &str) -> Option<VerifiedSubject> {
        let local = [LOCAL_ISSUER.to_owned()];
        let expect = Expectation {
            allowed_issuers: &local,
            purpose: Purpose::Exchange,
        };
        let presented = Presented {
            token_type: TokenType::AccessToken,
            text: token,
        };
        self.verifier
            .verify(registry, presented, &expect)
            .await
            .ok()
            .filter(|v| v.issuer.id == LOCAL_ISSUER)
    }

    async fn revoked(&self, token: &VerifiedSubject) -> Result<bool, ExchangeError> {
        self.revocations
            .any_revoked_now(token.lineage().to_vec())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocations could not be read");
                ExchangeError::AuditUnavailable
            })
    }
}

/// The caller is the token's client, or the token is for one of the caller's audiences.
fn may_introspect(registry: &Registry, client: &ClientEntry, token: &VerifiedSubject) -> bool {
    let own = token
        .local
        .as_ref()
        .is_some_and(|l| l.client_id == client.client_id);
    let for_its_audience = client
        .audiences
        .iter()
        .filter_map(|id| registry.audiences.get(id))
        .any(|a| token.audiences.iter().any(|t| a.audience == t.as_str()));
    own || for_its_audience
}

fn required<'f>(form: &'f Form, name: &'static str) -> Result<&'f str, ExchangeError> {
    form.single(name)?
        .ok_or_else(|| ExchangeError::InvalidRequest(format!("missing parameter {name}")))
}
