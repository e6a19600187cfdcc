// Side-by-side browser benchmark: shelfwise (wasm; f32, int8 and q4 model files) against
// transformers.js (onnxruntime-web wasm, all-MiniLM-L6-v2 int8 ONNX, feature extraction with mean
// pooling), in ONE headless Debian chromium, same origin, same machine, same titles.
//
//   npm run bench:compare -- [--model f32=path] [--model int8=path] [--model q4=path] [--no-simd128]
//                            [--titles 500] [--warmup 5] [--warm-runs 3] [--out bench-results/compare]
//                            [--no-transformers]
//
// Needs: www/dist (npm run build), chromium, models/flipkart-minilm/model.{f32,int8}.shelfwise (scripts/setup.sh,
// www/scripts/setup-bench.sh) and the transformers.js model files from
// www/scripts/setup-bench.sh (`npm run bench:compare` runs it first). A missing shelfwise model file
// is skipped with a note. One chromium with an on-disk profile; per engine, one after another:
//   cold   page load → first result in a new tab, after clearing the origin's HTTP cache and storage
//   warm   reload of that tab (both engines keep the model in Cache Storage; the wasm and JS come
//          from the HTTP cache after a 304 revalidation): page load → first result, median; for
//          shelfwise also when each load phase began (cache read, verify, ready), printed
//   bytes  sum of response body sizes of that page load's requests (worker requests included)
//   latency one title per call, sequential, after --warmup untimed calls: round trip page →
//          worker → page (p50/p95), and the engine's own time inside the worker (p50)
//   memory after the latency run: wasm linear memory of the engine's worker, JS heaps of page +
//          worker, and the renderer process's RSS (see MEMORY_NOTE)
// No request may leave the server's origin: chromium resolves no other host, and any request to
// another origin fails the run.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, WWW, fixtureTitles, parseCsv, startServer } from '../test/helpers.mjs';

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.lastIndexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const MODEL_DIR = join(ROOT, 'models', 'flipkart-minilm');
const variants = new Map([
  ['f32', join(MODEL_DIR, 'model.f32.shelfwise')],
  ['int8', join(MODEL_DIR, 'model.int8.shelfwise')],
  ['q4', join(MODEL_DIR, 'model.shelfwise')], // the shipped model
]);
argv.forEach((a, i) => {
  if (a !== '--model') return;
  const spec = argv[i + 1] ?? '';
  const eq = spec.indexOf('=');
  if (eq <= 0 || !/^[A-Za-z0-9_-]+$/.test(spec.slice(0, eq))) throw new Error(`--model wants name=path, got ${JSON.stringify(spec)}`);
  variants.set(spec.slice(0, eq), resolve(spec.slice(eq + 1))); // relative to the caller's cwd
});
const N_TITLES = Number(opt('--titles', 500));
const WARMUP = Number(opt('--warmup', 5));
const WARM_RUNS = Number(opt('--warm-runs', 3));
const OUT = resolve(opt('--out', join(WWW, 'bench-results', 'compare')));
const WITH_TJS = !argv.includes('--no-transformers');
const TJS_MODEL = join(ROOT, '.cache', 'bench', 'models', 'all-MiniLM-L6-v2-int8');
const DEV_CSV = join(ROOT, '..', 'shared', 'data', 'flipkart', 'dev.csv');

const MEMORY_NOTE =
  'measured after the latency run. wasm memory = byteLength of every WebAssembly.Memory of the engine\'s worker ' +
  '(linear memory: weights as loaded, activations, allocator slack; recorded by bench/wasm-spy.js). ' +
  'JS heap = performance.measureUserAgentSpecificMemory() of page + worker (crossOriginIsolated page, ' +
  'ForceEagerMeasureMemory) less the SharedArrayBuffer-backed wasm memory it also counts (onnxruntime-web\'s; ' +
  'shelfwise\'s wasm memory is not shared and not counted there). renderer RSS = VmRSS of the renderer ' +
  'process that runs page and worker (everything: Blink, V8, wasm code, memory actually touched; the ' +
  'renderer of this chromium that used the most CPU during the engine\'s run), from /proc.';

// ---------------------------------------------------------------- titles
function loadTitles(n) {
  let base;
  let source;
  if (existsSync(DEV_CSV)) {
    const [header, ...rows] = parseCsv(readFileSync(DEV_CSV, 'utf8'));
    const col = header.indexOf('title');
    if (col < 0) throw new Error(`${DEV_CSV} has no title column`);
    base = rows.map((r) => r[col]).filter((t) => t && t.trim() !== '');
    source = `first ${Math.min(n, base.length)} titles of ${DEV_CSV}`;
  } else {
    base = fixtureTitles();
    source = `tests/fixtures/titles.txt (${base.length} titles) cycled (no ${DEV_CSV})`;
  }
  if (base.length < n) source += `, cycled to ${n}`;
  return { titles: Array.from({ length: n }, (_, i) => base[i % base.length]), source };
}

// ---------------------------------------------------------------- stats
const quantile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]; // nearest rank
};
const median = (xs) => quantile(xs, 0.5);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

function cosine(a, b) {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) (ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]);
  return ab / Math.sqrt(aa * bb);
}

// ---------------------------------------------------------------- setup checks
if (!existsSync(join(WWW, 'dist', 'index.js'))) {
  console.error('www/dist is missing: run `bash www/scripts/build-wasm.sh && npm run build` in www/ first');
  process.exit(1);
}
const engines = []; // { id, kind, path? }
for (const [name, path] of variants) {
  if (existsSync(path)) engines.push({ id: `shelfwise-${name}`, kind: 'shelfwise', variant: name, path });
  else console.log(`note: skipping shelfwise ${name}: no model file at ${path} (pass --model ${name}=path)`);
}
// The int8 model once more on the plain simd128 runtime, the one browsers without relaxed SIMD get
// (the package picks the relaxed build in this chromium; `--no-simd128` leaves this out).
const int8 = engines.find((e) => e.id === 'shelfwise-int8');
if (int8 && !argv.includes('--no-simd128')) engines.splice(engines.indexOf(int8) + 1, 0, { ...int8, id: 'shelfwise-int8-simd128', plainWasm: true });
if (WITH_TJS) {
  if (!existsSync(join(TJS_MODEL, 'onnx', 'model_quantized.onnx'))) {
    console.error(`missing ${TJS_MODEL}: run bash www/scripts/setup-bench.sh`);
    process.exit(1);
  }
  engines.push({ id: 'transformers.js', kind: 'transformers' });
}
if (engines.length === 0) {
  console.error('nothing to benchmark');
  process.exit(1);
}
const { titles, source: titleSource } = loadTitles(N_TITLES);
console.log(`titles: ${titleSource}`);

// ---------------------------------------------------------------- server and browser
// Extra roots on the demo server: the bench page, the transformers.js and onnxruntime-web dists
// (so transformers.js never reaches for a CDN), the model files; --isolate for measure-memory.
const nm = join(WWW, 'node_modules');
const serverArgs = [
  '--isolate',
  '--static', `/bench/=${join(WWW, 'bench')}`,
  '--static', `/node_modules/@huggingface/transformers/dist/=${join(nm, '@huggingface', 'transformers', 'dist')}`,
  '--static', `/node_modules/onnxruntime-web/dist/=${join(nm, 'onnxruntime-web', 'dist')}`,
  '--static', `/bench-models/all-MiniLM-L6-v2-int8/=${TJS_MODEL}`,
];
for (const e of engines) if (e.kind === 'shelfwise') serverArgs.push('--static', `/bench-models/shelfwise/${e.variant}.shelfwise=${e.path}`);
const server = await startServer(0, serverArgs);
// One browser with an on-disk profile, like a seller's: an incognito context (browser.newContext())
// keeps its HTTP cache in memory and does not store entries over a few MB, so onnxruntime-web's
// 27 MB wasm would be downloaded again on every warm start. Engines run one after another in it;
// before each, the origin's HTTP cache and storage are cleared (= a first visit).
const profile = mkdtempSync(join(tmpdir(), 'shelfwise-bench-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  // ForceEagerMeasureMemory: measureUserAgentSpecificMemory() answers now instead of at the next GC.
  // host-resolver-rules: no host but 127.0.0.1 resolves, so nothing can leave the machine.
  args: [...CHROMIUM_ARGS, '--enable-blink-features=ForceEagerMeasureMemory', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const firstPage = context.pages()[0] ?? (await context.newPage());
const pageCdp = await context.newCDPSession(firstPage);
const chromiumVersion = (await pageCdp.send('Browser.getVersion')).product;
const cpuModel = `${cpus().length} x ${cpus()[0]?.model ?? 'unknown cpu'}`;
console.log(`${chromiumVersion} (headless, ${CHROMIUM}); cpu: ${cpuModel}; ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`);

const foreignRequests = [];
const fixtures = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'encoder_reference.json'), 'utf8')).items;

// Every request of the pages and their workers is seen here, tagged with the current engine and
// phase. No context.route(): playwright turns the HTTP cache off while routing, which would
// falsify the warm starts.
const state = { engine: '', phase: '', transfers: [], pendingSizes: [] };
context.on('request', (req) => {
  const u = req.url();
  if (!u.startsWith(server.origin + '/') && !/^(data|blob):/.test(u)) foreignRequests.push({ engine: state.engine, url: u });
});
context.on('requestfinished', (req) => {
  const { phase, transfers } = state;
  state.pendingSizes.push(
    req.sizes().then(async (s) => {
      const res = await req.response();
      transfers.push({ phase, url: req.url().replace(server.origin, ''), status: res?.status(), bodyBytes: s.responseBodySize });
    }),
  );
});
context.on('requestfailed', (req) => state.transfers.push({ phase: state.phase, url: req.url().replace(server.origin, ''), status: 'failed', bodyBytes: 0 }));

/** CPU seconds (utime + stime, in clock ticks) of this chromium's renderer processes, by pid: the
 * processes under the one whose command line has our profile directory (Linux /proc; others
 * may run chromium on this machine too). */
function rendererCpu() {
  const procs = new Map(); // pid -> { ppid, cpu, cmd }
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      procs.set(Number(d), { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]), cmd });
    } catch {
      // exited meanwhile
    }
  }
  const root = [...procs].find(([, p]) => p.cmd.includes(profile) && !p.cmd.includes('--type='))?.[0];
  const out = new Map();
  for (const [pid, p] of procs) {
    if (!p.cmd.includes('--type=renderer')) continue;
    for (let q = p.ppid, hops = 0; q > 1 && hops < 8; q = procs.get(q)?.ppid ?? 0, hops++) {
      if (q === root) {
        out.set(pid, p.cpu);
        break;
      }
    }
  }
  return out;
}

/** RSS and PSS of the renderer process that ran the engine (its page and worker live in it): the
 * renderer that used the most CPU since `before`. */
async function rendererMemory(before) {
  const now = rendererCpu();
  let pid = null;
  let most = -1;
  for (const [id, cpu] of now) {
    const d = cpu - (before.get(id) ?? 0);
    if (d > most) (most = d), (pid = id);
  }
  if (pid === null) return null;
  const kb = (text, key) => Number(text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1]) * 1024 || null;
  try {
    const rss = kb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
    const pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
    return { pid, rss, pss };
  } catch {
    return null; // not Linux, or another pid namespace
  }
}

/** One engine: first visit (cleared cache), warm reloads, latency run, memory, sanity; own tab. */
async function benchEngine(e) {
  const url = e.kind === 'shelfwise'
    ? `${server.url}bench/?engine=shelfwise&model=${encodeURIComponent(`/bench-models/shelfwise/${e.variant}.shelfwise`)}${e.plainWasm ? '&wasm=simd128' : ''}`
    : `${server.url}bench/?engine=transformers`;
  // A first visit: nothing of the origin's left in the HTTP cache, Cache Storage or elsewhere.
  await pageCdp.send('Network.clearBrowserCache');
  await pageCdp.send('Storage.clearDataForOrigin', { origin: server.origin, storageTypes: 'all' });
  Object.assign(state, { engine: e.id, phase: 'cold', transfers: [], pendingSizes: [] });
  const cpuBefore = rendererCpu();
  const page = await context.newPage();
  try {
    return await measure(e, url, page, cpuBefore);
  } finally {
    await page.close().catch(() => {});
  }
}

async function measure(e, url, page, cpuBefore) {
  const { transfers, pendingSizes } = state;
  const setPhase = (p) => (state.phase = p);
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));

  const loadOnce = async (navigate) => {
    await navigate();
    await page.waitForFunction(() => document.documentElement.dataset.ready, null, { timeout: 300_000 });
    const r = await page.evaluate(() => (window.__bench ? { firstResultMs: window.__bench.firstResultMs, info: window.__bench.info, phases: window.__bench.phases } : { error: window.__benchError }));
    if (r.error) throw new Error(`${e.id}: ${r.error}\n${pageErrors.join('\n')}`);
    await Promise.all(pendingSizes.splice(0)); // sizes of everything that page load fetched
    return r;
  };
  const bytesOf = (p) => transfers.filter((t) => t.phase === p).reduce((a, t) => a + (t.bodyBytes || 0), 0);

  const cold = await loadOnce(() => page.goto(url));
  const warm = [];
  for (let i = 0; i < WARM_RUNS; i++) {
    setPhase(`warm${i}`);
    warm.push(await loadOnce(() => page.reload()));
  }
  // Where a warm start's time goes (shelfwise: when each load phase began, ms since navigation).
  if (e.kind === 'shelfwise') console.error(`${e.id}: warm start phases ${warm.map((w) => JSON.stringify(w.phases)).join(' ')}`);
  setPhase('run');
  const load1 = loadavg()[0];
  const run = await page.evaluate(({ titles, warmup }) => window.__bench.run(titles, warmup), { titles, warmup: WARMUP });

  // Memory, steady state after the run.
  const worker = page.workers().find((w) => w.url().includes('/bench/'));
  const wasm = worker ? await worker.evaluate(() => globalThis.__benchWasmMemoryBytes()) : null;
  const uaMemory = await page.evaluate(() => window.__bench.measureMemory());
  const renderer = await rendererMemory(cpuBefore);

  // transformers.js: compare its pooled vectors with the float64 numpy reference of the same model.
  let reference = null;
  if (e.kind === 'transformers') {
    const vecs = await page.evaluate((ts) => window.__bench.embedEach(ts), fixtures.map((f) => f.title));
    const cos = vecs.map((v, i) => cosine(v, fixtures[i].pooled));
    reference = { titles: fixtures.length, dims: vecs[0].length, minCosine: Math.min(...cos), meanCosine: mean(cos), cosines: cos };
  }

  const lastWarm = `warm${WARM_RUNS - 1}`;
  return {
    engine: e.id,
    model: e.kind === 'shelfwise' ? e.path : TJS_MODEL,
    info: cold.info,
    latencyMs: { p50: quantile(run.latencyMs, 0.5), p95: quantile(run.latencyMs, 0.95), mean: mean(run.latencyMs), max: Math.max(...run.latencyMs), n: run.latencyMs.length },
    inWorkerMs: { p50: quantile(run.inWorkerMs, 0.5), p95: quantile(run.inWorkerMs, 0.95) },
    coldStartMs: cold.firstResultMs,
    warmStartMs: median(warm.map((w) => w.firstResultMs)),
    warmStartRunsMs: warm.map((w) => w.firstResultMs),
    bytesCold: bytesOf('cold'),
    bytesWarm: bytesOf(lastWarm),
    requestsCold: transfers.filter((t) => t.phase === 'cold').map((t) => `${t.status} ${t.bodyBytes} ${t.url}`),
    requestsWarm: transfers.filter((t) => t.phase === lastWarm).map((t) => `${t.status} ${t.bodyBytes} ${t.url}`),
    memory: {
      wasmBytes: wasm?.bytes ?? null,
      wasmSharedBytes: wasm?.sharedBytes ?? null,
      wasmMemories: wasm?.memories ?? null,
      // JS heaps of page + worker: the measure-memory total less the shared wasm memory it counts.
      jsHeapBytes: uaMemory && wasm ? uaMemory.bytes - wasm.sharedBytes : null,
      uaBytes: uaMemory?.bytes ?? null,
      uaByScope: uaMemory?.byScope ?? null,
      rendererRssBytes: renderer?.rss ?? null,
      rendererPssBytes: renderer?.pss ?? null,
      rendererPid: renderer?.pid ?? null,
    },
    sanity: run.sanity,
    reference,
    loadAvg1mDuringRun: load1,
    pageErrors,
  };
}

const results = [];
const failures = []; // engines that did not load or run (e.g. a model file this wasm build cannot read)
try {
  for (const e of engines) {
    console.log(`\n== ${e.id}${e.path ? ` (${e.path})` : ''}`);
    let r;
    try {
      r = await benchEngine(e);
    } catch (err) {
      console.log(`FAILED, skipped: ${String(err.message ?? err).split('\n')[0]}`);
      failures.push({ engine: e.id, model: e.path ?? TJS_MODEL, error: String(err.message ?? err) });
      continue;
    }
    results.push(r);
    console.log(`cold ${r.coldStartMs.toFixed(0)} ms (${(r.bytesCold / 1e6).toFixed(1)} MB), warm ${r.warmStartMs.toFixed(0)} ms (${(r.bytesWarm / 1e6).toFixed(2)} MB), p50 ${r.latencyMs.p50.toFixed(1)} ms, p95 ${r.latencyMs.p95.toFixed(1)} ms (in worker p50 ${r.inWorkerMs.p50.toFixed(1)} ms), load avg ${r.loadAvg1mDuringRun.toFixed(2)}`);
    if (e.kind === 'shelfwise') {
      const f = r.sanity.first;
      console.log(`sanity: ${r.sanity.calls} calls, sum of top scores ${r.sanity.checksum.toFixed(4)}, ${r.sanity.abstained} abstained; "${f.title}" → ${f.top} (${f.score?.toFixed(3)})`);
    } else {
      const f = r.sanity.first;
      console.log(`sanity: ${r.sanity.calls} calls, dims [${r.sanity.dims}], ${r.sanity.badVectors} bad vectors, checksum (sum of all values) ${r.sanity.checksum.toFixed(4)}; "${f.title}" → [${f.first.map((x) => x.toFixed(5)).join(', ')}, …]`);
      console.log(`sanity vs float64 reference (tests/fixtures/encoder_reference.json, ${r.reference.titles} titles): cosine min ${r.reference.minCosine.toFixed(5)}, mean ${r.reference.meanCosine.toFixed(5)}`);
    }
    if (r.pageErrors.length) console.log(`page errors:\n  ${r.pageErrors.join('\n  ')}`);
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  await server.stop();
}

// ---------------------------------------------------------------- checks
if (foreignRequests.length) {
  console.error(`FAIL: requests left the origin ${server.origin}:\n${foreignRequests.map((f) => `  ${f.engine}: ${f.url}`).join('\n')}`);
  process.exitCode = 1;
}
const tjs = results.find((r) => r.engine === 'transformers.js');
if (tjs && (tjs.sanity.badVectors > 0 || tjs.reference.dims !== 384 || tjs.reference.minCosine < 0.95)) {
  console.error('FAIL: transformers.js did not produce the expected 384-dim embeddings');
  process.exitCode = 1;
}

// ---------------------------------------------------------------- report
const MB = (b) => (b == null ? 'n/a' : `${(b / 1e6).toFixed(1)} MB`);
const ms = (x) => `${x.toFixed(x < 100 ? 1 : 0)} ms`;
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);
const fmtRatio = (x) => (x == null ? 'n/a' : `${x.toFixed(2)}×`);
for (const r of results) {
  if (!tjs || r === tjs) continue;
  r.ratioToTransformersJs = {
    latencyP50: ratio(r.latencyMs.p50, tjs.latencyMs.p50),
    latencyP95: ratio(r.latencyMs.p95, tjs.latencyMs.p95),
    inWorkerP50: ratio(r.inWorkerMs.p50, tjs.inWorkerMs.p50),
    coldStart: ratio(r.coldStartMs, tjs.coldStartMs),
    warmStart: ratio(r.warmStartMs, tjs.warmStartMs),
    bytesCold: ratio(r.bytesCold, tjs.bytesCold),
    wasmMemory: ratio(r.memory.wasmBytes, tjs.memory.wasmBytes),
    jsHeap: ratio(r.memory.jsHeapBytes, tjs.memory.jsHeapBytes),
    rendererRss: ratio(r.memory.rendererRssBytes, tjs.memory.rendererRssBytes),
  };
}

const header = '| engine | latency p50 | latency p95 | in-worker p50 | cold start | warm start | bytes cold | bytes warm | wasm memory | JS heap | renderer RSS |';
const rows = results.map(
  (r) =>
    `| ${r.engine} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p95)} | ${ms(r.inWorkerMs.p50)} | ${ms(r.coldStartMs)} | ${ms(r.warmStartMs)} | ${MB(r.bytesCold)} | ${MB(r.bytesWarm)} | ${MB(r.memory.wasmBytes)} | ${MB(r.memory.jsHeapBytes)} | ${MB(r.memory.rendererRssBytes)} |`,
);
const ratioRows = results
  .filter((r) => r.ratioToTransformersJs)
  .map((r) => {
    const q = r.ratioToTransformersJs;
    return `| ${r.engine} ÷ transformers.js | ${fmtRatio(q.latencyP50)} | ${fmtRatio(q.latencyP95)} | ${fmtRatio(q.inWorkerP50)} | ${fmtRatio(q.coldStart)} | ${fmtRatio(q.warmStart)} | ${fmtRatio(q.bytesCold)} | | ${fmtRatio(q.wasmMemory)} | ${fmtRatio(q.jsHeap)} | ${fmtRatio(q.rendererRss)} |`;
  });
const table = [header, header.replace(/[^|]+/g, ' --- '), ...rows, ...ratioRows].join('\n');
const meta = {
  date: new Date().toISOString(),
  chromium: chromiumVersion,
  cpu: cpuModel,
  titles: { count: titles.length, source: titleSource, warmup: WARMUP },
  warmRuns: WARM_RUNS,
  notes: {
    latency: 'one title per call, sequential, round trip page → worker → page (performance.now in the page); in-worker = the engine\'s own timing inside the worker',
    work: 'shelfwise: tokenize + MiniLM encoder + classification head + taxonomy decision (top 5); transformers.js: tokenize + MiniLM encoder + mean pooling only (no classifier)',
    coldStart: 'first visit: new tab after clearing the HTTP cache and all storage of the origin (CDP Network.clearBrowserCache, Storage.clearDataForOrigin): navigation start → first result of one title',
    warmStart: 'same tab, page.reload() (on-disk profile: HTTP cache revalidated with 304s, models from Cache Storage): navigation start → first result; median of warmRuns',
    bytes: 'sum of response body sizes (playwright request.sizes().responseBodySize) of that page load\'s requests, page and worker; 304s count 0',
    memory: MEMORY_NOTE,
    threads: 'both single-threaded wasm (onnxruntime-web numThreads=1), each engine in a module Web Worker, device wasm',
    kernels: `shelfwise's wasm runtime per engine (info.wasmKernels): ${results.filter((r) => r.info?.kernels).map((r) => `${r.engine} ${r.info.kernels}`).join(', ') || 'unknown'}. The package picks dist/shelfwise_wasm_relaxed_bg.wasm where relaxed SIMD works, else dist/shelfwise_wasm_bg.wasm; shelfwise-int8-simd128 is the int8 model on the latter`,
  },
};
const md = [
  `# shelfwise vs transformers.js (browser, wasm)`,
  '',
  `${meta.date}; chromium ${chromiumVersion} headless; ${cpuModel}; titles: ${titleSource} (${WARMUP} warm-up calls); load avg during runs: ${results.map((r) => `${r.engine} ${r.loadAvg1mDuringRun.toFixed(2)}`).join(', ')}.`,
  '',
  table,
  '',
  ...failures.map((f) => `- **${f.engine} failed** (${f.model}): ${f.error.split('\n')[0]}`),
  ...Object.entries(meta.notes).map(([k, v]) => `- ${k}: ${v}`),
  '',
].join('\n');
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(`${OUT}.json`, JSON.stringify({ ...meta, results, failures }, null, 1) + '\n');
writeFileSync(`${OUT}.md`, md);
console.log('\n' + table + '\n');
for (const f of failures) console.log(`failed: ${f.engine} (${f.model}): ${f.error.split('\n')[0]}`);
if (failures.length) process.exitCode = 1;
console.log(`written: ${OUT}.json, ${OUT}.md`);
if (foreignRequests.length === 0) console.log(`privacy: no request left ${server.origin}`);
