// Imported first by the bench workers: remembers every WebAssembly.Memory the worker creates or
// instantiates (created in JS, imported, or exported by an instance), so that the benchmark can
// read the engine's wasm memory size (`globalThis.__benchWasmMemoryBytes()`, evaluated by
// playwright in the worker). The engines' own code is untouched.
const memories = new Set();

function note(obj) {
  if (obj instanceof WebAssembly.Memory) memories.add(obj);
}
function noteInstance(instance) {
  for (const v of Object.values(instance?.exports ?? {})) note(v);
}
function noteImports(imports) {
  for (const mod of Object.values(imports ?? {})) for (const v of Object.values(mod ?? {})) note(v);
}

const W = WebAssembly;
const { instantiate, instantiateStreaming } = W;
const OrigMemory = W.Memory;
const OrigInstance = W.Instance;

W.Memory = new Proxy(OrigMemory, {
  construct(target, args, newTarget) {
    const m = Reflect.construct(target, args, newTarget);
    memories.add(m);
    return m;
  },
});
W.Instance = new Proxy(OrigInstance, {
  construct(target, args, newTarget) {
    noteImports(args[1]);
    const inst = Reflect.construct(target, args, newTarget);
    noteInstance(inst);
    return inst;
  },
});
W.instantiate = async function (source, imports) {
  noteImports(imports);
  const r = await instantiate.call(W, source, imports);
  noteInstance(r instanceof OrigInstance ? r : r.instance);
  return r;
};
if (instantiateStreaming) {
  W.instantiateStreaming = async function (source, imports) {
    noteImports(imports);
    const r = await instantiateStreaming.call(W, source, imports);
    noteInstance(r.instance);
    return r;
  };
}

// `sharedBytes`: the part backed by a SharedArrayBuffer (onnxruntime-web's threaded build uses
// shared memory even with one thread); Chromium's measureUserAgentSpecificMemory() counts that part
// in the worker's JS heap, and not an unshared wasm memory (shelfwise's).
globalThis.__benchWasmMemoryBytes = () => {
  let bytes = 0;
  let sharedBytes = 0;
  for (const m of memories) {
    bytes += m.buffer.byteLength;
    if (typeof SharedArrayBuffer !== 'undefined' && m.buffer instanceof SharedArrayBuffer) sharedBytes += m.buffer.byteLength;
  }
  return { bytes, sharedBytes, memories: memories.size };
};
