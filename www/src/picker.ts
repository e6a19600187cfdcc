// <shelfwise-category-picker>: turns the text input inside it into a category picker.
//
//   <shelfwise-category-picker model-url="/model/model.shelfwise" name="category">
//     <label for="title">Title</label> <input id="title" name="title">
//   </shelfwise-category-picker>
//
// As the seller types, a listbox shows the suggested categories (full path and score). ArrowUp/
// ArrowDown move, Enter picks, Escape closes. The pick goes into a hidden input named after the
// `name` attribute and fires `shelfwise-select` ({ id, path, label, score }). Text is rendered with
// textContent only. Styles: `shelfwise/picker.css`.
//
// Learning (issue #19): picking a category other than the top suggestion, or one found with
// "Browse categories" (type to filter the names, ArrowRight into a category's children,
// ArrowLeft back up, Enter picks), is a correction: it goes to `learn()` and fires
// `shelfwise-learn` ({ title, label }). "Why?" next to the pick shows each word's part in its
// score (`explain()`) as highlighted words.
import { createClassifier, ShelfwiseError } from './index.js';
import type { BackendRequest, Classifier, PathSegment, ProgressEvent, Suggestion, SuggestResult } from './types.js';

export interface SelectDetail {
  id: number;
  path: PathSegment[];
  /** "Top > Middle > Leaf" */
  label: string;
  score: number;
}

let counter = 0;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function pathNode(path: PathSegment[]): HTMLElement {
  const span = el('span', 'sw-path');
  path.forEach((seg, i) => {
    if (i > 0) span.append(el('span', 'sw-sep', ' › '));
    span.append(el('span', i === path.length - 1 ? 'sw-leaf' : 'sw-anc', seg.name));
  });
  return span;
}

const pct = (x: number) => (x > 0 && x < 0.005 ? '<1%' : `${Math.round(x * 100)}%`);
const labelOf = (path: PathSegment[]) => path.map((s) => s.name).join(' > ');

// Importing this module where there is no DOM (server-side rendering) must not throw: the class
// then extends a stand-in, and the element is registered only where `customElements` exists.
const Base = (typeof HTMLElement === 'undefined' ? class {} : HTMLElement) as typeof HTMLElement;

/** Attributes that choose how the picker's own classifier is created: changing one reloads it. */
const LOAD_ATTRS = ['model-url', 'backend', 'worker-url', 'wasm-url', 'cache'] as const;

export class CategoryPicker extends Base {
  static observedAttributes = [...LOAD_ATTRS];

  private input: HTMLInputElement | null = null;
  private field = el('input');
  private popup = el('div', 'sw-popup');
  private listbox = el('ul', 'sw-listbox');
  private note = el('div', 'sw-note');
  private status = el('div', 'sw-status');
  private chosen = el('div', 'sw-chosen');
  private items: Suggestion[] = [];
  private active = -1;
  private open = false;
  private group = `picker-${++counter}`;
  private clf: Classifier | null = null;
  private loading: Promise<Classifier> | null = null;
  /** Aborts (or disposes, once loaded) the classifier this picker created; null for a shared one. */
  private own: AbortController | null = null;
  private selection: SelectDetail | null = null;
  private seq = 0;
  private failure: { at: number; error: ShelfwiseError } | null = null;
  private browseButton = el('button', 'sw-browse-button', 'Browse categories');
  private browser = el('div', 'sw-browser');
  private search = el('input', 'sw-search');
  private tree = el('ul', 'sw-tree');
  private crumbs = el('div', 'sw-crumbs');
  /** The browse panel: the current category (segments), its rows and the active row. */
  private at: string[] = [];
  private rows: Array<{ path: string[]; id: number | null; children: number }> = [];
  private rowActive = -1;
  private categories: string[] = [];
  private whyButton = el('button', 'sw-why-button', 'Why?');
  private why = el('div', 'sw-why');
  /** Under the pick (outside `.sw-chosen`, which pages may hide): the "Why?" button and its answer. */
  private whyRow = el('div', 'sw-why-row');
  private pickedTitle = '';

  /** Share a classifier between pickers (or create it yourself); otherwise `model-url` is used. */
  get classifier(): Classifier | null {
    return this.clf;
  }
  set classifier(c: Classifier | null) {
    this.release();
    this.clf = c;
    this.loading = c ? Promise.resolve(c) : null;
  }

  // Properties reflect their attributes: `picker.backend = 'webgpu'` is `backend="webgpu"`.
  /** URL of the model file (`model-url`). */
  get modelUrl(): string | null {
    return this.getAttribute('model-url');
  }
  set modelUrl(v: string | null) {
    this.setOrRemove('model-url', v);
  }
  /** `backend`: 'auto' (default), 'wasm' or 'webgpu' (see createClassifier). */
  get backend(): BackendRequest {
    return (this.getAttribute('backend') as BackendRequest | null) ?? 'auto';
  }
  set backend(v: BackendRequest | null) {
    this.setOrRemove('backend', v);
  }
  /** `worker-url`: the worker module, where a bundler or CDN moved it (default: next to the package). */
  get workerUrl(): string | null {
    return this.getAttribute('worker-url');
  }
  set workerUrl(v: string | null) {
    this.setOrRemove('worker-url', v);
  }
  /** `wasm-url`: the wasm runtime, used as is (default: the package's choice, next to it). */
  get wasmUrl(): string | null {
    return this.getAttribute('wasm-url');
  }
  set wasmUrl(v: string | null) {
    this.setOrRemove('wasm-url', v);
  }
  /** `cache`: the Cache Storage name (default 'shelfwise-models-v1'); the attribute "false" (or the property `false`) turns caching off. */
  get cacheName(): string | false {
    const v = this.getAttribute('cache');
    return v === null || v === '' ? 'shelfwise-models-v1' : v === 'false' ? false : v;
  }
  set cacheName(v: string | false | null) {
    this.setOrRemove('cache', v === false ? 'false' : v);
  }
  /** `k`: suggestions shown (1–50, default 5). */
  get k(): number {
    return this.numberAttr('k', 5, 1, 50, true);
  }
  set k(v: number) {
    this.setAttribute('k', String(v));
  }
  /** `threshold`: abstain below this top score (0–1, default 0.5). */
  get threshold(): number {
    return this.numberAttr('threshold', 0.5, 0, 1, false);
  }
  set threshold(v: number) {
    this.setAttribute('threshold', String(v));
  }

  private setOrRemove(name: string, v: string | null | undefined) {
    if (v === null || v === undefined) this.removeAttribute(name);
    else this.setAttribute(name, v);
  }

  /** Disposes the classifier this picker created (loaded or loading); a shared one is left alone. */
  private release() {
    if (!this.own) return;
    this.own.abort();
    this.own = null;
    this.clf?.dispose();
    this.clf = null;
    this.loading = null;
  }

  /** The picked category, or null. */
  get value(): SelectDetail | null {
    return this.selection;
  }

  connectedCallback() {
    if (this.input) {
      // Connected again after a removal: load again (a shared classifier is still there).
      void this.ensureClassifier().catch(() => {});
      return;
    }
    const input = this.querySelector<HTMLInputElement>('input:not([type=hidden])');
    if (!input) {
      console.error('shelfwise-category-picker: put a text <input> inside the element');
      return;
    }
    this.input = input;
    const id = this.group;
    this.listbox.id = `${id}-listbox`;
    this.listbox.setAttribute('role', 'listbox');
    this.listbox.setAttribute('aria-label', this.getAttribute('list-label') ?? 'Suggested categories');
    this.popup.hidden = true;
    this.popup.append(this.listbox, this.note);
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-live', 'polite');
    this.chosen.hidden = true;
    this.chosen.setAttribute('aria-live', 'polite');
    this.field.type = 'hidden';
    this.field.name = this.getAttribute('name') ?? 'category';
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-expanded', 'false');
    input.setAttribute('aria-controls', this.listbox.id);
    input.setAttribute('autocomplete', 'off');
    input.insertAdjacentElement('afterend', this.popup);
    this.append(this.chosen, this.status, this.field);
    this.setupBrowse(input);

    input.addEventListener('input', () => void this.update());
    input.addEventListener('keydown', (e) => this.onKey(e));
    input.addEventListener('blur', () => setTimeout(() => this.close(), 120));
    input.addEventListener('focus', () => this.items.length && this.show());
    // pointerdown keeps the focus in the input; the click picks.
    this.listbox.addEventListener('pointerdown', (e) => e.preventDefault());
    this.listbox.addEventListener('click', (e) => {
      const li = (e.target as Element).closest<HTMLElement>('[role=option]');
      if (li) this.pick(Number(li.dataset.index));
    });
    void this.ensureClassifier().then(
      () => {
        if (this.input?.value.trim()) void this.update();
      },
      () => {},
    );
  }

  attributeChangedCallback(_name: string, old: string | null, value: string | null) {
    if (old === value) return;
    this.release(); // its own classifier no longer matches the attributes
    this.failure = null;
    if (this.input && this.isConnected && !this.clf) void this.ensureClassifier().catch(() => {});
  }

  disconnectedCallback() {
    this.close();
    // A picker removed from the page stops its worker and frees its model, unless it is only being
    // moved (connected again in the same task).
    queueMicrotask(() => {
      if (!this.isConnected) this.release();
    });
  }

  private ensureClassifier(): Promise<Classifier> {
    if (this.loading) return this.loading;
    // After a failed load, retry at most every 30 s (not on every keystroke).
    if (this.failure && Date.now() - this.failure.at < 30_000) return Promise.reject(this.failure.error);
    const modelUrl = this.getAttribute('model-url');
    if (!modelUrl) return Promise.reject(new ShelfwiseError('INVALID_ARGUMENT', 'no model-url'));
    this.setStatus('Loading category suggestions…');
    const own = new AbortController();
    this.own = own;
    this.loading = createClassifier({
      modelUrl,
      backend: this.backend,
      workerUrl: this.workerUrl ?? undefined,
      wasmUrl: this.wasmUrl ?? undefined,
      cache: this.cacheName,
      signal: own.signal,
      onProgress: (p: ProgressEvent) => {
        if (p.phase === 'download' && p.total) this.setStatus(`Loading category suggestions… ${pct(p.loaded / p.total)}`);
        this.dispatchEvent(new CustomEvent('shelfwise-progress', { detail: p, bubbles: true }));
      },
    }).then(
      (c) => {
        if (own.signal.aborted) {
          c.dispose(); // released while it loaded
          throw new ShelfwiseError('ABORTED', 'the picker was removed or reconfigured while its model loaded');
        }
        this.clf = c;
        this.setStatus('');
        this.dispatchEvent(new CustomEvent('shelfwise-ready', { detail: c.info, bubbles: true }));
        return c;
      },
      (e: ShelfwiseError) => {
        if (own.signal.aborted) throw e;
        this.loading = null;
        this.own = null;
        this.failure = { at: Date.now(), error: e };
        this.setStatus('Category suggestions are unavailable.');
        this.dispatchEvent(new CustomEvent('shelfwise-error', { detail: e, bubbles: true }));
        throw e;
      },
    );
    return this.loading;
  }

  private numberAttr(name: string, dflt: number, min: number, max: number, integer: boolean): number {
    const raw = this.getAttribute(name);
    const n = raw === null || raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(n)) return dflt;
    return Math.min(max, Math.max(min, integer ? Math.round(n) : n));
  }

  private setStatus(text: string) {
    this.status.textContent = text;
    this.status.classList.toggle('sw-visible', text !== '');
  }

  private async update() {
    const input = this.input;
    if (!input) return;
    const seq = ++this.seq;
    const title = input.value;
    if (!title.trim()) {
      this.render(null, title);
      return;
    }
    let result: SuggestResult;
    try {
      const clf = await this.ensureClassifier();
      result = await clf.suggest(title, {
        k: this.k,
        threshold: this.threshold,
        group: this.group,
      });
    } catch (e) {
      const code = (e as ShelfwiseError).code;
      if (code === 'ABORTED' || seq !== this.seq) return;
      this.render(null, title);
      this.setStatus(
        code === 'INPUT_TOO_LONG'
          ? 'This title is too long for category suggestions.'
          : this.clf
            ? 'Category suggestions are unavailable right now.'
            : 'Category suggestions are unavailable.',
      );
      if (!this.clf) return; // the load failure was reported already
      this.dispatchEvent(new CustomEvent('shelfwise-error', { detail: e, bubbles: true }));
      return;
    }
    if (seq !== this.seq) return;
    this.setStatus('');
    this.render(result, title);
  }

  private render(result: SuggestResult | null, title: string) {
    this.items = result?.suggestions ?? [];
    this.active = -1;
    this.input?.removeAttribute('aria-activedescendant');
    const lis = this.items.map((s, i) => {
      const li = el('li', 'sw-option');
      li.id = `${this.group}-opt-${i}`;
      li.dataset.index = String(i);
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', 'false');
      const bar = el('span', 'sw-bar');
      const fill = el('span', 'sw-fill');
      fill.style.width = `${(s.score * 100).toFixed(1)}%`;
      bar.append(fill);
      const score = el('span', 'sw-score', pct(s.score));
      score.setAttribute('aria-label', `${pct(s.score)} confidence`);
      li.append(pathNode(s.path), el('span', 'sw-meta'));
      li.lastElementChild!.append(bar, score);
      return li;
    });
    this.listbox.replaceChildren(...lis);
    this.note.replaceChildren();
    if (result && result.abstained && this.items.length) {
      this.note.append(el('span', '', 'Not sure yet: check the category. '));
      if (result.backOff) {
        this.note.append(el('span', '', 'Likely under '), pathNode(result.backOff.path), el('span', '', '.'));
      }
    }
    this.note.hidden = this.note.childNodes.length === 0;
    // What the list shows, for styling and tests: its title and number of options.
    this.dataset.count = String(this.items.length);
    this.dataset.query = title;
    if (this.items.length && this.input === document.activeElement) this.show();
    else if (!this.items.length) this.close();
  }

  private show() {
    if (!this.input || !this.items.length) return;
    this.open = true;
    this.popup.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  private close() {
    this.open = false;
    this.popup.hidden = true;
    this.setActive(-1);
    this.input?.setAttribute('aria-expanded', 'false');
  }

  private setActive(i: number) {
    const lis = this.listbox.children;
    if (this.active >= 0) lis[this.active]?.setAttribute('aria-selected', 'false');
    this.active = i;
    const li = i >= 0 ? lis[i] : undefined;
    if (li) {
      li.setAttribute('aria-selected', 'true');
      this.input?.setAttribute('aria-activedescendant', li.id);
      li.scrollIntoView?.({ block: 'nearest' });
    } else {
      this.input?.removeAttribute('aria-activedescendant');
    }
  }

  private onKey(e: KeyboardEvent) {
    const n = this.items.length;
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowUp': {
        if (!n) return;
        e.preventDefault();
        if (!this.open) {
          this.show();
          this.setActive(e.key === 'ArrowDown' ? 0 : n - 1);
          return;
        }
        const step = e.key === 'ArrowDown' ? 1 : -1;
        this.setActive(this.active < 0 ? (step > 0 ? 0 : n - 1) : (this.active + step + n) % n);
        break;
      }
      case 'Enter':
        if (this.open && this.active >= 0) {
          e.preventDefault(); // pick; do not submit the form
          this.pick(this.active);
        }
        break;
      case 'Escape':
        if (this.open) {
          e.preventDefault();
          this.close();
        }
        break;
    }
  }

  private pick(i: number) {
    const s = this.items[i];
    if (!s) return;
    this.choose({ id: s.id, path: s.path, label: labelOf(s.path), score: s.score }, i !== 0);
    this.close();
  }

  /** Records the pick; a correction (not the top suggestion) goes to `learn()`. */
  private choose(detail: SelectDetail, correction: boolean) {
    this.selection = detail;
    this.field.value = detail.label;
    this.pickedTitle = this.input?.value ?? '';
    this.why.hidden = true;
    this.why.replaceChildren();
    this.chosen.replaceChildren(el('span', 'sw-chosen-label', 'Category: '), pathNode(detail.path));
    this.chosen.hidden = false;
    this.whyRow.hidden = false;
    this.whyButton.setAttribute('aria-expanded', 'false');
    this.dispatchEvent(new CustomEvent<SelectDetail>('shelfwise-select', { detail, bubbles: true }));
    const title = this.pickedTitle;
    if (correction && title.trim() && this.clf) {
      this.clf.learn(title, detail.label).then(
        () => this.dispatchEvent(new CustomEvent('shelfwise-learn', { detail: { title, label: detail.label }, bubbles: true })),
        (e: unknown) => this.dispatchEvent(new CustomEvent('shelfwise-error', { detail: e, bubbles: true })),
      );
    }
  }

  // ---- Browse and search the whole taxonomy (a second listbox; the same keys and ARIA). ----

  private setupBrowse(input: HTMLInputElement) {
    const id = this.group;
    this.browseButton.type = 'button';
    this.browseButton.setAttribute('aria-expanded', 'false');
    this.browseButton.setAttribute('aria-controls', `${id}-browser`);
    this.browser.id = `${id}-browser`;
    this.browser.hidden = true;
    this.search.type = 'text';
    this.search.setAttribute('role', 'combobox');
    this.search.setAttribute('aria-autocomplete', 'list');
    this.search.setAttribute('aria-expanded', 'true');
    this.search.setAttribute('aria-controls', `${id}-tree`);
    this.search.setAttribute('aria-label', 'Search categories');
    this.search.placeholder = 'Search categories';
    this.search.autocomplete = 'off';
    this.tree.id = `${id}-tree`;
    this.tree.setAttribute('role', 'listbox');
    this.tree.setAttribute('aria-label', 'Categories');
    this.crumbs.setAttribute('aria-live', 'polite');
    this.browser.append(this.search, this.crumbs, this.tree);
    this.whyButton.type = 'button';
    this.whyButton.setAttribute('aria-expanded', 'false');
    this.why.hidden = true;
    this.why.setAttribute('aria-live', 'polite');
    this.whyRow.hidden = true;
    this.whyRow.append(this.whyButton, this.why);
    input.closest('shelfwise-category-picker')?.append(this.browseButton, this.browser, this.whyRow);
    this.browseButton.addEventListener('click', () => void this.toggleBrowse());
    this.search.addEventListener('input', () => this.renderRows());
    this.search.addEventListener('keydown', (e) => this.onBrowseKey(e));
    this.tree.addEventListener('pointerdown', (e) => e.preventDefault());
    this.tree.addEventListener('click', (e) => {
      const li = (e.target as Element).closest<HTMLElement>('[role=option]');
      if (li) this.chooseRow(Number(li.dataset.index));
    });
    this.whyButton.addEventListener('click', () => void this.explainPick());
  }

  private async toggleBrowse() {
    if (!this.browser.hidden) return this.closeBrowse();
    const clf = await this.ensureClassifier().catch(() => null);
    if (!clf) return;
    this.categories = await clf.categories();
    this.at = [];
    this.browser.hidden = false;
    this.browseButton.setAttribute('aria-expanded', 'true');
    this.search.value = '';
    this.renderRows();
    this.search.focus();
  }

  private closeBrowse() {
    this.browser.hidden = true;
    this.browseButton.setAttribute('aria-expanded', 'false');
    this.search.removeAttribute('aria-activedescendant');
  }

  /** Rows: with a query, every category whose path contains it (best first: the name starts with it); without, the children of `at`. */
  private renderRows() {
    const q = this.search.value.trim().toLowerCase();
    const paths = this.categories.map((c, i) => ({ path: c.split(' > '), id: i }));
    let rows: typeof this.rows;
    if (q) {
      rows = paths
        .filter((p) => p.path.join(' > ').toLowerCase().includes(q))
        .sort((a, b) => Number(!a.path[a.path.length - 1]!.toLowerCase().startsWith(q)) - Number(!b.path[b.path.length - 1]!.toLowerCase().startsWith(q)))
        .slice(0, 50)
        .map((p) => ({ path: p.path, id: p.id, children: 0 }));
    } else {
      const depth = this.at.length;
      const under = paths.filter((p) => p.path.length > depth && this.at.every((s, i) => p.path[i] === s));
      const byName = new Map<string, { path: string[]; id: number | null; children: number }>();
      for (const p of under) {
        const name = p.path[depth]!;
        const row = byName.get(name) ?? { path: p.path.slice(0, depth + 1), id: null, children: 0 };
        if (p.path.length === depth + 1) row.id = p.id;
        else row.children += 1;
        byName.set(name, row);
      }
      rows = [...byName.values()].sort((a, b) => a.path[depth]!.localeCompare(b.path[depth]!));
    }
    this.rows = rows;
    this.rowActive = -1;
    this.search.removeAttribute('aria-activedescendant');
    this.crumbs.textContent = q ? `${rows.length} matching` : this.at.length ? this.at.join(' › ') : 'All categories';
    this.tree.replaceChildren(
      ...rows.map((r, i) => {
        const li = el('li', 'sw-option');
        li.id = `${this.group}-row-${i}`;
        li.dataset.index = String(i);
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', 'false');
        li.append(q ? pathNode(r.path.map((name, level) => ({ name, level: level + 1 }))) : el('span', 'sw-leaf', r.path[r.path.length - 1]));
        if (r.children) {
          const more = el('span', 'sw-children', ` › ${r.children}`);
          more.setAttribute('aria-label', `${r.children} subcategories: ArrowRight opens`);
          li.append(more);
        }
        return li;
      }),
    );
  }

  private setRow(i: number) {
    const lis = this.tree.children;
    if (this.rowActive >= 0) lis[this.rowActive]?.setAttribute('aria-selected', 'false');
    this.rowActive = i;
    const li = i >= 0 ? lis[i] : undefined;
    if (li) {
      li.setAttribute('aria-selected', 'true');
      this.search.setAttribute('aria-activedescendant', li.id);
      li.scrollIntoView?.({ block: 'nearest' });
    } else this.search.removeAttribute('aria-activedescendant');
  }

  private onBrowseKey(e: KeyboardEvent) {
    const n = this.rows.length;
    const row = this.rows[this.rowActive];
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowUp': {
        if (!n) return;
        e.preventDefault();
        const step = e.key === 'ArrowDown' ? 1 : -1;
        this.setRow(this.rowActive < 0 ? (step > 0 ? 0 : n - 1) : (this.rowActive + step + n) % n);
        break;
      }
      case 'ArrowRight':
        if (row && row.children && !this.search.value.trim()) {
          e.preventDefault();
          this.at = row.path;
          this.renderRows();
          this.setRow(0);
        }
        break;
      case 'ArrowLeft':
        if (this.at.length && !this.search.value.trim()) {
          e.preventDefault();
          this.at = this.at.slice(0, -1);
          this.renderRows();
        }
        break;
      case 'Enter':
        if (row) {
          e.preventDefault();
          this.chooseRow(this.rowActive);
        }
        break;
      case 'Escape':
        e.preventDefault();
        this.closeBrowse();
        this.input?.focus();
        break;
    }
  }

  /** A category chosen by browsing: a correction unless it is the top suggestion shown. */
  private chooseRow(i: number) {
    const r = this.rows[i];
    if (!r) return;
    if (r.id === null) {
      // An inner node that is no category itself: open it.
      this.at = r.path;
      this.search.value = '';
      this.renderRows();
      return;
    }
    const label = r.path.join(' > ');
    const top = this.items[0] ? labelOf(this.items[0].path) : null;
    // Its score among the suggestions shown, when it is one of them (else 0: not suggested).
    const score = this.items.find((s) => labelOf(s.path) === label)?.score ?? 0;
    this.choose({ id: r.id, path: r.path.map((name, level) => ({ name, level: level + 1 })), label, score }, label !== top);
    this.closeBrowse();
    this.input?.focus();
    this.close(); // the focus reopened the suggestions; the pick is made
  }

  /** "Why?": the pick's explanation, each word a span (textContent) marked for or against. */
  private async explainPick() {
    const sel = this.selection;
    if (!sel || !this.clf || !this.pickedTitle.trim()) return;
    if (!this.why.hidden) {
      this.why.hidden = true;
      this.whyButton.setAttribute('aria-expanded', 'false');
      return;
    }
    try {
      const ids = await this.clf.categories();
      const id = ids.indexOf(sel.label);
      if (id < 0) return;
      const ex = await this.clf.explain(this.pickedTitle, id);
      const max = Math.max(1e-6, ...ex.words.map((w) => Math.abs(w.contribution)));
      const words = ex.words.map((w) => {
        const span = el('span', w.contribution > 0 ? 'sw-word sw-word-for' : w.contribution < 0 ? 'sw-word sw-word-against' : 'sw-word', w.word);
        span.style.setProperty('--sw-weight', (Math.abs(w.contribution) / max).toFixed(3));
        const pts = (w.contribution * 100).toFixed(1);
        span.title = `${w.contribution >= 0 ? '+' : ''}${pts} points`;
        span.dataset.contribution = String(w.contribution);
        return span;
      });
      const spaced: Node[] = [];
      words.forEach((w, i) => spaced.push(...(i ? [document.createTextNode(' '), w] : [w])));
      this.why.replaceChildren(el('div', 'sw-why-head', `Why ${sel.label} (${pct(ex.score)}): highlighted words raised the score, struck-through ones lowered it.`), el('div', 'sw-why-words'));
      this.why.lastElementChild!.append(...spaced);
      this.why.hidden = false;
      this.whyButton.setAttribute('aria-expanded', 'true');
    } catch (e) {
      this.dispatchEvent(new CustomEvent('shelfwise-error', { detail: e, bubbles: true }));
    }
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('shelfwise-category-picker')) {
  customElements.define('shelfwise-category-picker', CategoryPicker);
}

declare global {
  interface HTMLElementTagNameMap {
    'shelfwise-category-picker': CategoryPicker;
  }
  interface HTMLElementEventMap {
    'shelfwise-select': CustomEvent<SelectDetail>;
    'shelfwise-learn': CustomEvent<{ title: string; label: string }>;
  }
}
