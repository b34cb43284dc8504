use super::*;
use crate::xml::CheckedXml;

/// `xml` admitted and parsed as every input is; `pick` chooses the apex (and what to
/// omit) in the tree.
fn canonical(
    xml: &str,
    method: &Method,
    pick: impl for<'a, 'i> Fn(Node<'a, 'i>) -> (Node<'a, 'i>, Option<NodeId>),
) -> Result<String, C14nError> {
    let admitted = CheckedXml::admit(xml.as_bytes()).unwrap();
    let doc = admitted.parse().unwrap();
    let (apex, omit) = pick(doc.root_element());
    canonicalize(doc.node(apex).unwrap(), omit, method)
}

fn exclusive(prefixes: &[&str]) -> Method {
    Method::Exclusive {
        inclusive_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn exc(xml: &str, prefixes: &[&str]) -> String {
    canonical(xml, &exclusive(prefixes), |root| (root, None)).unwrap()
}

fn first_child<'a, 'i>(root: Node<'a, 'i>) -> (Node<'a, 'i>, Option<NodeId>) {
    (root.first_element_child().unwrap(), None)
}

fn inc_child(xml: &str, v11: bool) -> String {
    canonical(xml, &Method::Inclusive { v11 }, first_child).unwrap()
}

/// Below the apex, inclusive C14N renders only what an element itself changes: the
/// shortcut for elements that declare nothing agrees with the full namespace axis
/// (redeclarations, an undeclared default, `xmlns` inside a value).
#[test]
fn inclusive_renders_below_the_apex_only_what_an_element_declares() {
    let xml = r#"<r xmlns:p="urn:p1" xmlns="urn:d"><a><b v="xmlns:p"><p:c xmlns:p="urn:p2"><d/><e xmlns=""><f/></e></p:c></b><g xmlns:q="urn:q"/></a></r>"#;
    assert_eq!(
        inc_child(xml, false),
        r#"<a xmlns="urn:d" xmlns:p="urn:p1"><b v="xmlns:p"><p:c xmlns:p="urn:p2"><d></d><e xmlns=""><f></f></e></p:c></b><g xmlns:q="urn:q"></g></a>"#
    );
}

#[test]
fn exclusive_renders_only_visibly_utilised_namespaces_sorted() {
    let xml =
        r#"<a:e xmlns:b="urn:b" xmlns:a="urn:a" xmlns="urn:d" z="1" b:y="2" a:x="3"><f/></a:e>"#;
    assert_eq!(
        exc(xml, &[]),
        r#"<a:e xmlns:a="urn:a" xmlns:b="urn:b" z="1" a:x="3" b:y="2"><f xmlns="urn:d"></f></a:e>"#
    );
    assert_eq!(
        exc(xml, &["b", ""]),
        r#"<a:e xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b" z="1" a:x="3" b:y="2"><f></f></a:e>"#
    );
}

#[test]
fn default_namespace_undeclared_where_an_output_ancestor_declared_one() {
    let xml = r#"<e xmlns="urn:d"><f xmlns=""><g/></f></e>"#;
    assert_eq!(
        exc(xml, &[]),
        r#"<e xmlns="urn:d"><f xmlns=""><g></g></f></e>"#
    );
    let xml = r#"<p:e xmlns:p="urn:p"><f xmlns=""/></p:e>"#;
    assert_eq!(exc(xml, &[]), r#"<p:e xmlns:p="urn:p"><f></f></p:e>"#);
}

#[test]
fn inclusive_apex_carries_every_namespace_and_xml_attribute_in_scope() {
    let xml = r#"<r xmlns="urn:d" xmlns:p="urn:p" xml:lang="en" xml:space="preserve"><p:c a="1"><d/></p:c></r>"#;
    assert_eq!(
        inc_child(xml, false),
        r#"<p:c xmlns="urn:d" xmlns:p="urn:p" a="1" xml:lang="en" xml:space="preserve"><d></d></p:c>"#
    );
    let xml = r#"<r xml:base="http://a/"><c/></r>"#;
    assert_eq!(inc_child(xml, false), r#"<c xml:base="http://a/"></c>"#);
    assert_eq!(
        canonical(xml, &Method::Inclusive { v11: true }, first_child),
        Err(C14nError::XmlBase)
    );
}

/// C14N 1.1 joins the apex's own xml:base with its ancestors' (libxml2 renders
/// `xml:base="http://a/b/c"` here): refused like an inherited one, not rendered as `c`.
/// C14N 1.0 keeps the apex's own value; an xml:base below the apex is rendered as is.
#[test]
fn c14n11_refuses_an_xml_base_it_would_have_to_join() {
    let xml = r#"<r xml:base="http://a/"><c xml:base="b/c"><d xml:base="e"/></c></r>"#;
    assert_eq!(
        canonical(xml, &Method::Inclusive { v11: true }, first_child),
        Err(C14nError::XmlBase)
    );
    assert_eq!(
        inc_child(xml, false),
        r#"<c xml:base="b/c"><d xml:base="e"></d></c>"#
    );
    assert_eq!(
        canonical(xml, &Method::Inclusive { v11: true }, |root| (root, None)),
        Ok(r#"<r xml:base="http://a/"><c xml:base="b/c"><d xml:base="e"></d></c></r>"#.into())
    );
}

#[test]
fn text_and_attribute_values_are_escaped_and_entities_replaced() {
    let xml = "<e a=\"&lt;&amp;&quot;&#9;&#10;&#13;'>\">&lt;&amp;&gt;&#13;<![CDATA[<x>]]></e>";
    assert_eq!(
        exc(xml, &[]),
        "<e a=\"&lt;&amp;&quot;&#x9;&#xA;&#xD;'>\">&lt;&amp;&gt;&#xD;&lt;x&gt;</e>"
    );
    // Line endings normalised by admit; attribute whitespace normalised to spaces.
    assert_eq!(
        exc("<e a=\"x\r\ny\">1\r\n2\r3</e>", &[]),
        "<e a=\"x y\">1\n2\n3</e>"
    );
}

#[test]
fn pis_are_kept_and_one_subtree_omitted() {
    let xml = r#"<e><?pi  data ?><?empty?><s><t/></s><u/></e>"#;
    let out = canonical(xml, &exclusive(&[]), |root| {
        let s = root.children().find(|n| n.has_tag_name("s")).unwrap();
        (root, Some(s.id()))
    })
    .unwrap();
    assert_eq!(out, "<e><?pi data ?><?empty?><u></u></e>");
}

#[test]
fn differences_the_differential_fuzzer_found_are_fixed() {
    // Relative namespace URIs: an operation failure (C14N 1.0 §2).
    assert_eq!(
        canonical(r#"<r xmlns="a"/>"#, &exclusive(&[]), |root| (root, None)),
        Err(C14nError::RelativeNamespace)
    );
    // Inherited xml:* attributes keep their own names (1.0); 1.1 inherits only
    // xml:lang and xml:space.
    let xml = r#"<r xml:foo="1" xml:lang="de"><c/></r>"#;
    assert_eq!(
        inc_child(xml, false),
        r#"<c xml:foo="1" xml:lang="de"></c>"#
    );
    assert_eq!(inc_child(xml, true), r#"<c xml:lang="de"></c>"#);
}

#[test]
fn names_are_read_back_with_their_prefixes() {
    let xml = "<x:e\n xmlns:x=\"urn:x\" xmlns:y=\"urn:x\"><y:f/><x:g\t/></x:e>";
    assert_eq!(
        exc(xml, &[]),
        r#"<x:e xmlns:x="urn:x"><y:f xmlns:y="urn:x"></y:f><x:g></x:g></x:e>"#
    );
}

#[test]
fn only_a_node_of_the_checked_document_is_canonicalised() {
    let admitted = CheckedXml::admit(b"<a/>").unwrap();
    let doc = admitted.parse().unwrap();
    let other = roxmltree::Document::parse("<a/>").unwrap();
    assert!(doc.node(other.root_element()).is_none());
    assert!(doc.node(doc.root_element()).is_some());
}
