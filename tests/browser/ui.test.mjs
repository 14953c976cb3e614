// ui.test.mjs - drives vigil's web UI in headless Chromium against a running
// daemon (UI_TEST_URL; tests/integration/test_browser.py starts one with the
// shared yolov8n as model `yolov8n`).  One browser serves every test, in
// order: detect on bus.jpg, live throughput on the Server page, upload /
// ready / unload on the Models page (then the uploaded model is removed
// again), phone and desktop layouts (label boxes, table cells and chart
// legends inside the viewport), and a keyboard-only flow.  Screenshots go to
// UI_TEST_ARTIFACTS.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, BASE_URL, SHARED, artifact, launch, saveSmallScreenshot } from './browser.mjs';

const BUS = path.join(SHARED, 'images/bus.jpg');
const UPLOAD_MODEL = process.env.UI_TEST_UPLOAD_MODEL || path.join(SHARED, 'models/yolov8n.onnx');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
const skip = BASE_URL ? false : 'UI_TEST_URL is not set: run tests/integration/test_browser.py';
// The server's model repository (its --models folder).  The upload test adds a
// model there; the API can unload it but not delete it, so the test removes its
// folder itself, and runs only when it knows where that folder is.
const REPOSITORY = process.env.UI_TEST_REPOSITORY || '';
const UPLOAD_NAME = 'ui-test-upload';
const UPLOAD_VERSION = '3';
const skipUpload = REPOSITORY ? false
  : 'UI_TEST_REPOSITORY is not set: the test could not remove the model it uploads (set it to the server\'s --models folder)';
// Model names that the layout test adds to /metrics: long ones, one with no place to break.
const LONG_NAMES = ['a-detector-with-a-rather-long-model-name', 'another-detector-with-a-long-name.v2',
  'model_name_without_any_break_opportunity_0123456789_abcdefghij'];

// Presses Tab until the element with `id` has focus; returns the ids passed on the way.
async function tabTo(page, id, limit = 30) {
  const seen = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const now = await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    seen.push(now);
    if (now === id) return seen;
  }
  throw new Error(`Tab never reached #${id}; focus went through ${seen.join(' ')}`);
}

// Enter on the focused file input opens the chooser.  Chromium now and then
// drops the activation when the input became visible only just before (its
// guard against click-jacking), so a second press is allowed, as a user would.
async function pressForFileChooser(page) {
  // Chromium sometimes drops the activation of a file input that has only just
  // appeared or been focused; both Enter and Space are keyboard ways to open it.
  const keys = ['Enter', 'Space', 'Enter', 'Space', 'Enter'];
  for (let attempt = 0; ; attempt++) {
    await page.waitForTimeout(600);
    const chooser = page.waitForEvent('filechooser', { timeout: 5000 });
    await page.keyboard.press(keys[attempt]);
    try {
      return await chooser;
    } catch (e) {
      if (attempt === keys.length - 1) throw e;
      console.log(`# ${keys[attempt]} on ${await page.evaluate(() => document.activeElement?.id)} opened no chooser; again`);
    }
  }
}


// Drops a file on the element as a drag from the desktop would.
async function dropFile(page, selector, file, type) {
  const transfer = await page.evaluateHandle(([data, name, mime]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: mime }));
    return dt;
  }, [readFileSync(file).toString('base64'), path.basename(file), type]);
  await page.dispatchEvent(selector, 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent(selector, 'drop', { dataTransfer: transfer });
}

async function detectionRows(page) {
  return page.$$eval('#detect-table tbody tr', (rows) => rows.map((r) => ({
    name: r.querySelector('.class-name').textContent,
    box: r.cells[3].textContent.split(',').map(Number),
  })));
}

// Loads the UI afresh (not just a new hash: nothing left from the last test) on the page `name`.
async function openPage(page, name, width, height) {
  await page.setViewportSize({ width, height });
  await page.goto('about:blank');
  await page.goto(`${BASE_URL}/#${name}`);
  await page.waitForSelector('body[data-ready="1"]');
}

// Unloads the uploaded model through the API, waits until it is no longer
// loaded, then removes its folder from the repository (there is no delete in
// the API).  Safe to call when the upload never happened.
async function removeUploaded(folder) {
  const post = await fetch(`${BASE_URL}/api/v1/models/unload`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: UPLOAD_NAME }),
  });
  await post.arrayBuffer();
  for (let i = 0; i < 300; i++) {
    const { models } = await (await fetch(`${BASE_URL}/api/v1/models`)).json();
    const m = models.find((x) => x.name === UPLOAD_NAME);
    if (!m || !['READY', 'LOADING', 'UNLOADING'].includes(m.state)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(folder, { recursive: true, force: true });
}

// Problems with the table cells of the shown page: each must lie inside the
// viewport, or inside a container that scrolls sideways (overflow auto or
// scroll, and wider content than its box) which itself lies in the viewport.
async function tableProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const vw = document.documentElement.clientWidth;
    const within = (r, left, right) => r.left >= left - 0.5 && r.right <= right + 0.5;
    const scroller = (el) => {
      for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
        const o = getComputedStyle(a).overflowX;
        if ((o === 'auto' || o === 'scroll') && a.scrollWidth > a.clientWidth) return a;
      }
      return null;
    };
    let cells = 0;
    for (const cell of document.querySelectorAll('main table th, main table td')) {
      const r = cell.getBoundingClientRect();
      if (!(r.width > 0 && r.height > 0) || !cell.checkVisibility()) continue;
      cells++;
      const name = `${cell.closest('table').id || 'table'} cell "${cell.textContent.trim().slice(0, 40)}"`;
      const s = scroller(cell);
      if (s) {
        const sr = s.getBoundingClientRect();
        const left = sr.left - s.scrollLeft;
        if (!within(sr, 0, vw)) problems.push(`${name}: its scrolling container spans x ${sr.left}..${sr.right}, outside 0..${vw}`);
        if (!within(r, left, left + s.scrollWidth)) problems.push(`${name}: x ${r.left}..${r.right} is outside its scrolling container`);
      } else if (!within(r, 0, vw)) {
        problems.push(`${name}: x ${r.left}..${r.right} is outside the viewport 0..${vw}`);
      }
    }
    if (!cells) problems.push('no table cell is shown');
    return problems;
  });
}

// Problems with the label boxes the Detect page drew on its canvas, from the
// positions it exposes (data-labels, canvas pixels): each inside the image,
// inside the viewport once scaled as shown, and not drawn over (its top
// padding row, above the text, is all in its own colour).
async function labelProblems(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('detect-canvas');
    if (canvas.dataset.labels === undefined) return ['the canvas does not expose its label boxes (data-labels)'];
    const labels = JSON.parse(canvas.dataset.labels);
    const problems = [];
    if (labels.length !== Number(canvas.dataset.boxes)) problems.push(`${labels.length} labels for ${canvas.dataset.boxes} boxes`);
    const vw = document.documentElement.clientWidth;
    const r = canvas.getBoundingClientRect(); // the image is scaled to fit this box and centred (object-fit: contain)
    const scale = Math.min(r.width / canvas.width, r.height / canvas.height);
    const ox = r.left + (r.width - canvas.width * scale) / 2;
    const ctx = canvas.getContext('2d');
    for (const l of labels) {
      const name = `label "${l.text.slice(0, 30)}" at ${l.x},${l.y} ${l.w}x${l.h}`;
      if (l.x < 0 || l.y < 0 || l.x + l.w > canvas.width || l.y + l.h > canvas.height) {
        problems.push(`${name} is not inside the ${canvas.width}x${canvas.height} image`);
      }
      const left = ox + l.x * scale;
      const right = ox + (l.x + l.w) * scale;
      if (left < -0.5 || right > vw + 0.5) problems.push(`${name} is shown at x ${left}..${right}, outside the viewport 0..${vw}`);
      const [wr, wg, wb] = [1, 3, 5].map((i) => parseInt(l.color.slice(i, i + 2), 16));
      const x0 = Math.max(0, Math.ceil(l.x) + 1);
      const x1 = Math.min(canvas.width, Math.floor(l.x + l.w) - 1);
      const y = Math.round(l.y) + 1;
      if (x1 > x0 && y >= 0 && y < canvas.height) {
        const row = ctx.getImageData(x0, y, x1 - x0, 1).data;
        for (let i = 0; i < row.length; i += 4) {
          if (Math.max(Math.abs(row[i] - wr), Math.abs(row[i + 1] - wg), Math.abs(row[i + 2] - wb)) > 24) {
            problems.push(`${name} is drawn over at x ${x0 + i / 4} (rgb ${row[i]},${row[i + 1]},${row[i + 2]}, not ${l.color})`);
            break;
          }
        }
      }
    }
    return problems;
  });
}

// Problems with the legends of the Server page's charts: every model listed,
// the text fully visible (nothing cut: scrollWidth <= clientWidth) and every
// entry inside its chart's box and the viewport.
async function legendProblems(page, names) {
  return page.evaluate((wanted) => {
    const problems = [];
    const vw = document.documentElement.clientWidth;
    const figures = [...document.querySelectorAll('#page-server .charts figure')];
    if (!figures.length) problems.push('no chart is shown');
    for (const figure of figures) {
      const chart = figure.querySelector('canvas').id;
      const legend = figure.querySelector('.legend');
      if (!legend) {
        problems.push(`${chart} has no legend outside the canvas`);
        continue;
      }
      const entries = [...legend.querySelectorAll('li')];
      const text = entries.map((e) => e.textContent).join(' | ');
      for (const n of wanted) if (!text.includes(n)) problems.push(`${chart}'s legend lacks ${n} (${text})`);
      if (legend.scrollWidth > legend.clientWidth) problems.push(`${chart}'s legend is cut: scrollWidth ${legend.scrollWidth} > clientWidth ${legend.clientWidth}`);
      const box = figure.getBoundingClientRect();
      for (const e of entries) {
        const r = e.getBoundingClientRect();
        if (e.scrollWidth > e.clientWidth) problems.push(`${chart}'s legend entry "${e.textContent}" is cut`);
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) {
          problems.push(`${chart}'s legend entry "${e.textContent}" lies outside its chart's box`);
        }
        if (r.left < -0.5 || r.right > vw + 0.5) problems.push(`${chart}'s legend entry "${e.textContent}" lies outside the viewport`);
      }
    }
    return problems;
  }, names);
}

// A detect answer with labels that test the edges: a box in the top-right
// corner, one in the bottom-right corner, one at the left edge, and a class
// name longer than the image is wide.  Boxes are in the image's pixels.
function edgeDetections(width, height) {
  const det = (id, name, score, box) => ({ class_id: id, class_name: name, score, box });
  return {
    image: 'upload', width, height, model: 'yolov8n',
    detections: [
      det(0, 'person', 0.93, [width - 40, 0, width, 80]),
      det(2, 'traffic light', 0.88, [width - 30, height - 30, width, height]),
      det(5, 'bus', 0.71, [0, height / 2, 20, height / 2 + 40]),
      det(7, `a class name much longer than the image is wide ${'x'.repeat(80)}`, 0.5, [width / 2, height / 4, width / 2 + 10, height / 4 + 10]),
    ],
    timing_ms: { decode: 1, letterbox: 1, inference: 1, postprocess: 1, total: 4 },
  };
}

const METRICS_URL = (url) => url.pathname === '/metrics';

// Adds the LONG_NAMES models to the page's /metrics answers (they served a
// few requests and have nothing queued), so that the charts' legends are long.
async function addLongModelNames(page) {
  let served = 0;
  await page.route(METRICS_URL, async (route) => {
    const response = await route.fetch();
    served += 1;
    const extra = LONG_NAMES.map((n, i) => `vigil_inference_requests_total{model="${n}",outcome="success"} ${served * (i + 1)}\n`
      + `vigil_inference_queue_length{model="${n}"} ${i}\n`).join('');
    await route.fulfill({ response, body: `${await response.text()}${extra}` });
  });
}

describe('vigil web UI', { skip }, () => {
  let ui;
  let page;
  const pageErrors = [];

  before(async () => {
    ui = await launch(DESKTOP);
    page = await ui.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    console.log(`# screenshots in ${ARTIFACTS}`);
  });

  after(async () => {
    await ui?.close();
    assert.deepEqual(pageErrors, [], 'the page threw JavaScript errors');
  });

  test('detect: bus.jpg dropped on the page shows five boxes on the canvas and five rows', async () => {
    await openPage(page, 'detect', DESKTOP.width, DESKTOP.height);
    await page.waitForSelector('#detect-model option[value="yolov8n"]', { state: 'attached' });
    await page.selectOption('#detect-model', 'yolov8n');
    await dropFile(page, '#drop-zone', BUS, 'image/jpeg');
    await page.waitForSelector('#detect-canvas[data-boxes]:not([data-boxes="0"])', { timeout: 60000 });
    const rows = await detectionRows(page);
    assert.deepEqual(rows.map((r) => r.name).sort(), ['bus', 'person', 'person', 'person', 'person']);
    assert.equal(await page.getAttribute('#detect-canvas', 'data-boxes'), '5');
    // Each box's left edge, half-way down, has its class colour on the canvas.
    const edges = await page.evaluate(async (boxes) => {
      const { classColor } = await import('/ui/js/detect.js');
      const canvas = document.getElementById('detect-canvas');
      const ctx = canvas.getContext('2d');
      return boxes.map((b) => {
        const x = Math.min(canvas.width - 1, Math.max(0, Math.round(b.box[0])));
        const y = Math.round((b.box[1] + b.box[3]) / 2);
        const [r, g, bl] = ctx.getImageData(x, y, 1, 1).data;
        const want = classColor(b.name === 'bus' ? 5 : 0);
        const [wr, wg, wb] = [1, 3, 5].map((i) => parseInt(want.slice(i, i + 2), 16));
        return Math.max(Math.abs(r - wr), Math.abs(g - wg), Math.abs(bl - wb));
      });
    }, await detectionRows(page));
    assert.ok(edges.every((d) => d <= 24), `box edges not drawn in their class colour (max channel diffs ${edges})`);
    assert.deepEqual(await page.$$eval('#detect-timing tbody tr', (r) => r.map((x) => x.dataset.stage)),
      ['decode', 'letterbox', 'inference', 'postprocess', 'total']);
    await page.screenshot({ path: artifact('detect-desktop.png'), fullPage: true });
    if (process.env.UI_TEST_DOCS_SCREENSHOT) await saveSmallScreenshot(page, process.env.UI_TEST_DOCS_SCREENSHOT);
  });

  test('detect: the server answer to a bad request is shown plainly', async () => {
    await page.fill('#detect-conf', '7');
    await page.click('#detect-run');
    await page.waitForSelector('#detect-error:not([hidden])');
    assert.match(await page.textContent('#detect-error'), /^400: .*conf/);
    assert.equal(await page.getAttribute('#detect-canvas', 'data-boxes'), '0', 'no stale boxes next to an error');
    await page.fill('#detect-conf', '0.25');
    await page.press('#detect-conf', 'Enter'); // submits the form again
    await page.waitForSelector('#detect-canvas[data-boxes="5"]', { timeout: 60000 });
    assert.ok(await page.isHidden('#detect-error'));
  });

  test('server: device info and non-zero throughput after requests', async () => {
    await openPage(page, 'server', DESKTOP.width, DESKTOP.height);
    await page.waitForSelector('#server-table tr[data-model="yolov8n"]');
    assert.match(await page.textContent('#device-info'), /Cores/);
    const image = readFileSync(BUS);
    let sending = true;
    const load = (async () => { // keeps requests coming while the page scrapes
      while (sending) {
        const r = await fetch(`${BASE_URL}/api/v1/detect?model=yolov8n`, { method: 'POST', body: image });
        assert.equal(r.status, 200);
        await r.arrayBuffer();
      }
    })();
    try {
      await page.waitForFunction(() => {
        const cell = document.querySelector('#server-table tr[data-model="yolov8n"] [data-field="throughput"]');
        const p50 = document.querySelector('#server-table tr[data-model="yolov8n"] [data-field="p50"]');
        return cell && Number(cell.textContent) > 0 && Number(p50.textContent) > 0;
      }, null, { timeout: 45000 });
      await page.screenshot({ path: artifact('server-load.png'), fullPage: true });
    } finally {
      sending = false;
      await load;
    }
  });

  test('models: upload a new version, see it become ready, then unload it', { skip: skipUpload }, async () => {
    const folder = path.join(REPOSITORY, UPLOAD_NAME);
    assert.ok(!existsSync(folder), `${folder} exists already (left by an earlier run?): remove it first`);
    try {
      await openPage(page, 'models', DESKTOP.width, DESKTOP.height);
      await page.waitForSelector('#models-table tr[data-model="yolov8n"]');
      await page.fill('#upload-name', UPLOAD_NAME);
      await page.fill('#upload-version', UPLOAD_VERSION);
      await page.setInputFiles('#upload-file', UPLOAD_MODEL);
      await page.click('#upload-run');
      const row = `#models-table tr[data-model="${UPLOAD_NAME}"]`;
      await page.waitForSelector(`${row} .state-ready`, { timeout: 60000 });
      assert.ok(existsSync(path.join(folder, UPLOAD_VERSION, 'model.onnx')),
        `the upload is not in ${folder}: UI_TEST_REPOSITORY is not the server's model repository`);
      assert.equal(await page.textContent(`${row} .model-version`), UPLOAD_VERSION);
      assert.equal(await page.getAttribute('#upload-progress', 'value'), '100');
      assert.match(await page.textContent('#upload-status'), new RegExp(`${UPLOAD_NAME} version ${UPLOAD_VERSION} is READY`));
      await page.click(`#details-${UPLOAD_NAME}`);
      await page.waitForSelector('#model-details-body table');
      assert.match(await page.textContent('#model-details-body'), /images.*FP32.*\[1, 3, 640, 640\]/s);
      await page.screenshot({ path: artifact('models-upload.png'), fullPage: true });
      await page.click(`#unload-${UPLOAD_NAME}`);
      await page.waitForSelector(`${row} .state-unavailable`, { timeout: 30000 });
      assert.ok(await page.isDisabled(`#unload-${UPLOAD_NAME}`));
    } finally {
      await removeUploaded(folder); // even when the test failed: the next start must not load it
    }
    assert.ok(!existsSync(folder), `${folder} is still there`);
  });

  test('server: an edge server shows its link state and outbox depth', async () => {
    const tab = await ui.context.newPage();
    try {
      await tab.goto(`${BASE_URL}/#server`);
      await tab.waitForSelector('#device-info dt');
      assert.ok(await tab.isHidden('#edge-panel'), 'a server without an edge role shows no edge panel');
      const status = { // the edge's answer is simulated here: this server has no edge role
        role: 'edge', node_id: 'line-3', now_ms: 1765000060000,
        link: { state: 'offline', since_ms: 1765000000000, last_heartbeat_ms: 0, transitions: 3, broker_connected: false },
        outbox: { depth: 42, rows_by_priority: [2, 40, 0, 0], bytes_by_priority: [1, 2, 0, 0], parked: 0,
          oldest_pending_ms: 1765000000000, oldest_pending_age_ms: 60000, evicted_full: 1, expired_ttl: 0,
          refused_full: 0, acked: 7, quarantined: false },
        uploads: { sent_ok: 7, replayed: 0, retried: 2, parked: 0, failed_transport: 2, drain_rate_per_s: 0 },
      };
      await tab.route('**/api/v1/edge/status', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(status) }));
      await tab.reload();
      await tab.waitForSelector('#edge-panel:not([hidden])');
      const text = await tab.textContent('#edge-info');
      assert.match(text, /offline for 60 s, 3 transitions/);
      assert.match(text, /42 events \(p0 2, p1 40, p2 0, p3 0\)/);
    } finally {
      await tab.close();
    }
  });

  test('auth: a 401 asks for a token, kept for the tab and sent as Bearer on the retry', async () => {
    const tab = await ui.context.newPage();
    const seen = [];
    await tab.route('**/api/v1/models', async (route) => { // the server's auth is simulated here
      const auth = route.request().headers().authorization || '';
      seen.push(auth);
      if (auth === 'Bearer t0ken') await route.continue();
      else await route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"missing bearer token"}' });
    });
    await tab.goto(`${BASE_URL}/#models`);
    await tab.waitForSelector('#token-dialog[open]');
    assert.equal(await tab.textContent('#token-reason'), '401: missing bearer token');
    assert.equal(await tab.evaluate(() => document.activeElement.id), 'token-input');
    await tab.keyboard.type('t0ken');
    await tab.keyboard.press('Enter');
    await tab.waitForSelector('#models-table tr[data-model="yolov8n"]');
    assert.equal(seen[0], '');
    assert.ok(seen.includes('Bearer t0ken'));
    assert.equal(await tab.evaluate(() => sessionStorage.getItem('vigil.token')), 't0ken');
    assert.ok(await tab.isVisible('#token-button'));
    await tab.close();
  });

  test('layout: phone (390x844) and desktop (1280x800) widths', async () => {
    for (const [label, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
      const problems = [];
      // Detect: the chosen file's name is shown; the labels of bus.jpg's boxes, then of boxes at every edge, lie inside the image.
      await openPage(page, 'detect', size.width, size.height);
      await page.waitForSelector('#detect-model option[value="yolov8n"]', { state: 'attached' });
      await page.selectOption('#detect-model', 'yolov8n');
      await dropFile(page, '#drop-zone', BUS, 'image/jpeg');
      await page.waitForSelector('#detect-canvas[data-boxes="5"]', { timeout: 60000 });
      const fileName = page.locator('#page-detect').getByText('bus.jpg').first();
      if (!(await fileName.count()) || !(await fileName.isVisible())) problems.push('the chosen file\'s name (bus.jpg) is not shown');
      else {
        const box = await fileName.boundingBox();
        if (box.x < 0 || box.x + box.width > size.width) problems.push(`the file name is shown at x ${box.x}..${box.x + box.width}, outside the viewport`);
      }
      problems.push(...(await labelProblems(page)).map((p) => `detect, bus.jpg: ${p}`));
      problems.push(...(await tableProblems(page)).map((p) => `detect: ${p}`));
      await page.screenshot({ path: artifact(`detect-${label}.png`), fullPage: true });
      const detectUrl = (url) => url.pathname === '/api/v1/detect';
      await page.route(detectUrl, (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(edgeDetections(810, 1080)) }));
      try {
        await page.click('#detect-run');
        await page.waitForSelector('#detect-canvas[data-boxes="4"]');
        problems.push(...(await labelProblems(page)).map((p) => `detect, edge boxes: ${p}`));
        await page.screenshot({ path: artifact(`detect-edges-${label}.png`), fullPage: true });
      } finally {
        await page.unroute(detectUrl);
      }
      const form = await page.locator('#detect-form').boundingBox();
      const canvas = await page.locator('#detect-canvas').boundingBox();
      if (label === 'phone') assert.ok(form.y + form.height <= canvas.y, 'phone: the controls stack above the image');
      else assert.ok(form.x + form.width <= canvas.x, 'desktop: the controls sit beside the image');

      // Models: with a model's details open (their tables too).
      await openPage(page, 'models', size.width, size.height);
      await page.waitForSelector('#models-table tr[data-model="yolov8n"] .state-ready');
      await page.click('#details-yolov8n');
      await page.waitForSelector('#model-details-body table');
      problems.push(...(await tableProblems(page)).map((p) => `models: ${p}`));
      await page.screenshot({ path: artifact(`models-${label}.png`), fullPage: true });

      // Server: three more models with long names in /metrics, so that the table and the legends are long.
      await addLongModelNames(page);
      try {
        await openPage(page, 'server', size.width, size.height);
        await page.waitForSelector(`#server-table tr[data-model="${LONG_NAMES[2]}"]`);
        await page.waitForFunction(() => document.querySelector('#server-table tbody').rows.length >= 4);
        await page.waitForTimeout(1200); // one more scrape: the charts have two points
        problems.push(...(await tableProblems(page)).map((p) => `server: ${p}`));
        problems.push(...(await legendProblems(page, ['yolov8n', ...LONG_NAMES])).map((p) => `server: ${p}`));
        await page.screenshot({ path: artifact(`server-${label}.png`), fullPage: true });
      } finally {
        await page.unrouteAll({ behavior: 'wait' }); // a scrape in flight finishes before the route goes
      }

      for (const name of ['detect', 'models', 'server']) {
        await openPage(page, name, size.width, size.height);
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        if (overflow > 0) problems.push(`${name} scrolls sideways by ${overflow}px`);
      }
      assert.deepEqual(problems, [], `at ${label} width (${size.width}x${size.height})`);
    }
  });

  test('keyboard only: navigate, pick the image with Enter, detect, download the JSON', async () => {
    page = await ui.context.newPage(); // a fresh tab, as a keyboard user would open
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await openPage(page, 'detect', DESKTOP.width, DESKTOP.height);
    await tabTo(page, 'nav-server');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'a focused link shows a focus outline');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#page-server:not([hidden])');
    await page.keyboard.press('Shift+Tab'); // from the Server heading back into the navigation
    await tabTo(page, 'nav-detect');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#page-detect:not([hidden])');
    await tabTo(page, 'detect-file');
    await (await pressForFileChooser(page)).setFiles(BUS);
    await page.waitForSelector('#detect-canvas[data-boxes="5"]', { timeout: 60000 });
    await tabTo(page, 'detect-download-json');
    const download = page.waitForEvent('download');
    await page.keyboard.press('Enter');
    const saved = await (await download).path();
    const json = JSON.parse(readFileSync(saved, 'utf8'));
    assert.equal(json.detections.length, 5);
    assert.equal(json.model, 'yolov8n');
    await page.screenshot({ path: artifact('keyboard-detect.png'), fullPage: true });
  });
});
