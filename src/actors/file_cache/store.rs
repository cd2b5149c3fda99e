//! The cached files and the byte-bounded LRU that holds them.
//!
//! An entry is one file with every representation the cache keeps of it (identity, gzip
//! or both), keyed by its path relative to the root. Its cost is the bytes it stores plus
//! a fixed overhead estimate for the entry, its key and its precomputed headers; the LRU
//! evicts least recently used entries until the sum fits the budget. Everything a hit
//! needs is computed at load (validators, header values), so a hit only clones `Arc`s and
//! `Bytes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use lru::LruCache;

/// Per-entry overhead estimate: the `Arc<CachedFile>` allocation, the LRU node, the
/// header values and the key's two copies, rounded up.
pub const ENTRY_OVERHEAD: u64 = 512;

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
    /// Strong validator of the identity bytes: a hash of the content.
    pub etag: HeaderValue,
    /// Strong validator of the gzip bytes.
    pub gzip_etag: HeaderValue,
    pub content_type: HeaderValue,
    /// `None` under `store = "compressed-only"` when gzip bytes exist.
    pub identity: Option<Bytes>,
    /// Present when the file's extension is listed, it is large enough, and gzip saves
    /// at least 10%.
    pub gzip: Option<Bytes>,
    /// When the entry was last loaded or found unchanged on disk, in milliseconds since
    /// the cache's epoch.
    pub(crate) checked_at_ms: AtomicU64,
}

impl CachedFile {
    /// Bytes this entry counts against the budget.
    pub fn cost(&self) -> u64 {
        let stored =
            self.identity.as_ref().map_or(0, Bytes::len) + self.gzip.as_ref().map_or(0, Bytes::len);
        stored as u64 + ENTRY_OVERHEAD + 2 * self.key.len() as u64
    }

    /// Whether responses for this file depend on Accept-Encoding.
    pub fn varies(&self) -> bool {
        self.gzip.is_some()
    }

    pub(crate) fn mark_checked(&self, now_ms: u64) {
        self.checked_at_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn checked_at_ms(&self) -> u64 {
        self.checked_at_ms.load(Ordering::Relaxed)
    }
}

/// A least-recently-used map bounded by bytes.
#[derive(Debug)]
pub struct ByteLru {
    entries: LruCache<String, Arc<CachedFile>>,
    bytes: u64,
    budget: u64,
    /// Identity bytes of the cached files that have gzip bytes, and what gzip saves on
    /// them, for the compression ratio.
    compressible_bytes: u64,
    gzip_saved_bytes: u64,
}

impl ByteLru {
    pub fn new(budget: u64) -> Self {
        ByteLru {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
            compressible_bytes: 0,
            gzip_saved_bytes: 0,
        }
    }

    /// Looks an entry up and marks it recently used.
    pub fn get(&mut self, key: &str) -> Option<Arc<CachedFile>> {
        self.entries.get(key).cloned()
    }

    /// Looks an entry up without touching its recency.
    pub fn peek(&self, key: &str) -> Option<Arc<CachedFile>> {
        self.entries.peek(key).cloned()
    }

    /// Inserts (or replaces) an entry, evicting least recently used ones until it fits.
    /// Answers how many entries were evicted, or `None` when the entry alone exceeds the
    /// budget (it is then not cached, and nothing is evicted for it).
    pub fn insert(&mut self, file: Arc<CachedFile>) -> Option<u64> {
        let cost = file.cost();
        if cost > self.budget {
            self.remove(&file.key);
            return None;
        }
        self.remove(&file.key);
        let mut evicted = 0;
        while self.bytes + cost > self.budget {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.account(&old, false);
            evicted += 1;
        }
        self.account(&file, true);
        self.entries.put(file.key.clone(), file);
        Some(evicted)
    }

    /// Changes the budget, evicting least recently used entries until the held bytes fit;
    /// answers how many were evicted.
    pub fn set_budget(&mut self, budget: u64) -> u64 {
        self.budget = budget;
        let mut evicted = 0;
        while self.bytes > self.budget {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.account(&old, false);
            evicted += 1;
        }
        evicted
    }

    /// Drops an entry; answers whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.entries.pop(key) {
            Some(old) => {
                self.account(&old, false);
                true
            }
            None => false,
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.compressible_bytes = 0;
        self.gzip_saved_bytes = 0;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes saved by gzip over the identity bytes of cached compressible files.
    pub fn compression_ratio(&self) -> f64 {
        if self.compressible_bytes == 0 {
            0.0
        } else {
            self.gzip_saved_bytes as f64 / self.compressible_bytes as f64
        }
    }

    fn account(&mut self, file: &CachedFile, added: bool) {
        let cost = file.cost();
        let (compressible, saved) = match &file.gzip {
            Some(gzip) => (file.len, file.len.saturating_sub(gzip.len() as u64)),
            None => (0, 0),
        };
        if added {
            self.bytes += cost;
            self.compressible_bytes += compressible;
            self.gzip_saved_bytes += saved;
        } else {
            self.bytes -= cost;
            self.compressible_bytes -= compressible;
            self.gzip_saved_bytes -= saved;
        }
    }
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
            etag: HeaderValue::from_static("\"e\""),
            gzip_etag: HeaderValue::from_static("\"g\""),
            content_type: HeaderValue::from_static("text/plain"),
            identity: Some(Bytes::from(vec![b'x'; identity])),
            gzip: gzip.map(|n| Bytes::from(vec![b'z'; n])),
            checked_at_ms: AtomicU64::new(0),
        })
    }

    fn cost(identity: u64, key: &str) -> u64 {
        identity + ENTRY_OVERHEAD + 2 * key.len() as u64
    }

    #[test]
    fn byte_lru_evicts_least_recently_used_until_it_fits() {
        let mut lru = ByteLru::new(3 * cost(1000, "a"));
        for key in ["a", "b", "c"] {
            assert_eq!(lru.insert(file(key, 1000, None)), Some(0));
        }
        assert_eq!(lru.bytes(), 3 * cost(1000, "a"));
        lru.get("a"); // b is now the least recently used
        assert_eq!(lru.insert(file("d", 1000, None)), Some(1));
        assert!(lru.peek("b").is_none());
        assert!(lru.peek("a").is_some() && lru.peek("c").is_some() && lru.peek("d").is_some());
        assert!(lru.bytes() <= lru.budget());
    }

    #[test]
    fn byte_lru_large_entry_evicts_several() {
        let mut lru = ByteLru::new(4 * cost(1000, "a"));
        for key in ["a", "b", "c", "d"] {
            lru.insert(file(key, 1000, None));
        }
        // Two 1000-byte entries make room for one of 2500 bytes.
        assert_eq!(lru.insert(file("big", 2500, None)), Some(2));
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
        assert_eq!(lru.insert(file("huge", 5000, None)), None);
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
}
