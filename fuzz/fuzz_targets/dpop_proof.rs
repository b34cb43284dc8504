//! Fuzzes RFC 9449 proof checking (`tessera::verify::dpop::check_proof`): the proof is
//! attacker input at /token, a header of up to 8 KiB. Invariants: no panic, and whatever
//! is accepted has a thumbprint and an `iat` within the window of the fixed clock.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::verify::dpop::{check_proof, IAT_WINDOW_SECS};

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = check_proof(proof, "https://tessera.example/token", NOW) {
        assert!(!p.jkt.is_empty());
        assert!((p.iat - NOW).abs() <= IAT_WINDOW_SECS);
    }
    // The thumbprint alone, over any JSON the proof's header could carry.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = tessera::verify::dpop::thumbprint(&v);
    }
});
