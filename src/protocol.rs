//! Protocol values as types (as oauth2-rs does for client ids and scopes): a registry
//! issuer id is not a client id, an audience id is not an `aud` value, a `kid` is not a
//! `jti`, and a scope set is not a string that happens to contain spaces. Each is a
//! distinct type, so one cannot be passed where another is meant.
//!
//! A leaf module: every layer may use it, it uses none of them.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `String` newtype that reads as `&str` (`Deref`, `Borrow<str>`, comparisons with
/// string slices) so map lookups and log lines need no conversion, while the compiler
/// keeps the kinds apart wherever a value is stored or passed by type.
macro_rules! string_newtype {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $t(String);

        /// As the string: messages that quote a value with `{:?}` read the same whatever
        /// its type.
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl $t {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
        impl PartialEq<$t> for str {
            fn eq(&self, other: &$t) -> bool {
                self == other.0
            }
        }
        impl PartialEq<$t> for &str {
            fn eq(&self, other: &$t) -> bool {
                *self == other.0
            }
        }
        impl From<&str> for $t {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
        impl From<String> for $t {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> Self {
                value.0
            }
        }
        impl From<$t> for serde_json::Value {
            fn from(value: $t) -> Self {
                Self::String(value.0)
            }
        }
    };
}

string_newtype!(
    /// The file stem of a registry issuer entry (`trust/issuers/<id>.toml`): stable, used
    /// in metric labels and audit rows. `"local"` names tessera itself. Never an `iss`
    /// value: that is the entry's `issuer`.
    IssuerId
);
string_newtype!(
    /// A registered client's id (RFC 6749 §2.2), as sent in `client_id` or HTTP Basic.
    ClientId
);
string_newtype!(
    /// A registry audience's id (its file stem): what a client's `audiences` resolve to
    /// and what the registry is keyed by. Never an `aud` value ([`Aud`]): a client file
    /// may name an audience either way, and the loader turns both into this.
    AudienceId
);
string_newtype!(
    /// The `aud` value of the tokens issued for an audience (RFC 9068 §2.2, RFC 8707).
    Aud
);
string_newtype!(
    /// A JWS key id (RFC 7515 §4.1.4): tessera's signing keys and issuers' JWKS entries.
    Kid
);
string_newtype!(
    /// A token's unique id (RFC 7519 §4.1.7): tessera's `jti`, a foreign token's `jti`,
    /// or a SAML assertion's `ID`; what revocation and replay are keyed by.
    Jti
);

/// One scope token (RFC 6749 §3.3: `scope-token = 1*NQCHAR`, NQCHAR being
/// `%x21 / %x23-5B / %x5D-7E`): no space, quote or backslash, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

/// Why a string is not a scope token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a scope token (RFC 6749 §3.3: printable ASCII without space, `\"` or `\\`)")]
pub struct BadScope(pub String);

impl Scope {
    pub fn parse(value: &str) -> Result<Self, BadScope> {
        let nqchar = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
        if !value.is_empty() && value.bytes().all(nqchar) {
            Ok(Self(value.to_owned()))
        } else {
            Err(BadScope(value.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Scope {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Scope {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An ordered set of scopes: each named once, in first-mention order (RFC 6749 §3.3 makes
/// the order insignificant; keeping the caller's order keeps tokens and logs readable).
/// Its wire form is the space-delimited `scope` string of RFC 6749 §3.3 and RFC 8693 §4.2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Parses a `scope` parameter or claim. Runs of spaces separate like one; a scope
    /// named twice is kept once.
    pub fn parse(value: &str) -> Result<Self, BadScope> {
        value
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect()
    }
    /// A foreign token's `scope` claim: tokens that are not scope tokens are dropped,
    /// not held against the token (they can never match a registry scope, which is).
    pub fn lenient(value: &str) -> Self {
        value
            .split(' ')
            .filter_map(|s| Scope::parse(s).ok())
            .collect()
    }
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The scopes of `self` that `keep` admits, in order.
    pub fn filter(&self, keep: impl Fn(&Scope) -> bool) -> Self {
        Self(self.0.iter().filter(|s| keep(s)).cloned().collect())
    }
    /// The scopes as plain strings (for JSON detail values and CEL).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut seen = HashSet::new();
        Self(
            iter.into_iter()
                .filter(|s| seen.insert(s.0.clone()))
                .collect(),
        )
    }
}

impl From<&ScopeSet> for serde_json::Value {
    fn from(value: &ScopeSet) -> Self {
        value.to_strings().into()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&s.0)?;
        }
        Ok(())
    }
}

/// Wire form: the space-delimited string.
impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Registry files write scopes as a list; claims as one string. Both are accepted.
impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            List(Vec<Scope>),
            Joined(String),
        }
        match Wire::deserialize(d)? {
            Wire::List(list) => Ok(list.into_iter().collect()),
            Wire::Joined(s) => Self::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749_nqchar() {
        assert!(Scope::parse("read:orders").is_ok());
        assert!(Scope::parse("https://api.example/x").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert_eq!(Scope::parse(bad), Err(BadScope(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn scope_sets_keep_first_mention_order_once_and_round_trip() {
        let set = ScopeSet::parse("b a  b c a").unwrap();
        assert_eq!(set.to_string(), "b a c");
        assert_eq!(set.len(), 3);
        assert!(set.contains("c") && !set.contains("d"));
        assert_eq!(serde_json::to_string(&set).unwrap(), r#""b a c""#);
        let list: ScopeSet = serde_json::from_str(r#"["x","y","x"]"#).unwrap();
        assert_eq!(list.to_string(), "x y");
        assert!(serde_json::from_str::<ScopeSet>(r#"["x y"]"#).is_err());
    }

    #[test]
    fn newtypes_compare_with_strings_and_keep_kinds_apart() {
        let id = IssuerId::new("okta");
        assert_eq!(id, "okta");
        assert!("okta" == id);
        assert_eq!(&*id, "okta");
        let map: std::collections::HashMap<IssuerId, u8> = [(id.clone(), 1)].into();
        assert_eq!(map.get("okta"), Some(&1));
        assert_eq!(serde_json::to_string(&Kid::new("k1")).unwrap(), r#""k1""#);
    }
}
