//! What a pool reports: its figures ([`PoolStats`]), why objects left it
//! ([`DiscardReason`]) and what one round of upkeep did ([`MaintainReport`]).

use std::time::Duration;

use crate::metrics::{BUCKETS_US, Reading};

use super::autoscale::Decision;
use super::spec::PoolSpec;

/// Why an object left its pool for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DiscardReason {
    /// Its guard was dropped while the holder's thread panicked.
    Panicked,
    /// The holder discarded it ([`super::Pooled::discard`]).
    Discarded,
    /// [`super::Manager::recycle`] refused it on return.
    Recycle,
    /// [`super::Manager::validate`] failed after an idle window.
    Invalid,
    /// Idle longer than `idle_timeout`, above `min_idle`.
    IdleTimeout,
    /// Older than `max_lifetime`.
    MaxLifetime,
    /// The pool's maximum went down below the objects alive.
    Shrunk,
    /// The pool was removed.
    Closed,
}

impl DiscardReason {
    /// Every reason, in the order statistics list them.
    pub const ALL: [DiscardReason; 8] = [
        DiscardReason::Panicked,
        DiscardReason::Discarded,
        DiscardReason::Recycle,
        DiscardReason::Invalid,
        DiscardReason::IdleTimeout,
        DiscardReason::MaxLifetime,
        DiscardReason::Shrunk,
        DiscardReason::Closed,
    ];

    /// The reason as metrics and JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            DiscardReason::Panicked => "panicked",
            DiscardReason::Discarded => "discarded",
            DiscardReason::Recycle => "recycle",
            DiscardReason::Invalid => "invalid",
            DiscardReason::IdleTimeout => "idle_timeout",
            DiscardReason::MaxLifetime => "max_lifetime",
            DiscardReason::Shrunk => "shrunk",
            DiscardReason::Closed => "closed",
        }
    }

    pub(crate) fn index(self) -> usize {
        DiscardReason::ALL
            .iter()
            .position(|reason| *reason == self)
            .unwrap_or(0)
    }
}

/// A pool's acquire waits or hold times ([`PoolStats::acquire_wait`],
/// [`PoolStats::hold_time`]): how many, their mean and quantiles, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct WaitFigures {
    /// Durations recorded.
    pub count: u64,
    /// Their mean, in microseconds; `None` when none were recorded.
    pub mean_us: Option<f64>,
    /// The median, in microseconds (a bucket's upper bound); `None` when none were recorded.
    pub p50_us: Option<u64>,
    /// The 99th percentile, in microseconds (a bucket's upper bound); `None` when none were
    /// recorded.
    pub p99_us: Option<u64>,
}

impl WaitFigures {
    pub(crate) fn of(reading: &Reading) -> WaitFigures {
        WaitFigures {
            count: reading.count,
            mean_us: reading.average_us(),
            p50_us: reading.quantile_us(0.5),
            p99_us: reading.quantile_us(0.99),
        }
    }
}

/// A pool's figures at one moment.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// The options the pool was made (or last resized) with.
    pub spec: PoolSpec,
    /// The maximum now (moved by the autoscaler and by resizes).
    pub max_size: usize,
    /// Objects alive: idle, in use and being made.
    pub size: usize,
    /// Objects idle and ready.
    pub idle: usize,
    /// Objects held by acquirers.
    pub in_use: usize,
    /// Acquirers waiting now.
    pub waiters: usize,
    /// Acquires that got an object.
    pub acquires: u64,
    /// Acquires that had to wait for an object.
    pub waited: u64,
    /// Objects made.
    pub created: u64,
    /// Attempts to make an object that failed.
    pub create_failures: u64,
    /// Objects returned and kept for reuse.
    pub recycled: u64,
    /// Objects dropped, by reason (every reason listed).
    pub discarded: Vec<(DiscardReason, u64)>,
    /// Acquires that gave up waiting.
    pub timeouts: u64,
    /// Holds found longer than `leak_threshold` (each counted once).
    pub leaks: u64,
    /// Times the maximum went up (autoscaler and resizes).
    pub grown: u64,
    /// Times the maximum went down.
    pub shrunk: u64,
    /// Holds over the threshold now.
    pub leaking: usize,
    /// How long acquires waited for an object.
    pub acquire_wait: WaitFigures,
    /// How long objects were held.
    pub hold_time: WaitFigures,
    /// Heap bytes the idle objects hold.
    pub idle_bytes: u64,
    /// Removed: acquires fail with `closed`.
    pub closed: bool,
    /// The latest resize decisions, oldest first.
    pub decisions: Vec<Decision>,
    #[serde(skip)]
    pub(crate) wait_reading: Reading,
    #[serde(skip)]
    pub(crate) hold_reading: Reading,
}

impl PoolStats {
    /// Objects discarded for `reason`.
    pub fn discarded(&self, reason: DiscardReason) -> u64 {
        self.discarded
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Objects discarded for any reason.
    pub fn discarded_total(&self) -> u64 {
        self.discarded.iter().map(|(_, n)| n).sum()
    }
}

/// What one round of [`super::Pool::maintain`] did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MaintainReport {
    /// Objects dropped by the reaper (idle timeout, lifetime).
    pub reaped: usize,
    /// Objects made to refill `min_idle`.
    pub filled: usize,
    /// Holds newly found over the leak threshold.
    pub leaks: usize,
    /// The autoscaler's resize, if it made one.
    pub decision: Option<Decision>,
}

/// A duration histogram kept under the pool's lock: plain integers, the same buckets as
/// [`crate::metrics::Histogram`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Buckets {
    counts: [u64; BUCKETS_US.len() + 1],
    count: u64,
    sum_us: u64,
}

impl Buckets {
    pub(crate) fn observe(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.observe_us(us);
    }

    /// An acquire served at once (the first bucket), without the bucket search.
    pub(crate) fn observe_zero(&mut self) {
        self.counts[0] += 1;
        self.count += 1;
    }

    pub(crate) fn observe_us(&mut self, us: u64) {
        let index = BUCKETS_US.partition_point(|&bound| bound < us);
        self.counts[index] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub(crate) fn reading(&self) -> Reading {
        Reading {
            buckets: self.counts.to_vec(),
            count: self.count,
            sum_us: self.sum_us,
        }
    }
}
