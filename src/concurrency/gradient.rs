//! The adaptive in-flight limit: a pure algorithm over completed requests' latencies.
//!
//! **Why this shape.** A limit is right when requests run as fast as the server can
//! serve one alone: above the service's capacity knee, latency grows with concurrency
//! while throughput does not. So the limit follows the ratio of the current latency to
//! the no-load latency, in the Vegas/Gradient family, with the known failure modes of
//! those limiters designed out:
//!
//! - **No creep under modest overload** (concurrency-limits#134): the limit grows only
//!   while the latency ratio is under `grow_below` *and* the limit was used (the window's
//!   peak in flight reached it); there is no additive queue allowance that grows with the
//!   limit.
//! - **Only real latencies** (concurrency-limits#176): samples come from admitted requests
//!   that completed without a server error; rejected and failed requests feed nothing.
//! - **Pauses are not overload** (concurrency-limits#58): each decision uses the
//!   *median* of a window of at least `min_samples` latencies, so an allocator or
//!   scheduler stall that delays a few requests moves nothing.
//! - **No pinning** (envoy#8337): the no-load latency is never measured by dropping the
//!   limit; it is the minimum of the recent windows' medians, learnt from the start: the
//!   limit starts low (`initial`, by default the floor) and grows while latency stays at
//!   its no-load level, like a TCP slow start.
//! - **No ratchet** (envoy#11579): a window in which the limit was full can lower the
//!   no-load latency but never raise it (its median is queueing, not the service). Only
//!   windows with spare room raise it, once every window of the history (`history`
//!   windows) was slower: a real slowdown of a dependency is learnt when the load allows,
//!   a spike or a standing overload never is.
//!
//! **The rule**, once per window: `ratio = median / max(baseline, noise_floor)`. Above `tolerance` the
//! limit is scaled down towards the middle of the band (`limit × mid / ratio`, at most
//! halving); under `grow_below`, when the limit was used, it grows by 5% (at least half a
//! request). In between it holds. It stays within `[min, max]`.
//!
//! **Slow start.** Until the first window that does not grow (one that holds or shrinks),
//! a used limit doubles instead of growing by 5%, as TCP's slow start does: a fresh
//! server under a steady 32 connections reaches 32 in three windows instead of forty, so
//! a cold start is not mistaken for overload (the limiter does not treat a queue as
//! standing while the limit is still in slow start).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The adaptive in-flight limit's options.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct LimitConfig {
    /// Where the limit starts, in requests in flight (`limiter.min_limit`): low, so the
    /// no-load latency is learnt before the limit grows.
    pub initial: usize,
    /// `limiter.min_limit`: the lowest limit, in requests in flight.
    pub min: usize,
    /// `limiter.max_limit`: the highest limit, in requests in flight.
    pub max: usize,
    /// `limiter.latency_tolerance_percent` as a ratio: latency ratio above which the limit
    /// shrinks (1.25: 25% over no-load latency).
    pub tolerance: f64,
    /// Latency ratio under which a used limit grows.
    pub grow_below: f64,
    /// Shortest window; a window also needs `min_samples` completions.
    pub window: Duration,
    /// Completions a window needs before it decides: its median then ignores a few stalled
    /// requests.
    pub min_samples: usize,
    /// Windows whose medians give the no-load latency (their minimum).
    pub history: usize,
    /// Latency differences under this are noise: the no-load latency used in the ratio is
    /// at least this (a 50 µs hit that takes 200 µs is not overload).
    pub noise_floor: Duration,
    /// Double the limit until the first window that does not grow (see the module docs).
    pub slow_start: bool,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            initial: 4,
            min: 4,
            max: 1000,
            tolerance: 1.25,
            grow_below: 1.1,
            window: Duration::from_millis(100),
            min_samples: 10,
            history: 100,
            noise_floor: Duration::from_millis(1),
            slow_start: true,
        }
    }
}

/// What the last window decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowFigures {
    pub median: Duration,
    pub baseline: Duration,
    pub ratio: f64,
    pub peak_in_flight: usize,
    pub limit: usize,
}

/// The adaptive limit (see the module docs).
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    config: LimitConfig,
    limit: f64,
    window_start: Instant,
    samples: Vec<Duration>,
    peak_in_flight: usize,
    medians: VecDeque<Duration>,
    last: Option<WindowFigures>,
    /// Doubling until the first window that does not grow (see the module docs).
    slow_start: bool,
}

impl AdaptiveLimit {
    pub fn new(config: LimitConfig, now: Instant) -> AdaptiveLimit {
        AdaptiveLimit {
            limit: config.initial.clamp(config.min, config.max) as f64,
            config,
            window_start: now,
            samples: Vec::new(),
            peak_in_flight: 0,
            medians: VecDeque::new(),
            last: None,
            slow_start: config.slow_start && config.min < config.max,
        }
    }

    /// Whether the limit is still in its slow start: every window so far grew it or
    /// left it unused at no-load latency.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(self.config.min, self.config.max)
    }

    pub fn config(&self) -> &LimitConfig {
        &self.config
    }

    /// The last window's figures.
    pub fn last_window(&self) -> Option<WindowFigures> {
        self.last
    }

    /// A request was admitted; `in_flight` counts it.
    pub fn on_admit(&mut self, in_flight: usize) {
        self.peak_in_flight = self.peak_in_flight.max(in_flight);
    }

    /// An admitted request completed without a server error after `latency`.
    pub fn on_sample(&mut self, now: Instant, latency: Duration) {
        self.samples.push(latency);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= self.config.window && self.samples.len() >= self.config.min_samples {
            self.decide(now);
        } else if elapsed >= self.config.window * 50 {
            // Too few completions for a verdict in a long time: start over.
            self.samples.clear();
            self.peak_in_flight = 0;
            self.window_start = now;
        }
    }

    fn decide(&mut self, now: Instant) {
        self.samples.sort_unstable();
        let median = self.samples[self.samples.len() / 2];
        self.samples.clear();
        let used = self.peak_in_flight >= self.limit();
        let known = self.medians.iter().min().copied();
        if self.medians.len() == self.config.history {
            self.medians.pop_front();
        }
        // A full limit's median is queueing: it may lower the no-load latency, not raise it.
        let learnt = match known {
            Some(known) if used => median.min(known),
            _ => median,
        };
        self.medians.push_back(learnt);
        let baseline = self
            .medians
            .iter()
            .min()
            .copied()
            .unwrap_or(median)
            .max(Duration::from_nanos(1));
        let ratio = median.as_secs_f64() / baseline.max(self.config.noise_floor).as_secs_f64();
        let config = self.config;
        if ratio > config.tolerance {
            let middle = (config.tolerance + config.grow_below) / 2.0;
            self.limit *= (middle / ratio).max(0.5);
        } else if ratio < config.grow_below && used {
            self.limit += if self.slow_start {
                self.limit
            } else {
                (self.limit * 0.05).max(0.5)
            };
        }
        if ratio >= config.grow_below {
            self.slow_start = false;
        }
        self.limit = self.limit.clamp(config.min as f64, config.max as f64);
        self.last = Some(WindowFigures {
            median,
            baseline,
            ratio,
            peak_in_flight: self.peak_in_flight,
            limit: self.limit(),
        });
        self.peak_in_flight = 0;
        self.window_start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// Feeds one window of `n` samples of `latency` with `peak` in flight.
    fn window(
        limit: &mut AdaptiveLimit,
        start: Instant,
        t: &mut u64,
        latency_us: u64,
        peak: usize,
    ) {
        limit.on_admit(peak);
        for _ in 0..20 {
            *t += 5;
            limit.on_sample(at(start, *t), Duration::from_micros(latency_us));
        }
    }

    #[test]
    fn limiter_slow_start_doubles_until_a_window_does_not_grow() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(
            LimitConfig {
                noise_floor: Duration::ZERO,
                ..LimitConfig::default()
            },
            start,
        );
        let mut t = 0;
        assert!(limit.in_slow_start());
        window(&mut limit, start, &mut t, 1000, 4);
        window(&mut limit, start, &mut t, 1000, 3);
        assert_eq!(
            limit.limit(),
            8,
            "used: doubled; unused: held, still starting"
        );
        window(&mut limit, start, &mut t, 1000, 8);
        assert_eq!(limit.limit(), 16);
        assert!(limit.in_slow_start());
        // 15% over the no-load latency: in the band, held; the slow start is over.
        window(&mut limit, start, &mut t, 1150, 16);
        assert_eq!(limit.limit(), 16);
        assert!(!limit.in_slow_start());
        window(&mut limit, start, &mut t, 1000, 16);
        assert_eq!(limit.limit(), 16, "+5% of 16 is 0.8: 16.8 floors to 16");
        window(&mut limit, start, &mut t, 1000, 16);
        assert_eq!(limit.limit(), 17, "then 5% a window");
        // A fixed limit has nothing to learn.
        let fixed = AdaptiveLimit::new(
            LimitConfig {
                initial: 2,
                min: 2,
                max: 2,
                ..LimitConfig::default()
            },
            start,
        );
        assert!(!fixed.in_slow_start());
    }

    #[test]
    fn limiter_grows_only_while_used_and_fast() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(
            LimitConfig {
                initial: 20,
                noise_floor: Duration::ZERO,
                slow_start: false,
                ..LimitConfig::default()
            },
            start,
        );
        let mut t = 0;
        window(&mut limit, start, &mut t, 1000, 20);
        assert_eq!(limit.limit(), 21, "used and at no-load latency: +5%");
        window(&mut limit, start, &mut t, 1000, 3);
        assert_eq!(limit.limit(), 21, "not used: no growth (no creep)");
    }

    #[test]
    fn limiter_shrinks_towards_the_band_when_latency_rises_and_holds_inside_it() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(
            LimitConfig {
                initial: 20,
                noise_floor: Duration::ZERO,
                slow_start: false,
                ..LimitConfig::default()
            },
            start,
        );
        let mut t = 0;
        window(&mut limit, start, &mut t, 1000, 20);
        window(&mut limit, start, &mut t, 2000, 21);
        // ratio 2: scaled by 1.175 / 2.
        assert_eq!(limit.limit(), 12);
        let last = limit.last_window().unwrap();
        assert_eq!(
            (last.median, last.baseline),
            (Duration::from_millis(2), Duration::from_millis(1))
        );
        window(&mut limit, start, &mut t, 1150, 12);
        assert_eq!(limit.limit(), 12, "inside the band: hold");
    }

    #[test]
    fn limiter_ignores_a_few_stalled_requests() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(
            LimitConfig {
                initial: 20,
                noise_floor: Duration::ZERO,
                slow_start: false,
                ..LimitConfig::default()
            },
            start,
        );
        let mut t = 0;
        window(&mut limit, start, &mut t, 1000, 20);
        limit.on_admit(21);
        for n in 0..20 {
            t += 5;
            // A 200 ms pause delays six of twenty.
            let latency = if n < 6 { 200_000 } else { 1000 };
            limit.on_sample(at(start, t), Duration::from_micros(latency));
        }
        assert!(limit.limit() >= 21, "{}", limit.limit());
    }

    #[test]
    fn limiter_never_leaves_its_bounds() {
        let start = Instant::now();
        let config = LimitConfig {
            min: 4,
            max: 30,
            noise_floor: Duration::ZERO,
            ..LimitConfig::default()
        };
        let mut limit = AdaptiveLimit::new(config, start);
        let mut t = 0;
        window(&mut limit, start, &mut t, 1000, 100);
        for _ in 0..50 {
            window(&mut limit, start, &mut t, 50_000, 100);
        }
        assert_eq!(limit.limit(), 4);
        for _ in 0..200 {
            window(&mut limit, start, &mut t, 1000, 100);
        }
        assert_eq!(limit.limit(), 30);
    }
}
