//! The verified assertion: read from the canonical bytes its signature covers
//! ([`crate::xmldsig::verified_copy`], never the presented document), then checked against SPEC §4.1 — Issuer,
//! every AudienceRestriction, Conditions and SubjectConfirmationData windows with skew,
//! Recipient, session end — and turned into the kind-neutral [`VerifiedSubject`].

use std::collections::BTreeMap;
use std::sync::Arc;

use roxmltree::Node;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::trust::{IssuerEntry, TokenType};
use crate::verify::error::SamlError;
use crate::verify::{ReplayKey, VerifiedSubject};
use crate::xml::{self, NS_SAML};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What tessera reads from a verified `saml:Assertion`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssertionView {
    pub id: String,
    pub issue_instant: UnixTime,
    pub issuer: String,
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub not_before: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    /// Each `AudienceRestriction`'s audiences.
    pub audience_restrictions: Vec<Vec<String>>,
    pub one_time_use: bool,
    pub confirmations: Vec<Confirmation>,
    pub session_not_on_or_after: Option<UnixTime>,
    pub authn_context: Option<String>,
    pub session_index: Option<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// One `SubjectConfirmation` and its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    pub method: String,
    pub not_before: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    pub recipient: Option<String>,
}

fn time(node: Node<'_, '_>, attr: &str, what: &'static str) -> Result<Option<UnixTime>, SamlError> {
    node.attribute(attr)
        .map(|v| xml::parse_datetime(v).ok_or(SamlError::Malformed(what)))
        .transpose()
}

/// Reads the assertion element. Text is read whole (comments contribute nothing).
pub fn read(assertion: Node<'_, '_>) -> Result<AssertionView, SamlError> {
    if assertion.attribute("Version") != Some("2.0") {
        return Err(SamlError::NotSaml);
    }
    let id = assertion
        .attribute("ID")
        .ok_or(SamlError::Missing("Assertion ID"))?
        .to_owned();
    let issue_instant = time(assertion, "IssueInstant", "IssueInstant")?
        .ok_or(SamlError::Missing("IssueInstant"))?;
    let issuer = super::document::issuer_of(assertion)?.ok_or(SamlError::Missing("Issuer"))?;
    let mut view = AssertionView {
        id,
        issue_instant,
        issuer,
        ..AssertionView::default()
    };

    let subject = xml::only_child(assertion, NS_SAML, "Subject")
        .map_err(|_| SamlError::Malformed("Subject (more than one)"))?;
    if let Some(subject) = subject {
        read_subject(subject, &mut view)?;
    }
    match xml::only_child(assertion, NS_SAML, "Conditions") {
        Ok(Some(c)) => read_conditions(c, &mut view)?,
        Ok(None) => {}
        Err(_) => return Err(SamlError::Malformed("Conditions (more than one)")),
    }
    for authn in xml::children(assertion, NS_SAML, "AuthnStatement") {
        let ends = time(authn, "SessionNotOnOrAfter", "SessionNotOnOrAfter")?;
        view.session_not_on_or_after = min_opt(view.session_not_on_or_after, ends);
        if view.session_index.is_none() {
            view.session_index = authn.attribute("SessionIndex").map(str::to_owned);
        }
        if view.authn_context.is_none() {
            view.authn_context = xml::children(authn, NS_SAML, "AuthnContext")
                .flat_map(|c| xml::children(c, NS_SAML, "AuthnContextClassRef"))
                .next()
                .map(|r| xml::full_text(r).trim().to_owned());
        }
    }
    for attr in xml::children(assertion, NS_SAML, "AttributeStatement")
        .flat_map(|s| xml::children(s, NS_SAML, "Attribute"))
    {
        let Some(name) = attr.attribute("Name") else {
            return Err(SamlError::Missing("Attribute Name"));
        };
        let values = view.attributes.entry(name.to_owned()).or_default();
        values.extend(xml::children(attr, NS_SAML, "AttributeValue").map(xml::full_text));
    }
    Ok(view)
}

fn read_subject(subject: Node<'_, '_>, view: &mut AssertionView) -> Result<(), SamlError> {
    match xml::only_child(subject, NS_SAML, "NameID") {
        Ok(Some(n)) => {
            view.name_id = Some(xml::simple_text(n, "NameID")?.trim().to_owned());
            view.name_id_format = n.attribute("Format").map(str::to_owned);
        }
        Ok(None) => {}
        Err(_) => return Err(SamlError::Malformed("NameID (more than one)")),
    }
    for sc in xml::children(subject, NS_SAML, "SubjectConfirmation") {
        let mut c = Confirmation {
            method: sc.attribute("Method").unwrap_or_default().to_owned(),
            ..Confirmation::default()
        };
        match xml::only_child(sc, NS_SAML, "SubjectConfirmationData") {
            Ok(Some(d)) => {
                c.not_before = time(d, "NotBefore", "SubjectConfirmationData NotBefore")?;
                c.not_on_or_after =
                    time(d, "NotOnOrAfter", "SubjectConfirmationData NotOnOrAfter")?;
                c.recipient = d.attribute("Recipient").map(str::to_owned);
            }
            Ok(None) => {}
            Err(_) => {
                return Err(SamlError::Malformed(
                    "SubjectConfirmationData (more than one)",
                ))
            }
        }
        view.confirmations.push(c);
    }
    Ok(())
}

fn read_conditions(c: Node<'_, '_>, view: &mut AssertionView) -> Result<(), SamlError> {
    view.not_before = time(c, "NotBefore", "Conditions NotBefore")?;
    view.not_on_or_after = time(c, "NotOnOrAfter", "Conditions NotOnOrAfter")?;
    for r in xml::children(c, NS_SAML, "AudienceRestriction") {
        view.audience_restrictions.push(
            xml::children(r, NS_SAML, "Audience")
                .map(|a| xml::simple_text(a, "Audience").map(|t| t.trim().to_owned()))
                .collect::<Result<_, _>>()?,
        );
    }
    view.one_time_use = xml::children(c, NS_SAML, "OneTimeUse").next().is_some();
    // SAML core §2.5.1: a condition that is not understood makes the assertion
    // Indeterminate, never valid. ProxyRestriction binds only the issuing of further
    // SAML assertions, which tessera never does.
    let understood = |n: &Node<'_, '_>| {
        ["AudienceRestriction", "OneTimeUse", "ProxyRestriction"]
            .iter()
            .any(|name| xml::is(*n, NS_SAML, name))
    };
    if c.children().any(|n| n.is_element() && !understood(&n)) {
        return Err(SamlError::UnknownCondition);
    }
    Ok(())
}

fn min_opt(a: Option<UnixTime>, b: Option<UnixTime>) -> Option<UnixTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What the checks need besides the assertion.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Audiences an AudienceRestriction may name.
    pub audiences: &'a [&'a str],
    /// Accepted `Recipient` values (token endpoint and the issuer's `recipients`).
    pub recipients: &'a [String],
    /// RFC 7522 §3: bearer `NotOnOrAfter` and `Recipient` required.
    pub strict_bearer: bool,
    pub skew: i64,
    pub max_age: Option<i64>,
    pub now: UnixTime,
}

/// SPEC §4.1 checks, in order; returns the moment the assertion's life ends (the earliest
/// of Conditions NotOnOrAfter, the accepted bearer confirmation's NotOnOrAfter and
/// SessionNotOnOrAfter, SPEC §2.1).
pub fn check(view: &AssertionView, rules: &Rules<'_>) -> Result<UnixTime, SamlError> {
    let (now, skew) = (rules.now, rules.skew);
    // Every AudienceRestriction must hold, and there must be one (SAML core §2.5.1.4).
    if view.audience_restrictions.is_empty() {
        return Err(SamlError::NoAudienceRestriction);
    }
    let named = |list: &Vec<String>| list.iter().any(|a| rules.audiences.contains(&a.as_str()));
    if let Some(unnamed) = view.audience_restrictions.iter().find(|l| !named(l)) {
        return Err(SamlError::Audience {
            found: unnamed.clone(),
            accepted: rules.audiences.iter().map(|a| (*a).to_owned()).collect(),
        });
    }
    if let Some(nb) = view.not_before {
        if now.saturating_add(skew) < nb {
            return Err(SamlError::NotYetValid);
        }
    }
    if let Some(end) = view.not_on_or_after {
        if now >= end.saturating_add(skew) {
            return Err(SamlError::Expired);
        }
    }
    if view.issue_instant > now.saturating_add(skew) {
        return Err(SamlError::IssuedInFuture);
    }
    if let Some(max_age) = rules.max_age {
        if now.saturating_sub(view.issue_instant) > max_age.saturating_add(skew) {
            return Err(SamlError::TooOld);
        }
    }
    if let Some(end) = view.session_not_on_or_after {
        if now >= end.saturating_add(skew) {
            return Err(SamlError::SessionEnded);
        }
    }
    let confirmation = accepted_confirmation(view, rules)?;
    // SPEC §4.1: the assertion must expire somehow.
    let expiry = min_opt(
        min_opt(view.not_on_or_after, confirmation.not_on_or_after),
        view.session_not_on_or_after,
    );
    match (view.not_on_or_after, confirmation.not_on_or_after) {
        (None, None) => Err(SamlError::NoExpiry),
        _ => expiry.ok_or(SamlError::NoExpiry),
    }
}

/// SAML profiles §4.1.4.2: at least one bearer confirmation whose data holds. For the
/// bearer grant RFC 7522 §3 makes `NotOnOrAfter` and `Recipient` mandatory.
fn accepted_confirmation<'v>(
    view: &'v AssertionView,
    rules: &Rules<'_>,
) -> Result<&'v Confirmation, SamlError> {
    let (now, skew) = (rules.now, rules.skew);
    let mut why = SamlError::NoBearer;
    for c in view.confirmations.iter().filter(|c| c.method == BEARER) {
        let verdict = (|| {
            if rules.strict_bearer && c.not_on_or_after.is_none() {
                return Err("NotOnOrAfter is required for the saml2-bearer grant");
            }
            if rules.strict_bearer && c.recipient.is_none() {
                return Err("Recipient is required for the saml2-bearer grant");
            }
            if c.not_before.is_some_and(|nb| now.saturating_add(skew) < nb) {
                return Err("not yet valid (NotBefore)");
            }
            if c.not_on_or_after
                .is_some_and(|end| now >= end.saturating_add(skew))
            {
                return Err("expired (NotOnOrAfter)");
            }
            if c.recipient
                .as_deref()
                .is_some_and(|r| !rules.recipients.iter().any(|x| x == r))
            {
                return Err("Recipient is not the token endpoint or an accepted recipient");
            }
            Ok(())
        })();
        match verdict {
            Ok(()) => return Ok(c),
            Err(reason) => why = SamlError::Confirmation(reason),
        }
    }
    Err(why)
}

/// The CEL `assertion` view (SPEC §2): `subject`, `name_id_format`, `issuer`,
/// `attributes` (name → list of strings), `authn_context`, `session_index`. Absent parts
/// are absent, so a mapping reading them fails closed.
pub fn cel_view(view: &AssertionView) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), Value::String(v.clone()));
        }
    };
    put("subject", view.name_id.as_ref());
    put("name_id_format", view.name_id_format.as_ref());
    put("issuer", Some(&view.issuer));
    put("authn_context", view.authn_context.as_ref());
    put("session_index", view.session_index.as_ref());
    let attributes: Map<String, Value> = view
        .attributes
        .iter()
        .map(|(k, vs)| {
            (
                k.clone(),
                Value::Array(vs.iter().cloned().map(Value::String).collect()),
            )
        })
        .collect();
    m.insert("attributes".into(), Value::Object(attributes));
    m
}

/// The last moment the assertion could pass the checks through *any* of its bearer
/// confirmations (not only the one accepted this time): how long a one-time assertion's
/// ID must be remembered. A confirmation without NotOnOrAfter is bounded by Conditions;
/// with no Conditions bound, a path with no expiry is refused (`NoExpiry`), so only the
/// confirmations that have one count.
fn acceptable_until(view: &AssertionView) -> Option<UnixTime> {
    let bearer: Vec<_> = view
        .confirmations
        .iter()
        .filter(|c| c.method == BEARER)
        .collect();
    let open_ended = bearer.iter().any(|c| c.not_on_or_after.is_none());
    let confirmations = if open_ended && view.not_on_or_after.is_some() {
        None
    } else {
        bearer.iter().filter_map(|c| c.not_on_or_after).max()
    };
    min_opt(
        min_opt(view.not_on_or_after, confirmations),
        view.session_not_on_or_after,
    )
}

/// The kind-neutral subject; a replay key when the assertion says `<OneTimeUse/>` or the
/// issuer makes every assertion single-use (SPEC §4.1).
pub fn into_subject(
    entry: Arc<IssuerEntry>,
    view: &AssertionView,
    expires_at: UnixTime,
) -> VerifiedSubject {
    let skew = crate::verify::secs(entry.clock_skew);
    let replay = (view.one_time_use || entry.one_time_use).then(|| ReplayKey {
        issuer: entry.id.to_string(),
        id: view.id.as_str().into(),
        expires_at: acceptable_until(view)
            .unwrap_or(expires_at)
            .max(expires_at)
            .saturating_add(skew),
    });
    VerifiedSubject {
        token_type: TokenType::Saml2,
        assertion: cel_view(view),
        audiences: view
            .audience_restrictions
            .iter()
            .flatten()
            .cloned()
            .collect(),
        expires_at,
        issued_at: Some(view.issue_instant),
        act: None,
        may_act: None,
        scopes: None,
        replay,
        local: None,
        evidence: crate::verify::Evidence::default(),
        issuer: entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(not_on_or_after: Option<UnixTime>) -> Confirmation {
        Confirmation {
            method: BEARER.into(),
            not_on_or_after,
            ..Confirmation::default()
        }
    }

    /// A one-time assertion is remembered until no confirmation could pass any more, not
    /// only until the one accepted this time expires (else a second, longer-lived
    /// confirmation makes it usable again once the first is forgotten).
    #[test]
    fn replay_memory_covers_every_confirmation() {
        let mut view = AssertionView {
            not_on_or_after: Some(3600),
            confirmations: vec![bearer(Some(10)), bearer(None)],
            ..AssertionView::default()
        };
        assert_eq!(acceptable_until(&view), Some(3600));
        view.confirmations = vec![bearer(Some(10)), bearer(Some(500))];
        assert_eq!(acceptable_until(&view), Some(500));
        // No Conditions bound: an open-ended confirmation cannot pass (NoExpiry).
        view.not_on_or_after = None;
        view.confirmations = vec![bearer(Some(10)), bearer(None)];
        assert_eq!(acceptable_until(&view), Some(10));
        view.session_not_on_or_after = Some(5);
        assert_eq!(acceptable_until(&view), Some(5));
    }
}
