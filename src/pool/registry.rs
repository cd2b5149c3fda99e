//! The registry of named pools: what the `pool_manager` actor maintains, `/admin/pools`
//! lists, the monitor collects and the profiler accounts. It lives outside the actor, so
//! the pools and their objects survive the actor's restart.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Manager;
use super::core::{Clock, Pool};
use super::spec::{PoolSpec, SpecError};
use super::stats::{DiscardReason, MaintainReport, PoolStats};
use crate::metrics::MemoryAccount;
use crate::metrics::{Collector, Kind, Sample, Source};

/// Longest pool name.
pub const MAX_NAME_LEN: usize = 64;

/// Why a registry operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Names are 1 to 64 of `[a-z0-9_]`, starting with a letter (they become metric labels).
    #[error("invalid pool name {name:?}: use 1 to 64 of a-z, 0-9 and _, starting with a letter")]
    InvalidName {
        /// The name asked for.
        name: String,
    },
    /// A pool of this name exists already.
    #[error("a pool named `{name}` exists already")]
    Exists {
        /// The pool's name.
        name: String,
    },
    /// No pool has this name.
    #[error("no pool named `{name}`")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The pool exists but holds other objects than asked for.
    #[error("pool `{name}` does not hold {expected}")]
    WrongType {
        /// The pool's name.
        name: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// The options do not fit together.
    #[error("pool `{pool}`: {error}")]
    Invalid {
        /// The pool's name.
        pool: String,
        /// Which option does not fit, and why.
        #[source]
        error: SpecError,
    },
    /// leanserve's own pools (`gzip`, `inflate`, `render_buffers`) can be resized, not removed.
    #[error("pool `{name}` is one of leanserve's own and cannot be removed")]
    Protected {
        /// The pool's name.
        name: String,
    },
    /// The pool manager did not answer (it is restarting beyond the call timeout).
    #[error("the pool manager did not answer: {0}")]
    Unavailable(String),
    /// The pool manager is switched off (`pools.enabled = false`).
    #[error(transparent)]
    Off(#[from] crate::off::Off),
}

/// A change of a pool's limits; unset fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Resize {
    /// The most objects the pool holds now.
    pub max_size: Option<usize>,
    /// Objects kept idle and ready.
    pub min_idle: Option<usize>,
    /// The lowest maximum the autoscaler sets.
    pub scale_min: Option<usize>,
    /// The highest maximum the autoscaler sets.
    pub scale_max: Option<usize>,
    /// Whether the autoscaler moves the maximum.
    pub autoscale: Option<bool>,
}

impl Resize {
    /// Sets the most objects the pool holds.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// Sets the objects kept idle and ready.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.min_idle = Some(min_idle);
        self
    }

    /// Sets the range the autoscaler moves the maximum in.
    pub fn scale(mut self, min: usize, max: usize) -> Self {
        self.scale_min = Some(min);
        self.scale_max = Some(max);
        self
    }

    /// Switches the autoscaler on or off.
    pub fn autoscale(mut self, on: bool) -> Self {
        self.autoscale = Some(on);
        self
    }
}

/// A pool seen without its object type: what the registry keeps.
pub trait ManagedPool: Send + Sync {
    fn name(&self) -> &str;
    fn stats(&self) -> PoolStats;
    fn maintain(&self) -> MaintainReport;
    fn resize(&self, resize: &Resize, by: &str) -> Result<PoolStats, SpecError>;
    fn close(&self);
}

impl<M: Manager> ManagedPool for Pool<M> {
    fn name(&self) -> &str {
        Pool::name(self)
    }
    fn stats(&self) -> PoolStats {
        Pool::stats(self)
    }
    fn maintain(&self) -> MaintainReport {
        Pool::maintain(self)
    }
    fn resize(&self, resize: &Resize, by: &str) -> Result<PoolStats, SpecError> {
        Pool::resize(self, resize, by)
    }
    fn close(&self) {
        Pool::close(self)
    }
}

struct Entry {
    pool: Arc<dyn ManagedPool>,
    /// The same pool as a `Pool<M>`, for typed lookups.
    typed: Arc<dyn Any + Send + Sync>,
}

/// The named pools of one runtime. Cheap to clone: clones share the registry.
#[derive(Clone, Default)]
pub struct Pools {
    pools: Arc<Mutex<BTreeMap<String, Entry>>>,
    clock: Option<Clock>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

fn check_name(name: &str) -> Result<(), PoolError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PoolError::InvalidName {
            name: name.to_owned(),
        })
    }
}

impl Pools {
    /// An empty registry.
    pub fn new() -> Pools {
        Pools::default()
    }

    /// A registry whose pools read time from `clock` (simulated time in tests).
    #[cfg(test)]
    pub(crate) fn with_clock(clock: Clock) -> Pools {
        Pools {
            clock: Some(clock),
            ..Pools::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes and registers a pool. It is filled to `min_idle` by the pool manager's next
    /// round (or at once by [`Pools::maintain_all`]).
    pub fn create<M: Manager>(
        &self,
        name: &str,
        spec: PoolSpec,
        manager: M,
    ) -> Result<Pool<M>, PoolError> {
        check_name(name)?;
        let mut pools = self.lock();
        if pools.contains_key(name) {
            return Err(PoolError::Exists {
                name: name.to_owned(),
            });
        }
        let clock = self.clock.unwrap_or(std::time::Instant::now);
        let pool =
            Pool::with_clock(name, spec, manager, clock).map_err(|error| PoolError::Invalid {
                pool: name.to_owned(),
                error,
            })?;
        pools.insert(
            name.to_owned(),
            Entry {
                pool: Arc::new(pool.clone()),
                typed: Arc::new(pool.clone()),
            },
        );
        Ok(pool)
    }

    /// The pool named `name`, typed.
    pub fn get<M: Manager>(&self, name: &str) -> Result<Pool<M>, PoolError> {
        let pools = self.lock();
        let entry = pools.get(name).ok_or_else(|| PoolError::NotFound {
            name: name.to_owned(),
        })?;
        entry
            .typed
            .clone()
            .downcast::<Pool<M>>()
            .map(|pool| (*pool).clone())
            .map_err(|_| PoolError::WrongType {
                name: name.to_owned(),
                expected: std::any::type_name::<M::Object>(),
            })
    }

    /// The names of the registered pools, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn all(&self) -> Vec<Arc<dyn ManagedPool>> {
        self.lock()
            .values()
            .map(|entry| entry.pool.clone())
            .collect()
    }

    fn one(&self, name: &str) -> Result<Arc<dyn ManagedPool>, PoolError> {
        self.lock()
            .get(name)
            .map(|entry| entry.pool.clone())
            .ok_or_else(|| PoolError::NotFound {
                name: name.to_owned(),
            })
    }

    /// Every pool's figures, by name.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.all().iter().map(|pool| pool.stats()).collect()
    }

    /// One pool's figures.
    pub fn stats_of(&self, name: &str) -> Result<PoolStats, PoolError> {
        Ok(self.one(name)?.stats())
    }

    /// Changes a pool's limits; `by` names who asked.
    pub fn resize(&self, name: &str, resize: &Resize, by: &str) -> Result<PoolStats, PoolError> {
        let pool = self.one(name)?;
        pool.resize(resize, by).map_err(|error| PoolError::Invalid {
            pool: name.to_owned(),
            error,
        })
    }

    /// Closes and unregisters a pool.
    pub fn remove(&self, name: &str) -> Result<(), PoolError> {
        let entry = self
            .lock()
            .remove(name)
            .ok_or_else(|| PoolError::NotFound {
                name: name.to_owned(),
            })?;
        entry.pool.close();
        Ok(())
    }

    /// One round of upkeep for every pool; decisions and leaks are logged here.
    pub fn maintain_all(&self) -> Vec<(String, MaintainReport)> {
        self.all()
            .into_iter()
            .map(|pool| {
                let report = pool.maintain();
                if let Some(decision) = &report.decision {
                    log::info!(
                        "pool `{}`: max_size {} -> {} ({}: {})",
                        pool.name(),
                        decision.from,
                        decision.to,
                        decision.direction.name(),
                        decision.reason
                    );
                }
                (pool.name().to_owned(), report)
            })
            .collect()
    }
}

impl MemoryAccount for Pools {
    fn name(&self) -> &'static str {
        "pools"
    }

    fn accounted_bytes(&self) -> u64 {
        self.all().iter().map(|pool| pool.stats().idle_bytes).sum()
    }
}

impl Source for Pools {
    fn collect(&self, out: &mut Collector) {
        let stats = self.stats();
        // Totals over every pool, for the dashboard's tile.
        out.json_only("pools", stats.len() as f64);
        let total = |figure: fn(&PoolStats) -> u64| stats.iter().map(figure).sum::<u64>() as f64;
        out.json_only("pools_size", total(|p| p.size as u64));
        out.json_only("pools_in_use", total(|p| p.in_use as u64));
        out.json_only("pools_waiters", total(|p| p.waiters as u64));
        out.json_only("pools_timeouts_total", total(|p| p.timeouts));
        out.json_only("pools_leaks_total", total(|p| p.leaks));
        let per_pool = |out: &mut Collector,
                        name: &'static str,
                        help: &'static str,
                        kind: Kind,
                        value: &dyn Fn(&PoolStats) -> f64| {
            out.samples(
                name,
                help,
                kind,
                stats
                    .iter()
                    .map(|pool| Sample {
                        labels: vec![("pool", pool.name.clone())],
                        value: value(pool),
                        json_key: Some(format!(
                            "pool_{}_{}",
                            pool.name,
                            name.trim_start_matches("pool_")
                        )),
                    })
                    .collect(),
            );
        };
        per_pool(
            out,
            "pool_size",
            "Objects alive per pool: idle, in use, being made.",
            Kind::Gauge,
            &|p| p.size as f64,
        );
        per_pool(
            out,
            "pool_max_size",
            "The maximum per pool now (autoscaled).",
            Kind::Gauge,
            &|p| p.max_size as f64,
        );
        per_pool(
            out,
            "pool_idle",
            "Idle objects per pool.",
            Kind::Gauge,
            &|p| p.idle as f64,
        );
        per_pool(
            out,
            "pool_in_use",
            "Objects in use per pool.",
            Kind::Gauge,
            &|p| p.in_use as f64,
        );
        per_pool(
            out,
            "pool_waiters",
            "Acquirers waiting per pool.",
            Kind::Gauge,
            &|p| p.waiters as f64,
        );
        per_pool(
            out,
            "pool_idle_bytes",
            "Heap bytes held by idle objects per pool.",
            Kind::Gauge,
            &|p| p.idle_bytes as f64,
        );
        per_pool(
            out,
            "pool_acquires_total",
            "Objects handed out per pool.",
            Kind::Counter,
            &|p| p.acquires as f64,
        );
        per_pool(
            out,
            "pool_created_total",
            "Objects made per pool.",
            Kind::Counter,
            &|p| p.created as f64,
        );
        per_pool(
            out,
            "pool_create_failures_total",
            "Failed object creations per pool.",
            Kind::Counter,
            &|p| p.create_failures as f64,
        );
        per_pool(
            out,
            "pool_recycled_total",
            "Objects returned and kept per pool.",
            Kind::Counter,
            &|p| p.recycled as f64,
        );
        per_pool(
            out,
            "pool_timeouts_total",
            "Acquires that timed out per pool.",
            Kind::Counter,
            &|p| p.timeouts as f64,
        );
        per_pool(
            out,
            "pool_leaks_total",
            "Holds longer than the leak threshold per pool.",
            Kind::Counter,
            &|p| p.leaks as f64,
        );
        out.samples(
            "pool_discarded_total",
            "Objects dropped per pool, by reason.",
            Kind::Counter,
            stats
                .iter()
                .flat_map(|pool| {
                    DiscardReason::ALL.iter().map(|reason| Sample {
                        labels: vec![
                            ("pool", pool.name.clone()),
                            ("reason", reason.name().to_owned()),
                        ],
                        value: pool.discarded(*reason) as f64,
                        json_key: None,
                    })
                })
                .collect(),
        );
        out.samples(
            "pool_resizes_total",
            "Changes of a pool's maximum (autoscaler and resizes), by direction.",
            Kind::Counter,
            stats
                .iter()
                .flat_map(|pool| {
                    [super::Direction::Grow, super::Direction::Shrink].map(|direction| Sample {
                        labels: vec![
                            ("pool", pool.name.clone()),
                            ("direction", direction.name().to_owned()),
                        ],
                        value: match direction {
                            super::Direction::Grow => pool.grown as f64,
                            super::Direction::Shrink => pool.shrunk as f64,
                        },
                        json_key: None,
                    })
                })
                .collect(),
        );
        out.histograms(
            "pool_acquire_wait_seconds",
            "Time an acquire took to get an object, per pool.",
            stats
                .iter()
                .map(|pool| (vec![("pool", pool.name.clone())], pool.wait_reading.clone()))
                .collect(),
        );
        out.histograms(
            "pool_hold_seconds",
            "Time an object was held, per pool.",
            stats
                .iter()
                .map(|pool| (vec![("pool", pool.name.clone())], pool.hold_reading.clone()))
                .collect(),
        );
    }
}
