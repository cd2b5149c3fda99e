//! Resource pools: named sets of reusable objects (compressors, buffers, a host's
//! connections) with a bounded size, validation, leak detection, autoscaling and
//! statistics.
//!
//! # Why not deadpool, bb8 or r2d2
//!
//! They are good pools, and `benches/pool.rs` measures leanserve's against deadpool. None
//! of them does what a supervised runtime needs from a pool:
//!
//! - **A panicking user's object is never reused.** A [`Pooled`] guard dropped while its
//!   thread unwinds discards the object (counted as `panicked`), frees the slot and hands
//!   it to the next waiter. A compressor or a connection abandoned half-way through is
//!   exactly what must not be handed to the next request.
//! - **Acquire errors say which limit was hit** ([`AcquireError`]): a timeout carries how
//!   long it waited, how many waited with it and how many objects were in use; a failing
//!   `create` is reported at once, with its cause, to the acquirer that tried and to every
//!   waiter, never as a timeout.
//! - **A minimum and a reaper**: `min_idle` objects are kept warm; idle ones past
//!   `idle_timeout` and any past `max_lifetime` (with jitter, so a pool created at once
//!   does not expire at once) are dropped, and idle ones are validated before reuse after
//!   `validate_after`.
//! - **Leaks are found, not guessed**: every hold is registered with the acquirer's source
//!   location; one held longer than `leak_threshold` is logged once and counted.
//! - **The maximum scales** between `scale_min` and `scale_max` from the measured acquire
//!   wait and utilization ([`autoscale`]), each decision kept with its evidence.
//!
//! # Shape
//!
//! The pool itself ([`Pool`]) is plain Rust: a mutex over the idle objects (LIFO, so the
//! warmest object is reused and the coldest ones age out), the waiters (FIFO, each served
//! by direct hand-off so a returning object cannot be stolen by a newcomer) and the
//! counters. It has an async [`Pool::acquire`], a blocking [`Pool::acquire_blocking`] for
//! code on the blocking pool and a non-waiting [`Pool::try_acquire`]; none of them sends a
//! message. Time-based upkeep (reaping, refilling, leak scans, autoscaling) is
//! [`Pool::maintain`], which the `pool_manager` actor runs for every pool in the
//! [`Pools`] registry on its interval. The registry lives outside the actor, so pools and
//! their objects survive the actor's restart.

pub mod autoscale;
mod core;
mod fns;
mod registry;
mod spec;
mod stats;
#[cfg(test)]
mod tests;

pub use self::core::{AcquireError, Pool, Pooled};
pub use autoscale::{Decision, Direction, Evidence};
pub use fns::FnManager;
pub use registry::{ManagedPool, PoolError, Pools, Resize};
pub use spec::{PoolSpec, SpecError};
pub use stats::{DiscardReason, MaintainReport, PoolStats, WaitFigures};

/// How a pool makes, resets, checks and disposes of its objects.
///
/// Every method runs on the caller's thread outside the pool's lock: `create` and
/// `validate` on the acquirer's, `recycle` and `cleanup` on the returner's (or the
/// maintainer's). Keep them quick or call the pool from the blocking pool.
pub trait Manager: Send + Sync + 'static {
    /// The pooled resource.
    type Object: Send + 'static;
    /// Why `create` failed; reported to the acquirer as [`AcquireError::Create`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes a new object.
    fn create(&self) -> Result<Self::Object, Self::Error>;

    /// Makes a returned object ready for its next user (a cheap reset). `false` discards
    /// it instead (counted as `recycle`). Default: keep it as it is.
    fn recycle(&self, _object: &mut Self::Object) -> bool {
        true
    }

    /// Checks an object that sat idle longer than `validate_after` before it is handed
    /// out; `false` discards it (counted as `invalid`). Default: valid.
    fn validate(&self, _object: &mut Self::Object) -> bool {
        true
    }

    /// Disposes of an object that leaves the pool for good. Default: drop it.
    fn cleanup(&self, _object: Self::Object) {}

    /// The heap bytes an idle object holds, for the memory profiler. Default: `None`,
    /// which uses the bytes its creation allocated where jemalloc can count them.
    fn size_of(&self, _object: &Self::Object) -> Option<u64> {
        None
    }
}
