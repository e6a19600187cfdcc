#!/usr/bin/env bash
# One-time setup of the browser side on a fresh Debian machine: chromium, the wasm32 target,
# wasm-bindgen-cli at the pinned version, and the npm dev dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
WASM_BINDGEN_VERSION=0.2.130 # must equal the pinned wasm-bindgen in Cargo.toml
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  say "installing chromium (apt)"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-liberation >/dev/null
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci (www/)"
  # onnxruntime-node (pulled in by the transformers.js benchmark dependency) would download
  # binaries from outside the npm registry at install: skip it, the benchmark uses onnxruntime-web.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi
say "browser setup done"
