// shelfwise: product-category suggestions computed in the seller's browser.
//
//   const c = await createClassifier({ modelUrl: '/models/model.shelfwise' });
//   const s = await c.suggest('Nike running shoe', { k: 5 });
import { readCachedCopy } from './cache.js';
import { ShelfwiseError, aborted, fromWire } from './errors.js';
import type { Request, Response } from './protocol.js';
import type {
  AdaptReport,
  BatchProgress,
  Classifier,
  CreateClassifierOptions,
  Decision,
  Explanation,
  MemoryInfo,
  ModelInfo,
  SimilarTitle,
  SuggestManyOptions,
  SuggestManyResult,
  SuggestOptions,
  SuggestResult,
} from './types.js';
import type { AdaptOp } from './protocol.js';

export { ShelfwiseError } from './errors.js';
export { parseCsv, readExamplesCsv } from './csv.js';
export type * from './types.js';

/** Version of this package. */
export const VERSION = '0.1.0';

interface Port {
  post(msg: Request, transfer?: Transferable[]): void;
  terminate(): void;
}

interface Pending {
  resolve: (m: Extract<Response, { type: 'result' | 'result-many' | 'memory' | 'adapt-result' }>) => void;
  reject: (e: ShelfwiseError) => void;
  group: string | null;
  cleanup: () => void;
  onProgress?: ((p: BatchProgress) => void) | undefined;
}

function abs(url: string | URL): string {
  const base = typeof location !== 'undefined' ? location.href : import.meta.url;
  return new URL(String(url), base).href;
}

async function openPort(workerMode: boolean, workerUrl: string | undefined, onMessage: (m: Response) => void, onFatal: (e: ShelfwiseError) => void): Promise<Port> {
  if (workerMode && typeof Worker !== 'undefined') {
    let w: Worker;
    try {
      // The literal `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })` form
      // is what Vite, webpack 5, Rollup and esbuild recognise: they bundle and emit the worker.
      w = workerUrl !== undefined ? new Worker(workerUrl, { type: 'module', name: 'shelfwise' }) : new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'shelfwise' });
    } catch (e) {
      throw new ShelfwiseError('WORKER', `cannot start the worker ${workerUrl ?? 'worker.js'}: ${String(e)}`, { cause: e });
    }
    w.addEventListener('message', (e: MessageEvent<Response>) => onMessage(e.data));
    w.addEventListener('error', (e: ErrorEvent) => {
      e.preventDefault();
      onFatal(new ShelfwiseError('WORKER', `worker failed: ${e.message || 'could not load ' + (workerUrl ?? 'worker.js')}`));
    });
    w.addEventListener('messageerror', () => onFatal(new ShelfwiseError('WORKER', 'worker message could not be decoded')));
    return { post: (m, transfer) => w.postMessage(m, transfer ?? []), terminate: () => w.terminate() };
  }
  // Same protocol on this thread (no worker): messages are delivered asynchronously. host.js is
  // a chunk of its own (shared with worker.js): only `worker: false` loads it on this thread.
  const { createHost } = await import('./host.js');
  let alive = true;
  const handle = createHost((m) => queueMicrotask(() => alive && onMessage(m)));
  // A flush runs at once: on pagehide a later task may never run.
  return { post: (m) => (m.type === 'flush' ? alive && handle(m) : setTimeout(() => alive && handle(m), 0)), terminate: () => (alive = false) };
}

/**
 * The wasm module compiled on this thread, or null when it cannot be (no 'wasm-unsafe-eval' in
 * the page's CSP, a server without the application/wasm type): the worker then compiles it.
 */
async function compileOnPage(wasmUrl: string): Promise<WebAssembly.Module | null> {
  try {
    return await WebAssembly.compileStreaming(fetch(wasmUrl));
  } catch {
    return null;
  }
}

/**
 * A module whose function returns `i32x4.relaxed_dot_i8x16_i7x16_add_s(splat(-3), splat(5),
 * splat(7))` lane 0: 7 + 4·(-3·5) = -53. Validating is not enough: Node 20's experimental relaxed
 * SIMD (--experimental-wasm-relaxed-simd) validates it and computes other sums.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f"
  0x0a, 0x16, 0x01, 0x14, 0x00, // code: one body of 20 bytes, no locals
  0x41, 0x7d, 0xfd, 0x0f, // i8x16.splat(-3)
  0x41, 0x05, 0xfd, 0x0f, // i8x16.splat(5)
  0x41, 0x07, 0xfd, 0x11, // i32x4.splat(7)
  0xfd, 0x93, 0x02, // i32x4.relaxed_dot_i8x16_i7x16_add_s
  0xfd, 0x1b, 0x00, // i32x4.extract_lane 0
  0x0b, // end
]);

/** Whether this thread's WebAssembly runs the relaxed SIMD build's dot product correctly. */
function relaxedSimdWorks(): boolean {
  try {
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(RELAXED_PROBE)) return false;
    const { f } = new WebAssembly.Instance(new WebAssembly.Module(RELAXED_PROBE)).exports as { f: () => number };
    return f() === -53;
  } catch {
    return false; // e.g. a CSP without 'wasm-unsafe-eval': the plain build, compiled in the worker
  }
}

/**
 * A GPU forward that has not answered in this long is given up and the request runs on wasm: a
 * hung device or a trapped GPU instance must not stall the queue. Generous, because a software
 * adapter (SwiftShader) takes seconds a title (its first forward once took over a minute on a
 * 2-core CI machine); pages that know better set `gpuTimeoutMs`.
 */
const DEFAULT_GPU_TIMEOUT_MS = 60_000;

/** A verified cached copy is used when the server has not said within this long whether it changed. */
const DEFAULT_REVALIDATE_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_MODEL_BYTES = 512 * 2 ** 20;

/**
 * Restarts after crashes (a trap, a dead worker): the n-th in a row waits RESTART_BACKOFF_MS ·
 * 2^(n-1); after MAX_RESTARTS in a row with no answer between them, the classifier stops
 * restarting and every call fails with WORKER (a model that traps on every title must not loop).
 */
const RESTART_BACKOFF_MS = 250;
const MAX_RESTARTS = 3;

/** The test hook's key on a classifier (see trapForTests in shelfwise-wasm): not part of the API. */
const TRAP_FOR_TESTS = Symbol.for('shelfwise.trapForTests');
/** Diagnostics for the soak benchmark (www/bench/soak.mjs), not part of the API: resolves to
 * `{ wasmBytes, jsHeapBytes }` of the context the model runs in (jsHeapBytes null in a worker). */
const MEMORY_FOR_TESTS = Symbol.for('shelfwise.memory');

function checkDebounce(v: unknown): number {
  if (v === undefined) return 300;
  if (typeof v !== 'number' || !(v >= 0 && v <= 60_000)) throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: memory.debounceMs must be a number of ms in [0, 60000], got ${String(v)}`);
  return v;
}

function checkCap(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 4_194_304) throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: memory.maxExamples must be an integer in [1, 4194304], got ${String(v)}`);
  return v;
}

/** `'A > B'` from a path given as a string or its segments. */
function pathString(what: string, p: unknown): string {
  if (typeof p === 'string') return p;
  if (Array.isArray(p) && p.every((x) => typeof x === 'string')) return p.join(' > ');
  throw new ShelfwiseError('INVALID_ARGUMENT', `${what}: a path must be a string 'A > B' or an array of segments`);
}

function checkTitle(what: string, t: unknown): string {
  if (typeof t !== 'string') throw new ShelfwiseError('INVALID_ARGUMENT', `${what}: title must be a string`);
  return t;
}

function checkMs(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v > 0)) {
    throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: ${name} must be a positive number (or Infinity), got ${String(v)}`);
  }
  return v;
}

/** Loads the model (from the persistent cache when it is there) and starts the classifier. */
export async function createClassifier(options: CreateClassifierOptions): Promise<Classifier> {
  if (!options || options.modelUrl == null) throw new ShelfwiseError('INVALID_ARGUMENT', 'createClassifier: modelUrl is required');
  const backend = options.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu'].includes(backend)) {
    throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: unknown backend ${JSON.stringify(backend)}`);
  }
  const gpuTimeoutMs = options.gpuTimeoutMs ?? DEFAULT_GPU_TIMEOUT_MS;
  if (typeof gpuTimeoutMs !== 'number' || !(gpuTimeoutMs > 0)) {
    throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: gpuTimeoutMs must be a positive number of ms (or Infinity), got ${String(gpuTimeoutMs)}`);
  }
  const revalidateTimeoutMs = checkMs('revalidateTimeoutMs', options.revalidateTimeoutMs ?? DEFAULT_REVALIDATE_TIMEOUT_MS);
  const maxModelBytes = checkMs('maxModelBytes', options.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES);
  const kernelVariant = options.kernelVariant;
  if (kernelVariant !== undefined && kernelVariant !== 'sum16' && kernelVariant !== 'dot32') {
    throw new ShelfwiseError('INVALID_ARGUMENT', `createClassifier: kernelVariant must be 'sum16' or 'dot32', got ${JSON.stringify(kernelVariant)}`);
  }
  const plainWasm = abs(new URL('./shelfwise_wasm_bg.wasm', import.meta.url));
  const relaxed = options.wasmUrl === undefined && relaxedSimdWorks();
  const init: Extract<Request, { type: 'init' }> = {
    type: 'init',
    modelUrl: abs(options.modelUrl),
    wasmUrl: options.wasmUrl !== undefined ? abs(options.wasmUrl) : relaxed ? abs(new URL('./shelfwise_wasm_relaxed_bg.wasm', import.meta.url)) : plainWasm,
    // A site that deployed only the plain runtime (as before there were two) still works.
    ...(relaxed ? { fallbackWasmUrl: plainWasm } : {}),
    gpuUrl: abs(options.gpuUrl ?? new URL('./gpu.js', import.meta.url)),
    // Written out for bundlers, which emit both files (gpu.js alone would lose its wasm); with
    // `gpuUrl` set, the wasm sits next to it.
    gpuWasmUrl: options.gpuUrl !== undefined ? new URL('./shelfwise_wasm_gpu_bg.wasm', abs(options.gpuUrl)).href : abs(new URL('./shelfwise_wasm_gpu_bg.wasm', import.meta.url)),
    gpuTimeoutMs,
    revalidateTimeoutMs,
    maxModelBytes,
    ...(kernelVariant ? { kernelVariant } : {}),
    cache: options.cache === undefined ? 'shelfwise-models-v1' : options.cache,
    backend,
    prefetch: false,
    memory: {
      persist: options.memory?.persist !== false,
      debounceMs: checkDebounce(options.memory?.debounceMs),
      ...(options.memory?.maxExamples !== undefined ? { maxExamples: checkCap(options.memory.maxExamples) } : {}),
    },
  };
  const workerUrl = options.workerUrl !== undefined ? abs(options.workerUrl) : undefined;
  const workerMode = options.worker !== false;
  // With a worker, this thread compiles the wasm and reads the cached model while the worker
  // starts, and hands both over (the bytes without a copy): a start's longest waits, overlapped.
  // Measured in Chromium 156 (bench:compare), the model also loads and the first title runs
  // about twice as fast in the worker with the page's compiled module as with its own.
  const prefetch = workerMode && typeof Worker !== 'undefined' && options.prefetch !== false;
  // Compiled once: a restarted worker (after a crash) gets the same module.
  let compiled: Promise<WebAssembly.Module | null> | null = null;

  const pending = new Map<number, Pending>();
  let nextId = 1;
  let port: Port | null = null;
  let starting: Promise<ModelInfo> | null = null;
  let info: ModelInfo | null = null;
  let disposed = false;
  let epoch = 0; // bumped when the worker is dropped: a port that opens after that is stopped
  let onReady: ((i: ModelInfo) => void) | null = null;
  let onInitError: ((e: ShelfwiseError) => void) | null = null;
  let crashes = 0; // in a row: since the last answer
  let lastCrash: ShelfwiseError | null = null;

  const failAll = (e: ShelfwiseError) => {
    for (const [id, p] of pending) {
      pending.delete(id);
      p.cleanup();
      p.reject(e);
    }
  };
  /** `counted`: a trap or a dead worker (not a failed download or an abort), which backs off the next start. */
  const crash = (e: ShelfwiseError, counted = true) => {
    // The worker is gone or unusable: drop it; the next call starts a fresh one (model from cache).
    port?.terminate();
    port = null;
    starting = null;
    epoch += 1;
    if (counted) {
      crashes += 1;
      lastCrash = e;
    }
    onInitError?.(e);
    failAll(e);
  };
  const onMessage = (m: Response) => {
    switch (m.type) {
      case 'progress':
        try {
          options.onProgress?.(m.event);
        } catch (e) {
          console.error('shelfwise: onProgress threw', e);
        }
        break;
      case 'ready':
        onReady?.(m.info);
        break;
      case 'many-progress':
        try {
          pending.get(m.id)?.onProgress?.({ done: m.done, total: m.total });
        } catch (e) {
          console.error('shelfwise: suggestMany onProgress threw', e);
        }
        break;
      case 'init-error':
        crash(fromWire(m.error), m.fatal === true);
        break;
      case 'warning': {
        const w = fromWire(m.error);
        if (info) info = { ...info, memory: m.memory };
        console.warn(`shelfwise: ${w.code}: ${w.message}`);
        try {
          options.onWarning?.(w);
        } catch (e) {
          console.error('shelfwise: onWarning threw', e);
        }
        break;
      }
      case 'result':
      case 'result-many':
      case 'memory':
      case 'adapt-result':
      case 'error': {
        if (m.type === 'adapt-result' && info) info = { ...info, memory: m.memory };
        if (!(m.type === 'error' && m.fatal)) crashes = 0; // an answer: this instance works
        const p = pending.get(m.id);
        if (m.type === 'error' && m.fatal) crash(fromWire(m.error));
        if (!p) return; // superseded or aborted meanwhile
        pending.delete(m.id);
        p.cleanup();
        if (m.type !== 'error') {
          p.resolve(m);
        } else {
          p.reject(fromWire(m.error));
        }
        break;
      }
    }
  };

  const start = (): Promise<ModelInfo> => {
    if (crashes > MAX_RESTARTS) {
      const last = lastCrash ? `${lastCrash.code}: ${lastCrash.message}` : 'unknown';
      return Promise.reject(new ShelfwiseError('WORKER', `the classifier failed ${crashes} times in a row and is not restarted again (last: ${last})`));
    }
    starting ??= new Promise<ModelInfo>((resolve, reject) => {
      onReady = (i) => {
        info = i;
        onReady = onInitError = null;
        resolve(i);
      };
      onInitError = (e) => {
        onReady = onInitError = null;
        reject(e);
      };
      compiled ??= prefetch ? compileOnPage(init.wasmUrl) : null;
      const cached = !prefetch ? null : init.cache === false ? Promise.resolve({ looked: true, copy: null }) : readCachedCopy(init.cache, init.modelUrl);
      const mine = epoch;
      // After crashes in a row, wait before the next start (a model that traps on every title
      // must not spin the CPU restarting).
      const backoff = crashes > 0 ? RESTART_BACKOFF_MS * 2 ** (crashes - 1) : 0;
      const opened = backoff ? new Promise((r) => setTimeout(r, backoff)) : Promise.resolve();
      opened.then(() => (disposed || epoch !== mine ? null : openPort(workerMode, workerUrl, onMessage, crash))).then((p) => {
        // Dropped while backing off: a crash or an abort settled this start already; a dispose did not.
        if (!p) return epoch === mine ? onInitError?.(new ShelfwiseError('DISPOSED', 'this classifier was disposed')) : undefined;
        // Aborted or disposed before the port opened: nothing else will stop this worker.
        if (disposed || epoch !== mine) return p.terminate();
        port = p;
        p.post({ ...init, prefetch });
        void compiled?.then((module) => {
          if (port !== p) return;
          try {
            p.post({ type: 'compiled', module });
          } catch {
            p.post({ type: 'compiled', module: null }); // a browser that cannot send a Module: the worker compiles
          }
        });
        void cached?.then((result) => {
          if (port === p) p.post({ type: 'prefetched', result }, result.copy ? [result.copy.bytes] : []);
        });
      }, crash);
    });
    return starting;
  };

  const signal = options.signal;
  const first = start();
  const abortLoad = () => crash(aborted('model loading'), false);
  signal?.addEventListener('abort', abortLoad, { once: true });
  try {
    if (signal?.aborted) abortLoad();
    info = await first;
  } finally {
    signal?.removeEventListener('abort', abortLoad);
  }

  const checkOptions = (what: string, opts: { k?: number; threshold?: number; signal?: AbortSignal }) => {
    if (disposed) throw new ShelfwiseError('DISPOSED', 'this classifier was disposed');
    const k = opts.k ?? 5;
    const threshold = opts.threshold ?? 0.5;
    if (!Number.isInteger(k) || k < 0 || k > 1000) throw new ShelfwiseError('INVALID_ARGUMENT', `${what}: k must be an integer in [0, 1000]`);
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
      throw new ShelfwiseError('INVALID_ARGUMENT', `${what}: threshold must be a number in [0, 1]`);
    }
    if (opts.signal?.aborted) throw aborted();
    return { k, threshold };
  };
  const withMeta = (d: Decision, m: { backend: SuggestResult['meta']['backend']; elapsedMs: number; fallback?: SuggestResult['meta']['fallback'] }, n: number): SuggestResult => {
    const meta: SuggestResult['meta'] = { backend: m.backend, elapsedMs: m.elapsedMs / n, modelSha256: info?.sha256 ?? '' };
    if (m.fallback) meta.fallback = m.fallback;
    return { ...d, meta };
  };
  /** Sends one request (after a restart, once the worker is back) and waits for its reply. */
  const request = (group: string | null, signal: AbortSignal | undefined, make: (id: number) => Request, onProgress?: (p: BatchProgress) => void) => {
    const id = nextId++;
    // A newer request supersedes older pending ones of its group: they reject with ABORTED.
    if (group !== null) {
      for (const [oid, p] of pending) {
        if (p.group !== group) continue;
        pending.delete(oid);
        p.cleanup();
        port?.post({ type: 'cancel', id: oid });
        p.reject(aborted());
      }
    }
    return new Promise<Extract<Response, { type: 'result' | 'result-many' | 'memory' | 'adapt-result' }>>((resolve, reject) => {
      const onAbort = () => {
        if (!pending.delete(id)) return;
        port?.post({ type: 'cancel', id });
        reject(aborted());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.set(id, { resolve, reject, group, cleanup: () => signal?.removeEventListener('abort', onAbort), onProgress });
      const send = () => {
        if (pending.has(id)) port?.post(make(id));
      };
      // After a crash the worker restarts (model from the cache) before the request is sent.
      start().then(send, (e: ShelfwiseError) => {
        if (pending.delete(id)) reject(e);
      });
    });
  };

  const adapt = async <T>(op: AdaptOp): Promise<T> => {
    if (disposed) throw new ShelfwiseError('DISPOSED', 'this classifier was disposed');
    const m = await request(null, undefined, (id) => ({ type: 'adapt', id, op }));
    if (m.type !== 'adapt-result') throw new ShelfwiseError('INTERNAL', 'unexpected reply');
    return m.value as T;
  };

  const classifier: Classifier = {
    get info() {
      return info as ModelInfo;
    },
    async suggest(title: string, opts: SuggestOptions = {}): Promise<SuggestResult> {
      if (typeof title !== 'string') throw new ShelfwiseError('INVALID_ARGUMENT', 'suggest: title must be a string');
      const { k, threshold } = checkOptions('suggest', opts);
      const group = opts.group === undefined ? 'default' : opts.group;
      const m = await request(group, opts.signal, (id) => ({ type: 'suggest', id, title, k, threshold }));
      if (m.type !== 'result') throw new ShelfwiseError('INTERNAL', 'unexpected reply');
      return withMeta(m.decision, m, 1);
    },
    async suggestMany(titles: readonly string[], opts: SuggestManyOptions = {}): Promise<SuggestManyResult[]> {
      if (!Array.isArray(titles) || titles.some((t) => typeof t !== 'string')) {
        throw new ShelfwiseError('INVALID_ARGUMENT', 'suggestMany: titles must be an array of strings');
      }
      const { k, threshold } = checkOptions('suggestMany', opts);
      if (titles.length === 0) return [];
      const list = [...titles];
      const m = await request(null, opts.signal, (id) => ({ type: 'suggest-many', id, titles: list, k, threshold }), opts.onProgress);
      if (m.type !== 'result-many') throw new ShelfwiseError('INTERNAL', 'unexpected reply');
      // A title over the limit is its own error (as the CLI marks the row), not the batch's.
      return m.items.map((d) => ('error' in d ? { ...withMeta({ suggestions: [], abstained: true, backOff: null }, m, list.length), error: fromWire(d.error) } : withMeta(d, m, list.length)));
    },
    // The shop's adaptation memory: one op a request, run in order with suggestions.
    setTaxonomy(paths) {
      if (!Array.isArray(paths)) throw new ShelfwiseError('INVALID_ARGUMENT', 'setTaxonomy: paths must be an array');
      return adapt<AdaptReport>({ op: 'setTaxonomy', paths: paths.map((p) => pathString('setTaxonomy', p)) });
    },
    addExamples(examples) {
      if (!Array.isArray(examples)) throw new ShelfwiseError('INVALID_ARGUMENT', 'addExamples: examples must be an array of { title, path }');
      const titles = examples.map((e) => checkTitle('addExamples', e?.title));
      const paths = examples.map((e) => pathString('addExamples', e?.path));
      return adapt<AdaptReport>({ op: 'addExamples', titles, paths });
    },
    async learn(title, path) {
      await adapt({ op: 'learn', title: checkTitle('learn', title), path: pathString('learn', path) });
    },
    forget(what) {
      if (what && typeof (what as { title?: unknown }).title === 'string') return adapt<number>({ op: 'forgetTitle', title: (what as { title: string }).title });
      if (what && 'path' in what) return adapt<number>({ op: 'forgetPath', path: pathString('forget', what.path) });
      throw new ShelfwiseError('INVALID_ARGUMENT', 'forget: give { title } or { path }');
    },
    similar(title, opts = {}) {
      const k = opts.k ?? 5;
      if (!Number.isInteger(k) || k < 0 || k > 1000) throw new ShelfwiseError('INVALID_ARGUMENT', 'similar: k must be an integer in [0, 1000]');
      return adapt<SimilarTitle[]>({ op: 'similar', title: checkTitle('similar', title), k });
    },
    explain(title, categoryId) {
      if (!Number.isInteger(categoryId) || categoryId < 0) throw new ShelfwiseError('INVALID_ARGUMENT', 'explain: categoryId must be a suggestion id (an integer ≥ 0)');
      return adapt<Explanation>({ op: 'explain', title: checkTitle('explain', title), category: categoryId });
    },
    exportMemory() {
      return adapt<Uint8Array>({ op: 'export' });
    },
    async importMemory(bytes) {
      if (!(bytes instanceof Uint8Array) && !(bytes instanceof ArrayBuffer)) throw new ShelfwiseError('INVALID_ARGUMENT', 'importMemory: bytes must be a Uint8Array or an ArrayBuffer');
      await adapt({ op: 'import', bytes: bytes instanceof Uint8Array ? bytes.slice() : new Uint8Array(bytes.slice(0)) });
    },
    async memoryInfo() {
      const m = await request(null, undefined, (id) => ({ type: 'adapt', id, op: { op: 'info' } }));
      if (m.type !== 'adapt-result') throw new ShelfwiseError('INTERNAL', 'unexpected reply');
      return { ...(m.value as Omit<MemoryInfo, 'storage'>), storage: m.memory };
    },
    categories() {
      return adapt<string[]>({ op: 'categories' });
    },
    readTaxonomy(text) {
      if (typeof text !== 'string') throw new ShelfwiseError('INVALID_ARGUMENT', 'readTaxonomy: text must be a string');
      return adapt<string[]>({ op: 'readTaxonomy', text });
    },
    dispose() {
      disposed = true;
      stopFlushing();
      failAll(new ShelfwiseError('DISPOSED', 'this classifier was disposed'));
      port?.terminate();
      port = null;
    },
  };
  // A memory change is stored 300 ms (debounceMs) after the last one; a page that is hidden or
  // unloaded meanwhile (a reload, a closed tab) flushes it at once instead of losing it.
  const flush = () => port?.post({ type: 'flush' });
  const onVisibility = () => {
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') flush();
  };
  const stopFlushing = () => {
    globalThis.removeEventListener?.('pagehide', flush);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', onVisibility);
  };
  globalThis.addEventListener?.('pagehide', flush);
  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisibility);
  // Test hook (not enumerable, not in the types): traps the wasm instance; rejects with its error.
  Object.defineProperty(classifier, TRAP_FOR_TESTS, { value: () => request(null, undefined, (id) => ({ type: 'trap', id })) });
  Object.defineProperty(classifier, MEMORY_FOR_TESTS, {
    value: () => request(null, undefined, (id) => ({ type: 'memory', id })).then((m) => (m.type === 'memory' ? { wasmBytes: m.wasmBytes, jsHeapBytes: m.jsHeapBytes } : null)),
  });
  return classifier;
}
