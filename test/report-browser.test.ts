/**
 * Opens a generated report in real headless Chromium (Debian `chromium` driven by playwright-core):
 * no console errors, no network requests, the sample image and every SVG chart laid out with a
 * non-zero size; a screenshot is saved under the run folder (runs/test-report-browser/report.png,
 * kept after the test for inspection; runs/ is git-ignored).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../src/report/index.js';
import { makeFixtureRun } from './report-fixture.js';

const CHROMIUM = process.env.DPLENS_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

test('report renders in headless Chromium without errors, with sized images and charts', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    console.log(`# SKIP report-browser: chromium not installed at ${CHROMIUM} (apt-get install chromium, or set DPLENS_CHROMIUM)`);
    t.skip(`chromium not installed at ${CHROMIUM}`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const dir = makeFixtureRun({ withAudit: true, dir: resolve('runs', 'test-report-browser') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const path = await writeReport(dir);
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
    });
    const url = pathToFileURL(path).href;
    await page.goto(url, { waitUntil: 'load' });

    // Passed as source text: tsx's transpiled closures reference a helper (__name) absent in the page.
    const sizes = (await page.evaluate(`(() => {
      const box = (e) => { const r = e.getBoundingClientRect(); return { w: r.width, h: r.height }; };
      return {
        images: [...document.querySelectorAll('img')].map((img) => ({ ...box(img), natural: img.naturalWidth * img.naturalHeight, complete: img.complete })),
        charts: [...document.querySelectorAll('figure.chart svg')].map((s) => ({ ...box(s), paths: s.querySelectorAll('path').length })),
        title: document.title,
        h2: [...document.querySelectorAll('h2')].map((x) => x.textContent ?? ''),
      };
    })()`)) as {
      images: { w: number; h: number; natural: number; complete: boolean }[];
      charts: { w: number; h: number; paths: number }[];
      title: string;
      h2: string[];
    };
    assert.deepEqual(problems, [], 'no console errors or page errors');
    assert.deepEqual(requests, [], 'the report makes no network requests');
    assert.match(sizes.title, /^dplens report/);
    assert.ok(sizes.h2.some((x) => /What was protected/.test(x)));
    assert.equal(sizes.images.length, 1, 'one sample grid');
    for (const img of sizes.images) {
      assert.ok(img.complete && img.natural > 0, 'image decoded');
      assert.ok(img.w > 100 && img.h > 100, `image laid out at ${img.w}×${img.h}`);
    }
    assert.equal(sizes.charts.length, 4, 'loss, accuracy, ε and ROC charts');
    for (const c of sizes.charts) {
      assert.ok(c.w > 100 && c.h > 100, `chart laid out at ${c.w}×${c.h}`);
      assert.ok(c.paths > 0, 'chart has drawn paths');
    }
    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'screenshot written');
    console.log(`# report screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
});
