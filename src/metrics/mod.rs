//! Metrics: what subsystems report and how it is exposed.
//!
//! A subsystem that has figures implements [`Source`] and is registered with the monitor
//! at start (`Runtime` registers the file cache, the request counters, the supervision
//! tree and the process sampler; later subsystems add theirs). On every tick the monitor
//! hands each source a [`Collector`] and gets back metric families: counters, gauges and
//! histograms, each sample with an optional label and the flat name it has in the JSON
//! view (`/monitoring`). The same families render as Prometheus text (`/metrics`, see
//! [`exposition`]). Labels are fixed, small sets (status class, child name): nothing
//! request-controlled ever becomes a label, so the number of series is bounded.

mod connections;
pub mod exposition;
mod histogram;
mod requests;

pub use connections::{Connection, Connections, Protocol, Transport};
pub use requests::RequestMetrics;

pub use histogram::{BUCKETS_US, Histogram, Reading};

use std::collections::BTreeMap;

/// The kind of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One sample of a counter or gauge.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Labels as (name, value); none for a single sample.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    /// The sample's name in the JSON view; `None` keeps it out of it.
    pub json_key: Option<String>,
}

/// Cumulative bucket counts of a histogram, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramData {
    /// Labels of this histogram within its family (empty for an unlabelled one).
    pub labels: Vec<(&'static str, String)>,
    /// (upper bound in seconds, cumulative count), ascending; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// A metric family: name (without the `leanserve_` prefix, with its unit suffix), help,
/// kind and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramData>,
}

/// One supervised child as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildFigure {
    pub name: String,
    pub state: String,
    pub restarts: u64,
}

/// Gathers the families of every source during one collection.
#[derive(Debug, Default)]
pub struct Collector {
    families: Vec<Family>,
    /// Figures that exist only in the JSON view (sums and rates).
    extra_json: Vec<(String, f64)>,
    children: Vec<ChildFigure>,
}

impl Collector {
    /// A counter with one unlabelled sample, named the same in JSON.
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.single(name, help, Kind::Counter, value);
    }

    /// A gauge with one unlabelled sample, named the same in JSON.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.single(name, help, Kind::Gauge, value);
    }

    /// A family whose samples carry one label each; `json_key` names each sample in the
    /// JSON view (from the label value), or keeps it out with `None`.
    pub fn labelled(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        label: &'static str,
        values: impl IntoIterator<Item = (String, f64)>,
        json_key: impl Fn(&str) -> Option<String>,
    ) {
        let samples = values
            .into_iter()
            .map(|(label_value, value)| Sample {
                json_key: json_key(&label_value),
                labels: vec![(label, label_value)],
                value,
            })
            .collect();
        self.families.push(Family {
            name,
            help,
            kind,
            samples,
            histograms: Vec::new(),
        });
    }

    /// A family of samples with any labels (for example a pool and a reason).
    pub fn samples(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        samples: Vec<Sample>,
    ) {
        self.families.push(Family {
            name,
            help,
            kind,
            samples,
            histograms: Vec::new(),
        });
    }

    /// A latency histogram from `histogram` (microsecond buckets, rendered in seconds).
    pub fn histogram(&mut self, name: &'static str, help: &'static str, histogram: &Histogram) {
        self.histograms(name, help, vec![(Vec::new(), histogram.read())]);
    }

    /// A family of latency histograms, one per label set, from readings of microsecond
    /// buckets (rendered in seconds).
    pub fn histograms(
        &mut self,
        name: &'static str,
        help: &'static str,
        readings: Vec<(Vec<(&'static str, String)>, Reading)>,
    ) {
        let histograms = readings
            .into_iter()
            .map(|(labels, reading)| {
                let Reading {
                    buckets: counts,
                    count,
                    sum_us,
                } = reading;
                let mut cumulative = 0;
                let buckets = BUCKETS_US
                    .iter()
                    .zip(&counts)
                    .map(|(bound, n)| {
                        cumulative += n;
                        (*bound as f64 / 1e6, cumulative)
                    })
                    .collect();
                HistogramData {
                    labels,
                    buckets,
                    sum: sum_us as f64 / 1e6,
                    count,
                }
            })
            .collect();
        self.families.push(Family {
            name,
            help,
            kind: Kind::Histogram,
            samples: Vec::new(),
            histograms,
        });
    }

    /// A supervised child's state, for the JSON view's `children` list.
    pub fn child(&mut self, figure: ChildFigure) {
        self.children.push(figure);
    }

    /// The children reported so far.
    pub fn children(&self) -> &[ChildFigure] {
        &self.children
    }

    /// A figure for the JSON view only.
    pub fn json_only(&mut self, key: impl Into<String>, value: f64) {
        self.extra_json.push((key.into(), value));
    }

    fn single(&mut self, name: &'static str, help: &'static str, kind: Kind, value: f64) {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: vec![Sample {
                labels: Vec::new(),
                value,
                json_key: Some(name.to_owned()),
            }],
            histograms: Vec::new(),
        });
    }

    /// The families gathered so far.
    #[cfg(test)]
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The flat JSON view: every sample with a JSON name, plus the JSON-only figures.
    pub fn flat(&self) -> BTreeMap<String, f64> {
        let mut flat = BTreeMap::new();
        for family in &self.families {
            for sample in &family.samples {
                if let Some(key) = &sample.json_key {
                    flat.insert(key.clone(), sample.value);
                }
            }
        }
        for (key, value) in &self.extra_json {
            flat.insert(key.clone(), *value);
        }
        flat
    }

    /// Consumes the collector into its families.
    pub fn into_families(self) -> Vec<Family> {
        self.families
    }
}

/// Something with figures to report. Collection runs on the monitor's tick; it must be
/// quick and never block (read atomics or a shared snapshot).
pub trait Source: Send + Sync {
    /// Adds this source's families to `out`.
    fn collect(&self, out: &mut Collector);
}

/// Something that holds memory on purpose and knows how much (file cache bytes,
/// compiled templates, pools). Registered with the profiler by the runtime, as sources
/// are with the monitor.
pub trait MemoryAccount: Send + Sync {
    /// The subsystem's name, as snapshots and statistics show it.
    fn name(&self) -> &'static str;
    /// The bytes it holds now, by its own accounting.
    fn accounted_bytes(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_flattens_samples_and_json_only_figures() {
        let mut out = Collector::default();
        out.counter("cache_hits_total", "Hits.", 3.0);
        out.labelled(
            "requests_total",
            "Requests.",
            Kind::Counter,
            "class",
            [("2xx".to_owned(), 5.0), ("4xx".to_owned(), 1.0)],
            |class| Some(format!("requests_{class}_total")),
        );
        out.json_only("requests_per_second", 2.5);
        let flat = out.flat();
        assert_eq!(flat["cache_hits_total"], 3.0);
        assert_eq!(flat["requests_2xx_total"], 5.0);
        assert_eq!(flat["requests_4xx_total"], 1.0);
        assert_eq!(flat["requests_per_second"], 2.5);
        assert!(!flat.contains_key("requests_total"));
    }

    #[test]
    fn collector_histogram_is_cumulative_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe(std::time::Duration::from_micros(40));
        histogram.observe(std::time::Duration::from_micros(700));
        histogram.observe(std::time::Duration::from_secs(30));
        let mut out = Collector::default();
        out.histogram("serve_time_seconds", "Serve time.", &histogram);
        let data = out.families()[0].histograms[0].clone();
        assert_eq!(data.count, 3);
        assert_eq!(data.buckets[0], (0.00005, 1));
        assert_eq!(data.buckets[4], (0.001, 2));
        assert_eq!(
            data.buckets.last().unwrap().1,
            2,
            "30 s is above every bound: only +Inf"
        );
        assert!((data.sum - 30.00074).abs() < 1e-9);
    }
}
