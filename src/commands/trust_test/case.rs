//! A `trust test` case file (`<dir>/tests/*.toml`): a token, a request, a clock time and
//! the expected outcome, parsed and checked before anything runs. What needs the registry
//! (which kind of token an issuer mints) is checked when the token is made (`token.rs`);
//! every problem found here names the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::cli::SamlSign;
use crate::clock::UnixTime;
use crate::exchange::request::{GRANT_JWT_BEARER, GRANT_SAML2_BEARER, GRANT_TOKEN_EXCHANGE};
use crate::exchange::{ErrorCode, Step};
use crate::trust::TokenType;

/// A case file is a page of TOML; anything this large is a mistake.
const MAX_CASE_BYTES: u64 = 256 * 1024;
/// A minted token's lifetime when the case does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// What is wrong with a case file: the field (`request.scope`, `expect.step`) and the
/// problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    pub field: Option<String>,
    pub problem: String,
}

impl CaseError {
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            problem: problem.into(),
        }
    }

    fn file(problem: impl Into<String>) -> Self {
        Self {
            field: None,
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// One case, checked.
#[derive(Debug)]
pub struct Case {
    pub description: String,
    /// The broker's clock during the exchange.
    pub now: UnixTime,
    pub request: Request,
    /// The subject token (token exchange) or the assertion (the bearer grants).
    pub subject: TokenSpec,
    pub actor: Option<TokenSpec>,
    /// Public keys of issuers whose keys are remote, in place of the network.
    pub keys: Vec<SuppliedKeys>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    TokenExchange,
    JwtBearer,
    Saml2Bearer,
}

impl Grant {
    pub const fn urn(self) -> &'static str {
        match self {
            Self::TokenExchange => GRANT_TOKEN_EXCHANGE,
            Self::JwtBearer => GRANT_JWT_BEARER,
            Self::Saml2Bearer => GRANT_SAML2_BEARER,
        }
    }

    /// The table that holds the grant's token.
    pub const fn token_table(self) -> &'static str {
        match self {
            Self::TokenExchange => "subject",
            Self::JwtBearer | Self::Saml2Bearer => "assertion",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::TokenExchange, Self::JwtBearer, Self::Saml2Bearer]
            .into_iter()
            .find(|g| g.urn() == s || g.label() == s)
    }

    const fn label(self) -> &'static str {
        match self {
            Self::TokenExchange => "token_exchange",
            Self::JwtBearer => "jwt_bearer",
            Self::Saml2Bearer => "saml2_bearer",
        }
    }
}

/// The `/token` request, less the tokens.
#[derive(Debug)]
pub struct Request {
    pub client: String,
    pub grant: Grant,
    /// A URN; `None`: the one the subject's issuer kind implies.
    pub subject_token_type: Option<String>,
    pub actor_token_type: Option<String>,
    pub audience: Vec<String>,
    pub resource: Vec<String>,
    pub scope: Option<String>,
    pub requested_token_type: Option<String>,
    /// Send an RFC 9449 proof, made with a key of the run's own.
    pub dpop: bool,
}

/// A token of the case: read from a file or minted at test time.
#[derive(Debug)]
pub struct TokenSpec {
    /// `subject`, `assertion` or `actor`: where it is written, for messages.
    pub table: &'static str,
    /// The registry id of its issuer (`local` for tessera's own tokens).
    pub issuer: Option<String>,
    pub source: TokenSource,
    /// What the issuer's introspection endpoint answers about it (introspection issuers).
    pub introspection: Option<Map<String, Value>>,
}

#[derive(Debug)]
pub enum TokenSource {
    File(PathBuf),
    Mint(Box<Mint>),
}

/// How to mint a token; which fields apply depends on the issuer's kind.
#[derive(Debug, Default)]
pub struct Mint {
    pub key_file: Option<PathBuf>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub issued_at: Option<UnixTime>,
    pub lifetime: Option<Duration>,
    pub claims: Option<Map<String, Value>>,
    pub saml: Option<SamlSpec>,
}

impl Mint {
    pub fn lifetime_secs(&self) -> i64 {
        i64::try_from(self.lifetime.unwrap_or(DEFAULT_LIFETIME).as_secs()).unwrap_or(i64::MAX)
    }
}

/// A SAML assertion's particulars.
#[derive(Debug, Default)]
pub struct SamlSpec {
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub audiences: Vec<String>,
    pub recipient: Option<String>,
    pub one_time_use: bool,
    pub response: bool,
    pub sign: Option<SamlSign>,
}

#[derive(Debug)]
pub struct SuppliedKeys {
    /// The registry id of the issuer.
    pub issuer: String,
    pub material: KeyMaterial,
}

#[derive(Debug)]
pub enum KeyMaterial {
    /// A JWKS, for a `discovery_url` / `jwks_uri` issuer.
    JwksFile(PathBuf),
    /// SAML metadata, for a `metadata_url` issuer.
    MetadataFile(PathBuf),
    /// PEM signing certificates, for a `metadata_url` issuer.
    CertFile(PathBuf),
}

#[derive(Debug)]
pub enum Expect {
    Issued(IssuedExpect),
    /// Refused (the caller's fault) or error (an issuer's or the broker's) at `step`.
    NotIssued {
        outcome: &'static str,
        step: Step,
        error: ErrorCode,
    },
}

/// What the would-be token must say; unnamed claims are not compared.
#[derive(Debug, Default)]
pub struct IssuedExpect {
    pub claims: Map<String, Value>,
    /// Claims that must not be there.
    pub absent: Vec<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    /// `exp` − `iat`.
    pub lifetime: Option<Duration>,
    /// The algorithm it is signed with (the audience's `signing_alg`, else the default).
    pub signing_alg: Option<String>,
    /// `Bearer` or `DPoP`.
    pub token_type: Option<String>,
    /// Whether a refresh token comes with it.
    pub refresh_token: Option<bool>,
}

// ---- The file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    description: String,
    now: toml::Value,
    request: RawRequest,
    subject: Option<RawToken>,
    assertion: Option<RawToken>,
    actor: Option<RawToken>,
    #[serde(default)]
    keys: BTreeMap<String, RawKeys>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    client: String,
    grant: Option<String>,
    subject_token_type: Option<String>,
    actor_token_type: Option<String>,
    audience: Option<OneOrMany>,
    resource: Option<OneOrMany>,
    scope: Option<String>,
    requested_token_type: Option<String>,
    #[serde(default)]
    dpop: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawToken {
    issuer: Option<String>,
    file: Option<String>,
    key_file: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    issued_at: Option<toml::Value>,
    lifetime: Option<String>,
    claims: Option<toml::Table>,
    name_id: Option<String>,
    name_id_format: Option<String>,
    attributes: Option<BTreeMap<String, OneOrMany>>,
    audiences: Option<Vec<String>>,
    recipient: Option<String>,
    one_time_use: Option<bool>,
    response: Option<bool>,
    sign: Option<String>,
    introspection: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    jwks_file: Option<String>,
    metadata_file: Option<String>,
    cert_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    outcome: String,
    step: Option<String>,
    error: Option<String>,
    claims: Option<toml::Table>,
    absent: Option<Vec<String>>,
    scope: Option<String>,
    audience: Option<String>,
    lifetime: Option<String>,
    signing_alg: Option<String>,
    token_type: Option<String>,
    refresh_token: Option<bool>,
}

// ---- Reading ---------------------------------------------------------------------------

impl Case {
    /// Reads and checks the case file at `path`; relative paths in it are resolved
    /// against its directory.
    pub fn read(path: &Path) -> Result<Self, CaseError> {
        let meta =
            std::fs::metadata(path).map_err(|e| CaseError::file(format!("cannot read: {e}")))?;
        if meta.len() > MAX_CASE_BYTES {
            return Err(CaseError::file(format!(
                "{} bytes, over the {MAX_CASE_BYTES}-byte limit of a case file",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| CaseError::file(format!("cannot read: {e}")))?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, dir)
    }

    /// Parses case text; relative paths are resolved against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, CaseError> {
        let raw: RawCase = toml::from_str(text).map_err(|e| {
            let (field, problem) = crate::trust::load::describe_toml_error(text, &e);
            CaseError { field, problem }
        })?;
        let request = request(raw.request)?;
        let table = request.grant.token_table();
        let (subject, other) = match request.grant {
            Grant::TokenExchange => (raw.subject, raw.assertion.map(|_| "assertion")),
            Grant::JwtBearer | Grant::Saml2Bearer => {
                (raw.assertion, raw.subject.map(|_| "subject"))
            }
        };
        if let Some(other) = other {
            return Err(CaseError::field(
                other,
                format!(
                    "a {} request carries its token in [{table}], not [{other}]",
                    request.grant.label()
                ),
            ));
        }
        let subject = subject.ok_or_else(|| {
            CaseError::field(
                table,
                format!("missing: the {} request's token", request.grant.label()),
            )
        })?;
        if request.grant != Grant::TokenExchange {
            if raw.actor.is_some() {
                return Err(CaseError::field(
                    "actor",
                    "only a token exchange has an actor token",
                ));
            }
            if request.subject_token_type.is_some() || request.requested_token_type.is_some() {
                return Err(CaseError::field(
                    "request",
                    "subject_token_type and requested_token_type belong to a token exchange \
                     (a bearer grant's assertion type is the grant's)",
                ));
            }
        }
        // An actor's type defaults like a subject's; only a type without an actor is wrong.
        if raw.actor.is_none() && request.actor_token_type.is_some() {
            return Err(CaseError::field(
                "request.actor_token_type",
                "set without an [actor] token",
            ));
        }
        Ok(Self {
            description: raw.description,
            now: instant(&raw.now, "now")?,
            subject: token(subject, table, dir)?,
            actor: raw.actor.map(|a| token(a, "actor", dir)).transpose()?,
            keys: raw
                .keys
                .into_iter()
                .map(|(issuer, k)| supplied_keys(issuer, k, dir))
                .collect::<Result<_, _>>()?,
            expect: expect(raw.expect)?,
            request,
        })
    }
}

fn request(raw: RawRequest) -> Result<Request, CaseError> {
    let grant = match raw.grant.as_deref() {
        None => Grant::TokenExchange,
        Some(g) => Grant::parse(g).ok_or_else(|| {
            CaseError::field(
                "request.grant",
                format!("{g:?} is not one of token_exchange, jwt_bearer, saml2_bearer"),
            )
        })?,
    };
    let urn = |field: &str, value: Option<String>| {
        value
            .map(|v| token_type_urn(&v).ok_or_else(|| {
                CaseError::field(
                    format!("request.{field}"),
                    format!("{v:?} is not one of access_token, id_token, jwt, saml2, refresh_token or a token type URN"),
                )
            }))
            .transpose()
    };
    Ok(Request {
        client: raw.client,
        grant,
        subject_token_type: urn("subject_token_type", raw.subject_token_type)?,
        actor_token_type: urn("actor_token_type", raw.actor_token_type)?,
        audience: raw.audience.map(OneOrMany::into_vec).unwrap_or_default(),
        resource: raw.resource.map(OneOrMany::into_vec).unwrap_or_default(),
        scope: raw.scope,
        requested_token_type: urn("requested_token_type", raw.requested_token_type)?,
        dpop: raw.dpop,
    })
}

/// `id_token` → its URN; a URN as written (an unsupported one is the pipeline's to refuse).
fn token_type_urn(s: &str) -> Option<String> {
    if s.starts_with("urn:") {
        return Some(s.to_owned());
    }
    [
        TokenType::AccessToken,
        TokenType::IdToken,
        TokenType::Jwt,
        TokenType::Saml2,
        TokenType::RefreshToken,
    ]
    .into_iter()
    .find(|t| t.label() == s)
    .map(|t| t.urn().to_owned())
}

fn token(raw: RawToken, table: &'static str, dir: &Path) -> Result<TokenSpec, CaseError> {
    let field = |name: &str| format!("{table}.{name}");
    let introspection = raw
        .introspection
        .as_ref()
        .map(|t| json_table(t, &field("introspection")))
        .transpose()?;
    let RawToken {
        issuer,
        file,
        key_file,
        kid,
        typ,
        issued_at,
        lifetime,
        claims,
        name_id,
        name_id_format,
        attributes,
        audiences,
        recipient,
        one_time_use,
        response,
        sign,
        introspection: _,
    } = raw;
    if let Some(file) = file {
        let minting = [
            ("key_file", key_file.is_some()),
            ("kid", kid.is_some()),
            ("typ", typ.is_some()),
            ("issued_at", issued_at.is_some()),
            ("lifetime", lifetime.is_some()),
            ("claims", claims.is_some()),
            ("name_id", name_id.is_some()),
            ("name_id_format", name_id_format.is_some()),
            ("attributes", attributes.is_some()),
            ("audiences", audiences.is_some()),
            ("recipient", recipient.is_some()),
            ("one_time_use", one_time_use.is_some()),
            ("response", response.is_some()),
            ("sign", sign.is_some()),
        ];
        if let Some((name, _)) = minting.iter().find(|(_, set)| *set) {
            return Err(CaseError::field(
                field(name),
                "the token comes from `file`: nothing is minted, so there is nothing to set",
            ));
        }
        if introspection.is_some() && issuer.is_none() {
            return Err(CaseError::field(
                field("issuer"),
                "missing: an introspection answer belongs to an issuer",
            ));
        }
        return Ok(TokenSpec {
            table,
            issuer,
            source: TokenSource::File(dir.join(file)),
            introspection,
        });
    }
    let issuer = issuer.ok_or_else(|| {
        CaseError::field(
            field("issuer"),
            "missing: the registry id of the issuer that mints the token (`local` for \
             tessera's own), or `file` for a token read from a file",
        )
    })?;
    let saml_set = name_id.is_some()
        || name_id_format.is_some()
        || attributes.is_some()
        || audiences.is_some()
        || recipient.is_some()
        || one_time_use.is_some()
        || response.is_some()
        || sign.is_some();
    let saml = saml_set
        .then(|| -> Result<SamlSpec, CaseError> {
            Ok(SamlSpec {
                name_id,
                name_id_format,
                attributes: attributes
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(name, values)| {
                        values
                            .into_vec()
                            .into_iter()
                            .map(move |v| (name.clone(), v))
                    })
                    .collect(),
                audiences: audiences.unwrap_or_default(),
                recipient,
                one_time_use: one_time_use.unwrap_or(false),
                response: response.unwrap_or(false),
                sign: sign
                    .map(|s| match s.as_str() {
                        "assertion" => Ok(SamlSign::Assertion),
                        "response" => Ok(SamlSign::Response),
                        "both" => Ok(SamlSign::Both),
                        _ => Err(CaseError::field(
                            field("sign"),
                            format!("{s:?} is not one of assertion, response, both"),
                        )),
                    })
                    .transpose()?,
            })
        })
        .transpose()?;
    let mint = Mint {
        key_file: key_file.map(|f| dir.join(f)),
        kid,
        typ,
        issued_at: issued_at
            .map(|t| instant(&t, &field("issued_at")))
            .transpose()?,
        lifetime: lifetime
            .map(|l| duration(&l, &field("lifetime")))
            .transpose()?,
        claims: claims
            .map(|c| json_table(&c, &field("claims")))
            .transpose()?,
        saml,
    };
    Ok(TokenSpec {
        table,
        issuer: Some(issuer),
        source: TokenSource::Mint(Box::new(mint)),
        introspection,
    })
}

fn supplied_keys(issuer: String, raw: RawKeys, dir: &Path) -> Result<SuppliedKeys, CaseError> {
    let material = match (raw.jwks_file, raw.metadata_file, raw.cert_file) {
        (Some(f), None, None) => KeyMaterial::JwksFile(dir.join(f)),
        (None, Some(f), None) => KeyMaterial::MetadataFile(dir.join(f)),
        (None, None, Some(f)) => KeyMaterial::CertFile(dir.join(f)),
        _ => {
            return Err(CaseError::field(
                format!("keys.{issuer}"),
                "set exactly one of jwks_file (oidc), metadata_file or cert_file (saml)",
            ))
        }
    };
    Ok(SuppliedKeys { issuer, material })
}

fn expect(raw: RawExpect) -> Result<Expect, CaseError> {
    let issued_only = [
        ("claims", raw.claims.is_some()),
        ("absent", raw.absent.is_some()),
        ("scope", raw.scope.is_some()),
        ("audience", raw.audience.is_some()),
        ("lifetime", raw.lifetime.is_some()),
        ("signing_alg", raw.signing_alg.is_some()),
        ("token_type", raw.token_type.is_some()),
        ("refresh_token", raw.refresh_token.is_some()),
    ];
    match raw.outcome.as_str() {
        "issued" => {
            for (name, set) in [("step", raw.step.is_some()), ("error", raw.error.is_some())] {
                if set {
                    return Err(CaseError::field(
                        format!("expect.{name}"),
                        "an issued token has no failing step or error",
                    ));
                }
            }
            Ok(Expect::Issued(IssuedExpect {
                claims: raw
                    .claims
                    .map(|c| json_table(&c, "expect.claims"))
                    .transpose()?
                    .unwrap_or_default(),
                absent: raw.absent.unwrap_or_default(),
                scope: raw.scope,
                audience: raw.audience,
                lifetime: raw
                    .lifetime
                    .map(|l| duration(&l, "expect.lifetime"))
                    .transpose()?,
                signing_alg: raw.signing_alg,
                token_type: raw.token_type,
                refresh_token: raw.refresh_token,
            }))
        }
        outcome @ ("refused" | "error") => {
            if let Some((name, _)) = issued_only.iter().find(|(_, set)| *set) {
                return Err(CaseError::field(
                    format!("expect.{name}"),
                    format!("only an issued token has {name}; this case expects {outcome}"),
                ));
            }
            let step = raw.step.ok_or_else(|| {
                CaseError::field(
                    "expect.step",
                    format!("missing: the step a {outcome} case fails at"),
                )
            })?;
            let step = Step::from_name(&step).ok_or_else(|| {
                let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
                CaseError::field(
                    "expect.step",
                    format!("{step:?} is not a step (one of {})", names.join(", ")),
                )
            })?;
            let error = raw.error.ok_or_else(|| {
                CaseError::field(
                    "expect.error",
                    "missing: the RFC error code /token answers with (invalid_request, ...)",
                )
            })?;
            let error = ErrorCode::TOKEN_ENDPOINT
                .into_iter()
                .find(|c| c.as_str() == error)
                .ok_or_else(|| {
                    let codes: Vec<&str> = ErrorCode::TOKEN_ENDPOINT
                        .iter()
                        .map(|c| c.as_str())
                        .collect();
                    CaseError::field(
                        "expect.error",
                        format!(
                            "{error:?} is not an error code of /token (one of {})",
                            codes.join(", ")
                        ),
                    )
                })?;
            Ok(Expect::NotIssued {
                outcome: if outcome == "refused" {
                    "refused"
                } else {
                    "error"
                },
                step,
                error,
            })
        }
        other => Err(CaseError::field(
            "expect.outcome",
            format!("{other:?} is not one of issued, refused, error"),
        )),
    }
}

// ---- Values ----------------------------------------------------------------------------

/// An RFC 3339 date-time with an offset (a TOML offset date-time, or a string) as Unix
/// seconds.
fn instant(v: &toml::Value, field: &str) -> Result<UnixTime, CaseError> {
    let bad = || {
        CaseError::field(
            field,
            "not an RFC 3339 date-time with an offset, e.g. 2030-01-01T12:00:00Z",
        )
    };
    let datetime = match v {
        toml::Value::Datetime(dt) => *dt,
        toml::Value::String(s) => s.parse::<toml::value::Datetime>().map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    unix_time(&datetime).ok_or_else(bad)
}

fn unix_time(dt: &toml::value::Datetime) -> Option<UnixTime> {
    if dt.date.is_none() || dt.time.is_none() || dt.offset.is_none() {
        return None;
    }
    crate::xml::parse_datetime(&dt.to_string())
}

fn duration(s: &str, field: &str) -> Result<Duration, CaseError> {
    humantime::parse_duration(s)
        .map_err(|e| CaseError::field(field, format!("{s:?} is not a duration such as 5m: {e}")))
}

/// A TOML table as JSON claims; an offset date-time becomes a NumericDate (Unix seconds).
fn json_table(t: &toml::Table, field: &str) -> Result<Map<String, Value>, CaseError> {
    t.iter()
        .map(|(k, v)| Ok((k.clone(), json(v, &format!("{field}.{k}"))?)))
        .collect()
}

fn json(v: &toml::Value, field: &str) -> Result<Value, CaseError> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Number((*i).into()),
        toml::Value::Float(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| CaseError::field(field, "not a finite number"))?,
        ),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(dt) => Value::Number(
            unix_time(dt)
                .ok_or_else(|| {
                    CaseError::field(
                        field,
                        "a date-time needs a time and an offset (Z or ±hh:mm) to be a NumericDate",
                    )
                })?
                .into(),
        ),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| json(v, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(json_table(t, field)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Case, CaseError> {
        Case::parse(text, Path::new("/cases"))
    }

    const OIDC: &str = r#"
description = "an ID token becomes an orders token"
now = 2030-01-01T12:00:00Z

[request]
client = "demo-client"
subject_token_type = "id_token"
audience = "https://api.orders.example"
scope = "orders:read"

[subject]
issuer = "demo-oidc"
issued_at = "2030-01-01T11:59:00+01:00"
lifetime = "10m"
claims = { sub = "alice", groups = ["buyers"], auth_time = 2030-01-01T11:58:00Z }

[expect]
outcome = "issued"
scope = "orders:read"
lifetime = "5m"
claims = { sub = "alice", act = { sub = "demo-client" } }
absent = ["groups"]
"#;

    #[test]
    fn an_issued_case_reads_with_its_times_as_numeric_dates() {
        let case = parse(OIDC).unwrap();
        assert_eq!(case.now, 1_893_499_200);
        assert_eq!(case.request.client, "demo-client");
        assert_eq!(case.request.grant, Grant::TokenExchange);
        assert_eq!(
            case.request.subject_token_type.as_deref(),
            Some("urn:ietf:params:oauth:token-type:id_token")
        );
        assert_eq!(case.request.audience, ["https://api.orders.example"]);
        let TokenSource::Mint(mint) = &case.subject.source else {
            panic!("minted")
        };
        assert_eq!(case.subject.issuer.as_deref(), Some("demo-oidc"));
        assert_eq!(
            mint.issued_at,
            Some(1_893_499_200 - 3600 - 60),
            "the offset counts"
        );
        assert_eq!(mint.lifetime_secs(), 600);
        let claims = mint.claims.as_ref().unwrap();
        assert_eq!(claims["auth_time"], json!(1_893_499_200 - 120));
        assert_eq!(claims["groups"], json!(["buyers"]));
        let Expect::Issued(e) = &case.expect else {
            panic!("issued")
        };
        assert_eq!(e.claims["act"], json!({"sub": "demo-client"}));
        assert_eq!(e.absent, ["groups"]);
        assert_eq!(e.lifetime, Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_refused_case_names_a_step_and_a_code() {
        let text = OIDC.replace(
            "[expect]\noutcome = \"issued\"\nscope = \"orders:read\"\nlifetime = \"5m\"\nclaims = { sub = \"alice\", act = { sub = \"demo-client\" } }\nabsent = [\"groups\"]\n",
            "[expect]\noutcome = \"refused\"\nstep = \"scope\"\nerror = \"invalid_scope\"\n",
        );
        let case = parse(&text).unwrap();
        assert!(matches!(
            case.expect,
            Expect::NotIssued {
                outcome: "refused",
                step: Step::Scope,
                error: ErrorCode::InvalidScope
            }
        ));
    }

    #[test]
    fn saml_attributes_take_one_value_or_several() {
        let case = parse(
            r#"
description = "saml"
now = "2030-01-01T12:00:00Z"
[request]
client = "demo-client"
grant = "saml2_bearer"
[assertion]
issuer = "demo-saml"
name_id = "alice@example.com"
attributes = { email = "alice@example.com", groups = ["buyers", "staff"] }
[expect]
outcome = "refused"
step = "audience"
error = "invalid_grant"
"#,
        )
        .unwrap();
        assert_eq!(case.request.grant, Grant::Saml2Bearer);
        assert_eq!(case.subject.table, "assertion");
        let TokenSource::Mint(mint) = &case.subject.source else {
            panic!("minted")
        };
        let saml = mint.saml.as_ref().unwrap();
        assert_eq!(
            saml.attributes,
            [
                ("email".to_owned(), "alice@example.com".to_owned()),
                ("groups".to_owned(), "buyers".to_owned()),
                ("groups".to_owned(), "staff".to_owned()),
            ]
        );
    }

    #[test]
    fn paths_are_relative_to_the_case_and_keys_name_their_issuer() {
        let case = parse(
            r#"
description = "file"
now = 2030-01-01T12:00:00Z
[request]
client = "c"
subject_token_type = "urn:example:custom"
[subject]
file = "tokens/a.jwt"
[keys.acme]
jwks_file = "acme.jwks.json"
[expect]
outcome = "error"
step = "key"
error = "temporarily_unavailable"
"#,
        )
        .unwrap();
        assert!(
            matches!(&case.subject.source, TokenSource::File(p) if p == Path::new("/cases/tokens/a.jwt"))
        );
        assert_eq!(
            case.request.subject_token_type.as_deref(),
            Some("urn:example:custom"),
            "an unknown URN is the pipeline's to refuse"
        );
        assert_eq!(case.keys[0].issuer, "acme");
        assert!(
            matches!(&case.keys[0].material, KeyMaterial::JwksFile(p) if p == Path::new("/cases/acme.jwks.json"))
        );
    }

    /// Every malformed case names the field that is wrong.
    #[test]
    fn a_malformed_case_names_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "outcome = \"issued\"",
                "outcome = \"maybe\"",
                "expect.outcome",
            ),
            (
                "scope = \"orders:read\"\nlifetime",
                "step = \"scopes\"\nlifetime",
                "expect.step",
            ),
            (
                "now = 2030-01-01T12:00:00Z",
                "now = 2030-01-01T12:00:00",
                "now",
            ),
            ("now = 2030-01-01T12:00:00Z", "now = \"yesterday\"", "now"),
            (
                "lifetime = \"10m\"",
                "lifetime = \"ten minutes\"",
                "subject.lifetime",
            ),
            (
                "client = \"demo-client\"",
                "client = \"demo-client\"\ncolour = \"red\"",
                "request.colour",
            ),
            ("issuer = \"demo-oidc\"\n", "", "subject.issuer"),
            (
                "[request]\n",
                "[request]\ngrant = \"password\"\n",
                "request.grant",
            ),
            (
                "subject_token_type = \"id_token\"",
                "subject_token_type = \"idtoken\"",
                "request.subject_token_type",
            ),
            (
                "[request]\n",
                "[request]\ngrant = \"jwt_bearer\"\n",
                "subject",
            ),
            (
                "auth_time = 2030-01-01T11:58:00Z",
                "auth_time = 2030-01-01",
                "subject.claims.auth_time",
            ),
            (
                "issuer = \"demo-oidc\"\n",
                "issuer = \"demo-oidc\"\nfile = \"t.jwt\"\n",
                "subject.issued_at",
            ),
        ];
        for (from, to, field) in cases {
            assert!(OIDC.contains(from), "{from}");
            let text = OIDC.replacen(from, to, 1);
            let err = parse(&text).expect_err(to);
            assert_eq!(err.field.as_deref(), Some(*field), "{to}: {err}");
        }
        let refused_with_claims = OIDC.replace(
            "outcome = \"issued\"",
            "outcome = \"refused\"\nstep = \"scope\"\nerror = \"invalid_scope\"",
        );
        let err = parse(&refused_with_claims).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("expect.claims"), "{err}");
        let no_code = OIDC.replace(
            "outcome = \"issued\"\nscope = \"orders:read\"\nlifetime = \"5m\"\nclaims = { sub = \"alice\", act = { sub = \"demo-client\" } }\nabsent = [\"groups\"]",
            "outcome = \"refused\"\nstep = \"scope\"\nerror = \"bad_scope\"",
        );
        let err = parse(&no_code).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("expect.error"), "{err}");
        assert!(
            err.problem.contains("invalid_scope"),
            "lists the codes: {err}"
        );
    }
}
