//! Starting leanserve: [`Runtime`] builds the supervision tree from resolved [`Opts`] on
//! the current actix System and hands back [`Subsystems`], the cloneable set of handles
//! that web handlers (through `web::Data`) and host applications use.
//!
//! The tree today: the root supervisor `leanserve` (one_for_one, intensity from
//! `[supervisor]`) with the `process` sampler, the `pool_manager` (unless pools are off;
//! it owns the `gzip`, `inflate` and `render_buffers` pools the file cache and the
//! templates take their compressors, inflaters and buffers from), the `file_cache`, the
//! `profiler`, the
//! `templates` store (unless templates are off; its first load completes before the tree
//! starts), (unless monitoring is off) the `monitor` and (unless the tuner is off) the
//! `tuner`, followed by any children the host adds with
//! [`Runtime::child`]. Each subsystem with figures is registered with the monitor as a
//! metrics source, and each that holds memory on purpose with the profiler.
//!
//! `start` composes; each subsystem wires itself beside its actor: its `start` or
//! `child` makes the child spec from its options and answers the handle `Subsystems`
//! keeps (`FileCacheHandle`, `ProcessHandle`, `PoolsHandle`, `ProfilerHandle`,
//! `TemplatesHandle`, `MonitorHandle`, `TunerHandle`). What ties subsystems together
//! is here: the templates' live values, the profiler's memory accounts, the monitor's
//! sources and the tuner's inputs. Adding a subsystem is its handle, a line in `start`,
//! a field in `Inner` and the `Subsystems` methods hosts call.
//!
//! Nothing here is process-global, with one exception the allocator imposes: starting a
//! runtime switches jemalloc's heap sampling on or off (`profiler.heap_profiling`) for
//! the whole process. Otherwise two runtimes in one process share nothing.

use std::path::PathBuf;
use std::sync::Arc;

use crate::actors::file_cache::{CacheStats, FileCacheHandle, FileCacheReader};
use crate::actors::monitor::{AlertStatus, MonitorHandle, MonitorReader};
use crate::actors::pool_manager::PoolsHandle;
use crate::actors::process::{ProcessHandle, ProcessSample};
use crate::actors::profiler::{
    CapturedProfile, Comparison as SnapshotComparison, MemoryAccount, MemoryStats, ProfilerError,
    ProfilerHandle, Snapshot,
};
use crate::actors::templates::{
    OptimizeReport, ReloadSummary, TemplatesHandle, TemplatesShared, VariablesReport,
};
use crate::actors::tuner::{TunerDecision, TunerHandle, TunerInputs, TunerReport, TunerShared};
use crate::codec::Levels;
use crate::concurrency::Limiters;
use crate::config::{Opts, TunerMode};
use crate::metrics::{RequestMetrics, Source};
use crate::off::Off;
use crate::pool::{MaintainReport, Manager, Pool, PoolError, PoolSpec, PoolStats, Pools, Resize};
use crate::supervisor::{
    CallError, ChildSpec, Intensity, RootSupervisor, SupervisorError, SupervisorReport,
    SupervisorSpec,
};
use crate::templates::{RenderError, Rendered, TemplateInfo};
use crate::tls::Certificates;

/// Name of the root supervisor.
pub const ROOT_NAME: &str = "leanserve";

/// leanserve's own children of the root supervisor that [`Runtime::start`] starts with
/// `opts`, by name and in start order (host children follow): the order the supervisor
/// reports, `/admin/supervisor` lists and the restart metrics are labelled in. The one
/// spelling of that order: the unit test below checks `start` against it, and the
/// integration tests read it through `internals`.
pub fn child_order(opts: &Opts) -> Vec<&'static str> {
    [
        ("process", true),
        ("pool_manager", opts.pools.enabled),
        ("file_cache", true),
        ("profiler", true),
        ("templates", opts.templates.enabled),
        ("monitor", opts.monitoring.enabled),
        ("tuner", opts.tuner.mode != TunerMode::Off),
    ]
    .into_iter()
    .filter_map(|(name, started)| started.then_some(name))
    .collect()
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The static root folder does not exist (only possible with hand-built `Opts`;
    /// `Config::load` checks it too).
    #[error("static root {} is not a directory", path.display())]
    RootDir {
        /// The configured `static_files.root_dir`.
        path: PathBuf,
    },
    /// The supervision tree is malformed (for example two children with one name).
    #[error(transparent)]
    Tree(#[from] SupervisorError),
    /// Hand-built `Opts` that [`Opts::validate`] refuses (`Config::load` runs the same
    /// checks).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// leanserve's own pools could not be made (only possible with hand-built `Opts`;
    /// `Config::load` checks their options).
    #[error(transparent)]
    Pools(PoolError),
}

/// Builds and starts the runtime.
pub struct Runtime {
    opts: Opts,
    extra: Vec<ChildSpec>,
    certificates: Vec<Arc<Certificates>>,
}

impl Runtime {
    /// A runtime with leanserve's own subsystems.
    pub fn new(opts: Opts) -> Self {
        Runtime {
            opts,
            extra: Vec::new(),
            certificates: Vec::new(),
        }
    }

    /// Reports a TLS listener's certificates in the metrics (`tls_cert_expiry_seconds`,
    /// `tls_reload_failures_total`, labelled by listener) and so in the default alerts:
    /// expiry within 14 days, and renewals that could not be used.
    pub fn certificates(mut self, certificates: Arc<Certificates>) -> Self {
        self.certificates.push(certificates);
        self
    }

    /// Adds a host actor to the root supervisor, started after leanserve's own children
    /// and supervised like them.
    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.extra.push(spec);
        self
    }

    /// Starts the tree, host children included, answering once every child has been
    /// started: `Runtime::new(opts).start().await`, or with host actors
    /// `Runtime::new(opts).child(spec).start().await`. Call it inside a running actix
    /// System (`#[actix_web::main]`, `actix_rt::System`).
    pub async fn start(self) -> Result<Subsystems, StartError> {
        let opts = self.opts;
        check(&opts).await?;
        let levels = Levels {
            gzip: opts.static_files.gzip_level,
            br: opts.static_files.br_level,
            zstd: opts.static_files.zstd_level,
        };
        let (pool_manager_spec, pools, resources) =
            PoolsHandle::start(&opts.pools, levels).map_err(StartError::Pools)?;
        let (file_cache_spec, file_cache) =
            FileCacheHandle::start(opts.static_files.clone(), resources.codecs.clone())
                .await
                .map_err(|_| StartError::RootDir {
                    path: opts.static_files.root_dir.clone(),
                })?;
        let (process_spec, process) = ProcessHandle::child(&opts.process);
        let templates = if opts.templates.enabled {
            let shared = TemplatesShared::with_resources(
                opts.templates.clone(),
                opts.static_files.min_compress_size,
                resources,
            );
            // Live values templates can read; computed only when a render reads them.
            let files = file_cache.reader().clone();
            shared.add_live_value("cache_stats", move || files.stats());
            let samples = process.stats().clone();
            shared.add_live_value("process", move || samples.latest());
            Some(TemplatesHandle::start(shared).await)
        } else {
            None
        };
        let mut accounts: Vec<Arc<dyn MemoryAccount>> = vec![Arc::new(file_cache.reader().clone())];
        if pool_manager_spec.is_some() {
            accounts.push(Arc::new(pools.registry().clone()));
        }
        if let Some((_, templates)) = &templates {
            accounts.push(Arc::new(templates.shared().clone()));
        }
        let (profiler_spec, profiler) = ProfilerHandle::start(&opts.profiler, accounts);
        let requests = Arc::new(RequestMetrics::default());
        let limiters = opts
            .limiter
            .enabled
            .then(|| Limiters::new(opts.limiter.config, opts.templates.render_workers));

        // The tree, in start order (see the module doc); stopped in reverse.
        let supervisor = &opts.supervisor;
        let mut tree = SupervisorSpec::new(ROOT_NAME)
            .intensity(Intensity {
                max_restarts: supervisor.max_restarts,
                period: supervisor.period,
                backoff: supervisor.backoff,
                max_backoff: supervisor.max_backoff,
            })
            .call_timeout(supervisor.call_timeout)
            .child(process_spec);
        if let Some(spec) = pool_manager_spec {
            tree = tree.child(spec);
        }
        tree = tree.child(file_cache_spec).child(profiler_spec);
        let (tree, templates) = optional_child(tree, templates);
        let tuner = (opts.tuner.mode != TunerMode::Off).then(|| {
            TunerHandle::child(
                &opts.tuner,
                TunerInputs {
                    file_cache: file_cache.clone(),
                    process: process.stats().clone(),
                    pools: pools.registry().clone(),
                    limiters: limiters.clone(),
                    templates: templates.as_ref().map(|t| t.shared().clone()),
                    workers: opts.server.workers,
                    pool_ceilings: crate::config::BUILTIN_POOLS
                        .iter()
                        .map(|name| (name.to_string(), opts.pools.spec(name).scale_max))
                        .collect(),
                },
            )
        });
        let monitor = opts.monitoring.enabled.then(|| {
            let mut sources: Vec<Arc<dyn Source>> = vec![
                Arc::new(file_cache.reader().clone()),
                requests.clone(),
                tree.status(),
                Arc::new(process.stats().clone()),
                Arc::new(profiler.shared().clone()),
            ];
            if let Some(templates) = &templates {
                sources.push(Arc::new(templates.shared().clone()));
            }
            if opts.pools.enabled {
                sources.push(Arc::new(pools.registry().clone()));
            }
            if let Some(limiters) = &limiters {
                sources.push(Arc::new(limiters.clone()));
            }
            if let Some((_, tuner)) = &tuner {
                sources.push(Arc::new(tuner.shared().clone()));
            }
            if !self.certificates.is_empty() {
                sources.push(Arc::new(crate::tls::Listeners(self.certificates)));
            }
            MonitorHandle::child(&opts.monitoring, sources)
        });
        let (tree, monitor) = optional_child(tree, monitor);
        let (mut tree, tuner) = optional_child(tree, tuner);
        for spec in self.extra {
            tree = tree.child(spec);
        }
        log::info!("starting leanserve runtime ({} profile)", opts.profile);
        let root = tree.start()?;
        root.handle().status().started().await;
        Ok(Subsystems {
            inner: Arc::new(Inner {
                opts,
                root,
                process,
                file_cache,
                profiler,
                templates,
                requests,
                monitor,
                pools,
                limiters,
                tuner,
            }),
        })
    }
}

/// Adds a subsystem's child when it is on; answers its handle.
fn optional_child<H>(
    tree: SupervisorSpec,
    child: Option<(ChildSpec, H)>,
) -> (SupervisorSpec, Option<H>) {
    match child {
        Some((spec, handle)) => (tree.child(spec), Some(handle)),
        None => (tree, None),
    }
}

/// Checks hand-built options as `Config::load` does, on the blocking pool: the checks
/// look at the static root, which may be a network mount, and a host may start the
/// runtime on a thread that serves.
async fn check(opts: &Opts) -> Result<(), StartError> {
    let opts = opts.clone();
    actix_web::rt::task::spawn_blocking(move || {
        if !opts.static_files.root_dir.is_dir() {
            return Err(StartError::RootDir {
                path: opts.static_files.root_dir.clone(),
            });
        }
        opts.validate().map_err(StartError::from)
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// What a running runtime holds: one handle per subsystem.
struct Inner {
    opts: Opts,
    root: RootSupervisor,
    process: ProcessHandle,
    file_cache: FileCacheHandle,
    profiler: ProfilerHandle,
    /// `None` with `templates.enabled = false`.
    templates: Option<TemplatesHandle>,
    requests: Arc<RequestMetrics>,
    /// `None` with `monitoring.enabled = false`.
    monitor: Option<MonitorHandle>,
    /// An empty registry with `pools.enabled = false`.
    pools: PoolsHandle,
    /// `None` with `limiter.enabled = false`.
    limiters: Option<Limiters>,
    /// `None` with the tuner off.
    tuner: Option<TunerHandle>,
}

/// Whether the runtime can serve: every permanent child runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Every permanent child runs.
    pub ready: bool,
    /// Paths of the children (or supervisors) that are not running.
    pub unready: Vec<String>,
    /// The root supervisor gave up; the server is going to stop.
    pub escalated: bool,
}

/// Handles to a running runtime's subsystems. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Subsystems {
    inner: Arc<Inner>,
}

impl Subsystems {
    /// The options the runtime was started with.
    pub fn opts(&self) -> &Opts {
        &self.inner.opts
    }

    /// The supervision tree: state, restarts and last failure of every child.
    pub fn supervisor_report(&self) -> SupervisorReport {
        self.inner.root.handle().status().report()
    }

    /// Whether every permanent child is running.
    pub fn readiness(&self) -> Readiness {
        let status = self.inner.root.handle().status();
        let unready = status.report().unready();
        Readiness {
            ready: unready.is_empty(),
            unready,
            escalated: status.has_given_up(),
        }
    }

    /// Resolves when the root supervisor gives up (restart intensity exceeded at the top).
    pub async fn escalated(&self) {
        self.inner.root.handle().status().given_up().await
    }

    /// The latest process sample, without a message round trip.
    pub fn process_stats(&self) -> Option<ProcessSample> {
        self.inner.process.stats().latest()
    }

    /// Takes a process sample now.
    pub async fn sample_process(&self) -> Result<Option<ProcessSample>, CallError> {
        self.inner.process.sample().await
    }

    /// The file cache's read handle (lookups of fresh entries, counters).
    pub(crate) fn files(&self) -> &FileCacheReader {
        self.inner.file_cache.reader()
    }

    /// The file cache: its reader, the miss protocol and the offers requests make.
    pub(crate) fn file_cache(&self) -> &FileCacheHandle {
        &self.inner.file_cache
    }

    /// The bytes the file cache holds (stored bytes plus per-entry overhead).
    pub async fn cache_size(&self) -> Result<u64, CallError> {
        self.inner.file_cache.size().await
    }

    /// How many files the cache holds.
    pub async fn cache_item_count(&self) -> Result<usize, CallError> {
        self.inner.file_cache.item_count().await
    }

    /// The file cache's statistics.
    pub async fn cache_stats(&self) -> Result<CacheStats, CallError> {
        self.inner.file_cache.stats().await
    }

    /// Empties the file cache; answers the bytes it held.
    pub async fn clear_cache(&self) -> Result<u64, CallError> {
        self.inner.file_cache.clear().await
    }

    /// Current memory figures (allocator, process, per subsystem), formatted in MB.
    pub async fn memory_stats(&self) -> Result<MemoryStats, CallError> {
        self.inner.profiler.memory_stats().await
    }

    /// Takes a memory snapshot now, with an optional label, and keeps it.
    pub async fn take_snapshot(&self, label: Option<String>) -> Result<Snapshot, ProfilerError> {
        self.inner.profiler.take_snapshot(label).await
    }

    /// The kept memory snapshots, oldest first (kept across profiler restarts).
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.inner.profiler.shared().snapshots()
    }

    /// Compares two kept snapshots, each named by index, label or `latest`.
    pub async fn compare_snapshots(
        &self,
        a: String,
        b: String,
    ) -> Result<SnapshotComparison, ProfilerError> {
        self.inner.profiler.compare(a, b).await
    }

    /// Captures a heap profile into `profiler.profiles_dir`; answers the file written.
    pub async fn capture_heap_profile(
        &self,
        label: Option<String>,
    ) -> Result<CapturedProfile, ProfilerError> {
        self.inner.profiler.capture(label).await
    }

    /// Captures a heap profile and answers its bytes (gzipped pprof protobuf).
    pub async fn heap_profile(&self) -> Result<bytes::Bytes, ProfilerError> {
        self.inner.profiler.heap_profile().await
    }

    /// The template store's shared state; `None` when templates are off.
    pub(crate) fn templates(&self) -> Option<&TemplatesShared> {
        self.inner.templates.as_ref().map(TemplatesHandle::shared)
    }

    /// Renders template `name` with the global context overlaid by `context`, on the
    /// blocking pool; `gzip`: also compress the output when that pays.
    pub async fn render_template(
        &self,
        name: &str,
        context: serde_json::Map<String, serde_json::Value>,
        gzip: bool,
    ) -> Result<Rendered, RenderError> {
        match self.templates() {
            Some(templates) => templates.render(name, context, gzip).await,
            None => Err(Off::Templates.into()),
        }
    }

    /// Every known template with its chain, state and how it is served (empty when
    /// templates are off).
    pub fn template_list(&self) -> Vec<TemplateInfo> {
        self.templates()
            .map(TemplatesShared::list)
            .unwrap_or_default()
    }

    /// The context optimizer's figures: reads per variable (`top` most and least read),
    /// the variables each template reads, the shared and lazily loaded ones. `None` when
    /// templates are off.
    pub fn template_variables(&self, top: usize) -> Option<VariablesReport> {
        self.templates().map(|templates| templates.variables(top))
    }

    /// Re-runs the template optimizers from scratch, publishes the result and answers
    /// what they did, with the heap bytes saved where jemalloc can measure them. `None`
    /// when templates are off.
    pub async fn optimize_templates(&self) -> Result<Option<OptimizeReport>, CallError> {
        match &self.inner.templates {
            Some(templates) => templates.optimize().await.map(Some),
            None => Ok(None),
        }
    }

    /// Reloads changed templates now (whatever `templates.reload_interval` says).
    pub async fn reload_templates(&self) -> Result<ReloadSummary, CallError> {
        match &self.inner.templates {
            Some(templates) => templates.reload().await,
            None => Ok(ReloadSummary::default()),
        }
    }

    /// The runtime's resource pools (empty when `pools.enabled` is false).
    pub(crate) fn pools(&self) -> &Pools {
        self.inner.pools.registry()
    }

    /// Every pool's figures.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pools.registry().stats()
    }

    /// The `[pools]` options, as a starting point for a host's own pools.
    pub fn default_pool_spec(&self) -> PoolSpec {
        self.inner.opts.pools.defaults.clone()
    }

    /// Creates a pool of the host's own resources under leanserve's pool manager: kept,
    /// reaped, autoscaled, leak-checked and in `/admin/pools`, `/metrics` and the
    /// profiler's accounts like leanserve's own.
    pub async fn create_pool<M: Manager>(
        &self,
        name: &str,
        spec: PoolSpec,
        manager: M,
    ) -> Result<Pool<M>, PoolError> {
        self.inner.pools.create(name, spec, manager).await
    }

    /// The pool named `name`, typed (a host's or leanserve's own).
    pub fn pool<M: Manager>(&self, name: &str) -> Result<Pool<M>, PoolError> {
        self.inner.pools.get(name)
    }

    /// Changes a pool's limits; `by` names who asks (`admin`, `tuner`, `api`).
    pub async fn resize_pool(
        &self,
        name: &str,
        resize: Resize,
        by: &str,
    ) -> Result<PoolStats, PoolError> {
        self.inner.pools.resize(name, resize, by).await
    }

    /// Closes and removes a host's pool.
    pub async fn remove_pool(&self, name: &str) -> Result<(), PoolError> {
        self.inner.pools.remove(name).await
    }

    /// Runs one round of pool upkeep now (reaping, refilling, leak scan, autoscaling).
    pub async fn maintain_pools(&self) -> Result<Vec<(String, MaintainReport)>, PoolError> {
        self.inner.pools.maintain().await
    }

    /// The in-flight limiters of static files and renders; `None` when
    /// `limiter.enabled` is false.
    pub(crate) fn limiters(&self) -> Option<&Limiters> {
        self.inner.limiters.as_ref()
    }

    /// The tuner's options, last report and decisions; `None` when it is off.
    pub(crate) fn tuner(&self) -> Option<&TunerShared> {
        self.inner.tuner.as_ref().map(TunerHandle::shared)
    }

    /// The changes the tuner made, oldest first (empty when it is off).
    pub fn tuner_decisions(&self) -> Vec<TunerDecision> {
        self.tuner().map(TunerShared::decisions).unwrap_or_default()
    }

    /// Runs a tuning round now and answers its report; `apply`: apply the live knobs
    /// whatever the mode. `None` when the tuner is off.
    pub async fn tune(&self, apply: bool) -> Result<Option<TunerReport>, CallError> {
        match &self.inner.tuner {
            Some(tuner) => tuner.tune(apply).await.map(Some),
            None => Ok(None),
        }
    }

    /// Per-request counters (bumped by the web middleware).
    pub(crate) fn requests(&self) -> &Arc<RequestMetrics> {
        &self.inner.requests
    }

    /// The serving listener's connection counter, for `HttpServer::on_connect`: it
    /// counts connections by transport (`tcp`, `tls`) and protocol (`http1`, `h2`) in
    /// `connections_total` and `connections_open`. `h2c`: the listener also takes HTTP/2
    /// over cleartext (`HttpServer::bind_auto_h2c`), so a cleartext connection's protocol
    /// is settled by its first request.
    pub fn count_connections(
        &self,
        h2c: bool,
    ) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
        let connections = Arc::clone(self.inner.requests.connections());
        move |connection, extensions| {
            crate::web::count_connection(&connections, h2c, connection, extensions)
        }
    }

    /// The monitor's published samples and alerts; `None` when monitoring is off.
    pub(crate) fn monitoring(&self) -> Option<&MonitorReader> {
        self.inner.monitor.as_ref().map(MonitorHandle::reader)
    }

    /// The alerts firing now (none when monitoring is off).
    pub async fn check_alerts(&self) -> Result<Vec<AlertStatus>, CallError> {
        match &self.inner.monitor {
            Some(monitor) => monitor.check_alerts().await,
            None => Ok(Vec::new()),
        }
    }

    /// Has the monitor collect and evaluate its alerts now (no-op when monitoring is off).
    pub async fn collect_now(&self) -> Result<(), CallError> {
        match &self.inner.monitor {
            Some(monitor) => monitor.collect_now().await,
            None => Ok(()),
        }
    }

    /// Stops every subsystem in reverse start order, each within its shutdown timeout.
    pub async fn shutdown(&self) {
        self.inner.root.shutdown().await
    }

    /// Makes the supervised actor named `child` panic. `None`: no such child;
    /// `Some(false)`: it has no running incarnation.
    #[cfg(feature = "chaos")]
    pub fn inject_panic(&self, child: &str) -> Option<bool> {
        self.inner.root.handle().status().inject_panic(child, false)
    }

    /// Starts a restart storm: `child` panics now and every incarnation after it panics as
    /// soon as it starts, until its supervisor gives up (chaos builds).
    #[cfg(feature = "chaos")]
    pub fn inject_restart_storm(&self, child: &str) -> Option<bool> {
        self.inner.root.handle().status().inject_panic(child, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `start` starts, with every switchable child on and with each off.
    #[actix_rt::test]
    async fn runtime_starts_its_children_in_child_order() {
        let root = tempfile::tempdir().unwrap();
        let mut opts = Opts::default();
        opts.static_files.root_dir = root.path().to_owned();
        opts.templates.dir = root.path().to_owned();
        opts.tuner.mode = TunerMode::Recommend;
        let mut off = opts.clone();
        off.pools.enabled = false;
        off.templates.enabled = false;
        off.monitoring.enabled = false;
        off.tuner.mode = TunerMode::Off;
        for (opts, expected) in [
            (
                opts,
                &[
                    "process",
                    "pool_manager",
                    "file_cache",
                    "profiler",
                    "templates",
                    "monitor",
                    "tuner",
                ][..],
            ),
            (off, &["process", "file_cache", "profiler"][..]),
        ] {
            let order = child_order(&opts);
            assert_eq!(order, expected);
            let subsystems = Runtime::new(opts).start().await.unwrap();
            let started: Vec<String> = subsystems
                .supervisor_report()
                .children
                .into_iter()
                .map(|child| child.name)
                .collect();
            assert_eq!(started, order);
            subsystems.shutdown().await;
        }
    }
}
