//! The options of the `dev` commands. They live beside the code that reads them (clap
//! derives them; `cli` only names them), so `dev` never reaches up into `cli`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

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

#[derive(Debug, Args)]
pub struct DpopProofArgs {
    /// The client's private key (PEM: EC P-256, RSA or Ed25519); a new P-256 key is
    /// created there when the file does not exist.
    #[arg(long, default_value = "dpop-client.pem")]
    pub key: PathBuf,
    /// `htu`: the URL the proof is for (default: the token endpoint, server.issuer + /token).
    #[arg(long)]
    pub htu: Option<String>,
    /// `htm`: the HTTP method.
    #[arg(long, default_value = "POST")]
    pub htm: String,
    /// Mint this many proofs (distinct `jti`s), one per line (load tests).
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
