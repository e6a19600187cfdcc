// Reliability of the package in chromium: a hung revalidation does not hold up a verified cached
// copy, a download over maxModelBytes is refused, a wasm trap restarts the classifier on a fresh
// instance (with and without a worker), and repeated traps stop after a few restarts.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MODEL, useServerAndBrowser } from './helpers.mjs';

describe('reliability', () => {
  const env = useServerAndBrowser();
  let page;
  before(async () => {
    page = await env.browser.context.newPage();
    const model = readFileSync(MODEL);
    // /hang/: the first request gets the model (with an ETag), every later one never an answer.
    let served = 0;
    await page.route('**/hang/model.shelfwise', (route) => {
      if (served++ === 0) return route.fulfill({ body: model, headers: { etag: '"v1"', 'content-type': 'application/octet-stream' } });
      return new Promise(() => {}); // a server that never answers
    });
    await page.goto(env.server.url + 'favicon.svg'); // any page of the origin
    await page.evaluate(async () => {
      window.shelfwise = await import('/dist/index.js');
      // Resolves to 'hung' instead of hanging the test when `p` does not settle in `ms`.
      window.settleWithin = (p, ms) =>
        Promise.race([p.then((v) => ({ ok: v }), (e) => ({ code: e.code, message: e.message })), new Promise((r) => setTimeout(() => r('hung'), ms))]);
    });
  });

  test('a revalidation the server never answers falls back to the verified cached copy', async () => {
    const r = await page.evaluate(async () => {
      const cache = 'shelfwise-test-hang';
      await caches.delete(cache);
      const opts = { modelUrl: '/hang/model.shelfwise', cache, revalidateTimeoutMs: 1000 };
      const first = await window.shelfwise.createClassifier(opts);
      first.dispose();
      const second = await window.settleWithin(window.shelfwise.createClassifier(opts), 60_000);
      const out = second === 'hung' ? 'hung' : { fromCache: second.ok?.info.fromCache, code: second.code, n: (await second.ok?.suggest('steel water bottle'))?.suggestions.length };
      second.ok?.dispose();
      await caches.delete(cache);
      return { firstFromCache: first.info.fromCache, second: out };
    });
    assert.deepEqual(r, { firstFromCache: false, second: { fromCache: true, code: undefined, n: 5 } });
  });

  test('a model over maxModelBytes is refused before it is read whole; bad limits are INVALID_ARGUMENT', async () => {
    const r = await page.evaluate(async () => {
      const tooBig = await window.settleWithin(window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise', cache: false, maxModelBytes: 1 << 20 }), 60_000);
      const bad = [];
      for (const o of [{ maxModelBytes: 0 }, { maxModelBytes: -1 }, { revalidateTimeoutMs: 0 }, { revalidateTimeoutMs: 'soon' }]) {
        bad.push(await window.settleWithin(window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise', ...o }), 10_000).then((x) => x.code));
      }
      return { code: tooBig.code, message: tooBig.message, bad };
    });
    assert.equal(r.code, 'MODEL_FETCH');
    assert.match(r.message, /maxModelBytes/);
    assert.deepEqual(r.bad, ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
  });

  for (const worker of [true, false]) {
    test(`a wasm trap restarts on a fresh instance (worker: ${worker})`, async () => {
      const r = await page.evaluate(async (worker) => {
        const c = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise', worker });
        const trap = c[Symbol.for('shelfwise.trapForTests')];
        const before = (await c.suggest('steel water bottle')).suggestions[0].path;
        const trapped = await window.settleWithin(trap(), 30_000);
        // The next call restarts (model from the cache) and answers as before.
        const after = await window.settleWithin(c.suggest('steel water bottle'), 60_000);
        c.dispose();
        return { trapped: trapped.code, same: JSON.stringify(after.ok?.suggestions[0].path) === JSON.stringify(before), after: after.code };
      }, worker);
      // Without a worker the trapped instance refuses to load a model again (INTERNAL): only a
      // fresh one answers.
      assert.deepEqual(r, { trapped: 'INTERNAL', same: true, after: undefined });
    });
  }

  test('without a worker, a trap restarts the other classifiers of the page too (their instance is gone)', async () => {
    const r = await page.evaluate(async () => {
      const opts = { modelUrl: '/model/model.shelfwise', worker: false };
      const [a, b] = [await window.shelfwise.createClassifier(opts), await window.shelfwise.createClassifier(opts)];
      const memory = await b[Symbol.for('shelfwise.memory')]();
      const before = (await b.suggest('steel water bottle')).suggestions[0].path;
      const trapped = await window.settleWithin(a[Symbol.for('shelfwise.trapForTests')](), 30_000);
      // b's model lived in the memory that a's trap left behind: b's next call is refused as a
      // trap (b restarts), the one after answers as before; so does a.
      const first = await window.settleWithin(b.suggest('steel water bottle'), 60_000);
      const [afterA, afterB] = await Promise.all([window.settleWithin(a.suggest('steel water bottle'), 60_000), window.settleWithin(b.suggest('steel water bottle'), 60_000)]);
      a.dispose();
      b.dispose();
      const same = (x) => JSON.stringify(x.ok?.suggestions[0].path) === JSON.stringify(before);
      return { trapped: trapped.code, first: first.code, a: same(afterA) || afterA.code, b: same(afterB) || afterB.code, pages: memory.wasmBytes > 0 && memory.wasmBytes % 65536 === 0, heap: memory.jsHeapBytes > 0 };
    });
    assert.deepEqual(r, { trapped: 'INTERNAL', first: 'INTERNAL', a: true, b: true, pages: true, heap: true });
  });

  test('a classifier that traps on every call backs off, then stops restarting with WORKER', async () => {
    const r = await page.evaluate(async () => {
      const events = []; // [time, phase] of every progress event: a restart's first one is when it began
      const c = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise', onProgress: (p) => events.push([performance.now(), p.phase]) });
      const trap = c[Symbol.for('shelfwise.trapForTests')];
      const codes = [];
      const trappedAt = [];
      for (let i = 0; i < 5; i++) {
        codes.push((await window.settleWithin(trap(), 60_000)).code);
        trappedAt.push(performance.now());
      }
      const then = await window.settleWithin(c.suggest('steel water bottle'), 10_000);
      c.dispose();
      // How long after each trap the next start began (its first progress event).
      const waited = trappedAt.slice(0, 3).map((t) => (events.find(([at]) => at > t)?.[0] ?? Infinity) - t);
      return { codes, starts: events.filter(([, p]) => p === 'ready').length, waited, then: then.code, message: then.message };
    });
    // Four traps (the first instance and three restarts), then no fifth start.
    assert.deepEqual(r.codes, ['INTERNAL', 'INTERNAL', 'INTERNAL', 'INTERNAL', 'WORKER']);
    assert.equal(r.starts, 4);
    // The restarts waited 250, 500 and 1000 ms first (a lower bound: timers never fire early; 2 ms
    // for the clock's coarsening).
    r.waited.forEach((w, i) => assert.ok(w >= 250 * 2 ** i - 2, `restart ${i + 1} began ${w} ms after the trap`));
    assert.equal(r.then, 'WORKER');
    assert.match(r.message, /4 times in a row/);
  });
});
