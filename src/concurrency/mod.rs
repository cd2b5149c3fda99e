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

pub use gradient::{AdaptiveLimit, LimitConfig};
pub use limiter::{Limiter, LimiterConfig, LimiterStats, Overloaded, Permit};
