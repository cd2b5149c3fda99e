#!/usr/bin/env bash
# The test command: what a newcomer runs and what CI runs (through .ci/run).
# Installs nothing today: the Rust toolchain is all the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features chaos -- -D warnings
cargo test --locked
# Fault injection exists only in chaos builds; its tests run there.
cargo test --locked --features chaos --test chaos
