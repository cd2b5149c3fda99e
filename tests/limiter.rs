//! The in-flight limiters over real sockets: a permit is held until the response body has
//! been sent (a slowly read streamed file keeps its slot), a request over the limit gets
//! a fast 503 with `Retry-After`, renders have their own limit, and health, readiness,
//! metrics and admin routes are never limited.

// Reads figures only leanserve's internals show (the `cli` feature, on by default).
#![cfg(feature = "cli")]

mod util;

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{get_json, raw, site, start};

/// One slot, no queue, and files over 64 KiB streamed.
fn one_slot() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LEANSERVE_LIMITER_ENABLED", "true"),
        ("LEANSERVE_LIMITER_MIN_LIMIT", "1"),
        ("LEANSERVE_LIMITER_MAX_LIMIT", "1"),
        ("LEANSERVE_LIMITER_QUEUE_SIZE", "0"),
        ("STATIC_FILE_MAX_FILE_SIZE", "65536"),
    ]
}

#[actix_rt::test]
async fn limiter_holds_the_slot_until_a_streamed_body_is_sent_and_refuses_fast_meanwhile() {
    let site = site();
    std::fs::write(site.path().join("big.bin"), vec![7u8; 32 << 20]).unwrap();
    let (subsystems, server) = start(site.path(), &one_slot()).serve().await;

    // A client that asks for 32 MiB and reads only the first bytes.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = slow.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));

    // The slot is taken while the body is unsent: the next file request is refused at
    // once, not queued (the limiter's counters say so; the time is printed, not judged).
    let started = Instant::now();
    let refused = raw(server.addr, "GET", "/index.html", &[]).await;
    println!("refused in {:?}", started.elapsed());
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let stats = leanserve::internals::limiters(&subsystems)
        .unwrap()
        .files
        .stats();
    assert_eq!(
        (stats.in_flight, stats.rejected_total, stats.queued_total),
        (1, 1, 0),
        "refused while the slot is held, without waiting in a queue: {stats:?}"
    );
    // Never limited: health, readiness, admin, and renders (their own limiter).
    assert_eq!(get_json(&server.url("/health"), None).await.0, 200);
    assert_eq!(get_json(&server.url("/ready"), None).await.0, 200);
    let (status, pools) = get_json(&server.url("/admin/pools"), None).await;
    assert_eq!((status, pools["enabled"].as_bool()), (200, Some(true)));
    let page = raw(server.addr, "GET", "/templates/pages/index.html", &[]).await;
    assert_eq!(page.status, 200, "renders have their own limit");

    // Read the rest: the slot comes back once the body has been sent.
    let mut total = n;
    let mut buffer = vec![0u8; 1 << 20];
    while total < (32 << 20) {
        let read = slow.read(&mut buffer).await.unwrap();
        if read == 0 {
            break;
        }
        total += read;
    }
    drop(slow);
    util::eventually("the slot is free again", || async {
        raw(server.addr, "GET", "/index.html", &[]).await.status == 200
    })
    .await;
    let stats = leanserve::internals::limiters(&subsystems)
        .unwrap()
        .files
        .stats();
    assert_eq!(stats.in_flight, 0);
    assert!(stats.rejected_total >= 1, "{stats:?}");
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    assert!(
        text.contains("leanserve_limiter_rejected_total{limiter=\"files\"}"),
        "{text}"
    );
    assert!(text.contains("leanserve_limiter_limit{limiter=\"renders\"} 1\n"));
}

#[actix_rt::test]
async fn limiter_off_admits_everything() {
    let site = site();
    let mut env = one_slot();
    env[0] = ("LEANSERVE_LIMITER_ENABLED", "false");
    std::fs::write(site.path().join("big.bin"), vec![7u8; 32 << 20]).unwrap();
    let (subsystems, server) = start(site.path(), &env).serve().await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = slow.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(
        raw(server.addr, "GET", "/index.html", &[]).await.status,
        200
    );
    assert!(leanserve::internals::limiters(&subsystems).is_none());
}

#[test]
fn limiter_min_over_max_stops_start_up_naming_the_key() {
    let site = site();
    let options = leanserve::LoadOptions::default()
        .config_dir(util::config_dir())
        .profile("test")
        .var("STATIC_FILE_ROOT_DIR", site.path().to_str().unwrap())
        .var("LEANSERVE_LIMITER_MIN_LIMIT", "50")
        .var("LEANSERVE_LIMITER_MAX_LIMIT", "10");
    match leanserve::Config::load(&options) {
        Err(leanserve::ConfigError::Invalid { key, allowed, .. }) => {
            assert_eq!(key, "limiter.min_limit");
            assert!(allowed.contains("limiter.max_limit (10)"), "{allowed}");
        }
        other => panic!("{other:?}"),
    }
}
