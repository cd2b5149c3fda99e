//! Reading the templates folder: which files are templates, their stamps (to notice
//! changes without reading them), their sources, and the global context file.
//!
//! Every regular file under the folder is a template, named by its path relative to the
//! folder with `/` separators, except: hidden entries (a name starting with `.`), the
//! global context (`_context.toml` or `_context.json` at the top) and the top-level
//! `data/` folder (reserved for data files that templates read). Symbolic links are
//! followed only when they stay inside the folder.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::templates::inputs::Stamp;
use crate::templates::{TemplateError, Variables};

/// Largest template source read; a larger file is a load error.
pub const MAX_SOURCE_BYTES: u64 = 4 << 20;

/// Deepest folder nesting scanned.
const MAX_DEPTH: usize = 16;

/// The folder's files by template name, and the context file if there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub templates: BTreeMap<String, (PathBuf, Stamp)>,
    pub context: Option<(PathBuf, Stamp)>,
    /// `data/<name>.json` files by variable name (`<name>`), for the context's data layer.
    pub data: BTreeMap<String, (PathBuf, Stamp)>,
}

/// Lists the templates under `dir`. A missing folder is an empty scan.
pub fn scan(dir: &Path) -> io::Result<Scan> {
    let mut found = Scan::default();
    let root = match fs::canonicalize(dir) {
        Ok(root) => root,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(error),
    };
    walk(&root, &root, "", 0, &mut found)?;
    let data = root.join("data");
    if data.is_dir() {
        for entry in fs::read_dir(&data)? {
            let entry = entry?;
            let path = entry.path();
            let Some(stem) = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .filter(|stem| !stem.starts_with('.'))
            else {
                continue;
            };
            let valid_name = stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !stem.starts_with(|c: char| c.is_ascii_digit());
            if path.extension().is_some_and(|ext| ext == "json") && valid_name {
                let metadata = fs::metadata(&path)?;
                if metadata.is_file() {
                    let stamp = Stamp {
                        len: metadata.len(),
                        modified: metadata.modified().ok(),
                    };
                    found.data.insert(stem.to_owned(), (path, stamp));
                }
            }
        }
    }
    Ok(found)
}

fn walk(root: &Path, dir: &Path, prefix: &str, depth: usize, found: &mut Scan) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            log::warn!("templates: skipping {}: not UTF-8", entry.path().display());
            continue;
        };
        if file_name.starts_with('.') || (depth == 0 && file_name == "data") {
            continue;
        }
        // Follow links only when they stay inside the templates folder.
        let Ok(target) = fs::canonicalize(entry.path()) else {
            continue;
        };
        if !target.starts_with(root) {
            log::warn!(
                "templates: skipping {}: it points outside the templates folder",
                entry.path().display()
            );
            continue;
        }
        let metadata = fs::metadata(&target)?;
        let name = format!("{prefix}{file_name}");
        if metadata.is_dir() {
            walk(root, &target, &format!("{name}/"), depth + 1, found)?;
        } else if metadata.is_file() {
            let stamp = Stamp {
                len: metadata.len(),
                modified: metadata.modified().ok(),
            };
            if depth == 0 && matches!(file_name.as_str(), "_context.toml" | "_context.json") {
                found.context = Some((target, stamp));
            } else {
                found.templates.insert(name, (target, stamp));
            }
        }
    }
    Ok(())
}

/// Reads a template's source.
pub fn read_source(path: &Path) -> Result<String, TemplateError> {
    let metadata = fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::TooLarge {
            bytes: metadata.len(),
            limit: MAX_SOURCE_BYTES,
        });
    }
    let bytes = fs::read(path).map_err(read_error)?;
    String::from_utf8(bytes).map_err(|_| TemplateError::NotUtf8)
}

fn read_error(error: io::Error) -> TemplateError {
    TemplateError::Read {
        reason: error.to_string().into(),
    }
}

/// Reads the global context: a TOML or JSON file whose top level is a table/object.
pub fn read_context(path: &Path) -> Result<Variables, TemplateError> {
    let text = read_source(path)?;
    let syntax = |error: &dyn std::fmt::Display| TemplateError::ContextSyntax {
        reason: error.to_string().into(),
    };
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text).map_err(|error| syntax(&error))?;
        serde_json::to_value(table).map_err(|error| syntax(&error))?
    } else {
        serde_json::from_str(&text).map_err(|error| syntax(&error))?
    };
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(TemplateError::ContextNotATable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_scan_names_files_and_skips_what_is_not_a_template() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("pages/deep")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        for file in [
            "base.html",
            "pages/a.html",
            "pages/deep/b.txt",
            "data/users.json",
            ".git/config",
            ".hidden.html",
            "_context.toml",
        ] {
            fs::write(root.join(file), "x").unwrap();
        }
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.html"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.html"), root.join("leak.html"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("base.html"), root.join("alias.html")).unwrap();

        let scan = scan(root).unwrap();
        let names: Vec<&str> = scan.templates.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "alias.html",
                "base.html",
                "pages/a.html",
                "pages/deep/b.txt"
            ]
        );
        assert!(scan.context.unwrap().0.ends_with("_context.toml"));
        assert_eq!(super::scan(&root.join("missing")).unwrap(), Scan::default());
        let data: Vec<&str> = scan.data.keys().map(String::as_str).collect();
        assert_eq!(data, ["users"], "data/users.json is the variable `users`");
    }

    #[test]
    fn templates_context_files_must_hold_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("_context.toml");
        fs::write(
            &toml,
            "site = \"leanserve\"\n[nav]\nitems = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let context = read_context(&toml).unwrap();
        assert_eq!(context["site"], "leanserve");
        assert_eq!(context["nav"]["items"][1], "b");
        let json = dir.path().join("_context.json");
        fs::write(&json, "[1, 2]").unwrap();
        assert_eq!(
            read_context(&json).unwrap_err(),
            TemplateError::ContextNotATable
        );
        fs::write(&json, "{oops").unwrap();
        assert!(matches!(
            read_context(&json),
            Err(TemplateError::ContextSyntax { .. })
        ));
        let binary = dir.path().join("bin.html");
        fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert_eq!(read_source(&binary).unwrap_err(), TemplateError::NotUtf8);
    }
}
