#!/usr/bin/env bash
# Tuner and concurrency-limit benchmark, two sections:
#
# - overload: a template costing about 1 ms of CPU per render, offered at 0.8, 2 and 4
#   times the measured capacity C at a constant rate (oha -q, latency-corrected), with the
#   in-flight limiter on and off (and, with VARIANT, on with other settings) in
#   interleaved rounds. Prints goodput (2xx answered within 5x the unloaded p99, as a
#   fraction of C), the admitted p99, the 503s and their p99, and the latency of /health
#   probed every 100 ms beside the load.
# - memory: a static site of distinct text files about 4x the memory limit M the tuner is
#   given, through a 1 GiB cache: tuner off, tuner in auto mode, and tuner in auto mode
#   with the process sampler at 1 s, one server after the other. Prints peak RSS against
#   M and 0.9 M, hit ratios, and whether RSS settles back near the baseline plus what the
#   cache holds once the load stops.
#
#   bench/tuner.sh                       # both sections, about 6 minutes on 2 cores
#   SECTIONS=overload bench/tuner.sh     # or SECTIONS=memory
#   ROUNDS=3 DURATION=10 MIN_LIMIT=8 bench/tuner.sh   # a third server, limiter floor 8
#                                        # (VARIANT="LEANSERVE_LIMITER_MIN_LIMIT=8")
#   VARIANT="LEANSERVE_TEMPLATES_RENDER_NICE=0" SECTIONS=overload bench/tuner.sh
#                                        # another server, limiter on with these settings
#   SERVER_CPUS=1 CLIENT_CPUS=0 CPU_QUOTA=off bench/tuner.sh  # servers and oha pinned apart
#   CPU_QUOTA=1 CPU_PERIOD_US=10000 bench/tuner.sh   # a whole CPU per server, 10 ms periods
#   LEANSERVE=/tmp/t/release/leanserve bench/tuner.sh  # this binary, no cargo build
#
# CPU quota. Each server runs in a CPU cgroup of its own (cgroup v2 cpu.max, or v1
# cpu.cfs_quota_us / cpu.cfs_period_us, found at run time; bench/lib.sh), held to
# CPU_QUOTA CPUs (default 0.5) per CPU_PERIOD_US (default 100000, the kernel's and
# Kubernetes' period), and joins it before its first instruction, so it sizes itself
# under the quota. oha, curl and this script stay outside, in the script's own cgroup: a
# server held to half a core leaves the load generator the other 1.5 of a 2-core
# machine, where without a quota they shared both. HTTP_WORKERS sets LEANSERVE_WORKERS
# (default: the quota rounded up, 1 at 0.5; empty: the server's own default);
# CPU_WEIGHT multiplies the cgroup's scheduling weight (v1 cpu.shares, v2 cpu.weight;
# default 1, unchanged). The cgroups are removed on exit. CPU_QUOTA=off runs the servers
# in the script's cgroup as before; with no writable cgroup the script stops and says
# why. Each run logs the server's CPU and its throttled periods (cpu.stat).
#
# Pinning (taskset) is off by default: on a 2-core machine a server pinned to one core
# runs its HTTP worker and render threads on that core, and the scheduler's time slices
# then reach /health too (30 ms probes with the limiter off, 2026-12-02).
#
# The machine is shared: each section waits for a quiet machine, and each measured oha
# run is repeated (at most twice) when other processes took over MAX_FOREIGN of the CPU.
# oha comes from `cargo install oha` (~/.cargo/bin/oha); wrk from Debian's packages, and
# is installed when missing. Server logs, per-request CSVs, RSS samples and the tuner's
# decisions stay in target/bench-tuner.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

ROUNDS=${ROUNDS:-2}                 # interleaved rounds per offered rate and limiter setting
DURATION=${DURATION:-8}             # seconds per oha run
RATES=${RATES:-0.8 2 4}             # offered rates, multiples of C
VARIANT=${VARIANT-}                 # another overload server, limiter on, with these VAR=value settings
MIN_LIMIT=${MIN_LIMIT-}             # shorthand: a VARIANT with this limiter floor
if [ -n "$MIN_LIMIT" ]; then VARIANT="$VARIANT LEANSERVE_LIMITER_MIN_LIMIT=$MIN_LIMIT"; fi
VARIANT_BIN=${VARIANT_BIN-}         # ... and this leanserve binary (another build) instead of this one's
                                    # (the files limiter's: the renders' floor is the render workers)
MEM_LIMIT_MB=${MEM_LIMIT_MB:-96}    # M, the tuner's memory limit
MEM_SITE_MB=${MEM_SITE_MB:-400}     # text files of 32-64 KB, about 4x M
MEM_LOAD=${MEM_LOAD:-30}            # seconds of load in the memory run
MEM_SETTLE=${MEM_SETTLE:-15}        # seconds sampled after the load stops
MEM_MODES=${MEM_MODES:-untuned tuned tuned-sample-1s}   # untuned and tuned are the targets' pair
SECTIONS=${SECTIONS:-overload memory}
SERVER_CPUS=${SERVER_CPUS-}         # overload: taskset CPU list for the servers; empty: no pinning
CLIENT_CPUS=${CLIENT_CPUS-}         # overload: taskset CPU list for oha and curl
CPU_QUOTA=${CPU_QUOTA:-0.5}         # CPUs each server's cgroup may use per period; off: no cgroups
CPU_PERIOD_US=${CPU_PERIOD_US:-100000}   # the quota's period (1000-1000000 us)
CPU_WEIGHT=${CPU_WEIGHT:-1}         # the server cgroups' scheduling weight, times the default
if [ "$CPU_QUOTA" = off ] || [ "$CPU_QUOTA" = 0 ]; then CPU_QUOTA=; fi
if [ -n "$CPU_QUOTA" ] && [ -z "${HTTP_WORKERS+set}" ]; then   # the quota rounded up
  HTTP_WORKERS=$(awk -v q="$CPU_QUOTA" 'BEGIN { w = int(q); if (w < q) w++; print w }')
fi
HTTP_WORKERS=${HTTP_WORKERS-}       # LEANSERVE_WORKERS for every server; empty: the server's default
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }

OHA=${OHA:-$HOME/.cargo/bin/oha}
[ -x "$OHA" ] || command -v "$OHA" >/dev/null || { echo "oha not found (cargo install oha)" >&2; exit 1; }
if wants memory && ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

if [ -z "${LEANSERVE:-}" ]; then
  cargo build --release --quiet --bin leanserve
  LEANSERVE=target/release/leanserve
fi

LOGS=${LOGS:-target/bench-tuner}   # server logs and raw results, kept after the run
mkdir -p "$LOGS"
work=$(mktemp -d)
trap cleanup EXIT
if [ -n "$CPU_QUOTA" ]; then
  cpu_cgroup_find || { echo "no CPU quota possible here; CPU_QUOTA=off runs without one" >&2; exit 1; }
  QUOTA_NOTE="each in a cgroup $CG_VERSION of its own held to $CPU_QUOTA CPU ($(awk -v c="$CPU_QUOTA" -v p="$CPU_PERIOD_US" 'BEGIN { printf "%d", c * p }') us per $CPU_PERIOD_US us period$([ "$CPU_WEIGHT" = 1 ] || echo ", weight ${CPU_WEIGHT}x"))"
  echo "servers $QUOTA_NOTE, under $CG_PARENT" >&2
else
  QUOTA_NOTE="without a CPU quota"
fi

# Starts a leanserve on a port the OS picks, with the given environment; its pid lands in
# $LAST_PID and its base URL in $LAST_URL (no command substitution: a subshell would lose
# track of the pid). The port comes from the first stdout line.
start_leanserve() { # name root VAR=value...
  local name=$1 root=$2; shift 2
  LAST_CGROUP=
  if [ -n "$CPU_QUOTA" ]; then cpu_cgroup_new "$name" "$CPU_QUOTA" "$CPU_PERIOD_US" "$CPU_WEIGHT"; fi
  cpu_cgroup_exec_words "$LAST_CGROUP"
  # The prod profile wants an admin token unless the admin surface is on a Unix socket,
  # so it is on one (read with `admin_get`); /metrics is public on the serving port.
  env -u LEANSERVE_ADMIN_TOKEN LEANSERVE_BIND=127.0.0.1:0 LEANSERVE_ADMIN_BIND="unix:$work/$name-admin.sock" \
    LEANSERVE_MONITORING_PUBLIC_METRICS=true RUST_LOG=info ${HTTP_WORKERS:+LEANSERVE_WORKERS=$HTTP_WORKERS} "$@" \
    "${CG_EXEC[@]}" ${PIN_SERVER:+taskset -c "$PIN_SERVER"} "${SERVER_BIN:-$LEANSERVE}" --env prod --root "$root" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  LAST_PID=$!
  LAST_URL=
  for _ in $(seq 1 100); do
    LAST_URL=$(sed -n '1s#^leanserve listening on \(http://.*\)$#\1#p' "$LOGS/$name.out")
    [ -n "$LAST_URL" ] && curl -fs -o /dev/null "$LAST_URL/health" && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  exit 1
}

# GET an admin path of the server started as NAME, through its admin socket.
admin_get() { # name path
  curl -fs --unix-socket "$work/$1-admin.sock" "http://localhost$2"
}

TIMEFORMAT='%3U %3S'   # `time`: oha's own CPU seconds
HZ=$(getconf CLK_TCK); NCPU=$(nproc)
MAX_FOREIGN=${MAX_FOREIGN:-0.15}   # share of the machine's CPU other processes may use during a run
FOREIGN_ALL=""
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
cpu_of() { # pids: their CPU ticks
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}
wait_quiet() { # up to 2 minutes, until the machine's CPU is under MAX_FOREIGN busy over 2 s
  local b0 b1 share
  for _ in $(seq 1 24); do
    b0=$(cpu_busy); sleep 2; b1=$(cpu_busy)
    share=$(awk -v b="$((b1 - b0))" -v hz="$HZ" -v n="$NCPU" 'BEGIN { printf "%.3f", b / (2 * hz * n) }')
    awk -v f="$share" -v m="$MAX_FOREIGN" 'BEGIN { exit !(f <= m) }' && return 0
    echo "waiting for a quieter machine: $share of the CPU busy" >&2
    sleep 3
  done
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Per-request analysis of oha's CSV (one row per HTTP response: start, DNS, dial-up,
# first byte, latency-corrected duration, bytes, status; transport errors are not rows).
cat >"$work/oha_csv.py" <<'PY'
"""oha_csv.py FILE DURATION GOOD_WITHIN_S C: one line of figures for one run."""
import csv, sys
path, duration, good_within, capacity = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ok, rejected, other = [], [], 0
with open(path) as f:
    for row in csv.DictReader(f):
        status, latency = int(row["status"]), float(row["request-duration"])
        if 200 <= status < 300:
            ok.append(latency)
        elif status == 503:
            rejected.append(latency)
        else:
            other += 1
def p99_ms(values):
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(0.99 * len(values)))] * 1000:.2f}"
good = sum(1 for latency in ok if latency <= good_within)
# throughput_2xx goodput/C p99_2xx n503 p99_503 other_statuses, then for the log: the
# 503 p99 from oha's send time (without the latency correction, so without the client's
# own lag), and the 2xx that took over 50 ms from send to first byte (longer than the
# standing-overload wait and a render explain) with the 250 ms windows they fall in.
rejected_sent, slow_windows, slow = [], set(), 0
with open(path) as f:
    for row in csv.DictReader(f):
        if row["status"] == "503":
            rejected_sent.append(float(row["Response-delay"]))
        elif row["status"].startswith("2") and float(row["Response-delay"]) > 0.050:
            slow += 1
            slow_windows.add(int(float(row["request-start"]) * 4))
print(f"{len(ok) / duration:.1f} {good / duration / capacity:.3f} {p99_ms(ok)} {len(rejected)} {p99_ms(rejected)} {other} {p99_ms(rejected_sent)} {slow}/{len(slow_windows)}")
PY

# Latencies (seconds, one a line) to "max_ms p99_ms".
latency_summary() {
  sort -g "$1" | awk '{a[NR]=$1} END { if (NR == 0) { print "- -"; exit } i = int(0.99 * NR); if (i < 1) i = 1; printf "%.2f %.2f\n", a[NR] * 1000, a[i] * 1000 }'
}

# ---- overload: ~1 ms renders at 0.8, 2 and 4 x capacity, limiter on and off --------------
if wants overload; then
wait_quiet
PIN_SERVER=$SERVER_CPUS
if [ -n "$CLIENT_CPUS" ]; then OHA_RUN=(taskset -c "$CLIENT_CPUS" "$OHA"); CURL_RUN=(taskset -c "$CLIENT_CPUS" curl); else OHA_RUN=("$OHA"); CURL_RUN=(curl); fi
mkdir -p "$work/tpl" "$work/site"
echo '<!doctype html><p>leanserve' >"$work/site/index.html"
# The loop count comes from the query (?n=), so calibrating needs no restart.
cat >"$work/tpl/cpu.html" <<'TPL'
<!doctype html><ul>
{% for i in range(n|int) %}<li class="row-{{ i }}">{{ "item %d of %s"|format(i, title) }} {{ (i * 7919) % 104729 }}</li>
{% endfor %}</ul>
TPL
# The monitor samples every 500 ms so /metrics (read after each run for the log) is fresh.
# With VARIANT set, a third server runs the limiter with those settings (not a target).
declare -A URL PID CG LABEL=([on]="on" [off]="off")
servers=(on off)
start_leanserve overload-on "$work/site" TEMPLATES_DIR="$work/tpl" LEANSERVE_MONITORING_INTERVAL_MS=500 LEANSERVE_LIMITER_ENABLED=true
PID[on]=$LAST_PID; URL[on]=$LAST_URL; CG[on]=$LAST_CGROUP
start_leanserve overload-off "$work/site" TEMPLATES_DIR="$work/tpl" LEANSERVE_MONITORING_INTERVAL_MS=500 LEANSERVE_LIMITER_ENABLED=false
PID[off]=$LAST_PID; URL[off]=$LAST_URL; CG[off]=$LAST_CGROUP
if [ -n "$VARIANT" ]; then
  # shellcheck disable=SC2086 # VARIANT is a list of VAR=value words
  SERVER_BIN=$VARIANT_BIN start_leanserve overload-variant "$work/site" TEMPLATES_DIR="$work/tpl" LEANSERVE_MONITORING_INTERVAL_MS=500 LEANSERVE_LIMITER_ENABLED=true $VARIANT
  PID[var]=$LAST_PID; URL[var]=$LAST_URL; CG[var]=$LAST_CGROUP; LABEL[var]="on, ${VARIANT# }${VARIANT_BIN:+ ($VARIANT_BIN)}"
  servers+=(var)
fi
for s in "${servers[@]}"; do echo "limiter ${LABEL[$s]}: ${URL[$s]} (pid ${PID[$s]}${CG[$s]:+, cgroup ${CG[$s]}})" >&2; done
# What the servers made of their CPUs: HTTP workers and render threads as resolved.
SIZING=$(admin_get overload-on /admin/config | python3 -c '
import json, sys
def entries(o):  # the {"key", "value", "source"} objects, wherever they sit
    if isinstance(o, dict):
        if "key" in o and "value" in o:
            yield o
        for v in o.values():
            yield from entries(v)
    elif isinstance(o, list):
        for v in o:
            yield from entries(v)
e = {x["key"]: x for x in entries(json.load(sys.stdin))}
w, r = e["server.workers"], e["templates.render_workers"]
print("%s HTTP workers (%s), %s render threads" % (w["value"], w.get("source", "?"), r["value"]))' 2>/dev/null || echo "sizing unknown (/admin/config)")
echo "servers: $SIZING" >&2

# The machine is shared: each measured oha run also reads how much of the CPU other
# processes used meanwhile (all busy time in /proc/stat minus the servers' and oha's own),
# and runs again, up to twice, when that share is over MAX_FOREIGN. With PROBE set to a
# URL, /health there is probed every 100 ms during the run (into $work/health).
probe_health() { # url out: one curl every 100 ms until killed
  while :; do
    "${CURL_RUN[@]}" -s -o /dev/null --max-time 2 -w '%{time_total}\n' "$1/health" >>"$2" || echo 2 >>"$2"
    sleep 0.1
  done
}
# With ON set to a server (on, off, var), also that server's CPU (SERVER_CORES, in CPUs)
# and, under a quota, the share of its cgroup's periods that ran out of quota (THROTTLED,
# "throttled/periods" and THROTTLED_MS, the time its threads waited for the next period);
# OHA_CORES is oha's own CPU.
measured_oha() { # out oha-args...; sets FOREIGN, OHA_CORES, SERVER_CORES, THROTTLED, THROTTLED_MS
  local out=$1 try b0 s0 w0 b1 s1 w1 prober c0 c1 p0 t0 ms0 p1 t1 ms1; shift
  for try in 1 2 3; do
    : >"$work/health"
    if [ -n "${PROBE:-}" ]; then probe_health "$PROBE" "$work/health" & prober=$!; fi
    if [ -n "${ON:-}" ]; then c0=$(cpu_of "${PID[$ON]}"); read -r p0 t0 ms0 < <(cpu_cgroup_throttling "${CG[$ON]}"); fi
    b0=$(cpu_busy); s0=$(cpu_of "${PID[@]}"); w0=$(date +%s.%N)
    { time "${OHA_RUN[@]}" --no-tui "$@" >"$out"; } 2>"$work/oha-time"
    b1=$(cpu_busy); s1=$(cpu_of "${PID[@]}"); w1=$(date +%s.%N)
    if [ -n "${ON:-}" ]; then
      c1=$(cpu_of "${PID[$ON]}"); read -r p1 t1 ms1 < <(cpu_cgroup_throttling "${CG[$ON]}")
      SERVER_CORES=$(awk -v c="$((c1 - c0))" -v w0="$w0" -v w1="$w1" -v hz="$HZ" 'BEGIN { printf "%.2f", c / hz / (w1 - w0) }')
      THROTTLED="$((t1 - t0))/$((p1 - p0))"; THROTTLED_MS=$((ms1 - ms0))
    fi
    if [ -n "${PROBE:-}" ]; then kill "$prober" 2>/dev/null || true; wait "$prober" 2>/dev/null || true; fi
    OHA_CORES=$(awk -v w0="$w0" -v w1="$w1" -v t="$(cat "$work/oha-time")" 'BEGIN { split(t, o, " "); printf "%.2f", (o[1] + o[2]) / (w1 - w0) }')
    FOREIGN=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v w0="$w0" -v w1="$w1" -v hz="$HZ" -v n="$NCPU" -v t="$(cat "$work/oha-time")" \
      'BEGIN { split(t, o, " "); f = (b - s - (o[1] + o[2]) * hz) / ((w1 - w0) * hz * n); printf "%.3f", (f < 0 ? 0 : f) }')
    awk -v f="$FOREIGN" -v m="$MAX_FOREIGN" 'BEGIN { exit !(f <= m) }' && return 0
    echo "  other processes used $FOREIGN of the CPU during this run (over $MAX_FOREIGN), try $try of 3" >&2
    if [ "$try" -lt 3 ]; then sleep 10; fi
  done
}

# Calibrate n so that one render (with its gzip copy, as oha asks for gzip) takes ~1 ms
# end to end on one connection.
n=600
for i in 1 2 3; do
  p50=$("${OHA_RUN[@]}" --no-tui -c 1 -n 300 --output-format json "${URL[off]}/templates/cpu.html?n=$n&title=bench" |
    python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["latencyPercentiles"]["p50"] * 1000))')
  echo "calibration: n=$n renders in $p50 ms (p50, one connection)" >&2
  if [ "$i" -lt 3 ]; then
    n=$(awk -v n="$n" -v t="$p50" 'BEGIN { m = int(n / t); if (m < 10) m = 10; print m }')
  fi
done
render_ms=$p50
ROUTE="/templates/cpu.html?n=$n&title=bench"
for s in "${servers[@]}"; do curl -fs -o /dev/null "${URL[$s]}$ROUTE"; done

# Capacity, in two steps. C0: the closed-loop maximum of the route with the limiter off
# (oha -c 32), median of 3. It overstates what the server sustains at a constant rate on
# this 2-core machine: oha's constant-rate mode and its connections take more of the CPU
# the server shares, and in earlier runs the limiter-off server already queued without
# bound at 0.8 C0 (2xx p99 65-405 ms). So C is the highest constant rate, stepping down
# from C0 by 5%, that the limiter-off server keeps up with: at least 99% of the offered
# requests answered 2xx within the run (a server behind the rate queues without bound
# and falls short). Not a latency bound: on this shared machine one stall of another
# process sets a run's p99, so a p99 bound made the search wander (2026-12-03). Both C
# and C0 are reported.
caps=""
for i in 1 2 3; do
  ON=off measured_oha "$work/cap.csv" -c 32 -z "${DURATION}s" --output-format csv "${URL[off]}$ROUTE"
  rps=$(python3 "$work/oha_csv.py" "$work/cap.csv" "$DURATION" 1 1 | cut -d' ' -f1)
  echo "closed-loop capacity run $i: $rps 2xx/s (server $SERVER_CORES CPU, throttled in $THROTTLED periods; oha $OHA_CORES CPU; other processes: $FOREIGN of the CPU)" >&2
  FOREIGN_ALL+="$FOREIGN "
  caps+="$rps "
done
C0=$(median "$caps")

# Connections for a constant rate: 4x the concurrency the rate needs at the larger of the
# unloaded p99 and 5 ms (the 503 budget), plus the limiter's whole queue (128), so a full
# server-side queue never leaves oha short of connections (which the latency correction
# would count as latency); at most 256.
conns() { awk -v r="$1" -v l="$2" 'BEGIN { c = int(4 * r * (l > 0.005 ? l : 0.005)) + 129; if (c > 256) c = 256; print c }'; }

# Unloaded p99 at 0.3 C0, on both servers (the same build; at this rate the limiter
# admits everything at once): the lower of the two. Noise on this shared machine only
# ever adds latency, and one stall of another process during an 8 s run has set this
# figure to 13 ms against 4.4 ms on the other server (2026-12-03), moving every target
# derived from it.
rate=$(awk -v c="$C0" 'BEGIN { printf "%d", 0.3 * c }')
declare -A UNLOADED
for s in off on; do
  ON=$s measured_oha "$work/unloaded-$s.csv" -q "$rate" --latency-correction -z "${DURATION}s" -c "$(conns "$rate" 0.005)" \
    --output-format csv "${URL[$s]}$ROUTE"
  UNLOADED[$s]=$(python3 "$work/oha_csv.py" "$work/unloaded-$s.csv" "$DURATION" 1 1 | cut -d' ' -f3)
  echo "unloaded p99 at $rate/s, limiter $s: ${UNLOADED[$s]} ms (server $SERVER_CORES CPU, throttled in $THROTTLED periods; other processes: $FOREIGN of the CPU)" >&2
  FOREIGN_ALL+="$FOREIGN "
done
P99U=$(awk -v a="${UNLOADED[off]}" -v b="${UNLOADED[on]}" 'BEGIN { print (a < b ? a : b) }')
GOOD_S=$(awk -v p="$P99U" 'BEGIN { print 5 * p / 1000 }')

C=""
for step in 1.00 0.95 0.90 0.85 0.80 0.75 0.70 0.65 0.60 0.55 0.50; do
  rate=$(awk -v c="$C0" -v f="$step" 'BEGIN { printf "%d", f * c }')
  ON=off measured_oha "$work/sustain.csv" -q "$rate" --latency-correction -z "${DURATION}s" \
    -c "$(conns "$rate" "$(awk -v p="$P99U" 'BEGIN { print p / 1000 }')")" --output-format csv "${URL[off]}$ROUTE"
  FOREIGN_ALL+="$FOREIGN "
  read -r tput _ p99 _ < <(python3 "$work/oha_csv.py" "$work/sustain.csv" "$DURATION" "$GOOD_S" 1)
  sleep 1
  if awk -v t="$tput" -v r="$rate" 'BEGIN { exit !(t >= 0.99 * r) }'; then
    echo "sustained at $step C0 ($rate/s): 2xx $tput/s, p99 $p99 ms (server $SERVER_CORES CPU, throttled in $THROTTLED periods; other processes: $FOREIGN of the CPU)" >&2
    C=$rate
    break
  fi
  echo "not sustained at $step C0 ($rate/s): 2xx $tput/s, p99 $p99 ms (server $SERVER_CORES CPU, throttled in $THROTTLED periods)" >&2
done
if [ -z "$C" ]; then C=$(awk -v c="$C0" 'BEGIN { printf "%d", 0.5 * c }'); echo "nothing sustained down to 0.5 C0; C = 0.5 C0" >&2; fi

declare -A TPUT GOOD P99 N503 P99R P99RS SLOW HMAX HP99 SCPU OCPU THR
for round in $(seq 1 "$ROUNDS"); do
  for mult in $RATES; do
    rate=$(awk -v c="$C" -v m="$mult" 'BEGIN { printf "%d", m * c }')
    order=("${servers[@]}")
    if (( round % 2 == 0 )); then order=(); for s in "${servers[@]}"; do order=("$s" "${order[@]}"); done; fi
    for s in "${order[@]}"; do
      tag="$mult-$s-$round"
      PROBE=${URL[$s]} ON=$s measured_oha "$work/run-$tag.csv" -q "$rate" --latency-correction -z "${DURATION}s" \
        -c "$(conns "$rate" "$(awk -v p="$P99U" 'BEGIN { print p / 1000 }')")" --output-format csv "${URL[$s]}$ROUTE"
      FOREIGN_ALL+="$FOREIGN "
      cp "$work/health" "$work/health-$tag"
      sleep 1
      read -r tput good p99 n503 p99r other p99r_sent slow < <(python3 "$work/oha_csv.py" "$work/run-$tag.csv" "$DURATION" "$GOOD_S" "$C")
      read -r hmax hp99 < <(latency_summary "$work/health-$tag")
      limiter=$(curl -fs "${URL[$s]}/metrics" | awk '/^leanserve_limiter_(limit|rejected_total|queue_timeouts_total|queue_displaced_total)\{limiter="renders"\}/ { sub(/\{limiter="renders"\}/, ""); sub(/^leanserve_limiter_/, ""); printf " %s=%s", $1, $2 }')
      echo "round $round: ${mult}C ($rate/s) limiter ${LABEL[$s]}: 2xx $tput/s, goodput ${good}C, 2xx p99 $p99 ms, 503s $n503 (p99 $p99r ms; $p99r_sent ms from send), other $other; 2xx over 50 ms from send / in 250 ms windows: $slow; /health max $hmax ms p99 $hp99 ms;$limiter; server $SERVER_CORES CPU, throttled in $THROTTLED periods ($THROTTLED_MS ms), oha $OHA_CORES CPU; other processes: $FOREIGN of the CPU" >&2
      TPUT[$mult,$s]+="$tput "; GOOD[$mult,$s]+="$good "; P99[$mult,$s]+="$p99 "; N503[$mult,$s]+="$n503 "
      if [ "$p99r" != "-" ]; then P99R[$mult,$s]+="$p99r "; P99RS[$mult,$s]+="$p99r_sent "; fi
      SLOW[$mult,$s]+="$slow "
      HMAX[$mult,$s]+="$hmax "; HP99[$mult,$s]+="$hp99 "
      SCPU[$mult,$s]+="$SERVER_CORES "; OCPU[$mult,$s]+="$OHA_CORES "
      THR[$mult,$s]+="$(awk -v t="$THROTTLED" 'BEGIN { split(t, a, "/"); printf "%.2f", (a[2] > 0 ? a[1] / a[2] : 0) }') "
      cp "$work/health-$tag" "$LOGS/health-$tag.txt"
      cp "$work/run-$tag.csv" "$LOGS/"
    done
  done
done

echo
echo "## Overload: ~1 ms renders (n=$n, $render_ms ms alone), C = $C renders/s sustained at a constant rate (closed-loop maximum C0 = $C0, C = $(awk -v c="$C" -v z="$C0" 'BEGIN { printf "%.2f", c / z }') C0), unloaded p99 $P99U ms (limiter off ${UNLOADED[off]} ms, on ${UNLOADED[on]} ms)"
echo
echo "oha -q RATE --latency-correction -z ${DURATION}s, $ROUNDS interleaved rounds (medians); goodput counts 2xx within 5x the unloaded p99 ($(awk -v g="$GOOD_S" 'BEGIN { printf "%.2f", g * 1000 }') ms). Servers $QUOTA_NOTE, LEANSERVE_WORKERS=${HTTP_WORKERS:-unset} ($SIZING), on CPU ${SERVER_CPUS:-any}; oha and curl ${CPU_QUOTA:+outside the server cgroups, }on CPU ${CLIENT_CPUS:-any}. Server and oha CPU in CPUs (1 = one core busy)${CPU_QUOTA:+; throttled: share of the server cgroup periods that ran out of quota}."
echo
echo "| offered | limiter | goodput/C | 2xx/s | 2xx p99 ms | 503s | 503 p99 ms | /health p99 ms | /health max ms | server CPU | throttled | oha CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for mult in $RATES; do
  for s in "${servers[@]}"; do
    echo "| ${mult}C | ${LABEL[$s]} | $(median "${GOOD[$mult,$s]}") | $(median "${TPUT[$mult,$s]}") | $(median "${P99[$mult,$s]}") | $(median "${N503[$mult,$s]}") | $(median "${P99R[$mult,$s]:-}") | $(median "${HP99[$mult,$s]}") | $(median "${HMAX[$mult,$s]}") | $(median "${SCPU[$mult,$s]}") | $(median "${THR[$mult,$s]}") | $(median "${OCPU[$mult,$s]}") |"
  done
done
echo
echo "Other processes on this shared machine used a median $(median "$FOREIGN_ALL") (max $(tr ' ' '\n' <<<"$FOREIGN_ALL" | grep -v '^$' | sort -g | tail -1)) of the CPU during the measured runs (runs over $MAX_FOREIGN were repeated, at most twice)."
echo
verdict() { [ "$1" = 1 ] && echo met || echo "NOT met"; }
for mult in $RATES; do
  awk -v m="$mult" 'BEGIN { exit !(m > 1) }' || continue
  g=$(median "${GOOD[$mult,on]}"); p=$(median "${P99[$mult,on]}"); r=$(median "${P99R[$mult,on]:-}")
  echo "- ${mult}C, limiter on: goodput ${g}C, $(awk -v g="$g" -v c="$C" -v z="$C0" 'BEGIN { printf "%.3f", g * c / z }') C0 (target >= 0.9C): $(verdict "$(awk -v g="$g" 'BEGIN { print (g >= 0.9) }')")"
  echo "- ${mult}C, limiter on: 2xx p99 $p ms (target <= 3 x $P99U ms): $(verdict "$(awk -v p="$p" -v u="$P99U" 'BEGIN { print (p != "-" && p <= 3 * u) }')")"
  echo "- ${mult}C, limiter on: 503 p99 $r ms, $(median "${P99RS[$mult,on]:-}") ms from send, without oha's own lag (target <= 5 ms): $(verdict "$(awk -v r="$r" 'BEGIN { print (r == "-" || r <= 5) }')")"
  echo "- ${mult}C, limiter on: 2xx over 50 ms from send / in how many 250 ms windows, per round: ${SLOW[$mult,on]}"
done
low=$(awk '{print $1}' <<<"$RATES")
r=$(median "${N503[$low,on]}"); ton=$(median "${TPUT[$low,on]}"); toff=$(median "${TPUT[$low,off]}")
echo "- ${low}C: $r rejections with the limiter on, $(awk -v r="$r" -v c="$C" -v m="$low" -v d="$DURATION" 'BEGIN { printf "%.2f%%", r / (m * c * d) * 100 }') of the offered requests (rounds: ${N503[$low,on]}) (target 0): $(verdict "$(awk -v r="$r" 'BEGIN { print (r == 0) }')")"
echo "- ${low}C: throughput on $ton/s vs off $toff/s, $(awk -v a="$ton" -v b="$toff" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }') (target within 3%): $(verdict "$(awk -v a="$ton" -v b="$toff" 'BEGIN { d = a / b - 1; print (d >= -0.03 && d <= 0.03) }')")"
worst=$(for k in "${!HMAX[@]}"; do echo "${HMAX[$k]}"; done | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
worst_on=$(for k in "${!HMAX[@]}"; do if [[ $k != *,off ]]; then echo "${HMAX[$k]}"; fi; done | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
echo "- /health: worst probe $worst ms over every run ($worst_on ms with the limiter on) (target <= 10 ms throughout): $(verdict "$(awk -v w="$worst" 'BEGIN { print (w <= 10) }')")"
if [ -n "$VARIANT" ]; then
  for mult in $RATES; do
    echo "- ${mult}C, limiter ${LABEL[var]} (not a target): goodput $(median "${GOOD[$mult,var]}")C, 2xx p99 $(median "${P99[$mult,var]}") ms, $(median "${N503[$mult,var]}") 503s"
  done
fi
for s in "${servers[@]}"; do kill "${PID[$s]}" 2>/dev/null || true; done
wait "${PID[@]}" 2>/dev/null || true
fi

# ---- memory: a working set 4x the limit, tuner on vs off ---------------------------------
PIN_SERVER=
if wants memory; then
wait_quiet
mkdir -p "$work/mem" "$work/memtpl"
python3 - "$work/mem" "$MEM_SITE_MB" <<'PY'
import random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(11)
letters = "abcdefghijklmnopqrstuvwxyz"
words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)]
lines = [" ".join(rng.choices(words, k=rng.randint(8, 14))) + "\n" for _ in range(40000)]
written, i = 0, 0
while written < total:
    size = rng.randint(32 << 10, 64 << 10)
    parts, n = [f"page {i}\n"], 0
    while n < size:
        line = rng.choice(lines)
        parts.append(line)
        n += len(line)
    text = "".join(parts)[:size]
    with open(f"{root}/p{i:05}.txt", "w") as f:
        f.write(text)
    written += len(text)
    i += 1
PY
files=$(find "$work/mem" -name '*.txt' | wc -l)
site_bytes=$(du -sb "$work/mem" | cut -f1)
gz_ratio=$(python3 - "$work/mem" <<'PY'
import gzip, os, sys
names = sorted(os.listdir(sys.argv[1]))[::50]
raw = packed = 0
for name in names:
    data = open(os.path.join(sys.argv[1], name), "rb").read()
    raw += len(data); packed += len(gzip.compress(data, 6))
print(f"{packed / raw:.3f}")
PY
)
echo '<!doctype html>{% for i in range(100) %}<p>{{ i }} {{ title }}</p>{% endfor %}' >"$work/memtpl/page.html"
cat >"$work/random.lua" <<LUA
-- Random files, nine in ten asking for gzip; the same sequence for every server.
local files = $files
math.randomseed(7)
request = function()
  local path = string.format("/p%05d.txt", math.random(0, files - 1))
  if math.random() < 0.9 then
    return wrk.format("GET", path, { ["Accept-Encoding"] = "gzip" })
  end
  return wrk.format("GET", path)
end
LUA
cat >"$work/rss.py" <<'PY'
"""rss.py PID SECONDS OUT: VmRSS every 100 ms, "elapsed_s rss_kb unix_ms" a line."""
import sys, time
pid, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
start = time.monotonic()
with open(out, "w") as f:
    while (now := time.monotonic() - start) < seconds:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS"):
                    f.write(f"{now:.2f} {line.split()[1]} {int(time.time() * 1000)}\n")
        except FileNotFoundError:
            break
        f.flush()
        time.sleep(0.1 - (time.monotonic() - start) % 0.1)
PY

M=$((MEM_LIMIT_MB * 1048576))
declare -A BASE MAXRSS HIT CACHED BUDGET ENDRSS ENDCACHED ENDBYTES ENDOVER RPS DECISIONS
for mode in $MEM_MODES; do
  case $mode in
    untuned) tuner=(CONFIG_TUNER_ENABLED=false) ;;
    tuned) tuner=(CONFIG_TUNER_ENABLED=true LEANSERVE_TUNER_MODE=auto) ;;
    # The tuner reads RSS from the process sampler (every 5 s by default): this variant
    # samples every second, as often as the tuner runs.
    tuned-sample-1s) tuner=(CONFIG_TUNER_ENABLED=true LEANSERVE_TUNER_MODE=auto LEANSERVE_PROCESS_SAMPLE_INTERVAL=1) ;;
    *) echo "unknown memory mode $mode" >&2; exit 1 ;;
  esac
  start_leanserve "memory-$mode" "$work/mem" "${tuner[@]}" TEMPLATES_DIR="$work/memtpl" \
    LEANSERVE_TUNER_MEMORY_LIMIT_MB="$MEM_LIMIT_MB" LEANSERVE_TUNER_INTERVAL=1 \
    STATIC_FILE_MAX_CACHE_SIZE=1073741824
  pid=$LAST_PID; url=$LAST_URL
  curl -fs -o /dev/null -H 'Accept-Encoding: gzip' "$url/p00000.txt"; curl -fs -o /dev/null "$url/templates/page.html?title=x"
  sleep 2
  BASE[$mode]=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  python3 "$work/rss.py" "$pid" "$((MEM_LOAD + MEM_SETTLE))" "$LOGS/rss-$mode.txt" &
  sampler=$!
  "$OHA" --no-tui -q 20 -z "${MEM_LOAD}s" -c 4 --output-format quiet "$url/templates/page.html?title=x" &
  renders=$!
  out=$(wrk -t1 -c16 -d"${MEM_LOAD}s" -s "$work/random.lua" "$url")
  wait "$renders" || true
  RPS[$mode]=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  stats=$(admin_get "memory-$mode" /admin/cache)
  read -r "HIT[$mode]" "CACHED[$mode]" "BUDGET[$mode]" < <(python3 -c 'import json,sys; s = json.load(sys.stdin); print("%.3f" % s["hit_ratio"], s["bytes_cached"], s["budget_bytes"])' <<<"$stats")
  wait "$sampler" || true
  stats=$(admin_get "memory-$mode" /admin/cache)
  # What the cache holds: its bytes, and what its own jemalloc arena holds for them beyond
  # the bytes (fragmentation and metadata, measured; counted against the budget too).
  read -r "ENDBYTES[$mode]" "ENDOVER[$mode]" < <(python3 -c 'import json,sys; s = json.load(sys.stdin); print(s["bytes_cached"], s["allocator_overhead_bytes"])' <<<"$stats")
  ENDCACHED[$mode]=$(( ${ENDBYTES[$mode]} + ${ENDOVER[$mode]} ))
  admin_get "memory-$mode" /admin/tuner >"$LOGS/tuner-$mode.json" || true
  # The allocator's view after the idle period (the monitor samples every 5 s).
  curl -fs "$url/metrics" >"$LOGS/metrics-$mode.txt" || true
  heap=$(awk '/^leanserve_heap_(allocated|active|resident|retained)_bytes / { sub(/^leanserve_heap_/, "", $1); sub(/_bytes$/, "", $1); printf " %s %.1f MB,", $1, $2 / 1048576 }' "$LOGS/metrics-$mode.txt")
  DECISIONS[$mode]=$({ grep -o 'tuner: [a-z_:]* [0-9.e+-]* -> ' "$LOGS/memory-$mode.log" || true; } | awk '{print $2}' | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')
  MAXRSS[$mode]=$(awk '$2 > m { m = $2 } END { print m }' "$LOGS/rss-$mode.txt")
  ENDRSS[$mode]=$(tail -1 "$LOGS/rss-$mode.txt" | cut -d' ' -f2)
  echo "$mode: $(( ${MAXRSS[$mode]} / 1024 )) MB peak RSS, ${RPS[$mode]} req/s, hit ratio ${HIT[$mode]}, cached ${CACHED[$mode]} of budget ${BUDGET[$mode]}, RSS after settling $(( ${ENDRSS[$mode]} / 1024 )) MB (cache $(( ${ENDCACHED[$mode]} / 1048576 )) MB; jemalloc:$heap); tuner changes: ${DECISIONS[$mode]:-none}" >&2
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo
echo "## Memory: $files text files ($((site_bytes / 1048576)) MB, gzip ratio $gz_ratio) under M = $MEM_LIMIT_MB MB, 1 GiB cache, ${MEM_LOAD} s of load then ${MEM_SETTLE} s idle"
echo
echo "wrk -t1 -c16 random files (90% gzip) plus 20 renders/s; VmRSS sampled every 100 ms; tuner interval 1 s; servers $QUOTA_NOTE, LEANSERVE_WORKERS=${HTTP_WORKERS:-unset}."
echo
echo "| server | baseline RSS MB | peak RSS MB | peak / M | req/s | hit ratio | cached MB (budget MB) at load end | RSS after ${MEM_SETTLE} s idle MB | baseline + cache MB (cached bytes + arena overhead) |"
echo "|---|---|---|---|---|---|---|---|---|"
for mode in $MEM_MODES; do
  echo "| $mode | $(mb "${BASE[$mode]}") | $(mb "${MAXRSS[$mode]}") | $(awk -v k="${MAXRSS[$mode]}" -v m="$M" 'BEGIN { printf "%.2f", k * 1024 / m }') | ${RPS[$mode]} | ${HIT[$mode]} | $(mb "$(( ${CACHED[$mode]} / 1024 ))") ($(mb "$(( ${BUDGET[$mode]} / 1024 ))")) | $(mb "${ENDRSS[$mode]}") | $(mb "$(( ${BASE[$mode]} + ${ENDCACHED[$mode]} / 1024 ))") ($(mb "$(( ${ENDBYTES[$mode]} / 1024 ))") + $(mb "$(( ${ENDOVER[$mode]} / 1024 ))")) |"
done
echo
awk -v k="${MAXRSS[untuned]}" -v m="$M" 'BEGIN { d = k * 1024 - m; printf "- untuned peak RSS passes M by %.1f MB (%+.0f%%)\n", d / 1048576, d / m * 100 }'
awk -v k="${MAXRSS[tuned]}" -v m="$M" 'BEGIN { t = 0.9 * m; printf "- tuned peak RSS %.1f MB vs 0.9 M = %.1f MB: %s\n", k / 1024, t / 1048576, (k * 1024 <= t ? "met" : "NOT met") }'
awk -v e="${ENDRSS[tuned]}" -v b="${BASE[tuned]}" -v c="${ENDCACHED[tuned]}" -v y="${ENDBYTES[tuned]}" 'BEGIN { ref = b + c / 1024; own = b + y / 1024; printf "- tuned RSS after %s s idle %.1f MB vs baseline + cache %.1f MB (%+.1f%%, target within 10%%): %s; against the cached bytes alone, without their arena overhead, %.1f MB (%+.1f%%)\n", "'"$MEM_SETTLE"'", e / 1024, ref / 1024, (e / ref - 1) * 100, (e <= 1.1 * ref ? "met" : "NOT met"), own / 1024, (e / own - 1) * 100 }'
echo "- hit ratio: untuned ${HIT[untuned]}, tuned ${HIT[tuned]}"
if [[ " $MEM_MODES " == *" tuned-sample-1s "* ]]; then
  m=tuned-sample-1s
  awk -v k="${MAXRSS[$m]}" -v m="$M" -v e="${ENDRSS[$m]}" -v b="${BASE[$m]}" -v c="${ENDCACHED[$m]}" 'BEGIN { ref = b + c / 1024; printf "- with RSS sampled every second (not a target; isolates the sampler): peak %.1f MB vs 0.9 M = %.1f MB: %s; after idle %.1f MB vs %.1f MB: %s\n", k / 1024, 0.9 * m / 1048576, (k * 1024 <= 0.9 * m ? "met" : "NOT met"), e / 1024, ref / 1024, (e <= 1.1 * ref ? "met" : "NOT met") }'
fi
fi
