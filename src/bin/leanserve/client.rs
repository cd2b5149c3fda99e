//! `leanserve status` and `leanserve profile`: talk to a running server's admin routes
//! and print what they answer as tables.
//!
//! The server is found with `--url`, else from the configuration's `server.bind` (an
//! unspecified address such as `0.0.0.0` means this machine); the admin token is the
//! configuration's `admin.token` (`LEANSERVE_ADMIN_TOKEN`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use leanserve::config::Opts;
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

struct Server {
    base: String,
    token: Option<String>,
    client: awc::Client,
}

impl Server {
    fn new(opts: &Opts, url: Option<String>) -> anyhow::Result<Server> {
        let base = match url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let mut addr = opts.server.bind;
                if addr.port() == 0 {
                    bail!(
                        "server.bind is {addr}: the server's port is chosen when it starts; pass --url"
                    );
                }
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        Ok(Server {
            base,
            token: opts.admin.token.clone(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(120))
                .finish(),
        })
    }

    async fn call(&self, method: awc::http::Method, path: &str) -> anyhow::Result<bytes::Bytes> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(|error| {
            anyhow!(
                "cannot reach leanserve at {}: {error} (is it running? pass --url)",
                self.base
            )
        })?;
        let body = response
            .body()
            .limit(BODY_LIMIT)
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let status = response.status();
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
}
