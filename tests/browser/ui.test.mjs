// ui.test.mjs - drives vigil's web UI in headless Chromium against a running
// daemon (UI_TEST_URL; tests/integration/test_browser.py starts one with the
// shared yolov8n as model `yolov8n`).  One browser serves every test, in
// order: detect on bus.jpg, live throughput on the Server page, upload /
// ready / unload on the Models page, phone and desktop layouts, and a
// keyboard-only flow.  Screenshots go to UI_TEST_ARTIFACTS.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, BASE_URL, SHARED, artifact, launch } from './browser.mjs';

const BUS = path.join(SHARED, 'images/bus.jpg');
const UPLOAD_MODEL = process.env.UI_TEST_UPLOAD_MODEL || path.join(SHARED, 'models/yolov8n.onnx');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
const skip = BASE_URL ? false : 'UI_TEST_URL is not set: run tests/integration/test_browser.py';

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

// The top 1280x1060 of the page as a PNG scaled to `width` pixels with 4 bits a channel (small enough to commit).
async function saveSmallScreenshot(page, file, width = 800) {
  const full = (await page.screenshot({ fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1060 } })).toString('base64');
  const small = await page.evaluate(async ([png, w]) => {
    const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${png}`)).blob());
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = Math.round((bitmap.height * w) / bitmap.width);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < pixels.data.length; i++) pixels.data[i] = Math.min(255, Math.round(pixels.data[i] / 16) * 16); // 4 bits a channel compresses far better
    ctx.putImageData(pixels, 0, 0);
    return canvas.toDataURL('image/png').split(',')[1];
  }, [full, width]);
  writeFileSync(file, Buffer.from(small, 'base64'));
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

async function openPage(page, name, width, height) {
  await page.setViewportSize({ width, height });
  await page.goto(`${BASE_URL}/#${name}`);
  await page.waitForSelector('body[data-ready="1"]');
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
      await page.screenshot({ path: artifact('server-desktop.png'), fullPage: true });
    } finally {
      sending = false;
      await load;
    }
  });

  test('models: upload a new version, see it become ready, then unload it', async () => {
    await openPage(page, 'models', DESKTOP.width, DESKTOP.height);
    await page.waitForSelector('#models-table tr[data-model="yolov8n"]');
    await page.fill('#upload-name', 'uploaded');
    await page.fill('#upload-version', '3');
    await page.setInputFiles('#upload-file', UPLOAD_MODEL);
    await page.click('#upload-run');
    const row = '#models-table tr[data-model="uploaded"]';
    await page.waitForSelector(`${row} .state-ready`, { timeout: 60000 });
    assert.equal(await page.textContent(`${row} .model-version`), '3');
    assert.equal(await page.getAttribute('#upload-progress', 'value'), '100');
    assert.match(await page.textContent('#upload-status'), /uploaded version 3 is READY/);
    await page.click('#details-uploaded');
    await page.waitForSelector('#model-details-body table');
    assert.match(await page.textContent('#model-details-body'), /images.*FP32.*\[1, 3, 640, 640\]/s);
    await page.screenshot({ path: artifact('models-desktop.png'), fullPage: true });
    await page.click('#unload-uploaded');
    await page.waitForSelector(`${row} .state-unavailable`, { timeout: 30000 });
    assert.ok(await page.isDisabled('#unload-uploaded'));
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
      for (const name of ['detect', 'models', 'server']) {
        await openPage(page, name, size.width, size.height);
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${name} at ${label} width scrolls sideways by ${overflow}px`);
        await page.screenshot({ path: artifact(`${name}-${label}.png`), fullPage: true });
      }
      await openPage(page, 'detect', size.width, size.height);
      const form = await page.locator('#detect-form').boundingBox();
      const canvas = await page.locator('#detect-canvas').boundingBox();
      if (label === 'phone') assert.ok(form.y + form.height <= canvas.y, 'phone: the controls stack above the image');
      else assert.ok(form.x + form.width <= canvas.x, 'desktop: the controls sit beside the image');
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
