//! The render threads: `templates.render_workers` threads of their own, optionally at a
//! lower CPU priority than the rest of the process (`templates.render_nice`).
//!
//! Threads of their own keep renders and the blocking pool's file loads and compression
//! from queueing for each other's threads. The priority is a trade, so it is off by
//! default. A render costs milliseconds of CPU; a cached file hit, a health probe or a
//! refusal costs microseconds. When renders saturate the cores they share the CPU with
//! the HTTP workers as equals, so every cheap answer can queue behind a render's time
//! slice. At a nice value of 10 the scheduler gives the HTTP workers about nine tenths
//! of a contended core and renders the rest plus all idle time: under four times the
//! render capacity, goodput rose from 0.87 C to 1.13 C and refusals got faster. But
//! renders then also yield to any other busy process: with the load generator on the
//! same two cores, 0.8 C saw 146 refusals against 3 at the process's priority
//! (bench/HISTORY.md).
//!
//! Linux applies a nice value per thread, so only these threads are lowered. Elsewhere,
//! or where the system refuses (a sandbox without `setpriority`), the threads run at the
//! process's priority and say so once in the log. A nice value can be raised by any
//! process but lowered back only with privileges, which is why renders get threads of
//! their own instead of lowering a blocking-pool thread for the length of a render.
//!
//! A render that panics is caught on its thread (minijinja can panic on some templates),
//! so the threads outlive any template. When the store is dropped, the threads finish
//! the renders they hold and exit.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::supervisor::panic_message;

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run renders, optionally at a lower CPU priority.
pub(super) struct RenderThreads {
    /// `None` when no thread could be started: renders then go to the blocking pool.
    queue: Option<Arc<Queue>>,
}

/// The jobs waiting for a thread. Idle threads wait on `ready` with the lock released,
/// so a new job wakes exactly one of them.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// The store was dropped: threads finish what is queued and exit.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, or `None` once closed and empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Why a job did not return: the message of its panic.
pub(super) struct Panicked(pub String);

impl RenderThreads {
    /// `count` threads, `nice` levels below the process (0: at its priority).
    pub(super) fn start(count: usize, nice: u8) -> RenderThreads {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
        });
        let mut started = 0;
        for n in 0..count.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("leanserve-render-{n}"))
                .spawn(move || {
                    lower_priority(nice);
                    while let Some(job) = queue.next() {
                        job();
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(error) => log::error!("could not start render thread {n}: {error}"),
            }
        }
        RenderThreads {
            queue: (started > 0).then_some(queue),
        }
    }

    /// Runs `work` on a render thread and waits for its result without blocking.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Panicked> {
        let Some(queue) = &self.queue else {
            return actix_web::rt::task::spawn_blocking(work)
                .await
                .map_err(|error| Panicked(error.to_string()));
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work))
                .map_err(|payload| Panicked(panic_message(&*payload)));
            // The request may have gone meanwhile; then nobody waits for the answer.
            let _ = answer.send(result);
        });
        queue.lock().jobs.push_back(job);
        queue.ready.notify_one();
        answered
            .await
            .unwrap_or_else(|_| Err(Panicked("the render thread went away".to_owned())))
    }
}

impl Drop for RenderThreads {
    fn drop(&mut self) {
        if let Some(queue) = &self.queue {
            queue.lock().closed = true;
            queue.ready.notify_all();
        }
    }
}

/// Warned about once per process.
static PRIORITY_WARNED: AtomicBool = AtomicBool::new(false);

/// Raises the calling thread's nice value by `nice` (a lower priority).
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    if let Err(error) = set_thread_nice(nice)
        && !PRIORITY_WARNED.swap(true, Ordering::Relaxed)
    {
        log::warn!(
            "render threads run at the process's CPU priority: nice {nice} refused ({error})"
        );
    }
}

#[cfg(target_os = "linux")]
fn set_thread_nice(nice: u8) -> std::io::Result<()> {
    // nice(2) adds to the nice value; on Linux it applies to the calling thread only. It
    // may return -1 as a value, so errno tells a failure apart.
    // SAFETY: __errno_location returns the calling thread's errno, valid for writes for
    // the thread's life; nice only reads its integer argument.
    let result = unsafe {
        *libc::__errno_location() = 0;
        libc::nice(i32::from(nice))
    };
    let error = std::io::Error::last_os_error();
    if result == -1 && error.raw_os_error() != Some(0) {
        Err(error)
    } else {
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice(_nice: u8) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread priorities are Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn own_nice() -> i64 {
        // /proc/thread-self/stat: the 19th field is the nice value.
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[actix_web::test]
    async fn render_threads_run_at_the_lower_priority_and_survive_a_panic() {
        let threads = RenderThreads::start(2, 7);
        let here = own_nice();
        let there = threads.run(own_nice).await.ok().unwrap();
        assert_eq!(
            there,
            (here + 7).min(19),
            "render thread nice {there}, ours {here}"
        );
        assert_eq!(own_nice(), here, "the caller's priority is untouched");
        let panicked = threads
            .run(|| -> u32 { panic!("a template at fault") })
            .await
            .err()
            .unwrap();
        assert_eq!(panicked.0, "a template at fault");
        // Both threads still serve.
        let names: std::collections::BTreeSet<_> =
            futures_util::future::join_all((0..8).map(|_| {
                threads.run(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    std::thread::current().name().unwrap().to_owned()
                })
            }))
            .await
            .into_iter()
            .map(|name| name.ok().unwrap())
            .collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["leanserve-render-0", "leanserve-render-1"]
        );
    }

    #[actix_web::test]
    async fn render_threads_with_nice_zero_keep_the_process_priority() {
        let threads = RenderThreads::start(1, 0);
        assert_eq!(threads.run(|| 6 * 7).await.ok(), Some(42));
        #[cfg(target_os = "linux")]
        assert_eq!(threads.run(own_nice).await.ok(), Some(own_nice()));
    }
}
