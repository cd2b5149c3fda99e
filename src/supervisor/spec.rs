//! What a supervisor is told about its children: restart types, strategies, restart
//! intensity, and the child specifications that build fresh state for every incarnation.

use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{Actor, Context};
use serde::Serialize;

use super::child::{Starter, WorkerStarter};
use super::handle::Handle;

/// Default number of restarts allowed within [`DEFAULT_PERIOD`] before a supervisor gives up.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default window for restart intensity.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// Default time a child gets to stop on its own before it is killed.
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);
/// Default time a call through a [`Handle`] waits for a restarting child's next incarnation.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// When a child that has exited is started again (OTP's restart types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted, whatever the reason it exited. Its absence makes the runtime not-ready.
    Permanent,
    /// Restarted only after an abnormal exit (a panic); stopping itself is final.
    Transient,
    /// Never restarted.
    Temporary,
}

impl Restart {
    /// Whether a child of this type is started again after exiting for `reason`.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

/// Which children are restarted when one of them fails (OTP's strategies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// Only the failed child is restarted.
    OneForOne,
    /// All children are stopped (in reverse start order) and started again.
    OneForAll,
    /// The failed child and every child started after it are restarted.
    RestForOne,
}

/// Why an incarnation of a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// The actor stopped itself (`ctx.stop()`).
    Normal,
    /// A handler (or `started`, or a future in the actor's context) panicked.
    Panic(String),
    /// A child supervisor exceeded its restart intensity and gave up.
    Escalated,
}

impl ExitReason {
    /// Whether this exit counts as a failure.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("stopped normally"),
            ExitReason::Panic(message) => write!(f, "panicked: {message}"),
            ExitReason::Escalated => f.write_str("gave up after too many restarts"),
        }
    }
}

/// Restart intensity: at most `max_restarts` restarts within `period`; past that the
/// supervisor gives up and escalates. Restarts are delayed by an exponential backoff that
/// starts at `backoff` (zero: no delay) and doubles per restart still inside the window,
/// up to `max_backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The window restarts are counted in.
    pub period: Duration,
    /// The first restart's delay (zero: none).
    pub backoff: Duration,
    /// The longest delay the doubling reaches.
    pub max_backoff: Duration,
}

impl Default for Intensity {
    /// Three restarts in five seconds, no backoff.
    fn default() -> Self {
        Intensity {
            max_restarts: DEFAULT_MAX_RESTARTS,
            period: DEFAULT_PERIOD,
            backoff: Duration::ZERO,
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl Intensity {
    /// At most `max_restarts` restarts within `period`, with no backoff.
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Intensity {
            max_restarts,
            period,
            ..Intensity::default()
        }
    }

    /// Waits `first` before the first restart of a run of failures, doubling up to `max`.
    /// Default: no backoff.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max;
        self
    }
}

/// What a supervisor does about a failure, decided by [`RestartWindow::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this delay.
    Restart { delay: Duration },
    /// Too many restarts within the period: stop everything and escalate.
    GiveUp,
}

/// The recent restarts of one supervisor, for the intensity check. Pure: the caller passes
/// the clock, so the rule is tested without sleeping.
#[derive(Debug, Default)]
pub struct RestartWindow {
    recent: std::collections::VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a failure at `now` and decides whether a restart is still allowed.
    pub fn record(&mut self, now: Instant, intensity: &Intensity) -> Decision {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= intensity.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() >= intensity.max_restarts as usize {
            return Decision::GiveUp;
        }
        self.recent.push_back(now);
        let doublings = (self.recent.len() - 1).min(20) as u32;
        let delay = intensity
            .backoff
            .saturating_mul(1 << doublings)
            .min(intensity.max_backoff.max(intensity.backoff));
        Decision::Restart { delay }
    }
}

/// How to build, restart and stop one child.
pub struct ChildSpec {
    pub(crate) name: String,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Duration,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) starter: Rc<dyn Starter>,
}

impl ChildSpec {
    /// A worker actor. `factory` builds fresh state for every incarnation; the returned
    /// [`Handle`] reaches whichever incarnation is current.
    pub fn worker<A, F>(name: impl Into<String>, factory: F) -> (ChildSpec, Handle<A>)
    where
        A: Actor<Context = Context<A>>,
        F: Fn() -> A + 'static,
    {
        let name = name.into();
        let handle = Handle::new(name.clone());
        let starter = WorkerStarter::new(Box::new(factory), handle.clone());
        (ChildSpec::from_starter(name, Rc::new(starter)), handle)
    }

    pub(crate) fn from_starter(name: String, starter: Rc<dyn Starter>) -> ChildSpec {
        ChildSpec {
            name,
            restart: Restart::Permanent,
            shutdown: DEFAULT_SHUTDOWN,
            call_timeout: None,
            starter,
        }
    }

    /// Sets the restart type. Default is [`Restart::Permanent`].
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how long the child may take to stop before it is killed. Default is 5 seconds.
    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// Sets how long a call waits for this child's next incarnation while it restarts.
    /// Default is the supervisor's call timeout.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// The child's name, unique within its supervisor.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intensity(max_restarts: u32, period_ms: u64) -> Intensity {
        Intensity {
            max_restarts,
            period: Duration::from_millis(period_ms),
            ..Intensity::default()
        }
    }

    #[test]
    fn window_allows_max_restarts_then_gives_up() {
        let mut window = RestartWindow::default();
        let now = Instant::now();
        let limit = intensity(3, 5000);
        for _ in 0..3 {
            assert!(matches!(
                window.record(now, &limit),
                Decision::Restart { .. }
            ));
        }
        assert_eq!(window.record(now, &limit), Decision::GiveUp);
    }

    #[test]
    fn window_forgets_restarts_older_than_the_period() {
        let mut window = RestartWindow::default();
        let start = Instant::now();
        let limit = intensity(2, 1000);
        window.record(start, &limit);
        window.record(start + Duration::from_millis(500), &limit);
        assert_eq!(
            window.record(start + Duration::from_millis(900), &limit),
            Decision::GiveUp
        );
        // The first restart has left the window by t = 1000 ms.
        assert!(matches!(
            window.record(start + Duration::from_millis(1000), &limit),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn window_with_zero_restarts_gives_up_at_once() {
        let mut window = RestartWindow::default();
        assert_eq!(
            window.record(Instant::now(), &intensity(0, 1000)),
            Decision::GiveUp
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut window = RestartWindow::default();
        let limit = Intensity {
            max_restarts: 10,
            period: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let now = Instant::now();
        let delays: Vec<_> = (0..4)
            .map(|_| match window.record(now, &limit) {
                Decision::Restart { delay } => delay.as_millis(),
                Decision::GiveUp => panic!("gave up too early"),
            })
            .collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
    }

    #[test]
    fn restart_types_follow_otp() {
        let panic = ExitReason::Panic("boom".into());
        assert!(Restart::Permanent.restarts_after(&ExitReason::Normal));
        assert!(Restart::Permanent.restarts_after(&panic));
        assert!(!Restart::Transient.restarts_after(&ExitReason::Normal));
        assert!(Restart::Transient.restarts_after(&panic));
        assert!(Restart::Transient.restarts_after(&ExitReason::Escalated));
        assert!(!Restart::Temporary.restarts_after(&panic));
    }
}
