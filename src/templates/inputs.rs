//! What a build reads: each template's source as last read, the global context and the
//! data files, each with the [`Stamp`] of the file it came from; and the flattened
//! sources kept from one build to the next.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::{TemplateError, Variables, memory};

/// What is known about a file without reading it: enough to notice it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// One template's source as last read.
#[derive(Clone)]
pub struct Source {
    pub stamp: Stamp,
    /// The last version that parsed, in service.
    pub good: Option<memory::Held>,
    /// Why the file as last read is not in service (read or syntax error).
    pub error: Option<TemplateError>,
}

/// Everything a build reads.
#[derive(Clone, Default)]
pub struct Inputs {
    pub sources: BTreeMap<String, Source>,
    /// The global context file, as last read.
    pub context: Option<(Stamp, Result<Variables, TemplateError>)>,
    /// The data files last seen, by variable name.
    pub data: BTreeMap<String, (PathBuf, Stamp)>,
}

/// A flattened source, or why the template is not flattened.
pub type Flattening = Result<Arc<str>, TemplateError>;

/// Flattened sources by template name, each with the fingerprint of the chain it came
/// from, kept between builds (`cache_optimized_templates`) so only changed chains are
/// flattened again.
#[derive(Clone, Default)]
pub struct FlattenCache {
    entries: HashMap<String, (u64, Flattening)>,
}

impl FlattenCache {
    /// The flattening of `name`, if one is kept.
    pub fn get(&self, name: &str) -> Option<&Flattening> {
        self.entries.get(name).map(|(_, flattening)| flattening)
    }

    /// Whether the flattening kept for `name` came from a chain with `fingerprint`.
    pub fn is_current(&self, name: &str, fingerprint: u64) -> bool {
        self.entries
            .get(name)
            .is_some_and(|(known, _)| *known == fingerprint)
    }

    /// Keeps only the templates `wanted` answers true for, then adds `computed`.
    pub fn update(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        computed: Vec<(String, (u64, Flattening))>,
    ) {
        self.entries.retain(|name, _| wanted(name));
        self.entries.extend(computed);
    }

    /// Forgets every flattening.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Bytes of the flattened sources kept.
    pub fn source_bytes(&self) -> usize {
        self.entries
            .values()
            .filter_map(|(_, flattening)| flattening.as_ref().ok().map(|s| s.len()))
            .sum()
    }
}
