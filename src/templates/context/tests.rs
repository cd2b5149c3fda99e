use super::*;
use crate::templates::TemplateError;
use crate::templates::error::DataFileError;
use minijinja::Environment;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

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

fn counting_loader(value: &'static str) -> impl Fn() -> Result<Value, TemplateError> + Send + Sync {
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
    let handle = lazy(|| {
        Err(TemplateError::Value {
            reason: "database down".into(),
        })
    });
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
    assert!(
        matches!(&error, TemplateError::DataFile(file) if matches!(**file, DataFileError::NotJson { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("not valid JSON"), "{error}");
    let error = json_file_loader(data.join("absent.json"))().unwrap_err();
    assert!(
        matches!(&error, TemplateError::DataFile(file) if matches!(**file, DataFileError::Unreadable { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("cannot read"), "{error}");
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
