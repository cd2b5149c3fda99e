//! A fixed-bucket latency histogram of atomics: cheap enough for every request, read by
//! the monitor and rendered as a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (a last, open bucket follows).
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// A fixed-bucket latency histogram of atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = BUCKETS_US.partition_point(|&bound| bound < us);
        self.buckets[index].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The current counts, for windowed figures ([`Reading::since`]).
    pub fn read(&self) -> Reading {
        Reading {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            count: self.count.load(Relaxed),
            sum_us: self.sum_us.load(Relaxed),
        }
    }

    /// The upper bound (µs) of the bucket holding the `q` quantile; `None` without data.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        self.read().quantile_us(q)
    }
}

/// The counts of a [`Histogram`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Per bucket, not cumulative; the last is above every bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_us: u64,
}

impl Reading {
    /// What was observed between `earlier` and this reading.
    pub fn since(&self, earlier: &Reading) -> Reading {
        Reading {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// The upper bound (µs) of the bucket holding the `q` quantile; `None` without data.
    /// For the open last bucket the largest bound is answered.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        let last = BUCKETS_US.len() - 1;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(BUCKETS_US[index.min(last)]);
            }
        }
        BUCKETS_US.last().copied()
    }

    /// Mean observation in µs; `None` without data.
    pub fn average_us(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_reading_since_gives_the_window() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_secs(5));
        let earlier = histogram.read();
        for _ in 0..10 {
            histogram.observe(Duration::from_micros(90));
        }
        let window = histogram.read().since(&earlier);
        assert_eq!(window.count, 10);
        assert_eq!(
            window.quantile_us(0.99),
            Some(100),
            "the old slow one is outside the window"
        );
        assert_eq!(window.average_us(), Some(90.0));
        assert_eq!(Reading::default().average_us(), None);
    }

    #[test]
    fn histogram_quantiles_come_from_bucket_bounds() {
        let histogram = Histogram::default();
        assert_eq!(histogram.quantile_us(0.99), None);
        for _ in 0..98 {
            histogram.observe(Duration::from_micros(80));
        }
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        assert_eq!(histogram.quantile_us(0.5), Some(100));
        assert_eq!(histogram.quantile_us(0.99), Some(5_000));
        assert_eq!(histogram.quantile_us(1.0), Some(10_000_000));
        let Reading {
            buckets,
            count,
            sum_us: sum,
        } = histogram.read();
        assert_eq!((buckets.iter().sum::<u64>(), count), (100, 100));
        assert_eq!(sum, 98 * 80 + 3_000 + 60_000_000);
    }
}
