//! Running one incarnation of a child: its actor is built fresh by the factory, given a new
//! mailbox, and polled inside `catch_unwind`, so a panic anywhere in the actor's task (a
//! handler, `started`, a future spawned in its context) ends the incarnation with
//! [`ExitReason::Panic`] instead of silently dropping the task as plain actix does.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::ContextFut;
use actix::dev::channel;
use actix::prelude::*;
use tokio::sync::oneshot;

use super::handle::Handle;
use super::spec::ExitReason;
use super::status::TreeStatus;

/// Mailbox capacity of every incarnation (actix's default).
const MAILBOX_CAPACITY: usize = 16;

/// Called once with the reason an incarnation ended on its own. Not called when the
/// supervisor stopped it.
pub(crate) type OnExit = Box<dyn FnOnce(ExitReason)>;

/// A running incarnation, as its supervisor holds it.
pub(crate) struct Incarnation {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Incarnation {
    /// Asks the actor to stop (its `stopping`/`stopped` run), waits at most `timeout`, then
    /// kills the task. Returns false when it had to be killed.
    pub(crate) async fn stop(mut self, timeout: std::time::Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(timeout, &mut self.task).await {
            Ok(_) => true,
            Err(_) => {
                self.task.abort();
                let _ = self.task.await;
                false
            }
        }
    }
}

/// The type-erased part of a child spec the supervisor drives.
pub(crate) trait Starter {
    /// Builds fresh state and starts it. `on_exit` hears of an exit the supervisor did not ask for.
    fn start(&self, on_exit: OnExit) -> Incarnation;
    /// Maps the plain "stopped itself" exit to the child's own reason (a supervisor that
    /// gave up stops itself, which is an escalation, not a normal exit).
    fn exit_reason(&self, reason: ExitReason) -> ExitReason {
        reason
    }
    /// Callers of this child (and of its descendants) now get `Terminated`.
    fn terminate(&self);
    fn set_call_timeout(&self, timeout: std::time::Duration);
    /// The status of the supervisor this child is, if it is one.
    fn nested(&self) -> Option<std::sync::Arc<TreeStatus>> {
        None
    }
    /// Makes the current incarnation panic inside its own task (with `storm`, every
    /// later incarnation too, as soon as it starts).
    #[cfg(feature = "chaos")]
    fn chaos_trigger(&self) -> ChaosTrigger;
}

/// Fault injection for chaos builds, called with `storm`: returns false when no
/// incarnation runs.
#[cfg(feature = "chaos")]
pub(crate) type ChaosTrigger = std::sync::Arc<dyn Fn(bool) -> bool + Send + Sync>;

/// Starts incarnations of actor `A` built by a factory and published through a [`Handle`].
pub(crate) struct WorkerStarter<A: Actor<Context = Context<A>>> {
    factory: Box<dyn Fn() -> A>,
    handle: Handle<A>,
}

impl<A: Actor<Context = Context<A>>> WorkerStarter<A> {
    pub(crate) fn new(factory: Box<dyn Fn() -> A>, handle: Handle<A>) -> Self {
        WorkerStarter { factory, handle }
    }
}

impl<A: Actor<Context = Context<A>>> Starter for WorkerStarter<A> {
    fn start(&self, on_exit: OnExit) -> Incarnation {
        spawn_incarnation((self.factory)(), &self.handle, on_exit)
    }

    fn terminate(&self) {
        self.handle.terminate();
    }

    fn set_call_timeout(&self, timeout: std::time::Duration) {
        self.handle.set_call_timeout(timeout);
    }

    #[cfg(feature = "chaos")]
    fn chaos_trigger(&self) -> ChaosTrigger {
        let handle = self.handle.clone();
        std::sync::Arc::new(move |storm| handle.inject_panic(storm))
    }
}

/// Starts `actor` on the current arbiter with a fresh mailbox installed in `handle`.
pub(crate) fn spawn_incarnation<A>(actor: A, handle: &Handle<A>, on_exit: OnExit) -> Incarnation
where
    A: Actor<Context = Context<A>>,
{
    let (sender, receiver) = channel::channel::<A>(MAILBOX_CAPACITY);
    let context_future = Context::with_receiver(receiver).into_future(actor);
    let (stop_tx, stop_rx) = oneshot::channel();
    #[cfg(feature = "chaos")]
    let chaos = {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if handle.in_storm() {
            // A restart storm: this incarnation panics as soon as it runs.
            let _ = tx.send(());
        }
        handle.set_chaos(tx);
        rx
    };
    let runner = Runner {
        actor: Some(context_future),
        stop: Some(stop_rx),
        #[cfg(feature = "chaos")]
        chaos,
    };
    handle.install(sender);
    let task = actix_rt::spawn(async move {
        let (reason, stopped_on_request) = runner.await;
        if !stopped_on_request {
            on_exit(reason);
        }
    });
    Incarnation {
        stop: Some(stop_tx),
        task,
    }
}

/// Polls an actor's context future, turning a panic into an exit reason.
struct Runner<A: Actor<Context = Context<A>>> {
    actor: Option<ContextFut<A, Context<A>>>,
    /// `None` once the supervisor asked the actor to stop.
    stop: Option<oneshot::Receiver<()>>,
    #[cfg(feature = "chaos")]
    chaos: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl<A: Actor<Context = Context<A>>> Future for Runner<A> {
    /// The reason, and whether the supervisor had asked for the stop.
    type Output = (ExitReason, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(actor) = this.actor.as_mut() else {
            return Poll::Ready((ExitReason::Normal, this.stop.is_none()));
        };
        if let Some(stop) = this.stop.as_mut()
            && Pin::new(stop).poll(cx).is_ready()
        {
            this.stop = None;
            actor.ctx().stop();
        }
        #[cfg(feature = "chaos")]
        while let Poll::Ready(Some(())) = this.chaos.poll_recv(cx) {
            log::warn!("chaos: injecting a panic");
            actor.ctx().spawn(actix::fut::wrap_future(async {
                panic!("chaos: injected panic");
            }));
        }
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *actor).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.actor = None;
                Poll::Ready((ExitReason::Normal, this.stop.is_none()))
            }
            Err(payload) => {
                // Dropping the context runs `stopping`/`stopped` once more; a second panic
                // there must not escape either.
                let dead = this.actor.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(dead)));
                Poll::Ready((ExitReason::Panic(panic_message(&*payload)), false))
            }
        }
    }
}

impl<A: Actor<Context = Context<A>>> Drop for Runner<A> {
    fn drop(&mut self) {
        if let Some(mut actor) = self.actor.take() {
            if tokio::runtime::Handle::try_current().is_err() {
                // The runtime is being torn down with this actor still alive. actix would
                // poll the context once more to run `stopping`, and timers in it would
                // panic without a reactor; end it without that last poll.
                actor.ctx().terminate();
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(actor)));
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_reads_str_and_string_payloads() {
        let text = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*text), "plain");
        let formatted = catch_unwind(|| panic!("value {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*formatted), "value 7");
        let other = catch_unwind(|| std::panic::panic_any(5_u8)).unwrap_err();
        assert_eq!(panic_message(&*other), "non-text panic payload");
    }
}
