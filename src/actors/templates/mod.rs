//! The template store: every template under `templates.dir`, compiled by minijinja into
//! one `Environment`, optimized (extends chains flattened, see [`flatten`]), and
//! published through [`TemplatesShared`] so a render needs no message to the actor.
//!
//! Loading and optimizing are CPU and disk work, so they run on the blocking pool (the
//! flattening spread over `templates.render_workers` threads); the [`TemplateStore`] actor
//! only schedules them: at start, every `templates.reload_interval`, and on
//! [`ReloadTemplates`]. A reload stats every file and reads only the changed ones. A
//! template that fails to parse keeps its previous good version in service, and its error
//! is reported (log, [`TemplateInfo`]); cycles, missing parents and chains over
//! [`chain::MAX_CHAIN`] are load errors naming the chain. The published state
//! survives a restart of the actor, which then reloads from disk.
//!
//! Renders run on the blocking pool too, at most `templates.render_workers` at once, each
//! bounded in instructions and output (see [`render`]).
//!
//! The optimizers run in the build: [`flatten`] flattens chains, [`memory`] rewrites
//! the compiled set (aliases for duplicates, shared static sections, lazy compilation,
//! compressed sources) and [`context`] layers the variables renders start from (interned
//! global context, lazily loaded data files and live values, read counts per variable).
//! [`OptimizeTemplates`] re-runs them from scratch and measures what they save.

pub mod load;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use actix::prelude::*;
use minijinja::Environment;
use serde::Serialize;

use crate::config::TemplateOpts;
use crate::metrics::{Collector, Histogram, Source};
use crate::templates::{chain, context, flatten, memory, render};
use load::{Scan, Stamp};
pub use render::{RenderError, Rendered};

/// Reloads changed templates now; answers what happened.
#[derive(Message)]
#[rtype(result = "ReloadSummary")]
pub struct ReloadTemplates;

/// Re-runs the optimizers from scratch now; answers what they did and saved.
#[derive(Message)]
#[rtype(result = "OptimizeReport")]
pub struct OptimizeTemplates;

/// What one reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Templates known after the reload.
    pub templates: usize,
    /// Files read because they were new or changed (or removed).
    pub changed: usize,
    /// Templates in an error state after the reload.
    pub errors: usize,
    /// Whether a new set was compiled and published.
    pub published: bool,
    /// Why the folder could not be read, if it could not.
    pub failure: Option<String>,
}

/// How a template is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Its own source, through minijinja's inheritance.
    Original,
    /// Its whole chain flattened into one template.
    Flattened,
}

/// A template as `/admin/templates` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateInfo {
    pub name: String,
    /// Bytes of its source.
    pub bytes: usize,
    /// Its extends chain above it, nearest parent first.
    pub parents: Vec<String>,
    /// `ok`, or `error` with `error` saying why.
    pub state: &'static str,
    pub error: Option<String>,
    /// In error but an earlier good version is in service.
    pub stale: bool,
    pub served: Served,
    /// Templates in the chain as served (1 when flattened).
    pub served_depth: usize,
    /// Why it is served unflattened although its chain is deeper than 1 and flattening
    /// (or collapsing over `max_inheritance_depth`) was asked for.
    pub not_flattened: Option<String>,
}

/// The published set: what renders use.
pub struct Published {
    pub env: Arc<Environment<'static>>,
    /// The variables every render starts from: the global context
    /// (`_context.toml` / `_context.json`), the data files (`data/<name>.json`, loaded
    /// when read with the context optimizer's lazy loading) and the application's live
    /// values.
    pub vars: Arc<context::Vars>,
    /// The variables each template reads (through its chain, includes and imports), when
    /// the context optimizer is on.
    pub variables: BTreeMap<String, BTreeSet<String>>,
    /// What interning the global context saved (context optimizer deduplication).
    pub interned: Option<context::InternerStats>,
    pub templates: BTreeMap<String, TemplateInfo>,
    /// Counts publications since start.
    pub generation: u64,
    /// What the memory optimizer did to this set.
    pub memory: MemoryReport,
}

/// `GET /admin/templates/variables`: the context optimizer's figures.
#[derive(Clone, Debug, Serialize)]
pub struct VariablesReport {
    /// Whether the context optimizer runs (usage is counted only then).
    pub enabled: bool,
    /// Reads per variable across renders: high and low usage.
    pub usage: context::UsageReport,
    /// The variables each template reads.
    pub templates: BTreeMap<String, BTreeSet<String>>,
    /// Variables of the shared layers (global context, data files, live values) that
    /// two or more templates read.
    pub shared: Vec<SharedVariable>,
    /// Variables loaded when read, and how often each was loaded.
    pub lazy: Vec<LazyVariable>,
    /// What interning the global context saved.
    pub interned: Option<context::InternerStats>,
}

/// A variable several templates read from the shared layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedVariable {
    pub name: String,
    pub templates: usize,
}

/// A variable loaded only when a render reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LazyVariable {
    pub name: String,
    pub loads: u64,
}

/// What re-running the optimizers did (`POST /admin/templates/optimize`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OptimizeReport {
    /// Templates in the published set.
    pub templates: usize,
    /// Of those, served with their chain flattened.
    pub flattened: usize,
    /// The memory optimizer's rewrites.
    pub memory: MemoryReport,
    /// Heap bytes a build of the set holds with every optimizer off (before any render).
    pub baseline_heap_bytes: Option<u64>,
    /// The same with the configured optimizers.
    pub optimized_heap_bytes: Option<u64>,
    /// `baseline - optimized`.
    pub bytes_saved: Option<i64>,
    pub memory_reduced_mb: Option<f64>,
    /// Resident memory right before and after the memory-release hint (jemalloc purge),
    /// when `enable_gc_hints` is on and jemalloc could purge.
    pub rss_before_release: Option<u64>,
    pub rss_after_release: Option<u64>,
    /// Why the heap figures are missing, when they are.
    pub unavailable: Option<String>,
}

/// The memory optimizer's work on one published set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryReport {
    /// Templates (internal shared sections included) in the set.
    pub templates: usize,
    #[serde(flatten)]
    pub rewrites: memory::Rewrites,
    /// Templates not compiled when the set was published (lazy loading).
    pub pending: usize,
    /// Of those, held gzip-compressed.
    pub compressed: usize,
}

/// Template variables: a JSON object.
pub type Variables = serde_json::Map<String, serde_json::Value>;

/// A flattened source, or why the template is not flattened.
type Flattening = Result<Arc<str>, String>;

/// One template's source as last read.
#[derive(Clone)]
struct SourceEntry {
    stamp: Stamp,
    /// The last version that parsed, in service.
    good: Option<memory::Held>,
    /// Why the file on disk is not in service (read or syntax error).
    error: Option<String>,
}

/// Everything a reload reads and updates; locked only on blocking threads.
#[derive(Clone, Default)]
struct StoreState {
    sources: BTreeMap<String, SourceEntry>,
    context: Option<(Stamp, Result<Variables, String>)>,
    /// The data files last seen, by variable name.
    data: BTreeMap<String, (std::path::PathBuf, Stamp)>,
    /// Flattened sources by template name, with the fingerprint of the chain they came
    /// from (`cache_optimized_templates`).
    flattened: HashMap<String, (u64, Flattening)>,
    /// Whether anything was published yet.
    published: bool,
    /// Publications so far.
    generation: u64,
}

/// Counters of renders and reloads.
#[derive(Default)]
struct Counters {
    renders: AtomicU64,
    failures: AtomicU64,
    out_of_fuel: AtomicU64,
    too_large: AtomicU64,
    reloads: AtomicU64,
    render_time: Histogram,
}

/// The store's state shared by the actor, the blocking tasks and the HTTP handlers. Cheap
/// to clone; also a metrics [`Source`] and a memory account.
#[derive(Clone)]
pub struct TemplatesShared {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    opts: TemplateOpts,
    /// Needed by renders: when to gzip.
    min_compress: u64,
    /// Output buffers and compressors for renders.
    resources: render::Resources,
    published: RwLock<Arc<Published>>,
    state: Mutex<StoreState>,
    renders: tokio::sync::Semaphore,
    reloading: AtomicBool,
    counters: Counters,
    /// Reads per variable across renders (context optimizer).
    tracker: context::UsageTracker,
    /// Values the application computes when a render reads them.
    live: RwLock<BTreeMap<String, context::LazyHandle>>,
    last_optimize: RwLock<Option<OptimizeReport>>,
}

impl TemplatesShared {
    /// An empty store for `opts`; `min_compress` is the smallest output worth gzipping.
    /// Renders make their buffers and compressors fresh.
    pub fn new(opts: TemplateOpts, min_compress: u64) -> Self {
        TemplatesShared::with_resources(opts, min_compress, render::Resources::direct())
    }

    /// An empty store whose renders take buffers and compressors from `resources`.
    pub fn with_resources(
        opts: TemplateOpts,
        min_compress: u64,
        resources: render::Resources,
    ) -> Self {
        let renders = tokio::sync::Semaphore::new(opts.render_workers.max(1));
        TemplatesShared {
            inner: Arc::new(SharedInner {
                published: RwLock::new(Arc::new(Published {
                    env: Arc::new(Environment::new()),
                    vars: Arc::new(context::Vars::new()),
                    variables: BTreeMap::new(),
                    interned: None,
                    templates: BTreeMap::new(),
                    generation: 0,
                    memory: MemoryReport::default(),
                })),
                opts,
                min_compress,
                resources,
                state: Mutex::new(StoreState::default()),
                renders,
                reloading: AtomicBool::new(false),
                counters: Counters::default(),
                tracker: context::UsageTracker::new(),
                live: RwLock::new(BTreeMap::new()),
                last_optimize: RwLock::new(None),
            }),
        }
    }

    /// Renders so far and their times (queueing for a worker included).
    pub fn render_figures(&self) -> crate::metrics::Reading {
        self.inner.counters.render_time.read()
    }

    /// The options the store runs with.
    pub fn opts(&self) -> &TemplateOpts {
        &self.inner.opts
    }

    /// The set in service now.
    pub fn published(&self) -> Arc<Published> {
        self.inner
            .published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds a variable the application computes when a render reads it (for example the
    /// file cache's statistics). Takes effect at the next reload; call it before the
    /// first one.
    pub fn add_live_value<T: Serialize>(
        &self,
        name: &str,
        value: impl Fn() -> T + Send + Sync + 'static,
    ) {
        let handle =
            context::LazyHandle::new(context::LazyMode::PerRender, context::fn_loader(value));
        self.inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), handle);
    }

    /// The context optimizer's view: per-variable reads across renders (the `top` most
    /// and least read), the variables each template reads, and the variables several
    /// templates share.
    pub fn variables(&self, top: usize) -> VariablesReport {
        let published = self.published();
        let mut used_by: BTreeMap<String, usize> = BTreeMap::new();
        for variables in published.variables.values() {
            for variable in variables {
                *used_by.entry(variable.clone()).or_default() += 1;
            }
        }
        let shared = published
            .vars
            .keys()
            .filter_map(|name| {
                let templates = used_by.get(name).copied().unwrap_or(0);
                (templates >= 2).then(|| SharedVariable {
                    name: name.clone(),
                    templates,
                })
            })
            .collect();
        let lazy = published
            .vars
            .iter()
            .filter_map(|(name, entry)| match entry {
                context::Entry::Lazy(handle) => Some(LazyVariable {
                    name: name.clone(),
                    loads: handle.loads(),
                }),
                context::Entry::Value(_) => None,
            })
            .collect();
        VariablesReport {
            enabled: self.inner.opts.context.enabled,
            usage: self.inner.tracker.report(top),
            templates: published.variables.clone(),
            shared,
            lazy,
            interned: published.interned,
        }
    }

    /// Every known template, by name.
    pub fn list(&self) -> Vec<TemplateInfo> {
        self.published().templates.values().cloned().collect()
    }

    /// Re-runs the optimizers from scratch and publishes the result, measuring what they
    /// save: the heap bytes (jemalloc's allocated bytes, when it is the allocator) a build
    /// of the current set holds with every optimizer off, against the same with the
    /// configured ones, both right after the build (before any render). Blocking.
    pub fn optimize_blocking(&self) -> OptimizeReport {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let live = self
            .inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let opts = &self.inner.opts;
        let mut baseline_opts = opts.clone();
        baseline_opts.memory.enabled = false;
        baseline_opts.context.enabled = false;
        baseline_opts.flatten_inheritance = false;
        baseline_opts.max_inheritance_depth = chain::MAX_CHAIN;
        let heap = || crate::alloc::heap_stats().map(|stats| stats.allocated);
        // The baseline is built on a copy of the state, measured and dropped.
        let mut scratch = state.clone();
        scratch.flattened.clear();
        let before = heap();
        let baseline = build(&baseline_opts, &mut scratch, &live);
        let baseline_bytes = heap()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        drop(baseline);
        drop(scratch);
        state.flattened.clear();
        let before = heap();
        let optimized = build(opts, &mut state, &live);
        let optimized_bytes = heap()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        let mut report = OptimizeReport {
            rss_before_release: None,
            rss_after_release: None,
            templates: optimized.templates.len(),
            flattened: optimized
                .templates
                .values()
                .filter(|t| t.served == Served::Flattened)
                .count(),
            memory: optimized.memory.clone(),
            baseline_heap_bytes: baseline_bytes,
            optimized_heap_bytes: optimized_bytes,
            bytes_saved: baseline_bytes
                .zip(optimized_bytes)
                .map(|(base, optimized)| base as i64 - optimized as i64),
            memory_reduced_mb: baseline_bytes
                .zip(optimized_bytes)
                .map(|(base, optimized)| {
                    ((base as f64 - optimized as f64) / 1_048_576.0 * 100.0).round() / 100.0
                }),
            unavailable: heap()
                .is_none()
                .then(|| "heap bytes need jemalloc as the global allocator".to_owned()),
        };
        *self
            .inner
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(optimized);
        state.published = true;
        drop(state);
        if opts.memory.enabled && opts.memory.gc_hints {
            // The memory-release hint, and its effect on resident memory.
            let mut probe = crate::actors::process::ProcessProbe::new();
            let before = probe.read().map(|sample| sample.rss_bytes);
            let purged = crate::alloc::purge();
            let after = probe.read().map(|sample| sample.rss_bytes);
            report.rss_before_release = before.filter(|_| purged);
            report.rss_after_release = after.filter(|_| purged);
        }
        *self
            .inner
            .last_optimize
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
        log::info!(
            "templates: optimized {} templates ({} flattened); heap {:?} -> {:?} bytes",
            report.templates,
            report.flattened,
            report.baseline_heap_bytes,
            report.optimized_heap_bytes
        );
        report
    }

    /// The report of the last [`optimize_blocking`](Self::optimize_blocking), if any.
    pub fn last_optimize(&self) -> Option<OptimizeReport> {
        self.inner
            .last_optimize
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the folder, reloads what changed and publishes a new set if anything did.
    /// Blocking: run it on the blocking pool. Reloads are serialized.
    pub fn reload_blocking(&self) -> ReloadSummary {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let live = self
            .inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        reload(&self.inner.opts, &mut state, &live, |published| {
            *self
                .inner
                .published
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(published);
        })
    }

    /// Renders `name` with the global context overlaid by `request_context`, on the
    /// blocking pool, at most `render_workers` at once.
    pub async fn render(
        &self,
        name: &str,
        request_context: serde_json::Map<String, serde_json::Value>,
        want_gzip: bool,
    ) -> Result<Rendered, RenderError> {
        let published = self.published();
        match published.templates.get(name) {
            None => return Err(RenderError::NotFound(name.to_owned())),
            Some(info) if info.error.is_some() && !info.stale => {
                return Err(RenderError::Broken {
                    name: name.to_owned(),
                    message: info.error.clone().unwrap_or_default(),
                });
            }
            Some(_) => {}
        }
        // The request's variables over the shared ones, without copying the shared map.
        let request = Arc::new(context::vars_from_json(&request_context));
        let _permit = self
            .inner
            .renders
            .acquire()
            .await
            .map_err(|_| RenderError::Unavailable("the render pool is closed".into()))?;
        let (shared, template) = (self.clone(), name.to_owned());
        let started = Instant::now();
        let result = actix_web::rt::task::spawn_blocking(move || {
            let tracker = shared
                .inner
                .opts
                .context
                .enabled
                .then_some(&shared.inner.tracker);
            let context = context::layered_context(vec![request, published.vars.clone()], tracker);
            shared.render_in(&published, &template, &context, want_gzip)
        })
        .await
        .unwrap_or_else(|panic| {
            // minijinja can panic on some templates (a `break` inside `with` inside `for`,
            // in 3.1): the template is at fault, and the worker thread survives.
            Err(RenderError::Broken {
                name: name.to_owned(),
                message: format!("the template engine panicked while rendering it: {panic}"),
            })
        });
        let counters = &self.inner.counters;
        counters.render_time.observe(started.elapsed());
        counters.renders.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(_) => {}
            Err(RenderError::OutOfFuel { .. }) => {
                counters.out_of_fuel.fetch_add(1, Ordering::Relaxed);
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(RenderError::TooLarge { .. }) => {
                counters.too_large.fetch_add(1, Ordering::Relaxed);
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

impl TemplatesShared {
    /// Renders `name` from `published` on the calling thread, with the store's limits
    /// (no worker bound, no counters): for benchmarks and tools that run their own threads.
    pub fn render_in(
        &self,
        published: &Published,
        name: &str,
        context: &minijinja::Value,
        want_gzip: bool,
    ) -> Result<Rendered, RenderError> {
        let opts = &self.inner.opts;
        let limits = render::Limits {
            max_output: opts.max_output_bytes,
            fuel: opts.max_fuel,
            min_compress: self.inner.min_compress,
        };
        render::render(
            &published.env,
            name,
            context,
            &limits,
            want_gzip,
            &self.inner.resources,
        )
    }
}

impl crate::actors::profiler::MemoryAccount for TemplatesShared {
    fn name(&self) -> &'static str {
        "templates"
    }

    /// Bytes of the sources and flattened sources in service (compiled instructions are
    /// not counted: minijinja does not report their size).
    fn accounted_bytes(&self) -> u64 {
        let published = self.published();
        let sources: usize = published.templates.values().map(|t| t.bytes).sum();
        let flattened: usize = self
            .inner
            .state
            .try_lock()
            .map(|state| {
                state
                    .flattened
                    .values()
                    .filter_map(|(_, source)| source.as_ref().ok().map(|s| s.len()))
                    .sum()
            })
            .unwrap_or(0);
        (sources + flattened) as u64
    }
}

impl Source for TemplatesShared {
    fn name(&self) -> &'static str {
        "templates"
    }

    fn collect(&self, out: &mut Collector) {
        let published = self.published();
        let counters = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        out.gauge(
            "templates_loaded",
            "Templates known to the store.",
            published.templates.len() as f64,
        );
        out.gauge(
            "templates_in_error",
            "Templates whose latest version failed to load.",
            published
                .templates
                .values()
                .filter(|t| t.error.is_some())
                .count() as f64,
        );
        out.gauge(
            "templates_flattened",
            "Templates served with their extends chain flattened.",
            published
                .templates
                .values()
                .filter(|t| t.served == Served::Flattened)
                .count() as f64,
        );
        let totals: [(&'static str, &'static str, &AtomicU64); 5] = [
            (
                "template_renders_total",
                "Template renders.",
                &counters.renders,
            ),
            (
                "template_render_failures_total",
                "Template renders that failed (any reason).",
                &counters.failures,
            ),
            (
                "template_renders_out_of_fuel_total",
                "Template renders stopped by templates.max_fuel.",
                &counters.out_of_fuel,
            ),
            (
                "template_renders_too_large_total",
                "Template renders stopped by templates.max_output_bytes.",
                &counters.too_large,
            ),
            (
                "template_reloads_total",
                "Template folder scans.",
                &counters.reloads,
            ),
        ];
        for (name, help, counter) in totals {
            out.counter(name, help, load(counter));
        }
        out.histogram(
            "template_render_seconds",
            "Time to render a template, queueing for a worker included.",
            &counters.render_time,
        );
    }
}

/// The store actor (see the module docs).
pub struct TemplateStore {
    shared: TemplatesShared,
}

impl TemplateStore {
    pub fn new(shared: TemplatesShared) -> Self {
        TemplateStore { shared }
    }

    /// Starts a background reload unless one is running.
    fn reload_in_background(&self, ctx: &mut Context<Self>) {
        if self.shared.inner.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        let task = async move {
            let worker = shared.clone();
            let summary =
                actix_web::rt::task::spawn_blocking(move || worker.reload_blocking()).await;
            shared.inner.reloading.store(false, Ordering::Release);
            if let Err(panic) = summary {
                log::error!("templates: a reload panicked: {panic}");
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
        if let Some(interval) = self.shared.inner.opts.reload_interval {
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

/// One reload (see [`TemplatesShared::reload_blocking`]).
fn reload(
    opts: &TemplateOpts,
    state: &mut StoreState,
    live: &BTreeMap<String, context::LazyHandle>,
    publish: impl FnOnce(Published),
) -> ReloadSummary {
    let scan = match load::scan(&opts.dir) {
        Ok(scan) => scan,
        Err(error) => {
            let failure = format!(
                "cannot read templates folder {}: {error}",
                opts.dir.display()
            );
            log::error!("templates: {failure}");
            return ReloadSummary {
                templates: state.sources.len(),
                failure: Some(failure),
                ..ReloadSummary::default()
            };
        }
    };
    if !state.published && scan == Scan::default() && !opts.dir.is_dir() {
        log::warn!(
            "templates: folder {} does not exist; no templates are served",
            opts.dir.display()
        );
    }
    let compress = opts.memory.enabled && opts.memory.compression;
    let data_changed = usize::from(state.data != scan.data);
    state.data = scan.data.clone();
    let changed =
        refresh_sources(state, &scan, compress) + refresh_context(state, &scan) + data_changed;
    let errors = state.sources.values().filter(|s| s.error.is_some()).count();
    if changed == 0 && state.published {
        return ReloadSummary {
            templates: state.sources.len(),
            errors,
            ..ReloadSummary::default()
        };
    }
    let published = build(opts, state, live);
    let errors = published
        .templates
        .values()
        .filter(|t| t.error.is_some())
        .count();
    let templates = published.templates.len();
    log::info!(
        "templates: {templates} loaded ({changed} changed, {errors} in error) from {}",
        opts.dir.display()
    );
    publish(published);
    state.published = true;
    if opts.memory.enabled && opts.memory.gc_hints {
        // The previous set and the build's scratch space were just freed: hand their pages
        // back now rather than after jemalloc's decay time.
        crate::alloc::purge();
    }
    ReloadSummary {
        templates,
        changed,
        errors,
        published: true,
        failure: None,
    }
}

/// Reads new and changed templates, drops removed ones; answers how many changed.
fn refresh_sources(state: &mut StoreState, scan: &Scan, compress: bool) -> usize {
    let before = state.sources.len();
    state
        .sources
        .retain(|name, _| scan.templates.contains_key(name));
    let mut changed = before - state.sources.len();
    for (name, (path, stamp)) in &scan.templates {
        if state
            .sources
            .get(name)
            .is_some_and(|entry| entry.stamp == *stamp)
        {
            continue;
        }
        changed += 1;
        let checked = load::read_source(path).and_then(|source| {
            // A scratch environment only to check the syntax.
            Environment::new()
                .template_from_named_str(name, &source)
                .map(|_| ())
                .map_err(|error| render_error_text(&error))?;
            Ok(source)
        });
        let entry = state.sources.entry(name.clone()).or_insert(SourceEntry {
            stamp: *stamp,
            good: None,
            error: None,
        });
        entry.stamp = *stamp;
        match checked {
            Ok(source) => {
                let source: Arc<str> = Arc::from(source);
                // Kept for rebuilds and as the version in service if the file breaks;
                // compressed with the memory optimizer's compression on.
                entry.good = Some(if compress {
                    memory::Held::compress(source)
                } else {
                    memory::Held::Plain(source)
                });
                entry.error = None;
            }
            Err(message) => {
                log::warn!(
                    "templates: {name}: {message}{}",
                    if entry.good.is_some() {
                        " (the previous version stays in service)"
                    } else {
                        ""
                    }
                );
                entry.error = Some(message);
            }
        }
    }
    changed
}

fn refresh_context(state: &mut StoreState, scan: &Scan) -> usize {
    match (&scan.context, &state.context) {
        (None, None) => 0,
        (None, Some(_)) => {
            state.context = None;
            1
        }
        (Some((_, stamp)), Some((known, _))) if stamp == known => 0,
        (Some((path, stamp)), _) => {
            let read = load::read_context(path);
            if let Err(message) = &read {
                log::warn!("templates: {}: {message}", path.display());
            }
            state.context = Some((*stamp, read));
            1
        }
    }
}

fn render_error_text(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    if let Some(line) = error.line() {
        text = format!("line {line}: {text}");
    }
    text
}

/// Resolves chains, flattens, compiles everything into a fresh environment.
fn build(
    opts: &TemplateOpts,
    state: &mut StoreState,
    live: &BTreeMap<String, context::LazyHandle>,
) -> Published {
    // The sources as text for this build (inflated where held compressed).
    let texts: BTreeMap<String, Arc<str>> = state
        .sources
        .iter()
        .filter_map(|(name, entry)| Some((name.clone(), entry.good.as_ref()?.text()?)))
        .collect();
    let goods: BTreeMap<&str, &str> = texts
        .iter()
        .map(|(name, text)| (name.as_str(), &**text))
        .collect();
    let lookup = |name: &str| goods.get(name).copied();
    let chains: BTreeMap<&str, Result<Vec<String>, String>> = goods
        .keys()
        .map(|name| {
            let chain = chain::chain(name, lookup).map_err(|error| error.to_string());
            if let Err(message) = &chain {
                log::warn!("templates: {name}: {message}");
            }
            (*name, chain)
        })
        .collect();

    // Which templates to serve flattened: all of them, or (flattening off) the ancestors
    // that shorten over-deep chains to max_inheritance_depth.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for chain in chains.values().filter_map(|c| c.as_ref().ok()) {
        if opts.flatten_inheritance {
            if chain.len() > 1 {
                wanted.insert(chain[0].clone());
            }
        } else if chain.len() > opts.max_inheritance_depth {
            wanted.insert(chain[opts.max_inheritance_depth - 1].clone());
        }
    }
    if !opts.cache_optimized_templates {
        state.flattened.clear();
    }
    let fingerprint = |name: &str| -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        if let Some(Ok(chain)) = chains.get(name) {
            for member in chain {
                hasher.update(member.as_bytes());
                hasher.update(&[0]);
                hasher.update(lookup(member).unwrap_or("").as_bytes());
                hasher.update(&[0]);
            }
        }
        hasher.digest()
    };
    let todo: Vec<(String, u64)> = wanted
        .iter()
        .map(|name| (name.clone(), fingerprint(name)))
        .filter(|(name, print)| {
            state
                .flattened
                .get(name)
                .is_none_or(|(known, _)| known != print)
        })
        .collect();
    let computed = flatten_all(&todo, &lookup, opts.render_workers);
    state.flattened.retain(|name, _| wanted.contains(name));
    state.flattened.extend(computed);

    let mut env = Environment::new();
    env.set_fuel(Some(opts.max_fuel));
    let mut templates = BTreeMap::new();
    // What the environment will hold, by name, before the memory optimizer's rewrites.
    let mut compiled: BTreeMap<String, Arc<str>> = BTreeMap::new();
    for (name, entry) in &state.sources {
        let chain = chains.get(name.as_str());
        let mut info = TemplateInfo {
            name: name.clone(),
            bytes: texts.get(name).map_or(0, |text| text.len()),
            parents: match chain {
                Some(Ok(chain)) => chain[1..].to_vec(),
                _ => Vec::new(),
            },
            state: "ok",
            error: entry.error.clone(),
            stale: entry.error.is_some() && entry.good.is_some(),
            served: Served::Original,
            served_depth: 1,
            not_flattened: None,
        };
        let servable = match (chain, texts.get(name)) {
            (Some(Ok(_)), Some(source)) => Some(source.clone()),
            (Some(Err(message)), _) => {
                info.error = Some(message.clone());
                info.stale = false;
                None
            }
            _ => None,
        };
        if info.error.is_some() {
            info.state = "error";
        }
        if let Some(original) = servable {
            let source = match state.flattened.get(name).map(|(_, result)| result) {
                Some(Ok(flat)) => {
                    info.served = Served::Flattened;
                    flat.clone()
                }
                Some(Err(reason)) => {
                    info.not_flattened = Some(reason.clone());
                    original
                }
                None => original,
            };
            compiled.insert(name.clone(), source);
        }
        templates.insert(name.clone(), info);
    }
    let variables = if opts.context.enabled {
        analyse_all(&compiled)
    } else {
        BTreeMap::new()
    };
    let memory_opts = &opts.memory;
    let mut report = MemoryReport::default();
    if memory_opts.enabled && memory_opts.deduplication {
        let (aliases, saved) = memory::dedup_templates(&mut compiled);
        // Layouts stay whole: they run on every render of every child.
        let parents: BTreeSet<String> = chains
            .values()
            .filter_map(|chain| chain.as_ref().ok())
            .flat_map(|chain| chain.iter().skip(1).cloned())
            .collect();
        let sections = memory::dedup_sections(&mut compiled, &parents);
        report.rewrites = memory::Rewrites {
            duplicate_templates: aliases,
            source_bytes_saved: sections.source_bytes_saved + saved,
            ..sections
        };
        // The rewritten set is what is held; keeping every flattened source as well would
        // cost more than flattening again after the next change.
        state.flattened.clear();
    }
    report.templates = compiled.len();
    if memory_opts.enabled && memory_opts.lazy_loading {
        // Compiled on first use; the held copy is dropped once compiled.
        let held: HashMap<String, memory::Held> = compiled
            .into_iter()
            .map(|(name, source)| {
                let held = if memory_opts.compression {
                    memory::Held::compress(source)
                } else {
                    memory::Held::Plain(source)
                };
                (name, held)
            })
            .collect();
        report.compressed = held
            .values()
            .filter(|h| matches!(h, memory::Held::Gzip(_)))
            .count();
        report.pending = held.len();
        let held = Mutex::new(held);
        env.set_loader(move |name| {
            let taken = held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            Ok(taken.and_then(|held| held.source()))
        });
    } else {
        for (name, source) in compiled {
            if let Err(error) = env.add_template_owned(name.clone(), source.to_string())
                && let Some(info) = templates.get_mut(&name)
            {
                info.state = "error";
                info.error = Some(render_error_text(&error));
            }
        }
    }
    // Depth as served: up the chain until a template served flattened (or the root).
    let flat: BTreeSet<String> = templates
        .values()
        .filter(|t| t.served == Served::Flattened)
        .map(|t| t.name.clone())
        .collect();
    for info in templates.values_mut() {
        let mut depth = 1;
        let mut at = info.name.clone();
        for parent in &info.parents {
            if flat.contains(&at) {
                break;
            }
            depth += 1;
            at = parent.clone();
        }
        info.served_depth = depth;
    }
    let (vars, interned) = build_vars(&opts.context, state, live);
    state.generation += 1;
    let generation = state.generation;
    Published {
        env: Arc::new(env),
        vars: Arc::new(vars),
        variables,
        interned,
        templates,
        generation,
        memory: report,
    }
}

/// The variables each template reads, found with minijinja's own analysis through the
/// chain, includes and imports (the context optimizer's analysis), without globals.
/// Compiles the set once in a scratch environment that is dropped afterwards.
fn analyse_all(sources: &BTreeMap<String, Arc<str>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut scratch = Environment::new();
    for (name, source) in sources {
        if scratch
            .add_template_owned(name.clone(), source.to_string())
            .is_err()
        {
            continue;
        }
    }
    sources
        .keys()
        .filter_map(|name| {
            let used = context::variables_used(&scratch, name).ok()?;
            Some((name.clone(), context::without_globals(&scratch, &used)))
        })
        .collect()
}

/// The variables every render starts from (see [`Published::vars`]).
fn build_vars(
    opts: &crate::config::ContextOptimizerOpts,
    state: &StoreState,
    live: &BTreeMap<String, context::LazyHandle>,
) -> (context::Vars, Option<context::InternerStats>) {
    let interner = (opts.enabled && opts.deduplication).then(context::Interner::new);
    let mut vars = context::Vars::new();
    if let Some((_, Ok(global))) = &state.context {
        for (name, value) in global {
            let value = match &interner {
                Some(interner) => interner.intern_json(value),
                None => minijinja::Value::from(minijinja::value::Serde(value)),
            };
            vars.insert(name.clone(), context::Entry::Value(value));
        }
    }
    for (name, (path, _)) in &state.data {
        let loader = context::json_file_loader(path.clone());
        let entry = if opts.enabled && opts.lazy_loading {
            let mode = if opts.compression {
                // Nothing held: the file is read on each render that uses it.
                context::LazyMode::PerRender
            } else {
                context::LazyMode::Cached
            };
            context::Entry::Lazy(context::LazyHandle::new(mode, loader))
        } else {
            match loader() {
                Ok(value) => context::Entry::Value(value),
                Err(message) => {
                    log::warn!("templates: data variable `{name}`: {message}");
                    continue;
                }
            }
        };
        vars.insert(name.clone(), entry);
    }
    for (name, handle) in live {
        vars.insert(name.clone(), context::Entry::Lazy(handle.clone()));
    }
    (vars, interner.map(|interner| interner.stats()))
}

/// Flattens `todo` on up to `workers` threads; answers each name's result.
fn flatten_all<'s>(
    todo: &[(String, u64)],
    lookup: &(impl Fn(&str) -> Option<&'s str> + Sync),
    workers: usize,
) -> Vec<(String, (u64, Flattening))> {
    if todo.is_empty() {
        return Vec::new();
    }
    let per_thread = todo.len().div_ceil(workers.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = todo
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, print)| {
                            let result = flatten::flatten(name, lookup)
                                .map_err(|error| match error {
                                    flatten::FlattenError::Unflattenable(why) => why.reason,
                                    other => other.to_string(),
                                })
                                .and_then(|flat| {
                                    // Served only if it compiles (it always should).
                                    Environment::new()
                                        .template_from_named_str(name, &flat)
                                        .map_err(|error| {
                                            format!(
                                                "the flattened source does not compile: {error}"
                                            )
                                        })?;
                                    Ok(Arc::from(flat))
                                });
                            (name.clone(), (*print, result))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}
