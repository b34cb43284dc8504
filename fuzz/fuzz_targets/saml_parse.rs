//! Fuzzes the SAML input path before any signature check (SPEC §4.1): base64 decoding of
//! both alphabets, the XML ground rules (`CheckedXml::admit`: DOCTYPE, limits, comments), the strict bounded parse, the
//! shape and signature-structure rules, and reading an assertion; for EncryptedAssertion
//! the structure read before decryption (algorithms, keys, base64) and the shape rules of
//! a decrypted document. Invariants: no panic; nothing with a DOCTYPE gets past decoding;
//! admission removes every comment and is idempotent; random ciphertext
//! never decrypts.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::verify::saml::decrypt::{self, DecryptionKey};
use tessera::verify::saml::{assertion, document};
use tessera::xml::CheckedXml;

/// A fixed 2048-bit key, generated once (RSA key generation per input would be the
/// whole run).
fn key() -> &'static DecryptionKey {
    static KEY: OnceLock<DecryptionKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pem = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        DecryptionKey::from_pem(&pem, "fuzz").unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. As a presented token (base64 of XML).
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(xml) = document::decode(text) {
            assert!(!xml.as_str().to_ascii_lowercase().contains("<!doctype"));
            let _ = document::inspect(&xml);
        }
    }
    // 2. As the XML itself: admitted (comments removed, limits checked) and read.
    let Ok(clean) = CheckedXml::admit(data) else {
        return;
    };
    // `<!--` may stay as text (in a PI, CDATA or an attribute value); no comment node may.
    assert_eq!(CheckedXml::admit(clean.as_str().as_bytes()).as_ref(), Ok(&clean));
    let _ = document::inspect(&clean);
    if let Ok(doc) = clean.parse() {
        // 3. As a decrypted document (the wrapper's shape rules).
        let _ = document::inspect_decrypted(&doc);
        assert!(
            !doc.descendants().any(|n| n.is_comment()),
            "a comment survived admission"
        );
        if let Ok(view) = assertion::read(doc.root_element()) {
            let _ = assertion::cel_view(&view);
        }
        // 4. As a Response carrying an EncryptedAssertion.
        if let Ok(opened) = decrypt::open(doc.root_element(), key()) {
            panic!("random ciphertext decrypted: {opened:?}");
        }
    }
});
