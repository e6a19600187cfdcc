// The picker's options and lifetime (attributes and properties; a removed picker disposes the
// classifier it created, and only that one: 50 mounts and unmounts leave no worker behind), and
// suggestMany's scheduling (a keystroke during a 5,000-title batch is answered after at most one
// more chunk; progress events).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureTitles, useServerAndBrowser } from './helpers.mjs';

describe('picker and batch', () => {
  const env = useServerAndBrowser();
  let page;
  const live = new Set(); // the page's dedicated workers that have not closed, as Chromium reports them
  let started = 0;
  before(async () => {
    page = await env.browser.context.newPage();
    page.on('worker', (w) => {
      started += 1;
      live.add(w);
      w.on('close', () => live.delete(w));
    });
    // A blank HTML page of the origin (the demo page would start a picker of its own).
    await page.route('**/blank.html', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title><body></body>' }));
    await page.goto(env.server.url + 'blank.html');
    await page.evaluate(async () => {
      window.shelfwise = await import('/dist/index.js');
      window.pickerModule = await import('/dist/picker.js');
      // Warm the model cache, so that each mount below loads from it.
      (await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise' })).dispose();
    });
  });

  const settle = async (n) => {
    for (let i = 0; i < 300 && live.size > n; i++) await new Promise((r) => setTimeout(r, 100));
    return live.size;
  };

  test('attributes and properties: k, threshold, backend, worker and wasm URL, cache name', async () => {
    const r = await page.evaluate(async () => {
      const p = document.createElement('shelfwise-category-picker');
      p.modelUrl = '/model/model.shelfwise';
      p.k = 3;
      p.threshold = 0.25;
      p.backend = 'wasm';
      p.workerUrl = '/dist/worker.js';
      p.wasmUrl = '/dist/shelfwise_wasm_bg.wasm'; // the plain build, chosen by hand
      p.cacheName = 'picker-test-cache';
      const attrs = ['model-url', 'k', 'threshold', 'backend', 'worker-url', 'wasm-url', 'cache'].map((a) => p.getAttribute(a));
      const input = document.createElement('input');
      p.append(input);
      const ready = new Promise((r) => p.addEventListener('shelfwise-ready', (e) => r(e.detail), { once: true }));
      document.body.append(p);
      const info = await ready;
      input.focus();
      input.value = 'ceramic coffee mug';
      input.dispatchEvent(new Event('input'));
      while (p.dataset.query !== 'ceramic coffee mug') await new Promise((r) => setTimeout(r, 20));
      const shown = p.querySelectorAll('[role=option]').length;
      const cached = await caches.has('picker-test-cache');
      // Changing a load attribute replaces the picker's classifier (cache off: no new cache entry).
      const again = new Promise((r) => p.addEventListener('shelfwise-ready', (e) => r(e.detail), { once: true }));
      p.setAttribute('cache', 'false');
      p.removeAttribute('wasm-url');
      const info2 = await again;
      const props = [p.k, p.threshold, p.backend, p.cacheName, p.wasmUrl];
      p.remove();
      return { attrs, backend: info.requestedBackend, kernels: info.wasmKernels, shown, cached, kernels2: info2.wasmKernels, fromCache2: info2.fromCache, props };
    });
    assert.deepEqual(r.attrs, ['/model/model.shelfwise', '3', '0.25', 'wasm', '/dist/worker.js', '/dist/shelfwise_wasm_bg.wasm', 'picker-test-cache']);
    assert.equal(r.backend, 'wasm');
    assert.equal(r.kernels, 'wasm-simd128');
    assert.equal(r.shown, 3);
    assert.equal(r.cached, true);
    assert.equal(r.kernels2, 'wasm-relaxed-simd');
    assert.equal(r.fromCache2, false); // cache="false": downloaded, not read from the cache
    assert.deepEqual(r.props, [3, 0.25, 'wasm', false, null]);
    assert.equal(await settle(0), 0, 'both classifiers were disposed');
  });

  test('50 mounts and unmounts leave no worker running; a shared classifier is left alone', async () => {
    const before = started;
    let most = 0;
    for (let i = 0; i < 50; i++) {
      // Even rounds wait for the model; odd ones remove the picker while its model loads.
      await page.evaluate(async (wait) => {
        const p = document.createElement('shelfwise-category-picker');
        p.setAttribute('model-url', '/model/model.shelfwise');
        p.append(document.createElement('input'));
        const ready = new Promise((r) => p.addEventListener('shelfwise-ready', r, { once: true }));
        document.body.append(p);
        if (wait) await ready;
        else await new Promise((r) => setTimeout(r, 5));
        p.remove();
      }, i % 2 === 0);
      most = Math.max(most, live.size);
    }
    assert.ok(started - before >= 25, `workers started: ${started - before}`);
    assert.equal(await settle(0), 0, `workers still running after 50 unmounts (at most ${most} at a time)`);
    assert.ok(most <= 3, `at most ${most} workers at a time`);

    // A classifier handed to the picker is the page's: removing the picker does not dispose it.
    const r = await page.evaluate(async () => {
      const c = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise' });
      const p = document.createElement('shelfwise-category-picker');
      p.append(document.createElement('input'));
      p.classifier = c;
      document.body.append(p);
      p.remove();
      await new Promise((r) => setTimeout(r, 50));
      const n = (await c.suggest('ceramic coffee mug')).suggestions.length;
      window.shared = c;
      return n;
    });
    assert.equal(r, 5);
    assert.equal(live.size, 1);
    await page.evaluate(() => window.shared.dispose());
    assert.equal(await settle(0), 0);
  });

  test('suggestMany: a keystroke overtakes a 5,000-title batch after at most one chunk; progress events; per-title errors', async () => {
    const titles = fixtureTitles();
    const r = await page.evaluate(async (titles) => {
      const c = await window.shelfwise.createClassifier({ modelUrl: '/model/model.shelfwise' });
      const batch = Array.from({ length: 5000 }, (_, i) => titles[i % titles.length]);
      const done = [];
      let sent = -1;
      let answered = -1;
      let answer;
      const ctl = new AbortController();
      const many = c.suggestMany(batch, {
        signal: ctl.signal,
        onProgress: (p) => {
          done.push(p);
          if (done.length === 2) {
            // A keystroke while the batch runs: count the chunks finished before its answer.
            sent = done.length;
            answer = c.suggest('ceramic coffee mug').then((s) => {
              answered = done.length;
              ctl.abort();
              return s.suggestions.length;
            });
          }
        },
      });
      const outcome = await many.then(() => 'resolved', (e) => e.code);
      const small = [];
      const res = await c.suggestMany([...titles.slice(0, 30), 'x'.repeat(5000), ''], { onProgress: (p) => small.push(p) });
      c.dispose();
      return { sent, answered, suggestions: await answer, outcome, firstDone: done.slice(0, 2), total: done[0].total, small, errors: res.map((d) => d.error?.code ?? null) };
    }, titles);
    assert.equal(r.suggestions, 5);
    assert.ok(r.answered - r.sent <= 1, `the keystroke waited ${r.answered - r.sent} chunks`);
    assert.equal(r.outcome, 'ABORTED');
    assert.deepEqual(r.firstDone, [{ done: 16, total: 5000 }, { done: 32, total: 5000 }]);
    assert.deepEqual(r.small, [{ done: 16, total: 32 }, { done: 32, total: 32 }]);
    assert.deepEqual(r.errors, [...Array(30).fill(null), 'INPUT_TOO_LONG', null]);
    assert.equal(await settle(0), 0);
  });
});
