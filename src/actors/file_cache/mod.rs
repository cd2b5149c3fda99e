//! The file cache actor: a byte-bounded LRU of static files with stored gzip, br and zstd,
//! and the compression dictionaries.
//!
//! The actor owns the cache: loading, compression, eviction, expiry, statistics and its
//! own restart (a new incarnation starts with an empty cache and refills). Request
//! handlers read hits through a [`FileCacheReader`], a read handle onto the store the
//! actor fills, so a hit costs a lock and an `Arc` clone, not a mailbox round trip (see
//! DESIGN.md's hot-path measurement). Misses, revalidations and administration go through
//! messages:
//!
//! - Loads: a miss or an expired hit is first tried on the handler's own thread with
//!   calls that cannot block ([`FileCacheReader::load_now`], `nowait.rs`: a file the
//!   kernel holds in its caches costs a few system calls and no thread handoff);
//!   otherwise [`StartLoad`] loads or revalidates it on the blocking
//!   pool (`handle.rs` holds this miss protocol and the wiring, [`FileCacheHandle`]).
//!   Either way concurrent requests for one key share one load: the first claims
//!   the key ([`FileCacheReader::claim`]), the others wait for what it finds, and its
//!   completion caches the file and answers them all. A load never compresses.
//! - Representations, kept by demand. Each entry counts which coding its clients prefer
//!   (`static_files.encodings` breaks ties). The request that finds no form its client
//!   takes compresses the file at the quick level while the client waits
//!   (`web/files.rs`); for an entry with no compressed form yet those bytes are offered
//!   to the cache ([`KeepEncoded`]), so the next client of that coding is served from
//!   memory, and the entry is queued for its stored-level bytes (as it is by
//!   [`BuildEncodings`], which requests send for a coding built later):
//!   `compression_workers` blocking tasks build them, most read first (by the admission
//!   sketch), and put them into the entry if it still holds the same content. A second
//!   coding is built only once [`SECOND_CODING_AFTER`] requests preferred it; until then
//!   its clients get a form they also take, or one compressed for them alone. A file
//!   only identity clients read is never compressed: under `store = "compressed-only"`
//!   its compressed bytes would only be decoded again for every hit.
//! - Dictionaries (RFC 9842, `crate::dictionary`). The first incarnation trains the site
//!   dictionary on the blocking pool; every [`dictionaries::DICTIONARY_CHECK`] it trains it again once
//!   enough cached pages were found changed on disk (a tenth of those sampled, at least
//!   [`dictionaries::DICTIONARY_REBUILD_MIN_CHANGES`]). The registry lives in the shared state, not the
//!   actor, so a restart keeps the dictionaries clients hold. [`AddAssetDictionary`]
//!   keeps a version of an asset as the dictionary for its next one;
//!   [`KeepDictEncoded`] keeps a response compressed against a dictionary in its entry.
//!   The dictionaries' bytes count against the budget.
//! - [`ClearCache`], [`GetCacheStats`], [`GetCacheSize`], [`GetCacheItemCount`] (from
//!   `Subsystems` and the admin routes).
//!
//! An entry older than `cache_expiration` is revalidated by a stat (length and mtime):
//! unchanged it stays, changed it is reloaded, deleted it is dropped and the request gets
//! 404. With `cache_expiration = 0` (the dev profile) every request revalidates.

mod admission;
mod dictionaries;
mod digests;
mod handle;
mod load;
// openat2(2) and preadv2(2) through libc; every block says why it is sound.
#[allow(unsafe_code)]
mod nowait;
mod stats;
mod store;

pub use dictionaries::{AddAssetDictionary, KeepDictEncoded};
pub(crate) use handle::FileCacheHandle;
pub use load::{Found, LargeFile, identity_of, read_chunk};
pub use stats::{CacheStats, EncodingStats, Sent};
/// Identity responses decoded from one entry's compressed bytes before it gets an
/// identity copy.
pub const IDENTITY_COPY_AFTER: u32 = 3;
/// Requests preferring a coding an entry does not hold, while it holds another, before
/// the cache builds that coding too: one odd client does not double a file's bytes.
pub const SECOND_CODING_AFTER: u32 = 3;
/// How often the cache measures its arena's overhead (see `alloc::into_cache_arena`).
const ARENA_CHECK: Duration = Duration::from_secs(1);
pub use store::{
    ByteLru, CachedFile, DictEncoded, ENTRY_OVERHEAD, Encoded, Insert, allocation_size,
};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::codec::{Codecs, Levels};
use crate::config::{Admission, StaticFileOpts};
use crate::http::encoding::Coding;
use crate::metrics::{Collector, Reading, Source};
use stats::CacheCounters;

// ---- messages ------------------------------------------------------------------------

/// Loads a claimed key on the blocking pool, for a caller that could not load it
/// without blocking (see [`LoadClaim`]); answers where the result arrives.
#[derive(Message)]
#[rtype(result = "LoadReceiver")]
pub struct StartLoad {
    pub claim: LoadClaim,
}

/// Queues the cached file at `key` for its stored-level representations: those it asked
/// for ([`CachedFile::claim_build`], once per entry and coding) and those it holds at
/// the quick level; answered by nothing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BuildEncodings {
    pub key: String,
}

/// Keeps `bytes`, `file` compressed in `coding` at the quick level for a request, as the
/// entry's first compressed form, and queues the entry for its stored-level bytes;
/// `None`: compressing it does not save 10%, so the file is no longer treated as
/// compressible. Sent by the static handler, answered by nothing; ignored when the entry
/// changed since or already holds compressed bytes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeepEncoded {
    pub file: Arc<CachedFile>,
    pub coding: Coding,
    pub bytes: Option<Bytes>,
}

/// Keeps `identity` (the decoded compressed bytes of `file`) beside them, since
/// identity clients read this file often; sent by the static handler, answered by
/// nothing. Ignored when the entry changed since or the copies' share is full.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeepIdentity {
    pub file: Arc<CachedFile>,
    pub identity: Bytes,
}

/// Empties the cache; answers the bytes it held.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct ClearCache;

/// Changes the byte budget (the tuner's cache knob), evicting least recently used files
/// until the cache fits; answers how many were evicted.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct SetCacheBudget {
    pub bytes: u64,
}

/// Answers the cache's statistics.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

/// Answers the bytes the cache holds (stored bytes plus per-entry overhead).
#[derive(Message)]
#[rtype(result = "u64")]
pub struct GetCacheSize;

/// Answers how many files the cache holds.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetCacheItemCount;

/// Why a load failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file exists but cannot be read (permissions, I/O error).
    #[error("cannot read `{key}`: {message}")]
    Io {
        /// The file's path relative to the root.
        key: String,
        /// The operating system's error kind.
        kind: io::ErrorKind,
        /// The operating system's message (logged, never sent to clients).
        message: String,
    },
    /// The cache restarted while the load was in flight.
    #[error("the file cache restarted during the load")]
    Interrupted,
}

// ---- the read handle -----------------------------------------------------------------

/// Everyone waiting for one load.
#[derive(Debug, Default)]
struct Waiters {
    senders: Vec<oneshot::Sender<Result<Found, LoadError>>>,
}

/// Where a load's result arrives.
pub type LoadReceiver = oneshot::Receiver<Result<Found, LoadError>>;

/// A caller's part in the load of a key (see [`FileCacheReader::claim`]).
pub enum Claim {
    /// Nobody was loading it: the caller loads it.
    Lead(LoadClaim),
    /// Another caller is loading it: wait for its result.
    Wait(LoadReceiver),
}

/// The claim on a key's load: whoever holds it must end the load, by completing it or by
/// handing it to the cache actor's blocking load. Dropped otherwise (a panic, a
/// cancelled request), it answers everyone waiting with [`LoadError::Interrupted`], so
/// no request waits for a load nobody runs.
pub struct LoadClaim {
    reader: FileCacheReader,
    key: String,
    receiver: Option<LoadReceiver>,
}

impl LoadClaim {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Ends the load with `result` (see [`FileCacheReader::complete`]).
    pub fn complete(mut self, result: &Result<Found, LoadError>) {
        self.receiver = None;
        self.reader.complete(&self.key, result)
    }

    /// The cache actor's blocking load took the key over: answers where its result
    /// (like everyone else's) arrives.
    pub fn hand_over(mut self) -> LoadReceiver {
        self.receiver.take().expect("a claim is handed over once")
    }
}

impl Drop for LoadClaim {
    fn drop(&mut self) {
        if self.receiver.is_some() {
            self.reader
                .complete(&self.key, &Err(LoadError::Interrupted));
        }
    }
}

/// State shared by the actor (writer) and the request handlers (readers).
#[derive(Debug)]
struct Shared {
    store: Mutex<ByteLru>,
    /// Loads in flight, with everyone waiting for each.
    in_flight: Mutex<HashMap<String, Waiters>>,
    /// The root held open for loads that cannot block (`None`: every load blocks).
    nowait_root: Option<nowait::Root>,
    counters: CacheCounters,
    opts: StaticFileOpts,
    /// The root, canonicalised once: loads refuse anything resolving outside it.
    root: PathBuf,
    epoch: Instant,
    /// `opts.cache_control` as a header value, built once.
    cache_control: HeaderValue,
    /// The serve-time reading at the last collection, for windowed percentiles.
    window_start: Mutex<Reading>,
    /// Compressors for representations, decoders for identity responses of
    /// compressed-only entries.
    codecs: Codecs,
    /// Content digests of streamed files.
    digests: Arc<digests::LargeDigests>,
    /// The compression dictionaries held (RFC 9842).
    dictionaries: crate::dictionary::Dictionaries,
}

/// The handlers' view of the cache: lookups of fresh entries, counters, statistics.
#[derive(Clone, Debug)]
pub struct FileCacheReader {
    shared: Arc<Shared>,
}

impl FileCacheReader {
    /// A reader (and the store behind it) for `opts`, compressing and inflating with
    /// `codecs`; fails when the root cannot be canonicalised.
    pub fn new(opts: StaticFileOpts, codecs: Codecs) -> io::Result<Self> {
        let root = load::canonical_root(&opts.root_dir)?;
        let cache_control = HeaderValue::from_str(&opts.cache_control).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "cache_control is not a valid header value",
            )
        })?;
        Ok(FileCacheReader {
            shared: Arc::new(Shared {
                store: Mutex::new(match opts.admission {
                    Admission::Lru => ByteLru::new(opts.max_cache_size),
                    Admission::TinyLfu => ByteLru::with_admission(opts.max_cache_size),
                }),
                in_flight: Mutex::new(HashMap::new()),
                nowait_root: nowait::Root::open(&root),
                counters: CacheCounters::default(),
                opts,
                root,
                epoch: Instant::now(),
                cache_control,
                window_start: Mutex::new(Reading::default()),
                codecs,
                digests: Arc::default(),
                dictionaries: crate::dictionary::Dictionaries::default(),
            }),
        })
    }

    /// The ETag of a streamed file: strong and content-derived once its bytes were
    /// hashed (in the background, started by the first request that finds none), its
    /// weak length-and-time tag until then.
    pub fn large_etag(&self, large: &LargeFile) -> HeaderValue {
        self.shared
            .digests
            .etag(large)
            .unwrap_or_else(|| large.etag.clone())
    }

    /// The compressors and inflaters the cache uses.
    pub fn codecs(&self) -> &Codecs {
        &self.shared.codecs
    }

    /// The compression dictionaries held.
    pub fn dictionaries(&self) -> &crate::dictionary::Dictionaries {
        &self.shared.dictionaries
    }

    /// Counts one download of a dictionary's own URL.
    pub fn record_dictionary_download(&self) {
        CacheCounters::add(&self.shared.counters.dictionary_downloads, 1);
    }

    /// The options the cache runs with.
    pub fn opts(&self) -> &StaticFileOpts {
        &self.shared.opts
    }

    /// The `Cache-Control` header value of static responses.
    pub fn cache_control(&self) -> &HeaderValue {
        &self.shared.cache_control
    }

    /// Whether the cache holds `file`'s content under its key (not a file admission
    /// turned away, evicted or changed since). By content, not by entry: the entry a load
    /// hands its requests is not the one the cache keeps once its bytes moved to the
    /// cache's arena.
    pub fn holds(&self, file: &CachedFile) -> bool {
        self.store()
            .peek(&file.key)
            .is_some_and(|held| held.digest == file.digest && held.len == file.len)
    }

    /// A cached entry checked against the disk within `cache_expiration`; `None` on a
    /// miss or when the entry is due for revalidation.
    pub fn lookup(&self, key: &str) -> Option<Arc<CachedFile>> {
        let file = self.store().get(key)?;
        let age = self.now_ms().saturating_sub(file.checked_at_ms());
        (u128::from(age) < self.shared.opts.cache_expiration.as_millis()).then_some(file)
    }

    /// Counts one request answered from the cache without a load.
    pub fn record_hit(&self) {
        CacheCounters::add(&self.shared.counters.hits, 1);
    }

    /// Counts one request that needed a load (a miss or a revalidation).
    pub fn record_miss(&self) {
        CacheCounters::add(&self.shared.counters.misses, 1);
    }

    /// Counts one file served (any status with a body or 304) and its serve time.
    /// `sent`: the response's coding, the body bytes it sends, and what that saved
    /// against the identity body.
    pub fn record_served(&self, elapsed: Duration, sent: Sent) {
        let counters = &self.shared.counters;
        CacheCounters::add(&counters.files_served, 1);
        CacheCounters::add(
            &counters.compressed_served,
            u64::from(sent.coding != Coding::Identity || sent.dictionary.is_some()),
        );
        let by = &counters.by_coding[stats::sent_index(&sent)];
        CacheCounters::add(&by.responses, 1);
        CacheCounters::add(&by.body_bytes, sent.body_bytes);
        CacheCounters::add(&counters.bytes_saved, sent.saved_bytes);
        CacheCounters::add(
            &counters.dictionary_bytes_saved,
            sent.dictionary_saved_bytes,
        );
        counters.serve_time.observe(elapsed);
    }

    /// Counts one response compressed at the quick level while its client waited.
    pub fn record_inline_compression(&self, coding: Coding, elapsed: Duration) {
        let counters = &self.shared.counters;
        let by = &counters.by_coding[stats::coding_index(coding)];
        CacheCounters::add(&by.inline_compressions, 1);
        CacheCounters::add(
            &counters.inline_compression_us,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
    }

    /// Counts one identity response decoded from compressed bytes.
    pub fn record_inflation(&self) {
        CacheCounters::add(&self.shared.counters.inflations, 1);
    }

    /// Counts one file too large to cache that was streamed.
    pub fn record_too_large(&self) {
        CacheCounters::add(&self.shared.counters.too_large, 1);
    }

    /// A snapshot of every figure.
    pub fn stats(&self) -> CacheStats {
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        let counters = &self.shared.counters;
        let (hits, misses) = (load(&counters.hits), load(&counters.misses));
        let (
            bytes_cached,
            admission_sketch_bytes,
            identity_copy_bytes,
            allocator_overhead_bytes,
            budget_bytes,
            items,
            compression_ratio,
            held_encoded,
        ) = {
            let store = self.store();
            (
                store.bytes(),
                store.fixed_bytes(),
                store.identity_copy_bytes(),
                store.allocator_overhead(),
                store.budget(),
                store.len(),
                store.compression_ratio(),
                store.held_encoded(),
            )
        };
        let Reading {
            count: served,
            sum_us,
            ..
        } = counters.serve_time.read();
        CacheStats {
            files_served: load(&counters.files_served),
            cache_hits: hits,
            cache_misses: misses,
            hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            evictions: load(&counters.evictions),
            bytes_cached,
            admission_sketch_bytes,
            budget_bytes,
            items,
            compressed_served: load(&counters.compressed_served),
            compression_ratio,
            average_serve_time_ms: if served == 0 {
                0.0
            } else {
                sum_us as f64 / served as f64 / 1000.0
            },
            p99_serve_time_ms: counters
                .serve_time
                .quantile_us(0.99)
                .map_or(0.0, |us| us as f64 / 1000.0),
            revalidations: load(&counters.revalidations),
            too_large: load(&counters.too_large),
            admission_rejections: load(&counters.rejections),
            background_compressions: load(&counters.compressions),
            inflations: load(&counters.inflations),
            identity_copies: load(&counters.identity_copies),
            identity_copies_refused: load(&counters.identity_copies_refused),
            identity_copy_bytes,
            allocator_overhead_bytes,
            read_buffer_bytes: crate::alloc::read_buffers::kept_bytes(),
            compression_queue: load(&counters.compression_queue),
            bytes_saved: load(&counters.bytes_saved),
            inline_compression_ms: load(&counters.inline_compression_us) as f64 / 1000.0,
            encodings: stats::by_coding(counters, held_encoded),
            dictionary_bytes_saved: load(&counters.dictionary_bytes_saved),
            dictionary_builds: load(&counters.dictionary_builds),
            dictionary_build_failures: load(&counters.dictionary_build_failures),
            dictionary_downloads: load(&counters.dictionary_downloads),
            dictionary_bytes: self.store().dictionary_bytes(),
            dictionaries: self.shared.dictionaries.list(),
        }
    }

    /// Joins the load of `key` in flight, or claims it for the caller ([`Claim`]).
    pub fn claim(&self, key: &str) -> Claim {
        let (sender, receiver) = oneshot::channel();
        let mut in_flight = self.in_flight();
        let (waiters, lead) = match in_flight.get_mut(key) {
            Some(waiters) => (waiters, false),
            None => (in_flight.entry(key.to_owned()).or_default(), true),
        };
        waiters.senders.push(sender);
        if lead {
            Claim::Lead(LoadClaim {
                reader: self.clone(),
                key: key.to_owned(),
                receiver: Some(receiver),
            })
        } else {
            Claim::Wait(receiver)
        }
    }

    /// Loads the claimed `key` on this thread if that needs no waiting (see
    /// `nowait.rs`); `None`: it needs the blocking pool.
    pub fn load_now(&self, key: &str) -> Option<Found> {
        let shared = &self.shared;
        let root = shared.nowait_root.as_ref()?;
        let existing = self.store().peek(key);
        let found = root.load(key, existing.clone(), &shared.opts, self.now_ms())?;
        if existing.is_some() {
            CacheCounters::add(&shared.counters.revalidations, 1);
        }
        Some(found)
    }

    /// Ends the load of `key`: caches what was found (a file that fits is offered to the
    /// store, a vanished or unreadable one is dropped) and answers everyone waiting.
    fn complete(&self, key: &str, result: &Result<Found, LoadError>) {
        // A file the store would take moves to the cache's arena first (outside the
        // lock); one it would turn away is served from where it was read and freed.
        let settled = match result {
            Ok(Found::File(file)) if self.shared.opts.enable_cache => {
                let admitted = self.store().would_admit(file);
                Some(if admitted {
                    file.settled()
                } else {
                    Arc::clone(file)
                })
            }
            _ => None,
        };
        {
            let mut store = self.store();
            match result {
                Ok(Found::File(file)) if self.shared.opts.enable_cache => {
                    let counters = &self.shared.counters;
                    if is_page(key) && store.peek(key).is_some_and(|old| old.digest != file.digest)
                    {
                        CacheCounters::add(&counters.pages_changed, 1);
                    }
                    match store.insert(settled.expect("settled above")) {
                        Insert::Admitted { evicted } => {
                            CacheCounters::add(&counters.evictions, evicted)
                        }
                        Insert::Rejected => CacheCounters::add(&counters.rejections, 1),
                        Insert::TooLarge => {}
                    }
                }
                Ok(Found::Unchanged(_)) | Err(LoadError::Interrupted) => {}
                _ => {
                    store.remove(key);
                }
            }
        }
        if let Err(error @ LoadError::Io { .. }) = result {
            log::warn!("file cache: {error}");
        }
        let waiters = self.in_flight().remove(key).unwrap_or_default();
        for sender in waiters.senders {
            let _ = sender.send(result.clone());
        }
    }

    fn store(&self) -> StoreGuard<'_> {
        StoreGuard(Some(
            self.shared
                .store
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ))
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, Waiters>> {
        self.shared
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl crate::metrics::MemoryAccount for FileCacheReader {
    fn name(&self) -> &'static str {
        "file_cache"
    }

    /// What the byte budget counts: stored bytes, per-entry overhead, the admission
    /// sketch and the allocator's overhead on the stored bytes.
    fn accounted_bytes(&self) -> u64 {
        self.store().held()
    }
}

impl Source for FileCacheReader {
    /// The cache's figures; serve-time percentiles and average cover the time since the
    /// previous collection (the monitor's interval), the histogram the whole run.
    fn collect(&self, out: &mut Collector) {
        let stats = self.stats();
        out.counter(
            "files_served_total",
            "Static files served (200, 206 and 304 answers).",
            stats.files_served as f64,
        );
        out.counter(
            "cache_hits_total",
            "File lookups answered from the cache.",
            stats.cache_hits as f64,
        );
        out.counter(
            "cache_misses_total",
            "File lookups that needed the disk (misses and revalidations).",
            stats.cache_misses as f64,
        );
        out.gauge(
            "cache_hit_ratio",
            "Hits over lookups since start.",
            stats.hit_ratio,
        );
        out.counter(
            "compressed_served_total",
            "Responses sent compressed (any coding).",
            stats.compressed_served as f64,
        );
        out.gauge(
            "compression_ratio",
            "Bytes the smallest compressed form saves over the identity bytes of cached compressible files.",
            stats.compression_ratio,
        );
        let per = |figure: fn(&EncodingStats) -> u64| {
            stats
                .encodings
                .iter()
                .map(move |by| (by.encoding.to_owned(), figure(by) as f64))
                .collect::<Vec<_>>()
        };
        let compressed = |figure: fn(&EncodingStats) -> u64| {
            let mut values = per(figure);
            values.retain(|(encoding, _)| encoding != "identity");
            values
        };
        use crate::metrics::Kind;
        out.labelled(
            "static_responses_total",
            "Static file responses by content coding.",
            Kind::Counter,
            "encoding",
            per(|by| by.responses),
            |encoding| Some(format!("static_responses_{encoding}_total")),
        );
        out.labelled(
            "static_body_bytes_total",
            "Body bytes of static file responses by content coding.",
            Kind::Counter,
            "encoding",
            per(|by| by.body_bytes),
            |encoding| Some(format!("static_body_bytes_{encoding}_total")),
        );
        out.counter(
            "dictionary_bytes_saved_total",
            "Body bytes dictionary-compressed responses (dcz, dcb) saved against the best plain form their client takes.",
            stats.dictionary_bytes_saved as f64,
        );
        out.counter(
            "dictionary_builds_total",
            "Site dictionaries trained.",
            stats.dictionary_builds as f64,
        );
        out.counter(
            "dictionary_build_failures_total",
            "Site dictionary trainings that failed or found no pages.",
            stats.dictionary_build_failures as f64,
        );
        out.counter(
            "dictionary_downloads_total",
            "Downloads of the site dictionary's URL (200s).",
            stats.dictionary_downloads as f64,
        );
        out.gauge(
            "dictionaries",
            "Compression dictionaries held (site and asset versions).",
            stats.dictionaries.len() as f64,
        );
        out.gauge(
            "dictionary_bytes",
            "Bytes of the dictionaries held, counted against the cache budget.",
            stats.dictionary_bytes as f64,
        );
        out.counter(
            "static_bytes_saved_total",
            "Body bytes compressed responses saved against their identity bodies.",
            stats.bytes_saved as f64,
        );
        out.labelled(
            "cache_recompressions_total",
            "Representations built at the stored level in the background, by coding.",
            Kind::Counter,
            "encoding",
            compressed(|by| by.recompressions),
            |encoding| Some(format!("cache_recompressions_{encoding}_total")),
        );
        out.labelled(
            "cache_inline_compressions_total",
            "Responses compressed at the quick level while their client waited, by coding.",
            Kind::Counter,
            "encoding",
            compressed(|by| by.inline_compressions),
            |encoding| Some(format!("cache_inline_compressions_{encoding}_total")),
        );
        out.counter(
            "cache_inline_compression_seconds_total",
            "Time spent compressing responses while their clients waited.",
            stats.inline_compression_ms / 1000.0,
        );
        out.labelled(
            "cache_representations",
            "Compressed representations the cache holds, by coding.",
            Kind::Gauge,
            "encoding",
            compressed(|by| by.held),
            |encoding| Some(format!("cache_representations_{encoding}")),
        );
        out.labelled(
            "cache_representation_bytes",
            "Bytes of the compressed representations the cache holds, by coding.",
            Kind::Gauge,
            "encoding",
            compressed(|by| by.held_bytes),
            |encoding| Some(format!("cache_representation_bytes_{encoding}")),
        );
        out.gauge(
            "cache_bytes",
            "Bytes the cache holds (stored bytes plus per-entry overhead).",
            stats.bytes_cached as f64,
        );
        out.gauge(
            "cache_budget_bytes",
            "The cache's byte budget.",
            stats.budget_bytes as f64,
        );
        let fill = if stats.budget_bytes == 0 {
            0.0
        } else {
            stats.bytes_cached as f64 / stats.budget_bytes as f64
        };
        out.gauge("cache_fill_ratio", "Bytes cached over the budget.", fill);
        out.gauge("cache_items", "Files the cache holds.", stats.items as f64);
        out.counter(
            "cache_evictions_total",
            "Files evicted to stay within the budget.",
            stats.evictions as f64,
        );
        out.counter(
            "cache_revalidations_total",
            "Cached files checked against the disk after expiring.",
            stats.revalidations as f64,
        );
        out.counter(
            "cache_admission_rejections_total",
            "Files read but not cached because each file they would evict was read more often.",
            stats.admission_rejections as f64,
        );
        out.counter(
            "cache_compressions_total",
            "Representations built at the stored level in the background (every coding).",
            stats.background_compressions as f64,
        );
        out.gauge(
            "cache_compression_queue",
            "Cached files waiting for their stored-level representations, or being built.",
            stats.compression_queue as f64,
        );
        out.counter(
            "cache_inflations_total",
            "Identity responses decoded from stored compressed bytes (compressed-only store).",
            stats.inflations as f64,
        );
        out.gauge(
            "cache_identity_copy_bytes",
            "Bytes of identity copies kept beside compressed bytes for files identity clients read often.",
            stats.identity_copy_bytes as f64,
        );
        out.gauge(
            "cache_allocator_overhead_bytes",
            "What the allocator holds for cached bytes beyond the bytes (fragmentation, metadata, pages not yet returned) and the read buffers kept for misses, counted against the budget.",
            stats.allocator_overhead_bytes as f64,
        );
        out.gauge(
            "cache_read_buffer_bytes",
            "Free buffers kept for the next miss to be read into (counted against the budget with the allocator overhead).",
            stats.read_buffer_bytes as f64,
        );
        out.counter(
            "cache_too_large_total",
            "Responses streamed because the file exceeds max_file_size.",
            stats.too_large as f64,
        );
        let histogram = &self.shared.counters.serve_time;
        out.histogram(
            "serve_time_seconds",
            "Time to serve a static file.",
            histogram,
        );
        let now = histogram.read();
        let window = {
            let mut start = self
                .shared
                .window_start
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let window = now.since(&start);
            *start = now;
            window
        };
        let seconds = |us: Option<u64>| us.map_or(0.0, |us| us as f64 / 1e6);
        out.gauge(
            "serve_time_average_seconds",
            "Mean serve time over the last monitor interval.",
            window.average_us().map_or(0.0, |us| us / 1e6),
        );
        out.gauge(
            "serve_time_p50_seconds",
            "Median serve time over the last monitor interval (bucket bound).",
            seconds(window.quantile_us(0.5)),
        );
        out.gauge(
            "serve_time_p90_seconds",
            "90th percentile serve time over the last monitor interval (bucket bound).",
            seconds(window.quantile_us(0.9)),
        );
        out.gauge(
            "serve_time_p99_seconds",
            "99th percentile serve time over the last monitor interval (bucket bound).",
            seconds(window.quantile_us(0.99)),
        );
    }
}

// ---- the actor -----------------------------------------------------------------------

/// The cache actor (see the module docs).
pub struct FileCache {
    reader: FileCacheReader,
    /// Cached files waiting for their stored-level representations: the most read
    /// first, then the longest waiting.
    compress_queue: BinaryHeap<(u8, Reverse<u64>, String)>,
    queued: HashSet<String>,
    enqueued_total: u64,
    /// Builds running on the blocking pool.
    compressing: usize,
    /// A site dictionary is being trained.
    training: bool,
    /// `pages_changed` when the last training started, and the pages it sampled.
    changes_at_training: u64,
    sampled: u64,
}

impl FileCache {
    /// A cache actor filling the store behind `reader`.
    pub fn new(reader: FileCacheReader) -> Self {
        FileCache {
            reader,
            compress_queue: BinaryHeap::new(),
            queued: HashSet::new(),
            enqueued_total: 0,
            compressing: 0,
            training: false,
            changes_at_training: 0,
            sampled: 0,
        }
    }

    /// Queues the cached entry of `key` when it has representations to build.
    fn want_build(&mut self, key: &str) {
        let store = self.reader.store();
        let pending = store
            .peek(key)
            .is_some_and(|file| !to_build(&file).is_empty());
        let frequency = store.frequency(key);
        drop(store);
        if pending && self.queued.insert(key.to_owned()) {
            self.enqueued_total += 1;
            self.compress_queue
                .push((frequency, Reverse(self.enqueued_total), key.to_owned()));
        }
    }

    /// Starts builds while workers are free and files wait.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let workers = self.reader.shared.opts.compression_workers;
        while self.compressing < workers {
            let Some((_, _, key)) = self.compress_queue.pop() else {
                break;
            };
            self.queued.remove(&key);
            // Evicted, replaced or cleared since: nothing to do, or another turn.
            let Some(file) = self.reader.store().peek(&key) else {
                continue;
            };
            let codings = to_build(&file);
            if codings.is_empty() {
                continue;
            }
            self.compressing += 1;
            let reader = self.reader.clone();
            let original = Arc::clone(&file);
            let task = actix_rt::task::spawn_blocking(move || {
                load::build(&file, &codings, &reader.shared.codecs)
            });
            ctx.spawn(task.into_actor(self).map(move |joined, cache, ctx| {
                cache.compressing -= 1;
                cache.finish_build(original, joined);
                cache.pump(ctx);
            }));
        }
        // Waiting or being built: zero only once the background work is done.
        CacheCounters::set(
            &self.reader.shared.counters.compression_queue,
            (self.compress_queue.len() + self.compressing) as u64,
        );
    }

    /// Puts built representations into the entry they were built from, if the cache
    /// still holds that content under its key.
    fn finish_build(
        &mut self,
        original: Arc<CachedFile>,
        joined: Result<io::Result<Built>, tokio::task::JoinError>,
    ) {
        let built = match joined {
            Ok(Ok(built)) => built,
            Ok(Err(error)) => {
                log::warn!(
                    "file cache: {:?} keeps what it holds until it is read again: {error}",
                    original.key
                );
                self.release_builds(&original);
                return;
            }
            Err(join) => {
                log::warn!("file cache: compressing {:?} failed: {join}", original.key);
                self.release_builds(&original);
                return;
            }
        };
        let shared = &self.reader.shared;
        let built: Vec<(Coding, Option<Encoded>)> = built
            .into_iter()
            .map(|(coding, bytes)| {
                let encoded = bytes.map(|bytes| {
                    Encoded::new(
                        original.digest,
                        coding,
                        crate::alloc::into_cache_arena(bytes),
                        true,
                    )
                });
                (coding, encoded)
            })
            .collect();
        let mut store = self.reader.store();
        let Some(current) = store
            .peek(&original.key)
            .filter(|f| f.digest == original.digest)
        else {
            return;
        };
        for (coding, encoded) in &built {
            if encoded.is_some() {
                let by = &shared.counters.by_coding[stats::coding_index(*coding)];
                CacheCounters::add(&by.recompressions, 1);
                CacheCounters::add(&shared.counters.compressions, 1);
            }
        }
        let merged = load::merged(&current, built, shared.opts.store);
        if let Insert::Admitted { evicted } = store.insert(Arc::new(merged)) {
            CacheCounters::add(&shared.counters.evictions, evicted);
        }
    }

    /// Lets the cached entry of `original`'s key ask for its builds again.
    fn release_builds(&self, original: &CachedFile) {
        if let Some(current) = self.reader.store().peek(&original.key) {
            current.release_builds();
        }
    }

    /// Counts what the cache's arena holds beyond the cached bytes, and the read buffers
    /// kept for misses, against the budget (at most a quarter of it, so a measurement gone
    /// wrong cannot empty the cache).
    fn count_arena_overhead(&mut self) {
        let Some(arena) = crate::alloc::cache_arena_stats() else {
            return;
        };
        let read_buffers = crate::alloc::read_buffers::kept_bytes();
        let mut store = self.reader.store();
        log::debug!("file cache arena: {arena:?}, read buffers kept: {read_buffers}");
        let overhead = (arena.overhead() + read_buffers).min(store.budget() / 4);
        let evicted = store.set_allocator_overhead(overhead);
        CacheCounters::add(&self.reader.shared.counters.evictions, evicted);
    }

    fn start_load(&mut self, key: String, ctx: &mut Context<Self>) {
        let reader = self.reader.clone();
        let existing = reader.store().peek(&key);
        if existing.is_some() {
            CacheCounters::add(&reader.shared.counters.revalidations, 1);
        }
        let task_key = key.clone();
        let task = actix_rt::task::spawn_blocking(move || {
            let shared = &reader.shared;
            load::load(
                &shared.root,
                &task_key,
                existing,
                &shared.opts,
                reader.now_ms(),
            )
        });
        ctx.spawn(
            task.into_actor(self)
                .map(move |joined, cache, _| cache.finish(key, joined)),
        );
    }

    fn finish(&mut self, key: String, joined: Result<io::Result<Found>, tokio::task::JoinError>) {
        let result = match joined {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(error)) => Err(LoadError::Io {
                key: key.clone(),
                kind: error.kind(),
                message: error.to_string(),
            }),
            Err(join) => Err(LoadError::Io {
                key: key.clone(),
                kind: io::ErrorKind::Other,
                message: format!("the loader failed: {join}"),
            }),
        };
        self.reader.complete(&key, &result);
    }
}

/// Whether `key` names an HTML page (what the site dictionary is trained on).
fn is_page(key: &str) -> bool {
    load::extension(key).is_some_and(|ext| ext == "html" || ext == "htm")
}

/// What a background build answers: each coding's bytes, `None` where they did not pay.
type Built = Vec<(Coding, Option<Bytes>)>;

/// The codings `file` should get at the stored level: those it asked for and those it
/// holds only at the quick level.
fn to_build(file: &CachedFile) -> Vec<Coding> {
    let mut codings: Vec<Coding> = file.builds().collect();
    for coding in Coding::COMPRESSED {
        if file.encoded(coding).is_some_and(|encoded| !encoded.stored) && !codings.contains(&coding)
        {
            codings.push(coding);
        }
    }
    codings.retain(|&coding| file.encoded(coding).is_none_or(|encoded| !encoded.stored));
    codings
}

/// The store, locked. Entries it lets go of are freed after the lock is released, so
/// requests waiting on the lock never wait for pages going back to the system.
struct StoreGuard<'a>(Option<MutexGuard<'a, ByteLru>>);

impl StoreGuard<'_> {
    /// Unlocks the store and frees what it let go of on the blocking pool: for changes
    /// that may release many entries at once (clearing, a smaller budget), which the
    /// actor's thread should not spend its time freeing.
    fn unlock_and_free_elsewhere(mut self) {
        let Some(mut store) = self.0.take() else {
            return;
        };
        let released = store.take_released();
        drop(store);
        if !released.is_empty() {
            actix_rt::task::spawn_blocking(move || drop(released));
        }
    }
}

impl std::ops::Deref for StoreGuard<'_> {
    type Target = ByteLru;

    fn deref(&self) -> &ByteLru {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut ByteLru {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let Some(mut store) = self.0.take() {
            let released = store.take_released();
            drop(store);
            drop(released);
        }
    }
}

impl Actor for FileCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A new incarnation starts empty: whatever the last one held is dropped, and
        // the loads it was running are lost, so their waiters are answered (their
        // receivers see `LoadError::Interrupted`).
        let mut store = self.reader.store();
        store.clear();
        store.unlock_and_free_elsewhere();
        self.reader.in_flight().clear();
        if crate::alloc::cache_arena_enabled() {
            ctx.run_interval(ARENA_CHECK, |cache, _| cache.count_arena_overhead());
        }
        // The dictionaries outlive an incarnation (clients hold them); a first start
        // trains the site's.
        if self.reader.shared.dictionaries.site().is_none() {
            self.train_site_dictionary(ctx);
        } else {
            self.count_dictionaries();
        }
        if !self.reader.shared.opts.dictionaries.is_empty() {
            ctx.run_interval(dictionaries::DICTIONARY_CHECK, |cache, ctx| {
                cache.check_site_changes(ctx)
            });
        }
        let opts = &self.reader.shared.opts;
        log::info!(
            "file cache: root {}, cache {} ({} bytes, expiry {:?}), compression {} ({:?} store, from {} bytes), files over {} bytes streamed",
            self.reader.shared.root.display(),
            if opts.enable_cache { "on" } else { "off" },
            opts.max_cache_size,
            opts.cache_expiration,
            if opts.enable_compression { "on" } else { "off" },
            opts.store,
            opts.min_compress_size,
            opts.max_file_size,
        );
    }
}

impl Handler<StartLoad> for FileCache {
    type Result = MessageResult<StartLoad>;

    fn handle(&mut self, StartLoad { claim }: StartLoad, ctx: &mut Context<Self>) -> Self::Result {
        self.start_load(claim.key().to_owned(), ctx);
        MessageResult(claim.hand_over())
    }
}

impl Handler<BuildEncodings> for FileCache {
    type Result = ();

    fn handle(&mut self, BuildEncodings { key }: BuildEncodings, ctx: &mut Context<Self>) {
        self.want_build(&key);
        self.pump(ctx);
    }
}

impl Handler<KeepEncoded> for FileCache {
    type Result = ();

    fn handle(&mut self, message: KeepEncoded, ctx: &mut Context<Self>) {
        let KeepEncoded {
            file,
            coding,
            bytes,
        } = message;
        let shared = &self.reader.shared;
        // At a stored level equal to the quick one they are already the stored bytes.
        let stored = Levels::QUICK.of(coding) == shared.codecs.stored_levels().of(coding);
        // Into the arena outside the lock (a copy of up to `max_file_size` bytes).
        let encoded = bytes.map(|bytes| {
            Encoded::new(
                file.digest,
                coding,
                crate::alloc::into_cache_arena(bytes),
                stored,
            )
        });
        let mut store = self.reader.store();
        let Some(current) = store.peek(&file.key).filter(|f| f.digest == file.digest) else {
            return;
        };
        if current.has_encoded() || !current.compressible {
            return;
        }
        let merged = load::merged(&current, [(coding, encoded)], shared.opts.store);
        if let Insert::Admitted { evicted } = store.insert(Arc::new(merged)) {
            CacheCounters::add(&shared.counters.evictions, evicted);
        }
        drop(store);
        // The stored level follows in the background, most read files first.
        self.want_build(&file.key);
        self.pump(ctx);
    }
}

impl Handler<KeepIdentity> for FileCache {
    type Result = ();

    fn handle(&mut self, message: KeepIdentity, _: &mut Context<Self>) {
        let KeepIdentity { file, identity } = message;
        let shared = &self.reader.shared;
        let fits = |store: &ByteLru| {
            let share = store.budget() / 100 * shared.opts.identity_copy_percent;
            store.identity_copy_bytes() + file.len <= share
        };
        {
            let store = self.reader.store();
            if !store.is_current(&file)
                || file.identity.is_some()
                || identity.len() as u64 != file.len
            {
                return;
            }
            if !fits(&store) {
                CacheCounters::add(&shared.counters.identity_copies_refused, 1);
                return;
            }
        }
        // The copy (up to `max_file_size` bytes) is made outside the lock; the entry may
        // have changed meanwhile, so it is checked again.
        let identity = crate::alloc::into_cache_arena(identity);
        let mut store = self.reader.store();
        if !store.is_current(&file) || !fits(&store) {
            return;
        }
        if let Insert::Admitted { evicted } =
            store.insert(Arc::new(file.with_identity_copy(identity)))
        {
            CacheCounters::add(&shared.counters.evictions, evicted);
            CacheCounters::add(&shared.counters.identity_copies, 1);
        }
    }
}

impl Handler<ClearCache> for FileCache {
    type Result = u64;

    fn handle(&mut self, _: ClearCache, _: &mut Context<Self>) -> u64 {
        let mut store = self.reader.store();
        let freed = store.bytes();
        store.clear();
        store.unlock_and_free_elsewhere();
        log::info!("file cache cleared ({freed} bytes)");
        freed
    }
}

impl Handler<SetCacheBudget> for FileCache {
    type Result = u64;

    fn handle(&mut self, message: SetCacheBudget, _: &mut Context<Self>) -> u64 {
        let mut store = self.reader.store();
        let from = store.budget();
        let evicted = store.set_budget(message.bytes);
        store.unlock_and_free_elsewhere();
        CacheCounters::add(&self.reader.shared.counters.evictions, evicted);
        log::info!(
            "file cache budget {from} -> {} bytes ({evicted} evicted)",
            message.bytes
        );
        evicted
    }
}

impl Handler<GetCacheStats> for FileCache {
    type Result = MessageResult<GetCacheStats>;

    fn handle(&mut self, _: GetCacheStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.reader.stats())
    }
}

impl Handler<GetCacheSize> for FileCache {
    type Result = u64;

    fn handle(&mut self, _: GetCacheSize, _: &mut Context<Self>) -> u64 {
        self.reader.store().bytes()
    }
}

impl Handler<GetCacheItemCount> for FileCache {
    type Result = usize;

    fn handle(&mut self, _: GetCacheItemCount, _: &mut Context<Self>) -> usize {
        self.reader.store().len()
    }
}

#[cfg(test)]
mod tests;
