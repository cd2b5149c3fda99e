//! The template store actor: it keeps every template under `templates.dir` built by the
//! engine ([`crate::templates`]) and published through [`TemplatesShared`], so a render
//! needs no message to the actor.
//!
//! Loading and building are CPU and disk work, so they run on the blocking pool (the
//! flattening spread over `templates.render_workers` threads); the [`TemplateStore`] actor
//! only schedules them: at start, every `templates.reload_interval`, and on
//! [`ReloadTemplates`] and [`OptimizeTemplates`] (sent by the runtime's
//! [`Subsystems`](crate::Subsystems)). A reload stats every file and reads only the changed
//! ones. A template that fails to parse keeps its previous good version in service, and
//! its error is reported (log, [`TemplateInfo`](crate::templates::TemplateInfo)); cycles,
//! missing parents and chains over [`MAX_CHAIN`](crate::templates::chain::MAX_CHAIN) are
//! load errors naming the chain. The published state lives in [`TemplatesShared`] and so
//! survives a restart of the actor, which then reloads from disk.
//!
//! Renders run on `templates.render_workers` threads of their own at a lower CPU priority
//! (`threads`, `templates.render_nice`), each bounded in instructions and output (see
//! [`crate::templates::render`]).
//! [`OptimizeTemplates`] re-runs the optimizers from scratch and measures what they save.
//!
//! Besides the actor and its messages: [`load`] scans the folder, `shared` holds the state
//! and runs reloads, `threads` runs renders, `reports` and `metrics` are what the store
//! answers and exports.

pub mod load;
mod metrics;
mod reports;
mod shared;
// nice(2) through libc, in one block that says why it is sound.
#[allow(unsafe_code)]
mod threads;

use actix::prelude::*;

pub use reports::{LazyVariable, OptimizeReport, ReloadSummary, SharedVariable, VariablesReport};
pub use shared::TemplatesShared;

/// Reloads changed templates now; answers what happened.
#[derive(Message)]
#[rtype(result = "ReloadSummary")]
pub struct ReloadTemplates;

/// Re-runs the optimizers from scratch now; answers what they did and saved.
#[derive(Message)]
#[rtype(result = "OptimizeReport")]
pub struct OptimizeTemplates;

/// The store actor (see the module docs).
pub struct TemplateStore {
    shared: TemplatesShared,
}

impl TemplateStore {
    /// A store actor over `shared`.
    pub fn new(shared: TemplatesShared) -> Self {
        TemplateStore { shared }
    }

    /// Starts a background reload unless one is running.
    fn reload_in_background(&self, ctx: &mut Context<Self>) {
        if self.shared.start_reloading() {
            return;
        }
        let shared = self.shared.clone();
        let task = async move {
            let worker = shared.clone();
            let summary =
                actix_web::rt::task::spawn_blocking(move || worker.reload_blocking()).await;
            shared.stop_reloading();
            if let Err(panic) = summary {
                shared.reload_panicked(&panic);
            }
        };
        ctx.spawn(task.into_actor(self));
    }
}

impl Actor for TemplateStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A restarted store re-reads the folder; on the first start this finds nothing new.
        self.reload_in_background(ctx);
        if let Some(interval) = self.shared.opts().reload_interval {
            log::info!("templates: checking for changes every {interval:?}");
            ctx.run_interval(interval, |store, ctx| store.reload_in_background(ctx));
        }
    }
}

impl Handler<ReloadTemplates> for TemplateStore {
    type Result = ResponseFuture<ReloadSummary>;

    fn handle(&mut self, _: ReloadTemplates, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        on_blocking_pool(
            move || shared.reload_blocking(),
            |panic| ReloadSummary {
                failure: Some(format!("the reload panicked: {panic}")),
                ..ReloadSummary::default()
            },
        )
    }
}

impl Handler<OptimizeTemplates> for TemplateStore {
    type Result = ResponseFuture<OptimizeReport>;

    fn handle(&mut self, _: OptimizeTemplates, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        on_blocking_pool(
            move || shared.optimize_blocking(),
            |panic| OptimizeReport {
                unavailable: Some(format!("the optimization panicked: {panic}")),
                ..OptimizeReport::default()
            },
        )
    }
}

/// A handler's answer computed on the blocking pool; a panic there becomes
/// `on_panic(message)` instead of a dropped reply.
fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    on_panic: impl FnOnce(String) -> T + 'static,
) -> ResponseFuture<T> {
    Box::pin(async move {
        actix_web::rt::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|panic| on_panic(panic.to_string()))
    })
}

/// The template store as the runtime holds it: the actor and the shared state renders
/// read.
#[derive(Clone)]
pub(crate) struct TemplatesHandle {
    actor: crate::supervisor::Handle<TemplateStore>,
    shared: TemplatesShared,
}

impl TemplatesHandle {
    /// Loads the templates once on the blocking pool, so the first request finds them,
    /// and makes the `templates` child over `shared`. A failed or panicking first load is
    /// logged; the store serves what it has until a reload succeeds.
    pub(crate) async fn start(
        shared: TemplatesShared,
    ) -> (crate::supervisor::ChildSpec, TemplatesHandle) {
        let loader = shared.clone();
        match actix_web::rt::task::spawn_blocking(move || loader.reload_blocking()).await {
            Ok(summary) => {
                if let Some(failure) = summary.failure {
                    log::error!("templates: {failure}");
                }
            }
            Err(panic) => shared.reload_panicked(&panic),
        }
        let store = shared.clone();
        let (spec, actor) = crate::supervisor::ChildSpec::worker("templates", move || {
            TemplateStore::new(store.clone())
        });
        (spec, TemplatesHandle { actor, shared })
    }

    /// The state renders, listings and reports read.
    pub(crate) fn shared(&self) -> &TemplatesShared {
        &self.shared
    }

    /// Re-runs the optimizers and publishes the result.
    pub(crate) async fn optimize(&self) -> Result<OptimizeReport, crate::supervisor::CallError> {
        self.actor.send(OptimizeTemplates).await
    }

    /// Reloads changed templates now.
    pub(crate) async fn reload(&self) -> Result<ReloadSummary, crate::supervisor::CallError> {
        self.actor.send(ReloadTemplates).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn templates_store_answers_a_panicking_job_with_its_fallback() {
        let answer = on_blocking_pool(|| -> String { panic!("boom") }, |panic| panic).await;
        assert!(answer.contains("panic"), "{answer}");
        assert_eq!(on_blocking_pool(|| 7, |_| 0).await, 7);
    }
}
