//! Evaluation metrics over a label space. Gold labels may be unknown to the model (a category that
//! never occurred in training): they count as wrong at the leaf, but their ancestors still count in
//! the level and hierarchical metrics, which is exactly what backing off is for.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::decision::top_k;
use crate::taxonomy::LabelSpace;

/// One evaluated example: the gold path and the model's label probabilities.
pub struct Example<'a> {
    pub gold: &'a [String],
    pub probs: &'a [f32],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdPoint {
    pub threshold: f32,
    /// Fraction of titles whose top score reaches the threshold.
    pub coverage: f64,
    /// Leaf accuracy@1 on those titles (1.0 when none are covered).
    pub accuracy: f64,
    /// Fraction of all titles whose decision (leaf, or backed-off ancestor) is correct: the answer
    /// lies on the gold path. Abstaining with no back-off counts as not correct.
    pub decision_precision: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub acc_at_1: f64,
    pub acc_at_3: f64,
    pub acc_at_5: f64,
    /// Accuracy of the top-1 prediction's ancestor at each level, level 1 first (only over examples
    /// whose gold path is that deep).
    pub level_acc: Vec<f64>,
    pub hier_precision: f64,
    pub hier_recall: f64,
    pub hier_f1: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub ece: f64,
    /// Fraction of gold paths that are not in the model's label space.
    pub unseen_gold: f64,
    pub thresholds: Vec<ThresholdPoint>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One bin of a reliability diagram: the titles whose top-1 confidence falls in `[lo, hi)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// Mean top-1 confidence and accuracy of the bin's titles (0 when empty).
    pub confidence: f64,
    pub accuracy: f64,
}

/// Top-1 confidences against accuracy in `bins` equal-width bins (the last one includes 1.0).
pub fn reliability(confidences: &[f32], correct: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let mut conf_sum = vec![0.0f64; bins];
    let mut acc_sum = vec![0.0f64; bins];
    let mut count = vec![0usize; bins];
    for (&c, &ok) in confidences.iter().zip(correct) {
        let b = ((c.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        conf_sum[b] += c as f64;
        acc_sum[b] += ok as u8 as f64;
        count[b] += 1;
    }
    (0..bins)
        .map(|b| ReliabilityBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: count[b],
            confidence: ratio_f(conf_sum[b], count[b]),
            accuracy: ratio_f(acc_sum[b], count[b]),
        })
        .collect()
}

fn ratio_f(a: f64, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a / b as f64
    }
}

/// Expected calibration error of top-1 confidences, `bins` equal-width bins.
pub fn ece(confidences: &[f32], correct: &[bool], bins: usize) -> f64 {
    let n = confidences.len();
    if n == 0 {
        return 0.0;
    }
    reliability(confidences, correct, bins).iter().map(|b| b.count as f64 / n as f64 * (b.accuracy - b.confidence).abs()).sum()
}

/// Two models scored on the same items: how many only the first gets right, how many only the
/// second, and the exact two-sided McNemar p-value of that split. Items both get right or both
/// get wrong say nothing about which is better; a difference in accuracy on a few hundred titles
/// is often noise, and this says when.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub only_first: usize,
    pub only_second: usize,
    /// The chance of a split at least this uneven if both models were equally accurate.
    pub p_value: f64,
}

impl Paired {
    /// Pairs `first[i]` with `second[i]` (right or not on item `i`; the shorter length counts).
    pub fn new(first: &[bool], second: &[bool]) -> Self {
        let (mut b, mut c) = (0, 0);
        for (&x, &y) in first.iter().zip(second) {
            b += usize::from(x && !y);
            c += usize::from(y && !x);
        }
        Self { only_first: b, only_second: c, p_value: mcnemar_exact(b, c) }
    }

    /// One line for a person: the split, its p-value, and whether it is beyond noise (p < 0.05).
    pub fn describe(&self, first: &str, second: &str) -> String {
        let verdict = if self.p_value >= 0.05 {
            "within noise".to_string()
        } else if self.only_first > self.only_second {
            format!("{first} ahead")
        } else {
            format!("{second} ahead")
        };
        let p = if self.p_value < 1e-3 { "p < 0.001".to_string() } else { format!("p = {:.3}", self.p_value) };
        format!("only the {first} right on {}, only the {second} on {} (exact McNemar {p}: {verdict})", self.only_first, self.only_second)
    }
}

/// Exact two-sided McNemar test: `2 · P(X ≤ min(b, c))` for `X ~ Binomial(b + c, ½)`, at most 1
/// (1 when `b + c = 0`). Summed in log space, so large counts do not overflow.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    let k = b.min(c);
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    // ln C(n, i), built up from ln C(n, 0) = 0.
    let (mut ln_choose, mut tail) = (0.0f64, 0.0f64);
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Precision, recall and F1 of one category, as a leaf prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryScore {
    pub path: String,
    /// Titles whose gold label it is, and titles predicted as it.
    pub support: usize,
    pub predicted: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Per-category scores over the categories that occur as gold or as prediction, worst F1 first
/// (ties: larger support first, then by path).
pub fn per_category(gold: &[String], pred: &[String]) -> Vec<CategoryScore> {
    let mut stats: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new(); // tp, fp, fn
    for (g, p) in gold.iter().zip(pred) {
        if g == p {
            stats.entry(g).or_default().0 += 1;
        } else {
            stats.entry(p).or_default().1 += 1;
            stats.entry(g).or_default().2 += 1;
        }
    }
    let mut out: Vec<CategoryScore> = stats
        .into_iter()
        .map(|(path, (tp, fp, fn_))| CategoryScore {
            path: path.to_string(),
            support: tp + fn_,
            predicted: tp + fp,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: if tp == 0 { 0.0 } else { 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64 },
        })
        .collect();
    out.sort_by(|a, b| a.f1.total_cmp(&b.f1).then(b.support.cmp(&a.support)).then(a.path.cmp(&b.path)));
    out
}

/// Per-class F1 averaged plainly (macro) and by gold support (weighted), over the classes that occur
/// as gold or as prediction.
pub fn f1_scores(gold: &[String], pred: &[String]) -> (f64, f64) {
    let scores = per_category(gold, pred);
    let macro_sum: f64 = scores.iter().map(|c| c.f1).sum();
    let weighted_sum: f64 = scores.iter().map(|c| c.f1 * c.support as f64).sum();
    (macro_sum / scores.len().max(1) as f64, weighted_sum / gold.len().max(1) as f64)
}

/// A pair of categories the model mixes up: titles of `gold` predicted as `predicted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub gold: String,
    pub predicted: String,
    pub count: usize,
    /// Indices (into the evaluated titles) of up to `max_examples` of them, in input order.
    pub examples: Vec<usize>,
}

/// The `top` most frequent (gold, predicted) pairs among wrong predictions, most frequent first.
pub fn confusions(gold: &[String], pred: &[String], top: usize, max_examples: usize) -> Vec<Confusion> {
    let mut pairs: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, (g, p)) in gold.iter().zip(pred).enumerate() {
        if g != p {
            pairs.entry((g, p)).or_default().push(i);
        }
    }
    let mut out: Vec<Confusion> = pairs
        .into_iter()
        .map(|((g, p), idx)| Confusion {
            gold: g.to_string(),
            predicted: p.to_string(),
            count: idx.len(),
            examples: idx.into_iter().take(max_examples).collect(),
        })
        .collect();
    // Stable: equal counts keep the BTreeMap's (gold, predicted) order.
    out.sort_by_key(|c| std::cmp::Reverse(c.count));
    out.truncate(top);
    out
}

/// All prefixes of a path, as joined strings: the hierarchical label set of a category.
fn ancestor_set(path: &[String]) -> HashSet<String> {
    (1..=path.len()).map(|d| path[..d].join("\u{1f}")).collect()
}

pub const DEFAULT_THRESHOLDS: [f32; 6] = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95];

/// Computes every metric for a set of examples.
pub fn evaluate(space: &LabelSpace, examples: &[Example<'_>], thresholds: &[f32]) -> Metrics {
    let n = examples.len();
    let mut hits = [0usize; 3];
    let max_depth = examples.iter().map(|e| e.gold.len()).max().unwrap_or(0);
    let mut level_hits = vec![0usize; max_depth];
    let mut level_n = vec![0usize; max_depth];
    let (mut hp_num, mut hp_den, mut hr_den) = (0usize, 0usize, 0usize);
    let mut confs = Vec::with_capacity(n);
    let mut correct = Vec::with_capacity(n);
    let mut gold_s = Vec::with_capacity(n);
    let mut pred_s = Vec::with_capacity(n);
    let mut unseen = 0usize;
    for e in examples {
        let gold_label = space.find(&e.gold.join(" > "));
        unseen += gold_label.is_none() as usize;
        let top = top_k(e.probs, 5);
        for (i, k) in [1usize, 3, 5].iter().enumerate() {
            hits[i] += gold_label.is_some_and(|g| top.iter().take(*k).any(|&t| t == g)) as usize;
        }
        let pred = space.label(top[0]);
        for d in 0..e.gold.len() {
            level_n[d] += 1;
            level_hits[d] += (pred.len() > d && pred[..=d] == e.gold[..=d]) as usize;
        }
        let (gs, ps) = (ancestor_set(e.gold), ancestor_set(pred));
        hp_num += gs.intersection(&ps).count();
        hp_den += ps.len();
        hr_den += gs.len();
        let ok = gold_label == Some(top[0]);
        confs.push(e.probs[top[0]]);
        correct.push(ok);
        gold_s.push(e.gold.join(" > "));
        pred_s.push(space.label_string(top[0]));
    }
    let hier_precision = ratio(hp_num, hp_den);
    let hier_recall = ratio(hp_num, hr_den);
    let hier_f1 = if hier_precision + hier_recall > 0.0 { 2.0 * hier_precision * hier_recall / (hier_precision + hier_recall) } else { 0.0 };
    let (macro_f1, weighted_f1) = f1_scores(&gold_s, &pred_s);
    let thresholds = thresholds
        .iter()
        .map(|&t| {
            let covered: Vec<usize> = (0..n).filter(|&i| confs[i] >= t).collect();
            let acc = if covered.is_empty() { 1.0 } else { ratio(covered.iter().filter(|&&i| correct[i]).count(), covered.len()) };
            let good_decisions = examples
                .iter()
                .filter(|e| {
                    let d = crate::decision::decide(space, e.probs, 1, t);
                    let path: Vec<String> = if d.abstained {
                        match d.back_off {
                            Some(b) => b.path.into_iter().map(|s| s.name).collect(),
                            None => return false,
                        }
                    } else {
                        d.suggestions[0].path.iter().map(|s| s.name.clone()).collect()
                    };
                    path.len() <= e.gold.len() && path[..] == e.gold[..path.len()]
                })
                .count();
            ThresholdPoint { threshold: t, coverage: ratio(covered.len(), n), accuracy: acc, decision_precision: ratio(good_decisions, n) }
        })
        .collect();
    Metrics {
        n,
        acc_at_1: ratio(hits[0], n),
        acc_at_3: ratio(hits[1], n),
        acc_at_5: ratio(hits[2], n),
        level_acc: (0..max_depth).map(|d| ratio(level_hits[d], level_n[d])).collect(),
        hier_precision,
        hier_recall,
        hier_f1,
        macro_f1,
        weighted_f1,
        ece: ece(&confs, &correct, 15),
        unseen_gold: ratio(unseen, n),
        thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_exact_matches_hand_computed_binomial_tails() {
        // 10 against 2: 2 · (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 · 79 / 4096.
        assert!((mcnemar_exact(10, 2) - 158.0 / 4096.0).abs() < 1e-12);
        assert!((mcnemar_exact(2, 10) - 158.0 / 4096.0).abs() < 1e-12);
        // 6 against 0: 2 / 64. Equal splits and no discordant item: 1.
        assert!((mcnemar_exact(6, 0) - 2.0 / 64.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(1, 0), 1.0);
        // Large counts stay finite: scipy.stats.binomtest(400, 1000).pvalue = 2.728464e-10.
        let p = mcnemar_exact(400, 600);
        assert!((p / 2.728464156e-10 - 1.0).abs() < 1e-6, "{p}");
    }

    #[test]
    fn paired_counts_only_the_discordant_items() {
        let model = [true, true, false, true, false, true];
        let base = [true, false, false, false, true, true];
        let p = Paired::new(&model, &base);
        assert_eq!((p.only_first, p.only_second), (2, 1));
        assert_eq!(p.p_value, 1.0);
        assert!(p.describe("model", "baseline").contains("within noise"), "{}", p.describe("model", "baseline"));
        let ahead = Paired::new(&[true; 8], &[false; 8]);
        assert!((ahead.p_value - 2.0 / 256.0).abs() < 1e-12);
        assert_eq!(ahead.describe("model", "baseline"), "only the model right on 8, only the baseline on 0 (exact McNemar p = 0.008: model ahead)");
        let far = Paired { only_first: 3, only_second: 90, p_value: mcnemar_exact(3, 90) };
        assert!(far.describe("model", "baseline").ends_with("(exact McNemar p < 0.001: baseline ahead)"));
    }

    fn p(s: &str) -> Vec<String> {
        crate::taxonomy::parse_path(s).unwrap()
    }

    #[test]
    fn ece_hand_computed() {
        // Bin [0.8,0.867): conf 0.8, 0.8 with one correct → |0.5-0.8|*2/4 = 0.15.
        // Bin [0.933,1]: conf 1.0, 1.0 both correct → 0.
        let e = ece(&[0.8, 0.8, 1.0, 1.0], &[true, false, true, true], 15);
        assert!((e - 0.15).abs() < 1e-6, "{e}");
        assert_eq!(ece(&[], &[], 15), 0.0);
    }

    #[test]
    fn reliability_hand_computed() {
        let r = reliability(&[0.1, 0.3, 0.35, 1.0], &[false, true, false, true], 4);
        let counts: Vec<usize> = r.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 2, 0, 1]);
        assert!((r[1].confidence - 0.325).abs() < 1e-6 && r[1].accuracy == 0.5);
        assert_eq!((r[2].confidence, r[2].accuracy), (0.0, 0.0), "an empty bin");
        assert_eq!((r[3].lo, r[3].hi, r[3].accuracy), (0.75, 1.0, 1.0));
    }

    #[test]
    fn per_category_and_confusions_hand_computed() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let g = s(&["a", "a", "b", "c", "a"]);
        let pr = s(&["a", "b", "b", "a", "b"]);
        let c = per_category(&g, &pr);
        // c: tp0 → F1 0 first; a: tp1 fp1 fn2 → P 1/2, R 1/3, F1 0.4; b: tp1 fp2 → F1 0.5.
        let paths: Vec<&str> = c.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["c", "a", "b"]);
        assert_eq!((c[1].support, c[1].predicted), (3, 2));
        assert!((c[1].precision - 0.5).abs() < 1e-12 && (c[1].recall - 1.0 / 3.0).abs() < 1e-12);
        assert!((c[1].f1 - 0.4).abs() < 1e-12 && (c[2].f1 - 0.5).abs() < 1e-12);
        let x = confusions(&g, &pr, 10, 1);
        assert_eq!(x[0], Confusion { gold: "a".into(), predicted: "b".into(), count: 2, examples: vec![1] });
        assert_eq!((x[1].gold.as_str(), x[1].predicted.as_str(), x[1].count), ("c", "a", 1));
        assert_eq!(x.len(), 2);
        assert_eq!(confusions(&g, &pr, 1, 3).len(), 1);
    }

    #[test]
    fn f1_hand_computed() {
        let g: Vec<String> = ["a", "a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let pr: Vec<String> = ["a", "b", "b", "a"].iter().map(|s| s.to_string()).collect();
        // a: tp1 fp1 fn1 → 0.5; b: tp1 fp1 fn0 → 2/3; c: tp0 → 0.
        let (m, w) = f1_scores(&g, &pr);
        assert!((m - (0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-9);
        assert!((w - (0.5 * 2.0 + 2.0 / 3.0 * 1.0) / 4.0).abs() < 1e-9);
    }

    #[test]
    fn evaluate_hand_computed() {
        let s = LabelSpace::from_raw_paths(["A > x", "A > y", "B > z"]).unwrap();
        let g1 = p("A > x");
        let g2 = p("A > y");
        let g3 = p("B > w"); // unseen leaf, known parent
        let probs = [
            [0.7f32, 0.2, 0.1], // correct, conf 0.7
            [0.6, 0.3, 0.1],    // wrong leaf, right parent; gold at rank 2
            [0.1, 0.1, 0.8],    // unseen gold: wrong leaf, right level 1
        ];
        let ex: Vec<Example> = [&g1, &g2, &g3].iter().zip(probs.iter()).map(|(g, pr)| Example { gold: g, probs: pr }).collect();
        let m = evaluate(&s, &ex, &[0.75]);
        assert_eq!(m.n, 3);
        assert!((m.acc_at_1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.acc_at_3 - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.level_acc, vec![1.0, 1.0 / 3.0]);
        // Ancestor sets: each has 2 nodes; overlaps 2, 1, 1 → P = R = 4/6.
        assert!((m.hier_precision - 4.0 / 6.0).abs() < 1e-9);
        assert!((m.hier_f1 - 4.0 / 6.0).abs() < 1e-9);
        assert!((m.unseen_gold - 1.0 / 3.0).abs() < 1e-9);
        // Threshold 0.75: only example 3 is covered (wrong) → accuracy 0.
        // Decisions: ex1 backs off to A (0.9) ok; ex2 backs off to A ok; ex3 leaf B>z wrong.
        let t = &m.thresholds[0];
        assert!((t.coverage - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(t.accuracy, 0.0);
        assert!((t.decision_precision - 2.0 / 3.0).abs() < 1e-9);
    }
}
