//! Interning: equal long strings of the contexts share one allocation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use minijinja::value::{Serde, Value};
use serde::Serialize;

use super::lock;

/// Strings up to this many bytes are stored inside a minijinja `Value` (minijinja 3.1's
/// small-string capacity), so sharing them saves nothing and [`Interner`] leaves them
/// alone. Were minijinja to change it, interning would stay correct, only less thorough
/// or less useful for strings near the limit.
pub const INLINE_STRING_MAX: usize = 22;

/// What interning the global context's strings saved (`context_optimizer.enable_deduplication`):
/// counts of the `Interner` that holds equal strings once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InternerStats {
    /// Distinct strings stored.
    pub interned: u64,
    /// Bytes of those strings.
    pub bytes_stored: u64,
    /// Requests answered with an already stored string.
    pub hits: u64,
    /// Bytes not stored again thanks to those hits.
    pub bytes_deduplicated: u64,
}

/// Hands out one shared `Value` for equal strings longer than [`INLINE_STRING_MAX`], so
/// a hundred contexts holding the same 2 KB string hold one allocation. Thread-safe;
/// grows with every distinct string: keep one per generation of contexts (e.g. per
/// reload) and drop it with them.
#[derive(Debug, Default)]
pub struct Interner {
    state: Mutex<InternerState>,
}

#[derive(Debug, Default)]
struct InternerState {
    strings: HashSet<Arc<str>>,
    stats: InternerStats,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Interner {
        Interner::default()
    }

    /// A string value, sharing the allocation of an equal string interned before.
    pub fn intern_str(&self, s: &str) -> Value {
        if s.len() <= INLINE_STRING_MAX {
            return Value::from(s);
        }
        let mut state = lock(&self.state);
        let bytes = u64::try_from(s.len()).unwrap_or(u64::MAX);
        if let Some(existing) = state.strings.get(s) {
            let existing = Arc::clone(existing);
            state.stats.hits += 1;
            state.stats.bytes_deduplicated = state.stats.bytes_deduplicated.saturating_add(bytes);
            return Value::from(existing);
        }
        let stored: Arc<str> = Arc::from(s);
        state.strings.insert(Arc::clone(&stored));
        state.stats.interned += 1;
        state.stats.bytes_stored = state.stats.bytes_stored.saturating_add(bytes);
        Value::from(stored)
    }

    /// A JSON value converted like `Value::from(Serde(json))` (same kinds, same map
    /// order, same output), with every string (values and keys) interned.
    pub fn intern_json(&self, json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::String(s) => self.intern_str(s),
            serde_json::Value::Array(items) => Value::from_object(
                items
                    .iter()
                    .map(|item| self.intern_json(item))
                    .collect::<Vec<_>>(),
            ),
            serde_json::Value::Object(map) => Value::from_pairs(
                map.iter()
                    .map(|(key, value)| (self.intern_str(key), self.intern_json(value))),
            ),
            // Numbers, booleans and null hold no heap data: minijinja's own conversion.
            other => Value::from(Serde(other)),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> InternerStats {
        lock(&self.state).stats
    }
}
