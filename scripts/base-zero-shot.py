#!/usr/bin/env python3
"""The base MiniLM's own category-name zero-shot (issue #19's k = 0 bar): every category of the
taxonomy embedded twice by the untuned all-MiniLM-L6-v2 (its path, segments joined by spaces, and
its leaf name), each test title assigned the category with the largest cos(title, path) +
cos(title, leaf); acc@1 on the test CSV. Runs the independent numpy forward of
tests/reference/minilm_numpy.py (float32).

  python3 scripts/base-zero-shot.py BASE_MODEL_DIR TAXONOMY.txt TEST.csv
"""
import csv, os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests', 'reference'))
try:
    import safetensors.numpy  # noqa: F401
except ImportError:
    # A venv without the safetensors package: the format is 8 bytes of header length, a JSON
    # header (dtype, shape, offsets) and the raw little-endian data.
    import json, struct, types
    def load_file(path):
        b = open(path, 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        head = json.loads(b[8:8 + n])
        dt = {'F32': np.float32, 'F16': np.float16, 'I64': np.int64}
        return {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=dt[v['dtype']]).reshape(v['shape'])
                for k, v in head.items() if k != '__metadata__'}
    st = types.ModuleType('safetensors'); stn = types.ModuleType('safetensors.numpy'); stn.load_file = load_file
    sys.modules['safetensors'] = st; sys.modules['safetensors.numpy'] = stn
from minilm_numpy import MiniLM, l2n

base, tax, test = sys.argv[1:4]
paths = [l.strip() for l in open(tax, encoding='utf-8') if l.strip() and not l.startswith('#')]
segs = [[s.strip() for s in p.split('>')] for p in paths]
with open(test, newline='', encoding='utf-8') as f:
    rows = [(r['title'], r['category_path']) for r in csv.DictReader(f)]
m = MiniLM(base, dtype=np.float32)
def emb(texts):
    out = []
    for i in range(0, len(texts), 64):
        out.append(m.encode(texts[i:i + 64]))
    return l2n(np.concatenate(out))
P, L = emb([' '.join(s) for s in segs]), emb([s[-1] for s in segs])
T = emb([t for t, _ in rows])
pred = np.argmax(T @ P.T + T @ L.T, axis=1)
norm = [' > '.join(s) for s in segs]
gold = [' > '.join(s.strip() for s in p.split('>')) for _, p in rows]
acc = np.mean([norm[k] == g for k, g in zip(pred, gold)])
print(f'base MiniLM zero-shot acc@1 {acc:.4f} ({len(rows)} titles, {len(paths)} categories)')
