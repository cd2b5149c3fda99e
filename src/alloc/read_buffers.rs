//! Buffers that cache misses are read into, kept for the next miss.
//!
//! On a site bigger than the budget most files a miss reads are served once and turned
//! away by admission (about 70% of the misses on `bench/site.sh`'s stream). Read into
//! the cache's arena, whose decay is 0, each of those frees its pages back to the system
//! the moment its response is written: an `madvise`, a TLB shootdown across the cores and
//! page faults when the next miss touches fresh pages, together about an eighth of the
//! server's CPU in a profile of that stream. Read into a kept buffer instead, a miss
//! touches pages that are already resident; a file the cache admits is copied into its
//! arena on the way in (`CachedFile::settled`), one it turns away gives its buffer back.
//!
//! Buffers come in power-of-two sizes from 4 KiB to [`MAX_LEN`] (a file of 17 KiB takes
//! a 32 KiB one), one free list per size. At most [`KEPT_MAX`] bytes of free buffers are
//! kept; past that a returned buffer is freed. The buffers in use at a time are bounded by
//! the misses in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Largest file read into a kept buffer: the largest a worker thread reads without
/// blocking (`file_cache::nowait`). Larger files are read into the cache's arena.
pub const MAX_LEN: usize = 256 * 1024;

/// Bytes of free buffers kept at most.
pub const KEPT_MAX: usize = 1024 * 1024;

const MIN_SHIFT: u32 = 12; // 4 KiB
const SIZES: usize = (MAX_LEN.trailing_zeros() - MIN_SHIFT + 1) as usize;

struct Free {
    lists: [Vec<Box<[u8]>>; SIZES],
    kept: usize,
}

/// Free buffers by size, and their total (readable without the lock).
struct Pool {
    free: Mutex<Free>,
    kept: AtomicU64,
}

static POOL: Pool = Pool::new();

impl Pool {
    const fn new() -> Pool {
        Pool {
            free: Mutex::new(Free {
                lists: [const { Vec::new() }; SIZES],
                kept: 0,
            }),
            kept: AtomicU64::new(0),
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&'static self, len: usize) -> Option<ReadBuffer> {
        if len == 0 || len > MAX_LEN {
            return None;
        }
        let index = size_index(len);
        let kept = {
            let mut free = self.free();
            let buf = free.lists[index].pop();
            if let Some(buf) = &buf {
                free.kept -= buf.len();
                self.kept.store(free.kept as u64, Ordering::Relaxed);
            }
            buf
        };
        let buf = kept.unwrap_or_else(|| vec![0; 1 << (index as u32 + MIN_SHIFT)].into());
        Some(ReadBuffer {
            buf,
            len,
            pool: self,
        })
    }

    fn give_back(&self, buf: Box<[u8]>) {
        let mut free = self.free();
        if free.kept + buf.len() <= KEPT_MAX {
            free.kept += buf.len();
            self.kept.store(free.kept as u64, Ordering::Relaxed);
            free.lists[size_index(buf.len())].push(buf);
        }
    }
}

fn size_index(len: usize) -> usize {
    (len.max(1 << MIN_SHIFT).next_power_of_two().trailing_zeros() - MIN_SHIFT) as usize
}

/// A buffer of `len` bytes to read a file into (its contents are what the previous
/// reader left: expose only what was read). Dropped, it goes back to the free buffers.
pub struct ReadBuffer {
    buf: Box<[u8]>,
    len: usize,
    pool: &'static Pool,
}

impl ReadBuffer {
    /// A kept buffer with room for `len` bytes, or a new one; `None` for nothing or for
    /// more than [`MAX_LEN`].
    pub fn take(len: usize) -> Option<ReadBuffer> {
        POOL.take(len)
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// Bytes of free read buffers kept for the next miss.
pub fn kept_bytes() -> u64 {
    POOL.kept.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_are_sized_by_power_of_two_and_kept_up_to_the_bound() {
        assert_eq!(size_index(1), 0);
        assert_eq!(size_index(4096), 0);
        assert_eq!(size_index(4097), 1);
        assert_eq!(size_index(MAX_LEN), SIZES - 1);
        let pool: &'static Pool = Box::leak(Box::new(Pool::new()));
        assert!(pool.take(0).is_none());
        assert!(pool.take(MAX_LEN + 1).is_none());

        let len = 100_000;
        let mut first = pool.take(len).unwrap();
        assert_eq!(first.as_mut_slice().len(), len);
        assert_eq!(first.buf.len(), 128 * 1024);
        first.as_mut_slice()[0] = 42;
        let address = first.buf.as_ptr();
        first.truncate(10);
        assert_eq!(first.as_ref().len(), 10);
        assert_eq!(pool.kept.load(Ordering::Relaxed), 0);
        drop(first);
        assert_eq!(pool.kept.load(Ordering::Relaxed), 128 * 1024);
        let again = pool.take(len - 1).unwrap();
        assert_eq!(
            again.buf.as_ptr(),
            address,
            "the freed buffer is taken again"
        );
        assert_eq!(
            again.as_ref()[0],
            42,
            "kept as it was left, not zeroed again"
        );
        assert_eq!(again.as_ref().len(), len - 1);
        assert_eq!(pool.kept.load(Ordering::Relaxed), 0);
        let small = pool.take(5_000).unwrap();
        assert_eq!(small.buf.len(), 8 * 1024, "a buffer of its own size class");

        // Given back past the bound, buffers are freed instead of kept.
        let fit = KEPT_MAX / (128 * 1024);
        let many: Vec<_> = (0..fit + 4).map(|_| pool.take(len).unwrap()).collect();
        drop(again);
        drop(many);
        drop(small);
        let free = pool.free();
        assert_eq!(free.lists[size_index(len)].len(), fit);
        assert_eq!(free.kept, KEPT_MAX);
        assert_eq!(pool.kept.load(Ordering::Relaxed), KEPT_MAX as u64);
        assert!(
            free.lists[size_index(5_000)].is_empty(),
            "no room left for it"
        );
    }
}
