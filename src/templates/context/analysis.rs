//! Variable analysis: the variables a template reads, through its `extends` chain, its
//! `include`s and its `import`s.
//!
//! minijinja's [`Template::undeclared_variables`](minijinja::Template::undeclared_variables)
//! looks at one template only: it skips `extends`, `include`, `import` and
//! `from ... import` entirely (not even the variables in a computed template name are
//! reported), so this module follows the statically known template names itself (walking
//! the syntax tree through `templates::machinery`) and unions the sets.

use std::collections::{BTreeSet, HashSet};

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

use crate::templates::machinery::{self, ast};

/// What [`analyse`] found out about a template and the templates it pulls in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// The variables the templates read without defining them: top-level names, or
    /// dotted paths such as `user.name` when asked for nested paths. Globals such as
    /// `range` are included (minijinja does not special-case them; see
    /// [`without_globals`]).
    pub variables: BTreeSet<String>,
    /// Every template visited: the one analysed, its parents, includes and imports.
    pub templates: BTreeSet<String>,
    /// Templates referenced by a constant name that the environment does not have
    /// (`ignore missing` includes and alternatives of an include list are not listed).
    pub missing: BTreeSet<String>,
    /// Templates that extend, include or import a template whose name is computed at
    /// render time: what that template reads is not in [`variables`](Self::variables),
    /// so the analysis is incomplete for them. The variables the name expression
    /// mentions are in `variables`.
    pub dynamic: BTreeSet<String>,
}

/// The top-level variables template `name` reads, through its extends chain, includes
/// and imports when their names are constant. See [`analyse`].
pub fn variables_used(env: &Environment<'_>, name: &str) -> Result<BTreeSet<String>, Error> {
    analyse(env, name, false).map(|analysis| analysis.variables)
}

/// Like [`variables_used`] but with nested attribute paths (`user.name`), as reported
/// by `undeclared_variables(true)`. A variable used as a whole appears without a path.
pub fn variable_paths(env: &Environment<'_>, name: &str) -> Result<BTreeSet<String>, Error> {
    analyse(env, name, true).map(|analysis| analysis.variables)
}

/// Removes the names of the environment's globals (`range`, `namespace`, functions the
/// application registered) from `variables`: what is left must come from the context.
pub fn without_globals(env: &Environment<'_>, variables: &BTreeSet<String>) -> BTreeSet<String> {
    let globals: HashSet<&str> = env.globals().map(|(name, _)| name).collect();
    variables
        .iter()
        .filter(|name| {
            let top = name.split('.').next().unwrap_or(name);
            !globals.contains(top)
        })
        .cloned()
        .collect()
}

/// Analyses template `name`: the union of minijinja's `undeclared_variables(nested)` over
/// the template and every template it statically extends, includes or imports
/// (transitively, each once, so cycles end).
///
/// The result over-approximates what one render reads: blocks a child overrides are
/// still counted in the parent, both branches of an `if` count, and a variable the
/// including template sets before an `include` is still reported for the included one.
/// That is the safe side for deciding which variables a template needs.
///
/// Errors: the template itself does not exist or does not compile, or a referenced one
/// exists but does not compile. Referenced templates that do not exist are listed in
/// [`Analysis::missing`].
pub fn analyse(env: &Environment<'_>, name: &str, nested: bool) -> Result<Analysis, Error> {
    let mut analysis = Analysis::default();
    let mut seen = HashSet::new();
    // (template name, whether it may be missing, whether it is the analysed template)
    let mut queue = vec![(name.to_owned(), false, true)];
    while let Some((current, may_be_missing, is_root)) = queue.pop() {
        if !seen.insert(current.clone()) {
            continue;
        }
        let template = match env.get_template(&current) {
            Ok(template) => template,
            Err(error) if !is_root && error.kind() == ErrorKind::TemplateNotFound => {
                if !may_be_missing {
                    analysis.missing.insert(current);
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        analysis
            .variables
            .extend(template.undeclared_variables(nested));
        let ast = machinery::parse_loaded(&template)?;
        let mut refs = References::default();
        refs.walk(&ast);
        if refs.dynamic {
            analysis.dynamic.insert(current.clone());
        }
        analysis.variables.extend(refs.dynamic_variables);
        for (reference, may_be_missing) in refs.names {
            if !seen.contains(&reference) {
                queue.push((reference, may_be_missing, false));
            }
        }
        analysis.templates.insert(current);
    }
    Ok(analysis)
}

/// The templates one template refers to, found by walking its syntax tree.
#[derive(Default)]
struct References {
    /// Constant template names, and whether each may be missing without an error.
    names: Vec<(String, bool)>,
    /// Whether some template name is computed at render time.
    dynamic: bool,
    /// The variables computed template names mention.
    dynamic_variables: BTreeSet<String>,
}

impl References {
    /// Visits a statement and every statement nested in it.
    fn walk(&mut self, stmt: &ast::Stmt<'_>) {
        match stmt {
            ast::Stmt::Template(t) => self.walk_all(&t.children),
            ast::Stmt::ForLoop(f) => {
                self.walk_all(&f.body);
                self.walk_all(&f.else_body);
            }
            ast::Stmt::IfCond(i) => {
                self.walk_all(&i.true_body);
                self.walk_all(&i.false_body);
            }
            ast::Stmt::WithBlock(w) => self.walk_all(&w.body),
            ast::Stmt::SetBlock(s) => self.walk_all(&s.body),
            ast::Stmt::AutoEscape(a) => self.walk_all(&a.body),
            ast::Stmt::FilterBlock(f) => self.walk_all(&f.body),
            ast::Stmt::Block(b) => self.walk_all(&b.body),
            ast::Stmt::Macro(m) => self.walk_all(&m.body),
            ast::Stmt::CallBlock(c) => self.walk_all(&c.macro_decl.body),
            ast::Stmt::Extends(e) => self.reference(&e.name, false),
            ast::Stmt::Include(i) => self.reference(&i.name, i.ignore_missing),
            ast::Stmt::Import(i) => self.reference(&i.expr, false),
            ast::Stmt::FromImport(i) => self.reference(&i.expr, false),
            // Statements without nested statements or template references (and any
            // added by a later minijinja: the walk is over an unstable API).
            _ => {}
        }
    }

    fn walk_all(&mut self, stmts: &[ast::Stmt<'_>]) {
        for stmt in stmts {
            self.walk(stmt);
        }
    }

    /// Records the template(s) a name expression designates: a constant string, a
    /// constant list of alternatives (each may be missing: the first that exists is
    /// used), or something computed.
    fn reference(&mut self, name: &ast::Expr<'_>, ignore_missing: bool) {
        let constant = name.as_const();
        if let Some(single) = constant.as_ref().and_then(|v| v.as_str()) {
            self.names.push((single.to_owned(), ignore_missing));
            return;
        }
        if let Some(list) = constant.and_then(|v| v.try_iter().ok()) {
            let choices: Vec<Value> = list.collect();
            if choices.iter().all(|c| c.as_str().is_some()) {
                for choice in choices.iter().filter_map(|c| c.as_str()) {
                    self.names.push((choice.to_owned(), true));
                }
                return;
            }
        }
        self.dynamic = true;
        expression_variables(name, &mut self.dynamic_variables);
    }
}

/// Every variable name an expression mentions. Used only for computed template names,
/// which `undeclared_variables` skips; it does not know about scopes, so a loop variable
/// used as a template name is reported too (an over-approximation).
fn expression_variables(expr: &ast::Expr<'_>, out: &mut BTreeSet<String>) {
    let args = |args: &[ast::CallArg<'_>], out: &mut BTreeSet<String>| {
        for arg in args {
            match arg {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => expression_variables(e, out),
            }
        }
    };
    match expr {
        ast::Expr::Var(v) => {
            out.insert(v.id.to_owned());
        }
        ast::Expr::Const(_) => {}
        ast::Expr::Slice(s) => {
            expression_variables(&s.expr, out);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expression_variables(part, out);
            }
        }
        ast::Expr::UnaryOp(u) => expression_variables(&u.expr, out),
        ast::Expr::BinOp(b) => {
            expression_variables(&b.left, out);
            expression_variables(&b.right, out);
        }
        ast::Expr::Compare(c) => {
            expression_variables(&c.expr, out);
            for op in &c.ops {
                expression_variables(&op.expr, out);
            }
        }
        ast::Expr::IfExpr(i) => {
            expression_variables(&i.test_expr, out);
            expression_variables(&i.true_expr, out);
            if let Some(e) = &i.false_expr {
                expression_variables(e, out);
            }
        }
        ast::Expr::Filter(f) => {
            if let Some(e) = &f.expr {
                expression_variables(e, out);
            }
            args(&f.args, out);
        }
        ast::Expr::Test(t) => {
            expression_variables(&t.expr, out);
            args(&t.args, out);
        }
        ast::Expr::GetAttr(g) => expression_variables(&g.expr, out),
        ast::Expr::GetItem(g) => {
            expression_variables(&g.expr, out);
            expression_variables(&g.subscript_expr, out);
        }
        ast::Expr::Call(c) => {
            expression_variables(&c.expr, out);
            args(&c.args, out);
        }
        ast::Expr::List(l) => l.items.iter().for_each(|e| expression_variables(e, out)),
        ast::Expr::Tuple(t) => t.items.iter().for_each(|e| expression_variables(e, out)),
        ast::Expr::Map(m) => {
            m.keys
                .iter()
                .chain(m.values.iter())
                .for_each(|e| expression_variables(e, out));
        }
    }
}
