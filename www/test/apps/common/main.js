// The fixture apps' page script (the same in each app): what a shop's front end would write.
// It marks on <html> what the test checks: the model is ready (and from the cache or not), and
// that errors from both entry points are instances of the one ShelfwiseError class.
import { ShelfwiseError, createClassifier } from 'shelfwise';
import { CategoryPicker } from 'shelfwise/picker';

const root = document.documentElement.dataset;
root.registered = String(customElements.get('shelfwise-category-picker') === CategoryPicker);
const picker = document.getElementById('picker');
picker.addEventListener('shelfwise-ready', (e) => {
  root.fromCache = String(e.detail.fromCache);
  root.model = 'ready';
});
picker.addEventListener('shelfwise-error', (e) => (root.error = `${e.detail.code}: ${e.detail.message}`));
// An error thrown by the main entry, and one reported by the picker (a model that is not there).
createClassifier({}).catch((e) => (root.indexError = `${e instanceof ShelfwiseError} ${e.code}`));
document.getElementById('broken').addEventListener('shelfwise-error', (e) => {
  e.stopPropagation();
  root.pickerError = `${e.detail instanceof ShelfwiseError} ${e.detail.code}`;
});
// The app shell offline (the package keeps the model in Cache Storage itself).
navigator.serviceWorker?.register('/sw.js');
