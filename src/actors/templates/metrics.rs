//! The store's counters and its metric families (`template_*`, `templates_*`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::TemplatesShared;
use crate::metrics::{Collector, Histogram, Source};
use crate::templates::RenderError;

/// Counters of renders, reloads and flattening panics.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) renders: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) out_of_fuel: AtomicU64,
    pub(super) too_large: AtomicU64,
    pub(super) reloads: AtomicU64,
    /// Flattening workers that panicked in the builds published.
    pub(super) flatten_panics: AtomicU64,
    /// Reloads that panicked (the set in service stays).
    pub(super) reload_panics: AtomicU64,
    pub(super) render_time: Histogram,
}

impl Counters {
    /// Counts one render and its outcome, which took `elapsed` (queueing included).
    pub(super) fn count_render<T>(&self, result: &Result<T, RenderError>, elapsed: Duration) {
        self.render_time.observe(elapsed);
        self.renders.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {}
            Err(RenderError::OutOfFuel { .. }) => {
                self.out_of_fuel.fetch_add(1, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(RenderError::TooLarge { .. }) => {
                self.too_large.fetch_add(1, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Source for TemplatesShared {
    fn collect(&self, out: &mut Collector) {
        let published = self.published();
        let counters = self.counters();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        out.gauge(
            "templates_loaded",
            "Templates known to the store.",
            published.templates.len() as f64,
        );
        out.gauge(
            "templates_in_error",
            "Templates whose latest version failed to load.",
            published.in_error() as f64,
        );
        out.gauge(
            "templates_flattened",
            "Templates served with their extends chain flattened.",
            published.flattened() as f64,
        );
        let totals: [(&'static str, &'static str, &AtomicU64); 7] = [
            (
                "template_renders_total",
                "Template renders.",
                &counters.renders,
            ),
            (
                "template_render_failures_total",
                "Template renders that failed (any reason).",
                &counters.failures,
            ),
            (
                "template_renders_out_of_fuel_total",
                "Template renders stopped by templates.max_fuel.",
                &counters.out_of_fuel,
            ),
            (
                "template_renders_too_large_total",
                "Template renders stopped by templates.max_output_bytes.",
                &counters.too_large,
            ),
            (
                "template_reloads_total",
                "Template folder scans.",
                &counters.reloads,
            ),
            (
                "template_flatten_panics_total",
                "Flattening workers that panicked (their templates served unflattened).",
                &counters.flatten_panics,
            ),
            (
                "template_reload_panics_total",
                "Template reloads that panicked (the set in service stayed).",
                &counters.reload_panics,
            ),
        ];
        for (name, help, counter) in totals {
            out.counter(name, help, load(counter));
        }
        out.histogram(
            "template_render_seconds",
            "Time to render a template, queueing for a worker included.",
            &counters.render_time,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_counters_count_each_failure_once_and_its_kind() {
        let counters = Counters::default();
        let name = || "page.html".to_owned();
        let outcomes: [Result<(), RenderError>; 4] = [
            Ok(()),
            Err(RenderError::OutOfFuel {
                name: name(),
                fuel: 1,
            }),
            Err(RenderError::TooLarge {
                name: name(),
                limit: 1,
            }),
            Err(RenderError::NotFound(name())),
        ];
        for outcome in &outcomes {
            counters.count_render(outcome, Duration::from_millis(1));
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        assert_eq!(
            [
                load(&counters.renders),
                load(&counters.failures),
                load(&counters.out_of_fuel),
                load(&counters.too_large),
            ],
            [4, 3, 1, 1]
        );
    }
}
