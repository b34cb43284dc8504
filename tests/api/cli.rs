//! The `tessera` binary as a user runs it: the README walk-through, `trust check`,
//! `clients new-secret`, `keys rotate` seen by a running server.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera::clock::Clock;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const REPO_TRUST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/trust");

/// The binary with `args`, run from a neutral directory with no inherited config file.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TESSERA_CONFIG")
        .current_dir(std::env::temp_dir());
    cmd
}

fn tessera(args: &[&str]) -> std::process::Output {
    command(args).output().expect("run tessera")
}

/// Runs the binary on `app`'s database, as an operator would beside the running broker.
fn tessera_on(app: &TestApp, args: &[&str]) -> std::process::Output {
    command(args)
        .env("TESSERA_DATABASE__URL", app.database_url())
        .output()
        .expect("run tessera")
}

/// Exchanges a fresh ID token and returns the `kid` that signed the issued token.
async fn issued_kid(app: &TestApp) -> String {
    let t = app.issuer.id_token().sign();
    let body: Value = app
        .exchange(&t, ID_TOKEN, &[("audience", "inventory")])
        .await
        .json()
        .await
        .unwrap();
    app.verify_issued(body["access_token"].as_str().unwrap())
        .await;
    jsonwebtoken::decode_header(body["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn the_readme_walk_through_works_against_the_demo_registry() {
    let app = TestApp::builder(backends()[0])
        .copy_registry(Path::new(REPO_TRUST))
        .spawn()
        .await;
    // 1. Mint a demo ID token (the demo issuer's key file path is relative to its entry).
    let out = tessera(&[
        "dev",
        "id-token",
        "--dir",
        REPO_TRUST,
        "--sub",
        "alice",
        "--claim",
        "email=alice@example.com",
        "--claim",
        r#"groups=["buyers"]"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id_token = stdout(&out).trim().to_owned();
    // The demo token was minted with the system clock; align the broker's.
    let iat = jsonwebtoken::dangerous::insecure_decode::<Value>(&id_token)
        .unwrap()
        .claims["iat"]
        .as_i64()
        .unwrap();
    app.clock.set(iat);

    // 2. Exchange it as demo-client.
    let resp = app
        .post_token(
            Auth::Basic("demo-client", "demo-secret"),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", ID_TOKEN),
                ("subject_token", &id_token),
                ("audience", "https://api.orders.example"),
                ("scope", "orders:read"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();

    // 3. Decode and verify it against /jwks.json with the CLI.
    let out = tessera(&[
        "dev",
        "inspect",
        "--jwks-url",
        &app.url("/jwks.json"),
        access,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("signature: valid"), "{text}");
    assert!(text.contains(r#""sub": "alice""#), "{text}");
    assert!(text.contains(r#""email": "alice@example.com""#), "{text}");
    assert!(text.contains(r#""act""#), "{text}");

    // A tampered token does not verify.
    let mut bad = access.to_owned();
    bad.pop();
    bad.push(if access.ends_with('A') { 'B' } else { 'A' });
    let out = tessera(&["dev", "inspect", "--jwks-url", &app.url("/jwks.json"), &bad]);
    assert!(!out.status.success());
    // Decoded first, verified second: the claims are shown, the verdict says why not.
    let text = stdout(&out);
    assert!(text.contains(r#""sub": "alice""#), "{text}");
    assert!(text.contains("signature: NOT verified"), "{text}");
    // A token whose key is not in the set is still decoded.
    let foreign = app.issuer.id_token().sign();
    let out = tessera(&[
        "dev",
        "inspect",
        "--jwks-url",
        &app.url("/jwks.json"),
        &foreign,
    ]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("claims (unverified)"), "{text}");
    assert!(text.contains("signature: NOT verified: no key"), "{text}");
}

/// README "Exchanging a SAML assertion": mint with `dev saml-assertion`, exchange, replay
/// refused, the saml2-bearer grant; the CLI minting for the broker's configured issuer.
#[tokio::test]
async fn the_readme_saml_walk_through_works_against_the_demo_registry() {
    let app = TestApp::builder(backends()[0])
        .copy_registry(Path::new(REPO_TRUST))
        .spawn()
        .await;
    // The CLI mints with the system clock; align the broker's.
    app.clock.set(tessera::clock::SystemClock.now());
    let mint = |extra: &[&str]| {
        let mut args = vec!["dev", "saml-assertion", "--dir", REPO_TRUST];
        args.extend_from_slice(extra);
        let out = command(&args)
            .env("TESSERA_SERVER__ISSUER", ISSUER)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out).trim().to_owned()
    };
    let saml = mint(&[
        "--name-id",
        "alice@example.com",
        "--attribute",
        "email=alice@example.com",
        "--attribute",
        "groups=buyers",
        "--attribute",
        "groups=staff",
    ]);
    let exchange = |token: String| {
        let app = &app;
        async move {
            app.post_token(
                Auth::Basic("demo-client", "demo-secret"),
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:saml2",
                    ),
                    ("subject_token", &token),
                    ("audience", "https://api.orders.example"),
                    ("scope", "orders:read"),
                ],
            )
            .await
        }
    };
    let resp = exchange(saml.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = app
        .verify_issued(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["sub"], "alice@example.com");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["buyers", "staff"]));
    // 3. Replayed: single-use.
    let body = assert_oauth_error(
        exchange(saml).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // Response-wrapped and signed both ways.
    for sign in ["assertion", "response", "both"] {
        let resp = exchange(mint(&["--response", "--sign", sign])).await;
        assert_eq!(resp.status(), StatusCode::OK, "--sign {sign}");
    }
    // 4. The saml2-bearer grant.
    let resp = app
        .post_token(
            Auth::Basic("demo-client", "demo-secret"),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:saml2-bearer",
                ),
                ("assertion", &mint(&[])),
                ("audience", "inventory"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Edited after signing: refused.
    let xml = mint(&["--xml"]).replace("alice@example.com<", "admin@example.com<");
    let edited = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, xml);
    assert_oauth_error(
        exchange(edited).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let row = app.audit_rows().await.remove(0);
    assert_eq!(row.outcome, "refused");
    assert!(audit_says(&row, "bad_signature"), "{row:?}");
}

#[test]
fn trust_check_accepts_the_demo_registry_and_names_file_and_field_on_error() {
    let out = tessera(&["trust", "check", "--dir", REPO_TRUST]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("demo-oidc"));
    // The registry's own words, never Rust names (issue 13).
    let listing = stdout(&out);
    for words in [
        "introspection_auth=client_secret_basic",
        "  client_secret_basic  ",
        "algorithms=RS256",
        "token_types=id_token,access_token,jwt",
        "on_behalf_of=delegate",
    ] {
        assert!(listing.contains(words), "{words:?} in\n{listing}");
    }
    assert!(!listing.contains("ClientSecret"), "{listing}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issuers")).unwrap();
    std::fs::write(
        dir.path().join("issuers/bad.toml"),
        "kind = \"oidc\"\nissuer = \"https://x.example\"\njwks_uri = \"https://x.example/k\"\naudiences = [\"a\"]\nalgorithms = [\"HS256\"]\n",
    )
    .unwrap();
    let out = tessera(&["trust", "check", "--dir", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("algorithms"),
        "{err}"
    );
}

/// `tessera explain` on the demo registry: exit 0 would issue, 1 refused, 2 usage; the
/// text and the JSON name every step; the token text appears nowhere.
#[tokio::test]
async fn explain_prints_the_decision_and_exits_by_its_outcome() {
    let app = TestApp::builder(backends()[0])
        .copy_registry(Path::new(REPO_TRUST))
        .spawn()
        .await;
    let out = tessera(&[
        "dev",
        "id-token",
        "--dir",
        REPO_TRUST,
        "--claim",
        "email=a@example.com",
    ]);
    assert!(out.status.success());
    let token = stdout(&out).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, &token).unwrap();
    let file = file.to_str().unwrap();
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--client",
            "demo-client",
            "--subject-token-type",
            "id_token",
        ];
        args.extend_from_slice(extra);
        args.push(file);
        command(&args)
            .env("TESSERA_DATABASE__URL", app.database_url())
            .env("TESSERA_TRUST__DIR", REPO_TRUST)
            .output()
            .expect("run tessera")
    };
    let issued = explain(&["--audience", "inventory"]);
    let text = stdout(&issued);
    assert_eq!(
        issued.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    for step in [
        "client",
        "issuer",
        "signature",
        "mapping",
        "scope",
        "lifetime",
        "issue",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("pass") && l.contains(step)),
            "{step}: {text}"
        );
    }
    assert!(
        text.contains("would issue a bearer token, signed with ES256:"),
        "{text}"
    );

    let refused = explain(&["--audience", "nowhere", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(json["failing_step"], "target", "{json}");
    assert_eq!(json["error"]["error"], "invalid_target", "{json}");

    let usage = command(&["explain", "--subject-token-type", "id_token", file])
        .output()
        .unwrap();
    assert_eq!(
        usage.status.code(),
        Some(2),
        "missing --client is a usage error"
    );
    for out in [&issued, &refused] {
        assert!(!stdout(out).contains(&token));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    }
    assert!(app.audit_rows().await.is_empty(), "explain audits nothing");
}

/// `explain --offline` fetches nothing: an issuer whose keys live at a URL (the test
/// issuer's discovery document) fails at the `key` step; online it would issue.
#[tokio::test]
async fn explain_offline_fetches_nothing() {
    let app = TestApp::spawn(backends()[0]).await;
    app.clock.set(tessera::clock::SystemClock.now());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, app.issuer.id_token().sign()).unwrap();
    let run = |offline: bool| {
        let mut args = vec![
            "explain",
            "--client",
            "orders-service",
            "--subject-token-type",
            "id_token",
            "--audience",
            "inventory",
        ];
        if offline {
            args.push("--offline");
        }
        args.push(file.to_str().unwrap());
        command(&args)
            .env("TESSERA_DATABASE__URL", app.database_url())
            .env("TESSERA_TRUST__DIR", &app.trust_dir)
            .env("TESSERA_SERVER__ISSUER", ISSUER)
            .output()
            .unwrap()
    };
    let fetches = app.issuer.fetch_count();
    let offline = run(true);
    assert_eq!(offline.status.code(), Some(1), "{}", stdout(&offline));
    assert!(
        stdout(&offline).contains("FAIL key"),
        "{}",
        stdout(&offline)
    );
    assert_eq!(app.issuer.fetch_count(), fetches, "nothing fetched");
    let online = run(false);
    assert_eq!(
        online.status.code(),
        Some(0),
        "{}{}",
        stdout(&online),
        String::from_utf8_lossy(&online.stderr)
    );
}

/// Issue 13: `tessera dev id-token --count 500 | head -1` — the reader closes the pipe
/// after one line; the command stops quietly (exit 0, no panic) instead of `println!`
/// panicking on the broken pipe. Deterministic: the output (hundreds of KiB) is more than
/// a pipe holds, so the writer is still writing when the reader goes.
#[test]
fn dev_commands_stop_quietly_when_the_reader_closes_the_pipe() {
    use std::io::BufRead;
    for args in [
        ["dev", "id-token", "--dir", REPO_TRUST, "--count", "500"],
        [
            "dev",
            "opaque-token",
            "--dir",
            REPO_TRUST,
            "--count",
            "5000",
        ],
    ] {
        let mut child = command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tessera");
        let mut first = String::new();
        {
            let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
            reader.read_line(&mut first).unwrap();
            // Dropped here: the pipe's only reader is gone, as after `head -1`.
        }
        assert!(first.len() > 20, "{args:?}: one token: {first:?}");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
}

/// Issue 13: `trust check --online` fetches every remote key source with the broker's
/// own fetch code and reports one line per source: real servers started here for OIDC
/// discovery + JWKS, SAML metadata and an introspection endpoint; one `jwks_uri` at a
/// port nothing listens on and one `metadata_url` that is not found. Non-zero exit, each
/// failure named on its line.
#[tokio::test]
async fn trust_check_online_fetches_every_remote_key_source() {
    let issuer = crate::issuer::TestIssuer::start().await;
    let metadata =
        std::fs::read_to_string(format!("{REPO_TRUST}/issuers/demo-saml.metadata.xml")).unwrap();
    let (md_port, _md_server, md_hits) = crate::saml::serve_metadata(metadata);
    let partner = crate::introspection::TestAs::start(false).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
        // Dropped: nothing listens on this port any more.
    };
    let dead_jwks = format!("http://127.0.0.1:{closed}/jwks.json");
    let metadata_url = format!("http://127.0.0.1:{md_port}/metadata");

    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "issuers/oidc.toml",
            format!(
                "kind = \"oidc\"\nissuer = \"{}\"\ndiscovery_url = \"{}\"\naudiences = [\"tessera\"]\n",
                issuer.url(),
                issuer.discovery_url()
            ),
        ),
        (
            "issuers/dead.toml",
            format!(
                "kind = \"oidc\"\nissuer = \"https://dead.example\"\njwks_uri = \"{dead_jwks}\"\naudiences = [\"tessera\"]\n"
            ),
        ),
        (
            "issuers/saml.toml",
            format!(
                "kind = \"saml\"\nissuer = \"https://demo-saml-idp.tessera.test\"\nmetadata_url = \"{metadata_url}\"\n"
            ),
        ),
        (
            "issuers/gone.toml",
            format!(
                "kind = \"saml\"\nissuer = \"https://gone-idp.example\"\nmetadata_url = \"http://127.0.0.1:{md_port}/gone\"\n"
            ),
        ),
        (
            "issuers/opaque.toml",
            format!(
                "kind = \"introspection\"\nissuer = \"https://as.example\"\nintrospection_endpoint = \"{}\"\n\
                 client_id = \"tessera\"\nclient_secret_env = \"TESSERA_TEST_ONLINE_SECRET\"\naudiences = [\"tessera\"]\n",
                partner.url
            ),
        ),
        (
            "clients/signed.toml",
            format!(
                "client_id = \"signed\"\nauth = \"private_key_jwt\"\njwks_uri = \"{}\"\n\
                 subject_issuers = [\"oidc\"]\naudiences = [\"api\"]\nscopes = [\"read\"]\n",
                issuer.jwks_uri()
            ),
        ),
        (
            "audiences/api.toml",
            "audience = \"https://api.example\"\nscopes = [\"read\"]\n".to_owned(),
        ),
    ];
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    let mut cmd = command(&[
        "trust",
        "check",
        "--online",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    cmd.env("TESSERA_TEST_ONLINE_SECRET", "s3cret");
    // The servers run on this test's runtime: wait for the binary off it.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run tessera"))
        .await
        .unwrap();
    let text = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}\n{err}");
    for line in [
        format!(
            "source    issuer oidc  discovery_url={}  ok: issuer matches, jwks_uri={}",
            issuer.discovery_url(),
            issuer.jwks_uri()
        ),
        format!(
            "source    issuer oidc  discovered jwks_uri={}  ok: 2 keys",
            issuer.jwks_uri()
        ),
        format!("source    issuer saml  metadata_url={metadata_url}  ok: 1 signing certificate"),
        format!(
            "source    issuer opaque  introspection_endpoint={}  ok: reachable (HTTP 401 to a request without credentials)",
            partner.url
        ),
        format!(
            "source    client signed  jwks_uri={}  ok: 2 keys",
            issuer.jwks_uri()
        ),
        format!("source    issuer dead  jwks_uri={dead_jwks}  FAILED: connection refused"),
        format!(
            "source    issuer gone  metadata_url=http://127.0.0.1:{md_port}/gone  FAILED: HTTP status 404"
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    assert_eq!(text.matches("FAILED").count(), 2, "{text}");
    let message: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
        .collect();
    assert_eq!(
        message,
        ["Error: 2 of 7 remote key sources failed (see the FAILED lines)"],
        "{err}"
    );
    // Each source was really asked, once.
    assert_eq!(md_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(partner.calls(), 1);
    assert_eq!(issuer.discovery_count(), 1);
}

#[test]
fn clients_new_secret_prints_a_secret_and_its_hash() {
    let out = tessera(&["clients", "new-secret"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap();
    assert_eq!(secret.len(), 43, "256 bits, base64url without padding");
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    assert!(
        text.contains(&format!("secret_hash = \"sha256:{hash}\"")),
        "{text}"
    );
}

#[test]
fn a_config_error_names_the_key_and_its_source() {
    let out = command(&["migrate"])
        .env("TESSERA_TOKENS__MAX_LIFETIME", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens.max_lifetime") && err.contains("TESSERA_TOKENS__MAX_LIFETIME"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_rotate_is_picked_up_by_a_running_server() {
    for kind in backends() {
        let app = TestApp::builder(kind)
            .configure(|c| c.tokens.key_refresh_interval = std::time::Duration::from_secs(1))
            .spawn()
            .await;
        let jwks = app.get_json("/jwks.json").await;
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        let old_kid = issued_kid(&app).await;

        let out = tessera_on(&app, &["keys", "rotate", "--insecure-skip-publish-wait"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

        let jwks = app.get_json("/jwks.json").await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 3, "retired + current + new next: {jwks}");
        assert!(
            kids.contains(&old_kid.as_str()),
            "the retired key stays published"
        );
        let new_kid = issued_kid(&app).await;
        assert_ne!(new_kid, old_kid);
    }
}

#[tokio::test]
async fn serve_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TESSERA_DATABASE__URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
        .env("TESSERA_TRUST__DIR", REPO_TRUST)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ready = r.status().is_success();
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "server became ready");
    let started = std::time::Instant::now();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "exits within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("DEMO ISSUER"),
        "serve warns about the demo issuer: {log}"
    );
    // The default server.issuer names port 8080 on this machine; this one listens on
    // another port, and says so.
    assert!(
        log.contains("server.issuer names port 8080 on this machine"),
        "serve warns about the issuer's port: {log}"
    );
}

#[tokio::test]
async fn audit_prune_deletes_old_events_only_and_keeps_live_tokens_trail() {
    use tessera::store::audit::insert_events;
    use tessera::store::testing::audit_row_at;
    for kind in backends() {
        let app = TestApp::spawn(kind).await;
        let t = app.issuer.id_token().sign();
        let resp = app
            .exchange(&t, ID_TOKEN, &[("audience", "inventory")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let old = app.clock.now() - 100 * 86_400;
        app.store
            .run(move |c| {
                Ok(insert_events(
                    c,
                    &[
                        audit_row_at(old),
                        audit_row_at(old + 1),
                        audit_row_at(old + 2),
                    ],
                )?)
            })
            .await
            .unwrap();
        assert_eq!(app.audit_rows().await.len(), 4);

        let prune = |age: &str| tessera_on(&app, &["audit", "prune", "--older-than", age]);
        // Younger than tokens.max_lifetime: refused, nothing deleted.
        let out = prune("5m");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tokens.max_lifetime"), "{err}");
        assert_eq!(app.audit_rows().await.len(), 4);

        let out = prune("90days");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout(&out).starts_with("pruned 3 audit events recorded before "),
            "{}",
            stdout(&out)
        );
        let left = app.audit_rows().await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].at > old + 2);

        // The running broker keeps writing its trail after the prune.
        let t = app.issuer.id_token().sign();
        let resp = app
            .exchange(&t, ID_TOKEN, &[("audience", "inventory")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(app.audit_rows().await.len(), 2);
    }
}

#[tokio::test]
async fn a_refused_command_prints_one_line_and_never_a_backtrace() {
    let kind = backends()[0];
    let app = TestApp::spawn(kind).await;
    // A fresh next key is too young to promote: a user error, not a crash.
    let out = command(&["keys", "rotate"])
        .env("TESSERA_DATABASE__URL", app.database_url())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run tessera");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let message: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
        .collect();
    assert_eq!(message.len(), 1, "one line of error: {err}");
    assert!(message[0].starts_with("Error: "), "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("  0: "),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_unreadable_or_non_rsa_decryption_key_by_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let ec = dir.path().join("ec.pem");
    let key = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let pem = openssl::pkey::PKey::from_ec_key(key)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    std::fs::write(&ec, pem).unwrap();
    let missing = dir.path().join("missing.pem");
    for (file, why) in [(&missing, "cannot be read"), (&ec, "needs RSA")] {
        let out = command(&["serve"])
            .env("TESSERA_TRUST__DIR", REPO_TRUST)
            .env(
                "TESSERA_DATABASE__URL",
                format!("sqlite://{}", dir.path().join("t.db").display()),
            )
            .env("TESSERA_SERVER__LISTEN", "127.0.0.1:0")
            .env("TESSERA_SAML__DECRYPTION_KEY_FILE", file)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("saml.decryption_key_file {}", file.display());
        assert!(err.contains(&want) && err.contains(why), "{err}");
    }
}

/// SPEC §6: a stored signing key that cannot be decrypted (another replica's
/// `TESSERA_KEY_ENCRYPTION_KEY`, say) refuses the start with a clear message, never a
/// replica that starts and cannot sign.
#[test]
fn serve_refuses_to_start_when_a_stored_key_cannot_be_decrypted() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let kek = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let out = command(&["keys", "rotate", "--insecure-skip-publish-wait"])
        .env("TESSERA_DATABASE__URL", &db)
        .env("TESSERA_KEY_ENCRYPTION_KEY", kek(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command(&["serve"])
        .env("TESSERA_TRUST__DIR", REPO_TRUST)
        .env("TESSERA_DATABASE__URL", &db)
        .env("TESSERA_SERVER__LISTEN", "127.0.0.1:0")
        .env("TESSERA_KEY_ENCRYPTION_KEY", kek(2))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opening the signing keys"), "{err}");
    assert!(
        err.contains("cannot be decrypted: wrong TESSERA_KEY_ENCRYPTION_KEY"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
