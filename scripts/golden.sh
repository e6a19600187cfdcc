#!/usr/bin/env bash
# Regenerates tests/golden/flipkart-minilm.json from the shipped model (run after changing it, or the
# kernels' arithmetic).
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/flipkart-minilm/model.shelfwise
mapfile -t titles < <(grep -v '^$' tests/fixtures/titles.txt; cat tests/fixtures/golden_extra.txt)
./target/release/shelfwise classify --model "$model" --json -k 5 --threshold 0.5 "${titles[@]}" > /tmp/golden-items.json
python3 - "$model" /tmp/golden-items.json > tests/golden/flipkart-minilm.json <<'PY'
import json, subprocess, sys
m = json.loads(subprocess.check_output(["./target/release/shelfwise", "inspect", "--model", sys.argv[1]]))
items = json.load(open(sys.argv[2]))
print(json.dumps({"model_payload_sha256": m["payload_sha256"], "k": 5, "threshold": 0.5, "tolerance": 1e-4, "items": items}, ensure_ascii=False, indent=1))
PY
echo "wrote tests/golden/flipkart-minilm.json (${#titles[@]} titles)"
