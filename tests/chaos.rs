//! Fault injection (`--features chaos`): a panic injected into a supervised actor is
//! survived while the server keeps answering; past the restart intensity the standalone
//! server drains and exits with code 3.

#![cfg(feature = "chaos")]

mod util;

use std::time::Duration;

use actix_web::http::Version;
use util::{Start, eventually, get_json, site, start, test_opts};

async fn post(url: &str) -> u16 {
    awc::Client::default()
        .post(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_rt::test]
async fn chaos_panic_in_process_sampler_is_survived_while_serving() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    assert_eq!(post(&server.url("/admin/chaos/panic/process")).await, 202);
    eventually("process restarted", || async {
        let report = subsystems.supervisor_report();
        report.children[0].restarts == 1 && report.state == leanserve::SupervisorState::Running
    })
    .await;
    let (_, tree) = get_json(&server.url("/admin/supervisor"), None).await;
    let process = &tree["children"][0];
    assert_eq!(
        (process["panics"].as_u64(), process["state"].as_str()),
        (Some(1), Some("running"))
    );
    assert!(
        process["last_failure"]["message"]
            .as_str()
            .unwrap()
            .contains("chaos: injected panic")
    );
    assert_eq!(get_json(&server.url("/health"), None).await.0, 200);
    assert_eq!(get_json(&server.url("/ready"), None).await.0, 200);
    let (status, sample) = get_json(&server.url("/admin/process"), None).await;
    assert_eq!(status, 200, "the fresh sampler answers");
    assert!(sample["sample"]["rss_bytes"].as_u64().unwrap() > 0);
}

#[actix_rt::test]
async fn chaos_pools_and_their_objects_survive_the_pool_managers_restart() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    let numbers = subsystems
        .create_pool(
            "numbers",
            leanserve::PoolSpec::new(2).min_idle(2),
            leanserve::FnManager::new(|| Ok::<u32, std::io::Error>(5)),
        )
        .await
        .unwrap();
    subsystems.maintain_pools().await.unwrap();
    let held = numbers.try_acquire().unwrap();
    assert_eq!(
        post(&server.url("/admin/chaos/panic/pool_manager")).await,
        202
    );
    eventually("pool_manager restarted", || async {
        let report = subsystems.supervisor_report();
        report
            .children
            .iter()
            .any(|c| c.name == "pool_manager" && c.restarts == 1)
    })
    .await;
    // Same pool, same objects: the registry lives outside the actor.
    drop(held);
    let stats = subsystems
        .pool_stats()
        .into_iter()
        .find(|stats| stats.name == "numbers")
        .unwrap();
    assert_eq!((stats.created, stats.idle, stats.in_use), (2, 2, 0));
    assert_eq!(*numbers.try_acquire().unwrap(), 5);
    // The new incarnation answers messages and keeps maintaining.
    let resized = subsystems
        .resize_pool(
            "numbers",
            leanserve::Resize::default().max_size(1).min_idle(1),
            "api",
        )
        .await
        .unwrap();
    assert_eq!((resized.max_size, resized.size), (1, 1));
    let (status, body) = get_json(&server.url("/admin/pools/numbers"), None).await;
    assert_eq!((status, body["max_size"].as_u64()), (200, Some(1)));
}

#[actix_rt::test]
async fn chaos_unknown_child_is_404_and_route_needs_admin_access() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[("LEANSERVE_ADMIN_TOKEN", "tok-tok-tok")])
        .serve()
        .await;
    assert_eq!(post(&server.url("/admin/chaos/panic/process")).await, 401);
    let status = awc::Client::default()
        .post(server.url("/admin/chaos/panic/nobody"))
        .insert_header(("Authorization", "Bearer tok-tok-tok"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    assert_eq!(subsystems.supervisor_report().children[0].panics, 0);
}

#[actix_rt::test]
async fn chaos_server_binary_survives_one_panic_and_exits_3_past_intensity() {
    let (mut child, url, admin, _site) =
        util::spawn_server(&[("LEANSERVE_SUPERVISOR_MAX_RESTARTS", "1")]);
    // The chaos routes live on the admin listener only.
    assert_eq!(post(&format!("{url}/admin/chaos/panic/process")).await, 404);
    assert_eq!(
        post(&format!("{admin}/admin/chaos/panic/process")).await,
        202
    );
    eventually("restarted once", || async {
        let (_, tree) = get_json(&format!("{admin}/admin/supervisor"), None).await;
        tree["children"][0]["restarts"] == 1 && tree["children"][0]["state"] == "running"
    })
    .await;
    assert_eq!(get_json(&format!("{url}/ready"), None).await.0, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after one panic"
    );

    assert_eq!(
        post(&format!("{admin}/admin/chaos/panic/process")).await,
        202
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after escalation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(3));
}

/// Panics the file cache (its first restart) and waits until it runs again.
async fn panic_the_file_cache_once(server: &util::Server, subsystems: &leanserve::Subsystems) {
    assert_eq!(
        post(&server.url("/admin/chaos/panic/file_cache")).await,
        202
    );
    eventually("file cache restarted", || async {
        let report = subsystems.supervisor_report();
        let cache = report
            .children
            .iter()
            .find(|c| c.name == "file_cache")
            .unwrap();
        cache.restarts == 1 && cache.state == leanserve::ChildState::Running
    })
    .await;
}

#[actix_rt::test]
async fn chaos_file_cache_restart_starts_empty_and_refills_while_serving() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    let client = awc::Client::default();
    let mut first = client.get(server.url("/app.css")).send().await.unwrap();
    assert_eq!(first.body().await.unwrap(), "body { color: teal }");
    assert_eq!(subsystems.cache_item_count().await.unwrap(), 1);

    panic_the_file_cache_once(&server, &subsystems).await;
    assert_eq!(
        subsystems.cache_item_count().await.unwrap(),
        0,
        "a new incarnation starts empty"
    );
    let mut again = client.get(server.url("/app.css")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.body().await.unwrap(), "body { color: teal }");
    assert_eq!(
        subsystems.cache_item_count().await.unwrap(),
        1,
        "and refills"
    );
}

#[actix_rt::test]
async fn chaos_monitor_restart_keeps_metrics_and_counts_the_restart() {
    let site = site();
    let (_subsystems, server) = start(site.path(), &[("LEANSERVE_MONITORING_INTERVAL_MS", "100")])
        .serve()
        .await;
    assert_eq!(post(&server.url("/admin/chaos/panic/monitor")).await, 202);
    eventually(
        "monitor restarted and reporting its own restart",
        || async {
            let (status, body) = get_json(&server.url("/monitoring"), None).await;
            status == 200
                && body["children"].as_array().is_some_and(|children| {
                    children.iter().any(|c| {
                        c["name"] == "monitor" && c["restarts"] == 1 && c["state"] == "running"
                    })
                })
        },
    )
    .await;
    let restarts = util::alert_named(&server, "actor_restarts").await;
    assert_eq!(
        restarts["state"], "firing",
        "a restart in the last 5 minutes: {restarts}"
    );
    let text = util::metrics_text(&server).await;
    assert!(text.contains("leanserve_actor_restarts_total{child=\"monitor\"} 1"));
}

#[actix_rt::test]
async fn chaos_profiler_restart_keeps_its_snapshots() {
    let site = site();
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    let before = subsystems
        .take_snapshot(Some("before".into()))
        .await
        .unwrap();
    assert_eq!(post(&server.url("/admin/chaos/panic/profiler")).await, 202);
    // The restarted profiler takes its start-up snapshot into the same ring.
    eventually("profiler restarted", || async {
        subsystems
            .snapshots()
            .last()
            .is_some_and(|s| s.index == before.index + 1 && s.label.is_none())
    })
    .await;
    let comparison = subsystems
        .compare_snapshots("before".into(), "latest".into())
        .await
        .unwrap();
    assert_eq!(comparison.a.index, before.index);
    let stats = subsystems.memory_stats().await.unwrap();
    assert_eq!(stats.snapshots_kept, 3, "start-up, before, restart");
}

#[actix_rt::test]
async fn chaos_template_store_restart_keeps_serving_and_reloads() {
    let site = site();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("t.txt"), "before {{ n }}").unwrap();
    let (subsystems, server) = start(
        site.path(),
        &[
            ("TEMPLATES_DIR", templates.path().to_str().unwrap()),
            ("TEMPLATE_RELOAD_INTERVAL", "0"),
        ],
    )
    .serve()
    .await;
    let render = |query: &'static str| {
        let url = server.url(&format!("/templates/t.txt{query}"));
        async move {
            let mut response = awc::Client::default().get(url).send().await.unwrap();
            let body = response.body().await.unwrap();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    assert_eq!(render("?n=1").await, (200, "before 1".to_owned()));
    // Changed on disk, with reloads only on request: the restarted store reads it.
    std::fs::write(templates.path().join("t.txt"), "after {{ n }}!").unwrap();
    assert_eq!(post(&server.url("/admin/chaos/panic/templates")).await, 202);
    // While it restarts, the published set keeps serving.
    let (status, _) = render("?n=2").await;
    assert_eq!(status, 200);
    eventually("the restarted store reloaded the folder", || async {
        render("?n=3").await == (200, "after 3!".to_owned())
    })
    .await;
    let restarted = subsystems
        .supervisor_report()
        .children
        .into_iter()
        .find(|c| c.name == "templates")
        .unwrap();
    assert_eq!(restarted.restarts, 1);
}

/// Alert states, timers and cooldowns survive the monitor's restarts: a condition that
/// holds throughout fires, and reaches the webhook, once; so does the restart alert,
/// however many restarts follow the first.
#[actix_rt::test]
async fn chaos_alerts_fire_once_across_monitor_restarts() {
    use actix_web::{HttpResponse, web};
    use std::sync::{Arc, Mutex};

    let received = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = received.clone();
    let hook = util::serve_with(move |cfg| {
        let sink = sink.clone();
        cfg.route(
            "/hook",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.into_inner());
                    HttpResponse::Ok().finish()
                }
            }),
        );
    });
    let url = hook.url("/hook");

    let site = site();
    let mut opts = test_opts(site.path(), &[("LEANSERVE_MONITORING_INTERVAL_MS", "100")]);
    opts.monitoring.webhook_url = Some(url);
    opts.monitoring.alerts.push(
        leanserve::Rule::new(
            "always",
            "requests_total",
            leanserve::Comparison::AtLeast,
            0.0,
        )
        .for_duration(Duration::from_millis(200))
        .cooldown(Duration::from_secs(3600))
        .severity(leanserve::Severity::Warning)
        .message("holds throughout"),
    );
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    let firing = |name: &'static str| {
        let received = received.clone();
        move || {
            received
                .lock()
                .unwrap()
                .iter()
                .filter(|post| {
                    post["status"] == "firing" && post["alerts"][0]["labels"]["alertname"] == name
                })
                .count()
        }
    };
    let (always, restarts) = (firing("always"), firing("actor_restarts"));
    eventually("the condition fires", || async { always() == 1 }).await;
    let since = |status: &serde_json::Value| status["since_ms"].as_u64().unwrap();
    let firing_since = since(&util::alert_named(&server, "always").await);
    let monitor = leanserve::internals::monitoring(&subsystems).unwrap();
    let mut restarts_since = None;
    for n in 1..=3 {
        assert_eq!(post(&server.url("/admin/chaos/panic/monitor")).await, 202);
        eventually("the monitor restarted", || async {
            let (status, body) = get_json(&server.url("/monitoring"), None).await;
            status == 200
                && body["children"].as_array().is_some_and(|children| {
                    children.iter().any(|c| {
                        c["name"] == "monitor" && c["restarts"] == n && c["state"] == "running"
                    })
                })
        })
        .await;
        // Rather than sleeping: wait for a collection by the new incarnation later than
        // the rule's `for` (200 ms) after the restart was seen. A monitor that had lost
        // the alert's timer would have turned it pending on its first collection and
        // firing, with a new `since`, by this one.
        let seen_ms = util::unix_ms();
        eventually(
            "a collection past the rule's `for` since the restart",
            || async {
                monitor
                    .latest()
                    .is_some_and(|sample| sample.timestamp_ms > seen_ms + 200)
            },
        )
        .await;
        let status = util::alert_named(&server, "always").await;
        assert_eq!(status["state"], "firing", "after restart {n}: {status}");
        assert!(
            since(&status).abs_diff(firing_since) < 200,
            "after restart {n} the alert fired anew: {status}, first fired at {firing_since}"
        );
        let restart_alert = util::alert_named(&server, "actor_restarts").await;
        assert_eq!(restart_alert["state"], "firing", "{restart_alert}");
        match restarts_since {
            // The first restart is announced by the new incarnation.
            None => {
                eventually("the restart alert posted", || async { restarts() >= 1 }).await;
                restarts_since = Some(since(&restart_alert));
            }
            // Later ones find it firing still, not anew.
            Some(first) => assert!(
                since(&restart_alert).abs_diff(first) < 200,
                "after restart {n} the restart alert fired anew: {restart_alert}"
            ),
        }
    }
    assert_eq!(always(), 1, "{:?}", received.lock().unwrap());
    assert_eq!(restarts(), 1, "{:?}", received.lock().unwrap());
    let status = util::alert_named(&server, "always").await;
    assert_eq!(status["state"], "firing");
    hook.stop().await;
}

/// Eight clients requesting, until finished, the path (and, if given, the exact body)
/// `pick` chooses for each request number; every answer but a 200 with that body is a
/// failure.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Answers that passed so far, across the clients.
    passed: std::sync::Arc<std::sync::atomic::AtomicU32>,
    clients: Vec<actix_rt::task::JoinHandle<(u32, Vec<String>)>>,
}

impl Load {
    /// Eight clients over HTTP/1.1, each with its own connections.
    fn start(url: &str, pick: fn(usize) -> (String, Option<String>)) -> Load {
        Load::through(url, None, pick)
    }

    /// Eight concurrent clients; with `shared`, all send through that one client (over
    /// HTTP/2: streams of one connection) and every answer must be HTTP/2.
    fn through(
        url: &str,
        shared: Option<awc::Client>,
        pick: fn(usize) -> (String, Option<String>),
    ) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let passed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let clients = (0..8usize)
            .map(|c| {
                let (url, stop, shared) = (url.to_owned(), stop.clone(), shared.clone());
                let passed = passed.clone();
                actix_rt::spawn(async move {
                    let h2 = shared.is_some();
                    let client = shared.unwrap_or_default();
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    let mut n = c;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (path, expected) = pick(n);
                        n += 1;
                        match client.get(format!("{url}{path}")).send().await {
                            Ok(response) if h2 && response.version() != Version::HTTP_2 => {
                                failed.push(format!("{path}: {:?}", response.version()))
                            }
                            Ok(mut response) if response.status() == 200 => {
                                let body = response.body().limit(1 << 20).await.unwrap();
                                match expected {
                                    Some(text) if body != text.as_bytes() => {
                                        failed.push(format!("{path}: {body:?}"))
                                    }
                                    _ => {
                                        ok += 1;
                                        passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    }
                                }
                            }
                            Ok(response) => failed.push(format!("{path}: {}", response.status())),
                            Err(error) => failed.push(format!("{path}: {error}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load {
            stop,
            passed,
            clients,
        }
    }

    /// Answers that passed so far.
    fn passed(&self) -> u32 {
        self.passed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until more than `before` answers passed: the clients are still served.
    async fn served_past(&self, before: u32) {
        eventually("the clients served again", || async {
            self.passed() > before
        })
        .await;
    }

    /// Stops the clients; answers the requests served and the failures.
    async fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut served, mut failures) = (0, Vec::new());
        for client in self.clients {
            let (ok, failed) = client.await.unwrap();
            served += ok;
            failures.extend(failed);
        }
        (served, failures)
    }
}

/// Requests for existing files never fail while the file cache restarts under load: a
/// load that dies with an incarnation is retried (on the request's thread or by the next
/// incarnation). Files over the non-blocking read limit go through the actor's blocking
/// loads, the ones a restart interrupts.
#[actix_rt::test]
async fn chaos_static_requests_never_fail_while_the_file_cache_restarts_under_load() {
    let site = site();
    let big = |i: usize| format!("/big{i}.txt");
    for i in 0..16 {
        let text = format!("line {i} of a file too large to read on a worker\n").repeat(8_000);
        std::fs::write(site.path().join(&big(i)[1..]), text).unwrap();
    }
    let (subsystems, server) = start(site.path(), &[("STATIC_FILE_MAX_CACHE_SIZE", "1048576")])
        .serve()
        .await;
    let load = Load::start(&server.url(""), |n| {
        let path = if n % 3 == 0 {
            "/app.css".to_owned()
        } else {
            format!("/big{}.txt", n % 16)
        };
        (path, None)
    });
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let before = load.passed();
        assert_eq!(
            post(&server.url("/admin/chaos/panic/file_cache")).await,
            202
        );
        eventually("the file cache restarted", || async {
            let report = subsystems.supervisor_report();
            let cache = report
                .children
                .iter()
                .find(|c| c.name == "file_cache")
                .unwrap();
            cache.restarts == n && cache.state == leanserve::ChildState::Running
        })
        .await;
        load.served_past(before).await;
    }
    let (served, failures) = load.finish().await;
    println!("{served} requests served across 3 restarts of the file cache");
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
}

/// Every supervised child panicked in turn, three times over, while clients keep requesting static
/// files (cached, and large enough to take the blocking path) and template renders: the
/// server stays ready and no request fails.
#[actix_rt::test]
async fn chaos_every_child_panicking_in_turn_under_load_fails_no_request() {
    let site = site();
    for i in 0..8 {
        let text = format!("line {i} of a file read on the blocking pool\n").repeat(8_000);
        std::fs::write(site.path().join(format!("big{i}.txt")), text).unwrap();
    }
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("t.txt"), "n = {{ n }}").unwrap();
    let (subsystems, server) = start(
        site.path(),
        &[
            ("TEMPLATES_DIR", templates.path().to_str().unwrap()),
            ("STATIC_FILE_MAX_CACHE_SIZE", "1048576"),
            ("LEANSERVE_SUPERVISOR_MAX_RESTARTS", "100"),
            ("LEANSERVE_MONITORING_INTERVAL_MS", "100"),
        ],
    )
    .serve()
    .await;
    let load = Load::start(&server.url(""), |n| match n % 4 {
        0 => ("/app.css".to_owned(), None),
        1 => (format!("/templates/t.txt?n={n}"), Some(format!("n = {n}"))),
        _ => (format!("/big{}.txt", n % 8), None),
    });
    let children: Vec<String> = subsystems
        .supervisor_report()
        .children
        .iter()
        .map(|child| child.name.clone())
        .collect();
    assert!(children.len() >= 5, "{children:?}");
    for round in 1..=3u64 {
        for child in &children {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let before = load.passed();
            assert_eq!(
                post(&server.url(&format!("/admin/chaos/panic/{child}"))).await,
                202,
                "{child}"
            );
            eventually("the child restarted", || async {
                let report = subsystems.supervisor_report();
                let it = report.children.iter().find(|c| &c.name == child).unwrap();
                it.restarts == round && it.state == leanserve::ChildState::Running
            })
            .await;
            let (status, _) = get_json(&server.url("/ready"), None).await;
            assert_eq!(status, 200, "ready after {child}'s restart");
            load.served_past(before).await;
        }
    }
    let (served, failures) = load.finish().await;
    println!(
        "{served} requests served across {} restarts ({children:?} three times)",
        3 * children.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
}

/// A restart storm under load (`?storm=true`: the child panics again as soon as each
/// incarnation starts): restarts come after the documented backoff (doubling from
/// `supervisor.backoff_ms`, capped at `max_backoff_ms`), the site keeps answering every
/// request meanwhile, and past `max_restarts` the tree gives up and the binary drains
/// and exits 3.
#[actix_rt::test]
async fn chaos_restart_storm_backs_off_keeps_serving_then_exits_3() {
    let (mut child, url, admin, _site) = util::spawn_server(&[
        ("LEANSERVE_SUPERVISOR_MAX_RESTARTS", "5"),
        ("LEANSERVE_SUPERVISOR_PERIOD", "60"),
        ("LEANSERVE_SUPERVISOR_BACKOFF_MS", "100"),
        ("LEANSERVE_SUPERVISOR_MAX_BACKOFF_MS", "400"),
    ]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (url, stop) = (url.clone(), stop.clone());
        actix_rt::spawn(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(5))
                .finish();
            let (mut ok, mut refused) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.get(format!("{url}/app.css")).send().await {
                    Ok(mut response) => {
                        let status = response.status().as_u16();
                        let _ = response.body().await;
                        if status == 200 {
                            ok += 1;
                        } else {
                            refused.push(status);
                        }
                    }
                    // The server is gone (it exits at the end): no more answers to judge.
                    Err(_) => break,
                }
            }
            (ok, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    assert_eq!(
        post(&format!("{admin}/admin/chaos/panic/process?storm=true")).await,
        202
    );
    // When each restart shows, until the admin surface stops answering.
    let mut restarts_at = Vec::new();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(2))
        .finish();
    loop {
        let Ok(mut response) = client.get(format!("{admin}/admin/supervisor")).send().await else {
            break;
        };
        let Ok(tree) = response.json::<serde_json::Value>().await else {
            break;
        };
        let restarts = tree["children"]
            .as_array()
            .and_then(|children| children.iter().find(|c| c["name"] == "process"))
            .and_then(|c| c["restarts"].as_u64())
            .unwrap_or(0) as usize;
        while restarts_at.len() < restarts {
            restarts_at.push(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = util::exit_status(&mut child);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, refused) = load.await.unwrap();
    println!("restarts at {restarts_at:?}; {ok} requests served, refused {refused:?}");
    assert_eq!(
        status.code(),
        Some(3),
        "the binary exits 3 once the tree gives up"
    );
    // max_restarts (5) restarts, then it gives up; the last restart is followed at once
    // by the panic that makes the tree give up and close the admin surface, so the
    // 10 ms polls usually see only the first four.
    assert!(
        (4..=5).contains(&restarts_at.len()),
        "max_restarts restarts, then it gives up: {restarts_at:?}"
    );
    // Each restart waits at least its backoff: 100, 200, 400 (capped), 400, 400 ms after
    // the panic (which follows each start at once), so the binary applies the configured
    // backoff. Only the lower bound is checked: a loaded machine makes gaps longer, never
    // shorter. The doubling and the cap themselves are pinned on computed delays in
    // src/supervisor/spec.rs (`backoff_doubles_and_is_capped`).
    let mut previous = Duration::ZERO;
    for (at, delay) in restarts_at.iter().zip([100u64, 200, 400, 400, 400]) {
        let gap = at.saturating_sub(previous);
        assert!(
            gap >= Duration::from_millis(delay * 8 / 10),
            "restart after {gap:?}, backoff {delay} ms: {restarts_at:?}"
        );
        previous = *at;
    }
    assert!(ok > 0, "the site kept serving during the storm: {ok}");
    assert!(
        refused.is_empty(),
        "requests refused during the storm: {refused:?}"
    );
}

#[actix_rt::test]
async fn chaos_dictionaries_outlive_a_file_cache_restart() {
    let site = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let page = format!(
            "<!DOCTYPE html><html><head><title>Page {i}</title></head><body>\
             <nav>Home Guide Reference Changelog</nav><h1>Page {i}</h1>{}\
             <footer>The same footer on every page of the site</footer></body></html>",
            "<p>A paragraph the pages share.</p>".repeat(60)
        );
        std::fs::write(site.path().join(format!("p{i}.html")), page).unwrap();
    }
    let (subsystems, server) = start(site.path(), &[]).serve().await;
    eventually("the site dictionary trained", || async {
        !subsystems
            .cache_stats()
            .await
            .unwrap()
            .dictionaries
            .is_empty()
    })
    .await;
    let before = subsystems.cache_stats().await.unwrap();
    let hash = before.dictionaries[0].hash.clone();

    panic_the_file_cache_once(&server, &subsystems).await;
    // Clients still hold it: the same dictionary, not trained again, still served, still
    // used, and still counted against the budget.
    let after = subsystems.cache_stats().await.unwrap();
    assert_eq!(after.dictionaries[0].hash, hash);
    assert_eq!(after.dictionary_builds, 1);
    assert_eq!(after.dictionary_bytes, before.dictionary_bytes);
    let client = awc::Client::default();
    let mut dictionary = client
        .get(server.url(&format!("/.leanserve/dictionary/{hash}")))
        .send()
        .await
        .unwrap();
    assert_eq!(dictionary.status(), 200);
    let bytes = dictionary.body().limit(1 << 22).await.unwrap();
    use base64::Engine;
    use sha2::Digest;
    let available = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes))
    );
    let page = client
        .get(server.url("/p3.html"))
        .insert_header(("Accept-Encoding", "br, dcz"))
        .insert_header(("Available-Dictionary", available.as_str()))
        .no_decompress()
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers().get("content-encoding").unwrap(), "dcz");
}

/// A client of `https://localhost` trusting `certificate` alone, offering only `h2`.
fn h2_client(certificate: &rcgen::Certificate) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(util::tls_client_config(
            certificate.der(),
            &[b"h2"],
            rustls::DEFAULT_VERSIONS,
        )))
        .timeout(Duration::from_secs(30))
        .finish()
}

/// The binary over HTTPS and HTTP/2: eight concurrent streams on one connection while
/// every supervised child panics in turn, twice; no stream fails, and the connection
/// outlives every restart.
#[actix_rt::test]
async fn chaos_every_child_panicking_in_turn_fails_no_h2_stream_over_tls() {
    let tls = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    std::fs::write(&cert_path, certificate.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("t.txt"), "n = {{ n }}").unwrap();
    let (cert_path, key_path) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let (child, url, admin, site) = util::spawn_server(&[
        ("LEANSERVE_TLS_CERT", &cert_path),
        ("LEANSERVE_TLS_KEY", &key_path),
        ("TEMPLATES_DIR", templates.path().to_str().unwrap()),
        ("STATIC_FILE_MAX_CACHE_SIZE", "1048576"),
        ("LEANSERVE_SUPERVISOR_MAX_RESTARTS", "100"),
    ]);
    let mut child = KillOnDrop(child);
    for i in 0..8 {
        let text = format!("line {i} of a file read on the blocking pool\n").repeat(8_000);
        std::fs::write(site.path().join(format!("big{i}.txt")), text).unwrap();
    }
    let url = url.replace("127.0.0.1", "localhost");
    let load = Load::through(&url, Some(h2_client(&certificate)), |n| match n % 4 {
        0 => ("/app.css".to_owned(), None),
        1 => (format!("/templates/t.txt?n={n}"), Some(format!("n = {n}"))),
        _ => (format!("/big{}.txt", n % 8), None),
    });
    let (_, tree) = get_json(&format!("{admin}/admin/supervisor"), None).await;
    let children: Vec<String> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|child| child["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(children.len() >= 5, "{children:?}");
    for round in 1..=2u64 {
        for name in &children {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (panic, before) = (format!("{admin}/admin/chaos/panic/{name}"), load.passed());
            assert_eq!(post(&panic).await, 202, "{name}");
            eventually("the child restarted", || async {
                let (_, tree) = get_json(&format!("{admin}/admin/supervisor"), None).await;
                let it = tree["children"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["name"] == name.as_str())
                    .cloned()
                    .unwrap();
                it["restarts"] == round && it["state"] == "running"
            })
            .await;
            load.served_past(before).await;
        }
    }
    let (served, failures) = load.finish().await;
    println!(
        "{served} HTTP/2 streams served across {} restarts",
        2 * children.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
}

/// A server process, killed when dropped (also when an assertion fails halfway).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
