#!/usr/bin/env bash
# Learning curve of `shelfwise adapt` (issue #19): k = 0, 1, 5, 20 labelled titles a category,
# sampled (seeded) from a shop's training split, against scikit-learn's TF-IDF + LinearSVC
# recipe (`shelfwise eval --baseline-train`, bit-identical to scikit-learn) trained on the same
# titles, acc@1 on the shop's test split.
#
#   bash scripts/adapt-curve.sh NAME TRAIN.csv TEST.csv [MODEL] [KS] [SEED]
#
# The taxonomy handed to adapt is every category path of TRAIN.csv and TEST.csv (a shop knows
# its own categories, including those it has no example of). Writes under .cache/adapt-curve/NAME/:
# k<K>.csv (the examples), k<K>.shelfwise, k<K>.json (eval), and prints one line a k.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; train=$2; test=$3
model=${4:-models/flipkart-minilm/model.shelfwise}
ks=${5:-"0 1 5 20"}
seed=${6:-19}
bin=${SHELFWISE_BIN:-./target/release/shelfwise}
out=.cache/adapt-curve/$name
mkdir -p "$out"
python3 - "$train" "$test" "$out" "$seed" $ks <<'PY'
import csv, random, sys
train, test, out, seed, ks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), [int(k) for k in sys.argv[5:]]
def rows(p):
    with open(p, newline='', encoding='utf-8') as f:
        return [(r['title'], r['category_path']) for r in csv.DictReader(f)]
tr, te = rows(train), rows(test)
paths = sorted({p for _, p in tr} | {p for _, p in te})
open(f'{out}/taxonomy.txt', 'w', encoding='utf-8').write('\n'.join(paths) + '\n')
by = {}
for t, p in tr:
    by.setdefault(p, []).append(t)
for k in ks:
    rng = random.Random(seed)
    pick = []
    for p in sorted(by):
        ts = by[p][:]
        rng.shuffle(ts)
        pick += [(t, p) for t in ts[:k]]
    rng.shuffle(pick)
    with open(f'{out}/k{k}.csv', 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['title', 'category_path'])
        w.writerows(pick)
PY
for k in $ks; do
  ex=(); [ "$k" -gt 0 ] && ex=(--examples "$out/k$k.csv")
  t0=$(date +%s.%N)
  nice -n 10 $bin adapt --model "$model" --taxonomy "$out/taxonomy.txt" "${ex[@]}" --out "$out/k$k.shelfwise" 2> "$out/k$k.adapt.log"
  t1=$(date +%s.%N)
  base=(); [ "$k" -gt 0 ] && base=(--baseline-train "$out/k$k.csv")
  nice -n 10 $bin eval --model "$out/k$k.shelfwise" --data "$test" "${base[@]}" --json "$out/k$k.json" > "$out/k$k.eval.txt" 2>&1
  python3 - "$out/k$k.json" "$k" "$t0" "$t1" "$out/k$k.adapt.log" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
b = j.get('baseline', {}).get('acc_at_1')
w = [l for l in open(sys.argv[5]) if l.startswith('weights')]
print(f"k={sys.argv[2]} adapt acc@1 {j['acc_at_1']:.4f} baseline {'-' if b is None else f'{b:.4f}'} adapt {float(sys.argv[4]) - float(sys.argv[3]):.1f}s {w[0].strip() if w else ''}", flush=True)
PY
done
