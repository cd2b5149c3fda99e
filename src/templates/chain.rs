//! Extends chains: what a template's `{% extends %}` says and the chain of parents it
//! leads to, read with minijinja's parser (through [`machinery`](super::machinery)).
//!
//! A chain is a *load* property: a cycle, a missing parent or a chain over [`MAX_CHAIN`]
//! makes the template unservable ([`ChainError`]). A dynamic `{% extends %}` (an
//! expression) ends the chain where it is; the flattener refuses it, minijinja's own
//! inheritance serves it.

use super::machinery::ast::{Expr, Stmt};
use super::machinery::parse;

/// Hard limit on an extends chain (templates in it, the template itself included).
pub const MAX_CHAIN: usize = 64;

/// What a template's `{% extends %}` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extends {
    /// No extends: a root template.
    None,
    /// `{% extends "name" %}` with a string literal, at top level.
    Static(String),
    /// Extends with any other expression, more than once, or not at the top level (inside
    /// if/for/block...).
    Dynamic,
}

/// Why a chain cannot be resolved. These are *load errors* (the template is broken).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The source does not parse.
    #[error("{template}: syntax error: {message}")]
    Syntax {
        /// The template.
        template: String,
        /// minijinja's message.
        message: String,
    },
    /// The chain comes back to a template already in it, e.g. `["a", "b", "a"]`.
    #[error("{}: extends cycle: {}", first(chain), arrows(chain))]
    Cycle {
        /// The chain, from the template asked for back to the repeated one.
        chain: Vec<String>,
    },
    /// `template` extends `parent`, which does not exist. `chain` runs from the template
    /// asked for to `parent`. When the template asked for does not exist itself, `template`
    /// is empty, `parent` is its name and `chain` is empty.
    #[error("{}", missing_message(template, parent, chain))]
    MissingParent {
        /// The template that extends the missing one.
        template: String,
        /// The missing template.
        parent: String,
        /// The chain up to `parent`.
        chain: Vec<String>,
    },
    /// The chain is longer than 64 templates (`MAX_CHAIN`); `chain` holds its first 65 names.
    #[error(
        "{}: extends chain longer than {MAX_CHAIN} templates: {}",
        first(chain),
        arrows(chain)
    )]
    TooDeep {
        /// The chain's first names.
        chain: Vec<String>,
    },
}

fn arrows(chain: &[String]) -> String {
    chain.join(" -> ")
}

fn first(chain: &[String]) -> &str {
    chain.first().map_or("", String::as_str)
}

fn missing_message(template: &str, parent: &str, chain: &[String]) -> String {
    if template.is_empty() {
        format!("template {parent:?} not found")
    } else {
        format!(
            "{template}: extends missing template {parent:?} (chain: {})",
            arrows(chain)
        )
    }
}

/// The parent named by a template's source (parsing it with minijinja's parser).
pub fn extends(name: &str, source: &str) -> Result<Extends, ChainError> {
    let template = parse_source(name, source)?;
    Ok(match classify_extends(top_level(&template)) {
        ExtendsInfo::None => Extends::None,
        ExtendsInfo::Static { parent, .. } => Extends::Static(parent),
        ExtendsInfo::Dynamic(_) => Extends::Dynamic,
    })
}

/// The chain of `name`: `[name, parent, grandparent, ..., root]`. `lookup` answers a
/// template's source. A Dynamic extends ends the chain at that template (it is reported by
/// [`flatten`](super::flatten::flatten), not here).
pub fn chain<'s>(
    name: &str,
    lookup: impl Fn(&str) -> Option<&'s str>,
) -> Result<Vec<String>, ChainError> {
    let Some(mut source) = lookup(name) else {
        return Err(ChainError::MissingParent {
            template: String::new(),
            parent: name.to_string(),
            chain: Vec::new(),
        });
    };
    let mut names = vec![name.to_string()];
    loop {
        let current = names.last().cloned().unwrap_or_default();
        let parent = match extends(&current, source)? {
            Extends::None | Extends::Dynamic => return Ok(names),
            Extends::Static(parent) => parent,
        };
        if names.contains(&parent) {
            names.push(parent);
            return Err(ChainError::Cycle { chain: names });
        }
        if names.len() >= MAX_CHAIN {
            names.push(parent);
            return Err(ChainError::TooDeep { chain: names });
        }
        let Some(parent_source) = lookup(&parent) else {
            names.push(parent.clone());
            return Err(ChainError::MissingParent {
                template: current,
                parent,
                chain: names,
            });
        };
        names.push(parent);
        source = parent_source;
    }
}

/// What the top level of a template says about `{% extends %}`.
pub(super) enum ExtendsInfo {
    None,
    /// One top-level `{% extends "literal" %}`, at index `at` of the top-level statements.
    Static {
        parent: String,
        at: usize,
    },
    /// Why the parent cannot be known without rendering.
    Dynamic(&'static str),
}

/// A template's syntax tree, read with the default syntax.
pub(super) fn parse_source<'a>(name: &'a str, source: &'a str) -> Result<Stmt<'a>, ChainError> {
    parse(source, name).map_err(|error| ChainError::Syntax {
        template: name.to_string(),
        message: error.to_string(),
    })
}

/// The top-level statements of a parsed template.
pub(super) fn top_level<'t, 'a>(template: &'t Stmt<'a>) -> &'t [Stmt<'a>] {
    match template {
        Stmt::Template(template) => &template.children,
        _ => &[],
    }
}

/// The statement lists nested directly inside `stmt` (loop bodies, branches, block bodies...).
pub(super) fn bodies<'t, 'a>(stmt: &'t Stmt<'a>) -> Vec<&'t [Stmt<'a>]> {
    match stmt {
        Stmt::Template(s) => vec![&s.children],
        Stmt::ForLoop(s) => vec![&s.body, &s.else_body],
        Stmt::IfCond(s) => vec![&s.true_body, &s.false_body],
        Stmt::WithBlock(s) => vec![&s.body],
        Stmt::SetBlock(s) => vec![&s.body],
        Stmt::AutoEscape(s) => vec![&s.body],
        Stmt::FilterBlock(s) => vec![&s.body],
        Stmt::Block(s) => vec![&s.body],
        Stmt::Macro(s) => vec![&s.body],
        Stmt::CallBlock(s) => vec![&s.macro_decl.body],
        Stmt::EmitExpr(_)
        | Stmt::EmitRaw(_)
        | Stmt::Set(_)
        | Stmt::Import(_)
        | Stmt::FromImport(_)
        | Stmt::Extends(_)
        | Stmt::Include(_)
        | Stmt::Continue(_)
        | Stmt::Break(_)
        | Stmt::Do(_) => Vec::new(),
    }
}

fn contains_extends(stmts: &[Stmt<'_>]) -> bool {
    stmts.iter().any(|stmt| {
        matches!(stmt, Stmt::Extends(_)) || bodies(stmt).into_iter().any(contains_extends)
    })
}

/// What the top-level statements `children` say about `{% extends %}`.
pub(super) fn classify_extends(children: &[Stmt<'_>]) -> ExtendsInfo {
    let nested = children
        .iter()
        .any(|stmt| bodies(stmt).into_iter().any(contains_extends));
    if nested {
        return ExtendsInfo::Dynamic("has {% extends %} below the top level");
    }
    let mut found = children
        .iter()
        .enumerate()
        .filter_map(|(at, stmt)| match stmt {
            Stmt::Extends(extends) => Some((at, extends)),
            _ => None,
        });
    let Some((at, extends)) = found.next() else {
        return ExtendsInfo::None;
    };
    if found.next().is_some() {
        return ExtendsInfo::Dynamic("has more than one {% extends %}");
    }
    match &extends.name {
        Expr::Const(constant) => match constant.value.as_str() {
            Some(parent) => ExtendsInfo::Static {
                parent: parent.to_string(),
                at,
            },
            None => ExtendsInfo::Dynamic("extends a constant that is not a string"),
        },
        _ => ExtendsInfo::Dynamic("extends an expression, not a string literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_kinds() {
        assert_eq!(extends("a", "hello"), Ok(Extends::None));
        assert_eq!(
            extends("a", "{% extends 'base.html' %}x"),
            Ok(Extends::Static("base.html".into()))
        );
        assert_eq!(
            extends("a", "  {%- extends \"b\" -%}{% block x %}{% endblock %}"),
            Ok(Extends::Static("b".into()))
        );
        assert_eq!(extends("a", "{% extends parent %}"), Ok(Extends::Dynamic));
        assert_eq!(
            extends("a", "{% extends 'a' ~ 'b' %}"),
            Ok(Extends::Dynamic)
        );
        assert_eq!(extends("a", "{% extends 42 %}"), Ok(Extends::Dynamic));
        assert_eq!(
            extends("a", "{% if x %}{% extends 'b' %}{% endif %}"),
            Ok(Extends::Dynamic)
        );
        assert_eq!(
            extends("a", "{% block q %}{% extends 'b' %}{% endblock %}"),
            Ok(Extends::Dynamic)
        );
        assert_eq!(
            extends("a", "{% extends 'b' %}{% extends 'b' %}"),
            Ok(Extends::Dynamic)
        );
        let Err(ChainError::Syntax { template, message }) = extends("bad", "{% if %}") else {
            panic!("expected a syntax error");
        };
        assert_eq!(template, "bad");
        assert!(message.contains("syntax error"), "{message}");
    }
}
