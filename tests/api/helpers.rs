//! `TestApp`: the real broker on a random port, over a fresh SQLite file or PostgreSQL
//! schema, with a real foreign OIDC issuer (`TestIssuer`) and a registry written to a
//! temporary directory. Time comes from a `FixedClock` shared with the issuer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use tessera::clock::{Clock, FixedClock, SharedClock, SystemClock};
use tessera::config::Config;
use tessera::startup::Application;
use tessera::store::audit::AuditRow;
use tessera::store::testing::{fresh_database_url, test_kinds, TestDatabase, TestDbKind};
use tessera::store::Store;

use crate::issuer::TestIssuer;

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ISSUER: &str = "https://tessera.test";

pub const ORDERS_SECRET: &str = "orders-secret";
pub const BATCH_SECRET: &str = "batch-secret";

pub fn secret_hash(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// Databases every backend-agnostic test runs against.
pub fn backends() -> Vec<TestDbKind> {
    test_kinds()
}

pub fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        // Leaked on purpose: the test process's logs flush until it exits.
        std::mem::forget(tessera::telemetry::init());
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    Basic(&'a str, &'a str),
    None,
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub clock: Arc<FixedClock>,
    pub issuer: Arc<TestIssuer>,
    pub store: Store,
    pub trust_dir: PathBuf,
    /// The configuration the server runs with (for a second replica on the same database).
    pub config: Config,
    /// The running server's pipeline: what `POST /admin/explain` calls.
    pub exchanger: Arc<tessera::exchange::Exchanger>,
    server: actix_web::dev::ServerHandle,
    _trust: tempfile::TempDir,
    _db: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let stop = self.server.stop(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stop);
        }
    }
}

type ConfigureFn = Box<dyn FnOnce(&mut Config)>;

pub struct TestAppBuilder {
    kind: TestDbKind,
    now: Option<i64>,
    files: Vec<(String, String)>,
    default_registry: bool,
    issuer: Option<Arc<TestIssuer>>,
    configure: Option<ConfigureFn>,
}

impl TestAppBuilder {
    /// Freezes the broker's (and the test issuer's) clock at this Unix time.
    pub fn at(mut self, now: i64) -> Self {
        self.now = Some(now);
        self
    }
    /// Adds or replaces a registry file (`issuers/x.toml`, …). `{issuer}` in the content is
    /// replaced by the test issuer's URL.
    pub fn file(mut self, path: &str, content: &str) -> Self {
        self.files.push((path.to_owned(), content.to_owned()));
        self
    }
    /// Starts from an empty registry instead of the default one.
    pub fn empty_registry(mut self) -> Self {
        self.default_registry = false;
        self
    }
    /// Starts from a copy of the registry in `dir` (e.g. the repository's `trust/`).
    pub fn copy_registry(mut self, dir: &Path) -> Self {
        self.default_registry = false;
        for sub in ["issuers", "clients", "audiences"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries {
                let e = e.expect("dir entry");
                let name = e.file_name().to_string_lossy().into_owned();
                let content = std::fs::read_to_string(e.path()).expect("read registry file");
                self.files.push((format!("{sub}/{name}"), content));
            }
        }
        self
    }
    pub fn with_issuer(mut self, issuer: Arc<TestIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logs();
        let now = self.now.unwrap_or_else(|| SystemClock.now());
        let clock = Arc::new(FixedClock::new(now));
        let shared: SharedClock = clock.clone();
        let issuer = match self.issuer {
            Some(i) => i,
            None => Arc::new(TestIssuer::start_with_clock(shared.clone()).await),
        };
        let trust = tempfile::tempdir().expect("tempdir");
        let mut files = if self.default_registry {
            default_registry()
        } else {
            vec![]
        };
        files.extend(self.files);
        for (path, content) in files {
            write(
                trust.path(),
                &path,
                &content.replace("{issuer}", issuer.url()),
            );
        }
        let db = fresh_database_url(self.kind).expect("test database");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().expect("addr");
        config.server.issuer = ISSUER.to_owned();
        config.server.workers = Some(2);
        config.server.shutdown_timeout = std::time::Duration::from_secs(1);
        config.database.url = db.url.clone();
        config.trust.dir = trust.path().to_path_buf();
        if let Some(f) = self.configure {
            f(&mut config);
        }
        let app = Application::build_with_clock(config.clone(), shared)
            .await
            .expect("application starts");
        let port = app.port();
        let store = app.state().store.clone();
        let exchanger = app.state().exchanger.clone();
        let server = app.server_handle();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            clock,
            issuer,
            store,
            trust_dir: trust.path().to_path_buf(),
            config,
            exchanger,
            server,
            _trust: trust,
            _db: db,
        }
    }
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write registry file");
}

/// The registry most tests run against: one OIDC issuer (`acme`, the test issuer), three
/// clients, two audiences.
pub fn default_registry() -> Vec<(String, String)> {
    let f = |p: &str, c: String| (p.to_owned(), c);
    vec![
        f(
            "issuers/acme.toml",
            r#"kind = "oidc"
issuer = "{issuer}"
discovery_url = "{issuer}/.well-known/openid-configuration"
audiences = ["tessera", "app-only"]
algorithms = ["RS256", "ES256"]
token_types = ["id_token", "access_token", "jwt"]
[mapping]
claims = { email = "assertion.email", groups = "assertion.groups" }
"#
            .to_owned(),
        ),
        f(
            "clients/orders-service.toml",
            format!(
                r#"client_id = "orders-service"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
actor_issuers = ["acme"]
audiences = ["orders", "inventory"]
scopes = ["orders:read", "orders:write", "inventory:read"]
on_behalf_of = "delegate"
max_lifetime = "15m"
"#,
                secret_hash(ORDERS_SECRET)
            ),
        ),
        f(
            "clients/batch-job.toml",
            format!(
                r#"client_id = "batch-job"
auth = "client_secret_post"
secret_hash = "{}"
subject_issuers = ["acme"]
audiences = ["inventory"]
scopes = ["inventory:read"]
on_behalf_of = "impersonate"
"#,
                secret_hash(BATCH_SECRET)
            ),
        ),
        f(
            "clients/app-bound.toml",
            format!(
                r#"client_id = "app-bound"
auth = "client_secret_basic"
secret_hash = "{}"
subject_issuers = ["acme"]
subject_audiences = ["app-only"]
audiences = ["inventory"]
scopes = ["inventory:read"]
"#,
                secret_hash("app-secret")
            ),
        ),
        f(
            "audiences/orders.toml",
            r#"audience = "https://api.orders.example"
resources = ["https://api.orders.example/"]
scopes = ["orders:read", "orders:write"]
lifetime = "10m"
claims = ["email", "groups"]
"#
            .to_owned(),
        ),
        f(
            "audiences/inventory.toml",
            r#"audience = "inventory"
scopes = ["inventory:read"]
lifetime = "5m"
claims = ["email"]
"#
            .to_owned(),
        ),
    ]
}

/// Another server process's worth of broker (its own caches and in-memory state) on the
/// same database and registry: what a second replica behind a load balancer is.
pub struct Replica {
    pub address: String,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let stop = self.server.stop(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stop);
        }
    }
}

impl TestApp {
    pub async fn spawn_replica(&self) -> Replica {
        let shared: SharedClock = self.clock.clone();
        let app = Application::build_with_clock(self.config.clone(), shared)
            .await
            .expect("replica starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let server = app.server_handle();
        tokio::spawn(app.run_until_stopped());
        Replica { address, server }
    }

    pub fn builder(kind: TestDbKind) -> TestAppBuilder {
        TestAppBuilder {
            kind,
            now: None,
            files: vec![],
            default_registry: true,
            issuer: None,
            configure: None,
        }
    }

    pub async fn spawn(kind: TestDbKind) -> TestApp {
        Self::builder(kind).spawn().await
    }

    pub fn database_url(&self) -> String {
        self._db.url.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    pub async fn post_token(&self, auth: Auth<'_>, params: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.post(self.url("/token")).form(params);
        if let Auth::Basic(id, secret) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("POST /token")
    }

    /// Token exchange by `orders-service` (Basic auth) with `extra` parameters.
    pub async fn exchange(
        &self,
        subject_token: &str,
        subject_token_type: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut params = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", subject_token_type),
        ];
        params.extend_from_slice(extra);
        self.post_token(Auth::Basic("orders-service", ORDERS_SECRET), &params)
            .await
    }

    /// The running broker's explanation of a `/token` form for `client_id` (the function
    /// `POST /admin/explain` answers with).
    pub async fn explain(
        &self,
        client_id: &str,
        params: &[(&str, &str)],
    ) -> tessera::exchange::Explanation {
        let pairs = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let form = tessera::exchange::Form::from_pairs(pairs);
        self.exchanger.explain(client_id, &form).await
    }

    /// Explains the request [`TestApp::exchange`] sends.
    pub async fn explain_exchange(
        &self,
        subject_token: &str,
        subject_token_type: &str,
        extra: &[(&str, &str)],
    ) -> tessera::exchange::Explanation {
        let mut params = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", subject_token_type),
        ];
        params.extend_from_slice(extra);
        self.explain("orders-service", &params).await
    }

    /// Audit rows, newest first; pending refusal summaries are written first, as the
    /// broker does every `limits.refusal_summary_interval` and at shutdown.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        self.exchanger.audit.flush_summaries().await;
        self.store
            .run(|conn| tessera::store::audit::recent_events(conn, 1000))
            .await
            .expect("audit rows")
    }

    /// Verifies an issued access token against `/jwks.json`; returns (header, claims).
    pub async fn verify_issued(&self, token: &str) -> (Value, Value) {
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .get("/jwks.json")
            .await
            .json()
            .await
            .expect("jwks json");
        let header = jsonwebtoken::decode_header(token).expect("header");
        let kid = header.kid.clone().expect("kid");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("kid published"))
            .expect("key");
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_audience(&["https://api.orders.example", "inventory", "warehouse"]);
        v.set_issuer(&[ISSUER]);
        v.validate_exp = false; // the clock is fixed; exp is checked against it below
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).expect("issued token verifies");
        let claims = data.claims;
        assert!(claims["exp"].as_i64().expect("exp") > self.clock.now());
        (
            serde_json::to_value(&data.header).expect("header json"),
            claims,
        )
    }
}

/// Asserts a 400 `invalid_request` (no token in it) whose description says `words`;
/// returns its body.
pub async fn assert_invalid_request_saying(resp: reqwest::Response, words: &str) -> Value {
    let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        body["error_description"].as_str().unwrap().contains(words),
        "{body}"
    );
    body
}

/// Asserts an OAuth error response with no token in it and returns its body.
pub async fn assert_oauth_error(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["error_description"].is_string(),
        "description in {body}"
    );
    assert!(body.get("access_token").is_none());
    body
}

/// Whether an audit row's refusal is `label`: the failing step's name (the `reason`) or
/// the finer check that opens its account (`expired`, `unknown_kid`, ...).
pub fn audit_says(row: &AuditRow, label: &str) -> bool {
    let check = row.detail.as_deref().and_then(|d| d.split(": ").next());
    row.reason.as_deref() == Some(label) || check == Some(label)
}

impl TestApp {
    /// The newest audit row: a refusal with this reason and no token (earlier rows may
    /// record tokens issued before it).
    pub async fn assert_last_refused(&self, reason: &str) {
        let rows = self.audit_rows().await;
        let last = rows.first().expect("an audit row for the refusal");
        assert_eq!(last.outcome, "refused", "{last:?}");
        assert!(
            audit_says(last, reason),
            "audit reason {:?} should say {reason}",
            last.reason
        );
        assert!(last.jti.is_none());
    }

    /// The newest audit row: a refusal with this reason, and no token ever issued.
    pub async fn assert_refusal_audited(&self, reason: &str) {
        self.assert_last_refused(reason).await;
        let rows = self.audit_rows().await;
        assert!(
            rows.iter().all(|r| r.outcome != "issued"),
            "no token was issued"
        );
    }
}

pub fn kind_name(kind: TestDbKind) -> &'static str {
    match kind {
        TestDbKind::Sqlite => "sqlite",
        TestDbKind::Postgres => "postgres",
    }
}
