//! `tessera dev saml-assertion`: a signed SAML 2.0 assertion (optionally in a Response) from
//! a demo SAML issuer's published key, shaped like a real IdP's: NameID, attributes,
//! AudienceRestriction, bearer SubjectConfirmation with Recipient, AuthnStatement,
//! enveloped RSA-SHA256 / exc-c14n signature (xmlsec through samael).
//!
//! This signs; it never verifies. tessera's verifier shares none of this code.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use samael::crypto::{Crypto, CryptoProvider};

use super::args::{SamlAssertionArgs, SamlSign};
use crate::clock::Clock;
use crate::trust::{IssuerEntry, IssuerKind};
use crate::verify::BrokerIdentity;
use crate::xml::{escape, format_datetime};

/// Mints `args.count` assertions (distinct IDs), each as base64url (RFC 8693's encoding
/// of a saml2 token) or, with `--xml`, as the XML itself.
pub fn mint_saml_assertions(
    dir: &Path,
    args: &SamlAssertionArgs,
    broker: &BrokerIdentity,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<String>> {
    let (issuer, pem) = super::demo_issuer(dir, &args.issuer)?;
    mint_saml_with(&issuer, &pem, args, broker, clock)
}

/// [`mint_saml_assertions`] for `issuer`, signed with the RSA private key `pem` (a demo
/// issuer's, or a `trust test` case's), issued at `clock.now()`.
pub fn mint_saml_with(
    issuer: &IssuerEntry,
    pem: &[u8],
    args: &SamlAssertionArgs,
    broker: &BrokerIdentity,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<String>> {
    if issuer.kind() != IssuerKind::Saml {
        bail!("issuer {:?} is not a saml issuer", issuer.id);
    }
    let key = openssl::pkey::PKey::private_key_from_pem(pem)
        .context("the signing key is not a PEM private key")?;
    if key.id() != openssl::pkey::Id::RSA {
        bail!("issuer {:?}: SAML signing keys here are RSA", issuer.id);
    }
    let der = key.private_key_to_der()?;
    let audiences = if args.audience.is_empty() {
        // What the broker accepts by default: the issuer's first audience, else its own
        // SAML entity id (SPEC §4).
        vec![issuer
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| broker.saml_entity_id.clone())]
    } else {
        args.audience.clone()
    };
    let facts = Facts {
        issuer: &issuer.issuer,
        audiences: &audiences,
        recipient: args.recipient.as_deref().unwrap_or(&broker.token_endpoint),
        now: clock.now(),
        lifetime: i64::try_from(args.lifetime.as_secs()).unwrap_or(i64::MAX),
    };
    (0..args.count.max(1))
        .map(|_| {
            let xml = facts.document(args, &der)?;
            Ok(if args.xml {
                xml
            } else {
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, xml)
            })
        })
        .collect()
}

struct Facts<'a> {
    issuer: &'a str,
    audiences: &'a [String],
    recipient: &'a str,
    now: i64,
    lifetime: i64,
}

impl Facts<'_> {
    /// One assertion, signed as `args.sign` says, wrapped when asked.
    fn document(&self, args: &SamlAssertionArgs, der: &[u8]) -> anyhow::Result<String> {
        let sign_assertion = matches!(args.sign, SamlSign::Assertion | SamlSign::Both);
        let sign_response = matches!(args.sign, SamlSign::Response | SamlSign::Both);
        let mut assertion = self.assertion(args, sign_assertion);
        if sign_assertion {
            assertion = strip_xml_decl(&sign(&assertion, der)?).to_owned();
        }
        if !(args.response || sign_response) {
            return Ok(assertion);
        }
        let response = self.response(&assertion, sign_response);
        if sign_response {
            return sign(&response, der);
        }
        Ok(response)
    }

    fn assertion(&self, args: &SamlAssertionArgs, signed: bool) -> String {
        let id = new_id();
        let iat = format_datetime(self.now);
        let exp = format_datetime(self.now.saturating_add(self.lifetime));
        let mut audiences = String::new();
        for a in self.audiences {
            let _ = write!(audiences, "<saml:Audience>{}</saml:Audience>", escape(a));
        }
        let one_time = if args.one_time_use {
            "<saml:OneTimeUse/>"
        } else {
            ""
        };
        format!(
            concat!(
                r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{iat}">"#,
                "<saml:Issuer>{issuer}</saml:Issuer>{signature}",
                r#"<saml:Subject><saml:NameID Format="{format}">{name_id}</saml:NameID>"#,
                r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">"#,
                r#"<saml:SubjectConfirmationData NotOnOrAfter="{exp}" Recipient="{recipient}"/>"#,
                "</saml:SubjectConfirmation></saml:Subject>",
                r#"<saml:Conditions NotBefore="{iat}" NotOnOrAfter="{exp}">"#,
                "<saml:AudienceRestriction>{audiences}</saml:AudienceRestriction>{one_time}",
                "</saml:Conditions>",
                r#"<saml:AuthnStatement AuthnInstant="{iat}" SessionIndex="{session}">"#,
                "<saml:AuthnContext><saml:AuthnContextClassRef>",
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>",
                "{attributes}</saml:Assertion>"
            ),
            id = id,
            iat = iat,
            exp = exp,
            audiences = audiences,
            one_time = one_time,
            issuer = escape(self.issuer),
            signature = if signed {
                signature_template(&id)
            } else {
                String::new()
            },
            format = escape(&args.name_id_format),
            name_id = escape(&args.name_id),
            recipient = escape(self.recipient),
            session = new_id(),
            attributes = attribute_statement(&args.attributes),
        )
    }

    fn response(&self, assertion: &str, signed: bool) -> String {
        let id = new_id();
        format!(
            concat!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{iat}" Destination="{destination}">"#,
                "<saml:Issuer>{issuer}</saml:Issuer>{signature}",
                r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#,
                "{assertion}</samlp:Response>"
            ),
            id = id,
            assertion = assertion,
            iat = format_datetime(self.now),
            destination = escape(self.recipient),
            issuer = escape(self.issuer),
            signature = if signed {
                signature_template(&id)
            } else {
                String::new()
            },
        )
    }
}

/// `name=value` pairs as one AttributeStatement; a repeated name gets several values.
fn attribute_statement(attributes: &[(String, String)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in attributes {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return String::new();
    }
    let mut out = String::from("<saml:AttributeStatement>");
    for name in names {
        let _ = write!(out, r#"<saml:Attribute Name="{}">"#, escape(name));
        for (_, value) in attributes.iter().filter(|(n, _)| n == name) {
            let _ = write!(
                out,
                "<saml:AttributeValue>{}</saml:AttributeValue>",
                escape(value)
            );
        }
        out.push_str("</saml:Attribute>");
    }
    out.push_str("</saml:AttributeStatement>");
    out
}

/// An xsd:ID (an NCName: it must not start with a digit).
fn new_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

/// An enveloped-signature template for the element with `id`: RSA-SHA256, SHA-256,
/// exclusive c14n, no KeyInfo (the verifier takes keys only from the registry).
fn signature_template(id: &str) -> String {
    format!(
        concat!(
            r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
            r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>"#,
            r##"<ds:Reference URI="#{id}"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
            r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>"#,
            "<ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>"
        ),
        id = id
    )
}

/// Fills the first signature template of `xml` (xmlsec, with `ID` attributes registered).
fn sign(xml: &str, der: &[u8]) -> anyhow::Result<String> {
    Crypto::sign_xml(xml, der).map_err(|e| anyhow::anyhow!("signing the demo assertion: {e}"))
}

fn strip_xml_decl(xml: &str) -> &str {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(xml, |(_, r)| r.trim_start()),
        None => xml,
    }
}
