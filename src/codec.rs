//! Compression (gzip, brotli, zstd) and decompression with reusable state, pooled.
//!
//! Whole buffers are compressed and decompressed. gzip is libdeflate (`libdeflater`): on
//! the Rust documentation's text (`bench/compress`), at gzip's default level 6 it
//! compresses at 145 MB/s against flate2's miniz_oxide's 68 MB/s (zlib-rs: 113) with a
//! slightly smaller output (0.204 against 0.208 of the original), and inflates at 1.4
//! GB/s against 0.57. brotli is the `brotli` crate (pure Rust) and zstd the `zstd` crate
//! (the C library), both the ones actix-http's own compression uses.
//!
//! Every coding has two levels (see [`Levels`]): a **quick** one, for a response that
//! must be compressed now (a cache miss, the first request for a coding), and a
//! **stored** one, for what the cache keeps of a file read more than once, built in the
//! background. The quick levels were chosen from `bench/compress`'s figures; the stored
//! ones are configuration (`static_files.gzip_level`, `br_level`, `zstd_level`).
//!
//! A compressor's quick state (libdeflate at the quick level, a zstd context) is
//! allocated once and kept in a pool (`gzip`, named for its first coding) with its output
//! scratch; an inflater likewise (`inflate`). Stored-level compressions, which run in the
//! background and take far longer than allocating their state, make fresh state each
//! time, so the pool does not keep the several megabytes a zstd level-19 context holds.
//! The `gzip` pool's maximum also bounds how many compressions, and so how much
//! compression memory, run at once. gzip files libdeflate does not inflate in one go with
//! the expected length (several members) go to flate2's multi-member decoder, so every
//! valid gzip file inflates.
//!
//! [`Codecs`] is what the file cache and the template renders hold. With the pool
//! manager off it makes fresh state for every call and behaves identically.

use std::io::{self, Read};

use bytes::Bytes;
use libdeflater::{CompressionLvl, Compressor as Deflater, Decompressor};

use crate::http::encoding::Coding;
use crate::pool::{AcquireError, Manager, Pool, Pooled};

pub use crate::config::keys::{GZIP_POOL, INFLATE_POOL};
/// A compressor's output scratch larger than this is given back on return.
const MAX_KEPT_SCRATCH: usize = 256 * 1024;

/// Compression levels by coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// libdeflate, 1 to 12.
    pub gzip: i32,
    /// brotli quality, 0 to 11.
    pub br: i32,
    /// zstd, 1 to 22.
    pub zstd: i32,
}

impl Levels {
    /// The levels of a response compressed while its client waits (see `bench/compress`:
    /// the cheapest per byte saved among the fast levels).
    pub const QUICK: Levels = Levels {
        gzip: 6,
        br: 5,
        zstd: 3,
    };

    /// The levels of a response for a file the cache does not keep (a site bigger than
    /// the budget, a file admission turned away): it is compressed again for every
    /// request, as a server compressing on the fly does, so at the levels cheapest per
    /// byte saved (`bench/compress`: 3.0 to 8.0 ms per MB saved, against 12.1 for gzip 6
    /// and 29 for brotli 5).
    pub const PASSING: Levels = Levels {
        gzip: 1,
        br: 1,
        zstd: 1,
    };

    /// The level of `coding` (identity has none: 0).
    pub fn of(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Identity => 0,
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
        }
    }
}

/// Kept compressor state for the quick and the passing levels, and an output scratch.
pub struct Gzipper {
    deflate: Deflater,
    /// libdeflate at the passing level, made on first use.
    deflate_passing: Option<Deflater>,
    /// zstd contexts at the quick and the passing level, made on first use.
    zstd: Option<zstd::bulk::Compressor<'static>>,
    zstd_passing: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl Gzipper {
    /// Fresh state (all but the quick gzip state is made on first use).
    pub fn new() -> Gzipper {
        Gzipper {
            deflate: Deflater::new(quick_gzip_level()),
            deflate_passing: None,
            zstd: None,
            zstd_passing: None,
            scratch: Vec::new(),
        }
    }

    /// `data` as one gzip member at the quick level, in a buffer of exactly its length.
    pub fn gzip(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        deflate_into(&mut self.deflate, &mut self.scratch, data)
    }

    /// `data` compressed with `coding` at `level`; kept state serves the quick and the
    /// passing levels (requests wait for those), fresh state any other (background builds,
    /// where it costs little beside the compression and keeps no large state around).
    pub fn encode(&mut self, coding: Coding, level: i32, data: &[u8]) -> io::Result<Vec<u8>> {
        match coding {
            Coding::Identity => Ok(data.to_vec()),
            Coding::Gzip if level == Levels::QUICK.gzip => self.gzip(data),
            Coding::Gzip if level == Levels::PASSING.gzip => {
                let deflate = match &mut self.deflate_passing {
                    Some(deflate) => deflate,
                    none => none.insert(Deflater::new(gzip_level(level)?)),
                };
                deflate_into(deflate, &mut self.scratch, data)
            }
            Coding::Gzip => {
                let mut deflate = Deflater::new(gzip_level(level)?);
                let mut out = vec![0; deflate.gzip_compress_bound(data.len())];
                let written = deflate
                    .gzip_compress(data, &mut out)
                    .map_err(|error| io::Error::other(format!("gzip: {error:?}")))?;
                out.truncate(written);
                out.shrink_to_fit();
                Ok(out)
            }
            Coding::Br => brotli_compress(data, level),
            Coding::Zstd if level == Levels::QUICK.zstd || level == Levels::PASSING.zstd => {
                let slot = if level == Levels::QUICK.zstd {
                    &mut self.zstd
                } else {
                    &mut self.zstd_passing
                };
                let zstd = match slot {
                    Some(zstd) => zstd,
                    none => none.insert(zstd::bulk::Compressor::new(level)?),
                };
                zstd.compress(data)
            }
            Coding::Zstd => zstd::bulk::compress(data, level),
        }
    }
}

/// `data` as one gzip member by `deflate`, through `scratch`, in a buffer of exactly its
/// length.
fn deflate_into(deflate: &mut Deflater, scratch: &mut Vec<u8>, data: &[u8]) -> io::Result<Vec<u8>> {
    let bound = deflate.gzip_compress_bound(data.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let written = deflate
        .gzip_compress(data, &mut scratch[..bound])
        .map_err(|error| io::Error::other(format!("gzip: {error:?}")))?;
    Ok(scratch[..written].to_vec())
}

/// A libdeflate level from a configured one.
fn gzip_level(level: i32) -> io::Result<CompressionLvl> {
    CompressionLvl::new(level)
        .map_err(|error| io::Error::other(format!("gzip level {level}: {error:?}")))
}

impl Default for Gzipper {
    fn default() -> Self {
        Gzipper::new()
    }
}

fn quick_gzip_level() -> CompressionLvl {
    CompressionLvl::new(Levels::QUICK.gzip).unwrap_or_default()
}

/// `data` as a brotli stream at quality `level`, its window sized to the input (a
/// smaller window costs the same bytes on web-sized files and less memory).
fn brotli_compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: level.clamp(0, 11),
        lgwin: brotli_window(data.len()),
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    out.shrink_to_fit();
    Ok(out)
}

/// The brotli window (log2 of its bytes) for an input of `len` bytes: large enough to
/// hold it, at least 17 and at most brotli's 24. Below 17 the `brotli` crate falls back,
/// at qualities 5 to 8, to a large default hash table for every file: 14x the time for
/// the same bytes on small pages (`bench/compress`, 2026-12-06).
fn brotli_window(len: usize) -> i32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    (bits as i32 + 1).clamp(17, 24)
}

/// Kept libdeflate inflate state.
pub struct Inflater {
    inflate: Decompressor,
}

impl Inflater {
    /// Fresh state.
    pub fn new() -> Inflater {
        Inflater {
            inflate: Decompressor::new(),
        }
    }

    /// Inflates gzip bytes whose inflated length is `expected_len`. One member of that
    /// length (what leanserve and the gzip tool write) inflates in one go, its CRC and
    /// length checked; anything else (several members, another length) is handed to
    /// flate2's multi-member decoder.
    pub fn gunzip(&mut self, gzip: &[u8], expected_len: u64) -> io::Result<Vec<u8>> {
        match self.single_member(gzip, expected_len) {
            Some(out) => Ok(out),
            None => {
                let mut out = Vec::with_capacity(usize::try_from(expected_len).unwrap_or(0));
                flate2::read::MultiGzDecoder::new(gzip).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    fn single_member(&mut self, gzip: &[u8], expected_len: u64) -> Option<Vec<u8>> {
        let len = usize::try_from(expected_len).ok()?;
        let mut out = vec![0; len];
        let written = self.inflate.gzip_decompress(gzip, &mut out).ok()?;
        (written == len).then_some(out)
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

/// Makes `Gzipper`s for the `gzip` pool.
#[derive(Debug, Default)]
pub struct GzipManager;

impl Manager for GzipManager {
    type Object = Gzipper;
    type Error = std::convert::Infallible;

    fn create(&self) -> Result<Gzipper, Self::Error> {
        Ok(Gzipper::new())
    }

    fn recycle(&self, gzipper: &mut Gzipper) -> bool {
        if gzipper.scratch.capacity() > MAX_KEPT_SCRATCH {
            gzipper.scratch = Vec::new();
        }
        true
    }
}

/// Makes `Inflater`s for the `inflate` pool.
#[derive(Debug, Default)]
pub struct InflateManager;

impl Manager for InflateManager {
    type Object = Inflater;
    type Error = std::convert::Infallible;

    fn create(&self) -> Result<Inflater, Self::Error> {
        Ok(Inflater::new())
    }
}

/// A compressor: pooled, or made for this one use when pools are off.
pub enum Compressor {
    Pooled(Pooled<GzipManager>),
    Owned(Box<Gzipper>),
}

impl Compressor {
    /// `data` gzip-compressed at the quick level.
    pub fn gzip(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.state().gzip(data)
    }

    /// `data` compressed with `coding` at `level`.
    pub fn encode(&mut self, coding: Coding, level: i32, data: &[u8]) -> io::Result<Vec<u8>> {
        self.state().encode(coding, level, data)
    }

    fn state(&mut self) -> &mut Gzipper {
        match self {
            Compressor::Pooled(gzipper) => gzipper,
            Compressor::Owned(gzipper) => gzipper,
        }
    }
}

/// Compression and decompression for the file cache and the template renders.
#[derive(Clone, Debug)]
pub struct Codecs {
    gzip: Option<Pool<GzipManager>>,
    inflate: Option<Pool<InflateManager>>,
    /// The levels of what the file cache stores.
    stored: Levels,
}

impl Codecs {
    /// The stored levels when none are configured: what `static_files.gzip_level`,
    /// `br_level` and `zstd_level` default to.
    pub const DEFAULT_STORED: Levels = Levels {
        gzip: 6,
        br: 11,
        zstd: 19,
    };

    /// Fresh state for every call (the pool manager is off).
    pub fn direct() -> Codecs {
        Codecs {
            gzip: None,
            inflate: None,
            stored: Codecs::DEFAULT_STORED,
        }
    }

    /// State from these pools.
    pub fn pooled(gzip: Pool<GzipManager>, inflate: Pool<InflateManager>) -> Codecs {
        Codecs {
            gzip: Some(gzip),
            inflate: Some(inflate),
            stored: Codecs::DEFAULT_STORED,
        }
    }

    /// The same codecs storing at `levels`.
    pub fn storing_at(self, levels: Levels) -> Codecs {
        Codecs {
            stored: levels,
            ..self
        }
    }

    /// The levels of what the file cache stores.
    pub fn stored_levels(&self) -> Levels {
        self.stored
    }

    /// A compressor, waiting for one at most the `gzip` pool's acquire timeout. Blocking:
    /// call it on the blocking pool.
    #[track_caller]
    pub fn compressor(&self) -> Result<Compressor, AcquireError> {
        match &self.gzip {
            Some(pool) => pool
                .acquire_blocking(pool.acquire_timeout())
                .map(Compressor::Pooled),
            None => Ok(Compressor::Owned(Box::default())),
        }
    }

    /// A compressor if one is free now, without waiting (for a worker's own thread).
    pub fn compressor_now(&self) -> Result<Compressor, AcquireError> {
        match &self.gzip {
            Some(pool) => pool.try_acquire().map(Compressor::Pooled),
            None => Ok(Compressor::Owned(Box::default())),
        }
    }

    /// `data` gzip-compressed, kept only when at most 90% of its size (`None` otherwise,
    /// and when no compressor came free in time: the caller serves identity). Blocking.
    pub fn gzip_if_smaller(&self, data: &[u8]) -> Option<Bytes> {
        let mut compressor = match self.compressor() {
            Ok(compressor) => compressor,
            Err(error) => {
                log::warn!("serving without compression: {error}");
                return None;
            }
        };
        worth_it(compressor.gzip(data).ok()?, data.len())
    }

    /// Inflates `gzip` to its `expected_len` bytes. Blocking.
    pub fn inflate(&self, gzip: &[u8], expected_len: u64) -> Result<Bytes, InflateError> {
        self.decode(Coding::Gzip, gzip, expected_len)
    }

    /// Decodes `encoded` (in `coding`) to its `expected_len` bytes; anything else, or
    /// bytes that do not decode, is [`InflateError::Corrupt`]. Blocking.
    pub fn decode(
        &self,
        coding: Coding,
        encoded: &[u8],
        expected_len: u64,
    ) -> Result<Bytes, InflateError> {
        let capacity = usize::try_from(expected_len).map_err(io::Error::other)?;
        let out = match coding {
            Coding::Identity => encoded.to_vec(),
            Coding::Gzip => match &self.inflate {
                Some(pool) => {
                    let mut inflater = pool.acquire_blocking(pool.acquire_timeout())?;
                    inflater.gunzip(encoded, expected_len)?
                }
                None => Inflater::new().gunzip(encoded, expected_len)?,
            },
            Coding::Br => {
                let mut out = Vec::with_capacity(capacity);
                // One byte past the expected length is enough to tell a longer stream.
                let mut decoder =
                    brotli::Decompressor::new(encoded, 4096).take(expected_len.saturating_add(1));
                decoder.read_to_end(&mut out)?;
                out
            }
            Coding::Zstd => zstd::bulk::decompress(encoded, capacity)?,
        };
        if out.len() != capacity {
            return Err(InflateError::Corrupt(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes decode to {} bytes, not {expected_len}",
                    coding.token(),
                    out.len()
                ),
            )));
        }
        Ok(Bytes::from(out))
    }
}

/// Why a decode failed.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// No inflater came free in time (the server is busy).
    #[error(transparent)]
    Busy(#[from] AcquireError),
    /// The compressed bytes are corrupt.
    #[error("corrupt compressed bytes: {0}")]
    Corrupt(#[from] io::Error),
}

/// Compressed bytes worth keeping: at most 90% of the original.
pub fn worth_it(encoded: Vec<u8>, original_len: usize) -> Option<Bytes> {
    ((encoded.len() as u64) * 10 <= (original_len as u64) * 9).then(|| Bytes::from(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn text() -> Vec<u8> {
        (0..4000)
            .flat_map(|i| format!("line {i}: body {{ color: teal }}\n").into_bytes())
            .collect()
    }

    #[test]
    fn codec_gzip_is_standard_gzip_and_reuse_gives_identical_bytes() {
        let data = text();
        let mut gzipper = Gzipper::new();
        let first = gzipper.gzip(&data).unwrap();
        let second = gzipper.gzip(&data).unwrap();
        assert_eq!(first, second, "reset state compresses the same way");
        assert_eq!(first.len(), first.capacity(), "exact-size output");
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, data);
        assert!(first.len() * 5 < data.len());
        let empty = gzipper.gzip(b"").unwrap();
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert!(inflated.is_empty(), "an empty member");
    }

    #[test]
    fn codec_inflate_takes_our_gzip_flate2s_and_named_or_multi_member_files() {
        let data = text();
        let mut inflater = Inflater::new();
        let ours = Gzipper::new().gzip(&data).unwrap();
        assert_eq!(inflater.gunzip(&ours, data.len() as u64).unwrap(), data);
        // A sidecar written by the gzip tool carries a file name (FNAME).
        let mut named = flate2::GzBuilder::new()
            .filename("site.css")
            .comment("made by hand")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::best());
        named.write_all(&data).unwrap();
        let named = named.finish().unwrap();
        assert_eq!(inflater.gunzip(&named, data.len() as u64).unwrap(), data);
        // Two members (concatenated gzip files) inflate through the fallback.
        let mut two = ours.clone();
        two.extend_from_slice(&Gzipper::new().gzip(b"tail").unwrap());
        let mut expected = data.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(
            inflater.gunzip(&two, expected.len() as u64).unwrap(),
            expected
        );
        // Corruption is an error, not garbage.
        let mut bad = ours.clone();
        let last = bad.len() - 5;
        bad[last] ^= 0xff;
        assert!(inflater.gunzip(&bad, data.len() as u64).is_err());
        assert!(inflater.gunzip(b"not gzip at all", 3).is_err());
    }

    #[test]
    fn codec_pooled_and_direct_codecs_give_the_same_bytes() {
        let data = text();
        let pooled = Codecs::pooled(
            Pool::new("gzip", crate::pool::PoolSpec::new(1), GzipManager).unwrap(),
            Pool::new("inflate", crate::pool::PoolSpec::new(1), InflateManager).unwrap(),
        );
        let direct = Codecs::direct();
        let a = pooled.gzip_if_smaller(&data).unwrap();
        let b = direct.gzip_if_smaller(&data).unwrap();
        assert_eq!(a, b);
        assert_eq!(pooled.inflate(&a, data.len() as u64).unwrap(), data);
        assert_eq!(direct.inflate(&a, data.len() as u64).unwrap(), data);
        assert!(pooled.gzip_if_smaller(&[7u8; 10]).is_none(), "not worth it");
    }

    #[test]
    fn codec_every_coding_round_trips_at_quick_and_stored_levels() {
        let data = text();
        let codecs = Codecs::direct();
        let mut compressor = codecs.compressor().unwrap();
        for coding in Coding::COMPRESSED {
            for level in [
                Levels::QUICK.of(coding),
                Levels::PASSING.of(coding),
                Codecs::DEFAULT_STORED.of(coding),
                9,
            ] {
                let encoded = compressor.encode(coding, level, &data).unwrap();
                assert!(encoded.len() * 5 < data.len(), "{coding:?} {level}");
                let again = compressor.encode(coding, level, &data).unwrap();
                assert_eq!(encoded, again, "{coding:?} {level}: deterministic");
                let decoded = codecs.decode(coding, &encoded, data.len() as u64).unwrap();
                assert_eq!(decoded, data, "{coding:?} {level}");
                // A wrong length or corrupt bytes are errors, never short or long output.
                assert!(
                    codecs
                        .decode(coding, &encoded, data.len() as u64 - 1)
                        .is_err()
                );
                assert!(
                    codecs
                        .decode(coding, &encoded, data.len() as u64 + 1)
                        .is_err()
                );
                let mut bad = encoded.clone();
                bad.truncate(bad.len() / 2);
                assert!(codecs.decode(coding, &bad, data.len() as u64).is_err());
            }
        }
        for coding in Coding::COMPRESSED {
            assert!(codecs.decode(coding, b"not compressed at all", 21).is_err());
        }
    }

    #[test]
    fn codec_brotli_window_holds_the_input() {
        assert_eq!(brotli_window(0), 17);
        assert_eq!(brotli_window(1000), 17);
        assert_eq!(brotli_window(100_000), 18);
        assert_eq!(brotli_window(1 << 30), 24);
        for len in [1, 1023, 1024, 5000, 65_536, 1 << 20] {
            assert!(1usize << brotli_window(len) > len || brotli_window(len) == 24);
        }
    }
}
