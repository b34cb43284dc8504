//! The one type that holds a secret: a client secret, a token tessera minted, an
//! introspection credential. Redaction lives in the type (oauth2-rs's `new_secret_type!`
//! shape): every struct that holds one, with a derived `Debug` too, prints
//! `Secret([redacted])`, never the value.

/// A secret value; `Debug` is redacted and there is no `Display`, `Serialize` or
/// `PartialEq` (a comparison of secrets must be constant-time, and say so where it is).
#[derive(Clone)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself.
    ///
    /// # Security Warning
    ///
    /// Whatever it is handed to may log, store or send it: hand it only to the one place
    /// that needs the value (a constant-time comparison, a response body, an outbound
    /// request's credentials).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Holder {
        id: &'static str,
        secret: Secret,
    }

    #[test]
    fn a_derived_debug_never_shows_the_secret() {
        let h = Holder {
            id: "orders-service",
            secret: Secret::new("hunter2".to_owned()),
        };
        let shown = format!("{h:?} {:#?}", h.secret);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("orders-service") && shown.contains("[redacted]"));
        assert_eq!(h.secret.expose(), "hunter2");
    }
}
