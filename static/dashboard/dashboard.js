// leanserve's live dashboard: polls the monitoring API and draws the figures and charts.
//
// Data flow: at start the page loads `monitoring/history` (oldest first); then it
// fetches `monitoring` twice per sampling interval, so it sees every sample, and appends
// each new one to the same list: one small request per tick keeps the charts current.
// After an outage or a missed sample it fetches only the samples it lacks
// (`history?since=<last>`); when the list no longer lines up (a new process), all of it. URLs resolve against the page, so a
// mount prefix carries over (/lean/dashboard fetches /lean/monitoring). No
// dependencies: the charts are inline SVG built below.
'use strict';
(() => {
  const MONITORING = new URL('monitoring', document.baseURI);
  const HISTORY = new URL('monitoring/history', document.baseURI);
  const MAX_SAMPLES = 3600; // an hour at one sample a second; older ones are dropped
  const FETCH_TIMEOUT_MS = 3000; // a hung server counts as unreachable after this
  // The admin token, when the server has one: open the page as /dashboard#token=... (a
  // fragment never leaves the browser, so it is in no request line or log).
  const TOKEN = new URLSearchParams(location.hash.slice(1)).get('token');
  const RETRY_MS = 1000; // poll period while the server does not answer

  const state = {
    samples: [], // {t, m, restarts}: timestamp_ms, metrics, restarts per child
    intervalMs: 1000, // the server's sampling interval (interval_seconds)
    pollMs: 500, // half of it, kept within 100 ms .. 5 s
    windowS: 300, // chart window in seconds; 0 shows every sample kept
    needHistory: 'full', // next tick: the 'full' history, the 'gap' since the last sample, or none ('')
    failures: 0, // consecutive failed ticks
    latest: null, // the last /monitoring body rendered
    lastOkMs: 0, // when the last tick succeeded (browser clock)
  };
  const $ = (id) => document.getElementById(id);

  // ---- formatting: one function per kind of figure ----
  const fmt = {
    pct: (ratio) => (ratio * 100).toFixed(1) + '%',
    // Milliseconds, with three significant digits below 100 ms (file serves take µs).
    ms: (seconds) => {
      const ms = seconds * 1000;
      return ms >= 100 || ms === 0 ? ms.toFixed(0) : String(+ms.toPrecision(3));
    },
    mib: (bytes) => (bytes / 1048576).toFixed(1),
    int: (n) => String(Math.round(n)),
    bytes: (n) => {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + units[i];
    },
    time: (ms) => new Date(ms).toLocaleTimeString([], { hour12: false }),
    // An alert's value, judged by its metric's name.
    metric: (name, v) =>
      /ratio$/.test(name) ? fmt.pct(v)
        : /bytes$/.test(name) ? fmt.bytes(v)
          : /seconds$/.test(name) ? fmt.ms(v) + ' ms'
            : String(+v.toPrecision(4)),
  };

  const text = (id, value) => { $(id).textContent = value; };
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : 0); // tolerate gaps

  // ---- fetching ----
  class HttpError extends Error {}

  async function getJson(url) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const headers = TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {};
      const response = await fetch(url, { cache: 'no-store', signal: abort.signal, headers });
      if (response.status === 401 || response.status === 403) {
        throw new HttpError('HTTP ' + response.status + ': open the dashboard as /dashboard#token=<admin token>');
      }
      if (!response.ok) throw new HttpError('HTTP ' + response.status);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  // A /monitoring body as a history sample.
  function sampleOf(snapshot) {
    const restarts = {};
    for (const child of snapshot.children || []) restarts[child.name] = child.restarts;
    return { t: snapshot.timestamp_ms, m: snapshot.metrics || {}, restarts };
  }

  // Appends a snapshot, or asks for the history again when the list no longer lines up:
  // time went backwards or the counters reset (a new process), or a sample was missed
  // (the tab slept, the server was away, a poll came late).
  function ingest(snapshot) {
    const sample = sampleOf(snapshot);
    const last = state.samples[state.samples.length - 1];
    if (last && sample.t === last.t) return;
    if (last && (sample.t < last.t
        || num(sample.m.requests_total) < num(last.m.requests_total)
        || sample.t - last.t > 1.5 * state.intervalMs)) {
      const reset = sample.t < last.t || num(sample.m.requests_total) < num(last.m.requests_total);
      state.needHistory = reset ? 'full' : 'gap';
    }
    state.samples.push(sample);
    if (state.samples.length > MAX_SAMPLES) state.samples.splice(0, state.samples.length - MAX_SAMPLES);
  }

  // One poll: the history when needed, then the latest snapshot. Errors of any kind
  // (network, timeout, HTTP status, bad JSON) show the banner and retry.
  async function tick() {
    try {
      let snapshot;
      if (state.needHistory) {
        const last = state.samples[state.samples.length - 1];
        const full = state.needHistory === 'full' || !last;
        const url = new URL(HISTORY);
        if (!full) url.searchParams.set('since', String(last.t));
        let history;
        [history, snapshot] = await Promise.all([getJson(url), getJson(MONITORING)]);
        const fetched = (history.samples || []).map((s) => ({ t: s.timestamp_ms, m: s.metrics || {}, restarts: s.restarts || {} }));
        state.samples = full ? fetched : state.samples.concat(fetched);
        if (state.samples.length > MAX_SAMPLES) state.samples.splice(0, state.samples.length - MAX_SAMPLES);
        state.needHistory = '';
      } else {
        snapshot = await getJson(MONITORING);
      }
      state.intervalMs = (num(snapshot.interval_seconds) || 1) * 1000;
      state.pollMs = Math.min(5000, Math.max(100, state.intervalMs / 2));
      state.failures = 0;
      state.lastOkMs = Date.now();
      if (snapshot.timestamp_ms) {
        ingest(snapshot);
        state.latest = snapshot;
        render();
      } else {
        // The server is up but has not collected its first sample yet.
        showReachable();
        setLive('waiting', 'waiting for the first sample');
        state.needHistory = 'full';
      }
    } catch (err) {
      state.failures++;
      // Whatever happened meanwhile is in the server's history: fetch what is missing.
      state.needHistory = state.needHistory || 'gap';
      showUnreachable(err);
    }
    setTimeout(tick, state.failures ? RETRY_MS : state.pollMs);
  }

  // ---- reachability ----
  function showUnreachable(err) {
    const banner = $('status-banner');
    const why = err instanceof HttpError ? err.message : err.name === 'AbortError' ? 'no answer' : 'connection failed';
    const since = state.lastOkMs ? '; showing data from ' + fmt.time(state.lastOkMs) : '';
    banner.textContent = `Server unreachable — retrying every ${RETRY_MS / 1000} s (${why}, attempt ${state.failures}${since})`;
    banner.dataset.state = 'unreachable';
    banner.hidden = false;
    document.body.classList.add('stale');
    setLive('retrying', 'retrying');
  }

  function showReachable() {
    const banner = $('status-banner');
    banner.hidden = true;
    banner.dataset.state = 'ok';
    banner.textContent = '';
    document.body.classList.remove('stale');
    setLive('live', 'live');
  }

  function setLive(stateName, label) {
    const pill = $('live');
    pill.dataset.state = stateName;
    pill.textContent = label;
  }

  // ---- rendering ----
  function render() {
    const snap = state.latest;
    const m = snap.metrics || {};
    showReachable();
    document.body.dataset.updatedMs = String(snap.timestamp_ms);
    text('updated', 'updated ' + fmt.time(snap.timestamp_ms) + ' · a sample every ' + (state.intervalMs / 1000) + ' s');

    const lookups = num(m.cache_hits_total) + num(m.cache_misses_total);
    text('hit-ratio', lookups ? fmt.pct(num(m.cache_hit_ratio)) : '—');
    text('cache-hits', fmt.int(num(m.cache_hits_total)));
    text('cache-misses', fmt.int(num(m.cache_misses_total)));
    text('rps', num(m.requests_per_second).toFixed(1));
    text('requests-total', fmt.int(num(m.requests_total)));
    // Serve times cover the last interval; 0 means no file was served in it.
    const latency = (seconds) => (num(seconds) > 0 ? fmt.ms(seconds) : '—');
    text('p50-ms', latency(m.serve_time_p50_seconds));
    text('p90-ms', latency(m.serve_time_p90_seconds));
    text('p99-ms', latency(m.serve_time_p99_seconds));
    $('latency').dataset.idle = String(!(num(m.serve_time_p99_seconds) > 0));
    text('rss-mb', fmt.mib(num(m.process_rss_bytes)));
    text('cpu', num(m.process_cpu_percent).toFixed(1));
    // Heap figures exist only where jemalloc is the allocator; templates only when on.
    text('heap-mb', m.heap_allocated_bytes === undefined ? 'n/a' : fmt.mib(num(m.heap_allocated_bytes)) + ' MiB');
    text('templates-loaded', m.templates_loaded === undefined ? '—' : fmt.int(num(m.templates_loaded)));
    text('template-renders', fmt.int(num(m.template_renders_total)));
    text('templates-in-error', fmt.int(num(m.templates_in_error)));
    text('restarts-total', fmt.int(num(m.actor_restarts_total)));
    // Pools exist unless the pool manager is off.
    const pooled = m.pools !== undefined;
    text('pools-in-use', pooled ? fmt.int(num(m.pools_in_use)) : 'off');
    text('pools-size', pooled ? fmt.int(num(m.pools_size)) : '—');
    text('pools-count', fmt.int(num(m.pools)));
    text('pools-waiters', fmt.int(num(m.pools_waiters)));
    text('pools-timeouts', fmt.int(num(m.pools_timeouts_total)));
    text('pools-leaks', fmt.int(num(m.pools_leaks_total)));
    renderTuner(m);
    renderLimiter(m);

    renderCache(m);
    renderStatusMix(m);
    renderCharts();
    renderChildren(snap.children || []);
    renderAlerts(snap.alerts || []);
  }

  // The tuner's figures exist once it has run a round (at start, then every
  // tuner.interval; never when it is off); until then the tile waits. The memory
  // limit is in whole MiB, the cache budget (now → recommended) in MiB to 0.1.
  function renderTuner(m) {
    const has = (key) => typeof m[key] === 'number' && isFinite(m[key]);
    const tuned = ['tuner_changes_total', 'tuner_memory_limit_bytes', 'tuner_cache_budget_bytes_value'].some(has);
    $('tuner').dataset.state = tuned ? 'on' : 'waiting';
    text('tuner-limit-mb', has('tuner_memory_limit_bytes') ? fmt.int(m.tuner_memory_limit_bytes / 1048576) : '—');
    text('tuner-cache-mb', has('tuner_cache_budget_bytes_value') ? fmt.mib(m.tuner_cache_budget_bytes_value) : '—');
    text('tuner-cache-recommended-mb',
      has('tuner_cache_budget_bytes_recommended') ? fmt.mib(m.tuner_cache_budget_bytes_recommended) : '—');
    text('tuner-changes', fmt.int(num(m.tuner_changes_total)));
  }

  // The limiters' figures exist only when limiter.enabled: "in flight / limit" per
  // limiter, files as the value and renders below, with the 503s each refused.
  function renderLimiter(m) {
    const on = typeof m.limiter_limit_files === 'number';
    $('limiter').dataset.state = on ? 'on' : 'off';
    const load = (name) => fmt.int(num(m['limiter_in_flight_' + name])) + ' / ' + fmt.int(num(m['limiter_limit_' + name]));
    text('limiter-files', on ? load('files') : 'off');
    text('limiter-renders', on ? load('renders') : '—');
    text('limiter-rejected-files', fmt.int(num(m.limiter_rejected_total_files)));
    text('limiter-rejected-renders', fmt.int(num(m.limiter_rejected_total_renders)));
    text('limiter-queued', fmt.int(num(m.limiter_queued_files)));
  }

  function renderCache(m) {
    const used = num(m.cache_bytes);
    const budget = num(m.cache_budget_bytes);
    const fill = budget ? Math.min(1, used / budget) : 0;
    const bar = $('cache-bar');
    bar.firstElementChild.style.width = (fill * 100).toFixed(2) + '%';
    bar.dataset.level = fill >= 0.9 ? 'high' : fill >= 0.75 ? 'mid' : 'low';
    bar.setAttribute('aria-valuenow', (fill * 100).toFixed(1));
    text('cache-bytes', fmt.bytes(used));
    $('cache-bytes').dataset.value = String(used);
    text('cache-budget', fmt.bytes(budget));
    text('cache-fill', fmt.pct(fill));
    text('cache-items', fmt.int(num(m.cache_items)));
    text('cache-evictions', fmt.int(num(m.cache_evictions_total)));
    const saved = num(m.static_bytes_saved_total);
    text('bytes-saved', fmt.bytes(saved));
    $('bytes-saved').dataset.value = String(saved);
    for (const coding of ['br', 'zstd', 'gzip', 'identity']) {
      text('responses-' + coding, fmt.int(num(m['static_responses_' + coding + '_total'])));
    }
    text('compressed', fmt.int(num(m.compressed_served_total)));
    text('compression-ratio', num(m.compressed_served_total) ? fmt.pct(num(m.compression_ratio)) : '—');
  }

  // One stacked bar of the responses by status class.
  function renderStatusMix(m) {
    const classes = ['2xx', '3xx', '4xx', '5xx'].map((c) => [c, num(m['requests_' + c + '_total'])]);
    const total = classes.reduce((sum, [, n]) => sum + n, 0);
    const stack = $('status-mix');
    const legend = $('status-legend');
    stack.replaceChildren();
    legend.replaceChildren();
    for (const [name, n] of classes) {
      const share = total ? n / total : 0;
      const part = document.createElement('span');
      part.className = 'c' + name;
      part.style.width = (share * 100).toFixed(2) + '%';
      part.title = `${name}: ${n}`;
      stack.append(part);
      const item = document.createElement('span');
      item.className = 'key c' + name;
      item.textContent = `${name} ${n} (${total ? fmt.pct(share) : '—'})`;
      legend.append(item);
    }
  }

  // The samples inside the chosen window.
  function windowed() {
    const s = state.samples;
    if (!state.windowS || !s.length) return s;
    const from = s[s.length - 1].t - state.windowS * 1000;
    return s.filter((x) => x.t >= from);
  }

  // At most `limit` samples: every k-th one, counted back from the newest so it stays.
  function thin(samples, limit) {
    const k = Math.ceil(samples.length / Math.max(2, limit));
    return k <= 1 ? samples : samples.filter((_, i) => (samples.length - 1 - i) % k === 0);
  }

  function renderCharts() {
    // One point per two pixels is as fine as a line can show.
    const s = thin(windowed(), Math.floor(($('chart-rps').clientWidth || 480) / 2));
    const ts = s.map((x) => x.t);
    const series = (label, key, scale = 1) => ({ label, values: s.map((x) => num(x.m[key]) * scale) });
    // A serve time of 0 means no file was served in that interval: a gap, not a 0 ms.
    const servetime = (label, key) => ({ label, values: s.map((x) => num(x.m[key]) * 1000 || null) });
    const oneDigit = (v) => v.toFixed(1);
    lineChart($('chart-rps'), ts, [series('req/s', 'requests_per_second')], { format: oneDigit, fill: true });
    lineChart($('chart-latency'), ts, [
      servetime('p50', 'serve_time_p50_seconds'),
      servetime('p90', 'serve_time_p90_seconds'),
      servetime('p99', 'serve_time_p99_seconds'),
    ], { format: (ms) => fmt.ms(ms / 1000) });
    // No lookups yet means no ratio: a gap, not a misleading 0%.
    const hit = series('hit %', 'cache_hit_ratio', 100);
    hit.values = hit.values.map((v, i) => (num(s[i].m.cache_hits_total) + num(s[i].m.cache_misses_total) ? v : null));
    lineChart($('chart-hit'), ts, [hit], { format: oneDigit, fill: true, max: 100 });
    lineChart($('chart-rss'), ts, [series('RSS', 'process_rss_bytes', 1 / 1048576)], { format: oneDigit, fill: true });
  }

  // ---- charts ----
  // A step of 1, 2 or 5 times a power of ten that splits 0..max into about `n` parts.
  function niceStep(max, n) {
    const raw = max / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].find((k) => k * mag >= raw) * mag;
  }

  // Draws `series` ([{label, values}], one value or null per time in `ts`) as an SVG line
  // chart into `el`, with a y axis from 0, time labels, a legend with the latest values
  // (`opts.format`), and a hover read-out. A null, or a gap of more than 3 intervals
  // between samples, breaks the lines. `data-points` counts the points drawn.
  function lineChart(el, ts, series, opts) {
    const W = Math.max(240, el.clientWidth || 480);
    const H = 170;
    const pad = { l: 44, r: 10, t: 10, b: 22 };
    const all = series.flatMap((s) => s.values).filter((v) => v !== null);
    const top = opts.max || Math.max(...all, 0) || 1;
    const step = niceStep(top, 4);
    const yMax = Math.ceil(top / step - 1e-9) * step;
    const t0 = ts[0];
    const t1 = ts[ts.length - 1];
    const x = (t) => pad.l + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - pad.l - pad.r);
    const y = (v) => pad.t + (1 - v / yMax) * (H - pad.t - pad.b);
    const labelDigits = step < 1 ? Math.min(3, Math.ceil(-Math.log10(step))) : 0;

    let svg = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">`;
    for (let v = 0; v <= yMax + step / 2; v += step) {
      svg += `<line class="grid" x1="${pad.l}" x2="${W - pad.r}" y1="${y(v)}" y2="${y(v)}"/>`;
      svg += `<text class="axis" x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(labelDigits)}</text>`;
    }
    if (ts.length) {
      svg += `<text class="axis" x="${pad.l}" y="${H - 5}">${fmt.time(t0)}</text>`;
      svg += `<text class="axis" x="${W - pad.r}" y="${H - 5}" text-anchor="end">${fmt.time(t1)}</text>`;
    }
    let drawn = 0;
    series.forEach((s, k) => {
      // Split into runs of points without breaks; each run is a line (and an area).
      const runs = [];
      let run = null;
      s.values.forEach((v, i) => {
        if (v === null) { run = null; return; }
        if (!run || ts[i] - ts[i - 1] > 3 * state.intervalMs) runs.push(run = []);
        run.push([x(ts[i]).toFixed(1), y(v).toFixed(1)]);
      });
      drawn = Math.max(drawn, runs.reduce((n, r) => n + r.length, 0));
      for (const points of runs) {
        const d = points.map(([px, py], j) => `${j ? 'L' : 'M'}${px},${py}`).join('');
        if (opts.fill && points.length > 1) {
          svg += `<path class="area s${k}" d="${d}L${points[points.length - 1][0]},${y(0)}L${points[0][0]},${y(0)}Z"/>`;
        }
        svg += `<path class="line s${k}" d="${d}"/>`;
        if (points.length === 1) svg += `<circle class="dot s${k}" cx="${points[0][0]}" cy="${points[0][1]}" r="3"/>`;
      }
    });
    svg += `<line class="cursor" y1="${pad.t}" y2="${H - pad.b}" visibility="hidden"/></svg>`;

    const legend = series.map((s, k) => `<span class="key s${k}">${s.label} <b></b></span>`).join('');
    el.innerHTML = `<p class="legend">${legend}<span class="at"></span></p>${svg}`;
    el.dataset.points = String(drawn);

    // The legend shows the point at index i (the latest unless the pointer is over one).
    // The pointer's time is kept on the element, so the read-out survives the redraw
    // every poll makes.
    const nearest = (t) => ts.reduce((best, ti, i) => (Math.abs(ti - t) < Math.abs(ts[best] - t) ? i : best), 0);
    const show = (i) => {
      const values = el.querySelectorAll('.legend b');
      series.forEach((s, k) => { values[k].textContent = ts.length && s.values[i] !== null ? opts.format(s.values[i]) : '—'; });
      if (!ts.length) return;
      const cursor = el.querySelector('.cursor');
      const hovering = i !== ts.length - 1;
      cursor.setAttribute('visibility', hovering ? 'visible' : 'hidden');
      cursor.setAttribute('x1', x(ts[i]));
      cursor.setAttribute('x2', x(ts[i]));
      el.querySelector('.at').textContent = hovering ? 'at ' + fmt.time(ts[i]) : '';
    };
    show(el.dataset.hoverT && ts.length ? nearest(Number(el.dataset.hoverT)) : ts.length - 1);
    const svgEl = el.querySelector('svg');
    svgEl.addEventListener('mousemove', (event) => {
      if (!ts.length) return;
      const box = svgEl.getBoundingClientRect();
      const t = t0 + ((event.clientX - box.left) * (W / box.width) - pad.l) / (W - pad.l - pad.r) * (t1 - t0);
      el.dataset.hoverT = String(t);
      show(nearest(t));
    });
    svgEl.addEventListener('mouseleave', () => {
      delete el.dataset.hoverT;
      show(ts.length - 1);
    });
  }

  // ---- children and alerts ----
  function renderChildren(children) {
    const s = windowed();
    const first = s.length ? s[0].restarts : {};
    const most = Math.max(1, ...children.map((c) => num(c.restarts)));
    const rows = children.map((child) => {
      const row = document.createElement('tr');
      row.dataset.child = child.name;
      row.dataset.restarts = String(num(child.restarts));
      row.dataset.state = child.state;
      const recent = first[child.name] === undefined ? 0 : Math.max(0, num(child.restarts) - first[child.name]);
      row.innerHTML = '<td></td><td><span class="badge"></span></td><td class="num"></td><td><span class="minibar"><span></span></span></td>';
      row.cells[0].textContent = child.name;
      row.cells[1].firstChild.textContent = child.state;
      row.cells[2].textContent = fmt.int(num(child.restarts));
      const bar = row.cells[3].firstChild;
      bar.firstChild.style.width = (recent / most * 100).toFixed(1) + '%';
      bar.title = `${recent} in the chart window`;
      bar.append(' ' + recent);
      return row;
    });
    $('children').replaceChildren(...rows);
  }

  const STATE_ORDER = { firing: 0, pending: 1, resolved: 2, inactive: 3 };
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };

  // Firing alerts first, inactive ones last and compact (CSS); each item carries the
  // rule's name and state as data attributes.
  function renderAlerts(alerts) {
    const order = (a) => [STATE_ORDER[a.state] ?? 4, SEVERITY_ORDER[a.severity] ?? 3, a.name];
    const sorted = [...alerts].sort((a, b) => {
      const [p, q] = [order(a), order(b)];
      return p[0] - q[0] || p[1] - q[1] || String(p[2]).localeCompare(String(q[2]));
    });
    const items = sorted.map((alert) => {
      const li = document.createElement('li');
      li.className = 'alert';
      li.dataset.alertName = alert.name;
      li.dataset.state = alert.state;
      li.dataset.severity = alert.severity;
      li.innerHTML = '<p><span class="badge"></span> <strong></strong> <span class="severity"></span></p><p class="message"></p><p class="sub"></p>';
      const [head, message, detail] = li.children;
      head.children[0].textContent = alert.state;
      head.children[1].textContent = alert.name;
      head.children[2].textContent = alert.severity;
      message.textContent = alert.message;
      const metric = alert.metric || '';
      const value = typeof alert.value === 'number' ? fmt.metric(metric, alert.value) : 'no value';
      let about = `${metric} ${value}; alert when ${alert.comparison || 'at'} ${fmt.metric(metric, num(alert.threshold))}`;
      if (alert.since_ms && alert.state !== 'inactive') about += ' · ' + alert.state + ' since ' + fmt.time(alert.since_ms);
      detail.textContent = about;
      return li;
    });
    $('alerts').replaceChildren(...items);
    const count = (stateName) => alerts.filter((a) => a.state === stateName).length;
    const firing = count('firing');
    text('alerts-firing', fmt.int(firing));
    $('alerts-firing').dataset.level = firing ? 'firing' : 'ok';
    text('alerts-pending', fmt.int(count('pending')));
    text('alerts-summary', `${firing} firing · ${count('pending')} pending · ${count('resolved')} resolved · ${count('inactive')} inactive`);
    document.title = (firing ? `(${firing}) ` : '') + 'leanserve · dashboard';
  }

  // ---- controls ----
  for (const button of document.querySelectorAll('[data-window]')) {
    button.addEventListener('click', () => {
      state.windowS = Number(button.dataset.window);
      for (const b of document.querySelectorAll('[data-window]')) b.setAttribute('aria-pressed', String(b === button));
      if (state.latest) render();
    });
  }
  // Charts are drawn for their width: redraw when it changes (window resized, a
  // scrollbar came or went), at most once a frame.
  let chartWidth = 0;
  let redraw = 0;
  new ResizeObserver(() => {
    const width = $('chart-rps').clientWidth;
    if (width === chartWidth) return;
    chartWidth = width;
    cancelAnimationFrame(redraw);
    redraw = requestAnimationFrame(() => { if (state.latest) renderCharts(); });
  }).observe($('chart-rps'));

  tick();
})();
