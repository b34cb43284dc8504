//! The trust registry: which external issuers tessera believes, which clients may call it,
//! which downstream audiences it mints tokens for. Loaded from plain files (`trust/`),
//! validated as a whole (errors name file and field), swapped atomically on reload.
//!
//! Everything here is parsed into domain types at load time, so the request path never
//! re-validates strings.

pub mod load;
pub mod mapping;
pub mod metadata;
pub mod registry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{describe, load_registry, load_registry_for, TrustError};
pub use mapping::{AssertionKind, Mapped, Mapping, MappingError};
pub use registry::{Registry, TrustStore};

pub use crate::protocol::{Aud, AudienceId, ClientId, IssuerId, Scope, ScopeSet};

/// Registry id that stands for tessera's own tokens in `subject_issuers` / `actor_issuers`.
pub const LOCAL_ISSUER: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerKind {
    /// JWTs: ID tokens, RFC 9068 access tokens, plain `jwt`.
    Oidc,
    /// SAML 2.0 assertions (bare or in a `<Response>`).
    Saml,
    /// Opaque access tokens, verified by RFC 7662 introspection at the issuer.
    Introspection,
}

impl IssuerKind {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Saml => "saml",
            Self::Introspection => "introspection",
        }
    }
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
    /// RFC 6749 §1.5: only an `introspection` issuer can vouch for a foreign one (RFC 7662
    /// covers refresh tokens); tessera's own are redeemed with the `refresh_token` grant.
    #[serde(rename = "refresh_token")]
    RefreshToken,
}

impl TokenType {
    pub const fn urn(self) -> &'static str {
        match self {
            Self::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            Self::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            Self::Jwt => "urn:ietf:params:oauth:token-type:jwt",
            Self::Saml2 => "urn:ietf:params:oauth:token-type:saml2",
            Self::RefreshToken => "urn:ietf:params:oauth:token-type:refresh_token",
        }
    }
    pub fn from_urn(urn: &str) -> Option<Self> {
        [
            Self::AccessToken,
            Self::IdToken,
            Self::Jwt,
            Self::Saml2,
            Self::RefreshToken,
        ]
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
            Self::RefreshToken => "refresh_token",
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
    /// The name the registry's `algorithms` and a JWS `alg` use.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
    pub const DEFAULT_ALLOWED: [JwsAlg; 3] = [Self::RS256, Self::PS256, Self::ES256];
    /// What tessera signs with (`tokens.signing_alg`): its own tokens' allow-list.
    pub const LOCAL: [JwsAlg; 4] = [Self::ES256, Self::RS256, Self::PS256, Self::EdDSA];
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
    /// tessera's own published keys (current, next, retired-but-valid): the `local`
    /// entry's, never a file's.
    Local,
}

/// Settings only JWT issuers have.
#[derive(Debug)]
pub struct OidcSettings {
    pub keys: KeySource,
    pub algorithms: Vec<JwsAlg>,
    pub require_access_token_typ: bool,
}

/// Where a SAML IdP's signing certificates come from (SPEC §4.1: never the document's
/// `KeyInfo`).
#[derive(Debug, Clone)]
pub enum SamlKeySource {
    /// IdP metadata read at load (`metadata_file`) or pinned PEM certificates
    /// (`signing_cert_file`): the certificates, DER, as parsed at load.
    Pinned {
        path: PathBuf,
        certs: Arc<Vec<SigningCert>>,
        /// Which of the two the entry names.
        from: PinnedFile,
    },
    /// IdP metadata fetched from the registry's URL, cached and refreshed; its signature
    /// checked with `signers` on every fetch when the entry names
    /// `metadata_signing_cert_file`.
    MetadataUrl {
        url: url::Url,
        signers: Option<Arc<Vec<SigningCert>>>,
    },
}

/// The file a SAML issuer's pinned certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedFile {
    /// `metadata_file`: IdP metadata.
    Metadata,
    /// `signing_cert_file`: PEM certificates.
    SigningCert,
}

impl PinnedFile {
    /// The registry field that names the file.
    pub const fn field(self) -> &'static str {
        match self {
            Self::Metadata => "metadata_file",
            Self::SigningCert => "signing_cert_file",
        }
    }
}

/// One IdP signing certificate (DER) with its SHA-256 fingerprint for logs and `trust check`,
/// and its public key, parsed once at load.
#[derive(Clone)]
pub struct SigningCert {
    pub der: Vec<u8>,
    pub sha256: String,
    pub key: crate::xmldsig::PublicKey,
}

/// The same certificate: the key is derived from the DER.
impl PartialEq for SigningCert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for SigningCert {}

impl std::fmt::Debug for SigningCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningCert(sha256:{})", &self.sha256)
    }
}

/// Settings only SAML issuers have.
#[derive(Debug)]
pub struct SamlSettings {
    pub keys: SamlKeySource,
    /// Accepted `Recipient` / `Destination` values besides the token endpoint.
    pub recipients: Vec<String>,
    /// RSA-SHA1 / SHA-1 digests accepted (SPEC §4.1: opt-in).
    pub allow_sha1: bool,
    /// Smallest RSA signing key accepted: 2048 bits, or 1024 with `allow_rsa_1024` (legacy
    /// IdPs). Checked wherever certificates are loaded, metadata refreshes included.
    pub min_rsa_bits: u32,
}

/// How tessera authenticates to an introspection endpoint (RFC 7662 §2.1, RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

impl IntrospectionAuth {
    /// The registry's word (`introspection_auth`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A secret read at load (from the environment or a file): never in `Debug` or a log line.
pub use crate::secret::Secret;

/// Settings only introspection issuers have (SPEC §2, §4).
#[derive(Debug)]
pub struct IntrospectionSettings {
    pub endpoint: url::Url,
    /// tessera's client id at the issuer, and its secret (`client_secret_env`).
    pub client_id: String,
    pub client_secret: Secret,
    pub auth: IntrospectionAuth,
    /// A result is reused for at most this long (and never past the token's `exp`).
    pub cache_ttl: Duration,
}

/// What is particular to an issuer's kind: each kind's loader fills its own variant.
#[derive(Debug)]
pub enum KindSettings {
    Oidc(OidcSettings),
    Saml(SamlSettings),
    Introspection(IntrospectionSettings),
}

#[derive(Debug)]
pub struct IssuerEntry {
    pub id: IssuerId,
    /// Exact `iss` / SAML entityID.
    pub issuer: String,
    pub audiences: Vec<String>,
    pub token_types: Vec<TokenType>,
    pub clock_skew: Duration,
    pub max_age: Option<Duration>,
    /// Every token of this issuer is single-use (SAML default).
    pub one_time_use: bool,
    pub settings: KindSettings,
    pub mapping: Mapping,
    /// Demo issuers only: the private key `tessera dev id-token` signs with. Its presence
    /// marks the entry as a demo, and `serve` warns about it.
    pub demo_signing_key_file: Option<PathBuf>,
    /// The file this entry came from (for messages).
    pub source: PathBuf,
}

impl IssuerEntry {
    pub const fn kind(&self) -> IssuerKind {
        match self.settings {
            KindSettings::Oidc(_) => IssuerKind::Oidc,
            KindSettings::Saml(_) => IssuerKind::Saml,
            KindSettings::Introspection(_) => IssuerKind::Introspection,
        }
    }
    pub const fn oidc(&self) -> Option<&OidcSettings> {
        match &self.settings {
            KindSettings::Oidc(s) => Some(s),
            _ => None,
        }
    }
    pub const fn saml(&self) -> Option<&SamlSettings> {
        match &self.settings {
            KindSettings::Saml(s) => Some(s),
            _ => None,
        }
    }
    pub const fn introspection(&self) -> Option<&IntrospectionSettings> {
        match &self.settings {
            KindSettings::Introspection(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2 client assertions signed with a key from the client's JWKS.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registry's word (`auth`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBehalfOf {
    #[default]
    Delegate,
    Impersonate,
}

impl OnBehalfOf {
    /// The registry's word (`on_behalf_of`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delegate => "delegate",
            Self::Impersonate => "impersonate",
        }
    }
}

/// `Debug` is written by hand so the secret's hash never reaches a log line (a hash of a
/// low-entropy `secret_env` secret could be brute-forced).
pub struct ClientEntry {
    pub client_id: ClientId,
    pub auth: ClientAuthMethod,
    /// SHA-256 of the client secret (from `secret_hash`, or hashed from `secret_env` at
    /// load); `None` for `private_key_jwt` clients, which have no secret.
    pub secret_sha256: Option<[u8; 32]>,
    /// `private_key_jwt`: where the client's public keys come from (`jwks_file` or
    /// `jwks_uri`).
    pub jwks: Option<KeySource>,
    pub subject_issuers: Vec<IssuerId>,
    /// When set, subject tokens must be addressed to one of these.
    pub subject_audiences: Option<Vec<String>>,
    pub actor_issuers: Vec<IssuerId>,
    /// Registry audience ids this client may obtain tokens for (resolved at load from
    /// either an audience id or its `audience` value).
    pub audiences: Vec<AudienceId>,
    pub scopes: ScopeSet,
    pub on_behalf_of: OnBehalfOf,
    pub max_lifetime: Option<Duration>,
    /// Its own request rate, or `limits.client_rate` (SPEC §2, `rate_limit`).
    pub rate_limit: crate::limits::ClientRate,
    /// `refresh_tokens`: may ask for refresh tokens.
    pub refresh_tokens: bool,
    pub source: PathBuf,
}

impl std::fmt::Debug for ClientEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEntry")
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("secret_sha256", &"[redacted]")
            .field("jwks", &self.jwks.as_ref().map(|_| "set"))
            .field("subject_issuers", &self.subject_issuers)
            .field("subject_audiences", &self.subject_audiences)
            .field("actor_issuers", &self.actor_issuers)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .field("on_behalf_of", &self.on_behalf_of)
            .field("max_lifetime", &self.max_lifetime)
            .field("rate_limit", &self.rate_limit)
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug)]
pub struct AudienceEntry {
    /// File stem.
    pub id: AudienceId,
    /// The `aud` value of issued tokens.
    pub audience: Aud,
    /// RFC 8707 resource indicators that map here (exact match).
    pub resources: Vec<String>,
    pub scopes: ScopeSet,
    pub lifetime: Option<Duration>,
    /// Mapped claims this audience may see.
    pub claims: Vec<String>,
    /// The algorithm its tokens are signed with (`signing_alg`; one of [`JwsAlg::LOCAL`]);
    /// `None`: `tokens.signing_alg`.
    pub signing_alg: Option<JwsAlg>,
    /// `require_dpop`: tokens for it are issued only DPoP-bound (RFC 9449).
    pub require_dpop: bool,
    /// `refresh_lifetime` / `refresh_idle`: `None` when it allows no refresh tokens.
    pub refresh: Option<RefreshPolicy>,
    pub source: PathBuf,
}

/// How long a refresh family for an audience may live (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Absolute: from the exchange that started the family.
    pub lifetime: Duration,
    /// Between two uses; `None`: no idle limit.
    pub idle: Option<Duration>,
}
