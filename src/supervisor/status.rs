//! The live state of a supervision tree, shared between each supervisor (the only writer
//! of its own node) and readers such as `/ready` and `/admin/supervisor`, which read it
//! without a message round trip, so they answer even while a supervisor is busy restarting.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use super::spec::{Intensity, Restart, Strategy};

/// What a supervisor is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SupervisorState {
    /// Starting its children, in order.
    Starting,
    /// Every child started; failures are answered with restarts.
    Running,
    /// Restarting children after a failure (with its strategy and backoff).
    Restarting,
    /// Stopping its children, in reverse order.
    ShuttingDown,
    /// Stopped after a shutdown.
    Stopped,
    /// Restart intensity was exceeded; the supervisor stopped its children and escalated.
    GaveUp,
}

/// What a child is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChildState {
    /// Started and not exited.
    Running,
    /// Exited and waiting to be started again.
    Restarting,
    /// Exited and not to be restarted (its restart type says so).
    Stopped,
    /// Stopped by its supervisor (shutdown or give-up).
    Terminated,
}

/// A child's last failure.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// The panic's message, or why the child stopped.
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl Failure {
    pub(crate) fn now(message: String) -> Self {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        Failure {
            message,
            at_unix_ms,
        }
    }
}

/// One child in a [`SupervisorReport`].
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ChildReport {
    /// The child's name, unique under its supervisor.
    pub name: String,
    /// When it is restarted (its restart type).
    pub restart: Restart,
    /// What it is doing now.
    pub state: ChildState,
    /// Times this child was started again (after its own failure or a sibling's).
    pub restarts: u64,
    /// Panics caught in this child.
    pub panics: u64,
    /// Its last failure, if it ever failed.
    pub last_failure: Option<Failure>,
    /// Present when the child is itself a supervisor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<SupervisorReport>,
}

/// A snapshot of one supervisor and, recursively, its children.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct SupervisorReport {
    /// The supervisor's name.
    pub name: String,
    /// Which children restart when one fails.
    pub strategy: Strategy,
    /// Restarts allowed within `period_seconds` before it gives up.
    pub max_restarts: u32,
    /// The restart intensity's window, in seconds.
    pub period_seconds: f64,
    /// What it is doing now.
    pub state: SupervisorState,
    /// Failures this supervisor answered with a restart.
    pub restarts: u64,
    /// Its children, in start order.
    pub children: Vec<ChildReport>,
}

impl SupervisorReport {
    /// Paths (`root/child/...`) of the children that keep the tree from being ready: a
    /// permanent child that is not running, or a supervisor that is not running.
    pub fn unready(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_unready(&self.name, &mut out);
        out
    }

    fn collect_unready(&self, path: &str, out: &mut Vec<String>) {
        if !matches!(
            self.state,
            SupervisorState::Running | SupervisorState::Restarting
        ) {
            // Starting, shutting down, stopped or gave up: the whole subtree is out.
            out.push(path.to_owned());
            return;
        }
        for child in &self.children {
            let child_path = format!("{path}/{}", child.name);
            match &child.supervisor {
                Some(nested) if child.state == ChildState::Running => {
                    nested.collect_unready(&child_path, out)
                }
                _ if child.restart == Restart::Permanent && child.state != ChildState::Running => {
                    out.push(child_path)
                }
                _ => {}
            }
        }
    }
}

pub(crate) struct ChildNode {
    pub(crate) report: ChildReport,
    pub(crate) nested: Option<Arc<TreeStatus>>,
    #[cfg(feature = "chaos")]
    pub(crate) chaos: super::child::ChaosTrigger,
}

struct Node {
    name: String,
    strategy: Strategy,
    intensity: Intensity,
    state: SupervisorState,
    restarts: u64,
    children: Vec<ChildNode>,
}

/// The shared, live status of one supervisor.
pub struct TreeStatus {
    node: RwLock<Node>,
    /// The supervisor's state, for waiters; `node.state` holds the same for reports.
    state: watch::Sender<SupervisorState>,
}

impl TreeStatus {
    pub(crate) fn new(name: &str, strategy: Strategy, intensity: Intensity) -> Arc<Self> {
        Arc::new(TreeStatus {
            node: RwLock::new(Node {
                name: name.to_owned(),
                strategy,
                intensity,
                state: SupervisorState::Starting,
                restarts: 0,
                children: Vec::new(),
            }),
            state: watch::Sender::new(SupervisorState::Starting),
        })
    }

    /// A snapshot of this supervisor and its descendants.
    pub fn report(&self) -> SupervisorReport {
        let node = self.node.read().unwrap_or_else(PoisonError::into_inner);
        SupervisorReport {
            name: node.name.clone(),
            strategy: node.strategy,
            max_restarts: node.intensity.max_restarts,
            period_seconds: node.intensity.period.as_secs_f64(),
            state: node.state,
            restarts: node.restarts,
            children: node
                .children
                .iter()
                .map(|child| ChildReport {
                    supervisor: child.nested.as_ref().map(|nested| nested.report()),
                    ..child.report.clone()
                })
                .collect(),
        }
    }

    /// Whether this supervisor has given up (stays true until it is started again).
    pub fn has_given_up(&self) -> bool {
        *self.state.borrow() == SupervisorState::GaveUp
    }

    /// Resolves once this supervisor gives up.
    pub async fn given_up(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|state| *state == SupervisorState::GaveUp).await;
    }

    /// Resolves once this supervisor has started its children (or has given up, or
    /// stopped, trying).
    pub async fn started(&self) -> SupervisorState {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|state| !matches!(state, SupervisorState::Starting))
            .await
            .map(|state| *state);
        state.unwrap_or(SupervisorState::Stopped)
    }

    pub(crate) fn configure(&self, strategy: Strategy, intensity: Intensity) {
        self.update(|node| {
            node.strategy = strategy;
            node.intensity = intensity;
        });
    }

    pub(crate) fn set_state(&self, state: SupervisorState) {
        self.update(|node| node.state = state);
        self.state.send_replace(state);
    }

    pub(crate) fn reset(&self, children: Vec<ChildNode>) {
        self.update(|node| {
            node.children = children;
            node.restarts = 0;
        });
        self.set_state(SupervisorState::Starting);
    }

    pub(crate) fn count_restart(&self) {
        self.update(|node| node.restarts += 1);
    }

    pub(crate) fn update_child(&self, index: usize, change: impl FnOnce(&mut ChildReport)) {
        self.update(|node| {
            if let Some(child) = node.children.get_mut(index) {
                change(&mut child.report);
            }
        });
    }

    /// Makes the child named `name`, anywhere below this supervisor, panic. `None` when no
    /// child has that name; `Some(false)` when it has no running incarnation.
    #[cfg(feature = "chaos")]
    pub(crate) fn inject_panic(&self, name: &str, storm: bool) -> Option<bool> {
        let node = self.node.read().unwrap_or_else(PoisonError::into_inner);
        node.children.iter().find_map(|child| {
            if child.report.name == name {
                Some((child.chaos)(storm))
            } else {
                child
                    .nested
                    .as_ref()
                    .and_then(|nested| nested.inject_panic(name, storm))
            }
        })
    }

    fn update(&self, change: impl FnOnce(&mut Node)) {
        change(&mut self.node.write().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The tree's figures for the monitor: restarts and state of every child (nested
/// children by their path), and whether the root gave up.
impl crate::metrics::Source for TreeStatus {
    fn collect(&self, out: &mut crate::metrics::Collector) {
        fn walk(
            report: &SupervisorReport,
            prefix: &str,
            rows: &mut Vec<(String, &'static str, u64, bool)>,
        ) {
            for child in &report.children {
                let path = if prefix.is_empty() {
                    child.name.clone()
                } else {
                    format!("{prefix}/{}", child.name)
                };
                let state = match child.state {
                    ChildState::Running => "running",
                    ChildState::Restarting => "restarting",
                    ChildState::Stopped => "stopped",
                    ChildState::Terminated => "terminated",
                };
                rows.push((
                    path.clone(),
                    state,
                    child.restarts,
                    child.state == ChildState::Running,
                ));
                if let Some(nested) = &child.supervisor {
                    walk(nested, &path, rows);
                }
            }
        }
        let report = self.report();
        let mut rows = Vec::new();
        walk(&report, "", &mut rows);
        use crate::metrics::{ChildFigure, Kind};
        out.labelled(
            "actor_restarts_total",
            "Restarts of each supervised actor.",
            Kind::Counter,
            "child",
            rows.iter()
                .map(|(path, _, restarts, _)| (path.clone(), *restarts as f64)),
            |_| None,
        );
        out.labelled(
            "actor_up",
            "1 while a supervised actor runs.",
            Kind::Gauge,
            "child",
            rows.iter()
                .map(|(path, _, _, up)| (path.clone(), f64::from(u8::from(*up)))),
            |_| None,
        );
        out.json_only(
            "actor_restarts_total",
            rows.iter().map(|row| row.2).sum::<u64>() as f64,
        );
        out.gauge(
            "supervisor_escalated",
            "1 once the supervision tree gave up.",
            f64::from(u8::from(self.has_given_up())),
        );
        for (name, state, restarts, _) in rows {
            out.child(ChildFigure {
                name,
                state: state.to_owned(),
                restarts,
            });
        }
    }
}
