//! The XML ground rules every SAML input (assertions, responses, IdP metadata) goes
//! through before and while it is read: size cap, DOCTYPE refused before any parser sees
//! it, a strict read-only parse with depth and node limits, and text read the one safe way.
//!
//! A leaf module: no policy, no crypto. `trust` (metadata) and `verify::saml` (assertions)
//! both build on it.

use roxmltree::Node;

pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";

mod guard;

pub use guard::{
    CheckedDoc, CheckedNode, CheckedXml, XmlError, MAX_ATTRIBUTES, MAX_CHILDREN, MAX_DEPTH,
    MAX_NAMESPACES,
};

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
    fn full_text_joins_around_comments() {
        let text = "<n>user@corp.example<!---->.evil.example</n>";
        let doc = roxmltree::Document::parse(text).unwrap();
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
}
