#!/usr/bin/env bash
# `npm pack` / `npm publish` in www/ run this first (prepack): the three wasm builds (runtime,
# relaxed SIMD runtime, optional WebGPU bundle) and the package's dist/, so the tarball has all a
# user needs and installs without a Rust toolchain. Needs the Rust side (www/scripts/setup-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
bash scripts/build-wasm.sh relaxed
bash scripts/build-wasm.sh gpu
node scripts/build.mjs
