// A shop's adaptation memory (taxonomy, examples, corrections: `exportMemory`'s bytes) kept in
// IndexedDB, one record per model file (its sha256) in this origin's database. Runs where the
// model runs (the worker, or the page with `worker: false`). Where IndexedDB is missing or throws
// (private windows, opaque origins, a full disk) the memory stays in RAM and `MemoryState` says why.
import type { MemoryState } from './types.js';

const DB = 'shelfwise-memory-v1';
const STORE = 'memories';

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

/** Opens this origin's memory database (the caller may start it early: see host.ts). */
export function openDatabase(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!idb) return reject(new Error('IndexedDB is not available in this context'));
    const r = idb.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB cannot be opened'));
    r.onblocked = () => reject(new Error('IndexedDB open is blocked'));
  });
}

function why(e: unknown): string {
  const name = (e as { name?: string })?.name;
  const message = (e as { message?: string })?.message ?? String(e);
  return name ? `${name}: ${message}` : message;
}

function isQuota(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return name === 'QuotaExceededError' || (e as { code?: number })?.code === 22;
}

/** A save that failed for lack of space: the memory is kept in RAM (nothing lost). */
export class QuotaExceeded extends Error {}

/**
 * The record of one model. `load` and `save` never throw for an unusable IndexedDB: they report it
 * in `state` (persisted false, reason), and the caller keeps the memory in RAM. A save that hits the
 * quota rejects with `QuotaExceeded` after setting the state, so the caller can warn.
 */
export class MemoryStore {
  state: MemoryState = { persisted: false, reason: 'not loaded yet', pending: false };
  private db: Promise<IDBDatabase> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private latest: (() => Uint8Array) | null = null;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly key: string,
    private readonly debounceMs: number,
    private readonly onQuota: (e: QuotaExceeded) => void,
    /** The database, when it was opened already (while the model loaded). */
    opened: Promise<IDBDatabase> | null = null,
  ) {
    this.db = opened;
  }

  private database(): Promise<IDBDatabase> {
    this.db ??= openDatabase();
    return this.db;
  }

  /** The stored bytes, or null (none stored, or IndexedDB unusable: see `state`). */
  async load(): Promise<Uint8Array | null> {
    try {
      const db = await this.database();
      const v = await request(db.transaction(STORE, 'readonly').objectStore(STORE).get(this.key));
      this.state = { persisted: true, pending: false };
      return v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : null;
    } catch (e) {
      this.state = { persisted: false, reason: `IndexedDB unavailable (${why(e)}): the memory is kept in RAM only`, pending: false };
      return null;
    }
  }

  /** Stores `bytes()` after `debounceMs` without another change (the latest state wins). */
  schedule(bytes: () => Uint8Array): void {
    this.latest = bytes;
    if (!this.state.persisted && !this.state.quota) return; // RAM only
    this.state = { ...this.state, pending: true };
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.debounceMs);
  }

  /** Stores the latest state now (waits for a save under way). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const make = this.latest;
    this.latest = null;
    if (!make) return this.saving;
    this.saving = this.saving.then(async () => {
      try {
        const db = await this.database();
        const tx = db.transaction(STORE, 'readwrite');
        tx.objectStore(STORE).put(make(), this.key);
        // Commit now rather than when this task ends: a flush on pagehide races the page's end.
        (tx as { commit?: () => void }).commit?.();
        await new Promise<void>((resolve, reject) => {
          tx.oncomplete = () => resolve();
          tx.onabort = tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write aborted'));
        });
        this.state = { persisted: true, pending: this.timer !== null };
      } catch (e) {
        if (isQuota(e)) {
          // Kept in RAM; the next change tries again (space may have been freed).
          this.state = { persisted: false, quota: true, reason: `storage quota exceeded (${why(e)}): the memory is kept in RAM`, pending: false };
          this.onQuota(new QuotaExceeded(this.state.reason));
        } else {
          this.state = { persisted: false, reason: `IndexedDB write failed (${why(e)}): the memory is kept in RAM`, pending: false };
        }
      }
    });
    return this.saving;
  }
}
