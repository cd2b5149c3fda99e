//! The allocator: what leanserve can learn from it and ask of it.
//!
//! With the `jemalloc` feature (on by default) the `leanserve` binary runs on jemalloc,
//! installed by [`use_jemalloc!`](crate::use_jemalloc), which also compiles heap
//! profiling in (inactive: `prof:true,prof_active:false`, one sample every 512 KiB of
//! allocation). The library never sets a global allocator itself: an application that
//! embeds leanserve keeps its own, and [`allocator`] then reports [`Allocator::System`],
//! the heap figures are unavailable and heap profiles are refused with a reason.
//!
//! Whether jemalloc really is the global allocator is measured, not assumed: a probe
//! allocation must move jemalloc's per-thread allocation counter.

use serde::Serialize;

pub mod read_buffers;

/// Which allocator serves this process's Rust heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Allocator {
    /// jemalloc, with its statistics.
    Jemalloc,
    /// Anything else (the platform's malloc or an embedding application's choice).
    System,
}

/// jemalloc's own figures, in bytes (see `stats.*` in jemalloc(3)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HeapStats {
    /// Bytes the application holds.
    pub allocated: u64,
    /// Bytes in active pages (allocated plus page rounding).
    pub active: u64,
    /// Bytes in physically resident pages the allocator maps, metadata included.
    pub resident: u64,
    /// Bytes in active extents mapped by the allocator.
    pub mapped: u64,
    /// Bytes retained: virtual memory kept mapped for reuse, not returned to the OS.
    pub retained: u64,
    /// Bytes of the allocator's own metadata.
    pub metadata: u64,
}

/// Whether heap profiles can be taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HeapProfiling {
    /// Sampling is on: one sample every `2^lg_sample` bytes of allocation.
    On {
        /// Bytes of allocation per sample.
        sample_bytes: u64,
    },
    /// Compiled in but switched off (`profiler.heap_profiling = false`).
    Off,
    /// Not possible in this process; `reason` says why.
    Unavailable {
        /// Why (jemalloc is not the global allocator, or was built without profiling).
        reason: String,
    },
}

/// Why a heap profile could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Heap profiling is not possible in this process; the reason (jemalloc is not the
    /// global allocator, or was built without profiling).
    #[error("heap profiling is unavailable: {0}")]
    Unavailable(String),
    /// Heap sampling is off (see `profiler.heap_profiling`).
    #[error(transparent)]
    Off(#[from] crate::off::Off),
    /// jemalloc could not write the profile; its error.
    #[error("jemalloc could not write the heap profile: {0}")]
    Dump(String),
}

/// The allocator serving the Rust heap (measured once, then cached).
pub fn allocator() -> Allocator {
    imp::allocator()
}

/// jemalloc's statistics, refreshed now; `None` unless jemalloc is the global allocator.
pub fn heap_stats() -> Option<HeapStats> {
    imp::heap_stats()
}

/// The state of heap profiling.
pub fn heap_profiling() -> HeapProfiling {
    imp::heap_profiling()
}

/// Switches heap sampling on or off; answers the resulting state. Only possible where
/// jemalloc was started with profiling compiled in (see [`use_jemalloc!`](crate::use_jemalloc)).
pub fn set_heap_profiling(active: bool) -> HeapProfiling {
    imp::set_heap_profiling(active)
}

/// Writes a heap profile and answers it in pprof format (gzipped protobuf), with
/// symbolized frames. Blocking: it writes and parses a temporary file and reads the
/// binary's symbols, so call it from a blocking pool.
pub fn dump_pprof() -> Result<Vec<u8>, ProfileError> {
    imp::dump_pprof()
}

/// Bytes this thread has allocated since it started (jemalloc's per-thread counter);
/// `None` where jemalloc is not the global allocator. The difference of two readings is
/// what the code between them allocated.
pub fn thread_allocated() -> Option<u64> {
    imp::thread_allocated()
}

/// jemalloc's decay settings: how long freed dirty pages are kept before they are returned
/// to the system, and whether its background thread purges them (instead of allocating
/// threads, which stall while the process is idle: jemalloc#2688).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decay {
    pub dirty_decay_ms: i64,
    pub muzzy_decay_ms: i64,
    pub background_thread: bool,
}

/// The decay settings in force; `None` without jemalloc.
pub fn decay() -> Option<Decay> {
    imp::decay()
}

/// Sets the dirty decay of every arena (existing and new) and the background thread;
/// answers whether jemalloc took it.
pub fn set_decay(dirty_decay_ms: i64, background_thread: bool) -> bool {
    imp::set_decay(dirty_decay_ms, background_thread)
}

/// Returns freed pages of every jemalloc arena to the operating system now (instead of
/// after jemalloc's decay time). Answers whether it did; a no-op without jemalloc.
pub fn purge() -> bool {
    imp::purge()
}

/// What the file cache's arena holds, in bytes (see [`into_cache_arena`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArenaStats {
    /// Bytes of live allocations (at their size class).
    pub allocated: u64,
    /// Bytes in pages holding live allocations: `allocated` plus the free space of
    /// partly used slabs (fragmentation).
    pub active: u64,
    /// Bytes in freed pages not yet returned to the system (none at decay 0, at most the
    /// pages of frees since the last purge).
    pub dirty: u64,
    /// Bytes of jemalloc's metadata for this arena.
    pub metadata: u64,
    /// Allocations made in the arena since it was created (a counter).
    pub allocations: u64,
}

impl ArenaStats {
    /// What the arena costs in memory beyond its live allocations.
    pub fn overhead(&self) -> u64 {
        (self.active + self.dirty + self.metadata).saturating_sub(self.allocated)
    }
}

/// Moves `bytes` into the file cache's own jemalloc arena and answers them from there;
/// answers `bytes` themselves where jemalloc is not the global allocator.
///
/// The arena holds only cached file bytes, allocated without thread caches and with
/// dirty and muzzy decay 0: an evicted file's pages go back to the system at once instead
/// of staying resident for the decay time, and the arena's figures ([`cache_arena_stats`])
/// are exactly what the cache costs the allocator: its fragmentation and metadata can be
/// counted against the cache's budget. Copying costs one `memcpy` per cached file (a
/// file is copied when it is admitted, not when it is read, so files the cache turns
/// away never touch the arena).
pub fn into_cache_arena(bytes: bytes::Bytes) -> bytes::Bytes {
    imp::into_cache_arena(bytes)
}

/// A buffer for a file being read for the cache. With the cache's arena: a kept read
/// buffer for a file of up to 256 KiB ([`read_buffers`]), whose pages stay resident from
/// one miss to the next; a larger file goes into the arena itself, where a file the cache
/// then admits stays without a copy, and one it turns away is freed there, its pages
/// returned at once instead of lingering as dirty pages of the shared heap for the decay
/// time. Without an arena: a `Vec`.
pub struct CacheBuffer(Buffer);

enum Buffer {
    Kept(read_buffers::ReadBuffer),
    Heap(Vec<u8>),
    #[cfg(feature = "jemalloc")]
    Arena(imp::ArenaBytes),
}

impl CacheBuffer {
    /// Room for `len` bytes. Its contents are unspecified (a kept buffer holds what the
    /// previous reader left): fill it, then [`truncate`](Self::truncate) it to what was
    /// read.
    pub fn for_read(len: usize) -> CacheBuffer {
        // Only beside the arena: an admitted file is copied out of its kept buffer into
        // the arena (`CachedFile::settled`); without one the cache would hold the kept
        // buffer itself, up to twice the file's size.
        if cache_arena_enabled()
            && let Some(buffer) = read_buffers::ReadBuffer::take(len)
        {
            return CacheBuffer(Buffer::Kept(buffer));
        }
        #[cfg(feature = "jemalloc")]
        if let Some(bytes) = imp::arena_zeroed(len) {
            return CacheBuffer(Buffer::Arena(bytes));
        }
        CacheBuffer(Buffer::Heap(vec![0; len]))
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Buffer::Kept(buffer) => buffer.as_mut_slice(),
            Buffer::Heap(vec) => vec,
            #[cfg(feature = "jemalloc")]
            Buffer::Arena(bytes) => bytes.as_mut_slice(),
        }
    }

    /// Keeps the first `len` bytes (a file shorter than its length said).
    pub fn truncate(&mut self, len: usize) {
        match &mut self.0 {
            Buffer::Kept(buffer) => buffer.truncate(len),
            Buffer::Heap(vec) => vec.truncate(len),
            #[cfg(feature = "jemalloc")]
            Buffer::Arena(bytes) => bytes.truncate(len),
        }
    }

    pub fn freeze(self) -> bytes::Bytes {
        match self.0 {
            Buffer::Kept(buffer) => bytes::Bytes::from_owner(buffer),
            Buffer::Heap(vec) => bytes::Bytes::from(vec),
            #[cfg(feature = "jemalloc")]
            Buffer::Arena(bytes) => bytes::Bytes::from_owner(bytes),
        }
    }
}

/// Whether `bytes` already live in the file cache's arena. Any bytes may be asked about:
/// static data, another allocator's heap or a file mapping answer `false` (see the
/// SAFETY note of the jemalloc build for why the lookup is sound for them).
pub fn in_cache_arena(bytes: &[u8]) -> bool {
    imp::in_cache_arena(bytes)
}

/// What jemalloc allocates for a request of `len` bytes (`nallocx`); `None` where it is
/// not the global allocator.
pub fn usable_size(len: usize) -> Option<u64> {
    imp::usable_size(len)
}

/// Whether cached file bytes live in an arena of their own ([`into_cache_arena`]).
pub fn cache_arena_enabled() -> bool {
    imp::cache_arena().is_some()
}

/// The file cache arena's figures, refreshed now; `None` without it.
pub fn cache_arena_stats() -> Option<ArenaStats> {
    imp::cache_arena_stats()
}

/// Installs jemalloc as the global allocator of the crate that invokes it (a binary),
/// with heap profiling compiled in but inactive until the profiler switches it on
/// (`profiler.heap_profiling`). The `leanserve` binary invokes it; an application that
/// embeds leanserve and wants heap figures and profiles invokes it in its own `main.rs`:
///
/// ```ignore
/// leanserve::use_jemalloc!();
/// ```
#[cfg(feature = "jemalloc")]
#[macro_export]
macro_rules! use_jemalloc {
    () => {
        #[global_allocator]
        static LEANSERVE_JEMALLOC: $crate::__jemalloc::Jemalloc = $crate::__jemalloc::Jemalloc;

        /// jemalloc reads its options from this symbol before the first allocation.
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static LEANSERVE_MALLOC_CONF: $crate::__jemalloc::MallocConf =
            $crate::__jemalloc::MALLOC_CONF;
    };
}

#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator::Jemalloc;

/// A pointer to jemalloc's option string, as the C symbol `malloc_conf` holds it.
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a immutable, 'static, NUL-terminated string.
#[cfg(feature = "jemalloc")]
unsafe impl Sync for MallocConf {}

/// jemalloc's options for leanserve:
/// - heap profiling compiled in and inactive; one sample per 2^19 bytes (512 KiB);
/// - one arena per CPU (`percpu_arena`) instead of four, and freed pages returned to the
///   OS after 1 s instead of 10 s: in `bench/http.sh`'s memory run these hold peak RSS at
///   52-53 MB (`both`) and 26-28 MB (`compressed-only`) against 57-58 and 29 MB with
///   jemalloc's defaults; cached-hit throughput stayed within this machine's noise
///   (median 0.96x of the defaults over 9 interleaved rounds; see `bench/HISTORY.md`).
///
/// `_RJEM_MALLOC_CONF` in the environment overrides any of them.
#[cfg(feature = "jemalloc")]
pub const MALLOC_CONF: MallocConf = MallocConf(
    c"prof:true,prof_active:false,lg_prof_sample:19,percpu_arena:percpu,dirty_decay_ms:1000,muzzy_decay_ms:0"
        .as_ptr(),
);

#[cfg(feature = "jemalloc")]
mod imp {
    use std::sync::OnceLock;

    use tikv_jemalloc_ctl::{epoch, raw, stats, thread};

    use super::{Allocator, HeapProfiling, HeapStats, ProfileError};

    pub fn allocator() -> Allocator {
        static FOUND: OnceLock<Allocator> = OnceLock::new();
        *FOUND.get_or_init(|| {
            let counter = match thread::allocatedp::read() {
                Ok(counter) => counter,
                Err(_) => return Allocator::System,
            };
            let before = counter.get();
            let probe = std::hint::black_box(vec![1u8; 64 << 10]);
            let after = counter.get();
            drop(probe);
            if after >= before + (64 << 10) {
                Allocator::Jemalloc
            } else {
                Allocator::System
            }
        })
    }

    pub fn thread_allocated() -> Option<u64> {
        if allocator() != Allocator::Jemalloc {
            return None;
        }
        thread::allocatedp::read().ok().map(|counter| counter.get())
    }

    pub fn decay() -> Option<super::Decay> {
        if allocator() != Allocator::Jemalloc {
            return None;
        }
        // SAFETY: "arenas.dirty_decay_ms" and "arenas.muzzy_decay_ms" are documented as
        // readable ssize_t, "background_thread" as a readable bool.
        unsafe {
            Some(super::Decay {
                dirty_decay_ms: raw::read::<isize>(b"arenas.dirty_decay_ms\0").ok()? as i64,
                muzzy_decay_ms: raw::read::<isize>(b"arenas.muzzy_decay_ms\0").ok()? as i64,
                background_thread: raw::read::<bool>(b"background_thread\0").ok()?,
            })
        }
    }

    pub fn set_decay(dirty_decay_ms: i64, background_thread: bool) -> bool {
        if allocator() != Allocator::Jemalloc {
            return false;
        }
        let ms = dirty_decay_ms as isize;
        // SAFETY: "arenas.dirty_decay_ms" (the default of new arenas) and
        // "arena.<MALLCTL_ARENAS_ALL = 4096>.dirty_decay_ms" (every existing arena) are
        // documented as writable ssize_t; "background_thread" as a writable bool.
        let set = unsafe {
            let new = raw::write::<isize>(b"arenas.dirty_decay_ms\0", ms).is_ok();
            let all = raw::write::<isize>(b"arena.4096.dirty_decay_ms\0", ms).is_ok();
            let thread = raw::write::<bool>(b"background_thread\0", background_thread).is_ok();
            new && all && thread
        };
        // "Every arena" included the file cache's, which keeps its own decay of 0.
        if let Some(arena) = cache_arena() {
            set_arena_decay(arena, 0);
        }
        set
    }

    /// The file cache's arena (see `super::into_cache_arena`), created on first use.
    pub fn cache_arena() -> Option<u32> {
        static ARENA: OnceLock<Option<u32>> = OnceLock::new();
        *ARENA.get_or_init(|| {
            if allocator() != Allocator::Jemalloc {
                return None;
            }
            // SAFETY: "arenas.create" is documented as a readable unsigned (the new
            // arena's index).
            let arena = match unsafe { raw::read::<u32>(b"arenas.create\0") } {
                Ok(arena) => arena,
                Err(error) => {
                    log::warn!("file cache: no arena of its own ({error}); files share the heap");
                    return None;
                }
            };
            set_arena_decay(arena, 0);
            Some(arena)
        })
    }

    fn set_arena_decay(arena: u32, ms: isize) {
        for knob in ["dirty_decay_ms", "muzzy_decay_ms"] {
            let name = format!("arena.{arena}.{knob}\0");
            // SAFETY: "arena.<i>.dirty_decay_ms" and "arena.<i>.muzzy_decay_ms" are
            // documented as writable ssize_t.
            if let Err(error) = unsafe { raw::write::<isize>(name.as_bytes(), ms) } {
                log::warn!("file cache arena: cannot set {knob}: {error}");
            }
        }
    }

    /// Cached bytes in the file cache's arena, freed with the size they were allocated
    /// with and without a thread cache, like they were allocated.
    pub struct ArenaBytes {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
        capacity: usize,
    }

    impl ArenaBytes {
        pub fn as_mut_slice(&mut self) -> &mut [u8] {
            // SAFETY: `len` initialised bytes at `ptr`, owned by `self`.
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
        }

        pub fn truncate(&mut self, len: usize) {
            self.len = self.len.min(len);
        }
    }

    fn arena_flags(arena: u32) -> std::ffi::c_int {
        tikv_jemalloc_sys::MALLOCX_ARENA(arena as usize) | tikv_jemalloc_sys::MALLOCX_TCACHE_NONE
    }

    /// `len` zero bytes in the cache's arena; `None` without it (or for nothing).
    pub fn arena_zeroed(len: usize) -> Option<ArenaBytes> {
        let arena = cache_arena()?;
        if len == 0 {
            return None;
        }
        let flags = arena_flags(arena) | tikv_jemalloc_sys::MALLOCX_ZERO;
        // SAFETY: mallocx with a non-zero size; the result is checked.
        let ptr = unsafe { tikv_jemalloc_sys::mallocx(len, flags) };
        Some(ArenaBytes {
            ptr: std::ptr::NonNull::new(ptr.cast::<u8>())?,
            len,
            capacity: len,
        })
    }

    pub fn in_cache_arena(bytes: &[u8]) -> bool {
        let Some(arena) = cache_arena() else {
            return false;
        };
        if bytes.is_empty() {
            return false;
        }
        let mut ptr = bytes.as_ptr().cast::<std::ffi::c_void>();
        let mut found: std::ffi::c_uint = 0;
        let mut found_len = std::mem::size_of::<std::ffi::c_uint>();
        // SAFETY: "arenas.lookup" takes a pointer (written as the new value) and answers
        // its arena's index as an unsigned. It is sound for an address jemalloc never
        // handed out too: jemalloc 5.3.1 (tikv-jemalloc-sys 0.7.1, pinned in Cargo.lock)
        // reads its page map with `emap_full_alloc_ctx_try_lookup`, an independent radix
        // tree read that answers "not present" (EINVAL here) for unmapped addresses,
        // rather than the dependent read that assumes the page is jemalloc's. Before
        // moving to another jemalloc, check `arenas_lookup_ctl` in its ctl.c;
        // tests/cache_arena.rs asks about static and foreign memory.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arenas.lookup".as_ptr(),
                (&mut found as *mut std::ffi::c_uint).cast(),
                &mut found_len,
                (&mut ptr as *mut *const std::ffi::c_void).cast(),
                std::mem::size_of::<*const std::ffi::c_void>(),
            )
        };
        status == 0 && found == arena
    }

    // SAFETY: the allocation is owned by this value alone and never written after it is
    // built; jemalloc frees from any thread.
    unsafe impl Send for ArenaBytes {}
    // SAFETY: shared access only reads.
    unsafe impl Sync for ArenaBytes {}

    impl AsRef<[u8]> for ArenaBytes {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: `len` initialised bytes at `ptr`, alive as long as `self`.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }
    }

    impl Drop for ArenaBytes {
        fn drop(&mut self) {
            // SAFETY: allocated by mallocx with this size and the same tcache flag.
            unsafe {
                tikv_jemalloc_sys::sdallocx(
                    self.ptr.as_ptr().cast(),
                    self.capacity,
                    tikv_jemalloc_sys::MALLOCX_TCACHE_NONE,
                )
            }
        }
    }

    pub fn usable_size(len: usize) -> Option<u64> {
        if len == 0 || allocator() != Allocator::Jemalloc {
            return None;
        }
        // SAFETY: nallocx only computes a size, for a non-zero request.
        Some(unsafe { tikv_jemalloc_sys::nallocx(len, 0) } as u64)
    }

    pub fn into_cache_arena(bytes: bytes::Bytes) -> bytes::Bytes {
        let Some(arena) = cache_arena() else {
            return bytes;
        };
        if bytes.is_empty() {
            return bytes;
        }
        // SAFETY: mallocx with a non-zero size; the result is checked.
        let ptr = unsafe { tikv_jemalloc_sys::mallocx(bytes.len(), arena_flags(arena)) };
        let Some(ptr) = std::ptr::NonNull::new(ptr.cast::<u8>()) else {
            return bytes; // out of memory in the arena: keep them where they are
        };
        // SAFETY: `ptr` has room for `bytes.len()` bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        bytes::Bytes::from_owner(ArenaBytes {
            ptr,
            len: bytes.len(),
            capacity: bytes.len(),
        })
    }

    pub fn cache_arena_stats() -> Option<super::ArenaStats> {
        let arena = cache_arena()?;
        epoch::advance().ok()?;
        let read = |stat: &str| -> Option<u64> {
            let name = format!("stats.arenas.{arena}.{stat}\0");
            // SAFETY: these "stats.arenas.<i>.*" entries are documented as readable
            // size_t.
            unsafe { raw::read::<usize>(name.as_bytes()) }
                .ok()
                .map(|value| value as u64)
        };
        // SAFETY: "arenas.page" is documented as a readable size_t.
        let page = unsafe { raw::read::<usize>(b"arenas.page\0") }.ok()? as u64;
        Some(super::ArenaStats {
            allocated: read("small.allocated")? + read("large.allocated")?,
            active: read("pactive")? * page,
            dirty: (read("pdirty")? + read("pmuzzy")?) * page,
            metadata: read("base")?,
            allocations: read("small.nmalloc")? + read("large.nmalloc")?,
        })
    }

    pub fn heap_stats() -> Option<HeapStats> {
        if allocator() != Allocator::Jemalloc {
            return None;
        }
        // The statistics are a snapshot taken when the epoch advances.
        epoch::advance().ok()?;
        let read = |read: fn() -> tikv_jemalloc_ctl::Result<usize>| read().ok().map(|b| b as u64);
        Some(HeapStats {
            allocated: read(stats::allocated::read)?,
            active: read(stats::active::read)?,
            resident: read(stats::resident::read)?,
            mapped: read(stats::mapped::read)?,
            retained: read(stats::retained::read)?,
            metadata: read(stats::metadata::read)?,
        })
    }

    fn compiled_in() -> Result<(), String> {
        if allocator() != Allocator::Jemalloc {
            return Err("jemalloc is not this process's global allocator \
                        (invoke leanserve::use_jemalloc!() in the binary)"
                .into());
        }
        // SAFETY: "opt.prof" is documented as readable and a bool.
        match unsafe { raw::read::<bool>(b"opt.prof\0") } {
            Ok(true) => Ok(()),
            Ok(false) => Err("jemalloc was started without prof:true".into()),
            Err(error) => Err(format!("jemalloc has no profiling support: {error}")),
        }
    }

    pub fn heap_profiling() -> HeapProfiling {
        if let Err(reason) = compiled_in() {
            return HeapProfiling::Unavailable { reason };
        }
        // SAFETY: "prof.active" is readable and a bool.
        let active = unsafe { raw::read::<bool>(b"prof.active\0") };
        // SAFETY: "prof.lg_sample" is readable and a size_t.
        let lg_sample = unsafe { raw::read::<usize>(b"prof.lg_sample\0") };
        match (active, lg_sample) {
            (Ok(true), Ok(lg)) => HeapProfiling::On {
                sample_bytes: 1u64 << lg.min(63),
            },
            (Ok(false), _) => HeapProfiling::Off,
            (Err(error), _) | (_, Err(error)) => HeapProfiling::Unavailable {
                reason: error.to_string(),
            },
        }
    }

    pub fn set_heap_profiling(active: bool) -> HeapProfiling {
        if compiled_in().is_ok() {
            // SAFETY: "prof.active" is documented as writable and a bool.
            if let Err(error) = unsafe { raw::write(b"prof.active\0", active) } {
                log::warn!("cannot switch heap profiling to {active}: {error}");
            }
        }
        heap_profiling()
    }

    pub fn dump_pprof() -> Result<Vec<u8>, ProfileError> {
        match heap_profiling() {
            HeapProfiling::On { .. } => {}
            HeapProfiling::Off => return Err(ProfileError::Off(crate::off::Off::HeapProfiles)),
            HeapProfiling::Unavailable { reason } => {
                return Err(ProfileError::Unavailable(reason));
            }
        }
        let control = jemalloc_pprof::PROF_CTL
            .as_ref()
            .ok_or_else(|| ProfileError::Unavailable("jemalloc profiling is disabled".into()))?;
        let mut control = control.blocking_lock();
        control
            .dump_pprof()
            .map_err(|error| ProfileError::Dump(format!("{error:#}")))
    }

    pub fn purge() -> bool {
        if allocator() != Allocator::Jemalloc {
            return false;
        }
        // "arena.<MALLCTL_ARENAS_ALL>.purge" purges every arena; MALLCTL_ARENAS_ALL is 4096.
        // SAFETY: a void command: no old value is read and no new value written, which
        // jemalloc requires as null pointers and zero length.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        status == 0
    }
}

#[cfg(not(feature = "jemalloc"))]
mod imp {
    use super::{Allocator, HeapProfiling, HeapStats, ProfileError};

    const REASON: &str = "leanserve was built without the jemalloc feature";

    pub fn allocator() -> Allocator {
        Allocator::System
    }

    pub fn heap_stats() -> Option<HeapStats> {
        None
    }

    pub fn thread_allocated() -> Option<u64> {
        None
    }

    pub fn decay() -> Option<super::Decay> {
        None
    }

    pub fn set_decay(_: i64, _: bool) -> bool {
        false
    }

    pub fn heap_profiling() -> HeapProfiling {
        HeapProfiling::Unavailable {
            reason: REASON.into(),
        }
    }

    pub fn set_heap_profiling(_: bool) -> HeapProfiling {
        heap_profiling()
    }

    pub fn dump_pprof() -> Result<Vec<u8>, ProfileError> {
        Err(ProfileError::Unavailable(REASON.into()))
    }

    pub fn purge() -> bool {
        false
    }

    pub fn into_cache_arena(bytes: bytes::Bytes) -> bytes::Bytes {
        bytes
    }

    pub fn usable_size(_: usize) -> Option<u64> {
        None
    }

    pub fn in_cache_arena(_: &[u8]) -> bool {
        false
    }

    pub fn cache_arena() -> Option<u32> {
        None
    }

    pub fn cache_arena_stats() -> Option<super::ArenaStats> {
        None
    }
}
