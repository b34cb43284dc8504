//! `metadata_url` issuers: IdP metadata fetched from the registry's URL through the one
//! issuer-document cache ([`crate::verify::cache`]), with JWKS's rules: refreshed in the
//! background when due (`cacheDuration`, at most `outbound.keys_ttl`), single flight per
//! issuer and per `refresh_cooldown`, the last good copy serving when a fetch fails (for
//! at most `max_stale`, never past its `validUntil`). With `metadata_signing_cert_file`,
//! every fetched copy must carry a verifying signature.

use std::sync::Arc;

use url::Url;

use crate::clock::{SharedClock, UnixTime};
use crate::metrics::Metrics;
use crate::trust::metadata::{read_idp_metadata, MetadataSigners};
use crate::trust::{IssuerEntry, Registry, SamlKeySource, SigningCert};
use crate::verify::cache::{Cache, Fetched, Source};
use crate::verify::error::VerifyError;
use crate::verify::fetch::OutboundConfig;
use crate::verify::fetch::{FetchError, Fetcher};
use crate::verify::SeedError;

/// Where one issuer's metadata comes from, and who must have signed it.
#[derive(Clone)]
struct MetadataSource {
    entity_id: String,
    url: Url,
    signers: Option<Arc<Vec<SigningCert>>>,
    allow_sha1: bool,
    /// A rollover to a weak key is refused like a bad signature: the last good copy serves.
    min_rsa_bits: u32,
}

impl MetadataSource {
    fn of(issuer: &IssuerEntry) -> Option<Self> {
        let saml = issuer.saml()?;
        let SamlKeySource::MetadataUrl { url, signers } = &saml.keys else {
            return None;
        };
        Some(Self {
            entity_id: issuer.issuer.clone(),
            url: url.clone(),
            signers: signers.clone(),
            allow_sha1: saml.allow_sha1,
            min_rsa_bits: saml.min_rsa_bits,
        })
    }
}

impl MetadataSource {
    /// A metadata document as this source accepts it: the entity's signing certificates,
    /// the document's signature checked when the entry names its signers.
    fn read(&self, bytes: &[u8]) -> Result<Fetched<Vec<SigningCert>>, FetchError> {
        let policy = self.signers.as_deref().map(|certs| MetadataSigners {
            certs,
            allow_sha1: self.allow_sha1,
        });
        let md = read_idp_metadata(bytes, &self.entity_id, policy, self.min_rsa_bits)?;
        Ok(Fetched {
            value: md.certs,
            refresh_within: md.cache_duration,
            valid_until: md.valid_until,
        })
    }
}

impl Source for MetadataSource {
    type Value = Vec<SigningCert>;

    async fn fetch(
        &self,
        fetcher: &Fetcher,
        _now: UnixTime,
    ) -> Result<Fetched<Self::Value>, FetchError> {
        let bytes = fetcher
            .get_bytes(&self.url, "application/samlmetadata+xml, application/xml")
            .await?;
        // Parsing (and, when signed, canonicalising and verifying) up to 1 MiB of metadata:
        // off the async workers, whoever serves it.
        let source = self.clone();
        tokio::task::spawn_blocking(move || source.read(&bytes))
            .await
            .map_err(|_| FetchError::Task)?
    }

    fn same_as(&self, other: &Self) -> bool {
        // By fingerprint: every reload parses the certificate file into a new Arc, and an
        // unchanged registry must keep its cached (last good) metadata.
        let fingerprints = |s: &Option<Arc<Vec<SigningCert>>>| {
            s.as_ref()
                .map(|certs| certs.iter().map(|c| c.sha256.clone()).collect::<Vec<_>>())
        };
        let same_signers = fingerprints(&self.signers) == fingerprints(&other.signers);
        self.url == other.url
            && self.entity_id == other.entity_id
            && same_signers
            && self.allow_sha1 == other.allow_sha1
            && self.min_rsa_bits == other.min_rsa_bits
    }

    fn describe(certs: &Self::Value) -> String {
        format!("certs={}", certs.len())
    }
}

/// One fetch of `issuer`'s `metadata_url`, by the cache's own fetch-and-parse (signature
/// check, entity, key strength included) and bypassing the cache: `None` when the issuer
/// has no `metadata_url`. For `tessera trust check --online`.
pub async fn fetch_metadata_once(
    issuer: &IssuerEntry,
    fetcher: &Fetcher,
    now: UnixTime,
) -> Option<Result<Vec<SigningCert>, FetchError>> {
    let source = MetadataSource::of(issuer)?;
    Some(
        source
            .fetch(fetcher, now)
            .await
            .map(|fetched| fetched.value),
    )
}

pub struct MetadataCache {
    cache: Arc<Cache<MetadataSource>>,
}

impl MetadataCache {
    /// Each remote issuer's metadata state (`/readyz`).
    pub fn status(&self) -> Vec<(String, crate::verify::cache::SlotStatus)> {
        self.cache.status()
    }

    pub fn new(
        outbound: &OutboundConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, VerifyError> {
        let cache = Cache::new(outbound, clock, metrics, "saml_metadata")
            .map_err(|_| VerifyError::Internal("cannot build the outbound HTTP client"))?;
        Ok(Self {
            cache: Arc::new(cache),
        })
    }

    /// The signing certificates usable now (fetching, single flight, when there are
    /// none); `None` when the IdP's metadata is unobtainable.
    pub async fn certs(&self, issuer: &IssuerEntry) -> Option<Arc<Vec<SigningCert>>> {
        let slot = self.cache.slot(&issuer.id, MetadataSource::of(issuer)?);
        self.cache.usable(&slot).await
    }

    /// `trust test`: `metadata` (a document `issuer`'s `metadata_url` would serve, read
    /// and checked as a fetched one) serves from now on and is never fetched.
    pub fn seed(&self, issuer: &IssuerEntry, metadata: &[u8]) -> Result<(), SeedError> {
        let source = MetadataSource::of(issuer).ok_or_else(|| SeedError::NotFetched {
            issuer: issuer.id.clone(),
            what: "metadata (only a saml issuer with metadata_url does)",
        })?;
        let fetched = source.read(metadata)?;
        Ok(self.cache.seed(&issuer.id, source, fetched)?)
    }

    /// `trust test`: pinned signing certificates in place of `issuer`'s remote metadata.
    pub fn seed_certs(
        &self,
        issuer: &IssuerEntry,
        certs: Vec<SigningCert>,
    ) -> Result<(), SeedError> {
        let source = MetadataSource::of(issuer).ok_or_else(|| SeedError::NotFetched {
            issuer: issuer.id.clone(),
            what: "metadata (only a saml issuer with metadata_url does)",
        })?;
        Ok(self.cache.seed(&issuer.id, source, Fetched::new(certs))?)
    }

    /// Starts fetches for every metadata_url issuer not fetched yet, and forgets issuers
    /// no longer registered as they were (call after each reload).
    pub fn warm_up(&self, registry: &Registry) {
        self.cache.retain(|id, source| {
            registry
                .issuers
                .get(id)
                .and_then(|i| MetadataSource::of(i))
                .is_some_and(|now| now.same_as(source))
        });
        for issuer in registry.issuers.values() {
            if let Some(source) = MetadataSource::of(issuer) {
                let slot = self.cache.slot(&issuer.id, source);
                self.cache.warm(&slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload parses `metadata_signing_cert_file` into a new Arc: an unchanged entry
    /// must keep its slot (and so its last good metadata when the IdP is down).
    #[test]
    fn a_reload_with_the_same_signers_keeps_the_slot() {
        let metadata = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/trust/issuers/demo-saml.metadata.xml"
        ))
        .unwrap();
        let demo = crate::trust::metadata::parse_idp_metadata(
            &metadata,
            "https://demo-saml-idp.tessera.test",
            crate::xmldsig::MIN_RSA_BITS,
        )
        .unwrap()
        .certs
        .remove(0);
        let cert = |sha256: &str| SigningCert {
            sha256: sha256.into(),
            ..demo.clone()
        };
        let source = |signers: Vec<SigningCert>| MetadataSource {
            entity_id: "https://idp.example".into(),
            url: Url::parse("https://idp.example/md").unwrap(),
            signers: Some(Arc::new(signers)),
            allow_sha1: false,
            min_rsa_bits: crate::xmldsig::MIN_RSA_BITS,
        };
        assert!(source(vec![cert("aa")]).same_as(&source(vec![cert("aa")])));
        assert!(!source(vec![cert("aa")]).same_as(&source(vec![cert("bb")])));
    }
}
