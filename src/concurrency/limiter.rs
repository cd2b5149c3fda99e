//! The limiter: the adaptive limit applied to requests, with a short queue.
//!
//! A request is admitted while fewer than the limit are in flight. Otherwise it waits in
//! a queue of at most `queue_size`, CoDel-style as Facebook's servers use it ("Fail at
//! Scale"): if a request found a free slot at once within the last `overload_after`
//! (20 ms), the queue is a burst, absorbed first in first out with up to `queue_timeout`
//! (100 ms) of waiting. Otherwise the queue is standing (overload): newcomers wait only
//! `overload_timeout` (1 ms) before they are refused, the queue is served newest first
//! (adaptive LIFO), so the requests admitted are fresh, and it holds at most `2 × limit`
//! waiters (at least 4): a newcomer to a standing queue displaces the oldest waiters
//! beyond that depth, refused at once. Each freed slot goes to the newest waiter, so the
//! oldest would only wait out their timeout; displacing them makes the refusal fast (a
//! few arrivals' time, not the whole timeout), and the burst's waiters left from before
//! the queue turned standing, who could wait their whole `queue_timeout`, go with the
//! first standing arrival. The depth is twice the limit, not the limit, so the queue does
//! not run dry when several slots free together (renders finishing on every worker at
//! once): an empty moment would let the next arrival find a free slot and end the
//! standing state.
//!
//! **Why 20 ms to call a queue standing, and 1 ms of waiting then.** Every request that
//! arrives at the onset of an overload waits as a burst's until the queue counts as
//! standing, so `overload_after` is the onset's cost: with 100 ms, the first 100 ms of an
//! overload admitted requests up to 100 ms late (about 1.2% of an 8 s run at twice the
//! capacity, which alone set the run's p99) and refused more after as long. 20 ms is
//! still twenty 1 ms renders' time in which no arrival found a free slot, well beyond a
//! scheduler's time slice. In a standing queue served newest first, a waiter not served
//! within about one service time will not be: newer arrivals go first. So it waits 1 ms
//! (the timer's granularity makes that 1–2 ms) and its refusal is answered within a few
//! milliseconds; with 5 ms, refusals took 7–8 ms at the 99th percentile (bench/HISTORY.md).
//!
//! The standing state ends with evidence, not with one free moment: once entered, it
//! lasts until a whole `queue_timeout` window in which at least half the arrivals found
//! a free slot (or none had to wait). Under overload the arrivals themselves come in
//! clumps (a load generator or a proxy descheduled for a few milliseconds), the queue
//! drains meanwhile, and the first arrival after the gap finds a slot; ending the state
//! there would give the next arrivals the long burst wait again. While the adaptive limit
//! is still in its slow start (see `gradient.rs`) no queue is standing: the limit is
//! still too low to know, and a fresh server under a steady load must not refuse requests
//! while it learns it (a cold start under 32 connections used to refuse 5–8% of its
//! requests). A full queue refuses at once. A refusal is fast and costs the service
//! nothing; the caller answers 503 with `Retry-After`.
//!
//! A [`Permit`] is held for the whole request, body included: dropping it frees the slot,
//! feeds the latency to the limit (unless [`Permit::failed`] was called) and admits the
//! oldest waiter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::gradient::{AdaptiveLimit, LimitConfig, WindowFigures};

/// Where time comes from: `Instant::now`, or a test's paused clock.
pub type Clock = fn() -> Instant;

/// The options of an in-flight limiter (one for static files, one for template renders):
/// its adaptive limit and its queue.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct LimiterConfig {
    /// The adaptive limit's options.
    pub limit: LimitConfig,
    /// `limiter.queue_size`: requests that may wait for a slot; more are refused at once.
    pub queue_size: usize,
    /// `limiter.queue_timeout_ms`: the longest wait of a burst's waiter; also the window
    /// that ends a standing queue.
    pub queue_timeout: Duration,
    /// `limiter.overload_timeout_ms`: the wait of a standing queue's waiter.
    pub overload_timeout: Duration,
    /// `limiter.overload_after_ms`: how long no request may find a free slot before the
    /// queue counts as standing.
    pub overload_after: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            limit: LimitConfig::default(),
            queue_size: 128,
            queue_timeout: Duration::from_millis(100),
            overload_timeout: Duration::from_millis(1),
            overload_after: Duration::from_millis(20),
        }
    }
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Overloaded {
    /// The queue was full.
    #[error("{name}: {in_flight} requests in flight (limit {limit}) and {queued} queued")]
    QueueFull {
        name: &'static str,
        limit: usize,
        in_flight: usize,
        queued: usize,
    },
    /// It waited its queue timeout without a slot.
    #[error("{name}: no slot within {waited:?} ({in_flight} in flight, limit {limit})")]
    Timeout {
        name: &'static str,
        waited: Duration,
        limit: usize,
        in_flight: usize,
    },
    /// Newer requests displaced it from a full standing queue.
    #[error(
        "{name}: displaced by newer requests after {waited:?} in a standing queue \
         ({in_flight} in flight, limit {limit})"
    )]
    Displaced {
        name: &'static str,
        waited: Duration,
        limit: usize,
        in_flight: usize,
    },
}

/// A limiter's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LimiterStats {
    pub name: &'static str,
    pub limit: usize,
    pub min: usize,
    pub max: usize,
    pub in_flight: usize,
    pub queued: usize,
    pub admitted_total: u64,
    pub queued_total: u64,
    pub rejected_total: u64,
    /// Of the rejected, those that waited their whole timeout in the queue.
    pub timeouts_total: u64,
    /// Of the rejected, those displaced from a full standing queue by newer requests.
    pub displaced_total: u64,
    pub last_median_us: Option<u64>,
    pub last_baseline_us: Option<u64>,
}

struct State {
    limit: AdaptiveLimit,
    in_flight: usize,
    /// Waiters; each is sent `true` when admitted, `false` when displaced.
    queue: VecDeque<(u64, oneshot::Sender<bool>)>,
    next_ticket: u64,
    /// When a request last found a free slot at once.
    last_free: Instant,
    /// In the standing (overload) state.
    standing: bool,
    /// The current `queue_timeout` window: when it began, its arrivals, and how many of
    /// them found a free slot at once.
    window_start: Instant,
    window_arrivals: u32,
    window_free: u32,
    admitted: u64,
    queued: u64,
    rejected: u64,
    timeouts: u64,
    displaced: u64,
}

struct Inner {
    name: &'static str,
    config: LimiterConfig,
    state: Mutex<State>,
    clock: Clock,
}

/// An adaptive concurrency limiter. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl State {
    /// Counts an arrival (`free`: it found a free slot at once) and answers whether the
    /// queue is standing: entered when no request found a free slot for
    /// `overload_after`, left after a window of `queue_timeout` in which at least half
    /// the arrivals found one, or none came.
    fn arrive(&mut self, now: Instant, free: bool, config: &LimiterConfig) -> bool {
        if now.saturating_duration_since(self.window_start) >= config.queue_timeout {
            let mostly_free = 2 * self.window_free >= self.window_arrivals;
            if self.standing && mostly_free {
                self.standing = false;
            }
            self.window_start = now;
            self.window_arrivals = 0;
            self.window_free = 0;
        }
        self.window_arrivals += 1;
        if free {
            self.window_free += 1;
            self.last_free = now;
        }
        if now.saturating_duration_since(self.last_free) > config.overload_after {
            self.standing = true;
        }
        self.standing
    }
}

/// How many waiters a standing queue keeps with `limit` slots.
fn standing_depth(limit: usize) -> usize {
    (2 * limit).max(4)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Limiter {
    /// A limiter named `name` (for logs and metrics).
    pub fn new(name: &'static str, config: LimiterConfig) -> Limiter {
        Limiter::with_clock(name, config, Instant::now)
    }

    pub(crate) fn with_clock(name: &'static str, config: LimiterConfig, clock: Clock) -> Limiter {
        let now = clock();
        Limiter {
            inner: Arc::new(Inner {
                name,
                config,
                state: Mutex::new(State {
                    limit: AdaptiveLimit::new(config.limit, now),
                    in_flight: 0,
                    queue: VecDeque::new(),
                    next_ticket: 0,
                    last_free: now,
                    standing: false,
                    window_start: now,
                    window_arrivals: 0,
                    window_free: 0,
                    admitted: 0,
                    queued: 0,
                    rejected: 0,
                    timeouts: 0,
                    displaced: 0,
                }),
                clock,
            }),
        }
    }

    /// Admits the request now, after a short wait in the queue, or refuses it.
    pub async fn acquire(&self) -> Result<Permit, Overloaded> {
        let inner = &self.inner;
        let started = (inner.clock)();
        let (ticket, receiver, timeout) = {
            let mut state = lock(&inner.state);
            let free = state.in_flight < state.limit.limit() && state.queue.is_empty();
            // While the limit is in slow start a queue means it is still too low to know,
            // not that the server is overloaded.
            let standing =
                state.arrive(started, free, &inner.config) && !state.limit.in_slow_start();
            if free {
                state.in_flight += 1;
                state.admitted += 1;
                let in_flight = state.in_flight;
                state.limit.on_admit(in_flight);
                return Ok(self.permit(started));
            }
            if standing {
                // A standing queue keeps only its newest waiters (see the module docs):
                // the burst's waiters left from before it turned standing go at once.
                let depth = standing_depth(state.limit.limit());
                while state.queue.len() >= depth
                    && let Some((_, oldest)) = state.queue.pop_front()
                {
                    // A waiter gone meanwhile (its request cancelled) needs no answer.
                    let _ = oldest.send(false);
                }
            }
            if state.queue.len() >= inner.config.queue_size {
                state.rejected += 1;
                return Err(Overloaded::QueueFull {
                    name: inner.name,
                    limit: state.limit.limit(),
                    in_flight: state.in_flight,
                    queued: state.queue.len(),
                });
            }
            let timeout = if standing {
                inner.config.overload_timeout
            } else {
                inner.config.queue_timeout
            };
            let (sender, receiver) = oneshot::channel();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queue.push_back((ticket, sender));
            state.queued += 1;
            (ticket, receiver, timeout)
        };
        let mut queued = Queued {
            limiter: self,
            ticket,
            receiver: Some(receiver),
        };
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let receiver = queued.receiver.as_mut().expect("set above");
        let answer = match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(admitted)) => Some(admitted),
            // Timed out (or, never in practice, the sender vanished): leave the queue,
            // unless an answer came meanwhile; it was sent under the lock that took this
            // waiter out of the queue.
            Ok(Err(_)) | Err(_) => {
                let mut state = lock(&inner.state);
                match state.queue.iter().position(|(t, _)| *t == ticket) {
                    Some(index) => {
                        state.queue.remove(index);
                        None
                    }
                    None => {
                        drop(state);
                        let receiver = queued.receiver.as_mut().expect("set above");
                        Some(receiver.try_recv().unwrap_or(false))
                    }
                }
            }
        };
        queued.receiver = None;
        if answer == Some(true) {
            return Ok(self.permit((inner.clock)()));
        }
        let mut state = lock(&inner.state);
        state.rejected += 1;
        let (waited, limit, in_flight) = (
            (inner.clock)().saturating_duration_since(started),
            state.limit.limit(),
            state.in_flight,
        );
        if answer.is_none() {
            state.timeouts += 1;
            Err(Overloaded::Timeout {
                name: inner.name,
                waited,
                limit,
                in_flight,
            })
        } else {
            state.displaced += 1;
            Err(Overloaded::Displaced {
                name: inner.name,
                waited,
                limit,
                in_flight,
            })
        }
    }

    fn permit(&self, started: Instant) -> Permit {
        Permit {
            limiter: self.inner.clone(),
            started,
            failed: false,
        }
    }

    /// The figures now.
    pub fn stats(&self) -> LimiterStats {
        let state = lock(&self.inner.state);
        let last: Option<WindowFigures> = state.limit.last_window();
        let config = state.limit.config();
        LimiterStats {
            name: self.inner.name,
            limit: state.limit.limit(),
            min: config.min,
            max: config.max,
            in_flight: state.in_flight,
            queued: state.queue.len(),
            admitted_total: state.admitted,
            queued_total: state.queued,
            rejected_total: state.rejected,
            timeouts_total: state.timeouts,
            displaced_total: state.displaced,
            last_median_us: last.map(|w| w.median.as_micros() as u64),
            last_baseline_us: last.map(|w| w.baseline.as_micros() as u64),
        }
    }
}

impl Inner {
    /// A request left: free its slot, learn from it, admit the oldest waiter.
    fn release(&self, latency: Option<Duration>) {
        let now = (self.clock)();
        let mut state = lock(&self.state);
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some(latency) = latency {
            state.limit.on_sample(now, latency);
        }
        let overloaded = state.standing;
        while state.in_flight < state.limit.limit() {
            // A standing queue is served newest first: the oldest are the stalest.
            let next = if overloaded {
                state.queue.pop_back()
            } else {
                state.queue.pop_front()
            };
            let Some((_, sender)) = next else {
                break;
            };
            // The waiter may be gone (its request cancelled); then try the next.
            if sender.send(true).is_ok() {
                state.in_flight += 1;
                state.admitted += 1;
                let in_flight = state.in_flight;
                state.limit.on_admit(in_flight);
            }
        }
    }
}

/// A queued acquire; dropped before it resolves (the request went away), it leaves the
/// queue and gives back a slot it was handed meanwhile.
struct Queued<'a> {
    limiter: &'a Limiter,
    ticket: u64,
    receiver: Option<oneshot::Receiver<bool>>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        let inner = &self.limiter.inner;
        let mut state = lock(&inner.state);
        if let Some(index) = state.queue.iter().position(|(t, _)| *t == self.ticket) {
            state.queue.remove(index);
            return;
        }
        drop(state);
        if receiver.try_recv() == Ok(true) {
            inner.release(None);
        }
    }
}

/// One admitted request's slot; dropping it ends the request.
pub struct Permit {
    limiter: Arc<Inner>,
    started: Instant,
    failed: bool,
}

impl Permit {
    /// The request failed on the server's side: its latency teaches the limit nothing.
    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("limiter", &self.limiter.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let latency = (!self.failed && !std::thread::panicking())
            .then(|| (self.limiter.clock)().saturating_duration_since(self.started));
        self.limiter.release(latency);
    }
}
