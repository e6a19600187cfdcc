// Adaptation benchmark (issue #19; not in CI, not a test): in headless chromium (playwright-core,
// as www/test does), through the package's worker:
//   - setTaxonomy (the examples' paths), then addExamples of N labelled titles (one call: embeds them, trains the SVM, fits the weights);
//   - bytes per remembered title (memoryInfo().bytes and exportMemory() size over N);
//   - learn() latency (one correction each, a new title, into a memory of N);
//   - similar() latency over the N remembered titles (k = 5);
//   - exportMemory / importMemory time, and importMemory into a fresh classifier (a reload with a
//     stored memory: the category names come from the memory, not the encoder);
//   - with --big P: setTaxonomy of a generated P-path taxonomy (www/test/adapt.test.mjs's) on an
//     empty memory, and a fresh classifier's importMemory of that.
//
//   node bench/adapt.mjs [--examples FILE] [--depth D] [--n 10000] [--learns 30] [--queries 200] [--big 20000] [--out FILE]
//
// FILE: a CSV with title and category_path columns (e.g. ../shared/data/flipkart/train.csv),
// cycled (with a " #i" suffix after the first pass, so every title is distinct) up to N; default
// tests/fixtures/synthetic_shop_train.csv. Needs www/dist (npm run build) and the model.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, parseCsv, requireModel, startServer } from '../test/helpers.mjs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const file = arg('--examples', join(ROOT, 'tests', 'fixtures', 'synthetic_shop_train.csv'));
const n = Number(arg('--n', 10_000));
const learns = Number(arg('--learns', 30));
const queries = Number(arg('--queries', 200));
const out = arg('--out', null);
// Paths cut to their first `depth` segments (a coarser shop taxonomy: fewer categories, a cheaper refit).
const depth = Number(arg('--depth', 0));
const big = Number(arg('--big', 0));

const rows = parseCsv(readFileSync(file, 'utf8'));
const head = rows.shift();
const ti = head.indexOf('title');
const pi = head.indexOf('category_path');
if (ti < 0 || pi < 0) throw new Error(`${file}: needs title and category_path columns`);
const base = rows.filter((r) => r[ti]?.trim() && r[pi]?.trim()).map((r) => ({ title: r[ti], path: depth > 0 ? r[pi].split(' > ').slice(0, depth).join(' > ') : r[pi] }));
const examples = Array.from({ length: n }, (_, i) => {
  const e = base[i % base.length];
  const pass = Math.floor(i / base.length);
  return { title: pass ? `${e.title} #${pass}` : e.title, path: e.path };
});

requireModel();
const server = await startServer();
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  await page.goto(server.url + 'favicon.svg');
  const r = await page.evaluate(
    async ({ examples, learns, queries, big }) => {
      const mod = await import('/dist/index.js');
      const c = await mod.createClassifier({ modelUrl: '/model/model.shelfwise', memory: { persist: false } });
      const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
      // The shop's taxonomy: its examples' paths (else the model's 922 categories stay, plus these).
      let t = performance.now();
      await c.setTaxonomy([...new Set(examples.map((e) => e.path))]);
      const taxonomyMs = performance.now() - t;
      t = performance.now();
      const report = await c.addExamples(examples);
      const addMs = performance.now() - t;
      const info = await c.memoryInfo();
      const learnMs = [];
      for (let i = 0; i < learns; i++) {
        const e = examples[(i * 7919) % examples.length];
        t = performance.now();
        await c.learn(`${e.title} corrected ${i}`, e.path);
        learnMs.push(performance.now() - t);
      }
      const similarMs = [];
      for (let i = 0; i < queries; i++) {
        const e = examples[(i * 104729) % examples.length];
        t = performance.now();
        await c.similar(e.title.split(' ').slice(0, 4).join(' '), { k: 5 });
        similarMs.push(performance.now() - t);
      }
      t = performance.now();
      const bytes = await c.exportMemory();
      const exportMs = performance.now() - t;
      t = performance.now();
      await c.importMemory(bytes);
      const importMs = performance.now() - t;
      const after = await c.memoryInfo();
      c.dispose();
      const fresh = await mod.createClassifier({ modelUrl: '/model/model.shelfwise', memory: { persist: false } });
      t = performance.now();
      await fresh.importMemory(bytes);
      const reloadImportMs = performance.now() - t;
      const bigFigures = {};
      if (big > 0) {
        const leaves = ['Kettles', 'Mugs', 'Phones', 'Cases', 'Hoses', 'Shoes', 'Watches', 'Bulbs', 'Pens', 'Lamps'];
        const paths = [];
        for (let i = 0; paths.length < big; i++) paths.push(`Dept ${i % 40} > Aisle ${Math.floor(i / 40) % 50} > ${leaves[i % 10]} ${Math.floor(i / 2000)}`);
        // On an empty memory (as the test's): the names alone, not a refit over the memory too.
        const empty = await mod.createClassifier({ modelUrl: '/model/model.shelfwise', memory: { persist: false } });
        t = performance.now();
        const rep = await empty.setTaxonomy(paths);
        bigFigures.bigCategories = rep.labels;
        bigFigures.bigSetTaxonomyMs = performance.now() - t;
        const b = await empty.exportMemory();
        empty.dispose();
        bigFigures.bigExportBytes = b.length;
        const again = await mod.createClassifier({ modelUrl: '/model/model.shelfwise', memory: { persist: false } });
        t = performance.now();
        await again.importMemory(b);
        bigFigures.bigReloadImportMs = performance.now() - t;
        again.dispose();
      }
      fresh.dispose();
      return {
        categories: report.labels,
        setTaxonomyMs: taxonomyMs,
        remembered: report.remembered,
        method: report.method,
        addExamplesMs: addMs,
        memoryBytes: info.bytes,
        exportBytes: bytes.length,
        bytesPerTitle: info.bytes / info.examples,
        exportBytesPerTitle: bytes.length / info.examples,
        learnMsP50: pct(learnMs, 0.5),
        learnMsP95: pct(learnMs, 0.95),
        similarMsP50: pct(similarMs, 0.5),
        similarMsP95: pct(similarMs, 0.95),
        similarOver: after.examples,
        exportMs,
        importMs,
        reloadImportMs,
        ...bigFigures,
      };
    },
    { examples, learns, queries, big },
  );
  r.examplesFile = file;
  r.n = n;
  r.depth = depth;
  console.table(r);
  console.log(JSON.stringify(r));
  if (out) writeFileSync(out, JSON.stringify(r, null, 2) + '\n');
} finally {
  await browser.close();
  await server.stop();
}
