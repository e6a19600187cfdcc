// Benchmark (not a test): page load -> first suggestion with the model cached, per-keystroke
// latency while typing, and raw model time per title. Uses the demo server and Debian chromium.
// Usage: node scripts/bench.mjs [--runs 5]
import { cpus } from 'node:os';
import { openBrowser, requireModel, startServer } from '../test/helpers.mjs';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const TITLE = 'Rockmantra Ceramic Coffee Mug 350 ml';
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: s[0], p50: q(0.5), p90: q(0.9), max: s[s.length - 1] };
};
const fmt = (o) => Object.entries(o).map(([k, v]) => `${k}=${typeof v === 'number' && k !== 'n' ? v.toFixed(0) : v}`).join(' ');

requireModel();
const server = await startServer();
const browser = await openBrowser();
const { context } = browser;
try {
  // Cold: first visit downloads and caches the model.
  const page = await context.newPage();
  let t0 = Date.now();
  await page.goto(server.url);
  await page.waitForFunction(() => document.documentElement.dataset.model === 'ready', null, { timeout: 300_000 });
  console.log(`cold first visit (download + verify + cache), load -> model ready: ${Date.now() - t0} ms`);
  await page.evaluate(() => navigator.serviceWorker.ready);

  // Warm: page load -> first suggestion, model from Cache Storage.
  const warm = [];
  const ready = [];
  for (let i = 0; i < runs; i++) {
    await page.goto(server.url);
    await page.fill('#title', TITLE); // as soon as the page is interactive
    await page.waitForFunction((t) => document.getElementById('picker').dataset.query === t && document.querySelector('#picker [role=option]'), TITLE, { timeout: 120_000, polling: 'raf' });
    warm.push(await page.evaluate(() => performance.now()));
    ready.push(await page.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd));
  }
  console.log(`warm page load -> first suggestion (model cached): ${fmt(stats(warm))} ms`);
  console.log(`  (DOMContentLoaded at ${fmt(stats(ready))} ms)`);

  // Per keystroke: time from the input event to the list showing that prefix.
  await page.fill('#title', '');
  await page.focus('#title');
  await page.evaluate(() => {
    window.__t = { input: new Map(), lat: [] };
    const input = document.getElementById('title');
    const picker = document.getElementById('picker');
    input.addEventListener('input', () => window.__t.input.set(input.value, performance.now()));
    new MutationObserver(() => {
      const t = window.__t.input.get(picker.dataset.query);
      if (t !== undefined) window.__t.lat.push(performance.now() - t);
    }).observe(picker, { attributeFilter: ['data-query'] });
  });
  for (const delay of [250, 60]) {
    await page.evaluate(() => (window.__t.lat = []));
    await page.fill('#title', '');
    await page.keyboard.type(TITLE, { delay });
    await page.waitForFunction((t) => document.getElementById('picker').dataset.query === t, TITLE);
    const lat = await page.evaluate(() => window.__t.lat);
    console.log(`keystroke -> updated list, typing every ${delay} ms: ${fmt(stats(lat))} ms (${lat.length} of ${TITLE.length} keystrokes rendered; the rest were superseded)`);
  }

  // Raw model time inside the worker.
  const raw = await page.evaluate(async () => {
    const c = document.getElementById('picker').classifier;
    const titles = ['mug', 'Ceramic coffee mug', 'Rockmantra Ceramic Coffee Mug 350 ml', "Nike Air Zoom Pegasus 39 men's running shoe, size 10, black and white, breathable mesh upper"];
    const out = {};
    for (const t of titles) {
      const xs = [];
      for (let i = 0; i < 5; i++) xs.push((await c.suggest(t, { group: null })).meta.elapsedMs);
      out[t] = xs.sort((a, b) => a - b)[2];
    }
    return out;
  });
  for (const [t, ms] of Object.entries(raw)) console.log(`model time (median of 5) ${ms.toFixed(1)} ms  [${t.length} chars] ${t}`);
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, chromium headless, wasm single-threaded (the package picks the relaxed SIMD runtime in chromium)`);
} finally {
  await browser.close();
  await server.stop();
}
