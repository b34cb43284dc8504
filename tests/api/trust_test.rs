//! `tessera trust test` as an operator and CI run it: the real binary on the demo
//! registry's own cases, on copies where an edit flips a decision, on a malformed case,
//! and on a registry whose issuers' keys are remote (the case supplies them; nothing is
//! fetched).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const REPO_TRUST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/trust");

/// `trust test --dir <dir>`, from a neutral directory with no inherited configuration.
fn trust_test(dir: &Path) -> Output {
    Command::new(BIN)
        .args(["trust", "test", "--dir"])
        .arg(dir)
        .env_remove("TESSERA_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run tessera")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The line of the case file `name`.
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("/tests/{name}:")))
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the demo registry, its cases included.
fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(REPO_TRUST), dir.path());
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// CI runs the demo registry's cases: every issuer has an issued and a refused case, and
/// they all pass.
#[test]
fn the_demo_registry_passes_its_own_cases() {
    let out = trust_test(Path::new(REPO_TRUST));
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text.lines().last().unwrap();
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert_eq!(
        passed,
        text.lines().filter(|l| l.starts_with("ok   ")).count()
    );
    for case in [
        "oidc-orders-read.toml",
        "oidc-scope-not-allowed.toml",
        "saml-inventory.toml",
        "saml-wrong-recipient.toml",
        "opaque-orders.toml",
        "opaque-inactive.toml",
        "local-second-hop.toml",
        "local-scope-widening.toml",
    ] {
        assert!(line_of(&text, case).starts_with("ok   "), "{text}");
    }
    // The cases are no registry entries: `trust check` still accepts the directory.
    let check = Command::new(BIN)
        .args(["trust", "check", "--dir", REPO_TRUST])
        .env_remove("TESSERA_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// An edit of the registry that changes a decision fails the case that expects the old
/// one, naming it with expected versus got (step and error on both sides).
#[test]
fn a_registry_edit_that_flips_a_case_fails_it_by_name() {
    // The client loses orders:read: the issued case is now refused at scope.
    let dir = demo_copy();
    edit(
        &dir.path().join("clients/demo-client.toml"),
        r#"scopes = ["orders:read", "orders:write", "inventory:read"]"#,
        r#"scopes = ["orders:write", "inventory:read"]"#,
    );
    let out = trust_test(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = line_of(&text, "oidc-orders-read.toml");
    assert!(
        line.starts_with("FAIL ")
            && line.contains("expected issued, got refused at scope (invalid_scope: "),
        "{line}"
    );
    assert!(
        line_of(&text, "saml-inventory.toml").starts_with("ok   "),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().ends_with(" failed") && !text.contains(" 0 failed"),
        "{text}"
    );

    // The orders API gains inventory:read: the refused case is now issued.
    let dir = demo_copy();
    edit(
        &dir.path().join("audiences/orders-api.toml"),
        r#"scopes = ["orders:read", "orders:write"]"#,
        r#"scopes = ["orders:read", "orders:write", "inventory:read"]"#,
    );
    let out = trust_test(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        line_of(&text, "oidc-scope-not-allowed.toml"),
        format!(
            "FAIL {}/tests/oidc-scope-not-allowed.toml: expected refused at scope \
             (invalid_scope), got issued",
            dir.path().display()
        )
    );

    // The inventory audience's lifetime doubles: the issued case's claims still match,
    // its lifetime does not.
    let dir = demo_copy();
    edit(
        &dir.path().join("audiences/inventory.toml"),
        r#"lifetime = "5m""#,
        r#"lifetime = "10m""#,
    );
    let text = stdout(&trust_test(dir.path()));
    let line = line_of(&text, "saml-inventory.toml");
    assert!(
        line.ends_with("saml-inventory.toml: issued, but lifetime: expected 5m, got 10m"),
        "{line}"
    );
}

/// A malformed case is a failure that names the file and the field; the others still run.
#[test]
fn a_malformed_case_is_named_with_its_field() {
    let dir = demo_copy();
    std::fs::write(
        dir.path().join("tests/typo.toml"),
        "description = \"typo\"\nnow = 2030-01-01T12:00:00Z\n[request]\nclient = \"demo-client\"\n\
         [subject]\nissuer = \"demo-oidc\"\n[expect]\noutcome = \"refused\"\nstep = \"scopes\"\n\
         error = \"invalid_scope\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/unknown-issuer.toml"),
        "description = \"who\"\nnow = 2030-01-01T12:00:00Z\n[request]\nclient = \"demo-client\"\n\
         [subject]\nissuer = \"nobody\"\n[expect]\noutcome = \"issued\"\n",
    )
    .unwrap();
    let out = trust_test(dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = line_of(&text, "typo.toml");
    assert!(
        line.starts_with("FAIL ")
            && line.contains("typo.toml: expect.step: \"scopes\" is not a step"),
        "{line}"
    );
    let line = line_of(&text, "unknown-issuer.toml");
    assert!(
        line.ends_with("unknown-issuer.toml: subject.issuer: no issuer \"nobody\" in the registry"),
        "{line}"
    );
    assert!(
        line_of(&text, "oidc-orders-read.toml").starts_with("ok   "),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().ends_with(" passed, 2 failed"),
        "{text}"
    );
}

/// Issuers whose keys and answers are remote: the case supplies them and they are seeded
/// into the case's verifier; nothing is ever fetched (the issuers' URLs point at a
/// listener that must see no connection). A case that supplies nothing fails, saying so.
#[test]
fn remote_keys_come_with_the_case_and_nothing_is_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["issuers", "clients", "audiences", "tests/keys"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let demo = Path::new(REPO_TRUST).join("issuers");
    let copy = |from: &str, to: &str| {
        std::fs::copy(demo.join(from), root.join(to)).unwrap();
    };
    copy("demo-oidc.DEMO-PRIVATE-KEY.pem", "tests/keys/acme.pem");
    copy("demo-oidc.jwks.json", "tests/keys/acme.jwks.json");
    copy("demo-saml.DEMO-PRIVATE-KEY.pem", "tests/keys/partner.pem");
    let metadata = std::fs::read_to_string(demo.join("demo-saml.metadata.xml"))
        .unwrap()
        .replace(
            "https://demo-saml-idp.tessera.test",
            "https://partner.example/saml",
        );
    let cert = metadata
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|rest| rest.split("</ds:X509Certificate>").next())
        .unwrap()
        .split_whitespace()
        .collect::<String>();
    std::fs::write(
        root.join("tests/keys/partner.crt"),
        format!("-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    std::fs::write(root.join("tests/keys/partner-metadata.xml"), metadata).unwrap();
    let write = |path: &str, text: String| std::fs::write(root.join(path), text).unwrap();
    write(
        "issuers/acme.toml",
        format!(
            "kind = \"oidc\"\nissuer = \"https://idp.acme.example\"\n\
             jwks_uri = \"{base}/jwks\"\naudiences = [\"tessera\"]\n"
        ),
    );
    write(
        "issuers/partner.toml",
        format!(
            "kind = \"saml\"\nissuer = \"https://partner.example/saml\"\n\
             metadata_url = \"{base}/metadata\"\n"
        ),
    );
    write(
        "issuers/opaque.toml",
        format!(
            "kind = \"introspection\"\nissuer = \"https://as.example\"\n\
             introspection_endpoint = \"{base}/introspect\"\nclient_id = \"tessera\"\n\
             client_secret_env = \"TESSERA_TRUST_TEST_UNUSED_SECRET\"\naudiences = [\"tessera\"]\n\
             token_types = [\"access_token\", \"refresh_token\"]\n"
        ),
    );
    write(
        "clients/app.toml",
        "client_id = \"app\"\nauth = \"client_secret_basic\"\n\
         secret_hash = \"sha256:cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf\"\n\
         subject_issuers = [\"acme\", \"partner\", \"opaque\"]\naudiences = [\"inventory\"]\n\
         scopes = [\"inventory:read\"]\n"
            .to_owned(),
    );
    write(
        "audiences/inventory.toml",
        "audience = \"inventory\"\nscopes = [\"inventory:read\"]\nlifetime = \"5m\"\n".to_owned(),
    );
    let case = |name: &str, body: &str| {
        write(
            &format!("tests/{name}.toml"),
            format!(
                "description = \"{name}\"\nnow = 2030-01-01T12:00:00Z\n[request]\nclient = \"app\"\n{body}"
            ),
        );
    };
    case(
        "acme-keys",
        "[subject]\nissuer = \"acme\"\nkey_file = \"keys/acme.pem\"\nclaims = { sub = \"alice\" }\n\
         [keys.acme]\njwks_file = \"keys/acme.jwks.json\"\n\
         [expect]\noutcome = \"issued\"\nclaims = { sub = \"alice\" }\n",
    );
    case(
        "acme-no-keys",
        "[subject]\nissuer = \"acme\"\nkey_file = \"keys/acme.pem\"\nclaims = { sub = \"alice\" }\n\
         [expect]\noutcome = \"issued\"\n",
    );
    case(
        "partner-bearer",
        "grant = \"saml2_bearer\"\n[assertion]\nissuer = \"partner\"\nkey_file = \"keys/partner.pem\"\n\
         name_id = \"bob@partner.example\"\n\
         [keys.partner]\nmetadata_file = \"keys/partner-metadata.xml\"\n\
         [expect]\noutcome = \"issued\"\nclaims = { sub = \"bob@partner.example\" }\n",
    );
    case(
        "partner-cert",
        "[subject]\nissuer = \"partner\"\nkey_file = \"keys/partner.pem\"\n\
         name_id = \"bob@partner.example\"\n[keys.partner]\ncert_file = \"keys/partner.crt\"\n\
         [expect]\noutcome = \"issued\"\nclaims = { sub = \"bob@partner.example\" }\n",
    );
    case(
        "opaque-answered",
        "[subject]\nissuer = \"opaque\"\n[subject.introspection]\nactive = true\nsub = \"carol\"\n\
         aud = \"tessera\"\nexp = 2030-01-01T12:03:00Z\n\
         [expect]\noutcome = \"issued\"\nlifetime = \"3m\"\nclaims = { sub = \"carol\" }\n",
    );
    // A partner's refresh token (SPEC §2): the answer is the endpoint's about it asked as
    // a refresh token.
    case(
        "opaque-refresh",
        "subject_token_type = \"refresh_token\"\n\
         [subject]\nissuer = \"opaque\"\n[subject.introspection]\nactive = true\nsub = \"dave\"\n\
         aud = \"tessera\"\nexp = 2030-01-01T12:03:00Z\n\
         [expect]\noutcome = \"issued\"\nclaims = { sub = \"dave\" }\n",
    );
    let out = Command::new(BIN)
        .args(["trust", "test", "--dir"])
        .arg(root)
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA_TRUST_TEST_UNUSED_SECRET", "never-sent")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for ok in [
        "acme-keys.toml",
        "partner-bearer.toml",
        "opaque-answered.toml",
        "opaque-refresh.toml",
    ] {
        assert!(line_of(&text, ok).starts_with("ok   "), "{text}");
    }
    let line = line_of(&text, "acme-no-keys.toml");
    assert!(
        line.contains("expected issued, got error at key (temporarily_unavailable: ")
            && line.contains("trust test is offline")
            && line.contains("[keys.<issuer>]"),
        "{line}"
    );
    assert!(text.ends_with("5 passed, 1 failed\n"), "{text}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("trust test connected to an issuer: {other:?}"),
    }
}

/// The README's case examples (OIDC and SAML) are cases that pass on the demo registry.
#[test]
fn the_readme_case_examples_pass_on_the_demo_registry() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme
        .find("## Testing a registry")
        .expect("the README section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let examples: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("description = "))
        .collect();
    assert_eq!(examples.len(), 2, "an OIDC and a SAML example");
    let dir = demo_copy();
    for entry in std::fs::read_dir(dir.path().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (i, example) in examples.iter().enumerate() {
        std::fs::write(dir.path().join(format!("tests/readme-{i}.toml")), example).unwrap();
    }
    let out = trust_test(dir.path());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with("2 passed, 0 failed\n"), "{text}");
}
