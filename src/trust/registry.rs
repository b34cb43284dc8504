//! A loaded, cross-checked registry snapshot, and the `TrustStore` that swaps snapshots
//! atomically on reload (requests in flight keep the snapshot they started with).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{
    AudienceEntry, AudienceId, ClientEntry, ClientId, IssuerEntry, IssuerId, IssuerKind, TrustError,
};

#[derive(Debug, Default)]
pub struct Registry {
    pub issuers: BTreeMap<IssuerId, Arc<IssuerEntry>>,
    pub clients: BTreeMap<ClientId, Arc<ClientEntry>>,
    pub audiences: BTreeMap<AudienceId, Arc<AudienceEntry>>,
    by_iss: HashMap<(String, IssuerKind), IssuerId>,
    by_resource: HashMap<String, AudienceId>,
    by_audience_value: HashMap<String, AudienceId>,
}

impl Registry {
    /// Builds the lookup indexes. Cross-entry rules (unique `iss` per kind, client
    /// references) are checked by the loader, which can name files and fields.
    pub fn new(
        issuers: Vec<IssuerEntry>,
        clients: Vec<ClientEntry>,
        audiences: Vec<AudienceEntry>,
    ) -> Self {
        let mut r = Registry::default();
        for i in issuers {
            r.by_iss.insert((i.issuer.clone(), i.kind()), i.id.clone());
            r.issuers.insert(i.id.clone(), Arc::new(i));
        }
        for a in audiences {
            for res in &a.resources {
                r.by_resource.insert(res.clone(), a.id.clone());
            }
            r.by_audience_value
                .insert(a.audience.to_string(), a.id.clone());
            r.audiences.insert(a.id.clone(), Arc::new(a));
        }
        for c in clients {
            r.clients.insert(c.client_id.clone(), Arc::new(c));
        }
        r
    }

    /// The entry an unverified `iss` selects; the key material it names is the only key
    /// material that may verify the token.
    pub fn issuer_by_iss(&self, iss: &str, kind: IssuerKind) -> Option<&Arc<IssuerEntry>> {
        self.by_iss
            .get(&(iss.to_owned(), kind))
            .and_then(|id| self.issuers.get(id))
    }

    /// An issuer by registry id (the file stem), e.g. from a client's `subject_issuers`.
    pub fn issuer(&self, id: &str) -> Option<&Arc<IssuerEntry>> {
        self.issuers.get(id)
    }

    /// An audience by registry id (what `ClientEntry::audiences` holds).
    pub fn audience(&self, id: &str) -> Option<&Arc<AudienceEntry>> {
        self.audiences.get(id)
    }

    pub fn client(&self, client_id: &str) -> Option<&Arc<ClientEntry>> {
        self.clients.get(client_id)
    }

    /// An RFC 8693 `audience` parameter names an audience by its `aud` value or its
    /// registry id.
    pub fn audience_by_name(&self, name: &str) -> Option<&Arc<AudienceEntry>> {
        self.by_audience_value
            .get(name)
            .and_then(|id| self.audiences.get(id))
            .or_else(|| self.audiences.get(name))
    }

    /// RFC 8707 `resource`: exact match against an audience's `resources`.
    pub fn audience_by_resource(&self, resource: &str) -> Option<&Arc<AudienceEntry>> {
        self.by_resource
            .get(resource)
            .and_then(|id| self.audiences.get(id))
    }

    pub fn demo_issuers(&self) -> impl Iterator<Item = &Arc<IssuerEntry>> {
        self.issuers
            .values()
            .filter(|i| i.demo_signing_key_file.is_some())
    }
}

/// The live registry. Reload builds and validates a whole new snapshot first; only a
/// valid one replaces the old.
#[derive(Debug)]
pub struct TrustStore {
    dir: PathBuf,
    /// `server.issuer`, for the loader's checks against the broker's own identity.
    own_issuer: Option<String>,
    current: ArcSwap<Registry>,
}

impl TrustStore {
    /// Loads `dir` for the broker whose `server.issuer` is `own_issuer`.
    pub fn load(dir: &Path, own_issuer: &str) -> Result<Self, TrustError> {
        let registry = super::load_registry_for(dir, Some(own_issuer))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            own_issuer: Some(own_issuer.to_owned()),
            current: ArcSwap::from_pointee(registry),
        })
    }

    pub fn from_registry(dir: &Path, registry: Registry) -> Self {
        Self {
            dir: dir.to_path_buf(),
            own_issuer: None,
            current: ArcSwap::from_pointee(registry),
        }
    }

    pub fn snapshot(&self) -> Arc<Registry> {
        self.current.load_full()
    }

    /// Re-reads the directory; on error the old registry keeps serving.
    pub fn reload(&self) -> Result<Arc<Registry>, TrustError> {
        let fresh = Arc::new(super::load_registry_for(
            &self.dir,
            self.own_issuer.as_deref(),
        )?);
        self.current.store(fresh.clone());
        Ok(fresh)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
