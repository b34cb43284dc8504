//! The Prometheus an SRE runs, against a running tessera (SPEC §7): Debian's `promtool`
//! checks the default scrape and the alert rules' unit tests; Debian's `prometheus`
//! scrapes the broker (it asks for OpenMetrics, so that format is parsed too), loads the
//! rules, and evaluates every dashboard query.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn tool(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: Debian's `prometheus` package provides it (scripts/setup-system \
         installs it)"
    );
    path
}

/// `orders-service` limited to 3 requests a minute, `acme`'s tokens single-use: so a few
/// requests make every family of SPEC §7 that traffic can move exist.
async fn busy_app() -> TestApp {
    let app = TestApp::builder(backends()[0])
        .file(
            "issuers/acme.toml",
            r#"kind = "oidc"
issuer = "{issuer}"
discovery_url = "{issuer}/.well-known/openid-configuration"
audiences = ["tessera", "app-only"]
algorithms = ["RS256", "ES256"]
token_types = ["id_token", "access_token", "jwt"]
one_time_use = true
[mapping]
claims = { email = "assertion.email", groups = "assertion.groups" }
"#,
        )
        .configure(|c| c.limits.client_rate = Some("3/m".parse().unwrap()))
        .spawn()
        .await;
    let token = app
        .issuer
        .id_token()
        .sub("alice")
        .claim("jti", json!("once"))
        .sign();
    let exchange = |t: String| {
        let app = &app;
        async move {
            app.exchange(&t, ID_TOKEN, &[("audience", "inventory")])
                .await
                .status()
        }
    };
    assert_eq!(exchange(token.clone()).await, StatusCode::OK);
    assert_eq!(
        exchange(token.clone()).await,
        StatusCode::BAD_REQUEST,
        "replayed"
    );
    assert_eq!(exchange("junk".into()).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        exchange(token).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth in a minute"
    );
    app
}

#[tokio::test]
async fn prometheus_scrapes_tessera_loads_the_rules_and_runs_every_dashboard_query() {
    let (promtool, prometheus) = (tool("promtool"), tool("prometheus"));
    let app = busy_app().await;

    // The default scrape is the 0.0.4 text format, clean under promtool.
    let resp = app.get("/metrics").await;
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every series of SPEC §7 that this traffic moves is there (the shadow registry's
    // and refresh tokens' have their own tests).
    for family in [
        "tessera_exchanges_total{",
        "tessera_exchange_duration_seconds_bucket{",
        "tessera_rejections_total{",
        "tessera_issuer_key_fetches_total{",
        "tessera_issuer_keys_age_seconds{",
        "tessera_issuer_keys_available{",
        "tessera_replays_blocked_total{issuer=\"acme\"} 1",
        "tessera_signing_key_age_seconds ",
        "tessera_trust_reloads_total{",
        "tessera_audit_queue_depth ",
        "tessera_rate_limited_total{client=\"orders-service\"} 1",
        "tessera_http_responses_total{",
        "tessera_ready 1",
        "process_cpu_seconds_total ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let om = app
        .http
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));

    // The alert rules' own unit tests.
    let rules = format!("{REPO}/deploy/prometheus/rules");
    let out = Command::new(&promtool)
        .args(["test", "rules", "tessera.rules.test.yml"])
        .current_dir(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scraping this broker with those rules.
    let dir = tempfile::tempdir().unwrap();
    let target = app.address.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - \
             {rules}/tessera.rules.yml\nscrape_configs:\n  - job_name: tessera\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = with_prometheus(&format!("http://127.0.0.1:{port}")).await;
    let _ = server.kill();
    let _ = server.wait();
    result.unwrap();
}

async fn with_prometheus(base: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
            resp.json::<Value>().await.map_err(|e| e.to_string())
        }
    };
    // The target is up: Prometheus parsed the scrape (its Accept asks for OpenMetrics).
    let mut last = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(targets) = get("/api/v1/targets".into()).await {
            last = targets.clone();
            let t = &targets["data"]["activeTargets"][0];
            if t["health"] == "up" {
                break;
            }
        }
    }
    let target = &last["data"]["activeTargets"][0];
    if target["health"] != "up" {
        return Err(format!("target never up: {last}"));
    }
    // The rules loaded, all twelve, and evaluate without error.
    let mut rules = Value::Null;
    for _ in 0..50 {
        rules = get("/api/v1/rules".into()).await?;
        let all = rules["data"]["groups"][0]["rules"].as_array().cloned();
        if all
            .as_ref()
            .is_some_and(|r| r.iter().all(|r| r["health"] == "ok"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .ok_or(format!("no rules: {rules}"))?;
    if loaded.len() != 12 || loaded.iter().any(|r| r["health"] != "ok") {
        return Err(format!("rules: {rules}"));
    }
    // Every dashboard query is valid PromQL (Grafana's $__rate_interval as 1m), and the
    // broker's series arrived.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{REPO}/deploy/grafana/dashboards/tessera.json")).unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            let url = reqwest::Url::parse_with_params(
                &format!("{base}/api/v1/query"),
                &[("query", expr.as_str())],
            )
            .unwrap();
            let answer: Value = http
                .get(url)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if answer["status"] != "success" {
                return Err(format!("{}: {expr}: {answer}", panel["title"]));
            }
            queries += 1;
        }
    }
    if queries < 20 {
        return Err(format!("only {queries} dashboard queries"));
    }
    let exchanges = get("/api/v1/query?query=tessera_exchanges_total".into()).await?;
    if exchanges["data"]["result"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return Err(format!("no tessera_exchanges_total scraped: {exchanges}"));
    }
    Ok(())
}
