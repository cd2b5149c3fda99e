#!/usr/bin/env bash
# Counts the public items of leanserve's API as rustdoc documents them (every struct,
# enum, function, trait, macro, constant and type alias in the generated `all.html`),
# built without the `cli` feature, as an embedding application depends on the library.
# With `--max N` it fails when there are more than N. scripts/test.sh runs it with 60.
set -euo pipefail
cd "$(dirname "$0")/.."
max=""
if [ "${1:-}" = "--max" ]; then max=$2; fi
RUSTDOCFLAGS="-D warnings" cargo doc --locked --quiet --no-deps --lib --no-default-features --features jemalloc
count=$(python3 - <<'PY'
import re
html = open("target/doc/leanserve/all.html").read()
print(len(re.findall(r'<li><a href="[^"]+">', html)))
PY
)
echo "leanserve API: $count public items in rustdoc"
if [ -n "$max" ] && [ "$count" -gt "$max" ]; then
  echo "more than $max: keep the API curated (src/lib.rs's pub use block)" >&2
  exit 1
fi
