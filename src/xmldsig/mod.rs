//! XML-DSig as tessera accepts it (SPEC §4.1), for every signed XML it reads: SAML
//! assertions and Responses, and IdP metadata. What a `ds:Signature` names (algorithms,
//! transforms, its one Reference) is read and checked against the allow-list; then every
//! signature is verified here, on the same parsed tree that is canonicalised ([`c14n`]),
//! with keys parsed once from the configured certificates ([`PublicKey`]), and what the
//! signatures cover is returned. One parser sees the document: there is no second parser
//! (as libxml2 was beside roxmltree) whose different reading an attacker could exploit.
//!
//! A leaf module: no SAML and no registry; callers say which keys.

pub mod c14n;
mod key;

use roxmltree::Node;

pub use key::{KeyRejected, PublicKey, LEGACY_MIN_RSA_BITS, MIN_RSA_BITS};

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
pub const ALG_RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
pub const ALG_RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
pub const ALG_ECDSA_SHA1: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1";
pub const ALG_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const ALG_ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
pub const ALG_ECDSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";
pub const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const DIGEST_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
pub const DIGEST_SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
pub const C14N_EXCLUSIVE: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
pub const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
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
        // Each transform is work done before the signature is checked: the
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

/// Verifies **every** `ds:Signature` of `doc` with `keys` only (never `KeyInfo`) and
/// returns what was digested: the canonical form of the signed element after its
/// transforms, i.e. exactly the signed bytes (SPEC §4.1: only the signed element is read
/// afterwards). With nested signatures (a signed Response around a signed assertion) that
/// is the outermost, which holds the others. Each signature must be enveloped in the
/// element it signs, with one Reference to it (`#` + its `ID`, or `""` for the document
/// element): a signature over anything else is refused, so no ID lookup can be fooled.
/// CPU-bound: one RSA or ECDSA verification per signature, and one canonicalisation of the
/// signed element and of each `SignedInfo`.
pub fn verified_copy(
    doc: &xml::CheckedDoc<'_>,
    keys: &[&PublicKey],
    allow_sha1: bool,
) -> Result<String, DsigError> {
    if keys.is_empty() {
        // Nothing to verify with is never "verified"; loaders refuse such entries too.
        return Err(DsigError::Invalid);
    }
    let covered = doc
        .descendants()
        .filter(|n| xml::is(*n, NS_DSIG, "Signature"))
        .map(|sig| verify_signature(doc, sig, keys, allow_sha1))
        .collect::<Result<Vec<_>, _>>()?;
    outermost(covered)
}

/// XML-DSig §3.2 core validation of one enveloped signature: reference validation (the
/// digest of the canonical signed element without this signature), then signature
/// validation of the canonical `SignedInfo`. Returns the signed element and its bytes.
fn verify_signature<'a, 'i>(
    doc: &'a xml::CheckedDoc<'i>,
    sig: Node<'a, 'i>,
    keys: &[&PublicKey],
    allow_sha1: bool,
) -> Result<(Node<'a, 'i>, String), DsigError> {
    let signed = sig.parent_element().ok_or(DsigError::Shape(
        "a signature must be enveloped in the element it signs",
    ))?;
    let by_id = signed.attribute("ID").map(|id| format!("#{id}"));
    let is_document = signed == signed.document().root_element();
    let references: Vec<&str> = by_id
        .as_deref()
        .into_iter()
        .chain(is_document.then_some(""))
        .collect();
    let info = SignatureInfo::read(sig, &references)?;
    info.check_algorithms(allow_sha1)?;
    let shape = DsigError::Shape("SignedInfo is malformed");
    let signed_info = xml::children(sig, NS_DSIG, "SignedInfo")
        .next()
        .ok_or(shape.clone())?;
    let reference = xml::children(signed_info, NS_DSIG, "Reference")
        .next()
        .ok_or(shape.clone())?;

    let content = c14n::canonicalize(
        checked(doc, signed)?,
        Some(sig.id()),
        &reference_method(reference)?,
    )
    .map_err(c14n_refusal)?;
    let expected = base64_child(reference, "DigestValue")?;
    if digest(&info.digest, content.as_bytes())? != expected {
        return Err(DsigError::Invalid);
    }
    let method = xml::children(signed_info, NS_DSIG, "CanonicalizationMethod")
        .next()
        .ok_or(shape)?;
    let canonical_info =
        c14n::canonicalize(checked(doc, signed_info)?, None, &c14n_method(method)?)
            .map_err(c14n_refusal)?;
    let value = base64_child(sig, "SignatureValue")?;
    if !keys
        .iter()
        .any(|k| k.verifies(&info.method, canonical_info.as_bytes(), &value))
    {
        return Err(DsigError::Invalid);
    }
    Ok((signed, content))
}

/// The Reference's transforms: enveloped-signature, then optionally one canonicalisation;
/// without one, the node-set becomes octets by Canonical XML 1.0 (XML-DSig §4.4.3.2).
fn reference_method(reference: Node<'_, '_>) -> Result<c14n::Method, DsigError> {
    let transforms: Vec<_> = xml::children(reference, NS_DSIG, "Transforms")
        .flat_map(|t| xml::children(t, NS_DSIG, "Transform"))
        .collect();
    match transforms.as_slice() {
        [enveloped] if is_enveloped(*enveloped) => Ok(c14n::Method::Inclusive { v11: false }),
        [enveloped, c14n] if is_enveloped(*enveloped) => c14n_method(*c14n),
        _ => Err(DsigError::Shape(
            "the transforms must be enveloped-signature, then at most one canonicalisation",
        )),
    }
}

fn is_enveloped(transform: Node<'_, '_>) -> bool {
    transform.attribute("Algorithm") == Some(TRANSFORM_ENVELOPED)
}

/// The canonicalisation a `CanonicalizationMethod` or `Transform` names, with the
/// `InclusiveNamespaces PrefixList` of exclusive C14N (`#default` is the default
/// namespace).
fn c14n_method(node: Node<'_, '_>) -> Result<c14n::Method, DsigError> {
    match node.attribute("Algorithm").unwrap_or_default() {
        C14N_EXCLUSIVE => {
            let inclusive_prefixes = xml::children(node, C14N_EXCLUSIVE, "InclusiveNamespaces")
                .filter_map(|n| n.attribute("PrefixList"))
                .flat_map(str::split_ascii_whitespace)
                .map(|p| if p == "#default" { "" } else { p }.to_owned())
                .collect();
            Ok(c14n::Method::Exclusive { inclusive_prefixes })
        }
        C14N_10 => Ok(c14n::Method::Inclusive { v11: false }),
        C14N_11 => Ok(c14n::Method::Inclusive { v11: true }),
        other => Err(DsigError::Transform(algorithm_name(other))),
    }
}

/// `node`, found in `doc`, as a node of the checked document the canonicaliser takes.
fn checked<'a, 'i>(
    doc: &'a xml::CheckedDoc<'i>,
    node: Node<'a, 'i>,
) -> Result<xml::CheckedNode<'a, 'i>, DsigError> {
    doc.node(node)
        .ok_or(DsigError::Shape("a node outside the checked document"))
}

fn c14n_refusal(e: c14n::C14nError) -> DsigError {
    DsigError::Shape(match e {
        c14n::C14nError::XmlBase => "xml:base above a C14N 1.1 signed element",
        c14n::C14nError::Name => "a name could not be canonicalised",
        c14n::C14nError::RelativeNamespace => "a relative namespace URI cannot be canonicalised",
    })
}

fn digest(method: &str, data: &[u8]) -> Result<Vec<u8>, DsigError> {
    use openssl::hash::{hash, MessageDigest};
    let md = match method {
        DIGEST_SHA256 => MessageDigest::sha256(),
        DIGEST_SHA384 => MessageDigest::sha384(),
        DIGEST_SHA512 => MessageDigest::sha512(),
        DIGEST_SHA1 => MessageDigest::sha1(),
        other => return Err(DsigError::Algorithm(algorithm_name(other))),
    };
    hash(md, data)
        .map(|d| d.to_vec())
        .map_err(|_| DsigError::Invalid)
}

/// A `ds:` child's base64 text (`DigestValue`, `SignatureValue`); line breaks allowed.
fn base64_child(parent: Node<'_, '_>, name: &'static str) -> Result<Vec<u8>, DsigError> {
    use base64::Engine;
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut nodes = xml::children(parent, NS_DSIG, name);
    let (Some(node), None) = (nodes.next(), nodes.next()) else {
        return Err(DsigError::Shape(
            "a DigestValue or SignatureValue is missing or repeated",
        ));
    };
    let text: Vec<u8> = xml::full_text(node)
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT
        .decode(text)
        .map_err(|_| DsigError::Shape("a DigestValue or SignatureValue is not base64"))
}

/// Of the verified elements, the one that holds all the others.
fn outermost(mut covered: Vec<(Node<'_, '_>, String)>) -> Result<String, DsigError> {
    let at = covered
        .iter()
        .position(|(outer, _)| {
            covered
                .iter()
                .all(|(inner, _)| inner.ancestors().any(|a| a == *outer))
        })
        .ok_or(DsigError::Invalid)?;
    Ok(covered.swap_remove(at).1)
}

/// An algorithm URI's name for an error message: its fragment (`rsa-sha1` of
/// `…xmldsig#rsa-sha1`), sanitised so that a hostile value cannot inject into logs.
pub fn algorithm_name(uri: &str) -> String {
    sanitize_label(uri.rsplit(['#', '/']).next().unwrap_or(uri))
}
