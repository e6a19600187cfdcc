// `shelfwise eval --report`: the HTML file renders in Chromium (tables, three inline-SVG charts)
// and asks for nothing, neither on the network nor from disk beyond itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI, MODEL, ROOT, SHOTS, openBrowser } from './helpers.mjs';

test('eval --report writes a self-contained page that renders and requests nothing', async () => {
  assert.ok(existsSync(CLI), `build ${CLI} first (scripts/setup.sh)`);
  const dir = mkdtempSync(join(tmpdir(), 'shelfwise-report-'));
  const out = join(dir, 'report.html');
  const fixtures = join(ROOT, 'tests', 'fixtures');
  execFileSync(CLI, ['eval', '--model', MODEL, '--data', join(fixtures, 'synthetic_shop_test.csv'),
    '--baseline-train', join(fixtures, 'synthetic_shop_train.csv'), '--report', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  const browser = await openBrowser();
  try {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const url = pathToFileURL(out).href;
    await page.goto(url);
    const seen = await page.evaluate(() => ({
      charts: document.querySelectorAll('svg').length,
      lines: document.querySelectorAll('svg polyline').length,
      bars: document.querySelectorAll('svg rect[opacity]').length,
      headings: [...document.querySelectorAll('h2')].map((h) => h.textContent),
      scripts: document.querySelectorAll('script').length,
      categoryRows: document.querySelectorAll('.scroll tr').length - 1,
      firstMetric: document.querySelector('table tr:nth-child(2)').textContent,
    }));
    assert.equal(seen.charts, 3, 'typing curve, reliability diagram, abstaining');
    // Model and baseline while typing, and three lines against the abstain threshold.
    assert.equal(seen.lines, 5);
    assert.ok(seen.bars >= 1, 'the reliability diagram has bars');
    assert.deepEqual(seen.headings, ['Model and baseline', 'Accuracy per level', 'Per category (model, worst F1 first)', 'Most confused categories (model)']);
    assert.equal(seen.scripts, 0);
    assert.ok(seen.categoryRows > 0);
    assert.match(seen.firstMetric, /^acc@1/);
    assert.deepEqual(errors, []);
    assert.deepEqual([...new Set(browser.requests)], [url], 'the page loads nothing but itself');
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'report.png'), fullPage: true });
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
