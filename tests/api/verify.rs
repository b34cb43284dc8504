//! `JwtVerifier` against a real HTTP test issuer and the real Entra ID vectors: one test
//! per SPEC §4.1 JWT rule, plus the SPEC §6 key-cache promises.
#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a set-up failure must fail the test loudly"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera::clock::{FixedClock, SharedClock};
use tessera::config::OutboundConfig;
use tessera::metrics::{FetchLabels, Metrics};
use tessera::protocol::IssuerId;
use tessera::trust::{
    IssuerEntry, JwsAlg, KeySource, KindSettings, Mapping, OidcSettings, Registry, TokenType,
};
use tessera::verify::{
    BrokerIdentity, Expectation, Presented, Purpose, VerifiedSubject, Verifier, VerifyError,
};

use crate::issuer::TestIssuer;

/// 2027-01-15: the fixed "now" of these tests.
const T0: i64 = 1_800_000_000;
const ID: &str = "acme";

fn outbound() -> OutboundConfig {
    OutboundConfig {
        timeout: Duration::from_secs(5),
        max_response_bytes: 512 * 1024,
        refresh_cooldown: Duration::from_secs(30),
        keys_ttl: Duration::from_secs(3600),
        max_stale: Duration::from_secs(24 * 3600),
        offline: false,
    }
}

/// `Mapping` is owned by the trust module; verification never looks at it.
fn mapping() -> Mapping {
    Mapping::default_for_jwt()
}

/// What a test asks the verifier: a token type, the allowed issuers, the purpose.
struct Ask<'a> {
    tt: TokenType,
    allowed: &'a [IssuerId],
    purpose: Purpose,
}

fn broker() -> BrokerIdentity {
    BrokerIdentity {
        token_endpoint: "https://tessera.example/token".into(),
        issuer: "https://tessera.example".into(),
        saml_entity_id: "https://tessera.example".into(),
    }
}

fn new_verifier(out: &OutboundConfig, clock: SharedClock, metrics: Arc<Metrics>) -> Verifier {
    Verifier::new(out, broker(), clock, metrics).unwrap()
}

/// The one entry point, with the refusal's error alone (these tests check which rule).
trait Check {
    async fn check(
        &self,
        registry: &Registry,
        token: &str,
        ask: &Ask<'_>,
    ) -> Result<VerifiedSubject, VerifyError>;
}

impl Check for Verifier {
    async fn check(
        &self,
        registry: &Registry,
        token: &str,
        ask: &Ask<'_>,
    ) -> Result<VerifiedSubject, VerifyError> {
        let presented = Presented {
            token_type: ask.tt,
            text: token,
        };
        let expect = Expectation {
            allowed_issuers: ask.allowed,
            purpose: ask.purpose,
        };
        self.verify(registry, presented, &expect)
            .await
            .map_err(|r| r.error)
    }
}

fn oidc(e: &mut IssuerEntry) -> &mut OidcSettings {
    match &mut e.settings {
        KindSettings::Oidc(o) => o,
        _ => unreachable!("an oidc test entry"),
    }
}

fn entry(id: &str, issuer: &str, keys: KeySource) -> IssuerEntry {
    IssuerEntry {
        id: IssuerId::new(id),
        issuer: issuer.to_owned(),
        settings: KindSettings::Oidc(OidcSettings {
            keys,
            algorithms: JwsAlg::DEFAULT_ALLOWED.to_vec(),
            require_access_token_typ: true,
        }),
        audiences: vec!["tessera".to_owned()],
        token_types: vec![TokenType::IdToken, TokenType::AccessToken, TokenType::Jwt],
        clock_skew: Duration::from_secs(60),
        max_age: None,
        one_time_use: false,
        mapping: mapping(),
        demo_signing_key_file: None,
        source: PathBuf::from("test"),
    }
}

fn discovery(issuer: &TestIssuer) -> KeySource {
    KeySource::Discovery(issuer.discovery_url().parse().unwrap())
}

struct Fixture {
    issuer: TestIssuer,
    clock: Arc<FixedClock>,
    metrics: Arc<Metrics>,
    verifier: Verifier,
    registry: Registry,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut IssuerEntry)) -> Self {
        Self::with_outbound(outbound(), tweak).await
    }

    async fn with_outbound(out: OutboundConfig, tweak: impl FnOnce(&mut IssuerEntry)) -> Self {
        let clock = Arc::new(FixedClock::new(T0));
        let shared: SharedClock = clock.clone();
        let issuer = TestIssuer::start_with_clock(shared.clone()).await;
        let mut e = entry(ID, issuer.url(), discovery(&issuer));
        tweak(&mut e);
        let metrics = Arc::new(Metrics::new());
        let verifier = new_verifier(&out, shared, metrics.clone());
        Self {
            issuer,
            clock,
            metrics,
            verifier,
            registry: Registry::new(vec![e], vec![], vec![]),
        }
    }

    async fn check(&self, token: &str, tt: TokenType) -> Result<VerifiedSubject, VerifyError> {
        let allowed = [IssuerId::new(ID)];
        self.verifier
            .check(
                &self.registry,
                token,
                &Ask {
                    tt,
                    allowed: &allowed,
                    purpose: Purpose::Exchange,
                },
            )
            .await
    }

    async fn id(&self, token: &str) -> Result<VerifiedSubject, VerifyError> {
        self.check(token, TokenType::IdToken).await
    }

    fn fetches(&self, outcome: &'static str) -> u64 {
        self.metrics
            .issuer_key_fetches
            .get_or_create(&FetchLabels {
                issuer: ID.to_owned(),
                outcome,
            })
            .get()
    }
}

#[tokio::test]
async fn verifies_an_id_token_through_discovery() {
    let f = Fixture::new().await;
    let token = f
        .issuer
        .id_token()
        .sub("alice")
        .aud("tessera")
        .lifetime(300)
        .claim("email", json!("alice@acme.example"))
        .sign();
    let v = f.id(&token).await.unwrap();
    assert_eq!(v.assertion["sub"], "alice");
    assert_eq!(v.assertion["email"], "alice@acme.example");
    assert_eq!(v.expires_at, T0 + 300);
    assert_eq!(v.issued_at, Some(T0));
    assert_eq!(v.issuer.id, ID);
    assert_eq!(v.token_type, TokenType::IdToken);
    assert_eq!((f.issuer.discovery_count(), f.issuer.fetch_count()), (1, 1));
    assert_eq!(f.fetches("ok"), 1);
    // Cached: no second fetch.
    f.id(&token).await.unwrap();
    assert_eq!(f.issuer.fetch_count(), 1);
}

#[tokio::test]
async fn verifies_es256_ps256_and_kidless_tokens() {
    let f = Fixture::new().await;
    f.id(&f.issuer.id_token().ec().sign()).await.unwrap();
    f.id(&f.issuer.id_token().alg("PS256").sign())
        .await
        .unwrap();
    // SPEC §4.1: kid absent ⇒ the issuer's keys of matching type are tried.
    f.id(&f.issuer.id_token().kid(None).sign()).await.unwrap();
    f.id(&f.issuer.id_token().ec().kid(None).sign())
        .await
        .unwrap();
}

#[tokio::test]
async fn refuses_tokens_outside_their_time_window() {
    let f = Fixture::with(|e| e.max_age = Some(Duration::from_secs(3600))).await;
    let i = &f.issuer;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired beyond skew",
            i.id_token().iat(T0 - 1000).exp(T0 - 61).sign(),
            "expired",
        ),
        (
            "nbf in the future",
            i.id_token().nbf(T0 + 61).sign(),
            "not_yet_valid",
        ),
        (
            "iat in the future",
            i.id_token().iat(T0 + 61).exp(T0 + 600).sign(),
            "issued_in_future",
        ),
        (
            "older than max_age",
            i.id_token().iat(T0 - 3661 - 60).exp(T0 + 60).sign(),
            "too_old",
        ),
        (
            "no exp",
            i.id_token().without_claim("exp").sign(),
            "missing_claim",
        ),
        (
            "no iat in an id token",
            i.id_token().without_claim("iat").sign(),
            "missing_claim",
        ),
        (
            "exp as a string",
            i.id_token().claim("exp", json!("1800000300")).sign(),
            "bad_numeric_date",
        ),
        (
            "exp negative",
            i.id_token().claim("nbf", json!(-5)).sign(),
            "bad_numeric_date",
        ),
    ];
    for (why, token, reason) in cases {
        let err = f.id(&token).await.expect_err(why);
        assert_eq!(err.reason(), reason, "{why}: {err}");
    }
    // Within skew is fine.
    f.id(&i.id_token().iat(T0 - 1000).exp(T0 - 59).sign())
        .await
        .unwrap();
    f.id(&i.id_token().nbf(T0 + 59).sign()).await.unwrap();
}

#[tokio::test]
async fn refuses_wrong_issuer_and_audience() {
    let f = Fixture::new().await;
    let i = &f.issuer;
    let err = f
        .id(&i.id_token().iss("https://evil.example").sign())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownIssuer {
            iss: "https://evil.example".into(),
            near: None
        }
    );
    // A near miss (a trailing slash) is named for the operator, never for the caller.
    let slash = format!("{}/", i.url());
    let err = f.id(&i.id_token().iss(&slash).sign()).await.unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownIssuer {
            iss: slash.clone(),
            near: Some(i.url().to_owned())
        }
    );
    assert!(err.to_string().contains(&slash), "{err}");
    assert!(!err.to_string().contains("did you mean"), "{err}");
    assert!(err.compared().unwrap().contains(i.url()), "{err:?}");
    let err = f
        .id(&i.id_token().claim("iss", json!(7)).sign())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "malformed");
    // OIDC Core §3.1.3.7: an ID token with an extra audience is refused…
    let extra = i.id_token().aud(json!(["tessera", "someone-else"])).sign();
    let err = f.id(&extra).await.unwrap_err();
    assert_eq!(
        err,
        VerifyError::WrongAudience {
            aud: vec!["tessera".into(), "someone-else".into()],
            accepted: vec!["tessera".into()]
        }
    );
    assert!(err.to_string().contains("`someone-else`"), "{err}");
    // …an access token needs only one match.
    let at = i
        .access_token()
        .aud(json!(["tessera", "someone-else"]))
        .sign();
    f.check(&at, TokenType::AccessToken).await.unwrap();
    let other = i.access_token().aud("someone-else").sign();
    assert_eq!(
        f.check(&other, TokenType::AccessToken)
            .await
            .unwrap_err()
            .reason(),
        "wrong_audience"
    );
    assert_eq!(
        f.id(&i.id_token().without_claim("aud").sign())
            .await
            .unwrap_err(),
        VerifyError::MissingClaim("aud")
    );
    // The bearer grant replaces the issuer's audiences with tessera's own (RFC 7523 §3).
    let allowed = [IssuerId::new(ID)];
    let expect = Ask {
        tt: TokenType::Jwt,
        allowed: &allowed,
        purpose: Purpose::BearerGrant,
    };
    let bearer = i.id_token().aud("https://tessera.example/token").sign();
    f.verifier
        .check(&f.registry, &bearer, &expect)
        .await
        .unwrap();
    let plain = i.id_token().sign();
    assert_eq!(
        f.verifier
            .check(&f.registry, &plain, &expect)
            .await
            .unwrap_err()
            .reason(),
        "wrong_audience"
    );
}

#[tokio::test]
async fn refuses_issuers_the_client_may_not_use_and_token_types_the_issuer_does_not_issue() {
    let f = Fixture::with(|e| e.token_types = vec![TokenType::IdToken]).await;
    let token = f.issuer.id_token().sign();
    let none: [IssuerId; 0] = [];
    let err = f
        .verifier
        .check(
            &f.registry,
            &token,
            &Ask {
                tt: TokenType::IdToken,
                allowed: &none,
                purpose: Purpose::Exchange,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err, VerifyError::IssuerNotAllowed { issuer: ID.into() });
    let at = f.issuer.access_token().sign();
    assert_eq!(
        f.check(&at, TokenType::AccessToken)
            .await
            .unwrap_err()
            .reason(),
        "token_type_not_accepted"
    );
}

#[tokio::test]
async fn refuses_hostile_algorithms_and_headers() {
    let f = Fixture::new().await;
    let i = &f.issuer;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            i.id_token().alg_none().sign(),
            "alg_not_allowed",
        ),
        (
            "HS256 keyed with the public key",
            i.id_token().hs256_with_public_key().sign(),
            "alg_not_allowed",
        ),
        (
            "RS384 not in the allow-list",
            i.id_token().alg("RS384").sign(),
            "alg_not_allowed",
        ),
        (
            "ES256 header on the RSA kid",
            i.id_token().alg("ES256").sign(),
            "alg_key_mismatch",
        ),
        (
            "RS256 header on the EC kid",
            i.id_token().ec().alg("RS256").sign(),
            "alg_key_mismatch",
        ),
        (
            "crit header",
            i.id_token().header("crit", json!(["exp"])).sign(),
            "unsupported_jose",
        ),
        (
            "nested JWT",
            i.id_token().header("cty", json!("JWT")).sign(),
            "unsupported_jose",
        ),
        (
            "JWE",
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".into(),
            "unsupported_jose",
        ),
        (
            "duplicate header alg",
            i.id_token().duplicate_header("alg", json!("none")).sign(),
            "duplicate_member",
        ),
        (
            "duplicate sub",
            i.id_token().duplicate_claim("sub", json!("mallory")).sign(),
            "duplicate_member",
        ),
        (
            "bad signature",
            i.id_token().bad_signature().sign(),
            "bad_signature",
        ),
        (
            "too large",
            format!("{}.{}.x", "e".repeat(40_000), "e".repeat(10_000)),
            "too_large",
        ),
    ];
    for (why, token, reason) in cases {
        let err = f.id(&token).await.expect_err(why);
        assert_eq!(err.reason(), reason, "{why}: {err}");
        assert!(
            !err.to_string().contains(&token[..20.min(token.len())]),
            "{why}"
        );
    }
}

#[tokio::test]
async fn never_follows_jku_x5u_jwk_or_x5c() {
    let f = Fixture::new().await;
    let other = Arc::new(crate::issuer::TestKey::rsa("rsa-1"));
    // Signed by a key the issuer never published, pointing at it every way JOSE allows.
    let forged = f
        .issuer
        .id_token()
        .with_key(other.clone())
        .header("jku", json!("http://127.0.0.1:1/jwks.json"))
        .header("x5u", json!("http://127.0.0.1:1/cert.pem"))
        .header("jwk", other.jwk.clone())
        .header("x5c", json!(["MIIB"]))
        .sign();
    assert_eq!(
        f.id(&forged).await.unwrap_err(),
        VerifyError::SignatureInvalid
    );
    // The same headers on a genuine token are ignored.
    let fine = f
        .issuer
        .id_token()
        .header("jku", json!("http://127.0.0.1:1/jwks.json"))
        .header("jwk", other.jwk.clone())
        .sign();
    f.id(&fine).await.unwrap();
}

#[tokio::test]
async fn applies_the_typ_rules() {
    let f = Fixture::new().await;
    let relaxed = Fixture::with(|e| oidc(e).require_access_token_typ = false).await;
    use TokenType::*;
    let rows: &[(Option<&str>, TokenType, bool, bool)] = &[
        // (typ, token type, relaxed issuer, accepted)
        (None, IdToken, false, true),
        (Some("JWT"), IdToken, false, true),
        (Some("application/jwt"), IdToken, false, true),
        (Some("at+jwt"), IdToken, false, false),
        (Some("logout+jwt"), IdToken, false, false),
        (Some("at+jwt"), AccessToken, false, true),
        (Some("application/AT+JWT"), AccessToken, false, true),
        (Some("JWT"), AccessToken, false, false),
        (None, AccessToken, false, false),
        (Some("JWT"), AccessToken, true, true),
        (None, AccessToken, true, true),
        (Some("secevent+jwt"), AccessToken, true, false),
        (None, Jwt, false, true),
        (Some("JWT"), Jwt, false, true),
        (Some("at+jwt"), Jwt, false, true),
        (Some("logout+jwt"), Jwt, false, false),
    ];
    for &(typ, tt, relax, ok) in rows {
        let fx = if relax { &relaxed } else { &f };
        let token = fx.issuer.id_token().header_typ(typ).sign();
        let r = fx.check(&token, tt).await;
        assert_eq!(r.is_ok(), ok, "{typ:?} as {tt:?} (relaxed {relax}): {r:?}");
        if let Err(e) = r {
            assert_eq!(e.reason(), "wrong_typ");
        }
    }
}

#[tokio::test]
async fn an_unknown_kid_triggers_exactly_one_refresh_within_the_cooldown() {
    let f = Fixture::new().await;
    f.id(&f.issuer.id_token().sign()).await.unwrap();
    assert_eq!(f.issuer.fetch_count(), 1);
    // Any fetch starts the cooldown, the first one included.
    let unknown0 = f.issuer.id_token().kid(Some("nope")).sign();
    assert_eq!(f.id(&unknown0).await.unwrap_err().reason(), "unknown_kid");
    assert_eq!(
        f.issuer.fetch_count(),
        1,
        "no refetch within 30 s of the first fetch"
    );
    f.clock.advance(31);

    let unknown = f.issuer.id_token().kid(Some("nope")).sign();
    let err = f.id(&unknown).await.unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnknownKeyId {
            issuer: ID.into(),
            kid: "nope".into()
        }
    );
    assert_eq!(f.issuer.fetch_count(), 2, "one refresh for the unknown kid");

    // Cooldown (30 s): no further fetch, refused at once.
    f.clock.advance(10);
    assert_eq!(f.id(&unknown).await.unwrap_err().reason(), "unknown_kid");
    assert_eq!(f.issuer.fetch_count(), 2);

    // Concurrent unknown kids after the cooldown: one fetch, everyone waits on it.
    f.clock.advance(25);
    let results = futures_util::future::join_all((0..8).map(|_| f.id(&unknown))).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().reason() == "unknown_kid"));
    assert_eq!(f.issuer.fetch_count(), 3, "single flight");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_unknown_kid_refresh() {
    let f = Fixture::new().await;
    f.id(&f.issuer.id_token().sign()).await.unwrap();
    let old = f.issuer.id_token().sign();
    let kid = f.issuer.rotate_key();
    let new = f.issuer.id_token().sign();
    assert!(new.len() > 10 && kid == "rsa-2");
    f.clock.advance(31);
    f.id(&new).await.unwrap();
    assert_eq!(f.issuer.fetch_count(), 2);
    // The old key is gone from the JWKS; within the cooldown no refetch.
    assert_eq!(f.id(&old).await.unwrap_err().reason(), "unknown_kid");
    assert_eq!(f.issuer.fetch_count(), 2);
}

#[tokio::test]
async fn last_good_keys_serve_while_the_jwks_endpoint_is_down() {
    let f = Fixture::new().await;
    let token = f.issuer.id_token().lifetime(10 * 24 * 3600).sign();
    f.id(&token).await.unwrap();
    f.issuer.set_down(true);

    // Past keys_ttl: a background refresh fails; the cached keys keep serving.
    f.clock.advance(2 * 3600);
    f.id(&token).await.unwrap();
    for _ in 0..50 {
        if f.fetches("error") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.fetches("error"), 1);
    f.id(&token).await.unwrap();

    // Past max_stale: the keys are no longer trusted; the issuer is unavailable.
    f.clock.advance(24 * 3600);
    let err = f.id(&token).await.unwrap_err();
    assert!(err.is_issuer_unavailable(), "{err}");
    assert_eq!(err.reason(), "issuer_unavailable");

    // Back up (after the cooldown): fresh keys, verified again.
    f.issuer.set_down(false);
    f.clock.advance(31);
    f.id(&token).await.unwrap();
}

#[tokio::test]
async fn an_issuer_that_is_down_from_the_start_is_unavailable_not_invalid() {
    let f = Fixture::new().await;
    f.issuer.set_down(true);
    let err = f.id(&f.issuer.id_token().sign()).await.unwrap_err();
    assert_eq!(err, VerifyError::IssuerUnavailable { issuer: ID.into() });
    // The cooldown keeps a dead issuer from being hammered.
    let before = f.issuer.discovery_count();
    let _ = f.id(&f.issuer.id_token().sign()).await.unwrap_err();
    assert_eq!(f.issuer.discovery_count(), before);
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let f = Fixture::new().await;
    f.issuer.set_discovery_issuer(Some("https://evil.example"));
    let err = f.id(&f.issuer.id_token().sign()).await.unwrap_err();
    assert!(err.is_issuer_unavailable());
    assert_eq!(
        f.issuer.fetch_count(),
        0,
        "jwks_uri of a mismatched document not used"
    );
}

#[tokio::test]
async fn garbled_and_foreign_jwks_entries_are_skipped() {
    let f = Fixture::new().await;
    f.issuer.set_extra_jwks(vec![
        json!({"kty": "RSA", "kid": "bad-n", "n": "!!!", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "RSA", "use": "enc", "kid": "enc"}),
        json!({"kid": "no-kty"}),
        json!("not an object"),
    ]);
    f.id(&f.issuer.id_token().sign()).await.unwrap();
    let err = f
        .id(&f.issuer.id_token().kid(Some("hmac")).sign())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
}

#[tokio::test]
async fn a_jwks_uri_source_is_fetched_directly() {
    let f = Fixture::new().await;
    let e = entry(
        ID,
        f.issuer.url(),
        KeySource::JwksUri(f.issuer.jwks_uri().parse().unwrap()),
    );
    let registry = Registry::new(vec![e], vec![], vec![]);
    let allowed = [IssuerId::new(ID)];
    let expect = Ask {
        tt: TokenType::IdToken,
        allowed: &allowed,
        purpose: Purpose::Exchange,
    };
    f.verifier
        .check(&registry, &f.issuer.id_token().sign(), &expect)
        .await
        .unwrap();
    assert_eq!((f.issuer.discovery_count(), f.issuer.fetch_count()), (0, 1));
}

#[tokio::test]
async fn a_jwks_file_source_needs_no_fetch() {
    let f = Fixture::new().await;
    let e = entry(
        ID,
        f.issuer.url(),
        KeySource::JwksFile {
            path: "acme.jwks.json".into(),
            jwks: Arc::new(f.issuer.jwks()),
        },
    );
    let registry = Registry::new(vec![e], vec![], vec![]);
    let allowed = [IssuerId::new(ID)];
    let expect = Ask {
        tt: TokenType::IdToken,
        allowed: &allowed,
        purpose: Purpose::Exchange,
    };
    f.verifier
        .check(&registry, &f.issuer.id_token().sign(), &expect)
        .await
        .unwrap();
    let unknown = f.issuer.id_token().kid(Some("nope")).sign();
    assert_eq!(
        f.verifier
            .check(&registry, &unknown, &expect)
            .await
            .unwrap_err()
            .reason(),
        "unknown_kid"
    );
    assert_eq!(f.issuer.fetch_count() + f.issuer.discovery_count(), 0);
}

#[tokio::test]
async fn a_slow_issuer_does_not_block_another() {
    let clock = Arc::new(FixedClock::new(T0));
    let shared: SharedClock = clock.clone();
    let slow = TestIssuer::start_with_clock(shared.clone()).await;
    let fast = TestIssuer::start_with_clock(shared.clone()).await;
    slow.set_delay(Duration::from_millis(1500));
    let registry = Registry::new(
        vec![
            entry("slow", slow.url(), discovery(&slow)),
            entry("fast", fast.url(), discovery(&fast)),
        ],
        vec![],
        vec![],
    );
    let verifier = new_verifier(&outbound(), shared, Arc::new(Metrics::new()));
    let allowed = [IssuerId::new("slow"), IssuerId::new("fast")];
    let expect = Ask {
        tt: TokenType::IdToken,
        allowed: &allowed,
        purpose: Purpose::Exchange,
    };
    let slow_token = slow.id_token().sign();
    let fast_token = fast.id_token().sign();
    let (s, (f, took)) = tokio::join!(verifier.check(&registry, &slow_token, &expect), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let r = verifier.check(&registry, &fast_token, &expect).await;
        (r, t.elapsed())
    });
    f.unwrap();
    // The slow issuer's caller waited one second, not the whole fetch (SPEC §6)...
    assert!(s.unwrap_err().is_issuer_unavailable());
    assert!(
        took < Duration::from_millis(1000),
        "fast issuer waited {took:?}"
    );
    // ...and the fetch went on: once it is done its keys serve, fetched once.
    let mut served = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.fetch_count() == 1
            && verifier
                .check(&registry, &slow_token, &expect)
                .await
                .is_ok()
        {
            served = true;
            break;
        }
    }
    assert!(
        served,
        "the fetch that outlived its caller serves later requests"
    );
    assert_eq!(slow.fetch_count(), 1);
}

#[tokio::test]
async fn a_hung_issuer_is_cut_off_by_the_total_timeout() {
    let mut out = outbound();
    out.timeout = Duration::from_millis(500);
    let f = Fixture::with_outbound(out, |_| {}).await;
    f.issuer.set_delay(Duration::from_secs(3));
    let t = Instant::now();
    let err = f.id(&f.issuer.id_token().sign()).await.unwrap_err();
    assert!(err.is_issuer_unavailable());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A request that gives up while the first key fetch is in flight (its client went away)
/// must not leave the issuer refused for a cooldown: the fetch completes on its own task.
#[tokio::test]
async fn a_caller_giving_up_mid_fetch_does_not_strand_the_issuer() {
    let f = Fixture::new().await;
    f.issuer.set_delay(Duration::from_millis(400));
    let token = f.issuer.id_token().sign();
    let gave_up = tokio::time::timeout(Duration::from_millis(100), f.id(&token)).await;
    assert!(gave_up.is_err(), "the first caller gave up mid-fetch");
    tokio::time::sleep(Duration::from_millis(600)).await;
    f.issuer.set_delay(Duration::ZERO);
    f.id(&token)
        .await
        .expect("the abandoned fetch completed and its keys serve");
    assert_eq!(f.issuer.fetch_count(), 1, "no second fetch was needed");
}

#[tokio::test]
async fn warm_up_fetches_keys_without_waiting() {
    let f = Fixture::new().await;
    f.verifier.warm_up(&f.registry);
    for _ in 0..100 {
        if f.fetches("ok") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.issuer.fetch_count(), 1);
    f.id(&f.issuer.id_token().sign()).await.unwrap();
    assert_eq!(f.issuer.fetch_count(), 1);
}

// --- Real Entra ID (Azure AD v1) vectors: typ JWT, no kid, x5t only -----------------

fn fixture(dir: &str, file: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/oidc/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

async fn verify_vector(
    dir: &str,
    iss: &str,
    aud: &str,
    at: i64,
    tt: TokenType,
    relaxed: bool,
) -> Result<VerifiedSubject, VerifyError> {
    let jwks: serde_json::Value = serde_json::from_str(&fixture(dir, "jwks.json")).unwrap();
    let mut e = entry(
        "entra",
        iss,
        KeySource::JwksFile {
            path: "jwks.json".into(),
            jwks: Arc::new(jwks),
        },
    );
    e.audiences = vec![aud.to_owned()];
    oidc(&mut e).algorithms = vec![JwsAlg::RS256];
    oidc(&mut e).require_access_token_typ = !relaxed;
    let registry = Registry::new(vec![e], vec![], vec![]);
    let clock: SharedClock = Arc::new(FixedClock::new(at));
    let verifier = new_verifier(&outbound(), clock, Arc::new(Metrics::new()));
    let allowed = [IssuerId::new("entra")];
    let token = fixture(dir, "token.jwt");
    verifier
        .check(
            &registry,
            token.trim(),
            &Ask {
                tt,
                allowed: &allowed,
                purpose: Purpose::Exchange,
            },
        )
        .await
}

const CYRANO: &str = "entra-id-v1-id-token-2014-cyrano";
const CYRANO_ISS: &str = "https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/";
const CYRANO_AUD: &str = "fe78e0b4-6fe7-47e6-812c-fb75cee266a4";
const GRAPH: &str = "entra-id-v1-access-token-2014-graph";
const GRAPH_ISS: &str = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/";
const GRAPH_AUD: &str = "https://graph.windows.net";

#[tokio::test]
async fn verifies_the_real_entra_id_token() {
    let v = verify_vector(
        CYRANO,
        CYRANO_ISS,
        CYRANO_AUD,
        1_419_268_580,
        TokenType::IdToken,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        v.assertion["sub"],
        "h2xzYW3mgTZfZwpwOWxA1Yp2tjoWsFq9iFkP1N2QRwk"
    );
    // A year later it is expired.
    let err = verify_vector(
        CYRANO,
        CYRANO_ISS,
        CYRANO_AUD,
        1_450_000_000,
        TokenType::IdToken,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "expired");
}

#[tokio::test]
async fn verifies_the_real_entra_access_token_per_typ_rules() {
    let at = 1_405_968_982;
    let v = verify_vector(
        GRAPH,
        GRAPH_ISS,
        GRAPH_AUD,
        at,
        TokenType::AccessToken,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        v.assertion["sub"],
        "5GE0VHAJPniGMIin7wL4PE0Q9203Lm4lrARpkpAAbjk"
    );
    verify_vector(GRAPH, GRAPH_ISS, GRAPH_AUD, at, TokenType::Jwt, false)
        .await
        .unwrap();
    // typ JWT is not at+jwt: refused as access_token by a strict issuer entry.
    let err = verify_vector(
        GRAPH,
        GRAPH_ISS,
        GRAPH_AUD,
        at,
        TokenType::AccessToken,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "wrong_typ");
    // An access token presented as an ID token fails the aud/iat rules or typ: it has
    // typ JWT, so it is the audience set that stops it here (aud is Graph's).
    let err = verify_vector(GRAPH, GRAPH_ISS, "tessera", at, TokenType::Jwt, false)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "wrong_audience");
}
