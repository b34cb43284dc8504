//! Fuzzes the unverified JWT parsing of SPEC §4.1: compact-JWS split, strict base64url,
//! the duplicate-refusing, depth-bounded JSON visitor, the `typ` table and the claim
//! checks. Invariants: no panic; the strict JSON parser agrees with serde_json whenever
//! it accepts; the signing input is a prefix of the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::trust::TokenType;
use tessera::verify::jwt::{self, ClaimRules};

fuzz_target!(|data: &[u8]| {
    // 1. Raw bytes straight into the strict JSON visitor (no base64 in the way).
    if let Ok(strict) = jwt::parse_object(data, "payload") {
        let lax: serde_json::Value =
            serde_json::from_slice(data).expect("strict accepted what serde_json refuses");
        assert_eq!(serde_json::Value::Object(strict), lax, "strict and serde_json disagree");
    }
    // 2. The whole unverified parse and the checks that follow it.
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = jwt::parse_unverified(token) {
        assert!(token.starts_with(u.signing_input));
        assert!(token.len() <= jwt::MAX_TOKEN_BYTES);
        let audiences = ["tessera".to_owned()];
        for tt in [TokenType::IdToken, TokenType::AccessToken, TokenType::Jwt] {
            let _ = jwt::check_typ(u.header.typ.as_deref(), tt, true);
            let _ = jwt::check_claims(
                &u.claims,
                &ClaimRules {
                    issuer: "https://issuer.example",
                    issuer_id: "fuzz",
                    audiences: &audiences,
                    token_type: tt,
                    skew: 60,
                    max_age: Some(3600),
                    now: 1_800_000_000,
                },
            );
        }
    }
});
