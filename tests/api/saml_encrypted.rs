//! EncryptedAssertion end to end: assertions signed and encrypted by `xmlsec1` (not by us)
//! to the broker's `saml.decryption_key_file`, exchanged over HTTP. A signed Response is
//! verified before decryption; the decrypted assertion's own signature after. Refusals issue
//! no token and are audited; a refusal inside an unverified ciphertext answers the caller
//! with one message (no decryption oracle) while the audit row keeps the real cause.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::saml_idp::*;

use crate::saml::SAML_SECRET as SECRET;

struct Parties {
    idp: SigningKey,
    /// The broker's decryption key pair (its certificate is what IdPs encrypt to).
    sp: SigningKey,
    /// A key pair that is not the broker's.
    other: SigningKey,
    _dir: tempfile::TempDir,
}

fn parties() -> Parties {
    let dir = tempfile::tempdir().unwrap();
    Parties {
        idp: SigningKey::generate(dir.path(), "corp"),
        sp: SigningKey::generate(dir.path(), "sp"),
        other: SigningKey::generate(dir.path(), "other"),
        _dir: dir,
    }
}

async fn app(p: &Parties, decrypt: bool) -> TestApp {
    let key = p.sp.key.clone();
    TestApp::builder(backends()[0])
        .configure(move |c| {
            if decrypt {
                c.saml.decryption_key_file = Some(key);
            }
        })
        .file("issuers/corp.pem", &p.idp.cert_pem)
        .file(
            "issuers/corp-saml.toml",
            &format!("kind = \"saml\"\nissuer = \"{IDP}\"\nsigning_cert_file = \"corp.pem\"\n"),
        )
        .file("clients/saml-app.toml", &crate::saml::saml_client(""))
        .spawn()
        .await
}

impl TestApp {
    async fn exchange_encrypted(&self, response_xml: &str) -> reqwest::Response {
        self.post_token(
            Auth::Basic("saml-app", SECRET),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &b64url(response_xml)),
                ("subject_token_type", SAML2),
            ],
        )
        .await
    }

    fn clock_now(&self) -> i64 {
        use tessera::clock::Clock;
        self.clock.now()
    }
}

async fn subject_of(app: &TestApp, resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    claims["sub"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn encrypted_assertions_are_decrypted_then_verified() {
    let p = parties();
    let app = app(&p, true).await;
    let now = app.clock_now();
    let sp = &p.sp.cert;
    // Okta's and Shibboleth's shape: unsigned Response, signed assertion encrypted with
    // AES-256-CBC under RSA-OAEP.
    let signed = Assertion::new(now).signed(&p.idp);
    let xml = response(&encrypt(&signed, sp, AES256_CBC_OAEP), now, None);
    let resp = app.exchange_encrypted(&xml).await;
    assert_eq!(subject_of(&app, resp).await, "alice@corp.example");
    // A signed Response around an encrypted unsigned assertion (AES-128-GCM, RSA-OAEP
    // with its digest named): the Response signature covers it.
    let mut bob = Assertion::new(now);
    bob.name_id_xml = "bob@corp.example".into();
    let enc = encrypt(&bob.xml(false), sp, AES128_GCM_OAEP_SHA1);
    let xml = response(&enc, now, Some(&p.idp));
    let resp = app.exchange_encrypted(&xml).await;
    assert_eq!(subject_of(&app, resp).await, "bob@corp.example");
    // Both signed: the Response verified on the ciphertext, the assertion after.
    let signed = Assertion::new(now).signed(&p.idp);
    let xml = response(&encrypt(&signed, sp, AES256_CBC_OAEP), now, Some(&p.idp));
    let resp = app.exchange_encrypted(&xml).await;
    assert_eq!(subject_of(&app, resp).await, "alice@corp.example");
}

/// Flips one base64 character in the middle of the last CipherValue (the content).
fn tamper_ciphertext(xml: &str) -> String {
    let start = xml.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len() + 40;
    let mut bytes = xml.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

type Build = Box<dyn Fn(&Parties, i64) -> String>;

fn refusals() -> Vec<(&'static str, Build, &'static str, Option<&'static str>)> {
    let enc = |p: &Parties, xml: &str| encrypt(xml, &p.sp.cert, AES256_CBC_OAEP);
    vec![
        (
            "rsa-1_5 key transport (a Bleichenbacher oracle)",
            Box::new(|p, now| {
                let a = Assertion::new(now).signed(&p.idp);
                response(&encrypt(&a, &p.sp.cert, AES192_CBC_RSA15), now, None)
            }),
            "encryption_alg_not_allowed",
            None,
        ),
        (
            "anyone can encrypt to the broker: an unsigned assertion in an unsigned Response",
            Box::new(move |p, now| response(&enc(p, &Assertion::new(now).xml(false)), now, None)),
            "decryption_failed",
            Some("unsigned"),
        ),
        (
            "encrypted to another key",
            Box::new(|p, now| {
                let a = Assertion::new(now).signed(&p.idp);
                response(&encrypt(&a, &p.other.cert, AES256_CBC_OAEP), now, None)
            }),
            "decryption_failed",
            None,
        ),
        (
            "ciphertext modified (padding/parse oracle probe)",
            Box::new(move |p, now| {
                let a = Assertion::new(now).signed(&p.idp);
                tamper_ciphertext(&response(&enc(p, &a), now, None))
            }),
            "decryption_failed",
            None,
        ),
        (
            "the assertion was tampered with before encryption",
            Box::new(move |p, now| {
                let a = Assertion::new(now).signed(&p.idp).replace(
                    "alice@corp.example</saml:NameID>",
                    "admin@corp.example</saml:NameID>",
                );
                response(&enc(p, &a), now, None)
            }),
            "decryption_failed",
            Some("bad_signature"),
        ),
        (
            "signed by an unknown key",
            Box::new(move |p, now| {
                let a = Assertion::new(now).signed(&p.other);
                response(&enc(p, &a), now, None)
            }),
            "decryption_failed",
            Some("bad_signature"),
        ),
        (
            "a DOCTYPE inside the plaintext",
            Box::new(move |p, now| {
                let a = Assertion::new(now).signed(&p.idp);
                let evil = format!("<!DOCTYPE x [<!ENTITY e \"boom\">]>{a}");
                response(&enc(p, &evil), now, None)
            }),
            "decryption_failed",
            None,
        ),
        (
            "two assertions inside one EncryptedAssertion",
            Box::new(move |p, now| {
                let a = Assertion::new(now).signed(&p.idp);
                let b = Assertion::new(now).signed(&p.idp);
                let two = format!("{}{}", strip_xml_decl(&a), strip_xml_decl(&b));
                response(&enc(p, &two), now, None)
            }),
            "decryption_failed",
            Some("assertion_count"),
        ),
        (
            "a signed Response whose EncryptedAssertion was swapped after signing",
            Box::new(move |p, now| {
                let genuine = Assertion::new(now).signed(&p.idp);
                let signed = response(&enc(p, &genuine), now, Some(&p.idp));
                let mut evil = Assertion::new(now);
                evil.name_id_xml = "admin@corp.example".into();
                let forged = enc(p, &evil.xml(false));
                let start = signed.find("<saml:EncryptedAssertion").unwrap();
                let end = signed.find("</saml:EncryptedAssertion>").unwrap()
                    + "</saml:EncryptedAssertion>".len();
                format!("{}{forged}{}", &signed[..start], &signed[end..])
            }),
            "bad_signature",
            None,
        ),
        (
            "an expired assertion (checks after decryption still apply)",
            Box::new(move |p, now| {
                let mut a = Assertion::new(now - 3600);
                a.lifetime = 300;
                response(&enc(p, &a.signed(&p.idp)), now, Some(&p.idp))
            }),
            "expired",
            None,
        ),
    ]
}

#[tokio::test]
async fn encrypted_assertion_refusals_issue_nothing_and_are_audited() {
    let p = parties();
    let app = app(&p, true).await;
    let now = app.clock_now();
    for (name, build, reason, withheld) in refusals() {
        let resp = app.exchange_encrypted(&build(&p, now)).await;
        let body = assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
        let description = body["error_description"].as_str().unwrap_or_default();
        if reason == "decryption_failed" {
            // One message to the caller, whatever failed inside the ciphertext.
            assert_eq!(
                description,
                "decryption: subject token: EncryptedAssertion: it does not decrypt with \
                 saml.decryption_key_file to a well-formed assertion signed by the issuer",
                "{name}"
            );
        }
        app.assert_refusal_audited(reason).await;
        let row = app.audit_rows().await.remove(0);
        let audited = row.detail.unwrap_or_default();
        match withheld {
            // The operator sees what the caller was not told.
            Some(cause) => assert!(
                audited.contains(&format!("withheld from the caller: {cause}")),
                "{name}: {audited}"
            ),
            None => assert!(!audited.contains("withheld"), "{name}: {audited}"),
        }
    }
}

#[tokio::test]
async fn without_a_decryption_key_encrypted_assertions_are_refused_by_name() {
    let p = parties();
    let app = app(&p, false).await;
    let now = app.clock_now();
    let a = Assertion::new(now).signed(&p.idp);
    let xml = response(&encrypt(&a, &p.sp.cert, AES256_CBC_OAEP), now, None);
    let resp = app.exchange_encrypted(&xml).await;
    assert_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    app.assert_refusal_audited("encryption_not_configured")
        .await;
}
