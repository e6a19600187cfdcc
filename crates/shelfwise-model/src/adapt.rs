//! The fitting rules of `shelfwise adapt` (a model file adapted to a shop's taxonomy and labelled
//! examples, with no gradient training: [`crate::shop::adapt`] writes it): the result is a normal
//! model file with an `adaptation` section (format version 2) that `Classifier` scores through
//! `crate::adapter`.
//!
//! Rules for the shop's input (documented in README "Adapting to a shop"):
//! - labels: the taxonomy's leaves (paths that are no other path's ancestor), plus the path of
//!   every example, whether or not the taxonomy has it (shops add categories); without a
//!   taxonomy, the adapted file's previous labels, else the model's own;
//! - an empty title is skipped; titles are the same when they are equal lower-cased with
//!   whitespace collapsed, and then the **latest** wins (a seller's correction replaces what was
//!   remembered, whether the path is the same, a duplicate, or another, a contradiction);
//!   re-adapting an adapted file keeps its memory as the oldest examples;
//! - at most `max_examples` are remembered: beyond it, the oldest example of the label with the
//!   most examples is evicted, one at a time (rare categories keep theirs; nothing is dropped
//!   wholesale).
//!
//! The combination weights are chosen on the shop's own examples: each example whose label has
//! another example is scored by a memory without it (5-fold cross-fitting, `crate::shop`'s refit:
//! every component, the TF-IDF vectorizer and SVM included, fitted on the other folds), and the
//! weights maximise the
//! likelihood of the right labels under a Gaussian prior centred on [`PRIOR_WEIGHTS`]
//! (weight [`PRIOR_STRENGTH`]), so a few examples move them little and many decide them. With no
//! such example (k = 0 or 1 a label) the prior weights are used as they are.

use std::collections::{BinaryHeap, HashMap, HashSet};

use shelfwise_core::taxonomy::join_path;
use shelfwise_core::CoreError;

use crate::error::Result;

use crate::train::examples::Example;
use shelfwise_core::baseline::{self, LinearSvm, SparseRow};

/// The memory's default cap: 20,000 titles is ~8 MB of int8 embeddings and titles.
pub const DEFAULT_MAX_EXAMPLES: usize = 20_000;

/// Weights used where the shop's examples cannot choose them, in [`Feature::ALL`] order
/// (name_path, name_leaf, head, emb_centroid, emb_nearest, tfidf_centroid, tfidf_nearest,
/// tfidf_svm, name_chars): the fit (then leave-one-out) on the Myntra split at k = 5 with the
/// shipped model, rounded (models/flipkart-minilm/NOTES.md); `name_chars`, which came later, the
/// same rule with the others kept (cross-fitted: 0.332); `head`, which Myntra cannot fit (no path
/// in common), between 1 and the 2.6 of Flipkart's fit (optimistic there: the head was trained on
/// those titles).
pub const PRIOR_WEIGHTS: [f32; 9] = [0.55, 0.35, 1.5, 0.3, 0.1, 0.25, 0.0, 0.35, 0.35];
/// The prior's weight against the summed log-likelihood of the held-out examples.
pub const PRIOR_STRENGTH: f64 = 1.0;

/// What `adapt` did with its input, for the user and the manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub labels: usize,
    /// Labels from examples whose path the taxonomy lacks.
    pub added_labels: usize,
    pub examples_in: usize,
    pub empty: usize,
    /// Same title, same path as an earlier example (the earlier one dropped).
    pub duplicates: usize,
    /// Same title, another path (the earlier one dropped: the latest wins).
    pub contradictions: usize,
    pub evicted: usize,
    pub remembered: usize,
    pub fit_samples: usize,
    /// "cross-fitted" or "prior".
    pub method: String,
    pub weights: Vec<(String, f32)>,
}

pub use crate::adapter::title_key;

/// Applies the duplicate rule: the latest of equal titles wins. Returns the indices of the kept
/// examples in order and the counts of (empty, duplicates, contradictions); a blank path segment
/// is `LABELS`.
pub(crate) fn dedupe(all: &[Example]) -> Result<(Vec<usize>, usize, usize, usize)> {
    let (mut empty, mut dup, mut contra) = (0, 0, 0);
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(all.len());
    for (i, e) in all.iter().enumerate() {
        if e.title.trim().is_empty() {
            empty += 1;
            continue;
        }
        if e.path.is_empty() || e.path.iter().any(|s| s.trim().is_empty()) {
            return Err(CoreError::BadPath(join_path(&e.path)).into());
        }
        if let Some(at) = last.insert(title_key(&e.title), slots.len()) {
            let old = slots[at].take().expect("each slot is replaced once");
            if all[old].path == e.path {
                dup += 1;
            } else {
                contra += 1;
            }
        }
        slots.push(Some(i));
    }
    Ok((slots.into_iter().flatten().collect(), empty, dup, contra))
}

/// The eviction rule: while over `cap`, drop the oldest example of the label with the most
/// (ties: the lowest label id). Keeps the survivors' order.
pub fn evict(labels: &[usize], cap: usize) -> Vec<usize> {
    if labels.len() <= cap {
        return (0..labels.len()).collect();
    }
    let mut by_label: HashMap<usize, std::collections::VecDeque<usize>> = HashMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_label.entry(l).or_default().push_back(i);
    }
    let mut heap: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = by_label.iter().map(|(&l, v)| (v.len(), std::cmp::Reverse(l))).collect();
    let mut dropped = HashSet::new();
    while labels.len() - dropped.len() > cap {
        let (n, std::cmp::Reverse(l)) = heap.pop().expect("more examples than the cap");
        let q = by_label.get_mut(&l).expect("a label in the heap has examples");
        dropped.insert(q.pop_front().expect("n > 0"));
        if n > 1 {
            heap.push((n - 1, std::cmp::Reverse(l)));
        }
    }
    (0..labels.len()).filter(|i| !dropped.contains(i)).collect()
}

/// The baseline's SVM on the rows `train` (of `rows`, labelled `labels`), one-vs-rest over the
/// labels they have, in dual form: (label, index into `rows`, αᵢ yᵢ).
pub(crate) fn svm_dual(rows: &[SparseRow], labels: &[usize], train: &[usize]) -> Vec<(u32, u32, f32)> {
    let mut classes: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
    classes.sort_unstable();
    classes.dedup();
    let class_of: HashMap<usize, usize> = classes.iter().enumerate().map(|(c, &l)| (l, c)).collect();
    let sub: Vec<SparseRow> = train.iter().map(|&i| rows[i].clone()).collect();
    let y: Vec<usize> = train.iter().map(|&i| class_of[&labels[i]]).collect();
    let per = LinearSvm::train_dual(&sub, &y, classes.len(), baseline::C, par_map);
    per.into_iter()
        .enumerate()
        .flat_map(|(c, list)| list.into_iter().map(move |(i, a)| (c, i, a)))
        .map(|(c, i, a)| (classes[c] as u32, train[i as usize] as u32, a))
        .collect()
}

/// `(0..n).map(f)` on the machine's cores (std threads; one core, or wasm: in place).
fn par_map(f: &(dyn Fn(usize) -> Vec<(u32, f32)> + Sync), n: usize) -> Vec<Vec<(u32, f32)>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.max(1));
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let mut out = vec![Vec::new(); n];
    let size = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (ci, chunk) in out.chunks_mut(size).enumerate() {
            s.spawn(move || chunk.iter_mut().enumerate().for_each(|(j, o)| *o = f(ci * size + j)));
        }
    });
    out
}

/// The combination weights maximising `Σ log softmax(Σ_c w_c z_c)[gold] − strength/2 ‖w − prior‖²`
/// over samples `z[s][c][label]` (Newton's method with step halving; the objective is concave).
pub fn fit_weights(z: &[Vec<Vec<f32>>], gold: &[usize], prior: &[f32], strength: f64) -> Vec<f32> {
    let c = prior.len();
    let objective = |w: &[f64]| -> f64 {
        let mut ll = 0.0;
        for (zs, &g) in z.iter().zip(gold) {
            let s = scores(zs, w);
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            ll += s[g] - max - s.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        }
        ll - strength / 2.0 * w.iter().zip(prior).map(|(a, b)| (a - *b as f64).powi(2)).sum::<f64>()
    };
    let mut w: Vec<f64> = prior.iter().map(|&x| x as f64).collect();
    let mut f = objective(&w);
    for _ in 0..50 {
        let mut grad: Vec<f64> = w.iter().zip(prior).map(|(a, b)| -strength * (a - *b as f64)).collect();
        let mut hess = vec![vec![0f64; c]; c];
        (0..c).for_each(|i| hess[i][i] = strength);
        for (zs, &g) in z.iter().zip(gold) {
            let s = scores(zs, &w);
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|x| x / sum).collect();
            let mean: Vec<f64> = zs.iter().map(|zc| zc.iter().zip(&p).map(|(&a, b)| a as f64 * b).sum()).collect();
            for i in 0..c {
                grad[i] += zs[i][g] as f64 - mean[i];
                for k in i..c {
                    let e_ik: f64 = zs[i].iter().zip(&zs[k]).zip(&p).map(|((&a, &b), q)| a as f64 * b as f64 * q).sum();
                    hess[i][k] += e_ik - mean[i] * mean[k];
                }
            }
        }
        for i in 1..c {
            let (upper, lower) = hess.split_at_mut(i);
            upper.iter().enumerate().for_each(|(k, row)| lower[0][k] = row[i]);
        }
        let Some(step) = solve(hess, grad) else { break };
        let mut t = 1.0;
        let mut improved = false;
        while t > 1e-4 {
            let cand: Vec<f64> = w.iter().zip(&step).map(|(a, d)| a + t * d).collect();
            let fc = objective(&cand);
            if fc >= f {
                improved = fc - f > 1e-9;
                w = cand;
                f = fc;
                break;
            }
            t /= 2.0;
        }
        if !improved {
            break;
        }
    }
    w.into_iter().map(|x| x as f32).collect()
}

fn scores(zs: &[Vec<f32>], w: &[f64]) -> Vec<f64> {
    let l = zs.first().map_or(0, Vec::len);
    let mut s = vec![0f64; l];
    for (zc, &wc) in zs.iter().zip(w) {
        s.iter_mut().zip(zc).for_each(|(o, &x)| *o += wc * x as f64);
    }
    s
}

/// Solves `a · x = b` (a symmetric positive definite, small) by Gaussian elimination with
/// partial pivoting; `None` when singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (r, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            row.iter_mut().zip(pivot).skip(col).for_each(|(x, p)| *x -= f * p);
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = vec![0f64; n];
    for r in (0..n).rev() {
        x[r] = (b[r] - (r + 1..n).map(|k| a[r][k] * x[k]).sum::<f64>()) / a[r][r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ModelError;

    fn ex(t: &str, p: &str) -> Example {
        Example { title: t.into(), path: p.split(" > ").map(String::from).collect() }
    }

    #[test]
    fn the_latest_of_equal_titles_wins() {
        let (kept, empty, dup, contra) =
            dedupe(&[ex("Red Shoe", "A > B"), ex("  ", "A > B"), ex("red  shoe ", "A > B"), ex("Kettle", "K"), ex("RED SHOE", "A > C")]).unwrap();
        assert_eq!((empty, dup, contra), (1, 1, 1));
        assert_eq!(kept, vec![3, 4]);
        assert!(matches!(dedupe(&[ex("x", "A >  > B")]), Err(ModelError::Core(CoreError::BadPath(_)))));
    }

    #[test]
    fn eviction_takes_the_oldest_of_the_largest_label() {
        // Labels by age: 0 0 0 1 1 2. Cap 4: label 0 (3) loses its oldest (index 0); then labels
        // 0 and 1 have 2 each and the lower id, 0, loses its next oldest (index 1).
        assert_eq!(evict(&[0, 0, 0, 1, 1, 2], 4), vec![2, 3, 4, 5]);
        assert_eq!(evict(&[0, 1], 5), vec![0, 1]);
        assert_eq!(evict(&[3, 3, 3, 3], 1), vec![3]);
    }

    #[test]
    fn weights_fit_by_likelihood_find_the_informative_component() {
        // Two components over 3 labels: the first puts the gold label on top every time, the second
        // is noise that favours another label. The fit must raise the first and cut the second.
        let mut z = Vec::new();
        let mut gold = Vec::new();
        for s in 0..30 {
            let g = s % 3;
            let mut good = vec![-0.7f32; 3];
            good[g] = 1.4;
            let mut noise = vec![-0.7f32; 3];
            noise[(g + 1) % 3] = 1.4;
            z.push(vec![good, noise]);
            gold.push(g);
        }
        let w = fit_weights(&z, &gold, &[1.0, 1.0], 1.0);
        assert!(w[0] > 2.0 && w[1] < 0.5, "{w:?}");
        // One component, two labels, z = (+1, −1) with the gold label first in 80 % of 1000
        // samples: the likelihood is greatest where sigmoid(2w) = 0.8, w = ½ ln 4; the prior (1 at
        // strength 1 against 640 of curvature) moves it by under 1e-3.
        let z: Vec<Vec<Vec<f32>>> = (0..1000).map(|_| vec![vec![1.0, -1.0]]).collect();
        let gold: Vec<usize> = (0..1000).map(|i| usize::from(i % 5 == 0)).collect();
        let w = fit_weights(&z, &gold, &[1.0], 1.0);
        assert!((w[0] as f64 - 0.5 * 4f64.ln()).abs() < 1e-3, "{w:?}");
        // No samples: the prior.
        assert_eq!(fit_weights(&[], &[], &[0.5, 2.0], 1.0), vec![0.5, 2.0]);
    }

    #[test]
    fn solve_inverts_a_small_system() {
        let x = solve(vec![vec![4.0, 1.0], vec![1.0, 3.0]], vec![1.0, 2.0]).unwrap();
        // By hand: x = (1/11, 7/11).
        assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
    }
}
