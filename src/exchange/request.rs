//! The token request as parsed from its form body: grant, tokens, targets, scope.
//! RFC 6749 §3.2: parameters must not repeat, except `audience` and `resource`
//! (RFC 8693 §2.1, RFC 8707 §2).

use crate::protocol::ScopeSet;
use crate::telemetry::echo;
use crate::trust::TokenType;

use super::error::ExchangeError;

pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const GRANT_SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";

/// Label values for `grant` (SPEC §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    TokenExchange,
    JwtBearer,
    Saml2Bearer,
    RefreshToken,
}

impl GrantKind {
    pub const fn label(self) -> &'static str {
        match self {
            Self::TokenExchange => "token_exchange",
            Self::JwtBearer => "jwt_bearer",
            Self::Saml2Bearer => "saml2_bearer",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A decoded `application/x-www-form-urlencoded` body.
#[derive(Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Parameters whose values `Debug` may show: they name what was asked for, never a
/// credential (tokens, assertions, client secrets and unknown names show their size only).
const SHOWN_PARAMETERS: [&str; 7] = [
    "grant_type",
    "subject_token_type",
    "actor_token_type",
    "requested_token_type",
    "audience",
    "resource",
    "scope",
];

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in &self.pairs {
            if SHOWN_PARAMETERS.contains(&name.as_str()) {
                list.entry(&format_args!("{name}={value:?}"));
            } else {
                list.entry(&format_args!("{name}=[{} bytes]", value.len()));
            }
        }
        list.finish()
    }
}

/// More parameters than any legitimate request carries; beyond it the body is refused
/// before any work is done per parameter.
const MAX_PARAMS: usize = 64;

impl Form {
    /// A form built by a command (explain, `trust test`) rather than read from a body.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// This form with one more parameter (the shadow registry's copy of a request).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut pairs = self.pairs.clone();
        pairs.push((name.to_owned(), value.to_owned()));
        Self { pairs }
    }

    pub fn parse(body: &[u8]) -> Result<Self, ExchangeError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ExchangeError::InvalidRequest("body is not a valid form".into()))?;
        if pairs.len() > MAX_PARAMS {
            return Err(ExchangeError::InvalidRequest(
                "too many form parameters".into(),
            ));
        }
        Ok(Self { pairs })
    }

    /// A parameter that may appear at most once; empty values count as absent
    /// (RFC 6749 §3.1).
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, ExchangeError> {
        let mut found = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(ExchangeError::InvalidRequest(format!(
                        "parameter {name} is repeated"
                    )));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ExchangeError> {
        self.single(name)?
            .ok_or_else(|| ExchangeError::InvalidRequest(format!("missing parameter {name}")))
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// What the caller asks for: applies to both grants.
#[derive(Debug, Default, Clone)]
pub struct Target {
    pub audiences: Vec<String>,
    pub resources: Vec<String>,
    /// `None` when no `scope` was sent (then every allowed scope is granted).
    pub scopes: Option<ScopeSet>,
}

/// `Debug` shows the token's length only: a token never reaches a log line.
pub struct PresentedToken {
    pub token: String,
    pub token_type: TokenType,
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("token", &format_args!("[{} bytes]", self.token.len()))
            .field("token_type", &self.token_type)
            .finish()
    }
}

#[derive(Debug)]
pub struct TokenExchangeRequest {
    pub subject: PresentedToken,
    pub actor: Option<PresentedToken>,
    /// Echoed as `issued_token_type`: tessera issues JWT access tokens for both.
    pub requested_token_type: &'static str,
    /// `requested_token_type=...:refresh_token`: a refresh token beside the access token
    /// (SPEC §3; `issued_token_type` still describes the access token).
    pub wants_refresh: bool,
    pub target: Target,
}

/// RFC 7523 / RFC 7522 bearer grants: the `assertion` is the grant.
#[derive(Debug)]
pub struct BearerRequest {
    /// `Jwt` for jwt-bearer, `Saml2` for saml2-bearer.
    pub assertion: PresentedToken,
    pub target: Target,
}

/// RFC 6749 §6: a tessera refresh token redeemed.
pub struct RefreshRequest {
    pub token: String,
    /// `scope` (`None`: the family's whole grant); `audience`/`resource` (RFC 8707 §2.2)
    /// may only name the family's own audience.
    pub target: Target,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("token", &format_args!("[{} bytes]", self.token.len()))
            .field("target", &self.target)
            .finish()
    }
}

#[derive(Debug)]
pub enum Grant {
    TokenExchange(TokenExchangeRequest),
    Bearer(BearerRequest),
    Refresh(RefreshRequest),
}

impl Grant {
    pub fn kind(&self) -> GrantKind {
        match self {
            Self::TokenExchange(_) => GrantKind::TokenExchange,
            Self::Bearer(b) if b.assertion.token_type == TokenType::Saml2 => GrantKind::Saml2Bearer,
            Self::Bearer(_) => GrantKind::JwtBearer,
            Self::Refresh(_) => GrantKind::RefreshToken,
        }
    }
}

/// Largest token accepted in any parameter (SPEC §4.1 limits).
pub const MAX_TOKEN_BYTES: usize = 48 * 1024;

fn parse_target(form: &Form) -> Result<Target, ExchangeError> {
    let resources = form.all("resource");
    for r in &resources {
        // RFC 8707 §2: an absolute URI without a fragment.
        match url::Url::parse(r) {
            Ok(u) if u.fragment().is_none() => {}
            _ => {
                return Err(ExchangeError::InvalidTarget(
                    "resource must be an absolute URI without a fragment".into(),
                ))
            }
        }
    }
    // A scope named twice is granted once, in first-mention order (RFC 6749 §3.3: the
    // order does not matter, and a repeat adds nothing).
    let scopes = form
        .single("scope")?
        .map(|s| ScopeSet::parse(s).map_err(|e| {
            ExchangeError::InvalidScope(format!(
                "scope `{}` is not a scope token (RFC 6749 §3.3: printable ASCII without space, `\"` or `\\`)",
                echo(&e.0)
            ))
        }))
        .transpose()?;
    Ok(Target {
        audiences: form.all("audience"),
        resources,
        scopes,
    })
}

fn token_param(form: &Form, name: &'static str) -> Result<Option<String>, ExchangeError> {
    match form.single(name)? {
        Some(t) if t.len() > MAX_TOKEN_BYTES => Err(ExchangeError::InvalidRequest(format!(
            "{name} is larger than {MAX_TOKEN_BYTES} bytes"
        ))),
        Some(t) => Ok(Some(t.to_owned())),
        None => Ok(None),
    }
}

fn token_type_param(form: &Form, name: &'static str) -> Result<Option<TokenType>, ExchangeError> {
    match form.single(name)? {
        None => Ok(None),
        Some(urn) => TokenType::from_urn(urn).map(Some).ok_or_else(|| {
            ExchangeError::InvalidRequest(format!("{name} is not a supported token type"))
        }),
    }
}

/// Reads the grant-specific parameters; `grant_type` itself was read by the caller.
pub fn parse_grant(grant_type: &str, form: &Form) -> Result<Grant, ExchangeError> {
    match grant_type {
        GRANT_TOKEN_EXCHANGE => {
            let subject_token = token_param(form, "subject_token")?.ok_or_else(|| {
                ExchangeError::InvalidRequest("missing parameter subject_token".into())
            })?;
            let subject_type = token_type_param(form, "subject_token_type")?.ok_or_else(|| {
                ExchangeError::InvalidRequest("missing parameter subject_token_type".into())
            })?;
            // RFC 8693 §2.1: actor_token_type is required exactly when actor_token is present.
            let actor = match (
                token_param(form, "actor_token")?,
                token_type_param(form, "actor_token_type")?,
            ) {
                (Some(token), Some(token_type)) => Some(PresentedToken { token, token_type }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ExchangeError::InvalidRequest(
                        "actor_token_type is required with actor_token".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(ExchangeError::InvalidRequest(
                        "actor_token_type must not be sent without actor_token".into(),
                    ))
                }
            };
            let (requested_token_type, wants_refresh) = match form.single("requested_token_type")? {
                None => (TokenType::AccessToken.urn(), false),
                Some(t) if t == TokenType::AccessToken.urn() => {
                    (TokenType::AccessToken.urn(), false)
                }
                Some(t) if t == TokenType::Jwt.urn() => (TokenType::Jwt.urn(), false),
                Some(t) if t == TokenType::RefreshToken.urn() => {
                    (TokenType::AccessToken.urn(), true)
                }
                Some(_) => {
                    return Err(ExchangeError::InvalidRequest(
                        "requested_token_type must be access_token, jwt or refresh_token".into(),
                    ))
                }
            };
            Ok(Grant::TokenExchange(TokenExchangeRequest {
                subject: PresentedToken {
                    token: subject_token,
                    token_type: subject_type,
                },
                actor,
                requested_token_type,
                wants_refresh,
                target: parse_target(form)?,
            }))
        }
        GRANT_JWT_BEARER | GRANT_SAML2_BEARER => {
            let token = token_param(form, "assertion")?.ok_or_else(|| {
                ExchangeError::InvalidRequest("missing parameter assertion".into())
            })?;
            let token_type = if grant_type == GRANT_SAML2_BEARER {
                TokenType::Saml2
            } else {
                TokenType::Jwt
            };
            Ok(Grant::Bearer(BearerRequest {
                assertion: PresentedToken { token, token_type },
                target: parse_target(form)?,
            }))
        }
        GRANT_REFRESH_TOKEN => {
            let token = token_param(form, "refresh_token")?.ok_or_else(|| {
                ExchangeError::InvalidRequest("missing parameter refresh_token".into())
            })?;
            Ok(Grant::Refresh(RefreshRequest {
                token,
                target: parse_target(form)?,
            }))
        }
        _ => Err(ExchangeError::UnsupportedGrantType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens and secrets never reach a `Debug` line; what was asked for does.
    #[test]
    fn debug_shows_what_was_asked_for_and_never_a_credential() {
        let f = Form::parse(
            b"grant_type=g&subject_token=eyJhbGciOi.secret.sig&client_secret=hunter2&audience=inventory&client_assertion=abc",
        )
        .unwrap();
        let shown = format!("{f:?}");
        for hidden in ["eyJhbGciOi", "hunter2", "abc"] {
            assert!(!shown.contains(hidden), "{shown}");
        }
        assert!(shown.contains(r#"audience="inventory""#), "{shown}");
        assert!(shown.contains("subject_token=[21 bytes]"), "{shown}");
    }

    #[test]
    fn repeated_single_parameter_is_refused() {
        let f = Form::parse(b"scope=a&scope=b").unwrap();
        assert!(f.single("scope").is_err());
    }

    #[test]
    fn audience_and_resource_may_repeat() {
        let f = Form::parse(
            b"subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=a&audience=b&resource=https%3A%2F%2Fr.example%2F",
        )
        .unwrap();
        let Grant::TokenExchange(r) = parse_grant(GRANT_TOKEN_EXCHANGE, &f).unwrap() else {
            panic!()
        };
        assert_eq!(r.target.audiences, vec!["a", "b"]);
        assert_eq!(r.target.resources.len(), 1);
        assert_eq!(r.requested_token_type, TokenType::AccessToken.urn());
    }

    #[test]
    fn actor_token_needs_its_type() {
        let f = Form::parse(
            b"subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&actor_token=y",
        )
        .unwrap();
        assert!(parse_grant(GRANT_TOKEN_EXCHANGE, &f).is_err());
    }

    #[test]
    fn resource_with_fragment_is_invalid_target() {
        let f = Form::parse(
            b"subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&resource=https%3A%2F%2Fr%2F%23frag",
        )
        .unwrap();
        assert!(matches!(
            parse_grant(GRANT_TOKEN_EXCHANGE, &f),
            Err(ExchangeError::InvalidTarget(_))
        ));
    }

    #[test]
    fn repeated_scopes_are_granted_once_in_first_mention_order() {
        let f = Form::parse(
            b"subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&scope=b+a++b+c+a",
        )
        .unwrap();
        let Grant::TokenExchange(r) = parse_grant(GRANT_TOKEN_EXCHANGE, &f).unwrap() else {
            panic!()
        };
        assert_eq!(r.target.scopes.unwrap().to_string(), "b a c");
    }

    #[test]
    fn garbage_bodies_never_panic() {
        // Percent-decoding is lenient (a stray `%` is itself, bad UTF-8 becomes U+FFFD, as
        // form libraries do): garbage reads as parameters nobody asks for, never a panic.
        for body in [&b"%"[..], b"&&&=", b"a=%ZZ", &[0xff, 0xfe], b"=x"] {
            let f = Form::parse(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            assert_eq!(f.single("grant_type").unwrap(), None, "{body:?}");
            assert!(f.pairs.len() <= 1, "{body:?}: {:?}", f.pairs);
        }
        assert_eq!(
            Form::parse(b"a=%ZZ").unwrap().pairs,
            [("a".into(), "%ZZ".into())]
        );
        // Refused: more parameters than any request carries.
        assert!(matches!(
            Form::parse("a=1&".repeat(MAX_PARAMS + 1).as_bytes()),
            Err(ExchangeError::InvalidRequest(_))
        ));
    }
}
