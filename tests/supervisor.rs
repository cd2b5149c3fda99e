//! Supervision: panics become restarts with fresh state, strategies, restart types,
//! intensity and escalation, ordered shutdown and nesting. Each test counts incarnations.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use leanserve::{
    CallError, ChildSpec, ChildState, Handle, Intensity, Restart, RootSupervisor, Strategy,
    SupervisorSpec, SupervisorState,
};

/// Shared record of what the incarnations of the test actors did.
#[derive(Clone, Default)]
struct Journal {
    starts: Arc<Mutex<Vec<String>>>,
    stops: Arc<Mutex<Vec<String>>>,
}

impl Journal {
    fn starts_of(&self, name: &str) -> usize {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }
    fn stops(&self) -> Vec<String> {
        self.stops.lock().unwrap().clone()
    }
}

struct Counter {
    name: String,
    count: usize,
    journal: Journal,
    /// When set, `stopping` refuses to stop (for the kill-on-timeout test).
    stubborn: bool,
}

impl Actor for Counter {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.journal.starts.lock().unwrap().push(self.name.clone());
    }
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if self.stubborn {
            Running::Continue
        } else {
            Running::Stop
        }
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.journal.stops.lock().unwrap().push(self.name.clone());
    }
}

/// Adds one and answers the new count.
struct Incr;
impl Message for Incr {
    type Result = usize;
}
impl Handler<Incr> for Counter {
    type Result = usize;
    fn handle(&mut self, _: Incr, _: &mut Context<Self>) -> usize {
        self.count += 1;
        self.count
    }
}

/// Panics inside the handler.
struct Boom;
impl Message for Boom {
    type Result = ();
}
impl Handler<Boom> for Counter {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
        panic!("boom in {}", self.name);
    }
}

/// Stops the actor normally.
struct Quit;
impl Message for Quit {
    type Result = ();
}
impl Handler<Quit> for Counter {
    type Result = ();
    fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

fn counter(name: &str, journal: &Journal) -> (ChildSpec, Handle<Counter>) {
    let (name, journal) = (name.to_owned(), journal.clone());
    ChildSpec::worker(name.clone(), move || Counter {
        name: name.clone(),
        count: 0,
        journal: journal.clone(),
        stubborn: false,
    })
}

/// Polls `cond` until it holds (at most 5 s). Not a timing assertion: it only waits for
/// asynchronous work to land.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn child_state(root: &RootSupervisor, name: &str) -> ChildState {
    let report = root.handle().status().report();
    report
        .children
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .state
}

#[actix_rt::test]
async fn supervisor_panic_in_handler_restarts_child_with_fresh_state() {
    let journal = Journal::default();
    let (spec, worker) = counter("worker", &journal);
    let root = SupervisorSpec::new("root").child(spec).start().unwrap();
    assert_eq!(worker.send(Incr).await, Ok(1));
    assert_eq!(worker.send(Incr).await, Ok(2));

    let crash = worker.send(Boom).await;
    assert_eq!(
        crash,
        Err(CallError::Crashed {
            child: "worker".into()
        })
    );

    // The next message through the same handle reaches a fresh incarnation.
    assert_eq!(worker.send(Incr).await, Ok(1));
    assert_eq!(journal.starts_of("worker"), 2);
    assert_eq!(worker.generation(), 2);
    let report = root.handle().status().report();
    let child = &report.children[0];
    assert_eq!((child.restarts, child.panics), (1, 1));
    assert_eq!(child.state, ChildState::Running);
    let failure = child.last_failure.as_ref().expect("failure recorded");
    assert!(
        failure.message.contains("boom in worker"),
        "{}",
        failure.message
    );
    assert_eq!(report.restarts, 1);
}

#[actix_rt::test]
async fn supervisor_calls_during_restart_wait_for_the_next_incarnation() {
    let journal = Journal::default();
    let (spec, worker) = counter("slow", &journal);
    let intensity =
        Intensity::default().backoff(Duration::from_millis(300), Duration::from_secs(30));
    let _root = SupervisorSpec::new("root")
        .intensity(intensity)
        .child(spec)
        .start()
        .unwrap();
    assert_eq!(worker.send(Incr).await, Ok(1));
    assert!(worker.send(Boom).await.is_err());
    // The child is down for the 300 ms backoff; these calls must wait, not fail.
    assert!(!worker.is_alive());
    let calls: Vec<_> = (0..8).map(|_| worker.send(Incr)).collect();
    let mut answers: Vec<usize> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|answer| answer.expect("call during restart must succeed"))
        .collect();
    answers.sort();
    assert_eq!(answers, (1..=8).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn supervisor_call_waits_only_up_to_the_call_timeout() {
    let journal = Journal::default();
    let (spec, worker) = counter("late", &journal);
    let intensity = Intensity::default().backoff(Duration::from_secs(3), Duration::from_secs(3));
    let _root = SupervisorSpec::new("root")
        .intensity(intensity)
        .child(spec.call_timeout(Duration::from_millis(100)))
        .start()
        .unwrap();
    assert!(worker.send(Boom).await.is_err());
    assert!(matches!(
        worker.send(Incr).await,
        Err(CallError::Unavailable { ref child, .. }) if child == "late"
    ));
}

#[actix_rt::test]
async fn supervisor_intensity_exceeded_gives_up_and_terminates_children() {
    let journal = Journal::default();
    let (spec, worker) = counter("fragile", &journal);
    let intensity = Intensity::new(2, Duration::from_secs(60));
    let root = SupervisorSpec::new("root")
        .intensity(intensity)
        .child(spec)
        .start()
        .unwrap();
    for _ in 0..2 {
        assert!(worker.send(Boom).await.is_err());
        assert_eq!(worker.send(Incr).await, Ok(1));
    }
    assert!(!root.handle().status().has_given_up());
    assert!(worker.send(Boom).await.is_err());
    tokio::time::timeout(Duration::from_secs(5), root.handle().status().given_up())
        .await
        .expect("root gives up after the third panic");
    let report = root.handle().status().report();
    assert_eq!(report.state, SupervisorState::GaveUp);
    assert_eq!(report.unready(), vec!["root".to_owned()]);
    eventually("child terminated", || {
        child_state(&root, "fragile") == ChildState::Terminated
    })
    .await;
    assert_eq!(
        worker.send(Incr).await,
        Err(CallError::Terminated {
            child: "fragile".into()
        })
    );
    assert_eq!(journal.starts_of("fragile"), 3);
}

async fn strategy_run(strategy: Strategy) -> (Journal, [usize; 3]) {
    let journal = Journal::default();
    let (a, ha) = counter("a", &journal);
    let (b, hb) = counter("b", &journal);
    let (c, hc) = counter("c", &journal);
    let root = SupervisorSpec::new("root")
        .strategy(strategy)
        .child(a)
        .child(b)
        .child(c)
        .start()
        .unwrap();
    for handle in [&ha, &hb, &hc] {
        assert_eq!(handle.send(Incr).await, Ok(1));
    }
    assert!(hb.send(Boom).await.is_err());
    eventually("restart finished", || {
        root.handle().status().report().state == SupervisorState::Running && hb.is_alive()
    })
    .await;
    let mut counts = [0; 3];
    for (slot, handle) in counts.iter_mut().zip([&ha, &hb, &hc]) {
        *slot = handle.send(Incr).await.unwrap();
    }
    (journal, counts)
}

#[actix_rt::test]
async fn supervisor_one_for_all_restarts_every_sibling() {
    let (journal, counts) = strategy_run(Strategy::OneForAll).await;
    assert_eq!(
        [
            journal.starts_of("a"),
            journal.starts_of("b"),
            journal.starts_of("c")
        ],
        [2, 2, 2]
    );
    assert_eq!(counts, [1, 1, 1], "every child has fresh state");
    // b's `stopped` runs as its panicked context is dropped; then c and a stop, last first.
    assert_eq!(journal.stops(), ["b", "c", "a"]);
}

#[actix_rt::test]
async fn supervisor_rest_for_one_restarts_only_later_children() {
    let (journal, counts) = strategy_run(Strategy::RestForOne).await;
    assert_eq!(
        [
            journal.starts_of("a"),
            journal.starts_of("b"),
            journal.starts_of("c")
        ],
        [1, 2, 2]
    );
    assert_eq!(counts, [2, 1, 1], "a kept its state");
}

#[actix_rt::test]
async fn supervisor_one_for_one_restarts_only_the_failed_child() {
    let (journal, counts) = strategy_run(Strategy::OneForOne).await;
    assert_eq!(
        [
            journal.starts_of("a"),
            journal.starts_of("b"),
            journal.starts_of("c")
        ],
        [1, 2, 1]
    );
    assert_eq!(counts, [2, 1, 2]);
}

#[actix_rt::test]
async fn supervisor_transient_child_is_restarted_only_after_a_panic() {
    let journal = Journal::default();
    let (spec, worker) = counter("transient", &journal);
    let root = SupervisorSpec::new("root")
        .child(spec.restart(Restart::Transient))
        .start()
        .unwrap();
    assert!(worker.send(Boom).await.is_err());
    assert_eq!(worker.send(Incr).await, Ok(1), "restarted after a panic");
    worker.send(Quit).await.unwrap();
    eventually("transient child stopped", || {
        child_state(&root, "transient") == ChildState::Stopped
    })
    .await;
    assert_eq!(
        worker.send(Incr).await,
        Err(CallError::Terminated {
            child: "transient".into()
        })
    );
    assert_eq!(journal.starts_of("transient"), 2);
    // A stopped transient child does not make a supervisor give up or become unready.
    assert!(root.handle().status().report().unready().is_empty());
}

#[actix_rt::test]
async fn supervisor_temporary_child_is_never_restarted() {
    let journal = Journal::default();
    let (spec, worker) = counter("temporary", &journal);
    let root = SupervisorSpec::new("root")
        .child(spec.restart(Restart::Temporary))
        .start()
        .unwrap();
    assert!(worker.send(Boom).await.is_err());
    eventually("temporary child stopped", || {
        child_state(&root, "temporary") == ChildState::Stopped
    })
    .await;
    assert_eq!(
        worker.send(Incr).await,
        Err(CallError::Terminated {
            child: "temporary".into()
        })
    );
    assert_eq!(journal.starts_of("temporary"), 1);
    assert_eq!(root.handle().status().report().restarts, 0);
}

#[actix_rt::test]
async fn supervisor_permanent_child_that_stops_itself_is_restarted() {
    let journal = Journal::default();
    let (spec, worker) = counter("permanent", &journal);
    let _root = SupervisorSpec::new("root").child(spec).start().unwrap();
    worker.send(Quit).await.unwrap();
    assert_eq!(worker.send(Incr).await, Ok(1));
    assert_eq!(journal.starts_of("permanent"), 2);
}

#[actix_rt::test]
async fn supervisor_shutdown_stops_children_in_reverse_start_order() {
    let journal = Journal::default();
    let (a, _) = counter("a", &journal);
    let (b, _) = counter("b", &journal);
    let (c, hc) = counter("c", &journal);
    let root = SupervisorSpec::new("root")
        .child(a)
        .child(b)
        .child(c)
        .start()
        .unwrap();
    assert_eq!(hc.send(Incr).await, Ok(1));
    assert_eq!(journal.starts.lock().unwrap().clone(), ["a", "b", "c"]);
    root.shutdown().await;
    assert_eq!(journal.stops(), ["c", "b", "a"]);
    assert_eq!(
        root.handle().status().report().state,
        SupervisorState::Stopped
    );
    assert_eq!(
        hc.send(Incr).await,
        Err(CallError::Terminated { child: "c".into() })
    );
}

#[actix_rt::test]
async fn supervisor_shutdown_kills_a_child_that_overruns_its_timeout() {
    let journal = Journal::default();
    let stubborn_journal = journal.clone();
    let (stubborn, handle) = ChildSpec::worker("stubborn", move || Counter {
        name: "stubborn".into(),
        count: 0,
        journal: stubborn_journal.clone(),
        stubborn: true,
    });
    let (polite, _) = counter("polite", &journal);
    let root = SupervisorSpec::new("root")
        .child(polite)
        .child(stubborn.shutdown(Duration::from_millis(100)))
        .start()
        .unwrap();
    assert_eq!(handle.send(Incr).await, Ok(1));
    tokio::time::timeout(Duration::from_secs(5), root.shutdown())
        .await
        .expect("shutdown finishes despite a child that refuses to stop");
    // The stubborn child was killed (no `stopped`), and the polite one still stopped after it.
    assert_eq!(journal.stops(), ["polite"]);
}

#[actix_rt::test]
async fn supervisor_nested_supervisor_escalates_to_its_parent() {
    let journal = Journal::default();
    let (worker_spec, worker) = counter("inner-worker", &journal);
    let (inner, inner_handle) = SupervisorSpec::new("inner")
        .intensity(Intensity::new(1, Duration::from_secs(60)))
        .child(worker_spec)
        .into_child()
        .unwrap();
    let (sibling, sibling_handle) = counter("sibling", &journal);
    let root = SupervisorSpec::new("root")
        .child(sibling)
        .child(inner)
        .start()
        .unwrap();
    assert_eq!(sibling_handle.send(Incr).await, Ok(1));
    assert!(worker.send(Boom).await.is_err());
    assert_eq!(
        worker.send(Incr).await,
        Ok(1),
        "inner restarts its worker once"
    );
    assert!(
        worker.send(Boom).await.is_err(),
        "second panic: inner gives up"
    );

    // The root restarts the whole inner subtree; the worker comes back fresh.
    assert_eq!(worker.send(Incr).await, Ok(1));
    eventually("root running again", || {
        root.handle().status().report().state == SupervisorState::Running
    })
    .await;
    let report = root.handle().status().report();
    let inner_report = report.children.iter().find(|c| c.name == "inner").unwrap();
    assert_eq!(inner_report.restarts, 1);
    let failure = inner_report.last_failure.as_ref().unwrap();
    assert!(failure.message.contains("gave up"), "{}", failure.message);
    let nested = inner_report.supervisor.as_ref().expect("nested report");
    assert_eq!(nested.state, SupervisorState::Running);
    assert_eq!(nested.children[0].state, ChildState::Running);
    assert_eq!(journal.starts_of("inner-worker"), 3);
    assert_eq!(
        sibling_handle.send(Incr).await,
        Ok(2),
        "one_for_one: sibling untouched"
    );
    assert!(inner_handle.status().report().unready().is_empty());
}

#[actix_rt::test]
async fn supervisor_rejects_duplicate_child_names() {
    let journal = Journal::default();
    let (a, _) = counter("same", &journal);
    let (b, _) = counter("same", &journal);
    let error = SupervisorSpec::new("root")
        .child(a)
        .child(b)
        .start()
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "supervisor `root` has two children named `same`"
    );
}
