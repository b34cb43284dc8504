//! SAML IdP metadata (SAML 2.0 metadata §2.4.3) and pinned PEM certificates: the only
//! places an IdP's signing keys come from (SPEC §4.1). Used by the loader for
//! `metadata_file` / `signing_cert_file` and by the verifier for `metadata_url`.
//!
//! Only the IdP role's signing keys are read: `KeyDescriptor` with `use="signing"` or no
//! `use`, inside the `IDPSSODescriptor` of the `EntityDescriptor` whose `entityID` is the
//! registered issuer. Other roles (WS-Fed `RoleDescriptor`s, whose certificates are
//! sometimes corrupt), contacts and extensions are never looked at.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::SigningCert;
use crate::xml::{self, NS_DSIG, NS_MD};
use crate::xmldsig::KeyRejected;

/// Largest metadata document accepted (Entra ID's is ~20 KiB; aggregates are larger, but
/// an entry names one IdP).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// More signing keys than any rollover needs; beyond it the document is refused.
const MAX_CERTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata is larger than {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    #[error("metadata: {0}")]
    Xml(#[from] xml::XmlError),
    #[error("no EntityDescriptor with entityID {0:?} (the registered issuer)")]
    NoEntity(String),
    #[error("EntityDescriptor {0:?} has no IDPSSODescriptor")]
    NoIdpRole(String),
    #[error("the IDPSSODescriptor has no signing certificate (KeyDescriptor use=\"signing\" or unset); configure signing_cert_file")]
    NoSigningCert,
    #[error("signing certificate #{index} {reason}")]
    BadCert {
        index: usize,
        #[source]
        reason: KeyRejected,
    },
    #[error("more than {MAX_CERTS} signing certificates")]
    TooManyCerts,
    #[error("validUntil is not a valid xs:dateTime")]
    BadValidUntil,
    #[error("the metadata's validUntil has passed")]
    Expired,
    #[error("metadata is not signed, but metadata_signing_cert_file says it must be")]
    Unsigned,
    #[error("metadata signature: {0}")]
    Signature(#[from] crate::xmldsig::DsigError),
}

/// Who must have signed the metadata (`metadata_signing_cert_file`), when anyone must.
#[derive(Debug, Clone, Copy)]
pub struct MetadataSigners<'a> {
    pub certs: &'a [SigningCert],
    pub allow_sha1: bool,
}

/// Metadata for `entity_id`, its signature checked first when `signers` is given
/// (SPEC §4.1): the keys are then read from what the signature covers.
pub fn read_idp_metadata(
    bytes: &[u8],
    entity_id: &str,
    signers: Option<MetadataSigners<'_>>,
    min_rsa_bits: u32,
) -> Result<IdpMetadata, MetadataError> {
    match signers {
        None => parse_idp_metadata(bytes, entity_id, min_rsa_bits),
        Some(signers) => {
            let verified = verified_metadata(bytes, signers)?;
            parse_idp_metadata(verified.as_bytes(), entity_id, min_rsa_bits)
        }
    }
}

/// The one signature a signed metadata document carries: an enveloped child of its root
/// (EntityDescriptor or EntitiesDescriptor), referencing the root by ID or as the whole
/// document, on the algorithm allow-list; verified with `signers` only.
fn verified_metadata(bytes: &[u8], signers: MetadataSigners<'_>) -> Result<String, MetadataError> {
    use crate::xmldsig::{verified_copy, DsigError, SignatureInfo};
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    let text = xml::CheckedXml::admit(bytes)?;
    let doc = text.parse()?;
    let root = doc.root_element();
    if !(xml::is(root, NS_MD, "EntityDescriptor") || xml::is(root, NS_MD, "EntitiesDescriptor")) {
        return Err(MetadataError::NoEntity(String::new()));
    }
    let signatures: Vec<_> = root
        .descendants()
        .filter(|n| xml::is(*n, NS_DSIG, "Signature"))
        .collect();
    let [sig] = signatures.as_slice() else {
        return Err(match signatures.len() {
            0 => MetadataError::Unsigned,
            _ => DsigError::Shape("signed metadata must carry exactly one signature").into(),
        });
    };
    if sig.parent_element() != Some(root) {
        return Err(DsigError::Shape("the metadata signature must be a child of its root").into());
    }
    let by_id = root.attribute("ID").map(|id| format!("#{id}"));
    let references: Vec<&str> = std::iter::once("").chain(by_id.as_deref()).collect();
    let info = SignatureInfo::read(*sig, &references)?;
    info.check_algorithms(signers.allow_sha1)?;
    info.check_exclusive()?;
    let keys: Vec<_> = signers.certs.iter().map(|c| &c.key).collect();
    Ok(verified_copy(&doc, &keys, signers.allow_sha1)?)
}

/// What tessera takes from IdP metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub certs: Vec<SigningCert>,
    /// `validUntil` of the entity (or of an enclosing `EntitiesDescriptor`), Unix seconds.
    pub valid_until: Option<i64>,
    /// `cacheDuration`, seconds.
    pub cache_duration: Option<i64>,
}

/// Parses metadata for the IdP `entity_id`.
pub fn parse_idp_metadata(
    bytes: &[u8],
    entity_id: &str,
    min_rsa_bits: u32,
) -> Result<IdpMetadata, MetadataError> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    let text = xml::CheckedXml::admit(bytes)?;
    let doc = text.parse()?;
    let entity = doc
        .descendants()
        .find(|n| {
            xml::is(*n, NS_MD, "EntityDescriptor") && n.attribute("entityID") == Some(entity_id)
        })
        .ok_or_else(|| MetadataError::NoEntity(entity_id.to_owned()))?;
    let idp = xml::children(entity, NS_MD, "IDPSSODescriptor")
        .next()
        .ok_or_else(|| MetadataError::NoIdpRole(entity_id.to_owned()))?;

    let mut certs = Vec::new();
    let signing = xml::children(idp, NS_MD, "KeyDescriptor")
        .filter(|k| matches!(k.attribute("use"), None | Some("signing")));
    for key in signing {
        let x509 = key
            .descendants()
            .filter(|n| xml::is(*n, NS_DSIG, "X509Certificate"));
        for cert in x509 {
            let index = certs.len();
            let cert = decode_cert_text(&xml::full_text(cert))
                .ok_or(KeyRejected::NotACertificate)
                .and_then(|der| signing_cert(der, min_rsa_bits))
                .map_err(|reason| MetadataError::BadCert { index, reason })?;
            if !certs.contains(&cert) {
                certs.push(cert);
            }
            if certs.len() > MAX_CERTS {
                return Err(MetadataError::TooManyCerts);
            }
        }
    }
    if certs.is_empty() {
        return Err(MetadataError::NoSigningCert);
    }

    // The tightest validUntil / cacheDuration on the way from the entity to the root.
    let mut valid_until: Option<i64> = None;
    let mut cache_duration: Option<i64> = None;
    for node in entity.ancestors().filter(roxmltree::Node::is_element) {
        if let Some(v) = node.attribute("validUntil") {
            let t = xml::parse_datetime(v).ok_or(MetadataError::BadValidUntil)?;
            valid_until = Some(valid_until.map_or(t, |u| u.min(t)));
        }
        if let Some(d) = node
            .attribute("cacheDuration")
            .and_then(xml::parse_duration)
        {
            cache_duration = Some(cache_duration.map_or(d, |c| c.min(d)));
        }
    }
    Ok(IdpMetadata {
        certs,
        valid_until,
        cache_duration,
    })
}

/// Base64 of a DER certificate, whitespace allowed. Some IdPs (and one vector) put the
/// base64 of a whole PEM text there: that is unwrapped once.
fn decode_cert_text(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    if bytes.starts_with(b"-----BEGIN") {
        let pem = openssl::x509::X509::from_pem(&bytes).ok()?;
        return pem.to_der().ok();
    }
    Some(bytes)
}

/// A DER certificate openssl can parse (negative serials and expired dates are fine:
/// metadata certificates are trusted as keys, SPEC §4.1), with an RSA key of at least
/// `min_rsa_bits` or an EC key on P-256, P-384 or P-521.
pub fn signing_cert(der: Vec<u8>, min_rsa_bits: u32) -> Result<SigningCert, KeyRejected> {
    let key = crate::xmldsig::PublicKey::from_certificate(&der, min_rsa_bits)?;
    let sha256 = hex::encode(Sha256::digest(&der));
    Ok(SigningCert { der, sha256, key })
}

/// Every certificate in a PEM file (several for a key rollover), each with a key as strong
/// as [`signing_cert`] requires.
pub fn parse_pem_certs(pem: &[u8], min_rsa_bits: u32) -> Result<Vec<SigningCert>, String> {
    let stack = openssl::x509::X509::stack_from_pem(pem)
        .map_err(|_| "is not a PEM certificate file".to_owned())?;
    if stack.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    let mut out = Vec::new();
    for (i, cert) in stack.iter().enumerate() {
        let der = cert
            .to_der()
            .map_err(|_| format!("certificate #{i} cannot be encoded"))?;
        let cert = signing_cert(der, min_rsa_bits).map_err(|e| format!("certificate #{i} {e}"))?;
        if !out.contains(&cert) {
            out.push(cert);
        }
    }
    if out.len() > MAX_CERTS {
        return Err(format!("holds more than {MAX_CERTS} certificates"));
    }
    Ok(out)
}
