# Shell helpers the benchmark scripts share (bench/site.sh, bench/wire.sh, bench/tuner.sh).
# Source it after `cd` to the repository; `cleanup` removes "$work" and the script's LOGS
# must be set before `stop_server` is called.

# On exit, stop this script's own background jobs that are still running (servers, RSS
# samplers, probes): `jobs -p` lists only children not yet waited for, so no process id
# that has been reaped (and could belong to someone else by now) is signalled.
cleanup() {
  local pid
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# Stops a server: SIGTERM, then its exit status (logged; a server that died on its own
# before this is reported as such). Reports collect in EXITS, printed under the tables.
EXITS=""
stop_server() { # name pid
  local name=$1 pid=$2 rc=0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || rc=$?
    echo "$name had exited on its own (status $rc) before it was stopped; see $LOGS/$name.log" >&2
    EXITS+="- $name exited on its own during the run, status $rc ($LOGS/$name.log)"$'\n'
    return
  fi
  kill "$pid"
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "$name exited with status $rc when stopped" >&2
    EXITS+="- $name exited with status $rc when stopped ($LOGS/$name.log)"$'\n'
  fi
}

json_get() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); [d := d[k] for k in sys.argv[2:]]; print(d)' "$@"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
