//! Usage tracking: how often renders read each variable, counted by the render context
//! (see the [context module](super) for what counts as a read).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::lock;

/// Counts, per variable name, how often renders read it, how often it was supplied and
/// how often a render looked up a name the context did not hold.
///
/// Shared by every render thread: clones share the counts. Each counted lookup takes a
/// short lock; renders are not serialised on anything else.
#[derive(Clone, Debug, Default)]
pub struct UsageTracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    renders: AtomicU64,
    variables: Mutex<HashMap<String, VariableCounts>>,
}

/// The counts of one variable name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VariableCounts {
    /// Lookups that found the variable in the context.
    pub reads: u64,
    /// Lookups of the name when the context did not hold it.
    pub misses: u64,
    /// Renders whose context held the variable.
    pub supplied: u64,
}

/// How often renders read each context variable, as the context optimizer's usage tracking
/// (the `UsageTracker`) counted them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UsageReport {
    /// Tracked contexts created, i.e. renders (one context per render).
    pub renders: u64,
    /// Reads of all variables together.
    pub total_reads: u64,
    /// The `top_n` most read variables, most read first (ties by name).
    pub high_usage: Vec<(String, u64)>,
    /// Every variable that was supplied but never read (0 reads, by name), then the
    /// `top_n` least read among those read at least once, least read first. When few
    /// variables are tracked it can overlap `high_usage`.
    pub low_usage: Vec<(String, u64)>,
    /// Names looked up but not held by the context, most looked up first: variables
    /// the application forgot (they render as undefined) and the environment's globals.
    pub missing: Vec<(String, u64)>,
}

impl UsageTracker {
    /// A tracker with no counts.
    pub fn new() -> UsageTracker {
        UsageTracker::default()
    }

    /// Records the start of a render whose context holds `supplied`.
    pub(super) fn begin_render<'a>(&self, supplied: impl Iterator<Item = &'a str>) {
        self.inner.renders.fetch_add(1, Ordering::Relaxed);
        let mut variables = lock(&self.inner.variables);
        for name in supplied {
            update_counts(&mut variables, name, |counts| counts.supplied += 1);
        }
    }

    /// Counts one lookup of `name`: a read if the context held it, else a miss.
    pub(super) fn record(&self, name: &str, found: bool) {
        let mut variables = lock(&self.inner.variables);
        update_counts(&mut variables, name, |counts| {
            if found {
                counts.reads += 1;
            } else {
                counts.misses += 1;
            }
        });
    }

    /// The counts of `name` (all zero if never seen).
    pub fn counts(&self, name: &str) -> VariableCounts {
        lock(&self.inner.variables)
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// The reads of `name` so far.
    pub fn reads(&self, name: &str) -> u64 {
        self.counts(name).reads
    }

    /// Renders tracked so far.
    pub fn renders(&self) -> u64 {
        self.inner.renders.load(Ordering::Relaxed)
    }

    /// Forgets every count.
    pub fn reset(&self) {
        lock(&self.inner.variables).clear();
        self.inner.renders.store(0, Ordering::Relaxed);
    }

    /// Summarises the counts: the `top_n` most and least read variables, the never
    /// read ones and the missing ones (see [`UsageReport`]).
    pub fn report(&self, top_n: usize) -> UsageReport {
        let variables = lock(&self.inner.variables);
        let mut read: Vec<(String, u64)> = Vec::new();
        let mut never_read: Vec<(String, u64)> = Vec::new();
        let mut missing: Vec<(String, u64)> = Vec::new();
        let mut total_reads = 0u64;
        for (name, counts) in variables.iter() {
            total_reads = total_reads.saturating_add(counts.reads);
            if counts.reads > 0 {
                read.push((name.clone(), counts.reads));
            } else if counts.supplied > 0 {
                never_read.push((name.clone(), 0));
            }
            if counts.misses > 0 {
                missing.push((name.clone(), counts.misses));
            }
        }
        drop(variables);
        let by_count_desc =
            |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        read.sort_by(by_count_desc);
        missing.sort_by(by_count_desc);
        never_read.sort();
        let high_usage = read.iter().take(top_n).cloned().collect();
        let mut low_usage = never_read;
        let mut least_read = read.iter().rev().take(top_n).cloned().collect::<Vec<_>>();
        least_read.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        low_usage.extend(least_read);
        UsageReport {
            renders: self.renders(),
            total_reads,
            high_usage,
            low_usage,
            missing,
        }
    }
}

/// Applies `update` to the counts of `name`, creating them on first use (allocating the
/// name only then).
fn update_counts(
    variables: &mut HashMap<String, VariableCounts>,
    name: &str,
    update: impl FnOnce(&mut VariableCounts),
) {
    match variables.get_mut(name) {
        Some(counts) => update(counts),
        None => {
            let mut counts = VariableCounts::default();
            update(&mut counts);
            variables.insert(name.to_owned(), counts);
        }
    }
}
