//! RFC 8693 §4.1 `act` and §4.4 `may_act` as types. A presented token's claims are parsed
//! into these once, at verification; anything that does not fit is refused rather than
//! copied (a downstream service may read a malformed `act` as "nobody acts", and the chain
//! must never silently vanish, SPEC §2.1).

use serde::Serialize;
use serde_json::Value;

use super::VerifyError;

/// Longest delegation chain accepted in a presented `act` (each hop adds one).
pub const MAX_ACT_DEPTH: usize = 16;

/// One link of a delegation chain: the current actor, and the earlier ones inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Act {
    pub sub: String,
    /// The actor's issuer; absent when it is tessera itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Act>>,
}

impl Act {
    /// Parses a presented `act` claim: an object with a non-empty string `sub` (and a
    /// string `iss` when present) at every level, at most [`MAX_ACT_DEPTH`] deep. Other
    /// members are not carried over.
    pub fn from_claim(value: &Value) -> Result<Self, VerifyError> {
        // Collected top-down, then folded bottom-up: no recursion on attacker input.
        let mut links = Vec::new();
        let mut next = Some(value);
        while let Some(v) = next {
            if links.len() == MAX_ACT_DEPTH {
                return Err(VerifyError::MalformedAct("act nests more than 16 actors"));
            }
            let obj = v.as_object().ok_or(VerifyError::MalformedAct(
                "act must be an object with a non-empty string sub, at every level",
            ))?;
            let sub = match obj.get("sub") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(VerifyError::MalformedAct(
                        "act must be an object with a non-empty string sub, at every level",
                    ))
                }
            };
            let iss = match obj.get("iss") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(VerifyError::MalformedAct("act iss is not a string")),
            };
            links.push((sub, iss));
            next = obj.get("act");
        }
        let mut chain: Option<Act> = None;
        for (sub, iss) in links.into_iter().rev() {
            chain = Some(Act {
                sub,
                iss,
                act: chain.map(Box::new),
            });
        }
        chain.ok_or(VerifyError::MalformedAct("act is empty"))
    }

    /// This actor on top of `earlier` (RFC 8693 §4.1: the current actor outermost).
    pub fn over(sub: String, iss: Option<String>, earlier: Option<&Act>) -> Self {
        Self {
            sub,
            iss,
            act: earlier.map(|a| Box::new(a.clone())),
        }
    }

    /// This chain as a foreign issuer `iss` asserted it: every link that names no issuer
    /// is that issuer's (RFC 8693 §4.1: `act` members are interpreted in the context of
    /// the token's issuer), so no foreign link can pass for one tessera recorded.
    pub fn attributed_to(&self, iss: &str) -> Self {
        let mut out = self.clone();
        let mut link = Some(&mut out);
        while let Some(l) = link {
            l.iss.get_or_insert_with(|| iss.to_owned());
            link = l.act.as_deref_mut();
        }
        out
    }

    /// Whether any link names `iss` as its issuer, spelt in any way a URL parser reads as
    /// the same (scheme and host case, default port, trailing slash).
    pub fn names_issuer(&self, iss: &str) -> bool {
        std::iter::successors(Some(self), |a| a.act.as_deref())
            .any(|a| a.iss.as_deref().is_some_and(|i| same_issuer(i, iss)))
    }

    /// Number of actors in the chain (this one included).
    pub fn depth(&self) -> usize {
        std::iter::successors(Some(self), |a| a.act.as_deref()).count()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Two issuer identifiers naming the same URL once normalised (RFC 3986 §6.2.2: scheme and
/// host are case-insensitive, a default port is no port), trailing slashes aside.
fn same_issuer(a: &str, b: &str) -> bool {
    let norm = |s: &str| match url::Url::parse(s) {
        Ok(u) => u.as_str().trim_end_matches('/').to_owned(),
        Err(_) => s.trim_end_matches('/').to_owned(),
    };
    norm(a) == norm(b)
}

/// RFC 8693 §4.4: the actor the subject token admits. `sub` is required; `iss`, when
/// given, must match too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MayAct {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl MayAct {
    pub fn from_claim(value: &Value) -> Result<Self, VerifyError> {
        let malformed = VerifyError::MalformedClaim {
            claim: "may_act",
            expected: "an object with a string sub",
        };
        let obj = value.as_object().ok_or(malformed.clone())?;
        let sub = match obj.get("sub") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(malformed),
        };
        let iss = match obj.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(malformed),
        };
        Ok(Self { sub, iss })
    }

    /// This `may_act` as `iss` asserted it: without its own `iss`, its `sub` is a name in
    /// the namespace of the token's issuer (RFC 8693 §4.4 reads its members in that
    /// context), never a name any trusted issuer or client could bear.
    pub fn attributed_to(&self, iss: &str) -> Self {
        Self {
            sub: self.sub.clone(),
            iss: Some(self.iss.clone().unwrap_or_else(|| iss.to_owned())),
        }
    }

    /// Whether the actor `sub` from `iss` is the one admitted; `Err` says which part differs.
    pub fn admits(&self, sub: &str, iss: &str) -> Result<(), &'static str> {
        if self.sub != sub {
            return Err("sub differs");
        }
        match &self.iss {
            Some(i) if i != iss => Err("iss differs"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_presented_act_must_be_a_chain_of_objects_with_a_sub() {
        let ok = |v: Value| Act::from_claim(&v).is_ok();
        assert!(ok(json!({"sub": "a"})));
        assert!(ok(json!({"sub": "a", "iss": "x", "act": {"sub": "b"}})));
        assert!(!ok(Value::Null));
        assert!(!ok(json!("a")));
        assert!(!ok(json!({})));
        assert!(!ok(json!({"sub": ""})));
        assert!(!ok(json!({"sub": 7})));
        assert!(!ok(json!({"sub": "a", "iss": 7})));
        assert!(!ok(json!({"sub": "a", "act": null})));
        assert!(!ok(json!({"sub": "a", "act": {"iss": "x"}})));
        let mut deep = json!({"sub": "last"});
        for i in 0..MAX_ACT_DEPTH {
            deep = json!({"sub": format!("hop-{i}"), "act": deep});
        }
        assert!(!ok(deep), "deeper than MAX_ACT_DEPTH");
    }

    #[test]
    fn act_round_trips_in_order() {
        let v = json!({"sub": "a", "iss": "x", "act": {"sub": "b", "act": {"sub": "c"}}});
        let act = Act::from_claim(&v).unwrap();
        assert_eq!(act.to_value(), v);
        let top = Act::over("d".into(), None, Some(&act));
        assert_eq!(top.to_value()["act"], v);
    }

    #[test]
    fn an_issuer_spelt_differently_is_still_named() {
        let act = |iss: &str| Act {
            sub: "a".into(),
            iss: Some(iss.into()),
            act: None,
        };
        assert!(act("HTTP://127.0.0.1:18477").names_issuer("http://127.0.0.1:18477/"));
        assert!(act("https://Tessera.Test:443").names_issuer("https://tessera.test"));
        assert!(!act("https://tessera.test.evil").names_issuer("https://tessera.test"));
    }

    #[test]
    fn may_act_admits_only_the_named_actor() {
        let m = MayAct::from_claim(&json!({"sub": "c"})).unwrap();
        assert!(m.admits("c", "x").is_ok());
        assert_eq!(m.admits("d", "x"), Err("sub differs"));
        let mi = MayAct::from_claim(&json!({"sub": "c", "iss": "https://t"})).unwrap();
        assert!(mi.admits("c", "https://t").is_ok());
        assert_eq!(mi.admits("c", "https://u"), Err("iss differs"));
        assert!(MayAct::from_claim(&json!("c")).is_err());
        // Without iss, it names a principal of the token's issuer only.
        let m = m.attributed_to("https://idp");
        assert!(m.admits("c", "https://idp").is_ok());
        assert_eq!(m.admits("c", "https://other-idp"), Err("iss differs"));
        assert_eq!(mi.attributed_to("https://idp"), mi);
        assert!(MayAct::from_claim(&json!({"iss": "x"})).is_err());
    }
}
