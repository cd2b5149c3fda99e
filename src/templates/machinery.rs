//! The one door to minijinja's `unstable_machinery`: its parser, lexer, syntax tree and
//! compiled templates, which follow no semver promise (hence the exact `=3.1.0` pin in
//! `Cargo.toml`). No other module imports `minijinja::machinery`.
//!
//! Three parts of the engine read it: [`chain`](super::chain) and
//! [`flatten`](super::flatten) parse sources and copy tags token by token,
//! [`memory`](super::memory) cuts static text out of sources by token span, and
//! [`analysis`](super::context::analysis) walks a loaded template's syntax tree for the
//! templates it references. Everything but [`parse_loaded`] uses minijinja's default
//! syntax, as the flattener does.
//!
//! # Upgrading minijinja
//!
//! The tests below pin what those parts assume about the tree and the tokens. Each
//! assertion names the assumption it checks; when one fails after an upgrade, read the
//! named module against the new minijinja before changing the test.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Error, Template};

pub use minijinja::machinery::{Span, Token, ast};

/// The syntax tree of `source`, read with the default syntax: a [`ast::Stmt::Template`]
/// whose children are the top-level statements.
pub fn parse<'s>(source: &'s str, name: &'s str) -> Result<ast::Stmt<'s>, Error> {
    minijinja::machinery::parse(source, name, SyntaxConfig::default())
}

/// The tokens of `source` with their spans, read with the default syntax.
pub fn tokenize(source: &str) -> impl Iterator<Item = Result<(Token<'_>, Span), Error>> {
    minijinja::machinery::tokenize(source, false, SyntaxConfig::default())
}

/// The syntax tree of a template loaded in an environment, parsed again from its source
/// with the syntax it was compiled with.
pub fn parse_loaded<'t, 'env>(template: &'t Template<'env, 'env>) -> Result<ast::Stmt<'t>, Error> {
    let compiled = minijinja::machinery::get_compiled_template(template);
    minijinja::machinery::parse(
        template.source(),
        template.name(),
        compiled.syntax_config.clone(),
    )
}

#[cfg(test)]
mod tests {
    //! Loud checks of what the engine assumes about minijinja 3.1's machinery. A failure
    //! here after an upgrade means the upgrade broke the named assumption.

    use super::ast::{CallType, Expr, Stmt};
    use super::*;

    const BROKE: &str = "the minijinja upgrade broke an assumption of the template engine";

    fn parsed(source: &str) -> Stmt<'_> {
        parse(source, "t.html").unwrap_or_else(|e| panic!("{BROKE}: parse failed: {e}"))
    }

    fn top_level<'t, 'a>(tree: &'t Stmt<'a>) -> &'t [Stmt<'a>] {
        match tree {
            Stmt::Template(template) => &template.children,
            other => panic!("{BROKE}: parse() no longer answers Stmt::Template: {other:?}"),
        }
    }

    #[test]
    fn machinery_extends_is_a_top_level_statement_with_a_constant_name() {
        let tree = parsed("{% extends \"base.html\" %}{% block a %}x{% endblock %}");
        let children = top_level(&tree);
        let Some(Stmt::Extends(extends)) = children.first() else {
            panic!("{BROKE} (chain.rs): `{{% extends %}}` is not a top-level Stmt::Extends");
        };
        let Expr::Const(name) = &extends.name else {
            panic!("{BROKE} (chain.rs): a literal extends name is not an Expr::Const");
        };
        assert_eq!(
            name.value.as_str(),
            Some("base.html"),
            "{BROKE} (chain.rs): the constant of a literal extends name is not its string"
        );
        assert!(
            matches!(children.get(1), Some(Stmt::Block(block)) if block.name == "a"),
            "{BROKE} (flatten): `{{% block %}}` is not a Stmt::Block carrying its name"
        );
    }

    #[test]
    fn machinery_super_and_self_calls_are_identified() {
        let tree = parsed("{% block a %}{{ super() }}{{ self.b() }}{% endblock %}");
        let children = top_level(&tree);
        let Some(Stmt::Block(block)) = children.first() else {
            panic!("{BROKE} (flatten): `{{% block %}}` is not a Stmt::Block");
        };
        let calls: Vec<CallType<'_, '_>> = block
            .body
            .iter()
            .map(|stmt| match stmt {
                Stmt::EmitExpr(emit) => match &emit.expr {
                    Expr::Call(call) => call.identify_call(),
                    other => panic!("{BROKE} (flatten): a call is not Expr::Call: {other:?}"),
                },
                other => panic!("{BROKE} (flatten): `{{{{ }}}}` is not Stmt::EmitExpr: {other:?}"),
            })
            .collect();
        assert!(
            matches!(
                calls[..],
                [CallType::Function("super"), CallType::Block("b")]
            ),
            "{BROKE} (flatten): identify_call() no longer names super() and self.<block>()"
        );
    }

    #[test]
    fn machinery_statement_spans_start_at_the_tag_keyword() {
        let source = "<p>{%- for i in items %}{{ i }}{% endfor %}";
        let tree = parsed(source);
        let children = top_level(&tree);
        let Some(Stmt::ForLoop(for_loop)) = children.get(1) else {
            panic!("{BROKE} (flatten): a for loop after text is not the second Stmt::ForLoop");
        };
        let start = for_loop.span().start_offset as usize;
        assert_eq!(
            &source[start..start + 3],
            "for",
            "{BROKE} (flatten): a statement's span no longer starts at its keyword, so tags \
             cannot be copied from the source token by token"
        );
    }

    #[test]
    fn machinery_whitespace_control_is_resolved_by_the_lexer() {
        let tree = parsed("a  {%- if x %}b{% endif %}");
        let children = top_level(&tree);
        assert!(
            matches!(children.first(), Some(Stmt::EmitRaw(raw)) if raw.raw == "a"),
            "{BROKE} (flatten): the parsed template data no longer carries the trimmed text"
        );
    }

    #[test]
    fn machinery_template_data_spans_match_their_text_without_whitespace_control() {
        let source = "<h1>{{ title }}</h1>{% if x %}y{% endif %}";
        let mut data = Vec::new();
        let mut block_ends = 0;
        for token in tokenize(source) {
            let (token, span) = token.unwrap_or_else(|e| panic!("{BROKE}: tokenize: {e}"));
            match token {
                Token::TemplateData(text) => {
                    let exact = source.get(span.start_offset as usize..span.end_offset as usize);
                    data.push((text, exact == Some(text)));
                }
                Token::BlockEnd => block_ends += 1,
                _ => {}
            }
        }
        assert_eq!(
            data,
            [("<h1>", true), ("</h1>", true), ("y", true)],
            "{BROKE} (memory.rs): template data spans no longer cover exactly their text, so \
             static sections cannot be cut out of sources by span"
        );
        assert_eq!(
            block_ends, 2,
            "{BROKE} (flatten): `%}}` is no longer one Token::BlockEnd"
        );
    }

    #[test]
    fn machinery_loop_controls_and_template_references_parse() {
        let tree = parsed(
            "{% for i in x %}{% break %}{% continue %}{% endfor %}\
             {% include ['a.html', 'b.html'] ignore missing %}{% import 'm.html' as m %}\
             {% from 'm.html' import f %}",
        );
        let children = top_level(&tree);
        let Some(Stmt::ForLoop(for_loop)) = children.first() else {
            panic!("{BROKE} (flatten): `{{% for %}}` is not a Stmt::ForLoop");
        };
        assert!(
            matches!(for_loop.body[..], [Stmt::Break(_), Stmt::Continue(_)]),
            "{BROKE} (flatten): break/continue are not Stmt::Break/Stmt::Continue \
             (is the loop_controls feature on?)"
        );
        assert!(
            matches!(&children[1], Stmt::Include(include) if include.ignore_missing
                && include.name.as_const().is_some_and(|v| v.try_iter().is_ok())),
            "{BROKE} (analysis.rs): an include list is not a constant list with ignore_missing"
        );
        assert!(
            matches!(&children[2], Stmt::Import(import) if import.expr.as_const().is_some()),
            "{BROKE} (analysis.rs): `{{% import %}}` does not carry its constant name in `expr`"
        );
        assert!(
            matches!(&children[3], Stmt::FromImport(import) if import.expr.as_const().is_some()),
            "{BROKE} (analysis.rs): `{{% from %}}` does not carry its constant name in `expr`"
        );
    }

    #[test]
    fn machinery_loaded_templates_parse_again_from_their_source() {
        let mut env = minijinja::Environment::new();
        env.add_template("page.html", "{% include 'part.html' %}")
            .unwrap();
        let template = env.get_template("page.html").unwrap();
        let tree = parse_loaded(&template)
            .unwrap_or_else(|e| panic!("{BROKE} (analysis.rs): parse_loaded: {e}"));
        assert!(
            matches!(&tree, Stmt::Template(t) if matches!(t.children[..], [Stmt::Include(_)])),
            "{BROKE} (analysis.rs): a loaded template does not parse back to its statements"
        );
    }
}
