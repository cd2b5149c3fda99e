//! What the store answers: a reload's summary, the optimizers' report and the context
//! optimizer's view of the variables.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::templates::MemoryReport;
use crate::templates::context;

/// What one template reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

/// `GET /admin/templates/variables`: the context optimizer's figures.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
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

/// A variable of the shared context layers (global context, data files, live values)
/// that several templates read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharedVariable {
    /// The variable's name in the context.
    pub name: String,
    /// Templates in the published set that read it (two or more).
    pub templates: usize,
}

/// A variable loaded only when a render reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LazyVariable {
    /// The variable's name: `<name>` for a data file `data/<name>.json` under
    /// `templates.dir`, or a live value's name.
    pub name: String,
    /// Times its value was loaded, failed loads included (more than one when
    /// `context_optimizer.enable_compression` keeps no data file in memory).
    pub loads: u64,
}

/// What re-running the optimizers did (`POST /admin/templates/optimize`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
    /// `baseline - optimized`, in bytes.
    pub bytes_saved: Option<i64>,
    /// `bytes_saved` in MB (2^20 bytes), rounded to two decimals.
    pub memory_reduced_mb: Option<f64>,
    /// Resident memory, in bytes, right before the memory-release hint (jemalloc purge),
    /// when `memory_optimizer.enable_gc_hints` is on and jemalloc could purge.
    pub rss_before_release: Option<u64>,
    /// Resident memory, in bytes, right after that hint (same conditions).
    pub rss_after_release: Option<u64>,
    /// Why the heap figures are missing, when they are.
    pub unavailable: Option<String>,
}
