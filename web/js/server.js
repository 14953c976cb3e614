// server.js - the Server page: device information and live charts of
// throughput, latency p50/p99 and queue length per model, computed here in
// the browser from successive /metrics scrapes (see prom.js), over a sliding
// window of a few seconds.  Scraping runs only while the page is shown.

import { getJson, labelCells, request, showError } from './api.js';
import { drawChart, renderLegend } from './chart.js';
import { parseMetrics, rates, summarize } from './prom.js';

const $ = (id) => document.getElementById(id);
const SCRAPE_MS = 1000;
const WINDOW_S = 120;
const KEY = '#6b7280'; // the latency legend's line-style entries
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#db2777', '#0891b2', '#4b5563'];

const RATE_WINDOW_MS = 5000;         // rates and percentiles over the last 5 s: smooth yet current
let timer = null;
let summaries = [];                  // recent scrapes, oldest first
const history = new Map();           // model -> [{t, throughput, p50, p99, queue}]

function fact(list, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.append(dt, dd);
}

function gib(bytes) {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

async function loadDevice() {
  const list = $('device-info');
  try {
    const d = await getJson('/api/v1/device/info');
    list.replaceChildren();
    fact(list, 'CPU', d.cpu?.model ?? '?');
    fact(list, 'Cores', String(d.cpu?.cores ?? '?'));
    const isa = Object.entries(d.cpu?.isa || {}).filter(([, on]) => on).map(([k]) => k);
    fact(list, 'ISA', isa.length ? isa.join(', ') : 'none reported');
    if (d.memory) fact(list, 'Memory', `${gib(d.memory.available_bytes)} available of ${gib(d.memory.total_bytes)}`);
    fact(list, 'Backends', (d.backends || []).map((b) => `${b.name}${b.available ? '' : ' (unavailable)'}`).join(', ') || 'none');
  } catch (e) {
    showError($('server-error'), `Cannot read the device information: ${e.message}`);
  }
}

function ms(seconds) {
  return seconds === null ? '—' : (seconds * 1000).toFixed(1);
}

function renderTable(now) {
  const body = $('server-table').tBodies[0];
  body.replaceChildren();
  for (const [name, r] of Object.entries(now)) {
    const tr = document.createElement('tr');
    tr.dataset.model = name;
    const cells = [name, r.throughput.toFixed(2), ms(r.p50), ms(r.p99), String(r.queue), String(r.total)];
    const keys = ['model', 'throughput', 'p50', 'p99', 'queue', 'total'];
    cells.forEach((text, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      td.textContent = text;
      td.dataset.field = keys[i];
      tr.append(td);
    });
    body.append(tr);
  }
  labelCells($('server-table'));
}

function renderCharts() {
  const now = Date.now();
  const names = [...history.keys()];
  const color = (name) => COLORS[names.indexOf(name) % COLORS.length];
  const series = (key, extra = {}) => names.map((name) => ({
    label: name, color: color(name), ...extra,
    points: history.get(name).map((p) => ({ t: p.t, v: p[key] })),
  }));
  const toMs = (list) => list.map((s) => ({ ...s, points: s.points.map((p) => ({ t: p.t, v: p.v === null ? null : p.v * 1000 })) }));
  drawChart($('chart-throughput'), series('throughput'), { now, windowSeconds: WINDOW_S });
  drawChart($('chart-latency'), [...toMs(series('p50')), ...toMs(series('p99', { dash: [5, 4] }))],
    { now, windowSeconds: WINDOW_S });
  drawChart($('chart-queue'), series('queue'), { now, windowSeconds: WINDOW_S });
  const models = names.map((name) => ({ label: name, color: color(name) }));
  renderLegend($('legend-throughput'), models);
  renderLegend($('legend-latency'), [...models, { label: 'p50', color: KEY }, { label: 'p99', color: KEY, dash: true }]);
  renderLegend($('legend-queue'), models);
}

// The edge-cloud panel (docs/EDGE.md): shown only by a server with an edge
// role; any other answers 404 and the panel stays hidden.
async function loadEdge() {
  const panel = $('edge-panel');
  let s;
  try {
    s = await getJson('/api/v1/edge/status');
  } catch {
    panel.hidden = true;
    return;
  }
  const list = $('edge-info');
  list.replaceChildren();
  fact(list, 'Role', `${s.role} (node ${s.node_id})`);
  if (s.link) {
    const since = s.link.since_ms ? ` for ${((s.now_ms - s.link.since_ms) / 1000).toFixed(0)} s` : '';
    fact(list, 'Link', `${s.link.state}${since}, ${s.link.transitions} transitions`);
  }
  if (s.outbox && s.outbox.rows_by_priority) {
    const rows = s.outbox.rows_by_priority.map((n, p) => `p${p} ${n}`).join(', ');
    fact(list, 'Outbox', `${s.outbox.depth} events (${rows})`);
    if (s.outbox.oldest_pending_age_ms) fact(list, 'Oldest pending', `${(s.outbox.oldest_pending_age_ms / 1000).toFixed(0)} s`);
    fact(list, 'Dropped', `${s.outbox.evicted_full} evicted, ${s.outbox.expired_ttl} expired, ${s.outbox.refused_full} refused`);
  }
  if (s.uploads) fact(list, 'Uploads', `${s.uploads.sent_ok} ok, ${s.uploads.retried} retried; drain ${s.uploads.drain_rate_per_s.toFixed(1)}/s`);
  panel.hidden = false;
}

async function scrape() {
  loadEdge();
  try {
    const text = await (await request('/metrics')).text();
    const current = summarize(parseMetrics(text), Date.now());
    // The base is the newest scrape at least RATE_WINDOW_MS old (else the oldest one).
    const older = summaries.filter((x) => x.time <= current.time - RATE_WINDOW_MS);
    const now = rates(older.length ? older[older.length - 1] : summaries[0] || null, current);
    summaries = [...summaries.slice(Math.max(0, older.length - 1)), current];
    for (const [name, r] of Object.entries(now)) {
      if (!history.has(name)) history.set(name, []);
      const points = history.get(name);
      points.push({ t: current.time, ...r });
      while (points.length && points[0].t < current.time - WINDOW_S * 1000 - 5000) points.shift();
    }
    renderTable(now);
    renderCharts();
    showError($('server-error'), '');
  } catch (e) {
    showError($('server-error'), `Cannot read /metrics: ${e.message}`);
  }
}

export function showServer() {
  $('scrape-interval').textContent = String(SCRAPE_MS / 1000);
  loadDevice();
  summaries = []; // a gap in scraping must not look like one long interval
  scrape();
  clearInterval(timer);
  timer = setInterval(scrape, SCRAPE_MS);
}

export function hideServer() {
  clearInterval(timer);
  timer = null;
}

window.addEventListener('resize', () => { if (timer) renderCharts(); });
