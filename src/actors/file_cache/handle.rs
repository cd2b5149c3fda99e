//! The file cache's wiring: [`FileCacheHandle::start`] opens the root and makes the
//! supervised child, and the [`FileCacheHandle`] it answers is everything the rest of
//! leanserve holds of the cache: hits read through the [`FileCacheReader`], misses
//! through the miss protocol ([`FileCacheHandle::load`]), offers and administration as
//! messages to whichever incarnation of the actor runs.
//!
//! The miss protocol, in order:
//!
//! 1. Claim the key ([`FileCacheReader::claim`]). Someone else loading it: wait for what
//!    they find.
//! 2. Leading: try the load on this thread with calls that cannot block
//!    ([`FileCacheReader::load_now`]); when that answers, complete the claim, which
//!    answers everyone waiting.
//! 3. Otherwise hand the claim to the actor ([`StartLoad`]), which loads on the blocking
//!    pool. The claim travels in the message: if no incarnation handles it (a restart, a
//!    cancelled call), dropping it answers everyone waiting with
//!    [`LoadError::Interrupted`].
//! 4. A load lost to a restart is tried again, here or by the next incarnation, until the
//!    actor's call timeout: a restart costs a request some latency, not an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{
    AddAssetDictionary, BuildEncodings, CacheStats, CachedFile, Claim, ClearCache, DictEncoded,
    FileCache, FileCacheReader, Found, GetCacheItemCount, GetCacheSize, GetCacheStats,
    KeepDictEncoded, KeepEncoded, KeepIdentity, LoadError, SetCacheBudget, StartLoad,
};
use crate::codec::Codecs;
use crate::config::StaticFileOpts;
use crate::http::encoding::Coding;
use crate::supervisor::{CallError, ChildSpec, Handle};

/// How long a load lost to a restart waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(5);

/// The file cache as the rest of leanserve holds it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct FileCacheHandle {
    actor: Handle<FileCache>,
    reader: FileCacheReader,
}

impl FileCacheHandle {
    /// Opens the root in `opts`, which the runtime has checked is a directory (on the
    /// blocking pool: it may be a network mount, and a host may start the runtime on a
    /// thread that serves), and makes the `file_cache` child; fails when the root cannot
    /// be opened.
    pub(crate) async fn start(
        opts: StaticFileOpts,
        codecs: Codecs,
    ) -> std::io::Result<(ChildSpec, FileCacheHandle)> {
        let reader =
            actix_web::rt::task::spawn_blocking(move || FileCacheReader::new(opts, codecs))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        Ok(FileCacheHandle::child(reader))
    }

    /// The `file_cache` child over an opened store.
    pub(crate) fn child(reader: FileCacheReader) -> (ChildSpec, FileCacheHandle) {
        let store = reader.clone();
        let (spec, actor) = ChildSpec::worker("file_cache", move || FileCache::new(store.clone()));
        (spec, FileCacheHandle { actor, reader })
    }

    /// The read handle: lookups of fresh entries, counters, statistics without a
    /// message.
    pub(crate) fn reader(&self) -> &FileCacheReader {
        &self.reader
    }

    /// The actor's handle, for the unit tests' messages to it.
    #[cfg(test)]
    pub(crate) fn actor(&self) -> &Handle<FileCache> {
        &self.actor
    }

    /// Loads (or revalidates) the file at `key`, or joins its load in flight: on this
    /// thread when that needs no waiting, else on the blocking pool through the actor,
    /// retrying a load lost to a restart (the module doc's miss protocol).
    pub(crate) async fn load(&self, key: String) -> Result<Result<Found, LoadError>, CallError> {
        let deadline = tokio::time::Instant::now() + self.actor.call_timeout();
        loop {
            let attempt = self.load_once(&key).await;
            let lost = matches!(
                attempt,
                Ok(Err(LoadError::Interrupted)) | Err(CallError::Crashed { .. })
            );
            if !lost || tokio::time::Instant::now() >= deadline {
                return attempt;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn load_once(&self, key: &str) -> Result<Result<Found, LoadError>, CallError> {
        let receiver = match self.reader.claim(key) {
            Claim::Wait(receiver) => receiver,
            Claim::Lead(claim) => {
                if let Some(found) = self.reader.load_now(key) {
                    let result = Ok(found);
                    claim.complete(&result);
                    return Ok(result);
                }
                self.actor.send(StartLoad { claim }).await?
            }
        };
        Ok(receiver.await.unwrap_or(Err(LoadError::Interrupted)))
    }

    /// Asks for the stored-level representations a cached file asked for (fire and
    /// forget).
    pub(crate) fn build_encodings(&self, key: String) {
        self.actor.do_send(BuildEncodings { key });
    }

    /// Offers the bytes of `file` compressed in `coding` for a request, as its first
    /// compressed form (`None`: compression does not pay for this file); fire and
    /// forget, the cache may decline.
    pub(crate) fn keep_encoded(&self, file: Arc<CachedFile>, coding: Coding, bytes: Option<Bytes>) {
        self.actor.do_send(KeepEncoded {
            file,
            coding,
            bytes,
        });
    }

    /// Offers `file` compressed against a dictionary for a request (fire and forget: the
    /// cache may decline).
    pub(crate) fn keep_dict_encoded(&self, file: Arc<CachedFile>, encoded: DictEncoded) {
        self.actor.do_send(KeepDictEncoded { file, encoded });
    }

    /// Offers `file`, a version of an asset matching `pattern`, as a dictionary for its
    /// next version (fire and forget).
    pub(crate) fn add_asset_dictionary(&self, file: Arc<CachedFile>, pattern: String) {
        self.actor.do_send(AddAssetDictionary { file, pattern });
    }

    /// Offers an identity copy of a compressed-only entry that identity clients read
    /// often (fire and forget: the cache may decline).
    pub(crate) fn keep_identity(&self, file: Arc<CachedFile>, identity: Bytes) {
        self.actor.do_send(KeepIdentity { file, identity });
    }

    /// The bytes the cache holds (stored bytes plus per-entry overhead).
    pub(crate) async fn size(&self) -> Result<u64, CallError> {
        self.actor.send(GetCacheSize).await
    }

    /// How many files the cache holds.
    pub(crate) async fn item_count(&self) -> Result<usize, CallError> {
        self.actor.send(GetCacheItemCount).await
    }

    /// The cache's statistics.
    pub(crate) async fn stats(&self) -> Result<CacheStats, CallError> {
        self.actor.send(GetCacheStats).await
    }

    /// Changes the byte budget (the tuner's cache knob); answers how many files were
    /// evicted to fit.
    pub(crate) async fn set_budget(&self, bytes: u64) -> Result<u64, CallError> {
        self.actor.send(SetCacheBudget { bytes }).await
    }

    /// Empties the cache; answers the bytes it held.
    pub(crate) async fn clear(&self) -> Result<u64, CallError> {
        self.actor.send(ClearCache).await
    }
}
