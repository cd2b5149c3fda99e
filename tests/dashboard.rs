//! The live dashboard in a real browser. Headless Chromium, driven over WebDriver
//! (`util/webdriver.rs`), opens `/dashboard` on a server started through the production
//! path; the test sends traffic over real sockets, waits for the page to render it, and
//! checks the page's figures against `GET /monitoring` (the tuner's among them, with
//! the tuner deciding every second; the limiters' tile says "off", as in the test
//! profile). A second test mounts leanserve under a prefix, takes the server away and
//! brings it back: the page must say so, then recover on its own. Another turns the
//! limiters on (and the tuner off) and checks both tiles against `/monitoring`.
//!
//! The monitor samples every 200 ms here and the page polls twice per sampling interval,
//! so a fresh figure reaches the DOM within a few hundred milliseconds; every wait below
//! is a poll of the DOM with a generous deadline, never a fixed sleep that hopes.

mod util;
#[path = "util/webdriver.rs"]
mod webdriver;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpServer, web};
use leanserve::Subsystems;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{get_json, serve, site};
use webdriver::Browser;

/// The monitor's sampling interval in these tests, in milliseconds.
const INTERVAL_MS: u64 = 200;
/// How long a wait for the page may take before the test fails; far above the ~1 s
/// things take, so a slow or busy machine does not fail the test.
const PATIENCE: Duration = Duration::from_secs(30);
/// File requests the first test sends, in `BATCHES` batches.
const TRAFFIC: u64 = 300;
const BATCHES: u64 = 4;

/// What the page shows, read from the DOM in one script so the figures come from one
/// render.
const READ_PAGE: &str = r#"
const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : ''; };
const banner = document.getElementById('status-banner');
return {
  updatedMs: Number(document.body.dataset.updatedMs) || 0,
  hitRatio: text('hit-ratio'),
  rps: text('rps'),
  p99Ms: text('p99-ms'),
  rssMb: text('rss-mb'),
  heapMb: text('heap-mb'),
  templatesLoaded: text('templates-loaded'),
  poolsInUse: text('pools-in-use'),
  poolsSize: text('pools-size'),
  poolsCount: text('pools-count'),
  tunerState: document.getElementById('tuner')?.dataset.state ?? '',
  tunerLimitMb: text('tuner-limit-mb'),
  tunerCacheMb: text('tuner-cache-mb'),
  tunerCacheRecommendedMb: text('tuner-cache-recommended-mb'),
  tunerChanges: text('tuner-changes'),
  limiterState: document.getElementById('limiter')?.dataset.state ?? '',
  limiterFiles: text('limiter-files'),
  limiterRenders: text('limiter-renders'),
  limiterRejectedFiles: text('limiter-rejected-files'),
  limiterRejectedRenders: text('limiter-rejected-renders'),
  limiterQueued: text('limiter-queued'),
  cacheBytes: Number(document.getElementById('cache-bytes')?.dataset.value ?? -1),
  cacheItems: text('cache-items'),
  bytesSaved: Number(document.getElementById('bytes-saved')?.dataset.value ?? -1),
  responsesBr: text('responses-br'),
  requestsTotal: text('requests-total'),
  chartPoints: [...document.querySelectorAll('.chart')].map((c) => Number(c.dataset.points)),
  alerts: [...document.querySelectorAll('#alerts [data-alert-name]')]
    .map((a) => [a.dataset.alertName, a.dataset.state]),
  children: [...document.querySelectorAll('#children [data-child]')]
    .map((r) => [r.dataset.child, Number(r.dataset.restarts)]),
  bannerVisible: !!banner && !banner.hidden && banner.getClientRects().length > 0,
  bannerState: banner ? (banner.dataset.state || '') : '',
  bannerText: banner ? banner.textContent : '',
};
"#;

/// The page's figures as the DOM shows them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    /// `data-updated-ms` on `<body>`: `timestamp_ms` of the sample rendered (0: none yet).
    updated_ms: u64,
    hit_ratio: String,
    rps: String,
    p99_ms: String,
    rss_mb: String,
    heap_mb: String,
    templates_loaded: String,
    pools_in_use: String,
    pools_size: String,
    pools_count: String,
    /// `data-state` of the tuner tile: "on" once a round's figures arrived, "waiting"
    /// before (or with the tuner off), "" before the first sample.
    tuner_state: String,
    /// The memory limit in whole MiB, or "—".
    tuner_limit_mb: String,
    /// The file cache's budget now and as recommended, MiB to 0.1, or "—".
    tuner_cache_mb: String,
    tuner_cache_recommended_mb: String,
    tuner_changes: String,
    /// `data-state` of the limiter tile: "on", "off" (no limiter figures), "" at first.
    limiter_state: String,
    /// Files "in flight / limit", or "off".
    limiter_files: String,
    /// Renders "in flight / limit", or "—".
    limiter_renders: String,
    limiter_rejected_files: String,
    limiter_rejected_renders: String,
    limiter_queued: String,
    /// `data-value` of `#cache-bytes` (its text is rounded, "1.1 KiB").
    cache_bytes: f64,
    cache_items: String,
    /// `data-value` of `#bytes-saved` (its text is rounded).
    bytes_saved: f64,
    responses_br: String,
    requests_total: String,
    /// `data-points` of each `.chart`.
    chart_points: Vec<u64>,
    /// (`data-alert-name`, `data-state`) of each item of `#alerts`.
    alerts: Vec<(String, String)>,
    /// (`data-child`, `data-restarts`) of each row of `#children`.
    children: Vec<(String, u64)>,
    banner_visible: bool,
    banner_state: String,
    banner_text: String,
}

impl Page {
    fn requests_total(&self) -> u64 {
        self.requests_total.parse().unwrap_or(0)
    }

    /// Every chart drew at least `points` points.
    fn charts_have(&self, points: u64) -> bool {
        !self.chart_points.is_empty() && self.chart_points.iter().all(|&n| n >= points)
    }

    /// Some chart drew at least `points` points (without file traffic the serve-time
    /// and hit-ratio charts have nothing to draw).
    fn a_chart_has(&self, points: u64) -> bool {
        self.chart_points.iter().any(|&n| n >= points)
    }
}

async fn read_page(browser: &Browser) -> Page {
    let value = browser.execute(READ_PAGE, json!([])).await;
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("unexpected page state {value}: {e}"))
}

/// Reads the page until `cond` holds; fails after `PATIENCE` showing the last state read
/// and the browser's log.
async fn wait_for(browser: &Browser, what: &str, cond: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let page = read_page(browser).await;
        if cond(&page) {
            return page;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; the page shows {page:#?}\nbrowser log:\n{}",
                browser.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A figure of a `/monitoring` answer; metric values are JSON numbers, integral or not.
fn metric(json: &Value, key: &str) -> f64 {
    json["metrics"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("metrics.{key} is not a number in {json}"))
}

/// Waits until the monitor has taken a sample newer than the one `/monitoring` shows now.
async fn next_sample(server: &util::Server) {
    let url = server.url("/monitoring");
    let current = get_json(&url, None).await.1["timestamp_ms"].as_u64();
    util::eventually("the next monitor sample", || async {
        get_json(&url, None).await.1["timestamp_ms"].as_u64() != current
    })
    .await;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Starts leanserve (test profile, fast monitoring, and the settings in `env`) serving
/// the fixture site.
async fn start(site: &Path, env: &[(&str, &str)]) -> Subsystems {
    let interval = INTERVAL_MS.to_string();
    let mut vars = vec![("LEANSERVE_MONITORING_INTERVAL_MS", interval.as_str())];
    vars.extend_from_slice(env);
    util::start(site, &vars).runtime().await
}

/// Sends `TRAFFIC` GETs, one at a time: mostly the fixture site's two files, every
/// tenth one a file that does not exist (404). The monitor takes a sample between each
/// two batches, so at least `BATCHES` intervals saw files served (serve times exist only
/// for those: the serve-time chart draws a point for each).
async fn send_traffic(server: &util::Server) {
    let client = awc::Client::default();
    for i in 0..TRAFFIC {
        if i > 0 && i % (TRAFFIC / BATCHES) == 0 {
            next_sample(server).await;
        }
        let (path, expected) = match i % 10 {
            0 => (format!("/missing-{i}.html"), 404),
            1..=5 => ("/index.html".to_owned(), 200),
            _ => ("/app.css".to_owned(), 200),
        };
        let mut response = client.get(server.url(&path)).send().await.unwrap();
        response.body().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "GET {path}");
    }
}

/// Compares `page` with `json` (a later `GET /monitoring`) by `compare`, which lists
/// their differences; while there are any, reads both again each interval (the page may
/// not have rendered the JSON's sample yet), failing after `PATIENCE`. Answers the page
/// that agreed.
async fn until_agreed(
    browser: &Browser,
    server: &util::Server,
    mut page: Page,
    mut json: Value,
    compare: impl Fn(&Page, &Value) -> Vec<String>,
) -> Page {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = compare(&page, &json);
        if found.is_empty() {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "page and /monitoring differ: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(INTERVAL_MS)).await;
        page = read_page(browser).await;
        json = get_json(&server.url("/monitoring"), None).await.1;
    }
}

/// Where the page and `GET /monitoring` disagree about alerts and children: every alert
/// and child of the JSON must be on the page with the same state / restart count.
fn differences(page: &Page, json: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let alerts = json["alerts"].as_array().expect("alerts is a list");
    for alert in alerts {
        let name = alert["name"].as_str().unwrap();
        let state = alert["state"].as_str().unwrap();
        if !page.alerts.iter().any(|(n, s)| n == name && s == state) {
            found.push(format!(
                "alert {name} is {state}; the page has {:?}",
                page.alerts
            ));
        }
    }
    if page.alerts.len() != alerts.len() {
        found.push(format!(
            "{} alerts, the page lists {:?}",
            alerts.len(),
            page.alerts
        ));
    }
    let children = json["children"].as_array().expect("children is a list");
    for child in children {
        let name = child["name"].as_str().unwrap();
        let restarts = child["restarts"].as_u64().unwrap();
        if !page
            .children
            .iter()
            .any(|(n, r)| n == name && *r == restarts)
        {
            found.push(format!(
                "child {name} restarted {restarts} times; the page has {:?}",
                page.children
            ));
        }
    }
    found
}

/// Where the tuner tile and `GET /monitoring`'s tuner figures disagree: the memory
/// limit in whole MiB, the cache budget now and recommended in MiB to 0.1, the changes
/// applied. A figure `/monitoring` lacks must show as "—".
fn tuner_differences(page: &Page, json: &Value) -> Vec<String> {
    const MIB: f64 = 1_048_576.0;
    let mut found = Vec::new();
    let figure = |key: &str| json["metrics"].get(key).and_then(Value::as_f64);
    let limit = figure("tuner_memory_limit_bytes").map_or_else(
        || "—".to_owned(),
        |bytes| ((bytes / MIB).round() as u64).to_string(),
    );
    if page.tuner_limit_mb != limit {
        found.push(format!(
            "#tuner-limit-mb shows {:?}; /monitoring's tuner_memory_limit_bytes makes it {limit:?}",
            page.tuner_limit_mb
        ));
    }
    for (id, shown, key) in [
        (
            "tuner-cache-mb",
            &page.tuner_cache_mb,
            "tuner_cache_budget_bytes_value",
        ),
        (
            "tuner-cache-recommended-mb",
            &page.tuner_cache_recommended_mb,
            "tuner_cache_budget_bytes_recommended",
        ),
    ] {
        match figure(key) {
            None if shown == "—" => {}
            None => found.push(format!("#{id} shows {shown:?}; /monitoring has no {key}")),
            // The page rounds to 0.1 MiB.
            Some(bytes) => match shown.parse::<f64>() {
                Ok(mib) if (mib - bytes / MIB).abs() <= 0.05 + 1e-9 => {}
                _ => found.push(format!(
                    "#{id} shows {shown:?}; /monitoring's {key} is {bytes} ({:.1} MiB)",
                    bytes / MIB
                )),
            },
        }
    }
    let changes = figure("tuner_changes_total").unwrap_or(0.0) as u64;
    if page.tuner_changes != changes.to_string() {
        found.push(format!(
            "#tuner-changes shows {:?}; /monitoring counts {changes}",
            page.tuner_changes
        ));
    }
    found
}

/// Checks a PNG's signature, header and trailer (a truncated or mis-decoded image fails
/// one of them) and answers its width and height.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 64, "a PNG of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR", "the header chunk comes first");
    assert_eq!(
        &png[png.len() - 8..],
        b"IEND\xae\x42\x60\x82",
        "the image ends with IEND"
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[actix_rt::test]
async fn dashboard_figures_match_the_monitoring_api() {
    let browser = Browser::start().await;
    let site = site();
    // A stylesheet large enough to be sent compressed.
    std::fs::write(
        site.path().join("app.css"),
        (0..200)
            .map(|i| format!(".c{i} {{ color: teal; margin: {i}px }}\n"))
            .collect::<String>(),
    )
    .unwrap();
    // The tuner runs a round at start and then every second (not every 30 s), so its
    // figures on the page move during the test; it only recommends, so it changes no
    // cache budget or pool size under the comparisons below.
    let subsystems = start(
        site.path(),
        &[
            ("LEANSERVE_TUNER_INTERVAL", "1"),
            ("LEANSERVE_TUNER_MODE", "recommend"),
        ],
    )
    .await;
    let server = serve(&subsystems);

    browser.goto(&server.url("/dashboard")).await;
    wait_for(&browser, "the first sample", |p| p.updated_ms > 0).await;

    send_traffic(&server).await;
    // A sample whose timestamp is two intervals past the end of the traffic was taken
    // after every one of those requests had been answered and counted.
    let settled_ms = now_ms() + 2 * INTERVAL_MS;
    let page = wait_for(&browser, "the traffic and a tuner round on the page", |p| {
        p.updated_ms > settled_ms
            && p.requests_total() >= TRAFFIC
            && p.charts_have(BATCHES)
            && p.tuner_state == "on"
    })
    .await;
    let (status, json) = get_json(&server.url("/monitoring"), None).await;
    assert_eq!(status, 200, "{json}");
    let json_ms = json["timestamp_ms"].as_u64().unwrap();
    assert!(json_ms >= page.updated_ms, "the JSON is as new as the page");

    // requests_total only grows, and the page's sample is older than the JSON's; the
    // page's own polling adds requests in between, so equality is not expected.
    let json_requests = metric(&json, "requests_total") as u64;
    assert!(
        (TRAFFIC..=json_requests).contains(&page.requests_total()),
        "the page shows {} requests; {TRAFFIC} were sent and /monitoring counts {json_requests}",
        page.requests_total
    );
    // No file is requested after the traffic (the page's own requests are not files,
    // and its icon is inline), so the cache's figures are the same in both samples; the
    // only difference allowed is the page's rounding to 0.1 percentage points.
    let json_ratio = metric(&json, "cache_hit_ratio");
    let page_percent: f64 = page
        .hit_ratio
        .strip_suffix('%')
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("hit ratio {:?} is not a percentage", page.hit_ratio));
    assert!(
        (page_percent - json_ratio * 100.0).abs() <= 0.05 + 1e-9,
        "the page shows a hit ratio of {}, /monitoring {json_ratio} ({:.1}%)",
        page.hit_ratio,
        json_ratio * 100.0
    );
    assert_eq!(
        page.cache_items,
        (metric(&json, "cache_items") as u64).to_string(),
        "cached files"
    );
    assert_eq!(
        page.cache_bytes,
        metric(&json, "cache_bytes"),
        "cached bytes"
    );
    // The traffic's client takes br: the compression tile counts what it saved.
    assert!(metric(&json, "static_bytes_saved_total") > 0.0, "{json}");
    assert_eq!(
        page.bytes_saved,
        metric(&json, "static_bytes_saved_total"),
        "bytes saved"
    );
    assert_eq!(
        page.responses_br,
        (metric(&json, "static_responses_br_total") as u64).to_string(),
        "br responses"
    );
    // Serve times cover one interval; the page shows "—" for one without file serves.
    if metric(&json, "serve_time_p99_seconds") == 0.0 {
        assert_eq!(
            page.p99_ms, "—",
            "#p99-ms of an interval without files served"
        );
    } else {
        assert!(
            page.p99_ms.parse::<f64>().is_ok(),
            "#p99-ms {:?}",
            page.p99_ms
        );
    }
    for (name, figure) in [("rps", &page.rps), ("rss-mb", &page.rss_mb)] {
        let value: f64 = figure
            .parse()
            .unwrap_or_else(|_| panic!("#{name} shows {figure:?}, not a number"));
        assert!(value >= 0.0, "#{name} shows {figure}");
    }
    assert!(
        page.rss_mb.parse::<f64>().unwrap() > 0.0,
        "a process has memory"
    );
    // This test process keeps the system allocator: no heap figures, shown as such.
    assert!(json["metrics"].get("heap_allocated_bytes").is_none());
    assert_eq!(page.heap_mb, "n/a", "#heap-mb without jemalloc");
    assert_eq!(
        page.templates_loaded,
        (metric(&json, "templates_loaded") as u64).to_string(),
        "templates loaded"
    );
    // The pools tile: leanserve's three pools, objects alive and in use as /monitoring says.
    assert_eq!(page.pools_count, "3", "gzip, inflate, render_buffers");
    assert_eq!(
        (page.pools_in_use.as_str(), page.pools_size.as_str()),
        (
            (metric(&json, "pools_in_use") as u64).to_string().as_str(),
            (metric(&json, "pools_size") as u64).to_string().as_str()
        ),
        "pooled objects"
    );
    // The test profile has the limiters off: no figures, and the tile says so.
    assert!(
        json["metrics"].get("limiter_limit_files").is_none(),
        "limiter figures with limiter.enabled = false: {json}"
    );
    assert_eq!(
        (page.limiter_state.as_str(), page.limiter_files.as_str()),
        ("off", "off"),
        "the limiter tile with the limiters off"
    );
    assert_eq!(page.limiter_renders, "—", "#limiter-renders, limiters off");
    // The tuner has run (the page showed its figures), so /monitoring, newer, has them
    // too; the figures themselves are compared below, with the alerts.
    assert!(
        json["metrics"].get("tuner_changes_total").is_some(),
        "the page shows a tuner round /monitoring lacks: {json}"
    );
    assert!(
        page.chart_points.len() >= 4,
        "charts {:?}",
        page.chart_points
    );
    assert!(!page.banner_visible, "no banner while the server answers");

    // Alert states, restart counts and the tuner's recommendation (it follows RSS) may
    // change between the page's sample and the JSON's; until the page renders the next
    // sample they can legitimately differ, so they are compared again (a few times)
    // before the test calls it a failure.
    let page = until_agreed(&browser, &server, page, json, |page, json| {
        let mut found = differences(page, json);
        found.extend(tuner_differences(page, json));
        found
    })
    .await;

    // The whole page in one image: grow the window until the viewport holds the whole
    // document (the outer height adds whatever frame the browser draws), then wait for
    // a render at that size.
    for _ in 0..3 {
        let sizes = browser
            .execute(
                "const d = document.documentElement; \
                 return [d.scrollHeight, window.innerHeight, window.outerHeight];",
                json!([]),
            )
            .await;
        let [document, inner, outer] = [0, 1, 2].map(|i| sizes[i].as_u64().unwrap() as u32);
        if inner >= document {
            break;
        }
        browser
            .set_window_size(1280, outer + document - inner)
            .await;
    }
    let before = page.updated_ms;
    wait_for(&browser, "a render at full height", |p| {
        p.updated_ms > before
    })
    .await;
    let png = browser.screenshot_png().await;
    let (width, png_height) = png_size(&png);
    assert_eq!(width, 1280, "the screenshot is as wide as the window");
    assert!(png_height >= 1000, "the screenshot is {png_height} px tall");
    assert!(
        (20_000..20_000_000).contains(&png.len()),
        "a {width}x{png_height} screenshot of {} bytes",
        png.len()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    // Written before the last check, so a failing console still leaves the picture.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

/// Serves leanserve's routes for `subsystems` under `/lean` at `addr`, as a host
/// application mounts them; answers the bound address and the handle that stops it.
/// Bound here rather than through `util::serve_surface`: the test stops the server and
/// binds the same port again, which `util`'s fresh-port servers cannot.
fn serve_under_prefix(
    addr: SocketAddr,
    subsystems: &Subsystems,
) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let app_subsystems = subsystems.clone();
    let server = HttpServer::new(move || {
        App::new().service(web::scope("/lean").configure(leanserve::configure(&app_subsystems)))
    })
    .workers(1)
    .bind(addr)
    .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}

/// Also covers a mount prefix: the page at /lean/dashboard must fetch /lean/monitoring.
#[actix_rt::test]
async fn dashboard_banner_shows_an_unreachable_server_until_it_returns() {
    let browser = Browser::start().await;
    let site = site();
    let subsystems = start(site.path(), &[]).await;
    let (addr, handle) = serve_under_prefix("127.0.0.1:0".parse().unwrap(), &subsystems);

    browser.goto(&format!("http://{addr}/lean/dashboard")).await;
    let up = wait_for(&browser, "a sample with the banner hidden", |p| {
        p.updated_ms > 0 && !p.banner_visible && p.a_chart_has(2)
    })
    .await;
    assert_eq!(up.banner_state, "ok");

    // A stopped server closes its connections and its port; the runtime and its monitor
    // keep going.
    handle.stop(false).await;
    let down = wait_for(&browser, "the unreachable banner", |p| {
        p.banner_visible && p.banner_state == "unreachable"
    })
    .await;
    assert!(
        down.banner_text.contains("unreachable") && down.banner_text.contains("retrying"),
        "banner text {:?}",
        down.banner_text
    );
    assert!(
        down.updated_ms >= up.updated_ms && down.a_chart_has(2),
        "the last figures stay on the page"
    );

    // The same address again: the page's retries find it and the banner goes away.
    let (_, handle) = serve_under_prefix(addr, &subsystems);
    let back = wait_for(&browser, "the banner to clear", |p| {
        !p.banner_visible && p.updated_ms > down.updated_ms
    })
    .await;
    assert_eq!(back.banner_state, "ok");
    handle.stop(false).await;
}

/// A host actor that panics on request, to restart a child under the page's eyes.
struct Fragile;

impl actix::Actor for Fragile {
    type Context = actix::Context<Self>;
}

/// Panics in the handler.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Crash;

impl actix::Handler<Crash> for Fragile {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut actix::Context<Self>) {
        panic!("fragile child crashed for the dashboard test");
    }
}

#[actix_rt::test]
async fn dashboard_keeps_working_through_a_child_restart() {
    let browser = Browser::start().await;
    let site = site();
    let interval = INTERVAL_MS.to_string();
    let (spec, fragile) = leanserve::ChildSpec::worker("fragile", || Fragile);
    let (_subsystems, server) = util::start(
        site.path(),
        &[("LEANSERVE_MONITORING_INTERVAL_MS", interval.as_str())],
    )
    .child(spec)
    .serve()
    .await;

    browser.goto(&server.url("/dashboard")).await;
    wait_for(&browser, "the fragile child listed", |p| {
        p.children
            .iter()
            .any(|(name, restarts)| name == "fragile" && *restarts == 0)
    })
    .await;
    assert!(
        fragile.send(Crash).await.is_err(),
        "the crash answers nothing"
    );
    let page = wait_for(&browser, "the restart on the page", |p| {
        p.children
            .iter()
            .any(|(name, restarts)| name == "fragile" && *restarts == 1)
            && p.alerts
                .iter()
                .any(|(name, state)| name == "actor_restarts" && state == "firing")
    })
    .await;
    assert!(
        !page.banner_visible,
        "the server stayed reachable: {page:#?}"
    );
    assert!(
        browser.console_errors().await.is_empty(),
        "{}",
        browser.log()
    );
}

/// Where the limiter tile and `GET /monitoring`'s limiter figures disagree: files and
/// renders as "in flight / limit", the refusals of each, the files queued.
fn limiter_differences(page: &Page, json: &Value) -> Vec<String> {
    let n = |key: &str| metric(json, key) as u64;
    let load = |name: &str| {
        format!(
            "{} / {}",
            n(&format!("limiter_in_flight_{name}")),
            n(&format!("limiter_limit_{name}"))
        )
    };
    [
        ("limiter-files", &page.limiter_files, load("files")),
        ("limiter-renders", &page.limiter_renders, load("renders")),
        (
            "limiter-rejected-files",
            &page.limiter_rejected_files,
            n("limiter_rejected_total_files").to_string(),
        ),
        (
            "limiter-rejected-renders",
            &page.limiter_rejected_renders,
            n("limiter_rejected_total_renders").to_string(),
        ),
        (
            "limiter-queued",
            &page.limiter_queued,
            n("limiter_queued_files").to_string(),
        ),
    ]
    .into_iter()
    .filter(|(_, shown, expected)| *shown != expected)
    .map(|(id, shown, expected)| {
        format!("#{id} shows {shown:?}; /monitoring makes it {expected:?}")
    })
    .collect()
}

/// With the limiters on, their tile shows each limiter's figures as `/monitoring` has
/// them: one slot each and no queue; a slowly read streamed file holds the files slot
/// (the permit rides on the body) and the next file is refused, so the two limiters'
/// figures differ. The tuner is off here: its tile shows "—", waiting for figures.
#[actix_rt::test]
async fn dashboard_shows_the_limiters_when_enabled() {
    let browser = Browser::start().await;
    let site = site();
    std::fs::write(site.path().join("big.bin"), vec![7u8; 32 << 20]).unwrap();
    let subsystems = start(
        site.path(),
        &[
            ("LEANSERVE_LIMITER_ENABLED", "true"),
            ("LEANSERVE_LIMITER_MIN_LIMIT", "1"),
            ("LEANSERVE_LIMITER_MAX_LIMIT", "1"),
            ("LEANSERVE_LIMITER_QUEUE_SIZE", "0"),
            ("STATIC_FILE_MAX_FILE_SIZE", "65536"),
            ("CONFIG_TUNER_ENABLED", "false"),
        ],
    )
    .await;
    let server = serve(&subsystems);

    browser.goto(&server.url("/dashboard")).await;
    let idle = wait_for(&browser, "the limiter tile on", |p| p.limiter_state == "on").await;
    assert_eq!(
        (idle.limiter_files.as_str(), idle.limiter_renders.as_str()),
        ("0 / 1", "0 / 1"),
        "one slot each, none taken"
    );

    // A client that asks for 32 MiB and reads only the first bytes keeps the files
    // slot; the next file request is refused.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = slow.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let refused = util::raw(server.addr, "GET", "/index.html", &[]).await;
    assert_eq!(refused.status, 503, "the files slot is taken");

    let page = wait_for(&browser, "the taken slot on the page", |p| {
        p.limiter_files == "1 / 1" && p.limiter_rejected_files == "1"
    })
    .await;
    let json = get_json(&server.url("/monitoring"), None).await.1;
    let page = until_agreed(&browser, &server, page, json, limiter_differences).await;
    assert_eq!(
        (
            page.limiter_renders.as_str(),
            page.limiter_rejected_renders.as_str()
        ),
        ("0 / 1", "0"),
        "renders have their own limiter"
    );

    // No tuner, no tuner figures: the tile waits for them.
    let json = get_json(&server.url("/monitoring"), None).await.1;
    let tuner_keys: Vec<&String> = json["metrics"]
        .as_object()
        .expect("metrics is an object")
        .keys()
        .filter(|key| key.starts_with("tuner_"))
        .collect();
    assert!(tuner_keys.is_empty(), "the tuner is off: {tuner_keys:?}");
    assert_eq!(
        (
            page.tuner_state.as_str(),
            page.tuner_limit_mb.as_str(),
            page.tuner_cache_mb.as_str(),
            page.tuner_cache_recommended_mb.as_str(),
        ),
        ("waiting", "—", "—", "—"),
        "the tuner tile without tuner figures"
    );
    assert!(tuner_differences(&page, &json).is_empty());
    drop(slow);
    assert!(
        browser.console_errors().await.is_empty(),
        "{}",
        browser.log()
    );
}
