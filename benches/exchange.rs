//! Criterion micro-benchmarks for the hot path of an exchange:
//! - `verify_rs256_id_token`: parse + RS256 signature + claim checks (JwtVerifier, keys cached);
//! - `sign_es256_access_token`: one RFC 9068 access token with the broker's ES256 key;
//! - `exchange_in_process`: the whole pipeline (client auth, verify, CEL mapping, policy,
//!   sign, audit row committed to SQLite) — measured as batches of 64 concurrent exchanges,
//!   the way the audit group commit sees load, and reported per exchange.
//!
//! Run: `cargo bench --bench exchange`.

// A benchmark that cannot set up should stop at once with the reason.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

use tessera::audit::AuditLog;
use tessera::clock::{SharedClock, SystemClock};
use tessera::config::OutboundConfig;
use tessera::exchange::{ClientCredentials, ExchangeSettings, Exchanger, Form, LifetimeBounds};
use tessera::issue::{KeyRing, SigningAlg};
use tessera::metrics::Metrics;
use tessera::store::Store;
use tessera::trust::{
    AudienceEntry, ClientAuthMethod, ClientEntry, IssuerEntry, JwsAlg, KeySource, KindSettings,
    Mapping, OidcSettings, OnBehalfOf, Registry, TokenType, TrustStore,
};
use tessera::verify::{BrokerIdentity, Expectation, Presented, Purpose, Verifier};

const ISS: &str = "https://idp.bench.example";

struct Fixture {
    jwks: Arc<serde_json::Value>,
    signer: EncodingKey,
}

fn fixture() -> Fixture {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pem = rsa.private_key_to_pem().unwrap();
    let b64 = |b: Vec<u8>| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "bench-1", "use": "sig", "alg": "RS256",
        "n": b64(rsa.n().to_vec()), "e": b64(rsa.e().to_vec()),
    }]});
    Fixture {
        jwks: Arc::new(jwks),
        signer: EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

/// One OIDC issuer (the fixture's key), one client, one audience.
fn registry(f: &Fixture) -> Registry {
    let mut claims = BTreeMap::new();
    claims.insert("email".to_owned(), "assertion.email".to_owned());
    let issuer = IssuerEntry {
        id: "bench".into(),
        issuer: ISS.into(),
        settings: KindSettings::Oidc(OidcSettings {
            keys: KeySource::JwksFile {
                path: PathBuf::from("bench.jwks.json"),
                jwks: f.jwks.clone(),
            },
            algorithms: vec![JwsAlg::RS256],
            require_access_token_typ: true,
        }),
        audiences: vec!["tessera".into()],
        token_types: vec![TokenType::IdToken, TokenType::AccessToken, TokenType::Jwt],
        clock_skew: Duration::from_secs(60),
        max_age: None,
        one_time_use: false,
        mapping: Mapping::compile(None, &claims, None, "assertion.sub").unwrap(),
        demo_signing_key_file: None,
        source: PathBuf::from("bench.toml"),
    };
    let client = ClientEntry {
        client_id: "bench-client".into(),
        auth: ClientAuthMethod::ClientSecretBasic,
        secret_sha256: Sha256::digest(b"bench-secret").into(),
        subject_issuers: vec!["bench".into()],
        subject_audiences: None,
        actor_issuers: vec![],
        audiences: vec!["api".into()],
        scopes: vec!["read".into()],
        on_behalf_of: OnBehalfOf::Delegate,
        max_lifetime: None,
        source: PathBuf::from("bench-client.toml"),
    };
    let audience = AudienceEntry {
        id: "api".into(),
        audience: "https://api.bench.example".into(),
        resources: vec![],
        scopes: vec!["read".into()],
        lifetime: Some(Duration::from_secs(300)),
        claims: vec!["email".into()],
        source: PathBuf::from("api.toml"),
    };
    Registry::new(vec![issuer], vec![client], vec![audience])
}

fn id_token(f: &Fixture, sub: &str, now: i64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench-1".into());
    header.typ = Some("JWT".into());
    let claims = json!({
        "iss": ISS, "sub": sub, "aud": "tessera", "iat": now, "exp": now + 3600,
        "email": format!("{sub}@bench.example"),
    });
    jsonwebtoken::encode(&header, &claims, &f.signer).unwrap()
}

fn outbound() -> OutboundConfig {
    tessera::config::Config::default().outbound
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let f = fixture();
    let reg = registry(&f);
    let now = clock.now();
    let metrics = Arc::new(Metrics::new());

    // 1. Verify an RS256 ID token.
    let broker = BrokerIdentity {
        token_endpoint: "https://tessera.bench/token".into(),
        issuer: "https://tessera.bench".into(),
        saml_entity_id: "https://tessera.bench".into(),
    };
    let verifier =
        Arc::new(Verifier::new(&outbound(), broker, clock.clone(), metrics.clone()).unwrap());
    let token = id_token(&f, "alice", now);
    let presented = Presented {
        token_type: TokenType::IdToken,
        text: &token,
    };
    let allowed = vec!["bench".to_owned()];
    let expect = Expectation {
        allowed_issuers: &allowed,
        purpose: Purpose::Exchange,
    };
    c.bench_function("verify_rs256_id_token", |b| {
        b.iter(|| {
            rt.block_on(verifier.verify(&reg, presented, &expect))
                .unwrap()
        })
    });

    // 1b. The issuer's CEL mapping over the verified claims (subject + one claim).
    let verified = rt
        .block_on(verifier.verify(&reg, presented, &expect))
        .unwrap();
    let issuer = reg.issuers.get("bench").unwrap().clone();
    c.bench_function("cel_mapping_apply", |b| {
        b.iter(|| issuer.mapping.apply(&verified.assertion).unwrap())
    });

    // 2. Sign an ES256 access token.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url, None).unwrap();
    store.run_migrations().unwrap();
    let keys = Arc::new(
        rt.block_on(KeyRing::open(&store, SigningAlg::ES256, clock.clone()))
            .unwrap(),
    );
    let claims = json!({
        "iss": "https://tessera.bench", "sub": "alice", "aud": "https://api.bench.example",
        "exp": now + 300, "iat": now, "jti": "0123456789abcdef0123456789abcdef",
        "client_id": "bench-client", "scope": "read", "act": {"sub": "bench-client"},
        "email": "alice@bench.example",
    });
    c.bench_function("sign_es256_access_token", |b| {
        b.iter(|| keys.sign(&claims).unwrap())
    });

    // 3. Whole exchanges, in process, audit rows committed to SQLite.
    let trust_dir = tempfile::tempdir().unwrap();
    let exchanger = Arc::new(Exchanger {
        trust: Arc::new(TrustStore::from_registry(trust_dir.path(), registry(&f))),
        verifier: verifier.clone(),
        replay: tessera::replay::ReplayCache::new(store.clone()),
        keys: keys.clone(),
        audit: rt.block_on(async { AuditLog::start(store.clone(), metrics.clone()) }),
        clock: clock.clone(),
        metrics: metrics.clone(),
        settings: ExchangeSettings {
            issuer: "https://tessera.bench".into(),
            lifetimes: LifetimeBounds {
                default_lifetime: Duration::from_secs(600),
                max_lifetime: Duration::from_secs(3600),
            },
        },
    });
    let forms: Arc<Vec<Form>> = Arc::new(
        (0..256)
            .map(|i| {
                let t = id_token(&f, &format!("user-{i}"), now);
                let body = serde_urlencoded::to_string([
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:id_token",
                    ),
                    ("subject_token", t.as_str()),
                ])
                .unwrap();
                Form::parse(body.as_bytes()).unwrap()
            })
            .collect(),
    );
    const BATCH: usize = 64;
    let mut group = c.benchmark_group("exchange_in_process");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_of_64_concurrent", |b| {
        b.iter_custom(|iters| {
            let exchanger = exchanger.clone();
            let forms = forms.clone();
            rt.block_on(async move {
                let start = Instant::now();
                for n in 0..iters {
                    let handles: Vec<_> = (0..BATCH)
                        .map(|i| {
                            let exchanger = exchanger.clone();
                            let forms = forms.clone();
                            let idx = (n as usize * BATCH + i) % forms.len();
                            tokio::spawn(async move {
                                let creds = ClientCredentials::Basic {
                                    client_id: "bench-client".into(),
                                    secret: "bench-secret".into(),
                                };
                                exchanger.token(Ok(creds), &forms[idx]).await.unwrap()
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = exchange;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = benches
}
criterion_main!(exchange);
