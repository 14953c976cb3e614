// browser.mjs - shared set-up for the browser tests: one headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core from tools/node;
// no browser is ever downloaded), the server's URL, the shared data, and the
// folder where screenshots go.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(ROOT, 'tools/node/package.json'));

export const BASE_URL = process.env.UI_TEST_URL || '';
export const SHARED = process.env.VIGIL_SHARED_DIR || path.join(ROOT, '../shared');
export const ARTIFACTS = process.env.UI_TEST_ARTIFACTS || path.join(ROOT, 'build/browser-artifacts');
export const CHROMIUM = process.env.UI_TEST_CHROMIUM || '/usr/bin/chromium';

export function loadPlaywright() {
  try {
    return require('playwright-core');
  } catch (e) {
    throw new Error(`playwright-core is missing: run 'npm install --ignore-scripts' in tools/node (${e.message})`);
  }
}

// Launches Chromium with a fresh profile (playwright wants --user-data-dir
// as launchPersistentContext's argument); returns {context, close}.
export async function launch({ width = 1280, height = 800 } = {}) {
  const { chromium } = loadPlaywright();
  const profile = mkdtempSync(path.join(tmpdir(), 'vigil-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// launch() and a first tab whose uncaught errors are collected in pageErrors.
export async function launchTab(size) {
  const ui = await launch(size);
  const page = await ui.context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return { ui, page, pageErrors };
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

// The top 1280x1060 of the page as a PNG scaled to `width` pixels with 4 bits a channel (small enough to commit).
export async function saveSmallScreenshot(page, file, width = 800) {
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
