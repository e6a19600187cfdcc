"""A lexical category-name component tried offline (issue #19, k = 0): TF-IDF cosine (word
1-2-grams and char_wb 2-5-grams, fitted on the shop's category names only) between a title and
each label's path / leaf name, alone and added (z-scored over the labels) to adapt's combined
k = 0 logits with one weight w chosen on ANOTHER shop (the likelihood of its test titles).

  python scripts/lexical-names.py A.tsv A_TEST.csv B.tsv B_TEST.csv

A.tsv / B.tsv: `adapt_probe ADAPTED_K0.shelfwise TEST.csv OUT.tsv` dumps (labels, then gold and
combined logits per title of a known label, in the CSV's order). Reports A with w fitted on B and
B with w fitted on A.
"""
import csv, sys
import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


def load(tsv, test):
    lines = open(tsv, encoding='utf-8').read().split('\n')
    labels = lines[0].split('\t')
    rows = [l.split('\t') for l in lines[1:] if l]
    gold = np.array([int(r[0]) for r in rows])
    logits = np.array([[float(x) for x in r[1:]] for r in rows], dtype=np.float64)
    known = set(labels)
    with open(test, newline='', encoding='utf-8') as f:
        titles = [r['title'] for r in csv.DictReader(f) if r['category_path'] in known]
    assert len(titles) == len(gold), (len(titles), len(gold))
    return labels, titles, gold, logits


def lexical(labels, titles):
    leaves = [l.split(' > ')[-1] for l in labels]
    paths = [l.replace(' > ', ' ') for l in labels]
    word = TfidfVectorizer(analyzer='word', ngram_range=(1, 2), sublinear_tf=True).fit(paths + leaves)
    char = TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True).fit(paths + leaves)
    def emb(xs):
        return normalize(hstack([normalize(word.transform(xs)), normalize(char.transform(xs))]).tocsr())
    t = emb(titles)
    out = {}
    for name, names in (('path', paths), ('leaf', leaves)):
        out[name] = (t @ emb(names).T).toarray()
    out['both'] = out['path'] + out['leaf']
    return out


def z(x):
    sd = x.std(axis=1, keepdims=True)
    return np.where(sd > 1e-6, (x - x.mean(axis=1, keepdims=True)) / np.maximum(sd, 1e-6), 0.0)


def loglik(logits, gold):
    m = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    return (logits[np.arange(len(gold)), gold] - lse).sum()


def acc(s, gold):
    return float((s.argmax(axis=1) == gold).mean())


shops = [load(sys.argv[1], sys.argv[2]), load(sys.argv[3], sys.argv[4])]
lex = [lexical(s[0], s[1]) for s in shops]
grid = np.round(np.arange(0, 3.01, 0.05), 2)
for a in (0, 1):
    b = 1 - a
    labels, titles, gold, logits = shops[a]
    print(f'== {sys.argv[2 + 2 * a]}: {len(labels)} labels, {len(gold)} titles; adapt k = 0 alone {acc(logits, gold):.4f}')
    for name in ('path', 'leaf', 'both'):
        print(f'   lexical {name} alone {acc(lex[a][name], gold):.4f}')
    for name in ('both',):
        lb, gb = shops[b][3], shops[b][2]
        w = grid[int(np.argmax([loglik(lb + g * z(lex[b][name]), gb) for g in grid]))]
        comb = logits + w * z(lex[a][name])
        own = grid[int(np.argmax([acc(logits + g * z(lex[a][name]), gold) for g in grid]))]
        print(f'   adapt + w * z(lexical {name}), w = {w} fitted on {sys.argv[2 + 2 * b]}: {acc(comb, gold):.4f}'
              f'  (for scale, not a result: the best w on this test split {own}, {acc(logits + own * z(lex[a][name]), gold):.4f})')
