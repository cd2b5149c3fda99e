//! The context optimizer: which variables templates use, which variables many templates
//! share, values loaded only when a render reads them, and how often each variable is
//! read.
//!
//! Four independent tools, meant to be combined by the template store:
//!
//! 1. **Analysis** ([`analyse`], [`variables_used`], [`variable_paths`]): the variables a
//!    template reads, through its `extends` chain, its `include`s and its `import`s.
//!    minijinja's [`Template::undeclared_variables`](minijinja::Template::undeclared_variables)
//!    looks at one template only: it skips `extends`, `include`, `import` and
//!    `from ... import` entirely (not even the variables in a computed template name are
//!    reported), so this module follows the statically known template names itself and
//!    unions the sets.
//! 2. **Usage tracking** ([`UsageTracker`], [`tracked_context`]): a context value that
//!    counts every lookup minijinja makes in it, per variable, across renders.
//! 3. **Lazy loading** ([`LazyHandle`], [`lazy`], [`Entry::Lazy`]): a variable whose value
//!    is computed only when a render looks it up, at most once per render
//!    ([`LazyMode::PerRender`]) or once overall ([`LazyMode::Cached`]).
//! 4. **Deduplication** ([`shared_variables`], [`SharedLayer`], [`Interner`]): variables
//!    that many templates hold with the same value are stored once and layered under
//!    each template's own variables without copying them per render, and equal long
//!    strings share one allocation.
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::machinery::{self, ast};
use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

/// Locks `mutex`, going on with the data of a holder that panicked: every structure
/// guarded here stays consistent between statements, so a panic elsewhere must not make
/// every later render fail.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// 1. Analysis
// ---------------------------------------------------------------------------------------

/// What [`analyse`] found out about a template and the templates it pulls in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// The variables the templates read without defining them: top-level names, or
    /// dotted paths such as `user.name` when asked for nested paths. Globals such as
    /// `range` are included (minijinja does not special-case them; see
    /// [`without_globals`]).
    pub variables: BTreeSet<String>,
    /// Every template visited: the one analysed, its parents, includes and imports.
    pub templates: BTreeSet<String>,
    /// Templates referenced by a constant name that the environment does not have
    /// (`ignore missing` includes and alternatives of an include list are not listed).
    pub missing: BTreeSet<String>,
    /// Templates that extend, include or import a template whose name is computed at
    /// render time: what that template reads is not in [`variables`](Self::variables),
    /// so the analysis is incomplete for them. The variables the name expression
    /// mentions are in `variables`.
    pub dynamic: BTreeSet<String>,
}

/// The top-level variables template `name` reads, through its extends chain, includes
/// and imports when their names are constant. See [`analyse`].
pub fn variables_used(env: &Environment<'_>, name: &str) -> Result<BTreeSet<String>, Error> {
    analyse(env, name, false).map(|analysis| analysis.variables)
}

/// Like [`variables_used`] but with nested attribute paths (`user.name`), as reported
/// by `undeclared_variables(true)`. A variable used as a whole appears without a path.
pub fn variable_paths(env: &Environment<'_>, name: &str) -> Result<BTreeSet<String>, Error> {
    analyse(env, name, true).map(|analysis| analysis.variables)
}

/// Removes the names of the environment's globals (`range`, `namespace`, functions the
/// application registered) from `variables`: what is left must come from the context.
pub fn without_globals(env: &Environment<'_>, variables: &BTreeSet<String>) -> BTreeSet<String> {
    let globals: HashSet<&str> = env.globals().map(|(name, _)| name).collect();
    variables
        .iter()
        .filter(|name| {
            let top = name.split('.').next().unwrap_or(name);
            !globals.contains(top)
        })
        .cloned()
        .collect()
}

/// Analyses template `name`: the union of minijinja's `undeclared_variables(nested)` over
/// the template and every template it statically extends, includes or imports
/// (transitively, each once, so cycles end).
///
/// The result over-approximates what one render reads: blocks a child overrides are
/// still counted in the parent, both branches of an `if` count, and a variable the
/// including template sets before an `include` is still reported for the included one.
/// That is the safe side for deciding which variables a template needs.
///
/// Errors: the template itself does not exist or does not compile, or a referenced one
/// exists but does not compile. Referenced templates that do not exist are listed in
/// [`Analysis::missing`].
pub fn analyse(env: &Environment<'_>, name: &str, nested: bool) -> Result<Analysis, Error> {
    let mut analysis = Analysis::default();
    let mut seen = HashSet::new();
    // (template name, whether it may be missing, whether it is the analysed template)
    let mut queue = vec![(name.to_owned(), false, true)];
    while let Some((current, may_be_missing, is_root)) = queue.pop() {
        if !seen.insert(current.clone()) {
            continue;
        }
        let template = match env.get_template(&current) {
            Ok(template) => template,
            Err(error) if !is_root && error.kind() == ErrorKind::TemplateNotFound => {
                if !may_be_missing {
                    analysis.missing.insert(current);
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        analysis
            .variables
            .extend(template.undeclared_variables(nested));
        let ast = machinery::parse_loaded(&template)?;
        let mut refs = References::default();
        refs.walk(&ast);
        if refs.dynamic {
            analysis.dynamic.insert(current.clone());
        }
        analysis.variables.extend(refs.dynamic_variables);
        for (reference, may_be_missing) in refs.names {
            if !seen.contains(&reference) {
                queue.push((reference, may_be_missing, false));
            }
        }
        analysis.templates.insert(current);
    }
    Ok(analysis)
}

/// The templates one template refers to, found by walking its syntax tree.
#[derive(Default)]
struct References {
    /// Constant template names, and whether each may be missing without an error.
    names: Vec<(String, bool)>,
    /// Whether some template name is computed at render time.
    dynamic: bool,
    /// The variables computed template names mention.
    dynamic_variables: BTreeSet<String>,
}

impl References {
    /// Visits a statement and every statement nested in it.
    fn walk(&mut self, stmt: &ast::Stmt<'_>) {
        match stmt {
            ast::Stmt::Template(t) => self.walk_all(&t.children),
            ast::Stmt::ForLoop(f) => {
                self.walk_all(&f.body);
                self.walk_all(&f.else_body);
            }
            ast::Stmt::IfCond(i) => {
                self.walk_all(&i.true_body);
                self.walk_all(&i.false_body);
            }
            ast::Stmt::WithBlock(w) => self.walk_all(&w.body),
            ast::Stmt::SetBlock(s) => self.walk_all(&s.body),
            ast::Stmt::AutoEscape(a) => self.walk_all(&a.body),
            ast::Stmt::FilterBlock(f) => self.walk_all(&f.body),
            ast::Stmt::Block(b) => self.walk_all(&b.body),
            ast::Stmt::Macro(m) => self.walk_all(&m.body),
            ast::Stmt::CallBlock(c) => self.walk_all(&c.macro_decl.body),
            ast::Stmt::Extends(e) => self.reference(&e.name, false),
            ast::Stmt::Include(i) => self.reference(&i.name, i.ignore_missing),
            ast::Stmt::Import(i) => self.reference(&i.expr, false),
            ast::Stmt::FromImport(i) => self.reference(&i.expr, false),
            // Statements without nested statements or template references (and any
            // added by a later minijinja: the walk is over an unstable API).
            _ => {}
        }
    }

    fn walk_all(&mut self, stmts: &[ast::Stmt<'_>]) {
        for stmt in stmts {
            self.walk(stmt);
        }
    }

    /// Records the template(s) a name expression designates: a constant string, a
    /// constant list of alternatives (each may be missing: the first that exists is
    /// used), or something computed.
    fn reference(&mut self, name: &ast::Expr<'_>, ignore_missing: bool) {
        let constant = name.as_const();
        if let Some(single) = constant.as_ref().and_then(|v| v.as_str()) {
            self.names.push((single.to_owned(), ignore_missing));
            return;
        }
        if let Some(list) = constant.and_then(|v| v.try_iter().ok()) {
            let choices: Vec<Value> = list.collect();
            if choices.iter().all(|c| c.as_str().is_some()) {
                for choice in choices.iter().filter_map(|c| c.as_str()) {
                    self.names.push((choice.to_owned(), true));
                }
                return;
            }
        }
        self.dynamic = true;
        expression_variables(name, &mut self.dynamic_variables);
    }
}

/// Every variable name an expression mentions. Used only for computed template names,
/// which `undeclared_variables` skips; it does not know about scopes, so a loop variable
/// used as a template name is reported too (an over-approximation).
fn expression_variables(expr: &ast::Expr<'_>, out: &mut BTreeSet<String>) {
    let args = |args: &[ast::CallArg<'_>], out: &mut BTreeSet<String>| {
        for arg in args {
            match arg {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => expression_variables(e, out),
            }
        }
    };
    match expr {
        ast::Expr::Var(v) => {
            out.insert(v.id.to_owned());
        }
        ast::Expr::Const(_) => {}
        ast::Expr::Slice(s) => {
            expression_variables(&s.expr, out);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expression_variables(part, out);
            }
        }
        ast::Expr::UnaryOp(u) => expression_variables(&u.expr, out),
        ast::Expr::BinOp(b) => {
            expression_variables(&b.left, out);
            expression_variables(&b.right, out);
        }
        ast::Expr::Compare(c) => {
            expression_variables(&c.expr, out);
            for op in &c.ops {
                expression_variables(&op.expr, out);
            }
        }
        ast::Expr::IfExpr(i) => {
            expression_variables(&i.test_expr, out);
            expression_variables(&i.true_expr, out);
            if let Some(e) = &i.false_expr {
                expression_variables(e, out);
            }
        }
        ast::Expr::Filter(f) => {
            if let Some(e) = &f.expr {
                expression_variables(e, out);
            }
            args(&f.args, out);
        }
        ast::Expr::Test(t) => {
            expression_variables(&t.expr, out);
            args(&t.args, out);
        }
        ast::Expr::GetAttr(g) => expression_variables(&g.expr, out),
        ast::Expr::GetItem(g) => {
            expression_variables(&g.expr, out);
            expression_variables(&g.subscript_expr, out);
        }
        ast::Expr::Call(c) => {
            expression_variables(&c.expr, out);
            args(&c.args, out);
        }
        ast::Expr::List(l) => l.items.iter().for_each(|e| expression_variables(e, out)),
        ast::Expr::Tuple(t) => t.items.iter().for_each(|e| expression_variables(e, out)),
        ast::Expr::Map(m) => {
            m.keys
                .iter()
                .chain(m.values.iter())
                .for_each(|e| expression_variables(e, out));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Usage tracking
// ---------------------------------------------------------------------------------------

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

/// A summary of a [`UsageTracker`]'s counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
    fn begin_render<'a>(&self, supplied: impl Iterator<Item = &'a str>) {
        self.inner.renders.fetch_add(1, Ordering::Relaxed);
        let mut variables = lock(&self.inner.variables);
        for name in supplied {
            update_counts(&mut variables, name, |counts| counts.supplied += 1);
        }
    }

    /// Counts one lookup of `name`: a read if the context held it, else a miss.
    fn record(&self, name: &str, found: bool) {
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
    loaded: Mutex<HashMap<String, Result<Value, String>>>,
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
        result.unwrap_or_else(|message| {
            Value::from(Error::new(
                ErrorKind::InvalidOperation,
                format!("loading the value of `{name}` failed: {message}"),
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

// ---------------------------------------------------------------------------------------
// 3. Lazy loading
// ---------------------------------------------------------------------------------------

/// When a lazy value's loader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LazyMode {
    /// On the first render that reads it; the value is kept for every later render
    /// (until [`LazyHandle::invalidate`]). A failed load is not kept: the next render
    /// that reads it tries again.
    Cached,
    /// On each render that reads it, once per render however often it reads it: for
    /// live values (statistics) that must be current.
    PerRender,
}

/// A loader: computes a value, or says why it could not.
pub type Loader = Arc<dyn Fn() -> Result<Value, String> + Send + Sync>;

/// A value computed only when a render reads it. Shared through [`LazyHandle`].
pub struct LazyValue {
    loader: Loader,
    mode: LazyMode,
    cached: Mutex<Option<Value>>,
    loads: AtomicU64,
}

impl fmt::Debug for LazyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyValue")
            .field("mode", &self.mode)
            .field("loads", &self.loads.load(Ordering::Relaxed))
            .finish()
    }
}

/// A cheap, shareable handle to a [`LazyValue`]: put it into any number of contexts
/// ([`Entry::Lazy`]); they share the cache and the load counter.
#[derive(Clone, Debug)]
pub struct LazyHandle(Arc<LazyValue>);

/// A lazy value computed once, on the first render that reads it ([`LazyMode::Cached`]).
pub fn lazy(loader: impl Fn() -> Result<Value, String> + Send + Sync + 'static) -> LazyHandle {
    LazyHandle::new(LazyMode::Cached, loader)
}

/// A lazy value computed on each render that reads it ([`LazyMode::PerRender`]).
pub fn lazy_per_render(
    loader: impl Fn() -> Result<Value, String> + Send + Sync + 'static,
) -> LazyHandle {
    LazyHandle::new(LazyMode::PerRender, loader)
}

impl LazyHandle {
    /// A lazy value loaded by `loader` in `mode`.
    pub fn new(
        mode: LazyMode,
        loader: impl Fn() -> Result<Value, String> + Send + Sync + 'static,
    ) -> LazyHandle {
        LazyHandle(Arc::new(LazyValue {
            loader: Arc::new(loader),
            mode,
            cached: Mutex::new(None),
            loads: AtomicU64::new(0),
        }))
    }

    /// How many times the loader ran (failed runs included).
    pub fn loads(&self) -> u64 {
        self.0.loads.load(Ordering::Relaxed)
    }

    /// The mode it was created with.
    pub fn mode(&self) -> LazyMode {
        self.0.mode
    }

    /// Drops a cached value, so the next render that reads it loads it again (e.g.
    /// after its data file changed). No effect in [`LazyMode::PerRender`].
    pub fn invalidate(&self) {
        *lock(&self.0.cached) = None;
    }

    /// The value, running the loader unless a cached value exists. For
    /// [`LazyMode::Cached`] the loader runs under a lock, so concurrent first reads load
    /// once (a loader must therefore not read its own handle).
    pub fn load(&self) -> Result<Value, String> {
        let inner = &self.0;
        match inner.mode {
            LazyMode::PerRender => {
                inner.loads.fetch_add(1, Ordering::Relaxed);
                (inner.loader)()
            }
            LazyMode::Cached => {
                let mut cached = lock(&inner.cached);
                if let Some(value) = cached.as_ref() {
                    return Ok(value.clone());
                }
                inner.loads.fetch_add(1, Ordering::Relaxed);
                let value = (inner.loader)()?;
                *cached = Some(value.clone());
                Ok(value)
            }
        }
    }
}

/// A loader reading and parsing a JSON file (e.g. under `templates/data/`) each time it
/// runs. Errors name the file.
pub fn json_file_loader(
    path: impl Into<PathBuf>,
) -> impl Fn() -> Result<Value, String> + Send + Sync + 'static {
    let path = path.into();
    move || {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not valid JSON: {error}", path.display()))?;
        Ok(Value::from(Serde(&json)))
    }
}

/// A loader for a live value the application computes (e.g. the file cache's
/// statistics as a `serde_json::Value`): anything serializable.
pub fn fn_loader<T: Serialize>(
    f: impl Fn() -> T + Send + Sync + 'static,
) -> impl Fn() -> Result<Value, String> + Send + Sync + 'static {
    move || {
        let value = Value::from(Serde(&f()));
        // A failing `Serialize` implementation yields an invalid value; report it as a
        // load error instead of letting it surface somewhere later.
        if value.kind() == ValueKind::Invalid {
            Err(value.to_string())
        } else {
            Ok(value)
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. Deduplication
// ---------------------------------------------------------------------------------------

/// Strings up to this many bytes are stored inside a minijinja `Value` (minijinja 3.1's
/// small-string capacity), so sharing them saves nothing and [`Interner`] leaves them
/// alone. Were minijinja to change it, interning would stay correct, only less thorough
/// or less useful for strings near the limit.
pub const INLINE_STRING_MAX: usize = 22;

/// Counts of an [`Interner`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An environment holding `templates` (name, source).
    fn env(templates: &[(&str, &str)]) -> Environment<'static> {
        let mut env = Environment::new();
        for (name, source) in templates {
            env.add_template_owned(name.to_string(), source.to_string())
                .unwrap();
        }
        env
    }

    fn json_map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn render(env: &Environment<'_>, name: &str, ctx: Value) -> String {
        env.get_template(name).unwrap().render(ctx).unwrap()
    }

    fn plain(map: &serde_json::Map<String, serde_json::Value>) -> Value {
        Value::from(Serde(map))
    }

    // ----- analysis -----

    #[test]
    fn analysis_of_a_single_template() {
        let env = env(&[(
            "t",
            "{{ a }}{{ b.c.d }}{% for x in items %}{{ x.name }}{{ loop.index }}{% endfor %}\
             {% set local = 1 %}{{ local }}{{ f(arg) }}",
        )]);
        assert_eq!(
            variables_used(&env, "t").unwrap(),
            set(&["a", "arg", "b", "f", "items"])
        );
        assert_eq!(
            variable_paths(&env, "t").unwrap(),
            set(&["a", "arg", "b.c.d", "f", "items"])
        );
    }

    #[test]
    fn undeclared_variables_alone_ignores_extends_and_include() {
        let env = env(&[
            (
                "base",
                "<title>{{ site }}</title>{% block body %}{{ fallback }}{% endblock %}",
            ),
            (
                "child",
                "{% extends \"base\" %}{% block body %}{{ content }}{% include \"footer\" %}{% endblock %}",
            ),
            ("footer", "{{ year }}{% include \"credits\" %}"),
            ("credits", "{{ author.name }}"),
        ]);
        let raw = env
            .get_template("child")
            .unwrap()
            .undeclared_variables(false);
        assert_eq!(raw.into_iter().collect::<BTreeSet<_>>(), set(&["content"]));

        let analysis = analyse(&env, "child", false).unwrap();
        assert_eq!(
            analysis.variables,
            set(&["author", "content", "fallback", "site", "year"])
        );
        assert_eq!(
            analysis.templates,
            set(&["base", "child", "credits", "footer"])
        );
        assert!(analysis.missing.is_empty() && analysis.dynamic.is_empty());
        assert!(
            variable_paths(&env, "child")
                .unwrap()
                .contains("author.name")
        );
    }

    #[test]
    fn analysis_follows_imports_lists_and_reports_missing_and_dynamic() {
        let env = env(&[
            (
                "lib",
                "{% macro hello(n) %}{{ greeting }} {{ n }}{% endmacro %}",
            ),
            ("lib2", "{% macro bye() %}{{ farewell }}{% endmacro %}"),
            ("a", "{{ a_var }}"),
            (
                "t",
                "{% import \"lib\" as m %}{% from \"lib2\" import bye %}\
                   {% if x %}{% include [\"nope\", \"a\"] %}{% endif %}\
                   {% include \"gone\" ignore missing %}{% include \"absent\" %}\
                   {% include tpl_name ~ \".html\" %}{{ m.hello(x) }}",
            ),
            ("cycle1", "{{ one }}{% include \"cycle2\" %}"),
            ("cycle2", "{{ two }}{% include \"cycle1\" %}"),
        ]);
        let analysis = analyse(&env, "t", false).unwrap();
        assert_eq!(
            analysis.variables,
            set(&["a_var", "farewell", "greeting", "tpl_name", "x"])
        );
        assert_eq!(analysis.missing, set(&["absent"]));
        assert_eq!(analysis.dynamic, set(&["t"]));
        assert_eq!(analysis.templates, set(&["a", "lib", "lib2", "t"]));
        assert_eq!(
            variables_used(&env, "cycle1").unwrap(),
            set(&["one", "two"])
        );
        assert_eq!(
            variables_used(&env, "nonexistent").unwrap_err().kind(),
            ErrorKind::TemplateNotFound
        );
    }

    #[test]
    fn without_globals_drops_environment_globals() {
        let env = env(&[(
            "t",
            "{% for i in range(n) %}{{ i }}{% endfor %}{{ namespace() }}",
        )]);
        let used = variables_used(&env, "t").unwrap();
        assert_eq!(used, set(&["n", "namespace", "range"]));
        assert_eq!(without_globals(&env, &used), set(&["n"]));
    }

    // ----- tracking -----

    const SAME_OUTPUT_TEMPLATES: &[(&str, &str)] = &[
        (
            "loop",
            "{% for item in items %}{{ loop.index }}:{{ item.name|upper }} {{ site }};{% endfor %}",
        ),
        (
            "cond",
            "{% if user %}Hi {{ user.name }}{% else %}anon{% endif %}\
             {% if nothere is defined %}X{% endif %}{% if site is defined %}S{% endif %}\
             {{ nothere|default(\"dflt\") }}[{{ nothere }}]{{ count + 1 }}",
        ),
        (
            "filters",
            "{{ items|map(attribute=\"name\")|join(\", \") }} {{ items|length }} {{ title|title }} \
             {{ data|tojson }} {{ data }} {{ data.list|sum }} {{ big|round(2) }} {{ neg }} {{ flag }} {{ empty }}",
        ),
        ("include", "<{% include \"partial\" %}>"),
        ("partial", "{{ site }}-{{ title }}"),
        (
            "macros",
            "{% macro card(x, y=site) %}[{{ x }}|{{ y }}|{{ site }}]{% endmacro %}{{ card(title) }}{{ card(\"b\", 2) }}\
             {% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}{{ title }}{% endcall %}",
        ),
        (
            "shadow",
            "{{ title }}{% set title = \"local\" %}{{ title }}{% for i in range(2) %}{{ title }}{{ i }}{% endfor %}\
             {% with site = \"w\" %}{{ site }}{% endwith %}{{ site }}",
        ),
        (
            "base",
            "<h1>{% block head %}{{ site }}{% endblock %}</h1>{% block body %}{% endblock %}",
        ),
        (
            "child",
            "{% extends \"base\" %}{% block body %}{{ super() }}{{ title }}{% for i in items %}{{ i.name }}{% endfor %}{% endblock %}",
        ),
        (
            "lib",
            "{% macro hello(n) %}hello {{ n }} from {{ site }}{% endmacro %}",
        ),
        (
            "import",
            "{% import \"lib\" as m %}{{ m.hello(title) }}{% from \"lib\" import hello %}{{ hello(1) }}",
        ),
        (
            "misc",
            "{{ items[0].name }}{{ items[-1] }}{{ title[1:3] }}{{ data.list|reverse|list }}\
             {% for k, v in data|dictsort %}{{ k }}={{ v }},{% endfor %}{{ title ~ site }}{{ \"ti\" in title }}",
        ),
    ];

    fn sample_context() -> serde_json::Map<String, serde_json::Value> {
        json_map(json!({
            "items": [{"name": "ann"}, {"name": "bob"}, {"name": "cy"}],
            "site": "leanserve",
            "user": {"name": "Zoe"},
            "count": 41,
            "title": "the title",
            "data": {"list": [1, 2, 3], "b": true, "n": null, "s": "x"},
            "big": 12.34567,
            "neg": -7,
            "flag": false,
            "empty": null,
            "unused": "never read"
        }))
    }

    #[test]
    fn tracked_context_renders_byte_identically() {
        let env = env(SAME_OUTPUT_TEMPLATES);
        let context = sample_context();
        let vars = Arc::new(vars_from_json(&context));
        let tracker = UsageTracker::new();
        for (name, _) in SAME_OUTPUT_TEMPLATES {
            let expected = render(&env, name, plain(&context));
            let tracked = render(&env, name, tracked_context(vars.clone(), &tracker));
            assert_eq!(tracked, expected, "template {name}");
            let untracked = render(&env, name, lazy_context(vars.clone()));
            assert_eq!(untracked, expected, "template {name}");
        }
        // spot check that the templates really render something
        assert_eq!(
            render(&env, "loop", plain(&context)),
            "1:ANN leanserve;2:BOB leanserve;3:CY leanserve;"
        );
        assert_eq!(render(&env, "cond", plain(&context)), "Hi ZoeSdflt[]42");
    }

    #[test]
    fn reads_are_counted_per_lookup() {
        let env = env(&[
            ("loop", "{% for i in items %}{{ site }}{% endfor %}"),
            (
                "set",
                "{{ title }}{% set title = \"x\" %}{{ title }}{{ title }}",
            ),
            ("attrs", "{{ user.name }}{{ user.email }}{{ user['name'] }}"),
            (
                "macro",
                "{% macro m() %}{{ site }}{% endmacro %}{{ m() }}{{ m() }}{{ m() }}",
            ),
            ("uncalled", "{% macro m() %}{{ site }}{% endmacro %}"),
            ("include", "{% include \"p\" %}{% include \"p\" %}"),
            ("p", "{{ site }}"),
            (
                "missing",
                "{{ nope }}{{ nope is defined }}{{ nope|default(1) }}{% for i in range(2) %}{% endfor %}",
            ),
            (
                "tests",
                "{% if site is defined %}{{ site|default(\"d\") }}{% endif %}",
            ),
        ]);
        let vars = Arc::new(vars_from_json(&json_map(json!({
            "items": [1, 2, 3], "site": "s", "title": "t", "user": {"name": "n", "email": "e"}
        }))));
        let count = |template: &str, name: &str| {
            let tracker = UsageTracker::new();
            render(&env, template, tracked_context(vars.clone(), &tracker));
            tracker.counts(name)
        };
        assert_eq!(count("loop", "site").reads, 3);
        assert_eq!(count("loop", "items").reads, 1);
        assert_eq!(count("set", "title").reads, 1);
        assert_eq!(count("attrs", "user").reads, 3);
        // captured once into the closure at declaration, whatever the calls
        assert_eq!(count("macro", "site").reads, 1);
        assert_eq!(count("uncalled", "site").reads, 1);
        assert_eq!(count("include", "site").reads, 2);
        assert_eq!(count("tests", "site").reads, 2);
        let nope = count("missing", "nope");
        assert_eq!((nope.reads, nope.misses), (0, 3));
        assert_eq!(count("missing", "range").misses, 1);
        assert_eq!(count("missing", "site").supplied, 1);
        assert_eq!(count("missing", "site").reads, 0);
    }

    #[test]
    fn report_lists_high_low_and_never_read() {
        let env = env(&[(
            "t",
            "{% for i in items %}{{ a }}{{ a }}{{ b }}{% endfor %}{{ c }}{{ ghost }}",
        )]);
        let vars = Arc::new(vars_from_json(&json_map(json!({
            "items": [1, 2, 3], "a": 1, "b": 2, "c": 3, "unused1": 0, "unused2": 0
        }))));
        let tracker = UsageTracker::new();
        for _ in 0..2 {
            render(&env, "t", tracked_context(vars.clone(), &tracker));
        }
        let report = tracker.report(2);
        assert_eq!(report.renders, 2);
        assert_eq!(report.total_reads, 12 + 6 + 2 + 2);
        assert_eq!(report.high_usage, vec![("a".into(), 12), ("b".into(), 6)]);
        assert_eq!(
            report.low_usage,
            vec![
                ("unused1".into(), 0),
                ("unused2".into(), 0),
                ("c".into(), 2),
                ("items".into(), 2)
            ]
        );
        assert_eq!(report.missing, vec![("ghost".into(), 2)]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["high_usage"][0], json!(["a", 12]));
        tracker.reset();
        assert_eq!(tracker.report(5), UsageReport::default());
    }

    #[test]
    fn tracking_is_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<UsageTracker>();
        assert_send_sync::<LazyHandle>();
        assert_send_sync::<Interner>();
        assert_send_sync::<SharedLayer>();
        assert_send_sync::<Value>();

        let env = Arc::new(env(&[("t", "{% for i in items %}{{ site }}{% endfor %}")]));
        let vars = Arc::new(vars_from_json(&json_map(
            json!({"items": [1, 2, 3, 4], "site": "s"}),
        )));
        let tracker = UsageTracker::new();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (env, vars, tracker) = (env.clone(), vars.clone(), tracker.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        assert_eq!(
                            render(&env, "t", tracked_context(vars.clone(), &tracker)),
                            "ssss"
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(tracker.renders(), 200);
        assert_eq!(tracker.reads("site"), 800);
        assert_eq!(tracker.reads("items"), 200);
    }

    #[test]
    fn context_iteration_and_truthiness_match_a_map() {
        let vars = Arc::new(vars_from_json(&json_map(json!({"b": 2, "a": 1}))));
        let ctx = lazy_context(vars);
        let keys: Vec<String> = ctx.try_iter().unwrap().map(|k| k.to_string()).collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(ctx.len(), Some(2));
        assert!(ctx.is_true());
        assert_eq!(ctx.get_attr("a").unwrap(), Value::from(1));
        assert!(ctx.get_attr("zz").unwrap().is_undefined());
        assert!(!lazy_context(Arc::new(Vars::new())).is_true());
    }

    // ----- lazy -----

    fn counting_loader(value: &'static str) -> impl Fn() -> Result<Value, String> + Send + Sync {
        move || Ok(Value::from(value))
    }

    #[test]
    fn lazy_values_load_only_when_read() {
        let env = env(&[
            ("ignores", "{{ other }}{% if false %}{{ heavy }}{% endif %}"),
            (
                "reads",
                "{{ heavy }}{{ heavy|upper }}{% for i in [1, 2] %}{{ heavy }}{% endfor %}",
            ),
        ]);
        for mode in [LazyMode::Cached, LazyMode::PerRender] {
            let handle = LazyHandle::new(mode, counting_loader("h"));
            let mut vars = Vars::new();
            vars.insert("heavy".into(), Entry::Lazy(handle.clone()));
            vars.insert("other".into(), Entry::Value(Value::from("o")));
            let vars = Arc::new(vars);
            let tracker = UsageTracker::new();
            assert_eq!(
                render(&env, "ignores", tracked_context(vars.clone(), &tracker)),
                "o"
            );
            assert_eq!(handle.loads(), 0, "{mode:?}");
            assert_eq!(
                render(&env, "reads", tracked_context(vars.clone(), &tracker)),
                "hHhh"
            );
            assert_eq!(handle.loads(), 1, "{mode:?}");
            assert_eq!(tracker.reads("heavy"), 4);
            render(&env, "reads", lazy_context(vars.clone()));
            let expected = if mode == LazyMode::Cached { 1 } else { 2 };
            assert_eq!(handle.loads(), expected, "{mode:?}");
        }
        let cached = lazy(counting_loader("c"));
        cached.load().unwrap();
        cached.load().unwrap();
        assert_eq!(cached.loads(), 1);
        cached.invalidate();
        cached.load().unwrap();
        assert_eq!(cached.loads(), 2);
        assert_eq!(
            lazy_per_render(counting_loader("p")).mode(),
            LazyMode::PerRender
        );
    }

    #[test]
    fn lazy_values_render_like_plain_values() {
        let env = env(SAME_OUTPUT_TEMPLATES);
        let context = sample_context();
        let mut vars = vars_from_json(&context);
        for name in ["items", "data", "site"] {
            let json = context[name].clone();
            vars.insert(
                name.into(),
                Entry::Lazy(lazy(fn_loader(move || json.clone()))),
            );
        }
        let vars = Arc::new(vars);
        for (name, _) in SAME_OUTPUT_TEMPLATES {
            assert_eq!(
                render(&env, name, lazy_context(vars.clone())),
                render(&env, name, plain(&context)),
                "template {name}"
            );
        }
    }

    #[test]
    fn loader_errors_are_render_errors() {
        let env = env(&[
            ("t", "a{{ broken }}b"),
            ("defined", "{{ broken is defined }}"),
            ("unread", "fine"),
        ]);
        let handle = lazy(|| Err("database down".to_string()));
        let vars = Arc::new(Vars::from([(
            "broken".to_string(),
            Entry::Lazy(handle.clone()),
        )]));
        for name in ["t", "defined"] {
            let error = env
                .get_template(name)
                .unwrap()
                .render(lazy_context(vars.clone()))
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidOperation);
            assert!(error.to_string().contains("database down"), "{error}");
        }
        assert_eq!(render(&env, "unread", lazy_context(vars.clone())), "fine");
        // failures are not cached
        assert_eq!(handle.loads(), 2);
    }

    #[test]
    fn json_file_loader_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("templates/data");
        std::fs::create_dir_all(&data).unwrap();
        let file = data.join("menu.json");
        std::fs::write(
            &file,
            r#"{"links": [{"href": "/", "label": "Home"}], "n": 2}"#,
        )
        .unwrap();
        let env = env(&[(
            "t",
            "{% for l in menu.links %}<a href=\"{{ l.href }}\">{{ l.label }}</a>{% endfor %}{{ menu.n }}",
        )]);

        let handle = lazy(json_file_loader(&file));
        let vars = Arc::new(Vars::from([(
            "menu".to_string(),
            Entry::Lazy(handle.clone()),
        )]));
        assert_eq!(
            render(&env, "t", lazy_context(vars.clone())),
            "<a href=\"/\">Home</a>2"
        );

        // per render: picks up changes
        let live = lazy_per_render(json_file_loader(&file));
        let vars = Arc::new(Vars::from([("menu".to_string(), Entry::Lazy(live))]));
        std::fs::write(&file, r#"{"links": [], "n": 3}"#).unwrap();
        assert_eq!(render(&env, "t", lazy_context(vars.clone())), "3");

        std::fs::write(&file, "{not json").unwrap();
        let error = json_file_loader(&file)().unwrap_err();
        assert!(error.contains("not valid JSON"), "{error}");
        let error = json_file_loader(data.join("absent.json"))().unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn fn_loader_computes_live_values() {
        let hits = Arc::new(AtomicU64::new(0));
        let source = hits.clone();
        let stats = lazy_per_render(fn_loader(
            move || json!({"hits": source.fetch_add(1, Ordering::Relaxed) + 1}),
        ));
        let env = env(&[("t", "{{ stats.hits }}/{{ stats.hits }}")]);
        let vars = Arc::new(Vars::from([(
            "stats".to_string(),
            Entry::Lazy(stats.clone()),
        )]));
        assert_eq!(render(&env, "t", lazy_context(vars.clone())), "1/1");
        assert_eq!(render(&env, "t", lazy_context(vars.clone())), "2/2");
        assert_eq!(stats.loads(), 2);
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_macro_declaration_loads_the_lazy_values_its_body_uses() {
        let env = env(&[("t", "{% macro m() %}{{ heavy }}{% endmacro %}never called")]);
        let handle = lazy(counting_loader("h"));
        let vars = Arc::new(Vars::from([(
            "heavy".to_string(),
            Entry::Lazy(handle.clone()),
        )]));
        assert_eq!(render(&env, "t", lazy_context(vars)), "never called");
        assert_eq!(handle.loads(), 1);
    }

    // ----- deduplication -----

    #[test]
    fn shared_variables_over_50_templates() {
        let mut templates = Vec::new();
        let mut contexts = BTreeMap::new();
        let long_common = "x".repeat(2048);
        for t in 0..50 {
            let mut source = String::new();
            let mut vars = serde_json::Map::new();
            for v in 0..20 {
                source.push_str(&format!("{{{{ v{v} }}}}|"));
                let value = if v < 15 {
                    match v % 3 {
                        0 => json!(format!("common {v}")),
                        1 => json!({"n": v, "list": [v, "s"], "long": long_common}),
                        _ => json!(v),
                    }
                } else {
                    json!(format!("template {t} var {v}"))
                };
                vars.insert(format!("v{v}"), value);
            }
            source.push_str("{% if v3 is defined %}d{% endif %}{{ v4.list|join(\",\") }}{{ v4 }}");
            templates.push((format!("t{t}"), source));
            contexts.insert(format!("t{t}"), vars);
        }
        let refs: Vec<(&str, &str)> = templates
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        let env = env(&refs);
        let layer = shared_variables(&contexts, 10);
        let expected: Vec<(String, usize)> = {
            let mut names: Vec<String> = (0..15).map(|v| format!("v{v}")).collect();
            names.sort();
            names.into_iter().map(|n| (n, 50)).collect()
        };
        assert_eq!(layer.list_shared(), expected);
        assert_eq!(layer.shared.len(), 15);
        for (template, own) in &layer.per_template {
            assert_eq!(own.len(), 5, "{template}");
            assert!(layer.absent[template].is_empty());
        }
        for (template, context) in &contexts {
            assert_eq!(
                render(&env, template, layer.context_for(template)),
                render(&env, template, plain(context)),
                "{template}"
            );
        }
        // the shared long string is stored once for the 5 variables x 50 templates holding it
        // (shared values are converted once; the five shared variables holding it share
        // one allocation)
        assert_eq!(layer.interned.interned, 1);
        assert_eq!(layer.interned.bytes_deduplicated, 4 * 2048);
        let first = layer.shared["v1"].get_attr("long").unwrap();
        let other = layer.shared["v4"].get_attr("long").unwrap();
        assert_eq!(
            first.as_str().unwrap().as_ptr(),
            other.as_str().unwrap().as_ptr()
        );
        // nothing shared with a threshold above the template count
        assert!(shared_variables(&contexts, 51).shared.is_empty());
    }

    #[test]
    fn shared_variables_keep_absence_and_differing_values() {
        let contexts: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = [
            ("a", json!({"site": "s", "lang": "en", "n": 1})),
            ("b", json!({"site": "s", "lang": "en", "n": 1.0})),
            ("c", json!({"site": "s", "lang": "fr"})),
            ("d", json!({"lang": "en"})),
        ]
        .into_iter()
        .map(|(t, v)| (t.to_string(), json_map(v)))
        .collect();
        let source = "{{ site|default(\"none\") }} {{ site is defined }} {{ lang }} {{ n }}";
        let env = env(&[("a", source), ("b", source), ("c", source), ("d", source)]);
        let layer = shared_variables(&contexts, 2);
        assert_eq!(
            layer.list_shared(),
            vec![("lang".to_string(), 3), ("site".to_string(), 3)]
        );
        assert_eq!(layer.absent["d"].as_ref(), &set(&["site"]));
        assert_eq!(
            layer.per_template["c"].get("lang"),
            Some(&Value::from("fr"))
        );
        for (template, context) in &contexts {
            assert_eq!(
                render(&env, template, layer.context_for(template)),
                render(&env, template, plain(context)),
                "{template}"
            );
        }
        assert_eq!(render(&env, "d", layer.context_for("d")), "none False en ");
        assert_eq!(render(&env, "b", layer.context_for("b")), "s True en 1.0");
        // an unknown template sees the shared layer
        assert_eq!(render(&env, "a", layer.context_for("zzz")), "s True en ");

        let tracker = UsageTracker::new();
        render(&env, "d", layer.tracked_context_for("d", &tracker));
        assert_eq!(
            tracker.counts("site"),
            VariableCounts {
                reads: 0,
                misses: 2,
                supplied: 0
            }
        );
        assert_eq!(tracker.counts("lang").reads, 1);
    }

    #[test]
    fn interner_shares_one_allocation() {
        let interner = Interner::new();
        let long = "y".repeat(2000);
        let values: Vec<Value> = (0..100)
            .map(|_| interner.intern_str(&long.clone()))
            .collect();
        let first = values[0].as_str().unwrap().as_ptr();
        assert!(values.iter().all(|v| v.as_str().unwrap().as_ptr() == first));
        assert_ne!(Value::from(long.as_str()).as_str().unwrap().as_ptr(), first);
        let short = interner.intern_str("short");
        assert_eq!(short.as_str(), Some("short"));
        assert_eq!(
            interner.stats(),
            InternerStats {
                interned: 1,
                bytes_stored: 2000,
                hits: 99,
                bytes_deduplicated: 99 * 2000
            }
        );
    }

    #[test]
    fn interned_json_renders_like_serde() {
        let env = env(SAME_OUTPUT_TEMPLATES);
        let context = sample_context();
        let interner = Interner::new();
        let vars: Vars = context
            .iter()
            .map(|(k, v)| (k.clone(), Entry::Value(interner.intern_json(v))))
            .collect();
        let vars = Arc::new(vars);
        for (name, _) in SAME_OUTPUT_TEMPLATES {
            assert_eq!(
                render(&env, name, lazy_context(vars.clone())),
                render(&env, name, plain(&context)),
                "template {name}"
            );
        }
        let odd = json!({"z": 1, "a": [u64::MAX, i64::MIN, 0.5, null, true, "é".repeat(30)]});
        assert_eq!(interner.intern_json(&odd), Value::from(Serde(&odd)));
        assert_eq!(
            interner.intern_json(&odd).to_string(),
            Value::from(Serde(&odd)).to_string()
        );
    }
}
