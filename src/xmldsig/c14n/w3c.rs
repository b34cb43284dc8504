//! The W3C vectors of `tests/fixtures/c14n/` (README.md there): every input is admitted as
//! every XML input is; the ones the ground rules refuse must be refused with the right
//! error, and every other one canonicalised by each method it has an expected output for
//! and compared byte for byte with libxml2's (xmllint) or xmlsec's output.

use super::*;
use crate::xml::{CheckedXml, XmlError};
use crate::xmldsig::{algorithm, Named, C14N_EXCLUSIVE, NS_DSIG};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/c14n");

/// The InclusiveNamespaces PrefixList of the `.exc-c14n-prefixlist` outputs (as in
/// `generate.sh`).
const PREFIX_LIST: &str = "n0 n2 w3c #default";

/// What an input is for.
#[derive(Debug)]
enum Vector {
    /// `CheckedXml::admit` refuses it, by design.
    Refused(XmlError),
    /// Its document element is canonicalised (XML-DSig's `URI=""`; nothing outside the
    /// document element but white space).
    Document,
    /// The element its one `ds:Signature` is enveloped in, minus the signature: what
    /// `verified_copy` canonicalises for a Reference to it.
    Enveloped,
}

use Vector::{Document, Enveloped, Refused};

const VECTORS: &[(&str, Vector)] = &[
    // Canonical XML 1.0 §3 (3.1–3.7) and Canonical XML 1.1 §3.8, as published.
    ("w3c-c14n-3.1.xml", Refused(XmlError::Doctype)),
    ("w3c-c14n-3.2.xml", Document),
    ("w3c-c14n-3.3.xml", Refused(XmlError::Doctype)),
    ("w3c-c14n-3.4.xml", Refused(XmlError::Doctype)),
    ("w3c-c14n-3.5.xml", Refused(XmlError::Doctype)),
    ("w3c-c14n-3.6.xml", Refused(XmlError::NotUtf8)),
    ("w3c-c14n-3.7.xml", Refused(XmlError::Doctype)),
    ("w3c-c14n11-3.8.xml", Refused(XmlError::Doctype)),
    // Derived by generate.sh, so that the ground rules admit them.
    ("w3c-c14n-3.3.no-dtd.xml", Document),
    ("w3c-c14n-3.4.no-dtd.xml", Document),
    ("w3c-c14n-3.6.utf8.xml", Document),
    ("w3c-c14n-3.7.no-dtd.enveloped.xml", Enveloped),
    ("w3c-c14n11-3.8.no-dtd.enveloped.xml", Enveloped),
    // Exclusive XML Canonicalization 1.0 §2.2: the same element in two contexts, as
    // published, and with an enveloped signature selecting it.
    ("w3c-exc-c14n-2.2-1.xml", Document),
    ("w3c-exc-c14n-2.2-2.xml", Document),
    ("w3c-exc-c14n-2.2-1.enveloped.xml", Enveloped),
    ("w3c-exc-c14n-2.2-2.enveloped.xml", Enveloped),
];

/// Outputs the reference implementation renders and tessera refuses, by design.
const REFUSED_OUTPUTS: &[(&str, C14nError)] = &[
    // libxml2 joins the apex's xml:base with its ancestors' (`something/bar/foo`).
    ("w3c-c14n11-3.8.no-dtd.enveloped.c14n11", C14nError::XmlBase),
];

/// The canonicalisation an expected output's extension names.
fn method(extension: &str) -> Option<Method> {
    Some(match extension {
        "c14n10" => Method::Inclusive { v11: false },
        "c14n11" => Method::Inclusive { v11: true },
        "exc-c14n" => Method::Exclusive {
            inclusive_prefixes: Vec::new(),
        },
        "exc-c14n-prefixlist" => {
            match algorithm::canonicalization(C14N_EXCLUSIVE, std::iter::once(PREFIX_LIST)) {
                Named::Known(method) => method,
                Named::Unknown(_) => return None,
            }
        }
        _ => return None,
    })
}

/// Every file of the directory that is not an input: (input, extension, file name).
fn expected_outputs() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".xml") || name == "README.md" || name == "generate.sh" {
            continue;
        }
        // `w3c-c14n-3.2.c14n10` → input `w3c-c14n-3.2.xml`, extension `c14n10`.
        let (stem, extension) = name.rsplit_once('.').unwrap();
        out.push((format!("{stem}.xml"), extension.to_owned(), name.clone()));
    }
    out.sort();
    out
}

#[test]
fn every_w3c_vector_file_is_in_the_table() {
    for entry in std::fs::read_dir(DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".xml") {
            assert!(
                VECTORS.iter().any(|(input, _)| *input == name),
                "{name}: an input the table does not know"
            );
        }
    }
    for (input, extension, name) in expected_outputs() {
        let vector = VECTORS.iter().find(|(i, _)| *i == input);
        assert!(
            matches!(vector, Some((_, Document | Enveloped))),
            "{name}: an expected output of no canonicalised input"
        );
        assert!(method(&extension).is_some(), "{name}: unknown method");
    }
    for (input, vector) in VECTORS {
        if !matches!(vector, Refused(_)) {
            assert!(
                expected_outputs().iter().any(|(i, ..)| i == input),
                "{input}: no expected output"
            );
        }
    }
}

#[test]
fn w3c_vectors_the_ground_rules_refuse_are_refused() {
    for (input, vector) in VECTORS {
        let Refused(expected) = vector else { continue };
        let bytes = std::fs::read(format!("{DIR}/{input}")).unwrap();
        assert_eq!(
            CheckedXml::admit(&bytes).err().as_ref(),
            Some(expected),
            "{input}"
        );
    }
}

#[test]
fn w3c_vectors_canonicalise_as_libxml2_and_xmlsec_do_byte_for_byte() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (input, extension, name) in expected_outputs() {
        let Some((_, vector)) = VECTORS.iter().find(|(i, _)| *i == input) else {
            continue;
        };
        let bytes = std::fs::read(format!("{DIR}/{input}")).unwrap();
        let admitted = CheckedXml::admit(&bytes).unwrap_or_else(|e| panic!("{input}: {e}"));
        let doc = admitted.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        let (apex, omit) = match vector {
            Document => (doc.root_element(), None),
            Enveloped => {
                let mut signatures = doc.descendants().filter(|n| {
                    n.is_element()
                        && n.tag_name().namespace() == Some(NS_DSIG)
                        && n.tag_name().name() == "Signature"
                });
                let sig = signatures.next().unwrap();
                assert!(signatures.next().is_none(), "{input}: one signature");
                (sig.parent_element().unwrap(), Some(sig.id()))
            }
            Refused(_) => unreachable!("a refused input has no expected output"),
        };
        let method = method(&extension).unwrap();
        let ours = canonicalize(doc.node(apex).unwrap(), omit, &method);
        let refusal = REFUSED_OUTPUTS.iter().find(|(n, _)| *n == name);
        match (refusal, ours) {
            (Some((_, refused)), ours) => {
                assert_eq!(ours.as_ref(), Err(refused), "{name}: refused by design");
            }
            (None, Ok(ours)) => {
                compared += 1;
                let expected = std::fs::read(format!("{DIR}/{name}")).unwrap();
                if ours.as_bytes() != expected {
                    failures.push(format!(
                        "{name}:\n  ours:     {ours:?}\n  expected: {:?}",
                        String::from_utf8_lossy(&expected)
                    ));
                }
            }
            (None, Err(e)) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 6 documents × 3 methods, 4 enveloped inputs × 4 methods less 1 refusal.
    assert_eq!(compared, 6 * 3 + 4 * 4 - 1);
}
