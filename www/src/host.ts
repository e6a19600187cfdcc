// The message handler behind the worker (and behind `worker: false`, on the calling thread).
// Requests run one at a time (a WebGPU one is asynchronous: the next waits for it), except that
// single titles queued during a batch run between its chunks; cancelled ones (superseded while
// queued) are skipped.
import type { Prefetched } from './cache.js';
import { Engine, trapped } from './engine.js';
import { aborted, toWire } from './errors.js';
import { MemoryStore, openDatabase } from './memory.js';
import type { Request, Response } from './protocol.js';
import type { MemoryState } from './types.js';

export function createHost(post: (msg: Response) => void): (msg: Request) => void {
  let engine: Engine | null = null;
  // The shop's adaptation memory in IndexedDB (null: RAM only, `ramOnly` says why).
  let store: MemoryStore | null = null;
  const ramOnly: MemoryState = { persisted: false, reason: 'memory.persist is false: kept in RAM only', pending: false };
  const memoryState = (): MemoryState => (store ? { ...store.state } : ramOnly);
  const queue: Array<Extract<Request, { type: 'suggest' | 'suggest-many' | 'trap' | 'memory' | 'adapt' }>> = [];
  const cancelled = new Set<number>();
  let scheduled = false; // a drain is queued or running
  const running = new Set<number>(); // being answered (a batch, and a title between its chunks)
  let onPrefetched: ((p: Prefetched) => void) | null = null;
  let onCompiled: ((m: WebAssembly.Module | null) => void) | null = null;
  const tick = () => new Promise((r) => setTimeout(r, 0)); // lets queued messages (cancel, suggest) arrive

  const answer = async (req: Extract<Request, { type: 'suggest' | 'suggest-many' | 'trap' | 'memory' | 'adapt' }>) => {
    if (!engine) {
      post({ type: 'error', id: req.id, error: { code: 'INTERNAL', message: 'model not loaded' }, fatal: false });
      return;
    }
    const id = req.id;
    running.add(id);
    try {
      if (req.type === 'trap') {
        engine.trap();
      } else if (req.type === 'adapt') {
        const e = engine;
        const r = e.adapt(req.op);
        if (r.changed) store?.schedule(() => e.exportMemory());
        post({ type: 'adapt-result', id, value: r.value, memory: memoryState() });
      } else if (req.type === 'memory') {
        const heap = (performance as { memory?: { usedJSHeapSize: number } }).memory;
        post({ type: 'memory', id, wasmBytes: await engine.wasmBytes(), jsHeapBytes: heap ? heap.usedJSHeapSize : null });
      } else if (req.type === 'suggest-many') {
        const total = req.titles.length;
        const r = await engine.suggestMany(req.titles, req.k, req.threshold, async (done) => {
          post({ type: 'many-progress', id, done, total });
          if (done === total) return;
          // Between chunks, titles typed meanwhile go first: a keystroke waits for one chunk at most.
          await tick();
          for (let i = queue.findIndex((q) => q.type === 'suggest'); i >= 0; i = queue.findIndex((q) => q.type === 'suggest')) {
            const q = queue.splice(i, 1)[0]!;
            if (!cancelled.delete(q.id)) await answer(q);
          }
          if (cancelled.has(id)) throw aborted('suggestMany');
        });
        post({ type: 'result-many', id, items: r.items, elapsedMs: r.elapsedMs, backend: r.backend, ...(r.fallback ? { fallback: r.fallback } : {}) });
      } else {
        const r = await engine.suggest(req.title, req.k, req.threshold);
        post({ type: 'result', id, decision: r.decision, elapsedMs: r.elapsedMs, backend: r.backend, ...(r.fallback ? { fallback: r.fallback } : {}) });
      }
    } catch (e) {
      // A wasm trap (a bug, never expected) leaves the instance unusable: the client restarts it.
      post({ type: 'error', id, error: toWire(e), fatal: trapped(e) });
    } finally {
      running.delete(id);
      cancelled.delete(id);
    }
  };

  /** Opens this model's record and imports what it holds; a record that cannot be imported is kept
   * in place (a later change overwrites it) and the memory starts empty, with the reason in `info`. */
  const loadMemory = async (e: Engine, opts: { persist: boolean; debounceMs: number; maxExamples?: number }, opened: Promise<IDBDatabase> | null) => {
    try {
      await importStored(e, opts, opened);
    } finally {
      if (opts.maxExamples !== undefined) e.adapt({ op: 'setMaxExamples', cap: opts.maxExamples });
    }
  };
  const importStored = async (e: Engine, opts: { persist: boolean; debounceMs: number }, opened: Promise<IDBDatabase> | null) => {
    if (!opts.persist) return;
    store = new MemoryStore(e.info.sha256, opts.debounceMs, (q) => post({ type: 'warning', error: { code: 'MEMORY_QUOTA', message: q.message }, memory: memoryState() }), opened);
    const bytes = await store.load();
    if (!bytes) return;
    try {
      e.adapt({ op: 'import', bytes });
    } catch (err) {
      const w = toWire(err);
      store.state = { ...store.state, reason: `the stored memory was not loaded (${w.code}: ${w.message})` };
    }
  };

  const drain = async () => {
    try {
      let req = queue.shift();
      while (req && cancelled.delete(req.id)) req = queue.shift();
      if (req) await answer(req);
    } finally {
      if (queue.length) setTimeout(drain, 0); // let queued cancel messages arrive before the next request runs
      else scheduled = false;
    }
  };
  return (msg: Request) => {
    switch (msg.type) {
      case 'init': {
        const prefetched = msg.prefetch ? new Promise<Prefetched>((resolve) => (onPrefetched = resolve)) : null;
        const compiled = msg.prefetch ? new Promise<WebAssembly.Module | null>((resolve) => (onCompiled = resolve)) : null;
        const memory = msg.memory ?? { persist: true, debounceMs: 300 };
        // The memory database opens while the model loads: off the first suggestion's path
        // (opening IndexedDB takes tens of ms); its failure is reported by the load below.
        const opened = memory.persist ? openDatabase() : null;
        opened?.catch(() => {});
        Engine.create({ ...msg, prefetched, compiled }, (event) => post({ type: 'progress', event }))
          .then(async (e) => {
            await loadMemory(e, memory, opened);
            return e;
          })
          .then(
          (e) => {
            engine = e;
            post({ type: 'ready', info: { ...e.info, memory: memoryState() } });
          },
          (e: unknown) => post({ type: 'init-error', error: toWire(e), ...(trapped(e) ? { fatal: true } : {}) }),
        );
        break;
      }
      case 'compiled':
        onCompiled?.(msg.module);
        onCompiled = null;
        break;
      case 'prefetched':
        onPrefetched?.(msg.result);
        onPrefetched = null;
        break;
      case 'suggest':
      case 'suggest-many':
      case 'trap':
      case 'memory':
      case 'adapt':
        queue.push(msg);
        if (!scheduled) {
          scheduled = true;
          setTimeout(drain, 0);
        }
        break;
      case 'flush':
        // Not queued: a change answered already scheduled its save, which must not wait for the
        // debounce (the page may be gone by then). An op still queued saves on its own schedule.
        void store?.flush();
        break;
      case 'cancel':
        if (running.has(msg.id) || queue.some((r) => r.id === msg.id)) cancelled.add(msg.id);
        break;
    }
  };
}
