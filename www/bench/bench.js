// Bench page for scripts/bench-compare.mjs: loads one engine, classifies a first title as soon as
// it can (window.__bench.firstResultMs = page load → first result, in ms since navigation start),
// then waits to be driven by playwright through window.__bench.
//   ?engine=shelfwise&model=/bench-models/shelfwise/f32.shelfwise   the shelfwise package (dist/)
//     &wasm=simd128                                                    on the plain runtime (no relaxed SIMD)
//   ?engine=transformers&model=all-MiniLM-L6-v2-q8&threads=1       transformers.js, bench/tjs-worker.js
//                                                                     (model: a folder under /bench-models/)
// Both engines run in a module Web Worker; the page awaits each call (one title per call).
const params = new URLSearchParams(location.search);
const engine = params.get('engine');
const FIRST_TITLE = 'Rockmantra Ceramic Coffee Mug 350 ml';
const status = document.getElementById('status');

/** @type {(title: string) => Promise<{ inWorkerMs: number, out: any }>} */
let classify;
let info = {};
/** transformers.js: onnxruntime-web's threads as the worker sees them (after the first result). */
let engineInfo = async () => null;

async function startShelfwise() {
  // Imported here, not statically: the transformers.js page must not download shelfwise's bytes.
  const { createClassifier } = await import('/dist/index.js');
  // When each load phase began (ms since navigation start): where a start's time goes.
  const phases = {};
  const c = await createClassifier({
    modelUrl: params.get('model'),
    workerUrl: '/bench/shelfwise-worker.js',
    // ?wasm=simd128: the plain runtime, as a browser without relaxed SIMD gets it.
    ...(params.get('wasm') === 'simd128' ? { wasmUrl: '/dist/shelfwise_wasm_bg.wasm' } : {}),
    onProgress: (e) => (phases[e.phase] ??= Math.round(performance.now())),
  });
  window.__benchPhases = phases;
  info = { name: c.info.name, modelBytes: c.info.bytes, fromCache: c.info.fromCache, labels: c.info.labelCount, kernels: c.info.wasmKernels };
  classify = async (title) => {
    const r = await c.suggest(title, { k: 5, threshold: 0.5, group: null });
    return { inWorkerMs: r.meta.elapsedMs, out: r };
  };
}

function startTransformers() {
  const model = params.get('model') ?? 'all-MiniLM-L6-v2-q8';
  const workerUrl = `/bench/tjs-worker.js?model=${encodeURIComponent(model)}&threads=${encodeURIComponent(params.get('threads') ?? '1')}`;
  const w = new Worker(workerUrl, { type: 'module', name: 'transformers.js' });
  const pending = new Map();
  let nextId = 1;
  w.addEventListener('message', (e) => {
    const p = pending.get(e.data.id);
    pending.delete(e.data.id);
    if (e.data.error) p?.reject(new Error(e.data.error));
    else p?.resolve(e.data);
  });
  w.addEventListener('error', (e) => {
    for (const p of pending.values()) p.reject(new Error(`worker failed: ${e.message}`));
    pending.clear();
  });
  const send = (msg) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      w.postMessage({ id, ...msg });
    });
  const embed = (texts) => send({ texts });
  info = { name: `${model} (feature-extraction, mean pooling, dtype q8)` };
  engineInfo = async () => (await send({ info: true })).info;
  classify = async (title) => {
    const r = await embed([title]);
    return { inWorkerMs: r.elapsedMs, out: r };
  };
}

/** Sequential run: warm-up titles first (not timed), then one timed call per title. */
async function run(titles, warmup) {
  for (const t of titles.slice(0, warmup)) await classify(t);
  const latencyMs = [];
  const inWorkerMs = [];
  // Sanity summaries, so that the numbers are known to come from real outputs.
  let checksum = 0;
  let badVectors = 0;
  let dims = null;
  let abstained = 0;
  let firstOut = null;
  for (const t of titles) {
    const t0 = performance.now();
    const r = await classify(t);
    latencyMs.push(performance.now() - t0);
    inWorkerMs.push(r.inWorkerMs);
    if (engine === 'shelfwise') {
      const top = r.out.suggestions[0];
      checksum += top ? top.score : 0;
      if (r.out.abstained) abstained++;
      firstOut ??= { title: t, top: top ? top.path.map((p) => p.name).join(' > ') : null, score: top?.score ?? null };
    } else {
      dims ??= r.out.dims;
      const v = r.out.data;
      let ok = v.length === 384;
      for (let i = 0; i < v.length; i++) {
        if (!Number.isFinite(v[i])) ok = false;
        checksum += v[i];
      }
      if (!ok) badVectors++;
      firstOut ??= { title: t, dims: r.out.dims, first: Array.from(v.slice(0, 4)) };
    }
  }
  return { latencyMs, inWorkerMs, sanity: { calls: titles.length, checksum, badVectors, dims, abstained, first: firstOut } };
}

/** Pooled vectors of `titles` (compared with the float64 reference and with shelfwise's f32 model).
 * transformers.js: through its pipeline, one call each. shelfwise: the package's engine does not hand
 * out embeddings, so the same wasm runtime (www/pkg's JS glue, served as /bench-pkg/, with the wasm
 * file from dist/ that this row runs: relaxed unless ?wasm=simd128) loads the same model file here in
 * the page and calls Classifier.embedding (the encoder's mean-pooled output, before the head). */
async function embedEach(titles) {
  if (engine === 'transformers') {
    const out = [];
    for (const t of titles) out.push(Array.from((await classify(t)).out.data));
    return { vectors: out };
  }
  const glue = await import('/bench-pkg/shelfwise_wasm.js');
  const plain = '/dist/shelfwise_wasm_bg.wasm';
  let wasm = params.get('wasm') === 'simd128' ? plain : '/dist/shelfwise_wasm_relaxed_bg.wasm';
  try {
    await glue.default({ module_or_path: wasm });
  } catch {
    wasm = plain; // as the package does where relaxed SIMD does not compile
    await glue.default({ module_or_path: wasm });
  }
  const bytes = new Uint8Array(await (await fetch(params.get('model'))).arrayBuffer());
  const clf = glue.Classifier.load(bytes);
  try {
    const manifest = clf.manifest();
    return { vectors: titles.map((t) => Array.from(clf.embedding(t))), wasm, kernels: glue.kernels(), encoderTraining: manifest?.training?.encoder ?? null };
  } finally {
    clf.free();
  }
}

/** Chromium's measure-memory API: JS heaps of this page and its workers (needs crossOriginIsolated). */
async function measureMemory() {
  if (!crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
  const m = await performance.measureUserAgentSpecificMemory();
  const byScope = {};
  for (const b of m.breakdown) {
    for (const a of b.attribution) byScope[a.scope] = (byScope[a.scope] ?? 0) + b.bytes;
    if (b.attribution.length === 0 && b.bytes) byScope['(shared/unattributed)'] = (byScope['(shared/unattributed)'] ?? 0) + b.bytes;
  }
  return { bytes: m.bytes, byScope };
}

try {
  if (engine === 'shelfwise') await startShelfwise();
  else if (engine === 'transformers') startTransformers();
  else throw new Error(`unknown engine ${engine}`);
  const first = await classify(FIRST_TITLE);
  const firstResultMs = performance.now();
  window.__bench = { engine, info, firstResultMs, firstInWorkerMs: first.inWorkerMs, phases: { ...window.__benchPhases, firstResult: Math.round(firstResultMs) }, run, embedEach, measureMemory, engineInfo };
  status.textContent = `${engine} ready: first result at ${firstResultMs.toFixed(0)} ms`;
  document.documentElement.dataset.ready = '1';
} catch (e) {
  window.__benchError = String(e?.stack ?? e);
  status.textContent = `failed: ${e}`;
  document.documentElement.dataset.ready = 'error';
}
