// The fixture apps' service worker: network first, the last copy when offline, for the app's own
// files (page, bundles, worker, wasm). The model is not its business: the package caches it.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/model/')) return;
  e.respondWith(
    fetch(e.request).then(
      (r) => {
        if (r.ok) {
          const copy = r.clone();
          e.waitUntil(caches.open('app-shell').then((c) => c.put(e.request, copy)));
        }
        return r;
      },
      () => caches.match(e.request).then((r) => r ?? Response.error()),
    ),
  );
});
