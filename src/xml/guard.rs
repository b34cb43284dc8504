//! The XML trust boundary. Every XML input — a presented assertion or Response, a
//! decrypted assertion, IdP metadata, the canonical bytes a signature covers — becomes a
//! [`CheckedXml`] through one constructor, [`CheckedXml::admit`], which applies the ground
//! rules in one order: UTF-8 only (BOM dropped, UTF-16 and other declared encodings
//! refused), the XML declaration dropped, line endings normalised (XML 1.0 §2.11), DOCTYPE
//! refused before any parser sees it, then one linear token scan that enforces the
//! structural limits and removes comments. Only then does roxmltree build a tree
//! ([`CheckedXml::parse`]): its own checks are quadratic in attributes and namespace
//! declarations per element, so they only ever see bounded input.

use std::collections::HashSet;
use std::ops::{Deref, Range};

use roxmltree::{Document, Node, ParsingOptions};
use xmlparser::{ElementEnd, Token, Tokenizer};

/// SPEC §4.1 limits: XML nesting depth.
pub const MAX_DEPTH: usize = 64;
/// Nodes (elements, text, comments, processing instructions) in one document: a 48 KiB
/// assertion has a few thousand; a 1 MiB metadata document stays well below.
const MAX_NODES: usize = 200_000;
/// Attributes on one element, namespace declarations not counted. roxmltree checks each
/// attribute against every earlier one of its element, O(n²): one element with 6,000
/// attributes cost 61 ms per 48 KiB request (security review F-2). The widest element in
/// every real assertion and metadata vector has 6. The cost of a document at this limit
/// grows with it linearly (size × limit): 64 made the worst accepted 48 KiB token cost
/// ~6 ms and 1 MiB of metadata ~13 ms; 16 a quarter of that (`benches/exchange.rs`).
pub const MAX_ATTRIBUTES: usize = 16;
/// Namespace declarations on the path from the root to an element, counted before the
/// tree exists: roxmltree copies and searches that in-scope list per element and per
/// prefixed name, before [`MAX_NAMESPACES`] (distinct prefixes) can be checked on the tree.
const MAX_DECLARATIONS_ON_PATH: usize = 2 * MAX_NAMESPACES;
/// Distinct (prefix, URI) bindings in one document: roxmltree keeps them in a sorted
/// vector, one insertion each. Real documents have a dozen; aggregates a few dozen.
const MAX_BINDINGS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("DOCTYPE is not allowed")]
    Doctype,
    #[error("not well-formed XML")]
    NotWellFormed,
    #[error("XML nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("XML is not UTF-8")]
    NotUtf8,
    #[error("an element has more than {MAX_CHILDREN} child elements")]
    TooManyChildren,
    #[error("an element has more than {MAX_NAMESPACES} namespaces in scope")]
    TooManyNamespaces,
    #[error("an element has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("the document declares more than {MAX_BINDINGS} distinct namespaces")]
    TooManyBindings,
    #[error("the document has more than {MAX_NODES} nodes")]
    TooManyNodes,
    #[error("{0} must hold text only, not elements")]
    NotText(&'static str),
}

/// Element children of one element: bounds the work done on a document before its
/// signature is known to be good (an xmlsec-based reduction once took 4 s on 6000
/// siblings; tessera's own canonicaliser is linear, but no IdP needs more). IdPs' widest
/// elements (an attribute's values, an aggregate's entities) stay far below.
pub const MAX_CHILDREN: usize = 1000;

/// Namespaces in scope at any one element. Inclusive canonicalisation, which runs on a
/// Reference *before* the signature is checked, costs elements × in-scope namespaces
/// (libxml2's took 17 s on a forged 32 KB assertion with 1000 declarations); this keeps
/// tessera's bounded too. Real documents have at most ~27 (AD FS metadata); assertions
/// about 12.
pub const MAX_NAMESPACES: usize = 32;

/// SPEC §4.1: "DOCTYPE anywhere ⇒ refused before any parsing of it". A byte scan, so no
/// parser ever sees an internal subset or an entity. `<!DOCTYPE`
/// cannot legally occur inside a comment's or CDATA's content either without being text,
/// and refusing that too costs nothing.
fn refuse_doctype(bytes: &[u8]) -> Result<(), XmlError> {
    // `<!ENTITY` outside a DOCTYPE is not well-formed anyway; refuse it the same way so no
    // parser's recovery mode gets a chance to read one. One pass: only `<!` is looked at.
    let starts = |at: usize, word: &[u8]| {
        bytes
            .get(at..at + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let found = memchr::memmem::find_iter(bytes, b"<!")
        .any(|i| starts(i + 2, b"doctype") || starts(i + 2, b"entity"));
    if found {
        Err(XmlError::Doctype)
    } else {
        Ok(())
    }
}

/// Text as UTF-8, with a UTF-8 byte order mark and the XML declaration dropped. UTF-16
/// (Entra ID's re-encoded metadata) is refused by name rather than misread, and so is a
/// declaration naming any encoding but UTF-8: roxmltree reads every document as UTF-8,
/// while other XML stacks honour the declaration, so `encoding="UTF-7"` would make two
/// readers see different documents (`+ACI-` is a quote to libxml2, text to us; this was
/// exploitable while xmlsec verified what roxmltree read). Without its declaration the
/// text is UTF-8 to every parser.
fn decode_utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(XmlError::NotUtf8);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    strip_declaration(text)
}

/// `text` without its XML declaration (XML 1.0 §2.8: only at the very start), which may
/// name UTF-8 only.
fn strip_declaration(text: &str) -> Result<&str, XmlError> {
    let Some(rest) = text.strip_prefix("<?xml") else {
        return no_second_declaration(text);
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        // `<?xml-stylesheet ...?>` and the like: a processing instruction, not ours.
        return no_second_declaration(text);
    }
    let (decl, body) = rest.split_once("?>").ok_or(XmlError::NotWellFormed)?;
    let body = no_second_declaration(body)?;
    if let Some(at) = decl.find("encoding") {
        let value = decl[at + "encoding".len()..]
            .trim_start()
            .strip_prefix('=')
            .map(str::trim_start)
            .ok_or(XmlError::NotWellFormed)?;
        // Only an ASCII quote may open the value: slicing after anything else could cut
        // a multi-byte character (`encoding=é` panicked here; found by c14n_differential).
        let quote = value
            .chars()
            .next()
            .filter(|q| matches!(q, '"' | '\''))
            .ok_or(XmlError::NotWellFormed)?;
        let name = value[1..]
            .split(quote)
            .next()
            .ok_or(XmlError::NotWellFormed)?;
        if !name.eq_ignore_ascii_case("UTF-8") {
            return Err(XmlError::NotUtf8);
        }
    }
    Ok(body)
}

/// What follows the one declaration may not be another one, nor a byte order mark:
/// roxmltree reads `<?xml … encoding="UTF-7"?>` after a first declaration (or after a
/// second BOM) as a processing instruction, libxml2 as *the* declaration, and the two
/// would read different documents again. `<?xml` followed by a space, tab, newline or
/// `?` anywhere (any case) is refused: a declaration is legal only at the very start.
fn no_second_declaration(body: &str) -> Result<&str, XmlError> {
    if body.starts_with('\u{feff}') {
        return Err(XmlError::NotWellFormed);
    }
    let bytes = body.as_bytes();
    let declaration = memchr::memmem::find_iter(bytes, b"<?").any(|i| {
        bytes.get(i..i + 6).is_some_and(|w| {
            w[..5].eq_ignore_ascii_case(b"<?xml") && (w[5].is_ascii_whitespace() || w[5] == b'?')
        })
    });
    if declaration {
        return Err(XmlError::NotWellFormed);
    }
    Ok(body)
}

/// XML 1.0 §2.11: every literal CR (alone or in CR LF) is an LF before parsing; only a
/// `&#13;` reference is a CR. roxmltree 0.21 leaves some literal CRs in text and PI data
/// (found by the c14n_differential fuzz target), which would canonicalise as `&#xD;`.
fn normalize_line_endings(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\r') {
        return text.into();
    }
    text.replace("\r\n", "\n").replace('\r', "\n").into()
}

/// XML text that passed the ground rules (see the module doc) and whose comments are gone.
/// It holds a presented assertion, so `Debug` shows its size only.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedXml(String);

impl std::fmt::Debug for CheckedXml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckedXml({} bytes)", self.0.len())
    }
}

impl CheckedXml {
    /// The one way in. Linear in the input: no tree is built here.
    ///
    /// Comments are removed. They carry nothing: SPEC §4.1 allows only canonicalisation
    /// without comments, and a same-document `#ID` reference excludes them (XML-DSig
    /// §4.4.3.3), so signatures are unchanged; but a comment inside a NameID is what makes
    /// naive readers take `a@corp.example` of `a@corp.example<!---->.evil.example`.
    pub fn admit(bytes: &[u8]) -> Result<Self, XmlError> {
        Self::from_utf8(decode_utf8(bytes)?)
    }

    /// `bytes` as the content of the element `open`…`close` (a decrypted fragment, which
    /// XML Encryption §4.5 reads in the context where its EncryptedData stood): the same
    /// rules, with `bytes`' own declaration dropped.
    pub fn admit_within(bytes: &[u8], open: &str, close: &str) -> Result<Self, XmlError> {
        let body = decode_utf8(bytes)?;
        Self::from_utf8(&[open, body, close].concat())
    }

    /// The rules after decoding, in their order.
    fn from_utf8(text: &str) -> Result<Self, XmlError> {
        let text = normalize_line_endings(text);
        refuse_doctype(text.as_bytes())?;
        let comments = scan(&text)?;
        Ok(Self(without(&text, &comments)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tree, with the limits that need one: distinct namespaces in scope per element.
    pub fn parse(&self) -> Result<CheckedDoc<'_>, XmlError> {
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: u32::try_from(MAX_NODES).unwrap_or(u32::MAX),
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(&self.0, options).map_err(|e| match e {
            roxmltree::Error::DtdDetected => XmlError::Doctype,
            roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes,
            _ => XmlError::NotWellFormed,
        })?;
        if doc
            .descendants()
            .any(|n| n.is_element() && n.namespaces().len() > MAX_NAMESPACES)
        {
            return Err(XmlError::TooManyNamespaces);
        }
        Ok(CheckedDoc(doc))
    }
}

/// A tree parsed from a [`CheckedXml`]: every limit holds, which the canonicaliser's cost
/// bounds rely on (depth ≤ [`MAX_DEPTH`], namespaces in scope ≤ [`MAX_NAMESPACES`],
/// attributes ≤ [`MAX_ATTRIBUTES`], text with LF line endings only).
pub struct CheckedDoc<'a>(Document<'a>);

impl<'a> Deref for CheckedDoc<'a> {
    type Target = Document<'a>;

    fn deref(&self) -> &Document<'a> {
        &self.0
    }
}

impl<'input> CheckedDoc<'input> {
    /// `node` as a node of this checked document; `None` for a node of any other document.
    pub fn node<'a>(&'a self, node: Node<'a, 'input>) -> Option<CheckedNode<'a, 'input>> {
        std::ptr::eq(node.document(), &self.0).then_some(CheckedNode(node))
    }
}

/// A node of a [`CheckedDoc`]: what [`crate::xmldsig::c14n::canonicalize`] takes, so that
/// only a document that passed every ground rule of [`CheckedXml::admit`] and every limit of
/// [`CheckedXml::parse`] is ever canonicalised.
#[derive(Clone, Copy)]
pub struct CheckedNode<'a, 'input>(Node<'a, 'input>);

impl<'a, 'input> CheckedNode<'a, 'input> {
    pub fn get(self) -> Node<'a, 'input> {
        self.0
    }
}

/// An element on the open path, or the one whose start tag is being read, with the
/// counts its limits need.
#[derive(Default)]
struct Open {
    attributes: usize,
    declarations: usize,
    children: usize,
}

/// What the scan has seen so far. Each method refuses the moment a limit is passed.
#[derive(Default)]
struct Scan<'t> {
    path: Vec<Open>,
    /// Namespace declarations on `path` (the sum of theirs, kept as it changes).
    on_path: usize,
    tag: Open,
    bindings: HashSet<(&'t str, &'t str)>,
    nodes: usize,
    comments: Vec<Range<usize>>,
}

impl<'t> Scan<'t> {
    fn node(&mut self) -> Result<(), XmlError> {
        self.nodes += 1;
        refuse_over(self.nodes, MAX_NODES, XmlError::TooManyNodes)
    }

    fn element_start(&mut self) -> Result<(), XmlError> {
        self.node()?;
        refuse_over(self.path.len() + 1, MAX_DEPTH, XmlError::TooDeep)?;
        if let Some(parent) = self.path.last_mut() {
            parent.children += 1;
            refuse_over(parent.children, MAX_CHILDREN, XmlError::TooManyChildren)?;
        }
        self.tag = Open::default();
        Ok(())
    }

    fn attribute(
        &mut self,
        prefix: &'t str,
        local: &'t str,
        value: &'t str,
    ) -> Result<(), XmlError> {
        let declaration = prefix == "xmlns" || (prefix.is_empty() && local == "xmlns");
        if !declaration {
            self.tag.attributes += 1;
            return refuse_over(
                self.tag.attributes,
                MAX_ATTRIBUTES,
                XmlError::TooManyAttributes,
            );
        }
        self.tag.declarations += 1;
        refuse_over(
            self.tag.declarations,
            MAX_NAMESPACES,
            XmlError::TooManyNamespaces,
        )?;
        refuse_over(
            self.on_path + self.tag.declarations,
            MAX_DECLARATIONS_ON_PATH,
            XmlError::TooManyNamespaces,
        )?;
        self.bindings.insert((local, value));
        refuse_over(self.bindings.len(), MAX_BINDINGS, XmlError::TooManyBindings)
    }

    fn element_end(&mut self, end: ElementEnd<'_>) -> Result<(), XmlError> {
        match end {
            ElementEnd::Open => {
                self.on_path += self.tag.declarations;
                self.path.push(std::mem::take(&mut self.tag));
            }
            ElementEnd::Empty => {}
            ElementEnd::Close(..) => {
                let closed = self.path.pop().ok_or(XmlError::NotWellFormed)?;
                self.on_path -= closed.declarations;
            }
        }
        Ok(())
    }
}

fn refuse_over(count: usize, limit: usize, error: XmlError) -> Result<(), XmlError> {
    if count > limit {
        Err(error)
    } else {
        Ok(())
    }
}

/// One pass over the tokens: depth, children, attributes and namespace declarations per
/// element, declarations on a path, distinct bindings and nodes, each refused the moment
/// it passes its limit. Returns where the comments are.
fn scan(text: &str) -> Result<Vec<Range<usize>>, XmlError> {
    let mut scan = Scan::default();
    for token in Tokenizer::from(text) {
        match token.map_err(|_| XmlError::NotWellFormed)? {
            Token::ElementStart { .. } => scan.element_start()?,
            Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => scan.attribute(prefix.as_str(), local.as_str(), value.as_str())?,
            Token::ElementEnd { end, .. } => scan.element_end(end)?,
            Token::Comment { span, .. } => {
                scan.node()?;
                scan.comments.push(span.range());
            }
            Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => return Err(XmlError::Doctype),
            _ => scan.node()?,
        }
    }
    // The tokenizer does not pair tags: an element left open is refused here, before
    // any tree is built.
    if !scan.path.is_empty() {
        return Err(XmlError::NotWellFormed);
    }
    Ok(scan.comments)
}

/// `text` without the byte ranges `cut` (in order, not overlapping).
fn without(text: &str, cut: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in cut {
        out.push_str(&text[at..range.start]);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(), XmlError> {
        CheckedXml::admit(text.as_bytes())?.parse().map(drop)
    }

    #[test]
    fn only_utf8_declarations_pass_and_are_dropped() {
        assert_eq!(strip_declaration("<?xml version=\"1.0\"?><a/>"), Ok("<a/>"));
        assert_eq!(
            strip_declaration("<?xml version='1.0' encoding='utf-8'?><a/>"),
            Ok("<a/>")
        );
        // libxml2 would read this as UTF-7 (`+ACI-` is a quote); roxmltree as UTF-8.
        assert_eq!(
            strip_declaration("<?xml version=\"1.0\" encoding=\"UTF-7\"?><a b=\"+ACI-\"/>"),
            Err(XmlError::NotUtf8)
        );
        assert_eq!(
            decode_utf8(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>"),
            Err(XmlError::NotUtf8)
        );
        assert_eq!(
            strip_declaration("<?xml-stylesheet x?><a/>"),
            Ok("<?xml-stylesheet x?><a/>")
        );
        assert_eq!(strip_declaration("<a/>"), Ok("<a/>"));
        // Not a quote before the value (and a multi-byte one at that): refused, no panic.
        for bad in [
            "<?xml encoding=é?><a/>",
            "<?xml encoding=\u{e9}UTF-8\u{e9}?><a/>",
        ] {
            assert_eq!(
                strip_declaration(bad),
                Err(XmlError::NotWellFormed),
                "{bad}"
            );
        }
        // A second declaration (or BOM) that libxml2 would take as the real one.
        for evil in [
            "<?xml version=\"1.0\"?><?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            "<?xml version=\"1.0\"?>\u{feff}<?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>",
            "<a/><?XML version=\"1.0\"?>",
        ] {
            assert_eq!(
                strip_declaration(evil),
                Err(XmlError::NotWellFormed),
                "{evil}"
            );
        }
        assert_eq!(
            decode_utf8(b"\xef\xbb\xbf\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-7\"?><a/>"),
            Err(XmlError::NotWellFormed)
        );
    }

    #[test]
    fn wide_documents_are_refused_before_any_xmldsig() {
        let ok = format!("<a>{}</a>", "<b/>".repeat(MAX_CHILDREN));
        assert!(parse(&ok).is_ok());
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_CHILDREN + 1));
        assert_eq!(parse(&wide).err(), Some(XmlError::TooManyChildren));
        let decls = |n: usize| -> String {
            (0..n)
                .map(|i| format!(r#" xmlns:p{i}="urn:u{i}""#))
                .collect()
        };
        assert!(parse(&format!("<a{}><b/></a>", decls(MAX_NAMESPACES))).is_ok());
        assert_eq!(
            parse(&format!("<a{}><b/></a>", decls(MAX_NAMESPACES + 1))).err(),
            Some(XmlError::TooManyNamespaces)
        );
    }

    #[test]
    fn doctype_and_entities_are_refused_before_parsing() {
        for bad in [
            "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
            "<?xml version='1.0'?><!doctype x SYSTEM 'file:///etc/passwd'><x/>",
            "<x><!ENTITY a 'b'></x>",
        ] {
            assert_eq!(
                refuse_doctype(bad.as_bytes()),
                Err(XmlError::Doctype),
                "{bad}"
            );
            assert_eq!(parse(bad).err(), Some(XmlError::Doctype), "{bad}");
        }
        assert!(parse("<x>fine</x>").is_ok());
    }

    #[test]
    fn depth_is_capped() {
        let deep = "<a>".repeat(70) + &"</a>".repeat(70);
        assert_eq!(parse(&deep).err(), Some(XmlError::TooDeep));
        let ok = "<a>".repeat(60) + &"</a>".repeat(60);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn utf16_is_refused_by_name_and_a_bom_dropped() {
        assert_eq!(
            decode_utf8(&[0xFF, 0xFE, 0x3C, 0x00]),
            Err(XmlError::NotUtf8)
        );
        assert_eq!(decode_utf8(b"\xEF\xBB\xBF<x/>"), Ok("<x/>"));
    }

    #[test]
    fn attribute_bombs_are_refused_before_a_tree_is_built() {
        let attrs = |n: usize| -> String { (0..n).map(|i| format!(r#" a{i}="""#)).collect() };
        assert!(parse(&format!("<a{}/>", attrs(MAX_ATTRIBUTES))).is_ok());
        assert_eq!(
            parse(&format!("<a{}/>", attrs(MAX_ATTRIBUTES + 1))).err(),
            Some(XmlError::TooManyAttributes)
        );
        // The security review's input (F-2): 6,000 attributes on one element.
        assert_eq!(
            CheckedXml::admit(format!("<a{}/>", attrs(6000)).as_bytes()).err(),
            Some(XmlError::TooManyAttributes)
        );
        // Namespace declarations are not attributes, and have their own limit.
        let decls: String = (0..MAX_NAMESPACES)
            .map(|i| format!(r#" xmlns:p{i}="urn:u{i}""#))
            .collect();
        assert!(parse(&format!("<a{decls}{}/>", attrs(MAX_ATTRIBUTES))).is_ok());
    }

    #[test]
    fn declarations_on_a_path_and_distinct_bindings_are_bounded() {
        let level = |l: usize| -> String {
            (0..30)
                .map(|i| format!(r#" xmlns:p{l}x{i}="urn:{l}:{i}""#))
                .collect()
        };
        // Each element is within its own limit; the path from the root is not.
        let nested = format!("<a{}><b{}><c{}/></b></a>", level(0), level(1), level(2));
        assert_eq!(parse(&nested).err(), Some(XmlError::TooManyNamespaces));
        // Siblings do not add up on a path...
        let siblings = |n: usize| -> String {
            let inner: String = (0..n).map(|s| format!("<b{}/>", level(s))).collect();
            format!("<a>{inner}</a>")
        };
        assert!(parse(&siblings(3)).is_ok());
        // ...but every distinct binding in the document counts.
        assert_eq!(parse(&siblings(20)).err(), Some(XmlError::TooManyBindings));
    }

    #[test]
    fn admitted_text_has_no_comments_and_lf_line_endings() {
        let admitted = CheckedXml::admit(b"<n a=\"1\">x<!-- c -->y\r\nz<!---->\r</n>").unwrap();
        assert_eq!(admitted.as_str(), "<n a=\"1\">xy\nz\n</n>");
        assert_eq!(format!("{admitted:?}"), "CheckedXml(18 bytes)");
        assert_eq!(
            CheckedXml::admit(b"<n>a</m>").unwrap().parse().err(),
            Some(XmlError::NotWellFormed)
        );
        assert_eq!(
            CheckedXml::admit(b"<n>a</n></n>").err(),
            Some(XmlError::NotWellFormed)
        );
        assert_eq!(
            CheckedXml::admit(b"<n><m>a</m>").err(),
            Some(XmlError::NotWellFormed)
        );
        // Found by saml_parse: `<!--` inside a processing instruction is its text.
        let pi = CheckedXml::admit(b"<?pi a<!--b?><n/>").unwrap();
        assert_eq!(pi.as_str(), "<?pi a<!--b?><n/>");
    }
}
