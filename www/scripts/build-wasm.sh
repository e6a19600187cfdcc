#!/usr/bin/env bash
# Builds crates/shelfwise-wasm for the browser and generates the JS bindings into www/pkg/.
set -euo pipefail
cd "$(dirname "$0")/../.."
WASM_BINDGEN_VERSION=0.2.130 # must equal the pinned wasm-bindgen in Cargo.toml

have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$WASM_BINDGEN_VERSION" ]; then
  echo "wasm-bindgen $WASM_BINDGEN_VERSION is needed (found '${have:-none}'): run www/scripts/setup-browser.sh" >&2
  exit 1
fi
cargo build --release --locked --target wasm32-unknown-unknown -p shelfwise-wasm
rm -rf www/pkg
wasm-bindgen --target web --out-dir www/pkg target/wasm32-unknown-unknown/release/shelfwise_wasm.wasm
# Optional size pass with binaryen's wasm-opt from npm (Debian's v108 breaks wasm-bindgen output).
if [ -x www/node_modules/.bin/wasm-opt ] && [ "${SHELFWISE_WASM_OPT:-1}" = 1 ]; then
  www/node_modules/.bin/wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    www/pkg/shelfwise_wasm_bg.wasm -o www/pkg/shelfwise_wasm_bg.wasm
fi
ls -l www/pkg/shelfwise_wasm_bg.wasm
