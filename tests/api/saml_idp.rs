//! A test SAML IdP that signs with an implementation other than ours: the `xmlsec1`
//! command-line tool (installed by `scripts/setup-system`). Assertions are built as text
//! with the knobs the tests turn, then signed enveloped (RSA-SHA256, exc-c14n) by xmlsec1.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
pub const SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
pub const IDP: &str = "https://idp.corp.example/saml";

/// A key pair and self-signed certificate on disk (xmlsec1 reads files).
pub struct SigningKey {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub cert_pem: String,
}

impl SigningKey {
    pub fn generate(dir: &Path, name: &str) -> Self {
        Self::generate_rsa(dir, name, 2048)
    }

    /// An RSA key of `bits` (weak ones for the key-strength tests).
    pub fn generate_rsa(dir: &Path, name: &str, bits: u32) -> Self {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let pkey = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
        let mut subject = x509::X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", name).unwrap();
        let subject = subject.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&subject).unwrap();
        b.set_issuer_name(&subject).unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.sign(&pkey, MessageDigest::sha256()).unwrap();
        let cert_pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
        let key = dir.join(format!("{name}.key.pem"));
        let cert = dir.join(format!("{name}.pem"));
        std::fs::write(&key, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(&cert, &cert_pem).unwrap();
        Self {
            key,
            cert,
            cert_pem,
        }
    }
}

/// RFC 3339 / xs:dateTime in UTC.
pub fn xs_time(unix: i64) -> String {
    tessera::xml::format_datetime(unix)
}

/// What goes into an assertion.
#[derive(Clone)]
pub struct Assertion {
    pub id: String,
    pub issuer: String,
    /// Raw XML text of the NameID content (so a test can inject a comment).
    pub name_id_xml: String,
    pub audiences: Vec<String>,
    pub recipient: Option<String>,
    pub now: i64,
    pub lifetime: i64,
    pub not_before: Option<i64>,
    pub one_time_use: bool,
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Assertion {
    pub fn new(now: i64) -> Self {
        Self {
            id: format!("_a{}", uuid::Uuid::new_v4().simple()),
            issuer: IDP.into(),
            name_id_xml: "alice@corp.example".into(),
            audiences: vec![crate::helpers::ISSUER.into()],
            recipient: Some(format!("{}/token", crate::helpers::ISSUER)),
            now,
            lifetime: 300,
            not_before: None,
            one_time_use: false,
            attributes: vec![
                ("email".into(), vec!["alice@corp.example".into()]),
                ("groups".into(), vec!["buyers".into(), "staff".into()]),
            ],
        }
    }

    /// The unsigned XML, with a signature template (or none when `template` is false).
    pub fn xml(&self, template: bool) -> String {
        let exp = xs_time(self.now + self.lifetime);
        let iat = xs_time(self.now);
        let nbf = xs_time(self.not_before.unwrap_or(self.now - 30));
        let recipient = self
            .recipient
            .as_ref()
            .map(|r| format!(r#" Recipient="{r}""#))
            .unwrap_or_default();
        let audiences: String = self
            .audiences
            .iter()
            .map(|a| format!("<saml:Audience>{a}</saml:Audience>"))
            .collect();
        let restriction = if self.audiences.is_empty() {
            String::new()
        } else {
            format!("<saml:AudienceRestriction>{audiences}</saml:AudienceRestriction>")
        };
        let one_time = if self.one_time_use {
            "<saml:OneTimeUse/>"
        } else {
            ""
        };
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, values)| {
                let vs: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!(r#"<saml:Attribute Name="{name}">{vs}</saml:Attribute>"#)
            })
            .collect();
        let signature = if template {
            signature_template(&self.id)
        } else {
            String::new()
        };
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{iat}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{exp}"{recipient}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nbf}" NotOnOrAfter="{exp}">{restriction}{one_time}</saml:Conditions><saml:AuthnStatement AuthnInstant="{iat}" SessionIndex="_s1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#,
            id = self.id,
            issuer = self.issuer,
            name_id = self.name_id_xml,
        )
    }

    /// Signed by xmlsec1 with `key`.
    pub fn signed(&self, key: &SigningKey) -> String {
        sign(
            &self.xml(true),
            key,
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        )
    }
}

/// An enveloped-signature template for the element with `id` (RSA-SHA256, exc-c14n).
pub fn signature_template(id: &str) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"##
    )
}

/// Wraps `assertion_xml` in a Response (signed too when `sign_with` is given).
pub fn response(assertion_xml: &str, now: i64, sign_with: Option<&SigningKey>) -> String {
    let id = format!("_r{}", uuid::Uuid::new_v4().simple());
    let template = if sign_with.is_some() {
        signature_template(&id)
    } else {
        String::new()
    };
    let body = format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{iat}" Destination="{iss}/token"><saml:Issuer>{IDP}</saml:Issuer>{template}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertion}</samlp:Response>"#,
        iat = xs_time(now),
        iss = crate::helpers::ISSUER,
        assertion = strip_xml_decl(assertion_xml),
    );
    match sign_with {
        Some(key) => sign(&body, key, "urn:oasis:names:tc:SAML:2.0:protocol:Response"),
        None => body,
    }
}

pub fn strip_xml_decl(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(xml, |(_, r)| r.trim_start()),
        None => xml,
    }
}

/// `xmlsec1 --sign`: fills every signature template of `node` elements with `key`.
pub fn sign(xml: &str, key: &SigningKey, node: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xml");
    std::fs::write(&input, xml).unwrap();
    let out = Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem"])
        .arg(format!("{},{}", key.key.display(), key.cert.display()))
        .args(["--id-attr:ID", node])
        .arg(&input)
        .output()
        .expect("xmlsec1 is installed (scripts/setup-system)");
    assert!(
        out.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// base64url, as RFC 8693 says a saml2 token travels.
pub fn b64url(xml: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(xml)
}

/// How `xmlsec1 --encrypt` wraps the content key and encrypts the assertion.
#[derive(Clone, Copy)]
pub struct Encryption {
    pub content: &'static str,
    pub session_key: &'static str,
    /// The `EncryptedKey`'s `EncryptionMethod` element (its children say the digests).
    pub key_transport: &'static str,
}

pub const AES256_CBC_OAEP: Encryption = Encryption {
    content: "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    session_key: "aes-256",
    key_transport: r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>"#,
};

/// The OAEP digest named explicitly. (xmlsec1 1.2's OpenSSL backend does OAEP with SHA-1
/// only and has no XML Enc 1.1 `rsa-oaep`: the unit tests cover SHA-2 digests and MGFs.)
pub const AES128_GCM_OAEP_SHA1: Encryption = Encryption {
    content: "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    session_key: "aes-128",
    key_transport: r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></xenc:EncryptionMethod>"#,
};

pub const AES192_CBC_RSA15: Encryption = Encryption {
    content: "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    session_key: "aes-192",
    key_transport: r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/>"#,
};

/// `xmlsec1 --encrypt`: `assertion_xml` encrypted to `recipient_cert`, as the
/// `saml:EncryptedAssertion` element a Response carries.
pub fn encrypt(assertion_xml: &str, recipient_cert: &Path, how: Encryption) -> String {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.xml");
    std::fs::write(&plain, strip_xml_decl(assertion_xml)).unwrap();
    let template = dir.path().join("template.xml");
    std::fs::write(
        &template,
        format!(
            r#"<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{content}"/><ds:KeyInfo><xenc:EncryptedKey>{transport}<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"#,
            content = how.content,
            transport = how.key_transport,
        ),
    )
    .unwrap();
    let out = Command::new("xmlsec1")
        .args(["--encrypt", "--pubkey-cert-pem"])
        .arg(recipient_cert)
        .args(["--session-key", how.session_key, "--binary-data"])
        .arg(&plain)
        .arg(&template)
        .output()
        .expect("xmlsec1 is installed (scripts/setup-system)");
    assert!(
        out.status.success(),
        "xmlsec1 --encrypt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = String::from_utf8(out.stdout).unwrap();
    format!(
        r#"<saml:EncryptedAssertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">{}</saml:EncryptedAssertion>"#,
        strip_xml_decl(&data)
    )
}
