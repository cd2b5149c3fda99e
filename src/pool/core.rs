//! The pool: its state under one mutex, the guard that returns an object, and the
//! hand-off to waiters.
//!
//! Every path takes the lock once (twice when it must make or validate an object, which
//! happens outside the lock) and calls no user code while holding it, so a `Manager` that
//! panics or blocks can never poison or stall the pool for others.
//!
//! **Hand-off.** A returning object goes straight to the oldest waiter, under the lock,
//! instead of back to the idle list: a newcomer cannot barge in ahead of someone who has
//! waited, and a waiter never wakes up to find nothing. When a slot frees up instead
//! (an object was discarded), the oldest waiter is granted the slot and makes the object
//! itself, so it gets a creation failure at once rather than a timeout.
//!
//! **Holds.** Every object handed out is registered with the acquirer's source location
//! and the time, in a slab indexed by the guard: the maintainer scans it for leaks and
//! the return measures the hold time from it.
//!
//! **Panics.** A guard dropped while its thread unwinds (a panic in the code holding it,
//! sync or async: the future's locals are dropped by the unwind) discards its object.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use super::Manager;
use super::autoscale::{self, Decision, Direction, Policy, Trend, Window};
use super::registry::Resize;
use super::spec::{PoolSpec, SpecError};
use super::stats::{Buckets, DiscardReason, MaintainReport, PoolStats, WaitFigures};
use crate::metrics::Reading;

/// Decisions a pool keeps for `/admin/pools`.
const DECISIONS_KEPT: usize = 20;

/// Where time comes from: `Instant::now`, or a test's simulated clock.
pub(crate) type Clock = fn() -> Instant;

/// Why an acquire produced no object.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// No object became free within the timeout.
    #[error(
        "pool `{pool}`: no object within {waited:?} ({in_use} in use of at most {max_size}, {waiters} other acquirer(s) waiting)"
    )]
    Timeout {
        /// The pool's name.
        pool: String,
        /// How long this acquire waited.
        waited: Duration,
        /// Others still waiting when it gave up.
        waiters: usize,
        /// Objects in use when it gave up.
        in_use: usize,
        /// The pool's maximum then.
        max_size: usize,
    },
    /// `try_acquire` found every object in use and the pool at its maximum.
    #[error("pool `{pool}`: every object is in use ({in_use} of at most {max_size})")]
    Exhausted {
        /// The pool's name.
        pool: String,
        /// Objects in use.
        in_use: usize,
        /// The pool's maximum.
        max_size: usize,
    },
    /// Making a new object failed; reported at once, not as a timeout.
    #[error("pool `{pool}`: creating an object failed: {source}")]
    Create {
        /// The pool's name.
        pool: String,
        /// Why the manager could not make it.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The pool was removed.
    #[error("pool `{pool}` is closed")]
    Closed {
        /// The pool's name.
        pool: String,
    },
}

/// A named pool of `M::Object`s. Cheap to clone: clones share the pool.
pub struct Pool<M: Manager> {
    pub(crate) inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .finish()
    }
}

pub(crate) struct Inner<M: Manager> {
    pub(crate) name: String,
    manager: M,
    state: Mutex<State<M::Object>>,
    clock: Clock,
}

/// What the pool knows of one object, carried by its guard while in use.
#[derive(Clone, Copy, Debug)]
struct Meta {
    born: Instant,
    expires: Option<Instant>,
    /// Heap bytes it held when last measured.
    bytes: u64,
}

struct Idle<T> {
    object: T,
    meta: Meta,
    since: Instant,
}

/// One object out of the pool: who took it and when.
struct Hold {
    at: &'static Location<'static>,
    since: Instant,
    reported: bool,
}

/// What a waiter is handed.
enum Grant<T> {
    Object(T, Meta, usize),
    /// A slot: make the object yourself (the hold is registered).
    Create(usize),
    Closed,
}

enum Slot<T> {
    Waiting(Option<Waker>),
    Granted(Grant<T>),
    Taken,
}

struct Waiter<T> {
    at: &'static Location<'static>,
    since: Instant,
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

#[derive(Default)]
struct Counters {
    acquires: u64,
    waited: u64,
    created: u64,
    create_failures: u64,
    recycled: u64,
    discarded: [u64; DiscardReason::ALL.len()],
    timeouts: u64,
    leaks: u64,
    grown: u64,
    shrunk: u64,
}

/// The current autoscaling window.
struct WindowAcc {
    start: Instant,
    /// The hold-time reading at the window's start: the holds ended in the window, over
    /// its length, give the mean in use (Little's law).
    hold_start: Reading,
    peak: usize,
    acquires: u64,
    waited: u64,
    timeouts: u64,
    wait_start: Reading,
}

struct State<T> {
    spec: PoolSpec,
    max_size: usize,
    /// LIFO: the most recently returned object is reused first; the front ages out.
    idle: Vec<Idle<T>>,
    idle_bytes: u64,
    /// Objects alive: idle, in use, being made.
    size: usize,
    in_use: usize,
    waiters: VecDeque<Arc<Waiter<T>>>,
    holds: Vec<Option<Hold>>,
    free_holds: Vec<usize>,
    /// Waiters granted under the lock, woken once it is released.
    woken: Vec<(Arc<Waiter<T>>, Option<Waker>)>,
    closed: bool,
    objects_made: u64,
    counters: Counters,
    wait: Buckets,
    hold: Buckets,
    window: WindowAcc,
    trend: Trend,
    decisions: VecDeque<Decision>,
}

/// What `take` got: an object, or a place in the queue.
enum Taken<M: Manager> {
    Guard(Pooled<M>),
    Queued(Arc<Waiter<M::Object>>),
}

/// What `begin` found, decided under the lock.
enum Begin<T> {
    Ready(T, Meta, usize),
    Validate(T, Meta, usize),
    Create(usize),
    Wait(Arc<Waiter<T>>),
    Exhausted { in_use: usize, max_size: usize },
    Closed,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool's lock. Waiters granted while it is held are woken after it is released, so
/// a wake-up (which may unpark another thread) never lengthens the critical section.
struct Locked<'a, T> {
    guard: Option<MutexGuard<'a, State<T>>>,
}

impl<'a, T> Locked<'a, T> {
    fn new(mutex: &'a Mutex<State<T>>) -> Self {
        Locked {
            guard: Some(lock(mutex)),
        }
    }
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let wake = |(waiter, waker): (Arc<Waiter<T>>, Option<Waker>)| {
            waiter.ready.notify_one();
            if let Some(waker) = waker {
                waker.wake();
            }
        };
        match guard.woken.len() {
            0 => {}
            // The common case (one hand-off) keeps the list's capacity for next time.
            1 => {
                let one = guard.woken.pop().expect("one granted waiter");
                drop(guard);
                wake(one);
            }
            _ => {
                let woken = std::mem::take(&mut guard.woken);
                drop(guard);
                woken.into_iter().for_each(wake);
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<T> State<T> {
    fn new(spec: PoolSpec, now: Instant) -> State<T> {
        State {
            max_size: spec.max_size,
            spec,
            idle: Vec::new(),
            idle_bytes: 0,
            size: 0,
            in_use: 0,
            waiters: VecDeque::new(),
            holds: Vec::new(),
            free_holds: Vec::new(),
            woken: Vec::new(),
            closed: false,
            objects_made: 0,
            counters: Counters::default(),
            wait: Buckets::default(),
            hold: Buckets::default(),
            window: WindowAcc {
                start: now,
                hold_start: Reading::default(),
                peak: 0,
                acquires: 0,
                waited: 0,
                timeouts: 0,
                wait_start: Reading::default(),
            },
            trend: Trend::default(),
            decisions: VecDeque::new(),
        }
    }

    fn set_in_use(&mut self, _now: Instant, in_use: usize) {
        self.in_use = in_use;
        self.window.peak = self.window.peak.max(in_use);
    }

    /// Registers a hold and counts the object as in use.
    fn take(&mut self, at: &'static Location<'static>, now: Instant) -> usize {
        self.set_in_use(now, self.in_use + 1);
        self.counters.acquires += 1;
        self.window.acquires += 1;
        let hold = Hold {
            at,
            since: now,
            reported: false,
        };
        match self.free_holds.pop() {
            Some(index) => {
                self.holds[index] = Some(hold);
                index
            }
            None => {
                self.holds.push(Some(hold));
                self.holds.len() - 1
            }
        }
    }

    /// Ends a hold and counts the object as no longer in use.
    fn give_back(&mut self, hold: usize, now: Instant) {
        if let Some(taken) = self.holds.get_mut(hold).and_then(Option::take) {
            self.hold
                .observe(now.saturating_duration_since(taken.since));
            self.free_holds.push(hold);
        }
        self.set_in_use(now, self.in_use.saturating_sub(1));
    }

    /// Hands `grant` to the oldest waiter (which must exist), registering its hold.
    fn grant_oldest(&mut self, now: Instant, object: Option<(T, Meta)>) -> Result<(), (T, Meta)> {
        let Some(waiter) = self.waiters.pop_front() else {
            return match object {
                Some(object) => Err(object),
                None => Ok(()),
            };
        };
        self.wait
            .observe(now.saturating_duration_since(waiter.since));
        let hold = self.take(waiter.at, now);
        let grant = match object {
            Some((object, meta)) => Grant::Object(object, meta, hold),
            None => Grant::Create(hold),
        };
        let mut slot = lock(&waiter.slot);
        if let Slot::Waiting(waker) = std::mem::replace(&mut *slot, Slot::Granted(grant)) {
            drop(slot);
            self.woken.push((waiter, waker));
        }
        Ok(())
    }

    /// Lets waiters make objects while there is room.
    fn grant_slots(&mut self, now: Instant) {
        while !self.closed && self.size < self.max_size && !self.waiters.is_empty() {
            self.size += 1;
            let _ = self.grant_oldest(now, None);
        }
    }

    /// Counts an object gone for `reason` and passes its slot on.
    fn discarded(&mut self, reason: DiscardReason, now: Instant) {
        self.size = self.size.saturating_sub(1);
        self.counters.discarded[reason.index()] += 1;
        self.grant_slots(now);
    }

    fn record(&mut self, decision: Decision) {
        match decision.direction {
            Direction::Grow => self.counters.grown += 1,
            Direction::Shrink => self.counters.shrunk += 1,
        }
        if self.decisions.len() == DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(decision);
    }

    /// Sets the maximum: waiters get the new room; idle objects over it go.
    fn set_max(&mut self, max_size: usize, now: Instant, gone: &mut Vec<T>) {
        self.max_size = max_size;
        while self.size > self.max_size && !self.idle.is_empty() {
            let idle = self.idle.remove(0);
            self.idle_bytes = self.idle_bytes.saturating_sub(idle.meta.bytes);
            gone.push(idle.object);
            self.size -= 1;
            self.counters.discarded[DiscardReason::Shrunk.index()] += 1;
        }
        self.grant_slots(now);
    }

    fn window(&self, now: Instant) -> Window {
        let acc = &self.window;
        let length = now.saturating_duration_since(acc.start);
        // Holds that ended in the window, plus the ones still running (counted from the
        // window's start at most).
        let ended = self.hold.reading().since(&acc.hold_start).sum_us as f64 / 1e6;
        let running: f64 = self
            .holds
            .iter()
            .flatten()
            .map(|hold| {
                now.saturating_duration_since(hold.since.max(acc.start))
                    .as_secs_f64()
            })
            .sum();
        let area = ended + running;
        let waits = self.wait.reading().since(&acc.wait_start);
        Window {
            length,
            acquires: acc.acquires,
            waited: acc.waited,
            timeouts: acc.timeouts,
            p99_wait: waits.quantile_us(0.99).map(Duration::from_micros),
            mean_in_use: if length.is_zero() {
                self.in_use as f64
            } else {
                area / length.as_secs_f64()
            },
            peak_in_use: acc.peak,
        }
    }

    fn start_window(&mut self, now: Instant) {
        self.window = WindowAcc {
            start: now,
            hold_start: self.hold.reading(),
            peak: self.in_use,
            acquires: 0,
            waited: 0,
            timeouts: 0,
            wait_start: self.wait.reading(),
        };
    }
}

impl<M: Manager> Pool<M> {
    /// A pool named `name` of objects `manager` makes. Prefer
    /// [`Subsystems::create_pool`](crate::Subsystems::create_pool), which registers it
    /// for upkeep and statistics; a pool made here is never reaped
    /// or autoscaled unless its owner calls [`Pool::maintain`].
    pub fn new(name: impl Into<String>, spec: PoolSpec, manager: M) -> Result<Pool<M>, SpecError> {
        Pool::with_clock(name, spec, manager, Instant::now)
    }

    pub(crate) fn with_clock(
        name: impl Into<String>,
        spec: PoolSpec,
        manager: M,
        clock: Clock,
    ) -> Result<Pool<M>, SpecError> {
        spec.check()?;
        let now = clock();
        Ok(Pool {
            inner: Arc::new(Inner {
                name: name.into(),
                manager,
                state: Mutex::new(State::new(spec, now)),
                clock,
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The manager that makes this pool's objects.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// Takes an object, waiting at most `timeout` for one. The guard returns it on drop.
    #[track_caller]
    pub fn acquire(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Pooled<M>, AcquireError>> + Send + 'static {
        let at = Location::caller();
        let inner = self.inner.clone();
        async move { inner.acquire_async(at, timeout).await }
    }

    /// Takes an object, blocking this thread at most `timeout` for one. For code on the
    /// blocking pool; never call it on an async worker thread.
    #[track_caller]
    pub fn acquire_blocking(&self, timeout: Duration) -> Result<Pooled<M>, AcquireError> {
        let at = Location::caller();
        self.inner.acquire_blocking(at, timeout)
    }

    /// Takes an idle object, or makes one if under the maximum; never waits.
    #[track_caller]
    pub fn try_acquire(&self) -> Result<Pooled<M>, AcquireError> {
        let at = Location::caller();
        match self.inner.take(at, (self.inner.clock)(), false)? {
            Taken::Guard(guard) => Ok(guard),
            Taken::Queued(_) => unreachable!("take(wait = false) never queues"),
        }
    }

    /// The pool's default acquire timeout (`acquire_timeout` of its spec).
    pub fn acquire_timeout(&self) -> Duration {
        Locked::new(&self.inner.state).spec.acquire_timeout
    }

    /// The pool's figures now.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    /// Reaps, refills, scans for leaks and autoscales; the pool manager calls it on its
    /// interval. Makes objects (to refill `min_idle`) on this thread.
    pub fn maintain(&self) -> MaintainReport {
        self.inner.maintain()
    }

    /// Changes the pool's limits; `by` names who asked (`admin`, `tuner`, `api`).
    pub fn resize(&self, resize: &Resize, by: &str) -> Result<PoolStats, SpecError> {
        self.inner.resize(resize, by)
    }

    /// Closes the pool: idle objects are cleaned up, waiters and later acquires get
    /// [`AcquireError::Closed`], objects in use are cleaned up when returned.
    pub fn close(&self) {
        self.inner.close()
    }
}

impl<M: Manager> Inner<M> {
    fn closed(&self) -> AcquireError {
        AcquireError::Closed {
            pool: self.name.clone(),
        }
    }

    fn guard(self: &Arc<Self>, object: M::Object, meta: Meta, hold: usize) -> Pooled<M> {
        Pooled {
            object: Some(object),
            meta,
            hold,
            pool: self.clone(),
        }
    }

    fn begin(&self, at: &'static Location<'static>, now: Instant, wait: bool) -> Begin<M::Object> {
        let mut expired = Vec::new();
        let outcome = {
            let mut state = Locked::new(&self.state);
            let state = &mut *state;
            loop {
                if state.closed {
                    break Begin::Closed;
                }
                if let Some(idle) = state.idle.pop() {
                    state.idle_bytes = state.idle_bytes.saturating_sub(idle.meta.bytes);
                    if idle.meta.expires.is_some_and(|expires| now >= expires) {
                        expired.push(idle.object);
                        state.size -= 1;
                        state.counters.discarded[DiscardReason::MaxLifetime.index()] += 1;
                        continue;
                    }
                    state.wait.observe_zero();
                    let hold = state.take(at, now);
                    let stale = state
                        .spec
                        .validate_after
                        .is_some_and(|after| now.saturating_duration_since(idle.since) >= after);
                    break if stale {
                        Begin::Validate(idle.object, idle.meta, hold)
                    } else {
                        Begin::Ready(idle.object, idle.meta, hold)
                    };
                }
                if state.size < state.max_size {
                    state.size += 1;
                    state.wait.observe_zero();
                    break Begin::Create(state.take(at, now));
                }
                if !wait {
                    break Begin::Exhausted {
                        in_use: state.in_use,
                        max_size: state.max_size,
                    };
                }
                state.counters.waited += 1;
                state.window.waited += 1;
                let waiter = Arc::new(Waiter {
                    at,
                    since: now,
                    slot: Mutex::new(Slot::Waiting(None)),
                    ready: Condvar::new(),
                });
                state.waiters.push_back(waiter.clone());
                break Begin::Wait(waiter);
            }
        };
        for object in expired {
            self.manager.cleanup(object);
        }
        outcome
    }

    /// Validates an object that sat idle; `None` when it failed (it is discarded).
    fn validated(
        self: &Arc<Self>,
        mut object: M::Object,
        meta: Meta,
        hold: usize,
    ) -> Option<Pooled<M>> {
        if self.manager.validate(&mut object) {
            return Some(self.guard(object, meta, hold));
        }
        let now = (self.clock)();
        {
            let mut state = Locked::new(&self.state);
            state.give_back(hold, now);
            state.counters.acquires -= 1;
            state.discarded(DiscardReason::Invalid, now);
        }
        self.manager.cleanup(object);
        None
    }

    /// Makes an object for a reserved slot and hold.
    fn create_for(self: &Arc<Self>, hold: usize) -> Result<Pooled<M>, AcquireError> {
        match self.make() {
            Ok((object, meta)) => Ok(self.guard(object, meta, hold)),
            Err(error) => {
                let now = (self.clock)();
                {
                    let mut state = Locked::new(&self.state);
                    state.give_back(hold, now);
                    state.counters.acquires -= 1;
                    state.counters.create_failures += 1;
                    state.size = state.size.saturating_sub(1);
                    // The next waiter tries for itself: it gets its own answer at once.
                    state.grant_slots(now);
                }
                Err(AcquireError::Create {
                    pool: self.name.clone(),
                    source: Arc::new(error),
                })
            }
        }
    }

    /// Makes an object, measuring the heap bytes its creation allocated (where jemalloc
    /// counts them), and counts it.
    fn make(&self) -> Result<(M::Object, Meta), M::Error> {
        let before = crate::alloc::thread_allocated();
        let object = self.manager.create()?;
        let measured = match (before, crate::alloc::thread_allocated()) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => 0,
        };
        Ok((object, self.born(measured)))
    }

    /// Counts a new object and gives it its lifetime (shortened by up to a tenth, so
    /// objects made together do not all expire together).
    fn born(&self, bytes: u64) -> Meta {
        let now = (self.clock)();
        let mut state = Locked::new(&self.state);
        state.counters.created += 1;
        state.objects_made += 1;
        let expires = state.spec.max_lifetime.map(|lifetime| {
            let jitter = xxhash_rust::xxh3::xxh3_64(&state.objects_made.to_le_bytes()) % 1000;
            now + lifetime - lifetime.mul_f64(jitter as f64 / 10_000.0)
        });
        Meta {
            born: now,
            expires,
            bytes,
        }
    }

    /// An object now (idle, validated, or made under the maximum), or `Err`; with
    /// `wait`, a place in the queue when every object is in use.
    fn take(
        self: &Arc<Self>,
        at: &'static Location<'static>,
        now: Instant,
        wait: bool,
    ) -> Result<Taken<M>, AcquireError> {
        loop {
            return match self.begin(at, now, wait) {
                Begin::Ready(object, meta, hold) => {
                    Ok(Taken::Guard(self.guard(object, meta, hold)))
                }
                Begin::Validate(object, meta, hold) => match self.validated(object, meta, hold) {
                    Some(guard) => Ok(Taken::Guard(guard)),
                    None => continue,
                },
                Begin::Create(hold) => self.create_for(hold).map(Taken::Guard),
                Begin::Closed => Err(self.closed()),
                Begin::Exhausted { in_use, max_size } => Err(AcquireError::Exhausted {
                    pool: self.name.clone(),
                    in_use,
                    max_size,
                }),
                Begin::Wait(waiter) => Ok(Taken::Queued(waiter)),
            };
        }
    }

    async fn acquire_async(
        self: &Arc<Self>,
        at: &'static Location<'static>,
        timeout: Duration,
    ) -> Result<Pooled<M>, AcquireError> {
        let started = (self.clock)();
        let waiter = match self.take(at, started, true)? {
            Taken::Guard(guard) => return Ok(guard),
            Taken::Queued(waiter) => waiter,
        };
        // Dropped before it resolves (the caller gave up), it leaves the queue and
        // returns anything it was granted meanwhile.
        let mut pending = Pending {
            inner: self,
            waiter: Some(waiter.clone()),
        };
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let grant = match tokio::time::timeout_at(deadline, Granted(&waiter)).await {
            Ok(grant) => Ok(grant),
            Err(_) => self.abandon(&waiter, started),
        };
        pending.waiter = None;
        self.granted(grant?)
    }

    fn acquire_blocking(
        self: &Arc<Self>,
        at: &'static Location<'static>,
        timeout: Duration,
    ) -> Result<Pooled<M>, AcquireError> {
        let started = (self.clock)();
        let deadline = started + timeout;
        let waiter = match self.take(at, started, true)? {
            Taken::Guard(guard) => return Ok(guard),
            Taken::Queued(waiter) => waiter,
        };
        let grant = {
            let mut slot = lock(&waiter.slot);
            loop {
                if let Slot::Granted(_) = &*slot {
                    match std::mem::replace(&mut *slot, Slot::Taken) {
                        Slot::Granted(grant) => break Some(grant),
                        _ => unreachable!(),
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                slot = waiter
                    .ready
                    .wait_timeout(slot, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let grant = match grant {
            Some(grant) => grant,
            None => self.abandon(&waiter, started)?,
        };
        self.granted(grant)
    }

    /// Gives up waiting: leaves the queue, unless a grant arrived meanwhile.
    fn abandon(
        &self,
        waiter: &Arc<Waiter<M::Object>>,
        started: Instant,
    ) -> Result<Grant<M::Object>, AcquireError> {
        let now = (self.clock)();
        let mut state = Locked::new(&self.state);
        state.waiters.retain(|other| !Arc::ptr_eq(other, waiter));
        let mut slot = lock(&waiter.slot);
        if let Slot::Granted(grant) = std::mem::replace(&mut *slot, Slot::Taken) {
            return Ok(grant);
        }
        state.counters.timeouts += 1;
        state.window.timeouts += 1;
        state.wait.observe(now.saturating_duration_since(started));
        Err(AcquireError::Timeout {
            pool: self.name.clone(),
            waited: now.saturating_duration_since(started),
            waiters: state.waiters.len(),
            in_use: state.in_use,
            max_size: state.max_size,
        })
    }

    /// A waiter that went away: out of the queue, and whatever it was granted goes back.
    fn cancel(&self, waiter: &Arc<Waiter<M::Object>>) {
        let now = (self.clock)();
        let grant = {
            let mut state = Locked::new(&self.state);
            state.waiters.retain(|other| !Arc::ptr_eq(other, waiter));
            let mut slot = lock(&waiter.slot);
            match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Granted(Grant::Create(hold)) => {
                    drop(slot);
                    state.give_back(hold, now);
                    state.counters.acquires -= 1;
                    state.size = state.size.saturating_sub(1);
                    state.grant_slots(now);
                    None
                }
                Slot::Granted(grant) => Some(grant),
                _ => None,
            }
        };
        if let Some(Grant::Object(object, meta, hold)) = grant {
            self.release(object, meta, hold, None);
        }
    }

    /// Turns a grant into a result.
    fn granted(self: &Arc<Self>, grant: Grant<M::Object>) -> Result<Pooled<M>, AcquireError> {
        match grant {
            Grant::Object(object, meta, hold) => Ok(self.guard(object, meta, hold)),
            Grant::Create(hold) => self.create_for(hold),
            Grant::Closed => Err(self.closed()),
        }
    }

    /// Takes back an object from a guard.
    fn release(
        &self,
        mut object: M::Object,
        meta: Meta,
        hold: usize,
        reason: Option<DiscardReason>,
    ) {
        let keep = reason.is_none() && self.manager.recycle(&mut object);
        let bytes = self.manager.size_of(&object).unwrap_or(meta.bytes);
        let now = (self.clock)();
        let leftover = {
            let mut state = Locked::new(&self.state);
            let state = &mut *state;
            state.give_back(hold, now);
            let reason = match reason {
                Some(reason) => Some(reason),
                None if !keep => Some(DiscardReason::Recycle),
                None if state.closed => Some(DiscardReason::Closed),
                None if state.size > state.max_size => Some(DiscardReason::Shrunk),
                None if meta.expires.is_some_and(|expires| now >= expires) => {
                    Some(DiscardReason::MaxLifetime)
                }
                None => None,
            };
            match reason {
                Some(reason) => {
                    state.discarded(reason, now);
                    Some(object)
                }
                None => {
                    state.counters.recycled += 1;
                    let meta = Meta { bytes, ..meta };
                    match state.grant_oldest(now, Some((object, meta))) {
                        Ok(()) => None,
                        Err((object, meta)) => {
                            state.idle_bytes += meta.bytes;
                            state.idle.push(Idle {
                                object,
                                meta,
                                since: now,
                            });
                            None
                        }
                    }
                }
            }
        };
        if let Some(object) = leftover {
            self.manager.cleanup(object);
        }
    }

    fn stats(&self) -> PoolStats {
        let now = (self.clock)();
        let state = Locked::new(&self.state);
        let leaking = match state.spec.leak_threshold {
            Some(threshold) => state
                .holds
                .iter()
                .flatten()
                .filter(|hold| now.saturating_duration_since(hold.since) >= threshold)
                .count(),
            None => 0,
        };
        let wait_reading = state.wait.reading();
        let hold_reading = state.hold.reading();
        PoolStats {
            name: self.name.clone(),
            spec: state.spec.clone(),
            max_size: state.max_size,
            size: state.size,
            idle: state.idle.len(),
            in_use: state.in_use,
            waiters: state.waiters.len(),
            acquires: state.counters.acquires,
            waited: state.counters.waited,
            created: state.counters.created,
            create_failures: state.counters.create_failures,
            recycled: state.counters.recycled,
            discarded: DiscardReason::ALL
                .iter()
                .map(|reason| (*reason, state.counters.discarded[reason.index()]))
                .collect(),
            timeouts: state.counters.timeouts,
            leaks: state.counters.leaks,
            grown: state.counters.grown,
            shrunk: state.counters.shrunk,
            leaking,
            acquire_wait: WaitFigures::of(&wait_reading),
            hold_time: WaitFigures::of(&hold_reading),
            idle_bytes: state.idle_bytes,
            closed: state.closed,
            decisions: state.decisions.iter().cloned().collect(),
            wait_reading,
            hold_reading,
        }
    }

    fn maintain(self: &Arc<Self>) -> MaintainReport {
        let now = (self.clock)();
        let mut report = MaintainReport::default();
        let mut gone = Vec::new();
        let mut leaks = Vec::new();
        let fill = {
            let mut state = Locked::new(&self.state);
            let state = &mut *state;
            if state.closed {
                return report;
            }
            // Past their lifetime: anywhere in the idle list.
            let mut index = 0;
            while index < state.idle.len() {
                if state.idle[index]
                    .meta
                    .expires
                    .is_some_and(|expires| now >= expires)
                {
                    let idle = state.idle.remove(index);
                    state.idle_bytes = state.idle_bytes.saturating_sub(idle.meta.bytes);
                    gone.push(idle.object);
                    state.size -= 1;
                    state.counters.discarded[DiscardReason::MaxLifetime.index()] += 1;
                } else {
                    index += 1;
                }
            }
            // Idle too long, above the minimum: the front is the longest idle.
            if let Some(timeout) = state.spec.idle_timeout {
                while state.idle.len() > state.spec.min_idle
                    && now.saturating_duration_since(state.idle[0].since) >= timeout
                {
                    let idle = state.idle.remove(0);
                    state.idle_bytes = state.idle_bytes.saturating_sub(idle.meta.bytes);
                    gone.push(idle.object);
                    state.size -= 1;
                    state.counters.discarded[DiscardReason::IdleTimeout.index()] += 1;
                }
            }
            report.reaped = gone.len();
            if let Some(threshold) = state.spec.leak_threshold {
                for hold in state.holds.iter_mut().flatten() {
                    let held = now.saturating_duration_since(hold.since);
                    if !hold.reported && held >= threshold {
                        hold.reported = true;
                        leaks.push((hold.at, held, threshold));
                    }
                }
                state.counters.leaks += leaks.len() as u64;
                report.leaks = leaks.len();
            }
            if state.spec.autoscale {
                let window = state.window(now);
                let policy = Policy {
                    scale_min: state.spec.scale_min,
                    scale_max: state.spec.scale_max,
                    wait_target: state.spec.wait_target,
                };
                let current = state.max_size;
                if let Some((to, direction, reason, evidence)) =
                    autoscale::decide(&window, &policy, current, &mut state.trend)
                {
                    let decision = Decision {
                        from: current,
                        to,
                        direction,
                        by: "autoscale".into(),
                        reason,
                        at_ms: unix_ms(),
                        evidence: Some(evidence),
                    };
                    state.set_max(to, now, &mut gone);
                    state.record(decision.clone());
                    report.decision = Some(decision);
                }
            }
            state.start_window(now);
            let want = state.spec.min_idle.saturating_sub(state.idle.len());
            let room = state.max_size.saturating_sub(state.size);
            let fill = want.min(room);
            state.size += fill;
            fill
        };
        for object in gone {
            self.manager.cleanup(object);
        }
        for (at, held, threshold) in leaks {
            log::warn!(
                "pool `{}`: an object acquired at {at} has been held for {held:.1?} (leak_threshold {threshold:?}); counted once as a leak",
                self.name
            );
        }
        for _ in 0..fill {
            match self.make() {
                Ok((object, meta)) => {
                    let bytes = self.manager.size_of(&object).unwrap_or(meta.bytes);
                    let now = (self.clock)();
                    let mut state = Locked::new(&self.state);
                    let meta = Meta { bytes, ..meta };
                    if let Err((object, meta)) = state.grant_oldest(now, Some((object, meta))) {
                        state.idle_bytes += meta.bytes;
                        state.idle.push(Idle {
                            object,
                            meta,
                            since: now,
                        });
                    }
                    report.filled += 1;
                }
                Err(error) => {
                    log::warn!("pool `{}`: refilling min_idle failed: {error}", self.name);
                    let now = (self.clock)();
                    let mut state = Locked::new(&self.state);
                    state.size = state.size.saturating_sub(1);
                    state.counters.create_failures += 1;
                    state.grant_slots(now);
                }
            }
        }
        report
    }

    fn resize(&self, resize: &Resize, by: &str) -> Result<PoolStats, SpecError> {
        let now = (self.clock)();
        let mut gone = Vec::new();
        {
            let mut state = Locked::new(&self.state);
            let mut spec = state.spec.clone();
            spec.max_size = resize.max_size.unwrap_or(state.max_size);
            if let Some(min_idle) = resize.min_idle {
                spec.min_idle = min_idle;
            }
            if let Some(scale_min) = resize.scale_min {
                spec.scale_min = scale_min;
            }
            if let Some(scale_max) = resize.scale_max {
                spec.scale_max = scale_max;
            }
            if let Some(autoscale) = resize.autoscale {
                spec.autoscale = autoscale;
            }
            spec.check()?;
            let from = state.max_size;
            state.spec = spec;
            if from != state.spec.max_size {
                let to = state.spec.max_size;
                state.set_max(to, now, &mut gone);
                state.record(Decision {
                    from,
                    to,
                    direction: if to > from {
                        Direction::Grow
                    } else {
                        Direction::Shrink
                    },
                    by: by.to_owned(),
                    reason: format!("resized by {by}"),
                    at_ms: unix_ms(),
                    evidence: None,
                });
                state.trend = Trend::default();
            }
        }
        for object in gone {
            self.manager.cleanup(object);
        }
        Ok(self.stats())
    }

    fn close(&self) {
        let idle = {
            let mut state = Locked::new(&self.state);
            state.closed = true;
            let idle: Vec<Idle<M::Object>> = state.idle.drain(..).collect();
            state.size -= idle.len();
            state.idle_bytes = 0;
            state.counters.discarded[DiscardReason::Closed.index()] += idle.len() as u64;
            while let Some(waiter) = state.waiters.pop_front() {
                let mut slot = lock(&waiter.slot);
                if let Slot::Waiting(waker) =
                    std::mem::replace(&mut *slot, Slot::Granted(Grant::Closed))
                {
                    drop(slot);
                    waiter.ready.notify_one();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
            }
            idle
        };
        for idle in idle {
            self.manager.cleanup(idle.object);
        }
    }
}

/// A queued async acquire; dropped while still queued, it cancels.
struct Pending<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    waiter: Option<Arc<Waiter<M::Object>>>,
}

impl<M: Manager> Drop for Pending<'_, M> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.inner.cancel(&waiter);
        }
    }
}

/// Resolves when the waiter's slot holds a grant.
struct Granted<'a, T>(&'a Waiter<T>);

impl<T> Future for Granted<'_, T> {
    type Output = Grant<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Grant<T>> {
        let mut slot = lock(&self.0.slot);
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Granted(grant) => Poll::Ready(grant),
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            Slot::Taken => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

/// An object taken from a [`Pool`]; it goes back when dropped. Dropped while its thread
/// panics, it is discarded instead.
pub struct Pooled<M: Manager> {
    object: Option<M::Object>,
    meta: Meta,
    hold: usize,
    pool: Arc<Inner<M>>,
}

impl<M: Manager> Pooled<M> {
    /// Drops the object instead of returning it (counted as `discarded`): for an object
    /// its holder knows to be broken.
    pub fn discard(mut self) {
        if let Some(object) = self.object.take() {
            self.pool
                .release(object, self.meta, self.hold, Some(DiscardReason::Discarded));
        }
    }

    /// How long ago the object was made.
    pub fn age(&self) -> Duration {
        (self.pool.clock)().saturating_duration_since(self.meta.born)
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Object;

    fn deref(&self) -> &M::Object {
        self.object
            .as_ref()
            .expect("a guard holds its object until dropped")
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Object {
        self.object
            .as_mut()
            .expect("a guard holds its object until dropped")
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            let reason = std::thread::panicking().then_some(DiscardReason::Panicked);
            self.pool.release(object, self.meta, self.hold, reason);
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.pool.name)
            .finish_non_exhaustive()
    }
}
