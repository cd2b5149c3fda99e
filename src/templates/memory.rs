//! The template memory optimizer: rewrites the set of sources the store is about to
//! compile so the compiled set holds less, without changing any output.
//!
//! - **Template deduplication**: templates with the same source (and the same extension,
//!   so the same auto-escaping) are compiled once; every other name becomes a one-line
//!   `{% extends "<first name>" %}` that renders the same bytes.
//! - **Section deduplication**: a run of static text (the HTML between tags) of at least
//!   [`MIN_SECTION_BYTES`] that occurs in two or more templates — the header, navigation
//!   and footer markup a site repeats on every page, and that flattening copies into every
//!   page — is held once, as an internal template `__shared/<hash>.txt`, and each
//!   occurrence becomes `{% include %}` of it. Static text carries no variables and is
//!   never escaped, so the include renders exactly that text.
//! - **Compression** (with lazy loading): sources not compiled yet are held
//!   gzip-compressed and inflated when first rendered.
//!
//! Lazy loading itself (compile on first render) is a build stage
//! ([`compile_lazily`](super::build::compile_lazily)) and the memory-release hints are the
//! store's; this module holds the pure rewrites and their accounting.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use super::machinery::{Token, tokenize};
use serde::Serialize;

/// Shortest static text worth sharing: below this an include costs more than it saves.
pub const MIN_SECTION_BYTES: usize = 256;

/// Prefix of the internal templates that hold shared sections.
pub const SHARED_PREFIX: &str = "__shared/";

/// What the memory optimizer's deduplication rewrites did to a published template set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rewrites {
    /// Templates that became an alias of an identical one.
    pub duplicate_templates: usize,
    /// Distinct shared sections.
    pub shared_sections: usize,
    /// Occurrences replaced by an include of a shared section.
    pub section_uses: usize,
    /// Source bytes no longer held: duplicates' sources and all but one copy of each
    /// shared section (less the include tags that replace them).
    pub source_bytes_saved: u64,
}

/// Replaces templates whose source equals another's (same extension) by an alias of the
/// first of them in name order. Answers the count.
pub fn dedup_templates(sources: &mut BTreeMap<String, Arc<str>>) -> (usize, u64) {
    let mut first: HashMap<(&str, u64), String> = HashMap::new();
    let mut aliases = Vec::new();
    for (name, source) in sources.iter() {
        let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
        let key = (extension, xxhash_rust::xxh3::xxh3_64(source.as_bytes()));
        match first.get(&key) {
            Some(original) if sources[original] == *source => {
                aliases.push((name.clone(), original.clone()));
            }
            Some(_) => {}
            None => {
                first.insert(key, name.clone());
            }
        }
    }
    let mut saved = 0u64;
    for (name, original) in &aliases {
        let alias = format!("{{% extends {} %}}", quoted(original));
        saved += sources[name].len().saturating_sub(alias.len()) as u64;
        sources.insert(name.clone(), Arc::from(alias));
    }
    (aliases.len(), saved)
}

/// Moves static text repeated across templates into shared templates (added to
/// `sources` under [`SHARED_PREFIX`]). Templates using `{% raw %}` are left alone, and so
/// are those in `inline`: the layouts other templates extend, which run on every render
/// of each of their children, where an include would cost a template lookup each time
/// for text held once anyway.
pub fn dedup_sections(
    sources: &mut BTreeMap<String, Arc<str>>,
    inline: &std::collections::BTreeSet<String>,
) -> Rewrites {
    // Every static text run of each template, with its byte range in the source.
    let mut runs: BTreeMap<&str, Vec<(usize, usize, &str)>> = BTreeMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (name, source) in sources.iter() {
        if name.starts_with(SHARED_PREFIX)
            || inline.contains(name)
            || source.contains("raw %}")
            || source.contains("raw -%}")
        {
            continue;
        }
        let Some(found) = static_runs(source) else {
            continue;
        };
        let mut seen_here = std::collections::HashSet::new();
        for run in &found {
            if run.2.len() >= MIN_SECTION_BYTES && seen_here.insert(run.2) {
                *counts.entry(run.2).or_default() += 1;
            }
        }
        runs.insert(name.as_str(), found);
    }
    let mut shared: BTreeMap<String, String> = BTreeMap::new();
    let mut rewritten: Vec<(String, String)> = Vec::new();
    let mut report = Rewrites::default();
    for (name, found) in &runs {
        let source: &str = &sources[*name];
        let mut out = String::with_capacity(source.len());
        let mut at = 0;
        let mut changed = false;
        for &(start, end, text) in found {
            if text.len() < MIN_SECTION_BYTES || counts.get(text).copied().unwrap_or(0) < 2 {
                continue;
            }
            let shared_name = format!(
                "{SHARED_PREFIX}{:016x}.txt",
                xxhash_rust::xxh3::xxh3_64(text.as_bytes())
            );
            let include = format!("{{% include {} %}}", quoted(&shared_name));
            out.push_str(&source[at..start]);
            out.push_str(&include);
            at = end;
            changed = true;
            report.section_uses += 1;
            report.source_bytes_saved += (end - start).saturating_sub(include.len()) as u64;
            shared.entry(shared_name).or_insert_with(|| {
                // minijinja drops one trailing newline of a template's source.
                let mut body = text.to_owned();
                if body.ends_with('\n') {
                    body.push('\n');
                }
                body
            });
        }
        if changed {
            out.push_str(&source[at..]);
            rewritten.push(((*name).to_owned(), out));
        }
    }
    for (name, source) in rewritten {
        sources.insert(name, Arc::from(source));
    }
    report.shared_sections = shared.len();
    for body in shared.values() {
        report.source_bytes_saved = report.source_bytes_saved.saturating_sub(body.len() as u64);
    }
    for (name, body) in shared {
        sources.insert(name, Arc::from(body));
    }
    report
}

/// The static text runs of a template: (start, end, text as rendered). `None` when the
/// source does not tokenize (it is then left alone; the store reports syntax errors).
fn static_runs(source: &str) -> Option<Vec<(usize, usize, &str)>> {
    let mut runs = Vec::new();
    for token in tokenize(source) {
        let (token, span) = token.ok()?;
        if let Token::TemplateData(text) = token {
            let (start, end) = (span.start_offset as usize, span.end_offset as usize);
            // Only a run whose span is exactly its text can be cut out safely; whitespace
            // control makes the two differ, and such runs are left in place.
            if source.get(start..end) == Some(text) {
                runs.push((start, end, text));
            }
        }
    }
    Some(runs)
}

fn quoted(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
}

/// A source as the lazy loader holds it.
#[derive(Clone, Debug)]
pub enum Held {
    Plain(Arc<str>),
    /// gzip of the source; inflated when the template is first rendered.
    Gzip(Arc<[u8]>),
}

impl Held {
    /// Compresses `source` when that saves at least a tenth.
    pub fn compress(source: Arc<str>) -> Held {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        if encoder.write_all(source.as_bytes()).is_err() {
            return Held::Plain(source);
        }
        match encoder.finish() {
            Ok(gzip) if gzip.len() * 10 <= source.len() * 9 => Held::Gzip(Arc::from(gzip)),
            _ => Held::Plain(source),
        }
    }

    /// The source text.
    pub fn source(&self) -> Option<String> {
        match self {
            Held::Plain(source) => Some(source.to_string()),
            Held::Gzip(gzip) => {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&gzip[..])
                    .read_to_string(&mut text)
                    .ok()?;
                Some(text)
            }
        }
    }

    /// The source as shared text (inflated when compressed).
    pub fn text(&self) -> Option<Arc<str>> {
        match self {
            Held::Plain(source) => Some(source.clone()),
            Held::Gzip(_) => self.source().map(Arc::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_all(sources: &BTreeMap<String, Arc<str>>, names: &[&str]) -> Vec<String> {
        let mut env = minijinja::Environment::new();
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source.to_string())
                .unwrap();
        }
        let context = minijinja::Value::from(minijinja::value::Serde(&serde_json::json!({
            "title": "<T>", "items": ["a", "b"], "user": "ada"
        })));
        names
            .iter()
            .map(|name| {
                env.get_template(name)
                    .unwrap()
                    .render(context.clone())
                    .unwrap()
            })
            .collect()
    }

    fn set(pairs: &[(&str, String)]) -> BTreeMap<String, Arc<str>> {
        pairs
            .iter()
            .map(|(name, source)| (name.to_string(), Arc::from(source.as_str())))
            .collect()
    }

    #[test]
    fn memory_duplicate_templates_become_aliases_with_the_same_output() {
        let page =
            "<h1>{{ title }}</h1>{% for i in items %}<li>{{ i }}</li>{% endfor %}".to_owned();
        let mut sources = set(&[
            ("a.html", page.clone()),
            ("b.html", page.clone()),
            ("c.txt", page.clone()),
            ("d.html", page.replace("h1", "h2")),
        ]);
        let names = ["a.html", "b.html", "c.txt", "d.html"];
        let before = render_all(&sources, &names);
        let (aliases, saved) = dedup_templates(&mut sources);
        assert_eq!(
            aliases, 1,
            "c.txt escapes differently: not an alias of a.html"
        );
        assert_eq!(&*sources["b.html"], "{% extends \"a.html\" %}");
        assert!(saved > 0);
        assert_eq!(render_all(&sources, &names), before);
        assert!(before[0].contains("&lt;T&gt;") && before[2].contains("<T>"));
    }

    #[test]
    fn memory_shared_sections_render_the_same_bytes() {
        let header = format!("<header>\n{}\n</header>\n", "<nav>links</nav>\n".repeat(20));
        let footer = format!("<footer>{}</footer>", "&copy; lean ".repeat(30));
        let page = |body: &str| {
            format!(
                "{header}<main>{{{{ title }}}} {body}{{% for i in items %}}{header}{{{{ i }}}}{{% endfor %}}</main>\n  {{%- if user %}}   {footer}{{% endif -%}}\n\n{footer}\n"
            )
        };
        let mut sources = set(&[
            ("one.html", page("one")),
            ("two.html", page("two")),
            ("short.html", "<p>{{ title }}</p>\n".to_owned()),
            ("raw.html", format!("{{% raw %}}{header}{{% endraw %}}")),
        ]);
        let names = ["one.html", "two.html", "short.html", "raw.html"];
        let before = render_all(&sources, &names);
        let total_before: usize = sources.values().map(|s| s.len()).sum();
        let report = dedup_sections(&mut sources, &Default::default());
        assert_eq!(render_all(&sources, &names), before);
        assert!(report.shared_sections >= 2, "{report:?}");
        assert!(report.section_uses >= 6, "{report:?}");
        let total_after: usize = sources.values().map(|s| s.len()).sum();
        assert!(
            total_after < total_before * 3 / 4,
            "{total_after} vs {total_before}"
        );
        assert_eq!(
            report.source_bytes_saved,
            (total_before - total_after) as u64,
            "the report counts what went"
        );
        assert!(
            sources["raw.html"].contains("{% raw %}"),
            "raw blocks are left alone"
        );
        assert!(sources.keys().any(|n| n.starts_with(SHARED_PREFIX)));
    }

    #[test]
    fn memory_held_sources_round_trip_compressed() {
        let source: Arc<str> = Arc::from("<p>{{ x }}</p>\n".repeat(100));
        let held = Held::compress(source.clone());
        let Held::Gzip(gzip) = &held else {
            panic!("a repetitive source is kept compressed");
        };
        assert!(gzip.len() < source.len() / 5);
        assert_eq!(held.source().unwrap(), *source);
        let tiny = Held::compress(Arc::from("x"));
        assert!(matches!(tiny, Held::Plain(_)));
    }
}
