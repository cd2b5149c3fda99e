//! The template engine, pure: no actix, no folder, no clock. It takes template sources in
//! memory and builds the set renders use; the store actor
//! ([`actors::templates`](crate::actors::templates)) reads the folder, schedules builds
//! and publishes their result.
//!
//! A build ([`build::build`]) runs in stages, each its own function with its own tests:
//! resolve every template's extends chain ([`chain`]), choose which templates to serve
//! flattened and flatten those whose chain changed ([`flatten`]), assemble what each
//! template serves, analyse which variables each reads ([`context::analysis`]),
//! deduplicate and compile the set eagerly or lazily ([`memory`]), compute the depth each
//! is served at, and layer the variables renders start from ([`context`]). The result is a
//! [`Published`] set; [`render::render`] renders one of its templates within limits.
//!
//! [`machinery`] is the one module that reads minijinja's unstable internals. Errors are
//! [`TemplateError`]s.

pub mod build;
pub mod chain;
pub mod context;
pub mod error;
pub mod flatten;
pub mod inputs;
pub mod machinery;
pub mod memory;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::Environment;
use serde::Serialize;

pub use context::{InternerStats, UsageReport};
pub use error::{DataFileError, TemplateError};
pub use flatten::{FlattenError, Unflattenable};
pub use memory::Rewrites;
pub use render::{RenderError, Rendered};

/// Template variables: a JSON object.
pub type Variables = serde_json::Map<String, serde_json::Value>;

/// A built set of templates: what renders use.
pub struct Published {
    /// The compiled templates.
    pub env: Arc<Environment<'static>>,
    /// The variables every render starts from: the global context
    /// (`_context.toml` / `_context.json`), the data files (`data/<name>.json`, loaded
    /// when read with the context optimizer's lazy loading) and the application's live
    /// values.
    pub base_context: Arc<context::Vars>,
    /// The variables each template reads (through its chain, includes and imports), when
    /// the context optimizer is on.
    pub reads: BTreeMap<String, BTreeSet<String>>,
    /// What interning the global context saved (context optimizer deduplication).
    pub interned: Option<context::InternerStats>,
    /// Every known template, by name.
    pub templates: BTreeMap<String, TemplateInfo>,
    /// Counts publications since start.
    pub generation: u64,
    /// What the memory optimizer did to this set.
    pub memory: MemoryReport,
    /// Flattening workers of this build that panicked (logged; their templates are served
    /// unflattened and flattened again at the next build).
    pub flatten_panics: u64,
    /// Taken by the first renders of templates compiled lazily (see
    /// [`compile_first`](Self::compile_first)).
    pub compiling: std::sync::Mutex<()>,
}

impl Published {
    /// The set before the first build: no templates, no variables.
    pub fn empty() -> Published {
        Published {
            env: Arc::new(Environment::new()),
            base_context: Arc::new(context::Vars::new()),
            reads: BTreeMap::new(),
            interned: None,
            templates: BTreeMap::new(),
            generation: 0,
            memory: MemoryReport::default(),
            flatten_panics: 0,
            compiling: std::sync::Mutex::new(()),
        }
    }

    /// Compiles `name` before its render when the set compiles templates lazily (on
    /// their first render). minijinja calls the loader without a lock, and the loader
    /// hands each source out once (it is freed once compiled), so two first renders at
    /// once would leave the second without a source and answer 404: they take turns
    /// here. A template compiled already costs a lookup under an uncontended lock.
    pub fn compile_first(&self, name: &str) {
        if self.memory.pending == 0 {
            return;
        }
        let _turn = self
            .compiling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(error) = self.env.get_template(name)
            && error.kind() != minijinja::ErrorKind::TemplateNotFound
        {
            log::warn!("templates: {name:?} does not compile: {error}");
        }
    }

    /// Templates served with their chain flattened.
    pub fn flattened(&self) -> usize {
        self.templates
            .values()
            .filter(|t| t.served == Served::Flattened)
            .count()
    }

    /// Templates whose latest version failed to load.
    pub fn in_error(&self) -> usize {
        self.templates
            .values()
            .filter(|t| t.error.is_some())
            .count()
    }
}

/// How a template is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Served {
    /// Its own source, through minijinja's inheritance.
    Original,
    /// Its whole chain flattened into one template.
    Flattened,
}

/// Whether a template loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoadState {
    /// Its latest version is in service.
    Ok,
    /// Its latest version failed to load (see [`TemplateInfo::error`]).
    Error,
}

/// A template as `/admin/templates` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TemplateInfo {
    /// Its name, the path below `templates.dir`.
    pub name: String,
    /// Bytes of its source.
    pub bytes: usize,
    /// Its extends chain above it, nearest parent first.
    pub parents: Vec<String>,
    /// `ok`, or `error` with `error` saying why.
    pub state: LoadState,
    /// Why its latest version failed to load.
    pub error: Option<TemplateError>,
    /// In error but an earlier good version is in service.
    pub stale: bool,
    /// Through minijinja's inheritance or flattened.
    pub served: Served,
    /// Templates in the chain as served (1 when flattened).
    pub served_depth: usize,
    /// Why it is served unflattened although its chain is deeper than 1 and flattening
    /// (or collapsing over `max_inheritance_depth`) was asked for.
    pub not_flattened: Option<TemplateError>,
}

/// The memory optimizer's work on one published set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemoryReport {
    /// Templates (internal shared sections included) in the set.
    pub templates: usize,
    /// What deduplication did: templates aliased, shared sections and the source bytes
    /// saved (`memory_optimizer.enable_deduplication`).
    #[serde(flatten)]
    pub rewrites: memory::Rewrites,
    /// Templates not compiled when the set was published (lazy loading).
    pub pending: usize,
    /// Of those, held gzip-compressed.
    pub compressed: usize,
}
