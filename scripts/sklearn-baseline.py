#!/usr/bin/env python3
"""The textbook baseline, as an engineer evaluating shelfwise runs it first: scikit-learn's
TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) on words, stacked with
TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True, min_df=2) on characters,
and LinearSVC(C=0.5). Prints acc@1, acc@5 and acc@1 on the first 30 % / 60 % of each test title's
words (the prefixes `shelfwise eval` reports), so `shelfwise eval --baseline-train` can be held
against it. Not run by CI; its recorded fixture (--record) is what the Rust test compares with.

    python3 scripts/sklearn-baseline.py --train T.csv --test D.csv [--json out.json]
    python3 scripts/sklearn-baseline.py --myntra ../shared/data/myntra/products.csv
    python3 scripts/sklearn-baseline.py --train tests/fixtures/shop_train.csv \
        --test tests/fixtures/shop_dev.csv --record tests/fixtures/sklearn_baseline.json

It runs itself inside .cache/sklearn-venv (made on first use, scikit-learn pinned).
"""
import argparse
import csv
import hashlib
import json
import math
import os
import subprocess
import sys

SKLEARN = "scikit-learn==1.9.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".cache", "sklearn-venv")
PREFIX_FRACTIONS = (0.3, 0.6)


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", SKLEARN])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def read_rows(path):
    # utf-8-sig: a CSV saved by Excel starts with a BOM.
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [(r["title"], r["category_path"]) for r in csv.DictReader(f)]


def myntra_split(path):
    """The project's own Myntra split (NOTES.md): sha256 of the lower-cased title, first 8 hex
    digits as an integer, mod 100; buckets [50, 75) train, [0, 5) test."""
    train, test = [], []
    for title, label in read_rows(path):
        b = int(hashlib.sha256(title.lower().encode()).hexdigest()[:8], 16) % 100
        if 50 <= b < 75:
            train.append((title, label))
        elif b < 5:
            test.append((title, label))
    return train, test


def prefix(title, fraction):
    """shelfwise_core::prefix: the first ceil(fraction · words) whitespace-separated words."""
    words = title.split()
    k = min(max(math.ceil(fraction * len(words)), min(1, len(words))), len(words))
    return " ".join(words[:k])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--myntra", help="products.csv: use the project's own Myntra split")
    ap.add_argument("--write-split", help="with --myntra: write train.csv and test.csv into this folder")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--record", help="write each test title's top-1 path here (a test fixture)")
    a = ap.parse_args()

    import numpy as np
    import scipy.sparse as sp
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    if a.myntra:
        train, test = myntra_split(a.myntra)
        if a.write_split:
            os.makedirs(a.write_split, exist_ok=True)
            for name, rows in (("train.csv", train), ("test.csv", test)):
                with open(os.path.join(a.write_split, name), "w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f)
                    w.writerow(["title", "category_path"])
                    w.writerows(rows)
    else:
        train, test = read_rows(a.train), read_rows(a.test)

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    titles = [t for t, _ in train]
    x = sp.hstack([words.fit_transform(titles), chars.fit_transform(titles)]).tocsr()
    svm = LinearSVC(C=0.5).fit(x, [l for _, l in train])
    classes = list(svm.classes_)

    def decide(texts):
        return svm.decision_function(sp.hstack([words.transform(texts), chars.transform(texts)]).tocsr())

    gold = [l for _, l in test]
    scores = decide([t for t, _ in test])
    order = np.argsort(-scores, axis=1)
    top = [[classes[j] for j in row[:5]] for row in order]
    out = {
        "sklearn": sklearn.__version__,
        "train": len(train),
        "test": len(test),
        "features": {"word": len(words.vocabulary_), "char": len(chars.vocabulary_)},
        "acc_at_1": float(np.mean([t[0] == g for t, g in zip(top, gold)])),
        "acc_at_5": float(np.mean([g in t for t, g in zip(top, gold)])),
    }
    for f in PREFIX_FRACTIONS:
        s = decide([prefix(t, f) for t, _ in test])
        out[f"prefix_acc_at_1@{f}"] = float(np.mean([classes[j] == g for j, g in zip(s.argmax(axis=1), gold)]))
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    if a.record:
        # Whole titles and their 60 % prefixes: the texts the Rust baseline must rank alike.
        texts = [t for t, _ in test] + [prefix(t, 0.6) for t, _ in test]
        top1 = [classes[j] for j in decide(texts).argmax(axis=1)]
        with open(a.record, "w") as f:
            json.dump({"recipe": "scripts/sklearn-baseline.py", "sklearn": sklearn.__version__,
                       "predictions": [{"title": t, "top1": p} for t, p in zip(texts, top1)]},
                      f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    ensure_venv()
    main()
