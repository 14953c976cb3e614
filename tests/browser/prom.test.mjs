// prom.test.mjs - the Server page's metric arithmetic (web/js/prom.js),
// checked in Node without a browser.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { histogramQuantile, parseMetrics, rates, summarize } from '../../web/js/prom.js';

const scrape = (success, buckets, queue) => `# HELP vigil_inference_requests_total Requests.
# TYPE vigil_inference_requests_total counter
vigil_inference_requests_total{model="m",outcome="success"} ${success}
vigil_inference_requests_total{model="m",outcome="error"} 7
vigil_inference_total_seconds_bucket{model="m",le="0.1"} ${buckets[0]}
vigil_inference_total_seconds_bucket{model="m",le="0.5"} ${buckets[1]}
vigil_inference_total_seconds_bucket{model="m",le="+Inf"} ${buckets[2]}
vigil_inference_queue_length{model="m"} ${queue}
vigil_process_resident_memory_bytes 123
`;

test('parseMetrics reads names, labels (with escapes) and special values', () => {
  const s = parseMetrics('a_total{x="1",y="q\\"uote"} 3\n# c\nb +Inf\nc{le="-Inf"} NaN\nnot a metric line here\n');
  assert.equal(s.length, 3);
  assert.deepEqual(s[0], { name: 'a_total', labels: { x: '1', y: 'q"uote' }, value: 3 });
  assert.equal(s[1].value, Infinity);
  assert.ok(Number.isNaN(s[2].value));
});

test('histogramQuantile interpolates inside the bucket like Prometheus', () => {
  const buckets = [{ le: 0.1, count: 10 }, { le: 0.5, count: 30 }, { le: Infinity, count: 30 }];
  assert.ok(Math.abs(histogramQuantile(0.5, buckets) - 0.2) < 1e-12); // rank 15: 5/20 into (0.1, 0.5]
  assert.ok(Math.abs(histogramQuantile(0.25, buckets) - 0.075) < 1e-12);
  assert.equal(histogramQuantile(0.5, [{ le: 0.1, count: 0 }, { le: Infinity, count: 0 }]), null);
  assert.equal(histogramQuantile(0.99, [{ le: 0.1, count: 1 }, { le: Infinity, count: 5 }]), 0.1);
});

test('rates turn two scrapes into throughput, percentiles of the interval and queue length', () => {
  const a = summarize(parseMetrics(scrape(10, [5, 10, 10], 0)), 1000);
  const b = summarize(parseMetrics(scrape(30, [5, 30, 30], 3)), 3000);
  const first = rates(null, a).m;
  assert.equal(first.throughput, 0);
  assert.equal(first.p50, null);
  const r = rates(a, b).m;
  assert.equal(r.throughput, 10); // 20 successes in 2 s; errors are not throughput
  assert.ok(Math.abs(r.p50 - 0.3) < 1e-12); // all 20 new ones in (0.1, 0.5]
  assert.equal(r.queue, 3);
  assert.equal(r.total, 30);
});

test('rates survive a counter reset (server restart)', () => {
  const a = summarize(parseMetrics(scrape(100, [50, 100, 100], 0)), 0);
  const b = summarize(parseMetrics(scrape(4, [4, 4, 4], 0)), 1000);
  const r = rates(a, b).m;
  assert.equal(r.throughput, 4);
  assert.ok(r.p50 > 0 && r.p50 <= 0.1);
});
