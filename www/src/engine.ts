// Runs where the model runs (the worker, or the page with `worker: false`): loads the wasm module,
// fetches the model (Cache Storage first, revalidated against the server when online), verifies
// it by loading it, caches it keyed by its sha256, and answers suggest calls.
import init, {
  Classifier as WasmClassifier,
  KernelProbe,
  __wbg_reset_state as resetWasm,
  fallbackCode,
  kernelVariants,
  kernels as wasmKernels,
  readTaxonomy,
  setKernelVariant,
  trapForTests,
  version as wasmVersion,
  warmUp,
} from '../pkg/shelfwise_wasm.js';
import { H_ETAG, H_LM, H_SHA, H_URL, cachedEntries, type Prefetched } from './cache.js';
import { ShelfwiseError, aborted, type WireError } from './errors.js';
import type { AdaptOp } from './protocol.js';
import type { Backend, BackendFallback, BackendRequest, Decision, KernelChoice, ModelInfo, ProgressEvent } from './types.js';

export interface EngineOptions {
  modelUrl: string;
  wasmUrl: string;
  /** The plain runtime, tried when `wasmUrl` (the relaxed SIMD one, picked by default) does not load. */
  fallbackWasmUrl?: string;
  cache: string | false;
  backend: BackendRequest;
  /** URL of the WebGPU bundle's module (dist/gpu.js) and of its wasm. */
  gpuUrl: string;
  gpuWasmUrl: string;
  /** How long a GPU forward may take before it is given up (CreateClassifierOptions.gpuTimeoutMs). */
  gpuTimeoutMs: number;
  /** How long the server may take to answer a revalidation before the cached copy is used. */
  revalidateTimeoutMs: number;
  /** Largest model file downloaded (CreateClassifierOptions.maxModelBytes). */
  maxModelBytes: number;
  /** The page's read of the cached model (see createClassifier), instead of reading it here. */
  prefetched?: Promise<Prefetched> | null;
  /** The matmul inner loop to run instead of timing them (CreateClassifierOptions.kernelVariant). */
  kernelVariant?: string;
  /** The wasm module as the page compiled it (null: it could not; compile from wasmUrl here). */
  compiled?: Promise<WebAssembly.Module | null> | null;
}

type Progress = (e: ProgressEvent) => void;

let wasmReady: Promise<unknown> | null = null;

// The glue holds one wasm instance for this thread. A trap leaves it unusable (an allocator or a
// borrow caught mid-update), and without a worker a restart runs on this same thread: the instance
// is replaced at once (the glue's __wbg_reset_state, see build-wasm.sh: fresh memory, the module
// already compiled), and engines built on the old one throw StaleInstance, a trap of their own,
// so that their classifiers restart too (their objects point into the old memory).
let generation = 0;

class StaleInstance extends WebAssembly.RuntimeError {}

/** Whether `e` is a wasm trap; if it is a real one, the instance is replaced before the next call. */
export function trapped(e: unknown): boolean {
  if (!(e instanceof WebAssembly.RuntimeError)) return false;
  if (!(e instanceof StaleInstance) && wasmReady) {
    generation += 1;
    wasmReady = wasmReady.then(() => (resetWasm(), warmUp(!subtle)));
    wasmReady.catch(() => (wasmReady = null));
  }
  return true;
}

const subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle;

/**
 * Instantiates the wasm: the module the page compiled when it sent one (see createClassifier), else
 * from `wasmUrl`; if that fails and there is a `fallbackUrl` (a site that serves only the plain
 * runtime, as before the relaxed one existed), from there.
 */
function initWasm(wasmUrl: string, compiled?: Promise<WebAssembly.Module | null> | null, fallbackUrl?: string): Promise<unknown> {
  wasmReady ??= Promise.resolve(compiled)
    .then((module) => init({ module_or_path: module ?? wasmUrl }))
    .catch((e: unknown) => {
      if (!fallbackUrl) throw e;
      console.warn(`shelfwise: cannot load ${wasmUrl}; loading ${fallbackUrl}`, e);
      return init({ module_or_path: fallbackUrl });
    })
    // Let the engine optimise the load and inference code (and, without native SHA-256, the
    // wasm's own checksum code) before the model's few long calls: see warmUp in shelfwise-wasm.
    .then(() => warmUp(!subtle))
    .catch((e: unknown) => {
    wasmReady = null;
    throw new ShelfwiseError('WASM_LOAD', `cannot load the wasm module from ${wasmUrl}: ${String(e)}`, { cause: e });
  });
  return wasmReady;
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** sha256 digests (hex) of a model file's body and payload, handed to the wasm loaders. */
interface Digests {
  body: string;
  /** Not computed for a copy from the cache: see verifyAndLoad. */
  payload: string | null;
}

/**
 * Parses and verifies a model file. The sha256 checks run on the platform's native SHA-256 when
 * there is one (several times faster than hashing in wasm), while the wasm may still compile.
 * A download gets both of the file's checks (body, payload) and the whole file's hash for the
 * cache key. A copy from our cache was checked so before it was stored: it is trusted to be what
 * was stored (its stored checksum stands for the body's digest), and the loader's structural
 * checks still run (no hashing on a warm start; Chromium hashes on the calling thread).
 */
async function verifyAndLoad(
  bytes: Uint8Array<ArrayBuffer>,
  from: 'network' | 'cache',
  wasm: Promise<unknown>,
): Promise<{ clf: WasmClassifier; sha: string | null; digests: Digests | null }> {
  // Header: magic (8), version (4), manifest length (4, LE), ...; 28 bytes, then the manifest.
  const payloadStart = bytes.length >= 28 ? 28 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true) : Infinity;
  const end = bytes.length - 32;
  if (!subtle || payloadStart > end) {
    await wasm;
    return { clf: WasmClassifier.load(bytes), sha: null, digests: null }; // the loader names the damage
  }
  const digest = async (b: Uint8Array<ArrayBuffer>) => hex(await subtle.digest('SHA-256', b));
  const network = from === 'network';
  const [body, payload, sha] = await Promise.all([
    // Our own cache entry was hashed in full before it was stored: its stored checksum (the
    // file's last 32 bytes) is trusted as the body's digest instead of hashing 10 MB again on
    // every start (15 ms here, more on a phone). What a damaged copy would break is still caught
    // by the loader's checks of every structure it reads (a truncated copy, a bad manifest).
    network ? digest(bytes.subarray(0, end)) : hex(bytes.slice(end).buffer),
    network ? digest(bytes.subarray(payloadStart, end)) : null,
    network ? digest(bytes) : null,
    wasm,
  ]);
  return { clf: WasmClassifier.loadWithDigests(bytes, body, payload), sha, digests: { body, payload } };
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  if (subtle) return hex(await subtle.digest('SHA-256', bytes));
  // Not a secure context: fall back to the file's own trailing checksum (verified by the loader).
  return 'tail:' + hex(bytes.slice(bytes.length - 32).buffer);
}

async function openCache(name: string | false): Promise<Cache | null> {
  if (!name || typeof caches === 'undefined') return null;
  try {
    return await caches.open(name);
  } catch {
    return null; // opaque origins, private modes: run without a persistent cache
  }
}

/** A cached model entry, read here or by the page. */
interface CacheEntry {
  key: string;
  header(name: string): string | null;
  read(): Promise<ArrayBuffer>;
}

/** The cached copy, as the page read it when it could, else read here. */
async function findEntry(cache: Cache, opts: EngineOptions): Promise<CacheEntry | null> {
  const pre = opts.prefetched ? await opts.prefetched : null;
  if (pre?.looked) {
    const copy = pre.copy;
    return copy && { key: copy.key, header: (n) => copy.headers[n] ?? null, read: async () => copy.bytes };
  }
  const [found] = await cachedEntries(cache, opts.modelUrl);
  return found ? { key: found.key, header: (n) => found.res.headers.get(n), read: () => found.res.arrayBuffer() } : null;
}

function tooBig(url: string, bytes: number, max: number): ShelfwiseError {
  return new ShelfwiseError('MODEL_FETCH', `the model at ${url} is ${bytes} bytes or more, over maxModelBytes (${max})`);
}

async function readBody(res: Response, fromCache: boolean, onProgress: Progress, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer>> {
  const len = Number(res.headers.get('content-length'));
  // content-length is the encoded size when the server compresses: only trust it for identity.
  const total = len > 0 && !res.headers.get('content-encoding') ? len : null;
  // A huge announced (or actual) length is refused before it is allocated, not after.
  if (len > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw tooBig(res.url, len, maxBytes);
  }
  if (!res.body) {
    const all = new Uint8Array(await res.arrayBuffer());
    if (all.length > maxBytes) throw tooBig(res.url, all.length, maxBytes);
    return all;
  }
  const reader = res.body.getReader();
  let buf = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  let last = 0;
  for (;;) {
    if (signal?.aborted) {
      await reader.cancel().catch(() => {});
      throw aborted('model download');
    }
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooBig(res.url, loaded + value.length, maxBytes);
    }
    if (loaded + value.length > buf.length) {
      const bigger = new Uint8Array(Math.min(maxBytes, Math.max(buf.length * 2, loaded + value.length)));
      bigger.set(buf.subarray(0, loaded));
      buf = bigger;
    }
    buf.set(value, loaded);
    loaded += value.length;
    const now = Date.now();
    if (now - last > 50) {
      last = now;
      onProgress({ phase: 'download', loaded, total, fromCache });
    }
  }
  onProgress({ phase: 'download', loaded, total: total ?? loaded, fromCache });
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

interface Loaded {
  clf: WasmClassifier;
  /** The verified file (for the WebGPU encoder) and its digests, when computed. */
  file: Uint8Array<ArrayBuffer>;
  digests: Digests | null;
  bytes: number;
  sha256: string;
  fromCache: boolean;
}

async function loadFromCache(
  cache: Cache,
  entry: CacheEntry,
  wasm: Promise<unknown>,
  onProgress: Progress,
  signal?: AbortSignal,
): Promise<Loaded | null> {
  onProgress({ phase: 'cache', loaded: 0, total: null, fromCache: true });
  try {
    // One read (no streaming progress: a local copy arrives at once).
    const bytes = new Uint8Array(await entry.read());
    if (signal?.aborted) throw aborted('model load');
    onProgress({ phase: 'download', loaded: bytes.length, total: bytes.length, fromCache: true });
    onProgress({ phase: 'verify', loaded: bytes.length, total: bytes.length, fromCache: true });
    const { clf, digests } = await verifyAndLoad(bytes, 'cache', wasm);
    return { clf, file: bytes, digests, bytes: bytes.length, sha256: entry.header(H_SHA) ?? '', fromCache: true };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ABORTED' || code === 'WASM_LOAD') throw e;
    await cache.delete(entry.key).catch(() => {}); // a damaged cache entry: drop it, use the network
    return null;
  }
}

/** The model's file at `url`, asked to answer 304 when it still matches `validators`. */
async function fetchModel(url: string, validators: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { headers: validators, cache: 'no-store', signal: signal ?? null });
  } catch (e) {
    if (signal?.aborted) throw aborted('model download');
    throw new ShelfwiseError('MODEL_FETCH', `cannot fetch the model from ${url}: ${String(e)}`, { cause: e });
  }
}

const TIMED_OUT = Symbol('timed out');

/** `p`, or TIMED_OUT once `ms` have passed (no limit past setTimeout's 2^31 - 1 ms). */
function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  if (!(ms <= 2 ** 31 - 1)) return p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms))));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function loadModel(opts: EngineOptions, wasm: Promise<unknown>, onProgress: Progress, signal?: AbortSignal): Promise<Loaded> {
  const cache = await openCache(opts.cache);
  const entry = cache ? await findEntry(cache, opts) : null;
  const etag = entry?.header(H_ETAG) || '';
  const lastModified = entry?.header(H_LM) || '';
  const validators: Record<string, string> = etag ? { 'if-none-match': etag } : lastModified ? { 'if-modified-since': lastModified } : {};

  let res: Response | null = null;
  if (entry && cache) {
    // Build the model from the cached copy while the server is asked whether it changed (with no
    // validator to ask with, never re-download). Offline, the cached copy is the answer; so it is
    // when the server has not answered within revalidateTimeoutMs (a hung request must not hold
    // up a verified copy): the question is then withdrawn.
    const started = performance.now();
    const ask = new AbortController();
    const withdraw = () => ask.abort();
    signal?.addEventListener('abort', withdraw, { once: true });
    const asked = etag || lastModified ? fetchModel(opts.modelUrl, validators, ask.signal).catch((e: unknown) => e) : null;
    const loaded = await loadFromCache(cache, entry, wasm, onProgress, signal);
    const answer = loaded && asked ? await within(asked, opts.revalidateTimeoutMs - (performance.now() - started)) : await asked;
    signal?.removeEventListener('abort', withdraw);
    if (answer === TIMED_OUT) {
      ask.abort();
      console.warn(`shelfwise: no answer from ${opts.modelUrl} in ${opts.revalidateTimeoutMs} ms; using the cached copy`);
      return loaded as Loaded;
    }
    if (answer instanceof Error && (answer as { code?: string }).code === 'ABORTED') {
      loaded?.clf.free();
      throw answer;
    }
    res = answer instanceof Response ? answer : null;
    if (loaded && (!res || res.status === 304 || !res.ok)) return loaded;
    loaded?.clf.free(); // a new version is on its way (or the cached copy was damaged)
    // The cached copy is damaged and the 304 told us nothing: fetch it whole.
    if (!res || !res.ok) res = await fetchModel(opts.modelUrl, {}, signal);
  } else {
    res = await fetchModel(opts.modelUrl, {}, signal);
  }
  if (!res.ok) {
    throw new ShelfwiseError('MODEL_FETCH', `cannot fetch the model from ${opts.modelUrl}: HTTP ${res.status}`);
  }
  onProgress({ phase: 'download', loaded: 0, total: null, fromCache: false });
  let bytes: Uint8Array<ArrayBuffer>;
  let clf: WasmClassifier;
  let sha: string | null;
  let digests: Digests | null;
  try {
    bytes = await readBody(res, false, onProgress, opts.maxModelBytes, signal);
    onProgress({ phase: 'verify', loaded: bytes.length, total: bytes.length, fromCache: false });
    ({ clf, sha, digests } = await verifyAndLoad(bytes, 'network', wasm)); // throws MODEL_CORRUPT etc.: nothing bad gets cached
  } catch (e) {
    // A broken download of a new version: keep serving the verified copy we have.
    const code = (e as { code?: string }).code;
    if (entry && cache && code !== 'ABORTED' && code !== 'WASM_LOAD') {
      const fallback = await loadFromCache(cache, entry, wasm, onProgress, signal);
      if (fallback) {
        console.warn(`shelfwise: the model at ${opts.modelUrl} did not load (${code}); using the cached copy`, e);
        return fallback;
      }
    }
    throw e;
  }
  sha ??= await sha256(bytes);
  if (cache) {
    onProgress({ phase: 'store', loaded: bytes.length, total: bytes.length, fromCache: false });
    const key = new URL(opts.modelUrl);
    key.searchParams.set('shelfwise-sha256', sha);
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(bytes.length),
      [H_URL]: opts.modelUrl,
      [H_SHA]: sha,
    };
    const newEtag = res.headers.get('etag');
    const newLm = res.headers.get('last-modified');
    if (newEtag) headers[H_ETAG] = newEtag;
    if (newLm) headers[H_LM] = newLm;
    try {
      await cache.put(key.href, new Response(bytes, { headers }));
      // A new model version replaces the old entry (and any other copy of this URL's model).
      for (const old of await cachedEntries(cache, opts.modelUrl)) if (old.key !== key.href) await cache.delete(old.key);
    } catch (e) {
      console.warn('shelfwise: cannot cache the model (quota?); it will be downloaded again next time', e);
    }
  }
  return { clf, file: bytes, digests, bytes: bytes.length, sha256: sha, fromCache: false };
}

/**
 * Picks the faster of the runtime's matmul inner loops (see ModelInfo.wasmKernelChoice): an
 * earlier load's verdict from the cache, else a timing here: each loop runs the probe product a
 * few times (the first runs let V8 optimise it), then five alternating timed runs of 8 products
 * (about 2 ms each: a page's clock has 0.1 ms steps), the best kept (one run can be slowed by
 * anything else on the machine): about 25 ms, once per browser and runtime version, while the
 * model downloads.
 */
async function chooseKernels(cacheName: string | false, modelUrl: string, pinned?: string): Promise<KernelChoice> {
  const variants = kernelVariants();
  if (variants.length < 2) return { variant: variants[0] ?? null, why: 'only' };
  if (pinned && setKernelVariant(pinned)) return { variant: pinned, why: 'pinned' };
  // A cache of its own next to the model's (which holds model files only), one entry per origin.
  const cache = await openCache(cacheName && `${cacheName}:kernels`);
  const nav = globalThis.navigator as { userAgent?: string; hardwareConcurrency?: number } | undefined;
  const key = new URL('/shelfwise-kernels', modelUrl);
  key.searchParams.set('v', `${wasmVersion()} ${wasmKernels()} ${nav?.userAgent ?? ''} ${nav?.hardwareConcurrency ?? 0}`);
  try {
    const hit = await cache?.match(key.href);
    const saved = hit ? ((await hit.json()) as { variant?: unknown; timingsMs?: Record<string, number> }) : null;
    if (typeof saved?.variant === 'string' && setKernelVariant(saved.variant)) return { variant: saved.variant, why: 'cached', ...(saved.timingsMs ? { timingsMs: saved.timingsMs } : {}) };
  } catch {
    // an unreadable verdict is measured again
  }
  const probe = new KernelProbe();
  const best: Record<string, number> = {};
  try {
    for (const v of variants) {
      setKernelVariant(v);
      probe.run(3);
    }
    for (let round = 0; round < 5; round++) {
      for (const v of variants) {
        setKernelVariant(v);
        const t0 = performance.now();
        probe.run(8);
        best[v] = Math.min(best[v] ?? Infinity, (performance.now() - t0) / 8);
      }
    }
  } finally {
    probe.free();
  }
  const variant = variants.reduce((a, b) => (best[b]! < best[a]! ? b : a));
  setKernelVariant(variant);
  const timingsMs = Object.fromEntries(Object.entries(best).map(([v, ms]) => [v, Math.round(ms * 1000) / 1000]));
  await cache?.put(key.href, new Response(JSON.stringify({ variant, timingsMs }), { headers: { 'content-type': 'application/json' } })).catch(() => {});
  return { variant, why: 'measured', timingsMs };
}

/** The WebGPU bundle's encoder (crates/shelfwise-wasm-gpu), as the engine uses it. */
interface GpuEncoder {
  embed(ids: Uint32Array, lengths: Uint32Array): Promise<Float32Array>;
  /** Embeds the probe's ids and compares with the wasm encoder's embedding: the cosine, or GPU_ERROR. */
  check(ids: Uint32Array, reference: Float32Array): Promise<number>;
  readonly adapter: string;
  /** Destroys the device, so a forward in flight fails instead of running on; safe during `embed`. */
  destroy(): void;
  free(): void;
}

interface GpuModule {
  default(init: { module_or_path: string }): Promise<unknown>;
  probeTitle(): string;
  GpuEncoder: { load(bytes: Uint8Array, body?: string | null, payload?: string | null): Promise<GpuEncoder> };
}

/**
 * A GPU call, given up with GPU_ERROR after `ms` (the caller's gpuTimeoutMs). Every caller then
 * drops the GPU (dropGpu), whose device.destroy() stops the abandoned forward.
 */
function withTimeout<T>(call: Promise<T>, ms: number): Promise<T> {
  // setTimeout takes at most 2^31 - 1 ms (about 25 days) and fires at once beyond: no limit then.
  if (!(ms <= 2 ** 31 - 1)) return call;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ShelfwiseError('GPU_ERROR', `no answer from the GPU in ${ms / 1000} s (gpuTimeoutMs)`)), ms);
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The GPU's first forward, at load rather than on a seller's first title (whatever the driver
 * sets up on first use is paid here), and its embedding of the GPU bundle's probe title must agree with the
 * wasm encoder's, so that a GPU which answers wrongly is never used. The comparison is Rust's
 * (GpuEncoder.check: shelfwise_model::backend::check_probe, as in the CLI); here only the timeout.
 * Rejects with GPU_ERROR (disagreeing, or too slow) or the forward's own GPU_* code.
 */
async function checkGpu(mod: GpuModule, encoder: GpuEncoder, clf: WasmClassifier, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  const probe = mod.probeTitle();
  const cos = await withTimeout(encoder.check(clf.encode(probe), clf.embedding(probe)), timeoutMs);
  console.debug(`shelfwise: WebGPU checked on a probe title: cosine ${cos.toFixed(6)} to wasm, first forward ${Math.round(performance.now() - t0)} ms`);
}

/** Lets go of a GPU encoder that will not be used again; destroying its device stops a forward still in flight. */
function dropGpu(gpu: GpuEncoder): void {
  try {
    gpu.destroy();
    gpu.free();
  } catch {
    // a forward still holds it (free throws then) or the instance trapped: it is dropped anyway
  }
}

/** A GPU-side failure as a fallback record, its code by Rust's rule (shelfwise_model::backend::Fallback). */
function gpuFallback(e: unknown): BackendFallback {
  const code = (e as { code?: unknown })?.code;
  const message = String((e as { message?: unknown })?.message ?? e);
  return { from: 'webgpu', code: fallbackCode(typeof code === 'string' ? code : undefined) as BackendFallback['code'], message };
}

/**
 * Opens the browser's WebGPU and uploads the encoder's weights with the separate WebGPU bundle
 * (loaded only here). Rejects with `{ code: GPU_* }`: GPU_UNAVAILABLE without `navigator.gpu`, an
 * adapter or the bundle itself.
 */
async function openGpu(gpuUrl: string, gpuWasmUrl: string, loaded: Loaded, timeoutMs: number): Promise<{ encoder: GpuEncoder; adapter: string }> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (!gpu) throw new ShelfwiseError('GPU_UNAVAILABLE', 'no WebGPU here (navigator.gpu is missing)');
  // Ask for an adapter before downloading the bundle: most machines without one stop here.
  let adapter: unknown;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    throw new ShelfwiseError('GPU_UNAVAILABLE', `navigator.gpu.requestAdapter() failed: ${String(e)}`, { cause: e });
  }
  if (!adapter) throw new ShelfwiseError('GPU_UNAVAILABLE', 'navigator.gpu.requestAdapter() returned no adapter');
  const ai = (adapter as { info?: { vendor?: string; architecture?: string; description?: string } }).info;
  const name = [ai?.vendor, ai?.architecture, ai?.description].filter(Boolean).join(' ');
  let mod: GpuModule;
  try {
    mod = (await import(/* @vite-ignore */ /* webpackIgnore: true */ gpuUrl)) as GpuModule;
    await mod.default({ module_or_path: gpuWasmUrl });
  } catch (e) {
    throw new ShelfwiseError('GPU_UNAVAILABLE', `cannot load the WebGPU bundle ${gpuUrl}: ${String(e)}`, { cause: e });
  }
  const encoder = await mod.GpuEncoder.load(loaded.file, loaded.digests?.body ?? null, loaded.digests?.payload ?? null);
  try {
    await checkGpu(mod, encoder, loaded.clf, timeoutMs);
  } catch (e) {
    dropGpu(encoder);
    throw e;
  }
  return { encoder, adapter: name || encoder.adapter };
}

/** Titles a `suggestMany` chunk: one encoder pass (or GPU batch), then a chance to cancel. */
const MANY_CHUNK = 16;

/** A title of a batch: its decision, or its own error (a title over the limit). */
export type ManyItem = Decision | { error: WireError };

export interface EngineManyResult {
  items: ManyItem[];
  /** The batch's own time (not that of requests answered between its chunks). */
  elapsedMs: number;
  backend: Backend;
  fallback?: BackendFallback;
}

export interface EngineResult {
  decision: Decision;
  elapsedMs: number;
  backend: Backend;
  /** Set when this request was meant for WebGPU and ran on wasm instead. */
  fallback?: BackendFallback;
}

export class Engine {
  private constructor(
    private readonly clf: WasmClassifier,
    readonly info: ModelInfo,
    /** The WebGPU encoder while it works; null on wasm (never chosen, unavailable, or failed). */
    private gpu: GpuEncoder | null,
    private readonly gpuTimeoutMs: number,
    private readonly generation: number,
  ) {}

  /** Throws StaleInstance when the wasm instance this engine was built on has been replaced (see `trapped`). */
  private live(): void {
    if (this.generation !== generation) throw new StaleInstance('the wasm instance trapped and was replaced: this classifier restarts');
  }

  static async create(opts: EngineOptions, onProgress: Progress, signal?: AbortSignal): Promise<Engine> {
    // Compile the wasm while the model is read (from the cache or the network).
    const wasm = initWasm(opts.wasmUrl, opts.compiled, opts.fallbackWasmUrl);
    const gen = generation;
    wasm.catch(() => {}); // reported where it is awaited
    // The inner loop's verdict is read (or timed) while the model is read: off the critical path.
    const choosing = wasm.then(() => chooseKernels(opts.cache, opts.modelUrl, opts.kernelVariant));
    choosing.catch(() => {}); // awaited below, after the model (whose errors come first)
    const loaded = await loadModel(opts, wasm, onProgress, signal);
    const kernelChoice = await choosing.catch((e: unknown): KernelChoice => {
      console.warn('shelfwise: cannot time the kernel variants; keeping the default', e);
      return { variant: kernelVariants()[0] ?? null, why: 'default' };
    });
    const manifest = loaded.clf.manifest() as Record<string, unknown> & { name: string; labels: string[]; payload_sha256: string };
    // Backend rule: 'wasm' never touches navigator.gpu; 'webgpu' opens the GPU now and falls back
    // to wasm (reported in info.fallback) when it cannot; 'auto' is wasm, because the package
    // classifies one title per request and one title does not pay for a GPU round trip (see
    // www/README.md).
    let gpu: GpuEncoder | null = null;
    let adapter = '';
    let fallback: BackendFallback | undefined;
    if (opts.backend === 'webgpu') {
      try {
        ({ encoder: gpu, adapter } = await openGpu(opts.gpuUrl, opts.gpuWasmUrl, loaded, opts.gpuTimeoutMs));
      } catch (e) {
        fallback = gpuFallback(e);
        console.warn(`shelfwise: WebGPU backend not used (${fallback.code}); running on wasm`, e);
      }
    }
    const info: ModelInfo = {
      name: manifest.name,
      sha256: loaded.sha256,
      payloadSha256: manifest.payload_sha256,
      labelCount: loaded.clf.labelCount,
      labels: manifest.labels,
      bytes: loaded.bytes,
      fromCache: loaded.fromCache,
      backend: gpu ? 'webgpu' : 'wasm',
      requestedBackend: opts.backend,
      ...(gpu ? { gpuAdapter: adapter } : {}),
      ...(fallback ? { fallback } : {}),
      wasmVersion: wasmVersion(),
      wasmKernels: wasmKernels(),
      wasmKernelChoice: kernelChoice,
      maxTitleBytes: loaded.clf.maxTitleBytes,
      manifest,
      memory: { persisted: false, reason: 'not loaded yet', pending: false },
    };
    onProgress({ phase: 'ready', loaded: loaded.bytes, total: loaded.bytes, fromCache: loaded.fromCache });
    return new Engine(loaded.clf, info, gpu, opts.gpuTimeoutMs, gen);
  }

  /**
   * One title on the chosen backend. On WebGPU: token ids from the main wasm, the pooled
   * embedding from the GPU, the head and decision from the main wasm (the same code as on wasm).
   * Any GPU failure (device lost, GPU error, a bad embedding) drops the GPU for good and answers
   * this same request on wasm, with `fallback` set.
   */
  async suggest(title: string, k: number, threshold: number): Promise<EngineResult> {
    this.live();
    const t0 = performance.now();
    let fallback: BackendFallback | undefined;
    if (this.gpu && title.trim()) {
      const ids = this.clf.encode(title); // INPUT_TOO_LONG is the caller's error, not the GPU's
      try {
        const [decision] = await this.gpuDecide(this.gpu, [title], [ids], k, threshold);
        return { decision: decision as Decision, elapsedMs: performance.now() - t0, backend: 'webgpu' };
      } catch (e) {
        fallback = this.gpuFailed(e);
      }
    }
    const decision = this.clf.suggest(title, k, threshold) as Decision;
    return { decision, elapsedMs: performance.now() - t0, backend: 'wasm', ...(fallback ? { fallback } : {}) };
  }

  /**
   * Many titles, in chunks of MANY_CHUNK: one encoder pass a chunk (on the GPU, one batch), then
   * `afterChunk(done)`, where the caller reports progress, answers requests that came meanwhile
   * (keystrokes overtake a batch) and throws to cancel. A title over the limit gets its own error
   * (the rest of the batch runs). A GPU failure falls back to wasm for that chunk and the rest, as
   * in `suggest`.
   */
  async suggestMany(titles: string[], k: number, threshold: number, afterChunk: (done: number) => Promise<void>): Promise<EngineManyResult> {
    const utf8 = new TextEncoder();
    const items: ManyItem[] = [];
    let elapsedMs = 0;
    let fallback: BackendFallback | undefined;
    let backend: Backend = this.gpu ? 'webgpu' : 'wasm';
    for (let i = 0; i < titles.length; i += MANY_CHUNK) {
      this.live(); // a title answered between chunks may have trapped
      const t0 = performance.now();
      const chunk = titles.slice(i, i + MANY_CHUNK);
      const errors = chunk.map((t, j): WireError | null => {
        const len = utf8.encode(t).length;
        return len > this.info.maxTitleBytes ? { code: 'INPUT_TOO_LONG', message: `title ${i + j} is ${len} bytes of UTF-8, over the limit of ${this.info.maxTitleBytes}` } : null;
      });
      const ok = chunk.filter((_, j) => !errors[j]);
      let decided: Decision[] | null = null;
      if (this.gpu) {
        const encoded = ok.filter((t) => t.trim()).map((t) => this.clf.encode(t)); // lengths checked above
        try {
          decided = await this.gpuDecide(this.gpu, ok, encoded, k, threshold);
        } catch (e) {
          fallback = this.gpuFailed(e);
          backend = 'wasm';
        }
      }
      decided ??= ok.length ? (this.clf.suggestMany(ok, k, threshold) as Decision[]) : [];
      let n = 0;
      for (const e of errors) items.push(e ? { error: e } : (decided[n++] as Decision));
      elapsedMs += performance.now() - t0;
      await afterChunk(i + chunk.length);
    }
    return { items, elapsedMs, backend, ...(fallback ? { fallback } : {}) };
  }

  /**
   * Titles on the GPU: one batched forward of `encoded` (the token ids of the non-blank titles, in
   * order, from the main wasm), then the main wasm's head per title; blank titles get the empty
   * decision.
   */
  private async gpuDecide(gpu: GpuEncoder, titles: string[], encoded: Uint32Array[], k: number, threshold: number): Promise<Decision[]> {
    const ids = new Uint32Array(encoded.reduce((n, e) => n + e.length, 0));
    encoded.reduce((at, e) => (ids.set(e, at), at + e.length), 0);
    const hidden = this.clf.hidden;
    const emb = encoded.length ? await withTimeout(gpu.embed(ids, Uint32Array.from(encoded, (e) => e.length)), this.gpuTimeoutMs) : new Float32Array(0);
    let row = 0;
    return titles.map((t) => {
      if (!t.trim()) return this.clf.suggest(t, k, threshold) as Decision; // the empty decision
      const e = emb.subarray(row * hidden, (row + 1) * hidden);
      row += 1;
      return this.clf.suggestWithEmbedding(t, e, k, threshold) as Decision;
    });
  }

  /** Bytes of this thread's wasm memory (it grows, never shrinks: a leak shows here). */
  async wasmBytes(): Promise<number> {
    this.live();
    const exports = (await init()) as { memory: WebAssembly.Memory }; // initialised already: the current instance's exports
    return exports.memory.buffer.byteLength;
  }

  /** Test hook (see trapForTests in shelfwise-wasm): traps the wasm instance. */
  // The shop's adaptation memory (issue #19): the wasm Classifier's shop methods, one op a call.
  // `changed`: the memory changed (the host stores it). Errors carry the model's codes.
  adapt(op: AdaptOp): { value: unknown; changed: boolean } {
    this.live();
    const c = this.clf;
    switch (op.op) {
      case 'setTaxonomy':
        return { value: c.setTaxonomy(op.paths), changed: true };
      case 'addExamples':
        return { value: c.addExamples(op.titles, op.paths), changed: true };
      case 'learn':
        c.learn(op.title, op.path);
        return { value: null, changed: true };
      case 'forgetTitle':
        return { value: c.forgetTitle(op.title), changed: true };
      case 'forgetPath':
        return { value: c.forgetPath(op.path), changed: true };
      case 'similar':
        return { value: c.similar(op.title, op.k), changed: false };
      case 'explain':
        return { value: c.explain(op.title, op.category), changed: false };
      case 'export':
        return { value: c.exportMemory(), changed: false };
      case 'import':
        c.importMemory(op.bytes);
        return { value: null, changed: true };
      case 'info': {
        const i = c.memoryInfo() as { examples: number; categories: number; added_categories: number; bytes: number; cap: number; method: string };
        return {
          value: { examples: i.examples, categories: i.categories, addedCategories: i.added_categories, bytes: i.bytes, exportBytes: c.exportMemory().length, cap: i.cap, method: i.method },
          changed: false,
        };
      }
      case 'categories':
        return { value: c.labels(), changed: false };
      case 'readTaxonomy':
        return { value: readTaxonomy(op.text), changed: false };
      case 'setMaxExamples':
        c.setMaxExamples(op.cap);
        return { value: null, changed: true };
    }
  }

  /** The memory's bytes as `exportMemory` gives them (what IndexedDB stores). */
  exportMemory(): Uint8Array {
    return this.clf.exportMemory();
  }

  trap(): void {
    this.live();
    trapForTests();
  }

  /** A GPU failure: drops the GPU for good (later requests run on wasm) and says why. */
  private gpuFailed(e: unknown): BackendFallback {
    const fallback = gpuFallback(e);
    console.warn(`shelfwise: WebGPU failed (${fallback.code}); falling back to wasm for this and later requests`, e);
    if (this.gpu) dropGpu(this.gpu);
    this.gpu = null;
    return fallback;
  }
}
