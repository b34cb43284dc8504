//! The SAML 2.0 path behind [`super::Verifier`] (SPEC §4, §4.1).
//!
//! In order: size cap; base64 decode; DOCTYPE refused; strict parse and the document's
//! shape ([`document::inspect`]: Response or Assertion, one assertion, signature structure,
//! unique IDs); the unverified Issuer selects the registry entry, which must be admitted
//! for this caller; algorithms checked against the entry's policy; then [`xmldsig`]
//! verifies **every** signature with the entry's keys (never `KeyInfo`) and returns the
//! canonical bytes those signatures cover. Everything afterwards — Response status,
//! Destination, Issuer, the assertion's conditions and subject — is read from those bytes
//! only ([`assertion::read`]).

pub mod assertion;
pub mod decrypt;
pub mod document;
mod metadata_cache;
pub use metadata_cache::fetch_metadata_once;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::trust::{
    IssuerEntry, IssuerKind, Registry, SamlKeySource, SamlSettings, SigningCert, TokenType,
};
use crate::verify::fetch::OutboundConfig;
use crate::xml::{self, CheckedDoc, CheckedXml, NS_SAML, NS_SAMLP};
use crate::xmldsig;

use super::error::{SamlError, VerifyError};
use super::jwt::MAX_TOKEN_BYTES;
use super::{admitted_issuer, BrokerIdentity, Expectation, Purpose, Refusal, VerifiedSubject};
use decrypt::DecryptionKey;
use document::{ResponseInfo, Shape};
use metadata_cache::MetadataCache;

/// The size up to which a document is verified on the calling task ([`SamlVerifier::cpu_bound`]).
const INLINE_XML_BYTES: usize = 16 * 1024;

pub struct SamlVerifier {
    broker: Arc<BrokerIdentity>,
    clock: SharedClock,
    metadata: MetadataCache,
    /// `saml.decryption_key_file`, when configured.
    decryption: Option<Arc<DecryptionKey>>,
    /// One permit per core for XML-DSig / decryption of large documents.
    cpu: tokio::sync::Semaphore,
}

impl SamlVerifier {
    /// `saml.entity_id`: an AudienceRestriction naming it is accepted for every SAML
    /// issuer, beside the entry's own `audiences` (explain lists it).
    pub fn entity_id(&self) -> &str {
        &self.broker.saml_entity_id
    }

    /// Each remote issuer's metadata state (`/readyz`).
    pub fn metadata_status(&self) -> Vec<(String, crate::verify::cache::SlotStatus)> {
        self.metadata.status()
    }

    pub fn new(
        outbound: &OutboundConfig,
        broker: Arc<BrokerIdentity>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        Ok(Self {
            broker,
            metadata: MetadataCache::new(outbound, clock.clone(), metrics)?,
            clock,
            decryption: None,
            cpu: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
        })
    }

    /// Opens EncryptedAssertions with `key` (without one they are refused by name).
    pub fn set_decryption_key(&mut self, key: DecryptionKey) {
        self.decryption = Some(Arc::new(key));
    }

    /// `trust test`: `metadata` in place of `issuer`'s `metadata_url` ([`MetadataCache::seed`]).
    pub fn seed_metadata(
        &self,
        issuer: &IssuerEntry,
        metadata: &[u8],
    ) -> Result<(), super::SeedError> {
        self.metadata.seed(issuer, metadata)
    }

    /// `trust test`: pinned certificates in place of `issuer`'s `metadata_url`.
    pub fn seed_certs(
        &self,
        issuer: &IssuerEntry,
        certs: Vec<SigningCert>,
    ) -> Result<(), super::SeedError> {
        self.metadata.seed_certs(issuer, certs)
    }

    pub async fn verify(
        &self,
        registry: &Registry,
        text: &str,
        expect: &Expectation<'_>,
    ) -> Result<VerifiedSubject, Refusal> {
        if text.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge {
                limit: MAX_TOKEN_BYTES,
            }
            .into());
        }
        // Decoding, the ground rules and the first parse run before the Issuer is known:
        // off the async workers for a large document, like the signature check.
        let text = text.to_owned();
        let (xml, shape) = self
            .cpu_bound(text.len(), move || {
                let xml = document::decode(&text)?;
                let shape = document::inspect(&xml)?;
                Ok::<_, SamlError>((xml, shape))
            })
            .await?;
        let issuer = shape
            .issuer
            .as_deref()
            .ok_or(VerifyError::from(SamlError::Missing("Issuer")))?;
        let entry = admitted_issuer(registry, issuer, IssuerKind::Saml, TokenType::Saml2, expect)?;
        let Some(saml) = entry.saml() else {
            return Err(VerifyError::UnknownIssuer {
                iss: issuer.to_owned(),
                near: None,
            }
            .into());
        };
        self.verify_for(entry, saml, xml, shape, expect.purpose)
            .await
            .map_err(|e| e.of(entry))
    }

    async fn verify_for(
        &self,
        entry: &Arc<IssuerEntry>,
        saml: &SamlSettings,
        xml: CheckedXml,
        shape: Shape,
        purpose: Purpose,
    ) -> Result<VerifiedSubject, VerifyError> {
        for sig in &shape.signatures {
            sig.check_algorithms(saml.allow_sha1)
                .map_err(SamlError::from)?;
        }
        let recipients: Vec<String> = std::iter::once(&self.broker.token_endpoint)
            .chain(&saml.recipients)
            .cloned()
            .collect();
        // Refusal-only checks of an unsigned Response wrapper (a signed one is checked
        // again below, from its verified copy).
        if let Some(response) = &shape.response {
            check_response(response, &recipients)?;
        }
        let view = if shape.encrypted {
            self.read_encrypted(entry, saml, xml, &shape, &recipients)
                .await?
        } else {
            if shape.signatures.is_empty() {
                return Err(SamlError::Unsigned.into());
            }
            let recipients = recipients.clone();
            self.verified_read(entry, saml, xml, move |doc| read_verified(doc, &recipients))
                .await?
        };
        if view.issuer != entry.issuer {
            return Err(SamlError::Issuer.into());
        }
        // An unsigned wrapper's Issuer, when present, must still be the assertion's.
        if let Some(issuer) = shape.response.as_ref().and_then(|r| r.issuer.as_deref()) {
            if issuer != view.issuer {
                return Err(SamlError::ResponseIssuer.into());
            }
        }
        let audiences = self.accepted_audiences(entry, purpose);
        let rules = assertion::Rules {
            audiences: &audiences,
            recipients: &recipients,
            strict_bearer: purpose == Purpose::BearerGrant,
            skew: super::secs(entry.clock_skew),
            max_age: entry.max_age.map(super::secs),
            now: self.clock.now(),
        };
        let expires_at = assertion::check(&view, &rules)?;
        let mut subject = assertion::into_subject(entry.clone(), &view, expires_at);
        subject.evidence = super::Evidence {
            typ: None,
            alg: shape.signatures.first().map(|s| s.method.uri().to_owned()),
            key: Some(if shape.encrypted {
                "the decrypted assertion's signature verified with the issuer's signing \
                 certificate(s)"
                    .to_owned()
            } else {
                format!(
                    "{} signature(s) verified with the issuer's signing certificate(s)",
                    shape.signatures.len()
                )
            }),
        };
        Ok(subject)
    }

    /// Verifies every signature of `xml` with the entry's certificates only (never
    /// `KeyInfo`), then hands what they cover — the canonical bytes of the outermost signed
    /// element, admitted and parsed — to `read`. All of it CPU-bound, in one task.
    async fn verified_read<T: Send + 'static>(
        &self,
        entry: &IssuerEntry,
        saml: &SamlSettings,
        xml: CheckedXml,
        read: impl FnOnce(&CheckedDoc<'_>) -> Result<T, SamlError> + Send + 'static,
    ) -> Result<T, VerifyError> {
        let certs = match &saml.keys {
            SamlKeySource::Pinned { certs, .. } => certs.clone(),
            SamlKeySource::MetadataUrl { .. } => {
                self.metadata
                    .certs(entry)
                    .await
                    .ok_or_else(|| VerifyError::IssuerUnavailable {
                        issuer: entry.id.clone(),
                    })?
            }
        };
        let allow_sha1 = saml.allow_sha1;
        self.cpu_bound(xml.len(), move || {
            let reduced = reduce(&xml, &certs, allow_sha1)?;
            read(&reduced.parse()?)
        })
        .await
    }

    /// SPEC §4 EncryptedAssertion. A signed Response is verified first, so that what is
    /// decrypted is the IdP's ciphertext (after decryption its signature no longer
    /// verifies); then the plaintext assertion is verified on its own: its signature when
    /// it has one (which must verify), or the Response's when it has none. With no
    /// verified Response, every failure from decryption to the assertion's signature is
    /// one error ([`decrypt::UNDECRYPTABLE`]), so the answer is no padding/parse oracle.
    async fn read_encrypted(
        &self,
        entry: &IssuerEntry,
        saml: &SamlSettings,
        xml: CheckedXml,
        shape: &Shape,
        recipients: &[String],
    ) -> Result<assertion::AssertionView, VerifyError> {
        let key = self
            .decryption
            .clone()
            .ok_or(SamlError::EncryptionNotConfigured)?;
        let response_signed = shape.response.as_ref().is_some_and(|r| r.signed);
        let open = move |doc: &CheckedDoc<'_>| {
            let root = doc.root_element();
            if !xml::is(root, NS_SAMLP, "Response") {
                // A verified copy that lost its Response: what was signed was not it.
                return Err(SamlError::Unsigned);
            }
            Ok((decrypt::open(root, &key)?, document::response_info(root)?))
        };
        let (opened, response) = if response_signed {
            self.verified_read(entry, saml, xml, open).await?
        } else {
            self.cpu_bound(xml.len(), move || open(&xml.parse()?))
                .await?
        };
        if response_signed {
            check_response(&response, recipients)?;
        }
        let view = self
            .read_decrypted(entry, saml, opened.document, response_signed)
            .await;
        match view {
            Err(VerifyError::Saml(cause)) if !response_signed => {
                Err(SamlError::Undecryptable(Some(Box::new(cause))).into())
            }
            other => other,
        }
    }

    /// The decrypted assertion in its wrapper: the same shape rules as a presented one,
    /// then its own signature verified, or (when it has none) the covering Response's.
    async fn read_decrypted(
        &self,
        entry: &IssuerEntry,
        saml: &SamlSettings,
        wrapped: CheckedXml,
        response_verified: bool,
    ) -> Result<assertion::AssertionView, VerifyError> {
        // One parse: the shape rules, and the assertion read at once when the verified
        // Response's signature covers it.
        let allow_sha1 = saml.allow_sha1;
        let (wrapped, covered) = self
            .cpu_bound(wrapped.len(), move || {
                let doc = wrapped.parse()?;
                let signatures = document::inspect_decrypted(&doc)?;
                for sig in &signatures {
                    sig.check_algorithms(allow_sha1)?;
                }
                let covered = match (signatures.is_empty(), response_verified) {
                    (false, _) => None,
                    (true, true) => Some(assertion::read(document::decrypted_assertion(
                        doc.root_element(),
                    )?)?),
                    (true, false) => return Err(SamlError::Unsigned),
                };
                drop(doc);
                Ok((wrapped, covered))
            })
            .await?;
        if let Some(view) = covered {
            return Ok(view);
        }
        self.verified_read(entry, saml, wrapped, |doc| {
            let root = doc.root_element();
            if !xml::is(root, NS_SAML, "Assertion") {
                return Err(SamlError::Unsigned);
            }
            assertion::read(root)
        })
        .await
    }

    /// SPEC §4: an AudienceRestriction must name `saml.entity_id` or one of the issuer's
    /// audiences; for the bearer grant (RFC 7522 §3) tessera itself: its entity id, token
    /// endpoint or issuer.
    fn accepted_audiences<'a>(&'a self, entry: &'a IssuerEntry, purpose: Purpose) -> Vec<&'a str> {
        let mut out = vec![self.broker.saml_entity_id.as_str()];
        match purpose {
            Purpose::Exchange => out.extend(entry.audiences.iter().map(String::as_str)),
            Purpose::BearerGrant => {
                out.push(&self.broker.token_endpoint);
                out.push(&self.broker.issuer);
            }
        }
        out
    }

    pub fn warm_up(&self, registry: &Registry) {
        self.metadata.warm_up(registry);
    }

    /// Canonicalisation, digests, RSA and decryption are CPU-bound. A document of up to
    /// [`INLINE_XML_BYTES`] (every real assertion seen) costs ~0.1 ms, about what a hop to
    /// the blocking pool and back costs in wake-ups: it runs here, like a JWT's
    /// verification. A larger one (up to 48 KiB) goes off the async workers, at most one
    /// per core at a time, so that a flood queues here instead of growing Tokio's
    /// blocking pool to hundreds of threads.
    async fn cpu_bound<T, E>(
        &self,
        xml_bytes: usize,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, VerifyError>
    where
        T: Send + 'static,
        E: Into<VerifyError> + Send + 'static,
    {
        if xml_bytes <= INLINE_XML_BYTES {
            return f().map_err(Into::into);
        }
        let _permit = self
            .cpu
            .acquire()
            .await
            .map_err(|_| VerifyError::Internal("the SAML verification pool is closed"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| VerifyError::Internal("the SAML verification task failed"))?
            .map_err(Into::into)
    }
}

/// SPEC §4.1 Response rules: Status Success; Destination, when present, the token
/// endpoint or an accepted recipient; Issuer checked against the assertion's later.
fn check_response(response: &ResponseInfo, recipients: &[String]) -> Result<(), SamlError> {
    if !response.status_success {
        return Err(SamlError::Status);
    }
    if let Some(d) = response
        .destination
        .as_deref()
        .filter(|d| !recipients.iter().any(|r| r == d))
    {
        return Err(SamlError::Destination {
            found: d.to_owned(),
            accepted: recipients.to_vec(),
        });
    }
    Ok(())
}

/// The part of `xml` its signatures cover, each verified with `certs` only.
fn reduce(
    xml: &CheckedXml,
    certs: &[SigningCert],
    allow_sha1: bool,
) -> Result<CheckedXml, SamlError> {
    let keys: Vec<_> = certs.iter().map(|c| &c.key).collect();
    let covered = xmldsig::verified_copy(&xml.parse()?, &keys, allow_sha1)?;
    Ok(CheckedXml::admit(covered.as_bytes())?)
}

/// Reads the verified copy: a verified Assertion, or a verified Response holding one. The
/// Response's own rules are checked again here on its verified copy.
fn read_verified(
    doc: &CheckedDoc<'_>,
    recipients: &[String],
) -> Result<assertion::AssertionView, SamlError> {
    let root = doc.root_element();
    if xml::is(root, NS_SAML, "Assertion") {
        return assertion::read(root);
    }
    if !xml::is(root, NS_SAMLP, "Response") {
        return Err(SamlError::Unsigned);
    }
    let response = document::response_info(root)?;
    check_response(&response, recipients)?;
    let assertions: Vec<_> = xml::children(root, NS_SAML, "Assertion").collect();
    let [a] = assertions.as_slice() else {
        return Err(SamlError::AssertionCount(assertions.len()));
    };
    let view = assertion::read(*a)?;
    if response.issuer.as_deref().is_some_and(|i| i != view.issuer) {
        return Err(SamlError::ResponseIssuer);
    }
    Ok(view)
}
