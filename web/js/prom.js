// prom.js - reads Prometheus text exposition (what GET /metrics returns) and
// turns two successive scrapes into per-model rates: throughput, latency
// percentiles (from histogram bucket deltas, as histogram_quantile does) and
// queue length.  Pure functions with no DOM, so Node can test them.

const LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;

function unescapeLabel(value) {
  return value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
}

function parseValue(text) {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text); // NaN for "NaN" and for garbage
}

// Every sample: [{name, labels: {k: v}, value}]. Comments and bad lines are skipped.
export function parseMetrics(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(LABEL)) labels[l[1]] = unescapeLabel(l[2]);
    samples.push({ name: m[1], labels, value: parseValue(m[4]) });
  }
  return samples;
}

// A scrape condensed per model: {time, models: {name: {success, buckets: [{le, count}], queue}}}.
export function summarize(samples, time) {
  const models = {};
  const model = (name) => (models[name] ??= { success: 0, buckets: [], queue: 0 });
  for (const s of samples) {
    const name = s.labels.model;
    if (name === undefined) continue;
    if (s.name === 'vigil_inference_requests_total' && s.labels.outcome === 'success') model(name).success += s.value;
    else if (s.name === 'vigil_inference_total_seconds_bucket') model(name).buckets.push({ le: parseValue(s.labels.le), count: s.value });
    else if (s.name === 'vigil_inference_queue_length') model(name).queue = s.value;
  }
  for (const m of Object.values(models)) m.buckets.sort((a, b) => a.le - b.le);
  return { time, models };
}

// The q-quantile (0..1) of cumulative buckets [{le, count}] sorted by le,
// interpolating linearly inside the bucket like Prometheus; null without data.
export function histogramQuantile(q, buckets) {
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1].count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe; // beyond the last finite bound: its bound is the best we know
      const inBucket = b.count - prevCount;
      const fraction = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return prevLe + (b.le - prevLe) * fraction;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

// Bucket counts of cur minus prev (matched by bound); a counter reset counts from zero.
function bucketDelta(prev, cur) {
  const before = new Map((prev || []).map((b) => [b.le, b.count]));
  const reset = cur.some((b) => b.count < (before.get(b.le) ?? 0));
  return cur.map((b) => ({ le: b.le, count: reset ? b.count : b.count - (before.get(b.le) ?? 0) }));
}

// Per-model rates between two summaries:
// {name: {throughput (req/s), p50, p99 (seconds or null when idle), queue, total}}.
export function rates(prev, cur) {
  const out = {};
  const dt = prev ? (cur.time - prev.time) / 1000 : 0;
  for (const [name, m] of Object.entries(cur.models)) {
    const p = prev?.models[name];
    let done = p ? m.success - p.success : 0;
    if (done < 0) done = m.success; // restarted server
    const delta = p ? bucketDelta(p.buckets, m.buckets) : [];
    out[name] = {
      throughput: dt > 0 ? done / dt : 0,
      p50: histogramQuantile(0.5, delta),
      p99: histogramQuantile(0.99, delta),
      queue: m.queue,
      total: m.success,
    };
  }
  return out;
}
