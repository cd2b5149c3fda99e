//! The cached files and the byte-bounded LRU that holds them.
//!
//! An entry is one file with every representation the cache keeps of it (identity and
//! any of gzip, br and zstd), keyed by its path relative to the root. Its cost is the bytes it stores plus
//! a fixed overhead estimate for the entry, its key and its precomputed headers; the LRU
//! evicts least recently used entries until the sum fits the budget. Everything a hit
//! needs is computed at load (validators, header values), so a hit only clones `Arc`s and
//! `Bytes`.
//!
//! With TinyLFU admission (`static_files.admission = "tinylfu"`, see `admission.rs`)
//! every lookup, hit or miss, is counted in a frequency sketch, and a new file that needs
//! evictions is admitted only when its recent reads per byte beat those of the least
//! recently used entries it would evict (their reads summed over their bytes); otherwise
//! it is served from the bytes read and not cached. Per byte, because the budget is in
//! bytes: one 400 KB file must be read more than fifty 8 KB files together to displace
//! them. On the trace test below this gives 6 points of hit ratio over plain LRU, where
//! comparing bare counts (against the largest victim's, or the victims' sum) gives 4–5.
//! Files that fit without evicting anything are always admitted. The sketch's bytes count
//! against the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use lru::LruCache;

use super::admission::Admission;
use crate::http::dictionary::DictCoding;
use crate::http::encoding::Coding;

/// Per-entry overhead estimate: the `Arc<CachedFile>` allocation, the LRU node, the
/// header values and the key's two copies, rounded up.
pub const ENTRY_OVERHEAD: u64 = 512;

/// What jemalloc allocates for a request of `len` bytes: its size class (16-byte
/// quantum, then four classes per doubling, so up to 25% more than asked; 8% more on
/// average for web-sized files; above 32 KiB jemalloc rounds to pages instead, which it
/// is asked for where it is the allocator). A heap profile of a full cache showed its
/// stored bytes taking that much more than the bytes themselves; counting it keeps the
/// budget what the heap holds.
pub fn allocation_size(len: usize) -> u64 {
    if let Some(size) = crate::alloc::usable_size(len) {
        return size;
    }
    let len = len as u64;
    match len {
        0 => 0,
        1..=8 => 8,
        9..=128 => len.div_ceil(16) * 16,
        _ => {
            let delta = 1u64 << ((len - 1).ilog2() - 2);
            len.div_ceil(delta) * delta
        }
    }
}

/// One compressed representation of a cached file.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub bytes: Bytes,
    /// Strong validator: the content's digest, the coding and a hash of these bytes, so
    /// a recompression at another level is another representation to a client's cache.
    pub etag: HeaderValue,
    /// At the stored level, or a precompressed sidecar: nothing left to improve. Bytes
    /// compressed at the quick level while a client waited are not, and are recompressed
    /// once the file is read again.
    pub stored: bool,
}

impl Encoded {
    /// `bytes` in `coding` of the content whose digest is `digest`.
    pub fn new(digest: u64, coding: Coding, bytes: Bytes, stored: bool) -> Encoded {
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes) as u32;
        let etag =
            HeaderValue::try_from(format!("\"{digest:016x}-{}-{hash:08x}\"", coding.token()))
                .expect("hex digits and a token");
        Encoded {
            bytes,
            etag,
            stored,
        }
    }
}

/// A representation compressed against a dictionary (RFC 9842): `dcz` or `dcb` bytes,
/// header included, for clients holding the dictionary whose SHA-256 is `hash`.
#[derive(Clone, Debug)]
pub struct DictEncoded {
    pub coding: DictCoding,
    pub hash: [u8; 32],
    pub bytes: Bytes,
    /// Strong validator: the content's digest, the coding, the dictionary and a hash of
    /// these bytes.
    pub etag: HeaderValue,
}

impl DictEncoded {
    /// `bytes` in `coding` against the dictionary `hash` of the content `digest`.
    pub fn new(digest: u64, coding: DictCoding, hash: [u8; 32], bytes: Bytes) -> DictEncoded {
        let own = xxhash_rust::xxh3::xxh3_64(&bytes) as u32;
        let dictionary = crate::http::dictionary::hex(&hash[..4]);
        let etag = HeaderValue::try_from(format!(
            "\"{digest:016x}-{}-{dictionary}-{own:08x}\"",
            coding.token()
        ))
        .expect("hex digits and a token");
        DictEncoded {
            coding,
            hash,
            bytes,
            etag,
        }
    }
}

/// One file as the cache holds it.
#[derive(Debug)]
pub struct CachedFile {
    /// Path relative to the root, as the request named it (the cache key).
    pub key: String,
    /// Length of the identity representation.
    pub len: u64,
    /// Modification time on disk (for revalidation and `Last-Modified`).
    pub modified: Option<SystemTime>,
    pub last_modified: Option<HeaderValue>,
    /// Hash of the identity bytes (xxh3): what the validators derive from.
    pub digest: u64,
    /// Strong validator of the identity bytes.
    pub etag: HeaderValue,
    pub content_type: HeaderValue,
    /// `None` under `store = "compressed-only"` once compressed bytes exist.
    pub identity: Option<Bytes>,
    /// The compressed representations held, by [`Coding::slot`].
    pub encoded: [Option<Encoded>; 3],
    /// The representation compressed against a dictionary, for clients holding it (one
    /// per entry: the most recent one kept).
    pub dictionary: Option<DictEncoded>,
    /// The file's extension is listed, it is large enough, compression is on, and
    /// compressing it was not found to save less than 10%: responses depend on
    /// Accept-Encoding (`Vary`), and a client taking a coding gets it compressed.
    pub compressible: bool,
    /// Requests whose client preferred each coding (by slot), for what to build.
    pub(crate) asked: [AtomicU32; 3],
    /// Codings (bits by slot) this entry asked the cache to build at the stored level:
    /// set once, by whoever asked first, and cleared in the entry that replaces it.
    pub(crate) building: AtomicU8,
    /// The identity bytes are an extra copy beside compressed bytes, kept under
    /// `store = "compressed-only"` because identity clients read this file often.
    pub identity_copy: bool,
    /// Identity responses decoded from compressed bytes (compressed-only, no copy yet).
    pub(crate) inflations: AtomicU32,
    /// When the entry was last loaded or found unchanged on disk, in milliseconds since
    /// the cache's epoch.
    pub(crate) checked_at_ms: AtomicU64,
}

impl CachedFile {
    /// Bytes this entry counts against the budget: what the allocator holds for its
    /// stored bytes (rounded up to the allocator's size class), plus the overhead.
    pub fn cost(&self) -> u64 {
        let identity = self
            .identity
            .as_ref()
            .map_or(0, |b| allocation_size(b.len()));
        let encoded: u64 = self
            .encoded
            .iter()
            .flatten()
            .map(|encoded| allocation_size(encoded.bytes.len()))
            .sum();
        let dictionary = self
            .dictionary
            .as_ref()
            .map_or(0, |encoded| allocation_size(encoded.bytes.len()));
        identity + encoded + dictionary + ENTRY_OVERHEAD + 2 * self.key.len() as u64
    }

    /// Whether responses for this file depend on Accept-Encoding: it has compressed
    /// bytes, or will have (a shared cache must not hand a file's identity response to
    /// every client once compressed forms exist).
    pub fn varies(&self) -> bool {
        self.compressible || self.encoded.iter().any(Option::is_some)
    }

    /// The representation held in `coding` (None for identity).
    pub fn encoded(&self, coding: Coding) -> Option<&Encoded> {
        self.encoded[coding.slot()?].as_ref()
    }

    /// Whether any compressed representation is held.
    pub fn has_encoded(&self) -> bool {
        self.encoded.iter().any(Option::is_some)
    }

    /// Every representation this entry can send, with its length: identity (held, or
    /// decoded from compressed bytes) and each compressed one held.
    pub fn available(&self) -> impl Iterator<Item = (Coding, u64)> + '_ {
        Coding::COMPRESSED
            .into_iter()
            .zip(&self.encoded)
            .filter_map(|(coding, encoded)| Some((coding, encoded.as_ref()?.bytes.len() as u64)))
            .chain([(Coding::Identity, self.len)])
    }

    /// Counts a request whose client prefers `coding`; answers the count.
    pub fn count_asked(&self, coding: Coding) -> u32 {
        let slot = coding.slot().expect("a compressed coding");
        self.asked[slot].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Requests so far whose client preferred `coding`.
    pub fn asked(&self, coding: Coding) -> u32 {
        coding
            .slot()
            .map_or(0, |slot| self.asked[slot].load(Ordering::Relaxed))
    }

    /// Marks `coding` as asked of the cache; true the first time only, so one request
    /// per entry and coding sends the cache a build.
    pub fn claim_build(&self, coding: Coding) -> bool {
        let bit = 1u8 << coding.slot().expect("a compressed coding");
        self.building.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Forgets the builds this entry asked for (one failed: the next request asks again).
    pub(crate) fn release_builds(&self) {
        self.building.store(0, Ordering::Relaxed);
    }

    /// The codings this entry asked the cache to build.
    pub(crate) fn builds(&self) -> impl Iterator<Item = Coding> + '_ {
        let bits = self.building.load(Ordering::Relaxed);
        Coding::COMPRESSED
            .into_iter()
            .filter(move |coding| bits & (1 << coding.slot().expect("compressed")) != 0)
    }

    /// Counts one identity response decoded from compressed bytes; answers the count.
    pub fn count_inflation(&self) -> u32 {
        self.inflations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This entry with `identity` (its decoded bytes) kept as an identity copy.
    pub fn with_identity_copy(&self, identity: Bytes) -> CachedFile {
        CachedFile {
            identity_copy: true,
            inflations: AtomicU32::new(self.inflations.load(Ordering::Relaxed)),
            building: AtomicU8::new(self.building.load(Ordering::Relaxed)),
            ..self.with_bytes(Some(identity), self.encoded.clone())
        }
    }

    /// The same entry, flags and counts included, with its bytes moved to the file
    /// cache's arena (`alloc::into_cache_arena`); itself where there is none.
    pub fn settled(self: &Arc<Self>) -> Arc<CachedFile> {
        if !crate::alloc::cache_arena_enabled() {
            return Arc::clone(self);
        }
        let arena = |bytes: Bytes| {
            if crate::alloc::in_cache_arena(&bytes) {
                bytes
            } else {
                crate::alloc::into_cache_arena(bytes)
            }
        };
        let encoded = self.encoded.clone().map(|encoded| {
            encoded.map(|encoded| Encoded {
                bytes: arena(encoded.bytes),
                ..encoded
            })
        });
        Arc::new(CachedFile {
            identity_copy: self.identity_copy,
            inflations: AtomicU32::new(self.inflations.load(Ordering::Relaxed)),
            building: AtomicU8::new(self.building.load(Ordering::Relaxed)),
            compressible: self.compressible,
            ..self.with_bytes(self.identity.clone().map(arena), encoded)
        })
    }

    /// The same file (key, validators, headers, demand, check time) with other stored
    /// bytes and no builds asked for.
    pub fn with_bytes(&self, identity: Option<Bytes>, encoded: [Option<Encoded>; 3]) -> CachedFile {
        CachedFile {
            key: self.key.clone(),
            len: self.len,
            modified: self.modified,
            last_modified: self.last_modified.clone(),
            digest: self.digest,
            etag: self.etag.clone(),
            content_type: self.content_type.clone(),
            identity,
            encoded,
            dictionary: self.dictionary.clone(),
            compressible: self.compressible,
            asked: self
                .asked
                .each_ref()
                .map(|count| AtomicU32::new(count.load(Ordering::Relaxed))),
            building: AtomicU8::new(0),
            identity_copy: false,
            inflations: AtomicU32::new(0),
            checked_at_ms: AtomicU64::new(self.checked_at_ms()),
        }
    }

    pub(crate) fn mark_checked(&self, now_ms: u64) {
        self.checked_at_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn checked_at_ms(&self) -> u64 {
        self.checked_at_ms.load(Ordering::Relaxed)
    }
}

/// What became of an entry offered to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Cached, after evicting this many entries.
    Admitted { evicted: u64 },
    /// Not cached: the entries it would have evicted were read as often lately, per byte.
    Rejected,
    /// Not cached: the entry alone exceeds the budget.
    TooLarge,
}

/// A least-recently-used map bounded by bytes, with optional TinyLFU admission.
#[derive(Debug)]
pub struct ByteLru {
    entries: LruCache<String, Arc<CachedFile>>,
    /// Bytes of the entries plus the admission sketch's.
    bytes: u64,
    budget: u64,
    admission: Option<Admission>,
    /// Identity bytes of the cached files that have compressed bytes, and what their
    /// smallest compressed form saves on them, for the compression ratio.
    compressible_bytes: u64,
    encoded_saved_bytes: u64,
    /// Compressed representations held, and their bytes, by [`Coding::slot`].
    held_encoded: [Held; 5],
    /// Bytes of identity copies (compressed-only store).
    identity_copy_bytes: u64,
    /// What the allocator holds for the stored bytes beyond the bytes themselves
    /// (fragmentation, metadata, pages not yet returned), as last measured; counted
    /// against the budget beside `bytes`.
    allocator_overhead: u64,
    /// Bytes of the compression dictionaries held (site and assets), counted against the
    /// budget beside the entries.
    dictionary_bytes: u64,
    /// Entries evicted, replaced, removed or cleared, not yet freed: the caller frees
    /// them after releasing the lock around the store ([`take_released`]), since freeing
    /// cached bytes hands their pages back to the system (the cache's arena does not
    /// wait), which requests waiting on the lock should not pay for.
    ///
    /// [`take_released`]: Self::take_released
    released: Vec<Arc<CachedFile>>,
}

impl ByteLru {
    /// A plain LRU: every entry that fits the budget is cached.
    pub fn new(budget: u64) -> Self {
        ByteLru {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
            admission: None,
            compressible_bytes: 0,
            encoded_saved_bytes: 0,
            held_encoded: [Held::default(); 5],
            identity_copy_bytes: 0,
            allocator_overhead: 0,
            dictionary_bytes: 0,
            released: Vec::new(),
        }
    }

    /// An LRU behind TinyLFU admission, its sketch sized from `budget`.
    pub fn with_admission(budget: u64) -> Self {
        let admission = Admission::for_budget(budget);
        ByteLru {
            bytes: admission.bytes(),
            admission: Some(admission),
            ..ByteLru::new(budget)
        }
    }

    /// Looks an entry up and marks it recently used; counts the lookup in the admission
    /// sketch, hit or miss.
    pub fn get(&mut self, key: &str) -> Option<Arc<CachedFile>> {
        if let Some(admission) = &mut self.admission {
            admission.record(Admission::hash(key));
        }
        self.entries.get(key).cloned()
    }

    /// Whether `file` is still the cached entry for its key (not evicted, replaced or
    /// cleared since it was read).
    pub fn is_current(&self, file: &Arc<CachedFile>) -> bool {
        self.entries
            .peek(&file.key)
            .is_some_and(|current| Arc::ptr_eq(current, file))
    }

    /// Looks an entry up without touching its recency.
    pub fn peek(&self, key: &str) -> Option<Arc<CachedFile>> {
        self.entries.peek(key).cloned()
    }

    /// Whether [`insert`](Self::insert) would cache `file` now (without touching
    /// anything), so its bytes can be moved to their final place first.
    pub fn would_admit(&self, file: &CachedFile) -> bool {
        let cost = file.cost();
        cost <= self.room() && (self.entries.contains(&file.key) || self.admits(&file.key, cost))
    }

    /// Inserts (or replaces) an entry, evicting least recently used ones until it fits,
    /// unless admission turns it away (a replacement is always admitted). Nothing is
    /// evicted for an entry that is not cached.
    pub fn insert(&mut self, file: Arc<CachedFile>) -> Insert {
        let cost = file.cost();
        let replaced = self.remove(&file.key);
        if cost > self.room() {
            return Insert::TooLarge;
        }
        if !replaced && !self.admits(&file.key, cost) {
            return Insert::Rejected;
        }
        let mut evicted = 0;
        while self.held() + cost > self.budget {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.release(old);
            evicted += 1;
        }
        self.account(&file, true);
        self.entries.put(file.key.clone(), file);
        Insert::Admitted { evicted }
    }

    /// Whether a new entry of `cost` bytes may evict what it needs: always without
    /// admission or when it fits as is; else only when its recent reads per byte exceed
    /// those of the least recently used entries that would make room.
    fn admits(&self, key: &str, cost: u64) -> bool {
        let Some(admission) = &self.admission else {
            return true;
        };
        let candidate = u64::from(admission.estimate(Admission::hash(key)));
        let (mut bytes, mut victims, mut victim_bytes) = (self.held(), 0u64, 0u64);
        for (victim_key, victim) in self.entries.iter().rev() {
            if bytes + cost <= self.budget {
                break;
            }
            victims += u64::from(admission.estimate(Admission::hash(victim_key)));
            victim_bytes += victim.cost();
            bytes -= victim.cost();
        }
        // Reads per byte: the candidate's against the victims'.
        victim_bytes == 0 || candidate * victim_bytes > victims * cost
    }

    /// Changes the budget, evicting least recently used entries until the held bytes fit;
    /// answers how many were evicted.
    pub fn set_budget(&mut self, budget: u64) -> u64 {
        self.budget = budget;
        self.fit()
    }

    /// Records what the allocator holds for the stored bytes beyond the bytes
    /// themselves (see `alloc::cache_arena_stats`), evicting least recently used entries
    /// until the entries and that overhead fit the budget; answers how many were evicted.
    pub fn set_allocator_overhead(&mut self, bytes: u64) -> u64 {
        self.allocator_overhead = bytes;
        self.fit()
    }

    /// Records the bytes of the dictionaries held, evicting least recently used entries
    /// until everything fits; answers how many were evicted.
    pub fn set_dictionary_bytes(&mut self, bytes: u64) -> u64 {
        self.dictionary_bytes = bytes;
        self.fit()
    }

    /// The dictionary bytes last recorded.
    pub fn dictionary_bytes(&self) -> u64 {
        self.dictionary_bytes
    }

    /// The allocator overhead last recorded.
    pub fn allocator_overhead(&self) -> u64 {
        self.allocator_overhead
    }

    /// Everything counted against the budget: entries, sketch, allocator overhead and
    /// dictionaries.
    pub fn held(&self) -> u64 {
        self.bytes + self.allocator_overhead + self.dictionary_bytes
    }

    /// The most one entry may cost.
    fn room(&self) -> u64 {
        self.budget
            .saturating_sub(self.fixed_bytes() + self.allocator_overhead + self.dictionary_bytes)
    }

    /// Evicts least recently used entries until everything fits the budget.
    fn fit(&mut self) -> u64 {
        let mut evicted = 0;
        while self.held() > self.budget {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.release(old);
            evicted += 1;
        }
        evicted
    }

    /// Drops an entry; answers whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.entries.pop(key) {
            Some(old) => {
                self.release(old);
                true
            }
            None => false,
        }
    }

    /// Drops every entry (the admission sketch keeps its counts).
    pub fn clear(&mut self) {
        let entries = std::mem::replace(&mut self.entries, LruCache::unbounded());
        self.released
            .extend(entries.into_iter().map(|(_, file)| file));
        self.bytes = self.fixed_bytes();
        self.compressible_bytes = 0;
        self.encoded_saved_bytes = 0;
        self.held_encoded = [Held::default(); 5];
        self.identity_copy_bytes = 0;
    }

    /// Bytes held: the entries' costs plus the admission sketch.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of identity copies held beside gzip bytes.
    pub fn identity_copy_bytes(&self) -> u64 {
        self.identity_copy_bytes
    }

    /// How often `key` was looked up lately, per the admission sketch (0 without one).
    pub fn frequency(&self, key: &str) -> u8 {
        self.admission
            .as_ref()
            .map_or(0, |admission| admission.estimate(Admission::hash(key)))
    }

    /// Bytes held whatever the entries: the admission sketch.
    pub fn fixed_bytes(&self) -> u64 {
        self.admission.as_ref().map_or(0, Admission::bytes)
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the smallest compressed form saves over the identity bytes of cached
    /// compressible files, over those identity bytes.
    pub fn compression_ratio(&self) -> f64 {
        if self.compressible_bytes == 0 {
            0.0
        } else {
            self.encoded_saved_bytes as f64 / self.compressible_bytes as f64
        }
    }

    /// Takes an entry out of the accounts and keeps it for the caller to free.
    fn release(&mut self, file: Arc<CachedFile>) {
        self.account(&file, false);
        self.released.push(file);
    }

    /// The entries this store let go of since the last call, for the caller to free
    /// once it has released the lock around the store.
    pub fn take_released(&mut self) -> Vec<Arc<CachedFile>> {
        std::mem::take(&mut self.released)
    }

    /// Compressed representations held, and their bytes: by [`Coding::slot`], then dcz
    /// and dcb.
    pub fn held_encoded(&self) -> [Held; 5] {
        self.held_encoded
    }

    fn account(&mut self, file: &CachedFile, added: bool) {
        let cost = file.cost();
        // The ratio counts what the smallest held form saves.
        let smallest = file
            .encoded
            .iter()
            .flatten()
            .map(|e| e.bytes.len() as u64)
            .min();
        let (compressible, saved) = match smallest {
            Some(smallest) => (file.len, file.len.saturating_sub(smallest)),
            None => (0, 0),
        };
        let copy = if file.identity_copy { file.len } else { 0 };
        let apply = |total: &mut u64, n: u64| {
            if added {
                *total += n;
            } else {
                *total -= n;
            }
        };
        apply(&mut self.bytes, cost);
        apply(&mut self.compressible_bytes, compressible);
        apply(&mut self.encoded_saved_bytes, saved);
        apply(&mut self.identity_copy_bytes, copy);
        for (held, encoded) in self.held_encoded.iter_mut().zip(&file.encoded) {
            if let Some(encoded) = encoded {
                apply(&mut held.count, 1);
                apply(&mut held.bytes, encoded.bytes.len() as u64);
            }
        }
        if let Some(encoded) = &file.dictionary {
            let held = &mut self.held_encoded[3 + encoded.coding.slot()];
            apply(&mut held.count, 1);
            apply(&mut held.bytes, encoded.bytes.len() as u64);
        }
    }
}

/// Representations of one coding held by the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub count: u64,
    pub bytes: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An entry with `identity` bytes and, optionally, `gzip` bytes.
    pub(crate) fn file(key: &str, identity: usize, gzip: Option<usize>) -> Arc<CachedFile> {
        Arc::new(CachedFile {
            key: key.to_owned(),
            len: identity as u64,
            modified: None,
            last_modified: None,
            digest: 0,
            etag: HeaderValue::from_static("\"e\""),
            content_type: HeaderValue::from_static("text/plain"),
            identity: Some(Bytes::from(vec![b'x'; identity])),
            encoded: [
                gzip.map(|n| Encoded::new(0, Coding::Gzip, Bytes::from(vec![b'z'; n]), true)),
                None,
                None,
            ],
            dictionary: None,
            compressible: gzip.is_some(),
            asked: Default::default(),
            building: AtomicU8::new(0),
            identity_copy: false,
            inflations: AtomicU32::new(0),
            checked_at_ms: AtomicU64::new(0),
        })
    }

    fn cost(identity: u64, key: &str) -> u64 {
        allocation_size(identity as usize) + ENTRY_OVERHEAD + 2 * key.len() as u64
    }

    #[test]
    fn allocation_size_follows_jemallocs_size_classes() {
        let classes: Vec<u64> = [
            0, 1, 8, 9, 100, 128, 129, 160, 161, 1000, 1024, 1025, 10_000, 20_000,
        ]
        .iter()
        .map(|&n| allocation_size(n))
        .collect();
        assert_eq!(
            classes,
            [
                0, 8, 8, 16, 112, 128, 160, 160, 192, 1024, 1024, 1280, 10_240, 20_480
            ]
        );
        for n in 1..100_000 {
            let class = allocation_size(n);
            assert!(
                class >= n as u64 && class * 4 <= n as u64 * 5 + 64,
                "{n} -> {class}"
            );
        }
    }

    #[test]
    fn byte_lru_evicts_least_recently_used_until_it_fits() {
        let mut lru = ByteLru::new(3 * cost(1000, "a"));
        for key in ["a", "b", "c"] {
            assert_eq!(
                lru.insert(file(key, 1000, None)),
                Insert::Admitted { evicted: 0 }
            );
        }
        assert_eq!(lru.bytes(), 3 * cost(1000, "a"));
        lru.get("a"); // b is now the least recently used
        assert_eq!(
            lru.insert(file("d", 1000, None)),
            Insert::Admitted { evicted: 1 }
        );
        assert!(lru.peek("b").is_none());
        assert!(lru.peek("a").is_some() && lru.peek("c").is_some() && lru.peek("d").is_some());
        assert!(lru.bytes() <= lru.budget());
    }

    #[test]
    fn byte_lru_keeps_what_it_lets_go_of_for_the_caller_to_free() {
        let mut lru = ByteLru::new(2 * cost(1000, "a"));
        let (a, b) = (file("a", 1000, None), file("b", 1000, None));
        lru.insert(Arc::clone(&a));
        lru.insert(Arc::clone(&b));
        assert!(lru.take_released().is_empty());
        lru.insert(file("c", 1000, None)); // evicts a
        lru.insert(file("b", 1000, None)); // replaces b
        let released = lru.take_released();
        assert_eq!(released.len(), 2);
        assert!(Arc::ptr_eq(&released[0], &a) && Arc::ptr_eq(&released[1], &b));
        assert!(lru.take_released().is_empty(), "handed over once");
        lru.clear();
        assert_eq!(lru.take_released().len(), 2);
        assert_eq!((lru.len(), lru.bytes()), (0, lru.fixed_bytes()));
        lru.insert(file("d", 1000, None));
        lru.set_budget(0);
        assert_eq!(lru.take_released().len(), 1);
    }

    #[test]
    fn byte_lru_large_entry_evicts_several() {
        let mut lru = ByteLru::new(4 * cost(1000, "a"));
        for key in ["a", "b", "c", "d"] {
            lru.insert(file(key, 1000, None));
        }
        // Two 1000-byte entries make room for one of 2000 bytes.
        assert_eq!(
            lru.insert(file("big", 2000, None)),
            Insert::Admitted { evicted: 2 }
        );
        assert_eq!(lru.len(), 3);
        assert!(lru.peek("a").is_none() && lru.peek("b").is_none());
        assert!(lru.bytes() <= lru.budget());
    }

    #[test]
    fn byte_lru_set_budget_evicts_the_least_recent_until_it_fits() {
        let mut lru = ByteLru::new(100 * 1024);
        for n in 0..10 {
            lru.insert(file(&format!("f{n}"), 4096, None));
        }
        lru.get("f0");
        let before = lru.len();
        let evicted = lru.set_budget(3 * cost(4096, "f0"));
        assert_eq!(evicted as usize, before - 3);
        assert!(lru.bytes() <= lru.budget());
        assert!(lru.peek("f0").is_some(), "the recently read one stays");
        assert_eq!(lru.set_budget(1 << 30), 0);
    }

    #[test]
    fn byte_lru_refuses_an_entry_larger_than_the_budget() {
        let mut lru = ByteLru::new(1000);
        lru.insert(file("a", 100, None));
        assert_eq!(lru.insert(file("huge", 5000, None)), Insert::TooLarge);
        assert_eq!(lru.len(), 1, "nothing evicted for an entry that cannot fit");
    }

    #[test]
    fn byte_lru_replacing_a_key_keeps_accounting_exact() {
        let mut lru = ByteLru::new(1 << 20);
        lru.insert(file("a", 1000, Some(200)));
        lru.insert(file("a", 3000, None));
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.bytes(), cost(3000, "a"));
        assert_eq!(lru.compression_ratio(), 0.0);
        assert!(lru.remove("a"));
        assert_eq!((lru.bytes(), lru.len()), (0, 0));
    }

    #[test]
    fn byte_lru_compression_ratio_is_saved_over_original() {
        let mut lru = ByteLru::new(1 << 20);
        lru.insert(file("a", 1000, Some(250)));
        lru.insert(file("b", 1000, Some(750)));
        lru.insert(file("c", 5000, None));
        assert!((lru.compression_ratio() - 0.5).abs() < 1e-9);
        lru.clear();
        assert_eq!((lru.bytes(), lru.compression_ratio()), (0, 0.0));
    }

    #[test]
    fn byte_lru_admission_keeps_hot_entries_from_one_hit_wonders() {
        let budget = 3 * cost(1000, "a");
        let mut lru = ByteLru::with_admission(budget + Admission::for_budget(budget).bytes());
        for key in ["a", "b", "c"] {
            for _ in 0..3 {
                lru.get(key);
            }
            assert_eq!(
                lru.insert(file(key, 1000, None)),
                Insert::Admitted { evicted: 0 }
            );
        }
        // Read once: not worth evicting a file read three times.
        assert!(lru.get("d").is_none());
        assert_eq!(lru.insert(file("d", 1000, None)), Insert::Rejected);
        assert_eq!(lru.len(), 3);
        // Read more often than the least recently used: admitted, evicting it.
        for _ in 0..5 {
            lru.get("d");
        }
        assert_eq!(
            lru.insert(file("d", 1000, None)),
            Insert::Admitted { evicted: 1 }
        );
        assert!(lru.peek("a").is_none(), "a was the least recently used");
        // A changed file replaces its entry whatever its count.
        assert_eq!(
            lru.insert(file("b", 900, None)),
            Insert::Admitted { evicted: 0 }
        );
        assert_eq!(lru.peek("b").unwrap().len, 900);
        assert!(lru.bytes() <= lru.budget());
        lru.clear();
        assert_eq!(lru.bytes(), lru.fixed_bytes(), "the sketch stays accounted");
    }

    /// An entry of `len` identity bytes that allocates nothing (a static slice).
    fn sized(key: &str, len: usize) -> Arc<CachedFile> {
        static ZEROS: [u8; 1 << 21] = [0; 1 << 21];
        Arc::new(CachedFile {
            key: key.to_owned(),
            len: len as u64,
            modified: None,
            last_modified: None,
            digest: 0,
            etag: HeaderValue::from_static("\"e\""),
            content_type: HeaderValue::from_static("text/html"),
            identity: Some(Bytes::from_static(&ZEROS[..len])),
            encoded: Default::default(),
            dictionary: None,
            compressible: false,
            asked: Default::default(),
            building: AtomicU8::new(0),
            identity_copy: false,
            inflations: AtomicU32::new(0),
            checked_at_ms: AtomicU64::new(0),
        })
    }

    /// Deterministic pseudo-random numbers (SplitMix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }
    }

    /// Hit ratio and byte hit ratio of `lru` over `trace` (keys and sizes), counting after
    /// the first `warmup` requests; a miss inserts the file, as the cache actor does.
    fn replay(
        mut lru: ByteLru,
        files: &[(String, usize)],
        trace: &[usize],
        warmup: usize,
    ) -> (f64, f64) {
        let (mut hits, mut requests, mut hit_bytes, mut bytes) = (0u64, 0u64, 0u64, 0u64);
        for (n, &i) in trace.iter().enumerate() {
            let (key, len) = &files[i];
            let hit = lru.get(key).is_some();
            if !hit {
                lru.insert(sized(key, *len));
            }
            assert!(lru.bytes() <= lru.budget());
            if n >= warmup {
                requests += 1;
                bytes += *len as u64;
                if hit {
                    hits += 1;
                    hit_bytes += *len as u64;
                }
            }
        }
        (
            hits as f64 / requests as f64,
            hit_bytes as f64 / bytes as f64,
        )
    }

    /// A Zipf(1) trace over 30,000 files whose sizes follow a web site's (lognormal,
    /// median 8 KiB, from 200 B to 2 MiB), popularity independent of size, budget 25% of
    /// the distinct bytes: TinyLFU admission must beat plain LRU's hit ratio by 5 points.
    #[test]
    fn byte_lru_admission_beats_plain_lru_on_a_zipf_trace() {
        const FILES: usize = 30_000;
        const REQUESTS: usize = 300_000;
        let mut rng = Rng(0x5eed);
        let files: Vec<(String, usize)> = (0..FILES)
            .map(|n| {
                // Box-Muller: a standard normal, then lognormal with sigma 1.2.
                let normal = (-2.0 * rng.unit().ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * rng.unit()).cos();
                let len = (8192.0 * (1.2 * normal).exp()).clamp(200.0, (1 << 21) as f64);
                (format!("docs/page-{n}.html"), len as usize)
            })
            .collect();
        // Popularity ranks in a random order of the files (Fisher-Yates).
        let mut by_rank: Vec<usize> = (0..FILES).collect();
        for i in (1..FILES).rev() {
            by_rank.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let mut cumulative = Vec::with_capacity(FILES);
        let mut total = 0.0;
        for rank in 1..=FILES {
            total += 1.0 / rank as f64;
            cumulative.push(total);
        }
        let trace: Vec<usize> = (0..REQUESTS)
            .map(|_| {
                let target = rng.unit() * total;
                by_rank[cumulative.partition_point(|&c| c < target).min(FILES - 1)]
            })
            .collect();
        let distinct: u64 = {
            let mut seen = vec![false; FILES];
            trace
                .iter()
                .filter(|&&i| !std::mem::replace(&mut seen[i], true))
                .map(|&i| files[i].1 as u64)
                .sum()
        };
        let budget = distinct / 4;
        let warmup = FILES;
        let (lru_hits, lru_bytes) = replay(ByteLru::new(budget), &files, &trace, warmup);
        let (lfu_hits, lfu_bytes) = replay(ByteLru::with_admission(budget), &files, &trace, warmup);
        println!("| policy | hit ratio | byte hit ratio |");
        println!("|---|---|---|");
        println!("| LRU | {lru_hits:.3} | {lru_bytes:.3} |");
        println!("| TinyLFU + LRU | {lfu_hits:.3} | {lfu_bytes:.3} |");
        println!("distinct bytes requested {distinct}, budget {budget}");
        assert!(
            lfu_hits >= lru_hits + 0.05,
            "TinyLFU {lfu_hits:.3} against LRU {lru_hits:.3}"
        );
    }
}
