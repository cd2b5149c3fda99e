//! The concurrency manager: an adaptive in-flight limit for the serving routes.
//!
//! - [`gradient`]: the limit itself, pure, over completed requests' latencies (why this
//!   algorithm, and how it avoids the failure modes of the usual ones, is in its docs).
//! - [`limiter`]: the limit applied to requests: admission, a short CoDel-style queue,
//!   fast refusals, and the [`Permit`] a request holds until its body has been sent.
//!
//! leanserve runs two limiters: one for static files and one for template renders, so a
//! render storm fills its own queue and cannot starve cached file hits. Health,
//! readiness, metrics, monitoring and admin routes are never limited.

pub mod gradient;
pub mod limiter;
#[cfg(test)]
mod tests;

pub use gradient::LimitConfig;
pub use limiter::{Limiter, LimiterConfig, LimiterStats, Overloaded, Permit};

/// The runtime's two limiters.
#[derive(Clone, Debug)]
pub struct Limiters {
    /// Static files.
    pub files: Limiter,
    /// Template renders.
    pub renders: Limiter,
}

impl Limiters {
    /// Both limiters with `config`; the renders' limit starts (and may go down to)
    /// `render_workers` when that is lower, since more renders than workers only queue
    /// for a worker. (A floor of twice the workers was measured too: the same goodput,
    /// a higher admitted p99; bench/HISTORY.md.)
    pub fn new(config: LimiterConfig, render_workers: usize) -> Limiters {
        let floor = config.limit.min.min(render_workers.max(1));
        let renders = LimiterConfig {
            limit: LimitConfig {
                min: floor,
                initial: floor,
                ..config.limit
            },
            ..config
        };
        Limiters {
            files: Limiter::new("files", config),
            renders: Limiter::new("renders", renders),
        }
    }

    /// Both limiters' figures.
    pub fn stats(&self) -> Vec<LimiterStats> {
        vec![self.files.stats(), self.renders.stats()]
    }
}

impl crate::metrics::Source for Limiters {
    fn collect(&self, out: &mut crate::metrics::Collector) {
        use crate::metrics::Kind;
        let stats = self.stats();
        let family = |out: &mut crate::metrics::Collector,
                      name: &'static str,
                      help: &'static str,
                      kind: Kind,
                      value: fn(&LimiterStats) -> f64| {
            out.labelled(
                name,
                help,
                kind,
                "limiter",
                stats.iter().map(|s| (s.name.to_owned(), value(s))),
                |limiter| Some(format!("{name}_{limiter}")),
            );
        };
        family(
            out,
            "limiter_limit",
            "Requests each limiter admits at once now.",
            Kind::Gauge,
            |s| s.limit as f64,
        );
        family(
            out,
            "limiter_in_flight",
            "Requests in flight per limiter.",
            Kind::Gauge,
            |s| s.in_flight as f64,
        );
        family(
            out,
            "limiter_queued",
            "Requests waiting per limiter.",
            Kind::Gauge,
            |s| s.queued as f64,
        );
        family(
            out,
            "limiter_admitted_total",
            "Requests admitted per limiter.",
            Kind::Counter,
            |s| s.admitted_total as f64,
        );
        family(
            out,
            "limiter_rejected_total",
            "Requests refused with 503 per limiter.",
            Kind::Counter,
            |s| s.rejected_total as f64,
        );
        family(
            out,
            "limiter_queue_timeouts_total",
            "Refusals after waiting out the queue timeout, per limiter.",
            Kind::Counter,
            |s| s.timeouts_total as f64,
        );
        family(
            out,
            "limiter_queue_displaced_total",
            "Refusals of waiters displaced from a full standing queue by newer requests, per limiter.",
            Kind::Counter,
            |s| s.displaced_total as f64,
        );
    }
}
