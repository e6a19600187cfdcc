// The package API in chromium: golden parity with the native CLI, argument and input errors,
// corrupted model files, superseded and aborted requests, backend fallback.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { MODEL, fixtureTitles, foreign, nativeReference, useServerAndBrowser } from './helpers.mjs';

const TOL = 1e-4;

function maxDiff(a, b, where) {
  assert.equal(a.length, b.length, `${where}: lengths`);
  return Math.max(0, ...a.map((x, i) => Math.abs(x - b[i])));
}

/** A tiny file that is a shelfwise model on the outside: magic, version 1, lengths, checksum. */
function craftedModel({ manifest = '{}', goodChecksum }) {
  const m = Buffer.from(manifest);
  const head = Buffer.alloc(28);
  head.write('SHLFWISE', 0, 'latin1');
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(m.length, 12);
  head.writeBigUInt64LE(0n, 16);
  head.writeUInt32LE(0, 24);
  const body = Buffer.concat([head, m]);
  const sum = goodChecksum ? createHash('sha256').update(body).digest() : Buffer.alloc(32, 7);
  return Buffer.concat([body, sum]);
}

describe('package API', () => {
  const env = useServerAndBrowser();
  let page;
  before(async () => {
    page = await env.browser.context.newPage();
    const bad = {
      'junk.shelfwise': Buffer.from('<!doctype html><title>404</title>'),
      'truncated.shelfwise': readFileSync(MODEL).subarray(0, 4096),
      'corrupt.shelfwise': craftedModel({ goodChecksum: false }),
      'manifest.shelfwise': craftedModel({ manifest: '{"name": 1}', goodChecksum: true }),
      'version.shelfwise': Buffer.concat([Buffer.from('SHLFWISE'), Buffer.from([9, 0, 0, 0]), Buffer.alloc(60)]),
    };
    await page.route('**/bad/*', (route) => {
      const name = new URL(route.request().url()).pathname.split('/').pop();
      return bad[name] ? route.fulfill({ body: bad[name], contentType: 'application/octet-stream' }) : route.fulfill({ status: 404, body: 'no' });
    });
    await page.goto(env.server.url + 'favicon.svg'); // any page of the origin
    await page.evaluate(async () => {
      const mod = await import('/dist/index.js');
      window.shelfwise = mod;
      window.clf = await mod.createClassifier({ modelUrl: '/model/model.shelfwise', backend: 'webgpu' });
    });
  });

  test('model info, and webgpu without an adapter falls back to wasm', async () => {
    const info = await page.evaluate(() => window.clf.info);
    const sha = createHash('sha256').update(readFileSync(MODEL)).digest('hex');
    assert.equal(info.sha256, sha);
    // This browser runs without --enable-unsafe-webgpu: no adapter (headless), so 'webgpu' falls
    // back to wasm at load time and says so (test/webgpu.test.mjs covers WebGPU itself).
    assert.equal(info.backend, 'wasm');
    assert.equal(info.requestedBackend, 'webgpu');
    assert.equal(info.fallback?.code, 'GPU_UNAVAILABLE', JSON.stringify(info.fallback));
    assert.equal(info.labelCount, info.labels.length);
    assert.ok(info.labelCount > 10);
    assert.match(info.wasmVersion, /^\d+\.\d+\.\d+/);
    // Chromium runs relaxed SIMD: the package picks the relaxed build by default.
    assert.equal(info.wasmKernels, 'wasm-relaxed-simd');
    const r = await page.evaluate(() => window.clf.suggest('ceramic coffee mug'));
    assert.equal(r.meta.backend, 'wasm');
    assert.equal(r.meta.fallback, undefined); // reported once, in info.fallback
    assert.equal(r.meta.modelSha256, sha);
  });

  test('golden parity: browser scores equal the native CLI (max abs diff <= 1e-4), with either wasm runtime and either inner loop', async () => {
    const titles = fixtureTitles();
    const native = nativeReference(titles);
    // The default (relaxed SIMD here, its inner loop timed), the relaxed runtime with each inner
    // loop pinned, then the plain simd128 build that browsers without relaxed SIMD get, chosen by
    // its URL.
    const runs = [
      [null, null, 'wasm-relaxed-simd'],
      [null, 'sum16', 'wasm-relaxed-simd'],
      [null, 'dot32', 'wasm-relaxed-simd'],
      ['/dist/shelfwise_wasm_bg.wasm', null, 'wasm-simd128'],
    ];
    const outputs = {};
    for (const [wasmUrl, kernelVariant, kernels] of runs) {
      const { info, out: browserOut } = await page.evaluate(async ({ ts, wasmUrl, kernelVariant }) => {
        const fresh = wasmUrl || kernelVariant;
        const opts = { modelUrl: '/model/model.shelfwise', ...(wasmUrl ? { wasmUrl } : {}), ...(kernelVariant ? { kernelVariant } : {}) };
        const clf = fresh ? await window.shelfwise.createClassifier(opts) : window.clf;
        const out = [];
        for (const t of ts) out.push(await clf.suggest(t, { k: 5, threshold: 0.5, group: null }));
        if (fresh) clf.dispose();
        return { info: clf.info, out };
      }, { ts: titles, wasmUrl, kernelVariant });
      assert.equal(info.wasmKernels, kernels);
      const choice = info.wasmKernelChoice;
      if (kernels === 'wasm-simd128') assert.deepEqual(choice, { variant: null, why: 'only' });
      else if (kernelVariant) assert.deepEqual(choice, { variant: kernelVariant, why: 'pinned' });
      else {
        assert.ok(['sum16', 'dot32'].includes(choice.variant) && ['measured', 'cached'].includes(choice.why), JSON.stringify(choice));
        assert.ok(choice.timingsMs.sum16 > 0 && choice.timingsMs.dot32 > 0, JSON.stringify(choice));
      }
      // Both inner loops compute the same sums: the same outputs, bit for bit.
      outputs[kernelVariant ?? kernels] = browserOut.map(({ meta, ...decision }) => decision);
      if (kernelVariant === 'dot32') assert.deepEqual(outputs.dot32, outputs.sum16);
      let worst = 0;
      titles.forEach((t, i) => {
        const n = native[i];
        assert.equal(n.title, t);
        const d = n.decision;
        const b = browserOut[i];
        assert.equal(b.abstained, d.abstained, `${kernels}: abstained for ${t}`);
        assert.deepEqual(b.suggestions.map((s) => s.path), d.suggestions.map((s) => s.path), `${kernels}: paths for ${t}`);
        assert.deepEqual(b.suggestions.map((s) => s.id), d.suggestions.map((s) => s.id), `${kernels}: ids for ${t}`);
        worst = Math.max(worst, maxDiff(b.suggestions.map((s) => s.score), d.suggestions.map((s) => s.score), t));
        b.suggestions.forEach((s, j) => (worst = Math.max(worst, maxDiff(s.levelScores, d.suggestions[j].levelScores, t))));
        assert.deepEqual(b.backOff?.path ?? null, d.backOff?.path ?? null, `${kernels}: backOff for ${t}`);
        if (b.backOff) worst = Math.max(worst, Math.abs(b.backOff.score - d.backOff.score));
      });
      console.log(`# parity (${kernels} ${kernelVariant ?? info.wasmKernelChoice.variant} ${JSON.stringify(info.wasmKernelChoice.timingsMs ?? {})}): ${titles.length} titles, max abs diff ${worst.toExponential(2)}`);
      assert.ok(worst <= TOL, `${kernels}: max abs diff ${worst}`);
    }
  });

  test('bad input: empty, blank, 100 kB, lone surrogates, emoji, markup, bad options', async () => {
    const r = await page.evaluate(async () => {
      const c = window.clf;
      const code = (p) => p.then(() => 'resolved', (e) => `${e instanceof Error}:${e.code}`);
      return {
        empty: await c.suggest(''),
        blank: await c.suggest(' \t\n '),
        huge: await code(c.suggest('x'.repeat(100_000))),
        limit: await code(c.suggest('x'.repeat(4096))),
        over: await code(c.suggest('é'.repeat(2049))),
        surrogates: (await c.suggest('\ud800 mug \udfff\ud83d')).suggestions.length,
        emoji: (await c.suggest('👟 running shoes 🏃🏽‍♀️')).suggestions.length,
        markup: (await c.suggest('<script>alert(1)</script><img src=x onerror=alert(2)> mug')).suggestions.length,
        nul: (await c.suggest('mug\u0000\u0001\uffff')).suggestions.length,
        k0: (await c.suggest('mug', { k: 0 })).suggestions.length,
        kBig: (await c.suggest('mug', { k: 1000 })).suggestions.length,
        kNeg: await code(c.suggest('mug', { k: -1 })),
        kFrac: await code(c.suggest('mug', { k: 1.5 })),
        thNaN: await code(c.suggest('mug', { threshold: NaN })),
        th2: await code(c.suggest('mug', { threshold: 2 })),
        notString: await code(c.suggest(42)),
        after: (await c.suggest('ceramic coffee mug')).suggestions.length,
        // Bad createClassifier options are refused before anything loads.
        badOptions: await Promise.all(
          [{ backend: 'gpu' }, { gpuTimeoutMs: -1 }, { gpuTimeoutMs: 0 }, { gpuTimeoutMs: NaN }, { gpuTimeoutMs: '5000' }, { kernelVariant: 'fast' }].map(async (o) => {
            const mod = await import('/dist/index.js');
            return code(mod.createClassifier({ modelUrl: '/model/model.shelfwise', ...o }));
          }),
        ),
      };
    });
    assert.deepEqual(r.empty, { suggestions: [], abstained: true, backOff: null, meta: r.empty.meta });
    assert.equal(r.blank.suggestions.length, 0);
    assert.equal(r.huge, 'true:INPUT_TOO_LONG');
    assert.equal(r.limit, 'resolved');
    assert.equal(r.over, 'true:INPUT_TOO_LONG');
    for (const k of ['surrogates', 'emoji', 'markup', 'nul']) assert.equal(r[k], 5, k);
    assert.equal(r.k0, 0);
    assert.ok(r.kBig > 5);
    for (const k of ['kNeg', 'kFrac', 'thNaN', 'th2', 'notString']) assert.equal(r[k], 'true:INVALID_ARGUMENT', k);
    assert.equal(r.after, 5);
    assert.deepEqual(r.badOptions, Array(6).fill('true:INVALID_ARGUMENT'));
  });

  test('corrupted model files reject with their code; the page stays usable', async () => {
    const codes = await page.evaluate(async () => {
      const out = {};
      for (const name of ['junk', 'truncated', 'corrupt', 'manifest', 'version', 'missing']) {
        try {
          await window.shelfwise.createClassifier({ modelUrl: `/bad/${name}.shelfwise` });
          out[name] = 'loaded';
        } catch (e) {
          out[name] = `${e instanceof Error}:${e.code}`;
        }
      }
      out.wasm = await window.shelfwise
        .createClassifier({ modelUrl: '/model/model.shelfwise', wasmUrl: '/dist/nope.wasm' })
        .then(() => 'loaded', (e) => `${e instanceof Error}:${e.code}`);
      out.after = (await window.clf.suggest('ceramic coffee mug')).suggestions.length;
      out.cached = (await caches.open('shelfwise-models-v1').then((c) => c.keys())).map((r) => r.url);
      out.cachedCount = out.cached.length;
      return out;
    });
    assert.equal(codes.junk, 'true:MODEL_NOT_A_MODEL');
    assert.equal(codes.truncated, 'true:MODEL_TRUNCATED');
    assert.equal(codes.corrupt, 'true:MODEL_CORRUPT');
    assert.equal(codes.manifest, 'true:MODEL_MANIFEST');
    assert.equal(codes.version, 'true:MODEL_VERSION');
    assert.equal(codes.missing, 'true:MODEL_FETCH');
    assert.equal(codes.wasm, 'true:WASM_LOAD');
    assert.equal(codes.after, 5);
    assert.ok(codes.cached.every((u) => !u.includes('/bad/')), `a bad model must not be cached: ${codes.cached}`);
    assert.equal(codes.cachedCount, 1, 'a wasm load failure keeps the cached model');
  });

  test('a newer request supersedes older ones; AbortSignal aborts', async () => {
    const r = await page.evaluate(async () => {
      const c = window.clf;
      const settle = (p) => p.then((v) => `ok:${v.suggestions.length}`, (e) => `${e.name}:${e.code}`);
      const typed = ['c', 'ce', 'cer', 'cera', 'ceramic mug'].map((t) => settle(c.suggest(t)));
      const other = settle(c.suggest('leather wallet', { group: 'other' }));
      const ctl = new AbortController();
      const aborted = settle(c.suggest('steel bottle', { group: 'third', signal: ctl.signal }));
      ctl.abort();
      const pre = settle(c.suggest('x', { group: 'fourth', signal: AbortSignal.abort() }));
      return { typed: await Promise.all(typed), other: await other, aborted: await aborted, pre: await pre };
    });
    assert.deepEqual(r.typed, ['AbortError:ABORTED', 'AbortError:ABORTED', 'AbortError:ABORTED', 'AbortError:ABORTED', 'ok:5']);
    assert.equal(r.other, 'ok:5');
    assert.equal(r.aborted, 'AbortError:ABORTED');
    assert.equal(r.pre, 'AbortError:ABORTED');
  });

  test('the model is cached by its sha256; worker: false works too', async () => {
    const r = await page.evaluate(async () => {
      const keys = (await caches.open('shelfwise-models-v1').then((c) => c.keys())).map((k) => k.url);
      const local = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise', worker: false });
      const s = await local.suggest('ceramic coffee mug');
      local.dispose();
      const disposed = await local.suggest('mug').then(() => 'resolved', (e) => e.code);
      return { keys, fromCache: local.info.fromCache, n: s.suggestions.length, disposed };
    });
    const sha = createHash('sha256').update(readFileSync(MODEL)).digest('hex');
    assert.deepEqual(r.keys.map((k) => new URL(k).searchParams.get('shelfwise-sha256')), [sha]);
    assert.equal(r.fromCache, true);
    assert.equal(r.n, 5);
    assert.equal(r.disposed, 'DISPOSED');
  });

  test('a new model version replaces the old cache entry; a damaged entry is refetched', async () => {
    const r = await page.evaluate(async () => {
      const name = 'shelfwise-test-replace';
      await caches.delete(name);
      const cache = await caches.open(name);
      const modelUrl = new URL('/model/model.shelfwise', location.href).href;
      const old = (etag) => new Response(new Uint8Array([1, 2, 3]), {
        headers: { 'x-shelfwise-model-url': modelUrl, 'x-shelfwise-sha256': 'old', 'x-shelfwise-etag': etag },
      });
      // An older version (another ETag): the server answers 200 with the new file.
      await cache.put(modelUrl + '?shelfwise-sha256=old', old('"old-version"'));
      const phases = [];
      const a = await window.shelfwise.createClassifier({ modelUrl, cache: name, onProgress: (p) => phases.push(p) });
      const keysA = (await cache.keys()).map((k) => k.url);
      a.dispose();
      // A damaged copy of the current version (same ETag, so the server answers 304).
      const res = await cache.match(keysA[0]);
      await cache.delete(keysA[0]);
      await cache.put(modelUrl + '?shelfwise-sha256=damaged', old(res.headers.get('x-shelfwise-etag')));
      const b = await window.shelfwise.createClassifier({ modelUrl, cache: name });
      const keysB = (await cache.keys()).map((k) => k.url);
      const n = (await b.suggest('ceramic mug')).suggestions.length;
      b.dispose();
      await caches.delete(name);
      return { phases, bytes: a.info.bytes, keysA, fromCacheA: a.info.fromCache, keysB, fromCacheB: b.info.fromCache, n, sha: a.info.sha256 };
    });
    assert.equal(r.fromCacheA, false);
    // Download progress, then verify, store and ready.
    const downloads = r.phases.filter((p) => p.phase === 'download' && p.loaded > 0);
    assert.ok(downloads.length >= 2, `download progress events: ${downloads.length}`);
    assert.equal(downloads.at(-1).loaded, r.bytes);
    assert.equal(downloads.at(-1).total, r.bytes);
    assert.deepEqual([...new Set(r.phases.map((p) => p.phase))].slice(-3), ['verify', 'store', 'ready']);
    assert.deepEqual(r.keysA.map((k) => new URL(k).searchParams.get('shelfwise-sha256')), [r.sha]);
    assert.equal(r.fromCacheB, false);
    assert.deepEqual(r.keysB.map((k) => new URL(k).searchParams.get('shelfwise-sha256')), [r.sha]);
    assert.equal(r.n, 5);
  });

  test('the page compiles the wasm and reads the cached model for the worker; without them the worker does both', async () => {
    const origin = env.server.origin;
    const wasmLoads = (requests, file) => requests.filter((u) => u.endsWith(`/dist/${file}`)).length;
    // A page whose CSP forbids compiling wasm on it (no 'wasm-unsafe-eval'): the page's compile
    // fails with a CSP violation, the worker (its own script's CSP) compiles instead.
    const strict = await env.browser.context.newPage();
    await strict.route('**/strict.html', (route) =>
      route.fulfill({
        contentType: 'text/html',
        headers: { 'content-security-policy': "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'" },
        body: '<!doctype html><title>strict</title>',
      }),
    );
    const requests = [];
    const seen = (req) => requests.push(req.url());
    env.browser.context.on('request', seen);
    try {
      await strict.goto(origin + '/strict.html');
      const r = await strict.evaluate(async () => {
        const violations = [];
        document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
        const { createClassifier } = await import('/dist/index.js');
        const c = await createClassifier({ modelUrl: '/model/model.shelfwise' });
        const top = (await c.suggest('ceramic coffee mug 350 ml')).suggestions[0];
        c.dispose();
        const off = await createClassifier({ modelUrl: '/model/model.shelfwise', prefetch: false });
        const top2 = (await off.suggest('ceramic coffee mug 350 ml')).suggestions[0];
        off.dispose();
        return { fromCache: c.info.fromCache, top, offFromCache: off.info.fromCache, top2, violations };
      });
      assert.equal(r.fromCache, true);
      assert.equal(r.offFromCache, true);
      assert.deepEqual(r.top2, r.top);
      assert.ok(r.violations.some((d) => d.startsWith('script-src')), `violations: ${r.violations}`);
      // The default (page compiles) and prefetch: false (worker compiles) each fetch the wasm
      // once; the blocked page compile fetched it a third time. It is the plain build: the
      // relaxed SIMD probe cannot compile on this page either.
      assert.equal(wasmLoads(requests, 'shelfwise_wasm_bg.wasm'), 3, requests.join('\n'));
      assert.equal(wasmLoads(requests, 'shelfwise_wasm_relaxed_bg.wasm'), 0, requests.join('\n'));
    } finally {
      env.browser.context.off('request', seen);
      await strict.close();
    }
    // With the test server's CSP (which allows wasm), the page's compile is used: one wasm fetch.
    requests.length = 0;
    env.browser.context.on('request', seen);
    try {
      const r = await page.evaluate(async () => {
        const c = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise' });
        const n = (await c.suggest('ceramic coffee mug')).suggestions.length;
        c.dispose();
        return { n, fromCache: c.info.fromCache };
      });
      assert.deepEqual(r, { n: 5, fromCache: true });
      assert.equal(wasmLoads(requests, 'shelfwise_wasm_relaxed_bg.wasm'), 1, requests.join('\n'));
      assert.equal(wasmLoads(requests, 'shelfwise_wasm_bg.wasm'), 0, requests.join('\n'));
    } finally {
      env.browser.context.off('request', seen);
    }
  });

  test('a site without the relaxed SIMD runtime (404) still loads, on the plain one', async () => {
    const ctx = env.browser.context;
    const missing = (route) => route.fulfill({ status: 404, contentType: 'text/plain', body: 'not deployed' });
    await ctx.route('**/dist/shelfwise_wasm_relaxed_bg.wasm', missing);
    const p = await ctx.newPage();
    try {
      p.on('console', (m) => m.type() === 'warning' && console.log(`# console: ${m.text().slice(0, 120)}`));
      await p.goto(env.server.url + 'favicon.svg');
      const r = await p.evaluate(async () => {
        const { createClassifier } = await import('/dist/index.js');
        const out = {};
        for (const worker of [true, false]) {
          const c = await createClassifier({ modelUrl: '/model/model.shelfwise', worker });
          out[worker ? 'worker' : 'page'] = { kernels: c.info.wasmKernels, top: (await c.suggest('ceramic coffee mug')).suggestions[0].path };
          c.dispose();
        }
        return out;
      });
      const want = await page.evaluate(async () => (await window.clf.suggest('ceramic coffee mug', { group: null })).suggestions[0].path);
      for (const where of ['worker', 'page']) {
        assert.equal(r[where].kernels, 'wasm-simd128', where);
        assert.deepEqual(r[where].top, want, where);
      }
    } finally {
      await p.close();
      await ctx.unroute('**/dist/shelfwise_wasm_relaxed_bg.wasm', missing);
    }
  });

  test('suggestMany gives each title the result suggest gives it; errors, abort, and suggest after it', async () => {
    const titles = fixtureTitles().slice(0, 40);
    const r = await page.evaluate(async (titles) => {
      const c = window.clf;
      const batch = [...titles.slice(0, 20), '', ...titles.slice(20)];
      const many = await c.suggestMany(batch, { k: 5, threshold: 0.5 });
      const one = [];
      for (const t of batch) one.push(await c.suggest(t, { k: 5, threshold: 0.5, group: null }));
      const code = (p) => p.then(() => 'resolved', (e) => e.code);
      const ctl = new AbortController();
      const aborted = code(c.suggestMany([...titles, ...titles, ...titles], { signal: ctl.signal }));
      ctl.abort();
      return {
        many: many.map((d) => ({ ids: d.suggestions.map((s) => s.id), scores: d.suggestions.map((s) => s.score), abstained: d.abstained, backend: d.meta.backend })),
        one: one.map((d) => ({ ids: d.suggestions.map((s) => s.id), scores: d.suggestions.map((s) => s.score), abstained: d.abstained })),
        empty: (await c.suggestMany([])).length,
        // The over-long title gets its own error; the others are answered as suggest answers them.
        tooLong: (await c.suggestMany(['mug', 'x'.repeat(5000), 'ceramic coffee mug'])).map((d) => [d.error instanceof window.shelfwise.ShelfwiseError ? d.error.code : d.error, d.suggestions.length, d.abstained]),
        notStrings: await code(c.suggestMany(['mug', 3])),
        aborted: await aborted,
        after: (await c.suggest('ceramic coffee mug')).suggestions.length,
      };
    }, titles);
    assert.equal(r.many.length, titles.length + 1);
    r.many.forEach((m, i) => {
      const o = r.one[i];
      assert.deepEqual(m.ids, o.ids, `title ${i}`);
      assert.equal(m.abstained, o.abstained, `title ${i}`);
      assert.equal(m.backend, 'wasm');
      assert.ok(maxDiff(m.scores, o.scores, `title ${i}`) <= 1e-5, `title ${i}: ${m.scores} vs ${o.scores}`);
    });
    assert.deepEqual(r.many[20].ids, []); // the blank title
    assert.deepEqual([r.empty, r.notStrings, r.aborted, r.after], [0, 'INVALID_ARGUMENT', 'ABORTED', 5]);
    assert.deepEqual(r.tooLong, [[undefined, 5, r.tooLong[0][2]], ['INPUT_TOO_LONG', 0, true], [undefined, 5, r.tooLong[2][2]]]);
  });

  test('no request leaves the origin', () => {
    assert.deepEqual(foreign(env.browser.requests, env.server.origin), []);
  });
});
