#!/usr/bin/env bash
# Idle RSS of the release binary, prod profile, empty cache (the repository's static/),
# and where it goes: RSS split into file-backed pages (the binary's code and read-only
# data, the C libraries) and anonymous ones (jemalloc's arenas and metadata, thread
# stacks, relocated data), jemalloc's own figures (/admin/profiler/stats), and the
# threads. Read twice per run: AT_START seconds after start, and AT_QUIET seconds after
# (past the tuner's first quiet round at 30 s, which purges what start-up freed). RUNS
# fresh processes; medians.
#
#   bench/idle.sh                          # builds --release when LEANSERVE is unset
#   LEANSERVE=/path/to/leanserve RUNS=5 bench/idle.sh
#   EXTRA="_RJEM_MALLOC_CONF=tcache:false" bench/idle.sh   # one more configuration
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
AT_START=${AT_START:-8}
AT_QUIET=${AT_QUIET:-40}
EXTRA=${EXTRA-}
if [ -z "${LEANSERVE:-}" ]; then
  cargo build --release --quiet --bin leanserve
  LEANSERVE=target/release/leanserve
fi
PORT=${PORT:-18180}

python3 - "$LEANSERVE" "$RUNS" "$AT_START" "$AT_QUIET" "$PORT" "$EXTRA" <<'PY'
import collections, json, os, re, statistics, subprocess, sys, time, urllib.request

binary, runs, at_start, at_quiet, port, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
TOKEN = "idle-bench"

def groups(pid):
    """kB of RSS by kind of mapping."""
    out = collections.Counter()
    name = kind = None
    for line in open(f"/proc/{pid}/smaps"):
        m = re.match(r"^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$", line)
        if m:
            perms, path = m.group(1), m.group(2)
            if path.endswith("/" + os.path.basename(binary)):
                kind = "binary code" if "x" in perms else ("binary read-only data" if perms.startswith("r-") else "binary data (relocated, .data, .bss)")
            elif path.startswith("/"):
                kind = "C libraries (libc, libm, ld.so, libgcc)"
            elif path == "[stack]":
                kind = "stacks and other anonymous"
            else:
                kind = "anonymous (jemalloc arenas, thread stacks)"
            continue
        if line.startswith("Rss:"):
            out[kind] += int(line.split()[1])
    return out

def status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            fields[key] = int(value.split()[0])
    return fields

def threads(pid):
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        names[open(f"/proc/{pid}/task/{tid}/comm").read().strip()] += 1
    return dict(names)

def jemalloc(admin):
    request = urllib.request.Request(f"{admin}/admin/profiler/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    stats = json.load(urllib.request.urlopen(request, timeout=5))
    return {k: stats[k] for k in ("heap_alloc_mb", "heap_active_mb", "heap_resident_mb", "heap_metadata_mb", "heap_retained_mb")}

def one(label, env_extra):
    env = dict(os.environ, LEANSERVE_ADMIN_TOKEN=TOKEN, LEANSERVE_BIND=f"127.0.0.1:{port}", LEANSERVE_ADMIN_BIND=f"127.0.0.1:{port + 1}")
    env.update(env_extra)
    proc = subprocess.Popen([binary, "--env", "prod", "--root", "static"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        readings = []
        for at in (at_start, at_quiet):
            time.sleep(max(0, started + at - time.monotonic()))
            readings.append((status(proc.pid), groups(proc.pid), jemalloc(f"http://127.0.0.1:{port + 1}"), threads(proc.pid)))
        return readings
    finally:
        proc.terminate()
        proc.wait()

configs = [("prod", {})]
if extra:
    configs.append((extra, dict(item.split("=", 1) for item in extra.split())))
results = {label: [] for label, _ in configs}
for _ in range(runs):           # interleaved
    for label, env_extra in configs:
        results[label].append(one(label, env_extra))

med = lambda xs: statistics.median(xs)
for label, rounds in results.items():
    print(f"\n### {label}: {runs} runs, medians (kB unless MB)\n")
    print(f"| reading | at {at_start} s | at {at_quiet} s |")
    print("|---|---|---|")
    for key in ("VmRSS", "RssFile", "RssAnon", "Threads"):
        print(f"| {key} | {med([r[0][0][key] for r in rounds]):.0f} | {med([r[1][0][key] for r in rounds]):.0f} |")
    kinds = sorted({k for r in rounds for reading in r for k in reading[1]})
    for kind in kinds:
        print(f"| {kind} | {med([r[0][1][kind] for r in rounds]):.0f} | {med([r[1][1][kind] for r in rounds]):.0f} |")
    for key in ("heap_alloc_mb", "heap_active_mb", "heap_resident_mb", "heap_metadata_mb", "heap_retained_mb"):
        print(f"| jemalloc {key} | {med([r[0][2][key] for r in rounds]):.2f} | {med([r[1][2][key] for r in rounds]):.2f} |")
    print(f"\nthreads at {at_quiet} s: {rounds[-1][1][3]}")
PY
