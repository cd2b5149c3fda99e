//! Content-derived validators for streamed files: files over `max_file_size` are not
//! cached, so their bytes are hashed once, on the blocking pool and never on a request's
//! behalf, and the digest is kept until the file changes (its length or modification
//! time). A streamed file's ETag is then the same strong tag a cached copy of the same
//! bytes would have (`"<xxh3>"`), whatever the file's modification time: replicas with
//! their own copies of a site agree, so a conditional request or a Range resume that
//! lands on another replica still gets 304 or 206.
//!
//! Until its digest is known a streamed file has a weak ETag built from its length and
//! modification time (`W/"<len>-<mtime>"`): a weak tag revalidates (`If-None-Match`) on
//! the replica that gave it, and never matches `If-Range` or `If-Match`, which need
//! strong validators, so a resume answers the whole file instead of a wrong piece.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use actix_web::http::header::HeaderValue;
use lru::LruCache;

use super::load::LargeFile;

/// Streamed files whose digests are kept (about 100 bytes each).
const KEPT: usize = 4096;
/// Files hashed at once; others wait for a later request to start theirs.
const HASHING_AT_ONCE: usize = 2;
/// Bytes read per call while hashing.
const READ_CHUNK: usize = 256 * 1024;

/// What a digest was taken of: the file's length and modification time then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
}

/// The digests of streamed files, and the hashes running.
#[derive(Debug)]
pub(super) struct LargeDigests {
    kept: Mutex<LruCache<PathBuf, (Version, HeaderValue)>>,
    hashing: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Default for LargeDigests {
    fn default() -> Self {
        LargeDigests {
            kept: Mutex::new(LruCache::new(NonZeroUsize::new(KEPT).expect("non-zero"))),
            hashing: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

impl LargeDigests {
    /// The strong ETag of `large`'s bytes when they were hashed since the file last
    /// changed. Otherwise `None`, and a hash of the file starts on the blocking pool
    /// (unless one runs for it already, or too many run); the caller answers with the
    /// file's weak ETag meanwhile.
    pub(super) fn etag(self: &Arc<Self>, large: &LargeFile) -> Option<HeaderValue> {
        let version = Version {
            len: large.len,
            modified: large.modified,
        };
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&large.path)
            .filter(|(of, _)| *of == version)
            .map(|(_, etag)| etag.clone());
        if kept.is_none() {
            self.start_hashing(&large.path, version);
        }
        kept
    }

    fn start_hashing(self: &Arc<Self>, path: &Path, version: Version) {
        {
            let mut hashing = self.hashing.lock().unwrap_or_else(PoisonError::into_inner);
            if hashing.len() >= HASHING_AT_ONCE || !hashing.insert(path.to_owned()) {
                return;
            }
        }
        let (digests, path) = (Arc::clone(self), path.to_owned());
        actix_rt::task::spawn_blocking(move || {
            match hash_unchanged(&path, version) {
                Ok(Some(etag)) => {
                    digests
                        .kept
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .put(path.clone(), (version, etag));
                }
                // It changed while being read: the next request hashes the new version.
                Ok(None) => {}
                Err(error) => log::warn!("file cache: hashing {} failed: {error}", path.display()),
            }
            digests
                .hashing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&path);
        });
    }
}

/// The strong ETag of the file at `path`, if it is still `version` after it was read
/// whole (so the digest is of that version's bytes).
fn hash_unchanged(path: &Path, version: Version) -> io::Result<Option<HeaderValue>> {
    let mut file = fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0; READ_CHUNK];
    let mut read = 0u64;
    loop {
        match file.read(&mut buffer)? {
            0 => break,
            n => {
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
        }
    }
    let meta = file.metadata()?;
    let now = Version {
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    if now != version || read != version.len {
        return Ok(None);
    }
    Ok(Some(strong_etag(hasher.digest())))
}

/// The strong ETag of bytes whose xxh3 digest is `digest`, as cached files have it.
pub(super) fn strong_etag(digest: u64) -> HeaderValue {
    HeaderValue::try_from(format!("\"{digest:016x}\"")).expect("hex digits are visible ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_of_the_version_it_was_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let meta = fs::metadata(&path).unwrap();
        let version = Version {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let etag = hash_unchanged(&path, version).unwrap().unwrap();
        assert_eq!(etag, strong_etag(xxhash_rust::xxh3::xxh3_64(&bytes)));
        let older = Version {
            len: meta.len() - 1,
            ..version
        };
        assert_eq!(
            hash_unchanged(&path, older).unwrap(),
            None,
            "a changed file is not kept"
        );
    }
}
