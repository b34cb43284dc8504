//! XML-DSig as tessera accepts it (SPEC §4.1), for every signed XML it reads: SAML
//! assertions and Responses, and IdP metadata. What a `ds:Signature` names (algorithms,
//! transforms, its one Reference) is read and checked against the allow-list; then every
//! signature is verified here, on the same parsed tree that is canonicalised ([`c14n`]),
//! with keys parsed once from the configured certificates ([`PublicKey`]), and what the
//! signatures cover is returned. One parser sees the document: there is no second parser
//! (as libxml2 was beside roxmltree) whose different reading an attacker could exploit.
//!
//! A leaf module: no SAML and no registry; callers say which keys.

mod algorithm;
pub mod c14n;
mod key;

use roxmltree::Node;

pub use algorithm::{AlgorithmUri, DigestMethod, Named, SignatureMethod, Transform};
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

/// The algorithms one `ds:Signature` names, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    pub method: Named<SignatureMethod>,
    pub digest: Named<DigestMethod>,
    pub canonicalization: Named<c14n::Method>,
    pub transforms: Vec<Named<Transform>>,
}

/// The nodes of a `ds:Signature` that verification reads besides its algorithms.
struct Parts<'a, 'i> {
    signed_info: Node<'a, 'i>,
    reference: Node<'a, 'i>,
}

impl SignatureInfo {
    /// Reads `sig`, which must have exactly one `Reference` whose `URI` is one of
    /// `references` (`#` + the signed element's ID, or `""` for a whole document).
    pub fn read(sig: Node<'_, '_>, references: &[&str]) -> Result<Self, DsigError> {
        Self::read_parts(sig, references).map(|(info, _)| info)
    }

    fn read_parts<'a, 'i>(
        sig: Node<'a, 'i>,
        references: &[&str],
    ) -> Result<(Self, Parts<'a, 'i>), DsigError> {
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
        let uri = |node: Option<Node<'a, 'i>>| -> Result<(&'a str, Node<'a, 'i>), DsigError> {
            node.and_then(|n| Some((n.attribute("Algorithm")?, n)))
                .ok_or(shape.clone())
        };
        // Exclusive C14N's parameter, a child of its CanonicalizationMethod or Transform.
        let prefix_list = |node: Node<'a, 'i>| {
            xml::children(node, C14N_EXCLUSIVE, "InclusiveNamespaces")
                .filter_map(|n| n.attribute("PrefixList"))
        };
        let (method, _) = uri(xml::children(signed_info, NS_DSIG, "SignatureMethod").next())?;
        let (c14n, c14n_node) =
            uri(xml::children(signed_info, NS_DSIG, "CanonicalizationMethod").next())?;
        let (digest, _) = uri(xml::children(reference, NS_DSIG, "DigestMethod").next())?;
        // XPath / XSLT transforms carry their programs as children; so does nothing we allow.
        let transforms = xml::children(reference, NS_DSIG, "Transforms")
            .flat_map(|t| xml::children(t, NS_DSIG, "Transform"))
            .map(|t| {
                let (uri, node) = uri(Some(t))?;
                Ok(algorithm::transform(uri, prefix_list(node)))
            })
            .collect::<Result<Vec<_>, DsigError>>()?;
        let info = Self {
            method: algorithm::signature_method(method),
            digest: algorithm::digest_method(digest),
            canonicalization: algorithm::canonicalization(c14n, prefix_list(c14n_node)),
            transforms,
        };
        Ok((
            info,
            Parts {
                signed_info,
                reference,
            },
        ))
    }

    /// SPEC §4.1 algorithm policy. SHA-1 only for issuers with `allow_sha1`.
    pub fn check_algorithms(&self, allow_sha1: bool) -> Result<(), DsigError> {
        let method = self.method.known_or(DsigError::Algorithm)?;
        let digest = self.digest.known_or(DsigError::Algorithm)?;
        if (method.is_sha1() || digest.is_sha1()) && !allow_sha1 {
            return Err(DsigError::Sha1);
        }
        self.canonicalization.known_or(DsigError::Transform)?;
        // Each transform is work done before the signature is checked: the
        // enveloped-signature transform and one canonicalisation are all a signer needs.
        if self.transforms.len() > 2 {
            return Err(DsigError::Shape(
                "at most two transforms (enveloped-signature and one canonicalisation)",
            ));
        }
        for t in &self.transforms {
            t.known_or(DsigError::Transform)?;
        }
        Ok(())
    }

    /// Exclusive canonicalisation only (no inclusive C14N anywhere): what large documents
    /// (metadata) must use, since inclusive C14N's cost grows with namespaces × elements.
    /// Applied after [`Self::check_algorithms`], which refuses unknown algorithms first.
    pub fn check_exclusive(&self) -> Result<(), DsigError> {
        let exclusive = |m: &c14n::Method| matches!(m, c14n::Method::Exclusive { .. });
        let c14n = Some(&self.canonicalization)
            .filter(|c| !matches!(c, Named::Known(m) if exclusive(m)))
            .map(Named::uri);
        let transform = self
            .transforms
            .iter()
            .find(|t| match t {
                Named::Known(Transform::Enveloped) => false,
                Named::Known(Transform::Canonicalize(m)) => !exclusive(m),
                Named::Unknown(_) => true,
            })
            .map(Named::uri);
        match c14n.or(transform) {
            Some(uri) => Err(DsigError::Transform(algorithm_name(uri))),
            None => Ok(()),
        }
    }

    /// What the Reference's transforms make of the signed element: the enveloped-signature
    /// transform, then optionally one canonicalisation; without one, the node-set becomes
    /// octets by Canonical XML 1.0 (XML-DSig §4.4.3.2).
    pub fn reference_c14n(&self) -> Result<c14n::Method, DsigError> {
        use Named::Known;
        match self.transforms.as_slice() {
            [Known(Transform::Enveloped)] => Ok(c14n::Method::Inclusive { v11: false }),
            [Known(Transform::Enveloped), Known(Transform::Canonicalize(method))] => {
                Ok(method.clone())
            }
            [Known(Transform::Enveloped), other] => {
                Err(DsigError::Transform(algorithm_name(other.uri())))
            }
            _ => Err(DsigError::Shape(
                "the transforms must be enveloped-signature, then at most one canonicalisation",
            )),
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
    let (info, parts) = SignatureInfo::read_parts(sig, &references)?;
    info.check_algorithms(allow_sha1)?;
    let method = *info.method.known_or(DsigError::Algorithm)?;
    let digest = info.digest.known_or(DsigError::Algorithm)?;
    let signed_info_c14n = info.canonicalization.known_or(DsigError::Transform)?;

    let content = c14n::canonicalize(
        checked(doc, signed)?,
        Some(sig.id()),
        &info.reference_c14n()?,
    )
    .map_err(c14n_refusal)?;
    let expected = base64_child(parts.reference, "DigestValue")?;
    let actual = openssl::hash::hash(digest.message_digest(), content.as_bytes())
        .map_err(|_| DsigError::Invalid)?;
    if *actual != *expected {
        return Err(DsigError::Invalid);
    }
    let canonical_info =
        c14n::canonicalize(checked(doc, parts.signed_info)?, None, signed_info_c14n)
            .map_err(c14n_refusal)?;
    let value = base64_child(sig, "SignatureValue")?;
    if !keys
        .iter()
        .any(|k| k.verifies(method, canonical_info.as_bytes(), &value))
    {
        return Err(DsigError::Invalid);
    }
    Ok((signed, content))
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

#[cfg(test)]
mod tests;
