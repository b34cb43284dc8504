//! `tessera explain` (SPEC §1): the `/token` decision for one request, step by step,
//! from the configured registry and the issuers' live keys; nothing is signed, stored or
//! audited, and the token text is never printed.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use crate::cli::ExplainArgs;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::exchange::{Explanation, Form, StepRecord, Verdict};
use crate::metrics::Metrics;
use crate::startup::{open_store, Parts};
use crate::trust::TrustStore;

use super::{Lines, NotOk, Usage};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

pub async fn run(config: &Config, args: &ExplainArgs) -> anyhow::Result<()> {
    let form = form(args)?;
    let mut config = config.clone();
    config.outbound.offline = args.offline;
    let config = &config;
    let store = open_store(config).await?;
    let trust = Arc::new(
        TrustStore::load(&config.trust.dir, &config.server.issuer)
            .with_context(|| format!("trust registry in {}", config.trust.dir.display()))?,
    );
    let metrics = Arc::new(Metrics::new());
    let parts = Parts::build(config, &store, Arc::new(SystemClock), trust, metrics).await?;
    let explanation = parts.exchanger.explain(&args.client, &form).await;
    parts.audit.shutdown().await;
    let mut out = Lines::stdout();
    if args.json {
        out.line(serde_json::to_string_pretty(&explanation)?)?;
    } else {
        print_text(&mut out, &explanation)?;
        if args.offline && explanation.failing_step == Some(crate::exchange::Step::Key) {
            out.line("(--offline: keys that live at a URL were not fetched)")?;
        }
    }
    out.finish()?;
    if explanation.issued() {
        Ok(())
    } else {
        Err(NotOk("refused").into())
    }
}

/// The `/token` form the request would send.
fn form(args: &ExplainArgs) -> anyhow::Result<Form> {
    let mut pairs = vec![
        ("grant_type".to_owned(), EXCHANGE.to_owned()),
        ("subject_token".to_owned(), read_token(&args.subject_token)?),
        (
            "subject_token_type".to_owned(),
            args.subject_token_type.clone(),
        ),
    ];
    if let (Some(file), Some(kind)) = (&args.actor_token, &args.actor_token_type) {
        pairs.push(("actor_token".to_owned(), read_token(file)?));
        pairs.push(("actor_token_type".to_owned(), kind.clone()));
    }
    pairs.extend(
        args.audience
            .iter()
            .map(|a| ("audience".to_owned(), a.clone())),
    );
    pairs.extend(
        args.resource
            .iter()
            .map(|r| ("resource".to_owned(), r.clone())),
    );
    pairs.extend(args.scope.iter().map(|s| ("scope".to_owned(), s.clone())));
    pairs.extend(
        args.requested_token_type
            .iter()
            .map(|t| ("requested_token_type".to_owned(), t.clone())),
    );
    if let Some(file) = &args.dpop {
        pairs.push(("dpop".to_owned(), read_token(file)?));
    }
    Ok(Form::from_pairs(pairs))
}

/// The token from a file or standard input, surrounding whitespace removed.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the token from stdin")?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?
    };
    Ok(text.trim().to_owned())
}

/// One line per step (`pass`/`FAIL`, the step, the token it was about, what it found),
/// then its compared values indented, then the outcome.
pub fn print_text<W: std::io::Write>(out: &mut Lines<W>, e: &Explanation) -> std::io::Result<()> {
    for step in &e.steps {
        if !print_step(out, step)? {
            return Ok(());
        }
    }
    let line = match (&e.error, e.failing_step) {
        (Some(err), Some(step)) => format!(
            "{} at step `{step}`: /token would answer {} {}: {}",
            e.outcome,
            err.status,
            err.error.as_str(),
            err.error_description
        ),
        _ => {
            let what = match (e.token_type, e.refresh_token) {
                (Some("DPoP"), true) => "a DPoP-bound token and a refresh token",
                (Some("DPoP"), false) => "a DPoP-bound token",
                (_, true) => "a bearer token and a refresh token",
                _ => "a bearer token",
            };
            match e.signing_alg {
                Some(alg) => format!("would issue {what}, signed with {alg}:"),
                None => format!("would issue {what}:"),
            }
        }
    };
    out.line(line)?;
    if let Some(token) = &e.token {
        out.line(serde_json::to_string_pretty(token).unwrap_or_default())?;
    }
    Ok(())
}

/// One step; `false` once the reader has gone.
fn print_step<W: std::io::Write>(out: &mut Lines<W>, s: &StepRecord) -> std::io::Result<bool> {
    let verdict = match s.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
    };
    let token = s
        .token
        .map(|t| format!(" [{}]", t.name()))
        .unwrap_or_default();
    let check = s.check.map(|c| format!(" ({c})")).unwrap_or_default();
    let mut open = out.line(format!(
        "{verdict} {:<16}{token}{check} {}",
        s.step.name(),
        s.summary
    ))?;
    for (name, value) in &s.values {
        let shown = match value {
            Value::String(v) => v.clone(),
            other => other.to_string(),
        };
        open = open && out.line(format!("       {name} = {shown}"))?;
    }
    Ok(open)
}
