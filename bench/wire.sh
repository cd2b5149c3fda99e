#!/usr/bin/env bash
# Bytes on the wire from a cold start: what visitors pay for, leanserve against nginx.
#
# The site is a real documentation site bigger than the cache budget: the Rust toolchain's
# own HTML documentation ("$(rustc --print sysroot)/share/doc/rust/html", ~52,000 files,
# ~620 MiB of HTML, JS, CSS, SVG, fonts), served read-only as it is. Every regular file
# under it (hidden ones excepted: leanserve refuses them by design) is listed in sorted
# order; popularity ranks are a permutation seeded from SEED, and REQUESTS paths are drawn
# Zipf (s = 1) over the ranks, written once to $LOGS/stream.txt and replayed to every
# server.
#
# For each Accept-Encoding variant in HEADERS ("chrome": Chrome's `gzip, deflate, br, zstd`;
# "gzip": `gzip` only) and each server, a fresh server walks the stream twice: pass 1 on a
# cold server (empty cache), pass 2 right after on the same, warm server. Servers:
#   - leanserve: the binary under test (LEANSERVE), prod profile (compressed-only store),
#     static_files.max_cache_size = BUDGET_MB MiB (far smaller than the site; at the
#     defaults larger than the 25.2 MiB of files the stream touches, 8 MiB as stored gzip:
#     the report prints both, and no eviction is needed), 2 workers, SERVER_SET passed
#     as --set; its admin surface on a Unix socket (no token needed in prod), `GET
#     /admin/cache` saved after each pass;
#   - baseline (only with BASELINE=/path/to/leanserve): another leanserve binary, run the
#     same way, shown as its own rows;
#   - nginx (Debian's nginx-light): 2 workers, sendfile, gzip on the fly at level 6
#     (gzip_vary, gzip_min_length 1024, gzip_types for css, js, json, svg, xml, txt,
#     markdown and csv; html always), on its own loopback port with a temp prefix. Started
#     as root it runs its workers as root too (`user root;`): /root, where rustup keeps the
#     docs, is not traversable by www-data.
#
# The client (python3, stdlib http.client, which does not decode Content-Encoding) keeps
# CONCURRENCY keep-alive connections, each a thread taking the next request of the shared
# stream in order, and counts per response: status, Content-Encoding, the body bytes as
# received (after de-chunking), and the file's kind. A "text response" is one for a file with
# a text extension (html htm css js mjs json svg xml txt md map csv; not wasm) of at least
# MIN = 1024 bytes on disk (leanserve's static_files.min_compress_size). Identity bodies
# must be the file's size and gzip bodies must inflate to it (br and zstd are not checked:
# python's stdlib has no decoder); mismatches are reported under the table.
#
# Prints a markdown table, a row per (header, server, pass): requests, errors (answers other
# than 2xx/304, and socket errors), the share of text responses that came back compressed
# (any Content-Encoding), body MB (2^20 bytes), responses by Content-Encoding, and the body
# bytes over nginx's for the same header and pass. Then the targets, each met or missed, for
# leanserve (and the baseline, for comparison):
#   - chrome: cold (pass 1) body bytes <= 0.9x nginx's, warm (pass 2) <= 0.8x;
#   - gzip only: cold and warm <= 1.0x nginx's;
#   - 100% of text responses (>= MIN) compressed, in both passes, for every header.
#
#   bench/wire.sh                                        # build target/release/leanserve, run
#   LEANSERVE=/path/to/leanserve bench/wire.sh           # use that binary, build nothing
#   BASELINE=/tmp/leanserve-base-target/release/leanserve bench/wire.sh   # and today's build
#   HEADERS=chrome REQUESTS=2000 bench/wire.sh           # a quick run
#
# Knobs (environment):
#   SEED=1             popularity ranks and the request stream
#   REQUESTS=5000      requests in the stream (each pass walks all of them)
#   CONCURRENCY=4      client keep-alive connections (threads)
#   BUDGET_MB=32       leanserve's static_files.max_cache_size in MiB
#   LEANSERVE          leanserve under test (default: `cargo build --release --bin leanserve`,
#                      target/release/leanserve)
#   BASELINE           another leanserve binary for rows of its own (default: none)
#   BASELINE_CONFIG=config   the configuration folder for BASELINE (--config); point it at
#                      the baseline's own checkout when this tree's config/ has moved on
#   SERVER_SET         more leanserve settings, "key=value ...", each passed as --set, to
#                      both leanserve binaries (not for the targets' defaults: e.g.
#                      "static_files.store=both")
#   NGINX=/usr/sbin/nginx    nginx binary (installed with apt-get install nginx-light if absent)
#   SITE               the site's root (default: the Rust documentation of `rustc`'s sysroot)
#   LOGS=target/bench-wire   the stream, server logs, per-response TSVs, per-pass summaries
#                      and /admin/cache after each pass, kept
#   HEADERS="chrome gzip"    Accept-Encoding variants to run (also: identity)
#   SETTLE=120         between the passes, wait up to this many seconds for leanserve's
#                      compression queue to empty (0: start pass 2 at once); the wait is
#                      printed. nginx compresses on the fly and has nothing to wait for.
#
# The OS page cache is warmed with every file the stream requests before the first server
# starts: "cold" is a cold server, not a cold disk. Bytes are what this measures; the pass
# times logged on the way are only for orientation.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
umask 022

SEED=${SEED:-1}
REQUESTS=${REQUESTS:-5000}
CONCURRENCY=${CONCURRENCY:-4}
SETTLE=${SETTLE:-120}
BUDGET_MB=${BUDGET_MB:-32}
BASELINE=${BASELINE-}
BASELINE_CONFIG=${BASELINE_CONFIG:-config}
SERVER_SET=${SERVER_SET-}
NGINX=${NGINX:-/usr/sbin/nginx}
HEADERS=${HEADERS:-chrome gzip}
WORKERS=2
MIN=1024
BUDGET=$((BUDGET_MB * 1048576))

for h in $HEADERS; do
  case $h in chrome | gzip | identity) ;; *) echo "HEADERS: unknown variant '$h' (chrome, gzip, identity)" >&2; exit 1 ;; esac
done
if [ -z "${SITE:-}" ]; then SITE="$(rustc --print sysroot)/share/doc/rust/html"; fi
[ -d "$SITE" ] || { echo "SITE $SITE is not a folder (rustup component add rust-docs)" >&2; exit 1; }
SITE=$(realpath "$SITE")
if [ ! -x "$NGINX" ]; then
  echo "installing nginx-light from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
if [ -z "${LEANSERVE:-}" ]; then
  cargo build --release --quiet --bin leanserve
  LEANSERVE=target/release/leanserve
fi
LEANSERVE=$(realpath "$LEANSERVE")
[ -z "$BASELINE" ] || BASELINE=$(realpath "$BASELINE")
CONFIG=$(realpath config)
BASELINE_CONFIG=$(realpath "$BASELINE_CONFIG")

LOGS=${LOGS:-target/bench-wire}
mkdir -p "$LOGS"
LOGS=$(realpath "$LOGS")   # nginx is started with another prefix
rm -f "$LOGS"/*.log "$LOGS"/*.out "$LOGS"/*.tsv "$LOGS"/*.json "$LOGS"/stream.txt "$LOGS"/*-settle.txt   # this script's own, from an earlier run
work=$(mktemp -d)
chmod 755 "$work"
trap cleanup EXIT

# ---- the stream: Zipf (s = 1) over the site's files, ranks a seeded permutation ------------
python3 - "$SITE" "$SEED" "$REQUESTS" "$LOGS" "$MIN" <<'PY'
"""SITE SEED REQUESTS LOGS MIN: writes LOGS/stream.txt (a path a line), LOGS/files.tsv (each
requested file: path, bytes on disk) and LOGS/stream.json (the site's and the stream's
figures)."""
import itertools, json, os, random, sys
site, seed, count, logs, minimum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
TEXT = {"html", "htm", "css", "js", "mjs", "json", "svg", "xml", "txt", "md", "map", "csv"}
files, hidden = [], 0
for top, dirs, names in os.walk(site):
    for name in names:
        full = os.path.join(top, name)
        rel = os.path.relpath(full, site)
        if any(part.startswith(".") for part in rel.split(os.sep)):
            hidden += 1
            continue
        if os.path.isfile(full) and not os.path.islink(full):
            files.append(("/" + rel.replace(os.sep, "/"), os.path.getsize(full)))
files.sort()
rng = random.Random(seed)
order = list(range(len(files)))
rng.shuffle(order)                                   # order[r]: the file at rank r + 1
cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(files))))
ranks = rng.choices(range(len(files)), cum_weights=cum, k=count)
stream = [files[order[r]] for r in ranks]
with open(os.path.join(logs, "stream.txt"), "w") as f:
    f.write("".join(p + "\n" for p, _ in stream))
distinct = dict(stream)
with open(os.path.join(logs, "files.tsv"), "w") as f:
    f.write("".join(f"{p}\t{n}\n" for p, n in sorted(distinct.items())))
ext = lambda p: p.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower() if "." in p.rsplit("/", 1)[-1] else ""
top1 = max(1, len(files) // 100)
stats = {
    "site_files": len(files), "site_bytes": sum(n for _, n in files), "hidden_skipped": hidden,
    "requests": count, "distinct_files": len(distinct), "distinct_bytes": sum(distinct.values()),
    "distinct_text_bytes": sum(n for p, n in distinct.items() if ext(p) in TEXT and n >= minimum),
    "text_requests": sum(1 for p, n in stream if ext(p) in TEXT and n >= minimum),
    "stream_identity_bytes": sum(n for _, n in stream),
    "share_top_1pct": round(sum(1 for r in ranks if r < top1) / count, 3),
    "largest": max(distinct.items(), key=lambda kv: kv[1]),
}
with open(os.path.join(logs, "stream.json"), "w") as f:
    json.dump(stats, f, indent=1)
PY
echo "site $SITE: $(json_get "$LOGS/stream.json" site_files) files, $(mb "$(json_get "$LOGS/stream.json" site_bytes)") MiB; stream: $REQUESTS requests over $(json_get "$LOGS/stream.json" distinct_files) files ($(mb "$(json_get "$LOGS/stream.json" distinct_bytes)") MiB); leanserve budget $BUDGET_MB MiB" >&2

# Warm the OS page cache with the requested files: servers then read them from memory.
cut -f1 "$LOGS/files.tsv" | sed "s#^#$SITE#" | tr '\n' '\0' | xargs -0 cat >/dev/null

# ---- the client: one pass over the stream ------------------------------------------------------
cat >"$work/client.py" <<'PY'
"""URL ACCEPT STREAM FILES CONCURRENCY MIN OUT: walks the stream once with CONCURRENCY
keep-alive connections; writes OUT.tsv (a response a line) and OUT.json (the pass's
figures)."""
import http.client, json, sys, threading, time, urllib.parse, zlib
url, accept, stream_path, files_path, conc, minimum, out = sys.argv[1:8]
conc, minimum = int(conc), int(minimum)
TEXT = {"html", "htm", "css", "js", "mjs", "json", "svg", "xml", "txt", "md", "map", "csv"}
host = urllib.parse.urlsplit(url)
size = {p: int(n) for p, n in (line.rstrip("\n").split("\t") for line in open(files_path))}
stream = [line.rstrip("\n") for line in open(stream_path)]
headers = {"Accept-Encoding": accept} if accept else {}   # http.client adds identity otherwise

def kind(path):
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else "-"

lock = threading.Lock()
state = {"next": 0}
rows = [None] * len(stream)

def fetch(conn, path):
    conn.request("GET", urllib.parse.quote(path, safe="/!-._~"), headers=headers)
    r = conn.getresponse()
    body = r.read()
    return r.status, (r.getheader("Content-Encoding") or "identity").strip().lower(), body

def worker():
    conn = None
    while True:
        with lock:
            i = state["next"]
            state["next"] += 1
        if i >= len(stream):
            break
        path = stream[i]
        result = None
        for attempt in (1, 2):   # a keep-alive connection the server closed: once more on a new one
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
                result = fetch(conn, path)
                break
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                result = (0, "error:" + type(e).__name__, b"")
        status, coding, body = result
        want = size[path]
        ok = "-"
        if 200 <= status < 300:
            if coding == "identity":
                ok = "ok" if len(body) == want else "bad"
            elif coding in ("gzip", "x-gzip"):
                try:
                    ok = "ok" if len(zlib.decompress(body, 16 + zlib.MAX_WBITS)) == want else "bad"
                except zlib.error:
                    ok = "bad"
        text = kind(path) in TEXT and want >= minimum
        rows[i] = (path, kind(path), want, int(text), status, coding, len(body), ok)
    if conn is not None:
        conn.close()

start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(conc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.monotonic() - start
with open(out + ".tsv", "w") as f:
    f.write("path\tkind\tfile_bytes\ttext\tstatus\tcoding\tbody_bytes\tcheck\n")
    f.write("".join("\t".join(map(str, r)) + "\n" for r in rows))
codings = {}
for r in rows:
    codings[r[5]] = codings.get(r[5], 0) + 1
text = [r for r in rows if r[3]]
figures = {
    "requests": len(rows),
    "errors": sum(1 for r in rows if not (200 <= r[4] < 300 or r[4] == 304)),
    "body_bytes": sum(r[6] for r in rows),
    "text_responses": len(text),
    "text_compressed": sum(1 for r in text if r[5] != "identity" and 200 <= r[4] < 300),
    "text_body_bytes": sum(r[6] for r in text),
    "codings": codings,
    "bad_bodies": sum(1 for r in rows if r[7] == "bad"),
    "bad_examples": [r[0] for r in rows if r[7] == "bad"][:5],
    "seconds": round(seconds, 2),
}
with open(out + ".json", "w") as f:
    json.dump(figures, f, indent=1)
print(f"{figures['requests']} requests in {seconds:.1f} s, errors {figures['errors']}, "
      f"{figures['body_bytes'] / 1048576:.1f} MB of bodies, text compressed "
      f"{figures['text_compressed']}/{figures['text_responses']}, by encoding {codings}"
      + (f", {figures['bad_bodies']} bodies not the file" if figures["bad_bodies"] else ""))
PY

# ---- servers ----------------------------------------------------------------------------------
# leanserve: prod profile, the site on a port the OS picks, the admin surface on a Unix
# socket ($work/NAME-admin.sock); pid in $LAST_PID, URL in $LAST_URL (no command
# substitution: a subshell would lose track of the pid). A budget under 8 MiB needs the
# tuner's cache floor lowered too (leanserve refuses a floor above the ceiling).
EXTRA_SET=()
for kv in $SERVER_SET; do EXTRA_SET+=(--set "$kv"); done
FLOOR=()
if [ "$BUDGET" -lt $((8 * 1048576)) ]; then FLOOR=(--set tuner.cache_floor_mb="$BUDGET_MB"); fi
start_leanserve() { # name binary config
  local name=$1 bin=$2 config=$3
  : >"$LOGS/$name.out"   # read below before the background job may have opened it
  env -u LEANSERVE_ADMIN_TOKEN RUST_LOG=info "$bin" --config "$config" --env prod \
    --bind 127.0.0.1:0 --workers "$WORKERS" --root "$SITE" \
    --set admin.bind="unix:$work/$name-admin.sock" --set static_files.max_cache_size="$BUDGET" \
    "${FLOOR[@]}" "${EXTRA_SET[@]}" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  LAST_PID=$!
  LAST_URL=
  ADMIN_SOCK=$work/$name-admin.sock
  for _ in $(seq 1 100); do
    LAST_URL=$(sed -n '1s#^leanserve listening on \(http://.*\)$#\1#p' "$LOGS/$name.out")
    [ -n "$LAST_URL" ] && curl -fs -o /dev/null "$LAST_URL/health" && [ -S "$ADMIN_SOCK" ] && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  exit 1
}

FIRST_PATH=$(head -1 "$LOGS/files.tsv" | cut -f1)


# ---- the runs ---------------------------------------------------------------------------------
accept_of() { case $1 in chrome) echo "gzip, deflate, br, zstd" ;; gzip) echo gzip ;; identity) echo identity ;; esac; }
servers=(leanserve)
[ -n "$BASELINE" ] && servers+=(baseline)
servers+=(nginx)
for h in $HEADERS; do
  for s in "${servers[@]}"; do
    name=$h-$s
    case $s in
      leanserve) start_leanserve "$name" "$LEANSERVE" "$CONFIG" ;;
      baseline) start_leanserve "$name" "$BASELINE" "$BASELINE_CONFIG" ;;
      nginx) start_nginx "$name" "$SITE" "$FIRST_PATH" ;;
    esac
    pid=$LAST_PID
    for pass in 1 2; do
      echo "$name pass $pass: $(python3 "$work/client.py" "$LAST_URL" "$(accept_of "$h")" "$LOGS/stream.txt" "$LOGS/files.tsv" "$CONCURRENCY" "$MIN" "$LOGS/$name-pass$pass")" >&2
      if [ "$s" != nginx ]; then
        curl -fs --unix-socket "$ADMIN_SOCK" http://localhost/admin/cache >"$LOGS/$name-pass$pass-cache.json" ||
          echo "$name: GET /admin/cache failed after pass $pass" >&2
        if [ "$pass" = 1 ] && [ "$SETTLE" -gt 0 ]; then
          # Let the background work of pass 1 finish (at most SETTLE seconds): "warm" is a
          # server that has had the time to recompress what it was asked for.
          waited=0
          while [ "$waited" -lt "$((SETTLE * 10))" ]; do
            queue=$(curl -fs --unix-socket "$ADMIN_SOCK" http://localhost/admin/cache |
              python3 -c 'import json,sys; print(json.load(sys.stdin).get("compression_queue", 0))' 2>/dev/null || echo 0)
            [ "$queue" = 0 ] && break
            sleep 0.1
            waited=$((waited + 1))
          done
          echo "$name: waited $((waited / 10)).$((waited % 10)) s for the compression queue to empty (queue now $queue)" >&2
          echo "$((waited / 10)).$((waited % 10)) $queue" >"$LOGS/$name-settle.txt"
        fi
      fi
    done
    stop_server "$name" "$pid"
  done
done

# ---- report -----------------------------------------------------------------------------------
echo
python3 - "$LOGS" "$HEADERS" "${servers[*]}" "$BUDGET_MB" "$MIN" "$CONCURRENCY" "$SITE" "$SEED" "$("$NGINX" -v 2>&1 | sed 's#.*/##')" "$SERVER_SET" <<'PY'
import json, os, sys
logs, headers, servers, budget_mb, minimum, conc, site, seed, nginx_version, server_set = sys.argv[1:11]
headers, servers = headers.split(), servers.split()
ACCEPT = {"chrome": "gzip, deflate, br, zstd", "gzip": "gzip", "identity": "identity"}
st = json.load(open(os.path.join(logs, "stream.json")))
MB = 1048576
fig = {(h, s, p): json.load(open(os.path.join(logs, f"{h}-{s}-pass{p}.json"))) for h in headers for s in servers for p in (1, 2)}
print(f"## Bytes on the wire from a cold start: {st['requests']} requests, Zipf s=1 (seed {seed}), over the Rust documentation")
print()
print(f"Site {site}: {st['site_files']} files, {st['site_bytes'] / MB:.1f} MiB ({st['hidden_skipped']} hidden files left out). "
      f"The stream touches {st['distinct_files']} distinct files, {st['distinct_bytes'] / MB:.1f} MiB "
      f"({st['distinct_text_bytes'] / MB:.1f} MiB of them text files >= {minimum} bytes); "
      f"leanserve's cache budget is {budget_mb} MiB"
      f"{' (the touched set is SMALLER than the budget: nothing need be evicted)' if st['distinct_bytes'] < int(budget_mb) * MB else ''}. Walked as identity it would be {st['stream_identity_bytes'] / MB:.1f} MiB; "
      f"{st['text_requests']} of the {st['requests']} requests are for text files >= {minimum} bytes.")
print()
print(f"Each (header, server): a fresh server, pass 1 (cold) then pass 2 (warm) over the same stream, {conc} keep-alive connections. "
      f"leanserve: prod profile, {budget_mb} MiB budget, 2 workers{', --set ' + server_set if server_set else ''}; "
      f"nginx {nginx_version}: 2 workers, sendfile, gzip on the fly at level 6. "
      f"Text compressed: responses for text files >= {minimum} bytes with any Content-Encoding. Body MB: 2^20 bytes, as received.")
print()
print("| accept | server | pass | requests | errors | text compressed % | body MB | by encoding | bytes / nginx | text bytes / nginx |")
print("|---|---|---|---|---|---|---|---|---|---|")
def pct(f):
    return 100.0 * f["text_compressed"] / f["text_responses"] if f["text_responses"] else 100.0
def ratio(h, s, p):
    n = fig[(h, "nginx", p)]["body_bytes"]
    return fig[(h, s, p)]["body_bytes"] / n if n else float("nan")
def text_bytes(h, s, p):
    import csv
    with open(os.path.join(logs, f"{h}-{s}-pass{p}.tsv")) as f:
        return sum(int(r["body_bytes"]) for r in csv.DictReader(f, delimiter="\t") if r["text"] == "1")
def text_ratio(h, s, p):
    n = text_bytes(h, "nginx", p)
    return text_bytes(h, s, p) / n if n else float("nan")
for h in headers:
    for s in servers:
        for p in (1, 2):
            f = fig[(h, s, p)]
            c = dict(f["codings"])
            enc = " / ".join(f"{k} {c.pop(k, 0)}" for k in ("identity", "gzip", "br", "zstd"))
            enc += "".join(f" / {k} {v}" for k, v in sorted(c.items()))
            print(f"| {h} | {s} | {p} ({'cold' if p == 1 else 'warm'}) | {f['requests']} | {f['errors']} | "
                  f"{pct(f):.1f}% ({f['text_compressed']}/{f['text_responses']}) | {f['body_bytes'] / MB:.1f} | {enc} | {ratio(h, s, p):.2f}x | {text_ratio(h, s, p):.3f}x |")
print()
print("Accept-Encoding: " + "; ".join(f"{h}: `{ACCEPT[h]}`" for h in headers) + ".")
print()
LIMITS = {("chrome", 1): 0.9, ("chrome", 2): 0.8, ("gzip", 1): 1.0, ("gzip", 2): 1.0}
verdict = lambda ok: "met" if ok else "MISSED"
for s in servers:
    if s == "nginx":
        continue
    print(f"Targets, {s}{' (the build under test)' if s == 'leanserve' else ' (for comparison)'}:")
    for h in headers:
        for p in (1, 2):
            if (h, p) in LIMITS:
                r, lim = ratio(h, s, p), LIMITS[(h, p)]
                t = text_ratio(h, s, p)
                print(f"- {h}, pass {p} ({'cold' if p == 1 else 'warm'}): body bytes {r:.3f}x nginx's (target <= {lim}x): {verdict(r <= lim)}; "
                      f"text bytes (>= {minimum}) {t:.3f}x: {verdict(t <= lim)}")
        for p in (1, 2):
            f = fig[(h, s, p)]
            print(f"- {h}, pass {p}: text responses >= {minimum} bytes compressed {pct(f):.1f}% (target 100%): {verdict(f['text_compressed'] == f['text_responses'])}")
    print()
bad = [(k, f) for k, f in fig.items() if f["bad_bodies"] or f["errors"]]
for (h, s, p), f in bad:
    print(f"- {h}/{s} pass {p}: {f['errors']} errors, {f['bad_bodies']} bodies that are not the file (e.g. {', '.join(f['bad_examples']) or '-'})")
nt = 1 - text_bytes(headers[0], "nginx", 1) / fig[(headers[0], "nginx", 1)]["body_bytes"]
print(f"Text bytes: the bodies of text files >= {minimum} bytes. The rest ({100 * nt:.1f}% of nginx's bytes for {headers[0]}, pass 1: images, fonts, files under {minimum} bytes) is identity on every server.")
settled = {}
for h in headers:
    for s in servers:
        path = os.path.join(logs, f"{h}-{s}-settle.txt")
        if os.path.exists(path):
            settled[f"{h}/{s}"] = open(path).read().split()[0]
if settled:
    print("Waited between the passes for the compression queue to empty: " + ", ".join(f"{k} {v} s" for k, v in settled.items()) + ".")
print(f"Logs in {logs}: stream.txt, per-pass responses (*-passN.tsv) and figures (*-passN.json), leanserve's /admin/cache after each pass (*-passN-cache.json), server logs.")
PY
printf '%s' "$EXITS"
