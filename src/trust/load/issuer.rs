//! `trust/issuers/<id>.toml`: parsing one issuer entry, and the cross-issuer rule (one
//! entry per `iss` and kind).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::saml::SamlFields;
use super::{
    check_nonempty_strings, load_jwks_file, parse_duration, parse_entry, parse_http_url,
    read_capped, resolve_beside, Errors, DEFAULT_CLOCK_SKEW, MAX_CLOCK_SKEW, MAX_PEM_BYTES,
};
use crate::trust::mapping::{AssertionKind, Mapping, MappingError};
use crate::trust::{
    IntrospectionAuth, IntrospectionSettings, IssuerEntry, IssuerId, IssuerKind, JwsAlg, KeySource,
    KindSettings, OidcSettings, Secret, TokenType, LOCAL_ISSUER,
};
use crate::xmldsig::{LEGACY_MIN_RSA_BITS, MIN_RSA_BITS};
use std::time::Duration;
/// The raw TOML of `trust/issuers/<id>.toml`. Everything optional is resolved to its
/// default in `load_issuer`, where the default can depend on `kind`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    #[expect(
        dead_code,
        reason = "read by the KindOnly pre-pass; declared so deny_unknown_fields accepts it"
    )]
    kind: String,
    issuer: String,
    discovery_url: Option<String>,
    jwks_uri: Option<String>,
    jwks_file: Option<String>,
    // Optional for saml (saml.entity_id is always accepted); oidc refuses it empty.
    #[serde(default)]
    audiences: Vec<String>,
    token_types: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    clock_skew: Option<toml::Value>,
    max_age: Option<toml::Value>,
    one_time_use: Option<bool>,
    require_access_token_typ: Option<bool>,
    demo_signing_key_file: Option<String>,
    // saml only
    metadata_file: Option<String>,
    metadata_url: Option<String>,
    signing_cert_file: Option<String>,
    metadata_signing_cert_file: Option<String>,
    recipients: Option<Vec<String>>,
    allow_sha1: Option<bool>,
    allow_rsa_1024: Option<bool>,
    // introspection only
    introspection_endpoint: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<String>,
    introspection_auth: Option<String>,
    cache_ttl: Option<toml::Value>,
    mapping: Option<RawMapping>,
}

/// Fields that belong to one kind only: set on an entry of another kind they are a
/// mistake worth naming (a `jwks_uri` on a SAML IdP would otherwise be silently unused).
const OIDC_ONLY: &[&str] = &[
    "discovery_url",
    "jwks_uri",
    "jwks_file",
    "algorithms",
    "require_access_token_typ",
];
const SAML_ONLY: &[&str] = &[
    "metadata_file",
    "metadata_url",
    "signing_cert_file",
    "metadata_signing_cert_file",
    "recipients",
    "allow_sha1",
    "allow_rsa_1024",
];
const INTROSPECTION_ONLY: &[&str] = &[
    "introspection_endpoint",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "introspection_auth",
    "cache_ttl",
];

impl RawIssuer {
    fn set_fields(&self) -> Vec<&'static str> {
        [
            ("discovery_url", self.discovery_url.is_some()),
            ("jwks_uri", self.jwks_uri.is_some()),
            ("jwks_file", self.jwks_file.is_some()),
            ("algorithms", self.algorithms.is_some()),
            (
                "require_access_token_typ",
                self.require_access_token_typ.is_some(),
            ),
            ("metadata_file", self.metadata_file.is_some()),
            ("metadata_url", self.metadata_url.is_some()),
            ("signing_cert_file", self.signing_cert_file.is_some()),
            (
                "metadata_signing_cert_file",
                self.metadata_signing_cert_file.is_some(),
            ),
            ("recipients", self.recipients.is_some()),
            ("allow_sha1", self.allow_sha1.is_some()),
            ("allow_rsa_1024", self.allow_rsa_1024.is_some()),
            (
                "introspection_endpoint",
                self.introspection_endpoint.is_some(),
            ),
            ("client_id", self.client_id.is_some()),
            ("client_secret_env", self.client_secret_env.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("introspection_auth", self.introspection_auth.is_some()),
            ("cache_ttl", self.cache_ttl.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }
}

impl RawIssuer {
    fn saml_fields(&self) -> SamlFields<'_> {
        SamlFields {
            issuer: &self.issuer,
            metadata_file: self.metadata_file.as_deref(),
            metadata_url: self.metadata_url.as_deref(),
            signing_cert_file: self.signing_cert_file.as_deref(),
            metadata_signing_cert_file: self.metadata_signing_cert_file.as_deref(),
            recipients: self.recipients.as_deref().unwrap_or_default(),
            allow_sha1: self.allow_sha1.unwrap_or(false),
            min_rsa_bits: if self.allow_rsa_1024.unwrap_or(false) {
                LEGACY_MIN_RSA_BITS
            } else {
                MIN_RSA_BITS
            },
        }
    }
}

fn refuse_other_kind_fields(path: &Path, raw: &RawIssuer, kind: IssuerKind, errs: &mut Errors) {
    let own: &[&str] = match kind {
        IssuerKind::Oidc => OIDC_ONLY,
        IssuerKind::Saml => SAML_ONLY,
        IssuerKind::Introspection => INTROSPECTION_ONLY,
    };
    let kind_specific = [OIDC_ONLY, SAML_ONLY, INTROSPECTION_ONLY].concat();
    for field in raw.set_fields() {
        if kind_specific.contains(&field) && !own.contains(&field) {
            errs.field(
                path,
                field,
                format!("is not a setting of {} issuers", kind.label()),
            );
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    subject: Option<String>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    condition: Option<String>,
}

/// Only `kind`, read first so that a SAML or introspection entry gets "not supported
/// yet" rather than a list of unknown fields.
#[derive(Deserialize)]
struct KindOnly {
    kind: Option<toml::Value>,
}

pub(super) fn load_issuer(id: &str, path: &Path, errs: &mut Errors) -> Option<IssuerEntry> {
    if id == LOCAL_ISSUER {
        errs.file(
            path,
            "\"local\" is reserved for tessera's own tokens; name this issuer differently",
        );
        return None;
    }
    let kind = read_kind(path, errs)?;
    let raw: RawIssuer = parse_entry(path, errs)?;
    let before = errs.0.len();
    refuse_other_kind_fields(path, &raw, kind, errs);

    // issuer: exact `iss` / entityID; compared byte for byte, so whitespace is a mistake.
    if raw.issuer.is_empty() {
        errs.field(path, "issuer", "must not be empty");
    } else if raw.issuer.trim() != raw.issuer {
        errs.field(
            path,
            "issuer",
            "has surrounding whitespace; it is compared exactly",
        );
    }

    // SAML assertions may instead be addressed to saml.entity_id (SPEC §4). An opaque
    // token's introspected `aud` is checked like a JWT's: a token for another resource
    // server of the same authorization server is not one to exchange here.
    if raw.audiences.is_empty() && kind != IssuerKind::Saml {
        errs.field(
            path,
            "audiences",
            "must name at least one audience the presented tokens are addressed to",
        );
    }
    check_nonempty_strings(path, "audiences", &raw.audiences, errs);

    let token_types = load_token_types(path, raw.token_types.as_deref(), kind, errs);
    let clock_skew = parse_duration(path, "clock_skew", raw.clock_skew.as_ref(), errs)
        .unwrap_or(DEFAULT_CLOCK_SKEW);
    if clock_skew > MAX_CLOCK_SKEW {
        errs.field(
            path,
            "clock_skew",
            format!(
                "{} is more than the {} tessera allows: expired tokens would stay usable",
                humantime::format_duration(clock_skew),
                humantime::format_duration(MAX_CLOCK_SKEW)
            ),
        );
    }
    let max_age = parse_duration(path, "max_age", raw.max_age.as_ref(), errs);
    let demo_signing_key_file = load_demo_key(path, raw.demo_signing_key_file.as_deref(), errs);

    let (settings, one_time_use, assertion) = match kind {
        // `one_time_use = true`: each JWT accepted once, by its `jti` (a token without one
        // is refused), on every replica.
        IssuerKind::Oidc => (
            load_oidc(path, &raw, errs).map(KindSettings::Oidc),
            raw.one_time_use.unwrap_or(false),
            AssertionKind::Claims,
        ),
        // SPEC §2: SAML assertions are single-use unless the entry says otherwise.
        IssuerKind::Saml => (
            super::saml::load_saml(path, &raw.saml_fields(), errs).map(KindSettings::Saml),
            raw.one_time_use.unwrap_or(true),
            AssertionKind::Saml,
        ),
        IssuerKind::Introspection => (
            load_introspection(path, &raw, errs).map(KindSettings::Introspection),
            false,
            AssertionKind::Claims,
        ),
    };
    let mapping = load_mapping(path, raw.mapping, assertion, errs);

    if errs.0.len() != before {
        return None;
    }
    Some(IssuerEntry {
        id: IssuerId::new(id),
        issuer: raw.issuer,
        audiences: raw.audiences,
        token_types,
        clock_skew,
        max_age,
        one_time_use,
        settings: settings?,
        mapping: mapping?,
        demo_signing_key_file,
        source: path.to_path_buf(),
    })
}

/// `kind` first, so that an unsupported kind gets its own message rather than a list of
/// unknown fields.
fn read_kind(path: &Path, errs: &mut Errors) -> Option<IssuerKind> {
    let kind_only: KindOnly = parse_entry(path, errs)?;
    match kind_only.kind.as_ref().and_then(|k| k.as_str()) {
        Some("oidc") => Some(IssuerKind::Oidc),
        Some("saml") => Some(IssuerKind::Saml),
        Some("introspection") => Some(IssuerKind::Introspection),
        Some(other) => {
            errs.field(
                path,
                "kind",
                format!("{other:?} is not an issuer kind (expected \"oidc\", \"saml\" or \"introspection\")"),
            );
            None
        }
        None if kind_only.kind.is_some() => {
            errs.field(
                path,
                "kind",
                "must be a string: \"oidc\", \"saml\" or \"introspection\"",
            );
            None
        }
        None => {
            errs.field(
                path,
                "kind",
                "missing: set kind = \"oidc\", \"saml\" or \"introspection\"",
            );
            None
        }
    }
}

/// The JWT issuer's own settings: key source, algorithm allow-list, `typ` strictness.
fn load_oidc(path: &Path, raw: &RawIssuer, errs: &mut Errors) -> Option<OidcSettings> {
    let before = errs.0.len();
    let keys = load_key_source(path, raw, errs);
    let algorithms = match &raw.algorithms {
        None => JwsAlg::DEFAULT_ALLOWED.to_vec(),
        Some(list) => {
            if list.is_empty() {
                errs.field(
                    path,
                    "algorithms",
                    "must not be empty (omit it for the default: RS256, PS256, ES256)",
                );
            }
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let field = format!("algorithms[{i}]");
                match JwsAlg::parse(a) {
                    Some(alg) if out.contains(&alg) => {
                        errs.field(path, field, format!("{a:?} is listed twice"))
                    }
                    Some(alg) => out.push(alg),
                    None => errs.field(path, field, alg_refusal(a)),
                }
            }
            out
        }
    };
    if errs.0.len() != before {
        return None;
    }
    Some(OidcSettings {
        keys: keys?,
        algorithms,
        require_access_token_typ: raw.require_access_token_typ.unwrap_or(true),
    })
}

/// Introspection results are reused for at most this long by default (and never past the
/// token's `exp`): a revocation at the issuer is seen within it.
const DEFAULT_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(60);
/// The longest `cache_ttl` tessera accepts: beyond it a token revoked at its issuer would
/// stay exchangeable for too long.
const MAX_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

/// SPEC §2: the endpoint (https, or http to loopback), tessera's credentials at the
/// issuer (the secret from the environment, never the file), how to send them, and how
/// long a result may be reused.
fn load_introspection(
    path: &Path,
    raw: &RawIssuer,
    errs: &mut Errors,
) -> Option<IntrospectionSettings> {
    let before = errs.0.len();
    let endpoint = match raw.introspection_endpoint.as_deref() {
        Some(u) => parse_http_url(path, "introspection_endpoint", u, false, errs),
        None => {
            errs.field(
                path,
                "introspection_endpoint",
                "missing: the issuer's RFC 7662 endpoint",
            );
            None
        }
    };
    let client_id = match raw.client_id.as_deref() {
        Some(id) if !id.is_empty() && id.trim() == id => Some(id.to_owned()),
        Some(_) => {
            errs.field(
                path,
                "client_id",
                "must be non-empty, without surrounding whitespace",
            );
            None
        }
        None => {
            errs.field(
                path,
                "client_id",
                "missing: tessera's client id at the issuer",
            );
            None
        }
    };
    let client_secret = load_client_secret(path, raw, errs);
    let auth = match raw.introspection_auth.as_deref() {
        None | Some("client_secret_basic") => Some(IntrospectionAuth::ClientSecretBasic),
        Some("client_secret_post") => Some(IntrospectionAuth::ClientSecretPost),
        Some(other) => {
            errs.field(
                path,
                "introspection_auth",
                format!("{other:?} is not supported (client_secret_basic or client_secret_post)"),
            );
            None
        }
    };
    let cache_ttl = parse_duration(path, "cache_ttl", raw.cache_ttl.as_ref(), errs)
        .unwrap_or(DEFAULT_INTROSPECTION_CACHE_TTL);
    if cache_ttl > MAX_INTROSPECTION_CACHE_TTL {
        errs.field(
            path,
            "cache_ttl",
            format!(
                "must be at most {}: a token revoked at the issuer stays usable that long",
                humantime::format_duration(MAX_INTROSPECTION_CACHE_TTL)
            ),
        );
    }
    if raw.one_time_use == Some(true) {
        errs.field(
            path,
            "one_time_use",
            "single-use opaque tokens are not supported: remove the line or set it to false",
        );
    }
    if errs.0.len() != before {
        return None;
    }
    Some(IntrospectionSettings {
        endpoint: endpoint?,
        client_id: client_id?,
        client_secret: client_secret?,
        auth: auth?,
        cache_ttl,
    })
}

/// tessera's secret at the issuer: from `client_secret_env` (an environment variable) or
/// `client_secret_file` (a file beside the entry, e.g. a mounted Kubernetes secret; its
/// surrounding whitespace is dropped), exactly one. Never from the entry itself.
fn load_client_secret(path: &Path, raw: &RawIssuer, errs: &mut Errors) -> Option<Secret> {
    match (&raw.client_secret_env, &raw.client_secret_file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => Some(Secret::new(secret)),
            _ => {
                errs.field(
                    path,
                    "client_secret_env",
                    format!("environment variable {var} is not set or empty"),
                );
                None
            }
        },
        (None, Some(rel)) => {
            let file = resolve_beside(path, rel);
            match read_capped(&file, MAX_PEM_BYTES) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim().to_owned())),
                    _ => {
                        errs.field(
                            path,
                            "client_secret_file",
                            format!("{} is empty or not UTF-8", file.display()),
                        );
                        None
                    }
                },
                Err(problem) => {
                    errs.field(path, "client_secret_file", problem);
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            errs.field(
                path,
                "client_secret_file",
                "client_secret_env and client_secret_file are both set: use exactly one",
            );
            None
        }
        (None, None) => {
            errs.field(
                path,
                "client_secret_env",
                "missing: client_secret_env or client_secret_file (tessera's secret at the issuer)",
            );
            None
        }
    }
}

/// SPEC §2 defaults by kind. For oidc, `jwt` (the bearer grant, and the loosest typ and
/// audience rules) is opt-in: an ID token refused as `id_token` must not pass because
/// the caller declared it a plain `jwt`. `refresh_token` is opt-in and introspection
/// only: a refresh token is opaque to all but its issuer (RFC 6749 §1.5), which RFC 7662
/// lets vouch for it; no signature or assertion format is defined for one.
fn load_token_types(
    path: &Path,
    list: Option<&[String]>,
    kind: IssuerKind,
    errs: &mut Errors,
) -> Vec<TokenType> {
    let Some(list) = list else {
        return match kind {
            IssuerKind::Oidc => vec![TokenType::IdToken, TokenType::AccessToken],
            IssuerKind::Saml => vec![TokenType::Saml2],
            IssuerKind::Introspection => vec![TokenType::AccessToken],
        };
    };
    if list.is_empty() {
        errs.field(
            path,
            "token_types",
            "must not be empty (omit it for the default)",
        );
    }
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match parse_token_type(t).and_then(|tt| kind_verifies(kind, tt).map(|()| tt)) {
            Ok(tt) => out.push(tt),
            Err(problem) => errs.field(path, format!("token_types[{i}]"), problem),
        }
    }
    out
}

/// A `token_types` word: the RFC 8693 type's short name.
fn parse_token_type(t: &str) -> Result<TokenType, String> {
    [
        TokenType::IdToken,
        TokenType::AccessToken,
        TokenType::Jwt,
        TokenType::Saml2,
        TokenType::RefreshToken,
    ]
    .into_iter()
    .find(|tt| tt.label() == t)
    .ok_or_else(|| {
        format!("{t:?} is not a token type (expected id_token, access_token, jwt, saml2 or refresh_token)")
    })
}

/// Whether an issuer of `kind` can vouch for `tt`: oidc for JWTs, saml for assertions,
/// introspection (RFC 7662) for opaque access and refresh tokens.
fn kind_verifies(kind: IssuerKind, tt: TokenType) -> Result<(), String> {
    use TokenType as T;
    match (kind, tt) {
        (IssuerKind::Oidc, T::IdToken | T::AccessToken | T::Jwt)
        | (IssuerKind::Saml, T::Saml2)
        | (IssuerKind::Introspection, T::AccessToken | T::RefreshToken) => Ok(()),
        (IssuerKind::Oidc, T::Saml2) => {
            Err("\"saml2\" is not a token type an oidc issuer can issue".to_owned())
        }
        // RFC 6749 §1.5: a refresh token is opaque to everyone but its issuer.
        (IssuerKind::Oidc, T::RefreshToken) => Err(
            "\"refresh_token\" is not a token type an oidc issuer verifies: refresh tokens \
             are opaque, verified by introspection (kind = \"introspection\")"
                .to_owned(),
        ),
        (IssuerKind::Saml, _) => Err(format!(
            "{:?} is not a token type a saml issuer can issue (only saml2)",
            tt.label()
        )),
        (IssuerKind::Introspection, _) => Err(format!(
            "{:?} is not a token type an introspection issuer verifies \
             (only access_token and refresh_token)",
            tt.label()
        )),
    }
}

fn load_demo_key(path: &Path, rel: Option<&str>, errs: &mut Errors) -> Option<PathBuf> {
    let p = resolve_beside(path, rel?);
    match read_capped(&p, MAX_PEM_BYTES).and_then(|pem| {
        openssl::pkey::PKey::private_key_from_pem(&pem)
            .map(|_| ())
            .map_err(|_| format!("{} is not a PEM private key", p.display()))
    }) {
        Ok(()) => Some(p),
        Err(problem) => {
            errs.field(path, "demo_signing_key_file", problem);
            None
        }
    }
}

/// `[mapping]`, compiled and checked against what `assertion` holds for this kind (every
/// problem of every program is reported, each naming its field).
fn load_mapping(
    path: &Path,
    raw: Option<RawMapping>,
    assertion: AssertionKind,
    errs: &mut Errors,
) -> Option<Mapping> {
    let Some(m) = raw else {
        return Some(Mapping::default_for(assertion));
    };
    match Mapping::compile_all(
        m.subject.as_deref(),
        &m.claims,
        m.condition.as_deref(),
        assertion,
    ) {
        Ok(mapping) => Some(mapping),
        Err(problems) => {
            for p in problems {
                match p {
                    MappingError::Compile { field, message } => errs.field(path, field, message),
                    other => errs.field(path, "mapping", other.to_string()),
                }
            }
            None
        }
    }
}

/// Why an algorithm name is refused (SPEC §4.1).
fn alg_refusal(a: &str) -> String {
    if a.eq_ignore_ascii_case("none") {
        format!("{a:?} is not allowed: unsigned tokens are never accepted")
    } else if a.to_ascii_uppercase().starts_with("HS") {
        format!("{a:?} is not allowed: HMAC algorithms cannot be verified with a public key")
    } else if a == "ES512" {
        format!("{a:?} is not supported (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")
    } else {
        format!("{a:?} is not a known JWS algorithm (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")
    }
}

fn load_key_source(path: &Path, raw: &RawIssuer, errs: &mut Errors) -> Option<KeySource> {
    let set: Vec<&str> = [
        ("discovery_url", raw.discovery_url.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
        ("jwks_file", raw.jwks_file.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect();
    if set.len() != 1 {
        let problem = if set.is_empty() {
            "no key material: set exactly one of discovery_url, jwks_uri, jwks_file".to_owned()
        } else {
            format!(
                "{} are all set: exactly one of discovery_url, jwks_uri, jwks_file is allowed",
                set.join(" and ")
            )
        };
        errs.field(
            path,
            set.first().copied().unwrap_or("discovery_url"),
            problem,
        );
        return None;
    }
    if let Some(u) = &raw.discovery_url {
        return parse_http_url(path, "discovery_url", u, false, errs).map(KeySource::Discovery);
    }
    if let Some(u) = &raw.jwks_uri {
        return parse_http_url(path, "jwks_uri", u, false, errs).map(KeySource::JwksUri);
    }
    load_jwks_file(path, raw.jwks_file.as_deref()?, errs)
}

/// Cross-entry rule: two entries may share an `issuer` only if their kinds differ.
pub(super) fn check_issuers(issuers: &[IssuerEntry], errs: &mut Errors) {
    let mut seen: HashMap<(&str, IssuerKind), &IssuerEntry> = HashMap::new();
    for i in issuers {
        if let Some(first) = seen.get(&(i.issuer.as_str(), i.kind())) {
            errs.field(
                &i.source,
                "issuer",
                format!(
                    "{:?} is already registered with the same kind by {}; a token's iss must select exactly one entry",
                    i.issuer,
                    first.source.display()
                ),
            );
        } else {
            seen.insert((i.issuer.as_str(), i.kind()), i);
        }
    }
}
