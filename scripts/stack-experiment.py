#!/usr/bin/env python3
"""Stacker experiment of issue #18 (models/flipkart-minilm/NOTES.md, "A second, whole-title head as
a third stack input"): does a gate over THREE inputs (the prefix-trained head A, a head B trained on
whole titles only, the SVM) beat the shipped two-input gate? Not run by CI; numpy only
(e.g. .cache/sklearn-venv/bin/python).

It mirrors `shelfwise_core::lexical::fit_gate`: logits = sum_k w_k(x) . s_k with s_k the inputs
(log_softmax of a head, or the SVM's raw scores), each w_k = [1, z] . theta_k linear in standardised
confidence features z; theta by mean log-loss + 1e-3 . L2 (not the intercepts), damped Newton
from w = 1 (convex). The temperature (top-1 BCE, log t in [0.05, 20]) is fitted on whole titles.

  texts   A_DIR OUT.csv      the held-out texts of A's dump as a CSV (one text a row) for
                             `cargo run --release -p shelfwise-model --example dump_stack -- B.shelfwise OUT.csv B_DIR texts as-is`
  heldout A_DIR B_DIR        every variant cross-fitted on the held-out texts (5 folds by title,
                             as `train::lexical::choose_stack`; temperature fitted in-fold)
  test    A_DIR B_DIR TA TB  every variant fitted on all held-out texts, scored once on a test
                             set (TA, TB: dump_stack of models A and B on TEST.csv, name `test`)

Variants (VARIANTS): each input alone, two-input gates, three-input gates on 7 or 11 features,
and "by mode": one gate for whole titles, another for prefixes (the caller would have to say which).
A_DIR: `shelfwise train ... --dump-stack A_DIR` (default run: files heldout.*);
B_DIR: the dump_stack output of model B (`--prefix-fractions none`) on A's held-out texts.
Accuracies count rows whose category the model lacks as wrong; ECE: 15 bins, whole titles.
"""
import csv
import json
import math
import sys

import numpy as np

L2 = 1e-3


def load(prefix):
    meta = json.load(open(prefix + ".json"))
    n, c = len(meta["texts"]), meta["classes"]
    head = np.fromfile(prefix + ".head.f32", dtype="<f4").reshape(n, c).astype(np.float64)
    svm = np.fromfile(prefix + ".svm.f32", dtype="<f4").reshape(n, c).astype(np.float64)
    return meta, head, svm


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def top2(x):
    part = np.sort(x, axis=1)
    return x.argmax(axis=1), part[:, -1], part[:, -1] - part[:, -2]


def prefix(title, fraction):
    words = title.split()
    k = min(max(math.ceil(fraction * len(words)), min(1, len(words))), len(words))
    return " ".join(words[:k])


def features(texts, inputs, extended):
    """The 7 features of `gate_features` on inputs[0] (a head) and inputs[-1] (the SVM); extended:
    + the second head's top log-probability and margin, its agreement with the SVM and with head A."""
    words = np.array([len(t.split()) for t in texts], dtype=np.float64)
    chars = np.array([len(t) for t in texts], dtype=np.float64)
    hk, h1, hm = top2(inputs[0])
    sk, s1, sm = top2(inputs[-1])
    cols = [np.log1p(words), np.log1p(chars), h1, hm, s1, sm, (hk == sk).astype(np.float64)]
    if extended:
        bk, b1, bm = top2(inputs[1])
        cols += [b1, bm, (bk == sk).astype(np.float64), (bk == hk).astype(np.float64)]
    return np.stack(cols, axis=1)


class Gate:
    """w_k(x) = [1, z(x)] . theta[k]; fitted as fit_gate does (mean/std over every fitted text)."""

    def __init__(self, feats, inputs, gold, mask, l2=L2, weight=None):
        self.mean = feats.mean(axis=0)
        self.scale = feats.std(axis=0) + 1e-9
        phi = self.phi(feats)[mask]
        s = [x[mask] for x in inputs]
        y = gold[mask]
        sw = np.ones(len(y)) if weight is None else weight[mask]
        sw = sw / sw.mean()  # a weighted mean log-loss: the L2 keeps its scale
        k, p = len(s), phi.shape[1]
        theta = np.zeros((k, p))
        theta[:, 0] = 1.0
        reg = np.ones((k, p)) * l2
        reg[:, 0] = 0.0
        rows = np.arange(len(y))

        def ev(th, second):
            w = phi @ th.T  # (n, k)
            z = sum(w[:, j : j + 1] * s[j] for j in range(k))
            m = z.max(axis=1, keepdims=True)
            e = np.exp(z - m)
            tot = e.sum(axis=1, keepdims=True)
            q = e / tot
            loss = np.mean(sw * (np.log(tot[:, 0]) + m[:, 0] - z[rows, y])) + (reg * th * th).sum()
            es = np.stack([(q * s[j]).sum(axis=1) for j in range(k)], axis=1)  # E_q[s_j]
            d = es - np.stack([s[j][rows, y] for j in range(k)], axis=1)
            g = ((d * sw[:, None]).T @ phi) / len(y) + 2 * reg * th
            if not second:
                return loss, g, None
            cov = np.empty((len(y), k, k))
            for a in range(k):
                for b in range(a, k):
                    cov[:, a, b] = cov[:, b, a] = (q * s[a] * s[b]).sum(axis=1) - es[:, a] * es[:, b]
            h = np.einsum("nab,ni,nj->aibj", cov * sw[:, None, None], phi, phi).reshape(k * p, k * p) / len(y)
            h += np.diag(2 * reg.ravel()) + 1e-9 * np.eye(k * p)
            return loss, g, h

        loss = ev(theta, False)[0]
        for _ in range(50):
            _, g, h = ev(theta, True)
            step = np.linalg.solve(h, g.ravel()).reshape(k, p)
            t, moved = 1.0, False
            while t > 1e-4:
                cand = theta - t * step
                lc = ev(cand, False)[0]
                if lc < loss:
                    theta, moved, done = cand, True, loss - lc < 1e-10
                    loss = lc
                    break
                t /= 2
            if not moved or done:
                break
        self.theta = theta

    def phi(self, feats):
        return np.hstack([np.ones((len(feats), 1)), (feats - self.mean) / self.scale])

    def logits(self, feats, inputs):
        w = self.phi(feats) @ self.theta.T
        return sum(w[:, j : j + 1] * inputs[j] for j in range(len(inputs)))


def top1_conf(z, t):
    m = z.max(axis=1, keepdims=True)
    return 1.0 / np.exp((z - m) / t).sum(axis=1)


def fit_temperature(z, gold):
    right = z.argmax(axis=1) == gold

    def bce(t):
        c = np.clip(top1_conf(z, t), 1e-9, 1 - 1e-9)
        return -np.mean(np.where(right, np.log(c), np.log(1 - c)))

    a, b = math.log(0.05), math.log(20.0)
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = bce(math.exp(c)), bce(math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = bce(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = bce(math.exp(d))
    return math.exp((a + b) / 2)


def ece(conf, right, bins=15):
    idx = np.minimum((np.clip(conf, 0, 1) * bins).astype(int), bins - 1)
    return sum(abs(right[idx == b].mean() - conf[idx == b].mean()) * (idx == b).sum() for b in range(bins) if (idx == b).any()) / len(conf)


# name, inputs (indices into [head A, head B, svm]), gate features (None: the input alone), options:
# l2, whole_weight (loss weight of a whole title; prefixes 1), whole_only (fit the gate on whole titles only, as `train --prefix-fractions none` does),
# prefixes_only, by_mode (one variant for whole titles, another for prefixes)
VARIANTS = [
    ("head A (prefix-trained) alone", [0], None, {}),
    ("head B (whole titles) alone", [1], None, {}),
    ("SVM alone", [2], None, {}),
    ("gate A + SVM, 7 features (shipped)", [0, 2], "7", {}),
    ("gate B + SVM, 7 features", [1, 2], "7", {}),
    ("gate B + SVM, 7 features, fitted on whole titles", [1, 2], "7", {"whole_only": True}),
    ("gate A + B + SVM, 7 features", [0, 1, 2], "7", {}),
    ("gate A + B + SVM, 11 features", [0, 1, 2], "11", {}),
    ("gate A + B + SVM, 11 features, L2 1e-2", [0, 1, 2], "11", {"l2": 1e-2}),
    ("gate A + B + SVM, 11 features, whole titles weighted 3x", [0, 1, 2], "11", {"whole_weight": 3.0}),
    # Not one stack: the caller says whether a text is whole (an import) or being typed.
    ("by mode: whole → gate B + SVM (fitted on whole), typed → shipped gate", None, None,
     {"by_mode": (([1, 2], "7", {"whole_only": True}), ([0, 2], "7", {}))}),
    ("by mode: whole → gate B + SVM (fitted on whole), typed → gate A + SVM fitted on prefixes", None, None,
     {"by_mode": (([1, 2], "7", {"whole_only": True}), ([0, 2], "7", {"prefixes_only": True}))}),
]


def variant_inputs(src, idx):
    return [src[i] for i in idx]


def fit_and_score(fit, score, idx, kind, l2=L2, whole_only=False, prefixes_only=False, by_mode=None, whole_weight=1.0):
    """Stacked logits of `score` by the variant fitted on `fit`, and its temperature (fitted on
    `fit`'s whole titles). fit/score: (texts, [A, B, svm], gold, mask of labelled, whole)."""
    if by_mode:
        # Two stacks, picked per text by whether it is a whole title (what the caller would say).
        (iw, kw, ow), (ip, kp, op) = by_mode
        zw, t = fit_and_score(fit, score, iw, kw, **ow)
        zp, _ = fit_and_score(fit, score, ip, kp, **op)
        return np.where(score[4][:, None], zw, zp), t
    fin, sin = variant_inputs(fit[1], idx), variant_inputs(score[1], idx)
    if kind is None:
        zf, zs = fin[0], sin[0]
    else:
        ff, fs = features(fit[0], fin, kind == "11"), features(score[0], sin, kind == "11")
        use = fit[4] if whole_only else ~fit[4] if prefixes_only else np.ones_like(fit[4])
        g = Gate(ff, fin, fit[2], fit[3] & use, l2, np.where(fit[4], whole_weight, 1.0))
        zf, zs = g.logits(ff, fin), g.logits(fs, sin)
    w = fit[4] & fit[3]
    return zs, fit_temperature(zf[w], fit[2][w])


def report(name, z, t, gold, whole, p60, p30, extra=""):
    known = gold >= 0
    top5 = np.argsort(-z, axis=1)[:, :5]
    right1 = (z.argmax(axis=1) == gold) & known
    right5 = (top5 == gold[:, None]).any(axis=1) & known
    conf = top1_conf(z[whole], t)
    cells = [right1[whole].mean(), right5[whole].mean(), right1[p60].mean(), right1[p30].mean(), ece(conf, right1[whole])]
    print(f"| {name} | " + " / ".join(f"{v:.4f}" if i < 4 else f"{v:.3f}" for i, v in enumerate(cells)) + f" | {right1[whole].sum()} / {right1[p60].sum()}{extra} |")


def heldout_set(a_dir, b_dir):
    meta, head_a, svm = load(a_dir + "/heldout")
    bmeta, head_b, _ = load(b_dir + "/texts")
    texts = meta["texts"]
    assert bmeta["texts"] == texts, "B's dump is not of A's held-out texts"
    assert bmeta["classes"] == meta["classes"]
    gold = np.array([-1 if g is None else g for g in meta["gold"]])
    whole = np.array(meta["whole"])
    at = {(t, g): i for i, (t, g) in enumerate(zip(texts, gold))}
    wi = np.flatnonzero(whole)
    p60 = np.array([at[(prefix(texts[i], 0.6), gold[i])] for i in wi])
    p30 = np.array([at[(prefix(texts[i], 0.3), gold[i])] for i in wi])
    inputs = [log_softmax(head_a), log_softmax(head_b), svm]
    return texts, inputs, gold, whole, wi, p60, p30


def cmd_heldout(a_dir, b_dir, folds=5):
    texts, inputs, gold, whole, wi, p60, p30 = heldout_set(a_dir, b_dir)
    title_of = np.cumsum(whole) - 1
    print(f"held-out: {len(wi)} titles, {len(texts)} texts, {folds} folds by title; acc@1 / acc@5 / p60 / p30 / ECE | right whole / p60 / all texts")
    labelled = gold >= 0
    for name, idx, kind, opts in VARIANTS:
        z = np.zeros_like(inputs[0])
        temp = np.ones(len(texts))
        for f in range(folds):
            tr, te = title_of % folds != f, title_of % folds == f
            sub = lambda m: ([texts[i] for i in np.flatnonzero(m)], [x[m] for x in inputs], gold[m], labelled[m], whole[m])
            zs, t = fit_and_score(sub(tr), sub(te), idx, kind, **opts)
            z[te], temp[te] = zs, t
        # Each whole title at its own fold's temperature.
        zw = z / temp[:, None]
        texts_right = f" / {int((z.argmax(axis=1) == gold).sum())}"
        report(name, np.concatenate([zw[wi], z[p60], z[p30]]), 1.0, np.concatenate([gold[wi], gold[p60], gold[p30]]),
               np.r_[np.ones(len(wi), bool), np.zeros(2 * len(wi), bool)], np.r_[np.zeros(len(wi), bool), np.ones(len(wi), bool), np.zeros(len(wi), bool)],
               np.r_[np.zeros(2 * len(wi), bool), np.ones(len(wi), bool)], texts_right)


def cmd_test(a_dir, b_dir, ta, tb):
    texts, inputs, gold, whole, _, _, _ = heldout_set(a_dir, b_dir)
    fit = (texts, inputs, gold, gold >= 0, whole)
    ma, ha, sa = load(ta)
    mb, hb, sb = load(tb)
    assert ma["texts"] == mb["texts"] and ma["gold"] == mb["gold"], "the two test dumps differ"
    print(f"SVM scores of the two files: max |diff| {np.abs(sa - sb).max():.2e}")
    n = len(ma["texts"]) // 3  # dump_stack: whole, 30 %, 60 % per row
    tg = np.array([-1 if g is None else g for g in ma["gold"]])
    pos = np.arange(len(tg)) % 3
    score = (ma["texts"], [log_softmax(ha), log_softmax(hb), sa], tg, tg >= 0, pos == 0)
    print(f"test: {n} rows; fitted on {int(whole.sum())} held-out titles, {len(texts)} texts; acc@1 / acc@5 / p60 / p30 / ECE | right whole / p60")
    for name, idx, kind, opts in VARIANTS:
        z, t = fit_and_score(fit, score, idx, kind, **opts)
        report(name, z, t, tg, pos == 0, pos == 2, pos == 1)


def cmd_texts(a_dir, out):
    meta = json.load(open(a_dir + "/heldout.json"))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", "category_path"])
        for t in meta["texts"]:
            w.writerow([t, ""])


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"texts": cmd_texts, "heldout": cmd_heldout, "test": cmd_test}[cmd](*args)
