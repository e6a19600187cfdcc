// The npm package as a shop installs it: the packed tarball (`npm pack`, as test-browser.sh makes
// it: SHELFWISE_TARBALL; else packed here from www/dist) installed into directories outside the
// repo, with no Rust toolchain on PATH, then
//   - imported in Node (server-side rendering): `shelfwise` and `shelfwise/picker` do not throw;
//   - a Vite app and a webpack 5 app (from the npm registry, versions pinned in test/apps/*/
//     package.json and package-lock.json) built with their defaults, and a plain page with an import
//     map, each served on 127.0.0.1 with a CSP without 'unsafe-eval' and run in Chromium:
//     suggestions while typing, the model cached, an offline reload still suggests, and errors
//     from both entry points are the one ShelfwiseError class.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { WWW, openBrowser, requireModel, startServer } from './helpers.mjs';

const APPS = join(WWW, 'test', 'apps');
const work = mkdtempSync(join(tmpdir(), 'shelfwise-apps-'));
after(() => rmSync(work, { recursive: true, force: true }));

// No cargo or rustc for the installs and builds: the tarball must not need them.
const PATH = (process.env.PATH ?? '').split(delimiter).filter((d) => !/cargo|rustup/.test(d) && !existsSync(join(d, 'cargo'))).join(delimiter);
const env = { ...process.env, PATH, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });

let tarball;
function packed() {
  if (tarball) return tarball;
  tarball = process.env.SHELFWISE_TARBALL;
  if (!tarball) {
    requireModel(); // www/dist exists
    const dir = join(work, 'pack');
    mkdirSync(dir);
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], WWW);
    tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz')));
  }
  return tarball;
}

/** A fresh project outside the repo: `files` from test/apps/<name> and common/, then npm install. */
function makeApp(name, as = name) {
  const dir = join(work, as);
  cpSync(join(APPS, name), dir, { recursive: true });
  for (const f of ['main.js', 'sw.js']) cpSync(join(APPS, 'common', f), join(dir, f));
  // npm ci would refuse the tarball (not in the lockfile): install honours the lockfile and adds it.
  run('npm', ['install', '--no-save', '--ignore-scripts', packed()], dir);
  return dir;
}

const page = (head, script) => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>shelfwise fixture</title>
${head}
  ${script}
</head>
<body>
${readFileSync(join(APPS, 'common', 'body.html'), 'utf8')}
</body>
</html>
`;

describe('the packed tarball', () => {
  test('holds what a user needs, and nothing of the repo', () => {
    const files = run('tar', ['-tzf', packed()], work).split('\n').filter(Boolean);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/picker.js', 'dist/picker.d.ts', 'dist/picker.css', 'dist/worker.js', 'dist/host.js', 'dist/shelfwise_wasm_bg.wasm', 'dist/shelfwise_wasm_relaxed_bg.wasm', 'dist/gpu.js', 'dist/shelfwise_wasm_gpu_bg.wasm']) {
      assert.ok(files.includes(`package/${f}`), `${f} is packed (${files.join(' ')})`);
    }
    assert.deepEqual(files.filter((f) => !/^package\/(package\.json|README\.md|LICENSE|dist\/[\w.-]+)$/.test(f)), []);
    const pkg = JSON.parse(run('tar', ['-xzOf', packed(), 'package/package.json'], work));
    assert.doesNotMatch(JSON.stringify(pkg.repository), /example\.invalid/);
    assert.equal(pkg.scripts.install ?? pkg.scripts.postinstall ?? pkg.scripts.preinstall, undefined, 'nothing runs at install');
  });

  test('shared code is one module: each source file is in exactly one of the JS files', () => {
    const dir = join(work, 'unpacked');
    mkdirSync(dir);
    run('tar', ['-xzf', packed(), '-C', dir], work);
    const dist = join(dir, 'package', 'dist');
    const js = readdirSync(dist).filter((f) => f.endsWith('.js') && f !== 'gpu.js');
    // A string only one source file has: errors.ts, cache.ts, host.ts, engine.ts, index.ts, picker.ts, the wasm glue.
    for (const marker of ['"AbortError"', 'x-shelfwise-model-url', 'model not loaded', 'cannot load the WebGPU bundle', 'shelfwise_wasm_relaxed_bg.wasm', 'sw-popup', '__wbindgen_']) {
      const holders = js.filter((f) => readFileSync(join(dist, f), 'utf8').includes(marker));
      assert.equal(holders.length, 1, `${marker} is in ${holders.join(', ')}`);
    }
  });

  test('SSR: importing shelfwise and shelfwise/picker in Node does not throw', () => {
    const dir = makeApp('importmap', 'ssr');
    const out = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('shelfwise'); const p = await import('shelfwise/picker');
         const e = await m.createClassifier({}).catch((e) => e);
         console.log(JSON.stringify({ version: m.VERSION, picker: typeof p.CategoryPicker, code: e.code, same: e instanceof m.ShelfwiseError }));`,
      ],
      dir,
    );
    assert.deepEqual(JSON.parse(out), { version: '0.1.0', picker: 'function', code: 'INVALID_ARGUMENT', same: true });
  });
});

/** Serves `root` (and the model) and runs the app in a fresh Chromium profile: online, cached, offline. */
async function checkApp(root, serverArgs = []) {
  requireModel();
  let server = await startServer(0, ['--static', `/=${root}/`, ...serverArgs]);
  const browser = await openBrowser();
  try {
    const tab = await browser.context.newPage();
    const problems = [];
    tab.on('pageerror', (e) => problems.push(String(e)));
    tab.on('console', (m) => m.type() === 'error' && !/missing\.shelfwise|404/.test(m.text()) && problems.push(m.text()));
    const ready = async () => {
      await tab.waitForFunction(() => document.documentElement.dataset.model === 'ready' || document.documentElement.dataset.error, null, { timeout: 120_000 });
      return tab.evaluate(() => ({ ...document.documentElement.dataset }));
    };
    const suggests = async (title) => {
      await tab.fill('#title', '');
      await tab.focus('#title');
      await tab.keyboard.type(title, { delay: 15 });
      await tab.waitForFunction((t) => document.getElementById('picker').dataset.query === t, title, { timeout: 60_000 });
      return tab.locator('#picker [role=option]').count();
    };

    const res = await tab.goto(server.url);
    const csp = res.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.doesNotMatch(csp, /'unsafe-eval'|'unsafe-inline'/);
    let d = await ready();
    assert.equal(d.error, undefined, d.error);
    assert.equal(d.fromCache, 'false');
    assert.equal(d.registered, 'true');
    assert.ok(await suggests('ceramic coffee mug') > 0, 'suggestions while typing');
    await tab.waitForFunction(() => document.documentElement.dataset.indexError && document.documentElement.dataset.pickerError);
    d = await tab.evaluate(() => ({ ...document.documentElement.dataset }));
    assert.equal(d.indexError, 'true INVALID_ARGUMENT');
    assert.equal(d.pickerError, 'true MODEL_FETCH');

    // Second visit: the model from Cache Storage; the app's service worker keeps its files.
    await tab.evaluate(() => navigator.serviceWorker.ready);
    await tab.reload();
    d = await ready();
    assert.equal(d.fromCache, 'true');
    await tab.waitForFunction(async () => (await (await caches.open('app-shell')).keys()).some((r) => r.url.endsWith('.wasm')), null, { timeout: 30_000 });

    // Offline: the server is gone.
    await server.stop();
    server = null;
    await tab.reload();
    d = await ready();
    assert.equal(d.error, undefined, d.error);
    assert.equal(d.fromCache, 'true');
    assert.ok(await suggests('wireless bluetooth headphones') > 0, 'suggestions offline');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server?.stop();
  }
}

/** The bundler emitted the worker (as a bundle of its own), both wasm runtimes and the WebGPU bundle's wasm, with no configuration. */
function emitted(dist, what) {
  const files = readdirSync(dist, { recursive: true }).map(String);
  console.log(`# ${what} emitted: ${files.filter((f) => !f.endsWith('.map')).sort().join(', ')}`);
  const wasm = files.filter((f) => f.endsWith('.wasm')).map((f) => readFileSync(join(dist, f)));
  const want = ['shelfwise_wasm_bg.wasm', 'shelfwise_wasm_relaxed_bg.wasm', 'shelfwise_wasm_gpu_bg.wasm'].map((f) => readFileSync(join(WWW, 'dist', f)));
  for (const w of want) assert.ok(wasm.some((x) => x.equals(w)), `${what} emitted each wasm file`);
  const js = files.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(dist, f), 'utf8'));
  // The worker's own bundle: its message listener, with the host inlined (Vite) or its shared
  // chunk loaded by importScripts (webpack puts host.js, which the page's worker: false path
  // imports too, in a chunk of its own once it is large enough). checkApp then runs it.
  assert.ok(js.some((s) => s.includes('model not loaded')), `${what} emitted the host code`);
  const workers = js.filter((s) => /addEventListener\("message"/.test(s) && (s.includes('model not loaded') || s.includes('importScripts')));
  assert.ok(workers.length >= 1, `${what} emitted a worker bundle`);
}

describe('fixture apps (tarball installed outside the repo, Chromium)', () => {
  before(() => packed());

  test('Vite 7 app', async () => {
    const dir = makeApp('vite');
    writeFileSync(join(dir, 'index.html'), page('', '<script type="module" src="/main.js"></script>'));
    cpSync(join(dir, 'sw.js'), join(dir, 'public', 'sw.js'));
    run('npx', ['--no-install', 'vite', 'build'], dir);
    emitted(join(dir, 'dist'), 'vite');
    await checkApp(join(dir, 'dist'));
  });

  test('webpack 5 app', async () => {
    const dir = makeApp('webpack');
    writeFileSync(join(dir, 'index.html'), page('', '<script defer src="/main.js"></script>'));
    const log = run(process.execPath, ['build.mjs'], dir);
    assert.doesNotMatch(log, /Critical dependency|Module not found|ERROR/, log); // the wasm size warning is expected
    emitted(join(dir, 'dist'), 'webpack');
    await checkApp(join(dir, 'dist'));
  });

  test('plain HTML page with an import map', async () => {
    const dir = makeApp('importmap');
    const map = JSON.stringify({ imports: { shelfwise: '/node_modules/shelfwise/dist/index.js', 'shelfwise/picker': '/node_modules/shelfwise/dist/picker.js' } });
    writeFileSync(join(dir, 'index.html'), page(`  <link rel="stylesheet" href="/node_modules/shelfwise/dist/picker.css">\n  <script type="importmap">${map}</script>`, '<script type="module" src="/main.js"></script>'));
    // An inline import map is a script: the CSP allows it by its hash, nothing else inline.
    const hash = createHash('sha256').update(map).digest('base64');
    await checkApp(dir, ['--script-src', `'sha256-${hash}'`]);
  });
});
