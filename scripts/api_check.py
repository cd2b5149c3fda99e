#!/usr/bin/env python3
"""Reads rustdoc's JSON of a crate and checks its public API from a host's side.

- Counts the public items (structs, enums, functions, traits, macros, constants, type
  aliases), as rustdoc's "all items" page lists them.
- Fails when a public signature (a function's inputs and output, a field's type, a
  variant's fields, a trait's items, bounds) mentions a type of the crate that rustdoc
  cannot link: one a host receives but can neither name nor read about.

    api_check.py target/doc/leanserve.json [--max N]
    api_check.py --self-test

Exit status 1 names every such signature (or the count over N). `--self-test` builds the
JSON of a tiny crate that leaks a private type and checks that it is caught, so the check
is known to be able to fail. The JSON comes from `cargo doc` with
`RUSTDOCFLAGS="-Z unstable-options --output-format json"` (and `RUSTC_BOOTSTRAP=1` on a
stable toolchain); see scripts/api_items.sh.
"""

import json
import os
import subprocess
import sys
import tempfile

ITEM_KINDS = {"struct", "enum", "function", "trait", "macro", "constant", "type_alias", "static"}


def kind_of(item):
    return next(iter(item["inner"]))


def reachable(doc):
    """The ids of every item a host can reach from the crate root, with the API items
    (those rustdoc lists on its "all items" page)."""
    index = doc["index"]
    seen, api = set(), []
    # (id, whether a module lists it: only those are API items, not methods or fields)
    stack = [(str(doc["root"]), True)]
    while stack:
        item_id, listed = stack.pop()
        if item_id in seen or item_id not in index:
            continue
        seen.add(item_id)
        item = index[item_id]
        kind = kind_of(item)
        inner = item["inner"][kind]
        if listed and kind in ITEM_KINDS:
            api.append(item["name"])
        children = []
        if kind == "module":
            children = inner["items"]
        elif kind == "use":
            children = [inner["id"]] if inner.get("id") is not None else []
        elif kind == "struct":
            shape = inner["kind"]
            fields = []
            if isinstance(shape, dict):
                fields = shape.get("plain", {}).get("fields") or shape.get("tuple") or []
            children = [f for f in fields if f is not None] + inner["impls"]
        elif kind == "enum":
            children = inner["variants"] + inner["impls"]
        elif kind == "variant":
            variant = inner["kind"]
            if isinstance(variant, dict):
                fields = variant.get("struct", {}).get("fields") or variant.get("tuple") or []
                children = [f for f in fields if f is not None]
        elif kind == "trait":
            children = inner["items"]
        elif kind == "impl":
            # Compiler-made impls (auto traits, blanket impls of other crates' traits) are
            # not the crate's signatures.
            if inner.get("is_synthetic") or inner.get("blanket_impl") is not None:
                continue
            children = inner["items"]
        stack.extend((str(child), kind in ("module", "use")) for child in children)
    return seen, api


def paths_in(value, out):
    """Every path (a type or trait named by id) inside a JSON value."""
    if isinstance(value, dict):
        if "id" in value and "path" in value:
            out.append((value["path"], str(value["id"])))
        for child in value.values():
            paths_in(child, out)
    elif isinstance(value, list):
        for child in value:
            paths_in(child, out)


def unlinkable(doc):
    """(item, the type it mentions) for every signature that names a local type a host
    cannot reach."""
    index, paths = doc["index"], doc["paths"]
    seen, _ = reachable(doc)
    found = []
    for item_id in sorted(seen, key=int):
        item = index[item_id]
        kind = kind_of(item)
        if kind in ("module", "use"):
            continue
        inner = item["inner"][kind]
        if isinstance(inner, dict):
            # Lists of member ids are walked as items of their own, not as paths.
            inner = {k: v for k, v in inner.items() if k not in ("items", "impls", "variants", "fields")}
        mentioned = []
        paths_in(inner, mentioned)
        for name, target in mentioned:
            summary = paths.get(target)
            local = summary is None or summary["crate_id"] == 0
            if local and target not in seen:
                where = "::".join(paths[item_id]["path"]) if item_id in paths else item["name"]
                span = item.get("span") or {}
                found.append(
                    f"{where or item['name']} ({span.get('filename', '?')}:"
                    f"{(span.get('begin') or ['?'])[0]}) mentions `{name}`, which a host cannot name"
                )
    return sorted(set(found))


def check(path, limit):
    doc = json.load(open(path))
    _, api = reachable(doc)
    problems = unlinkable(doc)
    print(f"{doc['index'][str(doc['root'])]['name']} API: {len(api)} public items in rustdoc")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} public signature(s) mention types a host cannot name: "
              "export them from src/lib.rs's pub use block (and document them), "
              "or make the method pub(crate)", file=sys.stderr)
        return 1
    if limit is not None and len(api) > limit:
        print(f"more than {limit}: keep the API curated (src/lib.rs's pub use block)", file=sys.stderr)
        return 1
    return 0


SELF_TEST = '''
//! A crate that leaks a private type through a public method.
mod inner {
    /// Reachable through `Handle::report`, named nowhere.
    pub struct Hidden;
    /// Exported below.
    pub struct Shown;
}
pub use inner::Shown;
/// The public handle.
pub struct Handle;
impl Handle {
    /// Leaks `Hidden`.
    pub fn report(&self) -> inner::Hidden { inner::Hidden }
    /// Fine.
    pub fn shown(&self) -> Shown { Shown }
}
'''


def self_test():
    with tempfile.TemporaryDirectory() as dir:
        source = os.path.join(dir, "lib.rs")
        open(source, "w").write(SELF_TEST)
        env = dict(os.environ, RUSTC_BOOTSTRAP="1")
        subprocess.run(
            ["rustdoc", "--edition", "2021", "--crate-type", "lib", "--crate-name", "leaky",
             "-Z", "unstable-options", "--output-format", "json", "-o", dir, source],
            check=True, env=env)
        doc = json.load(open(os.path.join(dir, "leaky.json")))
        problems = unlinkable(doc)
        _, api = reachable(doc)
        assert any("Hidden`" in p for p in problems), problems
        assert not any("Shown`" in p for p in problems), problems
        assert sorted(api) == ["Handle", "Shown"], api
    print("api_check self-test: a leaked private type is caught, an exported one is not")
    return 0


def main(args):
    if args == ["--self-test"]:
        return self_test()
    limit = None
    if "--max" in args:
        at = args.index("--max")
        limit = int(args[at + 1])
        del args[at:at + 2]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return check(args[0], limit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
