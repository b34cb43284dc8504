use super::*;
use crate::trust::{JwsAlg, OnBehalfOf, TokenType};
use std::path::Path;
use std::path::PathBuf;

use tempfile::TempDir;

const JWKS: &str = r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}"#;

const ISSUER: &str = r#"
kind = "oidc"
issuer = "https://idp.acme.example"
jwks_file = "acme.jwks.json"
audiences = ["tessera"]
"#;

const AUDIENCE: &str = r#"
audience = "https://api.orders.example"
resources = ["https://api.orders.example/"]
scopes = ["orders:read", "orders:write"]
lifetime = "10m"
claims = ["email"]
"#;

const CLIENT: &str = r#"
client_id = "orders-service"
auth = "client_secret_basic"
secret_hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
subject_issuers = ["acme", "local"]
audiences = ["https://api.orders.example"]
scopes = ["orders:read"]
"#;

/// A registry directory with one valid issuer (`acme`), audience (`orders`) and client
/// (`orders-service`), each replaceable.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        for sub in ["issuers", "clients", "audiences"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let f = Self { dir };
        f.write("issuers/acme.jwks.json", JWKS);
        f.write("issuers/acme.toml", ISSUER);
        f.write("audiences/orders.toml", AUDIENCE);
        f.write("clients/orders-service.toml", CLIENT);
        f
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.path().join(rel)).unwrap();
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn load(&self) -> Result<Registry, TrustError> {
        load_registry(self.path())
    }
    fn errors(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }
}

#[test]
fn the_fixture_loads() {
    let f = Fixture::new();
    let r = f.load().unwrap();
    let i = &r.issuers["acme"];
    assert_eq!(i.issuer, "https://idp.acme.example");
    assert_eq!(
        i.token_types,
        vec![TokenType::IdToken, TokenType::AccessToken],
        "SPEC §2's oidc default: jwt is opt-in"
    );
    let o = i.oidc().unwrap();
    assert_eq!(o.algorithms, JwsAlg::DEFAULT_ALLOWED.to_vec());
    assert_eq!(i.clock_skew, Duration::from_secs(60));
    assert_eq!(i.max_age, None);
    assert!(!i.one_time_use);
    assert!(o.require_access_token_typ);
    assert!(matches!(o.keys, KeySource::JwksFile { .. }));
    assert_eq!(i.mapping.subject_source(), "assertion.sub");
    let c = &r.clients["orders-service"];
    assert_eq!(c.audiences, vec!["orders".to_owned()]);
    assert_eq!(c.on_behalf_of, OnBehalfOf::Delegate);
    assert_eq!(c.actor_issuers, Vec::<String>::new());
    assert!(r
        .issuer_by_iss("https://idp.acme.example", crate::trust::IssuerKind::Oidc)
        .is_some());
    assert!(r
        .audience_by_resource("https://api.orders.example/")
        .is_some());
}

/// Each row: (reason, file to write, its content, expected file name, expected field,
/// expected words in the problem).
#[test]
fn every_loader_error_names_file_and_field() {
    let issuer_with = |extra: &str| format!("{ISSUER}{extra}");
    let client_with = |extra: &str| format!("{CLIENT}{extra}");
    let rows: Vec<(&str, &str, String, &str, &str, &str)> = vec![
        ("unknown issuer field", "issuers/acme.toml", issuer_with("colour = \"blue\"\n"), "acme.toml", "colour", "unknown field"),
        ("jwt key source on a saml issuer", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"saml\""), "acme.toml", "jwks_file", "not a setting of saml issuers"),
        ("saml issuer without certificates", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"\n", ""), "acme.toml", "metadata_file", "no key material"),
        ("jwks over plain http", "issuers/acme.toml", ISSUER.replace("jwks_file = \"acme.jwks.json\"", "jwks_uri = \"http://idp.acme.example/jwks\""), "acme.toml", "jwks_uri", "must be https"),
        ("saml metadata over plain http", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"", "metadata_url = \"http://idp.acme.example/md\""), "acme.toml", "metadata_url", "must be https"),
        ("saml setting on an oidc issuer", "issuers/acme.toml", issuer_with("allow_sha1 = true\n"), "acme.toml", "allow_sha1", "not a setting of oidc issuers"),
        ("jwt key source on an introspection issuer", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"introspection\""), "acme.toml", "jwks_file", "not a setting of introspection issuers"),
        ("introspection issuer without endpoint", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"introspection\"").replace("jwks_file = \"acme.jwks.json\"\n", "client_id = \"t\"\nclient_secret_env = \"TESSERA_TEST_NO_SUCH_VAR\"\n"), "acme.toml", "introspection_endpoint", "missing"),
        ("introspection secret not in the environment", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"introspection\"").replace("jwks_file = \"acme.jwks.json\"\n", "introspection_endpoint = \"https://as.example/introspect\"\nclient_id = \"t\"\nclient_secret_env = \"TESSERA_TEST_NO_SUCH_VAR\"\n"), "acme.toml", "client_secret_env", "TESSERA_TEST_NO_SUCH_VAR is not set"),
        ("introspection over plain http", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"introspection\"").replace("jwks_file = \"acme.jwks.json\"\n", "introspection_endpoint = \"http://as.example/introspect\"\nclient_id = \"t\"\nclient_secret_env = \"PATH\"\n"), "acme.toml", "introspection_endpoint", "must be https"),
        ("introspection auth unknown", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"introspection\"").replace("jwks_file = \"acme.jwks.json\"\n", "introspection_endpoint = \"https://as.example/introspect\"\nclient_id = \"t\"\nclient_secret_env = \"PATH\"\nintrospection_auth = \"private_key_jwt\"\n"), "acme.toml", "introspection_auth", "not supported"),
        ("unknown kind", "issuers/acme.toml", ISSUER.replace("\"oidc\"", "\"ldap\""), "acme.toml", "kind", "not an issuer kind"),
        ("missing kind", "issuers/acme.toml", ISSUER.replace("kind = \"oidc\"", ""), "acme.toml", "kind", "missing"),
        ("empty issuer", "issuers/acme.toml", ISSUER.replace("https://idp.acme.example", ""), "acme.toml", "issuer", "must not be empty"),
        ("missing issuer", "issuers/acme.toml", ISSUER.replace("issuer = \"https://idp.acme.example\"", ""), "acme.toml", "issuer", "missing field"),
        ("no key material", "issuers/acme.toml", ISSUER.replace("jwks_file = \"acme.jwks.json\"", ""), "acme.toml", "discovery_url", "exactly one"),
        ("two key sources", "issuers/acme.toml", issuer_with("jwks_uri = \"https://idp.acme.example/jwks\"\n"), "acme.toml", "jwks_uri", "exactly one"),
        ("relative discovery url", "issuers/acme.toml", ISSUER.replace("jwks_file = \"acme.jwks.json\"", "discovery_url = \"/.well-known/openid-configuration\""), "acme.toml", "discovery_url", "not an absolute URL"),
        ("ftp jwks uri", "issuers/acme.toml", ISSUER.replace("jwks_file = \"acme.jwks.json\"", "jwks_uri = \"ftp://idp.acme.example/jwks\""), "acme.toml", "jwks_uri", "http(s)"),
        ("jwks file missing", "issuers/acme.toml", ISSUER.replace("acme.jwks.json", "nope.json"), "acme.toml", "jwks_file", "cannot read"),
        ("jwks file not json", "issuers/acme.jwks.json", "not json".to_owned(), "acme.toml", "jwks_file", "not JSON"),
        ("jwks without keys", "issuers/acme.jwks.json", "{}".to_owned(), "acme.toml", "jwks_file", "no \"keys\" array"),
        ("jwks with empty keys", "issuers/acme.jwks.json", r#"{"keys":[]}"#.to_owned(), "acme.toml", "jwks_file", "empty"),
        ("jwks with a private key", "issuers/acme.jwks.json", r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}]}"#.to_owned(), "acme.toml", "jwks_file", "private"),
        ("empty audiences", "issuers/acme.toml", ISSUER.replace("[\"tessera\"]", "[]"), "acme.toml", "audiences", "at least one"),
        ("HS256", "issuers/acme.toml", issuer_with("algorithms = [\"RS256\", \"HS256\"]\n"), "acme.toml", "algorithms[1]", "\"HS256\" is not allowed: HMAC algorithms cannot be verified with a public key"),
        ("none", "issuers/acme.toml", issuer_with("algorithms = [\"none\"]\n"), "acme.toml", "algorithms[0]", "unsigned"),
        ("unknown alg", "issuers/acme.toml", issuer_with("algorithms = [\"XS1\"]\n"), "acme.toml", "algorithms[0]", "not a known JWS algorithm"),
        ("empty algorithms", "issuers/acme.toml", issuer_with("algorithms = []\n"), "acme.toml", "algorithms", "must not be empty"),
        ("bad token type", "issuers/acme.toml", issuer_with("token_types = [\"refresh\"]\n"), "acme.toml", "token_types[0]", "not a token type"),
        // A refresh token is verified only by introspection (SPEC §2).
        ("refresh_token for oidc", "issuers/acme.toml", issuer_with("token_types = [\"id_token\", \"refresh_token\"]\n"), "acme.toml", "token_types[1]", "verified by introspection"),
        ("refresh_token for saml", "issuers/acme.toml", format!("{}token_types = [\"refresh_token\"]\n", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"", "signing_cert_file = \"acme.pem\"")), "acme.toml", "token_types[0]", "only saml2"),
        ("id_token for introspection", "issuers/acme.toml", format!("{INTROSPECTION_ISSUER}token_types = [\"refresh_token\", \"id_token\"]\n"), "acme.toml", "token_types[1]", "only access_token and refresh_token"),
        ("saml2 for oidc", "issuers/acme.toml", issuer_with("token_types = [\"saml2\"]\n"), "acme.toml", "token_types[0]", "oidc"),
        ("bad clock skew", "issuers/acme.toml", issuer_with("clock_skew = \"soon\"\n"), "acme.toml", "clock_skew", "not a duration"),
        ("huge clock skew", "issuers/acme.toml", issuer_with("clock_skew = \"1h\"\n"), "acme.toml", "clock_skew", "more than"),
        ("integer clock skew", "issuers/acme.toml", issuer_with("clock_skew = 60\n"), "acme.toml", "clock_skew", "write it as a string"),
        ("bad max age", "issuers/acme.toml", issuer_with("max_age = \"12 parsecs\"\n"), "acme.toml", "max_age", "not a duration"),
        ("wrong type", "issuers/acme.toml", issuer_with("one_time_use = \"yes\"\n"), "acme.toml", "one_time_use", "invalid type"),
        ("demo key missing", "issuers/acme.toml", issuer_with("demo_signing_key_file = \"nope.pem\"\n"), "acme.toml", "demo_signing_key_file", "cannot read"),
        ("demo key not a key", "issuers/acme.toml", issuer_with("demo_signing_key_file = \"acme.jwks.json\"\n"), "acme.toml", "demo_signing_key_file", "not a PEM private key"),
        ("mapping subject", "issuers/acme.toml", issuer_with("[mapping]\nsubject = \"assertion.(\"\n"), "acme.toml", "mapping.subject", "does not compile"),
        ("mapping claim", "issuers/acme.toml", issuer_with("[mapping]\nclaims = { email = \"assertion..email\" }\n"), "acme.toml", "mapping.claims.email", "does not compile"),
        ("mapping reserved claim", "issuers/acme.toml", issuer_with("[mapping]\nclaims = { aud = \"assertion.aud\" }\n"), "acme.toml", "mapping.claims.aud", "tessera sets itself"),
        ("mapping condition", "issuers/acme.toml", issuer_with("[mapping]\ncondition = \"assertion.email.endsWith(\"\n"), "acme.toml", "mapping.condition", "does not compile"),
        ("mapping unknown field", "issuers/acme.toml", issuer_with("[mapping]\nsubjekt = \"assertion.sub\"\n"), "acme.toml", "mapping.subjekt", "unknown field"),
        // Mappings that parse but could only fail at run time (issue 13).
        ("mapping undeclared variable", "issuers/acme.toml", issuer_with("[mapping]\nsubject = \"sub\"\n"), "acme.toml", "mapping.subject", "undeclared variable `sub`: the token is `assertion`, e.g. `assertion.sub`"),
        ("mapping undeclared variable in a claim", "issuers/acme.toml", issuer_with("[mapping]\nclaims = { email = \"email.lowerAscii()\" }\n"), "acme.toml", "mapping.claims.email", "undeclared variable `email`"),
        ("mapping undeclared variable in the condition", "issuers/acme.toml", issuer_with("[mapping]\ncondition = \"assertion.groups.exists(g, group == 'admins')\"\n"), "acme.toml", "mapping.condition", "undeclared variable `group`"),
        ("mapping unknown function", "issuers/acme.toml", issuer_with("[mapping]\nclaims = { email = \"lower(assertion.email)\" }\n"), "acme.toml", "mapping.claims.email", "unknown function `lower()`"),
        ("mapping unknown method", "issuers/acme.toml", issuer_with("[mapping]\ncondition = \"assertion.email.endswith('@acme.example')\"\n"), "acme.toml", "mapping.condition", "did you mean `endsWith`"),
        ("mapping method called as a function", "issuers/acme.toml", issuer_with("[mapping]\nsubject = \"lowerAscii(assertion.sub)\"\n"), "acme.toml", "mapping.subject", "is a method, not a function"),
        ("mapping subject of a type that never works", "issuers/acme.toml", issuer_with("[mapping]\nsubject = \"assertion.sub == 'x'\"\n"), "acme.toml", "mapping.subject", "always yields a bool"),
        ("mapping constant subject", "issuers/acme.toml", issuer_with("[mapping]\nsubject = \"42\"\n"), "acme.toml", "mapping.subject", "does not read the token"),
        ("mapping subject as a TOML integer", "issuers/acme.toml", issuer_with("[mapping]\nsubject = 42\n"), "acme.toml", "mapping.subject", "invalid type"),
        ("mapping condition of a type that never works", "issuers/acme.toml", issuer_with("[mapping]\ncondition = \"'true'\"\n"), "acme.toml", "mapping.condition", "always yields a string"),
        ("mapping claim of bytes", "issuers/acme.toml", issuer_with("[mapping]\nclaims = { raw = \"b'abc'\" }\n"), "acme.toml", "mapping.claims.raw", "bytes"),
        ("saml mapping of a field the view never has", "issuers/acme.toml", format!("{}[mapping]\nclaims = {{ email = \"assertion.email\" }}\n", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"", "signing_cert_file = \"acme.pem\"")), "acme.toml", "mapping.claims.email", "has no field `email`"),
        ("saml subject from an attribute list", "issuers/acme.toml", format!("{}[mapping]\nsubject = \"assertion.attributes.uid\"\n", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"", "signing_cert_file = \"acme.pem\"")), "acme.toml", "mapping.subject", "a SAML attribute is a list of values"),
        ("saml string method on an attribute list", "issuers/acme.toml", format!("{}[mapping]\ncondition = \"assertion.attributes.groups.contains('staff')\"\n", ISSUER.replace("\"oidc\"", "\"saml\"").replace("jwks_file = \"acme.jwks.json\"", "signing_cert_file = \"acme.pem\"")), "acme.toml", "mapping.condition", "`'value' in list`"),
        ("local is reserved", "issuers/local.toml", ISSUER.replace("idp.acme", "idp.local"), "local.toml", "", "reserved"),
        ("bad id", "issuers/ac me.toml", ISSUER.replace("idp.acme", "idp.other"), "ac me.toml", "", "may only use"),
        ("toml syntax", "issuers/acme.toml", "kind = \"oidc\nissuer".to_owned(), "acme.toml", "", "line"),
        // audiences
        ("empty audience", "audiences/orders.toml", AUDIENCE.replace("\"https://api.orders.example\"\n", "\"\"\n"), "orders.toml", "audience", "must not be empty"),
        ("relative resource", "audiences/orders.toml", AUDIENCE.replace("[\"https://api.orders.example/\"]", "[\"/orders\"]"), "orders.toml", "resources[0]", "absolute URI"),
        ("resource with fragment", "audiences/orders.toml", AUDIENCE.replace("example/\"]", "example/#x\"]"), "orders.toml", "resources[0]", "fragment"),
        ("bad scope", "audiences/orders.toml", AUDIENCE.replace("\"orders:write\"", "\"orders write\""), "orders.toml", "scopes[1]", "RFC 6749"),
        ("duplicate scope", "audiences/orders.toml", AUDIENCE.replace("\"orders:write\"", "\"orders:read\""), "orders.toml", "scopes[1]", "twice"),
        ("bad lifetime", "audiences/orders.toml", AUDIENCE.replace("\"10m\"", "\"ten minutes\""), "orders.toml", "lifetime", "not a duration"),
        ("zero lifetime", "audiences/orders.toml", AUDIENCE.replace("\"10m\"", "\"0s\""), "orders.toml", "lifetime", "longer than zero"),
        ("duplicate audience", "audiences/orders2.toml", AUDIENCE.replace("example/\"]", "example/v2/\"]"), "orders2.toml", "audience", "already the audience"),
        ("duplicate resource", "audiences/orders2.toml", AUDIENCE.replace("audience = \"https://api.orders.example\"", "audience = \"orders-2\""), "orders2.toml", "resources[0]", "already a resource"),
        ("audience value is another id", "audiences/x.toml", "audience = \"orders\"\n".to_owned(), "x.toml", "audience", "also the id"),
        // clients
        ("client id mismatch", "clients/orders-service.toml", CLIENT.replace("client_id = \"orders-service\"", "client_id = \"billing\""), "orders-service.toml", "client_id", "file name"),
        ("private_key_jwt with a secret", "clients/orders-service.toml", CLIENT.replace("client_secret_basic", "private_key_jwt"), "orders-service.toml", "secret_hash", "has no secret"),
        ("private_key_jwt over plain http", "clients/orders-service.toml", CLIENT.replace("client_secret_basic", "private_key_jwt").replace("auth = ", "jwks_uri = \"http://keys.example/jwks\"\nauth = "), "orders-service.toml", "jwks_uri", "must be https"),
        ("jwks_file on a secret client", "clients/orders-service.toml", CLIENT.replace("auth = ", "jwks_file = \"x.json\"\nauth = "), "orders-service.toml", "jwks_file", "only used with"),
        ("tls_client_auth", "clients/orders-service.toml", CLIENT.replace("client_secret_basic", "tls_client_auth"), "orders-service.toml", "auth", "not supported yet"),
        ("tls_client_auth", "clients/orders-service.toml", CLIENT.replace("client_secret_basic", "tls_client_auth"), "orders-service.toml", "auth", "not supported yet"),
        ("unknown auth", "clients/orders-service.toml", CLIENT.replace("client_secret_basic", "password"), "orders-service.toml", "auth", "not a client authentication method"),
        ("plain secret", "clients/orders-service.toml", client_with("secret = \"hunter2\"\n"), "orders-service.toml", "secret", "use secret_hash"),
        ("bad hash prefix", "clients/orders-service.toml", CLIENT.replace("sha256:9f86", "sha512:9f86"), "orders-service.toml", "secret_hash", "64 lowercase hex"),
        ("uppercase hash", "clients/orders-service.toml", CLIENT.replace("sha256:9f86d", "sha256:9F86D"), "orders-service.toml", "secret_hash", "64 lowercase hex"),
        ("short hash", "clients/orders-service.toml", CLIENT.replace("0f00a08\"", "0f00a0\""), "orders-service.toml", "secret_hash", "64 lowercase hex"),
        ("no secret", "clients/orders-service.toml", CLIENT.replace("secret_hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"", ""), "orders-service.toml", "secret_hash", "missing"),
        ("hash and env", "clients/orders-service.toml", client_with("secret_env = \"X\"\n"), "orders-service.toml", "secret_hash", "both set"),
        ("missing env", "clients/orders-service.toml", CLIENT.replace("secret_hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"", "secret_env = \"TESSERA_TEST_SURELY_UNSET_SECRET\""), "orders-service.toml", "secret_env", "TESSERA_TEST_SURELY_UNSET_SECRET is not set"),
        ("unknown subject issuer", "clients/orders-service.toml", CLIENT.replace("[\"acme\", \"local\"]", "[\"acme\", \"partner\"]"), "orders-service.toml", "subject_issuers[1]", "\"partner\" is not an issuer"),
        ("no subject issuers", "clients/orders-service.toml", CLIENT.replace("[\"acme\", \"local\"]", "[]"), "orders-service.toml", "subject_issuers", "at least one"),
        ("unknown actor issuer", "clients/orders-service.toml", client_with("actor_issuers = [\"ghost\"]\n"), "orders-service.toml", "actor_issuers[0]", "\"ghost\" is not an issuer"),
        ("unknown audience", "clients/orders-service.toml", CLIENT.replace("[\"https://api.orders.example\"]", "[\"https://api.billing.example\"]"), "orders-service.toml", "audiences[0]", "not an audience"),
        ("no audiences", "clients/orders-service.toml", CLIENT.replace("[\"https://api.orders.example\"]", "[]"), "orders-service.toml", "audiences", "at least one"),
        ("same audience twice", "clients/orders-service.toml", CLIENT.replace("[\"https://api.orders.example\"]", "[\"https://api.orders.example\", \"orders\"]"), "orders-service.toml", "audiences[1]", "second time"),
        ("scope not offered", "clients/orders-service.toml", CLIENT.replace("[\"orders:read\"]", "[\"orders:read\", \"billing:read\"]"), "orders-service.toml", "scopes[1]", "not offered"),
        ("bad on_behalf_of", "clients/orders-service.toml", client_with("on_behalf_of = \"proxy\"\n"), "orders-service.toml", "on_behalf_of", "delegate"),
        ("bad max_lifetime", "clients/orders-service.toml", client_with("max_lifetime = \"forever\"\n"), "orders-service.toml", "max_lifetime", "not a duration"),
        ("empty subject_audiences", "clients/orders-service.toml", client_with("subject_audiences = []\n"), "orders-service.toml", "subject_audiences", "must not be empty"),
        ("unknown client field", "clients/orders-service.toml", client_with("redirect_uris = []\n"), "orders-service.toml", "redirect_uris", "unknown field"),
    ];
    for (why, file, content, want_file, want_field, want_words) in rows {
        let f = Fixture::new();
        f.write(file, &content);
        let errors = f.errors();
        let hit = errors.iter().find(|e| {
            let prefix = if want_field.is_empty() {
                format!("{want_file}: ")
            } else {
                format!("{want_file}: {want_field}: ")
            };
            e.contains(&prefix) && e.contains(want_words)
        });
        assert!(
            hit.is_some(),
            "{why}: expected {want_file} / {want_field:?} / {want_words:?}, got {errors:#?}"
        );
    }
}

/// An introspection issuer the fixture's client may use (its secret: `PATH`, always set).
const INTROSPECTION_ISSUER: &str = r#"
kind = "introspection"
issuer = "https://as.acme.example"
introspection_endpoint = "https://as.acme.example/introspect"
client_id = "tessera"
client_secret_env = "PATH"
audiences = ["tessera"]
"#;

#[test]
fn an_introspection_issuer_may_accept_refresh_tokens() {
    let f = Fixture::new();
    f.write(
        "issuers/acme.toml",
        &format!("{INTROSPECTION_ISSUER}token_types = [\"access_token\", \"refresh_token\"]\n"),
    );
    let r = f.load().unwrap();
    let i = &r.issuers["acme"];
    assert_eq!(
        i.token_types,
        vec![TokenType::AccessToken, TokenType::RefreshToken]
    );
    // Opt-in: the default stays access tokens only.
    f.write("issuers/acme.toml", INTROSPECTION_ISSUER);
    let r = f.load().unwrap();
    assert_eq!(r.issuers["acme"].token_types, vec![TokenType::AccessToken]);
}

#[test]
fn all_problems_are_reported_not_just_the_first() {
    let f = Fixture::new();
    f.write(
        "issuers/acme.toml",
        &format!("{ISSUER}algorithms = [\"HS256\", \"none\"]\nclock_skew = \"x\"\n"),
    );
    f.write(
        "audiences/orders.toml",
        &AUDIENCE.replace("\"10m\"", "\"y\""),
    );
    let errors = f.errors();
    assert!(errors.len() >= 4, "{errors:#?}");
}

#[test]
fn duplicate_iss_with_the_same_kind_is_refused() {
    let f = Fixture::new();
    f.write("issuers/acme2.jwks.json", JWKS);
    f.write(
        "issuers/acme2.toml",
        &ISSUER.replace("acme.jwks", "acme2.jwks"),
    );
    let errors = f.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("acme2.toml: issuer: ") && e.contains("acme.toml")),
        "{errors:#?}"
    );
}

#[test]
fn secret_env_is_hashed_at_load() {
    let var = "TESSERA_TEST_LOAD_SECRET_ENV";
    // Edition 2021: set_var is safe; the name is unique to this test.
    std::env::set_var(var, "s3cret");
    let f = Fixture::new();
    f.write(
        "clients/orders-service.toml",
        &CLIENT.replace(
            "secret_hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            &format!("secret_env = \"{var}\""),
        ),
    );
    let r = f.load().unwrap();
    let c = &r.clients["orders-service"];
    assert!(c.secret_matches("s3cret"));
    assert!(!c.secret_matches("s3cret "));
}

#[test]
fn empty_secret_env_is_refused() {
    let var = "TESSERA_TEST_LOAD_EMPTY_SECRET_ENV";
    std::env::set_var(var, "");
    let f = Fixture::new();
    f.write(
        "clients/orders-service.toml",
        &CLIENT.replace(
            "secret_hash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            &format!("secret_env = \"{var}\""),
        ),
    );
    let errors = f.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("secret_env: ") && e.contains(var) && e.contains("empty")),
        "{errors:#?}"
    );
}

#[test]
fn secret_matches_compares_the_sha256() {
    // The fixture's hash is sha256("test").
    let f = Fixture::new();
    let r = f.load().unwrap();
    let c = &r.clients["orders-service"];
    assert!(c.secret_matches("test"));
    assert!(!c.secret_matches("Test"));
    assert!(!c.secret_matches(""));
    assert!(format!("{c:?}").contains("secret_sha256: \"[redacted]\""));
}

#[test]
fn a_missing_issuer_is_reported_where_a_client_names_it() {
    let f = Fixture::new();
    f.remove("issuers/acme.toml");
    let errors = f.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("orders-service.toml: subject_issuers[0]: \"acme\"")),
        "{errors:#?}"
    );
}

#[test]
fn a_missing_audience_is_reported_where_a_client_names_it() {
    let f = Fixture::new();
    f.remove("audiences/orders.toml");
    let errors = f.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("orders-service.toml: audiences[0]: ")),
        "{errors:#?}"
    );
}

#[test]
fn other_directories_and_files_are_ignored() {
    let f = Fixture::new();
    f.write("examples/broken.toml", "this is not toml = = =");
    f.write("issuers/examples/broken.toml", "this is not toml = = =");
    f.write("issuers/README.md", "# notes");
    f.write("issuers/acme.toml.bak", "junk");
    let r = f.load().unwrap();
    // Exactly the fixture's three entries: nothing from the other files.
    let ids = |m: Vec<&str>| m.into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        ids(r.issuers.keys().map(|k| k.as_str()).collect()),
        ["acme"]
    );
    assert_eq!(
        ids(r.clients.keys().map(|k| k.as_str()).collect()),
        ["orders-service"]
    );
    let audience_ids: Vec<&str> = r.audiences.keys().map(|k| k.as_str()).collect();
    assert_eq!(audience_ids, ["orders"]);
}

#[test]
fn a_missing_registry_directory_is_an_error() {
    let err = load_registry(Path::new("/nonexistent/tessera-trust")).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn kinds_may_share_an_iss_only_when_they_differ_so_oidc_twice_is_refused_but_distinct_iss_load() {
    let f = Fixture::new();
    f.write("issuers/other.jwks.json", JWKS);
    f.write(
        "issuers/other.toml",
        &ISSUER
            .replace("acme.jwks", "other.jwks")
            .replace("idp.acme.example", "idp.other.example"),
    );
    let r = f.load().unwrap();
    assert_eq!(r.issuers.len(), 2);
}

#[test]
fn mapping_and_options_are_parsed() {
    let f = Fixture::new();
    f.write(
        "issuers/acme.toml",
        &format!(
            "{ISSUER}token_types = [\"access_token\"]\nalgorithms = [\"ES256\", \"EdDSA\"]\n\
             clock_skew = \"30s\"\nmax_age = \"12h\"\none_time_use = false\n\
             require_access_token_typ = false\n\
             [mapping]\nsubject = \"assertion.uid\"\nclaims = {{ email = \"assertion.email\" }}\n\
             condition = \"assertion.email.endsWith('@acme.example')\"\n"
        ),
    );
    let r = f.load().unwrap();
    let i = &r.issuers["acme"];
    assert_eq!(i.token_types, vec![TokenType::AccessToken]);
    let o = i.oidc().unwrap();
    assert_eq!(o.algorithms, vec![JwsAlg::ES256, JwsAlg::EdDSA]);
    assert_eq!(i.clock_skew, Duration::from_secs(30));
    assert_eq!(i.max_age, Some(Duration::from_secs(12 * 3600)));
    assert!(!i.one_time_use);
    assert!(!o.require_access_token_typ);
    let claims = serde_json::json!({"uid": "u1", "email": "a@acme.example"});
    let mapped = i.mapping.apply(claims.as_object().unwrap()).unwrap();
    assert_eq!(mapped.subject, "u1");
    assert_eq!(mapped.claims["email"], "a@acme.example");
}

#[test]
fn describe_prints_one_line_per_entry() {
    let f = Fixture::new();
    let r = f.load().unwrap();
    let lines = describe(&r);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "issuer    acme  oidc  https://idp.acme.example  jwks_file=acme.jwks.json  algorithms=RS256,PS256,ES256"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("client    orders-service  client_secret_basic"));
    assert!(lines[2].starts_with("audience  orders  https://api.orders.example"));
}

/// Issue 13: the listing says what the registry files say — field names and values as
/// written (`client_secret_basic`, `private_key_jwt`, `id_token`, `EdDSA`) — never Rust
/// names (`ClientSecretBasic`, `IdToken`, `Delegate`).
#[test]
fn describe_uses_the_registry_words() {
    let f = Fixture::new();
    f.write(
        "issuers/acme.toml",
        &format!(
            "{ISSUER}token_types = [\"id_token\", \"jwt\"]\nalgorithms = [\"ES256\", \"EdDSA\"]\n\
             require_access_token_typ = false\nmax_age = \"12h\"\none_time_use = true\n\
             [mapping]\nclaims = {{ email = \"assertion.email\" }}\ncondition = \"assertion.email_verified == true\"\n"
        ),
    );
    f.write("clients/signed.jwks.json", JWKS);
    f.write(
        "clients/signed.toml",
        "client_id = \"signed\"\nauth = \"private_key_jwt\"\njwks_file = \"signed.jwks.json\"\n\
         subject_issuers = [\"acme\"]\nactor_issuers = [\"local\"]\naudiences = [\"orders\"]\n\
         scopes = [\"orders:read\"]\non_behalf_of = \"impersonate\"\nmax_lifetime = \"5m\"\n",
    );
    let mut lines = describe(&f.load().unwrap());
    // The repository's demo registry: a saml issuer with metadata_file, an introspection
    // issuer, and tessera's own `local` entry.
    lines.extend(describe(
        &load_registry_for(&repo_trust(), Some("https://tessera.test")).unwrap(),
    ));
    let all = lines.join("\n");
    for words in [
        "issuer    acme  oidc  https://idp.acme.example  jwks_file=acme.jwks.json  algorithms=ES256,EdDSA  require_access_token_typ=false  audiences=tessera  token_types=id_token,jwt  max_age=12h  one_time_use=true  mapping.claims=email  mapping.condition",
        "client    signed  private_key_jwt  jwks_file=signed.jwks.json  subject_issuers=acme  actor_issuers=local  audiences=orders  scopes=orders:read  on_behalf_of=impersonate  max_lifetime=5m",
        "client    orders-service  client_secret_basic  subject_issuers=acme,local  audiences=orders  scopes=orders:read  on_behalf_of=delegate",
        "audience  orders  https://api.orders.example  scopes=orders:read,orders:write  claims=email  resources=https://api.orders.example/  lifetime=10m",
        "issuer    demo-saml  saml  https://demo-saml-idp.tessera.test  metadata_file=demo-saml.metadata.xml  certs=1",
        "issuer    demo-opaque  introspection  https://opaque-as.demo.tessera.test  introspection_endpoint=http://127.0.0.1:8091/introspect  client_id=tessera-demo  introspection_auth=client_secret_basic  cache_ttl=1m",
        "issuer    local  oidc  https://tessera.test  keys=tessera  algorithms=ES256,RS256,PS256,EdDSA",
    ] {
        assert!(all.contains(words), "missing {words:?} in\n{all}");
    }
    for internal in [
        "ClientSecret",
        "PrivateKeyJwt",
        "Delegate",
        "Impersonate",
        "IdToken",
        "AccessToken",
        "Saml2",
        "Jwks",
        "Discovery",
        "Pinned",
        "Some(",
        "{",
    ] {
        assert!(!all.contains(internal), "{internal:?} in\n{all}");
    }
}

// ----------------------------------------------------------------------------------------
// The repository's own trust/ directory

fn repo_trust() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("trust")
}

#[test]
fn the_repository_demo_registry_loads_cleanly() {
    let r = load_registry(&repo_trust()).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.issuers.contains_key("demo-oidc"));
    assert!(r.clients.contains_key("demo-client"));
    assert!(r.audiences.contains_key("orders-api"));
    assert!(r.audiences.contains_key("inventory"));
    let demo = &r.issuers["demo-oidc"];
    assert!(demo.demo_signing_key_file.is_some());
    let saml = &r.issuers["demo-saml"];
    assert!(saml.saml().is_some() && saml.demo_signing_key_file.is_some());
    let opaque = &r.issuers["demo-opaque"];
    assert!(opaque.introspection().is_some() && opaque.demo_signing_key_file.is_some());
    assert_eq!(r.demo_issuers().count(), 3);
    assert!(r.clients["demo-backend"].secret_matches("backend-secret"));
    assert_eq!(
        r.clients["demo-backend"].subject_issuers,
        vec!["local".to_owned()]
    );
    let c = &r.clients["demo-client"];
    assert!(c.secret_matches("demo-secret"));
    assert_eq!(
        c.audiences,
        vec!["orders-api".to_owned(), "inventory".to_owned()]
    );
    assert_eq!(c.max_lifetime, Some(Duration::from_secs(15 * 60)));
    let lines = describe(&r);
    assert!(lines
        .iter()
        .any(|l| l.contains("demo-oidc") && l.contains("DEMO")));
}

/// Writes the example issuer at `path` into `f`. A `metadata_file` it names is what the
/// operator downloads from the IdP: the demo SAML metadata stands in for it, with the
/// example's entity id.
fn write_example_issuer(f: &Fixture, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    f.write(&format!("issuers/{name}"), &text);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    if let Some(file) = value("metadata_file") {
        let demo = std::fs::read_to_string(repo_trust().join("issuers/demo-saml.metadata.xml"))
            .unwrap()
            .replace(
                "https://demo-saml-idp.tessera.test\"",
                &format!("{}\"", value("issuer").unwrap()),
            );
        f.write(&format!("issuers/{file}"), &demo);
    }
}

/// Each example must load as shipped (placeholders are syntactically valid values):
/// copy it into a fresh registry, with the issuers/audiences a client example names.
#[test]
fn every_example_loads_when_copied_into_a_registry() {
    let examples = repo_trust().join("examples");
    let list = |sub: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(examples.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        v.sort();
        v
    };
    let issuers = list("issuers");
    let clients = list("clients");
    assert!(issuers.len() >= 6, "{issuers:?}");
    assert!(!clients.is_empty());
    for path in &issuers {
        let f = Fixture::new();
        write_example_issuer(&f, path);
        f.load()
            .unwrap_or_else(|e| panic!("example {} does not load:\n{e}", path.display()));
    }
    // All issuer examples together: the Google pair shares a kind but not an iss.
    let f = Fixture::new();
    for path in &issuers {
        write_example_issuer(&f, path);
    }
    for path in &clients {
        let name = path.file_name().unwrap().to_str().unwrap();
        f.write(
            &format!("clients/{name}"),
            &std::fs::read_to_string(path).unwrap(),
        );
    }
    let r = f
        .load()
        .unwrap_or_else(|e| panic!("the examples together do not load:\n{e}"));
    assert_eq!(r.clients.len(), clients.len() + 1);
}

/// SPEC §4.1 `metadata_signing_cert_file`, with real IdP metadata: Entra ID's verifies with
/// its federation signing certificate; AD FS's (edited after signing) and PingFederate's
/// (signed by another key) do not; Okta's is unsigned.
#[test]
fn signed_metadata_is_verified_when_a_metadata_signing_cert_is_named() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/saml/metadata");
    let read = |name: &str| std::fs::read_to_string(fixtures.join(name)).unwrap();
    let case = |stem: &str, entity: &str, signer: &str| {
        let f = Fixture::new();
        f.write(
            &format!("issuers/{stem}.xml"),
            &read(&format!("{stem}.xml")),
        );
        f.write("issuers/md-signer.pem", &read(signer));
        f.write(
            "issuers/idp.toml",
            &format!(
                "kind = \"saml\"\nissuer = \"{entity}\"\nmetadata_file = \"{stem}.xml\"\nmetadata_signing_cert_file = \"md-signer.pem\"\n"
            ),
        );
        f.errors()
    };
    let entra = "https://sts.windows.net/70186da4-868e-4177-9155-949d9fd1af15/";
    assert_eq!(
        case(
            "entra-id-federationmetadata-2019",
            entra,
            "entra-id-federationmetadata-2019.signing.pem"
        ),
        Vec::<String>::new()
    );
    let adfs = case(
        "adfs-federationmetadata-2016",
        "http://adfs01.dev.coveo.com/adfs/services/trust",
        "adfs-federationmetadata-2016.signing.pem",
    );
    assert!(
        adfs.iter()
            .any(|e| e.contains("metadata_file") && e.contains("does not verify")),
        "{adfs:?}"
    );
    let ping = case(
        "pingfederate-metadata-2019",
        "evaluation",
        "pingfederate-metadata-2019.signing.pem",
    );
    assert!(
        ping.iter().any(|e| e.contains("does not verify")),
        "{ping:?}"
    );
    // Entra's metadata checked with another certificate (AD FS's) fails too.
    let wrong = case(
        "entra-id-federationmetadata-2019",
        entra,
        "adfs-federationmetadata-2016.signing.pem",
    );
    assert!(
        wrong.iter().any(|e| e.contains("does not verify")),
        "{wrong:?}"
    );
    let okta = case(
        "okta-metadata-2014",
        "http://www.okta.com/kw4xhzicLKWVTHEZNFXP",
        "entra-id-federationmetadata-2019.signing.pem",
    );
    assert!(okta.iter().any(|e| e.contains("is not signed")), "{okta:?}");
}

#[test]
fn a_metadata_signing_cert_without_metadata_is_named() {
    let f = Fixture::new();
    let pem = std::fs::read_to_string(repo_trust().join("issuers/demo-saml.metadata.xml")).unwrap();
    let cert_b64 = pem
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|s| s.split("</ds:X509Certificate>").next())
        .unwrap();
    f.write(
        "issuers/idp.pem",
        &format!("-----BEGIN CERTIFICATE-----\n{cert_b64}\n-----END CERTIFICATE-----\n"),
    );
    f.write(
        "issuers/idp.toml",
        "kind = \"saml\"\nissuer = \"https://idp.example\"\nsigning_cert_file = \"idp.pem\"\nmetadata_signing_cert_file = \"idp.pem\"\n",
    );
    let errs = f.errors();
    assert!(
        errs.iter()
            .any(|e| e.contains("metadata_signing_cert_file") && e.contains("no metadata to check")),
        "{errs:?}"
    );
}

/// Issue 7: tessera's own tokens are local tokens; an oidc entry for its own issuer would
/// let them in as foreign tokens (no narrowing, no revocation).
#[test]
fn an_oidc_entry_for_the_brokers_own_issuer_is_refused() {
    let f = Fixture::new();
    f.write(
        "issuers/acme.toml",
        &ISSUER.replace("https://idp.acme.example", "https://tessera.example/"),
    );
    assert!(load_registry(f.path()).is_ok(), "no identity: not checked");
    let err = load_registry_for(f.path(), Some("https://tessera.example"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("acme.toml") && err.contains("issuer") && err.contains("own server.issuer"),
        "{err}"
    );
}

/// A self-signed certificate for `key`, PEM.
fn cert_pem_for(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> String {
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "weak-idp").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(key, openssl::hash::MessageDigest::sha256()).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

fn rsa_cert_pem(bits: u32) -> String {
    let key = openssl::rsa::Rsa::generate(bits).unwrap();
    cert_pem_for(&openssl::pkey::PKey::from_rsa(key).unwrap())
}

/// Security review F-3: a SAML signing key below 2048-bit RSA (1024 with the issuer's
/// `allow_rsa_1024`; never below), or EC off the NIST prime curves, is refused at load,
/// naming the file, the field and the certificate: pinned and in metadata alike.
#[test]
fn weak_saml_signing_keys_are_refused_at_load() {
    let secp256k1 = {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP256K1).unwrap();
        let key = openssl::ec::EcKey::generate(&group).unwrap();
        cert_pem_for(&openssl::pkey::PKey::from_ec_key(key).unwrap())
    };
    let b64 = |pem: &str| -> String { pem.lines().filter(|l| !l.starts_with("-----")).collect() };
    let metadata = |pem: &str| {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://weak.example"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            b64(pem)
        )
    };
    let rsa512 = rsa_cert_pem(512);
    let rsa1024 = rsa_cert_pem(1024);
    let cases: [(&str, &str, &str, String, &str); 6] = [
        (
            "signing_cert_file",
            "",
            "weak.pem",
            rsa512.clone(),
            "certificate #0 has a 512-bit RSA key; at least 2048 bits",
        ),
        (
            "signing_cert_file",
            "allow_rsa_1024 = true\n",
            "weak.pem",
            rsa512.clone(),
            "512-bit RSA key; at least 1024 bits",
        ),
        (
            "signing_cert_file",
            "",
            "weak.pem",
            rsa1024.clone(),
            "1024-bit RSA key; at least 2048 bits are required (allow_rsa_1024",
        ),
        (
            "signing_cert_file",
            "",
            "weak.pem",
            secp256k1,
            "curve other than P-256",
        ),
        (
            "metadata_file",
            "",
            "weak.xml",
            metadata(&rsa512),
            "signing certificate #0 has a 512-bit RSA key",
        ),
        (
            "metadata_file",
            "",
            "weak.xml",
            metadata(&rsa1024),
            "signing certificate #0 has a 1024-bit RSA key",
        ),
    ];
    for (field, extra, file, content, words) in cases {
        let f = Fixture::new();
        f.write(&format!("issuers/{file}"), &content);
        f.write(
            "issuers/weak.toml",
            &format!(
                "kind = \"saml\"\nissuer = \"https://weak.example\"\n{field} = \"{file}\"\n{extra}"
            ),
        );
        let errs = f.errors();
        assert!(
            errs.iter().any(|e| e.contains("weak.toml")
                && e.contains(field)
                && e.contains(file)
                && e.contains(words)),
            "{field} {extra}: {errs:?}"
        );
    }
    // A legacy IdP's 1024-bit key loads only with the opt-in.
    for (field, file, content) in [
        ("signing_cert_file", "weak.pem", rsa1024.clone()),
        ("metadata_file", "weak.xml", metadata(&rsa1024)),
    ] {
        let f = Fixture::new();
        f.write(&format!("issuers/{file}"), &content);
        f.write(
            "issuers/weak.toml",
            &format!("kind = \"saml\"\nissuer = \"https://weak.example\"\n{field} = \"{file}\"\nallow_rsa_1024 = true\n"),
        );
        assert_eq!(f.errors(), Vec::<String>::new(), "{field}");
    }
}
