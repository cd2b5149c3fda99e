//! Variable deduplication: variables that many templates hold with the same value are
//! stored once and layered under each template's own variables, without copying them per
//! render.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::value::Value;

use super::interning::{Interner, InternerStats};
use super::usage::UsageTracker;
use super::{Layer, LayeredContext};

/// Variables stored once for many templates, and what remains per template. Built by
/// [`shared_variables`].
#[derive(Clone, Debug, Default)]
pub struct SharedLayer {
    /// The shared variables, stored once.
    pub shared: Arc<BTreeMap<String, Value>>,
    /// Per template, its variables that are not shared (or whose value differs from the
    /// shared one). They win over the shared layer.
    pub per_template: BTreeMap<String, Arc<BTreeMap<String, Value>>>,
    /// Per template, the shared variables its own context did not have: they stay
    /// undefined for it, so `is defined` and `default` behave as before sharing.
    pub absent: BTreeMap<String, Arc<BTreeSet<String>>>,
    /// Per shared variable, how many templates hold it with the shared value.
    pub template_counts: BTreeMap<String, usize>,
    /// What interning the values saved.
    pub interned: InternerStats,
}

impl SharedLayer {
    /// The render context of `template`: its own variables over the shared ones, with
    /// the shared ones it did not have hidden. Nothing is copied: the object looks the
    /// per-template map up first, then the shared map. A template that was not analysed
    /// gets the shared variables alone. Create one per render.
    pub fn context_for(&self, template: &str) -> Value {
        self.build(template, None)
    }

    /// Like [`context_for`](Self::context_for), counting lookups in `tracker`.
    pub fn tracked_context_for(&self, template: &str, tracker: &UsageTracker) -> Value {
        self.build(template, Some(tracker.clone()))
    }

    fn build(&self, template: &str, tracker: Option<UsageTracker>) -> Value {
        let mut layers = Vec::with_capacity(2);
        if let Some(own) = self.per_template.get(template) {
            layers.push(Layer::Plain(Arc::clone(own)));
        }
        layers.push(Layer::Plain(Arc::clone(&self.shared)));
        let hidden = self.absent.get(template).filter(|h| !h.is_empty()).cloned();
        LayeredContext::build(layers, hidden, tracker)
    }

    /// The shared variables and how many templates use each (hold it with that value).
    pub fn list_shared(&self) -> Vec<(String, usize)> {
        self.template_counts
            .iter()
            .map(|(name, count)| (name.clone(), *count))
            .collect()
    }
}

/// Finds the variables (name and equal value) that at least `min_templates` of the
/// templates' contexts hold, and splits the contexts into one shared layer and what
/// remains per template. Strings are interned with a fresh [`Interner`].
///
/// Values are equal when their JSON text is: `1` and `1.0` differ (they render
/// differently). When templates hold a name with different values, the value most
/// templates hold is shared (ties: the smaller JSON text) and the others stay per
/// template, where they win. `min_templates` below 1 counts as 1.
pub fn shared_variables(
    contexts: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    min_templates: usize,
) -> SharedLayer {
    shared_variables_with(contexts, min_templates, &Interner::new())
}

/// [`shared_variables`] with the caller's interner (to share strings with other
/// contexts built from the same interner).
pub fn shared_variables_with(
    contexts: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    min_templates: usize,
    interner: &Interner,
) -> SharedLayer {
    let min_templates = min_templates.max(1);
    let before = interner.stats();
    // The JSON text of every value, computed once. A value that cannot be written
    // (cannot happen for serde_json values) is never shared.
    let texts: BTreeMap<&str, BTreeMap<&str, Option<String>>> = contexts
        .iter()
        .map(|(template, vars)| {
            let texts = vars
                .iter()
                .map(|(name, value)| (name.as_str(), serde_json::to_string(value).ok()))
                .collect();
            (template.as_str(), texts)
        })
        .collect();
    // name -> JSON text -> templates holding that value
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for vars in texts.values() {
        for (name, text) in vars {
            if let Some(text) = text {
                *counts.entry(name).or_default().entry(text).or_default() += 1;
            }
        }
    }
    // name -> the shared value's JSON text, and its template count
    let mut chosen: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for (name, by_value) in &counts {
        // most templates first, then the smaller text (BTreeMap order) on ties
        let best = by_value
            .iter()
            .fold(None::<(&str, usize)>, |best, (text, count)| match best {
                Some((_, best_count)) if best_count >= *count => best,
                _ => Some((text, *count)),
            });
        if let Some((text, count)) = best
            && count >= min_templates
        {
            chosen.insert(name, (text, count));
        }
    }
    let mut shared = BTreeMap::new();
    let mut per_template = BTreeMap::new();
    let mut absent = BTreeMap::new();
    for (template, vars) in contexts {
        let mut own = BTreeMap::new();
        let template_texts = texts.get(template.as_str());
        for (name, value) in vars {
            let text = template_texts
                .and_then(|t| t.get(name.as_str()))
                .and_then(|t| t.as_deref());
            match (chosen.get(name.as_str()), text) {
                (Some((shared_text, _)), Some(text)) if *shared_text == text => {
                    if !shared.contains_key(name) {
                        shared.insert(name.clone(), interner.intern_json(value));
                    }
                }
                _ => {
                    own.insert(name.clone(), interner.intern_json(value));
                }
            }
        }
        let missing: BTreeSet<String> = chosen
            .keys()
            .filter(|name| !vars.contains_key(**name))
            .map(|name| (*name).to_owned())
            .collect();
        per_template.insert(template.clone(), Arc::new(own));
        absent.insert(template.clone(), Arc::new(missing));
    }
    let after = interner.stats();
    SharedLayer {
        shared: Arc::new(shared),
        per_template,
        absent,
        template_counts: chosen
            .iter()
            .map(|(name, (_, count))| ((*name).to_owned(), *count))
            .collect(),
        interned: InternerStats {
            interned: after.interned.saturating_sub(before.interned),
            bytes_stored: after.bytes_stored.saturating_sub(before.bytes_stored),
            hits: after.hits.saturating_sub(before.hits),
            bytes_deduplicated: after
                .bytes_deduplicated
                .saturating_sub(before.bytes_deduplicated),
        },
    }
}
