// browser.mjs - shared set-up for the browser tests: one headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core from tools/node;
// no browser is ever downloaded), the server's URL, the shared data, and the
// folder where screenshots go.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
