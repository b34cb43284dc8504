//! `trust/audiences/<id>.toml`: parsing one audience entry, and the cross-audience rules
//! (unique `audience` values and `resources`).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{check_nonempty_strings, check_scopes, parse_duration, parse_entry, Errors};
use crate::trust::AudienceEntry;
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
    /// `ES256`, `RS256`, `PS256` or `EdDSA`: what tessera signs this audience's tokens
    /// with (resource servers that verify only RS256, say).
    signing_alg: Option<String>,
    /// Tokens for it only DPoP-bound (RFC 9449).
    #[serde(default)]
    require_dpop: bool,
    /// Refresh tokens may be issued for it: a family's absolute life.
    refresh_lifetime: Option<toml::Value>,
    /// The longest a family may go unused.
    refresh_idle: Option<toml::Value>,
}

pub(super) fn load_audience(id: &str, path: &Path, errs: &mut Errors) -> Option<AudienceEntry> {
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
    let signing_alg = raw.signing_alg.as_deref().and_then(|name| {
        let alg =
            crate::trust::JwsAlg::parse(name).filter(|a| crate::trust::JwsAlg::LOCAL.contains(a));
        if alg.is_none() {
            errs.field(
                path,
                "signing_alg",
                format!(
                    "{name:?} is not an algorithm tessera signs with: ES256, RS256, PS256 or EdDSA"
                ),
            );
        }
        alg
    });
    let refresh_lifetime = parse_duration(
        path,
        "refresh_lifetime",
        raw.refresh_lifetime.as_ref(),
        errs,
    );
    let refresh_idle = parse_duration(path, "refresh_idle", raw.refresh_idle.as_ref(), errs);
    for (field, d) in [
        ("refresh_lifetime", refresh_lifetime),
        ("refresh_idle", refresh_idle),
    ] {
        if d.is_some_and(|d| d < std::time::Duration::from_secs(1)) {
            errs.field(
                path,
                field,
                "must be at least 1s (families are timed in seconds)",
            );
        }
    }
    if refresh_idle.is_some() && raw.refresh_lifetime.is_none() {
        errs.field(
            path,
            "refresh_idle",
            "needs refresh_lifetime: without it the audience issues no refresh tokens",
        );
    }
    if errs.0.len() != before {
        return None;
    }
    Some(AudienceEntry {
        id: crate::trust::AudienceId::new(id),
        audience: crate::trust::Aud::new(raw.audience),
        resources: raw.resources,
        scopes: super::scope_set(&raw.scopes),
        lifetime,
        claims: raw.claims,
        signing_alg,
        require_dpop: raw.require_dpop,
        refresh: refresh_lifetime.map(|lifetime| crate::trust::RefreshPolicy {
            lifetime,
            idle: refresh_idle,
        }),
        source: path.to_path_buf(),
    })
}

/// Cross-entry rules: `audience` values and `resources` are unique, and an audience
/// value may not be another entry's id (an `audience` parameter must select one entry).
pub(super) fn check_audiences(audiences: &[AudienceEntry], errs: &mut Errors) {
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
