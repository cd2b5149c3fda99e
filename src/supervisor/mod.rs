//! OTP-style supervision over actix actors.
//!
//! actix's own `Supervisor` restarts an actor only when the actor stops itself: a panic in
//! a handler drops the actor's task, every `Addr` then answers `MailboxError::Closed`, and
//! `restarting()` is never called. Here each incarnation of a child is polled inside
//! `catch_unwind` (see `child.rs`), so a panic ends the incarnation with a reason its
//! supervisor acts on: it logs the actor's name and panic message, counts it, and starts a
//! fresh incarnation built by the child's factory, according to
//!
//! - the child's restart type ([`Restart`]: permanent, transient, temporary),
//! - the supervisor's strategy ([`Strategy`]: one_for_one, one_for_all, rest_for_one),
//! - the restart intensity ([`Intensity`]: at most N restarts in T, with optional backoff);
//!   past it the supervisor stops its children and gives up, which its parent sees as a
//!   failure and the root reports through [`TreeStatus::given_up`].
//!
//! Callers hold a [`Handle`], which always reaches the current incarnation; a call made
//! while the child restarts waits (bounded) for the next one. Children start in order and
//! stop in reverse order, each within its shutdown timeout. A supervisor is itself a child
//! ([`SupervisorSpec::into_child`]), so trees nest.
//!
//! Everything in one tree runs on the arbiter that started its root.

mod child;
mod handle;
mod spec;
mod status;
mod tree;

pub(crate) use child::panic_message;
pub use handle::{CallError, Handle};
pub use spec::{ChildSpec, ExitReason, Intensity, Restart, Strategy};
pub use status::{ChildReport, ChildState, Failure, SupervisorReport, SupervisorState, TreeStatus};
pub use tree::{RootSupervisor, SupervisorError, SupervisorHandle, SupervisorSpec};
