//! `tessera trust check --online`: every remote key source the registry names, fetched
//! once, now, with the broker's own outbound code — the same [`Fetcher`] (timeouts, no
//! redirects, size cap), the same discovery check, JWKS parser and metadata reader the
//! verifier's caches use — so that what passes here is what `serve` will accept.
//!
//! Sources: an oidc issuer's `discovery_url` (and the `jwks_uri` it names) or `jwks_uri`;
//! a saml issuer's `metadata_url`; an introspection issuer's `introspection_endpoint`
//! (reachability only: a POST without credentials, any HTTP answer counts); a
//! `private_key_jwt` client's `jwks_uri`. Files were read at load and are not repeated.

use futures_util::future::join_all;
use url::Url;

use super::cache::Source;
use super::fetch::{FetchError, Fetcher, OutboundConfig};
use super::keys::{CachedSource, JwksSource};
use crate::clock::UnixTime;
use crate::trust::{IssuerEntry, KeySource, KindSettings, Registry, SamlKeySource};

/// What one remote source answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCheck {
    /// The entry, as the listing names it: `issuer acme`, `client orders-service`.
    pub entry: String,
    /// The registry field the URL comes from (`discovery_url`, `jwks_uri`, ...), or
    /// `discovered jwks_uri` (named by the discovery document).
    pub field: String,
    pub url: String,
    /// `Ok`: what was found ("2 keys"); `Err`: why the source failed.
    pub outcome: Result<String, String>,
}

impl SourceCheck {
    /// One line of `trust check --online`.
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(found) => format!(
                "source    {}  {}={}  ok: {found}",
                self.entry, self.field, self.url
            ),
            Err(why) => format!(
                "source    {}  {}={}  FAILED: {why}",
                self.entry, self.field, self.url
            ),
        }
    }
}

/// Fetches every remote source of `registry`, all at once (each bounded by the outbound
/// timeout), and reports them in registry order.
pub async fn check_remote_sources(
    registry: &Registry,
    outbound: &OutboundConfig,
    now: UnixTime,
) -> Result<Vec<SourceCheck>, FetchError> {
    let fetcher = Fetcher::new(
        outbound.timeout,
        outbound.max_response_bytes,
        outbound.offline,
    )?;
    let fetcher = &fetcher;
    let issuers = registry
        .issuers
        .values()
        .map(|issuer| check_issuer(issuer, fetcher, outbound, now));
    let clients = registry.clients.values().filter_map(|client| {
        let KeySource::JwksUri(url) = client.jwks.as_ref()? else {
            return None;
        };
        let entry = format!("client {}", client.client_id);
        Some(async move {
            vec![
                check_jwks(
                    entry,
                    "jwks_uri",
                    &client.client_id,
                    url,
                    fetcher,
                    outbound,
                    now,
                )
                .await,
            ]
        })
    });
    let mut checks = join_all(issuers).await;
    checks.extend(join_all(clients).await);
    Ok(checks.into_iter().flatten().collect())
}

async fn check_issuer(
    issuer: &IssuerEntry,
    fetcher: &Fetcher,
    outbound: &OutboundConfig,
    now: UnixTime,
) -> Vec<SourceCheck> {
    let entry = format!("issuer {}", issuer.id);
    match &issuer.settings {
        KindSettings::Oidc(oidc) => match &oidc.keys {
            KeySource::Discovery(url) => {
                let discovered = fetcher.discover_jwks_uri(url, &issuer.issuer).await;
                let mut checks = vec![SourceCheck {
                    entry: entry.clone(),
                    field: "discovery_url".to_owned(),
                    url: url.to_string(),
                    outcome: discovered
                        .as_ref()
                        .map(|jwks_uri| format!("issuer matches, jwks_uri={jwks_uri}"))
                        .map_err(|e| describe(e, outbound)),
                }];
                if let Ok(jwks_uri) = discovered {
                    checks.push(
                        check_jwks(
                            entry,
                            "discovered jwks_uri",
                            &issuer.issuer,
                            &jwks_uri,
                            fetcher,
                            outbound,
                            now,
                        )
                        .await,
                    );
                }
                checks
            }
            KeySource::JwksUri(url) => {
                vec![
                    check_jwks(
                        entry,
                        "jwks_uri",
                        &issuer.issuer,
                        url,
                        fetcher,
                        outbound,
                        now,
                    )
                    .await,
                ]
            }
            KeySource::JwksFile { .. } | KeySource::Local => Vec::new(),
        },
        KindSettings::Saml(saml) => {
            let SamlKeySource::MetadataUrl { url, .. } = &saml.keys else {
                return Vec::new();
            };
            let Some(fetched) = super::saml::fetch_metadata_once(issuer, fetcher, now).await else {
                return Vec::new();
            };
            vec![SourceCheck {
                entry,
                field: "metadata_url".to_owned(),
                url: url.to_string(),
                outcome: fetched
                    .map(|certs| plural(certs.len(), "signing certificate"))
                    .map_err(|e| describe(&e, outbound)),
            }]
        }
        KindSettings::Introspection(s) => vec![SourceCheck {
            entry,
            field: "introspection_endpoint".to_owned(),
            url: s.endpoint.to_string(),
            outcome: fetcher
                .answers_post(&s.endpoint)
                .await
                .map(|status| format!("reachable (HTTP {status} to a request without credentials)"))
                .map_err(|e| describe(&e, outbound)),
        }],
    }
}

/// A JWKS at `url`, fetched and parsed as the verifier's key cache does.
async fn check_jwks(
    entry: String,
    field: &str,
    issuer: &str,
    url: &Url,
    fetcher: &Fetcher,
    outbound: &OutboundConfig,
    now: UnixTime,
) -> SourceCheck {
    let source = JwksSource {
        issuer: issuer.to_owned(),
        keys: CachedSource::JwksUri(url.clone()),
    };
    let outcome = match source.fetch(fetcher, now).await {
        Ok(fetched) if fetched.value.skipped > 0 => Ok(format!(
            "{} ({} skipped as unusable)",
            plural(fetched.value.keys.len(), "key"),
            fetched.value.skipped
        )),
        Ok(fetched) => Ok(plural(fetched.value.keys.len(), "key")),
        Err(e) => Err(describe(&e, outbound)),
    };
    SourceCheck {
        entry,
        field: field.to_owned(),
        url: url.to_string(),
        outcome,
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Why a fetch failed, for an operator: "connection refused", "timed out after 5s",
/// "HTTP status 404", "response is not valid JSON: ...". reqwest's own message only
/// names the URL; the cause is at the end of its source chain.
fn describe(e: &FetchError, outbound: &OutboundConfig) -> String {
    let FetchError::Http(http) = e else {
        return e.to_string();
    };
    if http.is_timeout() {
        return format!(
            "timed out after {} (outbound.timeout)",
            humantime::format_duration(outbound.timeout)
        );
    }
    // The innermost cause (hyper's, then the OS's), and the io::Error on the way if any.
    let mut cause: &dyn std::error::Error = http;
    let mut io = None;
    while let Some(inner) = cause.source() {
        cause = inner;
        io = io.or_else(|| inner.downcast_ref::<std::io::Error>());
    }
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(std::io::ErrorKind::TimedOut) => "timed out".to_owned(),
        _ if http.is_connect() => format!("cannot connect: {cause}"),
        _ => format!("request failed: {cause}"),
    }
}
