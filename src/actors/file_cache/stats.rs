//! The file cache's counters: plain atomics bumped by request handlers and the cache
//! actor, read by anyone (the admin route, later the monitor) without a message. They are
//! cumulative for the life of the runtime; a restart of the cache empties the cache, not
//! the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use super::store::Held;
use crate::http::dictionary::DictCoding;
use crate::http::encoding::Coding;

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
    /// Files waiting for their stored-level representations (set by the actor).
    pub(crate) compression_queue: AtomicU64,
    /// Per coding: identity, gzip, br, zstd, dcz, dcb (see [`coding_index`]).
    pub(crate) by_coding: [CodingCounters; 6],
    /// Body bytes of the best plain form the client takes minus those sent, over whole
    /// dictionary-compressed 200 responses.
    pub(crate) dictionary_bytes_saved: AtomicU64,
    /// Site dictionaries built, and site dictionary builds that failed or found no pages.
    pub(crate) dictionary_builds: AtomicU64,
    pub(crate) dictionary_build_failures: AtomicU64,
    /// Cached pages found changed on disk when revalidated (they count towards
    /// rebuilding the site dictionary).
    pub(crate) pages_changed: AtomicU64,
    /// Dictionary downloads (200 responses of a dictionary's own URL).
    pub(crate) dictionary_downloads: AtomicU64,
    /// Identity body bytes minus the bytes sent, over compressed 200 responses.
    pub(crate) bytes_saved: AtomicU64,
    /// Time spent compressing responses while their clients waited, in microseconds.
    pub(crate) inline_compression_us: AtomicU64,
    pub(crate) serve_time: Histogram,
}

/// What one response sent, for the counters.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub coding: Coding,
    /// The dictionary coding the body was sent in (then `coding` is identity).
    pub dictionary: Option<DictCoding>,
    /// For a whole dictionary-compressed body: the best plain form's bytes minus those
    /// sent.
    pub dictionary_saved_bytes: u64,
    /// Body bytes sent (0 for a 304 or a `HEAD`).
    pub body_bytes: u64,
    /// Identity body bytes minus those sent, for a whole compressed body; else 0.
    pub saved_bytes: u64,
}

/// The counters of one coding.
#[derive(Debug, Default)]
pub(crate) struct CodingCounters {
    pub(crate) responses: AtomicU64,
    pub(crate) body_bytes: AtomicU64,
    /// Representations built at the stored level in the background.
    pub(crate) recompressions: AtomicU64,
    /// Responses compressed at the quick level while their client waited.
    pub(crate) inline_compressions: AtomicU64,
}

/// The order of [`CacheCounters::by_coding`] and [`CacheStats::encodings`].
pub(crate) const ENCODINGS: [&str; 6] = ["identity", "gzip", "br", "zstd", "dcz", "dcb"];

/// The index of `coding` in [`ENCODINGS`].
pub(crate) fn coding_index(coding: Coding) -> usize {
    coding.slot().map_or(0, |slot| slot + 1)
}

/// The index of what `sent` went out in, in [`ENCODINGS`].
pub(crate) fn sent_index(sent: &Sent) -> usize {
    sent.dictionary
        .map_or_else(|| coding_index(sent.coding), |coding| 4 + coding.slot())
}

/// The per-coding figures of `counters`, with the representations `held` (by slot:
/// gzip, br, zstd, dcz, dcb).
pub(crate) fn by_coding(counters: &CacheCounters, held: [Held; 5]) -> Vec<EncodingStats> {
    ENCODINGS
        .iter()
        .zip(&counters.by_coding)
        .enumerate()
        .map(|(index, (&encoding, by))| {
            let held = index
                .checked_sub(1)
                .map_or_else(Held::default, |slot| held[slot]);
            EncodingStats {
                encoding,
                responses: by.responses.load(Relaxed),
                body_bytes: by.body_bytes.load(Relaxed),
                recompressions: by.recompressions.load(Relaxed),
                inline_compressions: by.inline_compressions.load(Relaxed),
                held: held.count,
                held_bytes: held.bytes,
            }
        })
        .collect()
}

/// One coding's figures in [`CacheStats::encodings`] (identity's build counts and held
/// figures are 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EncodingStats {
    /// `identity`, `gzip`, `br`, `zstd`, `dcz` or `dcb`.
    pub encoding: &'static str,
    /// Responses sent in this coding (200, 206 and 304).
    pub responses: u64,
    /// Body bytes of those responses.
    pub body_bytes: u64,
    /// Representations built at the stored level in the background.
    pub recompressions: u64,
    /// Responses compressed at the quick level while their client waited.
    pub inline_compressions: u64,
    /// Cached files holding this representation now.
    pub held: u64,
    /// Bytes of this representation the cache holds now.
    pub held_bytes: u64,
}

impl CacheCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Relaxed);
    }
}

/// A snapshot of the static file cache's figures. Counters are cumulative since the runtime
/// started (a restart of the cache empties it, not its counters); the others are now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Static files served (200, 206 and 304 answers), since start.
    pub files_served: u64,
    /// File lookups answered from the cache.
    pub cache_hits: u64,
    /// File lookups that needed the disk (misses and revalidations).
    pub cache_misses: u64,
    /// hits / (hits + misses); 0 before any lookup.
    pub hit_ratio: f64,
    /// Files evicted to stay within the budget.
    pub evictions: u64,
    /// Stored bytes plus per-entry overhead plus the admission sketch.
    pub bytes_cached: u64,
    /// The admission sketch's part of `bytes_cached` (0 under `admission = "lru"`).
    pub admission_sketch_bytes: u64,
    /// The cache's byte budget now: `static_files.max_cache_size`, or what the tuner last set.
    pub budget_bytes: u64,
    /// Files the cache holds now.
    pub items: usize,
    /// Responses sent compressed (any coding, dictionary codings included).
    pub compressed_served: u64,
    /// Bytes the smallest compressed form saves over the identity bytes of the cached
    /// compressible files, divided by those identity bytes.
    pub compression_ratio: f64,
    /// Mean time to serve a static file since start, in milliseconds.
    pub average_serve_time_ms: f64,
    /// Upper bound of the serve-time bucket holding the 99th percentile, in milliseconds.
    pub p99_serve_time_ms: f64,
    /// Cached files checked against the disk after expiring (`static_files.cache_expiration`).
    pub revalidations: u64,
    /// Responses streamed from disk because the file exceeds `static_files.max_file_size`.
    pub too_large: u64,
    /// Files read but not cached: admission judged each file they would have evicted
    /// more popular.
    pub admission_rejections: u64,
    /// Representations built at the stored level in the background (every coding).
    pub background_compressions: u64,
    /// Cached files waiting for their stored-level representations, or being built.
    pub compression_queue: u64,
    /// Identity responses decoded from stored compressed bytes.
    pub inflations: u64,
    /// Identity copies kept for files identity clients read often (with
    /// `static_files.store = "compressed-only"`).
    pub identity_copies: u64,
    /// Identity copies refused because the copies' share of the budget
    /// (`static_files.identity_copy_percent`) was full.
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
    /// Body bytes compressed 200 responses saved against their identity bodies.
    pub bytes_saved: u64,
    /// Time spent compressing responses while their clients waited, in milliseconds.
    pub inline_compression_ms: f64,
    /// Responses, body bytes, builds and representations held, by coding (identity,
    /// gzip, br, zstd, dcz, dcb).
    pub encodings: Vec<EncodingStats>,
    /// Body bytes dictionary-compressed 200 responses saved against the best plain form
    /// their client takes.
    pub dictionary_bytes_saved: u64,
    /// Site dictionaries built since start.
    pub dictionary_builds: u64,
    /// Site dictionary builds that failed or found no pages.
    pub dictionary_build_failures: u64,
    /// Downloads of the dictionaries' own URLs (200s).
    pub dictionary_downloads: u64,
    /// Bytes of the dictionaries held, counted against the budget.
    pub dictionary_bytes: u64,
    /// The dictionaries held (hash, size, source, age), current ones first.
    pub dictionaries: Vec<crate::dictionary::DictionaryInfo>,
}
