// transformers.js in a module Web Worker, like shelfwise's engine (fairness: neither blocks the page).
// Its URL's query picks the model and onnxruntime-web's threads:
//   ?model=all-MiniLM-L6-v2-q8 (a folder under /bench-models/, loaded as dtype q8:
//   onnx/model_quantized.onnx) &threads=1 (env.backends.onnx.wasm.numThreads; 'auto' leaves it unset:
//   onnxruntime-web then takes 1 on a page that is not cross-origin isolated, else
//   min(4, ceil(hardwareConcurrency / 2))).
// Protocol: page → {id, texts: string[]}; worker → {id, dims: [n, 384], data: Float32Array,
// elapsedMs (pipeline time inside the worker)} or {id, error}; page → {id, info: true}; worker →
// {id, info: {numThreads, crossOriginIsolated, hardwareConcurrency, nestedWorkers}}. The pipeline is
// created on the first message (the page sends its first title as soon as it loads, so "page load
// → first result" includes loading the model, as it does for shelfwise).
import './wasm-spy.js';
import { env, pipeline } from '/node_modules/@huggingface/transformers/dist/transformers.js';

// Local files only: the model from our server (setup-bench.sh unpacks it), the onnxruntime-web
// wasm from node_modules/onnxruntime-web/dist/ (same version transformers.js bundles). Without
// these, transformers.js would go to huggingface.co and cdn.jsdelivr.net.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/bench-models/';
env.backends.onnx.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
env.backends.onnx.wasm.proxy = false;
const query = new URLSearchParams(self.location.search);
const MODEL = query.get('model') ?? 'all-MiniLM-L6-v2-q8';
const THREADS = query.get('threads') ?? '1';
// Default 1: what a seller's page gets (not cross-origin isolated: onnxruntime-web runs one thread
// whatever numThreads says); shelfwise's wasm is single-threaded too. This bench page is isolated
// (COEP, for measureUserAgentSpecificMemory), so 'auto' would let onnxruntime-web use more.
if (THREADS !== 'auto') env.backends.onnx.wasm.numThreads = Number(THREADS);

// Counts the Workers this worker starts: onnxruntime-web's wasm threads are Web Workers.
let nestedWorkers = 0;
if (typeof Worker !== 'undefined') {
  globalThis.Worker = new Proxy(Worker, {
    construct(target, args, newTarget) {
      nestedWorkers++;
      return Reflect.construct(target, args, newTarget);
    },
  });
}

let extractor = null;
const ready = () =>
  (extractor ??= pipeline('feature-extraction', MODEL, { device: 'wasm', dtype: 'q8' }).then((fx) => {
    // Cut at 128 tokens like shelfwise (the tokenizer's own limit is 512), so that both engines see
    // the same tokens; only the longest fixture title is that long.
    // (model_max_length is a getter over the loaded tokenizer_config.json.)
    fx.tokenizer._tokenizerConfig.model_max_length = 128;
    if (fx.tokenizer.model_max_length !== 128) throw new Error('cannot set the tokenizer max length');
    return fx;
  }));

// Strictly one request at a time, in arrival order (the page also awaits each call).
let chain = Promise.resolve();
self.addEventListener('message', (e) => {
  const { id, texts } = e.data;
  chain = chain.then(async () => {
    try {
      const fx = await ready();
      if (e.data.info) {
        // After the session exists: onnxruntime-web has written the thread count it chose back.
        const info = { numThreads: env.backends.onnx.wasm.numThreads, requested: THREADS, crossOriginIsolated: self.crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, nestedWorkers };
        self.postMessage({ id, info });
        return;
      }
      const t0 = performance.now();
      // Mean pooling over the attention mask, not L2-normalised: what shelfwise's encoder computes
      // before its head.
      const out = await fx(texts, { pooling: 'mean', normalize: false });
      const elapsedMs = performance.now() - t0;
      // The pooled vectors go back whole (n x 384 float32), as an application would get them.
      self.postMessage({ id, dims: out.dims, data: out.data, elapsedMs });
    } catch (err) {
      self.postMessage({ id, error: String(err?.stack ?? err) });
    }
  });
});
