//! Every `tessera_*` series lives in this one struct with its own registry (no globals).
//! Label values come from the registry (issuer ids), from enums (grant, token type,
//! outcome) or from `reason()` functions that match every error variant to a fixed string
//! (rejection reason), never from request input: cardinality stays bounded.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    issued,
    refused,
    error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    pub grant: &'static str,
    pub subject_token_type: &'static str,
    pub issuer: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub grant: &'static str,
    pub subject_token_type: &'static str,
    pub issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The failing step's name (closed set).
    pub reason: &'static str,
    /// The registry issuer the refused token named, `unknown` before one was resolved.
    pub issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    pub issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub issuer: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    pub issuer: String,
    /// A step name (closed set).
    pub step: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    /// A registered client id (requests are limited only once authenticated).
    pub client: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A route of [`ENDPOINTS`] or `other`: a closed set.
    pub endpoint: &'static str,
    /// `1xx` … `5xx`.
    pub code: &'static str,
}

/// The routes `tessera_http_responses_total` names; any other path counts as `other`.
pub const ENDPOINTS: [&str; 11] = [
    "/token",
    "/introspect",
    "/revoke",
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
    "/metrics",
    "/healthz",
    "/readyz",
    "/admin/reload",
    "/admin/explain",
    "other",
];
const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `outcome` values of `tessera_refresh_tokens_total` (SPEC §7).
pub const REFRESH_OUTCOMES: [&str; 4] = ["issued", "rotated", "reused", "expired"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub exchanges: Family<ExchangeLabels, Counter>,
    pub exchange_duration: Family<DurationLabels, Histogram>,
    pub rejections: Family<ReasonLabels, Counter>,
    pub issuer_key_fetches: Family<FetchLabels, Counter>,
    /// RFC 7662 lookups per introspection issuer: `active`, `inactive`, `error`, `cached`.
    pub introspections: Family<FetchLabels, Counter>,
    pub issuer_keys_age: Family<IssuerLabels, Gauge<f64, AtomicU64>>,
    pub issuer_keys_available: Family<IssuerLabels, Gauge>,
    pub replays_blocked: Family<IssuerLabels, Counter>,
    pub signing_key_age: Gauge<f64, AtomicU64>,
    pub trust_reloads: Family<OutcomeLabels, Counter>,
    pub shadow_disagreements: Family<ShadowLabels, Counter>,
    pub audit_queue_depth: Gauge,
    pub rate_limited: Family<ClientLabels, Counter>,
    /// `tessera_refresh_tokens_total{outcome}`: issued, rotated, reused, expired.
    pub refresh_tokens: Family<OutcomeLabels, Counter>,
    /// One counter per endpoint and status class, created up front: the hot path only
    /// increments (no label hashing, no lock).
    http_responses: Vec<Counter>,
    /// 1 while `/readyz` would answer 200 (set by `/readyz` and at every scrape).
    pub ready: Gauge,
    /// Refusals counted toward a summary row instead of a row each (SPEC §3).
    pub refusals_summarised: Counter,
    pub process: crate::metrics_process::ProcessMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn duration_histogram() -> Histogram {
    // 250 µs … ~4 s: an exchange is sub-millisecond; a cold JWKS fetch can take seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 2.0, 15,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let process = crate::metrics_process::ProcessMetrics::register(&mut root);
        let registry = root.sub_registry_with_prefix("tessera");
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "exchanges",
            "Token requests by grant, subject token type, issuer and outcome (requests refused \
             before their grant and token type were known count in tessera_rejections_total only)",
            exchanges.clone(),
        );
        let exchange_duration = Family::<DurationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "exchange_duration_seconds",
            "Time to answer a token request",
            exchange_duration.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejections",
            "Refused token requests by the failing step (reason) and the registry issuer of the \
             token (unknown when refused before an issuer was resolved)",
            rejections.clone(),
        );
        let issuer_key_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "issuer_key_fetches",
            "Discovery/JWKS fetches per issuer and outcome",
            issuer_key_fetches.clone(),
        );
        let introspections = Family::<FetchLabels, Counter>::default();
        registry.register(
            "introspections",
            "Opaque-token lookups per introspection issuer: active, inactive, error (endpoint unreachable or not RFC 7662), cached (answered from the cache)",
            introspections.clone(),
        );
        let issuer_keys_age = Family::<IssuerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "issuer_keys_age_seconds",
            "Age of the keys in use per issuer (time since the last successful fetch); absent \
             for an issuer whose keys were never fetched (see tessera_issuer_keys_available)",
            issuer_keys_age.clone(),
        );
        let issuer_keys_available = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "issuer_keys_available",
            "1 while an issuer's keys or metadata are in hand and may serve, 0 while there are \
             none (never fetched, or staler than outbound.max_stale): its tokens are refused",
            issuer_keys_available.clone(),
        );
        let shadow_disagreements = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_disagreements",
            "Exchanges the candidate registry (serve --shadow-trust) decided differently, by \
             issuer and the step where the decisions part",
            shadow_disagreements.clone(),
        );
        let replays_blocked = Family::<IssuerLabels, Counter>::default();
        registry.register(
            "replays_blocked",
            "Subject tokens refused because they were already used",
            replays_blocked.clone(),
        );
        let signing_key_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "signing_key_age_seconds",
            "Age of the current signing key",
            signing_key_age.clone(),
        );
        let trust_reloads = Family::<OutcomeLabels, Counter>::default();
        // Present at 0 from the start, so `increase()` sees the first refused reload.
        for outcome in ["ok", "refused"] {
            let _ = trust_reloads.get_or_create(&OutcomeLabels { outcome });
        }
        registry.register(
            "trust_reloads",
            "Trust registry reloads by outcome",
            trust_reloads.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit events waiting for their group commit",
            audit_queue_depth.clone(),
        );
        let rate_limited = Family::<ClientLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests answered 429 because their client was over its rate limit",
            rate_limited.clone(),
        );
        let refresh_tokens = Family::<OutcomeLabels, Counter>::default();
        // Every outcome exists from the start: a dashboard's rate() of a series that
        // appears at its first increment misses that increment.
        for outcome in REFRESH_OUTCOMES {
            drop(refresh_tokens.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "refresh_tokens",
            "Refresh tokens by outcome: issued (a family started), rotated (redeemed), \
             reused (a spent token presented again: its family revoked), expired (absolute \
             or idle limit)",
            refresh_tokens.clone(),
        );
        let http_family = Family::<HttpLabels, Counter>::default();
        let http_responses = ENDPOINTS
            .iter()
            .flat_map(|endpoint| {
                CODE_CLASSES.iter().map(|code| {
                    http_family
                        .get_or_create(&HttpLabels { endpoint, code })
                        .clone()
                })
            })
            .collect();
        registry.register(
            "http_responses",
            "HTTP responses by endpoint (a route, or other) and status class",
            http_family,
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while the broker is ready (database reachable, registry loaded, signing keys \
             read within the publish guard), else 0",
            ready.clone(),
        );
        let refusals_summarised = Counter::default();
        registry.register(
            "refusals_summarised",
            "Refused requests (before client authentication, or over a rate limit) recorded \
             in a periodic audit summary row rather than a row each",
            refusals_summarised.clone(),
        );
        Self {
            registry: root,
            exchanges,
            exchange_duration,
            rejections,
            issuer_key_fetches,
            introspections,
            issuer_keys_age,
            issuer_keys_available,
            replays_blocked,
            signing_key_age,
            trust_reloads,
            shadow_disagreements,
            audit_queue_depth,
            rate_limited,
            refresh_tokens,
            http_responses,
            ready,
            refusals_summarised,
            process,
        }
    }

    /// Counts one HTTP response of `status` for `path`.
    pub fn http_response(&self, path: &str, status: u16) {
        let endpoint = ENDPOINTS
            .iter()
            .position(|e| *e == path)
            .unwrap_or(ENDPOINTS.len() - 1);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http_responses[endpoint * CODE_CLASSES.len() + class].inc();
    }

    /// OpenMetrics 1.0 text exposition (what a scraper asking for it gets).
    pub fn encode(&self) -> String {
        self.process.update();
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format 0.0.4 (the default scrape, clean under `promtool check
    /// metrics`): OpenMetrics names a counter family without its `_total` suffix, which
    /// 0.0.4 tools read as a family with no samples and samples with no help.
    pub fn encode_text_004(&self) -> String {
        to_text_004(&self.encode())
    }
}

/// OpenMetrics text → Prometheus 0.0.4 text: counter families' `# HELP`/`# TYPE` take the
/// `_total` their samples carry; `# UNIT` and `# EOF` go (0.0.4 has neither); a HELP's
/// escaped quote is plain (0.0.4 escapes only `\\` and newlines there).
pub fn to_text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                let tail = if prefix == "# HELP " {
                    tail.replace("\\\"", "\"")
                } else {
                    tail.to_owned()
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
