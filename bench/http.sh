#!/usr/bin/env bash
# Static file benchmark: leanserve (warm cache) against a plain actix-files server and,
# when installed, nginx (sendfile, open_file_cache, gzip on the fly at level 6), measured
# side by side in one run. Prints req/s, p99 latency and RSS for identity and gzip
# requests (and br and zstd from leanserve) of a 10 KB and a 17 KB CSS file, each ratio to
# leanserve, the p99 of cached hits while a
# 50 MB file streams or loads, and a memory run (RSS against the cache budget, files that
# fit with `store = both` and `compressed-only`).
#
#   bench/http.sh                 # defaults: 3 rounds of 8 s per case
#   ROUNDS=5 DURATION=10 bench/http.sh
#   SECTIONS=throughput bench/http.sh   # any of: throughput overhead profiling beside memory
#   LEANSERVE=/path/to/leanserve BASELINE=/path/to/files_baseline bench/http.sh
#                                 # use those binaries (to compare builds), build nothing
#
# wrk comes from Debian's packages and is installed when missing; nginx is used only when
# it is installed (apt-get install nginx-light).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-2}
MEM_BUDGET=${MEM_BUDGET:-33554432}   # 32 MiB cache budget for the memory run
MEM_FILES=${MEM_FILES:-1000}         # x 64 KiB of text = 64 MB touched
SECTIONS=${SECTIONS:-throughput overhead profiling beside memory}
CSS_FILES=${CSS_FILES:-style.css style17.css}   # the throughput section's files
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

if [ -z "${LEANSERVE:-}" ] || [ -z "${BASELINE:-}" ]; then
  cargo build --release --quiet --bin leanserve --example files_baseline
  LEANSERVE=target/release/leanserve
  BASELINE=target/release/examples/files_baseline
fi

LOGS=${LOGS:-target/bench-http}   # server logs, kept after the run
mkdir -p "$LOGS"
work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as an unprivileged user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- fixtures ------------------------------------------------------------------------
mkdir -p "$work/site" "$work/mem"
python3 - "$work" "$MEM_FILES" <<'PY'
import random, sys
work, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
props = ["color", "margin", "padding", "border", "font-size", "line-height", "display", "width", "max-width", "background"]
def css(size):
    out = []
    while sum(map(len, out)) < size:
        sel = "." + "-".join(rng.choice(["nav", "card", "btn", "grid", "hero", "item", "list", "muted", "lead"]) for _ in range(2))
        body = "; ".join(f"{rng.choice(props)}: {rng.randint(0, 999)}px" for _ in range(rng.randint(2, 5)))
        out.append(f"{sel}:{rng.choice(['hover', 'focus', 'first-child', 'active'])} {{ {body}; }}\n")
    return "".join(out)[:size]
open(f"{work}/site/style.css", "w").write(css(10 * 1024))
open(f"{work}/site/style17.css", "w").write(css(17 * 1024))
words = "lean serve memory budget cache actor supervisor restart gzip range etag header".split()
with open(f"{work}/site/big.txt", "w") as f:
    for _ in range(50 * 1024 * 1024 // 80):
        f.write(" ".join(rng.choice(words) for _ in range(12))[:79].ljust(79) + "\n")
for i in range(count):
    text = "\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(1200))
    open(f"{work}/mem/page{i:04}.txt", "w").write(text[:64 * 1024])
PY

wait_up() { # url
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; exit 1
}

rss_kb() { # pid; fails loudly when the server is gone
  if [ ! -e "/proc/$1/status" ]; then
    echo "process $1 is gone; see the logs in $LOGS" >&2
    echo 0
    return
  fi
  awk '/^VmRSS/ {print $2}' "/proc/$1/status"
}
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# Starts a leanserve in the background; its pid lands in $LAST_PID (no command
# substitution: a subshell would lose track of it). Its admin surface shares the serving
# port (loopback only), so /admin/... and /debug/... are read at the same URL.
start_leanserve() { # port root extra-args...
  local port=$1 root=$2; shift 2
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "port $port is already taken; stop what listens there first" >&2; exit 1
  fi
  RUST_LOG=warn "$LEANSERVE" --config config --env test --bind "127.0.0.1:$port" --workers "$WORKERS" \
    --root "$root" --set static_files.cache_expiration=3600 --set profiler.heap_profiling=false --set admin.bind=serving "$@" \
    >"$LOGS/leanserve-$port.log" 2>&1 &
  pids+=($!)
  LAST_PID=$!
}

# ---- servers ---------------------------------------------------------------------------
declare -A URL PID
start_leanserve 18080 "$work/site"; PID[leanserve]=$LAST_PID
URL[leanserve]=http://127.0.0.1:18080/style.css
# The prod profile's store: gzip bytes only, identity copies of files read often.
start_leanserve 18089 "$work/site" --set static_files.store=compressed-only; PID[leanserve-co]=$LAST_PID
URL[leanserve-co]=http://127.0.0.1:18089/style.css
"$BASELINE" "$work/site" 127.0.0.1:18081 "$WORKERS" >"$LOGS/baseline.log" 2>&1 &
pids+=($!); PID[actix-files]=$!
URL[actix-files]=http://127.0.0.1:18081/style.css
servers=(leanserve leanserve-co actix-files)
if command -v nginx >/dev/null; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  gzip on;
  gzip_comp_level 6;
  gzip_min_length 1024;
  gzip_types text/css text/plain application/javascript application/json image/svg+xml;
  gzip_vary on;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:18082; root $work/site; }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!); PID[nginx]=$!
  URL[nginx]=http://127.0.0.1:18082/style.css
  servers+=(nginx)
else
  echo "nginx is not installed: comparing with actix-files only" >&2
fi
for s in "${servers[@]}"; do
  wait_up "${URL[$s]}"
  curl -fs -o /dev/null "${URL[$s]}"; curl -fs -o /dev/null -H 'Accept-Encoding: gzip' "${URL[$s]}"
done
# leanserve compresses a file for its first client of each coding and builds the stored
# level in the background (a second coding after 3 requests for it); the compressed-only
# one keeps an identity copy after a few identity reads: warm both to their steady state
# (every coding stored, the queue empty).
for s in leanserve leanserve-co; do
  base=${URL[$s]%/*}
  for file in $CSS_FILES; do
    for coding in br zstd gzip; do
      for _ in 1 2 3 4; do curl -fs -o /dev/null -H "Accept-Encoding: $coding" "$base/$file"; done
    done
    for _ in 1 2 3 4; do curl -fs -o /dev/null "$base/$file"; done
  done
  for _ in $(seq 1 100); do
    curl -fs "$base/admin/cache" | grep -q '"compression_queue":0' && break
    sleep 0.1
  done
done

# ---- throughput: rounds interleave the servers so noise spreads evenly ------------------
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
to_ms() { # wrk latency like 812.00us / 1.20ms / 1.01s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
if wants throughput; then
declare -A RPS P99
encodings_of() { case $1 in leanserve*) echo identity gzip br zstd ;; *) echo identity gzip ;; esac; }
for round in $(seq 1 "$ROUNDS"); do
  for file in $CSS_FILES; do
    for s in "${servers[@]}"; do
      for enc in $(encodings_of "$s"); do
        header=(); [ "$enc" != identity ] && header=(-H "Accept-Encoding: $enc")
        out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${header[@]}" "${URL[$s]%/*}/$file")
        rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
        RPS[$s,$file,$enc]+="$rps "; P99[$s,$file,$enc]+="$p99 "
        echo "round $round: $file $s $enc: $rps req/s, p99 $p99 ms" >&2
      done
    done
  done
done

check() { awk -v a="$2" -v b="$3" -v t="$4" -v what="$1" 'BEGIN { r = a / b; printf "- %s: %.2fx (target >= %sx): %s\n", what, r, t, (r >= t ? "met" : "NOT met") }'; }
for file in $CSS_FILES; do
  size=$(( $(stat -c %s "$work/site/$file") / 1024 ))
  echo
  echo "## $size KB CSS ($file), wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds (medians), $WORKERS workers each"
  echo
  echo "| server | encoding | body bytes | req/s | p99 ms | RSS MB | leanserve / server |"
  echo "|---|---|---|---|---|---|---|"
  for enc in identity gzip br zstd; do
    ls_rps=$(median "${RPS[leanserve,$file,$enc]}")
    for s in "${servers[@]}"; do
      [ -n "${RPS[$s,$file,$enc]:-}" ] || continue
      rps=$(median "${RPS[$s,$file,$enc]}"); p99=$(median "${P99[$s,$file,$enc]}")
      header=(); [ "$enc" != identity ] && header=(-H "Accept-Encoding: $enc")
      bytes=$(curl -fs "${header[@]}" "${URL[$s]%/*}/$file" | wc -c)
      rss=$(awk -v k="$(rss_kb "${PID[$s]}")" 'BEGIN {printf "%.1f", k / 1024}')
      [ "$s" = nginx ] && rss="$(awk -v k="$(ps --ppid "${PID[nginx]}" -o rss= | awk '{s+=$1} END {print s}')" 'BEGIN {printf "%.1f", k / 1024}') (workers)"
      ratio=$(awk -v a="$ls_rps" -v b="$rps" 'BEGIN {printf "%.2fx", a / b}')
      echo "| $s | $enc | $bytes | $rps | $p99 | $rss | $ratio |"
    done
  done
  ls_id=$(median "${RPS[leanserve,$file,identity]}"); ls_gz=$(median "${RPS[leanserve,$file,gzip]}")
  echo
  check "$file: leanserve gzip vs leanserve identity" "$ls_gz" "$ls_id" 0.95
  for enc in br zstd; do
    check "$file: leanserve $enc vs leanserve gzip" "$(median "${RPS[leanserve,$file,$enc]}")" "$ls_gz" 0.95
    check "$file: compressed-only $enc vs compressed-only gzip" "$(median "${RPS[leanserve-co,$file,$enc]}")" "$(median "${RPS[leanserve-co,$file,gzip]}")" 0.95
  done
  check "$file: compressed-only identity (copy kept) vs both" "$(median "${RPS[leanserve-co,$file,identity]}")" "$ls_id" 0.9
  check "$file: leanserve identity vs actix-files" "$ls_id" "$(median "${RPS[actix-files,$file,identity]}")" 20
  if [[ " ${servers[*]} " == *" nginx "* ]]; then
    check "$file: leanserve identity vs nginx sendfile" "$ls_id" "$(median "${RPS[nginx,$file,identity]}")" 1.0
    check "$file: leanserve gzip vs nginx gzip on the fly" "$ls_gz" "$(median "${RPS[nginx,$file,gzip]}")" 4
    check "$file: compressed-only identity vs nginx sendfile" "$(median "${RPS[leanserve-co,$file,identity]}")" "$(median "${RPS[nginx,$file,identity]}")" 1.0
  fi
done
fi

# ---- one setting on vs off: two servers, interleaved rounds -------------------------------
# on_off FEATURE TARGET_PERCENT ON_PORT OFF_PORT: both servers serve the CSS file; each
# round runs wrk against both, alternating which goes first so an order effect cancels
# out; prints medians, the per-round on/off ratios and whether the cost stays under the
# target.
on_off() {
  local feature=$1 target=$2 on_port=$3 off_port=$4
  for port in "$on_port" "$off_port"; do wait_up "http://127.0.0.1:$port/style.css"; curl -fs -o /dev/null "http://127.0.0.1:$port/style.css"; done
  local ratios="" on_all="" off_all="" round on off port
  for round in $(seq 1 "$ROUNDS"); do
    local order=("$on_port" "$off_port"); (( round % 2 == 0 )) && order=("$off_port" "$on_port")
    local -A got=()
    for port in "${order[@]}"; do
      got[$port]=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/style.css" | awk '/^Requests\/sec/ {print $2}')
    done
    on=${got[$on_port]}; off=${got[$off_port]}
    echo "round $round: $feature on $on req/s, off $off req/s" >&2
    on_all+="$on "; off_all+="$off "
    ratios+="$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.4f", a / b}') "
  done
  echo
  echo "## ${feature^} on vs off (cached hits, identity, $ROUNDS rounds)"
  echo
  echo "- on: median $(median "$on_all") req/s; off: median $(median "$off_all") req/s"
  echo "- per-round on/off ratios: $ratios"
  awk -v r="$(median "$ratios")" -v t="$target" -v f="$feature" 'BEGIN { printf "- median ratio %.3f: %s costs %.1f%% (target < %s%%): %s\n", r, f, (1 - r) * 100, t, ((1 - r) * 100 < t ? "met" : "NOT met") }'
}

# ---- monitoring on vs off: the cost of the per-request counters and the monitor ---------
if wants overhead; then
start_leanserve 18084 "$work/site" --set monitoring.enabled=true --set monitoring.interval_ms=1000
on_pid=$LAST_PID
start_leanserve 18085 "$work/site" --set monitoring.enabled=false
off_pid=$LAST_PID
on_off monitoring 3 18084 18085
kill "$on_pid" "$off_pid"
fi

# ---- heap profiling on vs off: the cost of jemalloc's sampling on the hit path ----------
if wants profiling; then
start_leanserve 18086 "$work/site" --set profiler.heap_profiling=true
prof_on_pid=$LAST_PID
start_leanserve 18087 "$work/site" --set profiler.heap_profiling=false
prof_off_pid=$LAST_PID
wait_up http://127.0.0.1:18086/style.css
state=$(curl -fs http://127.0.0.1:18086/admin/profiler/stats | grep -o '"state":"[a-z]*"' | head -1)
[[ $state == '"state":"on"' ]] || { echo "heap profiling did not switch on: $state" >&2; exit 1; }
on_off "heap profiling" 5 18086 18087
curl -fs -o "$LOGS/heap-under-load.pb.gz" http://127.0.0.1:18086/debug/pprof/heap
echo "- a heap profile of the profiled server after the load: $(stat -c %s "$LOGS/heap-under-load.pb.gz") bytes ($LOGS/heap-under-load.pb.gz)"
kill "$prof_on_pid" "$prof_off_pid"
fi

# ---- cached hits while a 50 MB file streams, then while one loads ------------------------
if wants beside; then
hits_beside() { # label url-of-big-file port
  local label=$1 big=$2
  ( for _ in $(seq 1 4); do curl -fs -o /dev/null -H 'Accept-Encoding: gzip' "$big"; done ) &
  local mover=$!
  sleep 0.2
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$3")
  wait "$mover" || true
  echo "- cached hits while a 50 MB file $label: $(awk '/^Requests\/sec/ {print $2}' <<<"$out") req/s, p99 $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")") ms (target p99 < 5 ms)"
}
echo
echo "## Cached hits beside a 50 MB file"
echo
hits_beside "streams (over max_file_size)" http://127.0.0.1:18080/big.txt "${URL[leanserve]}"
start_leanserve 18083 "$work/site" --set static_files.max_file_size=67108864 --set static_files.max_cache_size=134217728
load_pid=$LAST_PID
wait_up http://127.0.0.1:18083/style.css; curl -fs -o /dev/null http://127.0.0.1:18083/style.css
# Each request after a clear loads and compresses the 50 MB file again.
( for _ in $(seq 1 3); do curl -fs -o /dev/null -X POST http://127.0.0.1:18083/admin/cache/clear; curl -fs -o /dev/null -H 'Accept-Encoding: gzip' http://127.0.0.1:18083/big.txt; done ) &
mover=$!
sleep 0.2
out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency http://127.0.0.1:18083/style.css)
wait "$mover" || true
echo "- cached hits while a 50 MB file loads and compresses (cleared and reloaded 3 times): $(awk '/^Requests\/sec/ {print $2}' <<<"$out") req/s, p99 $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")") ms (target p99 < 5 ms)"
kill "$load_pid"
fi

# ---- memory: touch more bytes than the budget ------------------------------------------
if wants memory; then
touched=$(du -sb "$work/mem" | cut -f1)
echo
echo "## Memory: $MEM_FILES text files ($((touched / 1048576)) MB) through a $((MEM_BUDGET / 1048576)) MiB cache"
echo
echo "| store | items cached | bytes cached | budget | RSS after MB | peak RSS MB | limit (budget + 30 MB) |"
echo "|---|---|---|---|---|---|---|"
port=18090
for store in both compressed-only; do
  port=$((port + 1))
  start_leanserve "$port" "$work/mem" --set static_files.max_cache_size="$MEM_BUDGET" --set static_files.store="$store"
  pid=$LAST_PID
  wait_up "http://127.0.0.1:$port/page0000.txt"
  python3 - "$port" "$MEM_FILES" <<'PY'
import concurrent.futures, sys, urllib.request
port, count = sys.argv[1], int(sys.argv[2])
def fetch(i):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/page{i:04}.txt", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request) as response:
        response.read()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    for _ in range(2):
        list(pool.map(fetch, range(count)))
PY
  stats=$(curl -fs "http://127.0.0.1:$port/admin/cache")
  items=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])' <<<"$stats")
  cached=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_cached"])' <<<"$stats")
  rss=$(rss_kb "$pid"); hwm=$(hwm_kb "$pid")
  limit=$(( (MEM_BUDGET + 30 * 1048576) / 1024 ))
  verdict=$([ "$hwm" -le "$limit" ] && echo "met" || echo "NOT met")
  echo "| $store | $items | $cached | $MEM_BUDGET | $((rss / 1024)) | $((hwm / 1024)) | $((limit / 1024)) MB: $verdict |"
  eval "items_$(tr - _ <<<"$store")=$items"
  kill "$pid"
done
echo
awk -v a="$items_compressed_only" -v b="$items_both" 'BEGIN { printf "compressed-only holds %d files where both holds %d: %.1fx as many in the same budget\n", a, b, a / b }'
fi
