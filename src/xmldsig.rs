//! XML-DSig as tessera accepts it (SPEC §4.1), for every signed XML it reads: SAML
//! assertions and Responses, and IdP metadata. What a `ds:Signature` names (algorithms,
//! transforms, its one Reference) is read and checked against the allow-list before xmlsec
//! sees the document; then xmlsec (through samael) verifies every signature with the given
//! certificates only and returns what they cover.
//!
//! A leaf module: no SAML and no registry; callers say which certificates and references.

use roxmltree::Node;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};

use crate::telemetry::sanitize_label;
use crate::xml::{self, NS_DSIG};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsigError {
    #[error("signature is not acceptable: {0}")]
    Shape(&'static str),
    #[error("signature algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("SHA-1 signatures and digests are not allowed (allow_sha1)")]
    Sha1,
    #[error("signature transform {0} is not allowed")]
    Transform(String),
    #[error("signature does not verify with the configured certificates")]
    Invalid,
}

pub const ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ALG_RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const ALG_RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const ALG_ECDSA_SHA1: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1";
const ALG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const ALG_ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
const ALG_ECDSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";
pub const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const DIGEST_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const DIGEST_SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
pub const C14N_EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
pub const TRANSFORM_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

const SIGNATURE_METHODS: &[&str] = &[
    ALG_RSA_SHA256,
    ALG_RSA_SHA384,
    ALG_RSA_SHA512,
    ALG_ECDSA_SHA256,
    ALG_ECDSA_SHA384,
    ALG_ECDSA_SHA512,
];
const SHA1_SIGNATURE_METHODS: &[&str] = &[ALG_RSA_SHA1, ALG_ECDSA_SHA1];
const DIGEST_METHODS: &[&str] = &[DIGEST_SHA256, DIGEST_SHA384, DIGEST_SHA512];
/// Canonicalisation without comments only (SPEC §4.1): exclusive, inclusive 1.0 and 1.1.
const CANONICALISATIONS: &[&str] = &[C14N_EXCLUSIVE, C14N_10, C14N_11];

/// The algorithms one `ds:Signature` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    pub method: String,
    pub digest: String,
    pub canonicalization: String,
    pub transforms: Vec<String>,
}

impl SignatureInfo {
    /// Reads `sig`, which must have exactly one `Reference` whose `URI` is one of
    /// `references` (`#` + the signed element's ID, or `""` for a whole document).
    pub fn read(sig: Node<'_, '_>, references: &[&str]) -> Result<Self, DsigError> {
        let shape = DsigError::Shape("SignedInfo is malformed");
        let signed_info = xml::only_child(sig, NS_DSIG, "SignedInfo")
            .ok()
            .flatten()
            .ok_or(shape.clone())?;
        let mut refs = xml::children(signed_info, NS_DSIG, "Reference");
        let reference = refs.next().ok_or(shape.clone())?;
        if refs.next().is_some() {
            return Err(DsigError::Shape(
                "a signature must have exactly one Reference",
            ));
        }
        if !reference
            .attribute("URI")
            .is_some_and(|uri| references.contains(&uri))
        {
            return Err(DsigError::Shape(
                "the Reference URI must be # + the ID of the element the signature sits in",
            ));
        }
        let algorithm = |node: Option<Node<'_, '_>>| -> Result<String, DsigError> {
            node.and_then(|n| n.attribute("Algorithm"))
                .map(str::to_owned)
                .ok_or(shape.clone())
        };
        let method = algorithm(xml::children(signed_info, NS_DSIG, "SignatureMethod").next())?;
        let canonicalization =
            algorithm(xml::children(signed_info, NS_DSIG, "CanonicalizationMethod").next())?;
        let digest = algorithm(xml::children(reference, NS_DSIG, "DigestMethod").next())?;
        // XPath / XSLT transforms carry their programs as children; so does nothing we allow.
        let transforms = xml::children(reference, NS_DSIG, "Transforms")
            .flat_map(|t| xml::children(t, NS_DSIG, "Transform"))
            .map(|t| algorithm(Some(t)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            method,
            digest,
            canonicalization,
            transforms,
        })
    }

    /// SPEC §4.1 algorithm policy. SHA-1 only for issuers with `allow_sha1`.
    pub fn check_algorithms(&self, allow_sha1: bool) -> Result<(), DsigError> {
        let sha1 = self.method.as_str() == ALG_RSA_SHA1
            || self.method.as_str() == ALG_ECDSA_SHA1
            || self.digest.as_str() == DIGEST_SHA1;
        let method_ok = SIGNATURE_METHODS.contains(&self.method.as_str())
            || SHA1_SIGNATURE_METHODS.contains(&self.method.as_str());
        if !method_ok {
            return Err(DsigError::Algorithm(algorithm_name(&self.method)));
        }
        if !(DIGEST_METHODS.contains(&self.digest.as_str()) || self.digest == DIGEST_SHA1) {
            return Err(DsigError::Algorithm(algorithm_name(&self.digest)));
        }
        if sha1 && !allow_sha1 {
            return Err(DsigError::Sha1);
        }
        if !CANONICALISATIONS.contains(&self.canonicalization.as_str()) {
            return Err(DsigError::Transform(algorithm_name(&self.canonicalization)));
        }
        // Each transform is work xmlsec does before the signature is checked: the
        // enveloped-signature transform and one canonicalisation are all a signer needs.
        if self.transforms.len() > 2 {
            return Err(DsigError::Shape(
                "at most two transforms (enveloped-signature and one canonicalisation)",
            ));
        }
        for t in &self.transforms {
            if t != TRANSFORM_ENVELOPED && !CANONICALISATIONS.contains(&t.as_str()) {
                return Err(DsigError::Transform(algorithm_name(t)));
            }
        }
        Ok(())
    }

    /// Exclusive canonicalisation only (no inclusive C14N anywhere): what large documents
    /// (metadata) must use, since inclusive C14N's cost grows with namespaces × elements.
    pub fn check_exclusive(&self) -> Result<(), DsigError> {
        let inclusive = std::iter::once(&self.canonicalization)
            .chain(&self.transforms)
            .find(|t| t.as_str() != C14N_EXCLUSIVE && t.as_str() != TRANSFORM_ENVELOPED);
        match inclusive {
            Some(t) => Err(DsigError::Transform(algorithm_name(t))),
            None => Ok(()),
        }
    }
}

/// The samael allow-list when SHA-1 is off: defence in depth behind
/// [`SignatureInfo::check_algorithms`], which also covers SHA-1 when allowed.
const SAMAEL_ALLOWED: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// xmlsec verifies every `ds:Signature` of `xml_text` against `certs` (DER; never
/// `KeyInfo`) and returns what was digested: the canonical form of the signed element
/// after its transforms, i.e. exactly the signed bytes (SPEC §4.1: only the signed
/// element is read afterwards). With a signed Response around a signed assertion that is
/// the Response (which holds the assertion). samael's other modes rebuild a pruned
/// document instead: 2.7× the CPU, and their matcher recurses once per sibling.
/// Blocking and CPU-bound.
pub fn verified_copy(
    xml_text: &str,
    certs: &[impl AsRef<[u8]>],
    allow_sha1: bool,
) -> Result<String, DsigError> {
    if certs.is_empty() {
        // samael would skip verification; loaders refuse such entries, and so do we.
        return Err(DsigError::Invalid);
    }
    let ders: Vec<CertificateDer> = certs
        .iter()
        .map(|c| CertificateDer::from(c.as_ref().to_vec()))
        .collect();
    let allowed = (!allow_sha1).then_some(SAMAEL_ALLOWED);
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml_text,
        &ders,
        ReduceMode::PreDigest,
        allowed,
    )
    .map_err(|_| DsigError::Invalid)
}

/// An algorithm URI's name for an error message: its fragment (`rsa-sha1` of
/// `…xmldsig#rsa-sha1`), sanitised so that a hostile value cannot inject into logs.
pub fn algorithm_name(uri: &str) -> String {
    sanitize_label(uri.rsplit(['#', '/']).next().unwrap_or(uri))
}
