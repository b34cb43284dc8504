//! The trust registry: which external issuers tessera believes, which clients may call it,
//! which downstream audiences it mints tokens for. Loaded from plain files (`trust/`),
//! validated as a whole (errors name file and field), swapped atomically on reload.
//!
//! Everything here is parsed into domain types at load time, so the request path never
//! re-validates strings.

pub mod load;
pub mod mapping;
pub mod registry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{load_registry, TrustError};
pub use mapping::{Mapped, Mapping, MappingError};
pub use registry::{Registry, TrustStore};

/// The file stem of a registry entry (`trust/issuers/<id>.toml`): stable, used in metric
/// labels and audit rows. `"local"` names tessera itself.
pub type IssuerId = String;

/// Registry id that stands for tessera's own tokens in `subject_issuers` / `actor_issuers`.
pub const LOCAL_ISSUER: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerKind {
    Oidc,
    // Saml and Introspection arrive with their own issues; the loader refuses them until
    // then with a message that says so.
}

/// The RFC 8693 token types a subject or actor token may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenType {
    #[serde(rename = "access_token")]
    AccessToken,
    #[serde(rename = "id_token")]
    IdToken,
    #[serde(rename = "jwt")]
    Jwt,
    #[serde(rename = "saml2")]
    Saml2,
}

impl TokenType {
    pub const fn urn(self) -> &'static str {
        match self {
            Self::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            Self::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            Self::Jwt => "urn:ietf:params:oauth:token-type:jwt",
            Self::Saml2 => "urn:ietf:params:oauth:token-type:saml2",
        }
    }
    pub fn from_urn(urn: &str) -> Option<Self> {
        [Self::AccessToken, Self::IdToken, Self::Jwt, Self::Saml2]
            .into_iter()
            .find(|t| t.urn() == urn)
    }
    /// Metric label value (SPEC §2.1).
    pub const fn label(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::IdToken => "id_token",
            Self::Jwt => "jwt",
            Self::Saml2 => "saml2",
        }
    }
}

/// JWS algorithms an issuer may be allowed. `none` and every `HS*` are unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwsAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwsAlg {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }
    pub const DEFAULT_ALLOWED: [JwsAlg; 3] = [Self::RS256, Self::PS256, Self::ES256];
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// OIDC discovery document; its `jwks_uri` is then fetched.
    Discovery(url::Url),
    JwksUri(url::Url),
    /// A JWKS file beside the registry entry, read at load.
    JwksFile {
        path: PathBuf,
        jwks: Arc<serde_json::Value>,
    },
}

#[derive(Debug)]
pub struct IssuerEntry {
    pub id: IssuerId,
    pub kind: IssuerKind,
    /// Exact `iss` value.
    pub issuer: String,
    pub keys: KeySource,
    pub audiences: Vec<String>,
    pub token_types: Vec<TokenType>,
    pub algorithms: Vec<JwsAlg>,
    pub clock_skew: Duration,
    pub max_age: Option<Duration>,
    pub one_time_use: bool,
    pub require_access_token_typ: bool,
    pub mapping: Mapping,
    /// Demo issuers only: the private key `tessera dev id-token` signs with. Its presence
    /// marks the entry as a demo, and `serve` warns about it.
    pub demo_signing_key_file: Option<PathBuf>,
    /// The file this entry came from (for messages).
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBehalfOf {
    #[default]
    Delegate,
    Impersonate,
}

#[derive(Debug)]
pub struct ClientEntry {
    pub client_id: String,
    pub auth: ClientAuthMethod,
    /// SHA-256 of the client secret (from `secret_hash`, or hashed from `secret_env` at load).
    pub secret_sha256: [u8; 32],
    pub subject_issuers: Vec<IssuerId>,
    /// When set, subject tokens must be addressed to one of these.
    pub subject_audiences: Option<Vec<String>>,
    pub actor_issuers: Vec<IssuerId>,
    /// Registry audience ids this client may obtain tokens for (resolved at load from
    /// either an audience id or its `audience` value).
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
    pub on_behalf_of: OnBehalfOf,
    pub max_lifetime: Option<Duration>,
    pub source: PathBuf,
}

#[derive(Debug)]
pub struct AudienceEntry {
    /// File stem.
    pub id: String,
    /// The `aud` value of issued tokens.
    pub audience: String,
    /// RFC 8707 resource indicators that map here (exact match).
    pub resources: Vec<String>,
    pub scopes: Vec<String>,
    pub lifetime: Option<Duration>,
    /// Mapped claims this audience may see.
    pub claims: Vec<String>,
    pub source: PathBuf,
}
