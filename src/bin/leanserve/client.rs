//! `leanserve status`, `profile`, `optimize` and `tune`: talk to a running server's admin
//! routes and print what they answer as tables.
//!
//! The server's admin surface is found with `--url` (`http://HOST:PORT` or `unix:PATH`),
//! else from the configuration's `admin.bind` (`server.bind` when it is `serving`; an
//! unspecified address such as `0.0.0.0` means this machine); the admin token is the
//! configuration's `admin.token` (`LEANSERVE_ADMIN_TOKEN`). Over a Unix socket the
//! client speaks HTTP/1.1 itself (`unix_http`): awc connects over TCP only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use leanserve::{AdminBind, Opts};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// What `profile` should do.
pub enum ProfileAction {
    /// Capture into the server's profiles folder.
    Capture { label: Option<String> },
    /// Download a profile into a local file (after a labelled snapshot, if labelled).
    Download { label: Option<String>, out: PathBuf },
    /// Compare two snapshots.
    Compare { a: String, b: String },
}

/// Largest answer read from the server (heap profiles of big processes run to megabytes).
const BODY_LIMIT: usize = 256 << 20;

/// Time a request to the server may take (heap captures of big processes are slow).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(120);

struct Server {
    /// `http://HOST:PORT` or `unix:PATH`, as printed.
    base: String,
    socket: Option<PathBuf>,
    token: Option<String>,
    client: awc::Client,
}

impl Server {
    fn new(opts: &Opts, url: Option<String>) -> anyhow::Result<Server> {
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let (mut addr, key) = match &opts.admin.bind {
                    AdminBind::Unix(path) => {
                        return Server::with_base(opts, format!("unix:{}", path.display()));
                    }
                    AdminBind::Tcp(addr) => (*addr, "admin.bind"),
                    AdminBind::Serving => (opts.server.bind, "server.bind"),
                };
                if addr.port() == 0 {
                    bail!(
                        "{key} is {addr}: the admin port is chosen when the server starts; pass --url"
                    );
                }
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        Server::with_base(opts, base)
    }

    fn with_base(opts: &Opts, base: String) -> anyhow::Result<Server> {
        let socket = base.strip_prefix("unix:").map(PathBuf::from);
        if socket.is_none() && !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {base:?}: expected http://HOST:PORT or unix:PATH");
        }
        Ok(Server {
            base,
            socket,
            token: opts.admin.token.clone(),
            client: awc::Client::builder().timeout(TIMEOUT).finish(),
        })
    }

    async fn call(&self, method: awc::http::Method, path: &str) -> anyhow::Result<bytes::Bytes> {
        let unreachable = |error: &dyn std::fmt::Display| {
            anyhow!(
                "cannot reach leanserve at {}: {error} (is it running? pass --url)",
                self.base
            )
        };
        let url = format!("{}{path}", self.base);
        let (status, body) = match &self.socket {
            Some(socket) => {
                let (status, body) = super::unix_http::request(
                    socket,
                    method.as_str(),
                    path,
                    self.token.as_deref(),
                    BODY_LIMIT,
                )
                .map_err(|error| unreachable(&error))?;
                let status = awc::http::StatusCode::from_u16(status)
                    .with_context(|| format!("{url} answered status {status}"))?;
                (status, bytes::Bytes::from(body))
            }
            None => {
                let mut request = self.client.request(method, &url);
                if let Some(token) = &self.token {
                    request = request.bearer_auth(token);
                }
                let mut response = request.send().await.map_err(|error| unreachable(&error))?;
                let body = response
                    .body()
                    .limit(BODY_LIMIT)
                    .await
                    .with_context(|| format!("reading the answer of {url}"))?;
                (response.status(), body)
            }
        };
        if status.is_success() {
            return Ok(body);
        }
        let reason = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|json| json.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        match status.as_u16() {
            401 => bail!(
                "the server at {} refused the admin token (set LEANSERVE_ADMIN_TOKEN to its token)",
                self.base
            ),
            403 => bail!(
                "the server at {} only admits loopback clients without a token (set LEANSERVE_ADMIN_TOKEN)",
                self.base
            ),
            _ => bail!("{url} answered {status}: {reason}"),
        }
    }

    async fn json(&self, method: awc::http::Method, path: &str) -> anyhow::Result<Value> {
        let body = self.call(method, path).await?;
        serde_json::from_slice(&body).with_context(|| format!("{path} did not answer JSON"))
    }
}

/// `leanserve status`.
pub fn status(opts: &Opts, url: Option<String>) -> anyhow::Result<()> {
    let server = Server::new(opts, url)?;
    run(async move {
        let stats = server
            .json(awc::http::Method::GET, "/admin/profiler/stats")
            .await?;
        let config = server.json(awc::http::Method::GET, "/admin/config").await?;
        print!("{}", format_status(&server.base, &stats, &config));
        Ok(())
    })
}

/// `leanserve optimize`.
pub fn optimize(opts: &Opts, url: Option<String>) -> anyhow::Result<()> {
    let server = Server::new(opts, url)?;
    run(async move {
        let report = server
            .json(awc::http::Method::POST, "/admin/templates/optimize")
            .await?;
        print!("{}", format_optimize(&server.base, &report));
        Ok(())
    })
}

fn format_optimize(base: &str, report: &Value) -> String {
    let memory = &report["memory"];
    let heap = |key: &str| megabytes(&Value::from(report[key].as_f64().map(|b| b / 1_048_576.0)));
    let mut rows = vec![
        vec![
            "templates optimized".into(),
            format!(
                "{} ({} served flattened)",
                text(&report["templates"]),
                text(&report["flattened"])
            ),
        ],
        vec![
            "duplicate templates".into(),
            text(&memory["duplicate_templates"]),
        ],
        vec![
            "shared sections".into(),
            format!(
                "{} ({} uses)",
                text(&memory["shared_sections"]),
                text(&memory["section_uses"])
            ),
        ],
        vec![
            "source bytes saved".into(),
            text(&memory["source_bytes_saved"]),
        ],
        vec![
            "compiled on first render".into(),
            format!(
                "{} ({} held compressed)",
                text(&memory["pending"]),
                text(&memory["compressed"])
            ),
        ],
        vec!["heap, optimizers off".into(), heap("baseline_heap_bytes")],
        vec!["heap, optimized".into(), heap("optimized_heap_bytes")],
        vec![
            "memory reduced".into(),
            megabytes(&report["memory_reduced_mb"]),
        ],
        vec![
            "RSS around the release hint".into(),
            format!(
                "{} -> {}",
                heap("rss_before_release"),
                heap("rss_after_release")
            ),
        ],
    ];
    if let Some(reason) = report["unavailable"].as_str() {
        rows.push(vec!["unavailable".into(), reason.to_owned()]);
    }
    format!(
        "leanserve at {base}: templates optimized\n\n{}",
        table(&rows)
    )
}

/// `leanserve tune`: the tuner's recommendations, or with `apply` an applying round and
/// what it changed. A tuner that is off answers 409, reported like any refused request.
pub fn tune(opts: &Opts, url: Option<String>, apply: bool) -> anyhow::Result<()> {
    let server = Server::new(opts, url)?;
    run(async move {
        use awc::http::Method;
        let out = if apply {
            let applied = server.json(Method::POST, "/admin/tuner/apply").await?;
            format_applied(&server.base, &applied)
        } else {
            let report = server
                .json(Method::GET, "/admin/tuner/recommendations")
                .await?;
            format_recommendations(&server.base, &report)
        };
        print!("{out}");
        Ok(())
    })
}

fn format_recommendations(base: &str, report: &Value) -> String {
    let limit = &report["memory_limit"];
    let limit = match limit["bytes"].as_f64() {
        Some(bytes) => format!(
            "{} ({})",
            bytes_as_mb(bytes),
            limit_source(&limit["source"])
        ),
        None => "n/a".into(),
    };
    let rss = report["rss_bytes"]
        .as_f64()
        .map_or_else(|| "n/a".into(), bytes_as_mb);
    let mode = match report["mode"].as_str() {
        Some("auto") => {
            "auto mode (the server applies the live knobs every tuner.interval)".to_owned()
        }
        Some("recommend") => "recommend mode (nothing is applied unless asked: --apply)".to_owned(),
        _ => format!("{} mode", text(&report["mode"])),
    };
    format!(
        "leanserve at {base}: tuner in {mode}\n\n{}\nKNOBS\n{}",
        table(&[
            vec!["memory limit".into(), limit],
            vec!["resident (RSS)".into(), rss],
        ]),
        knob_table(&report["knobs"])
    )
}

/// One row per knob: its values in their unit (bytes as MB), when a change takes effect
/// and why.
fn knob_table(knobs: &Value) -> String {
    let mut rows = vec![vec![
        "KNOB".into(),
        "CURRENT".into(),
        "RECOMMENDED".into(),
        "TAKES EFFECT".into(),
        "REASON".into(),
    ]];
    for knob in knobs.as_array().into_iter().flatten() {
        rows.push(vec![
            text(&knob["knob"]),
            knob_value(knob, &knob["current"]),
            knob_value(knob, &knob["recommended"]),
            if knob["live"] == Value::Bool(true) {
                "live".into()
            } else {
                "restart".into()
            },
            text(&knob["reason"]),
        ]);
    }
    table(&rows)
}

fn format_applied(base: &str, applied: &Value) -> String {
    let knobs = applied["knobs"].as_array().map_or(&[][..], Vec::as_slice);
    let decisions = applied["decisions"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    // The answer's decisions are the tuner's recent history; this round's are the ones
    // matching a knob it moved (same knob, from, to).
    let changed: Vec<&Value> = knobs
        .iter()
        .filter(|knob| knob["current"] != knob["recommended"])
        .filter(|knob| {
            decisions.iter().any(|d| {
                d["knob"] == knob["knob"]
                    && d["from"] == knob["current"]
                    && d["to"] == knob["recommended"]
            })
        })
        .collect();
    let mut out = format!("leanserve at {base}: tuner applied\n\n");
    if changed.is_empty() {
        out.push_str("  nothing changed: every live knob was at its recommendation\n");
    } else {
        let mut rows = vec![vec![
            "KNOB".into(),
            "FROM".into(),
            "TO".into(),
            "REASON".into(),
        ]];
        for knob in &changed {
            rows.push(vec![
                text(&knob["knob"]),
                knob_value(knob, &knob["current"]),
                knob_value(knob, &knob["recommended"]),
                text(&knob["reason"]),
            ]);
        }
        out.push_str("CHANGED\n");
        out.push_str(&table(&rows));
    }
    let pending: Vec<&Value> = knobs
        .iter()
        .filter(|knob| knob["live"] != Value::Bool(true))
        .filter(|knob| knob["current"] != knob["recommended"])
        .collect();
    if !pending.is_empty() {
        out.push_str("\nTAKE EFFECT ON RESTART (set them in the configuration)\n");
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|knob| {
                vec![
                    text(&knob["knob"]),
                    format!(
                        "{} -> {}",
                        knob_value(knob, &knob["current"]),
                        knob_value(knob, &knob["recommended"])
                    ),
                    text(&knob["reason"]),
                ]
            })
            .collect();
        out.push_str(&table(&rows));
    }
    out
}

/// A knob's value in its unit: bytes as MB, milliseconds with `ms`, counts bare.
fn knob_value(knob: &Value, value: &Value) -> String {
    let Some(number) = value.as_f64() else {
        return text(value);
    };
    match knob["unit"].as_str() {
        Some("bytes") => bytes_as_mb(number),
        Some("milliseconds") => format!("{} ms", plain_number(number)),
        _ => plain_number(number),
    }
}

/// Whole numbers without a fraction, others to two places.
fn plain_number(number: f64) -> String {
    if number.fract() == 0.0 {
        format!("{number:.0}")
    } else {
        format!("{number:.2}")
    }
}

fn bytes_as_mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1_048_576.0)
}

/// Where the tuner's memory limit came from, in words.
fn limit_source(source: &Value) -> String {
    match source.as_str() {
        Some("cgroup_v2_max") => "cgroup v2 memory.max".into(),
        Some("cgroup_v2_high") => "cgroup v2 memory.high".into(),
        Some("cgroup_v1") => "cgroup v1 memory.limit_in_bytes".into(),
        Some("configured") => "tuner.memory_limit_mb".into(),
        Some("total_memory") => "the machine's memory".into(),
        _ => text(source),
    }
}

/// `leanserve profile`.
pub fn profile(opts: &Opts, url: Option<String>, action: ProfileAction) -> anyhow::Result<()> {
    let server = Server::new(opts, url)?;
    run(async move {
        use awc::http::Method;
        match action {
            ProfileAction::Capture { label } => {
                let path = format!("/admin/profiler/capture{}", label_query(label.as_deref()));
                let captured = server.json(Method::POST, &path).await?;
                println!(
                    "heap profile written by the server to {} ({} bytes)",
                    text(&captured["path"]),
                    text(&captured["bytes"])
                );
                println!(
                    "inspect it with: go tool pprof -http=: {}",
                    text(&captured["path"])
                );
            }
            ProfileAction::Download { label, out } => {
                if label.is_some() {
                    let path =
                        format!("/admin/profiler/snapshots{}", label_query(label.as_deref()));
                    server.json(Method::POST, &path).await?;
                }
                let profile = server.call(Method::GET, "/debug/pprof/heap").await?;
                std::fs::write(&out, &profile)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!(
                    "heap profile written to {} ({} bytes)",
                    out.display(),
                    profile.len()
                );
            }
            ProfileAction::Compare { a, b } => {
                let path = format!(
                    "/admin/profiler/compare?a={}&b={}",
                    utf8_percent_encode(&a, NON_ALPHANUMERIC),
                    utf8_percent_encode(&b, NON_ALPHANUMERIC)
                );
                let comparison = server.json(Method::GET, &path).await?;
                print!("{}", format_comparison(&comparison));
            }
        }
        Ok(())
    })
}

fn run(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(work)
}

fn label_query(label: Option<&str>) -> String {
    label.map_or_else(String::new, |label| {
        format!("?label={}", utf8_percent_encode(label, NON_ALPHANUMERIC))
    })
}

/// A JSON value as a table cell: strings bare, `null` as `n/a`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "n/a".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn megabytes(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "n/a".into(), |mb| format!("{mb:.2} MB"))
}

/// Rows of two or three columns, each padded to its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:width$}", width = widths[c]))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn format_status(base: &str, stats: &Value, config: &Value) -> String {
    let profiling = match stats["heap_profiling"]["state"].as_str() {
        Some("on") => format!(
            "on (one sample per {} KiB)",
            stats["heap_profiling"]["sample_bytes"]
                .as_u64()
                .unwrap_or(0)
                / 1024
        ),
        Some("unavailable") => format!("unavailable: {}", text(&stats["heap_profiling"]["reason"])),
        Some(state) => state.to_owned(),
        None => "n/a".into(),
    };
    let mut rows = vec![
        vec!["allocator".into(), text(&stats["allocator"])],
        vec!["heap profiling".into(), profiling],
        vec!["heap allocated".into(), megabytes(&stats["heap_alloc_mb"])],
        vec!["heap active".into(), megabytes(&stats["heap_active_mb"])],
        vec![
            "heap resident".into(),
            megabytes(&stats["heap_resident_mb"]),
        ],
        vec!["heap mapped".into(), megabytes(&stats["heap_mapped_mb"])],
        vec![
            "heap retained".into(),
            megabytes(&stats["heap_retained_mb"]),
        ],
        vec!["resident (RSS)".into(), megabytes(&stats["rss_mb"])],
        vec!["virtual".into(), megabytes(&stats["virtual_mb"])],
        vec![
            "threshold".into(),
            format!(
                "{} MB{}",
                text(&stats["threshold_mb"]),
                if stats["over_threshold"] == Value::Bool(true) {
                    " (EXCEEDED)"
                } else {
                    ""
                }
            ),
        ],
    ];
    if let Some(accounted) = stats["accounted_mb"].as_object() {
        for (name, mb) in accounted {
            rows.push(vec![format!("held by {name}"), megabytes(mb)]);
        }
    }
    rows.push(vec![
        "snapshots kept".into(),
        format!(
            "{} (one every {} s)",
            text(&stats["snapshots_kept"]),
            text(&stats["snapshot_interval_seconds"])
        ),
    ]);
    let mut out = format!(
        "leanserve at {base} ({} profile)\n\nMEMORY\n{}",
        text(&config["profile"]),
        table(&rows)
    );
    if let Some(missing) = stats["unavailable"].as_array().filter(|m| !m.is_empty()) {
        out.push_str("  unavailable:\n");
        for reason in missing {
            out.push_str(&format!("    {}\n", text(reason)));
        }
    }
    let mut rows = vec![vec!["KEY".into(), "VALUE".into(), "SOURCE".into()]];
    for setting in config["settings"].as_array().into_iter().flatten() {
        rows.push(vec![
            text(&setting["key"]),
            text(&setting["value"]),
            text(&setting["source"]),
        ]);
    }
    out.push_str("\nCONFIGURATION\n");
    out.push_str(&table(&rows));
    out
}

fn format_comparison(comparison: &Value) -> String {
    let name = |snapshot: &Value| match snapshot["label"].as_str() {
        Some(label) => format!("#{} {label}", text(&snapshot["index"])),
        None => format!("#{}", text(&snapshot["index"])),
    };
    let (a, b) = (&comparison["a"], &comparison["b"]);
    let mut rows = vec![vec![
        "FIGURE".into(),
        format!("A {}", name(a)),
        format!("B {}", name(b)),
        "DELTA".into(),
        "CHANGE".into(),
    ]];
    let mb = |bytes: &Value| {
        bytes
            .as_f64()
            .map_or_else(|| "n/a".into(), |b| format!("{:.2} MB", b / 1048576.0))
    };
    for delta in comparison["deltas"].as_array().into_iter().flatten() {
        rows.push(vec![
            text(&delta["figure"]),
            mb(&delta["a_bytes"]),
            mb(&delta["b_bytes"]),
            format!("{:+.2} MB", delta["delta_mb"].as_f64().unwrap_or(0.0)),
            delta["percent"]
                .as_f64()
                .map_or_else(|| "n/a".into(), |p| format!("{p:+.2}%")),
        ]);
    }
    format!(
        "snapshot A {} at {}\nsnapshot B {} at {}\n\n{}",
        name(a),
        text(&a["taken_at"]),
        name(b),
        text(&b["taken_at"]),
        table(&rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_table_lists_each_figure_with_sign_and_percent() {
        let comparison = serde_json::json!({
            "a": { "index": 1, "label": "before", "taken_at": "t1" },
            "b": { "index": 2, "label": null, "taken_at": "t2" },
            "deltas": [
                { "figure": "heap_allocated", "a_bytes": 2097152, "b_bytes": 1048576,
                  "delta_mb": -1.0, "percent": -50.0 },
                { "figure": "accounted.file_cache", "a_bytes": 0, "b_bytes": 1048576,
                  "delta_mb": 1.0, "percent": null },
            ]
        });
        let out = format_comparison(&comparison);
        assert!(out.contains("snapshot A #1 before at t1"), "{out}");
        let line = out.lines().find(|l| l.contains("heap_allocated")).unwrap();
        assert!(
            line.contains("2.00 MB") && line.contains("-1.00 MB") && line.contains("-50.00%"),
            "{line}"
        );
        let line = out.lines().find(|l| l.contains("file_cache")).unwrap();
        assert!(
            line.contains("+1.00 MB") && line.trim_end().ends_with("n/a"),
            "{line}"
        );
    }

    /// A printed table row's cells (columns are two or more spaces apart).
    fn cells(line: &str) -> Vec<&str> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    fn knob(name: &str, unit: &str, current: f64, recommended: f64, live: bool) -> Value {
        serde_json::json!({
            "knob": name, "unit": unit, "current": current, "recommended": recommended,
            "live": live, "reason": format!("why {name}"), "evidence": []
        })
    }

    #[test]
    fn tune_table_shows_bytes_as_mb_and_restart_knobs() {
        let report = serde_json::json!({
            "mode": "recommend", "at_ms": 1, "applied": false,
            "memory_limit": { "bytes": 536870912u64, "source": "cgroup_v2_max" },
            "rss_bytes": 104857600u64,
            "knobs": [
                knob("cache_budget_bytes", "bytes", 104857600.0, 8388608.0, true),
                knob("allocator_dirty_decay_ms", "milliseconds", 1000.0, 250.0, true),
                knob("server.workers", "threads", 8.0, 4.0, false),
            ]
        });
        let out = format_recommendations("http://x", &report);
        let line = |name: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {out}"))
        };
        assert!(out.contains("tuner in recommend mode"), "{out}");
        assert!(
            line("memory limit").ends_with("512.00 MB (cgroup v2 memory.max)"),
            "{out}"
        );
        assert!(line("resident (RSS)").ends_with("100.00 MB"), "{out}");
        assert_eq!(
            cells(line("KNOB ")),
            ["KNOB", "CURRENT", "RECOMMENDED", "TAKES EFFECT", "REASON"]
        );
        assert_eq!(
            cells(line("cache_budget_bytes")),
            [
                "cache_budget_bytes",
                "100.00 MB",
                "8.00 MB",
                "live",
                "why cache_budget_bytes"
            ]
        );
        assert_eq!(
            cells(line("allocator_dirty_decay_ms"))[1..3],
            ["1000 ms", "250 ms"]
        );
        assert_eq!(
            cells(line("server.workers")),
            ["server.workers", "8", "4", "restart", "why server.workers"]
        );
    }

    #[test]
    fn tune_without_limit_or_rss_prints_n_a() {
        let report = serde_json::json!({
            "mode": "auto", "memory_limit": null, "rss_bytes": null, "knobs": []
        });
        let out = format_recommendations("http://x", &report);
        assert!(out.contains("memory limit    n/a"), "{out}");
        assert!(out.contains("resident (RSS)  n/a"), "{out}");
    }

    #[test]
    fn tune_apply_lists_only_this_rounds_changes_and_pending_restarts() {
        let applied = serde_json::json!({
            "applied": true,
            "knobs": [
                knob("cache_budget_bytes", "bytes", 104857600.0, 8388608.0, true),
                knob("pool_scale_max:gzip", "objects", 4.0, 4.0, true),
                knob("server.workers", "threads", 8.0, 4.0, false),
            ],
            "decisions": [
                // An earlier round's change of a knob that did not move this time.
                { "knob": "pool_scale_max:gzip", "from": 8.0, "to": 4.0, "direction": "down",
                  "reason": "earlier", "at_ms": 1 },
                { "knob": "cache_budget_bytes", "from": 104857600.0, "to": 8388608.0,
                  "direction": "down", "reason": "why", "at_ms": 2 },
            ]
        });
        let out = format_applied("http://x", &applied);
        assert!(out.contains("CHANGED"), "{out}");
        let changed = out
            .lines()
            .find(|l| l.contains("cache_budget_bytes"))
            .expect(&out);
        assert_eq!(
            cells(changed),
            [
                "cache_budget_bytes",
                "100.00 MB",
                "8.00 MB",
                "why cache_budget_bytes"
            ]
        );
        assert!(!out.contains("pool_scale_max:gzip"), "{out}");
        let restart = out.split("TAKE EFFECT ON RESTART").nth(1).expect(&out);
        assert!(
            restart.contains("server.workers") && restart.contains("8 -> 4"),
            "{out}"
        );

        let unchanged = serde_json::json!({
            "applied": true,
            "knobs": [knob("cache_budget_bytes", "bytes", 1048576.0, 1048576.0, true)],
            "decisions": []
        });
        let out = format_applied("http://x", &unchanged);
        assert!(out.contains("nothing changed"), "{out}");
        assert!(!out.contains("RESTART"), "{out}");
    }
}
