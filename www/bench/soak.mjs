// Soak benchmark (not in CI): types keystrokes from a title corpus into the package in headless
// chromium (playwright-core, Debian chromium, as www/test does) and watches memory.
//
//   npm run bench:soak -- [--titles FILE] [--keystrokes 10000] [--every 1000] [--tabs 4] [--out FILE]
//
// FILE: a CSV with a `title` column (e.g. ../shared/data/flipkart/dev.csv) or one title a line;
// default tests/fixtures/titles.txt, so that it runs on a fresh clone. Needs www/dist (npm run build)
// and the model (scripts/setup.sh).
//
// Phase 1, one tab: each title typed one character at a time, a suggest call a keystroke in one
// group (a keystroke supersedes the one before), random gaps of 0-20 ms, and a random 10 % of the
// calls aborted by their own signal; at the end of a title the last answer is awaited (a pause).
// Midway the classifier is disposed and created again (the model from the cache). Every `every`
// keystrokes, after a forced GC: the worker's wasm memory (it only grows: a leak stays), the
// worker's and the page's JS heap (CDP Runtime.getHeapUsage), and the RSS of the renderer
// processes (SystemInfo.getProcessInfo, /proc/<pid>/status). Slopes: least squares, in bytes per
// 1,000 keystrokes, from the second sample on (the first includes the warm-up).
// Phase 2: `tabs` tabs of the same browser profile at once (one Cache Storage: the model comes from
// the cache in each), the same keystrokes shared out among them; the same samples.
// Prints a table and the JSON (also written to --out).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, parseCsv, requireModel, startServer } from '../test/helpers.mjs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const titlesPath = arg('--titles', join(ROOT, 'tests', 'fixtures', 'titles.txt'));
const keystrokes = Number(arg('--keystrokes', 10_000));
const every = Number(arg('--every', 1_000));
const tabs = Number(arg('--tabs', 4));
const out = arg('--out', null);
for (const [n, v] of [['--keystrokes', keystrokes], ['--every', every], ['--tabs', tabs]]) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${n} must be a positive integer, got ${v}`);
}

function readTitles(path) {
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  if (!path.endsWith('.csv')) return text.split('\n').map((t) => t.trim()).filter(Boolean);
  const [header, ...rows] = parseCsv(text);
  const col = header.indexOf('title');
  if (col < 0) throw new Error(`${path}: no "title" column (columns: ${header.join(', ')})`);
  return rows.map((r) => (r[col] ?? '').trim()).filter(Boolean);
}

/** Least-squares slope of ys over xs. */
function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) (num += (xs[i] - mx) * (ys[i] - my)), (den += (xs[i] - mx) ** 2);
  return num / den;
}

function rssOf(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null; // gone, or another machine's browser
  }
}

const titles = readTitles(titlesPath);
if (!titles.length) throw new Error(`${titlesPath}: no titles`);
requireModel();
const server = await startServer();
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
const context = await browser.newContext();
const browserCdp = await browser.newBrowserCDPSession();

/** Sum of the renderers' RSS (the workers run in them); null where /proc has none of them. */
async function rendererRss() {
  const { processInfo } = await browserCdp.send('SystemInfo.getProcessInfo');
  const sizes = processInfo.filter((p) => p.type === 'renderer').map((p) => rssOf(p.id));
  return sizes.some((s) => s === null) ? null : sizes.reduce((a, b) => a + b, 0);
}

/**
 * A tab with the package loaded, and a CDP session attached to it and to its workers (not
 * flattened: playwright's CDP sessions send to their own target only, the workers' messages go
 * through Target.sendMessageToTarget).
 */
async function openTab() {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url + 'favicon.svg');
  const cdp = await context.newCDPSession(page);
  const workers = new Set();
  const waiting = new Map();
  let next = 1;
  cdp.on('Target.attachedToTarget', (e) => e.targetInfo.type === 'worker' && workers.add(e.sessionId));
  cdp.on('Target.detachedFromTarget', (e) => workers.delete(e.sessionId));
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    const m = JSON.parse(e.message);
    const w = waiting.get(m.id);
    if (w) waiting.delete(m.id), w(m.result ?? null);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  const inWorker = (sessionId, method) =>
    new Promise((resolve) => {
      const id = next++;
      waiting.set(id, resolve);
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method }) }).catch(() => (waiting.delete(id), resolve(null)));
      setTimeout(() => waiting.delete(id) && resolve(null), 10_000);
    });
  await page.evaluate(async () => {
    const shelfwise = await import('/dist/index.js');
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const create = () => shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise' });
    const tab = (window.soak = { c: await create(), answered: 0, aborted: 0, superseded: 0, errors: [] });
    tab.reload = async () => {
      tab.c.dispose();
      tab.c = await create();
      return tab.c.info.fromCache;
    };
    tab.memory = () => tab.c[Symbol.for('shelfwise.memory')]();
    /** Types `titles` (their characters, `budget` in all at most); resolves the count typed. */
    tab.type = async (titles, budget) => {
      let typed = 0;
      for (const title of titles) {
        let last = null;
        for (let i = 1; i <= title.length && typed < budget; i++, typed++) {
          const ctl = new AbortController();
          const p = tab.c.suggest(title.slice(0, i), { signal: ctl.signal }).then(
            () => tab.answered++,
            (e) => {
              if (e.code !== 'ABORTED') tab.errors.push(`${e.code}: ${e.message}`);
              else if (ctl.signal.aborted) tab.aborted++;
              else tab.superseded++;
            },
          );
          if (Math.random() < 0.1) setTimeout(() => ctl.abort(), Math.random() * 10);
          last = p;
          await sleep(Math.random() * 20);
        }
        await last; // the seller pauses: the last prefix is answered (or aborted)
        if (typed >= budget) break;
      }
      return typed;
    };
  });
  const sample = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    for (const s of workers) await inWorker(s, 'HeapProfiler.collectGarbage');
    const page_ = await cdp.send('Runtime.getHeapUsage');
    let workerHeap = 0;
    for (const s of workers) workerHeap += (await inWorker(s, 'Runtime.getHeapUsage'))?.usedSize ?? NaN;
    const mem = await page.evaluate(() => window.soak.memory());
    return { wasmBytes: mem.wasmBytes, pageHeapBytes: page_.usedSize, workerHeapBytes: workers.size ? workerHeap : null };
  };
  return { page, errors, sample, close: () => page.close() };
}

/** One row of samples; `xs` in keystrokes. */
function summarize(samples) {
  const xs = samples.map((s) => s.keystrokes);
  const fit = (key) => {
    const pts = samples.slice(1).filter((s) => Number.isFinite(s[key]));
    const k = slope(
      pts.map((s) => s.keystrokes),
      pts.map((s) => s[key]),
    );
    return k === null ? null : Math.round(k * 1000);
  };
  return {
    keystrokes: xs.at(-1),
    slopeBytesPer1000: { wasm: fit('wasmBytes'), workerHeap: fit('workerHeapBytes'), pageHeap: fit('pageHeapBytes'), rendererRss: fit('rendererRssBytes') },
  };
}

const MB = (b) => (b === null || b === undefined || Number.isNaN(b) ? '-' : (b / 2 ** 20).toFixed(1));
function print(name, samples) {
  console.log(`\n${name}\n keystrokes  wasm MB  worker heap MB  page heap MB  renderer RSS MB`);
  for (const s of samples) {
    console.log(`${String(s.keystrokes).padStart(11)}  ${MB(s.wasmBytes).padStart(7)}  ${MB(s.workerHeapBytes).padStart(14)}  ${MB(s.pageHeapBytes).padStart(12)}  ${MB(s.rendererRssBytes).padStart(15)}`);
  }
}

const result = { titles: titlesPath, titleCount: titles.length, keystrokes, every, chromium: browser.version(), started: new Date().toISOString() };
let offset = 0; // where the next tab starts in the corpus
const slice = (n) => {
  // Enough titles for `n` keystrokes, from `offset` on, wrapping around the corpus.
  const picked = [];
  let chars = 0;
  while (chars < n) {
    const t = titles[offset++ % titles.length];
    picked.push(t);
    chars += t.length;
  }
  return picked;
};

try {
  // Phase 1: one tab, a reload midway.
  const tab = await openTab();
  const samples = [];
  const t0 = performance.now();
  let done = 0;
  let reloaded = null;
  samples.push({ keystrokes: 0, ...(await tab.sample()), rendererRssBytes: await rendererRss() });
  while (done < keystrokes) {
    const n = Math.min(every, keystrokes - done);
    done += await tab.page.evaluate(([ts, n]) => window.soak.type(ts, n), [slice(n), n]);
    if (reloaded === null && done >= keystrokes / 2) reloaded = { at: done, fromCache: await tab.page.evaluate(() => window.soak.reload()) };
    samples.push({ keystrokes: done, ...(await tab.sample()), rendererRssBytes: await rendererRss() });
  }
  const counts = await tab.page.evaluate(() => ({ answered: soak.answered, superseded: soak.superseded, aborted: soak.aborted, errors: soak.errors.slice(0, 5) }));
  print('one tab (reload at ' + reloaded?.at + ')', samples);
  result.oneTab = { seconds: Math.round((performance.now() - t0) / 100) / 10, reload: reloaded, ...counts, pageErrors: tab.errors, samples, ...summarize(samples) };
  await tab.close();

  // Phase 2: `tabs` tabs at once, one cache.
  const open = await Promise.all(Array.from({ length: tabs }, () => openTab()));
  const fromCache = await Promise.all(open.map((t) => t.page.evaluate(() => window.soak.c.info.fromCache)));
  const tabSamples = open.map(() => []);
  const rss = [];
  const t1 = performance.now();
  const share = Math.ceil(keystrokes / tabs);
  const step = Math.max(1, Math.round(every / tabs));
  let typed = 0;
  for (const [i, t] of open.entries()) tabSamples[i].push({ keystrokes: 0, ...(await t.sample()) });
  rss.push({ keystrokes: 0, rendererRssBytes: await rendererRss() });
  for (let k = 0; k < share; k += step) {
    const n = Math.min(step, share - k);
    const got = await Promise.all(open.map((t) => t.page.evaluate(([ts, n]) => window.soak.type(ts, n), [slice(n), n])));
    typed += got.reduce((a, b) => a + b, 0);
    for (const [i, t] of open.entries()) tabSamples[i].push({ keystrokes: k + n, ...(await t.sample()) });
    rss.push({ keystrokes: typed, rendererRssBytes: await rendererRss() });
  }
  const tabCounts = await Promise.all(open.map((t) => t.page.evaluate(() => ({ answered: soak.answered, superseded: soak.superseded, aborted: soak.aborted, errors: soak.errors.slice(0, 5) }))));
  tabSamples.forEach((s, i) => print(`tab ${i + 1} of ${tabs}`, s));
  print(`renderers, ${tabs} tabs`, rss);
  result.tabs = {
    count: tabs,
    seconds: Math.round((performance.now() - t1) / 100) / 10,
    fromCache,
    perTab: tabSamples.map((s, i) => ({ ...tabCounts[i], pageErrors: open[i].errors, samples: s, ...summarize(s) })),
    renderers: { samples: rss, ...summarize(rss) },
  };
  await Promise.all(open.map((t) => t.close()));
} finally {
  await browser.close();
  await server.stop();
}
const json = JSON.stringify(result, null, 1);
if (out) writeFileSync(out, json + '\n');
console.log('\n' + JSON.stringify({ oneTab: result.oneTab?.slopeBytesPer1000, tabs: result.tabs?.perTab.map((t) => t.slopeBytesPer1000), renderers: result.tabs?.renderers.slopeBytesPer1000 }));
console.log(json);
