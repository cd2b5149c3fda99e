//! The file cache's counters: plain atomics bumped by request handlers and the cache
//! actor, read by anyone (the admin route, later the monitor) without a message. They are
//! cumulative for the life of the runtime; a restart of the cache empties the cache, not
//! the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

pub use crate::metrics::Histogram;

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
    pub(crate) rejections: AtomicU64,
    pub(crate) compressions: AtomicU64,
    pub(crate) inflations: AtomicU64,
    pub(crate) identity_copies: AtomicU64,
    pub(crate) identity_copies_refused: AtomicU64,
    /// Files waiting for their gzip representation (set by the actor).
    pub(crate) compression_queue: AtomicU64,
    pub(crate) serve_time: Histogram,
}

impl CacheCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Relaxed);
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
    /// Stored bytes plus per-entry overhead plus the admission sketch.
    pub bytes_cached: u64,
    /// The admission sketch's part of `bytes_cached` (0 under `admission = "lru"`).
    pub admission_sketch_bytes: u64,
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
    /// Files read but not cached: admission judged each file they would have evicted
    /// more popular.
    pub admission_rejections: u64,
    /// Gzip representations built in the background.
    pub background_compressions: u64,
    /// Cached files waiting for their gzip representation.
    pub compression_queue: u64,
    /// Identity responses inflated from stored gzip bytes.
    pub inflations: u64,
    /// Identity copies kept for files identity clients read often, and those refused
    /// because the copies' share of the budget was full.
    pub identity_copies: u64,
    pub identity_copies_refused: u64,
    /// Bytes of the identity copies held now.
    pub identity_copy_bytes: u64,
    /// What the allocator holds for the cached bytes beyond the bytes themselves
    /// (fragmentation, metadata, pages not yet returned), as last measured in the cache's
    /// own arena, plus the read buffers kept for misses (`read_buffer_bytes` then);
    /// counted against the budget beside `bytes_cached`. 0 without jemalloc.
    pub allocator_overhead_bytes: u64,
    /// Free buffers kept for the next miss to be read into (at most 1 MiB), now.
    pub read_buffer_bytes: u64,
}
