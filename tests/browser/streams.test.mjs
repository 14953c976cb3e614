// streams.test.mjs - the Streams page (web/js/streams.js) in headless
// Chromium against a daemon that runs a video stream:
// tests/integration/test_streams_page.py starts one with the shared yolov8n
// and a stream UI_TEST_STREAM on a looping clip of bus.jpg (made with
// ffmpeg), and passes the clip's first frame as decoded by ffmpeg
// (UI_TEST_STREAM_RAW, PNG).  Checked: the stream's tile shows its live
// view, and that view is the annotated frame (it differs from the raw frame
// in thousands of strongly coloured pixels: the boxes and their labels)
// while the stream reports detected frames and events; a stream added
// through the page's form appears (also in GET /api/v1/streams) and its
// Remove button takes it away (then GET answers 404).  Skipped without
// UI_TEST_STREAM, so `node --test tests/browser/` alone runs the rest.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { BASE_URL, artifact, launchTab, saveSmallScreenshot } from './browser.mjs';

const STREAM = process.env.UI_TEST_STREAM || '';
const RAW = process.env.UI_TEST_STREAM_RAW || '';
const CLIP = process.env.UI_TEST_STREAM_CLIP || '';
const MODEL = process.env.UI_TEST_STREAM_MODEL || 'yolov8n';
const ADDED = 'ui-added-stream';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const REFRESH_SETTLE_MS = 1500; // the page refreshes every second
const skip = BASE_URL && STREAM && RAW && CLIP ? false
  : 'UI_TEST_URL, UI_TEST_STREAM, UI_TEST_STREAM_RAW and UI_TEST_STREAM_CLIP are not all set: run tests/integration/test_streams_page.py';

async function api(path) {
  const response = await fetch(`${BASE_URL}${path}`);
  assert.ok(response.ok, `GET ${path}: ${response.status}`);
  return response.json();
}

async function until(what, check, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Pixels of the tile's current frame that differ from the raw frame by more
// than 100 in some channel (JPEG twice over stays well below that; a box
// line or a label's fill does not), and the frame's size.
async function strongDifferences(page, selector, rawPng) {
  return page.evaluate(async ([sel, png]) => {
    const img = document.querySelector(sel);
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    const pixels = (source) => {
      const canvas = new OffscreenCanvas(w, h);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(source, 0, 0, w, h);
      return ctx.getImageData(0, 0, w, h).data;
    };
    const raw = await createImageBitmap(await (await fetch(`data:image/png;base64,${png}`)).blob());
    if (raw.width !== w || raw.height !== h) return { w, h, rawW: raw.width, rawH: raw.height, strong: -1 };
    const a = pixels(img);
    const b = pixels(raw);
    let strong = 0;
    for (let i = 0; i < a.length; i += 4) {
      const d = Math.max(Math.abs(a[i] - b[i]), Math.abs(a[i + 1] - b[i + 1]), Math.abs(a[i + 2] - b[i + 2]));
      if (d > 100) strong++;
    }
    return { w, h, strong };
  }, [selector, rawPng]);
}

describe('streams page', { skip }, () => {
  let ui;
  let page;
  let pageErrors;

  before(async () => {
    ({ ui, page, pageErrors } = await launchTab(DESKTOP));
    await page.goto(`${BASE_URL}/#streams`);
    await page.waitForSelector('body[data-ready="1"]');
  });

  after(async () => {
    if (ui) await ui.close();
    await fetch(`${BASE_URL}/api/v1/streams/${ADDED}`, { method: 'DELETE' }).catch(() => {});
  });

  test('a live tile shows the stream with its boxes, its rates and its events', async () => {
    const tile = `[data-stream="${STREAM}"]`;
    const img = `${tile} img`;
    await page.waitForSelector(img);
    assert.equal(await page.getAttribute(img, 'src'), `/api/v1/streams/${STREAM}/live`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.naturalWidth > 0, img, { timeout: 60000 });
    const stream = await until('detected frames', async () => {
      const { streams } = await api('/api/v1/streams');
      const s = streams.find((x) => x.name === STREAM);
      return s && s.stats && s.stats.frames_detected > 0 ? s : null;
    });
    assert.equal(stream.model, MODEL);
    const diff = await until('boxes in the live view', async () => {
      const d = await strongDifferences(page, img, readFileSync(RAW).toString('base64'));
      assert.notEqual(d.strong, -1, `the live frame is ${d.w}x${d.h}, the raw frame ${d.rawW}x${d.rawH}`);
      return d.strong > 0.002 * d.w * d.h ? d : null;
    }, 30000);
    console.log(`# live view ${diff.w}x${diff.h}: ${diff.strong} pixels differ from the raw frame by > 100`);
    await page.waitForSelector(`${tile} .state-running`);
    await page.waitForFunction((sel) => /^[1-9]|^0\.[1-9]/.test(document.querySelector(sel)?.textContent || ''),
      `${tile} [data-field="detect"]`, { timeout: 30000 });
    await page.waitForSelector(`${tile} .tile-events li.event`, { timeout: 60000 });
    const events = await page.$$eval(`${tile} .tile-events li.event`, (li) => li.map((x) => x.textContent));
    assert.ok(events.some((t) => /\b(bus|person)\b/.test(t)), `events name the bus or a person: ${events.join(' | ')}`);
    await page.screenshot({ path: artifact('streams-desktop.png'), fullPage: true });
    if (process.env.UI_TEST_DOCS_STREAMS_SCREENSHOT) { // for the docs: the stream settled, not its first second
      await until('a settled stream', async () => {
        const { streams } = await api('/api/v1/streams');
        return (streams.find((x) => x.name === STREAM)?.stats?.frames_detected ?? 0) >= 40;
      }, 120000);
      await page.waitForTimeout(REFRESH_SETTLE_MS);
      await saveSmallScreenshot(page, process.env.UI_TEST_DOCS_STREAMS_SCREENSHOT);
    }
  });

  test('phone width: the tile fits, nothing scrolls sideways', async () => {
    await page.setViewportSize(PHONE);
    const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, view: innerWidth }));
    assert.ok(widths.page <= widths.view, `the page is ${widths.page} px wide in a ${widths.view} px view`);
    const tileBox = await page.locator(`[data-stream="${STREAM}"]`).boundingBox();
    assert.ok(tileBox.x >= 0 && tileBox.x + tileBox.width <= PHONE.width, 'the tile lies inside the viewport');
    await page.screenshot({ path: artifact('streams-phone.png'), fullPage: true });
    await page.setViewportSize(DESKTOP);
  });

  test('a stream added from the form appears; its Remove button takes it away', async () => {
    await page.waitForSelector(`#stream-model option[value="${MODEL}"]`, { state: 'attached' });
    await page.fill('#stream-name', ADDED);
    await page.fill('#stream-url', CLIP);
    await page.selectOption('#stream-model', MODEL);
    await page.fill('#stream-fps', '2');
    await page.click('#stream-add');
    await page.waitForSelector(`[data-stream="${ADDED}"]`);
    assert.match(await page.textContent('#stream-status'), new RegExp(`Added ${ADDED}`));
    const { streams } = await api('/api/v1/streams');
    const added = streams.find((s) => s.name === ADDED);
    assert.ok(added, 'the new stream is in GET /api/v1/streams');
    assert.equal(added.url, CLIP);
    assert.equal(added.detect_fps, 2);
    await page.click(`#remove-${ADDED}`);
    await page.waitForSelector(`[data-stream="${ADDED}"]`, { state: 'detached' });
    assert.equal((await fetch(`${BASE_URL}/api/v1/streams/${ADDED}`)).status, 404);
    assert.ok(await page.isHidden('#streams-error'));
    assert.deepEqual(pageErrors, []);
  });
});
