//! A pool's limits and timings, checked once when the pool is made or resized.

use std::time::Duration;

/// Largest `max_size` / `scale_max` a pool accepts.
pub const MAX_POOL_SIZE: usize = 4096;
/// Default time an acquire waits for an object.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time an idle object above `min_idle` is kept.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest life of an object (shortened by up to a tenth, at random).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Default idle time after which an object is validated before reuse.
pub const DEFAULT_VALIDATE_AFTER: Duration = Duration::from_secs(30);
/// Default hold time after which a hold is reported as a leak.
pub const DEFAULT_LEAK_THRESHOLD: Duration = Duration::from_secs(30);
/// Default p99 acquire wait above which a saturated pool grows.
pub const DEFAULT_WAIT_TARGET: Duration = Duration::from_millis(5);

/// The options of one pool. Build it with [`PoolSpec::new`] and the builder methods; every
/// default is stated on its method.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PoolSpec {
    /// Objects kept idle and ready: filled when the pool is made, kept by the reaper.
    pub min_idle: usize,
    /// The most objects alive at once (idle, in use, or being made), at the start; the
    /// autoscaler moves it between `scale_min` and `scale_max`.
    pub max_size: usize,
    /// Lowest maximum the autoscaler may set.
    pub scale_min: usize,
    /// Highest maximum the autoscaler may set.
    pub scale_max: usize,
    /// Whether the maximum follows the measured wait and utilization.
    pub autoscale: bool,
    /// How long an acquire waits for an object by default.
    #[serde(serialize_with = "millis")]
    pub acquire_timeout: Duration,
    /// Idle objects above `min_idle` older than this are dropped; `None`: kept.
    #[serde(serialize_with = "opt_millis")]
    pub idle_timeout: Option<Duration>,
    /// Objects older than this are dropped when next idle; `None`: no limit.
    #[serde(serialize_with = "opt_millis")]
    pub max_lifetime: Option<Duration>,
    /// Objects idle longer than this are validated before reuse; `None`: never.
    #[serde(serialize_with = "opt_millis")]
    pub validate_after: Option<Duration>,
    /// Holds longer than this are logged once and counted as leaks; `None`: off.
    #[serde(serialize_with = "opt_millis")]
    pub leak_threshold: Option<Duration>,
    /// p99 acquire wait above which a pool at its maximum grows.
    #[serde(serialize_with = "millis")]
    pub wait_target: Duration,
}

fn millis<S: serde::Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(value.as_millis() as u64)
}

fn opt_millis<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => s.serialize_some(&(value.as_millis() as u64)),
        None => s.serialize_none(),
    }
}

/// A pool option out of range, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pool option `{field}` = {value}: {allowed}")]
#[non_exhaustive]
pub struct SpecError {
    /// The option, as spelt in `[pools]`.
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl PoolSpec {
    /// A pool of at most `max_size` objects, autoscaling between 1 and 4 × `max_size`
    /// (capped at 4096), no idle minimum, and the `DEFAULT_*` timings: acquire timeout
    /// 5 s, idle timeout 60 s, max lifetime 30 min, validation after 30 s idle, leak
    /// threshold 30 s, wait target 5 ms.
    pub fn new(max_size: usize) -> PoolSpec {
        PoolSpec {
            min_idle: 0,
            max_size,
            scale_min: 1,
            scale_max: max_size.saturating_mul(4).clamp(1, MAX_POOL_SIZE),
            autoscale: true,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_lifetime: Some(DEFAULT_MAX_LIFETIME),
            validate_after: Some(DEFAULT_VALIDATE_AFTER),
            leak_threshold: Some(DEFAULT_LEAK_THRESHOLD),
            wait_target: DEFAULT_WAIT_TARGET,
        }
    }

    /// Objects kept idle and ready. Default 0.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// Fixes the maximum: no autoscaling, `scale_min = scale_max = max_size`.
    pub fn fixed(mut self) -> Self {
        self.autoscale = false;
        self.scale_min = self.max_size;
        self.scale_max = self.max_size;
        self
    }

    /// Bounds of the autoscaled maximum. Default 1 and 4 × `max_size`.
    pub fn scale(mut self, min: usize, max: usize) -> Self {
        self.scale_min = min;
        self.scale_max = max;
        self
    }

    /// Default acquire timeout. Default 5 s.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Idle timeout; `None` keeps idle objects. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Longest object life; `None`: no limit. Default 30 min.
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Idle time after which objects are validated; `None`: never. Default 30 s.
    pub fn validate_after(mut self, after: Option<Duration>) -> Self {
        self.validate_after = after;
        self
    }

    /// Hold time reported as a leak; `None`: off. Default 30 s.
    pub fn leak_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.leak_threshold = threshold;
        self
    }

    /// p99 acquire wait above which a saturated pool grows. Default 5 ms.
    pub fn wait_target(mut self, target: Duration) -> Self {
        self.wait_target = target;
        self
    }

    /// Checks the limits against each other: `1 <= scale_min <= max_size <= scale_max <=
    /// 4096`, `min_idle <= max_size`, a non-zero acquire timeout and wait target.
    pub fn check(&self) -> Result<(), SpecError> {
        let error = |field, value: usize, allowed: String| SpecError {
            field,
            value: value.to_string(),
            allowed,
        };
        if self.max_size == 0 || self.max_size > MAX_POOL_SIZE {
            return Err(error(
                "max_size",
                self.max_size,
                format!("a whole number of objects from 1 to {MAX_POOL_SIZE}"),
            ));
        }
        if self.min_idle > self.max_size {
            return Err(error(
                "min_idle",
                self.min_idle,
                format!("at most max_size ({})", self.max_size),
            ));
        }
        if self.scale_min == 0 || self.scale_min > self.max_size {
            return Err(error(
                "scale_min",
                self.scale_min,
                format!("from 1 to max_size ({})", self.max_size),
            ));
        }
        if self.scale_max < self.max_size || self.scale_max > MAX_POOL_SIZE {
            return Err(error(
                "scale_max",
                self.scale_max,
                format!("from max_size ({}) to {MAX_POOL_SIZE}", self.max_size),
            ));
        }
        if self.acquire_timeout.is_zero() {
            return Err(SpecError {
                field: "acquire_timeout_ms",
                value: "0".into(),
                allowed: "at least 1 ms".into(),
            });
        }
        if self.wait_target.is_zero() {
            return Err(SpecError {
                field: "wait_target_ms",
                value: "0".into(),
                allowed: "at least 1 ms".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_spec_defaults_pass_their_own_checks() {
        for size in [1, 2, 8, 1024, MAX_POOL_SIZE] {
            let spec = PoolSpec::new(size);
            assert_eq!(spec.check(), Ok(()), "{size}");
            assert!(spec.scale_max >= size && spec.scale_max <= MAX_POOL_SIZE);
        }
        let fixed = PoolSpec::new(4).fixed();
        assert_eq!(
            (fixed.scale_min, fixed.scale_max, fixed.autoscale),
            (4, 4, false)
        );
    }

    #[test]
    fn pool_spec_check_names_the_field_that_is_wrong() {
        let field = |spec: PoolSpec| spec.check().unwrap_err().field;
        assert_eq!(field(PoolSpec::new(0)), "max_size");
        assert_eq!(field(PoolSpec::new(MAX_POOL_SIZE + 1)), "max_size");
        assert_eq!(field(PoolSpec::new(2).min_idle(3)), "min_idle");
        assert_eq!(field(PoolSpec::new(2).scale(3, 8)), "scale_min");
        assert_eq!(field(PoolSpec::new(2).scale(0, 8)), "scale_min");
        assert_eq!(field(PoolSpec::new(4).scale(1, 3)), "scale_max");
        assert_eq!(
            field(PoolSpec::new(4).acquire_timeout(Duration::ZERO)),
            "acquire_timeout_ms"
        );
        let message = PoolSpec::new(2)
            .min_idle(3)
            .check()
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "invalid pool option `min_idle` = 3: at most max_size (2)"
        );
    }
}
