//! The monitor over real HTTP: Prometheus text checked by the official Python client's
//! exposition parser, a bounded number of series under a flood of random paths, the JSON
//! views, alert rules and `check_alerts`, the Alertmanager webhook against a receiver on
//! loopback (and a dead one), and monitoring switched off.

// Reads figures only leanserve's internals show (the `cli` feature, on by default).
#![cfg(feature = "cli")]

mod util;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use leanserve::internals::child_order;
use leanserve::{Comparison, Rule, Severity};
use util::{Server, Start, eventually, get_json, site, start, test_opts};

async fn traffic(server: &Server, hits: usize) {
    let client = awc::Client::default();
    for i in 0..hits {
        let path = if i % 10 == 9 {
            format!("/missing-{i}.css")
        } else {
            "/app.css".to_owned()
        };
        client
            .get(server.url(&path))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
    }
}

/// Parses exposition text with `prometheus_client.parser` (installed by scripts/test.sh)
/// and answers {family: {"type": .., "samples": [[name, labels, value], ..]}}.
fn parse_with_prometheus_client(text: &str) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "documentation": family.documentation,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test.sh installs prometheus_client)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the exposition parser refused the text: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .count()
}

#[actix_rt::test]
async fn monitoring_metrics_parse_with_the_prometheus_parser() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    traffic(&server, 50).await;
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    let families = parse_with_prometheus_client(&text);
    let family = |name: &str| {
        families
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    // The parser names counters without `_total`.
    assert_eq!(family("leanserve_files_served")["type"], "counter");
    assert_eq!(family("leanserve_cache_hit_ratio")["type"], "gauge");
    assert_eq!(family("leanserve_process_rss_bytes")["type"], "gauge");
    let histogram = family("leanserve_serve_time_seconds");
    assert_eq!(histogram["type"], "histogram");
    let samples = histogram["samples"].as_array().unwrap();
    let inf = samples
        .iter()
        .find(|s| s[0] == "leanserve_serve_time_seconds_bucket" && s[1]["le"] == "+Inf")
        .unwrap();
    let count = samples
        .iter()
        .find(|s| s[0] == "leanserve_serve_time_seconds_count")
        .unwrap();
    assert_eq!(inf[2], count[2]);
    assert_eq!(count[2], 45.0, "45 of the 50 requests found a file");
    let requests = family("leanserve_requests")["samples"]
        .as_array()
        .unwrap()
        .clone();
    let by_class = |class: &str| {
        requests.iter().find(|s| s[1]["class"] == class).unwrap()[2]
            .as_f64()
            .unwrap()
    };
    assert_eq!((by_class("2xx"), by_class("4xx")), (45.0, 5.0));
    let restarts = family("leanserve_actor_restarts")["samples"]
        .as_array()
        .unwrap()
        .clone();
    let children: Vec<_> = restarts
        .iter()
        .map(|s| s[1]["child"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(children, child_order(subsystems.opts()));
    // Pools: a histogram per pool and counters with two labels parse too.
    let waits = family("leanserve_pool_acquire_wait_seconds");
    assert_eq!(waits["type"], "histogram");
    let pools_with_waits: std::collections::BTreeSet<_> = waits["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[1]["le"] == "+Inf")
        .map(|s| s[1]["pool"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        pools_with_waits.into_iter().collect::<Vec<_>>(),
        ["gzip", "inflate", "render_buffers"]
    );
    let discarded = family("leanserve_pool_discarded")["samples"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        discarded
            .iter()
            .any(|s| s[1]["pool"] == "gzip" && s[1]["reason"] == "panicked"),
        "{discarded:?}"
    );
    for (name, family) in families.as_object().unwrap() {
        assert!(
            !family["documentation"].as_str().unwrap().is_empty(),
            "{name} has HELP"
        );
    }
    for name in [
        "cache_bytes",
        "cache_budget_bytes",
        "process_rss_bytes",
        "serve_time_seconds",
        "request_duration_seconds",
        "files_served_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE leanserve_{name} ")),
            "{name}"
        );
    }
}

#[actix_rt::test]
async fn monitoring_random_paths_do_not_grow_the_series() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    traffic(&server, 10).await;
    subsystems.collect_now().await.unwrap();
    let before = series_count(&util::metrics_text(&server).await);
    let client = awc::Client::default();
    for i in 0..300 {
        let path = format!("/random/{i}/{}.html?x={i}", i * 7919);
        client.get(server.url(&path)).send().await.unwrap();
    }
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    assert_eq!(series_count(&text), before, "no per-path series");
    assert!(!text.contains("random"));
}

#[actix_rt::test]
async fn monitoring_json_views_agree_with_the_traffic() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    traffic(&server, 20).await;
    subsystems.collect_now().await.unwrap();
    let (status, body) = get_json(&server.url("/monitoring"), None).await;
    assert_eq!(status, 200);
    let metrics = &body["metrics"];
    assert_eq!(metrics["files_served_total"], 18.0);
    assert_eq!(metrics["cache_hits_total"], 17.0);
    assert_eq!(
        metrics["cache_misses_total"], 3.0,
        "one miss for app.css, two 404 lookups"
    );
    assert_eq!(metrics["requests_2xx_total"], 18.0);
    assert_eq!(metrics["requests_4xx_total"], 2.0);
    assert_eq!(metrics["requests_total"], 20.0);
    for key in [
        "cache_hit_ratio",
        "compression_ratio",
        "cache_bytes",
        "cache_items",
        "serve_time_average_seconds",
        "serve_time_p50_seconds",
        "serve_time_p90_seconds",
        "serve_time_p99_seconds",
        "process_rss_bytes",
        "requests_per_second",
        "cache_evictions_total",
        "cache_budget_bytes",
        "actor_restarts_total",
        "compressed_served_total",
    ] {
        assert!(metrics[key].is_number(), "{key} in {metrics}");
    }
    assert!(metrics["serve_time_p99_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(body["children"].as_array().unwrap().len(), 7);
    assert_eq!(
        body["alerts"].as_array().unwrap().len(),
        10,
        "the default rules"
    );
    assert!(body["interval_seconds"].is_number());

    subsystems.collect_now().await.unwrap();
    let (_, history) = get_json(&server.url("/monitoring/history"), None).await;
    let samples = history["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "start, and two collections");
    assert!(
        samples
            .windows(2)
            .all(|w| w[0]["timestamp_ms"].as_u64() <= w[1]["timestamp_ms"].as_u64())
    );
    assert_eq!(samples.last().unwrap()["restarts"]["file_cache"], 0);
    let (_, alerts) = get_json(&server.url("/monitoring/alerts"), None).await;
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "inactive")
    );
}

fn rule(name: &str, metric: &str, comparison: Comparison, threshold: f64) -> Rule {
    Rule::new(name, metric, comparison, threshold)
        .cooldown(Duration::from_secs(3600))
        .severity(Severity::Critical)
        .message(format!("{metric} crossed {threshold}"))
}

#[actix_rt::test]
async fn monitoring_alert_fires_and_check_alerts_returns_it() {
    let site = site();
    let mut opts = test_opts(site.path(), &[]);
    opts.monitoring.alerts.push(
        rule("busy", "requests_total", Comparison::AtLeast, 5.0)
            .for_duration(Duration::from_millis(1)),
    );
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    subsystems.collect_now().await.unwrap();
    assert!(subsystems.check_alerts().await.unwrap().is_empty());
    traffic(&server, 6).await;
    subsystems.collect_now().await.unwrap();
    let busy = util::alert_named(&server, "busy").await;
    assert_eq!(
        busy["state"], "pending",
        "`for` has not elapsed at the first evaluation"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    subsystems.collect_now().await.unwrap();
    let firing = subsystems.check_alerts().await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        (firing[0].name.as_str(), firing[0].severity),
        ("busy", Severity::Critical)
    );
    assert!(firing[0].value.unwrap() >= 6.0);
}

/// A webhook receiver on loopback that records what it is sent; with `fail_first` it
/// answers 500 to that many posts first.
fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>, Server) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(fail_first));
    let (sink, left) = (received.clone(), failures.clone());
    let server = util::serve_with(move |cfg| {
        let (sink, left) = (sink.clone(), left.clone());
        cfg.route(
            "/hook",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let (sink, left) = (sink.clone(), left.clone());
                async move {
                    let mut left = left.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return HttpResponse::InternalServerError().finish();
                    }
                    sink.lock().unwrap().push(body.into_inner());
                    HttpResponse::Ok().finish()
                }
            }),
        );
    });
    (server.url("/hook"), received, server)
}

#[actix_rt::test]
async fn monitoring_webhook_receives_firing_and_resolved_in_alertmanager_format() {
    let site = site();
    let (url, received, hook) = receiver(1);
    let mut opts = test_opts(site.path(), &[]);
    opts.monitoring.webhook_url = Some(url);
    opts.monitoring
        .alerts
        .push(rule("cache_in_use", "cache_items", Comparison::Above, 0.0));
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    traffic(&server, 2).await;
    subsystems.collect_now().await.unwrap();
    eventually("firing alert posted (after one retry)", || async {
        !received.lock().unwrap().is_empty()
    })
    .await;
    let firing = received.lock().unwrap()[0].clone();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["alerts"][0]["labels"]["alertname"], "cache_in_use");
    assert_eq!(firing["alerts"][0]["labels"]["severity"], "critical");
    assert!(
        firing["alerts"][0]["startsAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    subsystems.clear_cache().await.unwrap();
    subsystems.collect_now().await.unwrap();
    eventually("resolved alert posted", || async {
        received.lock().unwrap().len() >= 2
    })
    .await;
    let resolved = received.lock().unwrap()[1].clone();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "cache_in_use");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    hook.stop().await;
}

#[actix_rt::test]
async fn monitoring_dead_webhook_receiver_does_not_stop_serving_or_collecting() {
    let site = site();
    // A port that was free a moment ago: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = test_opts(site.path(), &[]);
    opts.monitoring.webhook_url = Some(format!("http://{dead}/hook"));
    opts.monitoring.webhook_retries = 3;
    opts.monitoring
        .alerts
        .push(rule("always", "cache_budget_bytes", Comparison::Above, 0.0));
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    for _ in 0..3 {
        subsystems.collect_now().await.unwrap();
        traffic(&server, 10).await;
    }
    let monitoring = leanserve::internals::monitoring(&subsystems).unwrap();
    assert!(monitoring.history().len() >= 4);
    assert_eq!(subsystems.check_alerts().await.unwrap().len(), 1);
    assert_eq!(
        leanserve::internals::requests(&subsystems).total(),
        30,
        "every request answered"
    );
}

#[actix_rt::test]
async fn monitoring_switched_off_answers_409_and_counts_nothing() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[("LEANSERVE_MONITORING_ENABLED", "false")])
        .serve()
        .await;
    traffic(&server, 5).await;
    for path in [
        "/metrics",
        "/monitoring",
        "/monitoring/alerts",
        "/dashboard",
    ] {
        let (status, off) = get_json(&server.url(path), None).await;
        assert_eq!(status, 409, "{path}: {off}");
        assert_eq!(off["switch"], "monitoring.enabled", "{path}");
    }
    assert_eq!(leanserve::internals::requests(&subsystems).total(), 0);
    assert!(leanserve::internals::monitoring(&subsystems).is_none());
    let names: Vec<_> = subsystems
        .supervisor_report()
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, child_order(subsystems.opts()));
    assert!(!names.iter().any(|name| name == "monitor"), "{names:?}");
}

#[actix_rt::test]
async fn monitoring_dashboard_and_its_assets_are_served_from_the_binary() {
    let site = site();
    let (_subsystems, server) = start(site.path(), &[]).serve().await;
    let client = awc::Client::default();
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let mut response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response
                .headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(!response.body().await.unwrap().is_empty());
        // A validator, so a browser's revalidation (no-cache) costs a 304, not the file.
        let first = util::raw(server.addr, "GET", path, &[]).await;
        let etag = first.header("etag").expect("an ETag").to_owned();
        assert_eq!(first.header("cache-control"), Some("no-cache"));
        let again = util::raw(server.addr, "GET", path, &[("If-None-Match", &etag)]).await;
        assert_eq!((again.status, again.body.len()), (304, 0), "{path}");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let other = util::raw(server.addr, "GET", path, &[("If-None-Match", "\"x\"")]).await;
        assert_eq!(other.status, 200, "{path}");
    }
    let redirect = util::raw(server.addr, "GET", "/dashboard/", &[]).await;
    assert_eq!(
        (redirect.status, redirect.header("location")),
        (308, Some("../dashboard"))
    );
}

#[actix_rt::test]
async fn monitoring_routes_are_not_counted_as_traffic_and_history_takes_since() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    for path in [
        "/metrics",
        "/monitoring",
        "/monitoring/history",
        "/dashboard",
    ] {
        get_json(&server.url(path), None).await;
    }
    assert_eq!(leanserve::internals::requests(&subsystems).total(), 0);
    traffic(&server, 3).await;
    assert_eq!(leanserve::internals::requests(&subsystems).total(), 3);
    subsystems.collect_now().await.unwrap();
    let (_, all) = get_json(&server.url("/monitoring/history"), None).await;
    let samples = all["samples"].as_array().unwrap();
    let first = samples[0]["timestamp_ms"].as_u64().unwrap();
    let (_, newer) = get_json(
        &server.url(&format!("/monitoring/history?since={first}")),
        None,
    )
    .await;
    assert_eq!(
        newer["samples"].as_array().unwrap().len(),
        samples.len() - 1
    );
    assert_eq!(
        get_json(&server.url("/monitoring/history?since=abc"), None)
            .await
            .0,
        400
    );
}
