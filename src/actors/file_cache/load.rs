//! Reading files from disk for the cache, and compressing them. Everything here blocks
//! and runs on the blocking pool, never on an actor's or a worker's thread (a miss the
//! kernel can answer without waiting is read on the worker by `nowait.rs` instead, into
//! the same [`entry`]).
//!
//! A path is resolved under the root, canonicalised, and refused (as not found) when it
//! resolves outside the canonical root, so symlinks cannot lead out. A file up to
//! `max_file_size` is read whole and hashed for its ETag; a load never compresses, so a
//! miss costs a read and a hash. A precompressed sidecar (`file.gz`, not older than
//! `file`) is read with it and becomes the gzip representation at once. Otherwise a file
//! whose extension is listed and that is at least `min_compress_size` is marked as
//! expecting gzip, and the cache actor has [`compress`] build its gzip representation in
//! the background; the gzip bytes are kept only when they save at least 10%. Larger files
//! are described, not read: the caller streams them.
//!
//! [`compress`] takes its compressor from the `gzip` pool; when none comes free within
//! the pool's acquire timeout the file stays without gzip (the pool counts the timeout)
//! until a client that takes gzip asks for it again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::SystemTime;

use super::store::CachedFile;
use crate::alloc::CacheBuffer;
use crate::codec::{Codecs, worth_it};
use crate::config::{StaticFileOpts, Store};
use actix_web::http::header::HeaderValue;
use bytes::Bytes;

/// What a load found at a path.
#[derive(Clone, Debug)]
pub enum Found {
    /// A file, read whole, ready to cache and serve.
    File(Arc<CachedFile>),
    /// The cached entry passed in is still what is on disk.
    Unchanged(Arc<CachedFile>),
    /// A file too large to cache: serve it by streaming.
    Large(LargeFile),
    /// A directory: its index file is served.
    Directory,
    /// Nothing servable there (missing, not a regular file, or outside the root).
    Missing,
}

/// A file streamed from disk instead of cached.
#[derive(Clone, Debug)]
pub struct LargeFile {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub last_modified: Option<HeaderValue>,
    /// Weak, from length and modification time: its bytes are hashed off the request
    /// path, and the strong tag replaces this one once they are (see `digests.rs`).
    pub etag: HeaderValue,
    pub content_type: HeaderValue,
}

/// Canonicalises the root once, at start.
pub fn canonical_root(root: &Path) -> io::Result<PathBuf> {
    fs::canonicalize(root)
}

/// Loads `key` (a relative path from `http::path`) under `root` (canonical).
/// `existing` is the cached entry, if any, for revalidation.
pub fn load(
    root: &Path,
    key: &str,
    existing: Option<Arc<CachedFile>>,
    opts: &StaticFileOpts,
    now_ms: u64,
) -> io::Result<Found> {
    let path = root.join(key);
    let canonical = match fs::canonicalize(&path) {
        Ok(canonical) => canonical,
        Err(error) if is_missing(&error) => return Ok(Found::Missing),
        Err(error) => return Err(error),
    };
    if !canonical.starts_with(root) {
        log::warn!("refused {key:?}: it resolves outside the static root");
        return Ok(Found::Missing);
    }
    let meta = fs::metadata(&canonical)?;
    if meta.is_dir() {
        return Ok(Found::Directory);
    }
    if !meta.is_file() {
        return Ok(Found::Missing);
    }
    let modified = meta.modified().ok();
    if let Some(existing) = existing
        && existing.len == meta.len()
        && existing.modified == modified
    {
        existing.mark_checked(now_ms);
        return Ok(Found::Unchanged(existing));
    }
    if meta.len() > opts.max_file_size {
        let etag = format!("W/\"{:x}-{:x}\"", meta.len(), unix_nanos(modified));
        return Ok(Found::Large(LargeFile {
            path: canonical,
            len: meta.len(),
            modified,
            last_modified: modified.and_then(http_date),
            etag: header(etag),
            content_type: content_type(key),
        }));
    }
    let expects_gzip = wants_gzip(key, meta.len(), opts);
    let sidecar = if expects_gzip {
        fresh_sidecar(&canonical, modified)
    } else {
        None
    };
    let identity = read_whole(&canonical, meta.len())?;
    let gzip = match sidecar {
        Some(sidecar) => worth_it(fs::read(&sidecar)?, identity.len()),
        None => None,
    };
    Ok(Found::File(Arc::new(entry(
        key,
        identity,
        modified,
        gzip,
        expects_gzip,
        opts,
        now_ms,
    ))))
}

/// The bytes of the file at `path`, `len` long by its metadata, read into a
/// [`CacheBuffer`] (whatever length it has by the time it is read).
fn read_whole(path: &Path, len: u64) -> io::Result<Bytes> {
    let mut file = fs::File::open(path)?;
    let mut buffer = CacheBuffer::for_read(usize::try_from(len).map_err(io::Error::other)?);
    let mut filled = 0;
    loop {
        let spare = &mut buffer.as_mut_slice()[filled..];
        if spare.is_empty() {
            break;
        }
        match file.read(spare) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    buffer.truncate(filled);
    let mut more = Vec::new();
    if filled as u64 == len && file.read_to_end(&mut more)? > 0 {
        // It grew since its metadata was read: all of it, in one piece.
        let mut whole = buffer.freeze().to_vec();
        whole.extend_from_slice(&more);
        return Ok(Bytes::from(whole));
    }
    Ok(buffer.freeze())
}

/// The cache entry for the file at `key` read as `identity` (and a sidecar's `gzip`
/// bytes, if any), hashed for its validators.
pub(super) fn entry(
    key: &str,
    identity: Bytes,
    modified: Option<SystemTime>,
    gzip: Option<Bytes>,
    expects_gzip: bool,
    opts: &StaticFileOpts,
    now_ms: u64,
) -> CachedFile {
    let digest = xxhash_rust::xxh3::xxh3_64(&identity);
    let keep_identity = gzip.is_none() || opts.store == Store::Both;
    CachedFile {
        key: key.to_owned(),
        len: identity.len() as u64,
        modified,
        last_modified: modified.and_then(http_date),
        etag: super::digests::strong_etag(digest),
        gzip_etag: header(format!("\"{digest:016x}-gz\"")),
        content_type: content_type(key),
        identity: keep_identity.then_some(identity),
        gzip_pending: expects_gzip && gzip.is_none(),
        gzip,
        gzip_asked: AtomicBool::new(false),
        identity_copy: false,
        inflations: AtomicU32::new(0),
        checked_at_ms: AtomicU64::new(now_ms),
    }
}

/// `file` (loaded with its gzip pending) with its gzip representation built, when gzip
/// saves at least 10%; under `store = "compressed-only"` the identity bytes are then
/// dropped. Without a worthwhile gzip, the same bytes with nothing pending.
pub fn compress(file: &CachedFile, store: Store, codecs: &Codecs) -> io::Result<CachedFile> {
    let identity = file
        .identity
        .clone()
        .ok_or_else(|| io::Error::other("no identity bytes to compress"))?;
    let mut compressor = codecs.compressor().map_err(io::Error::other)?;
    let gzip =
        worth_it(compressor.gzip(&identity)?, identity.len()).map(crate::alloc::into_cache_arena);
    drop(compressor);
    let keep_identity = gzip.is_none() || store == Store::Both;
    Ok(file.with_bytes(keep_identity.then_some(identity), gzip, false))
}

/// Whether a file of this name and size is worth a gzip representation.
pub(super) fn wants_gzip(key: &str, len: u64, opts: &StaticFileOpts) -> bool {
    opts.enable_compression
        && len >= opts.min_compress_size
        && extension(key).is_some_and(|ext| opts.compress_extensions.contains(&ext))
}

/// The path of `path.gz` when it is a file not older than `path`.
fn fresh_sidecar(path: &Path, modified: Option<SystemTime>) -> Option<PathBuf> {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".gz");
    let sidecar = PathBuf::from(sidecar);
    let meta = fs::metadata(&sidecar).ok().filter(|meta| meta.is_file())?;
    match (meta.modified().ok(), modified) {
        (Some(gz), Some(original)) if gz >= original => Some(sidecar),
        _ => None,
    }
}

/// Reads `len` bytes at `offset` of a file: one chunk of a streamed response.
pub fn read_chunk(file: &mut fs::File, offset: u64, len: usize) -> io::Result<Bytes> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut buffer = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    buffer.truncate(filled);
    Ok(Bytes::from(buffer))
}

/// Errors that mean "there is no such file" for a client: a missing path, a path through
/// a file (`/index.html/x`), a name too long for the filesystem, a symlink loop.
fn is_missing(error: &io::Error) -> bool {
    /// ELOOP on Linux (`io::ErrorKind::FilesystemLoop` is not stable yet).
    const ELOOP: i32 = 40;
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename
    ) || (cfg!(target_os = "linux") && error.raw_os_error() == Some(ELOOP))
}

fn extension(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    let (_, ext) = name.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// `Content-Type` from the extension, with `charset=utf-8` for text.
fn content_type(key: &str) -> HeaderValue {
    header(crate::http::media::content_type(key))
}

/// `Last-Modified` for an mtime, or `None` for one HTTP dates cannot express (before
/// 1970 or after 9999; `httpdate` would panic on those).
fn http_date(time: SystemTime) -> Option<HeaderValue> {
    let seconds = time.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    (seconds < 253_402_300_800).then(|| header(httpdate::fmt_http_date(time)))
}

fn unix_nanos(time: Option<SystemTime>) -> u128 {
    time.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// A header value from text this module built (always visible ASCII).
fn header(text: String) -> HeaderValue {
    HeaderValue::try_from(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn codecs() -> Codecs {
        Codecs::direct()
    }

    fn opts(store: Store) -> StaticFileOpts {
        StaticFileOpts {
            store,
            ..crate::config::Opts::default().static_files
        }
    }

    fn site() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = canonical_root(dir.path()).unwrap();
        (dir, root)
    }

    fn file(found: Found) -> Arc<CachedFile> {
        match found {
            Found::File(file) => file,
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn load_reads_without_compressing_and_compress_builds_gzip_for_either_store() {
        let (_dir, root) = site();
        let css = "body { color: teal; margin: 0 auto; }\n".repeat(200);
        fs::write(root.join("site.css"), &css).unwrap();
        for store in [Store::Both, Store::CompressedOnly] {
            let loaded = file(load(&root, "site.css", None, &opts(store), 0).unwrap());
            assert_eq!(loaded.identity.as_deref(), Some(css.as_bytes()));
            assert!(loaded.gzip.is_none() && loaded.gzip_pending && loaded.varies());
            assert_eq!(loaded.content_type, "text/css; charset=utf-8");
        }
        let loaded = file(load(&root, "site.css", None, &opts(Store::Both), 0).unwrap());
        let both = compress(&loaded, Store::Both, &codecs()).unwrap();
        assert_eq!(both.identity.as_deref(), Some(css.as_bytes()));
        let gzip = both.gzip.clone().expect("repetitive css compresses");
        assert!(gzip.len() * 10 < css.len());
        assert_eq!(codecs().inflate(&gzip, both.len).unwrap(), css.as_bytes());
        assert!(!both.gzip_pending && both.varies());
        assert_eq!(
            (&both.etag, &both.modified),
            (&loaded.etag, &loaded.modified)
        );
        assert_ne!(both.etag, both.gzip_etag);

        let lean = compress(&loaded, Store::CompressedOnly, &codecs()).unwrap();
        assert!(lean.identity.is_none() && lean.gzip == both.gzip);
        assert_eq!(lean.etag, both.etag, "the ETag depends on content only");
        assert!(lean.cost() < both.cost() && lean.cost() < loaded.cost());
    }

    #[test]
    fn load_skips_gzip_for_small_unlisted_or_incompressible_files() {
        let (_dir, root) = site();
        fs::write(root.join("tiny.css"), "a{}").unwrap();
        fs::write(root.join("photo.png"), vec![7u8; 4096]).unwrap();
        let noise: Vec<u8> = (0..8192u64)
            .flat_map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()).to_le_bytes())
            .collect();
        fs::write(root.join("noise.txt"), &noise).unwrap();
        for key in ["tiny.css", "photo.png"] {
            let entry = file(load(&root, key, None, &opts(Store::CompressedOnly), 0).unwrap());
            assert!(entry.gzip.is_none() && !entry.gzip_pending, "{key}");
            assert!(!entry.varies() && entry.identity.is_some(), "{key}");
        }
        // Listed and large enough, so it is tried; gzip saves nothing and is not kept.
        let noise = file(load(&root, "noise.txt", None, &opts(Store::CompressedOnly), 0).unwrap());
        assert!(noise.gzip_pending);
        let tried = compress(&noise, Store::CompressedOnly, &codecs()).unwrap();
        assert!(tried.gzip.is_none() && !tried.gzip_pending && !tried.varies());
        assert!(
            tried.identity.is_some(),
            "identity kept when there is no gzip"
        );
    }

    #[test]
    fn load_prefers_a_fresh_sidecar_and_ignores_a_stale_one() {
        let (_dir, root) = site();
        let text = "x".repeat(5000);
        fs::write(root.join("a.txt"), &text).unwrap();
        let mut sidecar = GzEncoder::new(Vec::new(), Compression::fast());
        sidecar.write_all(text.as_bytes()).unwrap();
        let sidecar = sidecar.finish().unwrap();
        fs::write(root.join("a.txt.gz"), &sidecar).unwrap();
        let entry = file(load(&root, "a.txt", None, &opts(Store::Both), 0).unwrap());
        assert_eq!(entry.gzip.as_deref(), Some(&sidecar[..]));
        assert!(
            !entry.gzip_pending,
            "a fresh sidecar is the gzip representation at once"
        );

        // Make the original newer than the sidecar: the sidecar is stale.
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let entry = file(load(&root, "a.txt", None, &opts(Store::Both), 0).unwrap());
        assert!(entry.gzip.is_none() && entry.gzip_pending);
        let entry = compress(&entry, Store::Both, &codecs()).unwrap();
        assert_ne!(entry.gzip.as_deref(), Some(&sidecar[..]));
        assert_eq!(
            codecs()
                .inflate(entry.gzip.as_ref().unwrap(), entry.len)
                .unwrap(),
            text.as_bytes()
        );
    }

    #[test]
    fn load_revalidates_unchanged_and_reloads_changed_files() {
        let (_dir, root) = site();
        fs::write(root.join("a.txt"), "one").unwrap();
        let first = file(load(&root, "a.txt", None, &opts(Store::Both), 5).unwrap());
        match load(&root, "a.txt", Some(first.clone()), &opts(Store::Both), 9).unwrap() {
            Found::Unchanged(same) => {
                assert!(Arc::ptr_eq(&same, &first) && same.checked_at_ms() == 9)
            }
            other => panic!("{other:?}"),
        }
        fs::write(root.join("a.txt"), "three").unwrap();
        let second =
            file(load(&root, "a.txt", Some(first.clone()), &opts(Store::Both), 10).unwrap());
        assert_eq!(second.identity.as_deref(), Some(&b"three"[..]));
        fs::remove_file(root.join("a.txt")).unwrap();
        assert!(matches!(
            load(&root, "a.txt", Some(second), &opts(Store::Both), 11).unwrap(),
            Found::Missing
        ));
    }

    #[test]
    fn load_describes_large_files_without_reading_them() {
        let (_dir, root) = site();
        fs::write(root.join("big.bin"), vec![1u8; 4096]).unwrap();
        let small_limit = StaticFileOpts {
            max_file_size: 1024,
            ..opts(Store::Both)
        };
        match load(&root, "big.bin", None, &small_limit, 0).unwrap() {
            Found::Large(large) => {
                assert_eq!(large.len, 4096);
                assert!(
                    large.etag.to_str().unwrap().starts_with("W/\"1000-"),
                    "weak, length in hex"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_refuses_symlinks_out_of_the_root_and_special_paths() {
        let (_dir, root) = site();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("link.txt"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linkdir")).unwrap();
        fs::write(root.join("inside.txt"), "ok").unwrap();
        std::os::unix::fs::symlink(root.join("inside.txt"), root.join("alias.txt")).unwrap();
        fs::create_dir(root.join("docs")).unwrap();
        let o = opts(Store::Both);
        assert!(matches!(
            load(&root, "link.txt", None, &o, 0).unwrap(),
            Found::Missing
        ));
        assert!(matches!(
            load(&root, "linkdir/secret.txt", None, &o, 0).unwrap(),
            Found::Missing
        ));
        assert!(matches!(
            load(&root, "alias.txt", None, &o, 0).unwrap(),
            Found::File(_)
        ));
        assert!(matches!(
            load(&root, "docs", None, &o, 0).unwrap(),
            Found::Directory
        ));
        assert!(matches!(
            load(&root, "inside.txt/x", None, &o, 0).unwrap(),
            Found::Missing
        ));
        assert!(matches!(
            load(&root, "missing", None, &o, 0).unwrap(),
            Found::Missing
        ));
        let long_name = "n".repeat(300);
        assert!(matches!(
            load(&root, &long_name, None, &o, 0).unwrap(),
            Found::Missing
        ));
        std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).unwrap();
        assert!(matches!(
            load(&root, "loop", None, &o, 0).unwrap(),
            Found::Missing
        ));
    }

    #[test]
    fn http_date_refuses_times_it_cannot_express() {
        assert_eq!(
            http_date(SystemTime::UNIX_EPOCH).unwrap(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert!(http_date(SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1)).is_none());
        assert!(
            http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(300_000_000_000))
                .is_none()
        );
    }
}
