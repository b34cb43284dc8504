//! Before any signature is checked: decode the presented text, refuse DOCTYPE, parse it
//! strictly, and read the document's *shape* — what it is, who it claims to be from (which
//! only selects the registry entry), and what its signatures look like.
//!
//! Nothing read here is trusted. The signature rules of SPEC §4.1 are enforced on the
//! shape (each `ds:Signature` an enveloped child of the Response or Assertion it signs,
//! with exactly one `Reference` to `#` + that element's `ID`; unique IDs; only the allowed
//! algorithms and transforms) before any signature is verified.

use std::collections::HashSet;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use roxmltree::Node;

use crate::verify::error::SamlError;
use crate::xml::{self, CheckedXml, NS_DSIG, NS_SAML, NS_SAMLP};
use crate::xmldsig::SignatureInfo;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const B64URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const B64STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// SPEC §4.1: base64url per RFC 8693; standard base64 (padded or not, line breaks
/// allowed) is accepted too, since SAML stacks send it. Mixed alphabets are refused. The
/// bytes then pass the XML ground rules ([`CheckedXml::admit`]) before any parser sees them.
pub fn decode(text: &str) -> Result<CheckedXml, SamlError> {
    // Line breaks are allowed (standard base64 as SAML stacks send it); most tokens have
    // none, and then the text is decoded as it is.
    let compact: std::borrow::Cow<'_, [u8]> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        text.bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into()
    } else {
        text.as_bytes().into()
    };
    let url = memchr::memchr2(b'-', b'_', &compact).is_some();
    let std = memchr::memchr2(b'+', b'/', &compact).is_some();
    let bytes = match (url, std) {
        (true, true) => return Err(SamlError::NotBase64),
        (true, false) => B64URL.decode(&compact),
        (false, _) => B64STD.decode(&compact),
    }
    .map_err(|_| SamlError::NotBase64)?;
    Ok(CheckedXml::admit(&bytes)?)
}

/// What an (unverified) `samlp:Response` says about itself: refusal-only checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub status_success: bool,
    pub signed: bool,
}

/// The shape of a presented document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// `Some` when the root is a `samlp:Response`.
    pub response: Option<ResponseInfo>,
    /// The assertion is an `EncryptedAssertion`.
    pub encrypted: bool,
    /// The Issuer that selects the registry entry: the assertion's, or for an encrypted
    /// assertion the Response's.
    pub issuer: Option<String>,
    pub signatures: Vec<SignatureInfo>,
}

/// Parses `xml` and reads its shape, enforcing the structural rules.
pub fn inspect(xml: &CheckedXml) -> Result<Shape, SamlError> {
    let doc = xml.parse()?;
    inspect_doc(&doc)
}

fn inspect_doc(doc: &roxmltree::Document<'_>) -> Result<Shape, SamlError> {
    let root = doc.root_element();
    check_unique_ids(root)?;
    let signatures = check_signatures(root)?;
    if xml::is(root, NS_SAML, "Assertion") {
        // An assertion inside an assertion (Advice) is where wrapping attacks hide: one
        // assertion per presented token.
        let nested = root
            .descendants()
            .filter(|n| {
                xml::is(*n, NS_SAML, "Assertion") || xml::is(*n, NS_SAML, "EncryptedAssertion")
            })
            .count();
        if nested != 1 {
            return Err(SamlError::AssertionCount(nested));
        }
        return Ok(Shape {
            response: None,
            encrypted: false,
            issuer: issuer_of(root)?,
            signatures,
        });
    }
    if !xml::is(root, NS_SAMLP, "Response") {
        return Err(SamlError::NotSaml);
    }
    let response = response_info(root)?;
    let plain: Vec<_> = xml::children(root, NS_SAML, "Assertion").collect();
    let encrypted: Vec<_> = xml::children(root, NS_SAML, "EncryptedAssertion").collect();
    // SPEC §4.1: a Response holds exactly one assertion (a second one, signed or not, is
    // where wrapping attacks hide).
    let count = plain.len() + encrypted.len();
    if count != 1 {
        return Err(SamlError::AssertionCount(count));
    }
    // Nowhere else either: an Assertion nested inside another element of the Response
    // (Extensions, an attribute value) is refused rather than ignored.
    let anywhere = root
        .descendants()
        .filter(|n| xml::is(*n, NS_SAML, "Assertion") || xml::is(*n, NS_SAML, "EncryptedAssertion"))
        .count();
    if anywhere != 1 {
        return Err(SamlError::AssertionCount(anywhere));
    }
    let (issuer, encrypted) = match plain.first() {
        Some(a) => (issuer_of(*a)?, false),
        None => (response.issuer.clone(), true),
    };
    Ok(Shape {
        response: Some(response),
        encrypted,
        issuer,
        signatures,
    })
}

/// The shape rules for a decrypted assertion in its wrapper ([`super::decrypt::Opened`]):
/// the wrapper holds the assertion and nothing else, which holds no other assertion; IDs
/// unique; the signature rules of a presented document. Returns its signatures.
pub fn inspect_decrypted(doc: &roxmltree::Document<'_>) -> Result<Vec<SignatureInfo>, SamlError> {
    let root = doc.root_element();
    decrypted_assertion(root)?;
    check_unique_ids(root)?;
    check_signatures(root)
}

/// The assertion inside the wrapper `root` of a decrypted document.
pub fn decrypted_assertion<'a, 'i>(root: Node<'a, 'i>) -> Result<Node<'a, 'i>, SamlError> {
    if !super::decrypt::is_wrapper(root) {
        return Err(SamlError::NotSaml);
    }
    let mut elements = root.children().filter(Node::is_element);
    let (Some(assertion), None) = (elements.next(), elements.next()) else {
        return Err(SamlError::AssertionCount(
            root.children().filter(Node::is_element).count(),
        ));
    };
    let stray_text = root
        .children()
        .any(|n| n.is_text() && n.text().is_some_and(|t| !t.trim().is_empty()));
    if !xml::is(assertion, NS_SAML, "Assertion") || stray_text {
        return Err(SamlError::NotSaml);
    }
    let nested = assertion
        .descendants()
        .filter(|n| xml::is(*n, NS_SAML, "Assertion") || xml::is(*n, NS_SAML, "EncryptedAssertion"))
        .count();
    if nested != 1 {
        return Err(SamlError::AssertionCount(nested));
    }
    Ok(assertion)
}

/// Status, Destination, Issuer and whether it carries its own signature.
pub fn response_info(response: Node<'_, '_>) -> Result<ResponseInfo, SamlError> {
    if response.attribute("Version") != Some("2.0") {
        return Err(SamlError::NotSaml);
    }
    let status_success = xml::children(response, NS_SAMLP, "Status")
        .flat_map(|s| xml::children(s, NS_SAMLP, "StatusCode"))
        .next()
        .and_then(|c| c.attribute("Value"))
        == Some("urn:oasis:names:tc:SAML:2.0:status:Success");
    Ok(ResponseInfo {
        issuer: issuer_of(response)?,
        destination: response.attribute("Destination").map(str::to_owned),
        status_success,
        signed: xml::children(response, NS_DSIG, "Signature")
            .next()
            .is_some(),
    })
}

/// The `saml:Issuer` child's full text, trimmed (SPEC §4.1). More than one is malformed.
pub fn issuer_of(node: Node<'_, '_>) -> Result<Option<String>, SamlError> {
    match xml::only_child(node, NS_SAML, "Issuer") {
        Ok(Some(issuer)) => Ok(Some(xml::simple_text(issuer, "Issuer")?.trim().to_owned())),
        Ok(None) => Ok(None),
        Err(_) => Err(SamlError::Malformed("Issuer (more than one)")),
    }
}

/// SPEC §4.1: "the element's ID must be unique in the document" (`ID` for SAML, `Id` for
/// XML Encryption). A signature must reference its own parent ([`crate::xmldsig`]), so no
/// ID lookup decides what is verified; unique IDs keep every reader agreeing on which
/// element an ID names. IDs that are not xsd:IDs (bare UUIDs starting with a digit, as
/// Secureworks sends) are accepted: nothing here needs an ID table.
fn check_unique_ids(root: Node<'_, '_>) -> Result<(), SamlError> {
    let mut seen = HashSet::new();
    for node in root.descendants().filter(Node::is_element) {
        let ids = node
            .attributes()
            .filter(|a| a.namespace().is_none() && matches!(a.name(), "ID" | "Id"));
        for attr in ids {
            if attr.value().is_empty() {
                return Err(SamlError::Malformed("ID (empty)"));
            }
            if !seen.insert(attr.value()) {
                return Err(SamlError::DuplicateId);
            }
        }
    }
    Ok(())
}

/// Every `ds:Signature` anywhere in the document: an enveloped child of a Response or an
/// Assertion, one `Reference` to `#` + its parent's `ID`, algorithms named.
fn check_signatures(root: Node<'_, '_>) -> Result<Vec<SignatureInfo>, SamlError> {
    let mut out = Vec::new();
    for sig in root
        .descendants()
        .filter(|n| xml::is(*n, NS_DSIG, "Signature"))
    {
        let parent = sig
            .parent_element()
            .filter(|p| xml::is(*p, NS_SAMLP, "Response") || xml::is(*p, NS_SAML, "Assertion"))
            .ok_or(SamlError::SignatureShape(
                "a signature must be an enveloped child of the Response or Assertion it signs",
            ))?;
        let id = parent
            .attribute("ID")
            .ok_or(SamlError::SignatureShape("the signed element has no ID"))?;
        if xml::children(parent, NS_DSIG, "Signature").count() != 1 {
            return Err(SamlError::SignatureShape(
                "an element carries more than one signature",
            ));
        }
        out.push(SignatureInfo::read(sig, &[&format!("#{id}")])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_base64_alphabets_decode_and_mixed_is_refused() {
        let xml = "<a>??>>~~</a>";
        let std = base64::engine::general_purpose::STANDARD.encode(xml);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(xml);
        assert!(std.contains('/') || std.contains('+'));
        assert_eq!(decode(&std).unwrap().as_str(), xml);
        assert_eq!(decode(&url).unwrap().as_str(), xml);
        let wrapped: String = std
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().to_owned() + "\r\n")
            .collect();
        assert_eq!(decode(&wrapped).unwrap().as_str(), xml);
        assert_eq!(decode("ab-+"), Err(SamlError::NotBase64));
        assert_eq!(decode("%%%"), Err(SamlError::NotBase64));
    }

    #[test]
    fn doctype_is_refused_while_decoding() {
        let evil = "<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>";
        let b64 = base64::engine::general_purpose::STANDARD.encode(evil);
        assert_eq!(decode(&b64), Err(SamlError::Xml(xml::XmlError::Doctype)));
    }
}
