#!/usr/bin/env bash
# Builds a wasm bundle for the browser and generates its JS bindings:
#   build-wasm.sh       crates/shelfwise-wasm     → www/pkg/      (the runtime)
#   build-wasm.sh relaxed  crates/shelfwise-wasm  → www/pkg-relaxed/ (the runtime again with wasm
#                       relaxed SIMD: the quantized matmul's 8-bit dot product; the package loads
#                       it instead where the browser runs relaxed SIMD correctly)
#   build-wasm.sh gpu   crates/shelfwise-wasm-gpu → www/pkg-gpu/  (the WebGPU encoder: an optional
#                       bundle the npm package loads only when the WebGPU backend is chosen)
set -euo pipefail
cd "$(dirname "$0")/../.."
WASM_BINDGEN_VERSION=0.2.130 # must equal the pinned wasm-bindgen in Cargo.toml

case "${1:-main}" in
  main | relaxed) crate=shelfwise-wasm out=www/pkg extra=() ;;
  gpu) crate=shelfwise-wasm-gpu out=www/pkg-gpu extra=(--config 'profile.release.package.shelfwise-gpu.opt-level=3') ;;
  *) echo "usage: build-wasm.sh [main|relaxed|gpu]" >&2; exit 2 ;;
esac
target=target
if [ "${1:-main}" = relaxed ]; then
  # Its own target directory: other target features are other compiled dependencies, and sharing
  # one directory would rebuild them back and forth.
  out=www/pkg-relaxed target=target/wasm-relaxed extra=(--config .cargo/relaxed-simd.toml)
fi

have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$WASM_BINDGEN_VERSION" ]; then
  echo "wasm-bindgen $WASM_BINDGEN_VERSION is needed (found '${have:-none}'): run www/scripts/setup-browser.sh" >&2
  exit 1
fi
# Whole-program LTO for the browser build only (smaller download; the workspace's release profile is
# left alone for native builds). Set through the environment: Cargo.toml stays as it is.
# Sizes: the hot loops (our kernels and inference in shelfwise-kernels / -model, gemm's matmul
# microkernels for f32 models; the GPU crate's weight packing) at opt-level 3, everything else
# (tokenizers, regex, serde, candle's op dispatch) at "z": the runtime is 1.17 MB gzip at
# opt-level 3 everywhere, 0.94 MB this way (gzip -9). Both bundles share these settings, so they
# share their compiled dependencies.
CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --release --locked --target wasm32-unknown-unknown --target-dir "$target" -p "$crate" \
  --config 'profile.release.opt-level="z"' \
  --config 'profile.release.package.shelfwise-kernels.opt-level=3' \
  --config 'profile.release.package.shelfwise-model.opt-level=3' \
  --config 'profile.release.package.gemm-common.opt-level=3' \
  --config 'profile.release.package.gemm-f32.opt-level=3' \
  "${extra[@]}"
rm -rf "$out"
# The runtime's glue also exports __wbg_reset_state: after a trap, `worker: false` restarts on a
# fresh instance of the same module on the page's thread (see engine.ts).
reset=()
[ "$crate" = shelfwise-wasm ] && reset=(--experimental-reset-state-function)
wasm-bindgen --target web --remove-name-section "${reset[@]}" --out-dir "$out" "$target/wasm32-unknown-unknown/release/${crate//-/_}.wasm"
# Optional size pass (about -8 % gzip, 1-2 minutes): SHELFWISE_WASM_OPT=1 with binaryen's wasm-opt from npm
# (`npm i -g binaryen`; Debian's wasm-opt v108 breaks wasm-bindgen output).
if [ "${SHELFWISE_WASM_OPT:-0}" = 1 ]; then
  for f in "$out"/*_bg.wasm; do
    wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$f" -o "$f"
  done
fi
ls -l "$out"/*_bg.wasm
