//! Cost of leanserve's [`Pool`] against deadpool's managed pool, measured side by side in
//! one run on the same trivial object (a `u64`), both pools pre-warmed so no object is
//! made while measuring. Target: an uncontended acquire and release under 100 ns.
//!
//! `cargo bench --bench pool`
//!
//! Three parts:
//!
//! - **Criterion, uncontended**: leanserve's `try_acquire` (no runtime, no wait) and its
//!   `acquire(timeout).await`, and deadpool's `get().await`, each followed by the guard's
//!   drop. The async paths run as one loop inside a single `block_on` of a current-thread
//!   tokio runtime per criterion batch, so the time per iteration is the acquire and
//!   release alone, without a `block_on` around each.
//! - **Paired, uncontended**: rounds of the same three loops alternate and the median
//!   nanoseconds per acquire and release of each path are printed, which holds up better
//!   than three separate estimates on a shared, noisy machine.
//! - **Contention grid**: on a two-thread tokio runtime, `workers` tasks share a pool of
//!   `size` objects and loop: take the time, acquire (leanserve with a 10 s timeout,
//!   deadpool with its wait timeout set to 10 s, so both arm a timer only when they wait),
//!   record the wait, hold the object across one `yield_now`, release. Every cell runs a
//!   fixed number of acquires per round; rounds alternate between the pools (and which one
//!   goes first), and the table gives each pool's median over rounds of the per-round
//!   p50 and p99 acquire latency, and the median of the per-round p99 ratios.
//!
//! Deadpool keeps its defaults otherwise (FIFO idle queue, a no-op `recycle` on every
//! get); leanserve keeps its (LIFO idle list, every hold registered for leak detection).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use leanserve::{Manager, Pool, PoolSpec};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

/// Timeout given to every waiting acquire; never reached.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Makes numbered `u64`s for leanserve's pool.
#[derive(Default)]
struct Numbers(AtomicU64);

impl Manager for Numbers {
    type Object = u64;
    type Error = Infallible;

    fn create(&self) -> Result<u64, Infallible> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// Makes numbered `u64`s for deadpool's pool.
#[derive(Default)]
struct DeadNumbers(AtomicU64);

impl deadpool::managed::Manager for DeadNumbers {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

type DeadPool = deadpool::managed::Pool<DeadNumbers>;

/// A leanserve pool of at most `size` objects, all of them made.
fn leanserve_pool(size: usize) -> Pool<Numbers> {
    let pool = Pool::new("bench", PoolSpec::new(size).fixed(), Numbers::default()).unwrap();
    let all: Vec<_> = (0..size).map(|_| pool.try_acquire().unwrap()).collect();
    drop(all);
    pool
}

/// A deadpool pool of at most `size` objects with a 10 s wait timeout, all of them made.
fn deadpool_pool(runtime: &Runtime, size: usize) -> DeadPool {
    let pool = DeadPool::builder(DeadNumbers::default())
        .max_size(size)
        .wait_timeout(Some(TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut all = Vec::new();
        for _ in 0..size {
            all.push(pool.get().await.unwrap());
        }
    });
    pool
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `iters` uncontended `try_acquire` + drop; no runtime involved.
fn leanserve_try(pool: &Pool<Numbers>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        drop(black_box(pool.try_acquire().unwrap()));
    }
    start.elapsed()
}

/// `iters` uncontended `acquire(timeout).await` + drop in one `block_on`.
fn leanserve_async(runtime: &Runtime, pool: &Pool<Numbers>, iters: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            drop(black_box(pool.acquire(TIMEOUT).await.unwrap()));
        }
        start.elapsed()
    })
}

/// `iters` uncontended `get().await` + drop in one `block_on`.
fn deadpool_get(runtime: &Runtime, pool: &DeadPool, iters: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            drop(black_box(pool.get().await.unwrap()));
        }
        start.elapsed()
    })
}

fn uncontended(c: &mut Criterion) {
    let runtime = current_thread();
    let leanserve = leanserve_pool(8);
    let deadpool = deadpool_pool(&runtime, 8);
    let mut group = c.benchmark_group("uncontended");
    group.bench_function("leanserve_try_acquire", |b| {
        b.iter_custom(|iters| leanserve_try(&leanserve, iters))
    });
    group.bench_function("leanserve_acquire_await", |b| {
        b.iter_custom(|iters| leanserve_async(&runtime, &leanserve, iters))
    });
    group.bench_function("deadpool_get_await", |b| {
        b.iter_custom(|iters| deadpool_get(&runtime, &deadpool, iters))
    });
    group.finish();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Alternates rounds of the three uncontended loops and prints their medians.
fn paired_uncontended() {
    const ROUNDS: usize = 21;
    const CALLS: u64 = 200_000;
    let runtime = current_thread();
    let leanserve = leanserve_pool(8);
    let deadpool = deadpool_pool(&runtime, 8);
    let per_call = |elapsed: Duration| elapsed.as_nanos() as f64 / CALLS as f64;
    let (mut try_ns, mut async_ns, mut dead_ns) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS + 1 {
        let measured = [
            per_call(leanserve_try(&leanserve, CALLS)),
            per_call(leanserve_async(&runtime, &leanserve, CALLS)),
            per_call(deadpool_get(&runtime, &deadpool, CALLS)),
        ];
        if round > 0 {
            // round 0 warms every path up
            try_ns.push(measured[0]);
            async_ns.push(measured[1]);
            dead_ns.push(measured[2]);
        }
    }
    println!(
        "\nuncontended, paired ({ROUNDS} rounds x {CALLS} acquire+release), median per call:\n"
    );
    println!("| path | ns per acquire+release |");
    println!("|---|---|");
    println!("| leanserve try_acquire | {:.1} |", median(&mut try_ns));
    println!(
        "| leanserve acquire().await | {:.1} |",
        median(&mut async_ns)
    );
    println!("| deadpool get().await | {:.1} |", median(&mut dead_ns));
}

/// Acquires per pool per round in every cell, split evenly among the workers.
const CELL_ACQUIRES: usize = 19_200;
/// Measured rounds per pool per cell, after one warm-up round each.
const CELL_ROUNDS: usize = 5;

/// Acquire latencies, in ns, of one round.
struct Round(Vec<u64>);

impl Round {
    fn percentile(&self, p: f64) -> f64 {
        let index = ((self.0.len() - 1) as f64 * p).round() as usize;
        self.0[index] as f64
    }
}

/// Starts `workers` tasks together, each running `per_worker` times: take the time,
/// `acquire`, record the wait, yield once while holding the object, release.
fn contend<G, F>(runtime: &Runtime, workers: usize, acquire: G) -> Round
where
    G: Fn() -> F + Clone + Send + 'static,
    F: Future<Output: Send> + Send,
{
    let per_worker = CELL_ACQUIRES / workers;
    let mut waits = runtime.block_on(async {
        let barrier = Arc::new(Barrier::new(workers));
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (barrier, acquire) = (barrier.clone(), acquire.clone());
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(per_worker);
                    barrier.wait().await;
                    for _ in 0..per_worker {
                        let start = Instant::now();
                        let object = acquire().await;
                        waits.push(start.elapsed().as_nanos() as u64);
                        tokio::task::yield_now().await;
                        drop(object);
                    }
                    waits
                })
            })
            .collect();
        let mut all = Vec::with_capacity(CELL_ACQUIRES);
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    waits.sort_unstable();
    Round(waits)
}

fn show(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// Runs the workers × size grid, pools alternating by round, and prints the table.
fn contention_grid() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\ncontended acquire latency: 2 runtime threads, {CELL_ACQUIRES} acquires per pool per round, \
         hold = one yield_now, medians over {CELL_ROUNDS} rounds; p99 ratio = median of per-round \
         leanserve p99 / deadpool p99\n"
    );
    println!(
        "| workers | size | leanserve p50 | leanserve p99 | deadpool p50 | deadpool p99 | p99 ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for workers in [4, 16, 64] {
        for size in [2, 8, 32] {
            let leanserve = leanserve_pool(size);
            let deadpool = deadpool_pool(&runtime, size);
            let run_leanserve = || {
                let pool = leanserve.clone();
                contend(&runtime, workers, move || {
                    let pool = pool.clone();
                    async move { pool.acquire(TIMEOUT).await.unwrap() }
                })
            };
            let run_deadpool = || {
                let pool = deadpool.clone();
                contend(&runtime, workers, move || {
                    let pool = pool.clone();
                    async move { pool.get().await.unwrap() }
                })
            };
            let (mut lean_p50, mut lean_p99) = (Vec::new(), Vec::new());
            let (mut dead_p50, mut dead_p99, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..CELL_ROUNDS + 1 {
                // Alternate which pool goes first, so neither always runs on a machine
                // the other has just warmed (or heated).
                let (lean, dead) = if round % 2 == 0 {
                    let lean = run_leanserve();
                    (lean, run_deadpool())
                } else {
                    let dead = run_deadpool();
                    (run_leanserve(), dead)
                };
                if round > 0 {
                    // round 0 warms both pools and the runtime up
                    lean_p50.push(lean.percentile(0.50));
                    lean_p99.push(lean.percentile(0.99));
                    dead_p50.push(dead.percentile(0.50));
                    dead_p99.push(dead.percentile(0.99));
                    ratios.push(lean.percentile(0.99) / dead.percentile(0.99));
                }
            }
            println!(
                "| {workers} | {size} | {} | {} | {} | {} | {:.2} |",
                show(median(&mut lean_p50)),
                show(median(&mut lean_p99)),
                show(median(&mut dead_p50)),
                show(median(&mut dead_p99)),
                median(&mut ratios),
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = uncontended
}

fn main() {
    benches();
    // `cargo test --all-targets` runs this binary without `--bench`: criterion then runs
    // each function once, and the long paired parts are skipped.
    if std::env::args().any(|arg| arg == "--bench") {
        paired_uncontended();
        contention_grid();
    }
    Criterion::default().configure_from_args().final_summary();
}
