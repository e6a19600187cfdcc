//! The lexical part of a model: the baseline's TF-IDF + linear SVM ([`crate::baseline`]) in the
//! compact form a model file stores, and the stack that combines its scores with the head's.
//!
//! Stored form: each n-gram of the fitted vocabulary as a 64-bit hash (FNV-1a, low bit = family),
//! sorted so a title's n-grams are found by binary search, with its idf; the SVM's weights pruned
//! to the largest |w| within a budget and kept in int8 with one scale per class, grouped by
//! feature (per feature: how many, which classes, which codes). A title's scores are then the
//! baseline's decision values up to the pruning and the rounding.
//!
//! The stack: per title-length bucket (in words), `logits = a · log_softmax(head) + b · svm`,
//! `(a, b)` fitted on held-out titles and prefixes by log-loss ([`fit_stack`]).

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

/// The stacked logits of one title of `words` words.
pub fn stacked(head: &[f32], lexical: &[f32], words: usize, buckets: &[StackBucket]) -> Vec<f32> {
    let Some(b) = buckets.iter().find(|b| words <= b.up_to_words as usize).or(buckets.last()) else {
        return head.to_vec();
    };
    log_softmax(head).iter().zip(lexical).map(|(h, l)| b.head * h + b.lexical * l).collect()
}

/// Mean NLL, its gradient and Hessian in `(a, b)` of `softmax(a·h + b·s)` over `idx`.
fn nll_newton(h: &[Vec<f32>], s: &[Vec<f32>], gold: &[Option<usize>], idx: &[usize], a: f64, b: f64) -> (f64, [f64; 2], [f64; 3]) {
    let (mut loss, mut g, mut hess) = (0.0, [0.0; 2], [0.0; 3]);
    let mut n = 0usize;
    for &i in idx {
        let Some(y) = gold[i] else { continue };
        let z: Vec<f64> = h[i].iter().zip(&s[i]).map(|(&x, &v)| a * x as f64 + b * v as f64).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        loss += sum.ln() + max - z[y];
        let (mut eh, mut es, mut ehh, mut ess, mut ehs) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, &ek) in e.iter().enumerate() {
            let p = ek / sum;
            let (x, v) = (h[i][k] as f64, s[i][k] as f64);
            eh += p * x;
            es += p * v;
            ehh += p * x * x;
            ess += p * v * v;
            ehs += p * x * v;
        }
        g[0] += eh - h[i][y] as f64;
        g[1] += es - s[i][y] as f64;
        hess[0] += ehh - eh * eh;
        hess[1] += ehs - eh * es;
        hess[2] += ess - es * es;
        n += 1;
    }
    let n = n.max(1) as f64;
    (loss / n, [g[0] / n, g[1] / n], [hess[0] / n, hess[1] / n, hess[2] / n])
}

/// `(a, b)` minimising the held-out NLL over `idx` by damped Newton steps; `fix` pins one weight
/// at 0 (`Some(0)`: the head alone, `Some(1)`: the lexical part alone).
fn fit_pair(h: &[Vec<f32>], s: &[Vec<f32>], gold: &[Option<usize>], idx: &[usize], fix: Option<usize>) -> (f64, f64) {
    let mut p = [if fix == Some(0) { 0.0 } else { 1.0 }, if fix == Some(1) { 0.0 } else { 1.0 }];
    let (mut loss, _, _) = nll_newton(h, s, gold, idx, p[0], p[1]);
    for _ in 0..50 {
        let (_, g, [haa, hab, hbb]) = nll_newton(h, s, gold, idx, p[0], p[1]);
        let ridge = 1e-6;
        let step = match fix {
            Some(0) => [0.0, g[1] / (hbb + ridge)],
            Some(_) => [g[0] / (haa + ridge), 0.0],
            None => {
                let det = (haa + ridge) * (hbb + ridge) - hab * hab;
                if det <= 0.0 {
                    break;
                }
                [((hbb + ridge) * g[0] - hab * g[1]) / det, ((haa + ridge) * g[1] - hab * g[0]) / det]
            }
        };
        let mut t = 1.0;
        let mut moved = false;
        while t > 1e-4 {
            let q = [p[0] - t * step[0], p[1] - t * step[1]];
            let (l, _, _) = nll_newton(h, s, gold, idx, q[0], q[1]);
            if l < loss {
                moved = loss - l > 1e-9;
                p = q;
                loss = l;
                break;
            }
            t *= 0.5;
        }
        if !moved {
            break;
        }
    }
    (p[0], p[1])
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
    let choose = |idx: &[usize]| -> (f64, f64) {
        let fits = [fit_pair(&h, lexical, gold, idx, None), fit_pair(&h, lexical, gold, idx, Some(1)), fit_pair(&h, lexical, gold, idx, Some(0))];
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
        let short = stacked(&h, &s, 2, &buckets);
        assert!((short[0] - 0.25f32.ln()).abs() < 1e-6 && (short[1] - 0.75f32.ln()).abs() < 1e-6);
        let long = stacked(&h, &s, 9, &buckets);
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
                .filter(|&i| crate::decision::top_k(&stacked(&head[i], &lex[i], words[i], std::slice::from_ref(bucket)), 1)[0] == gold[i].unwrap())
                .count()
        };
        assert_eq!(acc(&b[0], 0..60), 60, "{b:?}");
        assert_eq!(acc(&b[1], 60..120), 60, "{b:?}");
        assert!(b[1].lexical > 0.0, "{b:?}");
    }
}
