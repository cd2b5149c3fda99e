//! Compression dictionaries (RFC 9842): the site dictionary built from a sample of the
//! site's pages, earlier versions of assets kept as dictionaries for their next version,
//! the registry the request path looks them up in by hash, and compression against them
//! (`dcz`, `dcb`).
//!
//! - **The site dictionary** is the content part of a zstd dictionary trained on up to
//!   [`SAMPLE_FILES`] HTML pages spread evenly over the site (zstd's trainer picks the
//!   segments that recur most; its header and entropy tables are dropped, since RFC 9842
//!   dictionaries are raw content). A site too small to train on gets the pages' own
//!   bytes, cut to size. The sample is chosen by sorted path, and the trainer is
//!   deterministic, so replicas serving the same files build the same dictionary (the
//!   same hash, the same URL).
//! - **Asset dictionaries**: a served version of an asset whose path matches a
//!   `static_files.dictionary_assets` pattern, kept (its identity bytes) so that its next
//!   version can be sent compressed against it. The newest [`ASSET_VERSIONS`] versions of
//!   each pattern are kept.
//! - **Measured** (bench/compress `dictionary`, Rust docs, 2,000 pages trained, 300 others
//!   compressed): a 256 KiB trained dictionary gives the median page at 0.164x its gzip-6
//!   bytes with zstd 6 (20 µs a page with the prepared dictionary), 0.152x with zstd 15,
//!   0.149x with zstd 19 (800 µs); raw content gives 0.21x. dcb at brotli 5 gives 0.160x
//!   but costs 600 µs a page, as the brotli crate hashes the whole dictionary for every
//!   response.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use sha2::Digest;

use crate::http::dictionary::{DictCoding, hex};
use crate::http::encoding::Coding;

/// Pages the site dictionary is trained on, at most.
pub const SAMPLE_FILES: usize = 2000;

/// Bytes of pages read for training, at most (the trainer's memory is about twice
/// that, for the moment it runs).
const SAMPLE_BYTES: usize = 16 << 20;

/// Bytes read of each sampled page: its head, where the shared markup is. Whole pages
/// let a few large ones weigh most (on the Rust docs: 19.5 MB sampled, median page at
/// 0.164x its gzip-6 bytes; cut at 32 KiB: 12.2 MB, 0.149x).
const SAMPLE_CAP: u64 = 32 * 1024;

/// Files looked at while choosing the sample, at most (a huge tree is sampled from its
/// first entries in path order).
const WALK_LIMIT: usize = 500_000;

/// Versions of each asset pattern kept as dictionaries.
pub const ASSET_VERSIONS: usize = 3;

/// Site dictionaries kept: the current one and its predecessor, which clients that
/// fetched it before the site changed still hold.
pub const SITE_VERSIONS: usize = 2;

/// zstd level of dcz responses. With the site dictionary prepared at this level (2.8 MB)
/// a page takes 20 µs (median, 6 µs per KB) and its context 3 MB whatever the input;
/// level 15 saves 7% more bytes but its prepared dictionary takes 8.5 MB, its context 9
/// to 33 MB, and a 160 KB page 7 ms (bench/compress `dictionary`, bench/HISTORY.md).
pub const DCZ_LEVEL: i32 = 6;

/// zstd contexts kept for the next dcz response (each about 3 MB at [`DCZ_LEVEL`]).
const CONTEXTS_KEPT: usize = 4;

/// The zstd contexts free for dcz responses.
static CONTEXTS: std::sync::Mutex<Vec<zstd::zstd_safe::CCtx<'static>>> =
    std::sync::Mutex::new(Vec::new());

/// brotli quality of dcb responses: the brotli crate re-hashes the dictionary for each
/// response, so higher qualities cost 10-40 ms a page.
pub const DCB_QUALITY: i32 = 5;

/// The largest window a dcb stream may use (RFC 9842: 16 MB).
const DCB_MAX_LGWIN: u32 = 24;

/// Where a compression dictionary came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// The site dictionary, trained on (or cut from) `files` of the site's pages.
    Site {
        /// Site pages it was trained on (or cut from).
        files: usize,
    },
    /// A version of the asset at `key` (its content digest `digest`), under `pattern`.
    Asset {
        /// The asset's path relative to `static_files.root_dir` (its cache key).
        key: String,
        /// The `static_files.dictionary_assets` pattern it matched.
        pattern: String,
        /// A digest of the version's content: a changed file is a new version.
        #[serde(skip)]
        digest: u64,
    },
}

/// One dictionary: its bytes, its hash (its only name), and what compresses with it.
pub struct Dictionary {
    pub hash: [u8; 32],
    pub bytes: Bytes,
    pub source: Source,
    pub built: SystemTime,
    /// The dictionary's own compressed forms, for its download.
    pub encoded: Vec<(Coding, Bytes)>,
    /// The dictionary prepared for zstd at [`DCZ_LEVEL`], made on first use; None when
    /// zstd would read the bytes as a formatted dictionary (they start with its magic
    /// number) rather than raw content.
    zstd: OnceLock<Option<zstd::dict::EncoderDictionary<'static>>>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("hash", &hex(&self.hash))
            .field("len", &self.bytes.len())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Dictionary {
    /// A dictionary of `bytes` from `source`.
    pub fn new(bytes: Bytes, source: Source) -> Dictionary {
        let hash: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        Dictionary {
            hash,
            bytes,
            source,
            built: SystemTime::now(),
            encoded: Vec::new(),
            zstd: OnceLock::new(),
        }
    }

    /// The hash in hex: the dictionary's file name and validator.
    pub fn hex(&self) -> String {
        hex(&self.hash)
    }

    /// `data` compressed in `coding` against this dictionary, header included; None
    /// when this dictionary cannot be used that way (dcb: dictionary and data exceed the
    /// 16 MB window; dcz: bytes zstd would not read as raw content).
    pub fn compress(&self, coding: DictCoding, data: &[u8]) -> io::Result<Option<Bytes>> {
        let mut out = coding.header(&self.hash);
        let ok = match coding {
            DictCoding::Dcz => self.dcz(data, &mut out)?,
            DictCoding::Dcb => dcb(&self.bytes, data, &mut out)?,
        };
        // Exactly its length: held in the cache, the allocation is what the budget counts.
        out.shrink_to_fit();
        Ok(ok.then(|| Bytes::from(out)))
    }

    fn dcz(&self, data: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
        let prepared = self.zstd.get_or_init(|| {
            (!self
                .bytes
                .starts_with(&zstd::zstd_safe::MAGIC_DICTIONARY.to_le_bytes()))
            .then(|| zstd::dict::EncoderDictionary::copy(&self.bytes, DCZ_LEVEL))
        });
        let Some(prepared) = prepared else {
            return Ok(false);
        };
        let contexts = || {
            CONTEXTS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let mut context = contexts()
            .pop()
            .unwrap_or_else(zstd::zstd_safe::CCtx::create);
        // Written from the buffer's start: a buffer of its own, then after the header.
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        let result = context
            .compress_using_cdict(&mut frame, data, prepared.as_cdict())
            .map_err(|code| io::Error::other(zstd::zstd_safe::get_error_name(code)));
        let mut kept = contexts();
        if kept.len() < CONTEXTS_KEPT {
            kept.push(context);
        }
        drop(kept);
        result?;
        out.reserve_exact(frame.len());
        out.extend_from_slice(&frame);
        Ok(true)
    }
}

/// `data` as brotli reaching into `dictionary` as a prefix (the custom dictionary of
/// the brotli crate: the same stream a shared-brotli decoder reads with the dictionary
/// attached, as long as dictionary and data fit the window).
fn dcb(dictionary: &[u8], data: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
    use brotli::enc::StandardAlloc;
    use brotli::enc::encode::{BrotliEncoderOperation, BrotliEncoderStateStruct};
    let span = dictionary.len() + data.len() + 16;
    let lgwin = span.next_power_of_two().trailing_zeros().max(16);
    if lgwin > DCB_MAX_LGWIN {
        return Ok(false);
    }
    let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
    state.params.quality = DCB_QUALITY;
    state.params.lgwin = lgwin as i32;
    state.params.size_hint = data.len();
    state.set_custom_dictionary(dictionary.len(), dictionary);
    let start = out.len();
    out.resize(start + data.len() + data.len() / 8 + 1024, 0);
    let (mut available_in, mut offset_in) = (data.len(), 0usize);
    let (mut available_out, mut offset_out) = (out.len() - start, start);
    let mut total = None;
    loop {
        let ok = state.compress_stream(
            BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
            &mut available_in,
            data,
            &mut offset_in,
            &mut available_out,
            out,
            &mut offset_out,
            &mut total,
            &mut |_, _, _, _| (),
        );
        if !ok {
            return Err(io::Error::other("brotli refused the input"));
        }
        if state.is_finished() {
            break;
        }
        if available_out == 0 {
            let grow = out.len();
            out.resize(grow * 2, 0);
            available_out = out.len() - offset_out;
        }
    }
    out.truncate(offset_out);
    Ok(true)
}

/// Pages sampled for training, end to end in one buffer (what zstd's trainer reads).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub data: Vec<u8>,
    /// Each page's length in `data`, in order.
    pub sizes: Vec<usize>,
    /// The pages found (the sample is spread over them).
    pub pages: usize,
}

impl Samples {
    /// Adds a page.
    pub fn push(&mut self, page: &[u8]) {
        self.data.extend_from_slice(page);
        self.sizes.push(page.len());
    }
}

/// The site dictionary's bytes from `samples`: the content of a zstd dictionary of
/// `size` bytes trained on them, or, when they are too few or too alike to train on,
/// their own bytes cut to `size`. None without samples.
pub fn train(samples: &Samples, size: usize) -> Option<Vec<u8>> {
    if samples.data.is_empty() || size == 0 {
        return None;
    }
    // The trainer wants far more sample bytes than dictionary bytes.
    if samples.sizes.len() >= 16
        && samples.data.len() >= 4 * size
        && let Ok(formatted) = zstd::dict::from_continuous(&samples.data, &samples.sizes, size)
        && let Some(header) =
            formatted_header_len(&formatted).filter(|&header| header < formatted.len())
    {
        return Some(formatted[header..].to_vec());
    }
    Some(samples.data[..samples.data.len().min(size)].to_vec())
}

/// Bytes before the content of a formatted zstd dictionary (magic, id, entropy tables).
#[allow(unsafe_code)]
fn formatted_header_len(formatted: &[u8]) -> Option<usize> {
    use zstd::zstd_safe::zstd_sys;
    // SAFETY: the pointer and length describe `formatted`, a live slice the call only
    // reads; ZDICT_getDictHeaderSize parses it as a formatted dictionary (bounds-checked
    // against the length given) and answers a size or an error code.
    let len =
        unsafe { zstd_sys::ZDICT_getDictHeaderSize(formatted.as_ptr().cast(), formatted.len()) };
    // SAFETY: ZDICT_isError only inspects the number passed.
    let error = unsafe { zstd_sys::ZDICT_isError(len) } != 0;
    (!error).then_some(len)
}

/// Up to `max_files` pages (`.html`, `.htm`) of the tree at `root`, spread evenly over
/// it in path order, each of at least 256 B and read up to [`SAMPLE_CAP`] bytes, at most
/// [`SAMPLE_BYTES`] in all; hidden entries are skipped unless `include_hidden`, and
/// symbolic links are not followed (nothing outside the root).
pub fn sample_pages(root: &Path, max_files: usize, include_hidden: bool) -> Samples {
    let mut pages: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        // Reversed onto the stack, so directories come off it in path order.
        for entry in entries.into_iter().rev() {
            seen += 1;
            if seen > WALK_LIMIT {
                break;
            }
            let name = entry.file_name();
            if !include_hidden && name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path.extension().is_some_and(|ext| {
                    ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm")
                })
            {
                pages.push(path);
            }
        }
    }
    pages.sort();
    let found = pages.len();
    let step = found.div_ceil(max_files.max(1)).max(1);
    let mut samples = Samples {
        pages: found,
        ..Samples::default()
    };
    // Sized once: grown by doubling, the buffer would briefly take twice the bytes.
    let chosen = found.div_ceil(step);
    samples
        .data
        .reserve_exact(SAMPLE_BYTES.min(chosen * SAMPLE_CAP as usize) + SAMPLE_CAP as usize);
    let mut page = Vec::new();
    for path in pages.iter().step_by(step) {
        if samples.data.len() >= SAMPLE_BYTES {
            break;
        }
        page.clear();
        let read = std::fs::File::open(path).and_then(|file| {
            std::io::Read::read_to_end(&mut std::io::Read::take(file, SAMPLE_CAP), &mut page)
        });
        if read.is_ok() && page.len() >= 256 {
            samples.push(&page);
        }
    }
    samples
}

/// One compression dictionary (RFC 9842) the file cache holds, as `/admin/cache` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DictionaryInfo {
    /// SHA-256, hex.
    pub hash: String,
    /// The dictionary's size, in bytes.
    pub bytes: u64,
    /// Where it came from.
    #[serde(flatten)]
    pub source: Source,
    /// Seconds since it was built or taken.
    pub age_s: u64,
    /// Whether it is the one new clients are sent (the newest of its kind).
    pub current: bool,
}

/// The dictionaries held, found by hash on the request path.
#[derive(Debug, Default)]
pub struct Dictionaries {
    held: RwLock<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Newest first.
    site: Vec<Arc<Dictionary>>,
    /// Newest first.
    assets: Vec<Arc<Dictionary>>,
}

impl Dictionaries {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dictionary whose SHA-256 is `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<Dictionary>> {
        let held = self.read();
        held.site
            .iter()
            .chain(&held.assets)
            .find(|dictionary| &dictionary.hash == hash)
            .cloned()
    }

    /// The site dictionary new clients are sent.
    pub fn site(&self) -> Option<Arc<Dictionary>> {
        self.read().site.first().cloned()
    }

    /// Makes `dictionary` the current site dictionary, keeping its predecessor; false
    /// (nothing changes) when it is the current one already.
    pub fn set_site(&self, dictionary: Dictionary) -> bool {
        let mut held = self.write();
        if held
            .site
            .first()
            .is_some_and(|current| current.hash == dictionary.hash)
        {
            return false;
        }
        held.site.retain(|old| old.hash != dictionary.hash);
        held.site.insert(0, Arc::new(dictionary));
        held.site.truncate(SITE_VERSIONS);
        true
    }

    /// Whether the version of `key` with content digest `digest` is held.
    pub fn has_asset(&self, key: &str, digest: u64) -> bool {
        self.read().assets.iter().any(|dictionary| {
            matches!(&dictionary.source, Source::Asset { key: k, digest: d, .. } if k == key && *d == digest)
        })
    }

    /// Keeps an asset version, dropping the oldest of its pattern beyond
    /// [`ASSET_VERSIONS`].
    pub fn add_asset(&self, dictionary: Dictionary) {
        let Source::Asset { pattern, .. } = &dictionary.source else {
            return;
        };
        let pattern = pattern.clone();
        let mut held = self.write();
        held.assets.retain(|old| old.hash != dictionary.hash);
        held.assets.insert(0, Arc::new(dictionary));
        let mut of_pattern = 0;
        held.assets.retain(|old| {
            let same = matches!(&old.source, Source::Asset { pattern: p, .. } if *p == pattern);
            of_pattern += usize::from(same);
            !same || of_pattern <= ASSET_VERSIONS
        });
    }

    /// Bytes the dictionaries hold, their own compressed forms included.
    pub fn bytes(&self) -> u64 {
        let held = self.read();
        held.site
            .iter()
            .chain(&held.assets)
            .map(|dictionary| {
                let encoded: usize = dictionary
                    .encoded
                    .iter()
                    .map(|(_, bytes)| bytes.len())
                    .sum();
                (dictionary.bytes.len() + encoded) as u64
            })
            .sum()
    }

    /// Every dictionary held, for the admin view.
    pub fn list(&self) -> Vec<DictionaryInfo> {
        let held = self.read();
        let now = SystemTime::now();
        let info = |dictionary: &Arc<Dictionary>, current: bool| DictionaryInfo {
            hash: dictionary.hex(),
            bytes: dictionary.bytes.len() as u64,
            source: dictionary.source.clone(),
            age_s: now
                .duration_since(dictionary.built)
                .map_or(0, |age| age.as_secs()),
            current,
        };
        let mut patterns_seen: Vec<&str> = Vec::new();
        let mut list: Vec<DictionaryInfo> = held
            .site
            .iter()
            .enumerate()
            .map(|(i, dictionary)| info(dictionary, i == 0))
            .collect();
        for dictionary in &held.assets {
            let Source::Asset { pattern, .. } = &dictionary.source else {
                continue;
            };
            let current = !patterns_seen.contains(&pattern.as_str());
            patterns_seen.push(pattern);
            list.push(info(dictionary, current));
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(i: usize) -> Vec<u8> {
        format!(
            "<!DOCTYPE html><html><head><title>Page {i}</title><link rel=stylesheet href=/s.css></head>\
             <body><nav><a href=/>Home</a><a href=/docs>Docs</a><a href=/blog>Blog</a></nav>\
             <main><h1>Item {i}</h1><p>{}</p></main><footer>Copyright and a long footer that every page shares</footer></body></html>",
            "lorem ipsum dolor sit amet ".repeat(i % 7 + 1)
        )
        .into_bytes()
    }

    fn decode_dcz(dictionary: &[u8], body: &[u8], len: usize) -> Vec<u8> {
        let mut decoder = zstd::bulk::Decompressor::with_dictionary(dictionary).unwrap();
        decoder.decompress(&body[40..], len).unwrap()
    }

    #[test]
    fn trained_dictionaries_are_raw_content_and_compress_pages() {
        let mut samples = Samples::default();
        (0..400).for_each(|i| samples.push(&page(i)));
        let bytes = train(&samples, 4096).unwrap();
        assert!(bytes.len() <= 4096 && bytes.len() > 1024, "{}", bytes.len());
        assert!(
            !bytes.starts_with(&zstd::zstd_safe::MAGIC_DICTIONARY.to_le_bytes()),
            "the header is gone"
        );
        let dictionary = Dictionary::new(Bytes::from(bytes.clone()), Source::Site { files: 400 });
        let target = page(1000);
        let dcz = dictionary
            .compress(DictCoding::Dcz, &target)
            .unwrap()
            .unwrap();
        assert_eq!(&dcz[..40], &DictCoding::Dcz.header(&dictionary.hash)[..]);
        assert_eq!(decode_dcz(&bytes, &dcz, target.len()), target);
        let plain = zstd::bulk::compress(&target, 19).unwrap();
        assert!(
            dcz.len() < plain.len() / 2,
            "{} vs {}",
            dcz.len(),
            plain.len()
        );
        let dcb = dictionary
            .compress(DictCoding::Dcb, &target)
            .unwrap()
            .unwrap();
        assert_eq!(&dcb[..36], &DictCoding::Dcb.header(&dictionary.hash)[..]);
        let mut decoded = Vec::new();
        let mut reader =
            brotli::Decompressor::new_with_custom_dict(&dcb[36..], 4096, bytes.clone().into());
        std::io::Read::read_to_end(&mut reader, &mut decoded).unwrap();
        assert_eq!(decoded, target);
    }

    #[test]
    fn too_few_samples_give_their_own_bytes() {
        let mut samples = Samples::default();
        samples.push(&page(1));
        samples.push(&page(2));
        let bytes = train(&samples, 100_000).unwrap();
        assert_eq!(bytes, [page(1), page(2)].concat());
        assert_eq!(train(&samples, 10).unwrap(), page(1)[..10].to_vec());
        assert_eq!(train(&Samples::default(), 10), None);
    }

    #[test]
    fn a_dictionary_that_looks_formatted_is_not_used_for_dcz() {
        let mut bytes = zstd::zstd_safe::MAGIC_DICTIONARY.to_le_bytes().to_vec();
        bytes.extend_from_slice(&page(3));
        let dictionary = Dictionary::new(bytes.into(), Source::Site { files: 1 });
        assert_eq!(
            dictionary.compress(DictCoding::Dcz, &page(4)).unwrap(),
            None
        );
        assert!(
            dictionary
                .compress(DictCoding::Dcb, &page(4))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn the_registry_keeps_the_current_and_previous_site_and_recent_assets() {
        let registry = Dictionaries::default();
        let site = |n: usize| Dictionary::new(Bytes::from(page(n)), Source::Site { files: n });
        assert!(registry.set_site(site(1)));
        assert!(
            !registry.set_site(site(1)),
            "the same bytes are the same dictionary"
        );
        assert!(registry.set_site(site(2)));
        assert!(registry.set_site(site(3)));
        let hash = |n: usize| -> [u8; 32] { sha2::Sha256::digest(page(n)).into() };
        assert!(registry.get(&hash(1)).is_none(), "two site versions kept");
        assert!(registry.get(&hash(2)).is_some());
        assert_eq!(registry.site().unwrap().hash, hash(3));
        for n in 10..15 {
            registry.add_asset(Dictionary::new(
                Bytes::from(page(n)),
                Source::Asset {
                    key: format!("app-{n}.js"),
                    pattern: "/app-*.js".into(),
                    digest: n as u64,
                },
            ));
        }
        assert!(registry.has_asset("app-14.js", 14));
        assert!(!registry.has_asset("app-14.js", 13), "another version");
        assert!(
            registry.get(&hash(11)).is_none(),
            "only {ASSET_VERSIONS} versions"
        );
        assert!(registry.get(&hash(12)).is_some());
        let list = registry.list();
        assert_eq!(list.len(), SITE_VERSIONS + ASSET_VERSIONS);
        assert_eq!(list.iter().filter(|info| info.current).count(), 2);
        let expected: u64 = [2, 3, 12, 13, 14]
            .iter()
            .map(|&n| page(n).len() as u64)
            .sum();
        assert_eq!(registry.bytes(), expected);
    }

    #[test]
    fn samples_are_spread_over_the_pages_cut_and_skip_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..30 {
            let sub = dir.path().join(format!("d{}", i % 3));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(format!("p{i:02}.html")), page(i)).unwrap();
        }
        std::fs::write(dir.path().join("tiny.html"), "<p>").unwrap();
        std::fs::write(dir.path().join("style.css"), page(99)).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/x.html"), page(98)).unwrap();
        let big = "<p>x</p>".repeat(10_000);
        std::fs::write(dir.path().join("d0/big.html"), &big).unwrap();
        let samples = sample_pages(dir.path(), 10, false);
        assert_eq!(
            samples.pages, 32,
            "every page, the tiny one too, none hidden"
        );
        assert!(
            (7..=10).contains(&samples.sizes.len()),
            "{:?}",
            samples.sizes
        );
        assert_eq!(samples.data.len(), samples.sizes.iter().sum::<usize>());
        let all = sample_pages(dir.path(), 100, true);
        let text = String::from_utf8_lossy(&all.data);
        assert!(
            text.contains(std::str::from_utf8(&page(98)).unwrap()),
            "hidden ones when asked"
        );
        assert!(
            !text.contains(std::str::from_utf8(&page(99)).unwrap()),
            "pages only"
        );
        assert!(
            all.sizes.contains(&(SAMPLE_CAP as usize)),
            "the big page is cut"
        );
        assert!(
            all.sizes.iter().all(|&size| size >= 256),
            "the tiny one is left out"
        );
        assert_eq!(
            sample_pages(dir.path(), 10, false),
            samples,
            "the same sample every time"
        );
    }
}
