// The model's entry in Cache Storage, shared by the engine (which stores and reads it) and the page
// (which reads it while the worker starts; see createClassifier).

/** Headers of a cached model entry: the URL it came from, its sha256, and its HTTP validators. */
export const H_URL = 'x-shelfwise-model-url';
export const H_SHA = 'x-shelfwise-sha256';
export const H_ETAG = 'x-shelfwise-etag';
export const H_LM = 'x-shelfwise-last-modified';

/** A cached copy of a model file, as the page hands it to the worker (the bytes transferred). */
export interface CachedCopy {
  /** The entry's cache key (the model URL plus `?shelfwise-sha256=…`). */
  key: string;
  bytes: ArrayBuffer;
  /** The H_* headers the entry has. */
  headers: Record<string, string>;
}

/** What the page found: `looked: false` when it could not look (the worker then looks itself). */
export interface Prefetched {
  looked: boolean;
  copy: CachedCopy | null;
}

/**
 * Every cached copy of the model at `modelUrl` with its cache key (normally one). Entries are keyed
 * by the URL plus `?shelfwise-sha256=…` and name their URL and sha256 in headers (the URL may have
 * a query of its own). A stored Response has no URL of its own, so the keys come from `keys()`,
 * which lists the entries in the order `matchAll()` does: two lookups at once, paired by position
 * when every pair's sha256 agrees, else one lookup per key.
 */
export async function cachedEntries(cache: Cache, modelUrl: string): Promise<Array<{ key: string; res: Response }>> {
  const opts = { ignoreSearch: true };
  const [keys, all] = await Promise.all([cache.keys(modelUrl, opts), cache.matchAll(modelUrl, opts)]);
  const sha = (key: string) => new URL(key).searchParams.get('shelfwise-sha256');
  const paired = keys.length === all.length && keys.every((k, i) => sha(k.url) === all[i]?.headers.get(H_SHA));
  const pairs = paired
    ? keys.map((k, i) => ({ key: k.url, res: all[i] as Response | null }))
    : await Promise.all(keys.map(async (k) => ({ key: k.url, res: (await cache.match(k)) ?? null })));
  return pairs.filter((p): p is { key: string; res: Response } => p.res?.headers.get(H_URL) === modelUrl);
}

/** Reads the cached copy of the model at `modelUrl` from the Cache Storage `name`. Never throws. */
export async function readCachedCopy(name: string, modelUrl: string): Promise<Prefetched> {
  try {
    if (typeof caches === 'undefined') return { looked: false, copy: null };
    const [entry] = await cachedEntries(await caches.open(name), modelUrl);
    if (!entry) return { looked: true, copy: null };
    const { key, res } = entry;
    const headers: Record<string, string> = {};
    for (const h of [H_URL, H_SHA, H_ETAG, H_LM]) {
      const v = res.headers.get(h);
      if (v) headers[h] = v;
    }
    return { looked: true, copy: { key, bytes: await res.arrayBuffer(), headers } };
  } catch {
    return { looked: false, copy: null }; // opaque origins, private modes, a read error: the worker tries
  }
}
