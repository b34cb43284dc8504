//! Command line (clap derive): `serve`, `migrate`, `trust check`, `keys list|rotate`,
//! `clients new-secret`, `audit prune|tail|search`, `dev id-token`, `dev inspect`.

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
    Serve,
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
    /// The failing step of a refusal (the audit `reason`), e.g. expired.
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

/// `--step`: a step's name is a lowercase label (`expired`, `client_secret_mismatch`).
fn parse_step(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(s.to_owned())
    } else {
        Err(
            "expected a step name such as expired or client_secret_mismatch \
             (lowercase letters, digits and _)"
                .to_owned(),
        )
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
pub struct IdTokenArgs {
    /// Registry id of the demo issuer.
    #[arg(long, default_value = "demo-oidc")]
    pub issuer: String,
    /// `sub` claim.
    #[arg(long, default_value = "alice")]
    pub sub: String,
    /// `aud` claim (repeatable; default: the issuer's first audience).
    #[arg(long)]
    pub aud: Vec<String>,
    /// Extra claim as name=value; the value is parsed as JSON when it is JSON, else taken
    /// as a string (repeatable), e.g. --claim email=alice@example.com --claim 'groups=["a"]'.
    #[arg(long = "claim", value_parser = parse_claim)]
    pub claims: Vec<(String, serde_json::Value)>,
    /// Lifetime, e.g. 5m, 1h.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,
    /// JOSE `typ` header ("JWT" for an ID token, "at+jwt" to mint an access token).
    #[arg(long, default_value = "JWT")]
    pub typ: String,
    /// Registry directory (default: trust.dir from the configuration).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Mint this many tokens, one per line, with subjects `<sub>-1` … `<sub>-N` (load tests).
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, Args)]
pub struct OpaqueTokenArgs {
    /// Registry id of the demo introspection issuer.
    #[arg(long, default_value = "demo-opaque")]
    pub issuer: String,
    /// `sub` the introspection endpoint reports.
    #[arg(long, default_value = "alice")]
    pub sub: String,
    /// Space-separated `scope`.
    #[arg(long, default_value = "openid profile")]
    pub scope: String,
    /// Extra claim as name=value (JSON when it parses as JSON; repeatable).
    #[arg(long = "claim", value_parser = parse_claim)]
    pub claims: Vec<(String, serde_json::Value)>,
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,
    /// Registry directory (default: trust.dir from the configuration).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Mint this many tokens, subjects `<sub>-1` … `<sub>-N` (load tests).
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, Args)]
pub struct SamlAssertionArgs {
    /// Registry id of the demo SAML issuer.
    #[arg(long, default_value = "demo-saml")]
    pub issuer: String,
    /// The Subject's NameID.
    #[arg(long, default_value = "alice@example.com")]
    pub name_id: String,
    /// The NameID Format.
    #[arg(
        long,
        default_value = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    )]
    pub name_id_format: String,
    /// Attribute as name=value (repeatable; repeat a name for several values), e.g.
    /// --attribute email=alice@example.com --attribute groups=buyers --attribute groups=staff.
    #[arg(long = "attribute", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// AudienceRestriction audience (repeatable; default: the issuer's first audience,
    /// else saml.entity_id).
    #[arg(long)]
    pub audience: Vec<String>,
    /// Bearer SubjectConfirmationData Recipient and Response Destination (default: the
    /// token endpoint, server.issuer + /token).
    #[arg(long)]
    pub recipient: Option<String>,
    /// Lifetime (Conditions and SubjectConfirmationData NotOnOrAfter), e.g. 5m.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,
    /// Add <OneTimeUse/> to the Conditions.
    #[arg(long)]
    pub one_time_use: bool,
    /// Wrap the assertion in a samlp:Response.
    #[arg(long)]
    pub response: bool,
    /// What carries the signature (response and both imply --response).
    #[arg(long, value_enum, default_value_t = SamlSign::Assertion)]
    pub sign: SamlSign,
    /// Print the XML instead of its base64url encoding.
    #[arg(long)]
    pub xml: bool,
    /// Registry directory (default: trust.dir from the configuration).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Mint this many assertions (distinct IDs), one per line (load tests).
    #[arg(long, default_value_t = 1)]
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamlSign {
    Assertion,
    Response,
    Both,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected name=value, got {s:?}")),
    }
}

fn parse_claim(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got {s:?}"))?;
    if k.is_empty() {
        return Err("claim name is empty".into());
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}
