//! The file cache's counters: plain atomics bumped by request handlers and the cache
//! actor, read by anyone (the admin route, later the monitor) without a message. They are
//! cumulative for the life of the runtime; a restart of the cache empties the cache, not
//! the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the serve-time buckets, in microseconds (the last bucket is open).
pub const SERVE_TIME_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Counters shared by the cache actor and the request handlers.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub(crate) files_served: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) compressed_served: AtomicU64,
    pub(crate) revalidations: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) serve_time: Histogram,
}

impl CacheCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// A fixed-bucket latency histogram of atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; SERVE_TIME_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = SERVE_TIME_BUCKETS_US.partition_point(|&bound| bound < us);
        self.buckets[index].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Count per bucket (the last one is above every bound), total count, sum in µs.
    pub fn snapshot(&self) -> (Vec<u64>, u64, u64) {
        let buckets = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        (buckets, self.count.load(Relaxed), self.sum_us.load(Relaxed))
    }

    /// The upper bound (µs) of the bucket holding the `q` quantile; `None` without data.
    /// For the open last bucket the largest bound is answered.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let (buckets, count, _) = self.snapshot();
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let last = SERVE_TIME_BUCKETS_US.len() - 1;
                return Some(SERVE_TIME_BUCKETS_US[index.min(last)]);
            }
        }
        SERVE_TIME_BUCKETS_US.last().copied()
    }
}

/// A snapshot of the cache's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheStats {
    pub files_served: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// hits / (hits + misses); 0 before any lookup.
    pub hit_ratio: f64,
    pub evictions: u64,
    pub bytes_cached: u64,
    pub budget_bytes: u64,
    pub items: usize,
    pub compressed_served: u64,
    /// Bytes gzip saves over the identity bytes of the cached compressible files, divided
    /// by those identity bytes.
    pub compression_ratio: f64,
    pub average_serve_time_ms: f64,
    /// Upper bound of the serve-time bucket holding the 99th percentile.
    pub p99_serve_time_ms: f64,
    pub revalidations: u64,
    pub too_large: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!((buckets.iter().sum::<u64>(), count), (100, 100));
        assert_eq!(sum, 98 * 80 + 3_000 + 60_000_000);
    }
}
