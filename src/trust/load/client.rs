//! `trust/clients/<client_id>.toml`: parsing one client entry and resolving what it
//! names (issuers, audiences) against the rest of the registry.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limits::ClientRate;
use sha2::{Digest, Sha256};

use super::{check_nonempty_strings, check_scopes, parse_duration, parse_entry, Errors};
use crate::trust::{
    AudienceEntry, ClientAuthMethod, ClientEntry, ClientId, IssuerId, KeySource, OnBehalfOf,
    LOCAL_ISSUER,
};
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: ClientId,
    auth: String,
    secret_hash: Option<String>,
    secret_env: Option<String>,
    /// Accepted by the parser only to be refused with a clear message.
    secret: Option<toml::Value>,
    /// For `private_key_jwt`: exactly one of these.
    jwks_file: Option<String>,
    jwks_uri: Option<String>,
    subject_issuers: Vec<IssuerId>,
    subject_audiences: Option<Vec<String>>,
    #[serde(default)]
    actor_issuers: Vec<IssuerId>,
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    on_behalf_of: Option<String>,
    max_lifetime: Option<toml::Value>,
    /// `"N/s"`, `"N/m"`, `"N/h"` or `"off"`; `limits.client_rate` when absent.
    rate_limit: Option<String>,
    /// May ask for refresh tokens (for audiences with `refresh_lifetime`).
    #[serde(default)]
    refresh_tokens: bool,
}

/// What clients may refer to: issuer ids (every file found, so that a broken issuer is
/// reported once, for itself) and loaded audiences.
pub(super) struct ClientRefs<'a> {
    issuer_ids: Vec<&'a str>,
    audiences: &'a [AudienceEntry],
}

impl<'a> ClientRefs<'a> {
    pub(super) fn new(
        issuer_files: &'a [(String, PathBuf)],
        audiences: &'a [AudienceEntry],
    ) -> Self {
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

pub(super) fn load_client(
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
    let auth = load_auth_method(path, &raw.auth, errs);
    let (secret_sha256, jwks) = load_credentials(path, &raw, auth, errs);
    check_issuer_refs(path, &raw, refs, errs);
    let audience_ids = load_audiences(path, &raw, refs, errs);
    let on_behalf_of = load_on_behalf_of(path, raw.on_behalf_of.as_deref(), errs);
    let max_lifetime = parse_duration(path, "max_lifetime", raw.max_lifetime.as_ref(), errs);
    let rate_limit = match raw.rate_limit.as_deref().map(ClientRate::parse) {
        None => ClientRate::Default,
        Some(Ok(rate)) => rate,
        Some(Err(e)) => {
            errs.field(path, "rate_limit", format!("{e}, or \"off\""));
            ClientRate::Default
        }
    };
    if errs.0.len() != before {
        return None;
    }
    Some(ClientEntry {
        client_id: raw.client_id,
        auth: auth?,
        secret_sha256: secret_sha256?,
        jwks,
        subject_issuers: raw.subject_issuers,
        subject_audiences: raw.subject_audiences,
        actor_issuers: raw.actor_issuers,
        audiences: audience_ids,
        scopes: super::scope_set(&raw.scopes),
        on_behalf_of,
        max_lifetime,
        rate_limit,
        refresh_tokens: raw.refresh_tokens,
        source: path.to_path_buf(),
    })
}

/// `auth`: one of the methods tessera implements (RFC 6749 §2.3, RFC 7523 §2.2).
fn load_auth_method(path: &Path, auth: &str, errs: &mut Errors) -> Option<ClientAuthMethod> {
    match auth {
        "client_secret_basic" => Some(ClientAuthMethod::ClientSecretBasic),
        "client_secret_post" => Some(ClientAuthMethod::ClientSecretPost),
        "private_key_jwt" => Some(ClientAuthMethod::PrivateKeyJwt),
        m @ "tls_client_auth" => {
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
                format!("{other:?} is not a client authentication method (expected client_secret_basic, client_secret_post or private_key_jwt)"),
            );
            None
        }
    }
}

/// What the client authenticates with: a secret's SHA-256 for the secret methods, keys
/// for `private_key_jwt`; key settings on a secret client are named as mistakes. The
/// outer `Option` is `None` after an error.
#[allow(clippy::option_option)]
fn load_credentials(
    path: &Path,
    raw: &RawClient,
    auth: Option<ClientAuthMethod>,
    errs: &mut Errors,
) -> (Option<Option<[u8; 32]>>, Option<KeySource>) {
    if auth == Some(ClientAuthMethod::PrivateKeyJwt) {
        return (Some(None), load_client_jwks(path, raw, errs));
    }
    for (field, set) in [
        ("jwks_file", raw.jwks_file.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
    ] {
        if set {
            errs.field(path, field, "only used with auth = \"private_key_jwt\"");
        }
    }
    (load_secret(path, raw, errs).map(Some), None)
}

/// `subject_issuers` (at least one), `actor_issuers` and `subject_audiences` name what
/// exists: issuer ids from issuers/ or `local`; non-empty audience values.
fn check_issuer_refs(path: &Path, raw: &RawClient, refs: &ClientRefs<'_>, errs: &mut Errors) {
    if raw.subject_issuers.is_empty() {
        errs.field(
            path,
            "subject_issuers",
            "must name at least one issuer (an id from issuers/, or \"local\")",
        );
    }
    for (field, list) in [
        ("subject_issuers", &raw.subject_issuers),
        ("actor_issuers", &raw.actor_issuers),
    ] {
        for (i, name) in list.iter().enumerate() {
            if name != LOCAL_ISSUER && !refs.issuer_ids.contains(&name.as_str()) {
                errs.field(
                    path,
                    format!("{field}[{i}]"),
                    format!("{name:?} is not an issuer in issuers/ (nor \"local\", tessera's own tokens)"),
                );
            }
        }
    }
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
}

/// `audiences` resolved to audience ids (each once), and `scopes` checked against what
/// those audiences offer. Returns the ids.
fn load_audiences(
    path: &Path,
    raw: &RawClient,
    refs: &ClientRefs<'_>,
    errs: &mut Errors,
) -> Vec<crate::trust::AudienceId> {
    if raw.audiences.is_empty() {
        errs.field(
            path,
            "audiences",
            "must name at least one audience (an id from audiences/ or its audience value)",
        );
    }
    let mut audience_ids: Vec<crate::trust::AudienceId> = Vec::new();
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
                offered_scopes.extend(a.scopes.iter().map(|s| s.as_str()));
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
                        audience_ids
                            .iter()
                            .map(crate::trust::AudienceId::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    audience_ids
}

/// `on_behalf_of`: `delegate` (the default: the client is recorded in `act`) or
/// `impersonate`.
fn load_on_behalf_of(path: &Path, value: Option<&str>, errs: &mut Errors) -> OnBehalfOf {
    match value {
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
    }
}

/// `private_key_jwt` (RFC 7523 §2.2): the client's public keys, from exactly one of
/// `jwks_file` (beside the entry) or `jwks_uri` (https); no secret may be set.
fn load_client_jwks(path: &Path, raw: &RawClient, errs: &mut Errors) -> Option<KeySource> {
    for (field, set) in [
        ("secret_hash", raw.secret_hash.is_some()),
        ("secret_env", raw.secret_env.is_some()),
    ] {
        if set {
            errs.field(
                path,
                field,
                "a private_key_jwt client has no secret: remove it",
            );
        }
    }
    match (&raw.jwks_file, &raw.jwks_uri) {
        (Some(_), Some(_)) => {
            errs.field(
                path,
                "jwks_uri",
                "jwks_file and jwks_uri are both set: use exactly one",
            );
            None
        }
        (None, None) => {
            errs.field(
                path,
                "jwks_file",
                "missing: a private_key_jwt client needs jwks_file or jwks_uri",
            );
            None
        }
        (None, Some(u)) => {
            super::parse_http_url(path, "jwks_uri", u, false, errs).map(KeySource::JwksUri)
        }
        (Some(rel), None) => super::load_jwks_file(path, rel, errs),
    }
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
