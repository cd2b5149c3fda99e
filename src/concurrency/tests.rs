//! The limiter against a simulated service, on tokio's paused clock (no wall time): a
//! service with a capacity knee at `k` (latency grows with concurrency past it), offered
//! several times its capacity; then the overload ends; and a dependency that slows down
//! with no knee at all. The acceptable ranges follow Vector's adaptive concurrency tests.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

const BASE: Duration = Duration::from_millis(10);

fn paused() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The service: `base` alone; past `knee` in flight, slower in proportion (processor
/// sharing); `knee = None`: `base` whatever the concurrency.
#[derive(Clone)]
struct Service {
    in_flight: Arc<AtomicUsize>,
    knee: Option<usize>,
    base: Arc<Mutex<Duration>>,
}

impl Service {
    fn latency(&self) -> Duration {
        let base = *self.base.lock().unwrap();
        let in_flight = self.in_flight.load(SeqCst);
        match self.knee {
            Some(knee) if in_flight > knee => base.mul_f64(in_flight as f64 / knee as f64),
            _ => base,
        }
    }
}

struct Phase {
    seconds: u64,
    per_second: u64,
}

/// Offers `phases` of constant-rate load; answers the limit sampled every 10 ms, per
/// phase, and per phase the (admitted, rejected) counts and admitted latencies.
async fn run(
    limiter: &Limiter,
    service: &Service,
    phases: &[Phase],
) -> Vec<(Vec<usize>, usize, usize, Vec<Duration>)> {
    let mut results = Vec::new();
    for phase in phases {
        let limits = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (limiter, limits) = (limiter.clone(), limits.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                loop {
                    tick.tick().await;
                    limits.lock().unwrap().push(limiter.stats().limit);
                }
            })
        };
        let outcomes = Arc::new(Mutex::new((0usize, 0usize, Vec::new())));
        let mut tasks = Vec::new();
        let per_ms = phase.per_second as f64 / 1000.0;
        let mut owed = 0.0;
        for _ in 0..phase.seconds * 1000 {
            owed += per_ms;
            while owed >= 1.0 {
                owed -= 1.0;
                let (limiter, service, outcomes) =
                    (limiter.clone(), service.clone(), outcomes.clone());
                tasks.push(tokio::spawn(async move {
                    match limiter.acquire().await {
                        Ok(permit) => {
                            service.in_flight.fetch_add(1, SeqCst);
                            let latency = service.latency();
                            tokio::time::sleep(latency).await;
                            service.in_flight.fetch_sub(1, SeqCst);
                            drop(permit);
                            let mut outcomes = outcomes.lock().unwrap();
                            outcomes.0 += 1;
                            outcomes.2.push(latency);
                        }
                        Err(_) => outcomes.lock().unwrap().1 += 1,
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        sampler.abort();
        let limits = limits.lock().unwrap().clone();
        let (admitted, rejected, latencies) = outcomes.lock().unwrap().clone();
        results.push((limits, admitted, rejected, latencies));
    }
    results
}

/// A limiter's options with its limit fixed at two slots and a queue of `queue_size`.
fn two_slots(queue_size: usize) -> LimiterConfig {
    LimiterConfig {
        limit: LimitConfig {
            initial: 2,
            min: 2,
            max: 2,
            ..LimitConfig::default()
        },
        queue_size,
        ..LimiterConfig::default()
    }
}

fn limiter(min: usize) -> Limiter {
    let config = LimiterConfig {
        limit: LimitConfig {
            initial: min,
            min,
            max: 1000,
            ..LimitConfig::default()
        },
        ..LimiterConfig::default()
    };
    Limiter::with_clock("sim", config, paused)
}

#[tokio::test(start_paused = true)]
async fn limiter_settles_at_the_knee_and_recovers_after_overload() {
    for knee in [4usize, 8, 32] {
        let service = Service {
            in_flight: Arc::default(),
            knee: Some(knee),
            base: Arc::new(Mutex::new(BASE)),
        };
        let limiter = limiter(1);
        let capacity = knee as u64 * 1000 / BASE.as_millis() as u64;
        let results = run(
            &limiter,
            &service,
            &[
                // Warm-up, then 20 s at 3x capacity, then 10 s at half of it.
                Phase {
                    seconds: 5,
                    per_second: capacity * 3,
                },
                Phase {
                    seconds: 20,
                    per_second: capacity * 3,
                },
                Phase {
                    seconds: 10,
                    per_second: capacity / 2,
                },
            ],
        )
        .await;
        let (limits, admitted, rejected, _) = &results[1];
        let mean = limits.iter().sum::<usize>() as f64 / limits.len() as f64;
        let max = *limits.iter().max().unwrap();
        eprintln!(
            "knee {knee}: limit mean {mean:.2} max {max}; overload: {admitted} admitted, {rejected} refused"
        );
        assert!(
            mean >= knee as f64 && mean <= 1.25 * knee as f64,
            "knee {knee}: mean limit {mean:.2} outside [k, 1.25k]"
        );
        assert!(
            max as f64 <= 1.5 * knee as f64,
            "knee {knee}: max limit {max}"
        );
        // Goodput: the admitted work keeps the service near capacity.
        assert!(
            *admitted as f64 >= 0.9 * capacity as f64 * 20.0,
            "knee {knee}: {admitted} admitted"
        );
        // Recovery: within 10 s of the end of overload nothing is refused and admitted
        // requests run at no-load latency.
        let (limits, _, rejected, latencies) = &results[2];
        assert_eq!(
            *rejected, 0,
            "knee {knee}: refusals after the overload ended"
        );
        let mut sorted = latencies.clone();
        sorted.sort();
        assert_eq!(sorted[sorted.len() / 2], BASE, "knee {knee}");
        assert!(
            *limits.last().unwrap() >= knee,
            "knee {knee}: limit {limits:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn limiter_a_slow_dependency_without_a_knee_never_drives_the_limit_below_its_floor() {
    let service = Service {
        in_flight: Arc::default(),
        knee: None,
        base: Arc::new(Mutex::new(BASE)),
    };
    let limiter = limiter(6);
    run(
        &limiter,
        &service,
        &[Phase {
            seconds: 5,
            per_second: 500,
        }],
    )
    .await;
    *service.base.lock().unwrap() = BASE * 5;
    let results = run(
        &limiter,
        &service,
        &[Phase {
            seconds: 20,
            per_second: 500,
        }],
    )
    .await;
    let (limits, admitted, _, _) = &results[0];
    assert!(limits.iter().all(|&limit| limit >= 6), "{limits:?}");
    assert!(*admitted > 0);
}

#[tokio::test(start_paused = true)]
async fn limiter_refuses_fast_when_the_queue_is_full_and_holds_the_slot_until_the_permit_drops() {
    let config = two_slots(1);
    let limiter = Limiter::with_clock("tiny", config, paused);
    let a = limiter.acquire().await.unwrap();
    let _b = limiter.acquire().await.unwrap();
    let queued = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire().await.map(drop) })
    };
    tokio::task::yield_now().await;
    let started = tokio::time::Instant::now();
    assert!(matches!(
        limiter.acquire().await,
        Err(Overloaded::QueueFull {
            queued: 1,
            in_flight: 2,
            ..
        })
    ));
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a full queue refuses at once"
    );
    assert_eq!(limiter.stats().queued, 1);
    drop(a);
    queued.await.unwrap().unwrap();
    let stats = limiter.stats();
    assert_eq!(
        (stats.in_flight, stats.admitted_total, stats.rejected_total),
        (1, 3, 1)
    );
    // A queued request times out after queue_timeout.
    let _c = limiter.acquire().await.unwrap();
    match limiter.acquire().await {
        Err(Overloaded::Timeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(100)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn limiter_a_standing_queue_shortens_the_wait_and_serves_the_newest_first() {
    let config = FixedOne::one();
    let limiter = Limiter::with_clock("codel", config, paused);
    let held = limiter.acquire().await.unwrap();
    // A burst: a waiter gets the long timeout while a request found a free slot within
    // the last 20 ms (the held one, at 0 ms).
    match limiter.acquire().await {
        Err(Overloaded::Timeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(100)),
        other => panic!("{other:?}"),
    }
    // Nobody found a free slot for 100 ms: a standing queue. Newcomers now wait only the
    // overload timeout.
    match limiter.acquire().await {
        Err(Overloaded::Timeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(1)),
        other => panic!("{other:?}"),
    }
    // Served newest first: of two waiters, the later one gets the freed slot.
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..2)
        .map(|n| {
            let (limiter, order) = (limiter.clone(), order.clone());
            tokio::spawn(async move {
                if let Ok(permit) = limiter.acquire().await {
                    order.lock().unwrap().push(n);
                    drop(permit);
                }
            })
        })
        .collect();
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(order.lock().unwrap().first(), Some(&1), "{order:?}");
}

/// One slot that never moves, a queue of 16, 100 ms and 1 ms timeouts.
struct FixedOne;

impl FixedOne {
    fn one() -> LimiterConfig {
        LimiterConfig {
            limit: LimitConfig {
                initial: 1,
                min: 1,
                max: 1,
                ..LimitConfig::default()
            },
            queue_size: 16,
            ..LimiterConfig::default()
        }
    }
}

/// A fresh adaptive limit is in slow start: a queue behind it means the limit is still
/// too low to know, so no waiter is displaced or cut to the overload timeout; each waits
/// its full queue timeout. The same queue behind a fixed limit is standing.
#[tokio::test(start_paused = true)]
async fn limiter_a_queue_during_slow_start_is_not_standing() {
    for (max, displaced) in [(100, false), (2, true)] {
        let config = LimiterConfig {
            limit: LimitConfig {
                initial: 2,
                min: 2,
                max,
                ..LimitConfig::default()
            },
            queue_size: 16,
            ..LimiterConfig::default()
        };
        let limiter = Limiter::with_clock("start", config, paused);
        let _held = [
            limiter.acquire().await.unwrap(),
            limiter.acquire().await.unwrap(),
        ];
        tokio::time::advance(Duration::from_millis(150)).await;
        let mut waiters = Vec::new();
        for _ in 0..6 {
            let limiter = limiter.clone();
            waiters.push(tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let result = limiter.acquire().await;
                (started.elapsed(), result.is_err())
            }));
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_micros(100)).await;
        }
        let mut waits = Vec::new();
        for waiter in waiters {
            let (waited, refused) = waiter.await.unwrap();
            assert!(refused, "max {max}: no slot ever came free");
            waits.push(waited);
        }
        let stats = limiter.stats();
        assert_eq!(stats.displaced_total > 0, displaced, "max {max}: {stats:?}");
        if !displaced {
            assert!(
                waits.iter().all(|&w| w >= Duration::from_millis(100)),
                "max {max}: every waiter waits its queue timeout: {waits:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn limiter_a_full_standing_queue_refuses_its_oldest_waiter_at_once() {
    let config = LimiterConfig {
        // Long enough for the queue to fill before anyone times out.
        overload_timeout: Duration::from_millis(5),
        ..two_slots(16)
    };
    let limiter = Limiter::with_clock("lifo", config, paused);
    let held = [
        limiter.acquire().await.unwrap(),
        limiter.acquire().await.unwrap(),
    ];
    // No free slot for 150 ms: the queue is standing.
    tokio::time::advance(Duration::from_millis(150)).await;
    let spawn_waiter = |n: usize| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let result = limiter.acquire().await;
            (n, started.elapsed(), result)
        })
    };
    // Four waiters, 0.5 ms apart, fill the standing queue (its depth is twice the limit).
    let mut waiters = Vec::new();
    for n in 0..4 {
        waiters.push(spawn_waiter(n));
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_micros(500)).await;
    }
    assert_eq!(limiter.stats().queued, 4);
    // A fifth displaces the oldest, which is refused then, 2 ms into its 5 ms wait.
    waiters.push(spawn_waiter(4));
    let (n, waited, result) = waiters.remove(0).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        waited,
        Duration::from_millis(2),
        "refused at once when displaced"
    );
    assert!(
        matches!(
            result,
            Err(Overloaded::Displaced {
                limit: 2,
                in_flight: 2,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(limiter.stats().queued, 4);
    // Freed slots go newest first: the two newest are admitted, the two others wait out
    // their 5 ms.
    drop(held);
    let mut outcomes = Vec::new();
    for waiter in waiters {
        let (n, _, result) = waiter.await.unwrap();
        outcomes.push((n, result.is_ok()));
    }
    assert_eq!(
        outcomes,
        [(1, false), (2, false), (3, true), (4, true)],
        "newest first"
    );
    let stats = limiter.stats();
    assert_eq!(
        (
            stats.rejected_total,
            stats.displaced_total,
            stats.timeouts_total
        ),
        (3, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn limiter_a_standing_queue_outlasts_one_free_moment_and_ends_when_slots_are_mostly_free() {
    let limiter = Limiter::with_clock("hysteresis", FixedOne::one(), paused);
    let held = limiter.acquire().await.unwrap();
    let waited = |result: Result<Permit, Overloaded>| match result {
        Err(Overloaded::Timeout { waited, .. }) => waited,
        other => panic!("{other:?}"),
    };
    // 100 ms without a free slot: standing.
    assert_eq!(waited(limiter.acquire().await), Duration::from_millis(100));
    assert_eq!(waited(limiter.acquire().await), Duration::from_millis(1));
    // One arrival finds the slot free (a gap in the arrivals)...
    drop(held);
    let held = limiter.acquire().await.unwrap();
    // ...and the queue is still standing: the next waiter gets the short wait.
    assert_eq!(waited(limiter.acquire().await), Duration::from_millis(1));
    drop(held);
    // A window of 100 ms in which most arrivals find a free slot ends it.
    for _ in 0..10 {
        drop(limiter.acquire().await.unwrap());
        tokio::time::advance(Duration::from_millis(12)).await;
    }
    let _held = limiter.acquire().await.unwrap();
    assert_eq!(
        waited(limiter.acquire().await),
        Duration::from_millis(100),
        "a burst again: the long wait"
    );
}

/// The waiters of a burst that turns into a standing queue do not wait out their long
/// timeout: the first standing arrival refuses those beyond the standing depth at once.
#[tokio::test(start_paused = true)]
async fn limiter_a_burst_that_turns_standing_refuses_its_oldest_waiters_at_once() {
    let config = two_slots(16);
    let limiter = Limiter::with_clock("onset", config, paused);
    let _held = [
        limiter.acquire().await.unwrap(),
        limiter.acquire().await.unwrap(),
    ];
    let spawn_waiter = |n: usize| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let result = limiter.acquire().await;
            (n, started.elapsed(), result)
        })
    };
    // Eight arrive within the burst allowance: each may wait 100 ms.
    let mut waiters: Vec<_> = (0..8).map(spawn_waiter).collect();
    tokio::task::yield_now().await;
    assert_eq!(limiter.stats().queued, 8);
    // 25 ms later no request has found a free slot for over 20 ms: the next arrival finds
    // a standing queue, which keeps its three newest waiters and the newcomer (twice the
    // limit) and refuses the five oldest now, 25 ms into their 100 ms.
    tokio::time::advance(Duration::from_millis(25)).await;
    waiters.push(spawn_waiter(8));
    tokio::task::yield_now().await;
    assert_eq!(limiter.stats().queued, 4);
    for waiter in waiters.drain(..5) {
        let (n, waited, result) = waiter.await.unwrap();
        assert_eq!(waited, Duration::from_millis(25), "waiter {n}");
        assert!(
            matches!(result, Err(Overloaded::Displaced { .. })),
            "waiter {n}: {result:?}"
        );
    }
    assert_eq!(limiter.stats().displaced_total, 5);
}
