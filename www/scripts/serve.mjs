// Tiny static server for the demo, on 127.0.0.1 only:
//   /            -> www/demo/        (page, styles, service worker)
//   /dist/       -> www/dist/        (the built package: JS, worker, wasm)
//   /model/model.shelfwise -> the model file (--model, $SHELFWISE_MODEL, or the shipped one)
//   --static /prefix/=dir   extra roots (repeatable; a file instead of a dir serves that one URL);
//                           used by scripts/bench-compare.mjs for www/bench/, node_modules, models
//   --script-src source     one more script-src source (repeatable), e.g. the 'sha256-…' hash of
//                           a page's inline import map (the fixture apps' test)
//   --isolate               adds COEP require-corp (with the COOP below: crossOriginIsolated, which
//                           performance.measureUserAgentSpecificMemory() needs)
// Every response carries a strict CSP (no 'unsafe-eval', no inline script or style).
// Usage: node scripts/serve.mjs [--port 8080] [--model path/to/model.shelfwise] [--static /p/=dir]... [--isolate]
import { createServer } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const www = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.lastIndexOf(name); // the last one wins (demo.sh passes defaults first)
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(arg('--port', process.env.PORT ?? 8080));
const modelPath = resolve(arg('--model', process.env.SHELFWISE_MODEL ?? join(www, '..', 'models', 'flipkart-minilm', 'model.shelfwise')));
// [url prefix, absolute path], longest prefix first.
const statics = args
  .flatMap((a, i) => (a === '--static' ? [args[i + 1]] : []))
  .map((spec) => {
    const eq = spec.indexOf('=');
    return [spec.slice(0, eq), resolve(spec.slice(eq + 1))];
  })
  .sort((a, b) => b[0].length - a[0].length);
const isolate = args.includes('--isolate');
const scriptSources = args.flatMap((a, i) => (a === '--script-src' ? [args[i + 1]] : []));

export const CSP = [
  "default-src 'self'",
  ["script-src 'self' 'wasm-unsafe-eval'", ...scriptSources].join(' '),
  "worker-src 'self'",
  "connect-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.shelfwise': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
};

function resolveFile(pathname) {
  if (pathname === '/model/model.shelfwise') return modelPath;
  for (const [prefix, target] of statics) {
    if (!prefix.endsWith('/')) {
      if (pathname === prefix) return target;
      continue;
    }
    if (!pathname.startsWith(prefix)) continue;
    let rel = pathname.slice(prefix.length);
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = normalize(join(target, rel));
    return file.startsWith(target + sep) ? file : null;
  }
  let base = join(www, 'demo');
  let rel = pathname;
  if (pathname.startsWith('/dist/')) {
    base = join(www, 'dist');
    rel = pathname.slice('/dist'.length);
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const file = normalize(join(base, rel));
  return file.startsWith(base + sep) ? file : null;
}

const server = createServer((req, res) => {
  const headers = {
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
    'cache-control': 'no-cache',
  };
  if (isolate) headers['cross-origin-embedder-policy'] = 'require-corp';
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    res.writeHead(400, headers).end('bad request');
    return;
  }
  const file = resolveFile(pathname);
  let st;
  try {
    st = file && existsSync(file) ? statSync(file) : null;
  } catch {
    st = null;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, headers).end();
    return;
  }
  if (!st || !st.isFile()) {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found');
    return;
  }
  const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  headers['etag'] = etag;
  headers['last-modified'] = st.mtime.toUTCString();
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  headers['content-type'] = TYPES[extname(file)] ?? 'application/octet-stream';
  headers['content-length'] = String(st.size);
  res.writeHead(200, headers);
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
});

server.listen(port, '127.0.0.1', () => {
  const { port: p } = server.address();
  if (!existsSync(modelPath)) console.error(`warning: model file ${modelPath} is missing (run scripts/setup.sh)`);
  console.log(`shelfwise demo: http://127.0.0.1:${p}/`);
});
