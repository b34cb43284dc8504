//! The XML ground rules every SAML input (assertions, responses, IdP metadata) goes
//! through before and while it is read: size cap, DOCTYPE refused before any parser sees
//! it, a strict read-only parse with depth and node limits, and text read the one safe way.
//!
//! A leaf module: no policy, no crypto. `trust` (metadata) and `verify::saml` (assertions)
//! both build on it.

use roxmltree::{Document, Node, ParsingOptions};

pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

/// SPEC §4.1 limits: XML nesting depth.
pub const MAX_DEPTH: usize = 64;
/// Nodes (elements, attributes, text) in one document: a 48 KiB assertion has a few
/// thousand; metadata aggregates of a few MiB stay well below.
const MAX_NODES: u32 = 200_000;

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
pub fn refuse_doctype(bytes: &[u8]) -> Result<(), XmlError> {
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

/// Strict parse: DOCTYPE refused (again, by the parser), node limit, depth limit.
pub fn parse(text: &str) -> Result<Document<'_>, XmlError> {
    refuse_doctype(text.as_bytes())?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::Doctype,
        _ => XmlError::NotWellFormed,
    })?;
    if depth_exceeds(doc.root(), MAX_DEPTH) {
        return Err(XmlError::TooDeep);
    }
    for node in doc.descendants().filter(Node::is_element) {
        if node
            .children()
            .filter(Node::is_element)
            .nth(MAX_CHILDREN)
            .is_some()
        {
            return Err(XmlError::TooManyChildren);
        }
        if node.namespaces().len() > MAX_NAMESPACES {
            return Err(XmlError::TooManyNamespaces);
        }
    }
    Ok(doc)
}

/// Iterative so that a deep document cannot exhaust the stack while being measured.
fn depth_exceeds(root: Node<'_, '_>, max: usize) -> bool {
    let mut stack = vec![(root, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > max {
            return true;
        }
        stack.extend(
            node.children()
                .filter(Node::is_element)
                .map(|c| (c, depth + 1)),
        );
    }
    false
}

/// Text as UTF-8, with a UTF-8 byte order mark and the XML declaration dropped. UTF-16
/// (Entra ID's re-encoded metadata) is refused by name rather than misread, and so is a
/// declaration naming any encoding but UTF-8: roxmltree reads every document as UTF-8,
/// while other XML stacks honour the declaration, so `encoding="UTF-7"` would make two
/// readers see different documents (`+ACI-` is a quote to libxml2, text to us; this was
/// exploitable while xmlsec verified what roxmltree read). Without its declaration the
/// text is UTF-8 to every parser.
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, XmlError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(XmlError::NotUtf8);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    strip_declaration(text)
}

/// `text` without its XML declaration (XML 1.0 §2.8: only at the very start), which may
/// name UTF-8 only.
pub fn strip_declaration(text: &str) -> Result<&str, XmlError> {
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
pub fn normalize_line_endings(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\r') {
        return text.into();
    }
    text.replace("\r\n", "\n").replace('\r', "\n").into()
}

/// An element that may hold text only (NameID, Issuer, Audience: simple types): its full
/// text, or an error naming `what` when it has child elements.
pub fn simple_text(node: Node<'_, '_>, what: &'static str) -> Result<String, XmlError> {
    if node.children().any(|c| c.is_element()) {
        return Err(XmlError::NotText(what));
    }
    Ok(full_text(node))
}

/// SPEC §4.1: an element's full text content: every descendant text node joined, comments
/// and processing instructions contributing nothing. `a@corp.example<!---->.evil.example` is
/// `a@corp.example.evil.example`, never the first text node alone.
pub fn full_text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect()
}

/// `node` is the element `{ns}name`.
pub fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

/// Element children named `{ns}name`.
pub fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is(*c, ns, name))
}

/// The one child `{ns}name`, if exactly one exists; `Err(count)` otherwise when more.
pub fn only_child<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
) -> Result<Option<Node<'a, 'input>>, usize> {
    let mut it = children(node, ns, name);
    let first = it.next();
    match it.count() {
        0 => Ok(first),
        more => Err(more + 1),
    }
}

/// A `xs:dateTime` as Unix seconds (SAML core §1.3.3: UTC). `Z`, no zone, or a
/// `±HH:MM` offset; fractional seconds are truncated. `None` when malformed.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| num_of(s.get(r)?);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let (sign, hhmm) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let hb = hhmm.as_bytes();
            if hb.len() != 5 || hb[2] != b':' {
                return None;
            }
            let h = num_of(hhmm.get(0..2)?)?;
            let m = num_of(hhmm.get(3..5)?)?;
            if h > 14 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// ASCII digits only (`str::parse` would take a sign).
fn num_of(part: &str) -> Option<i64> {
    if part.bytes().all(|c| c.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// Unix seconds as a `xs:dateTime` in UTC (`2026-12-01T09:30:00Z`), for what tessera
/// writes (demo assertions); the inverse of [`parse_datetime`].
pub fn format_datetime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `s` as XML character data or an attribute value: `&`, `<`, `>`, `"`, `'` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `xs:duration` (metadata `cacheDuration`) in seconds: `PnYnMnDTnHnMnS`, years as
/// 365 days and months as 30. `None` when malformed or negative.
pub fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        let mut unit_idx = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let pos = units[unit_idx..].iter().position(|(u, _)| *u == c)? + unit_idx;
            let value: f64 = num.parse().ok()?;
            #[expect(clippy::cast_possible_truncation, reason = "bounded below")]
            let secs = (value * units[pos].1 as f64).min(1e15) as i64;
            total = total.checked_add(secs)?;
            any = true;
            num.clear();
            unit_idx = pos + 1;
        }
        num.is_empty().then_some(())
    };
    add(
        date,
        &[('Y', 365 * 86_400), ('M', 30 * 86_400), ('D', 86_400)],
    )?;
    if let Some(t) = time {
        add(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn datetime_digits_are_digits_and_years_start_at_one() {
        assert_eq!(parse_datetime("2026-01-01T00:00:00+-9:00"), None);
        assert_eq!(parse_datetime("0000-01-01T00:00:00Z"), None);
        assert!(parse_datetime("2026-01-01T00:00:00+09:00").is_some());
    }

    #[test]
    fn formatted_datetimes_parse_back() {
        for t in [0, 951_782_400, 1_795_000_000, 4_102_444_799, -86_400] {
            assert_eq!(parse_datetime(&format_datetime(t)), Some(t), "{t}");
        }
        assert_eq!(format_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
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
    fn full_text_joins_around_comments() {
        let doc = parse("<n>user@corp.example<!---->.evil.example</n>").unwrap();
        assert_eq!(
            full_text(doc.root_element()),
            "user@corp.example.evil.example"
        );
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_datetime("2013-08-03T21:55:13Z"), Some(1_375_566_913));
        assert_eq!(
            parse_datetime("2013-08-03T21:55:13.943Z"),
            Some(1_375_566_913)
        );
        assert_eq!(parse_datetime("2013-08-03T21:55:13"), Some(1_375_566_913));
        assert_eq!(
            parse_datetime("2013-08-03T23:55:13+02:00"),
            Some(1_375_566_913)
        );
        for bad in [
            "2013-13-03T21:55:13Z",
            "2013-02-30T00:00:00Z",
            "x",
            "2013-08-03 21:55:13Z",
            "2013-08-03T21:55:13.Z",
            "2013-08-03T21:55:13Q",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H"), Some(3600));
        assert_eq!(parse_duration("P1DT30M"), Some(86_400 + 1800));
        assert_eq!(parse_duration("PT604800S"), Some(604_800));
        assert_eq!(parse_duration("P"), None);
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("-PT1H"), None);
        assert_eq!(parse_duration("PT1X"), None);
    }

    #[test]
    fn utf16_is_refused_by_name_and_a_bom_dropped() {
        assert_eq!(
            decode_utf8(&[0xFF, 0xFE, 0x3C, 0x00]),
            Err(XmlError::NotUtf8)
        );
        assert_eq!(decode_utf8(b"\xEF\xBB\xBF<x/>"), Ok("<x/>"));
    }
}
