//! `saml:EncryptedAssertion` (SAML core §2.3.4, XML Encryption 1.1) opened with the broker's
//! `saml.decryption_key_file`, with openssl directly: samael's `EncryptedAssertion::decrypt`
//! panics on crafted plaintext and knows only AES-128 (DEPENDENCIES.md).
//!
//! Key transport is RSA-OAEP only (`rsa-oaep-mgf1p`, or XML Enc 1.1 `rsa-oaep` with its
//! digest and MGF): `rsa-1_5` is refused, since PKCS#1 v1.5 decryption is a Bleichenbacher
//! oracle. Content is AES-128/192/256 in CBC (the padding length checked) or GCM (the tag
//! checked). Nothing here is trusted: the plaintext goes through the same guards as a
//! presented document, and its assertion is verified afterwards.
//!
//! Every failure from the key transport to the plaintext's parse is one error with one
//! message: distinguishable failures (bad padding vs. not XML) are the oracle of Jager and
//! Somorovsky's attack on XML Encryption's CBC mode ("How to Break XML Encryption", 2011).

use std::path::Path;

use base64::Engine;
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use roxmltree::Node;

use crate::verify::error::SamlError;
use crate::xml::{self, CheckedXml, XmlError, NS_DSIG, NS_SAML, NS_XENC};
use crate::xmldsig::algorithm_name;

const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP_11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";
const TYPE_ENCRYPTED_KEY: &str = "http://www.w3.org/2001/04/xmlenc#EncryptedKey";

/// One message for every failure past the key transport's algorithm check (see the module
/// comment: no padding oracle).
pub const UNDECRYPTABLE: SamlError = SamlError::Undecryptable(None);

/// Keeps the wrapper element of [`Opened::document`] apart from anything an IdP writes.
const WRAPPER_NS: &str = "urn:x-tessera:saml:decrypted";
const WRAPPER: &str = "tessera-decrypted";

/// Most `EncryptedKey`s tried for one assertion (one per recipient of a multicast).
const MAX_KEYS: usize = 4;

/// The broker's SAML decryption key (`saml.decryption_key_file`): an RSA private key.
pub struct DecryptionKey {
    key: PKey<Private>,
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionKey(RSA-{}, redacted)", self.key.bits())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecryptionKeyError {
    #[error("saml.decryption_key_file {path}: cannot be read")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "saml.decryption_key_file {path}: not a PEM private key (PKCS#8 or PKCS#1, unencrypted)"
    )]
    NotPem {
        path: String,
        #[source]
        source: openssl::error::ErrorStack,
    },
    #[error("saml.decryption_key_file {path}: the key is {kind}, but XML Encryption key transport needs RSA")]
    NotRsa { path: String, kind: &'static str },
}

impl DecryptionKey {
    pub fn from_pem_file(path: &Path) -> Result<Self, DecryptionKeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| DecryptionKeyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_pem(&pem, &shown)
    }

    /// `path` only names the key in errors.
    pub fn from_pem(pem: &[u8], path: &str) -> Result<Self, DecryptionKeyError> {
        let key = PKey::private_key_from_pem(pem).map_err(|source| DecryptionKeyError::NotPem {
            path: path.to_owned(),
            source,
        })?;
        if key.rsa().is_err() {
            return Err(DecryptionKeyError::NotRsa {
                path: path.to_owned(),
                kind: if key.ec_key().is_ok() {
                    "EC"
                } else {
                    "not RSA"
                },
            });
        }
        Ok(Self { key })
    }
}

/// The decrypted assertion, as a document of its own.
#[derive(Debug)]
pub struct Opened {
    /// `<tessera-decrypted>` holding the plaintext, declaring the namespaces that were in
    /// scope at the `EncryptedAssertion` (the plaintext replaces `EncryptedData` there, XML
    /// Enc §4.5, and may use them). Its only element child must be the assertion.
    pub document: CheckedXml,
}

/// Opens the one `EncryptedAssertion` child of `response`.
pub fn open(response: Node<'_, '_>, key: &DecryptionKey) -> Result<Opened, SamlError> {
    let encrypted = xml::only_child(response, NS_SAML, "EncryptedAssertion")
        .ok()
        .flatten()
        .ok_or(SamlError::AssertionCount(0))?;
    let data = xml::only_child(encrypted, NS_XENC, "EncryptedData")
        .ok()
        .flatten()
        .ok_or(SamlError::Malformed(
            "EncryptedAssertion (one EncryptedData)",
        ))?;
    if data.attribute("Type").is_some_and(|t| t != TYPE_ELEMENT) {
        return Err(SamlError::Malformed("EncryptedData Type (must be Element)"));
    }
    let content = ContentAlg::of(algorithm(data)?)?;
    let keys = encrypted_keys(encrypted, data)?;
    let transports = keys
        .iter()
        .map(|k| KeyTransport::of(*k))
        .collect::<Result<Vec<_>, _>>()?;
    let ciphertext = cipher_value(data)?;
    let plaintext = transports
        .iter()
        .find_map(|t| t.unwrap_key(key, content.key_len()))
        .and_then(|cek| content.decrypt(&cek, &ciphertext))
        .ok_or(UNDECRYPTABLE)?;
    // The ground rules (UTF-8, DOCTYPE, limits, comments) before the plaintext meets any
    // parser. Not UTF-8, a DOCTYPE or not well-formed: what was decrypted is no XML worth
    // naming (a tampered ciphertext garbles its blocks), so no cause is kept.
    let (open, close) = wrapper_tags(encrypted);
    let document = match CheckedXml::admit_within(&plaintext, &open, &close) {
        Ok(document) => document,
        Err(XmlError::NotUtf8 | XmlError::Doctype | XmlError::NotWellFormed) => {
            return Err(UNDECRYPTABLE)
        }
        Err(e) => return Err(SamlError::Undecryptable(Some(Box::new(e.into())))),
    };
    Ok(Opened { document })
}

/// The `EncryptionMethod` child's Algorithm.
fn algorithm<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    xml::only_child(node, NS_XENC, "EncryptionMethod")
        .ok()
        .flatten()
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or(SamlError::Missing("EncryptionMethod"))
}

/// `CipherData/CipherValue` as bytes (a `CipherReference` would be a fetch: refused).
fn cipher_value(node: Node<'_, '_>) -> Result<Vec<u8>, SamlError> {
    let value = xml::only_child(node, NS_XENC, "CipherData")
        .ok()
        .flatten()
        .and_then(|d| xml::only_child(d, NS_XENC, "CipherValue").ok().flatten())
        .ok_or(SamlError::Missing("CipherData/CipherValue"))?;
    let compact: String = xml::full_text(value)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SamlError::Malformed("CipherValue (not base64)"))
}

/// The `EncryptedKey`s that may hold the content key: inside `EncryptedData/KeyInfo`, or
/// siblings of `EncryptedData` (Okta), the one a `RetrievalMethod` names when it names one.
fn encrypted_keys<'a, 'i>(
    encrypted: Node<'a, 'i>,
    data: Node<'a, 'i>,
) -> Result<Vec<Node<'a, 'i>>, SamlError> {
    let key_info = xml::children(data, NS_DSIG, "KeyInfo").next();
    let inline = key_info
        .into_iter()
        .flat_map(|k| xml::children(k, NS_XENC, "EncryptedKey"));
    let siblings = xml::children(encrypted, NS_XENC, "EncryptedKey");
    let retrieval = key_info
        .into_iter()
        .flat_map(|k| xml::children(k, NS_DSIG, "RetrievalMethod"))
        .find(|r| r.attribute("Type").is_none_or(|t| t == TYPE_ENCRYPTED_KEY))
        .and_then(|r| r.attribute("URI"));
    let keys: Vec<_> = match retrieval {
        Some(uri) => {
            let id = uri
                .strip_prefix('#')
                .ok_or(SamlError::Malformed("RetrievalMethod URI (must be #id)"))?;
            inline
                .chain(siblings.filter(|k| k.attribute("Id") == Some(id)))
                .collect()
        }
        None => inline.chain(siblings).collect(),
    };
    if keys.is_empty() {
        return Err(SamlError::Missing("EncryptedKey"));
    }
    if keys.len() > MAX_KEYS {
        return Err(SamlError::Malformed(
            "EncryptedAssertion (too many EncryptedKeys)",
        ));
    }
    Ok(keys)
}

/// XML Enc key transport: RSA-OAEP with its OAEP digest and MGF1 digest.
struct KeyTransport {
    digest: MessageDigest,
    mgf1: MessageDigest,
    wrapped: Vec<u8>,
}

impl KeyTransport {
    fn of(key: Node<'_, '_>) -> Result<Self, SamlError> {
        let method = xml::only_child(key, NS_XENC, "EncryptionMethod")
            .ok()
            .flatten()
            .ok_or(SamlError::Missing("EncryptedKey EncryptionMethod"))?;
        let alg = method.attribute("Algorithm").unwrap_or_default();
        let mgf1 = match alg {
            RSA_OAEP_MGF1P => MessageDigest::sha1(),
            // XML Enc 1.1 §5.5.2: the MGF defaults to MGF1 with SHA-1.
            RSA_OAEP_11 => match xml::children(method, NS_XENC11, "MGF").next() {
                None => MessageDigest::sha1(),
                Some(m) => mgf1_digest(m.attribute("Algorithm").unwrap_or_default())?,
            },
            // rsa-1_5 above all (a Bleichenbacher oracle), and anything else.
            other => return Err(SamlError::EncryptionAlgorithm(algorithm_name(other))),
        };
        // OAEPparams (a label) is never sent by SAML IdPs; refusing it beats ignoring it.
        if xml::children(method, NS_XENC, "OAEPparams")
            .next()
            .is_some()
        {
            return Err(SamlError::Malformed(
                "EncryptedKey OAEPparams (not supported)",
            ));
        }
        let digest = match xml::children(method, NS_DSIG, "DigestMethod").next() {
            None => MessageDigest::sha1(),
            Some(d) => oaep_digest(d.attribute("Algorithm").unwrap_or_default())?,
        };
        Ok(Self {
            digest,
            mgf1,
            wrapped: cipher_value(key)?,
        })
    }

    /// The content key, when this `EncryptedKey` was for us and has the right length.
    fn unwrap_key(&self, key: &DecryptionKey, len: usize) -> Option<Vec<u8>> {
        let mut d = Decrypter::new(&key.key).ok()?;
        d.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
        d.set_rsa_oaep_md(self.digest).ok()?;
        d.set_rsa_mgf1_md(self.mgf1).ok()?;
        let mut out = vec![0; d.decrypt_len(&self.wrapped).ok()?];
        let n = d.decrypt(&self.wrapped, &mut out).ok()?;
        out.truncate(n);
        (n == len).then_some(out)
    }
}

fn oaep_digest(uri: &str) -> Result<MessageDigest, SamlError> {
    Ok(match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => MessageDigest::sha1(),
        "http://www.w3.org/2001/04/xmlenc#sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmlenc#sha512" => MessageDigest::sha512(),
        other => return Err(SamlError::EncryptionAlgorithm(algorithm_name(other))),
    })
}

fn mgf1_digest(uri: &str) -> Result<MessageDigest, SamlError> {
    Ok(match uri.strip_prefix(NS_XENC11) {
        Some("mgf1sha1") => MessageDigest::sha1(),
        Some("mgf1sha256") => MessageDigest::sha256(),
        Some("mgf1sha384") => MessageDigest::sha384(),
        Some("mgf1sha512") => MessageDigest::sha512(),
        _ => return Err(SamlError::EncryptionAlgorithm(algorithm_name(uri))),
    })
}

/// Block encryption of the assertion (XML Enc §5.2).
#[derive(Clone, Copy)]
enum ContentAlg {
    Cbc(Cipher),
    Gcm(Cipher),
}

impl ContentAlg {
    fn of(uri: &str) -> Result<Self, SamlError> {
        Ok(match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Self::Cbc(Cipher::aes_128_cbc()),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => Self::Cbc(Cipher::aes_192_cbc()),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Self::Cbc(Cipher::aes_256_cbc()),
            "http://www.w3.org/2009/xmlenc11#aes128-gcm" => Self::Gcm(Cipher::aes_128_gcm()),
            "http://www.w3.org/2009/xmlenc11#aes192-gcm" => Self::Gcm(Cipher::aes_192_gcm()),
            "http://www.w3.org/2009/xmlenc11#aes256-gcm" => Self::Gcm(Cipher::aes_256_gcm()),
            // tripledes-cbc and anything else.
            other => return Err(SamlError::EncryptionAlgorithm(algorithm_name(other))),
        })
    }

    fn key_len(self) -> usize {
        match self {
            Self::Cbc(c) | Self::Gcm(c) => c.key_len(),
        }
    }

    fn decrypt(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Cbc(c) => decrypt_cbc(c, key, data),
            Self::Gcm(c) => decrypt_gcm(c, key, data),
        }
    }
}

/// XML Enc §5.2.1: IV (one block) ‖ ciphertext. The padding's last octet is its length,
/// 1 to one block; its other octets are arbitrary (not PKCS#7), so only the length is
/// checked.
fn decrypt_cbc(cipher: Cipher, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let block = cipher.block_size();
    let (iv, body) = data.split_at_checked(block)?;
    if body.is_empty() || body.len() % block != 0 {
        return None;
    }
    let mut c = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).ok()?;
    c.pad(false);
    let mut out = vec![0; body.len() + block];
    let mut n = c.update(body, &mut out).ok()?;
    n += c.finalize(&mut out[n..]).ok()?;
    out.truncate(n);
    let pad = usize::from(*out.last()?);
    if pad == 0 || pad > block || pad > out.len() {
        return None;
    }
    out.truncate(out.len() - pad);
    Some(out)
}

/// XML Enc 1.1 §5.2.4: 96-bit IV ‖ ciphertext ‖ 128-bit tag.
fn decrypt_gcm(cipher: Cipher, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    const IV: usize = 12;
    const TAG: usize = 16;
    if data.len() < IV + TAG {
        return None;
    }
    let (iv, rest) = data.split_at(IV);
    let (body, tag) = rest.split_at(rest.len() - TAG);
    openssl::symm::decrypt_aead(cipher, key, Some(iv), &[], body, tag).ok()
}

/// The start and end tags of a wrapper declaring the namespaces in scope at `encrypted`.
fn wrapper_tags(encrypted: Node<'_, '_>) -> (String, String) {
    let mut out = format!(r#"<{WRAPPER} xmlns="{WRAPPER_NS}""#);
    for ns in encrypted.namespaces() {
        match ns.name() {
            Some("xml") => {}
            Some(prefix) => {
                out.push_str(&format!(r#" xmlns:{prefix}="{}""#, escape_attr(ns.uri())))
            }
            // The wrapper's own default namespace stands in for an outer one; the
            // plaintext's elements are prefixed or declare their own (SAML's are).
            None => {}
        }
    }
    out.push('>');
    (out, format!("</{WRAPPER}>"))
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Whether `node` is the wrapper [`open`] builds.
pub fn is_wrapper(node: Node<'_, '_>) -> bool {
    xml::is(node, WRAPPER_NS, WRAPPER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbc_padding_length_is_checked_and_its_other_bytes_are_not() {
        let key = [7u8; 16];
        let iv = [1u8; 16];
        // "hello" + 10 arbitrary bytes + length 11 (XML Enc padding).
        let mut block = b"hello".to_vec();
        block.extend([0xAA; 10]);
        block.push(11);
        let mut c = Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, &key, Some(&iv)).unwrap();
        c.pad(false);
        let mut ct = vec![0; 32];
        let n = c.update(&block, &mut ct).unwrap();
        ct.truncate(n);
        let data = [iv.as_slice(), &ct].concat();
        assert_eq!(
            decrypt_cbc(Cipher::aes_128_cbc(), &key, &data).as_deref(),
            Some(b"hello".as_slice())
        );
        // A last octet of 0 or above the block size is refused.
        for bad in [0u8, 17] {
            let mut block = block.clone();
            block[15] = bad;
            let mut c =
                Crypter::new(Cipher::aes_128_cbc(), Mode::Encrypt, &key, Some(&iv)).unwrap();
            c.pad(false);
            let mut ct = vec![0; 32];
            let n = c.update(&block, &mut ct).unwrap();
            ct.truncate(n);
            let data = [iv.as_slice(), &ct].concat();
            assert_eq!(decrypt_cbc(Cipher::aes_128_cbc(), &key, &data), None);
        }
        // Not a whole number of blocks, or no body at all.
        assert_eq!(decrypt_cbc(Cipher::aes_128_cbc(), &key, &data[..31]), None);
        assert_eq!(decrypt_cbc(Cipher::aes_128_cbc(), &key, &iv), None);
    }

    #[test]
    fn gcm_tag_is_checked() {
        let key = [9u8; 32];
        let iv = [3u8; 12];
        let mut tag = [0u8; 16];
        let ct = openssl::symm::encrypt_aead(
            Cipher::aes_256_gcm(),
            &key,
            Some(&iv),
            &[],
            b"<a/>",
            &mut tag,
        )
        .unwrap();
        let mut data = [iv.as_slice(), &ct, &tag].concat();
        assert_eq!(
            decrypt_gcm(Cipher::aes_256_gcm(), &key, &data).as_deref(),
            Some(b"<a/>".as_slice())
        );
        let last = data.len() - 1;
        data[last] ^= 1;
        assert_eq!(decrypt_gcm(Cipher::aes_256_gcm(), &key, &data), None);
    }

    #[test]
    fn key_transport_and_content_algorithms_outside_the_list_are_refused_by_name() {
        assert_eq!(
            ContentAlg::of("http://www.w3.org/2001/04/xmlenc#tripledes-cbc").err(),
            Some(SamlError::EncryptionAlgorithm("tripledes-cbc".into()))
        );
        let doc = roxmltree::Document::parse(
            r#"<k xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/><CipherData><CipherValue>AA==</CipherValue></CipherData></k>"#,
        )
        .unwrap();
        assert_eq!(
            KeyTransport::of(doc.root_element()).err(),
            Some(SamlError::EncryptionAlgorithm("rsa-1_5".into()))
        );
    }

    /// XML Enc 1.1 `rsa-oaep` with SHA-256 digest and MGF1-SHA-256 (which xmlsec1 1.2 cannot
    /// produce), AES-256-GCM content, the EncryptedKey a sibling named by RetrievalMethod.
    #[test]
    fn xml_enc_11_oaep_parameters_and_sibling_keys_are_understood() {
        use openssl::encrypt::Encrypter;
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let cek = [5u8; 32];
        let mut e = Encrypter::new(&rsa).unwrap();
        e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        e.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
        e.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        let mut wrapped = vec![0; e.encrypt_len(&cek).unwrap()];
        let n = e.encrypt(&cek, &mut wrapped).unwrap();
        wrapped.truncate(n);
        drop(e);
        let plaintext = r#"<saml:Assertion ID="_x" Version="2.0"/>"#;
        let iv = [2u8; 12];
        let mut tag = [0u8; 16];
        let ct = openssl::symm::encrypt_aead(
            Cipher::aes_256_gcm(),
            &cek,
            Some(&iv),
            &[],
            plaintext.as_bytes(),
            &mut tag,
        )
        .unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let response = format!(
            r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><saml:EncryptedAssertion><xenc:EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/><ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="#k2"/></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{ct}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData><xenc:EncryptedKey Id="k1"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5"/><xenc:CipherData><xenc:CipherValue>AA==</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey><xenc:EncryptedKey Id="k2"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#rsa-oaep"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><xenc11:MGF Algorithm="http://www.w3.org/2009/xmlenc11#mgf1sha256"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{key}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></saml:EncryptedAssertion></samlp:Response>"##,
            ct = b64(&[iv.as_slice(), &ct, &tag].concat()),
            key = b64(&wrapped),
        );
        let doc = roxmltree::Document::parse(&response).unwrap();
        let key = DecryptionKey { key: rsa };
        let opened = open(doc.root_element(), &key).unwrap();
        // The plaintext's `saml:` prefix resolves through the declarations in scope at
        // the EncryptedAssertion, carried by the wrapper.
        let wrapped_doc = opened.document.parse().unwrap();
        let root = wrapped_doc.root_element();
        assert!(is_wrapper(root));
        let assertion = root.first_element_child().unwrap();
        assert!(xml::is(assertion, NS_SAML, "Assertion"));
        // The wrong MGF digest does not unwrap the key: one undistinguished failure.
        let wrong = response.replace("mgf1sha256", "mgf1sha1");
        let doc = roxmltree::Document::parse(&wrong).unwrap();
        assert_eq!(open(doc.root_element(), &key).unwrap_err(), UNDECRYPTABLE);
    }

    #[test]
    fn a_decryption_key_must_be_an_rsa_private_key() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let err = DecryptionKey::from_pem(&pem, "sp.pem").unwrap_err();
        assert!(err.to_string().contains("needs RSA"), "{err}");
        let err = DecryptionKey::from_pem(b"nope", "sp.pem").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("saml.decryption_key_file sp.pem"),
            "{err}"
        );
    }
}
