//! [`TemplatesShared`]: the store's state shared by the actor, the blocking tasks and the
//! HTTP handlers: the published set renders read, the inputs reloads update, the render
//! workers, counters and live values. Reloads and optimizations run here, on the calling
//! (blocking) thread; the engine ([`crate::templates`]) does the building.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use minijinja::Environment;
use serde::Serialize;

use super::load::{self, Scan};
use super::metrics::Counters;
use super::reports::{
    LazyVariable, OptimizeReport, ReloadSummary, SharedVariable, VariablesReport,
};
use super::threads::{Panicked, RenderThreads};
use crate::config::TemplateOpts;
use crate::templates::build::{LiveValues, build};
use crate::templates::chain::MAX_CHAIN;
use crate::templates::context;
use crate::templates::inputs::{FlattenCache, Inputs, Source};
use crate::templates::render::{self, Limits, Request, Resources};
use crate::templates::{Published, RenderError, Rendered, TemplateError, TemplateInfo, memory};

/// Everything a reload reads and updates; locked only on blocking threads.
#[derive(Default)]
struct StoreState {
    inputs: Inputs,
    /// Flattened sources kept between builds (`cache_optimized_templates`).
    flattened: FlattenCache,
    /// Whether anything was published yet.
    published: bool,
    /// Publications so far.
    generation: u64,
}

impl StoreState {
    /// Builds the set with `opts` as the next generation.
    fn build(&mut self, opts: &TemplateOpts, live: &LiveValues) -> Published {
        self.generation += 1;
        build(
            opts,
            &self.inputs,
            &mut self.flattened,
            live,
            self.generation,
        )
    }
}

/// The store's state shared by the actor, the blocking tasks and the HTTP handlers. Cheap
/// to clone; also a metrics `Source` and a memory account.
#[derive(Clone)]
pub struct TemplatesShared {
    inner: Arc<SharedInner>,
}

struct SharedInner {
    opts: TemplateOpts,
    /// Needed by renders: when to gzip.
    min_compress: u64,
    /// Output buffers and compressors for renders.
    resources: Resources,
    published: RwLock<Arc<Published>>,
    state: Mutex<StoreState>,
    renders: tokio::sync::Semaphore,
    /// Where renders run (see `threads`).
    threads: RenderThreads,
    reloading: AtomicBool,
    counters: Counters,
    /// Reads per variable across renders (context optimizer).
    tracker: context::UsageTracker,
    /// Values the application computes when a render reads them.
    live: RwLock<LiveValues>,
    last_optimize: RwLock<Option<OptimizeReport>>,
}

impl TemplatesShared {
    /// An empty store for `opts`; `min_compress` is the smallest output worth gzipping.
    /// Renders make their buffers and compressors fresh.
    pub fn new(opts: TemplateOpts, min_compress: u64) -> Self {
        TemplatesShared::with_resources(opts, min_compress, Resources::direct())
    }

    /// An empty store whose renders take buffers and compressors from `resources`.
    pub fn with_resources(opts: TemplateOpts, min_compress: u64, resources: Resources) -> Self {
        let renders = tokio::sync::Semaphore::new(opts.render_workers.max(1));
        let threads = RenderThreads::start(opts.render_workers, opts.render_nice);
        TemplatesShared {
            inner: Arc::new(SharedInner {
                published: RwLock::new(Arc::new(Published::empty())),
                opts,
                min_compress,
                resources,
                state: Mutex::new(StoreState::default()),
                renders,
                threads,
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

    /// The store's counters.
    pub(super) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Marks a background reload as running; answers whether one already was.
    pub(super) fn start_reloading(&self) -> bool {
        self.inner.reloading.swap(true, Ordering::AcqRel)
    }

    /// Marks the background reload as finished.
    pub(super) fn stop_reloading(&self) {
        self.inner.reloading.store(false, Ordering::Release);
    }

    /// Logs and counts a reload that panicked on the blocking pool: the set in service
    /// stays, and the next reload tries again.
    pub(crate) fn reload_panicked(&self, panic: &actix_web::rt::task::JoinError) {
        log::error!("templates: a reload panicked: {panic}");
        self.inner
            .counters
            .reload_panics
            .fetch_add(1, Ordering::Relaxed);
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
        for variables in published.reads.values() {
            for variable in variables {
                *used_by.entry(variable.clone()).or_default() += 1;
            }
        }
        let shared = published
            .base_context
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
            .base_context
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
            templates: published.reads.clone(),
            shared,
            lazy,
            interned: published.interned,
        }
    }

    /// Every known template, by name.
    pub fn list(&self) -> Vec<TemplateInfo> {
        self.published().templates.values().cloned().collect()
    }

    /// Puts `published` in service, counting its flattening panics.
    fn publish(&self, published: Published) {
        self.inner
            .counters
            .flatten_panics
            .fetch_add(published.flatten_panics, Ordering::Relaxed);
        // The set replaced is freed after the lock is released (when no render holds it
        // any more): freeing a whole compiled set is not work for renders to wait on.
        let replaced = std::mem::replace(
            &mut *self
                .inner
                .published
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            Arc::new(published),
        );
        drop(replaced);
    }

    fn live_values(&self) -> LiveValues {
        self.inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-runs the optimizers from scratch and publishes the result, measuring what they
    /// save: the heap bytes (jemalloc's allocated bytes, when it is the allocator) a build
    /// of the current set holds with every optimizer off, against the same with the
    /// configured ones, both right after the build (before any render). Blocking.
    pub fn optimize_blocking(&self) -> OptimizeReport {
        let mut state = self.lock_state();
        let live = self.live_values();
        let opts = &self.inner.opts;
        let mut baseline_opts = opts.clone();
        baseline_opts.memory.enabled = false;
        baseline_opts.context.enabled = false;
        baseline_opts.flatten_inheritance = false;
        baseline_opts.max_inheritance_depth = MAX_CHAIN;
        let heap = || crate::alloc::heap_stats().map(|stats| stats.allocated);
        // The baseline is built with a scratch cache, measured and dropped.
        let mut scratch = FlattenCache::default();
        let before = heap();
        let baseline = build(&baseline_opts, &state.inputs, &mut scratch, &live, 0);
        let baseline_bytes = heap()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        drop(baseline);
        drop(scratch);
        state.flattened.clear();
        let before = heap();
        let optimized = state.build(opts, &live);
        let optimized_bytes = heap()
            .zip(before)
            .map(|(after, before)| after.saturating_sub(before));
        let mut report = OptimizeReport {
            rss_before_release: None,
            rss_after_release: None,
            templates: optimized.templates.len(),
            flattened: optimized.flattened(),
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
        self.publish(optimized);
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
        let mut state = self.lock_state();
        self.inner.counters.reloads.fetch_add(1, Ordering::Relaxed);
        let live = self.live_values();
        reload(&self.inner.opts, &mut state, &live, |published| {
            self.publish(published)
        })
    }

    /// Renders `name` with the global context overlaid by `request_context`, on a render
    /// thread (at `render_nice`), at most `render_workers` at once.
    pub async fn render(
        &self,
        name: &str,
        request_context: serde_json::Map<String, serde_json::Value>,
        want_gzip: bool,
    ) -> Result<Rendered, RenderError> {
        let published = self.published();
        match published.templates.get(name) {
            None => return Err(RenderError::NotFound(name.to_owned())),
            Some(info) if !info.stale => {
                if let Some(error) = &info.error {
                    return Err(RenderError::Broken {
                        name: name.to_owned(),
                        error: error.clone(),
                    });
                }
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
        let result = self
            .inner
            .threads
            .run(move || {
                let tracker = shared
                    .inner
                    .opts
                    .context
                    .enabled
                    .then_some(&shared.inner.tracker);
                let context = context::layered_context(
                    vec![request, published.base_context.clone()],
                    tracker,
                );
                shared.render_in(&published, &template, &context, want_gzip)
            })
            .await
            .unwrap_or_else(|Panicked(message)| {
                // minijinja can panic on some templates (a `break` inside `with` inside `for`,
                // in 3.1): the template is at fault, and the render thread survives.
                Err(RenderError::Broken {
                    name: name.to_owned(),
                    error: TemplateError::RenderPanicked {
                        message: message.into(),
                    },
                })
            });
        self.inner.counters.count_render(&result, started.elapsed());
        result
    }

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
        let limits = Limits {
            max_output: opts.max_output_bytes,
            fuel: opts.max_fuel,
            min_compress: self.inner.min_compress,
        };
        let request = Request {
            name,
            context,
            want_gzip,
        };
        published.compile_first(name);
        render::render(&published.env, &request, &limits, &self.inner.resources)
    }
}

impl crate::metrics::MemoryAccount for TemplatesShared {
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
            .map(|state| state.flattened.source_bytes())
            .unwrap_or(0);
        (sources + flattened) as u64
    }
}

/// One reload (see [`TemplatesShared::reload_blocking`]).
fn reload(
    opts: &TemplateOpts,
    state: &mut StoreState,
    live: &LiveValues,
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
                templates: state.inputs.sources.len(),
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
    let inputs = &mut state.inputs;
    let data_changed = usize::from(inputs.data != scan.data);
    inputs.data = scan.data.clone();
    let changed =
        refresh_sources(inputs, &scan, compress) + refresh_context(inputs, &scan) + data_changed;
    let errors = inputs
        .sources
        .values()
        .filter(|s| s.error.is_some())
        .count();
    if changed == 0 && state.published {
        return ReloadSummary {
            templates: inputs.sources.len(),
            errors,
            ..ReloadSummary::default()
        };
    }
    let published = state.build(opts, live);
    let errors = published.in_error();
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
fn refresh_sources(inputs: &mut Inputs, scan: &Scan, compress: bool) -> usize {
    let before = inputs.sources.len();
    inputs
        .sources
        .retain(|name, _| scan.templates.contains_key(name));
    let mut changed = before - inputs.sources.len();
    for (name, (path, stamp)) in &scan.templates {
        if inputs
            .sources
            .get(name)
            .is_some_and(|source| source.stamp == *stamp)
        {
            continue;
        }
        changed += 1;
        let checked = load::read_source(path).and_then(|text| {
            // A scratch environment only to check the syntax.
            Environment::new()
                .template_from_named_str(name, &text)
                .map_err(|error| TemplateError::syntax(&error))?;
            Ok(text)
        });
        let source = inputs.sources.entry(name.clone()).or_insert(Source {
            stamp: *stamp,
            good: None,
            error: None,
        });
        source.stamp = *stamp;
        match checked {
            Ok(text) => {
                let text: Arc<str> = Arc::from(text);
                // Kept for rebuilds and as the version in service if the file breaks;
                // compressed with the memory optimizer's compression on.
                source.good = Some(if compress {
                    memory::Held::compress(text)
                } else {
                    memory::Held::Plain(text)
                });
                source.error = None;
            }
            Err(error) => {
                log::warn!(
                    "templates: {name}: {error}{}",
                    if source.good.is_some() {
                        " (the previous version stays in service)"
                    } else {
                        ""
                    }
                );
                source.error = Some(error);
            }
        }
    }
    changed
}

/// Reads the global context file if it is new or changed, forgets it if it went; answers
/// whether anything changed (0 or 1).
fn refresh_context(inputs: &mut Inputs, scan: &Scan) -> usize {
    match (&scan.context, &inputs.context) {
        (None, None) => 0,
        (None, Some(_)) => {
            inputs.context = None;
            1
        }
        (Some((_, stamp)), Some((known, _))) if stamp == known => 0,
        (Some((path, stamp)), _) => {
            let read = load::read_context(path);
            if let Err(error) = &read {
                log::warn!("templates: {}: {error}", path.display());
            }
            inputs.context = Some((*stamp, read));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::templates::LoadState;

    fn store(dir: &std::path::Path) -> TemplatesShared {
        let load = crate::config::LoadOptions {
            skip_root_check: true,
            ..Default::default()
        };
        let mut opts = crate::config::Config::load(&load)
            .expect("the defaults load")
            .opts
            .templates;
        opts.dir = dir.to_path_buf();
        opts.reload_interval = None;
        TemplatesShared::new(opts, 1024)
    }

    /// Templates compiled lazily are compiled by their first render; first renders of one
    /// template at once all render it (none finds its source already handed out).
    #[test]
    fn templates_first_renders_at_once_all_render() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for version in 0..30 {
            fs::write(dir.path().join("page.txt"), format!("v{version}")).unwrap();
            store.reload_blocking();
            let published = store.published();
            assert!(published.memory.pending > 0, "compiled lazily");
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                let renders: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            store.render_in(
                                &published,
                                "page.txt",
                                &minijinja::Value::UNDEFINED,
                                false,
                            )
                        })
                    })
                    .collect();
                for render in renders {
                    let rendered = render.join().unwrap().expect("every first render renders");
                    assert_eq!(rendered.body, format!("v{version}"));
                }
            });
        }
    }

    #[actix_rt::test]
    async fn templates_a_panicked_reload_is_counted_and_keeps_the_set() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("page.txt"), "v1").unwrap();
        let store = store(dir.path());
        store.reload_blocking();
        let panic = actix_web::rt::task::spawn_blocking(|| panic!("a reload went wrong"))
            .await
            .unwrap_err();
        store.reload_panicked(&panic);
        let mut out = crate::metrics::Collector::default();
        crate::metrics::Source::collect(&store, &mut out);
        let text = crate::metrics::exposition::render(&out.into_families());
        assert!(
            text.contains("leanserve_template_reload_panics_total 1"),
            "{text}"
        );
        assert!(store.published().templates.contains_key("page.txt"));
    }

    #[test]
    fn templates_reload_reads_only_changes_and_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("page.txt"), "v1").unwrap();
        let store = store(dir.path());
        let first = store.reload_blocking();
        assert_eq!(
            (first.templates, first.changed, first.published),
            (1, 1, true)
        );
        let again = store.reload_blocking();
        assert_eq!((again.changed, again.published), (0, false));

        fs::write(dir.path().join("page.txt"), "{% if %} broken").unwrap();
        let broken = store.reload_blocking();
        assert_eq!((broken.changed, broken.errors), (1, 1));
        let published = store.published();
        let info = &published.templates["page.txt"];
        assert_eq!((info.state, info.stale), (LoadState::Error, true));
        assert_eq!(published.generation, 2);
        let context = minijinja::Value::from(());
        let rendered = store
            .render_in(&published, "page.txt", &context, false)
            .unwrap();
        assert_eq!(&rendered.body[..], b"v1", "the last good version serves");
    }
}
