//! The documentation's links: every relative link in `README.md`, `docs/*.md` and
//! `bench/*.md` names a file or folder that exists, and a link with an anchor
//! (`chapter.md#heading`, `#heading`) names a heading of that Markdown file, as GitHub
//! spells its anchors.
//!
//! No server and no Markdown crate: the extractor reads inline links (`[text](target)`,
//! images alike), reference definitions (`[name]: target`) and HTML `href="..."`, and
//! skips fenced code blocks and inline code spans, where brackets are code. Links to
//! other sites (`http://`, `https://`, `mailto:`) are not followed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A link as written in a Markdown file.
#[derive(Debug, PartialEq)]
struct Link {
    /// The target, title and angle brackets removed.
    target: String,
    /// 1-based line the link starts on.
    line: usize,
}

/// The text of `markdown` with fenced code blocks and inline code spans blanked out
/// (replaced by spaces, newlines kept), so line numbers still count and nothing inside
/// code reads as a link.
fn without_code(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let run = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        let opens = ['`', '~'].into_iter().find(|&c| run(c) >= 3);
        match (fence, opens) {
            (None, Some(c)) => {
                fence = Some((c, run(c)));
                out.push_str(&blank(line));
            }
            (Some((c, n)), _) => {
                if run(c) >= n && trimmed[run(c)..].trim().is_empty() {
                    fence = None;
                }
                out.push_str(&blank(line));
            }
            (None, None) => out.push_str(line),
        }
    }
    // Inline code spans: a run of N backticks up to the next run of exactly N.
    let chars: Vec<char> = out.chars().collect();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            result.push(chars[i]);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + n;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                if m == n {
                    close = Some(j + m);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                result.extend(
                    chars[i..end]
                        .iter()
                        .map(|&c| if c == '\n' { '\n' } else { ' ' }),
                );
                i = end;
            }
            None => {
                result.extend(&chars[i..i + n]);
                i += n;
            }
        }
    }
    result
}

/// `line` with every character but its line break turned into a space.
fn blank(line: &str) -> String {
    line.chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect()
}

/// The target of a link's parenthesised part (`target "title"`, `<target>`).
fn clean_target(inside: &str) -> String {
    let inside = inside.trim();
    if let Some(rest) = inside.strip_prefix('<') {
        return rest.split('>').next().unwrap_or("").to_owned();
    }
    inside.split_whitespace().next().unwrap_or("").to_owned()
}

/// Every link of `markdown`, in order.
fn links(markdown: &str) -> Vec<Link> {
    let text = without_code(markdown);
    let chars: Vec<char> = text.chars().collect();
    let line_at = |index: usize| 1 + chars[..index].iter().filter(|&&c| c == '\n').count();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            // The matching `]`, brackets nested.
            let mut depth = 0;
            let mut j = i;
            let mut close = None;
            while j < chars.len() {
                match chars[j] {
                    '\\' => j += 1,
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if let Some(close) = close {
                if chars.get(close + 1) == Some(&'(') {
                    // The matching `)`, parentheses nested.
                    let mut depth = 0;
                    let mut k = close + 1;
                    while k < chars.len() {
                        match chars[k] {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                    let inside: String = chars[close + 2..k.min(chars.len())].iter().collect();
                    found.push(Link {
                        target: clean_target(&inside),
                        line: line_at(i),
                    });
                    // The link text may hold an image link: look inside it too.
                    i += 1;
                    continue;
                }
                // A reference definition: `[name]: target` at the start of a line.
                let starts_line = i == 0 || chars[i - 1] == '\n';
                if starts_line && chars.get(close + 1) == Some(&':') {
                    let end = chars[close + 2..]
                        .iter()
                        .position(|&c| c == '\n')
                        .map_or(chars.len(), |p| close + 2 + p);
                    let inside: String = chars[close + 2..end].iter().collect();
                    found.push(Link {
                        target: clean_target(&inside),
                        line: line_at(i),
                    });
                }
            }
            i += 1;
            continue;
        }
        if chars[i..].starts_with(&['h', 'r', 'e', 'f', '=', '"']) {
            let start = i + 6;
            let end = chars[start..]
                .iter()
                .position(|&c| c == '"')
                .map_or(chars.len(), |p| start + p);
            found.push(Link {
                target: chars[start..end].iter().collect(),
                line: line_at(i),
            });
            i = end;
            continue;
        }
        i += 1;
    }
    found
}

/// GitHub's anchor for a heading's text: lower case, Markdown emphasis, code and link
/// syntax dropped, every character but letters, digits, `-`, `_` and spaces dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    // A link in a heading reads as its text.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(mid) if after[mid..].contains(')') => {
                text.push_str(&after[..mid]);
                let close = after[mid..].find(')').map_or(after.len(), |p| mid + p + 1);
                rest = &after[close..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives the ATX headings (`# ...` to `###### ...`) of `markdown`
/// outside code blocks; a repeated heading gets `-1`, `-2`, ... after the first.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let run = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        if let Some((c, n)) = fence {
            if run(c) >= n && trimmed[run(c)..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        if let Some(c) = ['`', '~'].into_iter().find(|&c| run(c) >= 3) {
            fence = Some((c, run(c)));
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
            continue;
        }
        let base = slug(line[level..].trim().trim_end_matches('#'));
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// The problems with the links of `markdown`, read as the file at `path` (relative links
/// resolve against its folder): one line each, naming the file, the line and the target.
fn broken_links(path: &Path, markdown: &str) -> Vec<String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    for Link { target, line } in links(markdown) {
        let external = ["http://", "https://", "mailto:"]
            .iter()
            .any(|scheme| target.starts_with(scheme));
        if external {
            continue;
        }
        let where_ = format!("{}:{line}: ({target})", path.display());
        if target.is_empty() {
            problems.push(format!("{where_} has no target"));
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target.as_str(), None),
        };
        // `#anchor` alone names a heading of this text, which need not be on disk.
        let resolved: PathBuf = if file.is_empty() {
            path.to_path_buf()
        } else {
            dir.join(file)
        };
        if !file.is_empty() && !resolved.exists() {
            problems.push(format!("{where_}: {} does not exist", resolved.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if resolved.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = if file.is_empty() {
            markdown.to_owned()
        } else {
            std::fs::read_to_string(&resolved).unwrap_or_default()
        };
        if !anchors(&text).contains(anchor) {
            problems.push(format!(
                "{where_}: {} has no heading with anchor #{anchor}",
                resolved.display()
            ));
        }
    }
    problems
}

/// The Markdown files whose links are checked: README.md, docs/*.md and bench/*.md.
fn documentation_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "bench"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|error| panic!("{dir}/ does not read: {error}"))
            .map(|entry| entry.expect("directory entry reads").path())
            .filter(|path| path.extension().is_some_and(|e| e == "md"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

#[test]
fn docs_relative_links_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = documentation_files(root);
    for expected in [
        "docs/SUMMARY.md",
        "docs/configuration.md",
        "bench/README.md",
    ] {
        assert!(
            files.contains(&root.join(expected)),
            "{expected} is missing from {files:?}"
        );
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let markdown = std::fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("{} does not read: {error}", file.display()));
        checked += links(&markdown).len();
        // Resolved against the real file, reported relative to the repository.
        problems.extend(
            broken_links(file, &markdown)
                .into_iter()
                .map(|p| p.replace(&format!("{}/", root.display()), "")),
        );
    }
    // The guide's table of contents alone links every chapter: an extractor that finds
    // nothing must not pass.
    assert!(checked >= 20, "only {checked} links found in {files:?}");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn docs_link_extractor_finds_a_deliberately_broken_link() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let markdown = "# A page\n\
        \n\
        ## Second heading\n\
        \n\
        Good: [the reference](configuration.md), [a heading](#second-heading),\n\
        [an anchor there](configuration.md#configuration), [the site](https://example.org),\n\
        [the README](../README.md \"title\").\n\
        Broken: [a chapter that is not there](no-such-chapter.md), and\n\
        [an anchor that is not](configuration.md#no-such-heading) and\n\
        <a href=\"missing.html\">html</a> and [a local anchor](#nowhere).\n\
        Code is not links: `[x](code-span.md)` and\n\
        ```rust\n\
        let y = a[i](fenced.md);\n\
        ```\n";
    let links = links(markdown);
    assert!(
        !links
            .iter()
            .any(|l| l.target.contains("code-span") || l.target.contains("fenced")),
        "{links:?}"
    );
    assert!(links.contains(&Link {
        target: "no-such-chapter.md".to_owned(),
        line: 8
    }));
    let problems = broken_links(&root.join("docs/inline.md"), markdown);
    let broken: Vec<&str> = [
        "no-such-chapter.md",
        "#no-such-heading",
        "missing.html",
        "#nowhere",
    ]
    .into_iter()
    .filter(|target| problems.iter().any(|p| p.contains(target)))
    .collect();
    assert_eq!(broken.len(), 4, "{problems:#?}");
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn docs_anchors_follow_github_slugs() {
    assert_eq!(slug("HTTPS and HTTP/2"), "https-and-http2");
    assert_eq!(
        slug("Handle vs `Addr::send` (`cargo bench --bench handle`)"),
        "handle-vs-addrsend-cargo-bench---bench-handle"
    );
    assert_eq!(
        slug("Template memory optimizer (`[memory_optimizer]`, on by default)"),
        "template-memory-optimizer-memory_optimizer-on-by-default"
    );
    assert_eq!(
        slug("See [the guide](docs/SUMMARY.md) first"),
        "see-the-guide-first"
    );
    let anchors = anchors("# Notes\n\n## Notes\n\n```\n# not a heading\n```\n### Notes\n");
    let expected: HashSet<String> = ["notes", "notes-1", "notes-2"].map(String::from).into();
    assert_eq!(anchors, expected);
}
