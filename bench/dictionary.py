"""Helpers of bench/dictionary.sh (RFC 9842 compression dictionaries): the request stream,
the clients, the offline gzip-6 / brotli-11 references, the JS asset versions and the
report. Run as `python3 bench/dictionary.py COMMAND ARGS...`; see bench/dictionary.sh."""
import base64, hashlib, http.client, itertools, json, multiprocessing, os, random, re, statistics, sys, threading, time, urllib.parse, zlib

import brotli
import zstandard

TEXT = {"html", "htm", "css", "js", "mjs", "json", "svg", "xml", "txt", "md", "map", "csv"}
CHROME = "gzip, deflate, br, zstd"
DICT_AE = "gzip, deflate, br, zstd, dcb, dcz"
DCZ_MAGIC = bytes.fromhex("5e2a4d1820000000")
DCB_MAGIC = bytes.fromhex("ff444342")


def ext(path):
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else "-"


def site_files(site):
    """Every regular, non-hidden file under site: [(url path, bytes)], sorted."""
    files = []
    for top, dirs, names in os.walk(site):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files.append(("/" + os.path.relpath(full, site).replace(os.sep, "/"), os.path.getsize(full)))
    files.sort()
    return files


def gzip6(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)   # gzip wrapper, window 15, memLevel 8: nginx's gzip_comp_level 6
    return len(c.compress(data) + c.flush())


def br11(data):
    return len(brotli.compress(data, quality=11))


def decode(coding, body, want_len, dictionary):
    """The decoded body, or None when it cannot be decoded here (dcb: no shared-dictionary
    brotli in python's brotli)."""
    limit = want_len + 65536
    if coding == "identity":
        return body
    if coding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if coding == "dcz":
        if body[:8] != DCZ_MAGIC or dictionary is None or body[8:40] != hashlib.sha256(dictionary).digest():
            raise ValueError("dcz header does not name the dictionary")
        d = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        return zstandard.ZstdDecompressor(dict_data=d).decompress(body[40:], max_output_size=limit)
    return None


def check(coding, body, want, dictionary):
    """'ok', 'bad' or '-' (not checked) for a response body against the file's bytes."""
    try:
        out = decode(coding, body, len(want), dictionary)
    except Exception:
        return "bad"
    if out is None:
        return "-"
    return "ok" if out == want else "bad"


def available(dictionary):
    return ":" + base64.b64encode(hashlib.sha256(dictionary).digest()).decode() + ":"


def get(conn, path, headers, method="GET"):
    conn.request(method, urllib.parse.quote(path, safe="/!-._~"), headers=headers)
    r = conn.getresponse()
    body = r.read()
    return r.status, (r.getheader("Content-Encoding") or "identity").strip().lower(), body, r


def fetch_dictionary(url, first_html):
    """As a browser: the Link header of an HTML page (HEAD, no body), then the dictionary
    fetched with Chrome's Accept-Encoding. Returns (dictionary bytes, bytes on the wire,
    coding, url path, use-as-dictionary header)."""
    host = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    status, _, _, r = get(conn, first_html, {"Accept-Encoding": CHROME}, "HEAD")
    link = r.getheader("Link") or ""
    m = re.search(r'<([^>]+)>\s*;\s*rel="?compression-dictionary"?', link)
    if not m:
        raise SystemExit(f"no compression-dictionary Link on HEAD {first_html} (status {status}): {link!r}")
    path = m.group(1)
    status, coding, body, r = get(conn, path, {"Accept-Encoding": CHROME})
    uad = r.getheader("Use-As-Dictionary") or ""
    conn.close()
    if status != 200:
        raise SystemExit(f"GET {path}: status {status}")
    data = decode(coding, body, 4 << 20, None)
    if hashlib.sha256(data).hexdigest() != path.rsplit("/", 1)[-1]:
        raise SystemExit(f"the dictionary at {path} does not hash to its name")
    return data, len(body), coding, path, uad


def walk(url, paths, headers_of, site, conc, dictionary):
    """Requests every path once over conc keep-alive connections; a row per response:
    (path, kind, file bytes, status, coding, body bytes, check)."""
    host = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    state = {"next": 0}
    rows = [None] * len(paths)

    def worker():
        conn = None
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(paths):
                break
            path = paths[i]
            result = None
            for _ in (1, 2):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
                    result = get(conn, path, headers_of(path))[:3]
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    result = (0, "error:" + type(e).__name__, b"")
            status, coding, body = result
            with open(site + path, "rb") as f:
                want = f.read()
            ok = check(coding, body, want, dictionary) if 200 <= status < 300 else "-"
            rows[i] = (path, ext(path), len(want), status, coding, len(body), ok)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows


def write_rows(out, rows, extra):
    with open(out + ".tsv", "w") as f:
        f.write("path\tkind\tfile_bytes\tstatus\tcoding\tbody_bytes\tcheck\n")
        f.write("".join("\t".join(map(str, r)) + "\n" for r in rows))
    codings = {}
    for r in rows:
        codings[r[4]] = codings.get(r[4], 0) + 1
    fig = {
        "requests": len(rows),
        "errors": sum(1 for r in rows if not (200 <= r[3] < 300 or r[3] == 304)),
        "body_bytes": sum(r[5] for r in rows),
        "html_body_bytes": sum(r[5] for r in rows if r[1] in ("html", "htm")),
        "codings": codings,
        "checked": sum(1 for r in rows if r[6] == "ok"),
        "bad_bodies": sum(1 for r in rows if r[6] == "bad"),
        "unchecked": sum(1 for r in rows if r[6] == "-" and 200 <= r[3] < 300),
        "bad_examples": [r[0] for r in rows if r[6] == "bad"][:5],
        "non_2xx_examples": [f"{r[0]} {r[3]}" for r in rows if not (200 <= r[3] < 300)][:5],
    }
    fig.update(extra)
    with open(out + ".json", "w") as f:
        json.dump(fig, f, indent=1)
    return fig


# ---- commands -------------------------------------------------------------------------------

def cmd_stream(site, seed, count, logs):
    """The Zipf (s = 1) stream of bench/wire.sh over all of the site's files, ranks a seeded
    permutation: LOGS/stream.txt, LOGS/stream.json; and LOGS/pages.txt, every HTML page."""
    seed, count = int(seed), int(count)
    files = site_files(site)
    rng = random.Random(seed)
    order = list(range(len(files)))
    rng.shuffle(order)
    cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(files))))
    ranks = rng.choices(range(len(files)), cum_weights=cum, k=count)
    stream = [files[order[r]] for r in ranks]
    with open(os.path.join(logs, "stream.txt"), "w") as f:
        f.write("".join(p + "\n" for p, _ in stream))
    pages = [(p, n) for p, n in files if ext(p) in ("html", "htm")]
    with open(os.path.join(logs, "pages.txt"), "w") as f:
        f.write("".join(f"{p}\t{n}\n" for p, n in pages))
    distinct = dict(stream)
    stats = {
        "site_files": len(files), "site_bytes": sum(n for _, n in files),
        "site_pages": len(pages), "site_page_bytes": sum(n for _, n in pages),
        "requests": count, "distinct_files": len(distinct), "distinct_bytes": sum(distinct.values()),
        "html_requests": sum(1 for p, _ in stream if ext(p) in ("html", "htm")),
        "stream_identity_bytes": sum(n for _, n in stream),
    }
    with open(os.path.join(logs, "stream.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


def cmd_walk(url, mode, stream_path, site, conc, out):
    """Table 2's client, one pass: mode dict (fetches the site dictionary first, then
    Available-Dictionary + dcz/dcb on HTML, Chrome's header on the rest), chrome or gzip."""
    stream = [line.rstrip("\n") for line in open(stream_path)]
    dictionary, extra = None, {"dictionary_wire_bytes": 0}
    start = time.monotonic()
    if mode == "dict":
        first = next(p for p in stream if ext(p) in ("html", "htm"))
        dictionary, wire, coding, path, uad = fetch_dictionary(url, first)
        extra = {"dictionary_wire_bytes": wire, "dictionary_coding": coding, "dictionary_bytes": len(dictionary),
                 "dictionary_path": path, "use_as_dictionary": uad}
        avail = available(dictionary)

        def headers_of(p):
            if ext(p) in ("html", "htm"):
                return {"Accept-Encoding": DICT_AE, "Available-Dictionary": avail}
            return {"Accept-Encoding": CHROME}
    else:
        h = {"Accept-Encoding": CHROME if mode == "chrome" else "gzip"}
        headers_of = lambda p: h
    rows = walk(url, stream, headers_of, site, int(conc), dictionary)
    extra["seconds"] = round(time.monotonic() - start, 2)
    fig = write_rows(out, rows, extra)
    print(f"{mode}: {fig['requests']} requests in {fig['seconds']} s, errors {fig['errors']}, "
          f"{(fig['body_bytes'] + fig['dictionary_wire_bytes']) / 1048576:.2f} MiB incl. dictionary "
          f"{fig['dictionary_wire_bytes']} B, by encoding {fig['codings']}, checked {fig['checked']}, bad {fig['bad_bodies']}")


def cmd_pages(url, pages_path, site, conc, out):
    """Table 1's client: every HTML page once, as a client holding the site dictionary."""
    pages = [line.split("\t")[0] for line in open(pages_path)]
    first = next(p for p, n in (line.rstrip("\n").split("\t") for line in open(pages_path)) if int(n) >= 1024)
    dictionary, wire, coding, path, uad = fetch_dictionary(url, first)
    h = {"Accept-Encoding": DICT_AE, "Available-Dictionary": available(dictionary)}
    start = time.monotonic()
    rows = walk(url, pages, lambda p: h, site, int(conc), dictionary)
    fig = write_rows(out, rows, {"dictionary_wire_bytes": wire, "dictionary_coding": coding,
                                 "dictionary_bytes": len(dictionary), "dictionary_path": path,
                                 "seconds": round(time.monotonic() - start, 2)})
    print(f"pages: {fig['requests']} in {fig['seconds']} s, errors {fig['errors']}, by encoding {fig['codings']}, "
          f"checked {fig['checked']}, bad {fig['bad_bodies']}, unchecked {fig['unchecked']}")


def _refs(job):
    path, do_br = job
    data = open(path, "rb").read()
    return gzip6(data), (br11(data) if do_br else -1)


def cmd_refs(site, pages_tsv, sample, seed, procs, out):
    """gzip-6 of every page served in table 1, brotli-11 of a seeded sample of SAMPLE pages
    >= 1024 bytes; OUT.tsv adds the columns gzip6 and br11 (-1: not in the sample)."""
    import csv
    rows = list(csv.DictReader(open(pages_tsv), delimiter="\t"))
    big = [i for i, r in enumerate(rows) if int(r["file_bytes"]) >= 1024]
    chosen = set(random.Random(int(seed)).sample(big, min(int(sample), len(big))))
    jobs = [(site + r["path"], i in chosen) for i, r in enumerate(rows)]
    start = time.monotonic()
    with multiprocessing.Pool(int(procs)) as pool:
        refs = pool.map(_refs, jobs, chunksize=64)
    with open(out + ".tsv", "w") as f:
        f.write("path\tfile_bytes\tstatus\tcoding\tbody_bytes\tcheck\tgzip6\tbr11\n")
        for r, (g, b) in zip(rows, refs):
            f.write(f"{r['path']}\t{r['file_bytes']}\t{r['status']}\t{r['coding']}\t{r['body_bytes']}\t{r['check']}\t{g}\t{b}\n")
    print(f"refs: gzip-6 of {len(rows)} pages, brotli-11 of {len(chosen)} in {time.monotonic() - start:.1f} s")


def cmd_mkjs(src, pct, seed, root):
    """ROOT/assets/app-1.js (SRC as is) and app-2.js: PCT % of its lines, chosen with SEED,
    edited (a comment appended; lines over 1,000 characters get a 40-character span in the
    middle upper-cased instead)."""
    data = open(src, "rb").read()
    lines = data.split(b"\n")
    rng = random.Random(int(seed))
    n = max(1, round(len(lines) * float(pct) / 100))
    chosen = sorted(rng.sample(range(len(lines)), n))
    new = list(lines)
    for k, i in enumerate(chosen):
        line = new[i]
        if len(line) > 1000:
            m = len(line) // 2
            new[i] = line[:m] + line[m:m + 40].upper() + line[m + 40:]
        else:
            new[i] = line + b" // v2: changed (" + str(k).encode() + b")"
    os.makedirs(os.path.join(root, "assets"), exist_ok=True)
    open(os.path.join(root, "assets", "app-1.js"), "wb").write(data)
    open(os.path.join(root, "assets", "app-2.js"), "wb").write(b"\n".join(new))
    print(json.dumps({"lines": len(lines), "changed": n, "v1_bytes": len(data), "v2_bytes": len(b"\n".join(new))}))


def cmd_js(url, root, out):
    """Table 3's client: GET app-1.js (Chrome's header), then app-2.js with app-1.js as the
    Available-Dictionary and dcz/dcb accepted; again after a second (the stored form)."""
    host = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    v1 = open(os.path.join(root, "assets", "app-1.js"), "rb").read()
    v2 = open(os.path.join(root, "assets", "app-2.js"), "rb").read()
    s1, c1, b1, r1 = get(conn, "/assets/app-1.js", {"Accept-Encoding": CHROME})
    uad = r1.getheader("Use-As-Dictionary") or ""
    got1 = decode(c1, b1, len(v1), None)
    h = {"Accept-Encoding": DICT_AE, "Available-Dictionary": available(got1)}
    res = {"v1_status": s1, "v1_coding": c1, "v1_wire": len(b1), "v1_ok": got1 == v1, "use_as_dictionary": uad,
           "v1_bytes": len(v1), "v2_bytes": len(v2)}
    for tag, pause in (("first", 0), ("stored", 1.5)):
        time.sleep(pause)
        s2, c2, b2, r2 = get(conn, "/assets/app-2.js", h)
        res[f"v2_{tag}_status"], res[f"v2_{tag}_coding"], res[f"v2_{tag}_bytes"] = s2, c2, len(b2)
        res[f"v2_{tag}_check"] = check(c2, b2, v2, got1)
    s3, c3, b3, _ = get(conn, "/assets/app-2.js", {"Accept-Encoding": CHROME})
    res.update({"v2_chrome_coding": c3, "v2_chrome_bytes": len(b3)})
    conn.close()
    res.update({"v2_br11": br11(v2), "v2_gzip6": gzip6(v2),
                "v2_zstd19_no_dict": len(zstandard.ZstdCompressor(level=19).compress(v2)),
                "v2_zstd19_with_v1": len(zstandard.ZstdCompressor(level=19, dict_data=zstandard.ZstdCompressionDict(v1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)).compress(v2)) + 40})
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res))


# ---- report ---------------------------------------------------------------------------------

def verdict(ok):
    return "met" if ok else "**MISSED**"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def cmd_report(logs, params):
    p = json.loads(params)
    MB = 1048576
    L = lambda name: os.path.join(logs, name)
    have = lambda name: os.path.exists(L(name))
    st = json.load(open(L("stream.json")))
    print(f"## RFC 9842 dictionary compression: leanserve `{p['version']}` on the Rust documentation")
    print()
    print(f"{p['date']}; `{p['command']}`. Site {p['site']}: {st['site_files']} files, {st['site_bytes'] / MB:.0f} MiB; "
          f"{st['site_pages']} HTML pages, {st['site_page_bytes'] / MB:.0f} MiB. leanserve: prod profile, "
          f"{p['budget_mb']} MiB budget, 2 workers; nginx {p['nginx']}: 2 workers, gzip level 6. "
          f"gzip-6 references are python zlib level 6 in a gzip wrapper (window 15, memLevel 8: nginx's gzip_comp_level 6 settings); "
          f"brotli-11: python brotli {brotli.__version__} quality 11.")
    print()
    notes = []
    # ---- table 1
    if have("pages-refs.tsv"):
        import csv
        rows = list(csv.DictReader(open(L("pages-refs.tsv")), delimiter="\t"))
        pf = json.load(open(L("pages.json")))
        ok = [r for r in rows if r["status"] == "200"]
        big = [r for r in ok if int(r["file_bytes"]) >= 1024]
        dcz = [r for r in ok if r["coding"] == "dcz"]
        sample = [r for r in big if int(r["br11"]) >= 0]
        def rat(rs, a, b):
            return med([int(r[a]) / int(r[b]) for r in rs])
        def tot(rs, a):
            return sum(int(r[a]) for r in rs)
        # nginx sends pages under gzip_min_length (1024) as they are
        nginx_like = lambda r: int(r["gzip6"]) if int(r["file_bytes"]) >= 1024 else int(r["file_bytes"])
        print(f"### 1. Every HTML page once, as a client holding the site dictionary ({pf['dictionary_bytes']} B, "
              f"{pf['dictionary_wire_bytes']} B on the wire as {pf['dictionary_coding']})")
        print()
        print(f"{len(rows)} pages requested, {len(ok)} answered 200 ({pf['errors']} errors); by encoding {pf['codings']}; "
              f"{pf['checked']} bodies decoded to the file, {pf['bad_bodies']} did not, {pf['unchecked']} not checked (dcb). "
              f"Each page is requested once, so every dcz body is leanserve's first (inline) compression of it. "
              f"{len(rows) - len(big)} pages are under 1,024 bytes (rustdoc redirect pages): leanserve and nginx both send them as they are.")
        print()
        print("| pages | n | body MiB (leanserve, dictionary client) | gzip-6 MiB | brotli-11 MiB | median body / gzip-6 | median body / br-11 | total body / gzip-6 | total body / br-11 |")
        print("|---|---|---|---|---|---|---|---|---|")
        def row(label, rs, br=False):
            g = med([int(r["body_bytes"]) / int(r["gzip6"]) for r in rs])
            b = med([int(r["body_bytes"]) / int(r["br11"]) for r in rs]) if br else float("nan")
            tb = tot(rs, "br11") if br else 0
            print(f"| {label} | {len(rs)} | {tot(rs, 'body_bytes') / MB:.2f} | {tot(rs, 'gzip6') / MB:.2f} | "
                  f"{tb / MB:.2f} | {g:.3f}x | {b:.3f}x | {tot(rs, 'body_bytes') / tot(rs, 'gzip6'):.3f}x | "
                  f"{(tot(rs, 'body_bytes') / tb if br else float('nan')):.3f}x |".replace("| 0.00 |", "| - |").replace("nanx", "-"))
        row("all pages (gzip-6 of every page, even < 1 KiB)", ok)
        row("pages >= 1,024 B", big)
        row("pages served dcz", dcz)
        row(f"sample: {len(sample)} pages >= 1,024 B (seed {p['seed']})", sample, True)
        allnx = sum(nginx_like(r) for r in ok)
        print()
        print(f"All pages as nginx would send them to a gzip client (gzip-6 from 1,024 B, identity under): {allnx / MB:.2f} MiB; "
              f"leanserve to the dictionary client: {tot(ok, 'body_bytes') / MB:.2f} MiB ({tot(ok, 'body_bytes') / allnx:.3f}x); "
              f"median page {med([int(r['body_bytes']) / nginx_like(r) for r in ok]):.3f}x.")
        print()
        g = med([int(r["body_bytes"]) / int(r["gzip6"]) for r in big])
        b = med([int(r["body_bytes"]) / int(r["br11"]) for r in sample])
        print(f"- Target: median HTML page (>= 1,024 B, i.e. every page a server compresses) dcz / gzip-6 <= 0.25x: {g:.3f}x, {verdict(g <= 0.25)} "
              f"(over all {len(ok)} pages, the tiny redirect pages included: {rat(ok, 'body_bytes', 'gzip6'):.3f}x, {verdict(rat(ok, 'body_bytes', 'gzip6') <= 0.25)}).")
        print(f"- Target: median dcz / brotli-11 <= 0.35x (sample of {len(sample)}): {b:.3f}x, {verdict(b <= 0.35)}.")
        print(f"- Size-bucketed medians (pages >= 1,024 B), body / gzip-6: " + ", ".join(
            f"{lo // 1024}-{hi // 1024 if hi < 1 << 40 else 'inf'} KiB {med([int(r['body_bytes']) / int(r['gzip6']) for r in big if lo <= int(r['file_bytes']) < hi]):.3f}x (n={sum(1 for r in big if lo <= int(r['file_bytes']) < hi)})"
            for lo, hi in ((1024, 8192), (8192, 32768), (32768, 131072), (131072, 524288), (524288, 1 << 40))))
        if have("stream-nginx-gzip-pass1.tsv"):
            # the python gzip-6 reference against nginx's own gzip bodies, on the pages table 2 sent
            ng = {r["path"]: int(r["body_bytes"]) for r in csv.DictReader(open(L("stream-nginx-gzip-pass1.tsv")), delimiter="\t")
                  if r["coding"] == "gzip" and r["kind"] in ("html", "htm")}
            ref = {r["path"]: int(r["gzip6"]) for r in rows if r["path"] in ng}
            if ref:
                print(f"- gzip-6 reference check: on the {len(ref)} pages nginx sent gzipped in table 2, python's gzip-6 totals "
                      f"{sum(ref.values()) / sum(ng[k] for k in ref):.4f}x nginx's bytes ({sum(1 for k in ref if ref[k] != ng[k])} pages differ).")
        if pf["bad_bodies"] or pf["errors"]:
            notes.append(f"table 1: {pf['errors']} errors ({pf['non_2xx_examples']}), {pf['bad_bodies']} bad bodies ({pf['bad_examples']})")
        print()
    # ---- table 2
    if have("stream-leanserve-dict-pass1.json"):
        print(f"### 2. Zipf (s = 1) stream, {st['requests']} requests (seed {p['seed']}) over all {st['site_files']} files "
              f"({st['distinct_files']} distinct, {st['distinct_bytes'] / MB:.1f} MiB; {st['html_requests']} requests for HTML)")
        print()
        print("Fresh servers; pass 1 cold, pass 2 right after on the same server (a new visitor: the dictionary client fetches the dictionary again). "
              f"{p['concurrency']} keep-alive connections. Every body is decoded and compared with the file (dcb excepted).")
        print()
        print("| server | client | pass | requests | errors | dictionary B on the wire | body MiB (incl. dictionary) | HTML body MiB | by encoding | bad bodies | / nginx gzip | / nginx chrome |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        runs = [("leanserve", "dict"), ("leanserve", "chrome"), ("nginx", "gzip"), ("nginx", "chrome")]
        fig = {}
        for s, c in runs:
            for ps in (1, 2):
                n = f"stream-{s}-{c}-pass{ps}.json"
                if have(n):
                    fig[(s, c, ps)] = json.load(open(L(n)))
        total = lambda f: f["body_bytes"] + f["dictionary_wire_bytes"]
        for (s, c, ps), f in fig.items():
            ng, nc = fig.get(("nginx", "gzip", ps)), fig.get(("nginx", "chrome", ps))
            enc = " / ".join(f"{k} {v}" for k, v in sorted(f["codings"].items()))
            print(f"| {s} | {c} | {ps} ({'cold' if ps == 1 else 'warm'}) | {f['requests']} | {f['errors']} | {f['dictionary_wire_bytes']} | "
                  f"{total(f) / MB:.2f} | {f['html_body_bytes'] / MB:.2f} | {enc} | {f['bad_bodies']} | "
                  f"{(total(f) / total(ng)) if ng else float('nan'):.3f}x | {(total(f) / total(nc)) if nc else float('nan'):.3f}x |")
            if f["bad_bodies"] or f["errors"]:
                notes.append(f"table 2 {s}/{c} pass {ps}: {f['errors']} errors ({f['non_2xx_examples']}), {f['bad_bodies']} bad bodies ({f['bad_examples']})")
        print()
        for ps in (1, 2):
            if ("leanserve", "dict", ps) in fig and ("nginx", "gzip", ps) in fig:
                r = total(fig[("leanserve", "dict", ps)]) / total(fig[("nginx", "gzip", ps)])
                print(f"- Target: pass {ps} ({'cold' if ps == 1 else 'warm'}) dictionary client's bytes (dictionary download included) <= 0.5x nginx's to a gzip client: {r:.3f}x, {verdict(r <= 0.5)}.")
        print()
    # ---- table 3
    if have("js.json"):
        j = json.load(open(L("js.json")))
        mk = json.load(open(L("js-versions.json")))
        print(f"### 3. A versioned asset: `{p['js']}` ({mk['v1_bytes']} B, {mk['lines']} lines) as /assets/app-1.js; app-2.js: {mk['changed']} lines ({p['js_pct']}%) edited, {mk['v2_bytes']} B")
        print()
        print(f"v1 fetched with Chrome's header: {j['v1_status']} {j['v1_coding']} {j['v1_wire']} B, Use-As-Dictionary `{j['use_as_dictionary']}`. "
              f"v2 with Available-Dictionary = sha256(v1): first response {j['v2_first_status']} {j['v2_first_coding']} (decode: {j['v2_first_check']}); "
              f"again 1.5 s later {j['v2_stored_status']} {j['v2_stored_coding']} (decode: {j['v2_stored_check']}).")
        print()
        print("| v2 as | bytes | / brotli-11 | / gzip-6 |")
        print("|---|---|---|---|")
        for label, key in (("leanserve dcz, first response", "v2_first_bytes"), ("leanserve dcz, 1.5 s later", "v2_stored_bytes"),
                           (f"leanserve to Chrome's header ({j['v2_chrome_coding']})", "v2_chrome_bytes"),
                           ("brotli-11 (python)", "v2_br11"), ("gzip-6 (python zlib)", "v2_gzip6"),
                           ("zstd-19, no dictionary (python)", "v2_zstd19_no_dict"),
                           ("zstd-19 with v1 as raw dictionary + 40 B dcz header (python)", "v2_zstd19_with_v1")):
            print(f"| {label} | {j[key]} | {j[key] / j['v2_br11']:.4f}x | {j[key] / j['v2_gzip6']:.4f}x |")
        print()
        best = min(j["v2_first_bytes"], j["v2_stored_bytes"]) if j["v2_stored_coding"] == "dcz" else j["v2_first_bytes"]
        r = j["v2_first_bytes"] / j["v2_br11"]
        print(f"- Target: dcz / brotli-11 <= 0.2x: first response {r:.4f}x, {verdict(r <= 0.2 and j['v2_first_coding'] == 'dcz')}; "
              f"1.5 s later {j['v2_stored_bytes'] / j['v2_br11']:.4f}x, {verdict(j['v2_stored_bytes'] / j['v2_br11'] <= 0.2 and j['v2_stored_coding'] == 'dcz')}.")
        print()
    # ---- table 4
    if have("wrk.json"):
        w = json.load(open(L("wrk.json")))
        print(f"### 4. Throughput of cached hits: `{w['page']}` ({w['page_bytes']} B), wrk 2 threads, 16 connections, {w['seconds']} s, leanserve 2 workers")
        print()
        print(f"Warm-up: (a) answered {w['warm_a']}, (b) answered {w['warm_b']}. Rounds interleaved a, b, a, b, ...")
        print()
        print("| variant | Accept-Encoding | response | rounds req/s | median req/s | median transfer/s | non-2xx |")
        print("|---|---|---|---|---|---|---|")
        for v, label in (("a", "`gzip`"), ("b", "`gzip, deflate, br, zstd, dcb, dcz` + Available-Dictionary")):
            rs = w[v]
            print(f"| {v} | {label} | {w['warm_' + v]} | {', '.join('%.0f' % x['rps'] for x in rs)} | {med([x['rps'] for x in rs]):.0f} | "
                  f"{med([x['mb_s'] for x in rs]):.1f} MB/s | {sum(x['non2xx'] for x in rs)} |")
        ra = med([x["rps"] for x in w["a"]])
        rb = med([x["rps"] for x in w["b"]])
        print()
        print(f"- Target: b / a >= 0.9x: {rb / ra:.3f}x, {verdict(rb / ra >= 0.9)} (per round: "
              + ", ".join(f"{y['rps'] / x['rps']:.2f}x" for x, y in zip(w["a"], w["b"])) + ").")
        print()
    # ---- table 5
    if have("rss.json"):
        r = json.load(open(L("rss.json")))
        limit = int(p["budget_mb"]) * MB + 30 * 1000 * 1000
        print(f"### 5. Peak RSS (VmHWM) against the budget ({p['budget_mb']} MiB) + 30 MB = {limit / MB:.1f} MiB")
        print()
        print("| run | VmHWM MiB | VmRSS MiB (anon / file-backed) | dictionary_bytes | bytes_cached MiB | items | target |")
        print("|---|---|---|---|---|---|---|")
        for k, v in r.items():
            print(f"| {k} | {v['hwm'] / MB:.1f} | {v['rss'] / MB:.1f} ({v['anon'] / MB:.1f} / {v['file'] / MB:.1f}) | {v.get('dictionary_bytes', '-')} | "
                  f"{v.get('bytes_cached', 0) / MB:.1f} | {v.get('items', '-')} | {verdict(v['hwm'] <= limit) if not k.startswith('reference') else '(reference: ' + ('under' if v['hwm'] <= limit else 'over') + ')'} |")
        print()
    if notes:
        print("Problems seen:")
        for n in notes:
            print(f"- {n}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    globals()["cmd_" + cmd](*sys.argv[2:])
