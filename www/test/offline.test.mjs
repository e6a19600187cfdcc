// Offline: after one visit the demo reloads and suggests with the server gone (service worker for
// the page and package, Cache Storage for the model). Also: a new model version replaces the old.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { foreign, openBrowser, openDemo, requireModel, startServer } from './helpers.mjs';

describe('offline', () => {
  let server, browser;
  before(async () => {
    requireModel();
    server = await startServer();
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('reload with the server stopped still suggests', async () => {
    const page = await openDemo(browser.context, server.url);
    await page.evaluate(() => navigator.serviceWorker.ready);
    // The worker and wasm of this first load were fetched before the service worker took over:
    // its install precached them.
    await page.waitForFunction(async () => (await caches.open('shelfwise-demo-shell-v1').then((c) => c.keys())).length > 5);
    const origin = server.origin;
    await server.stop();
    server = { stop: async () => {}, origin };
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
    assert.deepEqual(foreign(browser.requests, server.origin), []);
  });
});
