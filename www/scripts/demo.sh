#!/usr/bin/env bash
# Builds (if needed) and serves the demo on 127.0.0.1; prints its URL. PORT=8080 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/index.js ] || [ ! -f pkg/shelfwise_wasm_bg.wasm ] || [ ! -f pkg-relaxed/shelfwise_wasm_bg.wasm ]; then
  bash scripts/build-wasm.sh
  bash scripts/build-wasm.sh relaxed
  npm run --silent build
fi
exec node scripts/serve.mjs --port "${PORT:-8080}" "$@"
