//! XML canonicalisation without comments of one element's subtree, as XML-DSig needs it:
//! Exclusive XML Canonicalization 1.0 (with an InclusiveNamespaces PrefixList) and Canonical
//! XML 1.0 / 1.1. The subtree may omit one descendant's subtree (the enveloped
//! `ds:Signature`, XML-DSig §6.6.4): that is the only kind of document subset tessera
//! canonicalises, and the rules below are written for it.
//!
//! The code follows the specifications' own structure (C14N 1.0 §2.3, Element Nodes): an
//! element is its start tag — QName, namespace axis (`Writer::namespace_axis`), attribute
//! axis (`attribute_axis`) —, its children and its end tag. One function per rule, each
//! headed by the rule it implements, quoted (abridged).
//!
//! The apex is a [`CheckedNode`], a node of a [`crate::xml::CheckedDoc`], so what C14N asks
//! of the XML processor before it starts (C14N 1.0 §1.1) is done, and the work here is
//! bounded:
//! - no DOCTYPE ([`crate::xml::CheckedXml::admit`]): no entity references other than the
//!   predefined ones, no default attributes and no attribute types, so every attribute value
//!   is normalised as CDATA (XML 1.0 §3.3.3) by roxmltree, which also replaces character and
//!   entity references and CDATA sections by their text;
//! - UTF-8 only, the XML declaration dropped (C14N 1.0 §1.1: "The document is encoded in
//!   UTF-8", "The XML declaration and document type declaration (DTD) are removed");
//! - line endings normalised to `#xA` (XML 1.0 §2.11) by `admit`: roxmltree alone leaves some
//!   literal CRs, which would be rendered as `&#xD;`;
//! - no comments (`admit` removes them; the algorithms here render none anyway);
//! - depth ≤ [`crate::xml::MAX_DEPTH`] (the recursion of `Writer::element`), namespaces
//!   in scope ≤ [`crate::xml::MAX_NAMESPACES`] and attributes ≤
//!   [`crate::xml::MAX_ATTRIBUTES`] per element (the work per element).
//!
//! roxmltree keeps no prefixes, so element and attribute names are read back from the input
//! text by their positions (`qname_of`).

use std::ops::Range;

use roxmltree::{Node, NodeId, NodeType, PI};

use crate::xml::CheckedNode;

/// The namespace of the `xml:` prefix, which is never declared; C14N 1.0 §2.3: "omit
/// namespace node with local name xml, which defines the xml prefix".
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// A canonicalisation algorithm, as a `CanonicalizationMethod` or `Transform` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `xml-exc-c14n#`: a namespace is rendered where it is visibly utilised, and for the
    /// prefixes of the PrefixList (`""` is `#default`) where it is in scope.
    Exclusive { inclusive_prefixes: Vec<String> },
    /// Canonical XML 1.0 (`v11 = false`) or 1.1: every namespace in scope is rendered at
    /// the apex, and the `xml:` attributes of its ancestors are inherited.
    Inclusive { v11: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum C14nError {
    /// C14N 1.1 §2.4 joins `xml:base` values of ancestors (RFC 3986 resolution); no signer
    /// of SAML needs that, so it is refused rather than approximated.
    #[error("xml:base above an element canonicalised with C14N 1.1 is not supported")]
    XmlBase,
    #[error("a name could not be read back from the document text")]
    Name,
    /// C14N 1.0 §2: "MUST report an operation failure on documents containing relative
    /// namespace URIs" (exclusive C14N inherits the rule).
    #[error("a namespace URI is relative")]
    RelativeNamespace,
}

/// `apex` and its descendants except `omit`'s subtree, canonicalised by `method`: the
/// octets of an XML-DSig same-document Reference (`#` + the apex's ID, or `""` for the
/// document element) after the enveloped-signature transform removed `omit`.
pub fn canonicalize(
    apex: CheckedNode<'_, '_>,
    omit: Option<NodeId>,
    method: &Method,
) -> Result<String, C14nError> {
    let apex = apex.get();
    let mut writer = Writer {
        text: apex.document().input_text(),
        method,
        apex: apex.id(),
        omit,
        out: String::with_capacity(apex.range().len() + 512),
    };
    let inherited = inherited_xml_attributes(apex, method)?;
    writer.element(apex, &[], &inherited)?;
    Ok(writer.out)
}

/// A namespace binding: prefix (`""` for the default namespace) and URI (`""` for none).
type Binding<'a> = (&'a str, &'a str);

/// An attribute node as it is rendered.
#[derive(Clone, Copy)]
struct Attr<'a> {
    namespace: &'a str,
    local: &'a str,
    qname: &'a str,
    value: &'a str,
}

struct Writer<'m, 't> {
    text: &'t str,
    method: &'m Method,
    apex: NodeId,
    omit: Option<NodeId>,
    out: String,
}

impl<'t> Writer<'_, 't> {
    /// C14N 1.0 §2.3, Element Nodes: "an open angle bracket (<), the element QName, the
    /// result of processing the namespace axis, the result of processing the attribute
    /// axis, a close angle bracket (>), the result of processing the child nodes of the
    /// element that are in the node-set (in document order), an open angle bracket, a
    /// forward slash (/), the element QName, and a close angle bracket."
    ///
    /// `rendered` is what the output ancestors of `e` declared; `inherited` the `xml:*`
    /// attributes the apex inherits ([`inherited_xml_attributes`]; empty below it).
    fn element<'a>(
        &mut self,
        e: Node<'a, 't>,
        rendered: &[Binding<'a>],
        inherited: &[Attr<'a>],
    ) -> Result<(), C14nError> {
        let qname = element_qname(self.text, e)?;
        let declared = self.namespace_axis(e, qname, rendered)?;
        let attributes = attribute_axis(self.text, e, inherited)?;
        self.start_tag(qname, &declared, &attributes);
        let scope = in_scope_below(rendered, &declared);
        // The node-set: every child, except the omitted subtree (XML-DSig §6.6.4).
        let omit = self.omit;
        for child in e.children().filter(|c| Some(c.id()) != omit) {
            match child.node_type() {
                NodeType::Element => self.element(child, &scope, &[])?,
                NodeType::Text => text_node(child.text().unwrap_or_default(), &mut self.out),
                NodeType::PI => {
                    if let Some(pi) = child.pi() {
                        processing_instruction(pi, &mut self.out);
                    }
                }
                // C14N 1.0 §2.3, Comment Nodes: "Nothing if generating canonical XML
                // without comments." (`admit` has removed them already.)
                NodeType::Comment => {}
                // Only ever the parent of the document element, never a child.
                NodeType::Root => {}
            }
        }
        self.end_tag(qname);
        Ok(())
    }

    /// The namespace axis of `e`: the namespace nodes it renders, sorted by prefix (C14N
    /// 1.0 §2.2: "An element's namespace nodes are sorted lexicographically by local name
    /// (the default namespace node, if one exists, has no local name and is therefore
    /// lexicographically least)"). The candidates are the algorithm's
    /// ([`inclusive_namespaces`], [`exclusive_namespaces`]); of those, what an output
    /// ancestor rendered already is not rendered again ([`rendered_by_output_ancestor`]).
    fn namespace_axis<'a>(
        &self,
        e: Node<'a, 't>,
        qname: &'t str,
        rendered: &[Binding<'a>],
    ) -> Result<Vec<Binding<'a>>, C14nError> {
        let candidates = match self.method {
            Method::Inclusive { .. } => inclusive_namespaces(self.text, e, e.id() == self.apex),
            Method::Exclusive { inclusive_prefixes } => {
                exclusive_namespaces(self.text, e, qname, inclusive_prefixes)?
            }
        };
        let mut declared: Vec<Binding<'a>> = Vec::new();
        for (prefix, uri) in candidates {
            refuse_relative_namespace(uri)?;
            if !rendered_by_output_ancestor(rendered, prefix, uri)
                && !declared.iter().any(|(p, _)| *p == prefix)
            {
                declared.push((prefix, uri));
            }
        }
        declared.sort_unstable();
        Ok(declared)
    }

    /// The start tag: `<`, the QName, the namespace axis, the attribute axis, `>`. C14N 1.0
    /// §2.3, Namespace Nodes: "process the namespace node N in the same way as an attribute
    /// node, except assign the local name xmlns to the default namespace node"; and
    /// "Namespace nodes have a lesser document order position than attribute nodes" (§2.2).
    fn start_tag(&mut self, qname: &str, declared: &[Binding<'_>], attributes: &[Attr<'_>]) {
        self.out.push('<');
        self.out.push_str(qname);
        for (prefix, uri) in declared {
            if prefix.is_empty() {
                attribute_node("xmlns", uri, &mut self.out);
            } else {
                self.out.push_str(" xmlns:");
                self.out.push_str(prefix);
                self.out.push_str("=\"");
                escape_attribute(uri, &mut self.out);
                self.out.push('"');
            }
        }
        for a in attributes {
            attribute_node(a.qname, a.value, &mut self.out);
        }
        self.out.push('>');
    }

    /// The end tag: "an open angle bracket, a forward slash (/), the element QName, and a
    /// close angle bracket" (C14N 1.0 §2.3). Empty elements are rendered as a start-end tag
    /// pair too (C14N 1.0 §1.1).
    fn end_tag(&mut self, qname: &str) {
        self.out.push_str("</");
        self.out.push_str(qname);
        self.out.push('>');
    }
}

// The namespace axis.

/// Canonical XML 1.0 and 1.1 (C14N 1.0 §2.3): every namespace node of `e` is a candidate
/// — in XPath, an element has a namespace node for every prefix in scope and for a
/// non-empty default namespace; here also `("", "")` where the default is undeclared, which
/// [`rendered_by_output_ancestor`] turns into `xmlns=""` only where it must be.
///
/// Below the apex, an element that declares no namespace has its parent's namespace nodes,
/// and its parent is its nearest output ancestor (only the enveloped signature's subtree
/// is left out, whole), which rendered them all: no candidate. That skips elements ×
/// namespaces-in-scope work (9.5 ms for a 48 KiB token with 32 namespaces in scope,
/// security review F-2).
fn inclusive_namespaces<'a>(text: &str, e: Node<'a, '_>, is_apex: bool) -> Vec<Binding<'a>> {
    if !is_apex && !may_declare_namespaces(text, e) {
        return Vec::new();
    }
    e.namespaces()
        .map(|ns| (ns.name().unwrap_or(""), ns.uri()))
        .collect()
}

/// Exclusive C14N 1.0 §3: a namespace node is a candidate where "it is visibly utilized by
/// its parent element": "E or an attribute node in the node-set with parent E has a
/// qualified name in which P is the prefix", or, for the default namespace, "if E has no
/// prefix". `xml:` attributes utilise nothing (that prefix is never declared). The
/// namespace nodes of the prefixes the InclusiveNamespaces PrefixList names are processed
/// as Canonical XML processes them: those in scope are candidates (`""`, from `#default`,
/// is the default namespace).
fn exclusive_namespaces<'a, 't: 'a>(
    text: &'t str,
    e: Node<'a, 't>,
    qname: &'t str,
    inclusive_prefixes: &[String],
) -> Result<Vec<Binding<'a>>, C14nError> {
    let mut out = vec![(prefix_of(qname), e.tag_name().namespace().unwrap_or(""))];
    for a in e.attributes() {
        let Some(ns) = a.namespace().filter(|ns| *ns != NS_XML) else {
            continue;
        };
        out.push((prefix_of(qname_of(text, a.range_qname(), a.name())?), ns));
    }
    for p in inclusive_prefixes {
        if p.is_empty() {
            out.push(("", e.default_namespace().unwrap_or("")));
        } else if let Some(ns) = e.namespaces().find(|ns| ns.name() == Some(p)) {
            // A listed prefix not in scope has no namespace node to render.
            out.push((ns.name().unwrap_or(""), ns.uri()));
        }
    }
    Ok(out)
}

/// C14N 1.0 §2.3, Namespace Nodes: "A namespace node N is ignored if the nearest ancestor
/// element of the node's parent element that is in the node-set has a namespace node in the
/// node-set with the same local name and value as N." Exclusive C14N 1.0 §3 renders one
/// only if "the prefix has not yet been rendered by any output ancestor, or the nearest
/// output ancestor of its parent element that visibly utilizes the namespace prefix does
/// not have a namespace node in the node-set with the same namespace prefix and value": an
/// output ancestor renders a prefix exclusively where it utilises it, so both rules are
/// "the binding output ancestors last rendered for the prefix is the same". An undeclared
/// default (`""`) counts as rendered until an output ancestor declares a non-empty one:
/// C14N 1.0 §2.3 generates `xmlns=""` "if and only if [...] The nearest ancestor element of
/// E in the node-set has a default namespace node in the node-set".
fn rendered_by_output_ancestor(rendered: &[Binding<'_>], prefix: &str, uri: &str) -> bool {
    let last = rendered
        .iter()
        .find(|(p, _)| *p == prefix)
        .map_or("", |(_, uri)| uri);
    last == uri
}

/// What the children of an element see as rendered by their output ancestors: `rendered`
/// with what the element declared. Copied only when it declared something (most elements
/// declare nothing).
fn in_scope_below<'s, 'a>(
    rendered: &'s [Binding<'a>],
    declared: &[Binding<'a>],
) -> std::borrow::Cow<'s, [Binding<'a>]> {
    if declared.is_empty() {
        return rendered.into();
    }
    let mut scope = rendered.to_vec();
    for &(prefix, uri) in declared {
        match scope.iter_mut().find(|(p, _)| *p == prefix) {
            Some(binding) => binding.1 = uri,
            None => scope.push((prefix, uri)),
        }
    }
    scope.into()
}

/// C14N 1.0 §2: "MUST report an operation failure on documents containing relative
/// namespace URIs" (of the rendered subset; exclusive C14N inherits the rule). Absolute
/// means a scheme, RFC 3986 §3.1: a letter, then letters, digits, `+`, `-`, `.`, and a
/// colon. `""` (no namespace) is not a URI.
fn refuse_relative_namespace(uri: &str) -> Result<(), C14nError> {
    if uri.is_empty() {
        return Ok(());
    }
    let absolute = uri.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if absolute {
        Ok(())
    } else {
        Err(C14nError::RelativeNamespace)
    }
}

/// Whether `e`'s start tag may declare a namespace: `xmlns` anywhere in it (a false
/// positive, in an attribute value, only costs the full namespace axis).
fn may_declare_namespaces(text: &str, e: Node<'_, '_>) -> bool {
    let Some(tag) = text.get(e.range().start..) else {
        return true;
    };
    let mut quote = None;
    for (i, b) in tag.bytes().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return memchr::memmem::find(&tag.as_bytes()[..i], b"xmlns").is_some(),
            _ => {}
        }
    }
    true
}

// The attribute axis.

/// The attribute axis of `e`: its attributes (namespace declarations are namespace nodes,
/// not attributes) and the `inherited` ones, sorted as C14N 1.0 §2.2 orders them: "An
/// element's attribute nodes are sorted lexicographically with namespace URI as the primary
/// key and local name as the secondary key (an empty namespace URI is lexicographically
/// least)" — by UCS code point, which is the byte order of UTF-8 `str`s.
fn attribute_axis<'a, 't: 'a>(
    text: &'t str,
    e: Node<'a, 't>,
    inherited: &[Attr<'a>],
) -> Result<Vec<Attr<'a>>, C14nError> {
    let mut out = e
        .attributes()
        .map(|a| {
            Ok(Attr {
                namespace: a.namespace().unwrap_or(""),
                local: a.name(),
                qname: qname_of(text, a.range_qname(), a.name())?,
                value: a.value(),
            })
        })
        .collect::<Result<Vec<_>, C14nError>>()?;
    out.extend_from_slice(inherited);
    out.sort_unstable_by(|a, b| (a.namespace, a.local).cmp(&(b.namespace, b.local)));
    Ok(out)
}

/// The `xml:*` attributes the apex inherits from its ancestors, which are not in the
/// node-set. By algorithm:
///
/// - Canonical XML 1.0 §2.4: "All element nodes along E's ancestor axis are examined for
///   nearest occurrences of attributes in the xml namespace, such as xml:lang and xml:space
///   (whether or not they are in the node-set). From this list of attributes, remove any
///   that are in E's attribute axis (whether or not they are in the node-set). Then,
///   lexicographically merge this attribute list with the nodes of E's attribute axis".
/// - Canonical XML 1.1 §2.4: only the "simple inheritable attributes", xml:lang and
///   xml:space; "The xml:id attribute is not a simple inheritable attribute"; the apex's
///   xml:base, its own one included, is joined with its ancestors' (RFC 3986 resolution):
///   refused ([`C14nError::XmlBase`]) wherever an ancestor has one.
/// - Exclusive C14N 1.0 §3: "This search and copying are omitted from the Exclusive XML
///   Canonicalization method."
fn inherited_xml_attributes<'a>(
    apex: Node<'a, '_>,
    method: &Method,
) -> Result<Vec<Attr<'a>>, C14nError> {
    let Method::Inclusive { v11 } = *method else {
        return Ok(Vec::new());
    };
    let text = apex.document().input_text();
    let mut out: Vec<Attr<'a>> = Vec::new();
    for ancestor in apex.ancestors().skip(1).filter(Node::is_element) {
        for a in ancestor
            .attributes()
            .filter(|a| a.namespace() == Some(NS_XML))
        {
            if v11 && a.name() == "base" {
                return Err(C14nError::XmlBase);
            }
            let own = apex
                .attributes()
                .any(|o| o.namespace() == Some(NS_XML) && o.name() == a.name());
            if own || out.iter().any(|o| o.local == a.name()) {
                continue;
            }
            if v11 && !matches!(a.name(), "lang" | "space") {
                continue;
            }
            out.push(Attr {
                namespace: NS_XML,
                local: a.name(),
                qname: qname_of(text, a.range_qname(), a.name())?,
                value: a.value(),
            });
        }
    }
    Ok(out)
}

// Names.

/// A name as the input writes it, prefix included (C14N 1.0 §2.3 renders QNames; roxmltree
/// keeps only local names and namespace URIs): the text at `range`, which must end in
/// `local`.
fn qname_of<'t>(text: &'t str, range: Range<usize>, local: &str) -> Result<&'t str, C14nError> {
    let qname = text.get(range).ok_or(C14nError::Name)?;
    if qname.rsplit(':').next() != Some(local) {
        return Err(C14nError::Name);
    }
    Ok(qname)
}

/// An element's QName: from after its `<` to the first space, `/` or `>`.
fn element_qname<'t>(text: &'t str, e: Node<'_, '_>) -> Result<&'t str, C14nError> {
    let start = e.range().start + 1;
    let rest = text.get(start..).ok_or(C14nError::Name)?;
    let len = rest
        .find([' ', '\t', '\r', '\n', '/', '>'])
        .ok_or(C14nError::Name)?;
    qname_of(text, start..start + len, e.tag_name().name())
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(prefix, _)| prefix)
}

// Serialisation of the other nodes and of values.

/// C14N 1.0 §2.3, Attribute Nodes: "a space, the node's QName, an equals sign, an open
/// quotation mark (double quote), the modified string value, and a close quotation mark
/// (double quote)".
fn attribute_node(qname: &str, value: &str, out: &mut String) {
    out.push(' ');
    out.push_str(qname);
    out.push_str("=\"");
    escape_attribute(value, out);
    out.push('"');
}

/// C14N 1.0 §2.3, Attribute Nodes: "The string value of the node is modified by replacing
/// all ampersands (&) with `&amp;`, all open angle brackets (<) with `&lt;`, all quotation
/// mark characters with `&quot;`, and the whitespace characters #x9, #xA, and #xD, with
/// character references. The character references are written in uppercase hexadecimal
/// with no leading zeroes".
fn escape_attribute(s: &str, out: &mut String) {
    escape(s, out, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'"' => Some("&quot;"),
        b'\t' => Some("&#x9;"),
        b'\n' => Some("&#xA;"),
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// C14N 1.0 §2.3, Text Nodes: "the string value, except all ampersands are replaced by
/// `&amp;`, all open angle brackets (<) are replaced by `&lt;`, all closing angle brackets
/// (>) are replaced by `&gt;`, and all #xD characters are replaced by `&#xD;`."
fn text_node(s: &str, out: &mut String) {
    escape(s, out, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// C14N 1.0 §2.3, Processing Instruction (PI) Nodes: "The opening PI symbol (<?), the PI
/// target name of the node, a leading space and the string value if it is not empty, and
/// the closing PI symbol (?>). If the string value is empty, then the leading space is not
/// added." (The `#xA` rendered around PIs outside the document element never applies: an
/// element's subtree has none.)
fn processing_instruction(pi: PI<'_>, out: &mut String) {
    out.push_str("<?");
    out.push_str(pi.target);
    if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
        out.push(' ');
        out.push_str(value);
    }
    out.push_str("?>");
}

fn escape(s: &str, out: &mut String, replacement: impl Fn(u8) -> Option<&'static str>) {
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        // Every escaped byte is ASCII, so `i` is always a char boundary here.
        if let Some(r) = replacement(b) {
            out.push_str(&s[from..i]);
            out.push_str(r);
            from = i + 1;
        }
    }
    out.push_str(&s[from..]);
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod w3c;
