// The demo listing form: the category picker, the Category field it fills, and the offline
// service worker. No inline script (CSP), text through textContent only.
import '/dist/picker.js';
import { readExamplesCsv } from '/dist/csv.js';

const $ = (id) => document.getElementById(id);
const picker = $('picker');
const statusBox = $('model-status');
const statusText = $('model-status-text');
const box = $('category-box');
const value = $('category-value');
const change = $('category-change');
const form = $('listing');

function setStatus(text, state) {
  statusText.textContent = text;
  statusBox.classList.toggle('ready', state === 'ready');
  statusBox.classList.toggle('failed', state === 'failed');
}

function renderPath(path) {
  const span = document.createElement('span');
  span.className = 'sw-path';
  path.forEach((seg, i) => {
    if (i) {
      const sep = document.createElement('span');
      sep.className = 'sw-sep';
      sep.textContent = ' › ';
      span.append(sep);
    }
    const s = document.createElement('span');
    s.className = i === path.length - 1 ? 'sw-leaf' : 'sw-anc';
    s.textContent = seg.name;
    span.append(s);
  });
  return span;
}

picker.addEventListener('shelfwise-progress', (e) => {
  const p = e.detail;
  if (p.phase === 'download' && p.total) setStatus(`Downloading category model… ${Math.round((100 * p.loaded) / p.total)}%`);
  else if (p.phase === 'cache') setStatus('Loading category model from this device…');
  else if (p.phase === 'verify') setStatus('Checking category model…');
});
picker.addEventListener('shelfwise-ready', (e) => {
  const info = e.detail;
  setStatus(`Category suggestions ready · on this device`, 'ready');
  $('model-name').textContent = `${info.name} (${info.labelCount} categories, ${info.sha256.slice(0, 12)})`;
  document.documentElement.dataset.model = 'ready';
});
picker.addEventListener('shelfwise-error', (e) => {
  const err = e.detail;
  if (!picker.classifier) {
    setStatus('Category suggestions unavailable: type the category yourself', 'failed');
    value.textContent = 'Suggestions are unavailable on this device right now.';
    $('category-manual-box').hidden = false;
    document.documentElement.dataset.model = 'failed';
  }
  console.warn('shelfwise:', err && err.code, err && err.message);
});
picker.addEventListener('shelfwise-select', (e) => {
  const d = e.detail;
  const score = document.createElement('span');
  score.className = 'score';
  score.textContent = `${Math.round(d.score * 100)}% match`;
  value.className = '';
  value.replaceChildren(renderPath(d.path), score);
  box.classList.add('chosen');
  change.hidden = false;
  $('category-error').hidden = true;
});
change.addEventListener('click', () => {
  const input = $('title');
  input.focus();
  input.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
});

form.addEventListener('reset', () => {
  value.className = 'placeholder';
  value.textContent = 'Start typing the title, then pick a suggested category.';
  box.classList.remove('chosen');
  change.hidden = true;
  $('saved').hidden = true;
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  const data = new FormData(form);
  const price = Number(data.get('price'));
  const okPrice = price > 0;
  const category = String(data.get('category') || data.get('category-manual') || '').trim();
  const okCat = category !== '';
  $('price-error').hidden = okPrice;
  $('category-error').hidden = okCat;
  if (!String(data.get('title') ?? '').trim()) return $('title').focus();
  if (!okCat) return $('title').focus();
  if (!okPrice) return $('price').focus();
  const saved = $('saved');
  saved.textContent = `Saved “${data.get('title')}” in ${category} at ₹${price.toFixed(2)} (demo: nothing was sent).`;
  saved.hidden = false;
});

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('service worker:', e));
}

// The adaptation panel: a taxonomy and an examples CSV read here (FileReader: never uploaded), the
// memory's size, export and import.
const memoryInfo = $('memory-info');

async function showMemory() {
  const c = picker.classifier;
  if (!c) return;
  const m = await c.memoryInfo();
  const where = m.storage.persisted ? 'saved on this device' : `in this tab only (${m.storage.reason})`;
  memoryInfo.textContent = `Memory: ${m.examples} titles, ${m.categories} categories, ${(m.exportBytes / 1024).toFixed(1)} kB, ${where}`;
}

function readText(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsText(file);
  });
}

async function adaptFrom(input, apply) {
  const file = input.files && input.files[0];
  const c = picker.classifier;
  if (!file || !c) return;
  memoryInfo.textContent = `Reading ${file.name}…`;
  try {
    const report = await apply(c, await readText(file));
    memoryInfo.textContent = `${file.name}: ${report.labels} categories, ${report.remembered} titles remembered`;
    await showMemory();
  } catch (e) {
    memoryInfo.textContent = `${file.name}: ${e.code ?? 'error'}: ${e.message}`;
  }
  input.value = '';
}

// The taxonomy is parsed by the model's own reader (plain paths, Google's ids, Shopify's
// categories.txt: as the CLI reads them), the examples by the package's CSV reader.
$('taxonomy-file').addEventListener('change', (e) => adaptFrom(e.target, async (c, text) => c.setTaxonomy(await c.readTaxonomy(text))));
$('examples-file').addEventListener('change', (e) => adaptFrom(e.target, (c, text) => c.addExamples(readExamplesCsv(text))));
$('memory-export').addEventListener('click', async () => {
  const c = picker.classifier;
  if (!c) return;
  const bytes = await c.exportMemory();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  a.download = 'shelfwise-memory.swmem';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
$('memory-import').addEventListener('change', async (e) => {
  const file = e.target.files && e.target.files[0];
  const c = picker.classifier;
  if (!file || !c) return;
  try {
    await c.importMemory(new Uint8Array(await file.arrayBuffer()));
    await showMemory();
  } catch (err) {
    memoryInfo.textContent = `${file.name}: ${err.code}: ${err.message}`;
  }
  e.target.value = '';
});
picker.addEventListener('shelfwise-ready', () => void showMemory());
picker.addEventListener('shelfwise-learn', () => void showMemory());
