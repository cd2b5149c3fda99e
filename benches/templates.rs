//! Rendering a 5-deep extends chain flattened (one template) against minijinja's own
//! inheritance, side by side in one run.
//!
//! `cargo bench --bench templates`
//!
//! The chain is shaped like a site's layouts: each level overrides two blocks, calls
//! `super()` in one, and adds a nested block; the page renders a loop of 20 items. Besides
//! criterion's two estimates, rounds alternate between the two environments and the median
//! per-round ratio (chain time / flattened time) is printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use leanserve::internals::flatten;
use minijinja::{Environment, Value};

const DEPTH: usize = 5;

/// `level0.html` (root) ... `level4.html` (the page).
fn sources() -> Vec<(String, String)> {
    let mut sources = vec![(
        "level0.html".to_owned(),
        "<!doctype html><html><head><title>{% block title %}site{% endblock %}</title></head>\
         <body><nav>{% block nav %}<a href=\"/\">home</a>{% endblock %}</nav>\
         <main>{% block main %}{% block content %}{% endblock %}{% endblock %}</main>\
         <footer>{% block footer %}(c) {{ year }}{% endblock %}</footer></body></html>"
            .to_owned(),
    )];
    for level in 1..DEPTH {
        let mut source = format!("{{% extends \"level{}.html\" %}}", level - 1);
        source.push_str(&format!(
            "{{% block title %}}level {level} · {{{{ super() }}}}{{% endblock %}}\
             {{% block nav %}}{{{{ super() }}}} <a href=\"/l{level}\">l{level}</a>{{% endblock %}}"
        ));
        if level == DEPTH - 1 {
            source.push_str(
                "{% block content %}<ul>{% for item in items %}\
                 <li class=\"{{ loop.cycle('odd', 'even') }}\">{{ item.name | title }}: {{ item.value }}</li>\
                 {% endfor %}</ul>{% endblock %}",
            );
        } else {
            source.push_str(&format!(
                "{{% block main %}}<section id=\"s{level}\">{{{{ super() }}}}</section>{{% endblock %}}"
            ));
        }
        sources.push((format!("level{level}.html"), source));
    }
    sources
}

/// The environment with the original chain, and one with the page flattened.
fn environments() -> (Environment<'static>, Environment<'static>) {
    let sources = sources();
    let mut chain = Environment::new();
    let mut flat = Environment::new();
    for (name, source) in &sources {
        chain
            .add_template_owned(name.clone(), source.clone())
            .unwrap();
    }
    let lookup = |name: &str| {
        sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
    };
    let page = format!("level{}.html", DEPTH - 1);
    let flattened = flatten::flatten(&page, lookup).expect("the bench chain flattens");
    flat.add_template_owned(page, flattened).unwrap();
    (chain, flat)
}

fn context() -> Value {
    let items: Vec<serde_json::Value> = (0..20)
        .map(|i| serde_json::json!({ "name": format!("item {i}"), "value": i * 7 }))
        .collect();
    Value::from(minijinja::value::Serde(
        &serde_json::json!({ "items": items, "year": 2026 }),
    ))
}

fn render(env: &Environment<'static>, context: &Value) -> String {
    env.get_template(&format!("level{}.html", DEPTH - 1))
        .unwrap()
        .render(context.clone())
        .unwrap()
}

fn flattening(c: &mut Criterion) {
    let (chain, flat) = environments();
    let context = context();
    assert_eq!(render(&chain, &context), render(&flat, &context));
    let mut group = c.benchmark_group("render_5_deep");
    group.bench_function("chain", |b| b.iter(|| black_box(render(&chain, &context))));
    group.bench_function("flattened", |b| {
        b.iter(|| black_box(render(&flat, &context)))
    });
    group.finish();
}

/// Alternates rounds of the two and prints medians and the median ratio.
fn paired_ratio() {
    const ROUNDS: usize = 41;
    const RENDERS: usize = 2_000;
    let (chain, flat) = environments();
    let context = context();
    let (mut chain_ns, mut flat_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let time = |env: &Environment<'static>| {
        let start = Instant::now();
        for _ in 0..RENDERS {
            black_box(render(env, &context));
        }
        start.elapsed().as_nanos() as f64 / RENDERS as f64
    };
    for round in 0..=ROUNDS {
        // Alternate which goes first, so an order effect cancels out.
        let (a, b) = if round % 2 == 0 {
            let a = time(&chain);
            (a, time(&flat))
        } else {
            let b = time(&flat);
            (time(&chain), b)
        };
        if round > 0 {
            chain_ns.push(a);
            flat_ns.push(b);
            ratios.push(a / b);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let ratio = median(&mut ratios);
    println!(
        "paired ({ROUNDS} rounds x {RENDERS} renders): chain median {:.0} ns, flattened median {:.0} ns, \
         median ratio chain/flattened {ratio:.3} (flattening saves {:.1}%)",
        median(&mut chain_ns),
        median(&mut flat_ns),
        (1.0 - 1.0 / ratio) * 100.0,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(60);
    targets = flattening
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    paired_ratio();
}
