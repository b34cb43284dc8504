//! `tessera trust test [--dir trust]` (SPEC §1): the registry's own regression cases,
//! `<dir>/tests/*.toml`, each a token, a request, a clock time and the expected outcome.
//!
//! Every case runs through the `/token` pipeline itself (`Exchanger::explain_against`, the
//! dry run `tessera explain` uses), offline: the clock fixed at the case's `now`, a
//! throwaway SQLite store (no real database is touched), and a verifier of the case's own
//! that makes no request: a remote issuer's keys and an introspection answer come with the
//! case and are seeded into it. A case that needs something remote it did not supply fails
//! at once, saying so.
//!
//! One line per case (`ok   <file>: <description>` / `FAIL <file>: expected …, got …`),
//! then `N passed, M failed`; exit 1 on any failure.

pub mod case;
mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use crate::clock::{Clock, FixedClock, SystemClock};
use crate::config::Config;
use crate::exchange::explain::DryRun;
use crate::exchange::{ErrorCode, Explanation, Step};
use crate::metrics::Metrics;
use crate::startup::{open_store, Parts};
use crate::store::testing::{fresh_database_url, TestDbKind};
use crate::trust::{Registry, TrustStore};

use self::case::{Case, Expect, IssuedExpect};
use self::token::Maker;
use super::{Lines, NotOk};

pub async fn run(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let trust = Arc::new(
        TrustStore::load(dir, &config.server.issuer)
            .with_context(|| format!("trust registry in {}", dir.display()))?,
    );
    let registry = trust.snapshot();
    let tests = dir.join("tests");
    let files = case_files(&tests)?;

    // A throwaway database: the signing keys local tokens need, an empty replay cache and
    // revocation list. Removed when `db` is dropped.
    let db = fresh_database_url(TestDbKind::Sqlite).context("creating a throwaway database")?;
    let mut config = config.clone();
    config.database.url = db.url.clone();
    config.trust.dir = dir.to_path_buf();
    let store = open_store(&config).await?;
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let parts = Parts::build_offline(
        &config,
        &store,
        clock.clone(),
        trust,
        Arc::new(Metrics::new()),
    )
    .await?;

    let mut out = Lines::stdout();
    if files.is_empty() {
        out.line(format!(
            "no cases: {} holds no *.toml file",
            tests.display()
        ))?;
    }
    let runner = Runner {
        config: &config,
        parts: &parts,
        registry: &registry,
        clock: &clock,
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let line = match runner.run(file).await {
            Ok(description) => {
                passed += 1;
                format!("ok   {}: {description}", file.display())
            }
            Err(why) => {
                failed += 1;
                format!("FAIL {}: {why}", file.display())
            }
        };
        out.line(line)?;
    }
    out.line(format!("{passed} passed, {failed} failed"))?;
    out.finish()?;
    parts.audit.shutdown().await;
    drop(parts);
    drop(store);
    drop(db);
    if failed > 0 {
        Err(NotOk("trust test failed").into())
    } else {
        Ok(())
    }
}

/// `*.toml` directly in `tests`, by name (other files are the cases' keys and tokens).
fn case_files(tests: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(tests) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", tests.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", tests.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

struct Runner<'a> {
    config: &'a Config,
    parts: &'a Parts,
    registry: &'a Registry,
    clock: &'a FixedClock,
}

impl Runner<'_> {
    /// One case: its description when it passes, else what was expected and what came.
    async fn run(&self, file: &Path) -> Result<String, String> {
        let case = Case::read(file).map_err(|e| e.to_string())?;
        self.clock.set(case.now);
        // A verifier of the case's own: nothing another case supplied can serve it.
        let exchanger = self
            .parts
            .fresh_offline_exchanger(self.config)
            .map_err(|e| format!("{e:#}"))?;
        let broker = self.config.broker_identity();
        let form = Maker::new(
            self.registry,
            &self.parts.keys,
            &exchanger.verifier,
            &broker,
            case.now,
        )
        .form(&case)
        .map_err(|e| e.to_string())?;
        let got = exchanger
            .explain_against(self.registry, &case.request.client, &form, DryRun::Explain)
            .await;
        verdict(&case.expect, &got)?;
        Ok(case.description)
    }
}

/// `Ok` when `got` is what the case expects; else expected versus got, in one line.
pub fn verdict(expect: &Expect, got: &Explanation) -> Result<(), String> {
    match (expect, &got.token) {
        (Expect::Issued(want), Some(token)) => {
            let mut wrong = compare_issued(want, token);
            wrong.extend(compare_response(want, got));
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("issued, but {}", wrong.join("; ")))
            }
        }
        (
            Expect::NotIssued {
                outcome,
                step,
                error,
            },
            _,
        ) if got.outcome == *outcome
            && got.failing_step == Some(*step)
            && got.error.as_ref().is_some_and(|e| e.error == *error) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected {}, got {}{}",
            expected(expect),
            described(got),
            offline_hint(got)
        )),
    }
}

fn expected(expect: &Expect) -> String {
    match expect {
        Expect::Issued(_) => "issued".to_owned(),
        Expect::NotIssued {
            outcome,
            step,
            error,
        } => format!("{outcome} at {step} ({})", error.as_str()),
    }
}

/// `issued`, or `refused at scope (invalid_scope: what the description says)`.
fn described(got: &Explanation) -> String {
    match (&got.error, got.failing_step) {
        (Some(err), Some(step)) => {
            let prefix = format!("{step}: ");
            let text = err
                .error_description
                .strip_prefix(&prefix)
                .unwrap_or(&err.error_description);
            format!("{} at {step} ({}: {text})", got.outcome, err.error.as_str())
        }
        _ => got.outcome.to_owned(),
    }
}

/// An issuer that could not be reached, in a run that reaches none: say what is missing.
fn offline_hint(got: &Explanation) -> &'static str {
    let unavailable = got.outcome == "error"
        || got
            .error
            .as_ref()
            .is_some_and(|e| e.error == ErrorCode::TemporarilyUnavailable);
    match got.failing_step {
        Some(Step::Key) if unavailable => {
            "; trust test is offline: the case gives a remote issuer's public keys in \
             [keys.<issuer>] (jwks_file, metadata_file or cert_file)"
        }
        Some(Step::Introspection) if unavailable => {
            "; trust test is offline: the case gives the introspection answer in \
             [subject.introspection] (or [actor.introspection])"
        }
        _ => "",
    }
}

/// What differs in the would-be response beside the token's claims: its signing
/// algorithm, `token_type`, and whether a refresh token comes with it.
fn compare_response(want: &IssuedExpect, got: &Explanation) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut check = |what: &str, want: Option<String>, got: String| {
        if let Some(want) = want.filter(|w| *w != got) {
            wrong.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    check(
        "signing_alg",
        want.signing_alg.clone(),
        got.signing_alg.unwrap_or("none").to_owned(),
    );
    check(
        "token_type",
        want.token_type.clone(),
        got.token_type.unwrap_or("none").to_owned(),
    );
    check(
        "refresh_token",
        want.refresh_token.map(|r| r.to_string()),
        got.refresh_token.to_string(),
    );
    wrong
}

/// What differs between the would-be token and the expectation, each as
/// `<what>: expected …, got …`.
fn compare_issued(want: &IssuedExpect, token: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let claim = |name: &str| token.get(name);
    for (name, value) in &want.claims {
        match claim(name) {
            Some(got) if got == value => {}
            Some(got) => wrong.push(format!("claim {name}: expected {value}, got {got}")),
            None => wrong.push(format!("claim {name}: expected {value}, got none")),
        }
    }
    for name in &want.absent {
        if let Some(got) = claim(name) {
            wrong.push(format!("claim {name}: expected none, got {got}"));
        }
    }
    if let Some(scope) = &want.scope {
        let got = claim("scope").and_then(Value::as_str).unwrap_or("");
        let set = |s: &str| {
            let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
            v.sort();
            v.dedup();
            v
        };
        if set(scope) != set(got) {
            wrong.push(format!("scope: expected {scope:?}, got {got:?}"));
        }
    }
    if let Some(audience) = &want.audience {
        match claim("aud") {
            Some(Value::String(got)) if got == audience => {}
            Some(got) => wrong.push(format!("audience: expected {audience:?}, got {got}")),
            None => wrong.push(format!("audience: expected {audience:?}, got none")),
        }
    }
    if let Some(lifetime) = want.lifetime {
        let exp = claim("exp").and_then(Value::as_i64);
        let iat = claim("iat").and_then(Value::as_i64);
        let got = exp.zip(iat).map(|(e, i)| e.saturating_sub(i));
        let want_secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        if got != Some(want_secs) {
            let shown = got.map_or_else(
                || "none".to_owned(),
                |s| {
                    humantime::format_duration(std::time::Duration::from_secs(
                        u64::try_from(s).unwrap_or(0),
                    ))
                    .to_string()
                },
            );
            wrong.push(format!(
                "lifetime: expected {}, got {shown}",
                humantime::format_duration(lifetime)
            ));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::explain::ExplainedError;
    use serde_json::json;

    fn issued(token: Value) -> Explanation {
        Explanation {
            outcome: "issued",
            steps: Vec::new(),
            failing_step: None,
            error: None,
            token: Some(token),
            signing_alg: Some("ES256"),
            token_type: Some("Bearer"),
            refresh_token: false,
        }
    }

    fn refused(step: Step, error: ErrorCode, description: &str) -> Explanation {
        Explanation {
            outcome: "refused",
            steps: Vec::new(),
            failing_step: Some(step),
            error: Some(ExplainedError {
                status: 400,
                error,
                error_description: format!("{step}: {description}"),
            }),
            token: None,
            signing_alg: None,
            token_type: None,
            refresh_token: false,
        }
    }

    fn case(expect: &str) -> Expect {
        let text = format!(
            "description = \"d\"\nnow = 2030-01-01T00:00:00Z\n[request]\nclient = \"c\"\n\
             [subject]\nissuer = \"i\"\n[expect]\n{expect}\n"
        );
        Case::parse(&text, Path::new(".")).unwrap().expect
    }

    #[test]
    fn a_refusal_at_another_step_says_expected_and_got() {
        let want = case("outcome = \"refused\"\nstep = \"scope\"\nerror = \"invalid_scope\"");
        let got = refused(
            Step::Target,
            ErrorCode::InvalidTarget,
            "audience x is not allowed",
        );
        assert_eq!(
            verdict(&want, &got).unwrap_err(),
            "expected refused at scope (invalid_scope), got refused at target \
             (invalid_target: audience x is not allowed)"
        );
        assert_eq!(
            verdict(&want, &issued(json!({}))).unwrap_err(),
            "expected refused at scope (invalid_scope), got issued"
        );
        let same = refused(
            Step::Scope,
            ErrorCode::InvalidScope,
            "scope y is not allowed",
        );
        assert_eq!(verdict(&want, &same), Ok(()));
        let other_code = refused(Step::Scope, ErrorCode::InvalidRequest, "z");
        assert!(verdict(&want, &other_code).is_err());
    }

    #[test]
    fn an_issued_token_is_compared_claim_by_claim() {
        let want = case(
            "outcome = \"issued\"\nscope = \"b a\"\naudience = \"inventory\"\nlifetime = \"5m\"\n\
             claims = { sub = \"alice\", act = { sub = \"demo-client\" } }\nabsent = [\"groups\"]",
        );
        let token = json!({
            "sub": "alice", "aud": "inventory", "scope": "a b", "iat": 100, "exp": 400,
            "act": {"sub": "demo-client"},
        });
        assert_eq!(
            verdict(&want, &issued(token.clone())),
            Ok(()),
            "scope order does not matter"
        );
        let mut bad = token;
        bad["sub"] = json!("bob");
        bad["groups"] = json!(["x"]);
        bad["exp"] = json!(700);
        bad.as_object_mut().unwrap().remove("act");
        let err = verdict(&want, &issued(bad)).unwrap_err();
        assert_eq!(
            err,
            "issued, but claim act: expected {\"sub\":\"demo-client\"}, got none; \
             claim sub: expected \"alice\", got \"bob\"; claim groups: expected none, got [\"x\"]; \
             lifetime: expected 5m, got 10m"
        );
        let err = verdict(
            &want,
            &refused(
                Step::Expiry,
                ErrorCode::InvalidRequest,
                "subject token expired",
            ),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "expected issued, got refused at expiry (invalid_request: subject token expired)"
        );
    }
}
