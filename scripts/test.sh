#!/usr/bin/env bash
# The test command: setup (if needed), every Rust test of the workspace (release profile: it reuses
# the setup build, and the encoder tests need optimised code), then the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint gates, cheapest first: formatting, then clippy on every crate and target (warnings fail).
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings 2>&1
# shelfwise-gpu's tests skip without a GPU adapter; setup installs lavapipe, so here none is a failure.
SHELFWISE_REQUIRE_GPU=1 cargo test --release --workspace --locked 2>&1
# The Python package (crates/shelfwise-py): API, parity with the CLI, Ray Data and Spark.
bash scripts/test-python.sh 2>&1
# Issue #19's parity: a shop's taxonomy, examples and a correction in wasm (Node) score as natively
# (tests/fixtures/shop_parity.json, which shelfwise-model's tests/shop.rs checks natively), 1e-4.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_TEST_TIMEOUT=600 \
  cargo test --release --locked --target wasm32-unknown-unknown -p shelfwise-wasm --test adapt 2>&1
# The quantized-matmul kernels again in wasm with simd128 (Node, via wasm-bindgen-test-runner from setup).
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --locked --target wasm32-unknown-unknown -p shelfwise-kernels 2>&1
# The manifest mutations of shelfwise-model's tests, in wasm (Node): a typed error or the same answers, never a trap.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner WASM_BINDGEN_TEST_TIMEOUT=600 \
  cargo test --release --locked --target wasm32-unknown-unknown -p shelfwise-wasm --test manifest 2>&1
# ... and with relaxed SIMD (the package's second runtime), in headless chromium: Node 20's
# experimental relaxed SIMD computes other sums than the spec's.
WASM_BINDGEN_USE_BROWSER=1 WASM_BINDGEN_TEST_TIMEOUT=300 WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/crates/shelfwise-gpu/webdriver.json" \
  CHROMEDRIVER=$(command -v chromedriver) CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --locked --target wasm32-unknown-unknown --target-dir target/wasm-relaxed \
  --config .cargo/relaxed-simd.toml -p shelfwise-kernels 2>&1
# The WGSL kernel tests again on the browser's WebGPU: headless chromium through chromedriver, with
# --enable-unsafe-webgpu (SwiftShader here; crates/shelfwise-gpu/webdriver.json has the flags).
# The runner gives a headless run 20 s by default; SwiftShader on a busy 2-core machine has been
# seen to need more (a run cut off at the 9th of 10 tests), so allow 5 minutes.
WASM_BINDGEN_TEST_TIMEOUT=300 \
CHROMEDRIVER=$(command -v chromedriver) CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --locked --target wasm32-unknown-unknown -p shelfwise-gpu --test kernels 2>&1
bash www/scripts/test-browser.sh 2>&1
