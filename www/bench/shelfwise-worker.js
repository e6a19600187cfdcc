// The shelfwise package's own worker (dist/worker.js, unchanged), preceded by the wasm memory spy.
import './wasm-spy.js';
import '/dist/worker.js';
