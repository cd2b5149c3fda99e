//! The runtime over real HTTP: health, readiness before and after an escalation, the
//! supervisor report, and isolation between two runtimes in one process.

// Reads figures only leanserve's internals show (the `cli` feature, on by default).
#![cfg(feature = "cli")]

mod util;

use leanserve::internals::child_order;
use leanserve::{Runtime, Subsystems};
use util::{Crash, eventually, get_json, serve, site, start, start_with_fragile, test_opts};

#[test]
fn runtime_subsystems_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Subsystems>();
}

#[actix_rt::test]
async fn runtime_health_and_ready_answer_200_when_all_children_run() {
    let site = site();
    let (_subsystems, server) = start(site.path(), &[]).serve().await;
    let (status, body) = get_json(&server.url("/health"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = get_json(&server.url("/ready"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["unready"], serde_json::json!([]));
}

#[actix_rt::test]
async fn runtime_admin_supervisor_reports_children_and_failures() {
    let site = site();
    let (subsystems, fragile) = start_with_fragile(site.path(), "3").await;
    let server = serve(&subsystems);
    assert!(fragile.send(Crash).await.is_err());
    eventually("fragile restarted", || async {
        fragile.generation() == 2 && fragile.is_alive()
    })
    .await;
    let (status, tree) = get_json(&server.url("/admin/supervisor"), None).await;
    assert_eq!(status, 200);
    assert_eq!(tree["name"], "leanserve");
    let children = tree["children"].as_array().unwrap();
    let names: Vec<_> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut expected = child_order(subsystems.opts());
    expected.push("fragile");
    assert_eq!(names, expected);
    let fragile_report = &children[7];
    assert_eq!(fragile_report["restarts"], 1);
    assert_eq!(fragile_report["panics"], 1);
    assert_eq!(fragile_report["state"], "running");
    let message = fragile_report["last_failure"]["message"].as_str().unwrap();
    assert!(message.contains("fragile host actor crashed"), "{message}");
    assert!(
        fragile_report["last_failure"]["at_unix_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[actix_rt::test]
async fn runtime_escalation_makes_ready_503_while_health_stays_200() {
    let site = site();
    let (subsystems, fragile) = start_with_fragile(site.path(), "1").await;
    let server = serve(&subsystems);
    assert_eq!(get_json(&server.url("/ready"), None).await.0, 200);

    assert!(fragile.send(Crash).await.is_err());
    eventually("first restart", || async { fragile.is_alive() }).await;
    assert_eq!(
        get_json(&server.url("/ready"), None).await.0,
        200,
        "one restart is within intensity"
    );
    assert!(fragile.send(Crash).await.is_err());
    tokio::time::timeout(std::time::Duration::from_secs(5), subsystems.escalated())
        .await
        .expect("second panic exceeds 1 restart and escalates");

    let (status, body) = get_json(&server.url("/ready"), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["escalated"], true);
    assert_eq!(body["unready"], serde_json::json!(["leanserve"]));
    assert_eq!(get_json(&server.url("/health"), None).await.0, 200);
    let (_, tree) = get_json(&server.url("/admin/supervisor"), None).await;
    assert_eq!(tree["state"], "gave_up");
}

#[actix_rt::test]
async fn runtime_two_runtimes_in_one_process_share_nothing() {
    let (site_a, site_b) = (site(), site());
    let (first, fragile) = start_with_fragile(site_a.path(), "0").await;
    let second = start(site_b.path(), &[]).runtime().await;
    assert!(fragile.send(Crash).await.is_err());
    tokio::time::timeout(std::time::Duration::from_secs(5), first.escalated())
        .await
        .expect("first runtime escalates");
    assert!(!first.readiness().ready);
    assert!(second.readiness().ready, "{:?}", second.readiness());
    assert!(second.sample_process().await.unwrap().is_some());
    assert_eq!(second.supervisor_report().restarts, 0);
}

#[actix_rt::test]
async fn runtime_shutdown_stops_children_and_readiness_drops() {
    let site = site();
    let subsystems = start(site.path(), &[]).runtime().await;
    assert!(subsystems.sample_process().await.is_ok());
    subsystems.shutdown().await;
    let readiness = subsystems.readiness();
    assert!(!readiness.ready && !readiness.escalated, "{readiness:?}");
    assert!(subsystems.sample_process().await.is_err());
}

#[actix_rt::test]
async fn runtime_serves_the_static_root_and_nothing_outside_it() {
    let site = site();
    let (_subsystems, server) = start(site.path(), &[]).serve().await;
    let client = awc::Client::default();
    let mut index = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.body().await.unwrap(), "<h1>fixture site</h1>");
    for escape in ["/../Cargo.toml", "/%2e%2e/Cargo.toml", "/..%2fCargo.toml"] {
        let response = client.get(server.url(escape)).send().await.unwrap();
        assert!(
            response.status().is_client_error(),
            "{escape}: {}",
            response.status()
        );
    }
}

/// Start-up itself is under test (a refusal): `Runtime::new(..).start()` is called
/// here, not through `util::start`, which panics on one.
#[actix_rt::test]
async fn runtime_refuses_a_missing_static_root() {
    let site = site();
    let mut opts = test_opts(site.path(), &[]);
    opts.static_files.root_dir = site.path().join("missing");
    let error = Runtime::new(opts).start().await.err().unwrap();
    assert!(error.to_string().contains("is not a directory"), "{error}");
}

/// Start-up itself is under test (a refusal): `Runtime::new(..).start()` is called
/// here, not through `util::start`, which panics on one.
#[actix_rt::test]
async fn runtime_refuses_hand_built_opts_that_config_would_refuse() {
    let site = site();
    let mut opts = test_opts(site.path(), &[]);
    opts.limiter.config.limit.min = opts.limiter.config.limit.max + 1;
    let error = Runtime::new(opts).start().await.err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with("invalid value for `limiter.min_limit` from options set in code"),
        "{error}"
    );
}

/// This test binary keeps the system allocator, as an embedding application may: the
/// profiler says which figures it cannot give, and refuses heap profiles with a reason.
#[actix_rt::test]
async fn runtime_profiler_without_jemalloc_reports_what_is_unavailable() {
    let site = site();
    let subsystems = start(site.path(), &[]).runtime().await;
    let stats = subsystems.memory_stats().await.unwrap();
    assert_eq!(stats.allocator, leanserve::Allocator::System);
    assert_eq!((stats.heap_alloc_mb, stats.heap_resident_mb), (None, None));
    assert!(stats.rss_mb.is_some_and(|mb| mb > 1.0), "{stats:?}");
    assert!(
        stats
            .unavailable
            .iter()
            .any(|reason| reason.contains("not the global allocator")),
        "{stats:?}"
    );
    assert!(matches!(
        stats.heap_profiling,
        leanserve::HeapProfiling::Unavailable { .. }
    ));
    let snapshot = subsystems.take_snapshot(None).await.unwrap();
    assert!(snapshot.heap.is_none() && snapshot.rss_bytes.is_some());

    let server = serve(&subsystems);
    let (status, body) = get_json(&server.url("/debug/pprof/heap"), None).await;
    assert_eq!(status, 409, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.contains("use_jemalloc!"), "{reason}");
}
