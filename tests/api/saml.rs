//! SAML 2.0 subject tokens end to end: assertions signed by `xmlsec1` (not by us), sent to
//! the real broker over HTTP, every refusal shown to issue no token and to leave an audit
//! row that says why.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::saml_idp::*;

pub const SAML_SECRET: &str = "saml-app-secret";

struct Idp {
    key: SigningKey,
    _dir: tempfile::TempDir,
}

fn idp() -> Idp {
    let dir = tempfile::tempdir().unwrap();
    Idp {
        key: SigningKey::generate(dir.path(), "corp"),
        _dir: dir,
    }
}

async fn saml_app(kind: tessera::store::testing::TestDbKind, idp: &Idp) -> TestApp {
    saml_builder(TestApp::builder(kind), idp).spawn().await
}

/// The `saml-app` client (client_secret_basic, subject tokens from `corp-saml`), plus
/// `extra` lines.
pub fn saml_client(extra: &str) -> String {
    format!(
        "client_id = \"saml-app\"\nauth = \"client_secret_basic\"\nsecret_hash = \"{}\"\nsubject_issuers = [\"corp-saml\"]\naudiences = [\"orders\"]\nscopes = [\"orders:read\"]\n{extra}",
        secret_hash(SAML_SECRET)
    )
}

fn saml_builder(b: TestAppBuilder, idp: &Idp) -> TestAppBuilder {
    b.file("issuers/corp.pem", &idp.key.cert_pem)
        .file(
            "issuers/corp-saml.toml",
            &format!(
                r#"kind = "saml"
issuer = "{IDP}"
signing_cert_file = "corp.pem"
audiences = ["https://app.corp.example/saml"]
[mapping]
claims = {{ email = "assertion.attributes.email[0]", groups = "assertion.attributes.groups" }}
"#
            ),
        )
        .file("clients/saml-app.toml", &saml_client(""))
}

impl TestApp {
    async fn exchange_saml(&self, token: &str) -> reqwest::Response {
        self.post_token(
            Auth::Basic("saml-app", SAML_SECRET),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", token),
                ("subject_token_type", SAML2),
            ],
        )
        .await
    }

    fn now(&self) -> i64 {
        use tessera::clock::Clock;
        self.clock.now()
    }
}

async fn issued(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_signed_assertion_is_exchanged_for_an_api_token() {
    let idp = idp();
    for kind in backends() {
        let app = saml_app(kind, &idp).await;
        let signed = Assertion::new(app.now()).signed(&idp.key);
        let body = issued(app.exchange_saml(&b64url(&signed)).await).await;
        let (_, claims) = app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(claims["sub"], "alice@corp.example");
        assert_eq!(claims["email"], "alice@corp.example");
        assert_eq!(claims["groups"], serde_json::json!(["buyers", "staff"]));
        assert_eq!(claims["act"], serde_json::json!({"sub": "saml-app"}));
        // Lifetime bounded by the assertion's 300 s.
        assert!(body["expires_in"].as_i64().unwrap() <= 300);
        let row = app.audit_rows().await.remove(0);
        assert_eq!(row.outcome, "issued");
        assert_eq!(row.issuer.as_deref(), Some("corp-saml"));
        assert_eq!(row.subject.as_deref(), Some("alice@corp.example"));
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains(
            r#"tessera_exchanges_total{grant="token_exchange",subject_token_type="saml2",issuer="corp-saml",outcome="issued"} 1"#
        ), "{metrics}");
    }
}

#[tokio::test]
async fn responses_and_standard_base64_are_accepted() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    let now = app.now();
    // A Response wrapping a signed assertion (the Response itself unsigned).
    let wrapped = response(&Assertion::new(now).signed(&idp.key), now, None);
    issued(app.exchange_saml(&b64url(&wrapped)).await).await;
    // A signed Response around an unsigned assertion, sent as standard base64 with line
    // breaks, as SAML stacks send it.
    let signed_response = response(&Assertion::new(now).xml(false), now, Some(&idp.key));
    let std = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &signed_response);
    let wrapped_lines: String = std
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned() + "\r\n")
        .collect();
    issued(app.exchange_saml(&wrapped_lines).await).await;
    // Both signed.
    let both = response(&Assertion::new(now).signed(&idp.key), now, Some(&idp.key));
    issued(app.exchange_saml(&b64url(&both)).await).await;
}

#[tokio::test]
async fn the_saml2_bearer_grant_follows_rfc_7522() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    let now = app.now();
    let bearer = |a: &Assertion| {
        let token = b64url(&a.signed(&idp.key));
        let app = &app;
        async move {
            app.post_token(
                Auth::Basic("saml-app", SAML_SECRET),
                &[("grant_type", SAML2_BEARER), ("assertion", &token)],
            )
            .await
        }
    };
    // Addressed to tessera itself (its entity id = server.issuer here), with Recipient.
    issued(bearer(&Assertion::new(now)).await).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"grant="saml2_bearer",subject_token_type="saml2""#));
    // RFC 7522 §3: Recipient is mandatory for the grant.
    let mut no_recipient = Assertion::new(now);
    no_recipient.recipient = None;
    assert_oauth_error(
        bearer(&no_recipient).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_latest_refusal(&app, "bad_confirmation").await;
    // An issuer audience is not tessera: refused for the bearer grant.
    let mut app_audience = Assertion::new(now);
    app_audience.audiences = vec!["https://app.corp.example/saml".into()];
    assert_oauth_error(
        bearer(&app_audience).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_latest_refusal(&app, "wrong_audience").await;
}

/// A refusal table: how to build the presented XML from a signed one, and the reason.
type Forge = Box<dyn Fn(&Idp, i64) -> String>;

fn forgeries() -> Vec<(&'static str, Forge, &'static str)> {
    let evil = |now: i64| {
        let mut a = Assertion::new(now);
        a.name_id_xml = "admin@corp.example".into();
        a
    };
    vec![
        (
            "unsigned",
            Box::new(|_, now| Assertion::new(now).xml(false)),
            "unsigned",
        ),
        (
            "tampered after signing",
            Box::new(|i, now| {
                Assertion::new(now).signed(&i.key).replace(
                    "alice@corp.example</saml:NameID>",
                    "admin@corp.example</saml:NameID>",
                )
            }),
            "bad_signature",
        ),
        (
            "signed by an unknown key whose self-signed cert sits in KeyInfo",
            Box::new(|_, now| {
                let dir = tempfile::tempdir().unwrap();
                let attacker = SigningKey::generate(dir.path(), "attacker");
                Assertion::new(now).signed(&attacker)
            }),
            "bad_signature",
        ),
        (
            "XSW: evil assertion beside the signed one",
            Box::new(move |i, now| {
                let genuine = Assertion::new(now).signed(&i.key);
                let both = format!("{}{}", evil(now).xml(false), strip_xml_decl(&genuine));
                response(&both, now, None)
            }),
            "assertion_count",
        ),
        (
            "XSW: evil assertion wrapping the signed one (in Advice)",
            Box::new(move |i, now| {
                let genuine = Assertion::new(now).signed(&i.key);
                evil(now).xml(false).replace(
                    "<saml:AttributeStatement>",
                    &format!(
                        "<saml:Advice>{}</saml:Advice><saml:AttributeStatement>",
                        strip_xml_decl(&genuine)
                    ),
                )
            }),
            "assertion_count",
        ),
        (
            "XSW: evil assertion with the signed one's ID",
            Box::new(move |i, now| {
                let a = Assertion::new(now);
                let genuine = a.signed(&i.key);
                let mut e = evil(now);
                e.id = a.id.clone();
                let both = format!("{}{}", e.xml(false), strip_xml_decl(&genuine));
                response(&both, now, None)
            }),
            "duplicate_id",
        ),
        (
            "XSW: signed Response, evil assertion in place of the genuine one",
            Box::new(move |i, now| {
                let signed = response(&Assertion::new(now).xml(false), now, Some(&i.key));
                let genuine_start = signed.find("<saml:Assertion").unwrap();
                let genuine_end =
                    signed.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
                format!(
                    "{}{}{}",
                    &signed[..genuine_start],
                    evil(now).xml(false),
                    &signed[genuine_end..]
                )
            }),
            "bad_signature",
        ),
        (
            "DOCTYPE with internal entity expansion",
            Box::new(|i, now| {
                let signed = Assertion::new(now).signed(&i.key);
                format!(
                    "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>{}",
                    strip_xml_decl(&signed)
                )
            }),
            "doctype",
        ),
        (
            "external entity",
            Box::new(|i, now| {
                let signed = Assertion::new(now).signed(&i.key);
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
                    strip_xml_decl(&signed).replace("_s1", "&e;")
                )
            }),
            "doctype",
        ),
        (
            "wrong audience",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.audiences = vec!["https://elsewhere.example".into()];
                a.signed(&i.key)
            }),
            "wrong_audience",
        ),
        (
            "no AudienceRestriction",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.audiences = vec![];
                a.signed(&i.key)
            }),
            "no_audience_restriction",
        ),
        (
            "expired",
            Box::new(|i, now| Assertion::new(now - 3600).signed(&i.key)),
            "expired",
        ),
        (
            "NotBefore in the future",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.not_before = Some(now + 600);
                a.signed(&i.key)
            }),
            "not_yet_valid",
        ),
        (
            "wrong Recipient",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.recipient = Some("https://elsewhere.example/acs".into());
                a.signed(&i.key)
            }),
            "bad_confirmation",
        ),
        (
            "wrong Destination",
            Box::new(|i, now| {
                response(&Assertion::new(now).signed(&i.key), now, None)
                    .replace("/token\"", "/elsewhere\"")
            }),
            "wrong_destination",
        ),
        (
            "UTF-7 declaration (libxml2 would read another document than our checks)",
            Box::new(|i, now| {
                let signed = Assertion::new(now).signed(&i.key);
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-7\"?>{}",
                    strip_xml_decl(&signed).replacen(
                        "<ds:Reference ",
                        "<ds:Reference Q=\"a+ACI- URI+AD0AIg-http://127.0.0.1:9/x+ACI- P+AD0AIg-b\" ",
                        1
                    )
                )
            }),
            "not_utf8",
        ),
        (
            "a second declaration naming UTF-7 (libxml2 would take it as the real one)",
            Box::new(|i, now| {
                let signed = Assertion::new(now).signed(&i.key);
                format!(
                    "<?xml version=\"1.0\"?><?xml version=\"1.0\" encoding=\"UTF-7\"?>{}",
                    strip_xml_decl(&signed)
                )
            }),
            "malformed_xml",
        ),
        (
            "33 namespaces in scope (inclusive C14N's cost, before the signature check)",
            Box::new(|i, now| {
                let decls: String = (0..31)
                    .map(|n| format!(r#" xmlns:p{n}="urn:u{n}""#))
                    .collect();
                Assertion::new(now).signed(&i.key).replacen(
                    "<saml:Assertion ",
                    &format!("<saml:Assertion{decls} "),
                    1,
                )
            }),
            "too_many_namespaces",
        ),
        (
            "three transforms (work xmlsec does before the signature check)",
            Box::new(|i, now| {
                Assertion::new(now).signed(&i.key).replacen(
                    "</ds:Transforms>",
                    r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
                    1,
                )
            }),
            "signature_shape",
        ),
        (
            "genuinely signed, 1001 elements wide (samael's matcher recursion)",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.attributes = vec![("wide".into(), vec!["<b/>".repeat(1001)])];
                a.signed(&i.key)
            }),
            "too_wide",
        ),
        (
            "an element inside the NameID (simple content only)",
            Box::new(|i, now| {
                let mut a = Assertion::new(now);
                a.name_id_xml = "alice<x:b xmlns:x=\"urn:x\">@evil.example</x:b>".into();
                a.signed(&i.key)
            }),
            "malformed",
        ),
    ]
}

#[tokio::test]
async fn every_forgery_is_refused_and_audited() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    for (name, forge, reason) in forgeries() {
        let xml = forge(&idp, app.now());
        let started = std::time::Instant::now();
        let resp = app.exchange_saml(&b64url(&xml)).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert!(body.get("access_token").is_none(), "{name}");
        let row = app.audit_rows().await.remove(0);
        assert!(
            audit_says(&row, reason),
            "{name}: audit reason {:?}, expected {reason}",
            row.reason
        );
        app.assert_refusal_audited(reason).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}: answered within a second"
        );
    }
}

#[tokio::test]
async fn a_comment_in_nameid_never_truncates_the_subject() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    let mut a = Assertion::new(app.now());
    a.name_id_xml = "user@corp.example.evil.example".into();
    // Comments are not part of exclusive C14N: inserted after signing, the signature holds.
    let signed = a.signed(&idp.key).replace(
        "user@corp.example.evil.example",
        "user@corp.example<!---->.evil.example",
    );
    let body = issued(app.exchange_saml(&b64url(&signed)).await).await;
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "user@corp.example.evil.example");
}

#[tokio::test]
async fn a_one_time_assertion_is_accepted_once_even_across_replicas() {
    let idp = idp();
    for kind in backends() {
        let first = saml_app(kind, &idp).await;
        let url = first.database_url();
        let second = saml_builder(TestApp::builder(kind), &idp)
            .configure(move |c| c.database.url = url)
            .spawn()
            .await;
        let mut a = Assertion::new(first.now());
        a.one_time_use = true;
        let token = b64url(&a.signed(&idp.key));
        issued(first.exchange_saml(&token).await).await;
        for app in [&first, &second] {
            let resp = app.exchange_saml(&token).await;
            assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
        let replayed = second
            .audit_rows()
            .await
            .iter()
            .filter(|r| audit_says(r, "replayed"))
            .count();
        assert_eq!(replayed, 2, "{}", kind_name(kind));
        let metrics = second.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains(r#"tessera_replays_blocked_total{issuer="corp-saml"} 1"#),
            "{metrics}"
        );
        // An assertion refused for another reason is not used up.
        let mut b = Assertion::new(first.now());
        b.one_time_use = true;
        let token = b64url(&b.signed(&idp.key));
        let refused = first
            .post_token(
                Auth::Basic("saml-app", SAML_SECRET),
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &token),
                    ("subject_token_type", SAML2),
                    ("scope", "orders:write"),
                ],
            )
            .await;
        assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_scope").await;
        issued(first.exchange_saml(&token).await).await;
    }
}

/// Explain looks a single-use assertion up and never uses it up (issue 13): explain,
/// exchange, then explain again names the replay step.
#[tokio::test]
async fn explain_never_uses_up_a_one_time_assertion() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    let mut a = Assertion::new(app.now());
    a.one_time_use = true;
    let token = b64url(&a.signed(&idp.key));
    let params = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token.as_str()),
        ("subject_token_type", SAML2),
    ];
    for _ in 0..2 {
        let e = app.explain("saml-app", &params).await;
        assert_eq!(e.outcome, "issued", "{e:#?}");
        let signature = e
            .steps
            .iter()
            .find(|s| s.step == tessera::exchange::Step::Key)
            .unwrap();
        assert!(signature.summary.contains("certificate"), "{signature:?}");
        // The audience step lists tessera's own SAML audience too (saml.entity_id):
        // an assertion addressed to it is accepted for every SAML issuer.
        let audience = e
            .steps
            .iter()
            .find(|s| s.step == tessera::exchange::Step::Audience)
            .unwrap();
        assert_eq!(
            audience.values["accepted"],
            serde_json::json!(["https://app.corp.example/saml", ISSUER]),
            "{audience:?}"
        );
    }
    issued(app.exchange_saml(&token).await).await;
    let e = app.explain("saml-app", &params).await;
    assert_eq!(
        e.failing_step,
        Some(tessera::exchange::Step::Replay),
        "{e:#?}"
    );
    assert_eq!(
        app.audit_rows().await.len(),
        1,
        "only the exchange is audited"
    );
}

/// The newest audit row is a refusal with this reason and no token id.
async fn assert_latest_refusal(app: &TestApp, reason: &str) {
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.outcome, "refused", "{row:?}");
    assert!(audit_says(&row, reason), "{row:?}");
    assert!(row.jti.is_none());
}

/// IdP metadata for `key`, as an IdP publishes it.
fn metadata(key: &SigningKey) -> String {
    let b64: String = key
        .cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    format!(
        r#"<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}" cacheDuration="PT1H"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

/// A real HTTP server answering `GET /metadata` with `body`; counts the requests.
pub(crate) fn serve_metadata(
    body: String,
) -> (
    u16,
    actix_web::dev::ServerHandle,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let body = body.clone();
        let counter = counter.clone();
        actix_web::App::new().route(
            "/metadata",
            actix_web::web::get().to(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/xml")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle, hits)
}

#[tokio::test]
async fn metadata_url_issuers_fetch_their_certificates_once() {
    let idp = idp();
    let (port, handle, hits) = serve_metadata(metadata(&idp.key));
    let app = metadata_url_app(port, "").await;
    for _ in 0..3 {
        let signed = Assertion::new(app.now()).signed(&idp.key);
        issued(app.exchange_saml(&b64url(&signed)).await).await;
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );
    // Down: the cached copy keeps serving.
    handle.stop(false).await;
    let signed = Assertion::new(app.now()).signed(&idp.key);
    issued(app.exchange_saml(&b64url(&signed)).await).await;
}

#[tokio::test]
async fn a_metadata_url_that_never_answered_is_a_503_not_the_callers_fault() {
    let idp = idp();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = metadata_url_app(port, "").await;
    let signed = Assertion::new(app.now()).signed(&idp.key);
    let resp = app.exchange_saml(&b64url(&signed)).await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_oauth_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    let rows = app.audit_rows().await;
    assert_eq!(rows[0].outcome, "error");
    assert_eq!(rows[0].issuer.as_deref(), Some("corp-saml"));
    assert!(rows[0].jti.is_none());
}

/// `assertion` from a `metadata_url` issuer whose fetched metadata (served `hits` times)
/// gave no usable key: the issuer is unavailable (503), not the caller at fault, and
/// nothing is issued.
async fn refused_for_want_of_keys(
    app: &TestApp,
    assertion: &str,
    hits: &std::sync::atomic::AtomicUsize,
) {
    let resp = app.exchange_saml(&b64url(assertion)).await;
    assert_oauth_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let rows = app.audit_rows().await;
    assert!(rows.iter().all(|r| r.outcome != "issued"));
    assert_eq!(rows[0].issuer.as_deref(), Some("corp-saml"));
}

/// Security review F-3 on the `metadata_url` path: metadata naming a 1024-bit signing key
/// yields no usable key (a rollover to a weak key is refused like a bad copy, and the
/// issuer is unavailable rather than weakened); with `allow_rsa_1024` it is used.
#[tokio::test]
async fn metadata_url_with_a_weak_signing_key_gives_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let weak = SigningKey::generate_rsa(dir.path(), "weak", 1024);
    let (port, handle, hits) = serve_metadata(metadata(&weak));
    let app = metadata_url_app(port, "").await;
    let signed = Assertion::new(app.now()).signed(&weak);
    refused_for_want_of_keys(&app, &signed, &hits).await;

    let app = metadata_url_app(port, "allow_rsa_1024 = true\n").await;
    let signed = Assertion::new(app.now()).signed(&weak);
    issued(app.exchange_saml(&b64url(&signed)).await).await;
    handle.stop(false).await;
}

/// Metadata signed (by xmlsec1) with a federation key, as `metadata_signing_cert_file`
/// expects; a copy signed by anyone else is never used.
fn signed_metadata(idp: &SigningKey, signer: &SigningKey) -> String {
    let body = metadata(idp).replacen(
        r#"cacheDuration="PT1H">"#,
        &format!(
            r#"cacheDuration="PT1H" ID="_md1">{}"#,
            signature_template("_md1")
        ),
        1,
    );
    sign(
        &body,
        signer,
        "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
    )
}

/// The broker with one saml issuer whose keys come from `metadata_url` on `port`, plus
/// `extra` entry lines, and `files` beside it.
async fn metadata_url_app_with(port: u16, extra: &str, files: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder(backends()[0]);
    for (path, content) in files {
        b = b.file(path, content);
    }
    b.file(
        "issuers/corp-saml.toml",
        &format!(
            "kind = \"saml\"\nissuer = \"{IDP}\"\nmetadata_url = \"http://127.0.0.1:{port}/metadata\"\n{extra}"
        ),
    )
    .file("clients/saml-app.toml", &saml_client(""))
    .spawn()
    .await
}

async fn metadata_url_app(port: u16, extra: &str) -> TestApp {
    metadata_url_app_with(port, extra, &[]).await
}

async fn signed_metadata_app(port: u16, federation: &SigningKey) -> TestApp {
    metadata_url_app_with(
        port,
        "metadata_signing_cert_file = \"federation.pem\"\n",
        &[("issuers/federation.pem", &federation.cert_pem)],
    )
    .await
}

#[tokio::test]
async fn fetched_metadata_must_be_signed_by_the_metadata_signing_cert() {
    let idp = idp();
    let dir = tempfile::tempdir().unwrap();
    let federation = SigningKey::generate(dir.path(), "federation");
    let mallory = SigningKey::generate(dir.path(), "mallory");
    // Signed by the federation: its certificates are used.
    let (port, handle, _) = serve_metadata(signed_metadata(&idp.key, &federation));
    let app = signed_metadata_app(port, &federation).await;
    let signed = Assertion::new(app.now()).signed(&idp.key);
    issued(app.exchange_saml(&b64url(&signed)).await).await;
    handle.stop(false).await;
    // Metadata naming Mallory's key, signed by Mallory: never trusted, so no keys at all
    // (the issuer is unavailable, not the caller at fault); her assertion issues nothing.
    let (port, handle, hits) = serve_metadata(signed_metadata(&mallory, &mallory));
    let app = signed_metadata_app(port, &federation).await;
    let forged = Assertion::new(app.now()).signed(&mallory);
    refused_for_want_of_keys(&app, &forged, &hits).await;
    handle.stop(false).await;
}

/// RFC 8693 §4.1 with a SAML actor: a SAML assertion for the user as subject token, one
/// for a service as actor token; `act` records the service with its IdP, and a replayed
/// one-time actor assertion is refused like a subject one.
#[tokio::test]
async fn a_saml_actor_token_becomes_the_act_claim() {
    let idp = idp();
    let app = saml_builder(TestApp::builder(backends()[0]), &idp)
        .file(
            "clients/saml-app.toml",
            &saml_client("actor_issuers = [\"corp-saml\"]\n"),
        )
        .spawn()
        .await;
    let now = app.now();
    let subject = b64url(&Assertion::new(now).signed(&idp.key));
    let mut service = Assertion::new(now);
    service.name_id_xml = "svc-batch@corp.example".into();
    service.one_time_use = true;
    let actor = b64url(&service.signed(&idp.key));
    let exchange = |subject: String| {
        let (app, actor) = (&app, actor.clone());
        async move {
            app.post_token(
                Auth::Basic("saml-app", SAML_SECRET),
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &subject),
                    ("subject_token_type", SAML2),
                    ("actor_token", &actor),
                    ("actor_token_type", SAML2),
                ],
            )
            .await
        }
    };
    let body = issued(exchange(subject).await).await;
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "alice@corp.example");
    assert_eq!(
        claims["act"],
        serde_json::json!({"sub": "svc-batch@corp.example", "iss": IDP})
    );
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.actor.as_deref(), Some("svc-batch@corp.example"));
    // The one-time actor assertion again, with a fresh subject: refused, nothing issued.
    let fresh = b64url(&Assertion::new(now).signed(&idp.key));
    assert_oauth_error(
        exchange(fresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_latest_refusal(&app, "replayed").await;
}

/// Security review F-1: a `may_act` without `iss` names a principal of the subject token's
/// issuer. An `agent-7` of another trusted IdP (here a SAML NameID) does not pass for it,
/// neither as a foreign actor token nor inside a local token minted from it; acme's own
/// `agent-7` does, directly or through a local token, which records where its subject came
/// from (`src_iss`, review I-3).
#[tokio::test]
async fn may_act_names_a_principal_of_the_subject_tokens_issuer() {
    let idp = idp();
    let client = format!(
        "client_id = \"broker-app\"\nauth = \"client_secret_basic\"\nsecret_hash = \"{}\"\nsubject_issuers = [\"acme\", \"corp-saml\"]\nactor_issuers = [\"acme\", \"corp-saml\", \"local\"]\naudiences = [\"orders\"]\nscopes = [\"orders:read\"]\n",
        secret_hash(SAML_SECRET)
    );
    let app = saml_builder(TestApp::builder(backends()[0]), &idp)
        .file("clients/broker-app.toml", &client)
        .spawn()
        .await;
    let now = app.now();
    let post =
        |subject: String, subject_type: &'static str, actor: String, actor_type: &'static str| {
            let app = &app;
            async move {
                let mut params = vec![
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", subject.as_str()),
                    ("subject_token_type", subject_type),
                ];
                if !actor.is_empty() {
                    params.push(("actor_token", actor.as_str()));
                    params.push(("actor_token_type", actor_type));
                }
                app.post_token(Auth::Basic("broker-app", SAML_SECRET), &params)
                    .await
            }
        };
    let local_token_of = |subject: String, subject_type: &'static str| {
        let post = &post;
        async move {
            let body = issued(post(subject, subject_type, String::new(), "").await).await;
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let bound = || {
        app.issuer
            .id_token()
            .sub("alice")
            .claim("may_act", json!({"sub": "agent-7"}))
            .sign()
    };
    let mut saml_agent = Assertion::new(now);
    saml_agent.name_id_xml = "agent-7".into();
    let saml_agent = b64url(&saml_agent.signed(&idp.key));
    let acme_agent = || app.issuer.id_token().sub("agent-7").sign();

    // Refused: corp-saml's agent-7, as itself and inside a local token.
    let local_saml_agent = local_token_of(saml_agent.clone(), SAML2).await;
    let (_, claims) = app.verify_issued(&local_saml_agent).await;
    assert_eq!(claims["src_iss"], IDP);
    // As a SAML actor token, and inside a local token minted from it.
    for (actor, actor_type) in [
        (saml_agent.clone(), SAML2),
        (local_saml_agent, ACCESS_TOKEN),
    ] {
        let resp = post(bound(), ID_TOKEN, actor, actor_type).await;
        assert_invalid_request_saying(resp, "iss differs").await;
        app.assert_last_refused("may_act_refused").await;
    }

    // Admitted: acme's agent-7, as itself and inside a local token; the issued token
    // carries may_act with acme named.
    let local_acme_agent = local_token_of(acme_agent(), ID_TOKEN).await;
    for (actor, actor_type) in [(acme_agent(), ID_TOKEN), (local_acme_agent, ACCESS_TOKEN)] {
        let body = issued(post(bound(), ID_TOKEN, actor, actor_type).await).await;
        let (_, claims) = app
            .verify_issued(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(
            claims["may_act"],
            json!({"sub": "agent-7", "iss": app.issuer.url()})
        );
        assert_eq!(claims["act"]["iss"], app.issuer.url());
    }
}

/// SAML core §2.5.1 (security review I-6): a Condition tessera does not understand makes
/// the assertion Indeterminate: refused and audited, not ignored. ProxyRestriction, which
/// binds only the issuing of further SAML assertions, is accepted.
#[tokio::test]
async fn an_assertion_with_a_condition_tessera_does_not_understand_is_refused() {
    let idp = idp();
    let app = saml_app(backends()[0], &idp).await;
    let with_condition = |condition: &str| {
        let xml = Assertion::new(app.now()).xml(true).replacen(
            "</saml:Conditions>",
            &format!("{condition}</saml:Conditions>"),
            1,
        );
        b64url(&sign(
            &xml,
            &idp.key,
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ))
    };
    let proxy = with_condition(r#"<saml:ProxyRestriction Count="0"/>"#);
    issued(app.exchange_saml(&proxy).await).await;
    let unknown = with_condition(
        r#"<saml:Condition xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ext="urn:x-ext" xsi:type="ext:GeoFence"/>"#,
    );
    let resp = app.exchange_saml(&unknown).await;
    assert_invalid_request_saying(resp, "Indeterminate").await;
    app.assert_last_refused("unknown_condition").await;
}
