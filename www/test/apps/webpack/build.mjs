// webpack 5 with its defaults (production mode): it follows the package's
// `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })` and
// `new URL('./….wasm', import.meta.url)` and emits the worker and the wasm.
import webpack from 'webpack';
import { copyFileSync } from 'node:fs';
import { resolve } from 'node:path';

const dist = resolve('dist');
const stats = await new Promise((ok, fail) =>
  webpack({ mode: 'production', entry: './main.js', output: { path: dist, publicPath: '/', clean: true } }, (e, s) => (e ? fail(e) : ok(s))),
);
console.log(stats.toString({ colors: false, modules: false }));
if (stats.hasErrors()) process.exit(1);
copyFileSync('index.html', resolve(dist, 'index.html'));
copyFileSync('sw.js', resolve(dist, 'sw.js'));
