//! `memory-benchmark`: what leanserve's template optimizers do to memory and render speed,
//! measured on a generated site, every configuration against the baseline in one run.
//!
//! ```text
//! cargo run --release --bin memory-benchmark -- --templates=100 --size=10000 --variables=20 \
//!     --concurrent=10 --iterations=5 --optimizer=true --inheritance-opt=true \
//!     --context-opt=true --pooling=true --tuner=true --inheritance-chain=5 \
//!     --max-inheritance-depth=3 --output=benchmark-report.md [--seed=42]
//! ```
//!
//! Memory is what the allocator holds: this binary's global allocator counts live bytes
//! and their peak. "Retained" is the live bytes after the set is loaded, optimized and
//! every page rendered once, minus the live bytes before loading. Every configuration
//! must render every page byte-for-byte like the baseline, or the run fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use leanserve::TemplateOpts;
use leanserve::internals::TemplatesShared;
use leanserve::internals::context::{self, SharedLayer};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations made (a growing realloc counts as one) and bytes they asked for.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
                ALLOCATED.fetch_add(new_size - layout.size(), Ordering::Relaxed);
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USAGE: &str = "\
memory-benchmark: leanserve's template optimizers against the baseline on a generated site

USAGE:
    memory-benchmark [--templates=100] [--size=10000] [--variables=20] [--concurrent=10]
        [--iterations=5] [--optimizer=true] [--inheritance-opt=true] [--context-opt=true]
        [--pooling=true] [--tuner=true] [--inheritance-chain=5] [--max-inheritance-depth=3]
        [--output=benchmark-report.md] [--seed=42]
";

/// The command line, with the defaults of the issue that asked for this tool.
#[derive(Clone, Debug)]
struct Flags {
    templates: usize,
    size: usize,
    variables: usize,
    concurrent: usize,
    iterations: usize,
    optimizer: bool,
    inheritance_opt: bool,
    context_opt: bool,
    pooling: bool,
    tuner: bool,
    inheritance_chain: usize,
    max_inheritance_depth: usize,
    output: String,
    seed: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            templates: 100,
            size: 10_000,
            variables: 20,
            concurrent: 10,
            iterations: 5,
            optimizer: true,
            inheritance_opt: true,
            context_opt: true,
            pooling: true,
            tuner: true,
            inheritance_chain: 5,
            max_inheritance_depth: 3,
            output: "benchmark-report.md".into(),
            seed: 42,
        }
    }
}

fn parse_flags() -> Result<Option<Flags>, String> {
    use lexopt::prelude::*;
    let mut flags = Flags::default();
    let mut parser = lexopt::Parser::from_env();
    let number = |value: String, flag: &str, min: u64, max: u64| -> Result<u64, String> {
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "--{flag} expects a whole number from {min} to {max}, got {value:?}"
            )),
        }
    };
    let boolean = |value: String, flag: &str| match value.as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("--{flag} expects true or false, got {value:?}")),
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let Long(name) = arg else {
            if let Short('h') = arg {
                return Ok(None);
            }
            return Err(format!(
                "unexpected argument {:?}",
                arg.unexpected().to_string()
            ));
        };
        let name = name.to_owned();
        if name == "help" {
            return Ok(None);
        }
        let value = parser
            .value()
            .map_err(|e| e.to_string())?
            .string()
            .map_err(|_| format!("--{name}: not UTF-8"))?;
        match name.as_str() {
            "templates" => flags.templates = number(value, &name, 1, 100_000)? as usize,
            "size" => flags.size = number(value, &name, 100, 10_000_000)? as usize,
            "variables" => flags.variables = number(value, &name, 0, 1_000)? as usize,
            "concurrent" => flags.concurrent = number(value, &name, 1, 1_024)? as usize,
            "iterations" => flags.iterations = number(value, &name, 1, 1_000)? as usize,
            "optimizer" => flags.optimizer = boolean(value, &name)?,
            "inheritance-opt" => flags.inheritance_opt = boolean(value, &name)?,
            "context-opt" => flags.context_opt = boolean(value, &name)?,
            "pooling" => flags.pooling = boolean(value, &name)?,
            "tuner" => flags.tuner = boolean(value, &name)?,
            "inheritance-chain" => flags.inheritance_chain = number(value, &name, 1, 64)? as usize,
            "max-inheritance-depth" => {
                flags.max_inheritance_depth = number(value, &name, 1, 64)? as usize
            }
            "output" => flags.output = value,
            "seed" => flags.seed = number(value, &name, 0, u64::MAX)?,
            _ => return Err(format!("unknown flag --{name}")),
        }
    }
    Ok(Some(flags))
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn words(&mut self, count: usize) -> String {
        const WORDS: &[&str] = &[
            "lean",
            "serve",
            "memory",
            "budget",
            "cache",
            "actor",
            "supervisor",
            "restart",
            "template",
            "render",
            "layout",
            "section",
            "block",
            "page",
            "report",
            "figure",
        ];
        (0..count)
            .map(|_| WORDS[self.below(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How much of the generated site repeats, stated in the report.
const SHARED_BLOCK_VARIANTS: usize = 3;
const SHARED_VALUE_SHARE: f64 = 0.6;
const DUPLICATE_PAGE_SHARE: usize = 20; // one page in 20 is a copy of another

/// The generated site: sources by name and each page's context.
struct Site {
    sources: BTreeMap<String, String>,
    contexts: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

fn generate(flags: &Flags) -> Site {
    let mut rng = Rng(flags.seed.max(1));
    let mut sources = BTreeMap::new();
    // Layouts: layout0 is the root; each next one extends the previous and adds markup.
    let chrome = |rng: &mut Rng, tag: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("<{tag} class=\"c{i}\">{}</{tag}>\n", rng.words(8)))
            .collect()
    };
    sources.insert(
        "layout0.html".to_owned(),
        format!(
            "<!doctype html>\n<html><head><title>{{% block title %}}{{{{ site }}}}{{% endblock %}}</title>\n{}</head>\n<body>\n<header>{}{{% block nav %}}{}{{% endblock %}}</header>\n<main>{{% block main %}}{{% block content %}}{{% endblock %}}{{% endblock %}}</main>\n<footer>{{% block footer %}}{}{{% endblock %}}</footer>\n</body></html>\n",
            chrome(&mut rng, "meta", 6),
            chrome(&mut rng, "div", 8),
            chrome(&mut rng, "a", 10),
            chrome(&mut rng, "p", 10),
        ),
    );
    for level in 1..flags.inheritance_chain {
        sources.insert(
            format!("layout{level}.html"),
            format!(
                "{{% extends \"layout{}.html\" %}}\n{{% block title %}}L{level} · {{{{ super() }}}}{{% endblock %}}\n{{% block main %}}<section class=\"l{level}\">\n{}{{{{ super() }}}}\n</section>{{% endblock %}}\n",
                level - 1,
                chrome(&mut rng, "div", 4),
            ),
        );
    }
    let top = format!("layout{}.html", flags.inheritance_chain - 1);
    // Blocks that many pages share (a promo box, a sidebar): a few variants.
    let shared_blocks: Vec<String> = (0..SHARED_BLOCK_VARIANTS)
        .map(|_| chrome(&mut rng, "aside", (flags.size / 400).max(1)))
        .collect();
    let mut contexts = BTreeMap::new();
    let shared_values: Vec<String> = (0..flags.variables).map(|_| rng.words(12)).collect();
    let mut pages: Vec<(String, String)> = Vec::new();
    for page in 0..flags.templates {
        let name = format!("pages/page{page:04}.html");
        if page > 0 && page % DUPLICATE_PAGE_SHARE == 0 {
            let (_, copy) = pages[rng.below(pages.len())].clone();
            pages.push((name.clone(), copy.clone()));
            sources.insert(name.clone(), copy);
        } else {
            let mut body = String::new();
            let variables: Vec<String> = (0..flags.variables).map(|v| format!("v{v}")).collect();
            while body.len() < flags.size / 2 {
                let _ = write!(body, "<p>{}", rng.words(10));
                if !variables.is_empty() {
                    let _ = write!(body, " {{{{ {} }}}}", variables[rng.below(variables.len())]);
                }
                body.push_str("</p>\n");
            }
            body.push_str(
                "<ul>{% for item in items %}<li>{{ item | title }}</li>{% endfor %}</ul>\n",
            );
            let shared = &shared_blocks[rng.below(shared_blocks.len())];
            let source = format!(
                "{{% extends \"{top}\" %}}\n{{% block title %}}Page {page} · {{{{ super() }}}}{{% endblock %}}\n{{% block content %}}\n{body}{shared}{{% endblock %}}\n"
            );
            pages.push((name.clone(), source.clone()));
            sources.insert(name.clone(), source);
        }
        let mut context = serde_json::Map::new();
        context.insert("site".into(), "leanserve".into());
        context.insert(
            "items".into(),
            serde_json::json!(["alpha", "beta", "gamma", "delta"]),
        );
        for (v, shared) in shared_values.iter().enumerate() {
            let value = if (rng.below(1000) as f64) < SHARED_VALUE_SHARE * 1000.0 {
                shared.clone()
            } else {
                rng.words(12)
            };
            context.insert(format!("v{v}"), value.into());
        }
        contexts.insert(name, context);
    }
    Site { sources, contexts }
}

/// One configuration of the optimizers.
#[derive(Clone, Copy, Debug)]
struct Setup {
    label: &'static str,
    memory: bool,
    /// Chains deeper than `--max-inheritance-depth` are collapsed (the ancestor at that
    /// depth flattened), as `flatten_inheritance = false` does.
    inheritance: bool,
    /// Every chain flattened into its page (`flatten_inheritance = true`).
    flatten_all: bool,
    context: bool,
    /// Hold sources gzip-compressed (the memory optimizer's `enable_compression`).
    compression: bool,
}

/// What one configuration measured.
struct Measured {
    setup: Setup,
    /// After loading, optimizing and one warm-up render.
    retained: usize,
    /// After every page was rendered (everything lazily compiled is compiled by then).
    steady: usize,
    peak: usize,
    load: Duration,
    renders_per_second: f64,
    /// Median over rounds of this configuration's renders/s divided by the baseline's
    /// in the same round.
    speedup: f64,
    p99: Duration,
    outputs: BTreeMap<String, String>,
    notes: String,
    /// Kept alive for the throughput rounds.
    store: TemplatesShared,
    published: Arc<leanserve::internals::Published>,
    contexts: Contexts,
    pages: Vec<String>,
}

fn opts(flags: &Flags, dir: &Path, setup: Setup) -> TemplateOpts {
    // Every field set here: the benchmark's setups, not the configured defaults.
    let mut opts = leanserve::Opts::default().templates;
    let memory = &mut opts.memory;
    memory.enabled = setup.memory;
    memory.deduplication = true;
    memory.lazy_loading = true;
    memory.compression = setup.compression;
    memory.gc_hints = true;
    let context = &mut opts.context;
    context.enabled = setup.context;
    context.deduplication = true;
    context.lazy_loading = true;
    context.compression = false;
    opts.enabled = true;
    opts.dir = dir.to_owned();
    opts.reload_interval = None;
    opts.render_workers = flags.concurrent.min(8);
    opts.render_nice = 0;
    opts.max_fuel = 100_000_000;
    opts.max_output_bytes = 1 << 30;
    opts.max_context_bytes = 1 << 20;
    opts.max_inheritance_depth = if setup.inheritance {
        flags.max_inheritance_depth
    } else {
        64
    };
    opts.flatten_inheritance = setup.flatten_all;
    opts.cache_optimized_templates = true;
    opts
}

/// The pages' contexts as the benchmark holds them: one map per page, or (context
/// optimizer) one shared layer of the variables most pages hold with the same value,
/// interned, plus what remains per page.
enum Contexts {
    Plain(BTreeMap<String, minijinja::Value>),
    Shared(SharedLayer),
}

impl Contexts {
    fn build(site: &Site, optimized: bool) -> Contexts {
        if optimized {
            Contexts::Shared(context::shared_variables(&site.contexts, 2))
        } else {
            Contexts::Plain(
                site.contexts
                    .iter()
                    .map(|(name, context)| {
                        (
                            name.clone(),
                            minijinja::Value::from(minijinja::value::Serde(context)),
                        )
                    })
                    .collect(),
            )
        }
    }

    /// The context of one render of `page`.
    fn for_page(&self, page: &str) -> minijinja::Value {
        match self {
            Contexts::Plain(contexts) => contexts.get(page).cloned().unwrap_or_default(),
            Contexts::Shared(layer) => layer.context_for(page),
        }
    }
}

fn measure(flags: &Flags, site: &Site, dir: &Path, setup: Setup) -> Result<Measured, String> {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let contexts = Contexts::build(site, setup.context);
    let pages: Vec<&String> = site.contexts.keys().collect();
    let store = TemplatesShared::new(opts(flags, dir, setup), u64::MAX);
    let summary = store.reload_blocking();
    if let Some(failure) = summary.failure {
        return Err(format!("{}: {failure}", setup.label));
    }
    let load = started.elapsed();
    let published = store.published();
    if let Some(broken) = published.templates.values().find(|t| t.error.is_some()) {
        return Err(format!(
            "{}: {} failed to load: {:?}",
            setup.label, broken.name, broken.error
        ));
    }
    let render = |name: &String| {
        store
            .render_in(&published, name, &contexts.for_page(name), false)
            .map(|rendered| String::from_utf8_lossy(&rendered.body).into_owned())
            .map_err(|error| format!("{}: {error}", setup.label))
    };
    // The warm-up: one render of the first page.
    let first = *pages.first().ok_or("no pages")?;
    let warm = render(first)?;
    let retained = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let mut outputs = BTreeMap::new();
    outputs.insert(first.clone(), warm);
    for name in pages.iter().skip(1).copied() {
        outputs.insert(name.clone(), render(name)?);
    }
    // Outputs are the measurement's by-product, not the store's: left out of the count.
    let output_bytes: usize = outputs.values().map(|o| o.capacity()).sum::<usize>()
        + outputs.keys().map(|k| k.capacity()).sum::<usize>();
    let steady = LIVE
        .load(Ordering::Relaxed)
        .saturating_sub(before)
        .saturating_sub(output_bytes);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    let notes = format!(
        "{} duplicate templates, {} shared sections ({} uses), {} compiled lazily",
        published.memory.rewrites.duplicate_templates,
        published.memory.rewrites.shared_sections,
        published.memory.rewrites.section_uses,
        published.memory.pending,
    );
    Ok(Measured {
        setup,
        retained,
        steady,
        peak,
        load,
        renders_per_second: 0.0,
        speedup: 0.0,
        p99: Duration::ZERO,
        outputs,
        notes,
        pages: pages.into_iter().cloned().collect(),
        store,
        published,
        contexts,
    })
}

/// Throughput in rounds: in each of `--iterations` rounds every configuration (in a
/// rotating order, so no configuration always goes first) has `--concurrent` threads
/// render every page once. Fills in each result's median renders/s, its median
/// per-round ratio to the baseline, and the 99th percentile of its single renders.
fn throughput_rounds(flags: &Flags, results: &mut [Measured]) {
    let count = results.len();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); count];
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); count];
    for round in 0..flags.iterations {
        for step in 0..count {
            let index = (round + step) % count;
            let (rate, mut taken) = one_round(flags, &results[index], round);
            rates[index].push(rate);
            latencies[index].append(&mut taken);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let base_rates = rates[0].clone();
    for (index, result) in results.iter_mut().enumerate() {
        let mut ratios: Vec<f64> = rates[index]
            .iter()
            .zip(&base_rates)
            .map(|(rate, base)| rate / base.max(f64::MIN_POSITIVE))
            .collect();
        result.speedup = median(&mut ratios);
        result.renders_per_second = median(&mut rates[index]);
        let taken = &mut latencies[index];
        taken.sort();
        result.p99 = taken
            .get(taken.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default();
    }
}

/// One round for one configuration: renders per second and every render's latency.
fn one_round(flags: &Flags, result: &Measured, round: usize) -> (f64, Vec<Duration>) {
    let names = &result.pages;
    let (store, published, contexts) = (&result.store, &result.published, &result.contexts);
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..flags.concurrent)
            .map(|worker| {
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(names.len());
                    {
                        for offset in 0..names.len() {
                            let name = &names[(offset + worker + round) % names.len()];
                            let started = Instant::now();
                            let rendered =
                                store.render_in(published, name, &contexts.for_page(name), false);
                            latencies.push(started.elapsed());
                            std::hint::black_box(rendered.ok());
                        }
                    }
                    latencies
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed();
    (latencies.len() as f64 / elapsed.as_secs_f64(), latencies)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(flags: &Flags, site: &Site, results: &[Measured], unavailable: &[&str]) -> String {
    let base = &results[0];
    let mut out = String::new();
    let _ = writeln!(out, "# leanserve memory benchmark\n");
    let _ = writeln!(
        out,
        "Flags: `--templates={} --size={} --variables={} --concurrent={} --iterations={} --optimizer={} --inheritance-opt={} --context-opt={} --pooling={} --tuner={} --inheritance-chain={} --max-inheritance-depth={} --seed={}`\n",
        flags.templates,
        flags.size,
        flags.variables,
        flags.concurrent,
        flags.iterations,
        flags.optimizer,
        flags.inheritance_opt,
        flags.context_opt,
        flags.pooling,
        flags.tuner,
        flags.inheritance_chain,
        flags.max_inheritance_depth,
        flags.seed
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        out,
        "Machine: {} {}, {cpus} CPUs; leanserve {}.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    let source_bytes: usize = site.sources.values().map(String::len).sum();
    let _ = writeln!(
        out,
        "Template set: {} templates ({} pages, a chain of {} layouts), {:.2} MB of source. Repetition: every page carries one of {SHARED_BLOCK_VARIANTS} shared blocks (about {}% of a page) and extends the same layouts; one page in {DUPLICATE_PAGE_SHARE} is an exact copy of another; {:.0}% of context values are the same across pages.\n",
        site.sources.len(),
        flags.templates,
        flags.inheritance_chain,
        mb(source_bytes),
        100 * (flags.size / 400).max(1) * 70 / flags.size.max(1),
        SHARED_VALUE_SHARE * 100.0,
    );
    let _ = writeln!(
        out,
        "Memory is what the allocator holds (a counting global allocator): retained = live heap bytes after loading, optimizing and a warm-up render (one render of the first page), minus the bytes live before; \"all rendered\" = the same once every page has been rendered once (so everything compiled lazily is compiled), the rendered outputs left out; peak is the highest live count over the whole span. Contexts are built inside the span. Throughput: {} rounds; in each, every configuration in turn (rotating order) has {} threads render every page once; renders/s is the median over rounds, speedup the median of per-round ratios to the baseline. The inheritance optimizer runs as `flatten_inheritance = false` with chains collapsed to `--max-inheritance-depth` (one flattened ancestor shared by every page); full flattening of every chain is its own row.\n",
        flags.iterations, flags.concurrent
    );
    let _ = writeln!(
        out,
        "| configuration | retained MB | vs baseline | all rendered MB | vs baseline | peak MB | load+optimize ms | renders/s | speedup | p99 ms | notes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for result in results {
        let reduction = 1.0 - result.retained as f64 / base.retained.max(1) as f64;
        let versus = |reduction: f64| {
            if std::ptr::eq(result, base) {
                "—".to_owned()
            } else if reduction >= 0.0 {
                format!("{:.1}% less", reduction * 100.0)
            } else {
                format!("{:.1}% more", -reduction * 100.0)
            }
        };
        let steady_reduction = 1.0 - result.steady as f64 / base.steady.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {:.2} | {} | {:.2} | {:.1} | {:.0} | {:.2}x | {:.3} | {} |",
            result.setup.label,
            mb(result.retained),
            versus(reduction),
            mb(result.steady),
            versus(steady_reduction),
            mb(result.peak),
            result.load.as_secs_f64() * 1000.0,
            result.renders_per_second,
            result.speedup,
            result.p99.as_secs_f64() * 1000.0,
            result.notes,
        );
    }
    let _ = writeln!(
        out,
        "\nEvery configuration rendered all {} pages byte-for-byte like the baseline.",
        base.outputs.len()
    );
    if results
        .iter()
        .any(|r| r.setup.flatten_all && r.steady > base.steady)
    {
        let _ = writeln!(
            out,
            "\nFull flattening costs memory: each flattened page carries its own copy of the layouts' content (it buys render speed instead)."
        );
    }
    for name in unavailable {
        let _ = writeln!(
            out,
            "\n`--{name}=true`: not measured: that subsystem does not exist in this version of leanserve."
        );
    }
    out
}

fn main() -> ExitCode {
    let flags = match parse_flags() {
        Ok(Some(flags)) => flags,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("memory-benchmark: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let unavailable = Vec::new();
    let unavailable: Vec<&str> = unavailable;
    let site = generate(&flags);
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("memory-benchmark: cannot create a temporary folder: {error}");
            return ExitCode::FAILURE;
        }
    };
    for (name, source) in &site.sources {
        let path = dir.path().join(name);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, source));
        if let Err(error) = written {
            eprintln!("memory-benchmark: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let mut setups = vec![Setup {
        label: "baseline (every optimizer off)",
        memory: false,
        inheritance: false,
        flatten_all: false,
        context: false,
        compression: false,
    }];
    let off = Setup {
        label: "",
        memory: false,
        inheritance: false,
        flatten_all: false,
        context: false,
        compression: false,
    };
    if flags.inheritance_opt {
        setups.push(Setup {
            label: "inheritance optimizer alone (collapse to max depth)",
            inheritance: true,
            ..off
        });
        setups.push(Setup {
            label: "inheritance optimizer alone (flatten every chain)",
            inheritance: true,
            flatten_all: true,
            ..off
        });
    }
    if flags.optimizer {
        setups.push(Setup {
            label: "memory optimizer alone",
            memory: true,
            compression: true,
            ..off
        });
        setups.push(Setup {
            label: "memory optimizer alone, without compression",
            memory: true,
            ..off
        });
    }
    if flags.context_opt {
        setups.push(Setup {
            label: "context optimizer alone (shared variables)",
            context: true,
            ..off
        });
    }
    setups.push(Setup {
        label: "all together",
        memory: flags.optimizer,
        inheritance: flags.inheritance_opt,
        flatten_all: false,
        context: flags.context_opt,
        compression: flags.optimizer,
    });
    let mut results: Vec<Measured> = Vec::new();
    for setup in setups {
        eprintln!("memory-benchmark: measuring {}", setup.label);
        match measure(&flags, &site, dir.path(), setup) {
            Ok(measured) => {
                if let Some(base) = results.first() {
                    for (name, expected) in &base.outputs {
                        if measured.outputs.get(name) != Some(expected) {
                            eprintln!(
                                "memory-benchmark: FAILED: {} renders {name} differently from the baseline",
                                setup.label
                            );
                            return ExitCode::FAILURE;
                        }
                    }
                }
                results.push(measured);
            }
            Err(message) => {
                eprintln!("memory-benchmark: FAILED: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("memory-benchmark: throughput, {} rounds", flags.iterations);
    throughput_rounds(&flags, &mut results);
    let mut text = report(&flags, &site, &results, &unavailable);
    if flags.tuner {
        eprintln!("memory-benchmark: tuner");
        match tuning::report() {
            Ok(section) => text.push_str(&section),
            Err(message) => {
                eprintln!("memory-benchmark: FAILED: tuner: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    if flags.pooling {
        eprintln!("memory-benchmark: pooling");
        match pooling::report() {
            Ok(section) => text.push_str(&section),
            Err(message) => {
                eprintln!("memory-benchmark: FAILED: pooling: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{text}");
    if let Err(error) = std::fs::write(&flags.output, &text) {
        eprintln!("memory-benchmark: cannot write {}: {error}", flags.output);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `--pooling=true`: what the resource pools change, measured with the counting
/// allocator, pools off (every use makes its state) against pools on, in one process.
mod pooling {
    use super::{ALLOCATED, ALLOCATIONS, LIVE, PEAK, mb};
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;

    use leanserve::Opts;
    use leanserve::internals::TemplatesShared;
    use leanserve::internals::{BUFFER_POOL, BufferManager, Resources};
    use leanserve::internals::{Codecs, GZIP_POOL, GzipManager, INFLATE_POOL, InflateManager};
    use leanserve::{Pool, PoolSpec};

    /// Operations measured per row.
    const OPS: usize = 200;
    /// Concurrent misses in the cold burst.
    const BURST: usize = 256;

    /// A compressible 35 KB stylesheet, different per `seed`.
    fn stylesheet(seed: usize) -> Vec<u8> {
        let mut css = String::new();
        let mut i = 0;
        while css.len() < 35_000 {
            let _ = writeln!(
                css,
                ".c{seed}-{i} {{ color: #{:06x}; margin: {}px {}px; }}",
                (seed * 7919 + i * 104_729) % 0xff_ffff,
                i % 17,
                i % 5
            );
            i += 1;
        }
        css.into_bytes()
    }

    /// (allocations, bytes allocated) per call of `op`, over `OPS` calls after one
    /// warm-up call.
    fn per_op(mut op: impl FnMut()) -> (f64, f64) {
        op();
        let (count, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            ALLOCATED.load(Ordering::Relaxed),
        );
        for _ in 0..OPS {
            op();
        }
        (
            (ALLOCATIONS.load(Ordering::Relaxed) - count) as f64 / OPS as f64,
            (ALLOCATED.load(Ordering::Relaxed) - bytes) as f64 / OPS as f64,
        )
    }

    fn codecs() -> Codecs {
        Codecs::pooled(
            Pool::new(GZIP_POOL, PoolSpec::new(2), GzipManager).expect("valid spec"),
            Pool::new(INFLATE_POOL, PoolSpec::new(2), InflateManager).expect("valid spec"),
        )
    }

    /// One cold burst: `BURST` concurrent misses of distinct compressible files through
    /// a real runtime. Answers (peak MB over the live bytes before, MB retained after).
    fn burst(root: &std::path::Path, pools: bool) -> Result<(f64, f64), String> {
        let mut opts = Opts::default();
        opts.static_files.root_dir = root.to_owned();
        opts.static_files.max_cache_size = 256 << 20;
        opts.static_files.store = leanserve::Store::CompressedOnly;
        opts.templates.enabled = false;
        opts.monitoring.enabled = false;
        opts.profiler.heap_profiling = false;
        opts.pools.enabled = pools;
        actix_rt::System::new().block_on(async move {
            let subsystems = leanserve::Runtime::new(opts)
                .start()
                .await
                .map_err(|error| error.to_string())?;
            let before = LIVE.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            let loads = (0..BURST)
                .map(|n| leanserve::internals::load_file(&subsystems, format!("f{n}.css")));
            for result in futures_util::future::join_all(loads).await {
                match result {
                    Ok(Ok(leanserve::internals::Found::File(_))) => {}
                    other => return Err(format!("a burst load failed: {other:?}")),
                }
            }
            let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
            let retained = LIVE.load(Ordering::Relaxed).saturating_sub(before);
            subsystems.shutdown().await;
            Ok((mb(peak), mb(retained)))
        })
    }

    pub fn report() -> Result<String, String> {
        let css = stylesheet(0);
        let direct = Codecs::direct();
        let pooled = codecs();
        let gzip_direct = per_op(|| {
            std::hint::black_box(direct.gzip_if_smaller(&css));
        });
        let gzip_pooled = per_op(|| {
            std::hint::black_box(pooled.gzip_if_smaller(&css));
        });
        let gzipped = direct
            .gzip_if_smaller(&css)
            .ok_or("the stylesheet does not compress")?;
        let inflate_direct = per_op(|| {
            std::hint::black_box(direct.inflate(&gzipped, css.len() as u64).ok());
        });
        let inflate_pooled = per_op(|| {
            std::hint::black_box(pooled.inflate(&gzipped, css.len() as u64).ok());
        });

        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        std::fs::write(
            dir.path().join("page.html"),
            "<ul>{% for i in range(600) %}<li class=\"row\">item {{ i }}: {{ title }}</li>\n{% endfor %}</ul>",
        )
        .map_err(|error| error.to_string())?;
        let mut template_opts = Opts::default().templates;
        template_opts.dir = dir.path().to_owned();
        let plain = TemplatesShared::new(template_opts.clone(), 1024);
        let resources = Resources {
            codecs: codecs(),
            buffers: Some(
                Pool::new(BUFFER_POOL, PoolSpec::new(2), BufferManager).expect("valid spec"),
            ),
        };
        let with_pools = TemplatesShared::with_resources(template_opts, 1024, resources);
        plain.reload_blocking();
        with_pools.reload_blocking();
        let context = minijinja::context! { title => "pooled" };
        let (plain_set, pooled_set) = (plain.published(), with_pools.published());
        // Render speed, pools off and on in alternating rounds (gzip copy included).
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..7 {
            for pooled_first in [round % 2 == 0, round % 2 != 0] {
                let (store, set) = if pooled_first {
                    (&with_pools, &pooled_set)
                } else {
                    (&plain, &plain_set)
                };
                let started = std::time::Instant::now();
                for _ in 0..OPS {
                    let rendered = store.render_in(set, "page.html", &context, true);
                    std::hint::black_box(rendered.expect("the page renders"));
                }
                rates[usize::from(pooled_first)].push(OPS as f64 / started.elapsed().as_secs_f64());
            }
        }
        for rate in &mut rates {
            rate.sort_by(f64::total_cmp);
        }
        let (rate_off, rate_on) = (rates[0][rates[0].len() / 2], rates[1][rates[1].len() / 2]);
        let render_direct = per_op(|| {
            let rendered = plain.render_in(&plain_set, "page.html", &context, true);
            std::hint::black_box(rendered.expect("the page renders"));
        });
        let render_pooled = per_op(|| {
            let rendered = with_pools.render_in(&pooled_set, "page.html", &context, true);
            std::hint::black_box(rendered.expect("the page renders"));
        });

        let site = tempfile::tempdir().map_err(|error| error.to_string())?;
        for n in 0..BURST {
            std::fs::write(site.path().join(format!("f{n}.css")), stylesheet(n))
                .map_err(|error| error.to_string())?;
        }
        let mut bursts = Vec::new();
        for round in 0..3 {
            // Alternate which configuration goes first.
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for pools in order {
                bursts.push((pools, burst(site.path(), pools)?));
            }
        }
        let median = |pools: bool, pick: fn(&(f64, f64)) -> f64| {
            let mut values: Vec<f64> = bursts
                .iter()
                .filter(|(p, _)| *p == pools)
                .map(|(_, figures)| pick(figures))
                .collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };

        let mut out = String::from("\n## Resource pools\n\n");
        let _ = writeln!(
            out,
            "Counting allocator, pools off (every use makes its own deflate/inflate state and output buffer) against pools on (state kept in a pool and reset), {OPS} operations after one warm-up, in one process. gzip: a 35 KB stylesheet at level 6; inflate: its gzip bytes back (compressed-only store, client without gzip); render: a 21 KB page rendered with its gzip copy.\n"
        );
        let _ = writeln!(
            out,
            "| operation | allocations, pools off | allocations, pools on | KiB allocated, pools off | KiB allocated, pools on | bytes change |\n|---|---|---|---|---|---|"
        );
        for (name, off, on) in [
            ("gzip (one compression)", gzip_direct, gzip_pooled),
            (
                "inflate (one identity response)",
                inflate_direct,
                inflate_pooled,
            ),
            ("template render with gzip", render_direct, render_pooled),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1}% |",
                off.0,
                on.0,
                off.1 / 1024.0,
                on.1 / 1024.0,
                (on.1 / off.1 - 1.0) * 100.0
            );
        }
        let _ = writeln!(
            out,
            "\nRender speed, the same page with its gzip copy, 7 rounds of {OPS} renders alternating which goes first, medians: pools off {rate_off:.0} renders/s, pools on {rate_on:.0} renders/s ({:.2}x).",
            rate_on / rate_off
        );
        let (off_peak, on_peak) = (median(false, |f| f.0), median(true, |f| f.0));
        let (off_retained, on_retained) = (median(false, |f| f.1), median(true, |f| f.1));
        let (off_work, on_work) = (median(false, |f| f.0 - f.1), median(true, |f| f.0 - f.1));
        let _ = writeln!(
            out,
            "\nCold burst: {BURST} concurrent misses of distinct 35 KB stylesheets through a real runtime (compressed-only store, system allocator), 3 rounds alternating order, medians. Peak is the highest live heap over the burst, above the live bytes before it; retained is what the cache (and, pools on, the idle compressors and inflaters) hold after; working memory is peak minus retained, what the burst needed on top of what it keeps.\n"
        );
        let _ = writeln!(
            out,
            "| cold burst of {BURST} misses | peak MB | retained MB | working memory MB |\n|---|---|---|---|\n| pools off | {:.2} | {:.2} | {:.2} |\n| pools on | {:.2} | {:.2} | {:.2} |\n| ratio (off / on) | {:.1}x | | {:.1}x |",
            off_peak,
            off_retained,
            off_work,
            on_peak,
            on_retained,
            on_work,
            off_peak / on_peak.max(f64::EPSILON),
            off_work / on_work.max(0.01)
        );
        Ok(out)
    }
}

/// `--tuner=true`: the tuner against a cache that would outgrow a memory limit.
mod tuning {
    use std::fmt::Write as _;

    use leanserve::{Opts, Store, TunerMode};

    /// Files loaded, 64 KiB each and incompressible: 96 MiB in all.
    const FILES: usize = 1536;
    const FILE_BYTES: usize = 64 << 10;

    fn rss() -> u64 {
        leanserve::internals::current_rss().unwrap_or(0)
    }

    struct Run {
        max_rss: u64,
        budget_after: u64,
        cached_after: u64,
        hits: u64,
        changes: Vec<String>,
    }

    /// Loads every file twice (the second pass measures what stayed cached); when
    /// `tuned`, a tuning round (applied) every 128 loads stands for the tuner's interval.
    fn run(root: &std::path::Path, limit: u64, tuned: bool) -> Result<Run, String> {
        let mut opts = Opts::default();
        opts.static_files.root_dir = root.to_owned();
        opts.static_files.max_cache_size = 512 << 20;
        opts.static_files.store = Store::Both;
        opts.templates.enabled = false;
        opts.monitoring.enabled = false;
        opts.tuner.mode = if tuned {
            TunerMode::Recommend
        } else {
            TunerMode::Off
        };
        opts.tuner.memory_limit = Some(limit);
        opts.tuner.cache_ceiling = opts.static_files.max_cache_size;
        actix_rt::System::new().block_on(async move {
            let subsystems = leanserve::Runtime::new(opts)
                .start()
                .await
                .map_err(|error| error.to_string())?;
            let mut max_rss = rss();
            for pass in 0..2 {
                for n in 0..FILES {
                    if tuned && n % 128 == 0 {
                        let _ = subsystems.sample_process().await;
                        let _ = subsystems.tune(true).await;
                    }
                    if leanserve::internals::files(&subsystems)
                        .lookup(&format!("f{n}.bin"))
                        .is_some()
                    {
                        if pass == 1 {
                            leanserve::internals::files(&subsystems).record_hit();
                        }
                    } else {
                        leanserve::internals::load_file(&subsystems, format!("f{n}.bin"))
                            .await
                            .map_err(|error| error.to_string())?
                            .map_err(|error| error.to_string())?;
                    }
                    max_rss = max_rss.max(rss());
                }
            }
            let stats = subsystems.cache_stats().await.map_err(|e| e.to_string())?;
            let changes = subsystems
                .tuner_decisions()
                .iter()
                .map(|d| {
                    format!(
                        "{} {} -> {} ({})",
                        d.knob, d.from as u64, d.to as u64, d.reason
                    )
                })
                .collect();
            subsystems.shutdown().await;
            Ok(Run {
                max_rss,
                budget_after: stats.budget_bytes,
                cached_after: stats.bytes_cached,
                hits: stats.cache_hits,
                changes,
            })
        })
    }

    pub fn report() -> Result<String, String> {
        let site = tempfile::tempdir().map_err(|error| error.to_string())?;
        for n in 0..FILES {
            let bytes: Vec<u8> = (0..FILE_BYTES / 8)
                .flat_map(|i| {
                    xxhash_rust::xxh3::xxh3_64(&((n * FILE_BYTES + i) as u64).to_le_bytes())
                        .to_le_bytes()
                })
                .collect();
            std::fs::write(site.path().join(format!("f{n}.bin")), bytes)
                .map_err(|error| error.to_string())?;
        }
        let baseline = rss();
        // A limit the files could exceed: what this process holds now plus 64 MiB.
        let limit = baseline + (64 << 20);
        let tuned = run(site.path(), limit, true)?;
        let untuned = run(site.path(), limit, false)?;
        let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        let mut out = String::from("\n## Tuner\n\n");
        let _ = writeln!(
            out,
            "{FILES} incompressible files of {} KiB ({:.0} MiB) loaded twice through a real runtime with a 512 MiB cache budget, against a memory limit of {:.0} MiB (this process's RSS before, {:.0} MiB, plus 64 MiB; the tuner keeps RSS under 85% of it). Tuned: a tuning round, applied, every 128 loads. RSS read from /proc/self/status after every load.\n",
            FILE_BYTES >> 10,
            mb((FILES * FILE_BYTES) as u64),
            mb(limit),
            mb(baseline)
        );
        let _ = writeln!(
            out,
            "| run | max RSS MiB | vs limit | cache budget after MiB | cached after MiB | second-pass hits |\n|---|---|---|---|---|---|"
        );
        for (name, run) in [("untuned", &untuned), ("tuned", &tuned)] {
            let _ = writeln!(
                out,
                "| {name} | {:.1} | {:+.1}% | {:.1} | {:.1} | {} |",
                mb(run.max_rss),
                (run.max_rss as f64 / limit as f64 - 1.0) * 100.0,
                mb(run.budget_after),
                mb(run.cached_after),
                run.hits
            );
        }
        let _ = writeln!(out, "\nWhat the tuner changed:\n");
        if tuned.changes.is_empty() {
            let _ = writeln!(out, "- nothing");
        }
        for change in &tuned.changes {
            let _ = writeln!(out, "- {change}");
        }
        Ok(out)
    }
}
