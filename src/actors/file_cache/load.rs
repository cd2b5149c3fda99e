//! Reading files from disk for the cache, and compressing them. Everything here blocks
//! and runs on the blocking pool, never on an actor's or a worker's thread (a miss the
//! kernel can answer without waiting is read on the worker by `nowait.rs` instead, into
//! the same [`entry`]).
//!
//! A path is resolved under the root, canonicalised, and refused (as not found) when it
//! resolves outside the canonical root, so symlinks cannot lead out. A file up to
//! `max_file_size` is read whole and hashed for its ETag; a load never compresses, so a
//! miss costs a read and a hash. A file whose extension is listed and that is at least
//! `min_compress_size` is marked compressible: the request that finds it compresses it
//! at the quick level for its client (`web/files.rs`), and [`build`] makes the stored
//! level's bytes in the background once it is read again. Compressed bytes are kept only
//! when they save at least 10%. Larger files are described, not read: the caller streams
//! them.
//!
//! Precompressed sidecars (`file.gz`, `file.br`, `file.zst`, for the codings in
//! `static_files.encodings`) are read with the file when they are regular files inside
//! the root and not older than it. Each is decoded and compared with the file first: one
//! that does not decode to the file's bytes is ignored with a warning, never served.
//!
//! [`build`] takes its compressor from the `gzip` pool; when none comes free within the
//! pool's acquire timeout the file keeps what it has (the pool counts the timeout) until
//! it is read again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};
use std::time::SystemTime;

use super::store::{CachedFile, Encoded};
use crate::alloc::CacheBuffer;
use crate::codec::{Codecs, InflateError, worth_it};
use crate::config::{StaticFileOpts, Store};
use crate::http::encoding::Coding;
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
    let compressible = wants_compression(key, meta.len(), opts);
    let sidecars = if compressible {
        fresh_sidecars(root, &canonical, modified, &opts.encodings)
    } else {
        Vec::new()
    };
    let identity = read_whole(&canonical, meta.len())?;
    let digest = xxhash_rust::xxh3::xxh3_64(&identity);
    let mut encoded: [Option<Encoded>; 3] = Default::default();
    for (coding, path) in sidecars {
        if let Some(bytes) = checked_sidecar(&path, coding, &identity) {
            let slot = coding.slot().expect("sidecars are compressed");
            encoded[slot] = Some(Encoded::new(digest, coding, bytes, true));
        }
    }
    Ok(Found::File(Arc::new(entry(
        key,
        identity,
        modified,
        encoded,
        compressible,
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

/// The cache entry for the file at `key` read as `identity` (and a sidecar's
/// `encoded` bytes, if any), hashed for its validators.
pub(super) fn entry(
    key: &str,
    identity: Bytes,
    modified: Option<SystemTime>,
    encoded: [Option<Encoded>; 3],
    compressible: bool,
    opts: &StaticFileOpts,
    now_ms: u64,
) -> CachedFile {
    let digest = xxhash_rust::xxh3::xxh3_64(&identity);
    let has_encoded = encoded.iter().any(Option::is_some);
    let keep_identity = !has_encoded || opts.store == Store::Both;
    CachedFile {
        key: key.to_owned(),
        len: identity.len() as u64,
        modified,
        last_modified: modified.and_then(http_date),
        digest,
        etag: super::digests::strong_etag(digest),
        content_type: content_type(key),
        identity: keep_identity.then_some(identity),
        encoded,
        dictionary: None,
        compressible: compressible || has_encoded,
        asked: Default::default(),
        building: AtomicU8::new(0),
        identity_copy: false,
        inflations: AtomicU32::new(0),
        checked_at_ms: AtomicU64::new(now_ms),
    }
}

/// The identity bytes of `file`: held, or decoded from the compressed form cheapest to
/// decode (gzip, then zstd, then br). Blocking when it decodes.
pub fn identity_of(file: &CachedFile, codecs: &Codecs) -> Result<Bytes, InflateError> {
    if let Some(identity) = &file.identity {
        return Ok(identity.clone());
    }
    let (coding, encoded) = [Coding::Gzip, Coding::Zstd, Coding::Br]
        .into_iter()
        .find_map(|coding| Some((coding, file.encoded(coding)?)))
        .ok_or_else(|| io::Error::other("the entry holds no bytes"))?;
    codecs.decode(coding, &encoded.bytes, file.len)
}

/// `file`'s representations in `codings` compressed at the stored levels; None for a
/// coding whose bytes would not save 10%. Blocking.
pub fn build(
    file: &CachedFile,
    codings: &[Coding],
    codecs: &Codecs,
) -> io::Result<Vec<(Coding, Option<Bytes>)>> {
    let identity = identity_of(file, codecs).map_err(io::Error::other)?;
    let mut compressor = codecs.compressor().map_err(io::Error::other)?;
    let levels = codecs.stored_levels();
    codings
        .iter()
        .map(|&coding| {
            let bytes = compressor.encode(coding, levels.of(coding), &identity)?;
            Ok((coding, worth_it(bytes, identity.len())))
        })
        .collect()
}

/// `file` with `built` (from [`build`] or a request's quick compression) in place:
/// each coding's bytes replace what it held, a coding not worth it leaves it as it was,
/// and a file with no compressed form worth keeping is no longer compressible. Identity
/// bytes are dropped under `store = "compressed-only"` once compressed ones exist,
/// unless they are an identity copy.
pub fn merged(
    file: &CachedFile,
    built: impl IntoIterator<Item = (Coding, Option<Encoded>)>,
    store: Store,
) -> CachedFile {
    let mut encoded = file.encoded.clone();
    // Builds asked for and not done here stay asked for (a build may finish while
    // another coding's request waits in the queue).
    let mut building = file.building.load(std::sync::atomic::Ordering::Relaxed);
    for (coding, bytes) in built {
        let Some(slot) = coding.slot() else { continue };
        building &= !(1 << slot);
        match (bytes, &mut encoded[slot]) {
            // The stored level came out larger (it happens on tiny repetitive files):
            // the smaller bytes stay, as final.
            (Some(bytes), Some(held)) if bytes.bytes.len() > held.bytes.len() => held.stored = true,
            (Some(bytes), slot) => *slot = Some(bytes),
            // The stored level did not pay: what is held stays, as final.
            (None, Some(held)) => held.stored = true,
            (None, None) => {}
        }
    }
    let has_encoded = encoded.iter().any(Option::is_some);
    let keep_identity = !has_encoded || store == Store::Both || file.identity_copy;
    let identity = if keep_identity {
        file.identity.clone()
    } else {
        None
    };
    CachedFile {
        compressible: has_encoded,
        identity_copy: file.identity_copy && identity.is_some(),
        building: AtomicU8::new(building),
        ..file.with_bytes(identity, encoded)
    }
}

/// Whether a file of this name and size is served compressed.
pub(super) fn wants_compression(key: &str, len: u64, opts: &StaticFileOpts) -> bool {
    opts.enable_compression
        && !opts.encodings.is_empty()
        && len >= opts.min_compress_size
        && extension(key).is_some_and(|ext| opts.compress_extensions.contains(&ext))
}

/// The file name suffix of a coding's sidecar.
pub(super) fn sidecar_suffix(coding: Coding) -> &'static str {
    match coding {
        Coding::Gzip => ".gz",
        Coding::Br => ".br",
        Coding::Zstd => ".zst",
        Coding::Identity => "",
    }
}

/// The sidecars of `path` for `codings` that are regular files inside `root` and not
/// older than `path`.
fn fresh_sidecars(
    root: &Path,
    path: &Path,
    modified: Option<SystemTime>,
    codings: &[Coding],
) -> Vec<(Coding, PathBuf)> {
    codings
        .iter()
        .filter_map(|&coding| {
            let mut sidecar = path.as_os_str().to_owned();
            sidecar.push(sidecar_suffix(coding));
            let sidecar = fs::canonicalize(PathBuf::from(sidecar)).ok()?;
            if !sidecar.starts_with(root) {
                log::warn!(
                    "ignored the sidecar {}: it resolves outside the static root",
                    sidecar.display()
                );
                return None;
            }
            let meta = fs::metadata(&sidecar).ok().filter(|meta| meta.is_file())?;
            match (meta.modified().ok(), modified) {
                (Some(side), Some(original)) if side >= original => Some((coding, sidecar)),
                _ => None,
            }
        })
        .collect()
}

/// The bytes of a sidecar when they decode to `identity` and save at least 10%; None,
/// with a warning for a corrupt one, otherwise.
fn checked_sidecar(path: &Path, coding: Coding, identity: &[u8]) -> Option<Bytes> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            log::warn!("ignored the sidecar {}: {error}", path.display());
            return None;
        }
    };
    match Codecs::direct().decode(coding, &bytes, identity.len() as u64) {
        Ok(decoded) if decoded == identity => worth_it(bytes, identity.len()),
        Ok(_) => {
            log::warn!(
                "ignored the sidecar {}: it decodes to other bytes than the file",
                path.display()
            );
            None
        }
        Err(error) => {
            log::warn!("ignored the sidecar {}: {error}", path.display());
            None
        }
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

pub(super) fn extension(key: &str) -> Option<String> {
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

    /// `file` with `codings` built at the stored level and merged, as the cache does.
    fn built(file: &CachedFile, codings: &[Coding], store: Store) -> CachedFile {
        let built = build(file, codings, &codecs()).unwrap();
        let built = built.into_iter().map(|(coding, bytes)| {
            (
                coding,
                bytes.map(|b| Encoded::new(file.digest, coding, b, true)),
            )
        });
        merged(file, built, store)
    }

    #[test]
    fn load_reads_without_compressing_and_build_adds_codings_for_either_store() {
        let (_dir, root) = site();
        let css = "body { color: teal; margin: 0 auto; }\n".repeat(200);
        fs::write(root.join("site.css"), &css).unwrap();
        for store in [Store::Both, Store::CompressedOnly] {
            let loaded = file(load(&root, "site.css", None, &opts(store), 0).unwrap());
            assert_eq!(loaded.identity.as_deref(), Some(css.as_bytes()));
            assert!(!loaded.has_encoded() && loaded.compressible && loaded.varies());
            assert_eq!(loaded.content_type, "text/css; charset=utf-8");
        }
        let loaded = file(load(&root, "site.css", None, &opts(Store::Both), 0).unwrap());
        let both = built(&loaded, &[Coding::Br, Coding::Gzip], Store::Both);
        assert_eq!(both.identity.as_deref(), Some(css.as_bytes()));
        for coding in [Coding::Br, Coding::Gzip] {
            let encoded = both.encoded(coding).expect("repetitive css compresses");
            assert!(encoded.stored && encoded.bytes.len() * 10 < css.len());
            assert_eq!(
                codecs().decode(coding, &encoded.bytes, both.len).unwrap(),
                css.as_bytes()
            );
            assert_ne!(encoded.etag, both.etag);
        }
        assert!(both.encoded(Coding::Zstd).is_none());
        assert_ne!(
            both.encoded(Coding::Br).unwrap().etag,
            both.encoded(Coding::Gzip).unwrap().etag
        );
        assert_eq!(
            (&both.etag, &both.modified),
            (&loaded.etag, &loaded.modified)
        );

        let lean = built(&loaded, &[Coding::Zstd], Store::CompressedOnly);
        assert!(lean.identity.is_none() && lean.encoded(Coding::Zstd).is_some());
        assert_eq!(lean.etag, both.etag, "the ETag depends on content only");
        assert!(lean.cost() < both.cost() && lean.cost() < loaded.cost());
        // A compressed-only entry builds another coding from its decoded bytes.
        let more = built(&lean, &[Coding::Gzip], Store::CompressedOnly);
        assert_eq!(
            codecs()
                .decode(
                    Coding::Gzip,
                    &more.encoded(Coding::Gzip).unwrap().bytes,
                    more.len
                )
                .unwrap(),
            css.as_bytes()
        );
        assert_eq!(identity_of(&more, &codecs()).unwrap(), css.as_bytes());
    }

    #[test]
    fn load_skips_compression_for_small_unlisted_or_incompressible_files() {
        let (_dir, root) = site();
        fs::write(root.join("tiny.css"), "a{}").unwrap();
        fs::write(root.join("photo.png"), vec![7u8; 4096]).unwrap();
        let noise: Vec<u8> = (0..8192u64)
            .flat_map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()).to_le_bytes())
            .collect();
        fs::write(root.join("noise.txt"), &noise).unwrap();
        for key in ["tiny.css", "photo.png"] {
            let entry = file(load(&root, key, None, &opts(Store::CompressedOnly), 0).unwrap());
            assert!(!entry.has_encoded() && !entry.compressible, "{key}");
            assert!(!entry.varies() && entry.identity.is_some(), "{key}");
        }
        // Listed and large enough, so it is tried; nothing saves 10% and nothing is kept.
        let noise = file(load(&root, "noise.txt", None, &opts(Store::CompressedOnly), 0).unwrap());
        assert!(noise.compressible);
        let tried = built(&noise, &Coding::COMPRESSED, Store::CompressedOnly);
        assert!(!tried.has_encoded() && !tried.compressible && !tried.varies());
        assert!(
            tried.identity.is_some(),
            "identity kept when nothing compressed is"
        );
        // No codings configured: nothing is compressible.
        let none = StaticFileOpts {
            encodings: Vec::new(),
            ..opts(Store::Both)
        };
        fs::write(root.join("page.html"), "<p>hello</p>\n".repeat(500)).unwrap();
        assert!(!file(load(&root, "page.html", None, &none, 0).unwrap()).compressible);
    }

    #[test]
    fn load_takes_fresh_checked_sidecars_of_every_coding_and_ignores_the_rest() {
        let (_dir, root) = site();
        let text = "x".repeat(5000);
        fs::write(root.join("a.txt"), &text).unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let br = codecs_encode(Coding::Br, text.as_bytes());
        let zst = codecs_encode(Coding::Zstd, text.as_bytes());
        fs::write(root.join("a.txt.gz"), &gz).unwrap();
        fs::write(root.join("a.txt.br"), &br).unwrap();
        fs::write(root.join("a.txt.zst"), &zst).unwrap();
        let entry = file(load(&root, "a.txt", None, &opts(Store::Both), 0).unwrap());
        for (coding, bytes) in [(Coding::Gzip, &gz), (Coding::Br, &br), (Coding::Zstd, &zst)] {
            let encoded = entry
                .encoded(coding)
                .expect("a fresh sidecar is held at once");
            assert!(encoded.stored && encoded.bytes == bytes[..], "{coding:?}");
        }
        // Only the configured codings' sidecars are read.
        let gzip_only = StaticFileOpts {
            encodings: vec![Coding::Gzip],
            ..opts(Store::Both)
        };
        let entry = file(load(&root, "a.txt", None, &gzip_only, 0).unwrap());
        assert!(entry.encoded(Coding::Gzip).is_some() && entry.encoded(Coding::Br).is_none());

        // Corrupt sidecars (another file's bytes, or not compressed at all) are ignored.
        fs::write(
            root.join("a.txt.br"),
            codecs_encode(Coding::Br, b"other bytes entirely"),
        )
        .unwrap();
        fs::write(root.join("a.txt.zst"), b"not zstd").unwrap();
        let entry = file(load(&root, "a.txt", None, &opts(Store::Both), 0).unwrap());
        assert!(entry.encoded(Coding::Br).is_none() && entry.encoded(Coding::Zstd).is_none());
        assert!(entry.encoded(Coding::Gzip).is_some() && entry.compressible);

        // Make the original newer than the sidecars: they are stale.
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let entry = file(load(&root, "a.txt", None, &opts(Store::Both), 0).unwrap());
        assert!(!entry.has_encoded() && entry.compressible);
    }

    #[test]
    fn load_ignores_a_sidecar_that_leads_out_of_the_root() {
        let (_dir, root) = site();
        let outside = tempfile::tempdir().unwrap();
        let text = "y".repeat(5000);
        fs::write(root.join("b.txt"), &text).unwrap();
        let br = codecs_encode(Coding::Br, text.as_bytes());
        fs::write(outside.path().join("b.txt.br"), &br).unwrap();
        std::os::unix::fs::symlink(outside.path().join("b.txt.br"), root.join("b.txt.br")).unwrap();
        let entry = file(load(&root, "b.txt", None, &opts(Store::Both), 0).unwrap());
        assert!(entry.encoded(Coding::Br).is_none());
    }

    fn codecs_encode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut compressor = codecs().compressor().unwrap();
        compressor.encode(coding, 5, data).unwrap()
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
