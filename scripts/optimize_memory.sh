#!/usr/bin/env bash
# Memory operations on a running leanserve server, by action name.
#
#   scripts/optimize_memory.sh --action=status  [--url URL]
#   scripts/optimize_memory.sh --action=profile [--url URL] [--label L] [--out FILE] [--compare A B]
#   scripts/optimize_memory.sh --action=optimize [--url URL]
#   scripts/optimize_memory.sh --action=tune [--url URL] [--apply]
#   scripts/optimize_memory.sh --action=benchmark [memory-benchmark flags]
#
# Every option after the action goes to `leanserve status|profile|optimize|tune` or to
# `memory-benchmark` as is (benchmark: $LEANSERVE_BENCHMARK_BIN, else this checkout's
# target/release build, else `cargo run --release --bin memory-benchmark`).
# The server's admin token comes from LEANSERVE_ADMIN_TOKEN. The leanserve binary is
# $LEANSERVE_BIN, else `leanserve` on PATH, else this checkout's target/release or
# target/debug build, else `cargo run --release`.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/optimize_memory.sh --action=ACTION [OPTIONS]

actions:
  status      memory figures and resolved configuration of a running server
              (leanserve status)
  profile     capture a heap profile (--label L, --out FILE) or compare two
              snapshots (--compare A B) (leanserve profile)
  optimize    re-run a running server's template optimizers and print what
              they saved (leanserve optimize)
  tune        the configuration tuner's recommendations: memory limit, RSS
              and each knob; --apply applies the live knobs now and prints
              what changed (leanserve tune)
  benchmark   run memory-benchmark: the template optimizers against the
              baseline on a generated site (--templates=N --output=FILE ...)

options (passed on to leanserve):
  --url URL   the admin surface: http://HOST:PORT or unix:PATH (default:
              from the configuration's admin.bind)
  -h, --help  this text

The admin token is read from LEANSERVE_ADMIN_TOKEN.
USAGE
}

action=""
passed=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --action=*) action="${1#--action=}" ;;
        --action)
            [[ $# -ge 2 ]] || { echo "optimize_memory.sh: --action needs a value" >&2; exit 2; }
            action="$2"; shift ;;
        *) passed+=("$1") ;;
    esac
    shift
done

leanserve() {
    local repo target
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    target="${CARGO_TARGET_DIR:-$repo/target}"
    if [[ -n "${LEANSERVE_BIN:-}" ]]; then
        "$LEANSERVE_BIN" "$@"
    elif type -P leanserve >/dev/null 2>&1; then
        # type -P looks on PATH only: `command -v` would find this very function.
        command leanserve "$@"
    elif [[ -x "$target/release/leanserve" ]]; then
        "$target/release/leanserve" "$@"
    elif [[ -x "$target/debug/leanserve" ]]; then
        "$target/debug/leanserve" "$@"
    else
        cargo run --quiet --release --manifest-path "$repo/Cargo.toml" --bin leanserve -- "$@"
    fi
}

benchmark() {
    local repo target
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    target="${CARGO_TARGET_DIR:-$repo/target}"
    if [[ -n "${LEANSERVE_BENCHMARK_BIN:-}" ]]; then
        "$LEANSERVE_BENCHMARK_BIN" "$@"
    elif [[ -x "$target/release/memory-benchmark" ]]; then
        "$target/release/memory-benchmark" "$@"
    else
        cargo run --quiet --release --manifest-path "$repo/Cargo.toml" --bin memory-benchmark -- "$@"
    fi
}

case "$action" in
    status|profile|optimize|tune) leanserve "$action" "${passed[@]+"${passed[@]}"}" ;;
    benchmark) benchmark "${passed[@]+"${passed[@]}"}" ;;
    "")
        echo "optimize_memory.sh: no action given" >&2
        usage >&2
        exit 2 ;;
    *)
        echo "optimize_memory.sh: unknown action '$action'" >&2
        usage >&2
        exit 2 ;;
esac
