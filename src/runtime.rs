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
//! Nothing here is process-global, with one exception the allocator imposes: starting a
//! runtime switches jemalloc's heap sampling on or off (`profiler.heap_profiling`) for
//! the whole process. Otherwise two runtimes in one process share nothing.

use std::path::PathBuf;
use std::sync::Arc;

use crate::actors::file_cache::{
    BuildEncodings, CacheStats, CachedFile, Claim, ClearCache, FileCache, FileCacheReader, Found,
    GetCacheItemCount, GetCacheSize, GetCacheStats, KeepEncoded, KeepIdentity, LoadError,
    StartLoad,
};
use crate::actors::monitor::{AlertStatus, CheckAlerts, CollectNow, Monitor, MonitorReader};
use crate::actors::pool_manager::{CreatePool, MaintainPools, PoolManager, RemovePool, ResizePool};
use crate::actors::process::{ProcessSample, ProcessSampler, ProcessStats, SampleProcess};
use crate::actors::profiler::{
    CaptureHeapProfile, CapturedProfile, CompareSnapshots, Comparison, GetMemoryStats, HeapProfile,
    MemoryAccount, MemoryStats, Profiler, ProfilerError, ProfilerShared, Snapshot, TakeSnapshot,
};
use crate::actors::templates::{
    OptimizeReport, OptimizeTemplates, ReloadSummary, ReloadTemplates, TemplateStore,
    TemplatesShared, VariablesReport,
};
use crate::actors::tuner::{Tune, Tuner, TunerInputs, TunerReport, TunerShared};
use crate::codec::{Codecs, GZIP_POOL, GzipManager, INFLATE_POOL, InflateManager, Levels};
use crate::concurrency::Limiters;
use crate::config::{Opts, TunerMode};
use crate::http::encoding::Coding;
use crate::metrics::{RequestMetrics, Source};
use crate::off::Off;
use crate::pool::{MaintainReport, Manager, Pool, PoolError, PoolSpec, PoolStats, Pools, Resize};
use crate::supervisor::{
    CallError, ChildSpec, Handle, Intensity, RootSupervisor, SupervisorError, SupervisorReport,
    SupervisorSpec,
};
use crate::templates::render::{BUFFER_POOL, BufferManager, Resources};
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
        // Checked on the blocking pool: the checks look at the static root, which may be
        // a network mount, and a host may start the runtime on a thread that serves.
        let checked = {
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
        };
        checked?;
        let pools = Pools::new();
        let (codecs, buffers) = if opts.pools.enabled {
            let pool_error = |error: PoolError| StartError::Pools(error);
            let gzip = pools
                .create(GZIP_POOL, opts.pools.spec(GZIP_POOL), GzipManager)
                .map_err(pool_error)?;
            let inflate = pools
                .create(INFLATE_POOL, opts.pools.spec(INFLATE_POOL), InflateManager)
                .map_err(pool_error)?;
            let buffers = pools
                .create(BUFFER_POOL, opts.pools.spec(BUFFER_POOL), BufferManager)
                .map_err(pool_error)?;
            (Codecs::pooled(gzip, inflate), Some(buffers))
        } else {
            (Codecs::direct(), None)
        };
        let codecs = codecs.storing_at(Levels {
            gzip: opts.static_files.gzip_level,
            br: opts.static_files.br_level,
            zstd: opts.static_files.zstd_level,
        });
        // The root is opened on the blocking pool too.
        let files = {
            let (static_files, codecs) = (opts.static_files.clone(), codecs.clone());
            let opened = actix_web::rt::task::spawn_blocking(move || {
                let root = static_files.root_dir.clone();
                if root.is_dir() {
                    FileCacheReader::new(static_files, codecs).ok()
                } else {
                    None
                }
            })
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
            opened.ok_or_else(|| StartError::RootDir {
                path: opts.static_files.root_dir.clone(),
            })?
        };
        let (file_cache_spec, file_cache) = {
            let reader = files.clone();
            ChildSpec::worker("file_cache", move || FileCache::new(reader.clone()))
        };
        let process_stats = ProcessStats::default();
        let (process_spec, process) = {
            let (interval, stats) = (opts.process.sample_interval, process_stats.clone());
            ChildSpec::worker("process", move || {
                ProcessSampler::new(interval, stats.clone())
            })
        };
        let heap_profiling = crate::alloc::set_heap_profiling(opts.profiler.heap_profiling);
        match (&heap_profiling, opts.profiler.heap_profiling) {
            (crate::alloc::HeapProfiling::Unavailable { reason }, true) => {
                log::warn!(
                    "profiler.heap_profiling is on, but heap profiles are unavailable: {reason}"
                )
            }
            (state, _) => log::info!("heap profiling: {state:?}"),
        }
        let templates = if opts.templates.enabled {
            let shared = TemplatesShared::with_resources(
                opts.templates.clone(),
                opts.static_files.min_compress_size,
                Resources { codecs, buffers },
            );
            // Live values templates can read; computed only when a render reads them.
            let reader = files.clone();
            shared.add_live_value("cache_stats", move || reader.stats());
            let stats = process_stats.clone();
            shared.add_live_value("process", move || stats.latest());
            // Loaded before the tree starts, so the first request finds them.
            let loader = shared.clone();
            match actix_web::rt::task::spawn_blocking(move || loader.reload_blocking()).await {
                Ok(summary) => {
                    if let Some(failure) = summary.failure {
                        log::error!("templates: {failure}");
                    }
                }
                // Served empty until the store's own first reload (or the next) succeeds.
                Err(panic) => shared.reload_panicked(&panic),
            }
            Some(shared)
        } else {
            None
        };
        let mut accounts: Vec<Arc<dyn MemoryAccount>> = vec![Arc::new(files.clone())];
        if opts.pools.enabled {
            accounts.push(Arc::new(pools.clone()));
        }
        if let Some(templates) = &templates {
            accounts.push(Arc::new(templates.clone()));
        }
        let profiler_shared = ProfilerShared::new(opts.profiler.clone(), accounts);
        let (profiler_spec, profiler) = {
            let shared = profiler_shared.clone();
            ChildSpec::worker("profiler", move || Profiler::new(shared.clone()))
        };
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
        let pool_manager = if opts.pools.enabled {
            let (registry, interval) = (pools.clone(), opts.pools.maintenance_interval);
            let (spec, handle) = ChildSpec::worker("pool_manager", move || {
                PoolManager::new(registry.clone(), interval)
            });
            tree = tree.child(spec);
            Some(handle)
        } else {
            None
        };
        tree = tree.child(file_cache_spec).child(profiler_spec);
        let templates = match templates {
            Some(shared) => {
                let store_shared = shared.clone();
                let (spec, handle) = ChildSpec::worker("templates", move || {
                    TemplateStore::new(store_shared.clone())
                });
                tree = tree.child(spec);
                Some((handle, shared))
            }
            None => None,
        };
        let requests = Arc::new(RequestMetrics::default());
        let limiters = opts
            .limiter
            .enabled
            .then(|| Limiters::new(opts.limiter.config, opts.templates.render_workers));
        let tuner_shared = (opts.tuner.mode != TunerMode::Off).then(|| {
            TunerShared::new(
                opts.tuner.clone(),
                TunerInputs {
                    files: files.clone(),
                    file_cache: file_cache.clone(),
                    process: process_stats.clone(),
                    pools: pools.clone(),
                    limiters: limiters.clone(),
                    templates: templates.as_ref().map(|(_, shared)| shared.clone()),
                    workers: opts.server.workers,
                    pool_ceilings: crate::config::BUILTIN_POOLS
                        .iter()
                        .map(|name| (name.to_string(), opts.pools.spec(name).scale_max))
                        .collect(),
                },
            )
        });
        let monitor = if opts.monitoring.enabled {
            let reader = MonitorReader::new(opts.monitoring.interval);
            let mut sources: Vec<Arc<dyn Source>> = vec![
                Arc::new(files.clone()),
                requests.clone(),
                tree.status(),
                Arc::new(process_stats.clone()),
                Arc::new(profiler_shared.clone()),
            ];
            if let Some((_, shared)) = &templates {
                sources.push(Arc::new(shared.clone()));
            }
            if pool_manager.is_some() {
                sources.push(Arc::new(pools.clone()));
            }
            if let Some(limiters) = &limiters {
                sources.push(Arc::new(limiters.clone()));
            }
            if let Some(tuner) = &tuner_shared {
                sources.push(Arc::new(tuner.clone()));
            }
            if !self.certificates.is_empty() {
                sources.push(Arc::new(crate::tls::Listeners(self.certificates)));
            }
            let (monitor_reader, monitoring) = (reader.clone(), opts.monitoring.clone());
            let (spec, handle) = ChildSpec::worker("monitor", move || {
                Monitor::new(monitor_reader.clone(), sources.clone(), &monitoring)
            });
            tree = tree.child(spec);
            Some((handle, reader))
        } else {
            None
        };
        let tuner = match tuner_shared {
            Some(shared) => {
                let actor_shared = shared.clone();
                let (spec, handle) =
                    ChildSpec::worker("tuner", move || Tuner::new(actor_shared.clone()));
                tree = tree.child(spec);
                Some((handle, shared))
            }
            None => None,
        };
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
                process_stats,
                file_cache,
                files,
                profiler,
                profiler_shared,
                templates,
                requests,
                monitor,
                pools,
                pool_manager,
                limiters,
                tuner,
            }),
        })
    }
}

struct Inner {
    opts: Opts,
    root: RootSupervisor,
    process: Handle<ProcessSampler>,
    process_stats: ProcessStats,
    file_cache: Handle<FileCache>,
    files: FileCacheReader,
    profiler: Handle<Profiler>,
    profiler_shared: ProfilerShared,
    /// `None` with `templates.enabled = false`.
    templates: Option<(Handle<TemplateStore>, TemplatesShared)>,
    requests: Arc<RequestMetrics>,
    /// `None` with `monitoring.enabled = false`.
    monitor: Option<(Handle<Monitor>, MonitorReader)>,
    /// Empty with `pools.enabled = false`.
    pools: Pools,
    /// `None` with `pools.enabled = false`.
    pool_manager: Option<Handle<PoolManager>>,
    /// `None` with `limiter.enabled = false`.
    limiters: Option<Limiters>,
    /// `None` with the tuner off.
    tuner: Option<(Handle<Tuner>, TunerShared)>,
}

/// Whether the runtime can serve: every permanent child runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
        self.inner.process_stats.latest()
    }

    /// Takes a process sample now.
    pub async fn sample_process(&self) -> Result<Option<ProcessSample>, CallError> {
        self.inner.process.send(SampleProcess).await
    }

    /// The file cache's read handle (lookups of fresh entries, counters).
    pub fn files(&self) -> &FileCacheReader {
        &self.inner.files
    }

    /// Loads (or revalidates) the file at `key`, or joins its load in flight: on this
    /// thread when that needs no waiting, else on the blocking pool through the cache
    /// actor.
    ///
    /// A load that dies with the cache actor (a restart while it ran) is retried, on this
    /// thread or by the next incarnation, for up to the actor's call timeout: a restart
    /// costs a request some latency, not an error.
    pub async fn load_file(&self, key: String) -> Result<Result<Found, LoadError>, CallError> {
        let deadline = tokio::time::Instant::now() + self.inner.file_cache.call_timeout();
        loop {
            let attempt = self.load_file_once(&key).await;
            let lost = matches!(
                attempt,
                Ok(Err(LoadError::Interrupted)) | Err(CallError::Crashed { .. })
            );
            if !lost || tokio::time::Instant::now() >= deadline {
                return attempt;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn load_file_once(&self, key: &str) -> Result<Result<Found, LoadError>, CallError> {
        let files = &self.inner.files;
        let receiver = match files.claim(key) {
            Claim::Wait(receiver) => receiver,
            Claim::Lead(claim) => {
                if let Some(found) = files.load_now(key) {
                    let result = Ok(found);
                    claim.complete(&result);
                    return Ok(result);
                }
                // The claim travels with the message: if the actor never handles it (a
                // restart, a cancelled call), dropping it answers everyone waiting.
                self.inner.file_cache.send(StartLoad { claim }).await?
            }
        };
        Ok(receiver.await.unwrap_or(Err(LoadError::Interrupted)))
    }

    /// Asks the file cache to build the stored-level representations a cached file
    /// asked for (fire and forget).
    pub fn build_encodings(&self, key: String) {
        self.inner.file_cache.do_send(BuildEncodings { key });
    }

    /// Offers the file cache the bytes of `file` compressed in `coding` for a request, as
    /// its first compressed form (`None`: compression does not pay for this file); fire
    /// and forget, the cache may decline.
    pub fn keep_encoded(&self, file: Arc<CachedFile>, coding: Coding, bytes: Option<bytes::Bytes>) {
        self.inner.file_cache.do_send(KeepEncoded {
            file,
            coding,
            bytes,
        });
    }

    /// Offers the file cache `file` compressed against a dictionary for a request (fire
    /// and forget: the cache may decline).
    pub(crate) fn keep_dict_encoded(
        &self,
        file: Arc<CachedFile>,
        encoded: crate::actors::file_cache::DictEncoded,
    ) {
        self.inner
            .file_cache
            .do_send(crate::actors::file_cache::KeepDictEncoded { file, encoded });
    }

    /// Offers the file cache `file`, a version of an asset matching `pattern`, as a
    /// dictionary for its next version (fire and forget).
    pub(crate) fn add_asset_dictionary(&self, file: Arc<CachedFile>, pattern: String) {
        self.inner
            .file_cache
            .do_send(crate::actors::file_cache::AddAssetDictionary { file, pattern });
    }

    /// Offers the file cache an identity copy of a compressed-only entry that identity
    /// clients read often (fire and forget: the cache may decline).
    pub fn keep_identity(&self, file: Arc<CachedFile>, identity: bytes::Bytes) {
        self.inner
            .file_cache
            .do_send(KeepIdentity { file, identity });
    }

    /// The bytes the file cache holds (stored bytes plus per-entry overhead).
    pub async fn cache_size(&self) -> Result<u64, CallError> {
        self.inner.file_cache.send(GetCacheSize).await
    }

    /// How many files the cache holds.
    pub async fn cache_item_count(&self) -> Result<usize, CallError> {
        self.inner.file_cache.send(GetCacheItemCount).await
    }

    /// The file cache's statistics.
    pub async fn cache_stats(&self) -> Result<CacheStats, CallError> {
        self.inner.file_cache.send(GetCacheStats).await
    }

    /// Empties the file cache; answers the bytes it held.
    pub async fn clear_cache(&self) -> Result<u64, CallError> {
        self.inner.file_cache.send(ClearCache).await
    }

    /// Current memory figures (allocator, process, per subsystem), formatted in MB.
    pub async fn memory_stats(&self) -> Result<MemoryStats, CallError> {
        self.inner.profiler.send(GetMemoryStats).await
    }

    /// Takes a memory snapshot now, with an optional label, and keeps it.
    pub async fn take_snapshot(
        &self,
        label: Option<String>,
    ) -> Result<Result<Snapshot, ProfilerError>, CallError> {
        self.inner.profiler.send(TakeSnapshot { label }).await
    }

    /// The kept memory snapshots, oldest first (kept across profiler restarts).
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.inner.profiler_shared.snapshots()
    }

    /// Compares two kept snapshots, each named by index, label or `latest`.
    pub async fn compare_snapshots(
        &self,
        a: String,
        b: String,
    ) -> Result<Result<Comparison, ProfilerError>, CallError> {
        self.inner.profiler.send(CompareSnapshots { a, b }).await
    }

    /// Captures a heap profile into `profiler.profiles_dir`; answers the file written.
    pub async fn capture_heap_profile(
        &self,
        label: Option<String>,
    ) -> Result<Result<CapturedProfile, ProfilerError>, CallError> {
        self.inner.profiler.send(CaptureHeapProfile { label }).await
    }

    /// Captures a heap profile and answers its bytes (gzipped pprof protobuf).
    pub async fn heap_profile(&self) -> Result<Result<bytes::Bytes, ProfilerError>, CallError> {
        self.inner.profiler.send(HeapProfile).await
    }

    /// The template store's shared state; `None` when templates are off.
    pub fn templates(&self) -> Option<&TemplatesShared> {
        self.inner.templates.as_ref().map(|(_, shared)| shared)
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
            Some((handle, _)) => handle.send(OptimizeTemplates).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reloads changed templates now (whatever `templates.reload_interval` says).
    pub async fn reload_templates(&self) -> Result<ReloadSummary, CallError> {
        match &self.inner.templates {
            Some((handle, _)) => handle.send(ReloadTemplates).await,
            None => Ok(ReloadSummary::default()),
        }
    }

    /// The runtime's resource pools (empty when `pools.enabled` is false).
    pub fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    /// Every pool's figures.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pools.stats()
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
        let handle = self.pool_manager()?;
        handle
            .send(CreatePool {
                name: name.to_owned(),
                spec,
                manager,
            })
            .await
            .map_err(|error| PoolError::Unavailable(error.to_string()))?
    }

    /// The pool named `name`, typed (a host's or leanserve's own).
    pub fn pool<M: Manager>(&self, name: &str) -> Result<Pool<M>, PoolError> {
        self.pool_manager()?;
        self.inner.pools.get(name)
    }

    /// Changes a pool's limits; `by` names who asks (`admin`, `tuner`, `api`).
    pub async fn resize_pool(
        &self,
        name: &str,
        resize: Resize,
        by: &str,
    ) -> Result<PoolStats, PoolError> {
        self.pool_manager()?
            .send(ResizePool {
                name: name.to_owned(),
                resize,
                by: by.to_owned(),
            })
            .await
            .map_err(|error| PoolError::Unavailable(error.to_string()))?
    }

    /// Closes and removes a host's pool.
    pub async fn remove_pool(&self, name: &str) -> Result<(), PoolError> {
        self.pool_manager()?
            .send(RemovePool {
                name: name.to_owned(),
            })
            .await
            .map_err(|error| PoolError::Unavailable(error.to_string()))?
    }

    /// Runs one round of pool upkeep now (reaping, refilling, leak scan, autoscaling).
    pub async fn maintain_pools(&self) -> Result<Vec<(String, MaintainReport)>, PoolError> {
        self.pool_manager()?
            .send(MaintainPools)
            .await
            .map_err(|error| PoolError::Unavailable(error.to_string()))
    }

    fn pool_manager(&self) -> Result<&Handle<PoolManager>, PoolError> {
        self.inner
            .pool_manager
            .as_ref()
            .ok_or(PoolError::Off(Off::Pools))
    }

    /// The in-flight limiters of static files and renders; `None` when
    /// `limiter.enabled` is false.
    pub fn limiters(&self) -> Option<&Limiters> {
        self.inner.limiters.as_ref()
    }

    /// The tuner's options, last report and decisions; `None` when it is off.
    pub fn tuner(&self) -> Option<&TunerShared> {
        self.inner.tuner.as_ref().map(|(_, shared)| shared)
    }

    /// Runs a tuning round now and answers its report; `apply`: apply the live knobs
    /// whatever the mode. `None` when the tuner is off.
    pub async fn tune(&self, apply: bool) -> Result<Option<TunerReport>, CallError> {
        match &self.inner.tuner {
            Some((handle, _)) => handle.send(Tune { apply }).await.map(Some),
            None => Ok(None),
        }
    }

    /// Per-request counters (bumped by the web middleware).
    pub fn requests(&self) -> &Arc<RequestMetrics> {
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
    pub fn monitoring(&self) -> Option<&MonitorReader> {
        self.inner.monitor.as_ref().map(|(_, reader)| reader)
    }

    /// The alerts firing now (none when monitoring is off).
    pub async fn check_alerts(&self) -> Result<Vec<AlertStatus>, CallError> {
        match &self.inner.monitor {
            Some((handle, _)) => handle.send(CheckAlerts).await,
            None => Ok(Vec::new()),
        }
    }

    /// Has the monitor collect and evaluate its alerts now (no-op when monitoring is off).
    pub async fn collect_now(&self) -> Result<(), CallError> {
        match &self.inner.monitor {
            Some((handle, _)) => handle.send(CollectNow).await,
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
