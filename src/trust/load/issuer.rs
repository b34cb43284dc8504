//! `trust/issuers/<id>.toml`: parsing one issuer entry, and the cross-issuer rule (one
//! entry per `iss` and kind).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{
    check_nonempty_strings, parse_duration, parse_entry, parse_http_url, read_capped, Errors,
    DEFAULT_CLOCK_SKEW, MAX_CLOCK_SKEW, MAX_JWKS_BYTES, MAX_PEM_BYTES,
};
use crate::trust::mapping::{Mapping, MappingError, DEFAULT_JWT_SUBJECT};
use crate::trust::{IssuerEntry, IssuerKind, JwsAlg, KeySource, TokenType, LOCAL_ISSUER};
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

pub(super) fn load_issuer(id: &str, path: &Path, errs: &mut Errors) -> Option<IssuerEntry> {
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

    if raw.one_time_use == Some(true) {
        // Accepting the flag without a replay cache would promise single use and deliver
        // replayable tokens.
        errs.field(
            path,
            "one_time_use",
            "single-use JWTs need the replay cache, which this version does not have yet: \
             remove the line or set it to false",
        );
    }
    let token_types = match &raw.token_types {
        // SPEC §2's default for oidc. `jwt` (the bearer grant, and the loosest typ and
        // audience rules) is opt-in: an ID token refused as `id_token` must not pass
        // because the caller declared it a plain `jwt`.
        None => vec![TokenType::IdToken, TokenType::AccessToken],
        Some(list) => {
            if list.is_empty() {
                errs.field(
                    path,
                    "token_types",
                    "must not be empty (omit it for the default: id_token, access_token)",
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
        one_time_use: false,
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
pub(super) fn check_issuers(issuers: &[IssuerEntry], errs: &mut Errors) {
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
