//! Reads a registry directory (`trust/{issuers,clients,audiences}/*.toml`) into a
//! [`Registry`], or reports every problem found.
//!
//! The rule: a registry is accepted whole or not at all. Every file is parsed (serde,
//! `deny_unknown_fields`), turned into domain types, and cross-checked (references,
//! uniqueness); all problems are collected into [`TrustError::Many`], each naming the
//! file and the field and saying what is wrong, so `tessera trust check` shows a
//! reviewer the complete list in one run. Other directories (`examples/`) and files
//! that do not end in `.toml` are ignored.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use self::audience::{check_audiences, load_audience};
use self::client::{load_client, ClientRefs};
use self::issuer::{check_issuers, load_issuer};
use super::{
    AudienceEntry, ClientEntry, IssuerEntry, IssuerId, IssuerKind, KeySource, KindSettings,
    Registry, SamlKeySource,
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
/// `audiences/` subdirectories count as empty; a missing `dir` is an error. Without the
/// checks that need the broker's own identity: the server and `trust check` use
/// [`load_registry_for`].
pub fn load_registry(dir: &Path) -> Result<Registry, TrustError> {
    load_registry_for(dir, None)
}

/// [`load_registry`] for the broker whose `server.issuer` is `own_issuer`: an oidc entry
/// naming that issuer is refused (tessera's own tokens are verified as local tokens, with
/// scope narrowing and revocation; a foreign-issuer entry for them would bypass both).
pub fn load_registry_for(dir: &Path, own_issuer: Option<&str>) -> Result<Registry, TrustError> {
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
    if let Some(own) = own_issuer {
        refuse_own_issuer(&issuers, own, &mut errs);
    }
    check_audiences(&audiences, &mut errs);

    // Clients are checked against every issuer *file* (a broken issuer is reported once,
    // for itself) but against the audiences that loaded: a client naming a broken
    // audience also reports it as unknown, which is noise but never hides a problem.
    let ctx = ClientRefs::new(&issuer_files, &audiences);
    let clients: Vec<ClientEntry> = client_files
        .iter()
        .filter_map(|(id, path)| load_client(id, path, &ctx, &mut errs))
        .collect();

    let mut issuers = issuers;
    if let Some(own) = own_issuer {
        issuers.push(local_issuer(own, &audiences));
    }
    if errs.0.is_empty() {
        Ok(Registry::new(issuers, clients, audiences))
    } else {
        Err(TrustError::Many(errs.0))
    }
}

/// One line per entry for `tessera trust check`, in the registry's own words: its field
/// names and values as a registry file writes them (`auth = "client_secret_basic"`,
/// `token_types = ["id_token"]`, `algorithms = ["RS256"]`), never internal names.
pub fn describe(registry: &Registry) -> Vec<String> {
    let issuers = registry.issuers.values().map(|i| describe_issuer(i));
    let clients = registry.clients.values().map(|c| describe_client(c));
    let audiences = registry.audiences.values().map(|a| describe_audience(a));
    issuers.chain(clients).chain(audiences).collect()
}

/// `name=a,b` for a list of registry words.
fn list<'a>(name: &str, items: impl IntoIterator<Item = &'a str>) -> String {
    format!("{name}={}", items.into_iter().collect::<Vec<_>>().join(","))
}

/// The name of a file an entry names (what the registry wrote, resolved beside it).
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn describe_issuer(i: &IssuerEntry) -> String {
    // A saml entry without audiences accepts assertions addressed to saml.entity_id.
    let audiences = match (i.audiences.is_empty(), i.kind()) {
        (true, IssuerKind::Saml) => "audiences=(saml.entity_id)".to_owned(),
        _ => list("audiences", i.audiences.iter().map(String::as_str)),
    };
    let mut parts = vec![
        "issuer  ".to_owned(),
        i.id.to_string(),
        i.kind().label().to_owned(),
        i.issuer.clone(),
    ];
    parts.extend(issuer_specifics(i));
    parts.push(audiences);
    parts.push(list("token_types", i.token_types.iter().map(|t| t.label())));
    if i.clock_skew != DEFAULT_CLOCK_SKEW {
        parts.push(format!("clock_skew={}", duration(i.clock_skew)));
    }
    if let Some(max_age) = i.max_age {
        parts.push(format!("max_age={}", duration(max_age)));
    }
    if i.one_time_use {
        parts.push("one_time_use=true".to_owned());
    }
    let claims: Vec<&str> = i.mapping.claim_names().collect();
    if !claims.is_empty() {
        parts.push(list("mapping.claims", claims));
    }
    if i.mapping.has_condition() {
        parts.push("mapping.condition".to_owned());
    }
    if i.demo_signing_key_file.is_some() {
        parts.push("DEMO (private key is public: never trust in production)".to_owned());
    }
    parts.join("  ")
}

/// Where an issuer's keys come from, and the settings of its kind, as `field=value`.
fn issuer_specifics(i: &IssuerEntry) -> Vec<String> {
    match &i.settings {
        KindSettings::Oidc(o) => {
            let mut parts = vec![
                match &o.keys {
                    KeySource::Discovery(url) => format!("discovery_url={url}"),
                    KeySource::JwksUri(url) => format!("jwks_uri={url}"),
                    KeySource::JwksFile { path, .. } => format!("jwks_file={}", file_name(path)),
                    // The `local` entry has no file: tessera's own published keys.
                    KeySource::Local => "keys=tessera".to_owned(),
                },
                list("algorithms", o.algorithms.iter().map(|a| a.name())),
            ];
            if !o.require_access_token_typ {
                parts.push("require_access_token_typ=false".to_owned());
            }
            parts
        }
        KindSettings::Saml(s) => {
            let mut parts = match &s.keys {
                SamlKeySource::Pinned { path, certs, from } => vec![
                    format!("{}={}", from.field(), file_name(path)),
                    format!("certs={}", certs.len()),
                ],
                SamlKeySource::MetadataUrl { url, signers } => {
                    let mut parts = vec![format!("metadata_url={url}")];
                    if let Some(signers) = signers {
                        parts.push(format!("metadata_signing_certs={}", signers.len()));
                    }
                    parts
                }
            };
            if !s.recipients.is_empty() {
                parts.push(list("recipients", s.recipients.iter().map(String::as_str)));
            }
            if s.allow_sha1 {
                parts.push("allow_sha1=true".to_owned());
            }
            if s.min_rsa_bits < crate::xmldsig::MIN_RSA_BITS {
                parts.push("allow_rsa_1024=true".to_owned());
            }
            parts
        }
        KindSettings::Introspection(s) => vec![
            format!("introspection_endpoint={}", s.endpoint),
            format!("client_id={}", s.client_id),
            format!("introspection_auth={}", s.auth.as_str()),
            format!("cache_ttl={}", duration(s.cache_ttl)),
        ],
    }
}

fn describe_client(c: &ClientEntry) -> String {
    let mut parts = vec![
        "client  ".to_owned(),
        c.client_id.to_string(),
        c.auth.as_str().to_owned(),
    ];
    match &c.jwks {
        Some(KeySource::JwksFile { path, .. }) => {
            parts.push(format!("jwks_file={}", file_name(path)));
        }
        Some(KeySource::JwksUri(url)) => parts.push(format!("jwks_uri={url}")),
        Some(KeySource::Discovery(url)) => parts.push(format!("discovery_url={url}")),
        Some(KeySource::Local) | None => {}
    }
    parts.push(list(
        "subject_issuers",
        c.subject_issuers.iter().map(IssuerId::as_str),
    ));
    if let Some(auds) = &c.subject_audiences {
        parts.push(list("subject_audiences", auds.iter().map(String::as_str)));
    }
    if !c.actor_issuers.is_empty() {
        parts.push(list(
            "actor_issuers",
            c.actor_issuers.iter().map(IssuerId::as_str),
        ));
    }
    parts.push(list(
        "audiences",
        c.audiences.iter().map(super::AudienceId::as_str),
    ));
    parts.push(list("scopes", c.scopes.iter().map(|s| s.as_str())));
    parts.push(format!("on_behalf_of={}", c.on_behalf_of.as_str()));
    if let Some(max) = c.max_lifetime {
        parts.push(format!("max_lifetime={}", duration(max)));
    }
    if c.refresh_tokens {
        parts.push("refresh_tokens=true".to_owned());
    }
    parts.join("  ")
}

fn describe_audience(a: &AudienceEntry) -> String {
    let mut parts = vec![
        "audience".to_owned(),
        a.id.to_string(),
        a.audience.to_string(),
        list("scopes", a.scopes.iter().map(|s| s.as_str())),
        list("claims", a.claims.iter().map(String::as_str)),
    ];
    if !a.resources.is_empty() {
        parts.push(list("resources", a.resources.iter().map(String::as_str)));
    }
    if let Some(l) = a.lifetime {
        parts.push(format!("lifetime={}", duration(l)));
    }
    if let Some(alg) = a.signing_alg {
        parts.push(format!("signing_alg={}", alg.name()));
    }
    if a.require_dpop {
        parts.push("require_dpop=true".to_owned());
    }
    if let Some(r) = a.refresh {
        parts.push(format!("refresh_lifetime={}", duration(r.lifetime)));
        if let Some(idle) = r.idle {
            parts.push(format!("refresh_idle={}", duration(idle)));
        }
    }
    parts.join("  ")
}

impl ClientEntry {
    /// Whether `presented` is this client's secret: its SHA-256 compared with
    /// `secret_sha256` in constant time. A single fast hash is enough because secrets
    /// are 256-bit random values (`tessera clients new-secret`), not passwords.
    pub fn secret_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // A client without a secret costs the same hash and compare, and never matches.
        let expected = self.secret_sha256.unwrap_or([0x5a; 32]);
        let same: bool = digest.ct_eq(&expected).into();
        same && self.secret_sha256.is_some()
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
pub(crate) fn describe_toml_error(text: &str, e: &toml::de::Error) -> (Option<String>, String) {
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
/// A registry URL tessera fetches keys from. Keys over plain `http` could be swapped by
/// anyone on the path, so `http` is refused except to a loopback host (a sidecar, tests)
/// or when `signed_content` says the document carries its own verified signature.
/// The `local` entry (SPEC §2, §4 "Local tokens"): tessera's own access tokens, verified
/// with its published keys. Addressed to any audience tessera issues for (every token it
/// issued is); a client narrows that with `subject_audiences`. The mapping keeps the
/// subject and every claim some audience may see, so a re-audienced token carries what
/// the next audience allows of them.
fn local_issuer(own: &str, audiences: &[AudienceEntry]) -> IssuerEntry {
    let mut claims = std::collections::BTreeMap::new();
    for name in audiences.iter().flat_map(|a| a.claims.iter()) {
        let quoted = serde_json::to_string(name).unwrap_or_default();
        claims.insert(name.clone(), format!("assertion[{quoted}]"));
    }
    let mapping = crate::trust::Mapping::compile_all(
        None,
        &claims,
        None,
        crate::trust::mapping::AssertionKind::Claims,
    )
    .unwrap_or_else(|_| crate::trust::Mapping::default_for_jwt());
    IssuerEntry {
        id: IssuerId::new(crate::trust::LOCAL_ISSUER),
        issuer: own.to_owned(),
        audiences: audiences.iter().map(|a| a.audience.to_string()).collect(),
        token_types: vec![
            crate::trust::TokenType::AccessToken,
            crate::trust::TokenType::Jwt,
        ],
        clock_skew: DEFAULT_CLOCK_SKEW,
        max_age: None,
        one_time_use: false,
        settings: KindSettings::Oidc(crate::trust::OidcSettings {
            keys: KeySource::Local,
            algorithms: crate::trust::JwsAlg::LOCAL.to_vec(),
            require_access_token_typ: true,
        }),
        mapping,
        demo_signing_key_file: None,
        source: PathBuf::from("(tessera's own tokens)"),
    }
}

fn refuse_own_issuer(issuers: &[IssuerEntry], own: &str, errs: &mut Errors) {
    let bare = |s: &str| s.trim_end_matches('/').to_owned();
    // Every kind: a SAML or introspection entry claiming tessera's issuer would have its
    // tokens' act links attributed to tessera.
    for i in issuers {
        if bare(&i.issuer) == bare(own) {
            errs.field(
                &i.source,
                "issuer",
                format!(
                    "{:?} is tessera's own server.issuer: its tokens are local tokens (scopes only narrowed, revocation honoured) and must not be trusted as a foreign {} issuer",
                    i.issuer,
                    i.kind().label()
                ),
            );
        }
    }
}

fn parse_http_url(
    path: &Path,
    field: &str,
    value: &str,
    signed_content: bool,
    errs: &mut Errors,
) -> Option<url::Url> {
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "http" && !loopback(&u) && !signed_content => {
            errs.field(
                path,
                field,
                format!(
                    "{value:?} must be https: keys fetched over plain http can be replaced by anyone on the path (http is accepted for loopback hosts only)"
                ),
            );
            None
        }
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
/// The valid scope tokens of a `scopes` list, once each ([`check_scopes`] has reported
/// the others, so the entry is refused anyway).
fn scope_set(scopes: &[String]) -> super::ScopeSet {
    scopes
        .iter()
        .filter_map(|s| super::Scope::parse(s).ok())
        .collect()
}

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

mod audience;
mod client;
mod issuer;
mod saml;

/// `rel`, a path an entry names, resolved beside the entry's file.
fn resolve_beside(entry_file: &Path, rel: &str) -> PathBuf {
    entry_file
        .parent()
        .map_or_else(|| PathBuf::from(rel), |d| d.join(rel))
}

/// `jwks_file` (an issuer's keys, or a `private_key_jwt` client's): read beside the entry.
fn load_jwks_file(path: &Path, rel: &str, errs: &mut Errors) -> Option<KeySource> {
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

#[cfg(test)]
mod tests;
