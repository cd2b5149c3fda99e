//! The context optimizer: which variables templates use, which variables many templates
//! share, values loaded only when a render reads them, and how often each variable is
//! read.
//!
//! The render context is one object, a layered context (made by [`layered_context`],
//! [`tracked_context`], [`lazy_context`] and [`SharedLayer::context_for`]), that four tools
//! feed, each in its own module:
//!
//! 1. **Analysis** ([`analysis`]: [`analyse`], [`variables_used`], [`variable_paths`]):
//!    the variables a template reads, through its `extends` chain, its `include`s and its
//!    `import`s.
//! 2. **Usage tracking** ([`usage`]: [`UsageTracker`]): the context counts every lookup
//!    minijinja makes in it, per variable, across renders.
//! 3. **Lazy loading** (`lazy.rs`: [`LazyHandle`], `Entry::Lazy`): a variable whose value
//!    is computed only when a render looks it up, at most once per render
//!    ([`LazyMode::PerRender`]) or once overall ([`LazyMode::Cached`]).
//! 4. **Deduplication** ([`shared`]: [`shared_variables`], [`SharedLayer`]; [`interning`]:
//!    [`Interner`]): variables that many templates hold with the same value are stored
//!    once and layered under each template's own variables without copying them per
//!    render, and equal long strings share one allocation.
//!
//! # What counts as a read
//!
//! A *read* is one call minijinja makes to the context object to look a variable up by
//! name, for a name the context holds. minijinja consults the root context only after the
//! template's own locals (`{% set %}`, loop variables, macro arguments and closures), and
//! it does not remember what it found, so:
//!
//! * every evaluation of `{{ name }}`, `name.attr`, `name[0]`, `name | filter`,
//!   `name is defined` or `name()` that is not shadowed by a local is one read: inside
//!   a loop of three iterations it is three reads; `{{ user.name }}{{ user.email }}` is
//!   two reads of `user` (attributes are looked up on the value, not in the context);
//! * a variable assigned with `{% set %}` is not read from the context after the
//!   assignment (the local shadows it);
//! * declaring a macro reads, once, every variable its body uses but does not define:
//!   minijinja captures them into the macro's closure at declaration time, and calls of
//!   the macro then read the closure, not the context. A lazy variable used in a macro
//!   body is therefore loaded when the macro is *declared*, even if it is never called;
//! * included templates read the same context as their includer, so their lookups count;
//! * a lookup of a name the context does not hold is a *miss*, counted separately
//!   ([`UsageReport::missing`]): global functions such as `range` show up there,
//!   because minijinja asks the context before the environment's globals;
//! * when a render fails with the environment's debug mode on, minijinja looks up the
//!   variables referenced near the failure to build its error report: those are reads
//!   too. minijinja's `debug()` function reads every variable.

pub mod analysis;
pub mod interning;
pub mod lazy;
pub mod shared;
pub mod usage;

pub use analysis::{Analysis, analyse, variable_paths, variables_used, without_globals};
pub use interning::{INLINE_STRING_MAX, Interner, InternerStats};
pub use lazy::{
    LazyHandle, LazyMode, LazyValue, Loader, fn_loader, json_file_loader, lazy, lazy_per_render,
};
pub use shared::{SharedLayer, shared_variables, shared_variables_with};
pub use usage::{UsageReport, UsageTracker, VariableCounts};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value};
use minijinja::{Error, ErrorKind};

use super::TemplateError;

/// Locks `mutex`, going on with the data of a holder that panicked: every structure
/// guarded here stays consistent between statements, so a panic elsewhere must not make
/// every later render fail.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One variable of a context: a value, or a value loaded when first read.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A value ready to render.
    Value(Value),
    /// A value computed by a loader when a render reads it.
    Lazy(LazyHandle),
}

impl From<Value> for Entry {
    fn from(value: Value) -> Entry {
        Entry::Value(value)
    }
}

impl From<LazyHandle> for Entry {
    fn from(handle: LazyHandle) -> Entry {
        Entry::Lazy(handle)
    }
}

/// The variables of a context, by name.
pub type Vars = BTreeMap<String, Entry>;

/// Converts a JSON object (the store's global context, a request's context) into
/// context variables, each converted the way `Value::from(Serde(&map))` converts it.
pub fn vars_from_json(map: &serde_json::Map<String, serde_json::Value>) -> Vars {
    map.iter()
        .map(|(name, value)| (name.clone(), Entry::Value(Value::from(Serde(value)))))
        .collect()
}

/// A context that counts each lookup in `tracker` and loads lazy entries when read.
///
/// Create one per render: it counts as one render and holds the per-render memory of
/// [`LazyMode::PerRender`] values. `vars` is shared, not copied.
pub fn tracked_context(vars: Arc<Vars>, tracker: &UsageTracker) -> Value {
    LayeredContext::build(vec![Layer::Entries(vars)], None, Some(tracker.clone()))
}

/// A context over several maps of variables, the first that holds a name winning (a
/// request's variables over the shared ones), without copying any of them; counts
/// lookups in `tracker` when given. Create one per render.
pub fn layered_context(layers: Vec<Arc<Vars>>, tracker: Option<&UsageTracker>) -> Value {
    LayeredContext::build(
        layers.into_iter().map(Layer::Entries).collect(),
        None,
        tracker.cloned(),
    )
}

/// A context over `vars` that loads lazy entries when read, without counting. Create one
/// per render.
pub fn lazy_context(vars: Arc<Vars>) -> Value {
    LayeredContext::build(vec![Layer::Entries(vars)], None, None)
}

/// One map of variables a [`LayeredContext`] looks in.
#[derive(Clone, Debug)]
enum Layer {
    Plain(Arc<BTreeMap<String, Value>>),
    Entries(Arc<Vars>),
}

impl Layer {
    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Layer::Plain(map) => Box::new(map.keys().map(String::as_str)),
            Layer::Entries(map) => Box::new(map.keys().map(String::as_str)),
        }
    }
}

/// The context object renders see: layers of variables (the first holding a name wins),
/// names hidden from the lower layers, an optional tracker, and the lazy values loaded
/// during this render.
struct LayeredContext {
    layers: Vec<Layer>,
    /// Names that are undefined in this context even though a layer holds them (a
    /// shared variable the template's own context did not have).
    hidden: Option<Arc<BTreeSet<String>>>,
    tracker: Option<UsageTracker>,
    /// Lazy values (or their loader's error) already loaded by this render.
    loaded: Mutex<HashMap<String, Result<Value, TemplateError>>>,
}

impl fmt::Debug for LayeredContext {
    // Names only: formatting must not load lazy values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredContext")
            .field("variables", &self.visible_names())
            .finish()
    }
}

impl LayeredContext {
    fn build(
        layers: Vec<Layer>,
        hidden: Option<Arc<BTreeSet<String>>>,
        tracker: Option<UsageTracker>,
    ) -> Value {
        let context = LayeredContext {
            layers,
            hidden,
            tracker,
            loaded: Mutex::new(HashMap::new()),
        };
        if let Some(tracker) = &context.tracker {
            tracker.begin_render(context.visible_names().into_iter());
        }
        Value::from_object(context)
    }

    fn is_hidden(&self, name: &str) -> bool {
        self.hidden.as_ref().is_some_and(|h| h.contains(name))
    }

    /// The names this context defines, sorted, each once.
    fn visible_names(&self) -> BTreeSet<&str> {
        self.layers
            .iter()
            .flat_map(Layer::names)
            .filter(|name| !self.is_hidden(name))
            .collect()
    }

    /// The value of `name`, loading it if it is lazy; `None` if no layer holds it.
    fn resolve(&self, name: &str) -> Option<Value> {
        if self.is_hidden(name) {
            return None;
        }
        for layer in &self.layers {
            match layer {
                Layer::Plain(map) => {
                    if let Some(value) = map.get(name) {
                        return Some(value.clone());
                    }
                }
                Layer::Entries(map) => match map.get(name) {
                    Some(Entry::Value(value)) => return Some(value.clone()),
                    Some(Entry::Lazy(handle)) => return Some(self.load(name, handle)),
                    None => {}
                },
            }
        }
        None
    }

    /// A lazy value, loaded at most once per render; a loader error becomes an invalid
    /// value, which minijinja turns into a render error at the lookup.
    fn load(&self, name: &str, handle: &LazyHandle) -> Value {
        let mut loaded = lock(&self.loaded);
        let result = match loaded.get(name) {
            Some(result) => result.clone(),
            None => {
                let result = handle.load();
                loaded.insert(name.to_owned(), result.clone());
                result
            }
        };
        drop(loaded);
        result.unwrap_or_else(|error| {
            Value::from(Error::new(
                ErrorKind::InvalidOperation,
                format!("loading the value of `{name}` failed: {error}"),
            ))
        })
    }
}

impl Object for LayeredContext {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, name: &str) -> Option<Value> {
        let value = self.resolve(name);
        if let Some(tracker) = &self.tracker {
            tracker.record(name, value.is_some());
        }
        value
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.visible_names().into_iter().map(Value::from).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.visible_names().len())
    }
}

#[cfg(test)]
mod tests;
