//! The SAML part of `trust/issuers/<id>.toml`: where the IdP's signing certificates come
//! from (exactly one of `metadata_file`, `metadata_url`, `signing_cert_file`), accepted
//! recipients, and SHA-1 opt-in. An entry that would leave the verifier without a
//! certificate is refused here (an IdP with no key could only be "verified" by skipping
//! verification, which is what samael's own SAML reader does).

use std::path::Path;
use std::sync::Arc;

use super::{check_nonempty_strings, parse_http_url, read_capped, resolve_beside, Errors};
use crate::trust::metadata::{
    parse_pem_certs, read_idp_metadata, MetadataSigners, MAX_METADATA_BYTES,
};
use crate::trust::{PinnedFile, SamlKeySource, SamlSettings, SigningCert};

/// The SAML-only part of an issuer entry, for [`load_saml`].
pub(super) struct SamlFields<'a> {
    pub issuer: &'a str,
    pub metadata_file: Option<&'a str>,
    pub metadata_url: Option<&'a str>,
    pub signing_cert_file: Option<&'a str>,
    pub metadata_signing_cert_file: Option<&'a str>,
    pub recipients: &'a [String],
    pub allow_sha1: bool,
    pub min_rsa_bits: u32,
}

pub(super) fn load_saml(
    path: &Path,
    raw: &SamlFields<'_>,
    errs: &mut Errors,
) -> Option<SamlSettings> {
    let before = errs.0.len();
    let keys = load_keys(path, raw, errs);
    for (i, r) in raw.recipients.iter().enumerate() {
        if url::Url::parse(r).is_err() {
            errs.field(
                path,
                format!("recipients[{i}]"),
                format!(
                    "{r:?} is not an absolute URL (Recipient and Destination are compared exactly)"
                ),
            );
        }
    }
    check_nonempty_strings(path, "recipients", raw.recipients, errs);
    if errs.0.len() != before {
        return None;
    }
    Some(SamlSettings {
        keys: keys?,
        recipients: raw.recipients.to_vec(),
        allow_sha1: raw.allow_sha1,
        min_rsa_bits: raw.min_rsa_bits,
    })
}

/// `metadata_signing_cert_file`: the certificates the metadata must be signed with (Ok(None)
/// when unset; None after recording an error).
#[allow(clippy::option_option)]
fn load_metadata_signers(
    path: &Path,
    raw: &SamlFields<'_>,
    errs: &mut Errors,
) -> Option<Option<Arc<Vec<SigningCert>>>> {
    let Some(rel) = raw.metadata_signing_cert_file else {
        return Some(None);
    };
    let field = "metadata_signing_cert_file";
    if raw.signing_cert_file.is_some() {
        errs.field(
            path,
            field,
            "there is no metadata to check: it applies to metadata_file or metadata_url",
        );
        return None;
    }
    let file = resolve_beside(path, rel);
    let cap = u64::try_from(MAX_METADATA_BYTES).unwrap_or(u64::MAX);
    match read_capped(&file, cap).and_then(|b| {
        parse_pem_certs(&b, raw.min_rsa_bits).map_err(|e| format!("{} {e}", file.display()))
    }) {
        Ok(certs) => Some(Some(Arc::new(certs))),
        Err(problem) => {
            errs.field(path, field, problem);
            None
        }
    }
}

fn load_keys(path: &Path, raw: &SamlFields<'_>, errs: &mut Errors) -> Option<SamlKeySource> {
    let set: Vec<&str> = [
        ("metadata_file", raw.metadata_file.is_some()),
        ("metadata_url", raw.metadata_url.is_some()),
        ("signing_cert_file", raw.signing_cert_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    if set.len() != 1 {
        let problem = if set.is_empty() {
            "no key material: set exactly one of metadata_file, metadata_url, signing_cert_file \
             (keys never come from the assertion's KeyInfo)"
                .to_owned()
        } else {
            format!(
                "{} are all set: exactly one of metadata_file, metadata_url, signing_cert_file is allowed",
                set.join(" and ")
            )
        };
        errs.field(
            path,
            set.first().copied().unwrap_or("metadata_file"),
            problem,
        );
        return None;
    }
    let signers = load_metadata_signers(path, raw, errs)?;
    let policy = signers.as_ref().map(|certs| MetadataSigners {
        certs: certs.as_slice(),
        allow_sha1: raw.allow_sha1,
    });
    if let Some(u) = raw.metadata_url {
        return parse_http_url(path, "metadata_url", u, signers.is_some(), errs)
            .map(|url| SamlKeySource::MetadataUrl { url, signers });
    }
    let (from, rel) = match (raw.metadata_file, raw.signing_cert_file) {
        (Some(rel), _) => (PinnedFile::Metadata, rel),
        (None, Some(rel)) => (PinnedFile::SigningCert, rel),
        (None, None) => return None,
    };
    let field = from.field();
    let file = resolve_beside(path, rel);
    let cap = u64::try_from(MAX_METADATA_BYTES).unwrap_or(u64::MAX);
    let certs = read_capped(&file, cap).and_then(|bytes| {
        if from == PinnedFile::Metadata {
            read_idp_metadata(&bytes, raw.issuer, policy, raw.min_rsa_bits)
                .map(|m| m.certs)
                .map_err(|e| format!("{}: {e}", file.display()))
        } else {
            parse_pem_certs(&bytes, raw.min_rsa_bits).map_err(|e| format!("{} {e}", file.display()))
        }
    });
    match certs {
        Ok(certs) => Some(SamlKeySource::Pinned {
            path: file,
            certs: Arc::new(certs),
            from,
        }),
        Err(problem) => {
            errs.field(path, field, problem);
            None
        }
    }
}
