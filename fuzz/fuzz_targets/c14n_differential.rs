//! Differential fuzzing of tessera's canonicaliser (`tessera::xmldsig::c14n`) against
//! libxml2's `xmlC14NExecute`, an independent implementation (the one xmlsec uses).
//!
//! Only documents that `tessera::xml::CheckedXml::admit` + `parse` accept *and*
//! that libxml2 parses without an error are compared (no DOCTYPE/ENTITY: refused first).
//! Each document is canonicalised, without comments, as:
//!
//! * exclusive C14N of the root element, and of its first child element (an orphan
//!   subtree whose ancestors declare namespaces);
//! * exclusive C14N of the first child element with an InclusiveNamespaces PrefixList
//!   (every prefix declared in the document plus `#default`; and the first declared prefix
//!   plus an undeclared one);
//! * Canonical XML 1.0 of the root element and of its first child element (where xml:*
//!   attributes of ancestors are inherited);
//! * Canonical XML 1.1 of the first child element (tessera refuses it, by design, where an
//!   ancestor has an xml:base that C14N 1.1 would join with the child's);
//! * exclusive and inclusive 1.0 of the root element with its first child element's subtree
//!   omitted (what the enveloped-signature transform does to a `ds:Signature`).
//!
//! libxml-0.3.3 has no safe canonicalisation API (`Document::canonicalize` arrived in
//! 0.3.4), so its raw bindings to libxml2's `xmlC14NExecute` are used with an
//! `is_visible` callback: the node-set is the apex's subtree (elements, attributes,
//! namespace nodes, text, PIs) minus comments and minus the omitted subtree, i.e. exactly
//! XML-DSig's `#id` / `""` reference node-set (XPointer without comments) after the
//! enveloped-signature transform.
//!
//! Known, analysed differences (see fuzz/README.md) are skipped so that the run can find
//! new ones; set `C14N_DIFF_ALL=1` to report them too.
#![no_main]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use libxml::bindings as x;
use tessera::xmldsig::c14n::{canonicalize, Method};

thread_local! {
    /// Highest libxml2 error level reported since the last reset (0: none).
    static LIBXML_ERROR: Cell<u32> = const { Cell::new(0) };
}

unsafe extern "C" fn on_libxml_error(_ctx: *mut c_void, error: x::xmlErrorPtr) {
    if !error.is_null() {
        let level = (*error).level;
        LIBXML_ERROR.with(|e| e.set(e.get().max(level)));
    }
}

fn libxml_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| unsafe { x::xmlInitParser() });
    // Error handlers are per thread in libxml2; the bindings declare the handler type
    // with the Rust ABI, so a C-ABI function is passed through a transmute.
    unsafe {
        let handler: unsafe extern "C" fn(*mut c_void, x::xmlErrorPtr) = on_libxml_error;
        x::xmlSetStructuredErrorFunc(
            ptr::null_mut(),
            std::mem::transmute::<
                unsafe extern "C" fn(*mut c_void, x::xmlErrorPtr),
                x::xmlStructuredErrorFunc,
            >(handler),
        );
    }
}

struct LibxmlDoc(x::xmlDocPtr);

impl Drop for LibxmlDoc {
    fn drop(&mut self) {
        unsafe { x::xmlFreeDoc(self.0) }
    }
}

/// libxml2's strict parse (no recovery, no network, no entity substitution beyond the
/// predefined ones, CDATA kept as CDATA nodes); `None` on any error (warnings allowed).
fn libxml_parse(text: &str) -> Option<LibxmlDoc> {
    libxml_init();
    LIBXML_ERROR.with(|e| e.set(0));
    let len = c_int::try_from(text.len()).ok()?;
    let options = x::xmlParserOption_XML_PARSE_NONET as c_int;
    let doc = unsafe {
        x::xmlReadMemory(
            text.as_ptr().cast::<c_char>(),
            len,
            ptr::null(),
            c"UTF-8".as_ptr(),
            options,
        )
    };
    if doc.is_null() {
        return None;
    }
    let doc = LibxmlDoc(doc);
    if LIBXML_ERROR.with(Cell::get) >= x::xmlErrorLevel_XML_ERR_ERROR {
        return None;
    }
    Some(doc)
}

/// The node-set: the apex's subtree without comments and without `omit`'s subtree.
struct Subset {
    apex: x::xmlNodePtr,
    omit: x::xmlNodePtr,
}

unsafe extern "C" fn is_visible(
    user: *mut c_void,
    node: x::xmlNodePtr,
    parent: x::xmlNodePtr,
) -> c_int {
    let set = &*(user as *const Subset);
    if node.is_null() {
        return 0;
    }
    // `type` is the second field of xmlNode, xmlAttr, xmlDoc and xmlNs alike.
    let mut n = match (*node).type_ {
        x::xmlElementType_XML_COMMENT_NODE => return 0,
        // Not in the subset; 1 only keeps libxml2 from reading a document's
        // (non-existent) attributes when it looks for xml:* on the root's ancestors.
        x::xmlElementType_XML_DOCUMENT_NODE => return 1,
        // A namespace node (an xmlNs): it belongs to `parent`, the element whose axis it is.
        x::xmlElementType_XML_NAMESPACE_DECL => parent,
        _ => node,
    };
    while !n.is_null() {
        if n == set.omit {
            return 0;
        }
        if n == set.apex {
            return 1;
        }
        if (*n).type_ == x::xmlElementType_XML_DOCUMENT_NODE {
            return 0;
        }
        n = (*n).parent;
    }
    0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Exclusive,
    Inclusive10,
    Inclusive11,
}

/// libxml2's canonical form of `apex`'s subtree (minus `omit`'s), or `None` on failure.
fn libxml_c14n(
    doc: &LibxmlDoc,
    apex: x::xmlNodePtr,
    omit: x::xmlNodePtr,
    mode: Mode,
    prefixes: &[String],
) -> Option<String> {
    let c_prefixes: Vec<CString> = prefixes
        .iter()
        .map(|p| CString::new(if p.is_empty() { "#default" } else { p.as_str() }).unwrap())
        .collect();
    let mut list: Vec<*mut x::xmlChar> = c_prefixes
        .iter()
        .map(|p| p.as_ptr() as *mut x::xmlChar)
        .chain(std::iter::once(ptr::null_mut()))
        .collect();
    let list_ptr = if prefixes.is_empty() {
        ptr::null_mut()
    } else {
        list.as_mut_ptr()
    };
    let mode = match mode {
        Mode::Exclusive => x::xmlC14NMode_XML_C14N_EXCLUSIVE_1_0,
        Mode::Inclusive10 => x::xmlC14NMode_XML_C14N_1_0,
        Mode::Inclusive11 => x::xmlC14NMode_XML_C14N_1_1,
    } as c_int;
    let subset = Subset { apex, omit };
    LIBXML_ERROR.with(|e| e.set(0));
    unsafe {
        let buf = x::xmlAllocOutputBuffer(ptr::null_mut());
        assert!(!buf.is_null());
        let ret = x::xmlC14NExecute(
            doc.0,
            Some(is_visible),
            &subset as *const Subset as *mut c_void,
            mode,
            list_ptr,
            0,
            buf,
        );
        x::xmlOutputBufferFlush(buf);
        let out = if ret < 0 {
            None
        } else {
            let content = x::xmlOutputBufferGetContent(buf);
            let size = x::xmlOutputBufferGetSize(buf);
            let bytes = if content.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(content, size)
            };
            Some(String::from_utf8(bytes.to_vec()).expect("libxml2 C14N output is UTF-8"))
        };
        x::xmlOutputBufferClose(buf);
        out
    }
}

/// The first element child of a libxml2 element (or null).
fn libxml_first_element(e: x::xmlNodePtr) -> x::xmlNodePtr {
    let mut c = unsafe { (*e).children };
    while !c.is_null() && unsafe { (*c).type_ } != x::xmlElementType_XML_ELEMENT_NODE {
        c = unsafe { (*c).next };
    }
    c
}

/// How libxml2's C14N reads a namespace URI (`xmlC14NCheckForRelativeNamespaces`).
#[derive(PartialEq, Eq)]
enum UriKind {
    Absolute,
    /// No scheme: C14N 1.0 §2 requires canonicalisation to fail.
    Relative,
    /// `xmlParseURI` rejects it (a space, `%` not followed by hex, ...).
    Unparsable,
}

fn libxml_uri_kind(uri: &str) -> UriKind {
    let Ok(c) = CString::new(uri) else {
        return UriKind::Unparsable;
    };
    unsafe {
        let parsed = x::xmlParseURI(c.as_ptr());
        if parsed.is_null() {
            return UriKind::Unparsable;
        }
        let scheme = (*parsed).scheme;
        let relative = scheme.is_null() || *scheme == 0;
        x::xmlFreeURI(parsed);
        if relative {
            UriKind::Relative
        } else {
            UriKind::Absolute
        }
    }
}

/// A mismatch analysed in fuzz/README.md, by name; `None` for a new one. With
/// `C14N_DIFF_ALL` set, every mismatch is reported.
fn known_difference(
    text: &str,
    doc: &roxmltree::Document<'_>,
    ours: &Result<String, tessera::xmldsig::c14n::C14nError>,
    theirs: &Option<String>,
) -> Option<&'static str> {
    if std::env::var_os("C14N_DIFF_ALL").is_some() {
        return None;
    }
    let uris = || {
        doc.descendants()
            .flat_map(|n| n.namespaces())
            .map(|ns| ns.uri())
            .filter(|u| !u.is_empty())
    };
    if ours.is_ok() && theirs.is_none() && uris().any(|u| libxml_uri_kind(u) == UriKind::Unparsable)
    {
        return Some("namespace URI that xmlParseURI rejects: libxml2 fails");
    }
    // tessera refuses relative namespace URIs of the subset only; libxml2 checks every
    // element of the document.
    if theirs.is_none() && uris().any(|u| libxml_uri_kind(u) == UriKind::Relative) {
        return Some("relative namespace URI outside the subset: libxml2 fails, tessera renders");
    }
    // roxmltree 0.21 reads `p:xmlns="v"` (any prefix) as a default namespace declaration;
    // libxml2 as an attribute. tessera then sees another document: it refuses or fails to
    // verify (its reader parses its own canonical output), never reads unsigned content.
    if text.contains(":xmlns") {
        return Some("prefixed attribute named xmlns: roxmltree reads a namespace declaration");
    }
    // C14N 1.1 §2.4 joins the apex's xml:base with its ancestors'; tessera refuses instead.
    if ours == &Err(tessera::xmldsig::c14n::C14nError::XmlBase) && theirs.is_some() {
        return Some("xml:base above a C14N 1.1 apex: tessera refuses to join it (by design)");
    }
    if ours.is_ok() && theirs.is_some() && uris().any(|u| u.contains('&')) {
        return Some("'&' in a namespace URI: libxml2 writes it as &#38; (or raw), not &amp;");
    }
    let _ = text;
    None
}


struct Case<'a, 'i> {
    name: &'static str,
    apex: roxmltree::Node<'a, 'i>,
    omit: Option<roxmltree::Node<'a, 'i>>,
    method: Method,
    l_apex: x::xmlNodePtr,
    l_omit: x::xmlNodePtr,
}

fuzz_target!(|data: &[u8]| {
    // The production pipeline: UTF-8 only, declaration (UTF-8 only) dropped, no DOCTYPE.
    let trace = std::env::var_os("C14N_DIFF_TRACE").is_some();
    // (`<?xml encoding=é?>` used to panic in strip_declaration; fixed, so no skip.)
    // What `xmldsig::verified_copy` canonicalises: the admitted text (line endings
    // normalised, XML 1.0 §2.11; comments gone), which libxml2 reads too.
    let admitted = match tessera::xml::CheckedXml::admit(data) {
        Ok(x) => x,
        Err(e) => {
            if trace {
                eprintln!("skipped: CheckedXml::admit: {e}");
            }
            return;
        }
    };
    let text = admitted.as_str();
    let doc = match admitted.parse() {
        Ok(doc) => doc,
        Err(e) => {
            if trace {
                eprintln!("skipped: CheckedXml::parse: {e}");
            }
            return;
        }
    };
    let Some(ldoc) = libxml_parse(text) else {
        if trace {
            eprintln!("skipped: libxml2 parse error");
        }
        return;
    };
    let root = doc.root_element();
    let lroot = unsafe { x::xmlDocGetRootElement(ldoc.0) };
    assert!(!lroot.is_null());
    let child = root.first_element_child();
    let lchild = libxml_first_element(lroot);
    assert_eq!(child.is_some(), !lchild.is_null(), "parsers disagree on the tree:\n{text}");

    let exclusive = |prefixes: Vec<String>| Method::Exclusive {
        inclusive_prefixes: prefixes,
    };
    let mut cases = vec![
        Case {
            name: "exclusive, root",
            apex: root,
            omit: None,
            method: exclusive(Vec::new()),
            l_apex: lroot,
            l_omit: ptr::null_mut(),
        },
        Case {
            name: "inclusive 1.0, root",
            apex: root,
            omit: None,
            method: Method::Inclusive { v11: false },
            l_apex: lroot,
            l_omit: ptr::null_mut(),
        },
    ];
    if let Some(child) = child {
        // Every prefix declared anywhere, plus #default; and the first one plus one that
        // is declared nowhere (a PrefixList entry without a namespace node in scope).
        let mut declared: Vec<String> = doc
            .descendants()
            .flat_map(|n| n.namespaces())
            .filter_map(|ns| ns.name())
            .filter(|p| *p != "xml")
            .map(str::to_owned)
            .collect();
        declared.sort();
        declared.dedup();
        let mut all = declared.clone();
        all.push(String::new());
        let mut some: Vec<String> = declared.iter().take(1).cloned().collect();
        some.push("zz".to_owned());
        cases.extend([
            Case {
                name: "exclusive, first child",
                apex: child,
                omit: None,
                method: exclusive(Vec::new()),
                l_apex: lchild,
                l_omit: ptr::null_mut(),
            },
            Case {
                name: "exclusive + PrefixList (all declared, #default), first child",
                apex: child,
                omit: None,
                method: exclusive(all),
                l_apex: lchild,
                l_omit: ptr::null_mut(),
            },
            Case {
                name: "exclusive + PrefixList (first declared, undeclared zz), first child",
                apex: child,
                omit: None,
                method: exclusive(some),
                l_apex: lchild,
                l_omit: ptr::null_mut(),
            },
            Case {
                name: "inclusive 1.0, first child",
                apex: child,
                omit: None,
                method: Method::Inclusive { v11: false },
                l_apex: lchild,
                l_omit: ptr::null_mut(),
            },
            Case {
                name: "exclusive, root without first child (enveloped)",
                apex: root,
                omit: Some(child),
                method: exclusive(Vec::new()),
                l_apex: lroot,
                l_omit: lchild,
            },
            Case {
                name: "inclusive 1.0, root without first child (enveloped)",
                apex: root,
                omit: Some(child),
                method: Method::Inclusive { v11: false },
                l_apex: lroot,
                l_omit: lchild,
            },
        ]);
        cases.push(Case {
            name: "inclusive 1.1, first child",
            apex: child,
            omit: None,
            method: Method::Inclusive { v11: true },
            l_apex: lchild,
            l_omit: ptr::null_mut(),
        });
    }

    for case in cases {
        let apex = doc.node(case.apex).expect("the apex is a node of the checked document");
        let ours = canonicalize(apex, case.omit.map(|n| n.id()), &case.method);
        let (mode, prefixes) = match &case.method {
            Method::Exclusive { inclusive_prefixes } => (Mode::Exclusive, inclusive_prefixes.clone()),
            Method::Inclusive { v11: false } => (Mode::Inclusive10, Vec::new()),
            Method::Inclusive { v11: true } => (Mode::Inclusive11, Vec::new()),
        };
        let theirs = libxml_c14n(&ldoc, case.l_apex, case.l_omit, mode, &prefixes);
        if trace {
            eprintln!("{}: {:?} | {:?}", case.name, ours, theirs);
        }
        match (&ours, &theirs) {
            (Ok(a), Some(b)) if a == b => {}
            // Both refuse (e.g. a relative namespace URI, C14N 1.0 §2).
            (Err(_), None) => {}
            _ if known_difference(text, &doc, &ours, &theirs).is_some() => continue,
            _ => panic!(
                "C14N mismatch ({}, {:?})\ninput:    {:?}\ntessera:  {:?}\nlibxml2:  {:?}",
                case.name, case.method, text, ours, theirs
            ),
        }
    }
});
