#!/usr/bin/env bash
# Regenerates tests/golden/flipkart-minilm{,.webgpu}.json from the shipped model (run after changing it,
# or the kernels' arithmetic).
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/flipkart-minilm/model.shelfwise
mapfile -t titles < <(grep -v '^$' tests/fixtures/titles.txt; cat tests/fixtures/golden_extra.txt)
# The wasm and native CPU paths (7-bit activations in the quantized matmuls), and the WebGPU
# backend's math (the same weights on f32 activations: --f32-activations).
for variant in "" webgpu; do
  out=tests/golden/flipkart-minilm${variant:+.$variant}.json
  flag=()
  [ -n "$variant" ] && flag=(--f32-activations)
  ./target/release/shelfwise classify --model "$model" --json -k 5 --threshold 0.5 "${flag[@]}" "${titles[@]}" > /tmp/golden-items.json
  python3 - "$model" /tmp/golden-items.json "$variant" > "$out" <<'PY'
import json, subprocess, sys
m = json.loads(subprocess.check_output(["./target/release/shelfwise", "inspect", "--model", sys.argv[1]]))
items = json.load(open(sys.argv[2]))
math = "f32 activations (the WebGPU encoder's math)" if sys.argv[3] else "7-bit activations (the CPU kernels, native and wasm)"
print(json.dumps({"model_payload_sha256": m["payload_sha256"], "math": math, "k": 5, "threshold": 0.5, "tolerance": 1e-4, "items": items}, ensure_ascii=False, indent=1))
PY
  echo "wrote $out (${#titles[@]} titles)"
done
