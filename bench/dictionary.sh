#!/usr/bin/env bash
# RFC 9842 compression dictionaries (dcz/dcb): what a client holding leanserve's site
# dictionary, or the last version of an asset, pays on the wire; what it costs in
# throughput and memory.
#
# The site is the Rust toolchain's HTML documentation ("$(rustc --print sysroot)/share/doc/
# rust/html", ~52,000 files, ~48,600 HTML pages, ~620 MiB of HTML), far bigger than the
# cache budget. At start leanserve trains its site dictionary on up to 2,000 of its HTML
# pages (the script waits for it to show in /admin/cache); each HTML response then carries
# `Link: </.leanserve/dictionary/<sha256>>; rel="compression-dictionary"`. A "dictionary
# client" (python3, bench/dictionary.py) does what a browser does: HEAD on a page for the
# Link, the dictionary fetched with Chrome's `gzip, deflate, br, zstd` (its bytes on the wire
# counted), then `Accept-Encoding: gzip, deflate, br, zstd, dcb, dcz` and
# `Available-Dictionary: :<base64 sha256>:` on HTML requests (the dictionary is
# match-dest=("document")), Chrome's header on the rest. Every body received is decoded
# (gzip, br, zstd, and dcz against the dictionary as raw content) and compared with the file;
# dcb is not checked (python's brotli has no shared dictionaries).
#
# leanserve: the binary under test, prod profile (compressed-only store, max-age=3600),
# static_files.max_cache_size = BUDGET_MB MiB, 2 workers, the admin surface on a Unix socket.
# nginx (Debian's nginx-light): 2 workers, sendfile, gzip on the fly at level 6, as in
# bench/wire.sh. References computed locally: gzip-6 = python zlib level 6 in a gzip wrapper
# (window 15, memLevel 8: what nginx's gzip_comp_level 6 runs), brotli-11 = python brotli
# quality 11. Sections (SKIP any of them), each on a fresh server, and the targets:
#   1. pages: every HTML page of the site requested once by a dictionary client (CONCURRENCY
#      connections). Median page dcz body / gzip-6 <= 0.25x; median dcz / brotli-11 <= 0.35x,
#      brotli-11 on a seeded sample of SAMPLE pages >= 1,024 B (brotli-11 is slow).
#   2. stream: bench/wire.sh's Zipf (s = 1) stream of REQUESTS requests over all files (ranks
#      a permutation seeded with SEED), walked twice (cold, then warm) by a dictionary client
#      against leanserve, and by a `gzip` client and a Chrome-header client against nginx (and
#      a Chrome-header client against leanserve, for reference). The dictionary client's
#      bytes, its dictionary download included, <= 0.5x nginx's to the gzip client.
#   3. asset: JS (a real JavaScript file of the docs, > 100 KB) as ROOT/assets/app-1.js and a
#      second version with JS_PCT % of its lines edited (seeded) as app-2.js, leanserve with
#      static_files.dictionary_assets=/assets/app-*.js; app-1.js fetched, then app-2.js with
#      app-1.js's hash as Available-Dictionary. dcz bytes <= 0.2x v2's brotli-11.
#   4. wrk: cached hits on one HTML page (the one closest to PAGE_BYTES), wrk -t2 -c16
#      -d WRK_SECONDS, (a) `Accept-Encoding: gzip` against (b) the dictionary client's headers,
#      interleaved a, b, a, b ... ROUNDS times each after a warm-up. Median b / a >= 0.9x.
#   5. rss: leanserve's VmHWM at the end of sections 2 and 1 <= budget + 30 MB; and
#      dictionary_bytes from /admin/cache (also shown for the stream walked with Chrome's
#      header, no dictionary: a reference, no target).
#
#   bench/dictionary.sh                       # everything (~10 minutes on 2 cores)
#   SKIP="pages wrk" bench/dictionary.sh      # the other sections only
#   REQUESTS=2000 SAMPLE=500 bench/dictionary.sh   # a quicker run
#
# Knobs (environment): SEED=1, REQUESTS=5000, CONCURRENCY=4, BUDGET_MB=32, SAMPLE=2000,
# SKIP="" (pages stream asset wrk), JS=/unstable-book/toc-c79f2ec6.js (a path under SITE; its
# 450 lines are real code around one long string), JS_PCT=5, PAGE_BYTES=50000, PAGE (a
# path: overrides PAGE_BYTES), WRK_SECONDS=10, ROUNDS=3, LEANSERVE (default: cargo build
# --release, target/release/leanserve), NGINX=/usr/sbin/nginx, SITE,
# LOGS=target/bench-dictionary (responses, figures, server logs and the report, kept).
# The report (markdown) is printed and saved as $LOGS/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
umask 022

SEED=${SEED:-1}
REQUESTS=${REQUESTS:-5000}
CONCURRENCY=${CONCURRENCY:-4}
BUDGET_MB=${BUDGET_MB:-32}
SAMPLE=${SAMPLE:-2000}
SKIP=${SKIP-}
JS=${JS:-/unstable-book/toc-c79f2ec6.js}
JS_PCT=${JS_PCT:-5}
PAGE_BYTES=${PAGE_BYTES:-50000}
PAGE=${PAGE-}
WRK_SECONDS=${WRK_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
WORKERS=2
MIN=1024
BUDGET=$((BUDGET_MB * 1048576))
COMMAND="$(printf '%q ' "$0" "$@")"
COMMAND="$(env | { grep -E '^(SEED|REQUESTS|CONCURRENCY|BUDGET_MB|SAMPLE|SKIP|JS|JS_PCT|PAGE_BYTES|PAGE|WRK_SECONDS|ROUNDS|LEANSERVE)=' || true; } | sort | tr '\n' ' ')$COMMAND"
skip() { [[ " $SKIP " == *" $1 "* ]]; }

if [ -z "${SITE:-}" ]; then SITE="$(rustc --print sysroot)/share/doc/rust/html"; fi
[ -d "$SITE" ] || { echo "SITE $SITE is not a folder (rustup component add rust-docs)" >&2; exit 1; }
SITE=$(realpath "$SITE")
python3 -c 'import zstandard, brotli' 2>/dev/null || pip install -q zstandard brotli
if [ ! -x "$NGINX" ]; then
  echo "installing nginx-light from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
command -v wrk >/dev/null || skip wrk || { echo "wrk not found (apt-get install wrk), or SKIP=wrk" >&2; exit 1; }
if [ -z "${LEANSERVE:-}" ]; then
  cargo build --release --quiet --bin leanserve
  LEANSERVE=target/release/leanserve
fi
LEANSERVE=$(realpath "$LEANSERVE")
CONFIG=$(realpath config)
PY=$(realpath bench/dictionary.py)

LOGS=${LOGS:-target/bench-dictionary}
mkdir -p "$LOGS"
LOGS=$(realpath "$LOGS")
rm -f "$LOGS"/*.log "$LOGS"/*.out "$LOGS"/*.tsv "$LOGS"/*.json "$LOGS"/*.txt "$LOGS"/report.md
work=$(mktemp -d)
chmod 755 "$work"
trap cleanup EXIT

python3 "$PY" stream "$SITE" "$SEED" "$REQUESTS" "$LOGS" >&2

# ---- servers (as bench/wire.sh) ---------------------------------------------------------------
# leanserve on a port the OS picks, admin on a Unix socket; pid in $LAST_PID, URL in $LAST_URL,
# admin socket in $ADMIN_SOCK. Waits for the site dictionary when the root has HTML pages.
admin() { curl -fs --unix-socket "$ADMIN_SOCK" "http://localhost$1"; }
start_leanserve() { # name root [--set k=v ...]
  local name=$1 root=$2
  shift 2
  : >"$LOGS/$name.out"
  env -u LEANSERVE_ADMIN_TOKEN RUST_LOG=info "$LEANSERVE" --config "$CONFIG" --env prod \
    --bind 127.0.0.1:0 --workers "$WORKERS" --root "$root" \
    --set admin.bind="unix:$work/$name-admin.sock" --set static_files.max_cache_size="$BUDGET" \
    "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  LAST_PID=$!
  LAST_URL=
  ADMIN_SOCK=$work/$name-admin.sock
  local up=0
  for _ in $(seq 1 100); do
    LAST_URL=$(sed -n '1s#^leanserve listening on \(http://.*\)$#\1#p' "$LOGS/$name.out")
    if [ -n "$LAST_URL" ] && curl -fs -o /dev/null "$LAST_URL/health" && [ -S "$ADMIN_SOCK" ]; then up=1; break; fi
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "$name did not come up; see $LOGS/$name.log" >&2; exit 1; }
  if [ "$root" = "$SITE" ]; then
    local t0=$SECONDS
    until admin /admin/cache | python3 -c 'import json,sys; sys.exit(0 if any(d.get("kind") == "site" for d in json.load(sys.stdin).get("dictionaries", [])) else 1)'; do
      [ $((SECONDS - t0)) -lt 180 ] || { echo "$name: no site dictionary after 180 s; see $LOGS/$name.log" >&2; exit 1; }
      sleep 0.2
    done
    echo "$name: $(grep -o 'site dictionary .*' "$LOGS/$name.log" | head -1)" >&2
  fi
}


# Peak and current RSS of a pid (and /admin/cache's figures) into $LOGS/rss.json under KEY.
echo '{}' >"$LOGS/rss.json"
record_rss() { # key pid
  admin /admin/cache >"$LOGS/$1-cache.json" || echo '{}' >"$LOGS/$1-cache.json"
  python3 - "$LOGS/rss.json" "$1" "/proc/$2/status" "$LOGS/$1-cache.json" <<'PY'
import json, sys
out, key, status, cache = sys.argv[1:5]
st = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in open(status) if l.startswith(("VmHWM", "VmRSS", "RssAnon", "RssFile"))}
c = json.load(open(cache))
d = json.load(open(out))
d[key] = {"hwm": st["VmHWM"], "rss": st["VmRSS"], "anon": st["RssAnon"], "file": st["RssFile"], "dictionary_bytes": c.get("dictionary_bytes"),
          "bytes_cached": c.get("bytes_cached", 0), "items": c.get("items")}
json.dump(d, open(out, "w"), indent=1)
PY
}

# ---- 2. the Zipf stream ---------------------------------------------------------------------
if ! skip stream; then
  sort -u "$LOGS/stream.txt" | sed "s#^#$SITE#" | tr '\n' '\0' | xargs -0 cat >/dev/null
  for run in leanserve:dict nginx:gzip nginx:chrome leanserve:chrome; do
    s=${run%%:*} c=${run##*:} name=stream-${run/:/-}
    if [ "$s" = leanserve ]; then start_leanserve "$name" "$SITE"; else start_nginx "$name" "$SITE" /index.html; fi
    pid=$LAST_PID
    for pass in 1 2; do
      echo "$name pass $pass: $(python3 "$PY" walk "$LAST_URL" "$c" "$LOGS/stream.txt" "$SITE" "$CONCURRENCY" "$LOGS/$name-pass$pass")" >&2
      if [ "$s" = leanserve ] && [ "$pass" = 1 ]; then
        # warm: leanserve's background recompressions of pass 1 done (at most 120 s)
        t0=$SECONDS
        while [ "$(admin /admin/cache | python3 -c 'import json,sys; print(json.load(sys.stdin).get("compression_queue", 0))')" != 0 ] && [ $((SECONDS - t0)) -lt 120 ]; do sleep 0.2; done
        echo "$name: waited $((SECONDS - t0)) s for the compression queue" >&2
      fi
    done
    [ "$run" = leanserve:dict ] && record_rss "after table 2 (stream, dictionary client, 2 passes)" "$pid"
    [ "$run" = leanserve:chrome ] && record_rss "reference: after table 2's stream with Chrome's header (no dictionary), 2 passes" "$pid"
    stop_server "$name" "$pid"
  done
fi

# ---- 1. every HTML page once ------------------------------------------------------------------
if ! skip pages; then
  cut -f1 "$LOGS/pages.txt" | sed "s#^#$SITE#" | tr '\n' '\0' | xargs -0 cat >/dev/null
  start_leanserve pages "$SITE"
  pid=$LAST_PID
  echo "$(python3 "$PY" pages "$LAST_URL" "$LOGS/pages.txt" "$SITE" "$CONCURRENCY" "$LOGS/pages")" >&2
  record_rss "after table 1 (every HTML page once)" "$pid"
  stop_server pages "$pid"
  python3 "$PY" refs "$SITE" "$LOGS/pages.tsv" "$SAMPLE" "$SEED" "$(nproc)" "$LOGS/pages-refs" >&2
fi

# ---- 3. a versioned asset ---------------------------------------------------------------------
if ! skip asset; then
  mkdir -p "$work/assets-root"
  python3 "$PY" mkjs "$SITE$JS" "$JS_PCT" "$SEED" "$work/assets-root" >"$LOGS/js-versions.json"
  start_leanserve asset "$work/assets-root" --set 'static_files.dictionary_assets=/assets/app-*.js' \
    --set static_files.cache_control=max-age=3600
  pid=$LAST_PID
  python3 "$PY" js "$LAST_URL" "$work/assets-root" "$LOGS/js.json" >&2
  stop_server asset "$pid"
fi

# ---- 4. throughput of cached hits -------------------------------------------------------------
if ! skip wrk; then
  if [ -z "$PAGE" ]; then
    PAGE=$(awk -F'\t' -v t="$PAGE_BYTES" '{d = $2 - t; if (d < 0) d = -d; if (best == "" || d < best) { best = d; p = $1 } } END { print p }' "$LOGS/pages.txt")
  fi
  start_leanserve wrk "$SITE"
  pid=$LAST_PID
  url=$LAST_URL$PAGE
  dict_path=$(curl -fs -D - -o /dev/null "$url" | tr -d '\r' | sed -n 's#^[Ll]ink: <\([^>]*\)>.*#\1#p')
  curl -fs -o "$work/dict" "$LAST_URL$dict_path"
  avail=":$(openssl dgst -sha256 -binary "$work/dict" | base64 -w0):"
  HA=(-H "Accept-Encoding: gzip")
  HB=(-H "Accept-Encoding: gzip, deflate, br, zstd, dcb, dcz" -H "Available-Dictionary: $avail")
  for _ in 1 2 3 4 5; do curl -fs -o /dev/null "${HA[@]}" "$url"; curl -fs -o /dev/null "${HB[@]}" "$url"; sleep 0.2; done
  sleep 1
  coding_of() { curl -fs -D - -o "$work/body" "$@" "$url" | tr -d '\r' | sed -n 's#^[Cc]ontent-[Ee]ncoding: ##p' | tr -d '\n'; echo " $(stat -c %s "$work/body") B"; }
  warm_a=$(coding_of "${HA[@]}")
  warm_b=$(coding_of "${HB[@]}")
  echo "wrk on $PAGE: (a) $warm_a, (b) $warm_b" >&2
  for i in $(seq 1 "$ROUNDS"); do
    for v in a b; do
      if [ $v = a ]; then h=("${HA[@]}"); else h=("${HB[@]}"); fi
      wrk -t2 -c16 -d"${WRK_SECONDS}s" "${h[@]}" "$url" >"$LOGS/wrk-$v-$i.txt" 2>&1
      echo "wrk $v round $i: $(grep -E 'Requests/sec' "$LOGS/wrk-$v-$i.txt")" >&2
    done
  done
  python3 - "$LOGS" "$ROUNDS" "$PAGE" "$(stat -c %s "$SITE$PAGE")" "$WRK_SECONDS" "$warm_a" "$warm_b" >"$LOGS/wrk.json" <<'PY'
import json, re, sys
logs, rounds, page, size, secs, wa, wb = sys.argv[1:8]
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
    mb = float(m.group(1)) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[m.group(2)]
    n = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    return {"rps": rps, "mb_s": mb, "non2xx": int(n.group(1)) if n else 0}
print(json.dumps({"page": page, "page_bytes": int(size), "seconds": int(secs), "warm_a": wa, "warm_b": wb,
                  "a": [parse(f"{logs}/wrk-a-{i}.txt") for i in range(1, int(rounds) + 1)],
                  "b": [parse(f"{logs}/wrk-b-{i}.txt") for i in range(1, int(rounds) + 1)]}))
PY
  stop_server wrk "$pid"
fi

# ---- report -----------------------------------------------------------------------------------
echo
params=$(python3 -c 'import json, sys; print(json.dumps(dict(zip(["version", "date", "command", "site", "budget_mb", "nginx", "seed", "concurrency", "js", "js_pct"], sys.argv[1:]))))' \
  "$("$LEANSERVE" --version 2>&1 | head -1), binary of $(date -u -r "$LEANSERVE" '+%Y-%m-%d %H:%M UTC'); tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted src changes')" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$COMMAND" "$SITE" "$BUDGET_MB" "$("$NGINX" -v 2>&1 | sed 's#.*/##')" "$SEED" "$CONCURRENCY" "$JS" "$JS_PCT")
python3 "$PY" report "$LOGS" "$params" | tee "$LOGS/report.md"
printf '%s' "$EXITS"
