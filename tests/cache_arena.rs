//! The file cache's own jemalloc arena, in a test binary of its own that runs on jemalloc
//! the way the server binary does: arena figures are process-wide, so nothing else may
//! run beside it.
#![cfg(all(feature = "jemalloc", feature = "cli"))]

mod util;

use leanserve::Runtime;
use util::{eventually, serve, site, test_opts};

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
    let subsystems = Runtime::new(opts).start().await.unwrap();
    let server = serve(&subsystems);
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
}
