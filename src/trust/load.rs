//! Reads a registry directory (`trust/{issuers,clients,audiences}/*.toml`) into a
//! [`Registry`], or reports every problem found.
//!
//! The rule: a registry is accepted whole or not at all. Every file is parsed (serde,
//! `deny_unknown_fields`), turned into domain types, and cross-checked (references,
//! uniqueness); all problems are collected into [`TrustError::Many`], each naming the
//! file and the field and saying what is wrong, so `tessera trust check` shows a
//! reviewer the complete list in one run. Other directories (`examples/`) and files
//! that do not end in `.toml` are ignored.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::mapping::{Mapping, MappingError, DEFAULT_JWT_SUBJECT};
use super::{
    AudienceEntry, ClientAuthMethod, ClientEntry, IssuerEntry, IssuerKind, JwsAlg, KeySource,
    OnBehalfOf, Registry, TokenType, LOCAL_ISSUER,
};

/// Every problem found while loading, each naming its file and field.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{}: {field}: {problem}", file.display())]
    Field {
        file: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{}: {problem}", file.display())]
    File { file: PathBuf, problem: String },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<TrustError>),
}

impl TrustError {
    /// The individual problems (a `Many` flattened; anything else as a single item).
    pub fn problems(&self) -> Vec<&TrustError> {
        match self {
            TrustError::Many(all) => all.iter().flat_map(TrustError::problems).collect(),
            other => vec![other],
        }
    }
}

/// A registry entry file is a few hundred bytes; anything this large is a mistake.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;
/// JWKS files hold public keys only; a few dozen RSA keys fit easily.
const MAX_JWKS_BYTES: u64 = 256 * 1024;
/// A PEM private key (RSA-4096 is ~3.3 KiB).
const MAX_PEM_BYTES: u64 = 64 * 1024;
/// Clock skew beyond this makes `exp`/`nbf` checks meaningless; refuse it at load.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Loads and validates the registry in `dir`. Missing `issuers/`, `clients/` or
/// `audiences/` subdirectories count as empty; a missing `dir` is an error.
pub fn load_registry(dir: &Path) -> Result<Registry, TrustError> {
    let mut errs = Errors::default();
    if !dir.is_dir() {
        return Err(TrustError::Many(vec![TrustError::File {
            file: dir.to_path_buf(),
            problem: "registry directory not found".to_owned(),
        }]));
    }

    let issuer_files = list_entries(&dir.join("issuers"), &mut errs);
    let client_files = list_entries(&dir.join("clients"), &mut errs);
    let audience_files = list_entries(&dir.join("audiences"), &mut errs);

    let issuers: Vec<IssuerEntry> = issuer_files
        .iter()
        .filter_map(|(id, path)| load_issuer(id, path, &mut errs))
        .collect();
    let audiences: Vec<AudienceEntry> = audience_files
        .iter()
        .filter_map(|(id, path)| load_audience(id, path, &mut errs))
        .collect();
    check_issuers(&issuers, &mut errs);
    check_audiences(&audiences, &mut errs);

    // Clients are checked against what did load; an issuer or audience with its own
    // errors is therefore also reported as unknown where clients name it, which is
    // noise but never hides a problem.
    let ctx = ClientRefs::new(&issuer_files, &audiences);
    let clients: Vec<ClientEntry> = client_files
        .iter()
        .filter_map(|(id, path)| load_client(id, path, &ctx, &mut errs))
        .collect();

    if errs.0.is_empty() {
        Ok(Registry::new(issuers, clients, audiences))
    } else {
        Err(TrustError::Many(errs.0))
    }
}

/// One line per entry for `tessera trust check`.
pub fn describe(registry: &Registry) -> Vec<String> {
    let mut lines = Vec::new();
    for i in registry.issuers.values() {
        let keys = match &i.keys {
            KeySource::Discovery(_) => "discovery",
            KeySource::JwksUri(_) => "jwks_uri",
            KeySource::JwksFile { .. } => "jwks_file",
        };
        let kind = match i.kind {
            IssuerKind::Oidc => "oidc",
        };
        let types: Vec<&str> = i.token_types.iter().map(|t| t.label()).collect();
        let algs: Vec<String> = i.algorithms.iter().map(|a| format!("{a:?}")).collect();
        let mut line = format!(
            "issuer    {}  {kind}  {}  keys={keys}  aud={}  types={}  algs={}",
            i.id,
            i.issuer,
            i.audiences.join(","),
            types.join(","),
            algs.join(",")
        );
        if i.mapping.has_condition() {
            line.push_str("  condition");
        }
        if i.demo_signing_key_file.is_some() {
            line.push_str("  DEMO (private key is public: never trust in production)");
        }
        lines.push(line);
    }
    for c in registry.clients.values() {
        let auth = match c.auth {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
        };
        let obo = match c.on_behalf_of {
            OnBehalfOf::Delegate => "delegate",
            OnBehalfOf::Impersonate => "impersonate",
        };
        let mut line = format!(
            "client    {}  {auth}  subject_issuers={}  audiences={}  scopes={}  {obo}",
            c.client_id,
            c.subject_issuers.join(","),
            c.audiences.join(","),
            c.scopes.join(",")
        );
        if !c.actor_issuers.is_empty() {
            line.push_str(&format!("  actor_issuers={}", c.actor_issuers.join(",")));
        }
        if let Some(max) = c.max_lifetime {
            line.push_str(&format!(
                "  max_lifetime={}",
                humantime::format_duration(max)
            ));
        }
        lines.push(line);
    }
    for a in registry.audiences.values() {
        let mut line = format!(
            "audience  {}  {}  scopes={}  claims={}",
            a.id,
            a.audience,
            a.scopes.join(","),
            a.claims.join(",")
        );
        if !a.resources.is_empty() {
            line.push_str(&format!("  resources={}", a.resources.join(",")));
        }
        if let Some(l) = a.lifetime {
            line.push_str(&format!("  lifetime={}", humantime::format_duration(l)));
        }
        lines.push(line);
    }
    lines
}

impl ClientEntry {
    /// Whether `presented` is this client's secret: its SHA-256 compared with
    /// `secret_sha256` in constant time. A single fast hash is enough because secrets
    /// are 256-bit random values (`tessera clients new-secret`), not passwords.
    pub fn secret_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.secret_sha256).into()
    }
}

// ---------------------------------------------------------------------------------------
// Collecting errors

#[derive(Default)]
struct Errors(Vec<TrustError>);

impl Errors {
    fn field(&mut self, file: &Path, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(TrustError::Field {
            file: file.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
        });
    }
    fn file(&mut self, file: &Path, problem: impl Into<String>) {
        self.0.push(TrustError::File {
            file: file.to_path_buf(),
            problem: problem.into(),
        });
    }
}

/// `(id, path)` of every `*.toml` file directly in `dir`, sorted by id.
fn list_entries(dir: &Path, errs: &mut Errors) -> Vec<(String, PathBuf)> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errs.file(dir, format!("cannot read directory: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errs.file(dir, format!("cannot read directory: {e}"));
                continue;
            }
        };
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") || !path.is_file() {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            errs.file(&path, "file name is not valid UTF-8");
            continue;
        };
        // Ids appear in metric labels, audit rows and log fields: keep them plain.
        if stem.is_empty()
            || !stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errs.file(
                &path,
                format!("entry id {stem:?} (the file name) may only use ASCII letters, digits, '-', '_' and '.'"),
            );
            continue;
        }
        out.push((stem.to_owned(), path));
    }
    out.sort();
    out
}

/// Reads a file with a size cap.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.len() > cap {
        return Err(format!(
            "{} is {} bytes, over the {cap}-byte limit",
            path.display(),
            meta.len()
        ));
    }
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads and parses one entry file into `T`; on failure records an error naming the
/// field serde or toml complained about.
fn parse_entry<T: for<'de> Deserialize<'de>>(path: &Path, errs: &mut Errors) -> Option<T> {
    let text = match read_capped(path, MAX_ENTRY_BYTES)
        .and_then(|b| String::from_utf8(b).map_err(|_| "file is not valid UTF-8".to_owned()))
    {
        Ok(t) => t,
        Err(problem) => {
            errs.file(path, problem);
            return None;
        }
    };
    match toml::from_str::<T>(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            let (field, problem) = describe_toml_error(&text, &e);
            match field {
                Some(field) => errs.field(path, field, problem),
                None => errs.file(path, problem),
            }
            None
        }
    }
}

/// Names the field a toml/serde error is about: the key in the message (`unknown field
/// `x``, `missing field `x``), else the key on the line the error points at, prefixed by
/// the enclosing `[table]`.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> (Option<String>, String) {
    let message = e.message().trim().to_owned();
    let line_no = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let table = e.span().and_then(|s| {
        text[..s.start.min(text.len())]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('[') && !l.starts_with("[["))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    });
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let with_table = |key: String| match &table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    };
    let problem = match line_no {
        Some(n) => format!("{message} (line {n})"),
        None => message.clone(),
    };
    if let Some(key) = quoted("unknown field `") {
        return (Some(with_table(key)), problem);
    }
    if let Some(key) = quoted("missing field `") {
        // A missing field is reported at the start of its table.
        return (Some(with_table(key)), problem);
    }
    let key = e.span().and_then(|s| {
        let start = text[..s.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = text[start..].lines().next().unwrap_or("");
        line.split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
    });
    (key.map(with_table), problem)
}

/// Durations are humantime strings ("60s", "15m"). They are read as any TOML value so
/// that a bare number (a common slip) gets a precise message and does not stop the rest
/// of the file from being checked.
fn parse_duration(
    path: &Path,
    field: &str,
    value: Option<&toml::Value>,
    errs: &mut Errors,
) -> Option<Duration> {
    let value = match value? {
        toml::Value::String(s) => s.as_str(),
        toml::Value::Integer(n) => {
            errs.field(
                path,
                field,
                format!("{n} has no unit: write it as a string, e.g. \"{n}s\""),
            );
            return None;
        }
        other => {
            errs.field(
                path,
                field,
                format!(
                    "a {} is not a duration: write it as a string, e.g. \"60s\"",
                    other.type_str()
                ),
            );
            return None;
        }
    };
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => {
            errs.field(path, field, "must be longer than zero");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errs.field(
                path,
                field,
                format!("{value:?} is not a duration ({e}); write e.g. \"60s\", \"15m\", \"12h\""),
            );
            None
        }
    }
}

/// An absolute `http(s)` URL without credentials or fragment.
fn parse_http_url(path: &Path, field: &str, value: &str, errs: &mut Errors) -> Option<url::Url> {
    match url::Url::parse(value) {
        Ok(u) if !matches!(u.scheme(), "https" | "http") => {
            errs.field(
                path,
                field,
                format!("{value:?} must be an http(s) URL, not {}:", u.scheme()),
            );
            None
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            errs.field(
                path,
                field,
                "must not carry credentials in the URL (they would end up in logs)",
            );
            None
        }
        Ok(u) if u.fragment().is_some() => {
            errs.field(path, field, format!("{value:?} must not have a #fragment"));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            errs.field(
                path,
                field,
                format!("{value:?} is not an absolute URL: {e}"),
            );
            None
        }
    }
}

fn check_nonempty_strings(path: &Path, field: &str, values: &[String], errs: &mut Errors) {
    for (i, v) in values.iter().enumerate() {
        if v.trim().is_empty() {
            errs.field(path, format!("{field}[{i}]"), "must not be empty");
        } else if v.trim() != v {
            errs.field(
                path,
                format!("{field}[{i}]"),
                format!("{v:?} has surrounding whitespace; values are compared exactly"),
            );
        }
    }
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn check_scopes(path: &Path, scopes: &[String], errs: &mut Errors) {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in scopes.iter().enumerate() {
        let valid = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            errs.field(
                path,
                format!("scopes[{i}]"),
                format!("{s:?} is not a valid scope token (RFC 6749 §3.3: printable ASCII, no space, '\"' or '\\')"),
            );
        } else if !seen.insert(s.as_str()) {
            errs.field(
                path,
                format!("scopes[{i}]"),
                format!("{s:?} is listed twice"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Issuers

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
    audiences: Vec<String>,
    token_types: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    clock_skew: Option<toml::Value>,
    max_age: Option<toml::Value>,
    one_time_use: Option<bool>,
    require_access_token_typ: Option<bool>,
    demo_signing_key_file: Option<String>,
    mapping: Option<RawMapping>,
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

fn load_issuer(id: &str, path: &Path, errs: &mut Errors) -> Option<IssuerEntry> {
    if id == LOCAL_ISSUER {
        errs.file(
            path,
            "\"local\" is reserved for tessera's own tokens; name this issuer differently",
        );
        return None;
    }
    // Kind first: its own message for kinds not implemented yet.
    let kind_only: KindOnly = parse_entry(path, errs)?;
    match kind_only.kind.as_ref().and_then(|k| k.as_str()) {
        Some("oidc") => {}
        Some(k @ ("saml" | "introspection")) => {
            errs.field(
                path,
                "kind",
                format!("\"{k}\" issuers are not supported yet; only \"oidc\" is implemented"),
            );
            return None;
        }
        Some(other) => {
            errs.field(
                path,
                "kind",
                format!("{other:?} is not an issuer kind (expected \"oidc\", \"saml\" or \"introspection\")"),
            );
            return None;
        }
        None if kind_only.kind.is_some() => {
            errs.field(path, "kind", "must be a string: \"oidc\"");
            return None;
        }
        None => {
            errs.field(path, "kind", "missing: set kind = \"oidc\"");
            return None;
        }
    }
    let raw: RawIssuer = parse_entry(path, errs)?;
    // `raw.kind` is "oidc" here: the pre-read above returned for everything else.
    let kind = IssuerKind::Oidc;
    let before = errs.0.len();

    // issuer: exact `iss`; compared byte for byte, so whitespace is a mistake.
    if raw.issuer.is_empty() {
        errs.field(path, "issuer", "must not be empty");
    } else if raw.issuer.trim() != raw.issuer {
        errs.field(
            path,
            "issuer",
            "has surrounding whitespace; `iss` is compared exactly",
        );
    }

    let keys = load_key_source(path, &raw, errs);

    if raw.audiences.is_empty() {
        errs.field(
            path,
            "audiences",
            "must name at least one audience the presented tokens are addressed to",
        );
    }
    check_nonempty_strings(path, "audiences", &raw.audiences, errs);

    let token_types = match &raw.token_types {
        None => vec![TokenType::IdToken, TokenType::AccessToken, TokenType::Jwt],
        Some(list) => {
            if list.is_empty() {
                errs.field(
                    path,
                    "token_types",
                    "must not be empty (omit it for the default: id_token, access_token, jwt)",
                );
            }
            let mut out = Vec::new();
            for (i, t) in list.iter().enumerate() {
                let field = format!("token_types[{i}]");
                match t.as_str() {
                    "id_token" => out.push(TokenType::IdToken),
                    "access_token" => out.push(TokenType::AccessToken),
                    "jwt" => out.push(TokenType::Jwt),
                    "saml2" => errs.field(path, field, "\"saml2\" is not a token type an oidc issuer can issue"),
                    other => errs.field(path, field, format!("{other:?} is not a token type (expected id_token, access_token or jwt)")),
                }
            }
            out
        }
    };

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

    let demo_signing_key_file = raw.demo_signing_key_file.as_deref().and_then(|rel| {
        let p = resolve_beside(path, rel);
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
    });

    let mapping = match raw.mapping {
        None => Some(Mapping::default_for_jwt()),
        Some(m) => match Mapping::compile_all(
            m.subject.as_deref(),
            &m.claims,
            m.condition.as_deref(),
            DEFAULT_JWT_SUBJECT,
        ) {
            Ok(mapping) => Some(mapping),
            Err(problems) => {
                for p in problems {
                    match p {
                        MappingError::Compile { field, message } => {
                            errs.field(path, field, message)
                        }
                        other => errs.field(path, "mapping", other.to_string()),
                    }
                }
                None
            }
        },
    };

    if errs.0.len() != before {
        return None;
    }
    Some(IssuerEntry {
        id: id.to_owned(),
        kind,
        issuer: raw.issuer,
        keys: keys?,
        audiences: raw.audiences,
        token_types,
        algorithms,
        clock_skew,
        max_age,
        // SPEC §2: one_time_use defaults to false for oidc (true only for saml).
        one_time_use: raw.one_time_use.unwrap_or(false),
        require_access_token_typ: raw.require_access_token_typ.unwrap_or(true),
        mapping: mapping?,
        demo_signing_key_file,
        source: path.to_path_buf(),
    })
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

fn resolve_beside(entry_file: &Path, rel: &str) -> PathBuf {
    entry_file
        .parent()
        .map_or_else(|| PathBuf::from(rel), |d| d.join(rel))
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
        return parse_http_url(path, "discovery_url", u, errs).map(KeySource::Discovery);
    }
    if let Some(u) = &raw.jwks_uri {
        return parse_http_url(path, "jwks_uri", u, errs).map(KeySource::JwksUri);
    }
    let rel = raw.jwks_file.as_deref()?;
    let file = resolve_beside(path, rel);
    match read_jwks_file(&file) {
        Ok(jwks) => Some(KeySource::JwksFile {
            path: file,
            jwks: Arc::new(jwks),
        }),
        Err(problem) => {
            errs.field(path, "jwks_file", problem);
            None
        }
    }
}

/// A JWKS file: a JSON object with a non-empty `keys` array of public JWKs.
fn read_jwks_file(file: &Path) -> Result<serde_json::Value, String> {
    let bytes = read_capped(file, MAX_JWKS_BYTES)?;
    let jwks: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| format!("{} has no \"keys\" array", file.display()))?;
    if keys.is_empty() {
        return Err(format!(
            "{} has an empty \"keys\" array: no token could verify",
            file.display()
        ));
    }
    for (i, k) in keys.iter().enumerate() {
        if k.get("kty").and_then(|v| v.as_str()).is_none() {
            return Err(format!("{}: keys[{i}] has no \"kty\"", file.display()));
        }
        // A JWKS file is public; a private member means a private key was put in the
        // wrong place (RFC 7518 §6.2.2 / §6.3.2 / RFC 8037 §2: `d`; `k` for oct keys).
        if ["d", "p", "q", "k"].iter().any(|m| k.get(m).is_some()) {
            return Err(format!(
                "{}: keys[{i}] contains private or symmetric key material; a JWKS file holds public keys only",
                file.display()
            ));
        }
    }
    Ok(jwks)
}

/// Cross-entry rule: two entries may share an `issuer` only if their kinds differ.
fn check_issuers(issuers: &[IssuerEntry], errs: &mut Errors) {
    let mut seen: HashMap<(&str, IssuerKind), &IssuerEntry> = HashMap::new();
    for i in issuers {
        if let Some(first) = seen.get(&(i.issuer.as_str(), i.kind)) {
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
            seen.insert((i.issuer.as_str(), i.kind), i);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Audiences

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    audience: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    lifetime: Option<toml::Value>,
    #[serde(default)]
    claims: Vec<String>,
}

fn load_audience(id: &str, path: &Path, errs: &mut Errors) -> Option<AudienceEntry> {
    let raw: RawAudience = parse_entry(path, errs)?;
    let before = errs.0.len();
    if raw.audience.is_empty() {
        errs.field(path, "audience", "must not be empty");
    } else if raw.audience.trim() != raw.audience {
        errs.field(
            path,
            "audience",
            "has surrounding whitespace; `aud` is compared exactly",
        );
    }
    for (i, r) in raw.resources.iter().enumerate() {
        // RFC 8707 §2: an absolute URI without a fragment.
        match url::Url::parse(r) {
            Ok(u) if u.fragment().is_some() => errs.field(
                path,
                format!("resources[{i}]"),
                format!("{r:?} must not have a #fragment (RFC 8707 §2)"),
            ),
            Ok(_) => {}
            Err(e) => errs.field(
                path,
                format!("resources[{i}]"),
                format!("{r:?} is not an absolute URI (RFC 8707 §2): {e}"),
            ),
        }
    }
    check_scopes(path, &raw.scopes, errs);
    check_nonempty_strings(path, "claims", &raw.claims, errs);
    let lifetime = parse_duration(path, "lifetime", raw.lifetime.as_ref(), errs);
    if errs.0.len() != before {
        return None;
    }
    Some(AudienceEntry {
        id: id.to_owned(),
        audience: raw.audience,
        resources: raw.resources,
        scopes: raw.scopes,
        lifetime,
        claims: raw.claims,
        source: path.to_path_buf(),
    })
}

/// Cross-entry rules: `audience` values and `resources` are unique, and an audience
/// value may not be another entry's id (an `audience` parameter must select one entry).
fn check_audiences(audiences: &[AudienceEntry], errs: &mut Errors) {
    let mut by_value: HashMap<&str, &AudienceEntry> = HashMap::new();
    let mut by_resource: HashMap<&str, &AudienceEntry> = HashMap::new();
    let ids: HashMap<&str, &AudienceEntry> = audiences.iter().map(|a| (a.id.as_str(), a)).collect();
    for a in audiences {
        if let Some(first) = by_value.get(a.audience.as_str()) {
            errs.field(
                &a.source,
                "audience",
                format!(
                    "{:?} is already the audience of {}",
                    a.audience,
                    first.source.display()
                ),
            );
        } else {
            by_value.insert(a.audience.as_str(), a);
        }
        if let Some(other) = ids.get(a.audience.as_str()) {
            if other.id != a.id {
                errs.field(
                    &a.source,
                    "audience",
                    format!(
                        "{:?} is also the id of {}; an audience name must select exactly one entry",
                        a.audience,
                        other.source.display()
                    ),
                );
            }
        }
        for (i, r) in a.resources.iter().enumerate() {
            if let Some(first) = by_resource.get(r.as_str()) {
                errs.field(
                    &a.source,
                    format!("resources[{i}]"),
                    format!("{r:?} is already a resource of {}", first.source.display()),
                );
            } else {
                by_resource.insert(r.as_str(), a);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clients

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    auth: String,
    secret_hash: Option<String>,
    secret_env: Option<String>,
    /// Accepted by the parser only to be refused with a clear message.
    secret: Option<toml::Value>,
    /// For `private_key_jwt` (not supported yet); accepted so the `auth` message wins.
    jwks_file: Option<String>,
    subject_issuers: Vec<String>,
    subject_audiences: Option<Vec<String>>,
    #[serde(default)]
    actor_issuers: Vec<String>,
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    on_behalf_of: Option<String>,
    max_lifetime: Option<toml::Value>,
}

/// What clients may refer to: issuer ids (every file found, so that a broken issuer is
/// reported once, for itself) and loaded audiences.
struct ClientRefs<'a> {
    issuer_ids: Vec<&'a str>,
    audiences: &'a [AudienceEntry],
}

impl<'a> ClientRefs<'a> {
    fn new(issuer_files: &'a [(String, PathBuf)], audiences: &'a [AudienceEntry]) -> Self {
        Self {
            issuer_ids: issuer_files.iter().map(|(id, _)| id.as_str()).collect(),
            audiences,
        }
    }
    fn audience(&self, name: &str) -> Option<&'a AudienceEntry> {
        // Same precedence as `Registry::audience_by_name`: the `aud` value, then the id.
        self.audiences
            .iter()
            .find(|a| a.audience == name)
            .or_else(|| self.audiences.iter().find(|a| a.id == name))
    }
}

fn load_client(
    id: &str,
    path: &Path,
    refs: &ClientRefs<'_>,
    errs: &mut Errors,
) -> Option<ClientEntry> {
    let raw: RawClient = parse_entry(path, errs)?;
    let before = errs.0.len();

    if raw.client_id != id {
        errs.field(
            path,
            "client_id",
            format!(
                "{:?} must equal the file name ({id:?}): the file name is the client's id",
                raw.client_id
            ),
        );
    }

    let auth = match raw.auth.as_str() {
        "client_secret_basic" => Some(ClientAuthMethod::ClientSecretBasic),
        "client_secret_post" => Some(ClientAuthMethod::ClientSecretPost),
        m @ ("private_key_jwt" | "tls_client_auth") => {
            errs.field(
                path,
                "auth",
                format!(
                    "\"{m}\" is not supported yet; use client_secret_basic or client_secret_post"
                ),
            );
            None
        }
        other => {
            errs.field(
                path,
                "auth",
                format!("{other:?} is not a client authentication method (expected client_secret_basic or client_secret_post)"),
            );
            None
        }
    };
    if raw.jwks_file.is_some() && auth.is_some() {
        errs.field(
            path,
            "jwks_file",
            "only used with auth = \"private_key_jwt\", which is not supported yet",
        );
    }

    let secret_sha256 = load_secret(path, &raw, errs);

    let check_issuer_refs = |field: &str, list: &[String], errs: &mut Errors| {
        for (i, name) in list.iter().enumerate() {
            if name != LOCAL_ISSUER && !refs.issuer_ids.contains(&name.as_str()) {
                errs.field(
                    path,
                    format!("{field}[{i}]"),
                    format!("{name:?} is not an issuer in issuers/ (nor \"local\", tessera's own tokens)"),
                );
            }
        }
    };
    if raw.subject_issuers.is_empty() {
        errs.field(
            path,
            "subject_issuers",
            "must name at least one issuer (an id from issuers/, or \"local\")",
        );
    }
    check_issuer_refs("subject_issuers", &raw.subject_issuers, errs);
    check_issuer_refs("actor_issuers", &raw.actor_issuers, errs);

    if let Some(list) = &raw.subject_audiences {
        if list.is_empty() {
            errs.field(
                path,
                "subject_audiences",
                "must not be empty (omit it to accept the issuers' audiences)",
            );
        }
        check_nonempty_strings(path, "subject_audiences", list, errs);
    }

    if raw.audiences.is_empty() {
        errs.field(
            path,
            "audiences",
            "must name at least one audience (an id from audiences/ or its audience value)",
        );
    }
    let mut audience_ids: Vec<String> = Vec::new();
    let mut offered_scopes: Vec<&str> = Vec::new();
    for (i, name) in raw.audiences.iter().enumerate() {
        match refs.audience(name) {
            Some(a) if audience_ids.contains(&a.id) => errs.field(
                path,
                format!("audiences[{i}]"),
                format!("{name:?} names audiences/{}.toml a second time", a.id),
            ),
            Some(a) => {
                audience_ids.push(a.id.clone());
                offered_scopes.extend(a.scopes.iter().map(String::as_str));
            }
            None => errs.field(
                path,
                format!("audiences[{i}]"),
                format!(
                    "{name:?} is not an audience in audiences/ (by id or by its audience value)"
                ),
            ),
        }
    }

    check_scopes(path, &raw.scopes, errs);
    // Scopes = requested ∩ client ∩ audience (SPEC §5): a client scope no audience of
    // this client offers can never be granted, which is a mistake worth reporting.
    if audience_ids.len() == raw.audiences.len() {
        for (i, s) in raw.scopes.iter().enumerate() {
            if !offered_scopes.contains(&s.as_str()) {
                errs.field(
                    path,
                    format!("scopes[{i}]"),
                    format!(
                        "{s:?} is not offered by any of this client's audiences ({})",
                        audience_ids.join(", ")
                    ),
                );
            }
        }
    }

    let on_behalf_of = match raw.on_behalf_of.as_deref() {
        None | Some("delegate") => OnBehalfOf::Delegate,
        Some("impersonate") => OnBehalfOf::Impersonate,
        Some(other) => {
            errs.field(
                path,
                "on_behalf_of",
                format!("{other:?} is not allowed (expected \"delegate\" or \"impersonate\")"),
            );
            OnBehalfOf::Delegate
        }
    };
    let max_lifetime = parse_duration(path, "max_lifetime", raw.max_lifetime.as_ref(), errs);

    if errs.0.len() != before {
        return None;
    }
    Some(ClientEntry {
        client_id: raw.client_id,
        auth: auth?,
        secret_sha256: secret_sha256?,
        subject_issuers: raw.subject_issuers,
        subject_audiences: raw.subject_audiences,
        actor_issuers: raw.actor_issuers,
        audiences: audience_ids,
        scopes: raw.scopes,
        on_behalf_of,
        max_lifetime,
        source: path.to_path_buf(),
    })
}

/// SPEC §2.1: exactly one of `secret_hash` (`sha256:` + 64 lowercase hex) or
/// `secret_env` (the plain secret in an environment variable, hashed here). A plain
/// `secret` in the file is refused: registry files are reviewed and committed.
fn load_secret(path: &Path, raw: &RawClient, errs: &mut Errors) -> Option<[u8; 32]> {
    if raw.secret.is_some() {
        errs.field(
            path,
            "secret",
            "plain secrets are not allowed in registry files: use secret_hash (see `tessera clients new-secret`) or secret_env",
        );
        return None;
    }
    match (&raw.secret_hash, &raw.secret_env) {
        (Some(_), Some(_)) => {
            errs.field(
                path,
                "secret_hash",
                "secret_hash and secret_env are both set: use exactly one",
            );
            None
        }
        (None, None) => {
            errs.field(
                path,
                "secret_hash",
                "missing: set secret_hash (see `tessera clients new-secret`) or secret_env",
            );
            None
        }
        (Some(h), None) => {
            let hex_part = h.strip_prefix("sha256:").filter(|x| {
                x.len() == 64
                    && x.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
            let decoded = hex_part.and_then(|x| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(x, &mut out).ok().map(|()| out)
            });
            if decoded.is_none() {
                errs.field(
                    path,
                    "secret_hash",
                    "must be \"sha256:\" followed by 64 lowercase hex digits (the SHA-256 of the secret)",
                );
            }
            decoded
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => Some(Sha256::digest(secret.as_bytes()).into()),
            Ok(_) => {
                errs.field(
                    path,
                    "secret_env",
                    format!("environment variable {var} is empty"),
                );
                None
            }
            Err(std::env::VarError::NotPresent) => {
                errs.field(
                    path,
                    "secret_env",
                    format!("environment variable {var} is not set"),
                );
                None
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                errs.field(
                    path,
                    "secret_env",
                    format!("environment variable {var} is not valid UTF-8"),
                );
                None
            }
        },
    }
}

#[cfg(test)]
mod tests;
