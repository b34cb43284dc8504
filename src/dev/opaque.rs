//! The demo authorization server's opaque tokens (`tessera dev opaque-token`, served by
//! `tessera dev opaque-as`): something to try an `introspection` issuer with, end to end.
//!
//! A token is `demo-opaque~<claims>~<signature>` (base64url, ECDSA P-256 over the claims
//! with the entry's `demo_signing_key_file`). To tessera it is opaque, as any access
//! token of a foreign authorization server: only the demo server's RFC 7662 endpoint reads
//! it. The format is the demo's own and nothing else accepts it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::trust::{IssuerEntry, IssuerKind};

const PREFIX: &str = "demo-opaque";

/// A demo introspection issuer: its entry and the key its tokens are signed with.
pub struct DemoAs {
    pub entry: Arc<IssuerEntry>,
    key: PKey<Private>,
}

impl DemoAs {
    /// The demo `introspection` issuer `id` of the registry in `dir`.
    pub fn load(dir: &Path, id: &str) -> anyhow::Result<Self> {
        let (entry, pem) = super::demo_issuer(dir, id)?;
        if entry.kind() != IssuerKind::Introspection {
            bail!("issuer {id:?} is not an introspection issuer");
        }
        let key = PKey::private_key_from_pem(&pem).context("demo_signing_key_file")?;
        if key.ec_key().is_err() {
            bail!("demo_signing_key_file of {id:?} must be an EC P-256 key");
        }
        Ok(Self { entry, key })
    }

    /// A token for `sub`, valid `lifetime_secs`, with `scope` and `extra` claims.
    pub fn mint(
        &self,
        sub: &str,
        scope: &str,
        extra: &[(String, Value)],
        lifetime_secs: i64,
        clock: &dyn Clock,
    ) -> anyhow::Result<String> {
        let now = clock.now();
        let mut claims = Map::new();
        claims.insert("iss".into(), self.entry.issuer.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert(
            "aud".into(),
            self.entry
                .audiences
                .first()
                .cloned()
                .unwrap_or_default()
                .into(),
        );
        claims.insert("client_id".into(), "demo-web-app".into());
        claims.insert("scope".into(), scope.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(lifetime_secs).into());
        claims.insert(
            "jti".into(),
            uuid::Uuid::new_v4().simple().to_string().into(),
        );
        for (k, v) in extra {
            claims.insert(k.clone(), v.clone());
        }
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        let signature = URL_SAFE_NO_PAD.encode(signer.sign_oneshot_to_vec(body.as_bytes())?);
        Ok(format!("{PREFIX}~{body}~{signature}"))
    }

    /// What the demo server's introspection endpoint says about `token` (RFC 7662 §2.2):
    /// its claims with `active: true` while it verifies and has not expired, else only
    /// `active: false`.
    pub fn introspect(&self, token: &str, clock: &dyn Clock) -> Value {
        self.open(token)
            .filter(|c| c.get("exp").and_then(Value::as_i64) > Some(clock.now()))
            .map_or_else(
                || serde_json::json!({"active": false}),
                |mut claims| {
                    claims.insert("active".into(), true.into());
                    Value::Object(claims)
                },
            )
    }

    fn open(&self, token: &str) -> Option<Map<String, Value>> {
        let mut parts = token.split('~');
        let (Some(PREFIX), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut verifier = Verifier::new(MessageDigest::sha256(), &self.key).ok()?;
        if !verifier.verify_oneshot(&sig, body.as_bytes()).ok()? {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }

    /// Whether `id` / `secret` are the credentials the entry names (what the demo server
    /// requires of its introspection callers).
    pub fn is_caller(&self, id: &str, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Some(s) = self.entry.introspection() else {
            return false;
        };
        let same_secret: bool = s
            .client_secret
            .expose()
            .as_bytes()
            .ct_eq(secret.as_bytes())
            .into();
        s.client_id == id && same_secret
    }
}

impl crate::http::demo_as::DemoIntrospection for DemoAs {
    fn is_caller(&self, id: &str, secret: &str) -> bool {
        DemoAs::is_caller(self, id, secret)
    }

    fn introspect(&self, token: &str, clock: &dyn Clock) -> Value {
        DemoAs::introspect(self, token, clock)
    }
}
