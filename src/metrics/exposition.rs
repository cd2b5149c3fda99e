//! Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` for every family,
//! names prefixed `leanserve_`, label values escaped, histograms as `_bucket{le=...}`
//! (ending in `+Inf`), `_sum` and `_count`.

use std::fmt::Write;

use super::{Family, Kind};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Prefix of every metric name.
pub const PREFIX: &str = "leanserve_";

/// Renders families as exposition text.
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.len() * 160);
    for family in families {
        let name = format!("{PREFIX}{}", family.name);
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in &family.samples {
            let _ = writeln!(
                out,
                "{name}{} {}",
                labels(&sample.labels, None),
                number(sample.value)
            );
        }
        for histogram in &family.histograms {
            for (bound, count) in &histogram.buckets {
                let le = number(*bound);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    labels(&histogram.labels, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                labels(&histogram.labels, Some("+Inf")),
                histogram.count
            );
            let plain = labels(&histogram.labels, None);
            let _ = writeln!(out, "{name}_sum{plain} {}", number(histogram.sum));
            let _ = writeln!(out, "{name}_count{plain} {}", histogram.count);
        }
    }
    out
}

/// `{a="x",b="y"}` (with `le` last for a bucket), or nothing without labels.
fn labels(pairs: &[(&'static str, String)], le: Option<&str>) -> String {
    if pairs.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// A sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf` spelled out).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{value}")
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::{Collector, Histogram};
    use super::*;

    #[test]
    fn exposition_renders_help_type_samples_and_histograms() {
        let mut out = Collector::default();
        out.counter("cache_hits_total", "Cache hits.", 7.0);
        out.labelled(
            "actor_restarts_total",
            "Restarts per child.",
            Kind::Counter,
            "child",
            [("file\"cache".to_owned(), 1.0)],
            |_| None,
        );
        let histogram = Histogram::default();
        histogram.observe(std::time::Duration::from_micros(80));
        out.histogram("serve_time_seconds", "Serve time.", &histogram);
        let text = render(out.families());
        assert!(text.contains("# HELP leanserve_cache_hits_total Cache hits.\n# TYPE leanserve_cache_hits_total counter\nleanserve_cache_hits_total 7\n"));
        assert!(text.contains("leanserve_actor_restarts_total{child=\"file\\\"cache\"} 1\n"));
        assert!(text.contains("leanserve_serve_time_seconds_bucket{le=\"0.00005\"} 0\n"));
        assert!(text.contains("leanserve_serve_time_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("leanserve_serve_time_seconds_bucket{le=\"+Inf\"} 1\nleanserve_serve_time_seconds_sum 0.00008\nleanserve_serve_time_seconds_count 1\n"));
    }

    #[test]
    fn exposition_spells_special_values() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(3.0), "3");
    }
}
