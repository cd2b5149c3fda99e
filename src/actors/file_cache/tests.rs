//! The cache actor's tests: loads, budgets, admission, representations and copies.

use super::*;
use crate::supervisor::{Handle, RootSupervisor, SupervisorSpec};

/// The cache as the runtime starts it: a supervised `file_cache` child, running before
/// the first request, loaded through its handle's miss protocol.
async fn start(reader: FileCacheReader) -> (RootSupervisor, FileCacheHandle) {
    let (spec, files) = FileCacheHandle::child(reader);
    let tree = SupervisorSpec::new("test").child(spec).start().unwrap();
    tree.handle().status().started().await;
    (tree, files)
}

fn reader(dir: &std::path::Path, budget: u64) -> FileCacheReader {
    reader_with(dir, budget, Admission::Lru)
}

fn reader_with(dir: &std::path::Path, budget: u64, admission: Admission) -> FileCacheReader {
    let opts = StaticFileOpts {
        root_dir: dir.to_owned(),
        max_cache_size: budget,
        cache_expiration: Duration::from_secs(3600),
        admission,
        ..crate::config::Opts::default().static_files
    };
    FileCacheReader::new(opts, crate::codec::Codecs::direct()).unwrap()
}

/// Asks for `key`'s stored-level `coding` as a request would, and answers the
/// cached entry once it holds them (at most 2 s).
async fn compressed(
    cache: &Handle<FileCache>,
    reader: &FileCacheReader,
    key: &str,
    coding: Coding,
) -> Arc<CachedFile> {
    let file = reader.lookup(key).expect("cached");
    assert!(
        file.claim_build(coding) && !file.claim_build(coding),
        "asks once"
    );
    cache
        .send(BuildEncodings { key: key.into() })
        .await
        .unwrap();
    for _ in 0..200 {
        let file = reader.lookup(key).expect("cached");
        if file.encoded(coding).is_some_and(|encoded| encoded.stored) {
            return file;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no stored {coding:?} for {key} within 2 s");
}

#[actix_rt::test]
async fn file_cache_concurrent_misses_share_one_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.css"), "a { color: red }".repeat(100)).unwrap();
    let reader = reader(dir.path(), 1 << 20);
    let (_tree, files) = start(reader.clone()).await;
    let cache = files.actor();
    let loads: Vec<_> = (0..20).map(|_| files.load("a.css".into())).collect();
    let results = futures_util::future::join_all(loads).await;
    let files: Vec<Arc<CachedFile>> = results
        .into_iter()
        .map(|r| match r.unwrap().unwrap() {
            Found::File(file) => file,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        files.iter().all(|f| Arc::ptr_eq(f, &files[0])),
        "one load, one entry"
    );
    assert!(reader.lookup("a.css").is_some());
    assert_eq!(cache.send(GetCacheItemCount).await.unwrap(), 1);
    assert_eq!(reader.stats().revalidations, 0);
}

#[actix_rt::test]
async fn file_cache_a_claimed_load_answers_everyone_and_a_dropped_claim_interrupts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.css"), "a { color: red }".repeat(100)).unwrap();
    let reader = reader(dir.path(), 1 << 20);
    let Claim::Lead(claim) = reader.claim("a.css") else {
        panic!("the first caller leads")
    };
    let Claim::Wait(waiter) = reader.claim("a.css") else {
        panic!("the second caller waits")
    };
    let found = reader.load_now("a.css").or_else(|| {
        let root = load::canonical_root(dir.path()).unwrap();
        Some(load::load(&root, "a.css", None, reader.opts(), 0).unwrap())
    });
    let result = Ok(found.unwrap());
    claim.complete(&result);
    let Ok(Found::File(file)) = waiter.await.unwrap() else {
        panic!("the waiter gets the leader's file")
    };
    assert!(
        reader
            .lookup("a.css")
            .is_some_and(|cached| Arc::ptr_eq(&cached, &file))
    );
    // A claim dropped without an answer (a panic, a cancelled request) answers its
    // waiters, leaves the cache alone and frees the key.
    let Claim::Lead(claim) = reader.claim("a.css") else {
        panic!("the key is free again")
    };
    let Claim::Wait(waiter) = reader.claim("a.css") else {
        panic!("the second caller waits")
    };
    drop(claim);
    assert!(matches!(waiter.await.unwrap(), Err(LoadError::Interrupted)));
    assert!(reader.lookup("a.css").is_some());
    assert!(matches!(reader.claim("a.css"), Claim::Lead(_)));
}

#[actix_rt::test]
async fn file_cache_stays_within_its_budget_and_counts_evictions() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(dir.path().join(format!("{i}.bin")), vec![i as u8; 1000]).unwrap();
    }
    let budget = 3 * (allocation_size(1000) + ENTRY_OVERHEAD + 10);
    let reader = reader(dir.path(), budget);
    let (_tree, files) = start(reader.clone()).await;
    let cache = files.actor();
    for i in 0..10 {
        files.load(format!("{i}.bin")).await.unwrap().unwrap();
        assert!(cache.send(GetCacheSize).await.unwrap() <= budget);
    }
    let stats = cache.send(GetCacheStats).await.unwrap();
    assert_eq!((stats.items, stats.evictions), (3, 7));
    assert!(reader.lookup("9.bin").is_some() && reader.lookup("0.bin").is_none());
    assert_eq!(cache.send(ClearCache).await.unwrap(), stats.bytes_cached);
    assert_eq!(cache.send(GetCacheItemCount).await.unwrap(), 0);
}

#[actix_rt::test]
async fn file_cache_admission_keeps_what_is_read_and_counts_rejections() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(dir.path().join(format!("{i}.bin")), vec![i as u8; 1000]).unwrap();
    }
    let entries = 3 * (allocation_size(1000) + ENTRY_OVERHEAD + 10);
    let budget = entries + ByteLru::with_admission(entries).fixed_bytes();
    let reader = reader_with(dir.path(), budget, Admission::TinyLfu);
    let (_tree, files) = start(reader.clone()).await;
    let cache = files.actor();
    // As the static handler does: a lookup (counted), then a load on a miss.
    for i in 0..10 {
        let key = format!("{i}.bin");
        let reads = if i < 3 { 4 } else { 1 };
        for _ in 0..reads {
            assert!(reader.lookup(&key).is_none() || i < 3);
        }
        let found = files.load(key).await.unwrap().unwrap();
        assert!(
            matches!(found, Found::File(_)),
            "served even when not cached"
        );
    }
    let stats = cache.send(GetCacheStats).await.unwrap();
    assert_eq!(
        (stats.items, stats.evictions, stats.admission_rejections),
        (3, 0, 7)
    );
    assert!(stats.bytes_cached <= stats.budget_bytes);
    assert!(reader.lookup("0.bin").is_some() && reader.lookup("9.bin").is_none());
}

#[actix_rt::test]
async fn file_cache_a_load_never_compresses_and_quick_bytes_give_way_to_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let css = "a { color: red }\n".repeat(500);
    std::fs::write(dir.path().join("a.css"), &css).unwrap();
    let reader = reader(dir.path(), 1 << 20);
    let (_tree, files) = start(reader.clone()).await;
    let cache = files.actor();
    let load = || files.load("a.css".into());
    let Found::File(first) = load().await.unwrap().unwrap() else {
        panic!("not a file")
    };
    assert!(!first.has_encoded() && first.compressible && first.varies());
    assert_eq!(first.identity.as_deref(), Some(css.as_bytes()));
    assert!(matches!(
        load().await.unwrap().unwrap(),
        Found::Unchanged(_)
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = cache.send(GetCacheStats).await.unwrap();
    assert_eq!(
        (stats.background_compressions, stats.compression_queue),
        (0, 0)
    );

    // A request's quick bytes become the entry's first form, and the entry is queued
    // for the stored level, which replaces them.
    let quick = codecs_quick(Coding::Br, css.as_bytes());
    let quick_etag = Encoded::new(first.digest, Coding::Br, quick.clone(), false).etag;
    cache
        .send(KeepEncoded {
            file: Arc::clone(&first),
            coding: Coding::Br,
            bytes: Some(quick.clone()),
        })
        .await
        .unwrap();
    let mut stored = reader.lookup("a.css").unwrap();
    for _ in 0..200 {
        if stored.encoded(Coding::Br).expect("kept").stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stored = reader.lookup("a.css").unwrap();
    }
    let encoded = stored.encoded(Coding::Br).unwrap();
    assert!(encoded.stored, "built at the stored level");
    assert!(encoded.bytes.len() <= quick.len(), "the smaller bytes stay");
    if encoded.bytes != quick {
        assert_ne!(encoded.etag, quick_etag, "other bytes, other tag");
    }
    // Not a second form, though: another coding waits for demand.
    cache
        .send(KeepEncoded {
            file: Arc::clone(&stored),
            coding: Coding::Gzip,
            bytes: Some(quick.clone()),
        })
        .await
        .unwrap();
    assert!(
        reader
            .lookup("a.css")
            .unwrap()
            .encoded(Coding::Gzip)
            .is_none()
    );
    assert_eq!(
        stored.etag, first.etag,
        "identity's tag depends on content only"
    );
    assert_eq!(
        reader
            .codecs()
            .decode(Coding::Br, &encoded.bytes, stored.len)
            .unwrap(),
        css.as_bytes()
    );
    // A second coding, once asked for, joins it.
    let both = compressed(cache, &reader, "a.css", Coding::Gzip).await;
    assert!(both.encoded(Coding::Br).is_some() && both.identity.is_some());
    let stats = cache.send(GetCacheStats).await.unwrap();
    assert_eq!((stats.background_compressions, stats.items), (2, 1));
    assert_eq!(stats.compression_queue, 0);
    assert_eq!(stats.bytes_cached, both.cost());
    let held: Vec<(&str, u64)> = stats
        .encodings
        .iter()
        .map(|e| (e.encoding, e.held))
        .collect();
    assert_eq!(
        held,
        [
            ("identity", 0),
            ("gzip", 1),
            ("br", 1),
            ("zstd", 0),
            ("dcz", 0),
            ("dcb", 0)
        ]
    );

    // A file whose quick bytes do not pay is no longer compressible.
    std::fs::write(dir.path().join("b.css"), &css).unwrap();
    let Found::File(b) = files.load("b.css".into()).await.unwrap().unwrap() else {
        panic!("not a file")
    };
    cache
        .send(KeepEncoded {
            file: b,
            coding: Coding::Zstd,
            bytes: None,
        })
        .await
        .unwrap();
    let b = reader.lookup("b.css").unwrap();
    assert!(!b.compressible && !b.varies() && b.identity.is_some());
}

fn codecs_quick(coding: Coding, data: &[u8]) -> Bytes {
    let mut compressor = crate::codec::Codecs::direct().compressor().unwrap();
    let level = crate::codec::Levels::QUICK.of(coding);
    Bytes::from(compressor.encode(coding, level, data).unwrap())
}

#[actix_rt::test]
async fn file_cache_identity_copies_stay_within_their_share_of_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let text = |n: usize| format!("line {n} of a page that compresses well\n").repeat(400);
    for n in 0..3 {
        std::fs::write(dir.path().join(format!("{n}.txt")), text(n)).unwrap();
    }
    let len = text(0).len() as u64;
    // Room for one copy: 1% of a budget of 150 copies' length.
    let opts = StaticFileOpts {
        root_dir: dir.path().to_owned(),
        max_cache_size: 150 * len,
        cache_expiration: Duration::from_secs(3600),
        store: crate::config::Store::CompressedOnly,
        identity_copy_percent: 1,
        ..crate::config::Opts::default().static_files
    };
    let reader = FileCacheReader::new(opts, crate::codec::Codecs::direct()).unwrap();
    let (_tree, files) = start(reader.clone()).await;
    let cache = files.actor();
    let mut entries = Vec::new();
    for n in 0..3 {
        let key = format!("{n}.txt");
        files.load(key.clone()).await.unwrap().unwrap();
        let compressed = compressed(cache, &reader, &key, Coding::Gzip).await;
        assert!(compressed.identity.is_none(), "compressed-only");
        entries.push((compressed, Bytes::from(text(n))));
    }
    for (file, identity) in &entries {
        cache
            .send(KeepIdentity {
                file: Arc::clone(file),
                identity: identity.clone(),
            })
            .await
            .unwrap();
    }
    let stats = cache.send(GetCacheStats).await.unwrap();
    assert_eq!(
        (stats.identity_copies, stats.identity_copies_refused),
        (1, 2)
    );
    assert_eq!(stats.identity_copy_bytes, len);
    let kept = reader.lookup("0.txt").unwrap();
    assert!(kept.identity_copy && kept.encoded(Coding::Gzip).is_some());
    assert_eq!(kept.identity.as_deref(), Some(text(0).as_bytes()));
    // An offer for an entry that was replaced since is ignored.
    cache
        .send(KeepIdentity {
            file: Arc::clone(&entries[0].0),
            identity: entries[0].1.clone(),
        })
        .await
        .unwrap();
    assert_eq!(cache.send(GetCacheStats).await.unwrap().identity_copies, 1);
    // Evicting the entry gives its share back.
    cache.send(ClearCache).await.unwrap();
    assert_eq!(
        cache.send(GetCacheStats).await.unwrap().identity_copy_bytes,
        0
    );
}
