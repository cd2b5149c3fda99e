#!/usr/bin/env bash
# Memory operations on a running leanserve server, by action name.
#
#   scripts/optimize_memory.sh --action=status  [--url URL]
#   scripts/optimize_memory.sh --action=profile [--url URL] [--label L] [--out FILE] [--compare A B]
#
# Every option after the action goes to `leanserve status` / `leanserve profile` as is.
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
  optimize    re-run the template memory optimizers     (not available yet)
  tune        run the configuration tuner               (not available yet)
  benchmark   run the memory benchmark                  (not available yet)

options (passed on to leanserve):
  --url URL   the server (default: from the configuration's server.bind)
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
    local repo
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [[ -n "${LEANSERVE_BIN:-}" ]]; then
        "$LEANSERVE_BIN" "$@"
    elif command -v leanserve >/dev/null 2>&1; then
        command leanserve "$@"
    elif [[ -x "$repo/target/release/leanserve" ]]; then
        "$repo/target/release/leanserve" "$@"
    elif [[ -x "$repo/target/debug/leanserve" ]]; then
        "$repo/target/debug/leanserve" "$@"
    else
        cargo run --quiet --release --manifest-path "$repo/Cargo.toml" --bin leanserve -- "$@"
    fi
}

case "$action" in
    status|profile) leanserve "$action" "${passed[@]+"${passed[@]}"}" ;;
    optimize|tune|benchmark)
        echo "optimize_memory.sh: --action=$action is not available in this version of leanserve" \
             "(the subsystem it drives is not built yet); available: status, profile" >&2
        exit 3 ;;
    "")
        echo "optimize_memory.sh: no action given" >&2
        usage >&2
        exit 2 ;;
    *)
        echo "optimize_memory.sh: unknown action '$action'" >&2
        usage >&2
        exit 2 ;;
esac
