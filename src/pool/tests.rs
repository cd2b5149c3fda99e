//! The pool's behaviour: hand-off, errors, panics, leaks, upkeep and autoscaling. Time
//! comes from a manual clock or tokio's paused clock, never from sleeping.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::spec::SpecError;
use super::stats::DiscardReason;
use super::*;

/// An object that knows its serial number.
#[derive(Debug)]
struct Obj {
    id: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the test service refused: {0}")]
struct Refused(&'static str);

/// A manager whose behaviour the test switches.
#[derive(Clone, Default)]
struct Probe {
    made: Arc<AtomicU64>,
    cleaned: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    refuse_recycle: Arc<AtomicBool>,
    invalid: Arc<AtomicBool>,
}

impl Manager for Probe {
    type Object = Obj;
    type Error = Refused;

    fn create(&self) -> Result<Obj, Refused> {
        if self.fail.load(SeqCst) {
            return Err(Refused("wrong password"));
        }
        Ok(Obj {
            id: self.made.fetch_add(1, SeqCst),
        })
    }

    fn recycle(&self, _: &mut Obj) -> bool {
        !self.refuse_recycle.load(SeqCst)
    }

    fn validate(&self, _: &mut Obj) -> bool {
        !self.invalid.load(SeqCst)
    }

    fn cleanup(&self, _: Obj) {
        self.cleaned.fetch_add(1, SeqCst);
    }

    fn size_of(&self, _: &Obj) -> Option<u64> {
        Some(100)
    }
}

thread_local! {
    static OFFSET: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// A clock this thread moves by hand.
fn manual() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now) + OFFSET.with(Cell::get)
}

fn advance(by: Duration) {
    OFFSET.with(|offset| offset.set(offset.get() + by));
}

fn paused() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn manual_pool(spec: PoolSpec) -> (Pool<Probe>, Probe) {
    let probe = Probe::default();
    let pool = Pool::with_clock("probe", spec, probe.clone(), manual).unwrap();
    (pool, probe)
}

#[test]
fn pool_try_acquire_reuses_the_warmest_object_and_stops_at_the_maximum() {
    let (pool, _) = manual_pool(PoolSpec::new(2).fixed());
    let a = pool.try_acquire().unwrap();
    let b = pool.try_acquire().unwrap();
    assert_eq!((a.id, b.id), (0, 1));
    match pool.try_acquire() {
        Err(AcquireError::Exhausted {
            pool,
            in_use,
            max_size,
        }) => assert_eq!((pool.as_str(), in_use, max_size), ("probe", 2, 2)),
        other => panic!("{other:?}"),
    }
    drop(a);
    drop(b);
    assert_eq!(
        pool.try_acquire().unwrap().id,
        1,
        "LIFO: the last returned first"
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.recycled, stats.size, stats.idle),
        (2, 3, 2, 2)
    );
    assert_eq!(stats.idle_bytes, 200);
}

#[tokio::test(start_paused = true)]
async fn pool_waiters_are_served_in_arrival_order_by_hand_off() {
    let pool =
        Pool::with_clock("fifo", PoolSpec::new(1).fixed(), Probe::default(), paused).unwrap();
    let held = pool.acquire(Duration::from_secs(5)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let guard = pool.acquire(Duration::from_secs(5)).await.unwrap();
            order.lock().unwrap().push(n);
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(guard);
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.stats().waiters, 4);
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.waited, stats.timeouts), (1, 4, 0));
    assert!(stats.acquire_wait.p99_us.unwrap() >= 25_000, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn pool_timeout_says_how_long_it_waited_and_who_else_waits() {
    let pool =
        Pool::with_clock("slow", PoolSpec::new(1).fixed(), Probe::default(), paused).unwrap();
    let _held = pool.acquire(Duration::from_secs(1)).await.unwrap();
    let other = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(Duration::from_secs(60)).await.map(drop) })
    };
    tokio::task::yield_now().await;
    match pool.acquire(Duration::from_millis(250)).await {
        Err(AcquireError::Timeout {
            pool,
            waited,
            waiters,
            in_use,
            max_size,
        }) => {
            assert_eq!(pool, "slow");
            assert_eq!(waited, Duration::from_millis(250));
            assert_eq!((waiters, in_use, max_size), (1, 1, 1));
        }
        other => panic!("{other:?}"),
    }
    let stats = pool.stats();
    assert_eq!((stats.timeouts, stats.waiters), (1, 1));
    other.abort();
}

#[tokio::test(start_paused = true)]
async fn pool_create_failure_is_reported_at_once_to_the_acquirer_and_every_waiter() {
    let probe = Probe::default();
    let pool = Pool::with_clock("db", PoolSpec::new(1).fixed(), probe.clone(), paused).unwrap();
    let held = pool.acquire(Duration::from_secs(1)).await.unwrap();
    let started = tokio::time::Instant::now();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(Duration::from_secs(30)).await.map(drop) })
        })
        .collect();
    tokio::task::yield_now().await;
    probe.fail.store(true, SeqCst);
    // The object breaks: its slot goes to the first waiter, whose creation fails, which
    // passes the slot on, and so on: every waiter hears of the cause, none waits 30 s.
    held.discard();
    for waiter in waiters {
        match waiter.await.unwrap() {
            Err(AcquireError::Create { pool, source }) => {
                assert_eq!(pool, "db");
                assert_eq!(
                    source.to_string(),
                    "the test service refused: wrong password"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(1),
        "no waiting for a timeout"
    );
    let stats = pool.stats();
    assert_eq!(
        (
            stats.create_failures,
            stats.timeouts,
            stats.size,
            stats.in_use
        ),
        (3, 0, 0, 0)
    );
    assert_eq!(stats.discarded(DiscardReason::Discarded), 1);
}

#[test]
fn pool_a_thousand_panics_while_holding_leak_no_slot_and_reuse_no_object() {
    let spec = PoolSpec::new(4).fixed().min_idle(4);
    let (pool, probe) = manual_pool(spec);
    pool.maintain();
    assert_eq!(pool.stats().idle, 4, "min_idle is filled");
    let panicked = Arc::new(Mutex::new(HashSet::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (pool, panicked) = (pool.clone(), panicked.clone());
            std::thread::spawn(move || {
                for _ in 0..250 {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let guard = pool.acquire_blocking(Duration::from_secs(10)).unwrap();
                        panicked.lock().unwrap().insert(guard.id);
                        panic!("the holder fails half-way");
                    }));
                    assert!(result.is_err());
                }
            })
        })
        .collect();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for thread in threads {
        thread.join().unwrap();
    }
    std::panic::set_hook(hook);
    let panicked = panicked.lock().unwrap();
    assert_eq!(panicked.len(), 1000, "every panic got a fresh object");
    let stats = pool.stats();
    assert_eq!(stats.discarded(DiscardReason::Panicked), 1000);
    assert_eq!((stats.in_use, stats.waiters, stats.timeouts), (0, 0, 0));
    assert!(stats.size <= 4);
    assert_eq!(probe.cleaned.load(SeqCst), 1000);
    pool.maintain();
    let stats = pool.stats();
    assert_eq!(
        (stats.size, stats.idle),
        (4, 4),
        "back to the configured size"
    );
    let reused: Vec<_> = (0..4).map(|_| pool.try_acquire().unwrap()).collect();
    assert!(reused.iter().all(|guard| !panicked.contains(&guard.id)));
}

#[tokio::test]
async fn pool_an_async_holder_that_panics_across_an_await_discards_its_object() {
    let pool = Pool::new("async", PoolSpec::new(1).fixed(), Probe::default()).unwrap();
    let task = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let guard = pool.acquire(Duration::from_secs(1)).await.unwrap();
            tokio::task::yield_now().await;
            if guard.id == 0 {
                panic!("a handler fails while holding a connection");
            }
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    let stats = pool.stats();
    assert_eq!(stats.discarded(DiscardReason::Panicked), 1);
    assert_eq!((stats.size, stats.in_use), (0, 0));
    assert_eq!(pool.acquire(Duration::from_secs(1)).await.unwrap().id, 1);
}

#[tokio::test(start_paused = true)]
async fn pool_a_cancelled_acquire_leaves_the_queue_and_loses_nothing() {
    let pool =
        Pool::with_clock("cancel", PoolSpec::new(1).fixed(), Probe::default(), paused).unwrap();
    let held = pool.acquire(Duration::from_secs(1)).await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(Duration::from_secs(60)).await.map(drop) })
    };
    tokio::task::yield_now().await;
    assert_eq!(pool.stats().waiters, 1);
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(pool.stats().waiters, 0);
    drop(held);
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.in_use, stats.size), (1, 0, 1));
    assert_eq!(pool.acquire(Duration::from_secs(1)).await.unwrap().id, 0);
}

#[test]
fn pool_reports_a_long_hold_once_as_a_leak() {
    let spec = PoolSpec::new(2).leak_threshold(Some(Duration::from_secs(30)));
    let (pool, _) = manual_pool(spec);
    let guard = pool.try_acquire().unwrap();
    let line = line!() - 1;
    advance(Duration::from_secs(29));
    assert_eq!(pool.maintain().leaks, 0);
    advance(Duration::from_secs(2));
    assert_eq!(pool.maintain().leaks, 1);
    assert_eq!(pool.maintain().leaks, 0, "reported once");
    let stats = pool.stats();
    assert_eq!((stats.leaks, stats.leaking), (1, 1));
    drop(guard);
    let stats = pool.stats();
    assert_eq!((stats.leaks, stats.leaking), (1, 0));
    assert_eq!(
        stats.hold_time.p99_us,
        Some(10_000_000),
        "in the open bucket"
    );
    let _ = line;
}

#[test]
fn pool_reaper_drops_idle_objects_above_min_idle_and_old_ones() {
    let spec = PoolSpec::new(4)
        .fixed()
        .min_idle(1)
        .idle_timeout(Some(Duration::from_secs(60)))
        .max_lifetime(Some(Duration::from_secs(600)));
    let (pool, probe) = manual_pool(spec);
    let guards: Vec<_> = (0..4).map(|_| pool.try_acquire().unwrap()).collect();
    drop(guards);
    advance(Duration::from_secs(61));
    let report = pool.maintain();
    assert_eq!(report.reaped, 3);
    assert_eq!(pool.stats().discarded(DiscardReason::IdleTimeout), 3);
    assert_eq!(pool.stats().idle, 1, "min_idle kept");
    // Past the lifetime (jitter shortens it by at most a tenth) the last one goes too,
    // and the reaper makes a fresh one for min_idle.
    advance(Duration::from_secs(600));
    let report = pool.maintain();
    assert_eq!((report.reaped, report.filled), (1, 1));
    assert_eq!(pool.stats().discarded(DiscardReason::MaxLifetime), 1);
    assert_eq!(pool.try_acquire().unwrap().id, 4);
    assert_eq!(probe.cleaned.load(SeqCst), 4);
}

#[test]
fn pool_validates_objects_idle_past_the_window_and_discards_bad_ones() {
    let spec = PoolSpec::new(2).validate_after(Some(Duration::from_secs(30)));
    let (pool, probe) = manual_pool(spec);
    drop(pool.try_acquire().unwrap());
    probe.invalid.store(true, SeqCst);
    advance(Duration::from_secs(10));
    assert_eq!(
        pool.try_acquire().unwrap().id,
        0,
        "fresh enough: not validated"
    );
    advance(Duration::from_secs(31));
    assert_eq!(
        pool.try_acquire().unwrap().id,
        1,
        "stale and invalid: replaced"
    );
    let stats = pool.stats();
    assert_eq!(stats.discarded(DiscardReason::Invalid), 1);
    assert_eq!(stats.acquires, 3, "the failed validation is not an acquire");
}

#[test]
fn pool_recycle_can_refuse_and_discard_counts_by_reason() {
    let (pool, probe) = manual_pool(PoolSpec::new(2));
    probe.refuse_recycle.store(true, SeqCst);
    drop(pool.try_acquire().unwrap());
    probe.refuse_recycle.store(false, SeqCst);
    pool.try_acquire().unwrap().discard();
    let stats = pool.stats();
    assert_eq!(stats.discarded(DiscardReason::Recycle), 1);
    assert_eq!(stats.discarded(DiscardReason::Discarded), 1);
    assert_eq!((stats.size, stats.discarded_total()), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn pool_resize_grants_waiters_on_growth_and_drops_idle_on_shrink() {
    let pool = Pool::with_clock("resize", PoolSpec::new(1), Probe::default(), paused).unwrap();
    let held = pool.acquire(Duration::from_secs(1)).await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(Duration::from_secs(60)).await.map(|g| g.id) })
    };
    tokio::task::yield_now().await;
    let stats = pool
        .resize(
            &Resize {
                max_size: Some(2),
                ..Resize::default()
            },
            "admin",
        )
        .unwrap();
    assert_eq!(stats.max_size, 2);
    assert_eq!(
        waiter.await.unwrap().unwrap(),
        1,
        "the new room went to the waiter"
    );
    let decision = &pool.stats().decisions[0];
    assert_eq!(
        (decision.from, decision.to, decision.by.as_str()),
        (1, 2, "admin")
    );
    drop(held);
    assert_eq!(pool.stats().idle, 2);
    pool.resize(
        &Resize {
            max_size: Some(1),
            ..Resize::default()
        },
        "tuner",
    )
    .unwrap();
    let stats = pool.stats();
    assert_eq!(
        (
            stats.size,
            stats.idle,
            stats.discarded(DiscardReason::Shrunk)
        ),
        (1, 1, 1)
    );
    let error = pool
        .resize(
            &Resize {
                min_idle: Some(3),
                ..Resize::default()
            },
            "admin",
        )
        .unwrap_err();
    assert_eq!(error.field, "min_idle");
}

#[tokio::test(start_paused = true)]
async fn pool_close_fails_waiters_and_later_acquires() {
    let probe = Probe::default();
    let pool = Pool::with_clock("gone", PoolSpec::new(1), probe.clone(), paused).unwrap();
    let held = pool.acquire(Duration::from_secs(1)).await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(Duration::from_secs(60)).await.map(drop) })
    };
    tokio::task::yield_now().await;
    pool.close();
    assert!(matches!(
        waiter.await.unwrap(),
        Err(AcquireError::Closed { .. })
    ));
    assert!(matches!(
        pool.try_acquire(),
        Err(AcquireError::Closed { .. })
    ));
    drop(held);
    let stats = pool.stats();
    assert_eq!((stats.size, stats.discarded(DiscardReason::Closed)), (0, 1));
    assert_eq!(probe.cleaned.load(SeqCst), 1);
}

#[test]
fn pools_registry_checks_names_types_and_duplicates() {
    let pools = Pools::with_clock(manual);
    pools
        .create("conn", PoolSpec::new(2), Probe::default())
        .unwrap();
    assert_eq!(
        pools
            .create("conn", PoolSpec::new(2), Probe::default())
            .unwrap_err(),
        PoolError::Exists {
            name: "conn".into()
        }
    );
    for bad in ["", "Conn", "9a", "a-b", &"x".repeat(65)] {
        assert!(matches!(
            pools.create(bad, PoolSpec::new(1), Probe::default()),
            Err(PoolError::InvalidName { .. })
        ));
    }
    assert!(matches!(
        pools.create("zero", PoolSpec::new(0), Probe::default()),
        Err(PoolError::Invalid {
            error: SpecError {
                field: "max_size",
                ..
            },
            ..
        })
    ));
    assert!(pools.get::<Probe>("conn").is_ok());
    assert!(matches!(
        pools.get::<FnManager<u8, Refused>>("conn"),
        Err(PoolError::WrongType { .. })
    ));
    assert!(matches!(
        pools.get::<Probe>("nope"),
        Err(PoolError::NotFound { .. })
    ));
    assert!(matches!(
        pools.resize(
            "conn",
            &Resize {
                max_size: Some(0),
                ..Resize::default()
            },
            "admin"
        ),
        Err(PoolError::Invalid { .. })
    ));
    pools.remove("conn").unwrap();
    assert_eq!(pools.names(), Vec::<String>::new());
    assert!(matches!(
        pools.remove("conn"),
        Err(PoolError::NotFound { .. })
    ));
}

#[test]
fn pools_registry_exposes_metrics_with_pool_and_reason_labels() {
    let pools = Pools::with_clock(manual);
    let pool = pools
        .create("conn", PoolSpec::new(2), Probe::default())
        .unwrap();
    pool.try_acquire().unwrap().discard();
    drop(pool.try_acquire().unwrap());
    let mut out = crate::metrics::Collector::default();
    crate::metrics::Source::collect(&pools, &mut out);
    let text = crate::metrics::exposition::render(out.families());
    assert!(
        text.contains("leanserve_pool_size{pool=\"conn\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("leanserve_pool_discarded_total{pool=\"conn\",reason=\"discarded\"} 1\n")
    );
    assert!(
        text.contains(
            "leanserve_pool_acquire_wait_seconds_bucket{pool=\"conn\",le=\"0.00005\"} 2\n"
        )
    );
    assert!(text.contains("leanserve_pool_hold_seconds_count{pool=\"conn\"} 2\n"));
    assert_eq!(out.flat()["pool_conn_idle"], 1.0);
    assert_eq!(crate::metrics::MemoryAccount::accounted_bytes(&pools), 100);
}

/// One run of the step-load simulation: returns (p99 acquire wait, mean objects held).
async fn step_load(spec: PoolSpec) -> (Duration, f64) {
    const HOLD: Duration = Duration::from_millis(10);
    let pools = Pools::with_clock(paused);
    let pool = pools.create("sim", spec, Probe::default()).unwrap();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let maintainer = {
        let pools = pools.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                pools.maintain_all();
            }
        })
    };
    let sampler = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let (mut total, mut samples) = (0.0, 0u32);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for _ in 0..400 {
                tick.tick().await;
                total += pool.stats().size as f64;
                samples += 1;
            }
            total / samples as f64
        })
    };
    // Poisson arrivals, exponential holds (mean 10 ms), the same pseudo-random stream in
    // every run: 10 s at 100 requests/s (1 busy on average), 10 s at 800/s (8 busy), then
    // 20 s at 100/s again.
    let mut draws = 0u64;
    let mut uniform = move || {
        draws += 1;
        (xxhash_rust::xxh3::xxh3_64(&draws.to_le_bytes()) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut tasks = Vec::new();
    for (seconds, per_second) in [(10u64, 100u64), (10, 800), (20, 100)] {
        let per_ms = per_second as f64 / 1000.0;
        for _ in 0..seconds * 1000 {
            let u = uniform();
            let (mut arrivals, mut p) = (0u32, (-per_ms).exp());
            let mut cdf = p;
            while u > cdf && arrivals < 50 {
                arrivals += 1;
                p *= per_ms / arrivals as f64;
                cdf += p;
            }
            for _ in 0..arrivals {
                let hold = HOLD
                    .mul_f64(-(1.0 - uniform()).ln())
                    .max(Duration::from_millis(1));
                let (pool, waits) = (pool.clone(), waits.clone());
                tasks.push(tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    if let Ok(guard) = pool.acquire(Duration::from_secs(2)).await {
                        waits.lock().unwrap().push(started.elapsed());
                        tokio::time::sleep(hold).await;
                        drop(guard);
                    } else {
                        waits.lock().unwrap().push(Duration::from_secs(2));
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let held = sampler.await.unwrap();
    maintainer.abort();
    let mut waits = waits.lock().unwrap().clone();
    waits.sort();
    (waits[waits.len() * 99 / 100], held)
}

#[tokio::test(start_paused = true)]
async fn pool_autoscaling_beats_a_small_fixed_pool_on_wait_and_a_large_one_on_objects_held() {
    let base = PoolSpec::new(4)
        .idle_timeout(Some(Duration::from_secs(60)))
        .wait_target(Duration::from_millis(5));
    let (small_p99, small_held) = step_load(base.clone().fixed()).await;
    let (large_p99, large_held) = step_load(
        PoolSpec {
            max_size: 32,
            scale_max: 32,
            ..base.clone()
        }
        .fixed(),
    )
    .await;
    let (auto_p99, auto_held) = step_load(base.scale(2, 32)).await;
    eprintln!(
        "p99 wait: small {small_p99:?}, large {large_p99:?}, autoscaled {auto_p99:?}; \
         objects held: small {small_held:.2}, large {large_held:.2}, autoscaled {auto_held:.2}"
    );
    assert!(
        auto_p99.as_secs_f64() <= 0.5 * small_p99.as_secs_f64(),
        "p99 wait {auto_p99:?} vs small fixed {small_p99:?}"
    );
    assert!(
        auto_held <= 0.7 * large_held,
        "objects held {auto_held:.2} vs large fixed {large_held:.2}"
    );
}
