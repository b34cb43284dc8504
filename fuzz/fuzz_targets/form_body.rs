//! Fuzzes the `/token` request body: form decoding, the repeated-parameter rule, client
//! credentials from the form, and the grant parsing that follows. Invariants: no panic;
//! an accepted grant carries tokens within the size limit and each requested scope once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::exchange::request::{self, parse_grant, Form, Grant, MAX_TOKEN_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(form) = Form::parse(data) else {
        return;
    };
    let _ = form.single("client_id");
    let _ = form.single("client_secret");
    let grant_type = match form.single("grant_type") {
        Ok(Some(g)) => g.to_owned(),
        _ => request::GRANT_TOKEN_EXCHANGE.to_owned(),
    };
    match parse_grant(&grant_type, &form) {
        Ok(Grant::TokenExchange(r)) => {
            assert!(r.subject.token.len() <= MAX_TOKEN_BYTES);
            if let Some(scopes) = &r.target.scopes {
                let unique: std::collections::HashSet<&String> = scopes.iter().collect();
                assert_eq!(unique.len(), scopes.len(), "a scope granted twice");
                assert!(scopes.iter().all(|s| !s.is_empty()));
            }
            if let Some(a) = &r.actor {
                assert!(a.token.len() <= MAX_TOKEN_BYTES);
            }
        }
        Ok(Grant::JwtBearer(r)) => assert!(r.assertion.len() <= MAX_TOKEN_BYTES),
        Err(_) => {}
    }
});
