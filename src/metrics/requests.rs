//! Per-request figures for every route leanserve mounts: counts by status class and a
//! duration histogram, bumped by the `web` middleware with atomics (never a message per
//! request) and read by the monitor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::connections::Connections;
use super::{Collector, Histogram, Kind, Source};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Request counters shared by the HTTP workers.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    by_class: [AtomicU64; 5],
    duration: Histogram,
    connections: Arc<Connections>,
}

impl RequestMetrics {
    /// Records one answered request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        self.duration.observe(elapsed);
    }

    /// The serving listener's connection counters.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Requests answered so far.
    pub fn total(&self) -> u64 {
        self.by_class.iter().map(|n| n.load(Relaxed)).sum()
    }
}

impl Source for RequestMetrics {
    fn collect(&self, out: &mut Collector) {
        out.labelled(
            "requests_total",
            "HTTP requests answered, by status class.",
            Kind::Counter,
            "class",
            CLASSES
                .iter()
                .zip(&self.by_class)
                .map(|(class, n)| ((*class).to_owned(), n.load(Relaxed) as f64)),
            |class| Some(format!("requests_{class}_total")),
        );
        out.json_only("requests_total", self.total() as f64);
        out.histogram(
            "request_duration_seconds",
            "Time from request to response, all routes.",
            &self.duration,
        );
        self.connections.collect(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_metrics_count_by_class() {
        let metrics = RequestMetrics::default();
        for status in [200, 204, 304, 404, 503, 101, 999] {
            metrics.record(status, Duration::from_micros(10));
        }
        let mut out = Collector::default();
        metrics.collect(&mut out);
        let flat = out.flat();
        assert_eq!(flat["requests_2xx_total"], 2.0);
        assert_eq!(flat["requests_3xx_total"], 1.0);
        assert_eq!(flat["requests_4xx_total"], 1.0);
        assert_eq!(
            flat["requests_5xx_total"], 2.0,
            "out-of-range statuses count as 5xx"
        );
        assert_eq!(flat["requests_total"], 7.0);
    }
}
