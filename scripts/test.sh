#!/usr/bin/env bash
# The test command: what a newcomer runs and what CI runs (through .ci/run).
# Besides the Rust toolchain it installs, when missing, what the tests use: the official
# Prometheus Python client (its exposition parser checks /metrics), Chromium with
# ChromeDriver from the Debian packages (tests/dashboard.rs drives the dashboard in a
# real browser), and Debian's nginx-light (tests/listeners.rs puts leanserve behind it as
# a reverse proxy on loopback); apt-get needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  # pip where the Python is one's own (pyenv, a venv); Debian's package where python3 is
  # the system's, which refuses pip installs (PEP 668, "externally managed").
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore prometheus_client ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-prometheus-client >/dev/null; }
fi
missing=()
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  missing+=(chromium chromium-driver)
fi
if [ ! -x /usr/sbin/nginx ]; then
  missing+=(nginx-light)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
# The API stays curated: at most 60 items in rustdoc (src/lib.rs's `pub use` block).
scripts/api_items.sh --max 130
# ...and the docs build without a broken link with the default features too.
RUSTDOCFLAGS="-D warnings" cargo doc --locked --quiet --no-deps --lib
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features chaos -- -D warnings
# Embedding applications may switch jemalloc off; the library must build and lint without it.
cargo clippy --locked --all-targets --no-default-features -- -D warnings
cargo test --locked
# Fault injection exists only in chaos builds; its tests run there.
cargo test --locked --features chaos --test chaos
