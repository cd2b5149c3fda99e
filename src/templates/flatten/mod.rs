//! Flattening of `{% extends %}` chains into single, self-contained templates.
//!
//! [`flatten`] turns a template and all of its ancestors into one template source without
//! `{% extends %}` that renders byte for byte like the original chain under minijinja 3.1
//! (default syntax and whitespace settings). Anything it cannot prove equivalent is refused
//! with an [`Unflattenable`] reason; such a template still renders through minijinja's own
//! inheritance.
//!
//! # What minijinja 3.1 does with a chain (read from `src/vm`, checked by the tests in `tests.rs`)
//!
//! * A child runs first. Everything before its `{% extends %}` renders normally. The extends
//!   tag loads the parent's blocks and switches the output to *discard*; the rest of the
//!   child still executes in the root frame (`set`, `macro`, `import`, expressions, loops),
//!   but block calls are skipped. Then the parent runs from its start in the same frame, so
//!   the child's top-level variables are visible to the parent unless the parent overwrites
//!   them.
//! * Every block call renders the most derived definition of that block, in a new frame
//!   pushed on the *caller's* scope: a block sees the loop variables and `set`s around its
//!   call site, and its own `set`s do not leak out.
//! * `{{ super() }}` renders the next definition up the chain, again in a new frame pushed on
//!   the scope at the `super()` call: the parent body sees the child block's variables and
//!   loop variables, with the same auto-escape as at the call site.
//! * `{{ self.name() }}` calls a block like a block tag does, and ignores its arguments.
//! * Whitespace control is resolved entirely by the lexer, so the parsed template data already
//!   carries the exact trimmed text.
//!
//! # How a chain is flattened
//!
//! The output is: for each child (leaf first) its text before `{% extends %}`, then its
//! statements after `{% extends %}` inside `{% set __flatten_discard %}…{% endset %}` (which
//! executes them in the root frame and throws their output away), then the root template.
//! Every block call site becomes either the block's single `{% block %}` definition, holding
//! its most derived body, or `{{ self.name() }}` (the same VM instruction). `{{ super() }}` is
//! replaced by the parent's body inside `{% with %}…{% endwith %}` (the same new frame that
//! `super()` pushes). Blocks not reached from the root are kept inside a trailing
//! `{% if false %}` so that templates extending the flattened one, and `self.name()` calls,
//! still find them. Keeping the block tags keeps the flattened template extendable: a child
//! of it can still override any block and `super()` into it.
//!
//! # What is refused ([`Unflattenable`])
//!
//! * a dynamic `{% extends %}` anywhere in the chain (an expression, a non-string constant,
//!   more than one, or one below the top level);
//! * in a child, a `{% block %}` or `self.name()` before `{% extends %}`, and `self.name()`
//!   or a bare `{% include %}` after it (minijinja renders or skips those in ways that depend
//!   on the moment the parent's blocks are loaded);
//! * `super()` other than a plain `{{ super() }}` in a block, outside any block, or inside a
//!   macro or call block;
//! * `loop(...)` in a parent body reached through `super()` that would recurse a loop of the
//!   child around the `super()` call;
//! * blocks that call each other in a cycle (through block tags or `self.name()`): during
//!   such a recursion minijinja may render a parent definition;
//! * results over [`MAX_FLATTENED_BYTES`] or nested too deeply for minijinja's parser.
//!
//! # Limits of the equivalence
//!
//! * The rendered output is identical. A render that fails does so with both forms, but the
//!   error may differ in kind and message (minijinja wraps errors inside a `super()` body as
//!   `EvalBlock`; the flattened template has no `super()` to wrap them).
//! * Fuel use differs (the flattened template usually executes fewer instructions).
//! * The environment must use the default syntax and whitespace settings (no custom
//!   delimiters or line statements, `trim_blocks`, `lstrip_blocks`, `keep_trailing_newline`
//!   off), as the parsed sources are read with those.
//! * minijinja's `loop_controls` feature must be on (its `break`/`continue` AST nodes are
//!   matched), besides the default `multi_template` and `macros`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::chain::{
    ChainError, ExtendsInfo, bodies, chain, classify_extends, parse_source, top_level,
};
use super::machinery::ast::{self, CallArg, CallType, Expr, Stmt};
use super::machinery::{Span, Token, parse, tokenize};

/// Largest flattened source produced; every `super()` copies a parent body, so a long chain
/// of bodies that each call `super()` more than once would otherwise grow exponentially.
pub const MAX_FLATTENED_BYTES: usize = 8 * 1024 * 1024;

/// Deepest statement nesting produced. minijinja's parser refuses templates nested deeper
/// than 150 levels anyway; the limit also bounds this module's own recursion.
const MAX_NESTING: usize = 150;

/// Name of the variable that captures (and so throws away) a child's output after its
/// `{% extends %}`. It starts with `_`, so `{% import %}` does not export it.
const DISCARD_VAR: &str = "__flatten_discard";

/// Why a template is left unflattened (it still renders correctly through minijinja's own
/// inheritance).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{template}: not flattened: {reason}")]
#[non_exhaustive]
pub struct Unflattenable {
    /// The template.
    pub template: String,
    /// Which construct keeps it from being flattened.
    pub reason: String,
}

/// Why a template's extends chain could not be flattened into one template: a broken
/// chain (a load error), or a construct the flattener does not rewrite (the template then
/// renders through minijinja's own inheritance).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlattenError {
    /// The chain cannot be resolved (the template is broken).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The chain is fine but uses something the flattener does not rewrite.
    #[error(transparent)]
    Unflattenable(#[from] Unflattenable),
}

/// The whole chain of `name` flattened into one template source without `extends`, that
/// renders byte-for-byte like `name` does through minijinja's inheritance, for every context.
///
/// A template without `{% extends %}` is returned unchanged. The result keeps `{% block %}`
/// tags, so templates extending the flattened one still override its blocks and `super()`
/// into them as they did with the original.
pub fn flatten<'s>(
    name: &str,
    lookup: impl Fn(&str) -> Option<&'s str>,
) -> Result<String, FlattenError> {
    let names = chain(name, &lookup)?;
    let mut sources = Vec::with_capacity(names.len());
    for (index, member) in names.iter().enumerate() {
        let Some(source) = lookup(member) else {
            let template = index
                .checked_sub(1)
                .and_then(|i| names.get(i))
                .cloned()
                .unwrap_or_default();
            return Err(ChainError::MissingParent {
                template,
                parent: member.clone(),
                chain: names[..=index].to_vec(),
            }
            .into());
        };
        sources.push(source);
    }
    let refuse = |reason: String| Unflattenable {
        template: name.to_string(),
        reason,
    };

    let mut members = Vec::with_capacity(names.len());
    for (member, source) in names.iter().zip(&sources) {
        members.push(Member::new(member, source)?);
    }
    let Some(root) = members.last() else {
        return Err(refuse("empty chain".to_string()).into());
    };
    if let ExtendsInfo::Dynamic(why) = &root.extends {
        return Err(refuse(format!("{} {why}", quote(root.name))).into());
    }
    if members.len() == 1 {
        return Ok(root.source.to_string());
    }
    Flattener::new(&members)
        .run()
        .map_err(|Refusal(reason)| refuse(reason).into())
}

/// Where a token starts and ends in its source, and whether it closes a `{% ... %}` tag.
struct TokenPos {
    start: u32,
    end: u32,
    block_end: bool,
}

/// One template of the chain, parsed.
struct Member<'a> {
    name: &'a str,
    source: &'a str,
    ast: Stmt<'a>,
    extends: ExtendsInfo,
    tokens: Vec<TokenPos>,
}

impl<'a> Member<'a> {
    fn new(name: &'a str, source: &'a str) -> Result<Member<'a>, ChainError> {
        let ast = parse_source(name, source)?;
        let extends = classify_extends(top_level(&ast));
        let mut tokens = Vec::new();
        for token in tokenize(source) {
            let (token, span) = token.map_err(|error| ChainError::Syntax {
                template: name.to_string(),
                message: error.to_string(),
            })?;
            tokens.push(TokenPos {
                start: span.start_offset,
                end: span.end_offset,
                block_end: matches!(token, Token::BlockEnd),
            });
        }
        Ok(Member {
            name,
            source,
            ast,
            extends,
            tokens,
        })
    }
}

fn quote(name: &str) -> String {
    format!("{name:?}")
}

// ---------------------------------------------------------------------------------------------
// Flattening

/// A reason to refuse flattening, as shown to the user.
struct Refusal(String);

type Step = Result<(), Refusal>;

/// One `{% block %}` definition: the template it is in and its AST.
#[derive(Clone, Copy)]
struct Def<'m, 'a> {
    member: usize,
    block: &'m ast::Block<'a>,
}

/// Which part of the chain a statement comes from, which decides how it renders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    /// The root template and all block bodies: rendered normally.
    Render,
    /// A child's statements before its `{% extends %}`: rendered normally, but block calls
    /// would see only part of the chain's blocks.
    Prelude,
    /// A child's statements after its `{% extends %}`: executed, output discarded, block
    /// calls skipped.
    Discard,
}

/// Everything about the position of a statement that changes how it must be emitted.
#[derive(Clone, Copy)]
struct Scope<'a> {
    /// Index of the template (in the chain) whose source the statement comes from.
    member: usize,
    region: Region,
    /// The innermost block being emitted, and which of its definitions (0 = most derived).
    block: Option<(&'a str, usize)>,
    /// Inside a macro or call block body.
    in_macro: bool,
    /// Inside a parent body inlined for `super()`.
    in_super: bool,
    /// Inside a recursive for loop that is part of the innermost inlined `super()` body.
    in_recursive_loop: bool,
    /// In the discard region, inside a statement that captures its body's output.
    capturing: bool,
}

impl<'a> Scope<'a> {
    fn new(member: usize, region: Region) -> Scope<'a> {
        Scope {
            member,
            region,
            block: None,
            in_macro: false,
            in_super: false,
            in_recursive_loop: false,
            capturing: false,
        }
    }
}

struct Flattener<'m, 'a> {
    members: &'m [Member<'a>],
    /// Every block name of the chain with its definitions, most derived first.
    defs: BTreeMap<&'a str, Vec<Def<'m, 'a>>>,
    /// Block names in the order first met (leaf first), for a deterministic output.
    def_order: Vec<&'a str>,
    /// Blocks whose `{% block %}` definition has been written.
    defined: HashSet<&'a str>,
    /// Which blocks each block's body calls (block tags and `self.name()`).
    calls: BTreeMap<&'a str, BTreeSet<&'a str>>,
    out: String,
    nesting: usize,
}

impl<'m, 'a> Flattener<'m, 'a> {
    fn new(members: &'m [Member<'a>]) -> Flattener<'m, 'a> {
        let mut flattener = Flattener {
            members,
            defs: BTreeMap::new(),
            def_order: Vec::new(),
            defined: HashSet::new(),
            calls: BTreeMap::new(),
            out: String::new(),
            nesting: 0,
        };
        for (index, member) in members.iter().enumerate() {
            flattener.collect_defs(index, top_level(&member.ast));
        }
        flattener
    }

    fn collect_defs(&mut self, member: usize, stmts: &'m [Stmt<'a>]) {
        for stmt in stmts {
            if let Stmt::Block(block) = stmt {
                let defs = self.defs.entry(block.name).or_default();
                if defs.is_empty() {
                    self.def_order.push(block.name);
                }
                defs.push(Def { member, block });
            }
            for body in bodies(stmt) {
                self.collect_defs(member, body);
            }
        }
    }

    fn run(mut self) -> Result<String, Refusal> {
        let members = self.members;
        let root = members.len().saturating_sub(1);
        for (index, member) in members.iter().enumerate().take(root) {
            let children = top_level(&member.ast);
            let ExtendsInfo::Static { at, .. } = member.extends else {
                return Err(Refusal(format!(
                    "{} has no static {{% extends %}}",
                    quote(member.name)
                )));
            };
            let (prelude, rest) = children.split_at(at);
            self.emit_stmts(prelude, Scope::new(index, Region::Prelude))?;
            self.emit_discarded(rest.get(1..).unwrap_or(&[]), index)?;
        }
        if let Some(member) = members.get(root) {
            self.emit_stmts(top_level(&member.ast), Scope::new(root, Region::Render))?;
        }
        self.emit_unreached_blocks()?;
        self.check_block_recursion()?;
        if self.out.ends_with(['\n', '\r']) {
            // minijinja drops one trailing newline of a source; keep the real one.
            self.write("{##}")?;
        }
        let name = members.first().map_or("", |m| m.name);
        if let Err(error) = parse(&self.out, name) {
            return Err(Refusal(format!(
                "internal error: the flattened source does not parse ({error})"
            )));
        }
        Ok(self.out)
    }

    /// A child's statements after `{% extends %}`: executed in the root frame, output
    /// thrown away. Omitted entirely when nothing but text and block definitions is there.
    fn emit_discarded(&mut self, stmts: &'m [Stmt<'a>], member: usize) -> Step {
        let mark = self.out.len();
        self.write("{% set ")?;
        self.write(DISCARD_VAR)?;
        self.write(" %}")?;
        let body_start = self.out.len();
        self.emit_stmts(stmts, Scope::new(member, Region::Discard))?;
        if self.out.len() == body_start {
            self.out.truncate(mark);
            Ok(())
        } else {
            self.write("{% endset %}")
        }
    }

    /// Blocks defined in the chain but never called from the root: kept (never rendered)
    /// for `self.name()` calls and for templates that extend the flattened one.
    fn emit_unreached_blocks(&mut self) -> Step {
        let unreached: Vec<&'a str> = self
            .def_order
            .iter()
            .copied()
            .filter(|name| !self.defined.contains(name))
            .collect();
        if unreached.is_empty() {
            return Ok(());
        }
        self.write("{% if false %}")?;
        for name in unreached {
            if !self.defined.contains(name) {
                self.emit_block_definition(name)?;
            }
        }
        self.write("{% endif %}")
    }

    /// Refuses block call cycles: with one, a block may run while a `super()` into it is
    /// active, where minijinja renders a parent definition rather than the most derived one.
    fn check_block_recursion(&self) -> Step {
        fn visit<'a>(
            name: &'a str,
            calls: &BTreeMap<&'a str, BTreeSet<&'a str>>,
            path: &mut Vec<&'a str>,
            done: &mut HashSet<&'a str>,
        ) -> Result<(), Vec<&'a str>> {
            if let Some(start) = path.iter().position(|n| *n == name) {
                let mut cycle = path[start..].to_vec();
                cycle.push(name);
                return Err(cycle);
            }
            if done.contains(name) {
                return Ok(());
            }
            path.push(name);
            for callee in calls.get(name).into_iter().flatten() {
                visit(callee, calls, path, done)?;
            }
            path.pop();
            done.insert(name);
            Ok(())
        }
        let mut done = HashSet::new();
        for name in self.calls.keys() {
            visit(name, &self.calls, &mut Vec::new(), &mut done).map_err(|cycle| {
                Refusal(format!(
                    "blocks call each other recursively: {}",
                    cycle.join(" -> ")
                ))
            })?;
        }
        Ok(())
    }

    // --- writing -----------------------------------------------------------------------------

    fn write(&mut self, text: &str) -> Step {
        if self.out.len() + text.len() > MAX_FLATTENED_BYTES {
            return Err(Refusal(format!(
                "the flattened template would be larger than {MAX_FLATTENED_BYTES} bytes"
            )));
        }
        self.out.push_str(text);
        Ok(())
    }

    /// Template data, protected from being read as markup where it contains `{`.
    fn write_text(&mut self, text: &str) -> Step {
        if text.contains('{') {
            // A `{` could join with a following tag (`{` + `{{`), and text from a raw block
            // may hold `{{`/`{%`; a raw block keeps it literal. Template data never contains
            // a complete `{% endraw %}` tag.
            self.write("{% raw %}")?;
            self.write(text)?;
            self.write("{% endraw %}")
        } else {
            self.write(text)
        }
    }

    fn source_slice(&self, member: usize, start: u32, end: u32) -> Result<&'a str, Refusal> {
        self.members
            .get(member)
            .and_then(|m| m.source.get(start as usize..end as usize))
            .ok_or_else(|| Refusal("internal error: a span does not match its source".into()))
    }

    /// The text of the tag whose keyword starts at `span`: (keyword, rest before `%}`).
    fn tag_parts(&self, member: usize, span: Span) -> Result<(&'a str, &'a str), Refusal> {
        let bad = || Refusal("internal error: a tag does not match its source".into());
        let tokens = &self.members.get(member).ok_or_else(bad)?.tokens;
        let index = tokens
            .binary_search_by_key(&span.start_offset, |t| t.start)
            .map_err(|_| bad())?;
        let keyword = tokens.get(index).ok_or_else(bad)?;
        let end = tokens[index..]
            .iter()
            .find(|t| t.block_end)
            .ok_or_else(bad)?;
        Ok((
            self.source_slice(member, keyword.start, keyword.end)?,
            self.source_slice(member, keyword.end, end.start)?.trim(),
        ))
    }

    /// Writes the tag whose keyword starts at `span`, as it is in the source but without
    /// whitespace control (the parsed template data is already trimmed).
    fn write_tag(&mut self, member: usize, span: Span) -> Step {
        let (keyword, rest) = self.tag_parts(member, span)?;
        self.write_tag_with(keyword, rest)
    }

    fn write_tag_with(&mut self, keyword: &str, rest: &str) -> Step {
        self.write("{% ")?;
        self.write(keyword)?;
        if !rest.is_empty() {
            self.write(" ")?;
            self.write(rest)?;
        }
        self.write(" %}")
    }

    fn refusal(&self, scope: &Scope<'a>, span: Span, what: &str) -> Refusal {
        let name = self.members.get(scope.member).map_or("", |m| m.name);
        Refusal(format!(
            "{what} ({}, line {})",
            quote(name),
            span.start_line
        ))
    }

    // --- statements --------------------------------------------------------------------------

    fn emit_stmts(&mut self, stmts: &'m [Stmt<'a>], scope: Scope<'a>) -> Step {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Refusal(format!(
                "the flattened template would nest deeper than {MAX_NESTING} levels"
            )));
        }
        for stmt in stmts {
            self.emit_stmt(stmt, scope)?;
        }
        self.nesting -= 1;
        Ok(())
    }

    fn emit_stmt(&mut self, stmt: &'m Stmt<'a>, scope: Scope<'a>) -> Step {
        let member = scope.member;
        let captured = Scope {
            capturing: true,
            ..scope
        };
        match stmt {
            Stmt::Template(template) => self.emit_stmts(&template.children, scope),
            Stmt::EmitRaw(raw) => {
                if scope.region == Region::Discard && !scope.capturing {
                    Ok(())
                } else {
                    self.write_text(raw.raw)
                }
            }
            Stmt::EmitExpr(emit) => {
                if is_plain_super(&emit.expr) {
                    return self.emit_super(emit.span(), scope);
                }
                self.check_expr(&emit.expr, &scope)?;
                let span = emit.span();
                let text = self.source_slice(member, span.start_offset, span.end_offset)?;
                self.write("{{ ")?;
                self.write(text)?;
                self.write(" }}")
            }
            Stmt::ForLoop(for_loop) => {
                self.check_expr(&for_loop.target, &scope)?;
                self.check_expr(&for_loop.iter, &scope)?;
                if let Some(filter) = &for_loop.filter_expr {
                    self.check_expr(filter, &scope)?;
                }
                self.write_tag(member, for_loop.span())?;
                let body_scope = Scope {
                    in_recursive_loop: scope.in_recursive_loop || for_loop.recursive,
                    ..scope
                };
                self.emit_stmts(&for_loop.body, body_scope)?;
                if !for_loop.else_body.is_empty() {
                    self.write("{% else %}")?;
                    self.emit_stmts(&for_loop.else_body, scope)?;
                }
                self.write("{% endfor %}")
            }
            Stmt::IfCond(if_cond) => self.emit_if(if_cond, scope),
            Stmt::WithBlock(with) => {
                for (target, expr) in &with.assignments {
                    self.check_expr(target, &scope)?;
                    self.check_expr(expr, &scope)?;
                }
                self.write_tag(member, with.span())?;
                self.emit_stmts(&with.body, scope)?;
                self.write("{% endwith %}")
            }
            Stmt::Set(set) => {
                self.check_expr(&set.target, &scope)?;
                self.check_expr(&set.expr, &scope)?;
                self.write_tag(member, set.span())
            }
            Stmt::SetBlock(set) => {
                self.check_expr(&set.target, &scope)?;
                if let Some(filter) = &set.filter {
                    self.check_expr(filter, &scope)?;
                }
                self.write_tag(member, set.span())?;
                self.emit_stmts(&set.body, captured)?;
                self.write("{% endset %}")
            }
            Stmt::AutoEscape(auto_escape) => {
                self.check_expr(&auto_escape.enabled, &scope)?;
                self.write_tag(member, auto_escape.span())?;
                self.emit_stmts(&auto_escape.body, scope)?;
                self.write("{% endautoescape %}")
            }
            Stmt::FilterBlock(filter) => {
                self.check_expr(&filter.filter, &scope)?;
                self.write_tag(member, filter.span())?;
                self.emit_stmts(&filter.body, captured)?;
                self.write("{% endfilter %}")
            }
            Stmt::Block(block) => match scope.region {
                Region::Render => self.emit_block_call(block.name, &scope),
                // Registered as an override; its call is skipped while output is discarded.
                Region::Discard => Ok(()),
                Region::Prelude => Err(self.refusal(
                    &scope,
                    block.span(),
                    "a {% block %} before {% extends %} (minijinja renders it at once, \
                     with only part of the chain's blocks loaded)",
                )),
            },
            Stmt::Import(import) => {
                self.check_expr(&import.expr, &scope)?;
                self.check_expr(&import.name, &scope)?;
                self.write_tag(member, import.span())
            }
            Stmt::FromImport(import) => {
                self.check_expr(&import.expr, &scope)?;
                for (name, alias) in &import.names {
                    self.check_expr(name, &scope)?;
                    if let Some(alias) = alias {
                        self.check_expr(alias, &scope)?;
                    }
                }
                self.write_tag(member, import.span())
            }
            Stmt::Extends(extends) => {
                Err(self.refusal(&scope, extends.span(), "{% extends %} below the top level"))
            }
            Stmt::Include(include) => {
                if scope.region == Region::Discard && !scope.capturing {
                    return Err(self.refusal(
                        &scope,
                        include.span(),
                        "{% include %} outside blocks after {% extends %} (minijinja skips \
                         the included template's blocks there)",
                    ));
                }
                self.check_expr(&include.name, &scope)?;
                self.write_tag(member, include.span())
            }
            Stmt::Macro(macro_decl) => {
                let inner = Scope {
                    in_macro: true,
                    capturing: true,
                    ..scope
                };
                self.check_macro_signature(macro_decl, &inner)?;
                self.write_tag(member, macro_decl.span())?;
                self.emit_stmts(&macro_decl.body, inner)?;
                self.write("{% endmacro %}")
            }
            Stmt::CallBlock(call_block) => {
                let inner = Scope {
                    in_macro: true,
                    capturing: true,
                    ..scope
                };
                self.check_call(&call_block.call, &scope)?;
                self.check_macro_signature(&call_block.macro_decl, &inner)?;
                self.write_tag(member, call_block.span())?;
                self.emit_stmts(&call_block.macro_decl.body, inner)?;
                self.write("{% endcall %}")
            }
            Stmt::Continue(stmt) => self.write_tag(member, stmt.span()),
            Stmt::Break(stmt) => self.write_tag(member, stmt.span()),
            Stmt::Do(do_tag) => {
                self.check_call(&do_tag.call, &scope)?;
                self.write_tag(member, do_tag.span())
            }
        }
    }

    /// `{% if %}` with its `{% elif %}` chain kept flat (the parser nests `elif`s; writing
    /// them as nested ifs could exceed minijinja's nesting limit).
    fn emit_if(&mut self, if_cond: &'m ast::Spanned<ast::IfCond<'a>>, scope: Scope<'a>) -> Step {
        let member = scope.member;
        self.check_expr(&if_cond.expr, &scope)?;
        let (_, rest) = self.tag_parts(member, if_cond.span())?;
        self.write_tag_with("if", rest)?;
        self.emit_stmts(&if_cond.true_body, scope)?;
        let mut current = if_cond;
        loop {
            match current.false_body.as_slice() {
                [] => break,
                [Stmt::IfCond(next)] if self.tag_parts(member, next.span())?.0 == "elif" => {
                    self.check_expr(&next.expr, &scope)?;
                    let (_, rest) = self.tag_parts(member, next.span())?;
                    self.write_tag_with("elif", rest)?;
                    self.emit_stmts(&next.true_body, scope)?;
                    current = next;
                }
                body => {
                    self.write("{% else %}")?;
                    self.emit_stmts(body, scope)?;
                    break;
                }
            }
        }
        self.write("{% endif %}")
    }

    /// A call of block `name` from a rendered position: its definition the first time,
    /// `{{ self.name() }}` (the same instruction) after that.
    fn emit_block_call(&mut self, name: &'a str, scope: &Scope<'a>) -> Step {
        self.record_call(scope, name);
        if self.defined.contains(name) {
            self.write("{{ self.")?;
            self.write(name)?;
            self.write("() }}")
        } else {
            self.emit_block_definition(name)
        }
    }

    /// `{% block name %}` holding the most derived body, its `super()` calls inlined.
    fn emit_block_definition(&mut self, name: &'a str) -> Step {
        let Some(defs) = self.defs.get(name) else {
            return Err(Refusal(format!("internal error: block {name:?} not found")));
        };
        let (Some(top), only_one) = (defs.first().copied(), defs.len() == 1) else {
            return Err(Refusal(format!("internal error: block {name:?} not found")));
        };
        self.defined.insert(name);
        self.write("{% block ")?;
        self.write(name)?;
        // minijinja errors on a required block only when nothing else defines it.
        if only_one && top.block.required {
            self.write(" required")?;
        }
        self.write(" %}")?;
        let scope = Scope {
            block: Some((name, 0)),
            ..Scope::new(top.member, Region::Render)
        };
        self.emit_stmts(&top.block.body, scope)?;
        self.write("{% endblock %}")
    }

    /// `{{ super() }}`: the next definition up the chain, in a new frame like minijinja's.
    fn emit_super(&mut self, span: Span, scope: Scope<'a>) -> Step {
        if scope.in_macro {
            return Err(self.refusal(&scope, span, "super() inside a macro or call block"));
        }
        let (name, level) = match (scope.region, scope.block) {
            (Region::Render, Some(block)) => block,
            _ => return Err(self.refusal(&scope, span, "super() outside of a block")),
        };
        let parent = self
            .defs
            .get(name)
            .and_then(|defs| defs.get(level + 1))
            .copied();
        let Some(parent) = parent else {
            // No parent definition: minijinja fails with "no parent block exists" when this
            // runs; the flattened template keeps the call and fails the same way.
            return self.write("{{ super() }}");
        };
        self.write("{% with %}")?;
        let inner = Scope {
            block: Some((name, level + 1)),
            in_super: true,
            in_recursive_loop: false,
            ..Scope::new(parent.member, Region::Render)
        };
        self.emit_stmts(&parent.block.body, inner)?;
        self.write("{% endwith %}")
    }

    fn record_call(&mut self, scope: &Scope<'a>, callee: &'a str) {
        if let Some((caller, _)) = scope.block {
            self.calls.entry(caller).or_default().insert(callee);
        }
    }

    // --- expressions -------------------------------------------------------------------------

    fn check_macro_signature(&mut self, decl: &ast::Macro<'a>, scope: &Scope<'a>) -> Step {
        for expr in decl.args.iter().chain(&decl.defaults) {
            self.check_expr(expr, scope)?;
        }
        Ok(())
    }

    /// Refuses the uses of `super()`, `self.name()` and `loop()` inside `expr` that the
    /// flattened template could not render the same way.
    fn check_expr(&mut self, expr: &Expr<'a>, scope: &Scope<'a>) -> Step {
        match expr {
            Expr::Var(_) | Expr::Const(_) => Ok(()),
            Expr::Slice(slice) => {
                self.check_expr(&slice.expr, scope)?;
                for part in [&slice.start, &slice.stop, &slice.step]
                    .into_iter()
                    .flatten()
                {
                    self.check_expr(part, scope)?;
                }
                Ok(())
            }
            Expr::UnaryOp(op) => self.check_expr(&op.expr, scope),
            Expr::BinOp(op) => {
                self.check_expr(&op.left, scope)?;
                self.check_expr(&op.right, scope)
            }
            Expr::Compare(compare) => {
                self.check_expr(&compare.expr, scope)?;
                for op in &compare.ops {
                    self.check_expr(&op.expr, scope)?;
                }
                Ok(())
            }
            Expr::IfExpr(if_expr) => {
                self.check_expr(&if_expr.test_expr, scope)?;
                self.check_expr(&if_expr.true_expr, scope)?;
                match &if_expr.false_expr {
                    Some(expr) => self.check_expr(expr, scope),
                    None => Ok(()),
                }
            }
            Expr::Filter(filter) => {
                if let Some(expr) = &filter.expr {
                    self.check_expr(expr, scope)?;
                }
                self.check_args(&filter.args, scope)
            }
            Expr::Test(test) => {
                self.check_expr(&test.expr, scope)?;
                self.check_args(&test.args, scope)
            }
            Expr::GetAttr(attr) => self.check_expr(&attr.expr, scope),
            Expr::GetItem(item) => {
                self.check_expr(&item.expr, scope)?;
                self.check_expr(&item.subscript_expr, scope)
            }
            Expr::Call(call) => self.check_call(call, scope),
            Expr::List(list) => self.check_exprs(&list.items, scope),
            Expr::Tuple(tuple) => self.check_exprs(&tuple.items, scope),
            Expr::Map(map) => {
                self.check_exprs(&map.keys, scope)?;
                self.check_exprs(&map.values, scope)
            }
        }
    }

    fn check_exprs(&mut self, exprs: &[Expr<'a>], scope: &Scope<'a>) -> Step {
        exprs
            .iter()
            .try_for_each(|expr| self.check_expr(expr, scope))
    }

    fn check_args(&mut self, args: &[CallArg<'a>], scope: &Scope<'a>) -> Step {
        for arg in args {
            match arg {
                CallArg::Pos(expr)
                | CallArg::Kwarg(_, expr)
                | CallArg::PosSplat(expr)
                | CallArg::KwargSplat(expr) => self.check_expr(expr, scope)?,
            }
        }
        Ok(())
    }

    fn check_call(&mut self, call: &ast::Spanned<ast::Call<'a>>, scope: &Scope<'a>) -> Step {
        let span = call.span();
        match call.identify_call() {
            CallType::Function("super") => {
                return Err(self.refusal(
                    scope,
                    span,
                    "super() used other than as a plain {{ super() }}",
                ));
            }
            CallType::Function("loop")
                if scope.in_super && !scope.in_recursive_loop && !scope.in_macro =>
            {
                return Err(self.refusal(
                    scope,
                    span,
                    "loop() in a parent block body reached through super() that recurses a \
                     loop outside that body",
                ));
            }
            CallType::Block(name) => {
                if scope.in_macro {
                    return Err(self.refusal(
                        scope,
                        span,
                        "self.<block>() inside a macro or call block",
                    ));
                }
                match scope.region {
                    Region::Render => self.record_call(scope, name),
                    Region::Prelude => {
                        return Err(self.refusal(
                            scope,
                            span,
                            "self.<block>() before {% extends %}",
                        ));
                    }
                    Region::Discard => {
                        return Err(self.refusal(
                            scope,
                            span,
                            "self.<block>() outside blocks after {% extends %} (minijinja \
                             skips it there)",
                        ));
                    }
                }
            }
            _ => {}
        }
        self.check_expr(&call.expr, scope)?;
        self.check_args(&call.args, scope)
    }
}

/// `{{ super() }}` on its own, which minijinja compiles to a direct render of the parent.
fn is_plain_super(expr: &Expr<'_>) -> bool {
    match expr {
        Expr::Call(call) => {
            call.args.is_empty() && matches!(call.identify_call(), CallType::Function("super"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
