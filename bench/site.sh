#!/usr/bin/env bash
# Static files on a site bigger than the cache: leanserve against nginx in one run.
#
# A documentation site (HTML pages for most files, CSS, JS, woff2 fonts, PNG/JPG images with
# a heavy tail, some SVG/JSON/TXT; text compressible like real markup, gzip ratio ~0.28;
# images and fonts incompressible) is generated from SEED, and a Zipf (s = 1) request
# stream over its files (ranks a seeded random permutation) is written as a path list that
# wrk replays with a Lua script. leanserve runs its prod profile (compressed-only store,
# limiter and tuner as configured there) with a cache budget of 25% of the distinct bytes
# the stream requests, 2 workers; nginx (Debian's nginx-light) runs beside it with
# sendfile, open_file_cache and gzip on the fly at level 6, 2 workers.
#
# For each round, encoding (identity, then Accept-Encoding: gzip) and server (the order
# alternates between rounds): a fresh server; "cold", the first DURATION s of the stream
# (measured); WARMUP s more of the stream (not measured); "warm", the next DURATION s
# (measured), each `wrk -t1 -c32 --latency`. Every measured phase reads req/s, p99, MB/s,
# errors (non-2xx and socket errors), peak RSS (VmRSS every 100 ms; nginx: master +
# workers) and, for leanserve, the phase's own hit ratio from /admin/cache (hits and misses
# before and after). Prints a markdown table of medians over the rounds (peak RSS: the
# highest), the site's figures and the targets: warm identity >= 1.0x nginx, warm gzip >= 5x
# nginx's gzip on the fly, leanserve p99 <= 5 ms at 32 connections, leanserve RSS <= budget
# + 30 MB.
#
#   bench/site.sh                                          # defaults, about 10 minutes plus
#                                                          # ~1 minute to generate the site once
#   FILES=2000 SITE_MB=30 DURATION=3 WARMUP=3 ROUNDS=1 bench/site.sh   # a quick smoke run
#   LEANSERVE=/path/to/leanserve bench/site.sh             # use that binary, build nothing
#   SECTIONS=warm BUDGET_MB=64 bench/site.sh               # only warm phases, a 64 MiB budget
#
# Knobs (environment):
#   SEED=1            site contents, sizes, names and the request stream
#   FILES=24000       files in the site
#   SITE_MB=400       size of the site in MiB (sizes scale to it; ranges per kind are kept)
#   SITE_DIR          where the generated site is kept and reused
#                     (default /tmp/leanserve-site-SEED-FILES-SITE_MB)
#   REQUESTS=1000000  length of the request stream (replayed cyclically when a run passes it)
#   BUDGET_MB         leanserve's static_files.max_cache_size in MiB (default: 25% of the
#                     distinct bytes of the requested set)
#   ROUNDS=2          interleaved rounds
#   DURATION=10       seconds per measured phase
#   WARMUP=30         seconds of stream between the cold and the warm phase
#   CONNECTIONS=32    wrk connections (one wrk thread)
#   WORKERS=2         leanserve workers and nginx worker processes
#   SECTIONS="cold warm"       phases to measure
#   ENCODINGS="identity gzip"  request variants
#   LEANSERVE         leanserve binary (default: `cargo build --release`, target/release/leanserve)
#   SERVER_SET        more leanserve settings, "key=value ...", each passed as --set (not for
#                     the targets: e.g. "static_files.store=both" or "limiter.enabled=false")
#   NGINX=/usr/sbin/nginx      nginx binary (apt-get install nginx-light)
#   LOGS=target/bench-site     server logs, wrk outputs, RSS samples and raw results, kept
#   MAX_FOREIGN=0.15  share of the CPU other processes may use before a round starts (waits
#                     up to 2 minutes); each phase logs the share other processes used
#
# The OS page cache is warmed with the whole site before the first round, so both servers
# read files from memory: "cold" is a cold server (empty leanserve cache, empty nginx
# open_file_cache), not a cold disk.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
umask 022   # nginx's workers run as an unprivileged user and read the site

SEED=${SEED:-1}
FILES=${FILES:-24000}
SITE_MB=${SITE_MB:-400}
SITE_DIR=${SITE_DIR:-/tmp/leanserve-site-$SEED-$FILES-$SITE_MB}
REQUESTS=${REQUESTS:-1000000}
BUDGET_MB=${BUDGET_MB-}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-30}
CONNECTIONS=${CONNECTIONS:-32}
WORKERS=${WORKERS:-2}
SECTIONS=${SECTIONS:-cold warm}
ENCODINGS=${ENCODINGS:-identity gzip}
NGINX=${NGINX:-/usr/sbin/nginx}
MAX_FOREIGN=${MAX_FOREIGN:-0.15}
SERVER_SET=${SERVER_SET-}
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
[ -x "$NGINX" ] || { echo "nginx not found at $NGINX (apt-get install nginx-light)" >&2; exit 1; }
if [ -z "${LEANSERVE:-}" ]; then
  cargo build --release --quiet --bin leanserve
  LEANSERVE=target/release/leanserve
fi
LEANSERVE=$(realpath "$LEANSERVE")

LOGS=${LOGS:-target/bench-site}   # server logs and raw results, kept after the run
mkdir -p "$LOGS"
LOGS=$(realpath "$LOGS")          # nginx is started with another prefix
rm -f "$LOGS"/*.log "$LOGS"/*.out "$LOGS"/wrk-* "$LOGS"/rss-* "$LOGS"/results.tsv   # this script's own, from an earlier run
work=$(mktemp -d)
chmod 755 "$work"
trap cleanup EXIT

# ---- the site, generated once per SEED, FILES and SITE_MB and kept in SITE_DIR -------------
if [ ! -f "$SITE_DIR/stats.json" ]; then
  echo "generating $FILES files, $SITE_MB MiB, seed $SEED into $SITE_DIR (about 1 s per 10 MiB)" >&2
  rm -rf "$SITE_DIR.partial"
  mkdir -p "$SITE_DIR.partial"
  python3 - "$SITE_DIR.partial" "$SEED" "$FILES" "$SITE_MB" <<'PY'
"""OUT SEED FILES SITE_MB: a documentation site, deterministic from the seed. Writes
OUT/site/... (what is served), OUT/files.tsv (path, bytes, kind, gzip bytes of text files)
and OUT/stats.json."""
import itertools, json, math, os, random, sys, zlib

out, seed, count, site_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
KB = 1024

# ---- what a documentation site holds: share of the files, and a size law per kind ------
# (kind, extension, share of files, law, parameters, low, high). Sizes in bytes; lognormal
# takes the median and sigma, pareto the scale and shape (a heavy tail), uniform the range.
KINDS = [
    ("html", "html", 0.765, "lognormal", (13 * KB, 0.55), 5 * KB, 60 * KB),
    ("png", "png", 0.080, "pareto", (10 * KB, 1.1), 10 * KB, 1024 * KB),
    ("jpg", "jpg", 0.050, "pareto", (20 * KB, 1.2), 10 * KB, 1024 * KB),
    ("svg", "svg", 0.030, "lognormal", (3 * KB, 1.0), 400, 200 * KB),
    ("js", "js", 0.030, "lognormal", (20 * KB, 1.3), 2 * KB, 300 * KB),
    ("css", "css", 0.015, "lognormal", (12 * KB, 1.2), 2 * KB, 300 * KB),
    ("woff2", "woff2", 0.010, "uniform", (20 * KB, 100 * KB), 20 * KB, 100 * KB),
    ("json", "json", 0.010, "lognormal", (6 * KB, 1.4), 300, 500 * KB),
    ("txt", "txt", 0.010, "lognormal", (8 * KB, 0.7), 500, 60 * KB),
]
TEXT = {"html", "svg", "js", "css", "json", "txt"}

def draw(law, params):
    if law == "lognormal":
        return params[0] * math.exp(rng.gauss(0, params[1]))
    if law == "pareto":
        return params[0] * rng.paretovariate(params[1])
    return rng.uniform(*params)

# Kinds for every file (shares rounded, the rest to html), raw sizes, then one scale factor
# for every law but the uniform one so the total comes to SITE_MB (shape and ranges kept).
kinds = []
for kind, ext, share, *_ in KINDS[1:]:
    kinds += [kind] * max(1, round(share * count))
kinds += ["html"] * (count - len(kinds))
rng.shuffle(kinds)
spec = {k[0]: k for k in KINDS}
raw = [draw(spec[k][3], spec[k][4]) for k in kinds]

def sizes_for(scale):
    got = []
    for kind, value in zip(kinds, raw):
        _, _, _, law, _, low, high = spec[kind]
        got.append(int(min(high, max(low, value * (scale if law != "uniform" else 1)))))
    return got

target = site_mb * 1024 * 1024
lo, hi = 0.01, 100.0
for _ in range(60):
    mid = math.sqrt(lo * hi)
    if sum(sizes_for(mid)) < target:
        lo = mid
    else:
        hi = mid
sizes = sizes_for(hi)

# ---- vocabulary: English-like word frequencies (Zipf), identifiers, markup --------------
syllables = [c + v for c in ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr", "ch", "th", "pl"]
             for v in ["a", "e", "i", "o", "u", "io", "ea", "ou"]] + ["er", "ing", "tion", "ed", "ly", "ent", "al", "ous", "ize"]
syl_w = [1 / (i + 1) ** 0.7 for i in range(len(syllables))]
rng.shuffle(syl_w)
common = ("the of and to a in is that for it as with be on by this are or an not from can "
          "you which your if will at use when all has one more also set its file value each "
          "see new example default returns function server request cache response config "
          "should must may other than then used using only how data".split())
seen, words = set(common), list(common)
while len(words) < 5000:
    w = "".join(rng.choices(syllables, syl_w, k=rng.choice([1, 2, 2, 2, 3, 3, 4])))
    if w not in seen and len(w) > 1:
        seen.add(w); words.append(w)
cum_words = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
idents = []
for _ in range(1500):
    parts = rng.choices(words[:800], cum_words[:800], k=rng.randint(1, 3))
    idents.append(rng.choice(["_".join(parts), parts[0] + "".join(p.title() for p in parts[1:])]))

def text_words(n):
    return rng.choices(words, cum_weights=cum_words, k=n)

phrases = [" ".join(text_words(rng.randint(2, 5))) for _ in range(4000)]
cum_phrases = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(phrases))))

def sentence():
    ws = rng.choices(phrases, cum_weights=cum_phrases, k=rng.randint(2, 6))
    if rng.random() < 0.3:
        ws[rng.randrange(len(ws))] = f"<code>{rng.choice(idents)}</code>"
    return " ".join(ws).capitalize() + "."

def paragraph():
    return " ".join(sentence() for _ in range(rng.randint(2, 6)))

# ---- the tree ------------------------------------------------------------------------
def slug():
    return "-".join(rng.choices(words[:1500], cum_words[:1500], k=rng.randint(1, 3)))

sections = []
for _ in range(max(4, int(count ** 0.4))):
    name = slug()
    subs = [slug() for _ in range(rng.randint(0, 8))]
    sections.append((name, subs))
versions = ["latest", "stable", "v3", "v2"]
used = set()

def unique(path):
    base, ext = path.rsplit(".", 1)
    n, cand = 1, path
    while cand in used:
        n += 1
        cand = f"{base}-{n}.{ext}"
    used.add(cand)
    return cand

def path_for(kind, ext):
    sec, subs = rng.choice(sections)
    if kind == "html":
        parts = ["docs", rng.choice(versions), sec] + ([rng.choice(subs)] if subs and rng.random() < 0.7 else [])
        return unique("/".join(parts + [slug() + ".html"]))
    if kind in ("png", "jpg", "svg"):
        return unique(f"_images/{sec}/{slug()}.{ext}")
    if kind in ("css", "js"):
        return unique(f"_static/{ext}/{slug()}{'.min' if rng.random() < 0.4 else ''}.{ext}")
    if kind == "woff2":
        return unique(f"_static/fonts/{slug()}-{rng.choice(['regular', 'bold', 'italic', 'mono'])}.woff2")
    if kind == "json":
        return unique(f"api/{rng.choice(versions)}/{sec}/{slug()}.json")
    return unique(f"_sources/{rng.choice(versions)}/{sec}/{slug()}.txt")

paths = [path_for(kind, spec[kind][1]) for kind in kinds]
html_paths = [p for p, k in zip(paths, kinds) if k == "html"]

# ---- contents --------------------------------------------------------------------------
# A page carries the site's chrome (head, a section's navigation, footer), shared by many
# pages as on a generated documentation site, around its own prose, code and tables.
site_name = slug().title()
nav_cache = {}

def nav(sec):
    if sec not in nav_cache:
        links = "\n".join(f'      <li class="toctree-l{rng.randint(1, 3)}"><a class="reference internal" href="/{rng.choice(html_paths)}">{" ".join(text_words(rng.randint(1, 4))).title()}</a></li>' for _ in range(rng.randint(15, 60)))
        nav_cache[sec] = f'  <nav class="sidebar" aria-label="{sec}">\n    <ul class="current">\n{links}\n    </ul>\n  </nav>\n'
    return nav_cache[sec]

def code_block():
    # Highlighted as a documentation generator does: a span per token.
    def name(): return f'<span class="n">{rng.choice(idents)}</span>'
    def op(o): return f'<span class="o">{o}</span>'
    def p(o): return f'<span class="p">{o}</span>'
    lines = []
    for _ in range(rng.randint(3, 14)):
        lines.append(rng.choice([
            f'{name()} {op("=")} {name()}{p("(")}{name()}{p(",")} <span class="mi">{rng.randint(0, 4096)}</span>{p(")")}',
            f'<span class="k">if</span> {name()}{op(".")}{name()}{p(":")}\n    <span class="k">return</span> {name()}',
            f'<span class="k">for</span> {name()} <span class="ow">in</span> {name()}{op(".")}{name()}{p("():")}',
            f'    {name()}{op(".")}{name()}{p("(")}<span class="s2">&quot;{rng.choice(words)}&quot;</span>{p(")")}',
            f'<span class="c1"># {" ".join(text_words(rng.randint(3, 9)))}</span>',
            f'<span class="kn">import</span> <span class="nn">{rng.choice(idents)}</span>',
        ]))
    return f'<div class="highlight-python notranslate"><div class="highlight"><pre><span></span>{chr(10).join(lines)}\n</pre></div></div>'

def html(path, size):
    sec = path.split("/")[2]
    title = " ".join(text_words(rng.randint(2, 6))).title()
    head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
            f'  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'  <title>{title} &mdash; {site_name} documentation</title>\n'
            f'  <link rel="stylesheet" href="/_static/css/theme.css" type="text/css">\n'
            f'  <link rel="stylesheet" href="/_static/css/pygments.css" type="text/css">\n'
            f'  <script src="/_static/js/documentation_options.js"></script>\n'
            f'  <script src="/_static/js/searchtools.js" defer></script>\n</head>\n'
            f'<body class="wy-body-for-nav">\n{nav(sec)}  <main class="document" role="main">\n'
            f'    <article itemprop="articleBody">\n      <h1>{title}<a class="headerlink" href="#" title="Permalink">¶</a></h1>\n')
    tail = (f'    </article>\n  </main>\n  <footer><p>&copy; Copyright {site_name} contributors. '
            f'Built with a documentation generator.</p></footer>\n</body>\n</html>\n')
    body, n = [], len(head) + len(tail)
    while n < size:
        r = rng.random()
        if r < 0.12:
            h = " ".join(text_words(rng.randint(2, 5))).title()
            block = f'      <h2 id="{h.lower().replace(" ", "-")}">{h}<a class="headerlink" href="#{h.lower().replace(" ", "-")}">¶</a></h2>'
        elif r < 0.25:
            block = code_block()
        elif r < 0.33:
            block = "      <ul class=\"simple\">\n" + "\n".join(f"        <li><p>{sentence()}</p></li>" for _ in range(rng.randint(2, 6))) + "\n      </ul>"
        elif r < 0.38:
            rows = "\n".join(f'        <tr class="row-{"odd" if i % 2 else "even"}"><td><p><code class="docutils literal">{rng.choice(idents)}</code></p></td><td><p>{sentence()}</p></td></tr>' for i in range(rng.randint(3, 10)))
            block = f'      <table class="docutils align-default">\n{rows}\n      </table>'
        elif r < 0.43:
            block = f'      <div class="admonition note"><p class="admonition-title">Note</p><p>{paragraph()}</p></div>'
        else:
            block = f"      <p>{paragraph()}</p>"
        body.append(block)
        n += len(block) + 1
    return head + "\n".join(body) + "\n" + tail

props = ["color", "margin", "padding", "border", "font-size", "line-height", "display", "width",
         "max-width", "background", "font-family", "text-align", "position", "top", "left", "z-index",
         "border-radius", "box-shadow", "transition", "overflow", "font-weight", "opacity"]
def css(size):
    out, n = [], 0
    while n < size:
        sel = ", ".join("." + rng.choice(["wy", "rst", "sd", "bd", "md"]) + "-" + "-".join(rng.choices(words[:400], cum_words[:400], k=rng.randint(1, 3)))
                        + rng.choice(["", "", " a", " > p", ":hover", " code", "::before"]) for _ in range(rng.randint(1, 3)))
        body = "".join(f"\n  {p}: {rng.choice([f'{rng.randint(0, 64)}px', f'#{rng.randrange(4096):03x}', f'{rng.randint(0, 100)}%', 'none', 'auto', 'inherit', '0', 'block', 'inline-block', 'relative', 'absolute', 'bold', 'center'])};"
                       for p in rng.sample(props, rng.randint(1, 6)))
        rule = f"{sel} {{{body}\n}}\n"
        if rng.random() < 0.05:
            rule = f"@media screen and (max-width: {rng.choice([480, 768, 992, 1200])}px) {{\n{rule}}}\n"
        out.append(rule); n += len(rule)
    return "".join(out)[:size]

def js(size, minified):
    out, n = [], 0
    while n < size:
        f, a, b, c = (rng.choice(idents) for _ in range(4))
        stmts = [rng.choice([
            f"var {a}={b}.{c}({rng.randint(0, 99)});",
            f"if({a}&&{a}.{b}){{return {c}}}",
            f"for(var i=0;i<{a}.length;i++){{{b}.push({a}[i])}}",
            f"{a}.{b}=function({c}){{return this.{c}}};",
            f"document.querySelectorAll(\"{rng.choice(['.', '#'])}{b}\").forEach(function(e){{e.classList.add(\"{c}\")}});",
            f"{a}=\"{' '.join(text_words(rng.randint(2, 6)))}\";",
            f"return {a}.{b}({c},{{{rng.choice(idents)}:{rng.choice(['!0', '!1', 'null', str(rng.randint(0, 999))])}}});",
        ]) for _ in range(rng.randint(2, 9))]
        if minified:
            fn = f"function {f}({a},{b}){{{''.join(stmts)}}}"
        else:
            fn = f"/**\n * {sentence()}\n */\nfunction {f}({a}, {b}) {{\n  " + "\n  ".join(stmts) + "\n}\n"
        out.append(fn); n += len(fn)
    return ("\n" if not minified else "").join(out)[:size]

def svg(size):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {rng.randint(16, 800)} {rng.randint(16, 600)}">\n']
    n = len(out[0])
    while n < size:
        pts = " ".join(f"{rng.choice('MLQC')}{rng.uniform(0, 800):.1f} {rng.uniform(0, 600):.1f}" for _ in range(rng.randint(4, 20)))
        el = f'  <path class="{rng.choice(idents)}" fill="#{rng.randrange(4096):03x}" stroke="none" d="{pts}Z"/>\n'
        out.append(el); n += len(el)
    return "".join(out)[:max(0, size - 7)] + "</svg>\n"

def json_doc(size):
    out, n = [], 0
    while n < size:
        e = json.dumps({"title": " ".join(text_words(rng.randint(2, 6))).title(), "url": "/" + rng.choice(html_paths),
                        "section": rng.choice(sections)[0], "terms": text_words(rng.randint(3, 12)),
                        "summary": sentence()}, separators=(",", ":"))
        out.append(e); n += len(e) + 1
    return "[" + ",".join(out) + "]"

def txt(size):
    out, n = [], 0
    while n < size:
        p = paragraph() if rng.random() < 0.8 else "   " + "\n   ".join(f"{rng.choice(idents)}({rng.choice(idents)})" for _ in range(rng.randint(2, 5)))
        out.append(p); n += len(p) + 2
    return "\n\n".join(out)[:size] + "\n"

def binary(kind, size):
    magic = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "woff2": b"wOF2\x00\x01\x00\x00"}[kind]
    return magic + rng.randbytes(max(0, size - len(magic)))

root = os.path.join(out, "site")
raw_text, packed_text = {}, {}
with open(os.path.join(out, "files.tsv.tmp"), "w") as listing:
    for i, (path, kind, size) in enumerate(zip(paths, kinds, sizes)):
        if kind in TEXT:
            if kind == "html": text = html(path, size)
            elif kind == "css": text = css(size)
            elif kind == "js": text = js(size, ".min." in path)
            elif kind == "svg": text = svg(size)
            elif kind == "json": text = json_doc(size)
            else: text = txt(size)
            data = text.encode()
            raw_text[kind] = raw_text.get(kind, 0) + len(data)
            packed = len(zlib.compress(data, 6)) + 8   # a gzip member's header and trailer, less zlib's
            packed_text[kind] = packed_text.get(kind, 0) + packed
        else:
            data, packed = binary(kind, size), 0
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        listing.write(f"/{path}\t{len(data)}\t{kind}\t{packed}\n")
os.rename(os.path.join(out, "files.tsv.tmp"), os.path.join(out, "files.tsv"))
by_kind = {}
with open(os.path.join(out, "files.tsv")) as f:
    for line in f:
        _, n, kind, _ = line.rstrip("\n").split("\t")
        c, b = by_kind.get(kind, (0, 0))
        by_kind[kind] = (c + 1, b + int(n))
stats = {"files": len(paths), "bytes": sum(b for _, b in by_kind.values()),
         "kinds": {k: {"files": c, "bytes": b, "gzip_ratio": (round(packed_text[k] / raw_text[k], 3) if k in raw_text else None)} for k, (c, b) in sorted(by_kind.items())},
         "gzip_ratio_text": round(sum(packed_text.values()) / sum(raw_text.values()), 3),
         "gzip_ratio_html_css_js": round(sum(packed_text.get(k, 0) for k in ("html", "css", "js")) / sum(raw_text.get(k, 0) for k in ("html", "css", "js")), 3)}
with open(os.path.join(out, "stats.json"), "w") as f:
    json.dump(stats, f, indent=1)
PY
  rm -rf "$SITE_DIR"
  mv "$SITE_DIR.partial" "$SITE_DIR"
fi

# ---- the request stream: Zipf (s = 1) over the files, ranks a seeded permutation ----------
STREAM=$SITE_DIR/stream-$REQUESTS.txt
if [ ! -f "$STREAM.json" ]; then
  python3 - "$SITE_DIR" "$SEED" "$REQUESTS" <<'PY'
"""SITE_DIR SEED REQUESTS: writes SITE_DIR/stream-REQUESTS.txt (one path a line) and its
figures in stream-REQUESTS.txt.json."""
import itertools, json, os, random, sys
site, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed * 1000003 + 7)
files = [line.rstrip("\n").split("\t") for line in open(os.path.join(site, "files.tsv"))]
order = list(range(len(files)))
rng.shuffle(order)                       # order[r]: the file at popularity rank r + 1
cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(files))))
ranks = rng.choices(range(len(files)), cum_weights=cum, k=count)
out = os.path.join(site, f"stream-{count}.txt")
with open(out + ".tmp", "w") as f:
    f.write("\n".join(files[order[r]][0] for r in ranks) + "\n")
os.rename(out + ".tmp", out)
seen = set(ranks)
def stored(path, size, kind, packed):
    # What leanserve's compressed-only store holds: gzip when it saves 10% of a file of at
    # least 1 KiB with a compressible extension, else the file; plus 512 bytes an entry.
    size, packed = int(size), int(packed)
    return (packed if packed and size >= 1024 and packed <= 0.9 * size else size) + 512
top1 = max(1, len(files) // 100)
stats = {"requests": count, "distinct_files": len(seen),
         "distinct_bytes": sum(int(files[order[r]][1]) for r in seen),
         "stored_bytes_compressed_only": sum(stored(*files[order[r]]) for r in seen),
         "share_top_1pct": round(sum(1 for r in ranks if r < top1) / count, 3),
         "share_top_10pct": round(sum(1 for r in ranks if r < 10 * top1) / count, 3)}
with open(out + ".json", "w") as f:
    json.dump(stats, f)
PY
fi
site_files=$(json_get "$SITE_DIR/stats.json" files)
site_bytes=$(json_get "$SITE_DIR/stats.json" bytes)
req_files=$(json_get "$STREAM.json" distinct_files)
req_bytes=$(json_get "$STREAM.json" distinct_bytes)
if [ -n "$BUDGET_MB" ]; then BUDGET=$((BUDGET_MB * 1048576)); else BUDGET=$((req_bytes / 4)); fi
echo "site: $site_files files, $(mb "$site_bytes") MiB; stream: $REQUESTS requests over $req_files files ($(mb "$req_bytes") MiB); leanserve budget $(mb "$BUDGET") MiB" >&2

# Warm the OS page cache with the whole site: both servers then read files from memory.
find "$SITE_DIR/site" -type f -print0 | xargs -0 cat >/dev/null

# ---- wrk: replay the path list --------------------------------------------------------------
# Each thread loads the list in init() (before wrk's clock starts), prepares one request per
# distinct path and walks the list from OFFSET (thread n of N starts n/N of the way further),
# wrapping around; the connections of a thread take consecutive entries, so no two of them
# ask for the same draw. done() writes the first thread's position (where the next run of
# the stream continues) and the figures of the run to STATE, "key value" a line.
cat >"$work/replay.lua" <<'LUA'
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  local headers = {}
  if os.getenv("GZIP") == "1" then headers["Accept-Encoding"] = "gzip" end
  local prepared = {}
  list = {}
  for path in io.lines(os.getenv("PATHS")) do
    local r = prepared[path]
    if not r then r = wrk.format("GET", path, headers); prepared[path] = r end
    list[#list + 1] = r
  end
  n = #list
  local share = math.floor(n / tonumber(os.getenv("THREADS") or "1"))
  pos = (tonumber(os.getenv("OFFSET") or "0") + (id - 1) * share) % n
end
function request()
  local r = list[pos + 1]
  pos = (pos + 1) % n
  return r
end
function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("STATE"), "w"))
  local figures = {
    pos = threads[1]:get("pos"), requests = summary.requests, bytes = summary.bytes,
    duration_us = summary.duration, connect = e.connect, read = e.read, write = e.write,
    status = e.status, timeout = e.timeout, p50_us = latency:percentile(50),
    p99_us = latency:percentile(99), max_us = latency.max,
  }
  for k, v in pairs(figures) do f:write(string.format("%s %.0f\n", k, v)) end
  f:close()
end
LUA

# VmRSS of the given processes and their children (nginx's workers), summed, every 100 ms
# until killed: "elapsed_s rss_kb" a line.
cat >"$work/rss.py" <<'PY'
import signal, sys, time
out, pids = sys.argv[1], sys.argv[2:]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0
def children(pid):
    try:
        return open(f"/proc/{pid}/task/{pid}/children").read().split()
    except FileNotFoundError:
        return []
start = time.monotonic()
with open(out, "w", buffering=1) as f:
    while True:
        f.write(f"{time.monotonic() - start:.2f} {sum(rss(p) + sum(rss(c) for c in children(p)) for p in pids)}\n")
        time.sleep(0.1 - (time.monotonic() - start) % 0.1)
PY

# ---- servers ----------------------------------------------------------------------------------
# Starts a leanserve (prod profile, site on a port the OS picks, admin surface on a Unix
# socket, read with `admin_get`); its pid lands in $LAST_PID and its URL in $LAST_URL (no
# command substitution: a subshell would lose track of the pid).
# A budget under 8 MiB needs the tuner's cache floor (8 MiB) lowered too: leanserve refuses
# a floor above the ceiling (static_files.max_cache_size).
EXTRA_SET=()
for kv in $SERVER_SET; do EXTRA_SET+=(--set "$kv"); done
FLOOR=()
if [ "$BUDGET" -lt $((8 * 1048576)) ]; then FLOOR=(--set tuner.cache_floor_mb=$((BUDGET / 1048576))); fi
start_leanserve() { # name
  local name=$1
  env -u LEANSERVE_ADMIN_TOKEN LEANSERVE_BIND=127.0.0.1:0 LEANSERVE_ADMIN_BIND="unix:$work/leanserve-admin.sock" \
    RUST_LOG=info "$LEANSERVE" --config config --env prod --workers "$WORKERS" --root "$SITE_DIR/site" \
    --set static_files.max_cache_size="$BUDGET" "${FLOOR[@]}" "${EXTRA_SET[@]}" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  LAST_PID=$!
  LAST_URL=
  for _ in $(seq 1 100); do
    LAST_URL=$(sed -n '1s#^leanserve listening on \(http://.*\)$#\1#p' "$LOGS/$name.out")
    [ -n "$LAST_URL" ] && curl -fs -o /dev/null "$LAST_URL/health" && [ -S "$work/leanserve-admin.sock" ] && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  exit 1
}
admin_get() { # path: from the running leanserve's admin socket
  curl -fs --unix-socket "$work/leanserve-admin.sock" "http://localhost$1"
}

FIRST_PATH=$(head -1 "$SITE_DIR/files.tsv" | cut -f1)

# open_file_cache holds a descriptor per cached file: at most 10,000, and under half of the
# descriptors a worker may open (raising the limit with worker_rlimit_nofile needs a
# privilege containers often lack; past the limit nginx answers 500 and stops accepting).
OFC_MAX=$(( $(ulimit -n) / 2 < 10000 ? $(ulimit -n) / 2 : 10000 ))
# nginx in the foreground (daemon off) with its own prefix in the work dir; the master's pid
# in $LAST_PID (its workers are its children).
start_nginx() { # name
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat >"$work/$name/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $work/$name/nginx.pid;
error_log $LOGS/$name.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=$OFC_MAX inactive=60s;
  open_file_cache_valid 60s;
  gzip on;
  gzip_comp_level 6;
  gzip_min_length 1024;
  gzip_types text/css text/plain application/javascript application/json image/svg+xml;
  gzip_vary on;
  client_body_temp_path $work/$name/body;
  proxy_temp_path $work/$name/proxy;
  fastcgi_temp_path $work/$name/fastcgi;
  uwsgi_temp_path $work/$name/uwsgi;
  scgi_temp_path $work/$name/scgi;
  server { listen 127.0.0.1:$port; root $SITE_DIR/site; }
}
CONF
  "$NGINX" -p "$work/$name" -c "$work/$name/nginx.conf" -e "$LOGS/$name.log" >"$LOGS/$name.out" 2>&1 &
  LAST_PID=$!
  LAST_URL=http://127.0.0.1:$port
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$LAST_URL$FIRST_PATH" && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  exit 1
}

start_server() { # server name
  if [ "$1" = leanserve ]; then start_leanserve "$2"; else start_nginx "$2"; fi
}


# ---- a quick check that both servers answer the files' bytes -----------------------------------
# A few files of each kind, identity and gzip: the body (inflated when gzip came back) must
# be the file, and gzip must come back for compressible kinds.
cat >"$work/check.py" <<'PY'
import gzip, sys, urllib.request
url, site, listing = sys.argv[1], sys.argv[2], sys.argv[3]
seen, bad, gz = {}, [], 0
for line in open(listing):
    path, size, kind, packed = line.rstrip("\n").split("\t")
    if seen.get(kind, 0) >= 3:
        continue
    seen[kind] = seen.get(kind, 0) + 1
    want = open(site + path, "rb").read()
    for enc in ("identity", "gzip"):
        req = urllib.request.Request(url + path, headers={"Accept-Encoding": enc})
        with urllib.request.urlopen(req) as r:
            body, ce = r.read(), r.headers.get("Content-Encoding")
        if ce == "gzip":
            body, gz = gzip.decompress(body), gz + 1
        if body != want:
            bad.append(f"{path} ({enc}): {len(body)} bytes, want {len(want)}")
        if enc == "gzip" and int(packed) and int(size) >= 1024 and ce != "gzip":
            bad.append(f"{path}: no gzip for a compressible {kind} of {size} bytes")
print("\n".join(bad) if bad else f"ok: {sum(seen.values())} files, {gz} answers in gzip")
sys.exit(1 if bad else 0)
PY
for s in leanserve nginx; do
  start_server "$s" "$s-check"
  echo "$s answers: $(python3 "$work/check.py" "$LAST_URL" "$SITE_DIR/site" "$SITE_DIR/files.tsv")" >&2
  stop_server "$s-check" "$LAST_PID"
done

# ---- phases ---------------------------------------------------------------------------------
TIMEFORMAT='%3U %3S'   # `time`: wrk's own CPU seconds
HZ=$(getconf CLK_TCK); NCPU=$(nproc)
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
tree_pids() { echo "$1"; tr ' ' '\n' <"/proc/$1/task/$1/children" 2>/dev/null | grep -v '^$' || true; }   # a server and its workers
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
highest() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -1; }
total() { tr ' ' '\n' <<<"$1" | awk '{ s += $1 } END { print s + 0 }'; }

# Replays the stream from OFFSET for SECONDS; the figures land in R (see replay.lua).
declare -A R
replay() { # url encoding offset seconds label
  local gz=0
  [ "$2" = gzip ] && gz=1
  GZIP=$gz THREADS=1 OFFSET=$3 PATHS=$STREAM STATE=$work/state \
    wrk -t1 -c"$CONNECTIONS" -d"$4s" --latency -s "$work/replay.lua" "$1" >"$LOGS/wrk-$5.txt" 2>"$LOGS/wrk-$5.err"
  R=()
  local k v
  while read -r k v; do R[$k]=$v; done <"$work/state"
}

# leanserve's answers by status class and its files limiter's refusals over its life, from
# /metrics, which shows the monitor's latest collection (every 5 s in the prod profile): so
# first wait for a collection newer than now.
limiter_totals() {
  local now t
  now=$(date +%s%3N)
  for _ in $(seq 1 80); do
    t=$(admin_get /monitoring | python3 -c 'import json, sys; print(json.load(sys.stdin)["timestamp_ms"])')
    [ "$t" -gt "$now" ] && break
    sleep 0.1
  done
  admin_get /metrics | awk '
    /^leanserve_requests_total\{class="[2-5]xx"\}/ { split($1, a, "\""); out = out " " a[2] " " $2 }
    /^leanserve_limiter_[a-z_]+\{limiter="files"\}/ { sub(/\{limiter="files"\}/, "", $1); sub(/^leanserve_limiter_/, "", $1); out = out ", " $1 " " $2 }
    END { print substr(out, 2) }'
}
cache_counts() { admin_get /admin/cache | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["cache_hits"], d["cache_misses"], d["bytes_cached"], d["budget_bytes"], d["items"], d["evictions"])'; }

declare -A RPS MBS P99 HIT RSS ERR BASE
FOREIGN_ALL=""
# One measured phase against a running server: wrk, RSS sampled beside it, CPU of other
# processes, and for leanserve the cache's hits and misses around it.
measure() { # server pid url encoding phase offset label
  local server=$1 pid=$2 url=$3 enc=$4 phase=$5 offset=$6 label=$7
  local before="" after="" sampler b0 b1 s0 s1 w0 w1 pids foreign rps mbs p99 hit peak errors
  [ "$server" = leanserve ] && before=$(cache_counts)
  mapfile -t pids < <(tree_pids "$pid")
  python3 "$work/rss.py" "$LOGS/rss-$label.txt" "$pid" &
  sampler=$!
  b0=$(cpu_busy); s0=$(cpu_of "${pids[@]}"); w0=$(date +%s.%N)
  { time replay "$url" "$enc" "$offset" "$DURATION" "$label"; } 2>"$work/wrk-time"
  b1=$(cpu_busy); s1=$(cpu_of "${pids[@]}"); w1=$(date +%s.%N)
  kill "$sampler"; wait "$sampler" || true
  foreign=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v w0="$w0" -v w1="$w1" -v hz="$HZ" -v n="$NCPU" -v t="$(cat "$work/wrk-time")" \
    'BEGIN { split(t, o, " "); f = (b - s - (o[1] + o[2]) * hz) / ((w1 - w0) * hz * n); printf "%.3f", (f < 0 ? 0 : f) }')
  FOREIGN_ALL+="$foreign "
  # req/s counts the files served: 2xx and 3xx answers, not the 4xx/5xx ones
  rps=$(awk -v n="$((R[requests] - R[status]))" -v d="${R[duration_us]}" 'BEGIN { printf "%.0f", n / d * 1e6 }')
  mbs=$(awk -v n="${R[bytes]}" -v d="${R[duration_us]}" 'BEGIN { printf "%.1f", n / d * 1e6 / 1048576 }')
  p99=$(awk -v u="${R[p99_us]}" 'BEGIN { printf "%.2f", u / 1000 }')
  errors=$((R[status] + R[connect] + R[read] + R[write] + R[timeout]))
  peak=$(awk '$2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$LOGS/rss-$label.txt")
  hit=-
  if [ "$server" = leanserve ]; then
    after=$(cache_counts)
    hit=$(awk -v a="$before" -v b="$after" 'BEGIN { split(a, x, " "); split(b, y, " "); h = y[1] - x[1]; m = y[2] - x[2]; printf "%.3f", (h + m ? h / (h + m) : 0) }')
  fi
  local key=$phase,$enc,$server
  RPS[$key]+="$rps "; MBS[$key]+="$mbs "; P99[$key]+="$p99 "; HIT[$key]+="$hit "; RSS[$key]+="$peak "; ERR[$key]+="$errors "
  echo "$label: $rps req/s served ($((R[requests])) answers in all), $mbs MB/s, p99 $p99 ms, errors $errors (status >= 400 ${R[status]}, timeout ${R[timeout]}, read ${R[read]}, connect ${R[connect]}), peak RSS $peak MB, hit ratio $hit${after:+; cache after: hits misses bytes_cached budget items evictions = $after}; other processes: $foreign of the CPU" >&2
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$phase" "$enc" "$server" "$rps" "$mbs" "$p99" "$hit" "$peak" "$errors" "$foreign" >>"$LOGS/results.tsv"
}

printf 'label\tphase\tencoding\tserver\treq_s\tMB_s\tp99_ms\thit_ratio\tpeak_rss_MB\terrors\tforeign_cpu\n' >"$LOGS/results.tsv"
servers=(leanserve nginx)
for round in $(seq 1 "$ROUNDS"); do
  wait_quiet
  order=("${servers[@]}")
  (( round % 2 == 0 )) && order=(nginx leanserve)
  for enc in $ENCODINGS; do
    for s in "${order[@]}"; do
      name=$s-$enc-$round
      start_server "$s" "$name"
      pid=$LAST_PID; url=$LAST_URL; offset=0
      base=$(python3 - "$pid" <<'PY'
import sys
pid = sys.argv[1]
pids = [pid] + open(f"/proc/{pid}/task/{pid}/children").read().split()
print(round(sum(int(l.split()[1]) for p in pids for l in open(f"/proc/{p}/status") if l.startswith("VmRSS")) / 1024, 1))
PY
)
      BASE[$s]+="$base "
      echo "$name: started, RSS $base MB" >&2
      if wants cold; then
        measure "$s" "$pid" "$url" "$enc" cold 0 "$name-cold"
        offset=${R[pos]}
      fi
      if wants warm; then
        replay "$url" "$enc" "$offset" "$WARMUP" "$name-warmup"
        echo "$name-warmup: ${R[requests]} requests in $WARMUP s, errors $((R[status] + R[connect] + R[read] + R[write] + R[timeout]))" >&2
        measure "$s" "$pid" "$url" "$enc" warm "${R[pos]}" "$name-warm"
      fi
      if [ "$s" = leanserve ]; then
        echo "$name: answers by class and files limiter figures over its life: $(limiter_totals)" >&2
        echo "$name: memory at the end: $(admin_get /admin/profiler/stats | python3 -c 'import json, sys; d = json.load(sys.stdin); print(", ".join(f"{k} {d[k]}" for k in ("rss_mb", "heap_alloc_mb", "heap_active_mb", "heap_resident_mb", "heap_metadata_mb", "heap_retained_mb")), "| file cache accounted", d["accounted_mb"]["file_cache"], "MB")')" >&2
      fi
      stop_server "$name" "$pid"
    done
  done
done

# ---- report -----------------------------------------------------------------------------------
budget_mb=$(mb "$BUDGET")
echo
echo "## Static files, a site bigger than the cache: $site_files files ($(mb "$site_bytes") MiB), Zipf s=1 stream, leanserve budget $budget_mb MiB"
echo
echo "wrk -t1 -c$CONNECTIONS --latency, ${DURATION} s per phase; cold: a fresh server, the stream's first ${DURATION} s; warm: after ${WARMUP} s more of the stream. $ROUNDS interleaved rounds (medians; req/s: 2xx/3xx answers a second; MB/s: all bytes read; peak RSS: the highest; errors: 4xx/5xx answers and socket errors, all rounds). leanserve: prod profile (compressed-only store)${SERVER_SET:+, with $SERVER_SET}, $WORKERS workers; nginx $("$NGINX" -v 2>&1 | sed 's#.*/##'): $WORKERS workers, sendfile, open_file_cache (max $OFC_MAX), gzip on the fly at level 6."
echo
echo "| phase | encoding | server | req/s | MB/s | p99 ms | hit ratio | peak RSS MB | errors | leanserve / nginx |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for phase in cold warm; do
  wants "$phase" || continue
  for enc in $ENCODINGS; do
    ls_rps=$(median "${RPS[$phase,$enc,leanserve]}"); ng_rps=$(median "${RPS[$phase,$enc,nginx]}")
    for s in "${servers[@]}"; do
      key=$phase,$enc,$s
      ratio=""
      [ "$s" = leanserve ] && ratio=$(awk -v a="$ls_rps" -v b="$ng_rps" 'BEGIN { printf "%.2fx", a / b }')
      hit=-
      [ "$s" = leanserve ] && hit=$(median "${HIT[$key]}")
      echo "| $phase | $enc | $s | $(median "${RPS[$key]}") | $(median "${MBS[$key]}") | $(median "${P99[$key]}") | $hit | $(highest "${RSS[$key]}") | $(total "${ERR[$key]}") | $ratio |"
    done
  done
done

echo
echo "Site (seed $SEED, $SITE_DIR): $site_files files, $(mb "$site_bytes") MiB; gzip level 6 ratio of HTML/CSS/JS $(json_get "$SITE_DIR/stats.json" gzip_ratio_html_css_js), of all text $(json_get "$SITE_DIR/stats.json" gzip_ratio_text)."
echo
echo "| kind | files | MiB | gzip ratio |"
echo "|---|---|---|---|"
python3 - "$SITE_DIR/stats.json" <<'PY'
import json, sys
for kind, k in sorted(json.load(open(sys.argv[1]))["kinds"].items(), key=lambda kv: -kv[1]["files"]):
    print(f"| {kind} | {k['files']} | {k['bytes'] / 1048576:.1f} | {k['gzip_ratio'] if k['gzip_ratio'] is not None else '- (incompressible)'} |")
PY
echo
echo "Stream: $REQUESTS requests (replayed cyclically) over $req_files distinct files, $(mb "$req_bytes") MiB (the requested set); the 1% most popular files take $(json_get "$STREAM.json" share_top_1pct) of the requests, the top 10% $(json_get "$STREAM.json" share_top_10pct). leanserve's compressed-only store would need $(mb "$(json_get "$STREAM.json" stored_bytes_compressed_only)") MiB for the whole requested set; the budget is $budget_mb MiB${BUDGET_MB:+ (BUDGET_MB)}${BUDGET_MB:-, 25% of the requested set}."
echo
echo "Other processes on this shared machine used a median $(median "$FOREIGN_ALL") (max $(highest "$FOREIGN_ALL")) of the CPU during the measured phases."

echo
verdict() { [ "$1" = 1 ] && echo met || echo "NOT met"; }
if wants warm; then
  for enc in $ENCODINGS; do
    target=1.0; what="nginx sendfile"
    [ "$enc" = gzip ] && target=5 && what="nginx gzip on the fly"
    a=$(median "${RPS[warm,$enc,leanserve]}"); b=$(median "${RPS[warm,$enc,nginx]}")
    # The same round's two servers ran minutes apart on this shared machine: the ratio
    # of each round, beside the ratio of the medians.
    rounds=$(paste -d' ' <(tr ' ' '\n' <<<"${RPS[warm,$enc,leanserve]}" | grep -v '^$') <(tr ' ' '\n' <<<"${RPS[warm,$enc,nginx]}" | grep -v '^$') | awk '{ printf "%s%.2fx", (NR > 1 ? " " : ""), $1 / $2 }')
    echo "- warm $enc, leanserve vs $what: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", a / b }') (target >= ${target}x): $(verdict "$(awk -v a="$a" -v b="$b" -v t="$target" 'BEGIN { print (a / b >= t) }')"); by round: $rounds"
  done
fi
for phase in warm cold; do
  wants "$phase" || continue
  for enc in $ENCODINGS; do
    p=$(median "${P99[$phase,$enc,leanserve]}")
    echo "- $phase $enc, leanserve p99 at $CONNECTIONS connections: $p ms (target <= 5 ms)$([ "$phase" = warm ] && echo ": $(verdict "$(awk -v p="$p" 'BEGIN { print (p <= 5) }')")" || echo ", not a target")"
  done
done
all_rss=""
for k in "${!RSS[@]}"; do [[ $k == *,leanserve ]] && all_rss+="${RSS[$k]} "; done
peak=$(highest "$all_rss")
limit=$(awk -v b="$BUDGET" 'BEGIN { printf "%.1f", b / 1048576 + 30 }')
echo "- leanserve peak RSS over every phase: $peak MB (target <= budget + 30 MB = $limit MB): $(verdict "$(awk -v p="$peak" -v l="$limit" 'BEGIN { print (p <= l) }')"); RSS just after start: $(median "${BASE[leanserve]}") MB (nginx, master and workers: $(median "${BASE[nginx]}") MB)"
errs=0
for k in "${!ERR[@]}"; do [[ $k == *,leanserve ]] && errs=$((errs + $(total "${ERR[$k]}"))); done
echo "- leanserve errors (non-2xx and socket errors) over every measured phase: $errs"

# What the servers logged: leanserve's warnings and errors, nginx's errors, and exits.
echo
echo "Logs in $LOGS:"
ls_warn=$(cat "$LOGS"/leanserve-*.log | grep -cE ' (WARN|ERROR) ' || true)
echo "- leanserve: $ls_warn lines at WARN or ERROR$([ "$ls_warn" -gt 0 ] && echo "; most frequent:")"
cat "$LOGS"/leanserve-*.log | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5 | sed 's/^ */  - /' || true
ng_err=$(cat "$LOGS"/nginx-*.log | grep -cE '\[(error|crit|alert|emerg)\]' || true)
echo "- nginx: $ng_err lines at error or worse$([ "$ng_err" -gt 0 ] && echo "; most frequent:")"
cat "$LOGS"/nginx-*.log | grep -E '\[(error|crit|alert|emerg)\]' | sed -E 's/^[^[]*//; s/"[^"]*"/"..."/g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5 | sed 's/^ */  - /' || true
printf '%s' "$EXITS"
