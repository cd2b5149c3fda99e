//! Compressed static files in a real browser. Headless Chromium, driven over WebDriver
//! (`util/webdriver.rs`), opens a page whose stylesheet and script are served by
//! leanserve (started through the production path, default `static_files.encodings`:
//! br, zstd, gzip) over a real socket. From the first request on, all three must arrive
//! compressed: the browser's Resource Timing entries must show fewer bytes on the wire
//! (`encodedBodySize`) than in the decoded body (`decodedBodySize`), the decoded body
//! must be exactly the file on disk, the stylesheet must apply and the script must run
//! (so the bodies decoded), and `leanserve_static_responses_total` must count them as br
//! or zstd responses and none as identity.

mod util;
#[path = "util/webdriver.rs"]
mod webdriver;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use util::start;
use webdriver::Browser;

/// How long the test waits for the browser to report both resource entries.
const PATIENCE: Duration = Duration::from_secs(10);

/// The colour style.css gives `#styled`, as `getComputedStyle` reports it.
const STYLED_COLOUR: &str = "rgb(18, 52, 86)";

/// The Resource Timing figures of the page, its stylesheet and its script, the computed
/// colour of `#styled` and whether app.js ran.
const READ_TIMINGS: &str = r#"
const pick = (e) => e ? {
  name: e.name,
  encodedBodySize: e.encodedBodySize,
  decodedBodySize: e.decodedBodySize,
  transferSize: e.transferSize,
  contentEncoding: typeof e.contentEncoding === 'string' ? e.contentEncoding : null,
} : null;
const resources = performance.getEntriesByType('resource');
const ending = (suffix) => pick(resources.find((e) => new URL(e.name).pathname.endsWith(suffix)));
const styled = document.getElementById('styled');
return {
  page: pick(performance.getEntriesByType('navigation')[0]),
  stylesheet: ending('/style.css'),
  script: ending('/app.js'),
  colour: styled ? getComputedStyle(styled).color : '',
  ran: document.body ? (document.body.dataset.ran || '') : '',
};
"#;

/// One Resource Timing entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timing {
    name: String,
    encoded_body_size: u64,
    decoded_body_size: u64,
    transfer_size: u64,
    /// `PerformanceResourceTiming.contentEncoding` where the browser has it.
    content_encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Timings {
    page: Option<Timing>,
    stylesheet: Option<Timing>,
    script: Option<Timing>,
    colour: String,
    ran: String,
}

/// A page of the kind a site serves: a header, navigation, articles and a footer.
fn index_html() -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Field notes from the allotment</title>\n\
         <link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n<body>\n\
         <header class=\"site-header\"><h1>Field notes from the allotment</h1>\n\
         <p id=\"styled\" class=\"tagline\">Seasonal notes on soil, seeds and weather.</p>\n\
         <nav><ul>\n",
    );
    for (i, section) in [
        "Spring", "Summer", "Autumn", "Winter", "Tools", "Seeds", "Compost", "About",
    ]
    .iter()
    .enumerate()
    {
        writeln!(
            html,
            "<li><a href=\"/{}/\" data-index=\"{i}\">{section}</a></li>",
            section.to_lowercase()
        )
        .unwrap();
    }
    html.push_str("</ul></nav></header>\n<main>\n");
    let crops = [
        ("broad beans", "sown in late October", 14),
        ("early potatoes", "chitted on the windowsill", 21),
        ("runner beans", "planted out after the last frost", 9),
        ("courgettes", "fed weekly with comfrey tea", 6),
        ("leeks", "dibbed into deep holes and watered in", 30),
        ("garlic", "split into cloves and set 15 cm apart", 42),
        ("parsnips", "slow to germinate in cold soil", 28),
        ("kale", "netted against pigeons all winter", 17),
        ("onion sets", "pressed in until only the tips show", 11),
        ("sweet peas", "pinched out at four pairs of leaves", 8),
        ("beetroot", "thinned to a hand's width", 19),
        ("chard", "cut and come again until spring", 35),
    ];
    for (n, (crop, note, days)) in crops.iter().enumerate() {
        write!(
            html,
            "<article class=\"note\" id=\"note-{n}\">\n<h2>Week {week}: {crop}</h2>\n\
             <p class=\"meta\">Posted on day {day} of the season &middot; {days} days to emerge</p>\n\
             <p>The {crop} were {note}. Bed {bed} had been dug over with {loads} barrow loads \
             of well-rotted manure, and the soil temperature stood at {temp} &deg;C at \
             nine in the morning.</p>\n<ul class=\"checklist\">\n\
             <li>Water: {water} litres</li>\n<li>Rows: {rows}</li>\n\
             <li>Companion: {companion}</li>\n</ul>\n</article>\n",
            week = n + 1,
            day = 7 * n + 3,
            bed = (n * 7) % 12 + 1,
            loads = n % 4 + 2,
            temp = 6 + (n * 3) % 11,
            water = 10 + n * 5,
            rows = n % 5 + 2,
            companion = crops[(n + 5) % crops.len()].0,
        )
        .unwrap();
    }
    html.push_str(
        "</main>\n<footer class=\"site-footer\"><p>Plot 14B &middot; written by hand, \
         served by leanserve.</p></footer>\n<script src=\"/app.js\"></script>\n\
         </body>\n</html>\n",
    );
    html
}

/// A stylesheet of varied rules; `#styled` gets [`STYLED_COLOUR`].
fn style_css() -> String {
    let mut css = String::from(
        ":root { --accent: #2f6f4f; --paper: #fbf8f1; --ink: #222; }\n\
         *, *::before, *::after { box-sizing: border-box; }\n\
         html { font-size: 100%; line-height: 1.5; }\n\
         body { margin: 0; background: var(--paper); color: var(--ink); \
         font-family: Georgia, 'Times New Roman', serif; }\n\
         #styled { color: #123456; font-style: italic; }\n\
         .site-header { padding: 2rem 1rem; border-bottom: 3px solid var(--accent); }\n\
         .site-header nav ul { display: flex; gap: 1rem; list-style: none; padding: 0; }\n\
         .site-footer { padding: 1rem; font-size: 0.875rem; text-align: center; }\n\
         main { max-width: 48rem; margin: 0 auto; padding: 1rem; }\n\
         .checklist li::marker { content: '\\2713  '; color: var(--accent); }\n",
    );
    let colours = [
        "#8a3b12", "#1d5c8c", "#5b7d1a", "#7a2e6b", "#a36b00", "#2d6d6d",
    ];
    for i in 0..40 {
        writeln!(
            css,
            ".note:nth-of-type({n}) h2 {{ color: {c}; margin-top: {m}rem; letter-spacing: {l}em; }}\n\
             .note:nth-of-type({n}) .meta {{ border-left: {b}px solid {c}; padding-left: {p}px; }}\n\
             @media (min-width: {w}px) {{ .note:nth-of-type({n}) {{ column-count: {cols}; \
             column-gap: {g}rem; }} }}",
            n = i + 1,
            c = colours[i % colours.len()],
            m = 1 + i % 3,
            l = (i % 5) as f32 / 100.0,
            b = 2 + i % 4,
            p = 4 + 2 * (i % 6),
            w = 480 + 40 * i,
            cols = 1 + i % 2,
            g = 1 + i % 3,
        )
        .unwrap();
    }
    css
}

/// A script of varied functions; it marks `<body data-ran="yes">` when it runs.
fn app_js() -> String {
    let mut js = String::from(
        "'use strict';\n\
         // Small enhancements for the field notes.\n\
         const notes = Array.from(document.querySelectorAll('article.note'));\n\
         const byId = (id) => document.getElementById(id);\n",
    );
    let verbs = [
        "highlight",
        "collapse",
        "count",
        "tag",
        "measure",
        "sort",
        "label",
    ];
    for i in 0..45 {
        let verb = verbs[i % verbs.len()];
        writeln!(
            js,
            "function {verb}Note{i}(note) {{\n  \
             if (!note) {{ return null; }}\n  \
             const words = note.textContent.split(/\\s+/).filter(Boolean).length;\n  \
             note.dataset.{verb}{i} = String(words * {k} % {m});\n  \
             return {{ id: note.id, words, weight: {w} }};\n}}",
            k = 3 + i,
            m = 97 + 2 * i,
            w = (i * 37) % 101,
        )
        .unwrap();
    }
    js.push_str("const handlers = [");
    for i in 0..45 {
        write!(js, "{}Note{i}, ", verbs[i % verbs.len()]).unwrap();
    }
    js.push_str(
        "];\n\
         notes.forEach((note, n) => handlers[n % handlers.length](note));\n\
         document.body.dataset.notes = String(notes.length);\n\
         document.body.dataset.ran = 'yes';\n",
    );
    js
}

/// The sample of `leanserve_static_responses_total{encoding="<coding>"}` in `text`.
fn static_responses(text: &str, coding: &str) -> u64 {
    let series = format!("leanserve_static_responses_total{{encoding=\"{coding}\"}}");
    let line = text
        .lines()
        .find(|line| line.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series} in the exposition:\n{text}"));
    line[series.len()..]
        .trim()
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{line:?}: {e}")) as u64
}

fn assert_compressed(what: &str, timing: &Timing, on_disk: u64) {
    assert_eq!(
        timing.decoded_body_size, on_disk,
        "{what} ({}) decodes to the file on disk: {timing:?}",
        timing.name
    );
    assert!(
        timing.encoded_body_size > 0 && timing.encoded_body_size < timing.decoded_body_size,
        "{what} ({}) arrived compressed (fewer bytes on the wire than decoded): {timing:?}",
        timing.name
    );
    if let Some(coding) = timing.content_encoding.as_deref() {
        assert!(
            coding == "br" || coding == "zstd",
            "{what} ({}) came as {coding:?}, not br or zstd: {timing:?}",
            timing.name
        );
    }
}

#[actix_rt::test]
async fn encodings_a_browser_gets_page_stylesheet_and_script_compressed() {
    let browser = Browser::start().await;
    let site = tempfile::tempdir().unwrap();
    let files = [
        ("index.html", index_html()),
        ("style.css", style_css()),
        ("app.js", app_js()),
    ];
    for (name, text) in &files {
        assert!(text.len() > 4096, "{name} is {} bytes", text.len());
        std::fs::write(site.path().join(name), text).unwrap();
    }
    let size = |name: &str| std::fs::metadata(site.path().join(name)).unwrap().len();
    let (subsystems, server) = start(Path::new(site.path()), &[]).serve().await;

    browser.goto(&server.url("/")).await;
    let deadline = Instant::now() + PATIENCE;
    let timings = loop {
        let value = browser.execute(READ_TIMINGS, json!([])).await;
        let timings: Timings = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("unexpected page state {value}: {e}"));
        if timings.page.is_some() && timings.stylesheet.is_some() && timings.script.is_some() {
            break timings;
        }
        assert!(
            Instant::now() < deadline,
            "no timing entries for the page, style.css and app.js within {PATIENCE:?}: \
             {timings:?}\nbrowser log:\n{}",
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (what, timing) in [
        ("index.html", timings.page.as_ref().unwrap()),
        ("style.css", timings.stylesheet.as_ref().unwrap()),
        ("app.js", timings.script.as_ref().unwrap()),
    ] {
        println!(
            "{what}: on disk {} B, encodedBodySize {} B, decodedBodySize {} B, \
             transferSize {} B, contentEncoding {:?}",
            size(what),
            timing.encoded_body_size,
            timing.decoded_body_size,
            timing.transfer_size,
            timing.content_encoding
        );
        assert_compressed(what, timing, size(what));
    }
    assert_eq!(
        timings.colour, STYLED_COLOUR,
        "style.css applied to #styled"
    );
    assert_eq!(timings.ran, "yes", "app.js ran");
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.contains("favicon.ico")),
        "console errors other than the missing favicon: {errors:#?}"
    );

    // Only the three files are static responses (a 404 for favicon.ico is not counted).
    subsystems.collect_now().await.unwrap();
    let text = util::metrics_text(&server).await;
    let counts: Vec<(&str, u64)> = ["identity", "gzip", "br", "zstd"]
        .into_iter()
        .map(|coding| (coding, static_responses(&text, coding)))
        .collect();
    println!("leanserve_static_responses_total: {counts:?}");
    let count = |coding: &str| counts.iter().find(|(c, _)| *c == coding).unwrap().1;
    assert!(
        count("br") + count("zstd") >= 3,
        "the page, style.css and app.js went out as br or zstd: {counts:?}"
    );
    assert_eq!(
        count("identity"),
        0,
        "no static file went out uncompressed: {counts:?}"
    );
}
