//! Fuzzes the SAML input path before any signature check (SPEC §4.1): base64 decoding of
//! both alphabets, the DOCTYPE guard, comment stripping, the strict bounded parse, the
//! shape and signature-structure rules, and reading an assertion. Invariants: no panic;
//! nothing with a DOCTYPE gets past decoding; comment stripping is idempotent and leaves
//! a document that parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::verify::saml::{assertion, document};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // 1. As a presented token (base64 of XML).
    if let Ok(xml) = document::decode(text) {
        assert!(!xml.to_ascii_lowercase().contains("<!doctype"));
        let _ = document::inspect(&xml);
    }
    // 2. As the XML itself.
    if let Ok(clean) = document::strip_comments(text) {
        assert_eq!(document::strip_comments(&clean).as_deref(), Ok(clean.as_str()));
        let _ = document::inspect(&clean);
        if let Ok(doc) = tessera::xml::parse(&clean) {
            if let Ok(view) = assertion::read(doc.root_element()) {
                let _ = assertion::cel_view(&view);
            }
        }
    }
});
