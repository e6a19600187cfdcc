// Shared by the browser tests: the demo server, Debian's chromium through playwright-core, the
// native reference (the CLI) and the request log that backs the privacy checks.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { after, before } from 'node:test';

// Route the service worker's requests through context.route too (privacy checks see everything).
process.env.PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS ??= '1';

export const WWW = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = join(WWW, '..');
export const MODEL = resolve(process.env.SHELFWISE_MODEL ?? join(ROOT, 'models', 'flipkart-minilm', 'model.shelfwise'));
export const CLI = join(ROOT, 'target', 'release', 'shelfwise');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = join(WWW, 'test-results');

export function requireModel() {
  if (!existsSync(MODEL)) throw new Error(`model file ${MODEL} is missing: run scripts/setup.sh (or set SHELFWISE_MODEL)`);
  if (!existsSync(join(WWW, 'dist', 'index.js'))) throw new Error('www/dist is missing: run www/scripts/test-browser.sh (it builds first)');
}

/** Starts scripts/serve.mjs on a free port (or `port`); resolves { url, origin, stop }. `extraArgs`
 * go to serve.mjs after the defaults (e.g. `--model`, `--static`, `--isolate`; the last `--model` wins). */
export function startServer(port = 0, extraArgs = []) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(WWW, 'scripts', 'serve.mjs'), '--port', String(port), '--model', MODEL, ...extraArgs], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolvePromise({ url: m[0], origin: m[0].slice(0, -1), port: Number(m[1]), stop: () => stopChild(child) });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
}

function stopChild(child) {
  return new Promise((r) => {
    if (child.exitCode !== null) return r();
    child.removeAllListeners('exit');
    child.on('exit', () => r());
    child.kill('SIGTERM');
  });
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** A fresh browser profile (its own --user-data-dir) with every request logged; `extraArgs` go
 * after CHROMIUM_ARGS (e.g. `--enable-unsafe-webgpu`). */
export async function openBrowser(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'shelfwise-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    viewport: { width: 1100, height: 900 },
    serviceWorkers: 'allow',
  });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  // Every request, the service worker's included, passes here: log it and let it go on.
  await context.route('**/*', (route) => {
    requests.push(route.request().url());
    return route.fallback();
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  return { context, requests, close };
}

/** Requests that left `origin` (data: and blob: URLs never leave the page). */
export function foreign(requests, origin) {
  return [...new Set(requests)].filter((u) => !u.startsWith(origin + '/') && !/^(data|blob):/.test(u));
}

/** Opens the demo and waits until the model is ready; returns the page. */
export async function openDemo(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && /Content.Security.Policy|CSP/i.test(m.text()) && errors.push(m.text()));
  page.errors = errors;
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.model === 'ready', null, { timeout: 120_000 });
  return page;
}

/** Native reference: `shelfwise classify --json` on the same model (or the golden file). */
export function nativeReference(titles) {
  if (existsSync(CLI)) {
    const out = execFileSync(CLI, ['classify', '--json', '--model', MODEL, '-k', '5', '--threshold', '0.5', '--', ...titles], {
      maxBuffer: 64 << 20,
      encoding: 'utf8',
    });
    return JSON.parse(out);
  }
  const golden = join(ROOT, 'tests', 'golden', 'flipkart-minilm.json');
  if (existsSync(golden)) return JSON.parse(readFileSync(golden, 'utf8')).items;
  throw new Error(`no native reference: build ${CLI} (scripts/setup.sh) or write ${golden}`);
}

export function fixtureTitles() {
  return readFileSync(join(ROOT, 'tests', 'fixtures', 'titles.txt'), 'utf8')
    .split('\n')
    .filter((t) => t.trim() !== '');
}

/** Registers hooks that start the demo server and a browser before a suite and stop both after it. */
export function useServerAndBrowser(browserArgs = []) {
  const env = { server: undefined, browser: undefined };
  before(async () => {
    requireModel();
    env.server = await startServer();
    env.browser = await openBrowser(browserArgs);
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}

// The package's CSV reader (src/csv.ts), from the build: one reader for the demo, the tests and
// the benchmarks. Loaded if built, so that a missing build fails with requireModel's message.
const CSV_JS = join(WWW, 'dist', 'csv.js');
const csv = existsSync(CSV_JS) ? await import(CSV_JS) : null;

/** `parseCsv` of www/src/csv.ts (RFC 4180; BOM dropped; CRLF, LF, CR; an empty line is no row). */
export function parseCsv(text) {
  if (!csv) throw new Error('www/dist is missing: run www/scripts/test-browser.sh (it builds first)');
  return csv.parseCsv(text);
}
