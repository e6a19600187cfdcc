// The demo page in chromium: typing key by key, keyboard-only use of the picker, bad input in the
// form, screenshots, and that no request leaves the demo's origin.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SHOTS, foreign, openDemo, useServerAndBrowser } from './helpers.mjs';

// Titles typed key by key, with a category path prefix expected among the top 3 suggestions.
const TYPED = [
  ['Rockmantra Ceramic Coffee Mug 350 ml', 'Kitchen & Dining > Coffee Mugs'],
  ["Nike men's running shoes", 'Footwear'],
  ['Sterling silver heart pendant necklace for women', 'Jewellery'],
];

const options = (page) =>
  page.$$eval('#picker [role=option]', (lis) => lis.map((li) => li.querySelector('.sw-path').textContent.replaceAll(' › ', ' > ')));

/** Waits until the list shows the suggestions for exactly `title`. */
const settled = (page, title) =>
  page.waitForFunction((t) => document.getElementById('picker').dataset.query === t, title, { timeout: 60_000 });

describe('demo page', () => {
  const env = useServerAndBrowser();
  let page;
  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    page = await openDemo(env.browser.context, env.server.url);
  });

  test('the form looks right before typing', async () => {
    await page.screenshot({ path: join(SHOTS, 'demo-empty.png'), fullPage: true });
    const input = page.locator('#title');
    assert.equal(await input.getAttribute('role'), 'combobox');
    assert.equal(await input.getAttribute('aria-expanded'), 'false');
    const lb = await input.getAttribute('aria-controls');
    assert.equal(await page.locator(`#${lb}`).getAttribute('role'), 'listbox');
  });

  for (const [title, expected] of TYPED) {
    test(`typing "${title}" key by key suggests ${expected} in the top 3`, async () => {
      await page.fill('#title', '');
      await page.focus('#title');
      // Record every list the seller sees while typing.
      await page.evaluate(() => {
        window.__lists = [];
        const picker = document.getElementById('picker');
        new MutationObserver(() => window.__lists.push(picker.dataset.query)).observe(picker, { attributeFilter: ['data-query'] });
      });
      await page.keyboard.type(title, { delay: 40 });
      await settled(page, title);
      const seen = await page.evaluate(() => window.__lists);
      const top3 = (await options(page)).slice(0, 3);
      assert.ok(top3.some((p) => p === expected || p.startsWith(expected + ' > ')), `top 3 for "${title}": ${JSON.stringify(top3)}`);
      const partial = new Set(seen.filter((q) => q && q !== title));
      assert.ok(partial.size >= 2, `the list should update while typing; it showed ${JSON.stringify([...new Set(seen)])}`);
      assert.equal(await page.getAttribute('#title', 'aria-expanded'), 'true');
    });
  }

  test('keyboard only: Tab, type, ArrowDown/Up, Enter picks, Escape closes', async () => {
    await page.fill('#title', '');
    await page.locator('#title').blur();
    // Start from the page, reach the title with Tab alone.
    await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
    // (20: the focus goes round the whole page, its adaptation panel included, back to the top.)
    for (let i = 0; i < 20 && (await page.evaluate(() => document.activeElement?.id)) !== 'title'; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'title');
    const title = 'Rockmantra Ceramic Coffee Mug 350 ml';
    await page.keyboard.type(title, { delay: 5 });
    await settled(page, title);
    const opts = await options(page);
    assert.ok(opts.length >= 2);
    const active = () => page.evaluate(() => {
      const id = document.getElementById('title').getAttribute('aria-activedescendant');
      const el = id && document.getElementById(id);
      return el ? { index: Number(el.dataset.index), selected: el.getAttribute('aria-selected') } : null;
    });
    await page.keyboard.press('ArrowDown');
    assert.deepEqual(await active(), { index: 0, selected: 'true' });
    await page.keyboard.press('ArrowDown');
    assert.deepEqual(await active(), { index: 1, selected: 'true' });
    await page.keyboard.press('ArrowUp');
    assert.deepEqual(await active(), { index: 0, selected: 'true' });
    await page.screenshot({ path: join(SHOTS, 'demo-suggestions.png'), fullPage: true });
    await page.evaluate(() => {
      window.__picked = null;
      document.getElementById('picker').addEventListener('shelfwise-select', (e) => (window.__picked = e.detail), { once: true });
    });
    await page.keyboard.press('Enter');
    const detail = await page.evaluate(() => window.__picked);
    assert.ok(detail, 'Enter fired shelfwise-select');
    assert.equal(detail.label, opts[0]);
    assert.equal(await page.getAttribute('#title', 'aria-expanded'), 'false');
    assert.equal(await page.inputValue('input[type=hidden][name=category]'), opts[0]);
    assert.equal(await page.locator('#saved').isHidden(), true, 'Enter on an option must not submit the form');
    assert.equal(await page.inputValue('#title'), title, 'picking keeps the title');
    // Escape closes a reopened list.
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.getAttribute('#title', 'aria-expanded'), 'true');
    await page.keyboard.press('Escape');
    assert.equal(await page.getAttribute('#title', 'aria-expanded'), 'false');
    assert.equal(await page.locator('#picker .sw-popup').isHidden(), true);
    // Finish the form with the keyboard and save it.
    // Tab on: the picker's Browse categories and Why? buttons, the Change button, the description.
    for (let i = 0; i < 6 && (await page.evaluate(() => document.activeElement?.id)) !== 'description'; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'description');
    await page.keyboard.type('Glossy ceramic, microwave safe.');
    await page.keyboard.press('Tab');
    await page.keyboard.type('249');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#saved:not([hidden])');
    assert.match(await page.textContent('#saved'), /Kitchen|Coffee|Saved/);
    await page.screenshot({ path: join(SHOTS, 'demo-saved.png'), fullPage: true });
  });

  test('bad input in the form: markup, emoji, lone surrogates, blank, 100 kB', async () => {
    const markup = '<img src=x onerror="window.__xss=1"><b>Bold</b> <script>window.__xss=2</script> leather wallet';
    await page.fill('#title', markup);
    await settled(page, markup);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.locator('#picker img, #picker b, #picker script').count(), 0);

    for (const t of ['👟🏃‍♂️ running shoes 👟', '   ']) {
      await page.fill('#title', t);
      await settled(page, t);
    }
    // Lone surrogates cannot cross the DevTools protocol: make them in the page.
    await page.evaluate(() => {
      const input = document.getElementById('title');
      input.value = `mug ${String.fromCharCode(0xd800)} broken ${String.fromCharCode(0xdc00)}`;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.waitForFunction(() => document.getElementById('picker').dataset.query === document.getElementById('title').value);
    assert.ok((await options(page)).length > 0, 'lone surrogates still get suggestions');
    await page.fill('#title', '   ');
    await settled(page, '   ');
    assert.equal(await page.locator('#picker [role=option]').count(), 0, 'a blank title shows no suggestions');

    // 100 kB (set from script: the demo's input has maxlength=200, a page without one would not).
    await page.evaluate(() => {
      const input = document.getElementById('title');
      input.value = 'shoe '.repeat(20_000);
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.waitForFunction(() => /too long/.test(document.querySelector('#picker .sw-status').textContent));
    assert.equal(await page.locator('#picker [role=option]').count(), 0);
    // Still usable afterwards.
    await page.fill('#title', 'Ceramic coffee mug');
    await settled(page, 'Ceramic coffee mug');
    assert.ok((await options(page)).length > 0);
    assert.deepEqual(page.errors, [], 'no uncaught errors on the page');
  });

  test('no CSP violations or uncaught errors', async () => {
    assert.deepEqual(page.errors, []);
    const csp = await page.evaluate(() => fetch('/').then((r) => r.headers.get('content-security-policy')));
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.doesNotMatch(csp, /'unsafe-eval'|'unsafe-inline'/);
  });

  test('no request leaves the demo origin', () => {
    assert.ok(env.browser.requests.length > 5, 'requests were logged');
    assert.deepEqual(foreign(env.browser.requests, env.server.origin), []);
  });
});

describe('demo page with a broken model file', () => {
  const env = useServerAndBrowser();

  test('says so, keeps the form usable, and lets the seller type the category', async () => {
    const page = await env.browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const junk = Buffer.alloc(100_000, 0x41); // not a model
    await page.route('**/model/model.shelfwise', (route) => route.fulfill({ body: junk, contentType: 'application/octet-stream' }));
    await page.goto(env.server.url);
    await page.waitForFunction(() => document.documentElement.dataset.model === 'failed', null, { timeout: 60_000 });
    assert.match(await page.textContent('#model-status'), /unavailable/);
    await page.focus('#title');
    await page.keyboard.type('Ceramic mug', { delay: 10 });
    assert.equal(await page.locator('#picker [role=option]').count(), 0);
    await page.fill('#category-manual', 'Kitchen & Dining > Coffee Mugs');
    await page.fill('#price', '99');
    await page.click('button[type=submit]');
    await page.waitForSelector('#saved:not([hidden])');
    await page.screenshot({ path: join(SHOTS, 'demo-broken-model.png'), fullPage: true });
    assert.deepEqual(errors, []);
    const models = env.browser.requests.filter((u) => u.endsWith('/model/model.shelfwise'));
    assert.ok(models.length <= 4, `the broken model is not refetched on every keystroke (${models.length} fetches)`);
    assert.deepEqual(foreign(env.browser.requests, env.server.origin), []);
  });
});
