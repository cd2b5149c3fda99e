//! gzip and gunzip with reusable state, pooled.
//!
//! A fresh `flate2::write::GzEncoder` allocates 344–429 KiB (the deflate state) for every
//! gzip; a kept `flate2::Compress` is `reset()` for the next one and allocates nothing.
//! So leanserve compresses with raw deflate state it keeps in a pool (`gzip`) and writes
//! the gzip framing itself (RFC 1952: a ten-byte header, the deflate stream, CRC-32 and
//! length), and inflates with kept raw inflate state (`inflate`). The `gzip` pool's
//! maximum also bounds how many compressions, and so how much compression memory, run
//! at once.
//!
//! [`Codecs`] is what the file cache and the template renders hold. With the pool
//! manager off it makes fresh state for every call and behaves identically.

use std::io::{self, Read};

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use crate::pool::{AcquireError, Manager, Pool, Pooled};

/// Name of the pool of gzip compressors.
pub const GZIP_POOL: &str = "gzip";
/// Name of the pool of inflaters.
pub const INFLATE_POOL: &str = "inflate";
/// A compressor's output scratch larger than this is given back on return.
const MAX_KEPT_SCRATCH: usize = 256 * 1024;

/// gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Kept deflate state and its output scratch.
pub struct Gzipper {
    deflate: Compress,
    scratch: Vec<u8>,
}

impl Gzipper {
    /// Fresh state at gzip's default level (6).
    pub fn new() -> Gzipper {
        Gzipper {
            deflate: Compress::new(Compression::default(), false),
            scratch: Vec::new(),
        }
    }

    /// `data` as one gzip member, in a buffer of exactly its length.
    pub fn gzip(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        self.deflate.reset();
        self.scratch.clear();
        self.scratch.reserve(data.len() / 3 + 64);
        let mut consumed = 0;
        loop {
            if self.scratch.len() == self.scratch.capacity() {
                self.scratch.reserve(self.scratch.capacity().max(4096));
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&data[consumed..], &mut self.scratch, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            consumed += (self.deflate.total_in() - before) as usize;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        let mut out = Vec::with_capacity(GZIP_HEADER.len() + self.scratch.len() + 8);
        out.extend_from_slice(&GZIP_HEADER);
        out.extend_from_slice(&self.scratch);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        Ok(out)
    }
}

impl Default for Gzipper {
    fn default() -> Self {
        Gzipper::new()
    }
}

/// Kept raw inflate state.
pub struct Inflater {
    inflate: Decompress,
}

impl Inflater {
    /// Fresh state.
    pub fn new() -> Inflater {
        Inflater {
            inflate: Decompress::new(false),
        }
    }

    /// Inflates one gzip member of `expected_len` bytes. Anything unusual (several
    /// members, a length other than expected) is handed to flate2's own multi-member
    /// decoder, so every valid gzip file inflates.
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
        let body = deflate_body(gzip)?;
        let capacity = usize::try_from(expected_len).ok()?;
        self.inflate.reset(false);
        let mut out = Vec::with_capacity(capacity);
        let status = self
            .inflate
            .decompress_vec(body, &mut out, FlushDecompress::Finish)
            .ok()?;
        let used = self.inflate.total_in() as usize;
        if status != Status::StreamEnd || body.len() != used + 8 || out.len() != capacity {
            return None;
        }
        let trailer = &body[used..];
        let mut crc = Crc::new();
        crc.update(&out);
        let crc_ok = trailer[..4] == crc.sum().to_le_bytes();
        let len_ok = trailer[4..] == (out.len() as u32).to_le_bytes();
        (crc_ok && len_ok).then_some(out)
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

/// The deflate stream and trailer after a gzip header (RFC 1952 §2.3), or `None` for a
/// header this parser does not take (flate2's decoder then decides).
fn deflate_body(gzip: &[u8]) -> Option<&[u8]> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if gzip.len() < 18 || gzip[..3] != [0x1f, 0x8b, 8] || gzip[3] & 0xe0 != 0 {
        return None;
    }
    let flags = gzip[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes([*gzip.get(at)?, *gzip.get(at + 1)?]) as usize;
        at += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            at += gzip.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    gzip.get(at..)
}

/// Makes [`Gzipper`]s for the `gzip` pool.
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

/// Makes [`Inflater`]s for the `inflate` pool.
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
    /// `data` gzip-compressed.
    pub fn gzip(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compressor::Pooled(gzipper) => gzipper.gzip(data),
            Compressor::Owned(gzipper) => gzipper.gzip(data),
        }
    }
}

/// Compression and inflation for the file cache and the template renders.
#[derive(Clone, Debug)]
pub struct Codecs {
    gzip: Option<Pool<GzipManager>>,
    inflate: Option<Pool<InflateManager>>,
}

impl Codecs {
    /// Fresh state for every call (the pool manager is off).
    pub fn direct() -> Codecs {
        Codecs {
            gzip: None,
            inflate: None,
        }
    }

    /// State from these pools.
    pub fn pooled(gzip: Pool<GzipManager>, inflate: Pool<InflateManager>) -> Codecs {
        Codecs {
            gzip: Some(gzip),
            inflate: Some(inflate),
        }
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
        let out = match &self.inflate {
            Some(pool) => {
                let mut inflater = pool.acquire_blocking(pool.acquire_timeout())?;
                inflater.gunzip(gzip, expected_len)?
            }
            None => Inflater::new().gunzip(gzip, expected_len)?,
        };
        Ok(Bytes::from(out))
    }
}

/// Why an inflate failed.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// No inflater came free in time (the server is busy).
    #[error(transparent)]
    Busy(#[from] AcquireError),
    /// The gzip bytes are corrupt.
    #[error("corrupt gzip bytes: {0}")]
    Corrupt(#[from] io::Error),
}

/// gzip bytes worth keeping: at most 90% of the original.
pub fn worth_it(gzip: Vec<u8>, original_len: usize) -> Option<Bytes> {
    ((gzip.len() as u64) * 10 <= (original_len as u64) * 9).then(|| Bytes::from(gzip))
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
        assert_eq!(gzipper.gzip(b"").unwrap().len(), 20, "an empty member");
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
            .write(Vec::new(), Compression::best());
        named.write_all(&data).unwrap();
        let named = named.finish().unwrap();
        assert!(deflate_body(&named).is_some());
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
}
