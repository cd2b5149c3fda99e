//! A build: from the [`Inputs`] (sources as last read, global context, data files) to a
//! [`Published`] set, in stages that each do one job:
//!
//! 1. [`resolve_chains`]: every template's extends chain, or why it has none;
//! 2. [`choose_flattened`]: which templates to serve flattened: every chained template, or
//!    (flattening off) the ancestors that shorten over-deep chains to
//!    `max_inheritance_depth`;
//! 3. [`stale_flattenings`]: of those, the ones whose chain changed since the flattening
//!    kept in the [`FlattenCache`] (by a fingerprint of the chain's names and sources);
//! 4. [`flatten_all`]: flattens them on up to `render_workers` threads; a worker that
//!    panics is logged and counted, its templates served unflattened;
//! 5. [`assemble`]: what each template serves (its source or its flattening) and how
//!    `/admin/templates` lists it;
//! 6. [`analyse_reads`]: the variables each template reads (context optimizer);
//! 7. [`deduplicate`]: the memory optimizer's rewrites of the set;
//! 8. [`compile_eagerly`] or [`compile_lazily`]: the set into the environment, now or on
//!    first render;
//! 9. [`set_served_depths`]: how deep each chain is as served;
//! 10. [`base_context`]: the variables every render starts from.
//!
//! [`build`] runs them in that order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::Environment;

use super::chain::{self, ChainError};
use super::context::{self, Entry, Interner, InternerStats, LazyHandle, LazyMode, Vars};
use super::inputs::{FlattenCache, Flattening, Inputs, Source};
use super::memory::{self, Held};
use super::{LoadState, MemoryReport, Published, Served, TemplateError, TemplateInfo, flatten};
use crate::config::{ContextOptimizerOpts, TemplateOpts};

/// Template sources by name, as text, for one build.
pub type Texts = BTreeMap<String, Arc<str>>;

/// Each template's extends chain (`[name, parent, ..., root]`), or why it has none.
pub type Chains<'a> = BTreeMap<&'a str, Result<Vec<String>, ChainError>>;

/// Values the application computes when a render reads them, by variable name.
pub type LiveValues = BTreeMap<String, LazyHandle>;

/// Builds the set `inputs` describe, reusing and updating the flattenings in `cache`;
/// `generation` numbers the result.
pub fn build(
    opts: &TemplateOpts,
    inputs: &Inputs,
    cache: &mut FlattenCache,
    live: &LiveValues,
    generation: u64,
) -> Published {
    // The sources as text for this build (inflated where held compressed).
    let texts = source_texts(&inputs.sources);
    let goods: BTreeMap<&str, &str> = texts
        .iter()
        .map(|(name, text)| (name.as_str(), &**text))
        .collect();
    let chains = resolve_chains(&goods);
    let wanted = choose_flattened(opts, &chains);
    if !opts.cache_optimized_templates {
        cache.clear();
    }
    let todo = stale_flattenings(&wanted, &chains, &goods, cache);
    let flattened = flatten_all(&todo, opts.render_workers, |name| {
        flatten_checked(name, &goods)
    });
    cache.update(|name| wanted.contains(name), flattened.results);

    let mut env = Environment::new();
    env.set_fuel(Some(opts.max_fuel));
    let (mut templates, mut compiled) = assemble(&inputs.sources, &texts, &chains, cache);
    let reads = if opts.context.enabled {
        analyse_reads(&compiled)
    } else {
        BTreeMap::new()
    };
    let memory_opts = &opts.memory;
    let mut report = MemoryReport::default();
    if memory_opts.enabled && memory_opts.deduplication {
        report.rewrites = deduplicate(&mut compiled, &chains);
        // The rewritten set is what is held; keeping every flattened source as well would
        // cost more than flattening again after the next change.
        cache.clear();
    }
    report.templates = compiled.len();
    if memory_opts.enabled && memory_opts.lazy_loading {
        (report.pending, report.compressed) =
            compile_lazily(&mut env, compiled, memory_opts.compression);
    } else {
        compile_eagerly(&mut env, compiled, &mut templates);
    }
    set_served_depths(&mut templates);
    let (base_context, interned) = base_context(&opts.context, inputs, live);
    Published {
        env: Arc::new(env),
        base_context: Arc::new(base_context),
        reads,
        interned,
        templates,
        generation,
        memory: report,
        flatten_panics: flattened.panics,
        compiling: Mutex::new(()),
    }
}

/// The text of every template with a version in service.
pub fn source_texts(sources: &BTreeMap<String, Source>) -> Texts {
    sources
        .iter()
        .filter_map(|(name, source)| Some((name.clone(), source.good.as_ref()?.text()?)))
        .collect()
}

/// Stage 1: the chain of every template in `goods` (sources by name); a chain that cannot
/// be resolved is logged.
pub fn resolve_chains<'a>(goods: &BTreeMap<&'a str, &str>) -> Chains<'a> {
    let lookup = |name: &str| goods.get(name).copied();
    goods
        .keys()
        .map(|name| {
            let chain = chain::chain(name, lookup);
            if let Err(error) = &chain {
                log::warn!("templates: {name}: {error}");
            }
            (*name, chain)
        })
        .collect()
}

/// Stage 2: the templates to serve flattened: with `flatten_inheritance`, every template
/// with a parent; without it, the ancestor at `max_inheritance_depth` of each chain
/// deeper than that, so every chain is served at most that deep.
pub fn choose_flattened(opts: &TemplateOpts, chains: &Chains<'_>) -> BTreeSet<String> {
    let mut wanted = BTreeSet::new();
    for chain in chains.values().filter_map(|c| c.as_ref().ok()) {
        if opts.flatten_inheritance {
            if chain.len() > 1 {
                wanted.insert(chain[0].clone());
            }
        } else if chain.len() > opts.max_inheritance_depth {
            wanted.insert(chain[opts.max_inheritance_depth - 1].clone());
        }
    }
    wanted
}

/// A fingerprint of `name`'s chain: its members' names and sources, in order. Any change
/// to a template of the chain changes it.
pub fn fingerprint(name: &str, chains: &Chains<'_>, goods: &BTreeMap<&str, &str>) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    if let Some(Ok(chain)) = chains.get(name) {
        for member in chain {
            hasher.update(member.as_bytes());
            hasher.update(&[0]);
            hasher.update(goods.get(member.as_str()).copied().unwrap_or("").as_bytes());
            hasher.update(&[0]);
        }
    }
    hasher.digest()
}

/// Stage 3: the `wanted` templates whose flattening in `cache` is missing or came from
/// another version of their chain, with their chain's fingerprint.
pub fn stale_flattenings(
    wanted: &BTreeSet<String>,
    chains: &Chains<'_>,
    goods: &BTreeMap<&str, &str>,
    cache: &FlattenCache,
) -> Vec<(String, u64)> {
    wanted
        .iter()
        .map(|name| (name.clone(), fingerprint(name, chains, goods)))
        .filter(|(name, print)| !cache.is_current(name, *print))
        .collect()
}

/// `name` flattened with its chain from `goods`, served only if it compiles (it always
/// should).
pub fn flatten_checked(name: &str, goods: &BTreeMap<&str, &str>) -> Flattening {
    let flat = flatten::flatten(name, |name: &str| goods.get(name).copied())?;
    Environment::new()
        .template_from_named_str(name, &flat)
        .map_err(|error| TemplateError::FlattenedSource {
            message: error.to_string().into(),
        })?;
    Ok(Arc::from(flat))
}

/// What [`flatten_all`] produced.
pub struct Flattened {
    /// Each flattened template's fingerprint and result.
    pub results: Vec<(String, (u64, Flattening))>,
    /// Workers that panicked: their templates have no result.
    pub panics: u64,
}

/// Stage 4: runs `flatten_one` over `todo` on up to `workers` threads. A worker that panics
/// is logged; its templates get no result (they are served unflattened, and flattened
/// again at the next build).
pub fn flatten_all(
    todo: &[(String, u64)],
    workers: usize,
    flatten_one: impl Fn(&str) -> Flattening + Sync,
) -> Flattened {
    let mut flattened = Flattened {
        results: Vec::new(),
        panics: 0,
    };
    if todo.is_empty() {
        return flattened;
    }
    let per_thread = todo.len().div_ceil(workers.max(1));
    let flatten_one = &flatten_one;
    std::thread::scope(|scope| {
        let handles: Vec<_> = todo
            .chunks(per_thread)
            .map(|chunk| {
                let worker = scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, print)| (name.clone(), (*print, flatten_one(name))))
                        .collect::<Vec<_>>()
                });
                (chunk, worker)
            })
            .collect();
        for (chunk, worker) in handles {
            match worker.join() {
                Ok(results) => flattened.results.extend(results),
                Err(panic) => {
                    log::error!(
                        "templates: flattening panicked ({}); {} templates from {} on are \
                         served unflattened",
                        panic_message(panic.as_ref()),
                        chunk.len(),
                        chunk[0].0
                    );
                    flattened.panics += 1;
                }
            }
        }
    });
    flattened
}

/// The message a panic was raised with, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Stage 5: every template's listing, and the source each servable one is compiled from
/// (its flattening when there is one), by name.
pub fn assemble(
    sources: &BTreeMap<String, Source>,
    texts: &Texts,
    chains: &Chains<'_>,
    cache: &FlattenCache,
) -> (BTreeMap<String, TemplateInfo>, Texts) {
    let mut templates = BTreeMap::new();
    // What the environment will hold, by name, before the memory optimizer's rewrites.
    let mut compiled = BTreeMap::new();
    for (name, source) in sources {
        let chain = chains.get(name.as_str());
        let mut info = TemplateInfo {
            name: name.clone(),
            bytes: texts.get(name).map_or(0, |text| text.len()),
            parents: match chain {
                Some(Ok(chain)) => chain[1..].to_vec(),
                _ => Vec::new(),
            },
            state: LoadState::Ok,
            error: source.error.clone(),
            stale: source.error.is_some() && source.good.is_some(),
            served: Served::Original,
            served_depth: 1,
            not_flattened: None,
        };
        let servable = match (chain, texts.get(name)) {
            (Some(Ok(_)), Some(text)) => Some(text.clone()),
            (Some(Err(error)), _) => {
                info.error = Some(error.clone().into());
                info.stale = false;
                None
            }
            _ => None,
        };
        if info.error.is_some() {
            info.state = LoadState::Error;
        }
        if let Some(original) = servable {
            let served = match cache.get(name) {
                Some(Ok(flat)) => {
                    info.served = Served::Flattened;
                    flat.clone()
                }
                Some(Err(reason)) => {
                    info.not_flattened = Some(reason.clone());
                    original
                }
                None => original,
            };
            compiled.insert(name.clone(), served);
        }
        templates.insert(name.clone(), info);
    }
    (templates, compiled)
}

/// Stage 6: the variables each template reads, found with minijinja's own analysis through
/// the chain, includes and imports (the context optimizer's analysis), without globals.
/// Compiles the set once in a scratch environment that is dropped afterwards.
pub fn analyse_reads(sources: &Texts) -> BTreeMap<String, BTreeSet<String>> {
    let mut scratch = Environment::new();
    for (name, source) in sources {
        // A source that does not compile is reported by the compile stage.
        let _ = scratch.add_template_owned(name.clone(), source.to_string());
    }
    sources
        .keys()
        .filter_map(|name| {
            let used = context::variables_used(&scratch, name).ok()?;
            Some((name.clone(), context::without_globals(&scratch, &used)))
        })
        .collect()
}

/// Stage 7: the memory optimizer's rewrites of `compiled`: identical templates become
/// aliases, static text repeated across templates is held once. Layouts (templates others
/// extend) stay whole: they run on every render of every child.
pub fn deduplicate(compiled: &mut Texts, chains: &Chains<'_>) -> memory::Rewrites {
    let (aliases, saved) = memory::dedup_templates(compiled);
    let parents: BTreeSet<String> = chains
        .values()
        .filter_map(|chain| chain.as_ref().ok())
        .flat_map(|chain| chain.iter().skip(1).cloned())
        .collect();
    let sections = memory::dedup_sections(compiled, &parents);
    memory::Rewrites {
        duplicate_templates: aliases,
        source_bytes_saved: sections.source_bytes_saved + saved,
        ..sections
    }
}

/// Stage 8, eager: compiles `compiled` into `env` now; a template that does not compile is
/// marked in error in `templates`.
pub fn compile_eagerly(
    env: &mut Environment<'static>,
    compiled: Texts,
    templates: &mut BTreeMap<String, TemplateInfo>,
) {
    for (name, source) in compiled {
        if let Err(error) = env.add_template_owned(name.clone(), source.to_string())
            && let Some(info) = templates.get_mut(&name)
        {
            info.state = LoadState::Error;
            info.error = Some(TemplateError::syntax(&error));
        }
    }
}

/// Stage 8, lazy: `env` compiles each template of `compiled` on its first use and drops
/// the held copy then; held gzip-compressed with `compress` where that pays. Answers how
/// many are pending and how many of those are compressed.
pub fn compile_lazily(
    env: &mut Environment<'static>,
    compiled: Texts,
    compress: bool,
) -> (usize, usize) {
    let held: HashMap<String, Held> = compiled
        .into_iter()
        .map(|(name, source)| {
            let held = if compress {
                Held::compress(source)
            } else {
                Held::Plain(source)
            };
            (name, held)
        })
        .collect();
    let compressed = held.values().filter(|h| matches!(h, Held::Gzip(_))).count();
    let pending = held.len();
    let held = Mutex::new(held);
    env.set_loader(move |name| {
        let taken = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        Ok(taken.and_then(|held| held.source()))
    });
    (pending, compressed)
}

/// Stage 9: each template's depth as served: up its chain until a template served
/// flattened (or the root).
pub fn set_served_depths(templates: &mut BTreeMap<String, TemplateInfo>) {
    let flat: BTreeSet<String> = templates
        .values()
        .filter(|t| t.served == Served::Flattened)
        .map(|t| t.name.clone())
        .collect();
    for info in templates.values_mut() {
        let mut depth = 1;
        let mut at = info.name.clone();
        for parent in &info.parents {
            if flat.contains(&at) {
                break;
            }
            depth += 1;
            at = parent.clone();
        }
        info.served_depth = depth;
    }
}

/// Stage 10: the variables every render starts from (see [`Published::base_context`]):
/// the global context (its strings interned with the context optimizer's deduplication),
/// the data files (loaded when read with its lazy loading, else now) and the live values;
/// and what interning saved.
pub fn base_context(
    opts: &ContextOptimizerOpts,
    inputs: &Inputs,
    live: &LiveValues,
) -> (Vars, Option<InternerStats>) {
    let interner = (opts.enabled && opts.deduplication).then(Interner::new);
    let mut vars = Vars::new();
    if let Some((_, Ok(global))) = &inputs.context {
        for (name, value) in global {
            let value = match &interner {
                Some(interner) => interner.intern_json(value),
                None => minijinja::Value::from(minijinja::value::Serde(value)),
            };
            vars.insert(name.clone(), Entry::Value(value));
        }
    }
    for (name, (path, _)) in &inputs.data {
        let loader = context::json_file_loader(path.clone());
        let entry = if opts.enabled && opts.lazy_loading {
            let mode = if opts.compression {
                // Nothing held: the file is read on each render that uses it.
                LazyMode::PerRender
            } else {
                LazyMode::Cached
            };
            Entry::Lazy(LazyHandle::new(mode, loader))
        } else {
            match loader() {
                Ok(value) => Entry::Value(value),
                Err(error) => {
                    log::warn!("templates: data variable `{name}`: {error}");
                    continue;
                }
            }
        };
        vars.insert(name.clone(), entry);
    }
    for (name, handle) in live {
        vars.insert(name.clone(), Entry::Lazy(handle.clone()));
    }
    (vars, interner.map(|interner| interner.stats()))
}

#[cfg(test)]
mod tests;
