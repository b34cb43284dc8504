//! Command line (clap derive): `serve`, `migrate`, `trust check|test`, `keys list|rotate`,
//! `clients new-secret`, `audit prune|tail|search`, `explain`, `dev …`.

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
    /// Print the newest audit events, oldest first; with --follow, keep printing events
    /// as they are committed.
    Tail(AuditTailArgs),
    /// Find audit events, newest first. Filters combine with AND; text filters match the
    /// stored value exactly.
    Search(AuditSearchArgs),
}

#[derive(Debug, Args)]
pub struct AuditTailArgs {
    /// Keep printing new events (checks every 500 ms) until interrupted or the output is
    /// closed.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many of the newest events to print first.
    #[arg(short = 'n', long = "lines", default_value_t = 20)]
    pub lines: u32,
    /// One JSON object per line, the audit row's columns as keys.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditSearchArgs {
    /// The client (its registry id; for a failed authentication, the id presented).
    #[arg(long)]
    pub client: Option<String>,
    /// The mapped subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// The registry id of the subject token's issuer.
    #[arg(long)]
    pub issuer: Option<String>,
    /// The audience of the issued token.
    #[arg(long)]
    pub audience: Option<String>,
    /// The (outermost) actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// issued, refused or error for /token; ok, refused or error for /introspect and
    /// /revoke.
    #[arg(long, value_enum)]
    pub outcome: Option<OutcomeArg>,
    /// The failing step of a refusal (the audit `reason`), e.g. scope or expiry; one of the
    /// closed set of step names (README, "Why was this refused?").
    #[arg(long, value_name = "STEP", value_parser = parse_step)]
    pub step: Option<String>,
    /// Events at or after this time: RFC 3339 (2026-12-06T09:30:00Z, or with an offset
    /// such as +02:00), or a duration such as 15m, 2h or 7d meaning that long ago.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<TimeArg>,
    /// Events before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<TimeArg>,
    /// At most this many events (the newest).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub limit: u32,
    /// One JSON object per line, the audit row's columns as keys.
    #[arg(long)]
    pub json: bool,
}

/// The audit `outcome` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutcomeArg {
    Issued,
    Refused,
    Error,
    Ok,
}

impl From<OutcomeArg> for crate::audit::AuditOutcome {
    fn from(o: OutcomeArg) -> Self {
        match o {
            OutcomeArg::Issued => Self::Issued,
            OutcomeArg::Refused => Self::Refused,
            OutcomeArg::Error => Self::Error,
            OutcomeArg::Ok => Self::Ok,
        }
    }
}

/// A `--since`/`--until` value: a point in time, or how long before now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// Unix seconds and the nanoseconds past them.
    At {
        secs: i64,
        nanos: u32,
    },
    Ago(Duration),
}

impl TimeArg {
    /// The Unix second a bound starts at, given `now`. Audit times are whole seconds, so
    /// a fractional time rounds outwards: down for `since` (inclusive), up for `until`
    /// (exclusive), and no event of the second named is left out.
    pub fn resolve(self, now: i64, upper: bool) -> i64 {
        match self {
            TimeArg::At { secs, nanos } => secs.saturating_add(i64::from(upper && nanos > 0)),
            TimeArg::Ago(d) => now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

/// `--since`/`--until`: a duration (15m, 2h, 7d) or an RFC 3339 time with its zone.
pub fn parse_time(s: &str) -> Result<TimeArg, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(TimeArg::Ago(d));
    }
    parse_rfc3339(s)
        .map(|(secs, nanos)| TimeArg::At { secs, nanos })
        .ok_or_else(|| {
            "expected an RFC 3339 time such as 2026-12-06T09:30:00Z (or +02:00 for the \
         zone), or a duration such as 15m, 2h or 7d"
                .to_owned()
        })
}

/// RFC 3339 `date-time` (§5.6): `Z` or a numeric offset is required, fractions allowed.
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let (local, offset_secs) = if let Some(local) = s.strip_suffix(['Z', 'z']) {
        (local, 0)
    } else {
        let at = s.len().checked_sub(6)?;
        let (local, zone) = (s.get(..at)?, s.get(at..)?);
        let sign = match zone.as_bytes() {
            [b'+', _, _, b':', _, _] => 1,
            [b'-', _, _, b':', _, _] => -1,
            _ => return None,
        };
        let hours: i64 = zone.get(1..3)?.parse().ok()?;
        let minutes: i64 = zone.get(4..6)?.parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (local, sign * (hours * 3600 + minutes * 60))
    };
    // humantime reads the date and time (zone-less "weak" form, as UTC); the offset
    // is applied here. It also takes a space for the `T`, as RFC 3339 §5.6 notes allows.
    if !local.contains(['T', 't', ' ']) {
        return None;
    }
    let utc = humantime::parse_rfc3339_weak(&local.replace('t', "T")).ok()?;
    let since_epoch = utc.duration_since(std::time::UNIX_EPOCH).ok()?;
    let secs = i64::try_from(since_epoch.as_secs()).ok()?;
    Some((secs.checked_sub(offset_secs)?, since_epoch.subsec_nanos()))
}

/// `--step`: one of the closed set of step names (SPEC §5, `exchange::Step`).
fn parse_step(s: &str) -> Result<String, String> {
    match crate::exchange::Step::from_name(s) {
        Some(step) => Ok(step.name().to_owned()),
        None => Err(format!(
            "not a step; one of: {}",
            crate::exchange::Step::ALL
                .map(crate::exchange::Step::name)
                .join(", ")
        )),
    }
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
    /// Mint RFC 9449 DPoP proofs with a client key (created when absent), one per line;
    /// the key's thumbprint (`cnf.jkt` of bound tokens) goes to standard error.
    DpopProof(DpopProofArgs),
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
    /// The subject token's type: access_token, id_token, jwt, saml2, refresh_token (or the
    /// full URN).
    #[arg(long, value_parser = token_type_urn)]
    pub subject_token_type: String,
    /// A file holding the actor token.
    #[arg(long, requires = "actor_token_type")]
    pub actor_token: Option<PathBuf>,
    #[arg(long, value_parser = token_type_urn, requires = "actor_token")]
    pub actor_token_type: Option<String>,
    /// RFC 8693 `requested_token_type` (access_token, jwt, or refresh_token for a refresh
    /// token beside the access token).
    #[arg(long, value_parser = token_type_urn)]
    pub requested_token_type: Option<String>,
    /// A file holding the request's RFC 9449 DPoP proof (`tessera dev dpop-proof`): the
    /// proof is checked and the token would be bound to its key.
    #[arg(long)]
    pub dpop: Option<PathBuf>,
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
    const NAMES: [&str; 5] = ["access_token", "id_token", "jwt", "saml2", "refresh_token"];
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

pub use crate::dev::args::{
    DpopProofArgs, IdTokenArgs, OpaqueTokenArgs, SamlAssertionArgs, SamlSign,
};
