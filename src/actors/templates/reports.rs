//! What the store answers: a reload's summary, the optimizers' report and the context
//! optimizer's view of the variables.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::templates::MemoryReport;
use crate::templates::context;

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
