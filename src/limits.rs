//! Fair use: per-client request rates (SPEC §1 `limits.client_rate`, §2 a client's
//! `rate_limit`, §3 `429`).
//!
//! The limiter is GCRA (the generic cell rate algorithm, ITU-T I.371; the same as a token
//! bucket refilled continuously): per client one "theoretical arrival time", so a client
//! costs 16 bytes and a check is one short critical section, whatever the rate.
//!
//! Limits are per replica: each replica counts what it answers. A shared count would put
//! a database round trip on every request and make every answer wait on the database (or
//! fail open when it is down); behind a load balancer that spreads requests evenly, N
//! replicas let a client through at about N times the configured rate, so operators set
//! `rate / N` (the README says so).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::protocol::ClientId;

/// `N/s`, `N/m` or `N/h`: N requests per period, N of them at once (the burst is one
/// period's worth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rate: expected N/s, N/m or N/h with N at least 1 (e.g. \"100/s\")")]
pub struct BadRate(pub String);

impl FromStr for Rate {
    type Err = BadRate;
    fn from_str(s: &str) -> Result<Self, BadRate> {
        let bad = || BadRate(s.to_owned());
        let (count, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Rate {
    /// GCRA's emission interval: the time one request "costs".
    fn interval(self) -> Duration {
        self.per / self.count
    }
}

/// A client's own limit, from its registry entry (`rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientRate {
    /// `limits.client_rate` applies (no limit when that is unset).
    #[default]
    Default,
    /// `rate_limit = "off"`: never limited, whatever the default.
    Off,
    Limited(Rate),
}

impl ClientRate {
    pub fn parse(s: &str) -> Result<Self, BadRate> {
        if s.trim() == "off" {
            Ok(Self::Off)
        } else {
            s.parse().map(Self::Limited)
        }
    }

    /// The rate that applies given the broker's default.
    pub fn effective(self, default: Option<Rate>) -> Option<Rate> {
        match self {
            Self::Default => default,
            Self::Off => None,
            Self::Limited(r) => Some(r),
        }
    }
}

/// A request over its client's rate: when the next one would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub rate: Rate,
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, at least 1 (RFC 9110 §10.2.3).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// Per-client GCRA state. Keys are authenticated clients only (the registry bounds them),
/// so an attacker cannot grow the map or spend another client's budget.
#[derive(Debug)]
pub struct RateLimiter {
    origin: Instant,
    /// Per client: the rate its state was kept for, and the theoretical arrival time in
    /// nanoseconds since `origin`. A client whose rate changed (a registry reload) starts
    /// afresh instead of staying limited by the old rate's debt.
    tat: Mutex<HashMap<ClientId, (Rate, u128)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request of `client` at `rate` now, or says when to retry.
    pub fn check(&self, client: &ClientId, rate: Rate) -> Result<(), Limited> {
        self.check_at(client, rate, Instant::now())
    }

    fn check_at(&self, client: &ClientId, rate: Rate, now: Instant) -> Result<(), Limited> {
        let now = now.saturating_duration_since(self.origin).as_nanos();
        let interval = rate.interval().as_nanos();
        // The burst: `count` requests at once, i.e. a tolerance of count-1 intervals.
        let tolerance = interval * u128::from(rate.count - 1);
        let mut map = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tat = match map.get(client) {
            Some((kept, tat)) if *kept == rate => (*tat).max(now),
            _ => now,
        };
        let allowed_at = tat.saturating_sub(tolerance);
        if now < allowed_at {
            let wait = u64::try_from(allowed_at - now).unwrap_or(u64::MAX);
            return Err(Limited {
                rate,
                retry_after: Duration::from_nanos(wait),
            });
        }
        map.insert(client.clone(), (rate, tat + interval));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r: Rate = "100/s".parse().unwrap();
        assert_eq!((r.count, r.per), (100, Duration::from_secs(1)));
        assert_eq!("5/m".parse::<Rate>().unwrap().to_string(), "5/m");
        assert_eq!(
            "2/h".parse::<Rate>().unwrap().per,
            Duration::from_secs(3600)
        );
        for bad in ["", "0/s", "10", "10/d", "-1/s", "x/s", "10/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
        assert_eq!(ClientRate::parse("off"), Ok(ClientRate::Off));
        let default = Some("1/s".parse().unwrap());
        assert_eq!(ClientRate::Off.effective(default), None);
        assert_eq!(ClientRate::Default.effective(default), default);
    }

    #[test]
    fn a_client_gets_its_burst_then_one_per_interval_and_others_are_unaffected() {
        let limiter = RateLimiter::new();
        let rate: Rate = "5/s".parse().unwrap();
        let (a, b) = (ClientId::new("a"), ClientId::new("b"));
        let t0 = limiter.origin;
        for _ in 0..5 {
            assert!(limiter.check_at(&a, rate, t0).is_ok());
        }
        let limited = limiter.check_at(&a, rate, t0).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_millis(200));
        assert_eq!(limited.retry_after_secs(), 1);
        assert!(
            limiter.check_at(&b, rate, t0).is_ok(),
            "b has its own budget"
        );
        // One interval later exactly one more is admitted.
        let later = t0 + Duration::from_millis(200);
        assert!(limiter.check_at(&a, rate, later).is_ok());
        assert!(limiter.check_at(&a, rate, later).is_err());
        // A refused request costs nothing: after a full period the burst is back.
        let rested = later + Duration::from_secs(1);
        for _ in 0..5 {
            assert!(limiter.check_at(&a, rate, rested).is_ok());
        }
        assert!(limiter.check_at(&a, rate, rested).is_err());
        // A new rate (a registry reload) is not held back by the old one's debt.
        let slow: Rate = "1/h".parse().unwrap();
        assert!(limiter.check_at(&b, slow, rested).is_ok());
        assert!(limiter.check_at(&b, slow, rested).is_err());
        assert!(limiter.check_at(&b, rate, rested).is_ok());
    }
}
