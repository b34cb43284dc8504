//! Command line (clap derive): `serve`, `migrate`, `trust check|test`, `keys list|rotate`,
//! `clients new-secret`, `audit prune`, `dev id-token`, `dev inspect`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Federation broker: RFC 8693 token exchange across trust domains"
)]
pub struct Cli {
    /// Configuration file (default: ./tessera.toml when present).
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (applies pending migrations first).
    Serve {
        /// A candidate registry decided beside the live one: every exchange is also
        /// decided against it, never changing the answer; each disagreement is counted
        /// (tessera_shadow_disagreements_total) and logged.
        #[arg(long, value_name = "DIR")]
        shadow_trust: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Trust registry commands.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Signing key commands.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Client commands.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Audit trail commands.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the /token pipeline for a request without signing, storing or auditing
    /// anything, and print every step with its verdict. Exit 0: would issue; 1: refused;
    /// 2: usage error.
    Explain(ExplainArgs),
    /// Developer helpers: mint subject tokens with the demo issuers' keys.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Load and validate the registry; one line per entry; non-zero exit on any error.
    Check {
        /// Registry directory (default: trust.dir from the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also fetch every remote key source now (OIDC discovery and JWKS, jwks_uri, SAML
        /// metadata_url, introspection endpoint reachability), with the configured outbound
        /// limits; one line per source; non-zero exit if any fails.
        #[arg(long)]
        online: bool,
    },
    /// Run the registry's regression cases (`<dir>/tests/*.toml`: a token, a request, a
    /// clock time and the expected outcome each) through the /token pipeline, offline, on
    /// a throwaway database. One line per case, then `N passed, M failed`; exit 1 on any
    /// failure, 2 on a usage error.
    Test {
        /// Registry directory (default: trust.dir from the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state.
    List,
    /// Promote the next key to current, retire the current one, pre-publish a new next.
    Rotate {
        /// Rotate even if the next key was published less than 30 s ago. Replicas that
        /// have not yet re-read the keys will not publish the new current key until they do
        /// (within `tokens.key_refresh_interval`): only for a single replica or tests.
        #[arg(long)]
        insecure_skip_publish_wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Print a fresh 256-bit secret and the `secret_hash` line for the client file.
    NewSecret,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Delete audit events older than the given age (retention). Safe beside running
    /// replicas: rows go in short transactions, oldest first.
    Prune {
        /// Age of the newest event to delete, e.g. 90d. At least `tokens.max_lifetime`:
        /// the trail of a token that may still be valid is kept.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Mint an ID token signed by a demo issuer's key (`demo_signing_key_file`).
    IdToken(IdTokenArgs),
    /// Mint a signed SAML 2.0 assertion from a demo SAML issuer's key, printed as
    /// base64url (a `saml2` subject token or `saml2-bearer` assertion).
    SamlAssertion(SamlAssertionArgs),
    /// Mint opaque access tokens of the demo authorization server (`demo-opaque`), one per
    /// line: only its introspection endpoint (`tessera dev opaque-as`) can read them.
    OpaqueToken(OpaqueTokenArgs),
    /// Run the demo authorization server's RFC 7662 introspection endpoint, which the
    /// demo registry's `demo-opaque` issuer calls.
    OpaqueAs {
        /// Registry id of the demo introspection issuer.
        #[arg(long, default_value = "demo-opaque")]
        issuer: String,
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: std::net::SocketAddr,
        /// Registry directory (default: trust.dir from the configuration).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Decode a JWT and verify its signature against a JWKS URL (e.g. tessera's /jwks.json).
    Inspect {
        /// JWKS to verify against, e.g. http://127.0.0.1:8080/jwks.json
        #[arg(long)]
        jwks_url: String,
        /// The token (or `-` to read it from standard input).
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The client the request is decided for (its credentials are not needed).
    #[arg(long)]
    pub client: String,
    /// RFC 8693 `audience` (repeatable).
    #[arg(long)]
    pub audience: Vec<String>,
    /// RFC 8707 `resource` (repeatable).
    #[arg(long)]
    pub resource: Vec<String>,
    /// Space-separated `scope`.
    #[arg(long)]
    pub scope: Option<String>,
    /// The subject token's type: access_token, id_token, jwt, saml2 (or the full URN).
    #[arg(long, value_parser = token_type_urn)]
    pub subject_token_type: String,
    /// A file holding the actor token.
    #[arg(long, requires = "actor_token_type")]
    pub actor_token: Option<PathBuf>,
    #[arg(long, value_parser = token_type_urn, requires = "actor_token")]
    pub actor_token_type: Option<String>,
    /// RFC 8693 `requested_token_type` (access_token or jwt).
    #[arg(long, value_parser = token_type_urn)]
    pub requested_token_type: Option<String>,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fetch nothing: only key files (and tessera's own keys) verify; an issuer whose keys
    /// are remote fails at the `key` step.
    #[arg(long)]
    pub offline: bool,
    /// The file holding the subject token, or `-` for standard input.
    pub subject_token: PathBuf,
}

/// `id_token` → `urn:ietf:params:oauth:token-type:id_token`; a URN as given.
fn token_type_urn(s: &str) -> Result<String, String> {
    const NAMES: [&str; 4] = ["access_token", "id_token", "jwt", "saml2"];
    if s.starts_with("urn:") {
        Ok(s.to_owned())
    } else if NAMES.contains(&s) {
        Ok(format!("urn:ietf:params:oauth:token-type:{s}"))
    } else {
        Err(format!(
            "expected one of {} or a token type URN",
            NAMES.join(", ")
        ))
    }
}

pub use crate::dev::args::{IdTokenArgs, OpaqueTokenArgs, SamlAssertionArgs, SamlSign};
