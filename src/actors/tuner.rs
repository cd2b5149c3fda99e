//! The configuration tuner: every `tuner.interval` it reads the memory limit, RSS, the
//! allocator's decay, the file cache, the pools, the limiters and the render figures,
//! turns them into a recommendation per knob (`crate::tuner::rules`, pure), keeps them in
//! a [`TunerShared`] the admin routes and metrics read without a message, and in auto
//! mode applies the live ones, each by the owner's own interface: the file cache's budget
//! by [`SetCacheBudget`], pool maximums through the pool registry's resize, the
//! allocator's decay through jemalloc's controls. Every change is logged with its reason,
//! counted by knob and direction, and kept with its evidence.
//!
//! It answers [`Tune`] (from `POST /admin/tuner/apply` and tests). On restart a new
//! incarnation picks up the same shared state: decisions and counts are kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;

use crate::actors::file_cache::FileCacheHandle;
use crate::actors::process::ProcessStats;
use crate::actors::templates::TemplatesShared;
use crate::concurrency::Limiters;
use crate::config::{TunerMode, TunerOpts};
use crate::metrics::{Collector, Kind, Reading, Sample, Source};
use crate::pool::{Pools, Resize};
use crate::supervisor::Handle;
use crate::tuner::{
    CpuLimit, Knob, MemoryLimit, Readings, Recommendation, Targets, memory, recommend,
};

/// Decisions kept.
const DECISIONS_KEPT: usize = 50;

/// Reads, decides and (when `apply`, or in auto mode on the interval) applies now;
/// answers the round's report.
#[derive(Message)]
#[rtype(result = "TunerReport")]
pub struct Tune {
    pub apply: bool,
}

/// One round of the configuration tuner: the memory and CPU limits, RSS and every knob's
/// recommendation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TunerReport {
    /// `tuner.mode`: whether the tuner only recommends or also applies the live knobs.
    pub mode: TunerMode,
    /// When the round ran, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The memory limit RSS is kept under a share of (`tuner.target_memory_percent`), and
    /// where it came from.
    pub memory_limit: Option<MemoryLimit>,
    /// The CPU quota (or count) thread recommendations are sized for, and its source.
    pub cpu_limit: CpuLimit,
    /// The process's resident set size at the round, in bytes (`None`: the platform offers
    /// no figure).
    pub rss_bytes: Option<u64>,
    /// Whether this round applied the live knobs.
    pub applied: bool,
    /// Every knob's current and recommended value, changed or not.
    pub knobs: Vec<Recommendation>,
}

/// A change the tuner made.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TunerDecision {
    /// The knob changed, as `/admin/tuner` and the metrics name it.
    pub knob: Knob,
    /// Its value before the change.
    pub from: f64,
    /// Its value after the change.
    pub to: f64,
    /// `up` or `down`.
    pub direction: &'static str,
    /// Why the tuner changed it, with the figures it read.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What the tuner reads and whom it tells.
#[derive(Clone)]
pub struct TunerInputs {
    /// The file cache: its figures, and the budget the tuner sets.
    pub file_cache: FileCacheHandle,
    pub process: ProcessStats,
    pub pools: Pools,
    pub limiters: Option<Limiters>,
    pub templates: Option<TemplatesShared>,
    pub workers: usize,
    /// The configured `scale_max` of leanserve's own pools (the tuner restores it).
    pub pool_ceilings: BTreeMap<String, usize>,
}

#[derive(Default)]
struct State {
    report: Option<TunerReport>,
    decisions: VecDeque<TunerDecision>,
    changes: BTreeMap<(Knob, &'static str), u64>,
    /// Render figures and time at the last round (for rates).
    last_renders: Option<(Reading, Instant)>,
    last_rejected: BTreeMap<String, u64>,
    idle: IdleWatch,
}

/// Watches the requests answered (static files and renders) from round to round.
#[derive(Default)]
struct IdleWatch {
    /// The count at the last round.
    last: Option<u64>,
    /// The current quiet spell was already announced.
    announced: bool,
}

impl IdleWatch {
    /// Whether `answered` (the count now) starts a quiet spell: no request since the last
    /// round, for the first such round only (an idle server is purged once, not every
    /// round, until requests come again).
    fn quiet_spell_begins(&mut self, answered: u64) -> bool {
        let quiet = self.last.replace(answered) == Some(answered);
        if !quiet {
            self.announced = false;
            return false;
        }
        !std::mem::replace(&mut self.announced, true)
    }
}

/// The tuner's state outside the actor: its options, last report and decisions.
#[derive(Clone)]
pub struct TunerShared {
    opts: TunerOpts,
    inputs: TunerInputs,
    state: Arc<Mutex<State>>,
}

/// Runs `work` on the blocking pool; a panic in it carries on here.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match actix_rt::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TunerShared {
    pub fn new(opts: TunerOpts, inputs: TunerInputs) -> Self {
        TunerShared {
            opts,
            inputs,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn opts(&self) -> &TunerOpts {
        &self.opts
    }

    /// The last round's report; `None` before the first.
    pub fn report(&self) -> Option<TunerReport> {
        self.lock().report.clone()
    }

    /// The latest changes, oldest first.
    pub fn decisions(&self) -> Vec<TunerDecision> {
        self.lock().decisions.iter().cloned().collect()
    }

    /// Changes made, by (knob, direction).
    pub fn changes(&self) -> BTreeMap<(Knob, &'static str), u64> {
        self.lock().changes.clone()
    }

    fn readings(&self) -> Readings {
        let inputs = &self.inputs;
        let now = Instant::now();
        let stats = inputs.file_cache.reader().stats();
        let decay = crate::alloc::decay();
        let mut state = self.lock();
        let (renders_per_second, mean_render_seconds, window_seconds) = match &inputs.templates {
            Some(templates) => {
                let reading = templates.render_figures();
                let figures = match &state.last_renders {
                    Some((before, at)) => {
                        let window = reading.since(before);
                        let seconds = now.saturating_duration_since(*at).as_secs_f64();
                        (
                            window.count as f64 / seconds.max(1e-3),
                            window.average_us().unwrap_or(0.0) / 1e6,
                            seconds,
                        )
                    }
                    None => (0.0, 0.0, 0.0),
                };
                state.last_renders = Some((reading, now));
                figures
            }
            None => (0.0, 0.0, 0.0),
        };
        let limiters = inputs
            .limiters
            .as_ref()
            .map(|limiters| {
                limiters
                    .stats()
                    .into_iter()
                    .map(|s| {
                        let before = state
                            .last_rejected
                            .insert(s.name.to_owned(), s.rejected_total)
                            .unwrap_or(0);
                        (
                            s.name.to_owned(),
                            s.limit,
                            s.in_flight,
                            s.rejected_total.saturating_sub(before),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        drop(state);
        Readings {
            limit: Some(memory::detect_here(self.opts.memory_limit)),
            // Read now: the budget rule subtracts the cache's bytes read now, and a sample
            // seconds old would make the budget swing.
            rss: crate::actors::process::current_rss()
                .or_else(|| inputs.process.latest().map(|sample| sample.rss_bytes)),
            cache_budget: stats.budget_bytes,
            cache_bytes: stats.bytes_cached + stats.allocator_overhead_bytes,
            cache_counts_allocator: crate::alloc::cache_arena_enabled(),
            dirty_decay_ms: decay.map(|d| d.dirty_decay_ms),
            background_thread: decay.map(|d| d.background_thread),
            pools: inputs
                .pools
                .stats()
                .into_iter()
                .map(|p| {
                    let configured = inputs
                        .pool_ceilings
                        .get(&p.name)
                        .copied()
                        .unwrap_or(p.spec.scale_max);
                    (p.name, p.spec.scale_max, p.spec.scale_min, configured)
                })
                .collect(),
            limiters,
            cpu: crate::tuner::cpu::detect_here(),
            memory_pressure: memory::pressure_here(),
            workers: inputs.workers,
            render_workers: inputs
                .templates
                .as_ref()
                .map_or(0, |t| t.opts().render_workers),
            renders_per_second,
            mean_render_seconds,
            window_seconds,
        }
    }

    /// One round: read, recommend, and apply the live changes when `apply`. The
    /// readings (procfs, the cgroup's files, the allocator's statistics) are taken on
    /// the blocking pool, as are the allocator and pool changes: none of them belongs
    /// on the async thread that runs the actors.
    pub async fn round(&self, apply: bool) -> TunerReport {
        let readings = {
            let shared = self.clone();
            blocking(move || shared.readings()).await
        };
        let targets = Targets {
            target_share: self.opts.target_share,
            cache_floor: self.opts.cache_floor,
            cache_ceiling: self.opts.cache_ceiling,
        };
        let knobs = recommend(&readings, &targets);
        if apply {
            for knob in knobs.iter().filter(|k| k.live() && k.changes()) {
                if self.apply(knob).await {
                    self.record(knob);
                }
            }
            if self.went_idle() {
                // Freed pages wait for jemalloc's decay, which only runs while something
                // allocates unless its background thread is on (jemalloc#2688): once the
                // traffic stops, hand them back now instead.
                if blocking(crate::alloc::purge).await {
                    log::info!("tuner: no requests since the last round; allocator purged");
                }
            }
        }
        let report = TunerReport {
            mode: self.opts.mode,
            at_ms: unix_ms(),
            memory_limit: readings.limit,
            cpu_limit: readings.cpu,
            rss_bytes: readings.rss,
            applied: apply,
            knobs,
        };
        self.lock().report = Some(report.clone());
        report
    }

    /// Whether this round starts a quiet spell (see [`IdleWatch`]).
    fn went_idle(&self) -> bool {
        let answered = self.inputs.file_cache.reader().stats().files_served
            + self
                .inputs
                .templates
                .as_ref()
                .map_or(0, |templates| templates.render_figures().count);
        self.lock().idle.quiet_spell_begins(answered)
    }

    /// Applies one live recommendation through the knob's owner; whether it took. Every
    /// knob has its arm: the ones that are not the tuner's to set say so in the log
    /// rather than doing nothing quietly (`round` only brings live changes here, and the
    /// rules never recommend a change to an in-flight limit, so those arms mean a rule
    /// changed without this).
    async fn apply(&self, knob: &Recommendation) -> bool {
        let to = knob.recommended;
        match &knob.knob {
            Knob::CacheBudgetBytes => self.inputs.file_cache.set_budget(to as u64).await.is_ok(),
            Knob::AllocatorDirtyDecayMs => {
                blocking(move || {
                    let tight = to <= crate::tuner::rules::TIGHT_DECAY_MS as f64;
                    let set = crate::alloc::set_decay(to as i64, tight);
                    if tight {
                        crate::alloc::purge();
                    }
                    set
                })
                .await
            }
            Knob::PoolScaleMax { pool } => {
                let (pools, pool) = (self.inputs.pools.clone(), pool.clone());
                // Shrinking a pool cleans up the objects it lets go of.
                blocking(move || {
                    let ceiling = to as usize;
                    let resized = pools.stats_of(&pool).and_then(|stats| {
                        let resize = Resize {
                            max_size: Some(stats.max_size.min(ceiling)),
                            scale_max: Some(ceiling),
                            ..Resize::default()
                        };
                        pools.resize(&pool, &resize, "tuner")
                    });
                    resized
                        .inspect_err(|error| {
                            log::warn!("tuner: pool {pool}: scale_max {ceiling} not set: {error}")
                        })
                        .is_ok()
                })
                .await
            }
            Knob::InFlightLimit { .. } => {
                log::warn!(
                    "tuner: {} is the limiter's to adapt; {} -> {to} not applied",
                    knob.knob,
                    knob.current
                );
                false
            }
            Knob::ServerWorkers | Knob::RenderWorkers => {
                log::warn!(
                    "tuner: {} takes effect at the next start; {} -> {to} not applied",
                    knob.knob,
                    knob.current
                );
                false
            }
        }
    }

    fn record(&self, knob: &Recommendation) {
        let direction = if knob.recommended > knob.current {
            "up"
        } else {
            "down"
        };
        log::info!(
            "tuner: {} {} -> {} ({})",
            knob.knob,
            knob.current,
            knob.recommended,
            knob.reason
        );
        let mut state = self.lock();
        *state
            .changes
            .entry((knob.knob.clone(), direction))
            .or_default() += 1;
        if state.decisions.len() == DECISIONS_KEPT {
            state.decisions.pop_front();
        }
        state.decisions.push_back(TunerDecision {
            knob: knob.knob.clone(),
            from: knob.current,
            to: knob.recommended,
            direction,
            reason: knob.reason.clone(),
            at_ms: unix_ms(),
        });
    }
}

impl Source for TunerShared {
    fn collect(&self, out: &mut Collector) {
        let Some(report) = self.report() else {
            return;
        };
        if let Some(limit) = report.memory_limit {
            out.gauge(
                "tuner_memory_limit_bytes",
                "The memory limit the tuner keeps RSS under.",
                limit.bytes as f64,
            );
        }
        out.gauge(
            "tuner_cpu_limit_cpus",
            "The CPUs thread counts are sized for: the cgroup's CPU quota, else the CPUs.",
            report.cpu_limit.cpus,
        );
        let per_knob = |pick: fn(&Recommendation) -> f64, json: &'static str| {
            report
                .knobs
                .iter()
                .map(|knob| {
                    let name = knob.knob.to_string();
                    Sample {
                        json_key: Some(format!("tuner_{}_{json}", name.replace([':', '.'], "_"))),
                        labels: vec![("knob", name)],
                        value: pick(knob),
                    }
                })
                .collect::<Vec<_>>()
        };
        out.samples(
            "tuner_knob_value",
            "Each tuning knob's value now.",
            Kind::Gauge,
            per_knob(|k| k.current, "value"),
        );
        out.samples(
            "tuner_knob_recommended",
            "Each tuning knob's recommended value.",
            Kind::Gauge,
            per_knob(|k| k.recommended, "recommended"),
        );
        let changes = self.changes();
        out.json_only("tuner_changes_total", changes.values().sum::<u64>() as f64);
        out.samples(
            "tuner_changes_total",
            "Changes the tuner applied, by knob and direction.",
            Kind::Counter,
            changes
                .into_iter()
                .map(|((knob, direction), n)| Sample {
                    labels: vec![
                        ("knob", knob.to_string()),
                        ("direction", direction.to_owned()),
                    ],
                    value: n as f64,
                    json_key: None,
                })
                .collect(),
        );
    }
}

/// The tuner actor (see the module docs).
pub struct Tuner {
    shared: TunerShared,
    /// A round is running.
    busy: bool,
}

impl Tuner {
    pub fn new(shared: TunerShared) -> Self {
        Tuner {
            shared,
            busy: false,
        }
    }
}

impl Actor for Tuner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let opts = self.shared.opts();
        log::info!(
            "tuner: {} mode, every {:?}, RSS target {:.0}% of the limit, cache budget {}..={} bytes",
            opts.mode.name(),
            opts.interval,
            opts.target_share * 100.0,
            opts.cache_floor,
            opts.cache_ceiling
        );
        let interval = opts.interval.max(Duration::from_secs(1));
        // A first round at once: the cache budget fits the limit before the cache fills.
        self.tick(ctx);
        ctx.run_interval(interval, |tuner, ctx| tuner.tick(ctx));
    }
}

impl Tuner {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let shared = self.shared.clone();
        let apply = shared.opts().mode == TunerMode::Auto;
        ctx.spawn(
            async move { shared.round(apply).await }
                .into_actor(self)
                .map(|_, tuner, _| tuner.busy = false),
        );
    }
}

impl Handler<Tune> for Tuner {
    type Result = ResponseFuture<TunerReport>;

    fn handle(&mut self, message: Tune, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let apply = message.apply || shared.opts().mode == TunerMode::Auto;
        Box::pin(async move { shared.round(apply).await })
    }
}

/// The tuner as the runtime holds it: the actor and its reports and decisions.
#[derive(Clone)]
pub(crate) struct TunerHandle {
    actor: Handle<Tuner>,
    shared: TunerShared,
}

impl TunerHandle {
    /// The `tuner` child, reading `inputs` every `opts.interval`.
    pub(crate) fn child(
        opts: &TunerOpts,
        inputs: TunerInputs,
    ) -> (crate::supervisor::ChildSpec, TunerHandle) {
        let shared = TunerShared::new(opts.clone(), inputs);
        let kept = shared.clone();
        let (spec, actor) =
            crate::supervisor::ChildSpec::worker("tuner", move || Tuner::new(kept.clone()));
        (spec, TunerHandle { actor, shared })
    }

    /// The options, last report and decisions (a metrics source too).
    pub(crate) fn shared(&self) -> &TunerShared {
        &self.shared
    }

    /// Runs a round now; `apply`: apply the live knobs whatever the mode.
    pub(crate) async fn tune(
        &self,
        apply: bool,
    ) -> Result<TunerReport, crate::supervisor::CallError> {
        self.actor.send(Tune { apply }).await
    }
}

#[cfg(test)]
mod tests {
    use super::IdleWatch;

    #[test]
    fn tuner_announces_each_quiet_spell_once() {
        let mut watch = IdleWatch::default();
        let rounds = [10, 25, 25, 25, 40, 40, 40];
        let announced: Vec<bool> = rounds
            .iter()
            .map(|&answered| watch.quiet_spell_begins(answered))
            .collect();
        assert_eq!(announced, [false, false, true, false, false, true, false]);
    }
}
