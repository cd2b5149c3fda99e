//! Stable handles: a [`Handle`] reaches whichever incarnation of a child is current, so
//! web handlers and other actors never hold an address that dies with a panic.
//!
//! A call takes the current incarnation's sender under a read lock and hands the message
//! to its mailbox; there is no extra hop. When the mailbox is closed (the incarnation died
//! and the next one is not installed yet) the message comes back to the caller unsent and
//! the call waits, at most the child's call timeout, for the next incarnation. Messages
//! already queued in a mailbox that dies are lost with it, as in Erlang: their callers get
//! [`CallError::Crashed`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix::dev::channel::AddressSender;
use actix::prelude::*;
use tokio::sync::watch;

use super::spec::DEFAULT_CALL_TIMEOUT;

/// Why a call through a [`Handle`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The incarnation that received the message ended before answering: it panicked
    /// (possibly on this very message) or was stopped with the message still queued.
    #[error("actor `{child}` stopped before answering")]
    Crashed {
        /// The child's name.
        child: String,
    },
    /// The child was restarting and no new incarnation came up within the call timeout.
    #[error("actor `{child}` did not come back within {waited:?}")]
    Unavailable {
        /// The child's name.
        child: String,
        /// How long the call waited for it.
        waited: Duration,
    },
    /// The child is gone for good: it is not restarted (temporary, or transient after a
    /// normal exit), its supervisor gave up, or the runtime shut down.
    #[error("actor `{child}` is terminated")]
    Terminated {
        /// The child's name.
        child: String,
    },
}

/// Where the current incarnation's mailbox lives. Shared by all clones of a handle and by
/// the supervisor that installs each new incarnation.
pub(crate) struct Slot<A: Actor> {
    name: String,
    sender: RwLock<Option<AddressSender<A>>>,
    /// Bumped on every install and on termination; waiting callers watch it.
    generation: watch::Sender<u64>,
    terminated: AtomicBool,
    call_timeout_ms: AtomicU64,
    #[cfg(feature = "chaos")]
    chaos: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<()>>>,
    /// Every new incarnation panics as soon as it starts (chaos builds).
    #[cfg(feature = "chaos")]
    storm: AtomicBool,
}

/// A cloneable, stable reference to a supervised actor.
pub struct Handle<A: Actor> {
    slot: Arc<Slot<A>>,
}

impl<A: Actor> Clone for Handle<A> {
    fn clone(&self) -> Self {
        Handle {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Handle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("child", &self.slot.name)
            .field("generation", &self.generation())
            .finish()
    }
}

impl<A: Actor> Handle<A> {
    pub(crate) fn new(name: String) -> Self {
        Handle {
            slot: Arc::new(Slot {
                name,
                sender: RwLock::new(None),
                generation: watch::Sender::new(0),
                terminated: AtomicBool::new(false),
                call_timeout_ms: AtomicU64::new(DEFAULT_CALL_TIMEOUT.as_millis() as u64),
                #[cfg(feature = "chaos")]
                chaos: std::sync::Mutex::new(None),
                #[cfg(feature = "chaos")]
                storm: AtomicBool::new(false),
            }),
        }
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// How many incarnations have been installed (1 after the first start).
    pub fn generation(&self) -> u64 {
        *self.slot.generation.borrow()
    }

    /// Whether an incarnation is running now and accepting messages.
    pub fn is_alive(&self) -> bool {
        self.read_sender()
            .as_ref()
            .is_some_and(|sender| sender.connected())
    }

    /// Sends a message to the current incarnation and waits for its answer. While the child
    /// is restarting the call waits (at most the child's call timeout) for the next one.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, CallError>
    where
        A: Handler<M> + Actor<Context = Context<A>>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let mut msg = msg;
        let mut waiter: Option<(watch::Receiver<u64>, tokio::time::Instant)> = None;
        loop {
            let attempt = {
                let guard = self.read_sender();
                match guard.as_ref() {
                    Some(sender) => match sender.send(msg) {
                        Ok(rx) => Ok(rx),
                        Err(SendError::Full(m)) => Err((Some(sender.clone()), m)),
                        Err(SendError::Closed(m)) => Err((None, m)),
                    },
                    None => Err((None, msg)),
                }
            };
            match attempt {
                Ok(rx) => return rx.await.map_err(|_| self.crashed()),
                Err((Some(full_sender), m)) => {
                    // Mailbox at capacity: let actix park this call until there is room.
                    return Addr::new(full_sender)
                        .send(m)
                        .await
                        .map_err(|_| self.crashed());
                }
                Err((None, m)) => msg = m,
            }
            if self.slot.terminated.load(Ordering::Acquire) {
                return Err(CallError::Terminated {
                    child: self.slot.name.clone(),
                });
            }
            match waiter.as_mut() {
                // First failure: subscribe, then try once more, so an incarnation installed
                // between the failed send and the subscription is not missed.
                None => {
                    let deadline = tokio::time::Instant::now() + self.call_timeout();
                    waiter = Some((self.slot.generation.subscribe(), deadline));
                }
                Some((rx, deadline)) => {
                    let changed = tokio::time::timeout_at(*deadline, rx.changed()).await;
                    if !matches!(changed, Ok(Ok(()))) {
                        return Err(CallError::Unavailable {
                            child: self.slot.name.clone(),
                            waited: self.call_timeout(),
                        });
                    }
                }
            }
        }
    }

    /// Sends a message without waiting for an answer. Returns false when no incarnation
    /// took it (the child is restarting or terminated); the message is then dropped.
    pub fn do_send<M>(&self, msg: M) -> bool
    where
        A: Handler<M> + Actor<Context = Context<A>>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self.read_sender().as_ref() {
            Some(sender) => sender.do_send(msg).is_ok(),
            None => false,
        }
    }

    fn crashed(&self) -> CallError {
        if self.slot.terminated.load(Ordering::Acquire) {
            CallError::Terminated {
                child: self.slot.name.clone(),
            }
        } else {
            CallError::Crashed {
                child: self.slot.name.clone(),
            }
        }
    }

    /// How long a call waits for a restarting child's next incarnation.
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.slot.call_timeout_ms.load(Ordering::Relaxed))
    }

    fn read_sender(&self) -> std::sync::RwLockReadGuard<'_, Option<AddressSender<A>>> {
        self.slot
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_call_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.slot.call_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes `sender` the current incarnation and wakes every waiting caller.
    pub(crate) fn install(&self, sender: AddressSender<A>) {
        *self
            .slot
            .sender
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(sender);
        self.slot.terminated.store(false, Ordering::Release);
        self.slot
            .generation
            .send_modify(|generation| *generation += 1);
    }

    /// Marks the child gone for good: waiting and future callers get `Terminated`.
    pub(crate) fn terminate(&self) {
        self.slot.terminated.store(true, Ordering::Release);
        *self
            .slot
            .sender
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        // Wake waiters without counting an incarnation.
        self.slot.generation.send_modify(|_| {});
    }

    #[cfg(feature = "chaos")]
    pub(crate) fn set_chaos(&self, tx: tokio::sync::mpsc::UnboundedSender<()>) {
        *self
            .slot
            .chaos
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
    }

    #[cfg(feature = "chaos")]
    pub(crate) fn in_storm(&self) -> bool {
        self.slot.storm.load(Ordering::Acquire)
    }

    /// Makes the running incarnation panic; with `storm`, every later one too.
    #[cfg(feature = "chaos")]
    pub(crate) fn inject_panic(&self, storm: bool) -> bool {
        if storm {
            self.slot.storm.store(true, Ordering::Release);
        }
        self.slot
            .chaos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(()).is_ok())
    }
}
