//! Outbound HTTP to foreign issuers: discovery, JWKS, IdP metadata, introspection (SPEC
//! §4 "Outbound fetches", §6), and the `[outbound]` limits it applies.
//!
//! Rule: only URLs named in the registry (and a discovery document's `jwks_uri`) are
//! fetched; no redirects; connect and total timeouts; the body is streamed into a buffer
//! capped at `max_response_bytes`; nothing is taken from discovery but `jwks_uri`.

use std::time::Duration;

use reqwest::redirect::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// `[outbound]` (SPEC §2): limits of every request tessera makes to a foreign issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Total time for one outbound request: discovery, JWKS, IdP metadata, introspection.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest discovery/JWKS document accepted.
    pub max_response_bytes: usize,
    /// An unknown `kid` triggers at most one JWKS refresh per issuer per this interval.
    #[serde(with = "humantime_serde")]
    pub refresh_cooldown: Duration,
    /// Keys are re-fetched in the background once they are this old.
    #[serde(with = "humantime_serde")]
    pub keys_ttl: Duration,
    /// When refreshing fails, the last good keys keep serving for at most this long
    /// after they were fetched.
    #[serde(with = "humantime_serde")]
    pub max_stale: Duration,
    /// No outbound request at all (`tessera explain --offline`, `tessera trust test`):
    /// every fetch fails at once, so only key files, what the caches already hold and what
    /// `trust test` supplies (`Verifier::seed_*`) are used. Not a file setting: a server
    /// always fetches.
    #[serde(skip)]
    pub offline: bool,
}

/// Why a fetch failed: for logs and metrics only, never shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// With its whole chain of causes (connection refused, a TLS failure, a timeout):
    /// reqwest's own message alone says only "error sending request".
    #[error("HTTP request failed: {}", causes(.0))]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("response is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("discovery issuer {found:?} is not the registered issuer")]
    IssuerMismatch { found: String },
    #[error("discovery jwks_uri is not acceptable: {0}")]
    BadJwksUri(&'static str),
    /// SPEC §6: a URL learnt from a document points at a loopback, link-local or private
    /// address while the registry URL it came from does not.
    #[error(
        "{what} {host} is an internal address, and the registry URL it was learnt from is not"
    )]
    InternalAddress { what: &'static str, host: String },
    #[error("timed out")]
    Timeout,
    #[error("JWKS: {0}")]
    Jwks(#[from] super::keys::JwksError),
    #[error("SAML metadata: {0}")]
    Metadata(#[from] crate::trust::metadata::MetadataError),
    #[error("the document's validUntil has passed")]
    Expired,
    #[error("the verification task failed")]
    Task,
    #[error("offline: {0} is not fetched (only key files and supplied keys are used)")]
    Offline(String),
}

/// The only members of a discovery document tessera reads (OpenID Connect Discovery
/// §3). Algorithms advertised there are never used: the allow-list is the registry's.
#[derive(Debug, Deserialize)]
struct DiscoveryDoc {
    issuer: String,
    jwks_uri: String,
}

#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
    offline: bool,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(timeout: Duration, max_bytes: usize, offline: bool) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: Self::builder(timeout).build()?,
            max_bytes,
            offline,
            timeout,
        })
    }

    fn builder(timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
    }

    /// A fetcher that connects to `host` only at `addrs` (those [`check_learnt`] checked):
    /// a name that answers differently the second time cannot slip past the check.
    fn pinned(&self, host: &str, addrs: &[std::net::SocketAddr]) -> Result<Self, FetchError> {
        Ok(Self {
            client: Self::builder(self.timeout)
                .resolve_to_addrs(host, addrs)
                .build()?,
            ..self.clone()
        })
    }

    /// GET a JSON document, streaming with a size cap.
    pub async fn get_json(&self, url: &Url) -> Result<Value, FetchError> {
        let buf = self.get_bytes(url, "application/json").await?;
        Ok(serde_json::from_slice(&buf)?)
    }

    /// GET a document as bytes, streaming with a size cap.
    pub async fn get_bytes(&self, url: &Url, accept: &'static str) -> Result<Vec<u8>, FetchError> {
        let request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept);
        self.capped_body(request).await
    }

    /// POST `form` to `url` (RFC 7662 introspection), optionally with HTTP Basic
    /// credentials; the JSON answer as bytes, with the same rules and cap as a GET.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, FetchError> {
        let mut request = self
            .client
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        self.capped_body(request).await
    }

    /// Whether `url` answers HTTP at all (`tessera trust check --online` for an
    /// introspection endpoint): a POST of an empty form without credentials, so that
    /// nothing is introspected; any status is an answer and is returned. Connection
    /// failures and timeouts are errors, as for every other request.
    pub async fn answers_post(&self, url: &Url) -> Result<u16, FetchError> {
        let empty: &[(&str, &str)] = &[];
        let resp = self
            .client
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(empty)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }

    async fn capped_body(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, FetchError> {
        if self.offline {
            let url = request
                .build()
                .map(|r| r.url().to_string())
                .unwrap_or_default();
            return Err(FetchError::Offline(url));
        }
        let mut resp = request.send().await?;
        // No redirects are followed: a 3xx is a failure like any other non-200.
        if resp.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if buf.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// OpenID Connect Discovery §4.3: the document's `issuer` must equal the registered
    /// issuer exactly. Returns its `jwks_uri`, which must be https unless the discovery
    /// URL itself is http (a test or lab issuer).
    pub async fn discover_jwks_uri(
        &self,
        discovery_url: &Url,
        issuer: &str,
    ) -> Result<Url, FetchError> {
        let doc: DiscoveryDoc = serde_json::from_value(self.get_json(discovery_url).await?)?;
        if doc.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                found: super::error::sanitize_label(&doc.issuer),
            });
        }
        let jwks_uri =
            Url::parse(&doc.jwks_uri).map_err(|_| FetchError::BadJwksUri("not a URL"))?;
        match (jwks_uri.scheme(), discovery_url.scheme()) {
            ("https", _) | ("http", "http") => {}
            _ => return Err(FetchError::BadJwksUri("not https")),
        }
        Ok(jwks_uri)
    }

    /// GET the JWKS a discovery document at `discovery_url` named: checked by
    /// [`check_learnt`] and fetched from exactly the addresses checked.
    pub async fn get_learnt_json(
        &self,
        learnt: &Url,
        discovery_url: &Url,
    ) -> Result<Value, FetchError> {
        match check_learnt("discovery jwks_uri", learnt, discovery_url).await? {
            Some((host, addrs)) => self.pinned(&host, &addrs)?.get_json(learnt).await,
            None => self.get_json(learnt).await,
        }
    }
}

impl FetchError {
    /// What `/readyz` says of the failure: a closed text (and an HTTP status), never a
    /// URL, a host or the document's content, since `/readyz` is not authenticated. The
    /// log line has the whole error.
    pub fn summary(&self) -> String {
        match self {
            Self::Http(e) => {
                let mut cause: &dyn std::error::Error = e;
                while let Some(source) = cause.source() {
                    cause = source;
                }
                let io = cause
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind);
                match io {
                    Some(std::io::ErrorKind::ConnectionRefused) => "connection refused",
                    Some(std::io::ErrorKind::TimedOut) => "timed out",
                    _ if e.is_timeout() => "timed out",
                    _ if e.is_connect() => "cannot connect (DNS, TLS or network)",
                    _ => "request failed",
                }
                .to_owned()
            }
            Self::Status(code) => format!("HTTP status {code}"),
            Self::TooLarge(_) => "response too large".to_owned(),
            Self::Json(_) => "response is not valid JSON".to_owned(),
            Self::IssuerMismatch { .. } => "the discovery document names another issuer".to_owned(),
            Self::BadJwksUri(why) => format!("discovery jwks_uri is not acceptable: {why}"),
            Self::InternalAddress { what, .. } => format!("{what} points at an internal address"),
            Self::Timeout => "timed out".to_owned(),
            Self::Jwks(_) => "the JWKS has no usable key".to_owned(),
            Self::Metadata(_) => "the metadata was refused".to_owned(),
            Self::Expired => "the document's validUntil has passed".to_owned(),
            Self::Task => "the verification task failed".to_owned(),
            Self::Offline(_) => "offline".to_owned(),
        }
    }
}

/// `error` and each of its sources, joined with ": ".
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// SPEC §6: a URL learnt from a document (`learnt`) may reach an internal address only
/// when the registry URL it came from (`from`) does: a partner's discovery document must
/// not be able to point tessera at its own network (cloud metadata, an admin port).
/// Names are resolved here; a name that resolves to nothing is left to the fetch, which
/// fails on its own.
///
/// Returns, for a name, the addresses it resolved to: the fetch must connect to those and
/// no others ([`Fetcher::get_learnt_json`]), or a name answering a public address here
/// and an internal one at the fetch would pass (DNS rebinding).
pub async fn check_learnt(
    what: &'static str,
    learnt: &Url,
    from: &Url,
) -> Result<Option<(String, Vec<std::net::SocketAddr>)>, FetchError> {
    let refused = || FetchError::InternalAddress {
        what,
        host: learnt.host_str().unwrap_or_default().to_owned(),
    };
    let target = resolve(learnt).await;
    if is_internal(&target) && !is_internal(&resolve(from).await) {
        return Err(refused());
    }
    Ok(target.pinned())
}

/// Where a URL's host leads.
enum Resolved {
    Ip(std::net::IpAddr),
    /// `localhost` and its subdomains: loopback whatever DNS says.
    Localhost,
    Name(String, Vec<std::net::SocketAddr>),
    /// No host, or a name that resolves to nothing (the fetch fails on its own).
    Nothing,
}

impl Resolved {
    fn pinned(self) -> Option<(String, Vec<std::net::SocketAddr>)> {
        match self {
            Self::Name(host, addrs) if !addrs.is_empty() => Some((host, addrs)),
            _ => None,
        }
    }
}

async fn resolve(url: &Url) -> Resolved {
    use url::Host;
    match url.host() {
        Some(Host::Ipv4(ip)) => Resolved::Ip(ip.into()),
        Some(Host::Ipv6(ip)) => Resolved::Ip(ip.into()),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Resolved::Localhost;
            }
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Option<Vec<std::net::SocketAddr>> =
                match tokio::net::lookup_host((name.as_str(), port)).await {
                    Ok(addrs) => Some(addrs.collect()),
                    Err(_) => None,
                };
            addrs.map_or(Resolved::Nothing, |addrs| Resolved::Name(name, addrs))
        }
        None => Resolved::Nothing,
    }
}

fn is_internal(r: &Resolved) -> bool {
    match r {
        Resolved::Ip(ip) => internal_ip(*ip),
        Resolved::Localhost => true,
        Resolved::Name(_, addrs) => addrs.iter().any(|a| internal_ip(a.ip())),
        Resolved::Nothing => false,
    }
}

/// Loopback, private (RFC 1918, RFC 4193), link-local, shared (RFC 6598), benchmarking
/// (RFC 2544), reserved (240/4), unspecified; and IPv6 forms that carry an IPv4 address
/// (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) when that one is.
fn internal_ip(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                internal_ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_ip(IpAddr::V4(v4));
            }
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return embedded(s[6], s[7]);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod learnt_url_tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_public_document_cannot_point_inside_and_an_internal_one_may() {
        let public = url("https://93.184.216.34/.well-known/openid-configuration");
        for inside in [
            "http://127.0.0.1/jwks",
            "https://10.1.2.3/jwks",
            "https://172.16.0.1/jwks",
            "https://192.168.1.1/jwks",
            "http://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/jwks",
            "https://[::1]/jwks",
            "https://[fd00::1]/jwks",
            "https://[fe80::1]/jwks",
            "https://[::ffff:127.0.0.1]/jwks",
            "https://localhost/jwks",
            "https://a.localhost./jwks",
            "https://0.0.0.0/jwks",
            "https://[64:ff9b::a9fe:a9fe]/jwks",
            "https://[2002:a9fe:a9fe::]/jwks",
            "https://[::a9fe:a9fe]/jwks",
            "https://198.18.0.1/jwks",
            "https://240.0.0.1/jwks",
        ] {
            let err = check_learnt("jwks_uri", &url(inside), &public).await;
            assert!(
                matches!(err, Err(FetchError::InternalAddress { .. })),
                "{inside}"
            );
        }
        let outside = url("https://93.184.216.35/jwks");
        assert!(check_learnt("jwks_uri", &outside, &public).await.is_ok());
        let internal = url("http://127.0.0.1:8080/.well-known/openid-configuration");
        for inside in ["http://127.0.0.1:9/jwks", "http://10.0.0.1/jwks"] {
            assert!(check_learnt("jwks_uri", &url(inside), &internal)
                .await
                .is_ok());
        }
        let msg = check_learnt("discovery jwks_uri", &url("http://10.0.0.1/k"), &public)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("10.0.0.1") && msg.contains("internal"),
            "{msg}"
        );
    }

    /// The checked addresses are the ones connected to: a name no resolver knows reaches
    /// the server it was pinned to.
    #[tokio::test]
    async fn a_pinned_fetch_connects_to_the_checked_addresses() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let body = r#"{"keys":[]}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
        });
        let fetcher = Fetcher::new(std::time::Duration::from_secs(5), 1024, false).unwrap();
        let doc = fetcher
            .pinned("jwks.pinned.invalid", &[addr])
            .unwrap()
            .get_json(&url(&format!(
                "http://jwks.pinned.invalid:{}/jwks",
                addr.port()
            )))
            .await
            .unwrap();
        assert_eq!(doc, serde_json::json!({"keys": []}));
    }

    #[tokio::test]
    async fn a_connection_failure_keeps_its_root_cause() {
        // A port nothing listens on: the message says why, not only "request failed".
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fetcher = Fetcher::new(std::time::Duration::from_secs(2), 1024, false).unwrap();
        let err = fetcher
            .get_json(&url(&format!("http://127.0.0.1:{port}/jwks")))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("connect"), "{err}");
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }
}
