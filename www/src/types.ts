import type { ShelfwiseError } from './errors.js';

/** One segment of a category path; level 1 is the top-level category. */
export interface PathSegment {
  name: string;
  level: number;
}

/** One ranked category. */
export interface Suggestion {
  /** Label index in the model's label space (stable for one model file). */
  id: number;
  /** Full path, top level first. */
  path: PathSegment[];
  /** Calibrated probability of exactly this category, in [0, 1]. */
  score: number;
  /** Probability of each ancestor (level 1 first) and of the category itself (last). */
  levelScores: number[];
}

/** The deepest category whose subtree probability reaches the threshold. */
export interface BackOff {
  path: PathSegment[];
  score: number;
}

/** What the model decides for one title (identical to the native CLI's `decision`). */
export interface Decision {
  suggestions: Suggestion[];
  /** True when the top suggestion's score is below the threshold (always true for a blank title). */
  abstained: boolean;
  /** Set when abstaining: the deepest confident category, if any. */
  backOff: BackOff | null;
}

/** Where the encoder ran: the wasm runtime (CPU), or the browser's WebGPU. */
export type Backend = 'wasm' | 'webgpu';
/**
 * 'wasm': always wasm, never touches `navigator.gpu`. 'webgpu': WebGPU when an adapter exists,
 * else wasm (reported in `fallback`). 'auto': wasm for now (the package classifies one title a
 * request, where a GPU round trip is not shown to pay off; see the README).
 */
export type BackendRequest = 'auto' | 'wasm' | 'webgpu';

/** WebGPU was wanted but this ran (or runs) on wasm: why. */
export interface BackendFallback {
  from: 'webgpu';
  code: 'GPU_UNAVAILABLE' | 'GPU_DEVICE_LOST' | 'GPU_ERROR';
  message: string;
}

export interface SuggestMeta {
  /** The backend that computed this result. */
  backend: Backend;
  /** Set on the request during which WebGPU failed (device lost, GPU error): it was answered on wasm. */
  fallback?: BackendFallback;
  /** Milliseconds the model took for this title (inside the worker). */
  elapsedMs: number;
  /** sha256 of the model file that answered. */
  modelSha256: string;
}

export interface SuggestResult extends Decision {
  meta: SuggestMeta;
}

export interface SuggestOptions {
  /** Number of suggestions (default 5). */
  k?: number;
  /** Abstain below this top score, in [0, 1] (default 0.5). */
  threshold?: number;
  /** Abort this request; it then rejects with a `ShelfwiseError` whose code is 'ABORTED'. */
  signal?: AbortSignal;
  /**
   * Requests in the same group supersede each other: when a newer one is made, older pending ones
   * reject with code 'ABORTED' (as-you-type). Default 'default'; `null` never supersedes.
   */
  group?: string | null;
}

export type ProgressPhase = 'cache' | 'download' | 'verify' | 'store' | 'ready';

export interface ProgressEvent {
  phase: ProgressPhase;
  /** Bytes received so far (phase 'download'). */
  loaded: number;
  /** Total bytes when known, otherwise null. */
  total: number | null;
  /** True when the model came from the persistent cache (no download). */
  fromCache: boolean;
}

export interface CreateClassifierOptions {
  /** URL of the `model.shelfwise` file. */
  modelUrl: string | URL;
  /** 'auto' (default), 'wasm' or 'webgpu' (falls back to wasm without WebGPU: see `ModelInfo.fallback`). */
  backend?: BackendRequest;
  /** URL of the optional WebGPU bundle's module `gpu.js` (default: next to this module). */
  gpuUrl?: string | URL;
  /**
   * With the WebGPU backend: how long one GPU forward may take, in ms, before it is given up and
   * the request (and every later one) runs on wasm; the load-time check of the GPU (see
   * `ModelInfo.fallback`) gets the same limit. Default 60 000; `Infinity` (or anything over
   * 2^31 - 1, setTimeout's limit) waits for ever. A software adapter (SwiftShader) takes
   * seconds a title, and once took over a minute for its first forward on a 2-core CI machine.
   */
  gpuTimeoutMs?: number;
  /**
   * With a cached copy: how long the server may take, in ms, to answer whether the model changed
   * before the verified cached copy is used as it is (the question is then withdrawn; the next
   * start asks again). Default 5 000; `Infinity` waits for the answer.
   */
  revalidateTimeoutMs?: number;
  /**
   * Largest model file downloaded, in bytes (default 512 MiB): a larger `Content-Length`, or a
   * body that grows past it, fails with `MODEL_FETCH` before it is allocated.
   */
  maxModelBytes?: number;
  /** Download and load progress. */
  onProgress?: (event: ProgressEvent) => void;
  /**
   * URL of the wasm runtime. Default: next to this module, `shelfwise_wasm_relaxed_bg.wasm` where
   * this thread's WebAssembly runs relaxed SIMD's 8-bit dot product correctly (a tiny probe module
   * is validated and run), else `shelfwise_wasm_bg.wasm`. Both compute the same results; the
   * relaxed build's matmuls are about 1.5× as fast. Given, it is used as is.
   */
  wasmUrl?: string | URL;
  /**
   * Pins the relaxed SIMD runtime's matmul inner loop ('sum16' or 'dot32', see
   * `ModelInfo.wasmKernelChoice`) instead of timing both once. Results are the same either way;
   * for reproducible benchmarks. Ignored by the plain runtime, which has one.
   */
  kernelVariant?: 'sum16' | 'dot32';
  /** URL of the worker module (default: `worker.js` next to this module). */
  workerUrl?: string | URL;
  /** Run in a Web Worker (default true; false runs on the calling thread). */
  worker?: boolean;
  /** Cache Storage name (default 'shelfwise-models-v1'); `false` disables persistent caching. */
  cache?: string | false;
  /**
   * With a worker: compile the wasm and read the cached model on this thread while the worker
   * starts, then hand both to it (default true: the fastest start). Compiling here needs
   * `'wasm-unsafe-eval'` in this page's CSP; without it the browser reports a CSP violation and
   * the worker compiles instead. `false` leaves both to the worker.
   */
  prefetch?: boolean;
  /** Abort loading. */
  signal?: AbortSignal;
  /**
   * The shop's adaptation memory (`setTaxonomy`, `addExamples`, `learn`, ...): `persist` (default
   * true) keeps it in IndexedDB, one record per model file (sha256) in this origin, loaded on
   * create; `debounceMs` (default 300) is how long after the last change it is stored;
   * `maxExamples` (default 20 000) caps the titles remembered (beyond it, the oldest example of
   * the category with the most is evicted, one at a time).
   */
  memory?: { persist?: boolean; debounceMs?: number; maxExamples?: number };
  /** Warnings that are not errors (code 'MEMORY_QUOTA': the memory could not be stored and stays in RAM). */
  onWarning?: (warning: ShelfwiseError) => void;
}

/** Where the adaptation memory is kept (`ModelInfo.memory`, `MemoryInfo.storage`). */
export interface MemoryState {
  /** True when the memory is stored in IndexedDB (and loaded from it on the next start). */
  persisted: boolean;
  /** Why not, when `persisted` is false (IndexedDB unavailable, quota exceeded, turned off). */
  reason?: string;
  /** Set after a save was refused for lack of space (the memory is in RAM; the next change retries). */
  quota?: boolean;
  /** A change not stored yet (the debounce is running). */
  pending: boolean;
}

/** One labelled title for `addExamples`. */
export interface LabelledTitle {
  title: string;
  /** Category path, `'A > B > C'` or its segments. */
  path: string | string[];
}

/** What `setTaxonomy` and `addExamples` did (the native `shelfwise adapt` report). */
export interface AdaptReport {
  labels: number;
  added_labels: number;
  examples_in: number;
  empty: number;
  duplicates: number;
  contradictions: number;
  evicted: number;
  remembered: number;
  fit_samples: number;
  method: string;
  weights: Array<[string, number]>;
}

/** `memoryInfo()`: the size of the shop's memory and where it is kept. */
export interface MemoryInfo {
  examples: number;
  /** Categories suggested now (taxonomy leaves or the model's labels, plus added paths). */
  categories: number;
  /** Categories that examples or corrections added (not in the taxonomy). */
  addedCategories: number;
  /** Bytes of the remembered examples (embedding codes, titles, paths). */
  bytes: number;
  /** Bytes of `exportMemory()`. */
  exportBytes: number;
  /** Most examples remembered; beyond it the oldest example of the largest category is evicted. */
  cap: number;
  /** How the combination weights were chosen: 'cross-fitted' (5 folds of the memory) or 'prior' ('leave-one-out' in a memory exported by an earlier version). */
  method: string;
  storage: MemoryState;
}

/** A remembered product near a title (`similar`). */
export interface SimilarTitle {
  title: string;
  path: string;
  /** Cosine of the two titles' embeddings. */
  score: number;
}

/** `explain()`: each word's part in one category's score. */
export interface Explanation {
  category: string;
  /** The category's calibrated probability for the whole title. */
  score: number;
  /** In title order: score(title) − score(title without the word); positive supports the category. */
  words: Array<{ word: string; contribution: number }>;
}

export interface ModelInfo {
  name: string;
  /** sha256 of the model file (hex). */
  sha256: string;
  /** sha256 of the tensors and tokenizer, from the manifest. */
  payloadSha256: string;
  labelCount: number;
  labels: string[];
  /** Model file size in bytes. */
  bytes: number;
  fromCache: boolean;
  /** The backend requests run on (as of loading; a later GPU failure shows in `SuggestMeta`). */
  backend: Backend;
  requestedBackend: BackendRequest;
  /** The WebGPU adapter, when `backend` is 'webgpu'. */
  gpuAdapter?: string;
  /** Set when 'webgpu' was requested and could not be used at load time (no adapter, ...). */
  fallback?: BackendFallback;
  /** Version of the wasm bindings. */
  wasmVersion: string;
  /**
   * The wasm build's matmul kernels: 'wasm-relaxed-simd' (picked where a probe finds that this
   * engine runs relaxed SIMD's 8-bit dot product as specified, e.g. Chromium) or 'wasm-simd128'.
   * Same results.
   */
  wasmKernels: string;
  /**
   * Which of the runtime's matmul inner loops runs, and why. The relaxed SIMD runtime has two
   * that compute the same sums (so the same results, bit for bit) at CPU-dependent speeds:
   * 'dot32' (one instruction per 16 multiply-adds where the CPU has a dot-product instruction
   * for it: AVX-VNNI, ARM's dot product) and 'sum16' (fastest on x86-64 without AVX-VNNI, e.g.
   * AMD Zen 4). They are timed once on a representative product and the faster is kept; the
   * verdict is cached next to the model (keyed by runtime version, browser and core count).
   */
  wasmKernelChoice: KernelChoice;
  maxTitleBytes: number;
  /** The whole manifest as stored in the model file. */
  manifest: Record<string, unknown>;
  /** Where the shop's adaptation memory is kept (as of the last change). */
  memory: MemoryState;
}

/** See ModelInfo.wasmKernelChoice. */
export interface KernelChoice {
  /** The inner loop that runs ('sum16', 'dot32'), or null where the runtime has only one. */
  variant: string | null;
  /**
   * 'only' (one loop in this runtime), 'measured' (timed at this load), 'cached' (an earlier
   * load's timing), 'pinned' (CreateClassifierOptions.kernelVariant), 'default' (the timing
   * failed; the first loop runs).
   */
  why: 'only' | 'measured' | 'cached' | 'pinned' | 'default';
  /** The best time of each loop on the probe product (16 × 384 by 1536 × 384), ms. */
  timingsMs?: Record<string, number>;
}

/** Stable error codes: the model's own (see the README) plus those of the browser side. */
export type ErrorCode =
  | 'MODEL_NOT_A_MODEL'
  | 'MODEL_VERSION'
  | 'MODEL_TRUNCATED'
  | 'MODEL_CORRUPT'
  | 'MODEL_PAYLOAD_HASH'
  | 'MODEL_MANIFEST'
  | 'MODEL_TENSORS'
  | 'MODEL_TOKENIZER'
  | 'MODEL_INCOMPLETE'
  | 'INPUT_TOO_LONG'
  | 'INTERNAL'
  | 'LABELS'
  | 'ABORTED'
  | 'MODEL_FETCH'
  | 'WASM_LOAD'
  | 'WORKER'
  | 'INVALID_ARGUMENT'
  | 'DISPOSED'
  // WebGPU backend failures: never thrown to the caller (the request falls back to wasm); they
  // appear in `ModelInfo.fallback` / `SuggestMeta.fallback`.
  | 'GPU_UNAVAILABLE'
  | 'GPU_DEVICE_LOST'
  | 'GPU_ERROR'
  // The shop's adaptation memory: an import from another model, bytes that are not an export,
  // and (a warning, through `onWarning`, never thrown) a save refused for lack of space.
  | 'MEMORY_MODEL_MISMATCH'
  | 'MEMORY_CORRUPT'
  | 'MEMORY_QUOTA';

export interface SuggestManyOptions {
  /** Number of suggestions a title (default 5). */
  k?: number;
  /** Abstain below this top score, in [0, 1] (default 0.5). */
  threshold?: number;
  /** Abort the batch (checked between chunks of titles); it then rejects with code 'ABORTED'. */
  signal?: AbortSignal;
  /** Called after each chunk of titles the worker has done. */
  onProgress?: (progress: BatchProgress) => void;
}

/** How far a `suggestMany` batch is. */
export interface BatchProgress {
  /** Titles done so far. */
  done: number;
  /** Titles in the batch. */
  total: number;
}

/**
 * One title's result in a batch: what `suggest` gives it, or, for a title `suggest` rejects
 * (`INPUT_TOO_LONG`), `error` set with no suggestions (`abstained: true`).
 */
export interface SuggestManyResult extends SuggestResult {
  error?: ShelfwiseError;
}

export interface Classifier {
  /** Category suggestions for a listing title. Rejects with a `ShelfwiseError`. */
  suggest(title: string, options?: SuggestOptions): Promise<SuggestResult>;
  /**
   * Suggestions for many titles in one request (a catalogue import): one result a title, in
   * order, the same as `suggest` on each (scores within 1e-5). Runs in chunks of 16 titles in the
   * worker; `suggest` calls made meanwhile are answered between chunks (after one chunk at most).
   * `meta.elapsedMs` of each result is the batch's own time in the worker divided by its titles.
   * A title over the limit gets `error` (`INPUT_TOO_LONG`) in its result; the others are
   * answered. Rejects with a `ShelfwiseError` for the batch as a whole (arguments, abort).
   */
  suggestMany(titles: readonly string[], options?: SuggestManyOptions): Promise<SuggestManyResult[]>;
  /**
   * Adaptation to the shop (issue #19; see the README "Adapting in the browser"). Each change is
   * stored in IndexedDB (debounced) and takes effect from the next call.
   * `setTaxonomy`: the shop's category paths (inner nodes included; the leaves are suggested);
   * refits on the memory. Rejects `LABELS` for a blank segment.
   */
  setTaxonomy(paths: ReadonlyArray<string | string[]>): Promise<AdaptReport>;
  /** Labelled titles, oldest first: the latest of equal titles wins; a new path is added; refits. */
  addExamples(examples: ReadonlyArray<LabelledTitle>): Promise<AdaptReport>;
  /** A seller's correction: `title` is in `path` (added when new). Cheap: no refit. */
  learn(title: string, path: string | string[]): Promise<void>;
  /** Forgets a title's examples, or every example of a path (and the path, if examples added it): how many. */
  forget(what: { title: string } | { path: string | string[] }): Promise<number>;
  /** The remembered titles nearest to `title` (default k 5). */
  similar(title: string, options?: { k?: number }): Promise<SimilarTitle[]>;
  /** Each word's contribution to category `categoryId`'s score (a `Suggestion.id`). */
  explain(title: string, categoryId: number): Promise<Explanation>;
  /** The memory as bytes (taxonomy, examples, weights; tied to this model). */
  exportMemory(): Promise<Uint8Array>;
  /** Replaces the memory; rejects `MEMORY_MODEL_MISMATCH` (another model) or `MEMORY_CORRUPT`. */
  importMemory(bytes: Uint8Array | ArrayBuffer): Promise<void>;
  memoryInfo(): Promise<MemoryInfo>;
  /** The categories suggested now (`Suggestion.id` indexes this), `'A > B'` each. */
  categories(): Promise<string[]>;
  /**
   * The category paths of a taxonomy file's text, parsed by the same code as the CLI's
   * `shelfwise adapt --taxonomy`: one path per line (`A > B > C`; blank lines and `#` comments
   * skipped), Google's `taxonomy-with-ids` (`123 - A > B`) and Shopify's `categories.txt`
   * (`gid://shopify/TaxonomyCategory/aa-1 : A > B`). `'A > B'` each, in file order, once; for
   * `setTaxonomy`. Rejects `LABELS` naming a bad line. Changes nothing.
   */
  readTaxonomy(text: string): Promise<string[]>;
  /** The loaded model. */
  readonly info: ModelInfo;
  /** Stops the worker; later calls reject with code 'DISPOSED'. */
  dispose(): void;
}
