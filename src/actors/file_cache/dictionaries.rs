//! The file cache's part in compression dictionaries (RFC 9842): training the site
//! dictionary (at the first start, and again once enough cached pages changed on disk),
//! keeping asset versions as dictionaries, keeping responses compressed against a
//! dictionary in their entries, and counting the dictionaries against the budget. The
//! registry itself (`crate::dictionary::Dictionaries`) lives in the state the actor shares
//! with the request handlers, so a restart of the actor keeps the dictionaries clients
//! hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use super::stats::CacheCounters;
use super::store::{CachedFile, DictEncoded, Insert};
use super::{FileCache, identity_of};

/// How often the actor checks whether enough cached pages changed on disk to train the
/// site dictionary again.
pub(super) const DICTIONARY_CHECK: Duration = Duration::from_secs(5);

/// Changed pages that call for a new site dictionary: a tenth of the pages sampled, at
/// least this many.
pub(super) const DICTIONARY_REBUILD_MIN_CHANGES: u64 = 20;

/// Keeps `encoded` (`file` compressed against a dictionary for a request) in the entry,
/// in place of the one it holds unless that one was made with the current site
/// dictionary and this one was not. Sent by the static handler, answered by nothing;
/// ignored when the entry changed since.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeepDictEncoded {
    pub file: Arc<CachedFile>,
    pub encoded: DictEncoded,
}

/// Keeps the identity bytes of `file`, a version of an asset matching `pattern`
/// (`static_files.dictionary_assets`), as a dictionary for its next version. Sent by
/// the static handler, answered by nothing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddAssetDictionary {
    pub file: Arc<CachedFile>,
    pub pattern: String,
}

impl FileCache {
    /// Trains the site dictionary on the blocking pool, unless dictionaries are off or a
    /// training runs.
    pub(super) fn train_site_dictionary(&mut self, ctx: &mut Context<Self>) {
        let shared = &self.reader.shared;
        if shared.opts.dictionaries.is_empty() || self.training {
            return;
        }
        self.training = true;
        self.changes_at_training = shared
            .counters
            .pages_changed
            .load(std::sync::atomic::Ordering::Relaxed);
        let reader = self.reader.clone();
        let started = Instant::now();
        let task = actix_rt::task::spawn_blocking(move || {
            let shared = &reader.shared;
            let samples = crate::dictionary::sample_pages(
                &shared.root,
                crate::dictionary::SAMPLE_FILES,
                shared.opts.serve_hidden,
            );
            let bytes = crate::dictionary::train(&samples, shared.opts.dictionary_size)?;
            let (sampled, pages) = (samples.sizes.len(), samples.pages);
            drop(samples);
            let mut dictionary = crate::dictionary::Dictionary::new(
                Bytes::from(bytes),
                crate::dictionary::Source::Site { files: sampled },
            );
            // Its own download goes out compressed, at the stored levels.
            if let Ok(mut compressor) = shared.codecs.compressor() {
                let levels = shared.codecs.stored_levels();
                for &coding in &shared.opts.encodings {
                    if let Ok(encoded) =
                        compressor.encode(coding, levels.of(coding), &dictionary.bytes)
                        && encoded.len() < dictionary.bytes.len()
                    {
                        dictionary.encoded.push((coding, Bytes::from(encoded)));
                    }
                }
            }
            Some((dictionary, pages))
        });
        ctx.spawn(task.into_actor(self).map(move |joined, cache, _| {
            cache.training = false;
            let shared = &cache.reader.shared;
            match joined.ok().flatten() {
                Some((dictionary, pages)) => {
                    let (hash, len) = (dictionary.hex(), dictionary.bytes.len());
                    cache.sampled = match &dictionary.source {
                        crate::dictionary::Source::Site { files } => *files as u64,
                        crate::dictionary::Source::Asset { .. } => 0,
                    };
                    CacheCounters::add(&shared.counters.dictionary_builds, 1);
                    if shared.dictionaries.set_site(dictionary) {
                        log::info!(
                            "file cache: site dictionary {hash} ({len} bytes from {} of {pages} pages) in {:?}",
                            cache.sampled,
                            started.elapsed()
                        );
                    }
                    cache.count_dictionaries();
                }
                None => {
                    CacheCounters::add(&shared.counters.dictionary_build_failures, 1);
                    log::info!("file cache: no site dictionary (no HTML pages under the root)");
                }
            }
        }));
    }

    /// Trains the site dictionary again once enough cached pages changed on disk.
    pub(super) fn check_site_changes(&mut self, ctx: &mut Context<Self>) {
        let changed = self
            .reader
            .shared
            .counters
            .pages_changed
            .load(std::sync::atomic::Ordering::Relaxed)
            - self.changes_at_training;
        if changed >= (self.sampled / 10).max(DICTIONARY_REBUILD_MIN_CHANGES) {
            log::info!("file cache: {changed} pages changed; training the site dictionary again");
            self.train_site_dictionary(ctx);
        }
    }

    /// Counts the dictionaries' bytes against the budget.
    pub(super) fn count_dictionaries(&mut self) {
        let bytes = self.reader.shared.dictionaries.bytes();
        let evicted = self.reader.store().set_dictionary_bytes(bytes);
        CacheCounters::add(&self.reader.shared.counters.evictions, evicted);
    }
}

impl Handler<KeepDictEncoded> for FileCache {
    type Result = ();

    fn handle(&mut self, message: KeepDictEncoded, _: &mut Context<Self>) {
        let KeepDictEncoded { file, mut encoded } = message;
        let shared = &self.reader.shared;
        // Into the cache's arena outside the lock, as every kept form: an evicted one's
        // pages go back at once, and the arena's overhead is measured and counted.
        encoded.bytes = crate::alloc::into_cache_arena(encoded.bytes);
        let site = shared.dictionaries.site().map(|site| site.hash);
        let mut store = self.reader.store();
        let Some(current) = store.peek(&file.key).filter(|f| f.digest == file.digest) else {
            return;
        };
        let keep = match &current.dictionary {
            None => true,
            Some(held) => {
                held.hash == encoded.hash
                    || site != Some(held.hash)
                    || shared.dictionaries.get(&held.hash).is_none()
            }
        };
        if !keep {
            return;
        }
        let mut replaced = current.with_bytes(current.identity.clone(), current.encoded.clone());
        replaced.dictionary = Some(encoded);
        replaced.identity_copy = current.identity_copy;
        replaced.building.store(
            current.building.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let Insert::Admitted { evicted } = store.insert(Arc::new(replaced)) {
            CacheCounters::add(&shared.counters.evictions, evicted);
        }
    }
}

impl Handler<AddAssetDictionary> for FileCache {
    type Result = ();

    fn handle(&mut self, message: AddAssetDictionary, _: &mut Context<Self>) {
        let AddAssetDictionary { file, pattern } = message;
        let shared = &self.reader.shared;
        let dictionaries = &shared.dictionaries;
        if dictionaries.has_asset(&file.key, file.digest) {
            return;
        }
        // A compressed-only entry is decoded (once per version: it is kept from then on).
        let identity = match identity_of(&file, &shared.codecs) {
            Ok(identity) => identity,
            Err(error) => {
                log::warn!("file cache: {} not kept as a dictionary: {error}", file.key);
                return;
            }
        };
        dictionaries.add_asset(crate::dictionary::Dictionary::new(
            identity,
            crate::dictionary::Source::Asset {
                key: file.key.clone(),
                pattern,
                digest: file.digest,
            },
        ));
        self.count_dictionaries();
    }
}
