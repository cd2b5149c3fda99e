//! The supervisor actor. It owns its children's running incarnations, hears of every exit
//! it did not ask for (`ChildExited`, sent by the child's runner), and applies its strategy
//! and restart intensity. Restarts and shutdowns run as a `ctx.wait` future, so exits that
//! arrive meanwhile queue up and are judged afterwards against the new incarnations (stale
//! ones are ignored). A supervisor's own state (restart window, incarnations) is fresh in
//! every incarnation of it; its [`TreeStatus`] survives, so readers never lose track.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::child::{Incarnation, Starter, spawn_incarnation};
use super::handle::Handle;
use super::spec::{
    ChildSpec, DEFAULT_CALL_TIMEOUT, Decision, ExitReason, Intensity, Restart, RestartWindow,
    Strategy,
};
use super::status::{ChildNode, ChildReport, ChildState, Failure, SupervisorState, TreeStatus};

/// A mistake in how a supervision tree was put together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// Two children of one supervisor share a name.
    #[error("supervisor `{supervisor}` has two children named `{child}`")]
    DuplicateChild {
        /// The supervisor's name.
        supervisor: String,
        /// The name two of its children share.
        child: String,
    },
}

// ---- messages ------------------------------------------------------------------------

/// An incarnation of child `index` ended without being asked to.
struct ChildExited {
    index: usize,
    incarnation: u64,
    reason: ExitReason,
}

impl Message for ChildExited {
    type Result = ();
}

// ---- the spec ------------------------------------------------------------------------

/// Describes a supervisor: its name, strategy, intensity and children, in start order.
pub struct SupervisorSpec {
    name: String,
    strategy: Strategy,
    intensity: Intensity,
    call_timeout: Duration,
    children: Vec<ChildSpec>,
    status: Arc<TreeStatus>,
}

impl SupervisorSpec {
    /// A one_for_one supervisor with the default intensity (3 restarts in 5 s, no backoff).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        SupervisorSpec {
            status: TreeStatus::new(&name, Strategy::OneForOne, Intensity::default()),
            name,
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            children: Vec::new(),
        }
    }

    /// The live status this supervisor will publish, available before it starts (for
    /// sources that report on the tree).
    pub fn status(&self) -> Arc<TreeStatus> {
        Arc::clone(&self.status)
    }

    /// Sets the restart strategy. Default is [`Strategy::OneForOne`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the restart intensity. Default is [`Intensity::default`].
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Sets how long calls wait for a restarting child, for children that do not set their
    /// own. Default is 2 seconds.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Adds a child; children start in the order they are added and stop in reverse.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Turns this supervisor into a child of another one.
    pub fn into_child(self) -> Result<(ChildSpec, SupervisorHandle), SupervisorError> {
        let starter = Rc::new(self.into_starter(false)?);
        let handle = starter.supervisor_handle();
        let spec = ChildSpec::from_starter(handle.name().to_owned(), starter)
            .shutdown(Duration::from_secs(60));
        Ok((spec, handle))
    }

    /// Starts this supervisor as the root of a tree on the current arbiter (call it inside
    /// a running actix System). The tree runs until [`RootSupervisor::shutdown`] or until
    /// the returned value is dropped.
    pub fn start(self) -> Result<RootSupervisor, SupervisorError> {
        let stop_bound = self
            .children
            .iter()
            .map(|child| child.shutdown)
            .sum::<Duration>()
            + Duration::from_secs(1);
        let starter = self.into_starter(true)?;
        let handle = starter.supervisor_handle();
        let status = Arc::clone(&handle.status);
        let name = handle.name().to_owned();
        let incarnation = starter.start(Box::new(move |reason| {
            // The root has no parent to restart it: any exit it did not ask for is final.
            if status.has_given_up() {
                log::error!("root supervisor `{name}` gave up; the runtime is not ready");
            } else {
                log::error!("root supervisor `{name}` ended unexpectedly: {reason}");
                status.set_state(SupervisorState::GaveUp);
            }
        }));
        Ok(RootSupervisor {
            handle,
            incarnation: std::sync::Mutex::new(Some(incarnation)),
            stop_bound,
        })
    }

    fn into_starter(self, is_root: bool) -> Result<SupervisorStarter, SupervisorError> {
        let mut seen = std::collections::HashSet::new();
        for child in &self.children {
            if !seen.insert(child.name.as_str()) {
                return Err(SupervisorError::DuplicateChild {
                    supervisor: self.name.clone(),
                    child: child.name.clone(),
                });
            }
            child
                .starter
                .set_call_timeout(child.call_timeout.unwrap_or(self.call_timeout));
        }
        let status = self.status;
        status.configure(self.strategy, self.intensity);
        Ok(SupervisorStarter {
            config: Rc::new(Config {
                strategy: self.strategy,
                intensity: self.intensity,
                children: self.children,
                is_root,
            }),
            status,
            handle: Handle::new(self.name),
        })
    }
}

/// What every incarnation of one supervisor is built from.
struct Config {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec>,
    is_root: bool,
}

/// A supervisor as seen from outside: its live status and a handle to it.
#[derive(Clone)]
pub struct SupervisorHandle {
    handle: Handle<Supervisor>,
    status: Arc<TreeStatus>,
}

impl SupervisorHandle {
    /// The supervisor's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// The live status of this supervisor and its descendants.
    pub fn status(&self) -> &Arc<TreeStatus> {
        &self.status
    }
}

/// Starts incarnations of a supervisor that is itself a child (or the root).
struct SupervisorStarter {
    config: Rc<Config>,
    status: Arc<TreeStatus>,
    handle: Handle<Supervisor>,
}

impl SupervisorStarter {
    fn supervisor_handle(&self) -> SupervisorHandle {
        SupervisorHandle {
            handle: self.handle.clone(),
            status: Arc::clone(&self.status),
        }
    }
}

impl Starter for SupervisorStarter {
    fn start(&self, on_exit: super::child::OnExit) -> Incarnation {
        let supervisor = Supervisor {
            name: self.handle.name().to_owned(),
            config: Rc::clone(&self.config),
            children: Vec::new(),
            window: RestartWindow::default(),
            status: Arc::clone(&self.status),
            done: false,
        };
        spawn_incarnation(supervisor, &self.handle, on_exit)
    }

    fn exit_reason(&self, reason: ExitReason) -> ExitReason {
        match reason {
            ExitReason::Normal if self.status.has_given_up() => ExitReason::Escalated,
            other => other,
        }
    }

    fn terminate(&self) {
        self.handle.terminate();
        for child in &self.config.children {
            child.starter.terminate();
        }
    }

    fn set_call_timeout(&self, timeout: Duration) {
        self.handle.set_call_timeout(timeout);
    }

    fn nested(&self) -> Option<Arc<TreeStatus>> {
        Some(Arc::clone(&self.status))
    }

    #[cfg(feature = "chaos")]
    fn chaos_trigger(&self) -> super::child::ChaosTrigger {
        let handle = self.handle.clone();
        Arc::new(move |storm| handle.inject_panic(storm))
    }
}

/// The root of a supervision tree, owned by whoever started it. Dropping it stops the
/// tree (each child still gets its shutdown timeout, but nobody waits for it).
pub struct RootSupervisor {
    handle: SupervisorHandle,
    incarnation: std::sync::Mutex<Option<Incarnation>>,
    /// Each level waits for its own children's timeouts; this bound only guards against a
    /// root that cannot stop at all.
    stop_bound: Duration,
}

impl RootSupervisor {
    /// The root's handle (status, name).
    pub fn handle(&self) -> &SupervisorHandle {
        &self.handle
    }

    /// Stops every child in reverse start order, honouring each child's shutdown timeout,
    /// then the root itself. Callers of any child get `Terminated` afterwards. Calling it
    /// again does nothing.
    pub async fn shutdown(&self) {
        let incarnation = self
            .incarnation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(incarnation) = incarnation {
            if !incarnation.stop(self.stop_bound).await {
                log::warn!(
                    "root supervisor `{}` was killed at shutdown",
                    self.handle.name()
                );
            }
            self.handle.handle.terminate();
        }
    }
}

// ---- the actor -----------------------------------------------------------------------

/// One child as the supervisor tracks it.
struct Child {
    running: Option<Incarnation>,
    /// Identifies the current incarnation, so exits of older ones are ignored.
    incarnation: u64,
}

/// The supervisor actor (see the module docs).
pub struct Supervisor {
    name: String,
    config: Rc<Config>,
    children: Vec<Child>,
    window: RestartWindow,
    status: Arc<TreeStatus>,
    /// Set once its children are stopped for good; `stopping` then lets it stop.
    done: bool,
}

/// Incarnations to stop, in the order they are to be stopped.
type StopList = Vec<(String, Incarnation, Duration)>;

async fn stop_in_order(list: StopList) {
    for (name, incarnation, timeout) in list {
        if !incarnation.stop(timeout).await {
            log::warn!("`{name}` did not stop within {timeout:?} and was killed");
        }
    }
}

impl Supervisor {
    fn spec(&self, index: usize) -> &ChildSpec {
        &self.config.children[index]
    }

    fn start_child(&mut self, index: usize, ctx: &mut Context<Self>) {
        let address = ctx.address();
        let child = &mut self.children[index];
        child.incarnation += 1;
        let incarnation = child.incarnation;
        let on_exit = Box::new(move |reason| {
            address.do_send(ChildExited {
                index,
                incarnation,
                reason,
            })
        });
        child.running = Some(self.config.children[index].starter.start(on_exit));
        self.status
            .update_child(index, |report| report.state = ChildState::Running);
    }

    /// Takes the running incarnations among `indices` out, last first, for stopping.
    fn take_running(&mut self, indices: impl DoubleEndedIterator<Item = usize>) -> StopList {
        let mut list = Vec::new();
        for index in indices.rev() {
            if let Some(incarnation) = self.children[index].running.take() {
                let spec = &self.config.children[index];
                list.push((spec.name.clone(), incarnation, spec.shutdown));
            }
        }
        list
    }

    fn restart(&mut self, failed: usize, delay: Duration, ctx: &mut Context<Self>) {
        let count = self.children.len();
        let targets = match self.config.strategy {
            Strategy::OneForOne => failed..failed + 1,
            Strategy::OneForAll => 0..count,
            Strategy::RestForOne => failed..count,
        };
        // Siblings that were not running (finished transient or temporary children) stay
        // as they are; running temporary siblings are stopped and, as in OTP, not started
        // again.
        let (to_start, dropped): (Vec<usize>, Vec<usize>) = targets
            .clone()
            .filter(|&index| index == failed || self.children[index].running.is_some())
            .partition(|&index| index == failed || self.spec(index).restart != Restart::Temporary);
        let to_stop = self.take_running(targets);
        for &index in &dropped {
            self.status
                .update_child(index, |report| report.state = ChildState::Stopped);
            self.spec(index).starter.terminate();
        }
        for &index in &to_start {
            self.status
                .update_child(index, |report| report.state = ChildState::Restarting);
        }
        self.status.count_restart();
        self.status.set_state(SupervisorState::Restarting);
        let work = async move {
            stop_in_order(to_stop).await;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };
        ctx.wait(work.into_actor(self).map(move |(), supervisor, ctx| {
            if supervisor.done || supervisor.status.has_given_up() {
                return;
            }
            for index in to_start {
                supervisor.start_child(index, ctx);
                supervisor
                    .status
                    .update_child(index, |report| report.restarts += 1);
            }
            supervisor.status.set_state(SupervisorState::Running);
        }));
    }

    /// Restart intensity exceeded: stop every child and stop, which the parent (or, for the
    /// root, the runtime) sees as an escalation.
    fn give_up(&mut self, ctx: &mut Context<Self>) {
        self.status.set_state(SupervisorState::GaveUp);
        let to_stop = self.take_running(0..self.children.len());
        ctx.wait(
            stop_in_order(to_stop)
                .into_actor(self)
                .map(|(), supervisor, ctx| {
                    supervisor.finish(ChildState::Terminated);
                    ctx.stop();
                }),
        );
    }

    /// Marks every child with `state`; the root also terminates their handles, since
    /// nothing will start them again.
    fn finish(&mut self, state: ChildState) {
        self.done = true;
        for index in 0..self.children.len() {
            self.status.update_child(index, |report| {
                if report.state != ChildState::Stopped {
                    report.state = state;
                }
            });
            if self.config.is_root {
                self.spec(index).starter.terminate();
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let nodes = self
            .config
            .children
            .iter()
            .map(|spec| ChildNode {
                report: ChildReport {
                    name: spec.name.clone(),
                    restart: spec.restart,
                    state: ChildState::Restarting,
                    restarts: 0,
                    panics: 0,
                    last_failure: None,
                    supervisor: None,
                },
                nested: spec.starter.nested(),
                #[cfg(feature = "chaos")]
                chaos: spec.starter.chaos_trigger(),
            })
            .collect();
        self.status.reset(nodes);
        self.children = (0..self.config.children.len())
            .map(|_| Child {
                running: None,
                incarnation: 0,
            })
            .collect();
        log::info!(
            "supervisor `{}` starting {} children ({:?}, at most {} restarts in {:?})",
            self.name,
            self.children.len(),
            self.config.strategy,
            self.config.intensity.max_restarts,
            self.config.intensity.period,
        );
        for index in 0..self.children.len() {
            self.start_child(index, ctx);
        }
        self.status.set_state(SupervisorState::Running);
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.done {
            return Running::Stop;
        }
        if !self.status.has_given_up() {
            self.status.set_state(SupervisorState::ShuttingDown);
        }
        let to_stop = self.take_running(0..self.children.len());
        log::info!(
            "supervisor `{}` stopping {} children, last first",
            self.name,
            to_stop.len()
        );
        ctx.wait(
            stop_in_order(to_stop)
                .into_actor(self)
                .map(|(), supervisor, ctx| {
                    supervisor.finish(ChildState::Terminated);
                    if !supervisor.status.has_given_up() {
                        supervisor.status.set_state(SupervisorState::Stopped);
                    }
                    ctx.stop();
                }),
        );
        Running::Continue
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, exit: ChildExited, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(exit.index) else {
            return;
        };
        if self.done || child.incarnation != exit.incarnation || child.running.is_none() {
            return; // an incarnation this supervisor already stopped or replaced
        }
        child.running = None;
        let index = exit.index;
        let spec = &self.config.children[index];
        let reason = spec.starter.exit_reason(exit.reason);
        let name = spec.name.clone();
        match &reason {
            ExitReason::Normal => log::info!("supervisor `{}`: `{name}` {reason}", self.name),
            ExitReason::Panic(_) | ExitReason::Escalated => {
                log::error!("supervisor `{}`: `{name}` {reason}", self.name)
            }
        }
        let failure = reason
            .is_abnormal()
            .then(|| Failure::now(reason.to_string()));
        let panicked = matches!(reason, ExitReason::Panic(_));
        self.status.update_child(index, |report| {
            report.panics += u64::from(panicked);
            if failure.is_some() {
                report.last_failure = failure;
            }
        });
        if !spec.restart.restarts_after(&reason) {
            self.status
                .update_child(index, |report| report.state = ChildState::Stopped);
            spec.starter.terminate();
            return;
        }
        match self.window.record(Instant::now(), &self.config.intensity) {
            Decision::Restart { delay } => self.restart(index, delay, ctx),
            Decision::GiveUp => {
                log::error!(
                    "supervisor `{}`: more than {} restarts in {:?} (last: `{name}` {reason}); giving up",
                    self.name,
                    self.config.intensity.max_restarts,
                    self.config.intensity.period,
                );
                self.give_up(ctx);
            }
        }
    }
}
