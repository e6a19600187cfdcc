//! The lexical part of a model: the baseline's TF-IDF + linear SVM ([`crate::baseline`]) in the
//! compact form a model file stores, and the stack that combines its scores with the head's.
//!
//! Stored form: each n-gram of the fitted vocabulary as a 64-bit hash (FNV-1a, low bit = family),
//! sorted so a title's n-grams are found by binary search, with its idf; the SVM's weights pruned
//! to the largest |w| within a budget and kept in int8 with one scale per class, grouped by
//! feature (per feature: how many, which classes, which codes). A title's scores are then the
//! baseline's decision values up to the pruning and the rounding.
//!
//! The stack: `logits = a · log_softmax(head) + b · svm`, fitted on held-out titles and prefixes
//! by log-loss. Either `(a, b)` per title-length bucket in words ([`fit_stack`]), or, where the
//! model has one, a gate ([`StackGate`], [`fit_gate`]): `(a, b)` linear in a few features of the
//! text and of both parts' scores (length, each part's confidence and margin, whether they agree),
//! so that a short whole title and the prefix of a long one, alike in length, can still be told
//! apart by how sure each part is.

use serde::{Deserialize, Serialize};

use crate::baseline::{for_each_gram, Family, LinearSvm, TfidfVectorizer};
use crate::ngram::fnv1a;

/// The hash of an n-gram of `family` as stored: FNV-1a of its UTF-8 bytes, low bit the family
/// (0 word, 1 character), so that a word and a character n-gram of the same text differ.
pub fn gram_hash(family: Family, gram: &str) -> u64 {
    (fnv1a(gram.as_bytes()) & !1) | (family == Family::Char) as u64
}

/// A compact TF-IDF + linear SVM (see the module docs). Built by [`Lexical::from_fitted`] or,
/// from a file's tensors, by [`Lexical::from_parts`] (which checks every invariant).
#[derive(Debug, Clone, PartialEq)]
pub struct Lexical {
    hashes: Vec<u64>,
    idf: Vec<f32>,
    /// `offsets[f]..offsets[f + 1]`: feature `f`'s entries in `classes` / `codes`.
    offsets: Vec<usize>,
    classes: Vec<u16>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

/// What pruning kept of the SVM's weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pruned {
    pub kept: usize,
    /// Nonzero weights of the SVM.
    pub nonzero: usize,
    /// Vocabulary n-grams dropped because their hash equals another's (64 bits: expect none).
    pub collisions: usize,
}

/// The largest class count a file can index (class ids are stored as i16).
pub const MAX_CLASSES: usize = i16::MAX as usize;

impl Lexical {
    /// The compact form of a fitted vectorizer and SVM, keeping the `max_weights` weights of
    /// largest magnitude (ties at the threshold may keep a few more or fewer).
    pub fn from_fitted(vec: &TfidfVectorizer, svm: &LinearSvm, max_weights: usize) -> (Self, Pruned) {
        let n_classes = svm.n_classes().min(MAX_CLASSES);
        let features = vec.features();
        let mut order: Vec<(u64, usize)> = features.iter().enumerate().map(|(id, &(fam, g, _))| (gram_hash(fam, g), id)).collect();
        order.sort_unstable();
        let before = order.len();
        order.dedup_by_key(|(h, _)| *h);
        let collisions = before - order.len();
        // The magnitude threshold that keeps about `max_weights`: a histogram over log2 |w|
        // rather than a sort of every weight (a 1,000-class shop has ~10^8 of them).
        const BINS: usize = 4096;
        let (lo, hi) = (-40.0f32, 8.0f32);
        let bin = |w: f32| ((((w.abs().log2() - lo) / (hi - lo)) * BINS as f32) as isize).clamp(0, BINS as isize - 1) as usize;
        let mut hist = vec![0usize; BINS];
        let mut nonzero = 0;
        for c in 0..n_classes {
            for &w in &svm.class_weights(c)[..svm.n_features()] {
                if w != 0.0 {
                    hist[bin(w)] += 1;
                    nonzero += 1;
                }
            }
        }
        let mut cut = 0;
        let mut above = 0;
        for b in (0..BINS).rev() {
            if above + hist[b] > max_weights {
                cut = b + 1;
                break;
            }
            above += hist[b];
        }
        let keep = |w: f32| w != 0.0 && bin(w) >= cut;
        let mut scales = vec![0f32; n_classes];
        for (c, s) in scales.iter_mut().enumerate() {
            let m = svm.class_weights(c)[..svm.n_features()].iter().filter(|&&w| keep(w)).fold(0f32, |m, w| m.max(w.abs()));
            *s = if m > 0.0 { m / 127.0 } else { 1.0 };
        }
        let (mut hashes, mut idf, mut offsets, mut classes, mut codes) = (Vec::new(), Vec::new(), vec![0], Vec::new(), Vec::new());
        for &(h, id) in &order {
            hashes.push(h);
            idf.push(features[id].2);
            for (c, &scale) in scales.iter().enumerate() {
                let w = svm.class_weights(c)[id];
                if keep(w) {
                    classes.push(c as u16);
                    codes.push((w / scale).round().clamp(-127.0, 127.0) as i8);
                }
            }
            offsets.push(classes.len());
        }
        let bias = (0..n_classes).map(|c| svm.class_weights(c)[svm.n_features()]).collect();
        let kept = classes.len();
        (Self { hashes, idf, offsets, classes, codes, scales, bias }, Pruned { kept, nonzero, collisions })
    }

    /// From stored arrays: `counts[f]` entries of feature `f` in `classes` / `codes`. Every
    /// invariant is checked (an error names what is wrong), so a damaged file cannot index out of
    /// range or score garbage.
    pub fn from_parts(
        hashes: Vec<u64>,
        idf: Vec<f32>,
        counts: &[u16],
        classes: Vec<u16>,
        codes: Vec<i8>,
        scales: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self, String> {
        let f = hashes.len();
        if idf.len() != f || counts.len() != f {
            return Err(format!("{f} hashes, {} idf values, {} counts: one of each per feature", idf.len(), counts.len()));
        }
        if hashes.windows(2).any(|w| w[0] >= w[1]) {
            return Err("hashes are not strictly increasing".into());
        }
        if idf.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
            return Err("an idf value is not positive and finite".into());
        }
        let n = scales.len();
        if bias.len() != n || n == 0 || n > MAX_CLASSES {
            return Err(format!("{n} scales and {} biases: one of each per class, at most {MAX_CLASSES}", bias.len()));
        }
        if scales.iter().chain(&bias).any(|x| !x.is_finite()) || scales.iter().any(|&s| s <= 0.0) {
            return Err("a scale is not positive and finite, or a bias not finite".into());
        }
        let mut offsets = Vec::with_capacity(f + 1);
        offsets.push(0usize);
        for &c in counts {
            offsets.push(offsets[offsets.len() - 1] + c as usize);
        }
        if offsets[f] != classes.len() || codes.len() != classes.len() {
            return Err(format!("counts sum to {}, with {} class ids and {} codes", offsets[f], classes.len(), codes.len()));
        }
        if classes.iter().any(|&c| c as usize >= n) {
            return Err(format!("a class id is not below the {n} classes"));
        }
        Ok(Self { hashes, idf, offsets, classes, codes, scales, bias })
    }

    pub fn n_features(&self) -> usize {
        self.hashes.len()
    }

    pub fn n_classes(&self) -> usize {
        self.bias.len()
    }

    pub fn n_weights(&self) -> usize {
        self.classes.len()
    }

    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    pub fn idf(&self) -> &[f32] {
        &self.idf
    }

    /// Entries per feature, as stored.
    pub fn counts(&self) -> Vec<u16> {
        self.offsets.windows(2).map(|w| (w[1] - w[0]) as u16).collect()
    }

    pub fn classes(&self) -> &[u16] {
        &self.classes
    }

    pub fn codes(&self) -> &[i8] {
        &self.codes
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The title's TF-IDF row over the stored features: sublinear TF times idf, each family
    /// L2-normalised (the baseline's `TfidfVectorizer::transform`, features found by hash).
    pub fn transform(&self, title: &str) -> Vec<(usize, f32)> {
        let mut ids: Vec<usize> = Vec::new();
        for_each_gram(&title.to_lowercase(), |fam, g| {
            if let Ok(i) = self.hashes.binary_search(&gram_hash(fam, g)) {
                ids.push(i);
            }
        });
        ids.sort_unstable();
        let mut row: Vec<(usize, f32)> = Vec::new();
        for i in ids {
            match row.last_mut() {
                Some((j, c)) if *j == i => *c += 1.0,
                _ => row.push((i, 1.0)),
            }
        }
        row.iter_mut().for_each(|(i, c)| *c = (1.0 + c.ln()) * self.idf[*i]);
        for fam in [0, 1] {
            let of = |i: usize| (self.hashes[i] & 1) == fam;
            let norm = row.iter().filter(|(i, _)| of(*i)).map(|(_, v)| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().filter(|(i, _)| of(*i)).for_each(|(_, v)| *v /= norm);
            }
        }
        row
    }

    /// Decision values of every class for one title.
    pub fn scores(&self, title: &str) -> Vec<f32> {
        let mut acc = vec![0f32; self.bias.len()];
        for (f, v) in self.transform(title) {
            for k in self.offsets[f]..self.offsets[f + 1] {
                acc[self.classes[k] as usize] += v * self.codes[k] as f32;
            }
        }
        acc.iter().zip(&self.scales).zip(&self.bias).map(|((a, s), b)| b + s * a).collect()
    }
}

/// One title-length bucket of the stack: titles of at most `up_to_words` words (the last bucket
/// takes every longer one too) get `head · log_softmax(head logits) + lexical · svm scores`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StackBucket {
    pub up_to_words: u32,
    pub head: f32,
    pub lexical: f32,
}

/// Upper bounds (in words) of the stack's length buckets: a word or two, a few words, most of a
/// short title, a whole long one. Fixed, not fitted: the weights are what is fitted.
pub const STACK_BOUNDS: [u32; 4] = [2, 4, 7, u32::MAX];

/// A bucket with fewer labelled held-out texts than this takes the weights fitted on all of them.
const MIN_BUCKET: usize = 50;

/// Words as the stack counts them (whitespace-separated).
pub fn word_count(title: &str) -> usize {
    title.split_whitespace().count()
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![0.0; x.len()];
    }
    let lse = x.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln() as f32 + max;
    x.iter().map(|&v| v - lse).collect()
}

/// The stacked logits of one title: the gate's weights where there is a gate, else its length
/// bucket's.
pub fn stacked(head: &[f32], lexical: &[f32], title: &str, buckets: &[StackBucket], gate: Option<&StackGate>) -> Vec<f32> {
    let h = log_softmax(head);
    let (a, b) = match gate {
        Some(g) => g.weights(&gate_features(title, &h, lexical)),
        None => {
            let words = word_count(title);
            let Some(b) = buckets.iter().find(|b| words <= b.up_to_words as usize).or(buckets.last()) else {
                return head.to_vec();
            };
            (b.head, b.lexical)
        }
    };
    h.iter().zip(lexical).map(|(h, l)| a * h + b * l).collect()
}

/// How many features the gate reads ([`gate_features`]).
pub const GATE_FEATURES: usize = 7;

/// The gate's features of one text: ln(1 + words), ln(1 + characters), the head's top
/// log-probability and its margin over the second, the SVM's top score and its margin, and 1 when
/// both parts' top class is the same (else 0). `head_log_probs` is `log_softmax` of the head.
pub fn gate_features(title: &str, head_log_probs: &[f32], lexical: &[f32]) -> [f32; GATE_FEATURES] {
    let (hk, h1, h2) = top2(head_log_probs);
    let (sk, s1, s2) = top2(lexical);
    [
        (1.0 + word_count(title) as f32).ln(),
        (1.0 + title.chars().count() as f32).ln(),
        h1,
        h1 - h2,
        s1,
        s1 - s2,
        f32::from(u8::from(hk == sk && !lexical.is_empty())),
    ]
}

/// Index of the largest value, it, and the second largest (the largest again for one value; 0s
/// for none).
fn top2(x: &[f32]) -> (usize, f32, f32) {
    let (mut k, mut a, mut b) = (0, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (i, &v) in x.iter().enumerate() {
        if v > a {
            (k, a, b) = (i, v, a);
        } else if v > b {
            b = v;
        }
    }
    match (a.is_finite(), b.is_finite()) {
        (false, _) => (0, 0.0, 0.0),
        (true, false) => (k, a, a),
        _ => (k, a, b),
    }
}

/// The largest magnitude of any number of the stack (bucket weights; the gate's weights, means
/// and scales): far beyond what a fit gives, so a file holding more is damaged.
pub const MAX_STACK_VALUE: f32 = 1e3;

/// The stack's gate: `(a, b) = (head · [1, z], lexical · [1, z])` with `z` the standardised
/// [`gate_features`], `(x - mean) / scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackGate {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// `GATE_FEATURES + 1` weights each, the intercept first.
    pub head: Vec<f32>,
    pub lexical: Vec<f32>,
}

impl StackGate {
    /// `(a, b)` for one text's features.
    pub fn weights(&self, x: &[f32; GATE_FEATURES]) -> (f32, f32) {
        let z = self.standardised(x);
        let dot = |w: &[f32]| w[0] + w[1..].iter().zip(&z).map(|(w, z)| w * z).sum::<f32>();
        (dot(&self.head), dot(&self.lexical))
    }

    fn standardised(&self, x: &[f32; GATE_FEATURES]) -> Vec<f32> {
        x.iter().zip(&self.mean).zip(&self.scale).map(|((x, m), s)| (x - m) / s).collect()
    }

    /// Whether the gate is well formed: the lengths above, every value finite and at most
    /// [`MAX_STACK_VALUE`] in magnitude, positive scales. (A huge mean or scale, finite or not,
    /// makes its feature a constant and can put every title in one category.)
    pub fn is_valid(&self) -> bool {
        let bounded = |v: &[f32]| v.iter().all(|x| x.is_finite() && x.abs() <= MAX_STACK_VALUE);
        self.mean.len() == GATE_FEATURES
            && self.scale.len() == GATE_FEATURES
            && self.head.len() == GATE_FEATURES + 1
            && self.lexical.len() == GATE_FEATURES + 1
            && bounded(&self.mean)
            && bounded(&self.head)
            && bounded(&self.lexical)
            && bounded(&self.scale)
            && self.scale.iter().all(|s| *s > 0.0)
    }
}

/// L2 penalty on the gate's feature weights (not the intercepts), on the mean log-loss: enough to
/// keep 16 weights fitted on a thousand titles from chasing single titles.
pub const GATE_L2: f64 = 1e-3;

/// The gate fitted on held-out texts (`head` their head logits, `lexical` their SVM scores,
/// `titles` the texts, `gold` their labels; `None`: unknown to the model, left out) by L2-penalised
/// log-loss, damped Newton from `a = b = 1`. The loss is convex in the weights: one optimum.
/// `None` with no labelled text.
pub fn fit_gate(head: &[Vec<f32>], lexical: &[Vec<f32>], titles: &[&str], gold: &[Option<usize>]) -> Option<StackGate> {
    const P: usize = GATE_FEATURES + 1;
    let h: Vec<Vec<f32>> = head.iter().map(|l| log_softmax(l)).collect();
    let feats: Vec<[f32; GATE_FEATURES]> = (0..h.len()).map(|i| gate_features(titles[i], &h[i], &lexical[i])).collect();
    let labelled: Vec<usize> = (0..h.len()).filter(|&i| gold[i].is_some()).collect();
    if labelled.is_empty() {
        return None;
    }
    // Mean and (population) standard deviation over every text, as the gate will see them.
    let n = feats.len() as f64;
    let mut mean = [0f64; GATE_FEATURES];
    let mut var = [0f64; GATE_FEATURES];
    for f in &feats {
        for k in 0..GATE_FEATURES {
            mean[k] += f[k] as f64 / n;
        }
    }
    for f in &feats {
        for k in 0..GATE_FEATURES {
            var[k] += (f[k] as f64 - mean[k]).powi(2) / n;
        }
    }
    let mut gate = StackGate {
        mean: mean.iter().map(|&m| m as f32).collect(),
        scale: var.iter().map(|&v| (v.sqrt() + 1e-9) as f32).collect(),
        head: vec![0.0; P],
        lexical: vec![0.0; P],
    };
    let phi: Vec<Vec<f64>> = feats.iter().map(|f| std::iter::once(1.0).chain(gate.standardised(f).iter().map(|&z| z as f64)).collect()).collect();
    let mut start = [0.0; 2 * P];
    (start[0], start[P]) = (1.0, 1.0);
    let w = fit_linear_stack(&h, lexical, gold, &labelled, &phi, &start, &[false; 2 * P], GATE_L2);
    gate.head = w[..P].iter().map(|&x| x as f32).collect();
    gate.lexical = w[P..].iter().map(|&x| x as f32).collect();
    gate.is_valid().then_some(gate)
}

/// `a⁻¹ b` for a symmetric positive definite `n × n` matrix `a` (row-major) by Cholesky; `None`
/// when it is not positive definite.
fn solve(a: &mut [f64], mut x: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    crate::linalg::cholesky(a, n).ok()?;
    for i in 0..n {
        for k in 0..i {
            x[i] -= a[i * n + k] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            x[i] -= a[k * n + i] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    Some(x)
}

/// The stack `a(x)·h + b(x)·s` with `a = θ_a·φ(x)`, `b = θ_b·φ(x)` (`θ = [θ_a; θ_b]`, `P` =
/// `phi[i].len()` each, `φ₀ = 1`: the intercept): `θ` minimising the mean log-loss over the
/// labelled texts of `idx` plus `l2 · θ_k²` for every weight but the intercepts, by damped Newton
/// steps from `start`; `pinned[k]` keeps `θ_k` at its start value. Convex in `θ`: one optimum.
/// The gate ([`fit_gate`]: `φ` = 1 and the standardised features) and each length bucket
/// ([`fit_stack`]: `φ` = 1) are this fit.
#[allow(clippy::too_many_arguments)]
fn fit_linear_stack(
    h: &[Vec<f32>],
    s: &[Vec<f32>],
    gold: &[Option<usize>],
    idx: &[usize],
    phi: &[Vec<f64>],
    start: &[f64],
    pinned: &[bool],
    l2: f64,
) -> Vec<f64> {
    let p = start.len() / 2;
    let q = 2 * p;
    let labelled: Vec<(usize, usize)> = idx.iter().filter_map(|&i| gold[i].map(|y| (i, y))).collect();
    let m = labelled.len().max(1) as f64;
    // Loss, gradient and (with `second`) Hessian in θ.
    let eval = |w: &[f64], second: bool| -> (f64, Vec<f64>, Vec<f64>) {
        let (mut loss, mut g, mut hs) = (0.0, vec![0.0; q], vec![0.0; if second { q * q } else { 0 }]);
        for &(i, y) in &labelled {
            let ph = &phi[i];
            let a: f64 = (0..p).map(|j| w[j] * ph[j]).sum();
            let b: f64 = (0..p).map(|j| w[p + j] * ph[j]).sum();
            let z: Vec<f64> = h[i].iter().zip(&s[i]).map(|(&x, &v)| a * x as f64 + b * v as f64).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            loss += sum.ln() + max - z[y];
            let (mut eh, mut es, mut ehh, mut ess, mut ehs) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (k, &ek) in e.iter().enumerate() {
                let pk = ek / sum;
                let (x, v) = (h[i][k] as f64, s[i][k] as f64);
                eh += pk * x;
                es += pk * v;
                ehh += pk * x * x;
                ess += pk * v * v;
                ehs += pk * x * v;
            }
            let (ga, gb) = (eh - h[i][y] as f64, es - s[i][y] as f64);
            for j in 0..p {
                g[j] += ga * ph[j];
                g[p + j] += gb * ph[j];
            }
            if second {
                let c = [[ehh - eh * eh, ehs - eh * es], [ehs - eh * es, ess - es * es]];
                for (r, cr) in c.iter().enumerate() {
                    for (t, &crt) in cr.iter().enumerate() {
                        for j in 0..p {
                            for k in 0..p {
                                hs[(r * p + j) * q + t * p + k] += crt * ph[j] * ph[k];
                            }
                        }
                    }
                }
            }
        }
        loss /= m;
        g.iter_mut().for_each(|x| *x /= m);
        hs.iter_mut().for_each(|x| *x /= m);
        for r in 0..2 {
            for j in 1..p {
                let k = r * p + j;
                loss += l2 * w[k] * w[k];
                g[k] += 2.0 * l2 * w[k];
                if second {
                    hs[k * q + k] += 2.0 * l2;
                }
            }
        }
        (loss, g, hs)
    };
    let mut w = start.to_vec();
    let (mut loss, _, _) = eval(&w, false);
    for _ in 0..50 {
        let (_, mut g, mut hs) = eval(&w, true);
        for k in 0..q {
            if pinned[k] {
                g[k] = 0.0;
                for j in 0..q {
                    (hs[k * q + j], hs[j * q + k]) = (0.0, 0.0);
                }
                hs[k * q + k] = 1.0;
            }
            hs[k * q + k] += 1e-9;
        }
        let Some(step) = solve(&mut hs, g, q) else { break };
        let mut t = 1.0;
        let mut moved = false;
        while t > 1e-4 {
            let next: Vec<f64> = w.iter().zip(&step).map(|(x, d)| x - t * d).collect();
            let (l, _, _) = eval(&next, false);
            if l < loss {
                moved = loss - l > 1e-10;
                (w, loss) = (next, l);
                break;
            }
            t *= 0.5;
        }
        if !moved {
            break;
        }
    }
    w
}

/// `(a, b)` minimising the held-out NLL over `idx` ([`fit_linear_stack`] with `φ` = 1); `fix`
/// pins one weight at 0 (`Some(0)`: the lexical part alone, `Some(1)`: the head alone).
fn fit_pair(h: &[Vec<f32>], s: &[Vec<f32>], gold: &[Option<usize>], idx: &[usize], ones: &[Vec<f64>], fix: Option<usize>) -> (f64, f64) {
    let start = [if fix == Some(0) { 0.0 } else { 1.0 }, if fix == Some(1) { 0.0 } else { 1.0 }];
    let w = fit_linear_stack(h, s, gold, idx, ones, &start, &[fix == Some(0), fix == Some(1)], 0.0);
    (w[0], w[1])
}

fn accuracy(h: &[Vec<f32>], s: &[Vec<f32>], gold: &[Option<usize>], idx: &[usize], a: f64, b: f64) -> usize {
    idx.iter()
        .filter(|&&i| {
            let z = h[i].iter().zip(&s[i]).map(|(&x, &v)| a * x as f64 + b * v as f64);
            let top = z.enumerate().fold((0, f64::NEG_INFINITY), |m, (k, v)| if v > m.1 { (k, v) } else { m }).0;
            gold[i] == Some(top)
        })
        .count()
}

/// The stack's weights for `bounds`, fitted on held-out texts: `head` their head logits, `lexical`
/// their SVM scores, `words` their lengths, `gold` their labels (`None`: a category the model does
/// not have; counted wrong, left out of the log-loss). Per bucket, three fits by log-loss are
/// tried (both parts, the head alone, the lexical part alone) and the one right on the most texts
/// of that bucket is kept (ties: the first), so on held-out data the stack is never behind either
/// part alone. A bucket with under 50 labelled texts takes the weights fitted on all texts.
pub fn fit_stack(head: &[Vec<f32>], lexical: &[Vec<f32>], words: &[usize], gold: &[Option<usize>], bounds: &[u32]) -> Vec<StackBucket> {
    let h: Vec<Vec<f32>> = head.iter().map(|l| log_softmax(l)).collect();
    let ones = vec![vec![1.0]; h.len()];
    let choose = |idx: &[usize]| -> (f64, f64) {
        let fits =
            [fit_pair(&h, lexical, gold, idx, &ones, None), fit_pair(&h, lexical, gold, idx, &ones, Some(1)), fit_pair(&h, lexical, gold, idx, &ones, Some(0))];
        let mut best = (fits[0], accuracy(&h, lexical, gold, idx, fits[0].0, fits[0].1));
        for &f in &fits[1..] {
            let acc = accuracy(&h, lexical, gold, idx, f.0, f.1);
            if acc > best.1 {
                best = (f, acc);
            }
        }
        best.0
    };
    let all: Vec<usize> = (0..h.len()).collect();
    let global = choose(&all);
    let mut lo = 0usize;
    bounds
        .iter()
        .map(|&up| {
            let idx: Vec<usize> = all.iter().copied().filter(|&i| words[i] > lo && words[i] <= up as usize).collect();
            lo = up as usize;
            let labelled = idx.iter().filter(|&&i| gold[i].is_some()).count();
            let (a, b) = if labelled < MIN_BUCKET { global } else { choose(&idx) };
            StackBucket { up_to_words: up, head: a as f32, lexical: b as f32 }
        })
        .collect()
}

/// One text's scores over the classes.
#[cfg(any(test, feature = "test-util"))]
type Scores = Vec<f32>;

/// A stack on which only a gate is right everywhere (tests here and of shelfwise-model's
/// `choose_stack`): 240 texts of three words, four classes; head logits, SVM scores, gold.
/// Agreeing parts (head margin 3) are right; when they disagree, the SVM (margin 1) is right
/// against a head of margin 4 and wrong against one of margin 2. One pair (a, b) would need
/// b > 4a and b < 2a: no length bucket can have both, a weight that falls with the head's margin can.
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub fn gate_fixture() -> (Vec<Scores>, Vec<Scores>, Vec<Option<usize>>) {
    let one_hot = |c: usize, v: f32| (0..4).map(|k| if k == c { v } else { 0.0 }).collect::<Vec<f32>>();
    let (mut head, mut lex, mut gold) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..240 {
        let (y, other) = (i % 4, (i % 4 + 1 + i / 4 % 3) % 4);
        let (h, s) = match i % 3 {
            0 => (one_hot(y, 3.0), one_hot(y, 1.0)),
            1 => (one_hot(other, 4.0), one_hot(y, 1.0)),
            _ => (one_hot(y, 2.0), one_hot(other, 1.0)),
        };
        head.push(h);
        lex.push(s);
        gold.push(Some(y));
    }
    (head, lex, gold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{SparseRow, C};

    fn serial(f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize) -> Vec<Vec<f32>> {
        (0..n).map(f).collect()
    }

    fn toy() -> (TfidfVectorizer, LinearSvm) {
        let titles = ["red running shoe", "trail running shoe", "steel kettle", "electric kettle 2l", "cotton shirt", "linen shirt men"];
        let v = TfidfVectorizer::fit(&titles);
        let rows: Vec<SparseRow> = titles.iter().map(|t| v.transform(t)).collect();
        let svm = LinearSvm::train(&rows, &[0, 0, 1, 1, 2, 2], v.n_features(), 3, C, serial);
        (v, svm)
    }

    #[test]
    fn unpruned_scores_are_the_baselines_up_to_int8_rounding() {
        let (v, svm) = toy();
        let (lex, pruned) = Lexical::from_fitted(&v, &svm, usize::MAX);
        assert_eq!((pruned.kept, pruned.collisions), (pruned.nonzero, 0));
        for t in ["blue running shoe", "kettle", "Shirt for MEN", "zzz"] {
            let want = svm.scores(&v.transform(t));
            let got = lex.scores(t);
            // Each weight is off by at most half a step (max |w| / 254) and a row has unit norm
            // per family: a score moves by at most 2 · max|w| / 254 · √(features), far less here.
            let step = lex.scales().iter().fold(0f32, |m, &s| m.max(s));
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() < 4.0 * step, "{t}: {want:?} vs {got:?}");
            }
            assert_eq!(crate::decision::top_k(&want, 1), crate::decision::top_k(&got, 1), "{t}");
        }
        // The hashed row is the baseline's row (same values, features renumbered by hash).
        let mut a: Vec<f32> = v.transform("red shoe shoe").iter().map(|x| x.1).collect();
        let mut b: Vec<f32> = lex.transform("red shoe shoe").iter().map(|x| x.1).collect();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    }

    #[test]
    fn pruning_keeps_the_largest_weights_within_the_budget() {
        let (v, svm) = toy();
        let (lex, pruned) = Lexical::from_fitted(&v, &svm, 20);
        assert!(pruned.kept <= 20 && pruned.kept >= 15, "{pruned:?}");
        assert_eq!(lex.n_weights(), pruned.kept);
        // The smallest kept |w| is at least the largest dropped one (up to the histogram's bin).
        let mut all: Vec<f32> = (0..3).flat_map(|c| svm.class_weights(c)[..v.n_features()].to_vec()).filter(|w| *w != 0.0).map(f32::abs).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        let smallest_kept = lex.codes().iter().zip(lex.classes()).map(|(&q, &c)| (q as f32 * lex.scales()[c as usize]).abs()).fold(f32::MAX, f32::min);
        assert!(smallest_kept >= all[pruned.kept] * 0.98, "{smallest_kept} vs {}", all[pruned.kept]);
    }

    #[test]
    fn parts_round_trip_and_bad_parts_are_refused() {
        let (v, svm) = toy();
        let (lex, _) = Lexical::from_fitted(&v, &svm, 30);
        let parts = || {
            (lex.hashes().to_vec(), lex.idf().to_vec(), lex.counts(), lex.classes().to_vec(), lex.codes().to_vec(), lex.scales().to_vec(), lex.bias().to_vec())
        };
        let (h, i, n, c, q, s, b) = parts();
        assert_eq!(Lexical::from_parts(h, i, &n, c, q, s, b).unwrap(), lex);
        let (mut h, i, n, c, q, s, b) = parts();
        h.swap(0, 1);
        assert!(Lexical::from_parts(h, i, &n, c, q, s, b).unwrap_err().contains("increasing"));
        let (h, i, n, mut c, q, s, b) = parts();
        c[0] = 3;
        assert!(Lexical::from_parts(h, i, &n, c, q, s, b).unwrap_err().contains("class id"));
        let (h, i, mut n, c, q, s, b) = parts();
        n[0] += 1;
        assert!(Lexical::from_parts(h, i, &n, c, q, s, b).unwrap_err().contains("counts sum"));
        let (h, mut i, n, c, q, s, b) = parts();
        i[2] = f32::NAN;
        assert!(Lexical::from_parts(h, i, &n, c, q, s, b).is_err());
    }

    #[test]
    fn stacked_is_the_buckets_weighted_sum() {
        let buckets = [StackBucket { up_to_words: 2, head: 1.0, lexical: 0.0 }, StackBucket { up_to_words: u32::MAX, head: 0.5, lexical: 2.0 }];
        // log_softmax([0, ln 3]) = [ln 1/4, ln 3/4].
        let (h, s) = ([0.0, 3f32.ln()], [1.0, -1.0]);
        let short = stacked(&h, &s, "two words", &buckets, None);
        assert!((short[0] - 0.25f32.ln()).abs() < 1e-6 && (short[1] - 0.75f32.ln()).abs() < 1e-6);
        let long = stacked(&h, &s, "a b c d e f g h i", &buckets, None);
        assert!((long[0] - (0.5 * 0.25f32.ln() + 2.0)).abs() < 1e-6 && (long[1] - (0.5 * 0.75f32.ln() - 2.0)).abs() < 1e-6);
    }

    #[test]
    fn the_stack_follows_the_part_that_is_right_in_each_bucket() {
        // Short texts: the head is right and the lexical part says the opposite; long texts: the
        // other way round. 60 texts a bucket, three classes.
        let (mut head, mut lex, mut words, mut gold) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..120 {
            let y = i % 3;
            let wrong = (y + 1) % 3;
            let (good, bad) = (
                |c: usize| (0..3).map(move |k| if k == c { 2.0 } else { 0.0 }).collect::<Vec<f32>>(),
                |c: usize| (0..3).map(move |k| if k == c { 1.5 } else { 0.0 }).collect::<Vec<f32>>(),
            );
            let short = i < 60;
            head.push(if short { good(y) } else { bad(wrong) });
            lex.push(if short { bad(wrong) } else { good(y) });
            words.push(if short { 2 } else { 9 });
            gold.push(Some(y));
        }
        let b = fit_stack(&head, &lex, &words, &gold, &[2, u32::MAX]);
        let acc = |bucket: &StackBucket, range: std::ops::Range<usize>| {
            range
                .clone()
                .filter(|&i| {
                    let title = vec!["w"; words[i]].join(" ");
                    crate::decision::top_k(&stacked(&head[i], &lex[i], &title, std::slice::from_ref(bucket), None), 1)[0] == gold[i].unwrap()
                })
                .count()
        };
        assert_eq!(acc(&b[0], 0..60), 60, "{b:?}");
        assert_eq!(acc(&b[1], 60..120), 60, "{b:?}");
        assert!(b[1].lexical > 0.0, "{b:?}");
    }

    #[test]
    fn gate_features_are_hand_countable() {
        // log-probs: top -0.1 (class 1), second -2.5; SVM: top 0.75 (class 1), second -0.25.
        let f = gate_features("red  cotton shirt", &[-2.5, -0.1, -4.0], &[-0.25, 0.75, -1.0]);
        let want = [4f32.ln(), 18f32.ln(), -0.1, 2.4, 0.75, 1.0, 1.0];
        for (g, w) in f.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{f:?}");
        }
        // Disagreeing parts, one class, no class: agree 0; margins 0; all 0s.
        assert_eq!(gate_features("x", &[0.0, -1.0], &[0.0, 1.0])[6], 0.0);
        assert_eq!(gate_features("x", &[0.0], &[2.0])[3..6], [0.0, 2.0, 0.0]);
        assert_eq!(gate_features("", &[], &[]), [0.0; GATE_FEATURES]);
    }

    #[test]
    fn stacked_with_a_gate_is_its_weighted_sum() {
        // a = 1 + 0.5 · (words feature - ln 2) / 1; b = 2 − agree.
        let gate = StackGate {
            mean: vec![2f32.ln(), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            scale: vec![1.0; 7],
            head: vec![1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            lexical: vec![2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        };
        assert!(gate.is_valid());
        let (h, s) = ([0.0, 3f32.ln()], [1.0, -1.0]);
        // One word: a = 1 + 0.5 ln(2/2) = 1; the parts disagree (head says 1, SVM 0): b = 2.
        let z = stacked(&h, &s, "kettle", &[], Some(&gate));
        assert!((z[0] - (0.25f32.ln() + 2.0)).abs() < 1e-6 && (z[1] - (0.75f32.ln() - 2.0)).abs() < 1e-6, "{z:?}");
        // Three words: a = 1 + 0.5 ln 2.
        let a = 1.0 + 0.5 * 2f32.ln();
        let z = stacked(&h, &s, "steel kettle 2l", &[], Some(&gate));
        assert!((z[0] - (a * 0.25f32.ln() + 2.0)).abs() < 1e-5 && (z[1] - (a * 0.75f32.ln() - 2.0)).abs() < 1e-5, "{z:?}");
        let bad = StackGate { scale: vec![0.0; 7], ..gate.clone() };
        assert!(!bad.is_valid());
        let huge = StackGate { mean: vec![1.8e19; 7], ..gate.clone() };
        assert!(!huge.is_valid());
    }

    #[test]
    fn the_gate_follows_the_confident_part_where_length_cannot_tell() {
        let (head, lex, gold) = gate_fixture();
        let titles = vec!["a b c"; 240];
        let gate = fit_gate(&head, &lex, &titles, &gold).unwrap();
        let right = |g: Option<&StackGate>, b: &[StackBucket]| {
            (0..240).filter(|&i| crate::decision::top_k(&stacked(&head[i], &lex[i], titles[i], b, g), 1)[0] == gold[i].unwrap()).count()
        };
        assert_eq!(right(Some(&gate), &[]), 240, "{gate:?}");
        let buckets = fit_stack(&head, &lex, &[3; 240], &gold, &STACK_BOUNDS);
        assert!(right(None, &buckets) <= 160, "{buckets:?}");
        // Nothing labelled: no gate.
        assert!(fit_gate(&head, &lex, &titles, &vec![None; 240]).is_none());
    }
}
