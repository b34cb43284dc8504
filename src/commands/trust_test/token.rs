//! The tokens of a case, made the way their issuers make them, and what `trust test`
//! supplies in place of the network: a remote issuer's keys and an introspection answer go
//! into the case's own offline verifier (its `seed_*` methods), never a fake one.
//!
//! - `oidc` issuers: a JWT signed with the case's `key_file` (or the entry's
//!   `demo_signing_key_file`), `kid` from the issuer's JWKS file or the case's.
//! - `saml` issuers: a signed assertion, as `tessera dev saml-assertion` makes it.
//! - `introspection` issuers: an opaque string, and the answer the case gives for it.
//! - `local`: a tessera token signed with the test's (throwaway) signing keys.
//!
//! Token text never leaves this module but in the `/token` form.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::cli::{SamlAssertionArgs, SamlSign};
use crate::clock::{FixedClock, UnixTime};
use crate::dev::JwtKey;
use crate::exchange::Form;
use crate::issue::KeyRing;
use crate::trust::{IssuerEntry, IssuerKind, Registry, TokenType, LOCAL_ISSUER};
use crate::verify::{BrokerIdentity, Verifier};

use super::case::{
    Case, CaseError, Grant, KeyMaterial, Mint, SuppliedKeys, TokenSource, TokenSpec,
};

/// A key, metadata or token file of a case is small; anything larger is a mistake.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
const DEFAULT_NAME_ID_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// What a case's tokens are made with.
pub struct Maker<'a> {
    pub registry: &'a Registry,
    /// tessera's signing keys (a throwaway store's), for `local` tokens.
    pub keys: &'a KeyRing,
    /// The case's own offline verifier: what the case supplies is seeded here.
    pub verifier: &'a Verifier,
    pub broker: &'a BrokerIdentity,
    pub now: UnixTime,
    /// The JWKS the case supplies, by issuer id: where a minted token's `kid` is found.
    supplied_jwks: BTreeMap<String, Value>,
}

impl<'a> Maker<'a> {
    pub fn new(
        registry: &'a Registry,
        keys: &'a KeyRing,
        verifier: &'a Verifier,
        broker: &'a BrokerIdentity,
        now: UnixTime,
    ) -> Self {
        Self {
            registry,
            keys,
            verifier,
            broker,
            now,
            supplied_jwks: BTreeMap::new(),
        }
    }

    /// The `/token` form of `case`, its tokens made and what they need seeded.
    pub fn form(&mut self, case: &Case) -> Result<Form, CaseError> {
        self.seed_keys(&case.keys)?;
        let request = &case.request;
        let grant = request.grant;
        let subject = self.token(&case.subject, grant, request.subject_token_type.as_deref())?;
        let mut pairs = vec![("grant_type", grant.urn().to_owned())];
        match grant {
            Grant::TokenExchange => {
                pairs.push(("subject_token", subject.text));
                pairs.push(("subject_token_type", subject.token_type));
                if let Some(actor) = &case.actor {
                    let actor = self.token(actor, grant, request.actor_token_type.as_deref())?;
                    pairs.push(("actor_token", actor.text));
                    pairs.push(("actor_token_type", actor.token_type));
                }
                if let Some(t) = &request.requested_token_type {
                    pairs.push(("requested_token_type", t.clone()));
                }
            }
            Grant::JwtBearer | Grant::Saml2Bearer => pairs.push(("assertion", subject.text)),
        }
        pairs.extend(request.audience.iter().map(|a| ("audience", a.clone())));
        pairs.extend(request.resource.iter().map(|r| ("resource", r.clone())));
        if let Some(scope) = &request.scope {
            pairs.push(("scope", scope.clone()));
        }
        if request.dpop {
            pairs.push(("dpop", self.dpop_proof()?));
        }
        Ok(Form::from_pairs(
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
    }

    /// An RFC 9449 proof for the token endpoint at the case's time, by a P-256 key made
    /// for it (what a client holding its own key would send; explain reads it from the
    /// form member `dpop`).
    fn dpop_proof(&self) -> Result<String, CaseError> {
        let fail = |e: String| CaseError::field("request.dpop", format!("making a proof: {e}"));
        let key = crate::dev::dpop::ephemeral_key().map_err(|e| fail(format!("{e:#}")))?;
        crate::dev::dpop::proof(&key, &self.broker.token_endpoint, self.now)
            .map_err(|e| fail(format!("{e:#}")))
    }

    /// `[keys.<issuer>]`: a remote issuer's keys, read and checked as fetched ones.
    fn seed_keys(&mut self, keys: &[SuppliedKeys]) -> Result<(), CaseError> {
        for supplied in keys {
            let field = format!("keys.{}", supplied.issuer);
            let entry = self.entry(&supplied.issuer, &field)?;
            let seeded = match &supplied.material {
                KeyMaterial::JwksFile(path) => {
                    let jwks: Value =
                        serde_json::from_slice(&read(path, &field)?).map_err(|e| {
                            CaseError::field(&field, format!("{}: not JSON: {e}", path.display()))
                        })?;
                    let seeded = self.verifier.seed_jwks(entry, &jwks);
                    self.supplied_jwks.insert(supplied.issuer.clone(), jwks);
                    seeded.map_err(|e| (path, e))
                }
                KeyMaterial::MetadataFile(path) => self
                    .verifier
                    .seed_saml_metadata(entry, &read(path, &field)?)
                    .map_err(|e| (path, e)),
                KeyMaterial::CertFile(path) => {
                    let min_rsa_bits = entry
                        .saml()
                        .map_or(crate::xmldsig::MIN_RSA_BITS, |s| s.min_rsa_bits);
                    let certs =
                        crate::trust::metadata::parse_pem_certs(&read(path, &field)?, min_rsa_bits)
                            .map_err(|e| {
                                CaseError::field(&field, format!("{} {e}", path.display()))
                            })?;
                    self.verifier
                        .seed_saml_certs(entry, certs)
                        .map_err(|e| (path, e))
                }
            };
            seeded.map_err(|(path, e)| {
                CaseError::field(&field, format!("{}: {e}", path.display()))
            })?;
        }
        Ok(())
    }

    fn entry(&self, id: &str, field: &str) -> Result<&'a IssuerEntry, CaseError> {
        self.registry
            .issuers
            .get(id)
            .map(AsRef::as_ref)
            .ok_or_else(|| CaseError::field(field, format!("no issuer {id:?} in the registry")))
    }

    /// One token of the case and its declared type (a URN).
    fn token(
        &self,
        spec: &TokenSpec,
        grant: Grant,
        declared: Option<&str>,
    ) -> Result<Made, CaseError> {
        let table = spec.table;
        let field = |name: &str| format!("{table}.{name}");
        let entry = spec
            .issuer
            .as_deref()
            .map(|id| self.entry(id, &field("issuer")))
            .transpose()?;
        let token_type = match (declared, entry) {
            (Some(urn), _) => urn.to_owned(),
            (None, Some(entry)) => default_type(entry).urn().to_owned(),
            (None, None) => {
                let which = if table == "actor" { "actor" } else { "subject" };
                return Err(CaseError::field(
                    format!("request.{which}_token_type"),
                    "missing: a token read from a file has the type the request declares",
                ));
            }
        };
        let text = match &spec.source {
            TokenSource::File(path) => {
                let bytes = read(path, &field("file"))?;
                String::from_utf8(bytes)
                    .map_err(|_| {
                        CaseError::field(field("file"), format!("{} is not UTF-8", path.display()))
                    })?
                    .trim()
                    .to_owned()
            }
            TokenSource::Mint(mint) => {
                let entry = entry.ok_or_else(|| CaseError::field(field("issuer"), "missing"))?;
                let typ = TokenType::from_urn(&token_type);
                self.mint(spec, entry, mint, grant, typ)?
            }
        };
        if let Some(answer) = &spec.introspection {
            let entry = entry.ok_or_else(|| CaseError::field(field("issuer"), "missing"))?;
            // The answer is for the token asked as the declared type (its hint); an
            // unsupported URN is the pipeline's to refuse, so nothing is asked.
            if let Some(asked_as) = TokenType::from_urn(&token_type) {
                self.verifier
                    .seed_introspection(entry, asked_as, &text, answer.clone())
                    .map_err(|e| CaseError::field(field("introspection"), e.to_string()))?;
            }
        } else if spec.source_is_minted()
            && entry.is_some_and(|e| e.kind() == IssuerKind::Introspection)
        {
            return Err(CaseError::field(
                field("introspection"),
                "missing: what the issuer's introspection endpoint answers about the token \
                 (trust test is offline: nothing is asked)",
            ));
        }
        Ok(Made { text, token_type })
    }

    fn mint(
        &self,
        spec: &TokenSpec,
        entry: &IssuerEntry,
        mint: &Mint,
        grant: Grant,
        token_type: Option<TokenType>,
    ) -> Result<String, CaseError> {
        let table = spec.table;
        let only = |name: &str, kinds: &str| {
            CaseError::field(
                format!("{table}.{name}"),
                format!("only for {kinds}; {} is {}", entry.id, kind_name(entry)),
            )
        };
        let issued_at = mint.issued_at.unwrap_or(self.now);
        if entry.id == LOCAL_ISSUER {
            if mint.saml.is_some() {
                return Err(only("name_id", "saml issuers"));
            }
            for (name, set) in [
                ("key_file", mint.key_file.is_some()),
                ("kid", mint.kid.is_some()),
                ("typ", mint.typ.is_some()),
            ] {
                if set {
                    return Err(CaseError::field(
                        format!("{table}.{name}"),
                        "tessera's own tokens are signed with the test's signing key, as at+jwt",
                    ));
                }
            }
            return self.mint_local(mint, issued_at, table);
        }
        match entry.kind() {
            IssuerKind::Oidc => {
                if mint.saml.is_some() {
                    return Err(only("name_id", "saml issuers"));
                }
                self.mint_jwt(spec, entry, mint, grant, token_type, issued_at)
            }
            IssuerKind::Saml => {
                for (name, set) in [
                    ("claims", mint.claims.is_some()),
                    ("kid", mint.kid.is_some()),
                    ("typ", mint.typ.is_some()),
                ] {
                    if set {
                        return Err(only(name, "JWT issuers (oidc, local)"));
                    }
                }
                self.mint_saml(spec, entry, mint, grant, issued_at)
            }
            IssuerKind::Introspection => {
                for (name, set) in [
                    ("claims", mint.claims.is_some()),
                    ("key_file", mint.key_file.is_some()),
                    ("kid", mint.kid.is_some()),
                    ("typ", mint.typ.is_some()),
                    ("issued_at", mint.issued_at.is_some()),
                    ("lifetime", mint.lifetime.is_some()),
                    ("name_id", mint.saml.is_some()),
                ] {
                    if set {
                        return Err(CaseError::field(
                            format!("{table}.{name}"),
                            format!(
                                "{} tokens are opaque: what they say is the introspection \
                                 answer ([{table}.introspection])",
                                entry.id
                            ),
                        ));
                    }
                }
                Ok(format!("opaque-{}", uuid::Uuid::new_v4().simple()))
            }
        }
    }

    /// tessera's own token: `iss` (server.issuer), `iat`, `exp` and a fresh `jti`, then the
    /// case's claims (`sub`, `aud`, `client_id`, `scope`, `act`, ...).
    fn mint_local(
        &self,
        mint: &Mint,
        issued_at: UnixTime,
        table: &str,
    ) -> Result<String, CaseError> {
        let mut claims = Map::new();
        claims.insert("iss".into(), self.broker.issuer.clone().into());
        claims.insert("iat".into(), issued_at.into());
        claims.insert(
            "exp".into(),
            issued_at.saturating_add(mint.lifetime_secs()).into(),
        );
        claims.insert(
            "jti".into(),
            uuid::Uuid::new_v4().simple().to_string().into(),
        );
        claims.extend(mint.claims.clone().unwrap_or_default());
        let signed = self.keys.sign(&claims).map_err(|e| {
            CaseError::field(format!("{table}.claims"), format!("cannot sign: {e}"))
        })?;
        Ok(signed.token.expose().to_owned())
    }

    /// A foreign JWT: `iss`, `aud` (the issuer's first audience; `server.issuer` for a
    /// jwt-bearer assertion), `iat`, `exp`, then the case's claims.
    fn mint_jwt(
        &self,
        spec: &TokenSpec,
        entry: &IssuerEntry,
        mint: &Mint,
        grant: Grant,
        token_type: Option<TokenType>,
        issued_at: UnixTime,
    ) -> Result<String, CaseError> {
        let table = spec.table;
        let (pem, key_field) = self.signing_key(entry, mint, table)?;
        let key =
            JwtKey::from_pem(&pem).map_err(|e| CaseError::field(&key_field, format!("{e:#}")))?;
        let kid = mint.kid.clone().or_else(|| {
            key.kid_in(entry.oidc().map(|o| &o.keys)).or_else(|| {
                self.supplied_jwks
                    .get(entry.id.as_str())
                    .and_then(|j| key.kid_in_jwks(j))
            })
        });
        let mut claims = Map::new();
        claims.insert("iss".into(), entry.issuer.clone().into());
        let aud = match grant {
            Grant::JwtBearer => Some(self.broker.issuer.clone()),
            _ => entry.audiences.first().cloned(),
        };
        if let Some(aud) = aud {
            claims.insert("aud".into(), aud.into());
        }
        claims.insert("iat".into(), issued_at.into());
        claims.insert(
            "exp".into(),
            issued_at.saturating_add(mint.lifetime_secs()).into(),
        );
        claims.extend(mint.claims.clone().unwrap_or_default());
        let typ = mint.typ.clone().unwrap_or_else(|| match token_type {
            Some(TokenType::AccessToken) => "at+jwt".to_owned(),
            _ => "JWT".to_owned(),
        });
        key.sign(kid, &typ, &claims)
            .map_err(|e| CaseError::field(&key_field, format!("cannot sign: {e:#}")))
    }

    /// A signed assertion, as `tessera dev saml-assertion` makes it, issued at `issued_at`.
    fn mint_saml(
        &self,
        spec: &TokenSpec,
        entry: &IssuerEntry,
        mint: &Mint,
        grant: Grant,
        issued_at: UnixTime,
    ) -> Result<String, CaseError> {
        let table = spec.table;
        let saml = mint.saml.as_ref();
        let name_id = saml.and_then(|s| s.name_id.clone()).ok_or_else(|| {
            CaseError::field(
                format!("{table}.name_id"),
                "missing: the assertion's NameID",
            )
        })?;
        let (pem, key_field) = self.signing_key(entry, mint, table)?;
        let mut audiences = saml.map(|s| s.audiences.clone()).unwrap_or_default();
        if audiences.is_empty() && grant == Grant::Saml2Bearer {
            // RFC 7522 §3: addressed to tessera itself.
            audiences.push(self.broker.saml_entity_id.clone());
        }
        let args = SamlAssertionArgs {
            issuer: entry.id.to_string(),
            name_id,
            name_id_format: saml
                .and_then(|s| s.name_id_format.clone())
                .unwrap_or_else(|| DEFAULT_NAME_ID_FORMAT.to_owned()),
            attributes: saml.map(|s| s.attributes.clone()).unwrap_or_default(),
            audience: audiences,
            recipient: saml.and_then(|s| s.recipient.clone()),
            lifetime: mint.lifetime.unwrap_or(std::time::Duration::from_secs(300)),
            one_time_use: saml.is_some_and(|s| s.one_time_use),
            response: saml.is_some_and(|s| s.response),
            sign: saml.and_then(|s| s.sign).unwrap_or(SamlSign::Assertion),
            xml: false,
            dir: None,
            count: 1,
        };
        let clock = FixedClock::new(issued_at);
        crate::dev::saml::mint_saml_with(entry, &pem, &args, self.broker, &clock)
            .map_err(|e| CaseError::field(&key_field, format!("{e:#}")))?
            .pop()
            .ok_or_else(|| CaseError::field(&key_field, "no assertion was minted"))
    }

    /// The private key a foreign token is signed with: the case's `key_file`, else the
    /// entry's `demo_signing_key_file`.
    fn signing_key(
        &self,
        entry: &IssuerEntry,
        mint: &Mint,
        table: &str,
    ) -> Result<(Vec<u8>, String), CaseError> {
        let field = format!("{table}.key_file");
        let path = mint
            .key_file
            .as_deref()
            .or(entry.demo_signing_key_file.as_deref())
            .ok_or_else(|| {
                CaseError::field(
                    &field,
                    format!(
                        "missing: {} has no demo_signing_key_file, so name the private key \
                         that signs the case's token (its public half in the issuer's keys), \
                         or give the token as `file`",
                        entry.id
                    ),
                )
            })?;
        Ok((read(path, &field)?, field))
    }
}

/// A made token: its text and declared type.
struct Made {
    text: String,
    token_type: String,
}

impl TokenSpec {
    fn source_is_minted(&self) -> bool {
        matches!(self.source, TokenSource::Mint(_))
    }
}

/// The type a token of `entry` is declared as when the case does not say.
fn default_type(entry: &IssuerEntry) -> TokenType {
    match entry.kind() {
        IssuerKind::Saml => TokenType::Saml2,
        IssuerKind::Introspection => TokenType::AccessToken,
        IssuerKind::Oidc if entry.id == LOCAL_ISSUER => TokenType::AccessToken,
        IssuerKind::Oidc => TokenType::IdToken,
    }
}

fn kind_name(entry: &IssuerEntry) -> String {
    if entry.id == LOCAL_ISSUER {
        "tessera itself".to_owned()
    } else {
        format!("of kind {}", entry.kind().label())
    }
}

/// A file the case names, with a size cap; the problem names the field and the file.
fn read(path: &Path, field: &str) -> Result<Vec<u8>, CaseError> {
    let problem = |what: String| CaseError::field(field, format!("{}: {what}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(problem(format!(
            "{} bytes, over the {MAX_FILE_BYTES}-byte limit",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| problem(e.to_string()))
}
