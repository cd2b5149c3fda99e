//! The file cache's own jemalloc arena, in a test binary of its own that runs on jemalloc
//! the way the server binary does: arena figures are process-wide, so nothing else may
//! run beside it.
#![cfg(all(feature = "jemalloc", feature = "cli"))]

mod util;

use util::{Start, eventually, site, test_opts};

leanserve::use_jemalloc!();

/// Cached bytes live in the file cache's own jemalloc arena, returned to the system as
/// soon as they are freed (decay 0), and what that arena holds beyond them (fragmentation,
/// metadata) is measured and counted against the cache's budget.
#[actix_rt::test]
async fn profiler_cached_bytes_live_in_an_arena_whose_overhead_counts_against_the_budget() {
    // The arena itself: bytes come back equal, and freeing them leaves no dirty pages.
    assert!(leanserve::internals::cache_arena_enabled());
    let arena = || leanserve::internals::cache_arena_stats().unwrap();
    let before = arena();
    let kept: Vec<bytes::Bytes> = (0..100u8)
        .map(|i| leanserve::internals::into_cache_arena(bytes::Bytes::from(vec![i; 64 << 10])))
        .collect();
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, b)| b.len() == 64 << 10 && b[5] == i as u8)
    );
    assert!(arena().allocated >= before.allocated + 100 * (64 << 10));
    // Asked about any memory, the lookup answers without touching what is not jemalloc's:
    // the arena's bytes, the heap's, static data, a stack, and glibc's heap.
    assert!(kept.iter().all(|b| leanserve::internals::in_cache_arena(b)));
    let heap = vec![1u8; 64 << 10];
    assert!(!leanserve::internals::in_cache_arena(&heap));
    static STATIC: [u8; 4096] = [7; 4096];
    assert!(!leanserve::internals::in_cache_arena(&STATIC));
    let stack = [3u8; 256];
    assert!(!leanserve::internals::in_cache_arena(&stack));
    assert!(!leanserve::internals::in_cache_arena(&[]));
    let foreign = glibc_buffer(1 << 20);
    assert!(!leanserve::internals::in_cache_arena(foreign.0));
    drop(kept);
    let after = arena();
    assert!(
        after.allocated <= before.allocated,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.dirty, 0, "freed pages go back at once: {after:?}");
    // What the cache counts for stored bytes is what the arena allocates for them, at
    // jemalloc's size classes (small) and page rounding (large).
    for len in [100, 5_000, 14_000, 40_000, 70_001] {
        let before = arena().allocated;
        let bytes = leanserve::internals::into_cache_arena(bytes::Bytes::from(vec![7u8; len]));
        let grown = arena().allocated - before;
        assert_eq!(
            grown,
            leanserve::internals::allocation_size(len),
            "{len} bytes"
        );
        drop(bytes);
    }

    // A cache of many small files of mixed sizes, churned through a small budget, so
    // slabs are left partly used: the measured overhead joins the budget's count.
    let site = site();
    for i in 0..3_000u32 {
        let len = 1_000 + (i as usize * 7_919) % 11_000;
        std::fs::write(site.path().join(format!("f{i:04}.bin")), vec![i as u8; len]).unwrap();
    }
    let budget = 4 << 20;
    let budget_text = budget.to_string();
    let opts = test_opts(
        site.path(),
        &[
            ("STATIC_FILE_MAX_CACHE_SIZE", &budget_text),
            ("STATIC_FILE_ADMISSION", "lru"),
        ],
    );
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    let client = awc::Client::default();
    for i in (0..3_000u32).chain(0..1_500) {
        let mut response = client
            .get(server.url(&format!("/f{i:04}.bin")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.body().await.unwrap();
    }
    eventually("the arena's overhead is measured", || async {
        subsystems
            .cache_stats()
            .await
            .unwrap()
            .allocator_overhead_bytes
            > 0
    })
    .await;
    let stats = subsystems.cache_stats().await.unwrap();
    let overhead = stats.allocator_overhead_bytes;
    println!(
        "{} files, {} bytes counted, {overhead} bytes of allocator overhead, budget {budget}",
        stats.items, stats.bytes_cached
    );
    assert!(stats.bytes_cached + overhead <= budget);
    assert!(overhead <= budget / 4);
    // The cached bytes are allocated there (the arena is read first: the overhead check
    // may evict meanwhile). The cache holds the files read last: the last `items` of the
    // second pass.
    let arena = arena();
    let stats = subsystems.cache_stats().await.unwrap();
    let len = |i: u32| 1_000 + (i as usize * 7_919) % 11_000;
    let stored: u64 = (1_500 - stats.items as u32..1_500)
        .map(|i| leanserve::internals::allocation_size(len(i)))
        .sum();
    println!("arena {arena:?} for {stored} bytes stored");
    assert!(
        arena.allocated >= stored * 95 / 100,
        "{arena:?} for {stored} bytes stored"
    );
    let metrics = util::metrics_text(&server).await;
    assert!(
        metrics.contains("\nleanserve_cache_allocator_overhead_bytes "),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nleanserve_cache_read_buffer_bytes "),
        "{metrics}"
    );
    subsystems.shutdown().await;

    misses_are_read_into_kept_buffers_and_only_admitted_files_enter_the_arena().await;
}

/// Misses are read into buffers kept from one miss to the next: a file admission turns
/// away never touches the arena (no allocation there, so no pages returned and faulted
/// back), one it admits is copied in. A kept buffer holds what the previous file left, so
/// every body is checked byte for byte, over files of every buffer size.
async fn misses_are_read_into_kept_buffers_and_only_admitted_files_enter_the_arena() {
    let site = site();
    let content = |i: u32| -> Vec<u8> {
        // Sizes from 1 byte to 200 KB, each file's bytes its own (a seeded sequence).
        let len = 1 + (i as usize * 104_729) % 200_000;
        let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for i in 0..300u32 {
        std::fs::write(site.path().join(format!("m{i:03}.bin")), content(i)).unwrap();
    }
    let budget = (1 << 20).to_string();
    let opts = test_opts(
        site.path(),
        &[
            ("STATIC_FILE_MAX_CACHE_SIZE", &budget),
            ("STATIC_FILE_ADMISSION", "tinylfu"),
        ],
    );
    let (subsystems, server) = Start::with_opts(opts).serve().await;
    let client = awc::Client::default();
    let arena = || leanserve::internals::cache_arena_stats().unwrap();
    let before = arena();
    for i in (0..300u32).chain((0..300).rev()) {
        let mut response = client
            .get(server.url(&format!("/m{i:03}.bin")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.body().limit(1 << 20).await.unwrap();
        assert!(
            body == content(i),
            "/m{i:03}.bin came back other than on disk"
        );
    }
    let after = arena();
    let stats = subsystems.cache_stats().await.unwrap();
    let admitted = stats.cache_misses - stats.admission_rejections - stats.too_large;
    println!(
        "{} misses, {} turned away, {admitted} admitted; {} arena allocations; {} bytes of read buffers kept",
        stats.cache_misses,
        stats.admission_rejections,
        after.allocations - before.allocations,
        stats.read_buffer_bytes
    );
    assert!(
        stats.admission_rejections >= 100,
        "the budget turns most files away: {stats:?}"
    );
    assert!(
        after.allocations - before.allocations <= admitted,
        "only admitted files are allocated in the arena: {before:?} -> {after:?}, {stats:?}"
    );
    let kept = stats.read_buffer_bytes;
    assert!(kept > 0 && kept <= 1 << 20, "{stats:?}");
    subsystems.shutdown().await;
}

/// A buffer from glibc's `malloc` (not the global allocator, jemalloc), freed on drop.
struct GlibcBuffer(&'static mut [u8]);

fn glibc_buffer(len: usize) -> GlibcBuffer {
    unsafe extern "C" {
        safe fn malloc(len: usize) -> *mut u8;
    }
    let ptr = malloc(len);
    assert!(!ptr.is_null());
    // SAFETY: glibc's malloc returned `len` bytes; they are filled before being read and
    // freed only by `GlibcBuffer`'s drop.
    unsafe {
        std::ptr::write_bytes(ptr, 9, len);
        GlibcBuffer(std::slice::from_raw_parts_mut(ptr, len))
    }
}

impl Drop for GlibcBuffer {
    fn drop(&mut self) {
        unsafe extern "C" {
            fn free(ptr: *mut u8);
        }
        // SAFETY: allocated by glibc's malloc in `glibc_buffer`, freed once.
        unsafe { free(self.0.as_mut_ptr()) }
    }
}
