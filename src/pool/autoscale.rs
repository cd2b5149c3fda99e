//! Autoscaling a pool's maximum: a pure decision over one maintenance window.
//!
//! A pool is too small when acquirers queue: it **grows** (by half, at least one, up to
//! `scale_max`) when, in the last window, acquirers found it at its maximum and had to
//! wait, and either the p99 acquire wait passed the pool's `wait_target` or an acquire
//! timed out. It is too large when its objects sit unused: after `SHRINK_AFTER`
//! consecutive windows in which utilization (the time-weighted mean of objects in use,
//! over the maximum) stayed under one half, the pool never reached its maximum, and the
//! wait stayed under half the target, it **shrinks** towards twice the mean in use, never
//! below the window's peak in use or `scale_min`, and at most halving per step. Growth is
//! fast and shrinking slow, because a waiting request costs more than an idle object.
//!
//! Each decision carries its evidence (the window's figures), is logged by the pool
//! manager, and is kept by the pool for `/admin/pools`. The tuner resizes through the
//! same path.

use std::time::Duration;

/// Consecutive low-utilization windows before the first shrink.
pub const SHRINK_AFTER: u32 = 3;
/// Utilization under which a window counts as low.
pub const LOW_UTILIZATION: f64 = 0.5;

/// What a pool saw during one maintenance window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub length: Duration,
    pub acquires: u64,
    /// Acquires that found the pool at its maximum and waited.
    pub waited: u64,
    pub timeouts: u64,
    /// p99 acquire wait (a histogram bucket bound); `None` without acquires.
    pub p99_wait: Option<Duration>,
    /// Time-weighted mean of the objects in use.
    pub mean_in_use: f64,
    pub peak_in_use: usize,
}

/// The bounds and target a decision respects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub scale_min: usize,
    pub scale_max: usize,
    pub wait_target: Duration,
}

/// Which way a resize of a pool's maximum went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// The maximum went up.
    Grow,
    /// The maximum went down.
    Shrink,
}

impl Direction {
    /// The direction as logs and JSON name it: `grow` or `shrink`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Grow => "grow",
            Direction::Shrink => "shrink",
        }
    }
}

/// The figures of the maintenance window an autoscaling decision was made on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Evidence {
    /// Length of the maintenance window, in milliseconds.
    pub window_ms: u64,
    /// Acquires in the window.
    pub acquires: u64,
    /// Acquires that found the pool at its maximum and waited.
    pub waited: u64,
    /// Acquires that timed out (`pools.acquire_timeout_ms`).
    pub timeouts: u64,
    /// p99 acquire wait (a histogram bucket bound), in microseconds; `None` without acquires.
    pub p99_wait_us: Option<u64>,
    /// The pool's wait target (`pools.wait_target_ms`), in microseconds.
    pub wait_target_us: u64,
    /// Mean objects in use over the maximum.
    pub utilization: f64,
    /// Time-weighted mean of the objects in use.
    pub mean_in_use: f64,
    /// Most objects in use at once.
    pub peak_in_use: usize,
}

/// A change of a pool's maximum (by the autoscaler or a resize), with why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Decision {
    /// The maximum before, in objects.
    pub from: usize,
    /// The maximum after, in objects.
    pub to: usize,
    /// Which way it went.
    pub direction: Direction,
    /// Who decided: `autoscale`, or the caller of a resize (`admin`, `tuner`, `api`).
    pub by: String,
    /// One sentence naming the rule that fired.
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `None` for a resize asked for from outside.
    pub evidence: Option<Evidence>,
}

/// The autoscaler's memory between windows: how many low windows in a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trend {
    pub low_windows: u32,
}

/// Decides the maximum after `window`; `None` keeps `current`.
pub fn decide(
    window: &Window,
    policy: &Policy,
    current: usize,
    trend: &mut Trend,
) -> Option<(usize, Direction, String, Evidence)> {
    let utilization = if current == 0 {
        0.0
    } else {
        window.mean_in_use / current as f64
    };
    let evidence = Evidence {
        window_ms: window.length.as_millis() as u64,
        acquires: window.acquires,
        waited: window.waited,
        timeouts: window.timeouts,
        p99_wait_us: window.p99_wait.map(|wait| wait.as_micros() as u64),
        wait_target_us: policy.wait_target.as_micros() as u64,
        utilization,
        mean_in_use: window.mean_in_use,
        peak_in_use: window.peak_in_use,
    };
    let slow = window
        .p99_wait
        .is_some_and(|wait| wait > policy.wait_target);
    if window.waited > 0 && (slow || window.timeouts > 0) {
        trend.low_windows = 0;
        if current >= policy.scale_max {
            return None;
        }
        let to = (current + current.div_ceil(2)).clamp(current + 1, policy.scale_max);
        let reason = if window.timeouts > 0 {
            format!(
                "{} acquire(s) timed out while the pool was at its maximum",
                window.timeouts
            )
        } else {
            format!(
                "p99 acquire wait {} us passed the {} us target while the pool was at its maximum",
                evidence.p99_wait_us.unwrap_or(0),
                evidence.wait_target_us
            )
        };
        return Some((to, Direction::Grow, reason, evidence));
    }
    let relaxed = window
        .p99_wait
        .is_none_or(|wait| wait * 2 <= policy.wait_target);
    let low = utilization < LOW_UTILIZATION && window.peak_in_use < current && relaxed;
    if !low {
        trend.low_windows = 0;
        return None;
    }
    trend.low_windows += 1;
    if trend.low_windows < SHRINK_AFTER || current <= policy.scale_min {
        return None;
    }
    let needed = ((window.mean_in_use * 2.0).ceil() as usize).max(window.peak_in_use);
    let to = needed.max(current.div_ceil(2)).max(policy.scale_min).max(1);
    if to >= current {
        return None;
    }
    // The next low window may shrink again; a busy one starts the count over.
    trend.low_windows = SHRINK_AFTER - 1;
    let reason = format!(
        "utilization {:.2} stayed under {LOW_UTILIZATION} for {SHRINK_AFTER} windows (peak {} in use)",
        utilization, window.peak_in_use
    );
    Some((to, Direction::Shrink, reason, evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        scale_min: 2,
        scale_max: 16,
        wait_target: Duration::from_millis(5),
    };

    fn busy(current: usize, wait_ms: u64) -> Window {
        Window {
            length: Duration::from_secs(1),
            acquires: 1000,
            waited: 400,
            timeouts: 0,
            p99_wait: Some(Duration::from_millis(wait_ms)),
            mean_in_use: current as f64,
            peak_in_use: current,
        }
    }

    fn quiet(mean: f64, peak: usize) -> Window {
        Window {
            length: Duration::from_secs(1),
            acquires: 50,
            waited: 0,
            timeouts: 0,
            p99_wait: Some(Duration::from_micros(50)),
            mean_in_use: mean,
            peak_in_use: peak,
        }
    }

    #[test]
    fn autoscale_grows_by_half_when_waits_pass_the_target_at_the_maximum() {
        let mut trend = Trend::default();
        let (to, direction, reason, evidence) =
            decide(&busy(4, 10), &POLICY, 4, &mut trend).unwrap();
        assert_eq!((to, direction), (6, Direction::Grow));
        assert!(
            reason.contains("10000 us passed the 5000 us target"),
            "{reason}"
        );
        assert_eq!(evidence.p99_wait_us, Some(10_000));
        assert_eq!(decide(&busy(1, 10), &POLICY, 1, &mut trend).unwrap().0, 2);
        assert_eq!(
            decide(&busy(12, 10), &POLICY, 12, &mut trend).unwrap().0,
            16
        );
        assert_eq!(
            decide(&busy(16, 10), &POLICY, 16, &mut trend),
            None,
            "ceiling"
        );
    }

    #[test]
    fn autoscale_holds_when_waits_are_under_the_target_or_nobody_waited() {
        let mut trend = Trend::default();
        assert_eq!(decide(&busy(4, 5), &POLICY, 4, &mut trend), None);
        let mut no_waiters = busy(4, 50);
        no_waiters.waited = 0;
        assert_eq!(decide(&no_waiters, &POLICY, 4, &mut trend), None);
    }

    #[test]
    fn autoscale_grows_on_timeouts_even_without_a_wait_quantile_over_target() {
        let mut trend = Trend::default();
        let mut window = busy(4, 1);
        window.timeouts = 3;
        let (to, _, reason, _) = decide(&window, &POLICY, 4, &mut trend).unwrap();
        assert_eq!(to, 6);
        assert!(reason.starts_with("3 acquire(s) timed out"), "{reason}");
    }

    #[test]
    fn autoscale_shrinks_only_after_consecutive_low_windows_and_not_below_need() {
        let mut trend = Trend::default();
        for _ in 1..SHRINK_AFTER {
            assert_eq!(decide(&quiet(1.0, 3), &POLICY, 16, &mut trend), None);
        }
        let (to, direction, _, evidence) = decide(&quiet(1.0, 3), &POLICY, 16, &mut trend).unwrap();
        assert_eq!((to, direction), (8, Direction::Shrink), "at most halving");
        assert!(evidence.utilization < LOW_UTILIZATION);
        // The next low window continues; the peak in use is a floor.
        assert_eq!(decide(&quiet(1.0, 3), &POLICY, 8, &mut trend).unwrap().0, 4);
        assert_eq!(decide(&quiet(1.0, 3), &POLICY, 4, &mut trend).unwrap().0, 3);
        assert_eq!(
            decide(&quiet(1.0, 3), &POLICY, 3, &mut trend),
            None,
            "the peak in use is a floor"
        );
        // scale_min is a floor.
        let mut trend = Trend {
            low_windows: SHRINK_AFTER,
        };
        assert_eq!(decide(&quiet(0.0, 0), &POLICY, 3, &mut trend).unwrap().0, 2);
        assert_eq!(decide(&quiet(0.0, 0), &POLICY, 2, &mut trend), None);
    }

    #[test]
    fn autoscale_a_busy_window_restarts_the_shrink_count() {
        let mut trend = Trend::default();
        decide(&quiet(1.0, 2), &POLICY, 16, &mut trend);
        decide(&quiet(1.0, 2), &POLICY, 16, &mut trend);
        assert_eq!(decide(&quiet(12.0, 16), &POLICY, 16, &mut trend), None);
        assert_eq!(trend.low_windows, 0);
        assert_eq!(decide(&quiet(1.0, 2), &POLICY, 16, &mut trend), None);
    }

    #[test]
    fn autoscale_does_not_shrink_while_waits_are_near_the_target() {
        let mut trend = Trend { low_windows: 10 };
        let mut window = quiet(1.0, 2);
        window.p99_wait = Some(Duration::from_millis(4));
        assert_eq!(decide(&window, &POLICY, 16, &mut trend), None);
    }
}
