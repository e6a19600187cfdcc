#!/usr/bin/env bash
# Writes models/<name>/manifest.json for a shipped model: its verified manifest, file hashes, and a
# fresh evaluation on ../shared/data (model and TF-IDF baseline). Needs ../shared (not in CI).
# usage: scripts/record-model.sh models/flipkart-minilm TRAIN.csv DEV.csv "REBUILD COMMAND"
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 train=$2 dev=$3 rebuild=$4
bin=./target/release/shelfwise
$bin inspect --model "$dir/model.shelfwise" > /tmp/sw-inspect.json
$bin eval --model "$dir/model.shelfwise" --data "$dev" --baseline-train "$train" --json /tmp/sw-eval.json
python3 - "$dir" "$rebuild" <<'PY'
import hashlib, json, platform, subprocess, sys, os
d, rebuild = sys.argv[1], sys.argv[2]
m = json.load(open("/tmp/sw-inspect.json"))
e = json.load(open("/tmp/sw-eval.json"))
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
out = {
    "name": m["name"],
    "files": {
        "head.swpart": {"sha256": sha(f"{d}/head.swpart"), "bytes": os.path.getsize(f"{d}/head.swpart"), "committed": True},
        "model.shelfwise": {"sha256": sha(f"{d}/model.shelfwise"), "bytes": os.path.getsize(f"{d}/model.shelfwise"),
                            "committed": False, "made_by": "scripts/setup.sh (shelfwise assemble --part head.swpart)"},
    },
    "payload_sha256": m["payload_sha256"],
    "base_model": m["base_model"] | {"package_license_note": "the PyPI wheel's own LICENSE file is MIT (packaging); the model card says Apache-2.0"},
    "encoder": m["encoder"],
    "head": m["head"],
    "labels": m["labels"],
    "training": m["training"],
    "evaluation": {"command": f"shelfwise eval --model {d}/model.shelfwise --data {e['data']['file']} --baseline-train {e['baseline']['train_csv']['file']}",
                   "machine": f"{os.cpu_count()} cores, {platform.machine()}", "result": e},
    "rebuild": rebuild,
    "license": "Apache-2.0 (base model all-MiniLM-L6-v2: Apache-2.0; training data: see ../shared/data/flipkart/README.md)",
}
json.dump(out, open(f"{d}/manifest.json", "w"), indent=1)
print(f"wrote {d}/manifest.json")
PY
