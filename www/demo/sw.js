// Offline support for the demo: the app shell and the built package are precached at install and
// served network-first (so updates show up), falling back to the cache offline. The model file is
// left to the library, which keeps it in Cache Storage keyed by its sha256.
const SHELL = 'shelfwise-demo-shell-v1';
const PAGES = ['/', '/demo.js', '/demo.css', '/favicon.svg'];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL);
      const files = await fetch('/dist/files.json', { cache: 'no-store' }).then((r) => r.json());
      await cache.addAll([...PAGES, '/dist/files.json', ...files.map((f) => `/dist/${f}`)]);
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
