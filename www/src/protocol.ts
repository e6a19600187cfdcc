import type { Prefetched } from './cache.js';
import type { ManyItem } from './engine.js';
import type { WireError } from './errors.js';
import type { Backend, BackendFallback, BackendRequest, Decision, MemoryState, ModelInfo, ProgressEvent } from './types.js';

/** One operation on the shop's adaptation memory (see `Engine.adapt`). */
export type AdaptOp =
  | { op: 'setTaxonomy'; paths: string[] }
  | { op: 'addExamples'; titles: string[]; paths: string[] }
  | { op: 'learn'; title: string; path: string }
  | { op: 'forgetTitle'; title: string }
  | { op: 'forgetPath'; path: string }
  | { op: 'similar'; title: string; k: number }
  | { op: 'explain'; title: string; category: number }
  | { op: 'export' }
  | { op: 'import'; bytes: Uint8Array }
  | { op: 'info' }
  | { op: 'categories' }
  | { op: 'readTaxonomy'; text: string }
  | { op: 'setMaxExamples'; cap: number };

/** Main thread -> worker. */
export type Request =
  /** `prefetch`: 'compiled' (the page's wasm module) and 'prefetched' (its read of the cached model) follow. */
  | { type: 'init'; modelUrl: string; wasmUrl: string; fallbackWasmUrl?: string; gpuUrl: string; gpuWasmUrl: string; gpuTimeoutMs: number; revalidateTimeoutMs: number; maxModelBytes: number; cache: string | false; backend: BackendRequest; prefetch: boolean; memory?: { persist: boolean; debounceMs: number; maxExamples?: number }; kernelVariant?: string }
  | { type: 'prefetched'; result: Prefetched }
  | { type: 'compiled'; module: WebAssembly.Module | null }
  | { type: 'suggest'; id: number; title: string; k: number; threshold: number }
  | { type: 'suggest-many'; id: number; titles: string[]; k: number; threshold: number }
  | { type: 'cancel'; id: number }
  /** Test hook: traps the wasm instance (see trapForTests in shelfwise-wasm). */
  | { type: 'trap'; id: number }
  /** Diagnostics (www/bench/soak.mjs): the wasm memory and JS heap where the model runs. */
  | { type: 'memory'; id: number }
  /** The shop's adaptation memory. */
  | { type: 'adapt'; id: number; op: AdaptOp }
  /** The page is going away (pagehide, or hidden): store a pending memory save now, not after its debounce. */
  | { type: 'flush' };

/** Worker -> main thread. */
export type Response =
  | { type: 'progress'; event: ProgressEvent }
  | { type: 'ready'; info: ModelInfo }
  /** `fatal`: the wasm instance trapped while loading (a restart backs off, as after any trap). */
  | { type: 'init-error'; error: WireError; fatal?: boolean }
  | { type: 'result'; id: number; decision: Decision; elapsedMs: number; backend: Backend; fallback?: BackendFallback }
  /** After each chunk of a batch: `done` of `total` titles. */
  | { type: 'many-progress'; id: number; done: number; total: number }
  /** `elapsedMs`: the batch's own time in the worker; a title over the limit has its own error. */
  | { type: 'result-many'; id: number; items: ManyItem[]; elapsedMs: number; backend: Backend; fallback?: BackendFallback }
  | { type: 'error'; id: number; error: WireError; fatal: boolean }
  /** `jsHeapBytes`: null where the context has no `performance.memory` (a worker). */
  | { type: 'memory'; id: number; wasmBytes: number; jsHeapBytes: number | null }
  /** An adaptation op's answer, and where the memory is kept now. */
  | { type: 'adapt-result'; id: number; value: unknown; memory: MemoryState }
  /** Not an error (MEMORY_QUOTA: a save refused for lack of space; the memory stays in RAM). */
  | { type: 'warning'; error: WireError; memory: MemoryState };
