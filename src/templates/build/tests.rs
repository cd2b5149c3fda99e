//! Each build stage on in-memory sources, then whole builds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::config::MemoryOptimizerOpts;
use crate::templates::inputs::Stamp;

/// Options with every optimizer off, chains served as they are.
fn opts() -> TemplateOpts {
    TemplateOpts {
        memory: MemoryOptimizerOpts {
            enabled: false,
            deduplication: false,
            lazy_loading: false,
            compression: false,
            gc_hints: false,
        },
        context: ContextOptimizerOpts {
            enabled: false,
            deduplication: false,
            lazy_loading: false,
            compression: false,
        },
        enabled: true,
        dir: PathBuf::from("templates"),
        reload_interval: None,
        render_workers: 2,
        render_nice: 0,
        max_fuel: 1_000_000,
        max_output_bytes: 1 << 20,
        max_context_bytes: 1 << 16,
        max_inheritance_depth: 64,
        flatten_inheritance: false,
        cache_optimized_templates: true,
    }
}

const STAMP: Stamp = Stamp {
    len: 0,
    modified: None,
};

/// Inputs holding `templates` (name, source), each in service.
fn inputs(templates: &[(&str, &str)]) -> Inputs {
    Inputs {
        sources: templates
            .iter()
            .map(|(name, source)| {
                let source = Source {
                    stamp: STAMP,
                    good: Some(Held::Plain(Arc::from(*source))),
                    error: None,
                };
                (name.to_string(), source)
            })
            .collect(),
        ..Inputs::default()
    }
}

/// A three-level site: `page.html` extends `layout.html` extends `base.html`.
const SITE: [(&str, &str); 4] = [
    (
        "base.html",
        "<html>{% block body %}base{% endblock %}</html>",
    ),
    (
        "layout.html",
        "{% extends \"base.html\" %}{% block body %}<main>{% block main %}{% endblock %}</main>{% endblock %}",
    ),
    (
        "page.html",
        "{% extends \"layout.html\" %}{% block main %}{{ title }}{% endblock %}",
    ),
    ("alone.txt", "{{ greeting }}"),
];

fn goods<'a>(texts: &'a [(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    texts.iter().copied().collect()
}

fn render(published: &Published, name: &str, context: serde_json::Value) -> String {
    published
        .env
        .get_template(name)
        .unwrap()
        .render(minijinja::Value::from(minijinja::value::Serde(&context)))
        .unwrap()
}

#[test]
fn build_resolve_chains_lists_each_chain_or_its_error() {
    let mut texts = SITE.to_vec();
    texts.push(("orphan.html", "{% extends \"nowhere.html\" %}"));
    let goods = goods(&texts);
    let chains = resolve_chains(&goods);
    assert_eq!(
        chains["page.html"].as_ref().unwrap(),
        &["page.html", "layout.html", "base.html"]
    );
    assert_eq!(chains["alone.txt"].as_ref().unwrap(), &["alone.txt"]);
    assert!(matches!(
        chains["orphan.html"],
        Err(ChainError::MissingParent { .. })
    ));
}

#[test]
fn build_choose_flattened_takes_every_child_or_the_ancestor_at_the_depth_limit() {
    let goods = goods(&SITE);
    let chains = resolve_chains(&goods);
    let flatten_all = TemplateOpts {
        flatten_inheritance: true,
        ..opts()
    };
    let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(choose_flattened(&flatten_all, &chains)),
        ["layout.html", "page.html"]
    );
    let collapse = TemplateOpts {
        max_inheritance_depth: 2,
        ..opts()
    };
    assert_eq!(
        names(choose_flattened(&collapse, &chains)),
        ["layout.html"],
        "the page's chain of 3 is served 2 deep through its flattened layout"
    );
    assert!(choose_flattened(&opts(), &chains).is_empty());
}

#[test]
fn build_stale_flattenings_skip_what_the_cache_holds_for_the_same_chain() {
    let goods_before = goods(&SITE);
    let chains = resolve_chains(&goods_before);
    let wanted: BTreeSet<String> = ["layout.html".into(), "page.html".into()].into();
    let mut cache = FlattenCache::default();
    let todo = stale_flattenings(&wanted, &chains, &goods_before, &cache);
    assert_eq!(todo.len(), 2, "nothing cached yet");
    let computed = todo
        .iter()
        .map(|(name, print)| (name.clone(), (*print, Ok(Arc::from("flat")))))
        .collect();
    cache.update(|_| true, computed);
    assert!(stale_flattenings(&wanted, &chains, &goods_before, &cache).is_empty());

    // A change to the root changes both chains' fingerprints.
    let mut changed = SITE.to_vec();
    changed[0].1 = "<html>{% block body %}new{% endblock %}</html>";
    let goods_after = goods(&changed);
    let todo = stale_flattenings(&wanted, &chains, &goods_after, &cache);
    assert_eq!(todo.len(), 2, "{todo:?}");
}

#[test]
fn build_flatten_checked_serves_only_compiling_flattenings() {
    let goods = goods(&SITE);
    let flat = flatten_checked("page.html", &goods).unwrap();
    assert!(!flat.contains("extends"), "{flat}");
    let dynamic = [("dyn.html", "{% extends parent %}")];
    assert!(matches!(
        flatten_checked("dyn.html", &self::goods(&dynamic)),
        Err(TemplateError::Unflattenable { .. })
    ));
}

#[test]
fn build_flatten_all_logs_and_counts_a_panicking_worker() {
    let todo: Vec<(String, u64)> = (0..4).map(|i| (format!("t{i}.html"), i)).collect();
    let calls = AtomicUsize::new(0);
    let flattened = flatten_all(&todo, 2, |name| {
        calls.fetch_add(1, Ordering::Relaxed);
        if name == "t0.html" {
            panic!("flattener bug");
        }
        Ok(Arc::from(name))
    });
    assert_eq!(flattened.panics, 1);
    let names: Vec<&str> = flattened.results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["t2.html", "t3.html"],
        "the panicking worker's chunk has no result; the other worker's stays"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(flatten_all(&[], 2, |_| unreachable!()).panics, 0);
}

#[test]
fn build_assemble_lists_errors_and_serves_flattenings() {
    let mut inputs = inputs(&SITE);
    inputs.sources.insert(
        "broken.html".into(),
        Source {
            stamp: STAMP,
            good: Some(Held::Plain(Arc::from("old"))),
            error: Some(TemplateError::NotUtf8),
        },
    );
    inputs.sources.insert(
        "orphan.html".into(),
        Source {
            stamp: STAMP,
            good: Some(Held::Plain(Arc::from("{% extends \"nowhere.html\" %}"))),
            error: None,
        },
    );
    let texts = source_texts(&inputs.sources);
    let goods: BTreeMap<&str, &str> = texts.iter().map(|(n, t)| (n.as_str(), &**t)).collect();
    let chains = resolve_chains(&goods);
    let mut cache = FlattenCache::default();
    let refused = TemplateError::Unflattenable {
        reason: "no".into(),
    };
    cache.update(
        |_| true,
        vec![
            ("page.html".into(), (1, Ok(Arc::from("FLAT")))),
            ("layout.html".into(), (2, Err(refused.clone()))),
        ],
    );
    let (templates, compiled) = assemble(&inputs.sources, &texts, &chains, &cache);

    assert_eq!(templates["page.html"].served, Served::Flattened);
    assert_eq!(&*compiled["page.html"], "FLAT");
    assert_eq!(templates["page.html"].parents, ["layout.html", "base.html"]);
    assert_eq!(templates["layout.html"].not_flattened, Some(refused));
    assert_eq!(&*compiled["layout.html"], SITE[1].1);
    let broken = &templates["broken.html"];
    assert_eq!((broken.state, broken.stale), (LoadState::Error, true));
    assert_eq!(&*compiled["broken.html"], "old", "the good version serves");
    let orphan = &templates["orphan.html"];
    assert!(matches!(orphan.error, Some(TemplateError::Chain(_))));
    assert_eq!((orphan.state, orphan.stale), (LoadState::Error, false));
    assert!(!compiled.contains_key("orphan.html"));
}

#[test]
fn build_analyse_reads_follows_chains_without_globals() {
    let texts: Texts = SITE
        .iter()
        .map(|(name, source)| (name.to_string(), Arc::from(*source)))
        .collect();
    let reads = analyse_reads(&texts);
    assert_eq!(reads["page.html"], BTreeSet::from(["title".to_owned()]));
    assert_eq!(reads["alone.txt"], BTreeSet::from(["greeting".to_owned()]));
    assert!(reads["base.html"].is_empty());
}

#[test]
fn build_deduplicate_aliases_copies_and_keeps_layouts_whole() {
    let footer = format!("<footer>{}</footer>", "links ".repeat(60));
    let layout = format!("<html>{footer}{{% block body %}}{{% endblock %}}</html>");
    let page = format!("{{% extends \"layout.html\" %}}{{% block body %}}{footer}{{% endblock %}}");
    let sources = [
        ("layout.html", layout.as_str()),
        ("a.html", page.as_str()),
        ("b.html", page.as_str()),
        ("c.html", &*format!("{{% if x %}}{footer}{{% endif %}}")),
    ];
    let goods = goods(&sources);
    let chains = resolve_chains(&goods);
    let mut compiled: Texts = sources
        .iter()
        .map(|(name, source)| (name.to_string(), Arc::from(*source)))
        .collect();
    let rewrites = deduplicate(&mut compiled, &chains);
    assert_eq!(rewrites.duplicate_templates, 1);
    assert_eq!(&*compiled["b.html"], "{% extends \"a.html\" %}");
    assert_eq!(rewrites.shared_sections, 1, "{rewrites:?}");
    assert_eq!(&*compiled["layout.html"], layout, "a layout stays whole");
}

#[test]
fn build_compile_eagerly_marks_what_does_not_compile() {
    let goods = goods(&SITE);
    let chains = resolve_chains(&goods);
    let texts: Texts = [
        ("ok.txt".to_owned(), Arc::from("fine")),
        ("bad.txt".to_owned(), Arc::from("{% if %}")),
    ]
    .into();
    let sources = inputs(&[("ok.txt", "fine"), ("bad.txt", "{% if %}")]).sources;
    let (mut templates, _) = assemble(&sources, &texts, &chains, &FlattenCache::default());
    let mut env = Environment::new();
    compile_eagerly(&mut env, texts, &mut templates);
    assert_eq!(templates["ok.txt"].state, LoadState::Ok);
    assert_eq!(templates["bad.txt"].state, LoadState::Error);
    assert!(matches!(
        templates["bad.txt"].error,
        Some(TemplateError::Syntax { line: Some(line), .. }) if line.get() == 1
    ));
    assert!(env.get_template("ok.txt").is_ok());
}

#[test]
fn build_compile_lazily_compiles_on_first_use_from_compressed_sources() {
    let long = "<p>{{ x }}</p>\n".repeat(50);
    let texts: Texts = [
        ("long.html".to_owned(), Arc::from(long.as_str())),
        ("short.txt".to_owned(), Arc::from("hi")),
    ]
    .into();
    let mut env = Environment::new();
    assert_eq!(compile_lazily(&mut env, texts, true), (2, 1));
    let rendered = env
        .get_template("long.html")
        .unwrap()
        .render(minijinja::context! { x => 1 })
        .unwrap();
    assert_eq!(rendered, "<p>1</p>\n".repeat(50).trim_end());
    assert!(env.get_template("short.txt").is_ok());
}

#[test]
fn build_set_served_depths_stop_at_a_flattened_template() {
    let info = |name: &str, parents: &[&str], served: Served| TemplateInfo {
        name: name.into(),
        bytes: 0,
        parents: parents.iter().map(|p| p.to_string()).collect(),
        state: LoadState::Ok,
        error: None,
        stale: false,
        served,
        served_depth: 0,
        not_flattened: None,
    };
    let mut templates: BTreeMap<String, TemplateInfo> = [
        info("base", &[], Served::Original),
        info("layout", &["base"], Served::Flattened),
        info("page", &["layout", "base"], Served::Original),
        info("plain", &["layout", "base"], Served::Flattened),
    ]
    .into_iter()
    .map(|info| (info.name.clone(), info))
    .collect();
    set_served_depths(&mut templates);
    let depth = |name: &str| templates[name].served_depth;
    assert_eq!(
        (
            depth("base"),
            depth("layout"),
            depth("page"),
            depth("plain")
        ),
        (1, 1, 2, 1)
    );
}

#[test]
fn build_base_context_layers_global_data_and_live_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("menu.json");
    std::fs::write(&data, r#"{"items": ["a"]}"#).unwrap();
    let long = "a string long enough to be interned, twice".to_owned();
    let mut inputs = inputs(&[]);
    let global = serde_json::json!({"one": long, "two": long, "n": 1});
    let serde_json::Value::Object(global) = global else {
        unreachable!()
    };
    inputs.context = Some((STAMP, Ok(global)));
    inputs.data.insert("menu".into(), (data, STAMP));
    let live: LiveValues = [(
        "stats".to_owned(),
        LazyHandle::new(LazyMode::PerRender, context::fn_loader(|| 7)),
    )]
    .into();

    let eager = ContextOptimizerOpts {
        enabled: false,
        deduplication: false,
        lazy_loading: false,
        compression: false,
    };
    let (vars, interned) = base_context(&eager, &inputs, &live);
    assert!(interned.is_none());
    assert!(matches!(vars["menu"], Entry::Value(_)), "read now");
    assert!(
        matches!(vars["stats"], Entry::Lazy(_)),
        "live values stay lazy"
    );

    let optimized = ContextOptimizerOpts {
        enabled: true,
        deduplication: true,
        lazy_loading: true,
        compression: false,
    };
    let (vars, interned) = base_context(&optimized, &inputs, &live);
    assert_eq!(interned.map(|stats| stats.hits), Some(1));
    match &vars["menu"] {
        Entry::Lazy(handle) => assert_eq!(handle.mode(), LazyMode::Cached),
        Entry::Value(_) => panic!("data files load when read"),
    }
    assert_eq!(vars.len(), 5);
}

#[test]
fn build_renders_every_template_and_numbers_the_generation() {
    let inputs = inputs(&SITE);
    let mut cache = FlattenCache::default();
    let context = serde_json::json!({"title": "T", "greeting": "hi"});
    let plain = build(&opts(), &inputs, &mut cache, &LiveValues::new(), 7);
    assert_eq!(plain.generation, 7);
    assert_eq!(plain.flattened(), 0);
    assert_eq!(plain.templates["page.html"].served_depth, 3);

    let optimized_opts = TemplateOpts {
        flatten_inheritance: true,
        memory: MemoryOptimizerOpts {
            enabled: true,
            deduplication: true,
            lazy_loading: true,
            compression: true,
            gc_hints: false,
        },
        ..opts()
    };
    let optimized = build(&optimized_opts, &inputs, &mut cache, &LiveValues::new(), 8);
    assert_eq!(optimized.flattened(), 2);
    assert_eq!(optimized.templates["page.html"].served_depth, 1);
    assert_eq!(optimized.memory.pending, 4);
    assert_eq!(optimized.flatten_panics, 0);
    assert_eq!(
        cache.source_bytes(),
        0,
        "deduplication drops the flattenings"
    );
    for (name, _) in SITE {
        assert_eq!(
            render(&optimized, name, context.clone()),
            render(&plain, name, context.clone()),
            "{name}"
        );
    }
}
