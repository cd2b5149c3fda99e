//! The tuning rules: pure functions from one set of readings to a recommendation per
//! knob, each with its reason and evidence. The tuner actor gathers the readings and
//! applies the live recommendations; nothing here reads a clock or a file.
//!
//! - **File cache budget** (live), the GOMEMLIMIT of a cache: everything but the cache
//!   (`RSS − cache bytes`) is taken as given, and the budget is what is left under the
//!   target (`target_percent` of the limit), with 15% allowance for the allocator's
//!   overhead on cached bytes. So the cache never fills past what the limit allows,
//!   whatever the interval, and it grows back as soon as the rest shrinks. It stays
//!   between `cache_floor` and `cache_ceiling`; at the floor the tuner stops and says so
//!   rather than chase memory the cache does not hold (the death-spiral guard).
//! - **Allocator decay** (live), the GC-percent analogue: freed pages are kept
//!   `dirty_decay_ms` before jemalloc returns them. With ample headroom (30% or more)
//!   1000 ms; under 30%, 250 ms; under 15%, 100 ms with a purge now and
//!   jemalloc's background thread on, so pages are returned while the process is idle
//!   too (jemalloc#2688).
//! - **Pool ceilings** (live): the autoscaler moves each pool's maximum up to its
//!   `scale_max`; the tuner owns that ceiling. Under 15% headroom the `gzip` pool (about
//!   330 KiB per compressor) gets `scale_max = scale_min`, so the autoscaler cannot grow
//!   it back; with headroom again the configured ceiling returns.
//! - **In-flight limits** (live): the limiters adapt them every window; reported.
//! - **HTTP workers and render workers** (restart): one HTTP worker per CPU; render
//!   workers from Little's law, the renders in flight on average (rate × mean time, queue
//!   wait included) with half again for bursts.

use super::cpu::{CpuLimit, CpuSource};
use super::knob::Knob;
use super::memory::MemoryLimit;

/// Headroom (share of the limit) under which the allocator returns pages at once and
/// pools shrink.
pub const TIGHT_HEADROOM: f64 = 0.15;
/// Headroom under which decay shortens.
pub const LOW_HEADROOM: f64 = 0.30;
/// Decay under tight memory. Not 0: with 0 every free of a large buffer goes back to the
/// system at once, which cost identity responses of the compressed-only store 44% of
/// their throughput (the per-response inflate buffer); 100 ms cost under 5%, and the purge
/// that comes with it returns what is free now.
pub const TIGHT_DECAY_MS: i64 = 100;
/// Allowance for the allocator's overhead on cached bytes, where the cache does not
/// measure and count it itself (without its jemalloc arena).
pub const CACHE_OVERHEAD: f64 = 1.15;
/// Allowance where the cache counts its arena's overhead itself: the heap outside the
/// arena that grows with the cache.
pub const CACHE_OVERHEAD_COUNTED: f64 = 1.08;
/// A budget change smaller than this share of the budget (or 1 MiB) is not worth making.
pub const CACHE_DEADBAND: f64 = 0.02;

/// What the tuner read this round.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    pub limit: Option<MemoryLimit>,
    pub rss: Option<u64>,
    pub cache_budget: u64,
    /// What the cache counts against its budget now.
    pub cache_bytes: u64,
    /// The cache counts the allocator's overhead on its bytes itself (its own jemalloc
    /// arena, measured): no allowance on top.
    pub cache_counts_allocator: bool,
    /// `None` without jemalloc.
    pub dirty_decay_ms: Option<i64>,
    pub background_thread: Option<bool>,
    /// (name, scale_max now, scale_min, scale_max as configured).
    pub pools: Vec<(String, usize, usize, usize)>,
    /// (limiter, limit, in flight, rejected since the last round).
    pub limiters: Vec<(String, usize, usize, u64)>,
    /// The CPU quota or count threads are sized for.
    pub cpu: CpuLimit,
    /// The kernel's memory pressure stall figure (PSI `some avg10`, percent), where it
    /// has one.
    pub memory_pressure: Option<f64>,
    pub workers: usize,
    pub render_workers: usize,
    /// Renders per second and their mean time (queue wait included), over the last round.
    pub renders_per_second: f64,
    pub mean_render_seconds: f64,
    /// Seconds the round covered.
    pub window_seconds: f64,
}

/// The rules' settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    /// Share of the limit RSS should stay under.
    pub target_share: f64,
    pub cache_floor: u64,
    pub cache_ceiling: u64,
}

/// One figure behind a tuner recommendation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Evidence {
    /// The figure's name, e.g. `process_rss_bytes` or `cpu_quota_cpus` (its unit is in the name).
    pub metric: String,
    /// What the figure covers (`now`, `last 30 s`).
    pub window: String,
    /// The figure's value.
    pub value: f64,
}

/// A tuner knob's current and recommended value, with why.
///
/// Serialized with the knob's unit and whether it is live (both the knob's, see
/// [`Knob::live`] and [`Knob::unit`]) between the figures, as `/admin/tuner` shows it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Recommendation {
    /// The knob: a configuration key (`server.workers`) or a live setting
    /// (`cache_budget_bytes`, `pool_scale_max:<pool>`, `in_flight_limit:<limiter>`...).
    pub knob: Knob,
    /// The knob's value now, in its unit.
    pub current: f64,
    /// The value the tuner recommends, in its unit (equal to `current`: no change).
    pub recommended: f64,
    /// Why, in a sentence.
    pub reason: String,
    /// The figures the recommendation was made from.
    pub evidence: Vec<Evidence>,
}

impl Recommendation {
    /// Whether following it changes anything.
    pub fn changes(&self) -> bool {
        self.recommended != self.current
    }

    /// Whether it is applied while serving (auto mode), or only at the next start.
    pub fn live(&self) -> bool {
        self.knob.live()
    }
}

impl serde::Serialize for Recommendation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Recommendation", 7)?;
        out.serialize_field("knob", &self.knob)?;
        out.serialize_field("unit", self.knob.unit())?;
        out.serialize_field("current", &self.current)?;
        out.serialize_field("recommended", &self.recommended)?;
        out.serialize_field("live", &self.live())?;
        out.serialize_field("reason", &self.reason)?;
        out.serialize_field("evidence", &self.evidence)?;
        out.end()
    }
}

fn evidence(metric: &str, window: &str, value: f64) -> Evidence {
    Evidence {
        metric: metric.to_owned(),
        window: window.to_owned(),
        value,
    }
}

fn mb(bytes: f64) -> f64 {
    (bytes / (1 << 20) as f64 * 10.0).round() / 10.0
}

/// Every knob's recommendation, in a fixed order.
pub fn recommend(r: &Readings, t: &Targets) -> Vec<Recommendation> {
    let mut out = vec![cache_budget(r, t)];
    if let Some(decay) = allocator_decay(r) {
        out.push(decay);
    }
    out.extend(pool_maximums(r));
    out.extend(limits(r));
    out.push(workers(r));
    out.push(render_workers(r));
    out
}

fn headroom(r: &Readings) -> Option<f64> {
    let limit = r.limit?;
    let rss = r.rss?;
    Some(1.0 - rss as f64 / limit.bytes.max(1) as f64)
}

fn cache_budget(r: &Readings, t: &Targets) -> Recommendation {
    let current = r.cache_budget as f64;
    let mut rec = Recommendation {
        knob: Knob::CacheBudgetBytes,
        current,
        recommended: current,
        reason: String::new(),
        evidence: vec![evidence("cache_bytes", "now", r.cache_bytes as f64)],
    };
    let (Some(limit), Some(rss)) = (r.limit, r.rss) else {
        rec.reason = "no memory figures yet; keeping the budget".into();
        return rec;
    };
    let target = limit.bytes as f64 * t.target_share;
    let others = rss.saturating_sub(r.cache_bytes) as f64;
    // Where the cache counts its arena's overhead, the heap it causes outside the arena
    // (entries, keys, headers, reads in flight) still grows with it: without this
    // allowance the tuned run peaked at 0.93 M (bench/tuner.sh, 2026-12-03).
    let allowance = if r.cache_counts_allocator {
        CACHE_OVERHEAD_COUNTED
    } else {
        CACHE_OVERHEAD
    };
    let room = ((target - others) / allowance).max(0.0);
    let mut recommended = room
        .clamp(t.cache_floor as f64, t.cache_ceiling as f64)
        .floor();
    // Small moves are noise (RSS moves a little every round): hold, unless the move
    // reaches a bound exactly.
    let bound = recommended == t.cache_floor as f64 || recommended == t.cache_ceiling as f64;
    if !bound && (recommended - current).abs() < (current * CACHE_DEADBAND).max((1 << 20) as f64) {
        recommended = current;
    }
    rec.evidence.extend([
        evidence("process_rss_bytes", "now", rss as f64),
        evidence("memory_limit_bytes", "now", limit.bytes as f64),
        evidence("rss_target_bytes", "now", target),
    ]);
    if let Some(stalled) = r.memory_pressure {
        rec.evidence.push(evidence(
            "memory_pressure_some_percent",
            "last 10 s",
            stalled,
        ));
    }
    rec.recommended = recommended;
    rec.reason = if room > t.cache_ceiling as f64 && recommended == t.cache_ceiling as f64 {
        format!(
            "at the ceiling (tuner.cache_ceiling_mb, {} MB): the {} MB target would allow {} MB",
            mb(t.cache_ceiling as f64),
            mb(target),
            mb(room)
        )
    } else if room < t.cache_floor as f64 {
        format!(
            "everything but the cache holds {} MB, over the {} MB target: the budget stays at its floor and the rest of the memory is not the cache's",
            mb(others),
            mb(target)
        )
    } else if recommended < current {
        format!(
            "RSS {} MB of which {} MB outside the cache leaves {} MB under the {} MB target ({:.0}% of the {} MB limit)",
            mb(rss as f64),
            mb(others),
            mb(room),
            mb(target),
            t.target_share * 100.0,
            mb(limit.bytes as f64)
        )
    } else if recommended > current {
        format!(
            "headroom returned: {} MB fits under the {} MB target",
            mb(room),
            mb(target)
        )
    } else {
        format!(
            "the budget fits the {} MB target (within {:.0}% of the room)",
            mb(target),
            CACHE_DEADBAND * 100.0
        )
    };
    rec
}

fn allocator_decay(r: &Readings) -> Option<Recommendation> {
    let current = r.dirty_decay_ms?;
    let headroom = headroom(r);
    let (recommended, reason) = match headroom {
        Some(h) if h < TIGHT_HEADROOM => (
            TIGHT_DECAY_MS,
            format!(
                "headroom {:.0}% is under {:.0}%: return freed pages within 100 ms, purge now, background thread on",
                h * 100.0,
                TIGHT_HEADROOM * 100.0
            ),
        ),
        Some(h) if h < LOW_HEADROOM => (
            250,
            format!(
                "headroom {:.0}% is under {:.0}%: return freed pages sooner",
                h * 100.0,
                LOW_HEADROOM * 100.0
            ),
        ),
        Some(h) => (1000, format!("headroom {:.0}% is ample", h * 100.0)),
        None => (current, "no memory figures yet".into()),
    };
    Some(Recommendation {
        knob: Knob::AllocatorDirtyDecayMs,
        current: current as f64,
        recommended: recommended as f64,
        reason,
        evidence: headroom
            .map(|h| vec![evidence("memory_headroom_ratio", "now", h)])
            .unwrap_or_default(),
    })
}

fn pool_maximums(r: &Readings) -> Vec<Recommendation> {
    let tight = headroom(r).is_some_and(|h| h < TIGHT_HEADROOM);
    r.pools
        .iter()
        .map(|(name, scale_max, scale_min, configured)| {
            let hold = tight && name == crate::codec::GZIP_POOL;
            let (recommended, reason) = if hold {
                (
                    *scale_min,
                    "memory is tight: compressors (about 330 KiB each) held at the pool's scale_min"
                        .to_owned(),
                )
            } else {
                (
                    *configured,
                    "the configured ceiling; the pool manager's autoscaler moves the maximum under it"
                        .to_owned(),
                )
            };
            Recommendation {
                knob: Knob::PoolScaleMax { pool: name.clone() },
                current: *scale_max as f64,
                recommended: recommended as f64,
                reason,
                evidence: headroom(r)
                    .map(|h| vec![evidence("memory_headroom_ratio", "now", h)])
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn limits(r: &Readings) -> Vec<Recommendation> {
    r.limiters
        .iter()
        .map(|(name, limit, in_flight, rejected)| Recommendation {
            knob: Knob::InFlightLimit {
                limiter: name.clone(),
            },
            current: *limit as f64,
            recommended: *limit as f64,
            reason: "the limiter adapts it every window from the latency of admitted requests"
                .into(),
            evidence: vec![
                evidence("limiter_in_flight", "now", *in_flight as f64),
                evidence(
                    "limiter_rejected",
                    &format!("last {:.0} s", r.window_seconds),
                    *rejected as f64,
                ),
            ],
        })
        .collect()
}

fn workers(r: &Readings) -> Recommendation {
    let cpu = &r.cpu;
    Recommendation {
        knob: Knob::ServerWorkers,
        current: r.workers as f64,
        recommended: cpu.threads() as f64,
        reason: match cpu.source {
            CpuSource::Cpus => "one HTTP worker per CPU: the workers never block".into(),
            _ => format!(
                "one HTTP worker per CPU of the {:.2}-CPU quota, rounded up: the workers never block, and more would only take turns under the quota",
                cpu.cpus
            ),
        },
        evidence: cpu_evidence(cpu),
    }
}

/// The CPU figures a thread count rests on: the quota (when one applies) and the CPUs.
fn cpu_evidence(cpu: &CpuLimit) -> Vec<Evidence> {
    let mut figures = vec![evidence(
        "available_parallelism",
        "now",
        cpu.available as f64,
    )];
    let source = match cpu.source {
        CpuSource::CgroupV2 => Some("cgroup v2 cpu.max"),
        CpuSource::CgroupV1 => Some("cgroup v1 cpu.cfs_quota_us"),
        CpuSource::Cpus => None,
    };
    if let Some(source) = source {
        figures.push(evidence("cpu_quota_cpus", source, cpu.cpus));
    }
    figures
}

fn render_workers(r: &Readings) -> Recommendation {
    let busy = r.renders_per_second * r.mean_render_seconds;
    let window = format!("last {:.0} s", r.window_seconds);
    let (recommended, reason) = if r.renders_per_second <= 0.0 {
        (r.render_workers, "no renders in the last round".to_owned())
    } else {
        let needed = ((busy * 1.5).ceil() as usize).clamp(1, r.cpu.threads() * 2);
        (
            needed,
            format!(
                "Little's law: {:.1} renders/s x {:.1} ms = {busy:.2} renders in flight on average, half again for bursts",
                r.renders_per_second,
                r.mean_render_seconds * 1000.0
            ),
        )
    };
    Recommendation {
        knob: Knob::RenderWorkers,
        current: r.render_workers as f64,
        recommended: recommended as f64,
        reason,
        evidence: [
            evidence("template_renders_per_second", &window, r.renders_per_second),
            evidence(
                "template_render_mean_seconds",
                &window,
                r.mean_render_seconds,
            ),
        ]
        .into_iter()
        .chain(cpu_evidence(&r.cpu))
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::LimitSource;
    use super::*;

    const MB: u64 = 1 << 20;

    fn readings(limit_mb: u64, rss_mb: u64, cache_mb: u64, budget_mb: u64) -> Readings {
        Readings {
            limit: Some(MemoryLimit {
                bytes: limit_mb * MB,
                source: LimitSource::Configured,
            }),
            rss: Some(rss_mb * MB),
            cache_budget: budget_mb * MB,
            cache_bytes: cache_mb * MB,
            cache_counts_allocator: false,
            dirty_decay_ms: Some(1000),
            background_thread: Some(false),
            pools: vec![("gzip".into(), 8, 1, 8), ("inflate".into(), 4, 1, 4)],
            limiters: vec![("files".into(), 40, 3, 0)],
            cpu: CpuLimit {
                cpus: 2.0,
                source: CpuSource::Cpus,
                available: 2,
            },
            memory_pressure: None,
            workers: 2,
            render_workers: 2,
            renders_per_second: 0.0,
            mean_render_seconds: 0.0,
            window_seconds: 30.0,
        }
    }

    const TARGETS: Targets = Targets {
        target_share: 0.85,
        cache_floor: 8 * MB,
        cache_ceiling: 512 * MB,
    };

    fn knob<'a>(all: &'a [Recommendation], knob: &Knob) -> &'a Recommendation {
        all.iter().find(|r| r.knob == *knob).unwrap()
    }

    fn pool(name: &str) -> Knob {
        Knob::PoolScaleMax { pool: name.into() }
    }

    #[test]
    fn tuner_recommendation_serializes_with_the_knobs_name_unit_and_liveness() {
        let recommendation = Recommendation {
            knob: pool("gzip"),
            current: 8.0,
            recommended: 1.0,
            reason: "tight".into(),
            evidence: vec![evidence("memory_headroom_ratio", "now", 0.1)],
        };
        assert_eq!(
            serde_json::to_string(&recommendation).unwrap(),
            concat!(
                r#"{"knob":"pool_scale_max:gzip","unit":"objects","current":8.0,"#,
                r#""recommended":1.0,"live":true,"reason":"tight","#,
                r#""evidence":[{"metric":"memory_headroom_ratio","window":"now","value":0.1}]}"#
            )
        );
    }

    #[test]
    fn tuner_cache_budget_is_what_the_rest_leaves_under_the_target() {
        // Limit 200 MB, target 170 MB; 40 MB outside a 100 MB cache: 130 MB room / 1.15.
        let all = recommend(&readings(200, 140, 100, 256), &TARGETS);
        let cache = knob(&all, &Knob::CacheBudgetBytes);
        assert_eq!(
            cache.recommended,
            ((130 * MB) as f64 / CACHE_OVERHEAD).floor()
        );
        assert!(cache.recommended < cache.current && cache.live());
        assert!(
            cache
                .reason
                .contains("under the 170 MB target (85% of the 200 MB limit)"),
            "{}",
            cache.reason
        );
        assert!(
            cache
                .evidence
                .iter()
                .any(|e| e.metric == "process_rss_bytes")
        );
    }

    #[test]
    fn tuner_cache_budget_adds_no_allowance_where_the_cache_counts_its_overhead() {
        // The same figures, with a cache that counts its arena's overhead in its bytes:
        // a smaller allowance on the 130 MB of room.
        let mut counted = readings(200, 140, 100, 256);
        counted.cache_counts_allocator = true;
        let cache = recommend(&counted, &TARGETS)
            .into_iter()
            .find(|r| r.knob == Knob::CacheBudgetBytes)
            .unwrap();
        assert_eq!(
            cache.recommended,
            ((130 * MB) as f64 / CACHE_OVERHEAD_COUNTED).floor()
        );
    }

    #[test]
    fn tuner_cache_budget_grows_back_and_stays_within_floor_and_ceiling() {
        let grow = recommend(&readings(2000, 100, 50, 64), &TARGETS);
        let cache = knob(&grow, &Knob::CacheBudgetBytes);
        assert_eq!(cache.recommended, (512 * MB) as f64, "ceiling");
        assert!(
            cache.reason.starts_with("at the ceiling"),
            "{}",
            cache.reason
        );
        // Everything outside the cache is already over the target: floor, and it says so.
        let floor = recommend(&readings(200, 190, 5, 64), &TARGETS);
        let cache = knob(&floor, &Knob::CacheBudgetBytes);
        assert_eq!(cache.recommended, (8 * MB) as f64);
        assert!(
            cache.reason.contains("is not the cache's"),
            "{}",
            cache.reason
        );
        // A move of under 2% (or 1 MiB) is noise: hold.
        let room = ((170 - 40) * MB) as f64 / CACHE_OVERHEAD;
        let mut steady = readings(200, 140, 100, 0);
        steady.cache_budget = room as u64 + 100_000;
        let cache = recommend(&steady, &TARGETS)
            .into_iter()
            .find(|r| r.knob == Knob::CacheBudgetBytes)
            .unwrap();
        assert!(!cache.changes(), "{cache:?}");
        assert!(
            cache.reason.starts_with("the budget fits"),
            "{}",
            cache.reason
        );
        // No figures: hold.
        let mut unknown = readings(200, 100, 50, 64);
        unknown.rss = None;
        let all = recommend(&unknown, &TARGETS);
        let cache = knob(&all, &Knob::CacheBudgetBytes);
        assert!(!cache.changes());
    }

    #[test]
    fn tuner_decay_tightens_as_headroom_shrinks() {
        let decay = |rss| {
            knob(
                &recommend(&readings(100, rss, 10, 64), &TARGETS),
                &Knob::AllocatorDirtyDecayMs,
            )
            .recommended
        };
        assert_eq!(decay(50), 1000.0);
        assert_eq!(decay(75), 250.0);
        assert_eq!(decay(90), TIGHT_DECAY_MS as f64);
        let mut no_jemalloc = readings(100, 90, 10, 64);
        no_jemalloc.dirty_decay_ms = None;
        assert!(
            recommend(&no_jemalloc, &TARGETS)
                .iter()
                .all(|r| r.knob != Knob::AllocatorDirtyDecayMs)
        );
    }

    #[test]
    fn tuner_holds_the_gzip_pool_at_its_floor_only_while_memory_is_tight() {
        let loose = recommend(&readings(100, 50, 10, 64), &TARGETS);
        assert!(!knob(&loose, &pool("gzip")).changes());
        let tight = recommend(&readings(100, 90, 10, 64), &TARGETS);
        assert_eq!(knob(&tight, &pool("gzip")).recommended, 1.0);
        assert!(!knob(&tight, &pool("inflate")).changes());
        // Headroom back: the configured ceiling returns.
        let mut held = readings(100, 50, 10, 64);
        held.pools[0].1 = 1;
        assert_eq!(
            knob(&recommend(&held, &TARGETS), &pool("gzip")).recommended,
            8.0
        );
    }

    #[test]
    fn tuner_restart_knobs_follow_cpus_and_littles_law() {
        let mut r = readings(1000, 100, 10, 64);
        r.workers = 8;
        r.renders_per_second = 400.0;
        r.mean_render_seconds = 0.005;
        let all = recommend(&r, &TARGETS);
        let workers = knob(&all, &Knob::ServerWorkers);
        assert_eq!(
            (workers.current, workers.recommended, workers.live()),
            (8.0, 2.0, false)
        );
        // 400/s x 5 ms = 2 in flight, x1.5 = 3 (at most 2 x CPUs = 4).
        let renders = knob(&all, &Knob::RenderWorkers);
        assert_eq!(renders.recommended, 3.0);
        assert!(renders.reason.starts_with("Little's law"));
        r.renders_per_second = 0.0;
        assert!(!knob(&recommend(&r, &TARGETS), &Knob::RenderWorkers).changes());

        // Under half a CPU's quota: one worker, renders at most two, the quota shown.
        r.cpu = CpuLimit {
            cpus: 0.5,
            source: CpuSource::CgroupV1,
            available: 2,
        };
        r.renders_per_second = 400.0;
        let all = recommend(&r, &TARGETS);
        let workers = knob(&all, &Knob::ServerWorkers);
        assert_eq!(workers.recommended, 1.0);
        assert!(
            workers.reason.contains("0.50-CPU quota"),
            "{}",
            workers.reason
        );
        assert!(
            workers
                .evidence
                .iter()
                .any(|e| e.metric == "cpu_quota_cpus" && e.value == 0.5),
            "{:?}",
            workers.evidence
        );
        assert_eq!(knob(&all, &Knob::RenderWorkers).recommended, 2.0);

        // The kernel's pressure stall figure is part of the budget's evidence.
        assert!(
            !knob(&all, &Knob::CacheBudgetBytes)
                .evidence
                .iter()
                .any(|e| e.metric == "memory_pressure_some_percent")
        );
        r.memory_pressure = Some(3.5);
        let budget = knob(&recommend(&r, &TARGETS), &Knob::CacheBudgetBytes).clone();
        assert!(
            budget
                .evidence
                .iter()
                .any(|e| e.metric == "memory_pressure_some_percent" && e.value == 3.5),
            "{:?}",
            budget.evidence
        );
    }
}
