// Offline support for the demo: the app shell and the built package are precached at install and
// served network-first (so updates show up), falling back to the cache offline. The model file is
// left to the library, which keeps it in Cache Storage keyed by its sha256.
const SHELL = 'shelfwise-demo-shell-v1';
const PAGES = ['/', '/demo.js', '/demo.css', '/favicon.svg'];

// The library's relaxed SIMD probe (src/index.ts), repeated: a service worker cannot import it.
function relaxedSimdWorks() {
  const probe = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00,
    0x0a, 0x16, 0x01, 0x14, 0x00, 0x41, 0x7d, 0xfd, 0x0f, 0x41, 0x05, 0xfd, 0x0f, 0x41, 0x07, 0xfd, 0x11, 0xfd, 0x93, 0x02, 0xfd, 0x1b, 0x00, 0x0b,
  ]);
  try {
    return WebAssembly.validate(probe) && new WebAssembly.Instance(new WebAssembly.Module(probe)).exports.f() === -53;
  } catch {
    return false;
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      const files = await fetch('/dist/files.json', { cache: 'no-store' }).then((r) => r.json());
      // Of the two wasm runtimes, the one the library will pick here (see relaxedSimdWorks in
      // src/index.ts: this is the same browser).
      const skip = relaxedSimdWorks() ? 'shelfwise_wasm_bg.wasm' : 'shelfwise_wasm_relaxed_bg.wasm';
      await cache.addAll([...PAGES, '/dist/files.json', ...files.filter((f) => f !== skip).map((f) => `/dist/${f}`)]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname.endsWith('.shelfwise')) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const res = await fetch(req);
        if (res.ok) await cache.put(req, res.clone());
        return res;
      } catch (e) {
        const hit = await cache.match(req, { ignoreSearch: true });
        if (hit) return hit;
        if (req.mode === 'navigate') {
          const page = await cache.match('/');
          if (page) return page;
        }
        throw e;
      }
    })(),
  );
});
