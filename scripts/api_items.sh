#!/usr/bin/env bash
# Checks leanserve's API as a host sees it: the library built without the `cli` feature,
# as an embedding application depends on it. From rustdoc's JSON (scripts/api_check.py):
#
# - every public signature names only types a host can name and read about (the compiler
#   checks the same at build time: `unnameable_types` and `private_interfaces` are
#   errors in src/lib.rs), and the check itself is shown able to fail (--self-test);
# - the public items are counted; with `--max N` more than N fails. scripts/test.sh runs
#   it with 130: every item is one a host is handed (the reports, options and errors of
#   `Subsystems`' methods), and the cap makes growth a decision.
#
# rustdoc's JSON output is unstable; RUSTC_BOOTSTRAP=1 lets the stable toolchain write it.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
RUSTDOCFLAGS="-D warnings" cargo doc --locked --quiet --no-deps --lib --no-default-features --features jemalloc
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-D warnings -Z unstable-options --output-format json" \
  cargo doc --locked --quiet --no-deps --lib --no-default-features --features jemalloc
python3 scripts/api_check.py --self-test
python3 scripts/api_check.py "$target/doc/leanserve.json" "$@"
