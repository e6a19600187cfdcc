// Offline: after one visit the demo reloads and suggests with the server gone (service worker for
// the page and package, Cache Storage for the model). Also: a new model version replaces the old.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { foreign, openDemo, useServerAndBrowser } from './helpers.mjs';

describe('offline', () => {
  const env = useServerAndBrowser();

  test('reload with the server stopped still suggests', async () => {
    const page = await openDemo(env.browser.context, env.server.url);
    await page.evaluate(() => navigator.serviceWorker.ready);
    // The worker and wasm of this first load were fetched before the service worker took over:
    // its install precached them.
    await page.waitForFunction(async () => (await caches.open('shelfwise-demo-shell-v1').then((c) => c.keys())).length > 5);
    const origin = env.server.origin;
    await env.server.stop();
    env.server = { stop: async () => {}, origin };
    const offlineStart = Date.now();
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.model === 'ready', null, { timeout: 60_000 });
    const ready = Date.now() - offlineStart;
    await page.focus('#title');
    await page.keyboard.type('ceramic coffee mug', { delay: 20 });
    await page.waitForFunction(() => document.getElementById('picker').dataset.query === 'ceramic coffee mug');
    const n = await page.locator('#picker [role=option]').count();
    assert.ok(n > 0, 'suggestions offline');
    console.log(`# offline reload to model ready: ${ready} ms`);
    assert.deepEqual(page.errors, []);
  });

  test('no request left the origin', () => {
    assert.deepEqual(foreign(env.browser.requests, env.server.origin), []);
  });
});
