// Builds the npm package into dist/: one self-contained ESM bundle per entry (esbuild; no shared
// chunks, so that `import.meta.url` of every module is dist/ itself: the worker, host and wasm are
// found next to it), the two wasm runtimes (plain simd128, and relaxed SIMD: index.ts picks one),
// picker.css, and the .d.ts (tsc).
// Needs www/pkg/ and www/pkg-relaxed/ (scripts/build-wasm.sh, scripts/build-wasm.sh relaxed). With www/pkg-gpu/
// (scripts/build-wasm.sh gpu) it also ships the optional WebGPU bundle: dist/gpu.js and
// dist/shelfwise_wasm_gpu_bg.wasm, loaded only by the 'webgpu' backend; without it that backend
// falls back to wasm (GPU_UNAVAILABLE).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const pkg = join(root, 'pkg');
const pkgRelaxed = join(root, 'pkg-relaxed');
for (const [dir, f, how] of [
  ['pkg', 'shelfwise_wasm.js', 'build-wasm.sh'],
  ['pkg', 'shelfwise_wasm_bg.wasm', 'build-wasm.sh'],
  ['pkg-relaxed', 'shelfwise_wasm.js', 'build-wasm.sh relaxed'],
  ['pkg-relaxed', 'shelfwise_wasm_bg.wasm', 'build-wasm.sh relaxed'],
]) {
  if (!existsSync(join(root, dir, f))) {
    console.error(`missing www/${dir}/${f}: build the wasm first (www/scripts/${how})`);
    process.exit(1);
  }
}
// One JS glue serves both runtimes (the engine picks the .wasm at run time): they must be the
// same crate at the same version, so their glue is byte for byte the same.
if (!readFileSync(join(pkg, 'shelfwise_wasm.js')).equals(readFileSync(join(pkgRelaxed, 'shelfwise_wasm.js')))) {
  console.error('www/pkg and www/pkg-relaxed have different JS glue: rebuild both (build-wasm.sh, build-wasm.sh relaxed)');
  process.exit(1);
}
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const esm = { outdir: dist, bundle: true, format: 'esm', target: 'es2022', platform: 'browser', minify: true, legalComments: 'none', logLevel: 'warning' };
// One build with shared chunks: code that several entry points use (ShelfwiseError, the engine)
// is one module, so `instanceof ShelfwiseError` holds for errors from any of them and nothing is
// shipped twice. host.js is both an entry (imported by worker.js) and index.js's dynamic import
// for `worker: false`.
await build({ ...esm, splitting: true, chunkNames: 'chunk-[hash]', entryPoints: ['index', 'worker', 'picker', 'host', 'csv'].map((n) => join(root, 'src', `${n}.ts`)) });
// Minifying drops the comments that tell bundlers to leave the one computed import (the WebGPU
// bundle's URL, known at run time) alone; without them webpack replaces it with a module that
// always fails. Put them back.
const IGNORE = '/* @vite-ignore */ /* webpackIgnore: true */ ';
let computed = 0;
for (const f of readdirSync(dist).filter((n) => n.endsWith('.js'))) {
  const js = readFileSync(join(dist, f), 'utf8');
  const out = js.replace(/\bimport\(([A-Za-z_$][\w$]*)\)/g, (_, v) => (computed++, `import(${IGNORE}${v})`));
  if (out !== js) writeFileSync(join(dist, f), out);
}
if (computed !== 1) {
  console.error(`expected one computed import() in the bundle (the WebGPU bundle's), found ${computed}`);
  process.exit(1);
}
copyFileSync(join(pkg, 'shelfwise_wasm_bg.wasm'), join(dist, 'shelfwise_wasm_bg.wasm'));
copyFileSync(join(pkgRelaxed, 'shelfwise_wasm_bg.wasm'), join(dist, 'shelfwise_wasm_relaxed_bg.wasm'));

const pkgGpu = join(root, 'pkg-gpu');
const GPU_FILES = ['gpu.js', 'shelfwise_wasm_gpu_bg.wasm'];
if (existsSync(join(pkgGpu, 'shelfwise_wasm_gpu.js'))) {
  await build({ ...esm, entryPoints: [{ in: join(pkgGpu, 'shelfwise_wasm_gpu.js'), out: 'gpu' }] });
  copyFileSync(join(pkgGpu, 'shelfwise_wasm_gpu_bg.wasm'), join(dist, 'shelfwise_wasm_gpu_bg.wasm'));
} else {
  console.warn('www/pkg-gpu is missing: building without the WebGPU bundle (backend "webgpu" will run on wasm)');
}
copyFileSync(join(root, 'src', 'picker.css'), join(dist, 'picker.css'));

// Declarations of the public modules only (the engine's refer to the generated wasm glue).
execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
for (const f of ['engine', 'host', 'worker', 'protocol', 'cache']) rmSync(join(dist, `${f}.d.ts`), { force: true });

// The file list, for the demo's service worker (chunk names are hashed).
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    // The WebGPU bundle is optional and fetched on demand: the demo's service worker does not precache it.
    else if (!p.endsWith('.d.ts') && !GPU_FILES.includes(relative(dist, p))) files.push(relative(dist, p));
  }
};
walk(dist);
writeFileSync(join(dist, 'files.json'), JSON.stringify(files.sort(), null, 1));
console.log(`built ${files.length} files into www/dist`);
