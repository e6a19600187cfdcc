//! The textbook baseline every model is measured against, as an engineer evaluating shelfwise
//! runs it with scikit-learn (`scripts/sklearn-baseline.py`):
//! `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` on words stacked with
//! `TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True, min_df=2)` on
//! characters, and `LinearSVC(C=0.5)`: one-vs-rest, L2-regularised squared hinge, bias feature 1,
//! solved by liblinear's dual coordinate descent (random order, shrinking, tolerance 1e-4).
//! Its analyzers are scikit-learn's, not the head's n-grams (`crate::ngram`), so that the two
//! agree title for title (a test checks predictions that scikit-learn recorded).

use std::collections::{HashMap, HashSet};

/// scikit-learn's `C` in the recipe.
pub const C: f64 = 0.5;
/// liblinear's stopping tolerance (`LinearSVC(tol=1e-4)`) and pass limit (`max_iter=1000`).
const TOL: f64 = 1e-4;
const MAX_PASSES: usize = 1000;
/// Character n-grams seen in fewer training titles are dropped (`min_df=2`).
const CHAR_MIN_DF: u32 = 2;

/// A sparse row: (feature, value) sorted by feature.
pub type SparseRow = Vec<(u32, f32)>;

/// scikit-learn's default word tokens: lower-cased maximal runs of word characters (`\w`:
/// alphanumerics and '_'), at least two long (`(?u)\b\w\w+\b`), and the bigrams of those tokens.
fn word_grams(lower: &str, mut f: impl FnMut(&str)) {
    let tokens: Vec<&str> = lower.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| t.chars().nth(1).is_some()).collect();
    for t in &tokens {
        f(t);
    }
    let mut key = String::new();
    for pair in tokens.windows(2) {
        key.clear();
        key.push_str(pair[0]);
        key.push(' ');
        key.push_str(pair[1]);
        f(&key);
    }
}

/// scikit-learn's `char_wb` n-grams of length 2..=5: each whitespace-separated word (punctuation
/// kept) padded with one space each side; a padded word shorter than n gives itself once.
fn char_grams(lower: &str, mut f: impl FnMut(&str)) {
    let mut key = String::new();
    for w in lower.split_whitespace() {
        let padded: Vec<char> = std::iter::once(' ').chain(w.chars()).chain(std::iter::once(' ')).collect();
        for n in 2..=5 {
            if padded.len() <= n {
                key.clear();
                key.extend(padded.iter());
                f(&key);
                break;
            }
            for win in padded.windows(n) {
                key.clear();
                key.extend(win.iter());
                f(&key);
            }
        }
    }
}

/// Scales a sparse row (sorted by feature, so the norm's sum has one order) to unit length; an
/// all-zero row stays as it is.
pub(crate) fn l2_normalize(row: &mut [(u32, f32)]) {
    let norm = row.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|(_, v)| *v /= norm);
    }
}

/// Which of the recipe's two vectorizers an n-gram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Word,
    Char,
}

/// Every n-gram of the recipe of a lower-cased title, word n-grams first, in analyzer order
/// (repeats included: they are the term frequencies).
pub fn for_each_gram(lower: &str, mut f: impl FnMut(Family, &str)) {
    word_grams(lower, |g| f(Family::Word, g));
    char_grams(lower, |g| f(Family::Char, g));
}

/// The two vectorizers of the recipe, fitted together: feature ids `0..n_word` are words, the rest
/// characters; each family is L2-normalised on its own (two matrices stacked).
pub struct TfidfVectorizer {
    word: HashMap<String, u32>,
    char: HashMap<String, u32>,
    idf: Vec<f32>,
}

/// Its size only: the vocabulary can be hundreds of thousands of n-grams.
impl std::fmt::Debug for TfidfVectorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfidfVectorizer").field("words", &self.word.len()).field("chars", &self.char.len()).finish()
    }
}

/// scikit-learn's smoothed idf, `ln((1 + n) / (1 + df)) + 1` (also `crate::names`').
pub(crate) fn smooth_idf(n_docs: usize, df: u32) -> f32 {
    (((1 + n_docs) as f64 / (1 + df) as f64).ln() + 1.0) as f32
}

/// One analyzer: calls back with every n-gram of a lower-cased title.
type Analyzer = fn(&str, &mut dyn FnMut(&str));

fn document_frequencies(titles: &[String], grams: Analyzer) -> HashMap<String, u32> {
    let mut df: HashMap<String, u32> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for t in titles {
        seen.clear();
        grams(t, &mut |g| {
            if !seen.contains(g) {
                seen.insert(g.to_string());
                *df.entry(g.to_string()).or_default() += 1;
            }
        });
    }
    df
}

fn words_dyn(t: &str, f: &mut dyn FnMut(&str)) {
    word_grams(t, f)
}

fn chars_dyn(t: &str, f: &mut dyn FnMut(&str)) {
    char_grams(t, f)
}

impl TfidfVectorizer {
    pub fn fit(titles: &[&str]) -> Self {
        let lower: Vec<String> = titles.iter().map(|t| t.to_lowercase()).collect();
        let n = lower.len();
        let mut idf = Vec::new();
        let mut index = |df: HashMap<String, u32>, min_df: u32| -> HashMap<String, u32> {
            // Sorted, so feature ids do not depend on hash order.
            let mut kept: Vec<(String, u32)> = df.into_iter().filter(|&(_, d)| d >= min_df).collect();
            kept.sort_unstable();
            kept.into_iter()
                .map(|(g, d)| {
                    idf.push(smooth_idf(n, d));
                    (g, (idf.len() - 1) as u32)
                })
                .collect()
        };
        let word = index(document_frequencies(&lower, words_dyn), 1);
        let char = index(document_frequencies(&lower, chars_dyn), CHAR_MIN_DF);
        Self { word, char, idf }
    }

    pub fn n_features(&self) -> usize {
        self.idf.len()
    }

    /// Every feature in id order: its family, n-gram and idf.
    pub fn features(&self) -> Vec<(Family, &str, f32)> {
        let mut out: Vec<(Family, &str, f32)> = vec![(Family::Word, "", 0.0); self.idf.len()];
        for (family, vocab) in [(Family::Word, &self.word), (Family::Char, &self.char)] {
            for (g, &id) in vocab {
                out[id as usize] = (family, g.as_str(), self.idf[id as usize]);
            }
        }
        out
    }

    /// A fitted vectorizer again from its [`Self::features`] (id order), e.g. as a shop's memory
    /// stores it; `None` when an n-gram repeats within a family or an idf is not finite and ≥ 1.
    pub fn from_features(features: Vec<(Family, String, f32)>) -> Option<Self> {
        let (mut word, mut char) = (HashMap::new(), HashMap::new());
        let mut idf = Vec::with_capacity(features.len());
        for (id, (family, gram, w)) in features.into_iter().enumerate() {
            // smooth_idf is ln(..) + 1 with a ratio ≥ 1.
            if !(w.is_finite() && w >= 1.0) {
                return None;
            }
            let vocab = if family == Family::Word { &mut word } else { &mut char };
            if vocab.insert(gram, id as u32).is_some() {
                return None;
            }
            idf.push(w);
        }
        Some(Self { word, char, idf })
    }

    pub fn transform(&self, title: &str) -> SparseRow {
        let lower = title.to_lowercase();
        let mut row = Vec::new();
        for (vocab, grams) in [(&self.word, words_dyn as Analyzer), (&self.char, chars_dyn)] {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            grams(&lower, &mut |g| {
                if let Some(&id) = vocab.get(g) {
                    *tf.entry(id).or_default() += 1.0;
                }
            });
            let mut part: SparseRow = tf.into_iter().map(|(id, c)| (id, (1.0 + c.ln()) * self.idf[id as usize])).collect();
            // In feature order before summing: HashMap order would change the norm's last bit run to run.
            part.sort_unstable_by_key(|&(id, _)| id);
            l2_normalize(&mut part);
            // Word ids come before character ids, so the row stays sorted by feature.
            row.extend(part);
        }
        row
    }
}

/// One-vs-rest linear SVM; `weights[c]` has one entry per feature plus the bias last.
pub struct LinearSvm {
    n_features: usize,
    weights: Vec<Vec<f32>>,
}

fn dot(w: &[f64], row: &SparseRow, bias_idx: usize) -> f64 {
    row.iter().map(|&(i, v)| w[i as usize] * v as f64).sum::<f64>() + w[bias_idx]
}

/// A small fixed generator for liblinear's random visiting order (deterministic results).
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// liblinear's `solve_l2r_l1l2_svc` for the squared hinge: the dual of
/// min ½‖w‖² + C Σ max(0, 1 − yᵢ w·xᵢ)², by coordinate descent over a shrinking active set.
fn train_binary(rows: &[SparseRow], y: &[f64], sq_norms: &[f64], n_features: usize, c: f64, seed: u64) -> Vec<f64> {
    train_binary_dual(rows, y, sq_norms, n_features, c, seed).0
}

/// [`train_binary`]'s weights and its dual variables (`w = Σ αᵢ yᵢ [xᵢ, 1]`).
fn train_binary_dual(rows: &[SparseRow], y: &[f64], sq_norms: &[f64], n_features: usize, c: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let l = rows.len();
    let diag = 0.5 / c;
    let mut w = vec![0.0f64; n_features + 1];
    let mut alpha = vec![0.0f64; l];
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    // The shrinking threshold (liblinear's PGmax_old; its PGmin_old guards an upper bound on
    // alpha, which the squared hinge does not have).
    let mut pg_max_old = f64::INFINITY;
    let mut rng = SplitMix(seed);
    for _ in 0..MAX_PASSES {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for i in 0..active {
            let j = i + rng.below(active - i);
            index.swap(i, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let g = y[i] * dot(&w, &rows[i], n_features) - 1.0 + alpha[i] * diag;
            let mut pg = g;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrink: at its bound and likely to stay there.
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                pg = g.min(0.0);
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / (sq_norms[i] + diag)).max(0.0);
                let d = (alpha[i] - old) * y[i];
                for &(f, v) in &rows[i] {
                    w[f as usize] += d * v as f64;
                }
                w[n_features] += d;
            }
            s += 1;
        }
        if pg_max - pg_min <= TOL {
            if active == l {
                break;
            }
            // Converged on the active set: check every title once more.
            active = l;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    (w, alpha)
}

impl LinearSvm {
    /// Trains class `c` against the rest for every class; `labels[i] < n_classes`.
    /// Runs the classes in parallel through `map`, which the caller provides (rayon in the CLI),
    /// so the core stays free of threading choices.
    pub fn train<M>(rows: &[SparseRow], labels: &[usize], n_features: usize, n_classes: usize, c: f64, map: M) -> Self
    where
        M: FnOnce(&(dyn Fn(usize) -> Vec<f32> + Sync), usize) -> Vec<Vec<f32>>,
    {
        // Each row's squared norm, the bias feature's 1 included.
        let sq_norms: Vec<f64> = rows.iter().map(|r| r.iter().map(|&(_, v)| (v as f64).powi(2)).sum::<f64>() + 1.0).collect();
        let train_one = |class: usize| -> Vec<f32> {
            let y: Vec<f64> = labels.iter().map(|&l| if l == class { 1.0 } else { -1.0 }).collect();
            let w = train_binary(rows, &y, &sq_norms, n_features, c, class as u64);
            w.into_iter().map(|v| v as f32).collect()
        };
        let weights = map(&train_one, n_classes);
        Self { n_features, weights }
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Class `c`'s weights, one per feature, then its bias.
    pub fn class_weights(&self, c: usize) -> &[f32] {
        &self.weights[c]
    }

    pub fn n_classes(&self) -> usize {
        self.weights.len()
    }

    /// The same classifier in its dual form, for a memory that keeps the training rows rather than
    /// a weight per feature and class: for each class, the rows with a non-zero dual variable and
    /// their `αᵢ yᵢ`, so that the decision value of `x` is `Σ αᵢ yᵢ (xᵢ · x + 1)` (the bias is the
    /// constant feature 1). Same solver, same visiting order, so the same `w` as [`Self::train`].
    pub fn train_dual<M>(rows: &[SparseRow], labels: &[usize], n_classes: usize, c: f64, map: M) -> Vec<Vec<(u32, f32)>>
    where
        M: FnOnce(&(dyn Fn(usize) -> Vec<(u32, f32)> + Sync), usize) -> Vec<Vec<(u32, f32)>>,
    {
        let sq_norms: Vec<f64> = rows.iter().map(|r| r.iter().map(|&(_, v)| (v as f64).powi(2)).sum::<f64>() + 1.0).collect();
        let n_features = rows.iter().flat_map(|r| r.last().map(|&(i, _)| i as usize + 1)).max().unwrap_or(0);
        let train_one = |class: usize| -> Vec<(u32, f32)> {
            let y: Vec<f64> = labels.iter().map(|&l| if l == class { 1.0 } else { -1.0 }).collect();
            let (_, alpha) = train_binary_dual(rows, &y, &sq_norms, n_features, c, class as u64);
            alpha.iter().zip(&y).enumerate().filter(|(_, (a, _))| **a != 0.0).map(|(i, (a, y))| (i as u32, (a * y) as f32)).collect()
        };
        map(&train_one, n_classes)
    }

    /// Decision values for every class.
    pub fn scores(&self, row: &SparseRow) -> Vec<f32> {
        self.weights.iter().map(|w| row.iter().map(|&(i, v)| w[i as usize] * v).sum::<f32>() + w[self.n_features]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize) -> Vec<Vec<f32>> {
        (0..n).map(f).collect()
    }

    fn grams(t: &str, f: Analyzer) -> Vec<String> {
        let mut out = Vec::new();
        f(t, &mut |g| out.push(g.to_string()));
        out
    }

    #[test]
    fn a_vectorizer_rebuilt_from_its_features_transforms_alike() {
        let v = TfidfVectorizer::fit(&["red shoe", "red mug", "blue mug 250ml"]);
        let feats: Vec<(Family, String, f32)> = v.features().into_iter().map(|(f, g, w)| (f, g.to_string(), w)).collect();
        let back = TfidfVectorizer::from_features(feats.clone()).unwrap();
        for t in ["red mug", "a blue shoe", "unseen words"] {
            assert_eq!(back.transform(t), v.transform(t), "{t}");
        }
        // "red" is in 2 of 3 titles: ln(4/3) + 1.
        let red = feats.iter().find(|f| f.0 == Family::Word && f.1 == "red").unwrap();
        assert!((red.2 - ((4.0f32 / 3.0).ln() + 1.0)).abs() < 1e-6);
        let mut dup = feats.clone();
        dup.push(dup[0].clone());
        assert!(TfidfVectorizer::from_features(dup).is_none());
        let mut nan = feats;
        nan[0].2 = f32::NAN;
        assert!(TfidfVectorizer::from_features(nan).is_none());
    }

    #[test]
    fn analyzers_match_scikit_learn() {
        // TfidfVectorizer().build_analyzer()("nike air-zoom x 10") in scikit-learn 1.9, with
        // ngram_range=(1, 2): single characters are not tokens, punctuation splits.
        assert_eq!(grams("nike air-zoom x 10", words_dyn), ["nike", "air", "zoom", "10", "nike air", "air zoom", "zoom 10"]);
        // TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5)).build_analyzer()("ab x-y"):
        // words split on whitespace only, a short padded word given once.
        assert_eq!(grams("ab x-y", chars_dyn), [" a", "ab", "b ", " ab", "ab ", " ab ", " x", "x-", "-y", "y ", " x-", "x-y", "-y ", " x-y", "x-y ", " x-y "]);
    }

    #[test]
    fn tfidf_rows_are_normalised_per_family_and_rare_chars_dropped() {
        let v = TfidfVectorizer::fit(&["red shoe", "blue shoe"]);
        let n_word = v.word.len() as u32;
        let row = v.transform("red shoe");
        let word: f32 = row.iter().filter(|(i, _)| *i < n_word).map(|(_, x)| x * x).sum();
        let chr: f32 = row.iter().filter(|(i, _)| *i >= n_word).map(|(_, x)| x * x).sum();
        assert!((word - 1.0).abs() < 1e-5 && (chr - 1.0).abs() < 1e-5);
        // Only " shoe"'s grams occur in both titles (min_df=2); "red" is a word feature.
        assert!(v.char.contains_key(" sh") && !v.char.contains_key(" re"));
        assert!(v.word.contains_key("red"));
        assert!(v.transform("zzz qqq").is_empty(), "unknown n-grams are dropped");
    }

    #[test]
    fn svm_separates_a_toy_problem() {
        let titles = ["red running shoe", "trail running shoe", "steel kettle", "electric kettle 2l"];
        let labels = [0, 0, 1, 1];
        let v = TfidfVectorizer::fit(&titles);
        let rows: Vec<SparseRow> = titles.iter().map(|t| v.transform(t)).collect();
        let svm = LinearSvm::train(&rows, &labels, v.n_features(), 2, C, serial);
        let s = svm.scores(&v.transform("blue shoe"));
        assert!(s[0] > s[1]);
        let s = svm.scores(&v.transform("kettle"));
        assert!(s[1] > s[0]);
    }

    #[test]
    fn the_dual_form_gives_the_primal_decision_values() {
        let titles = ["red running shoe", "trail running shoe", "steel kettle", "electric kettle 2l", "blue kettle"];
        let labels = [0, 0, 1, 1, 2];
        let v = TfidfVectorizer::fit(&titles);
        let rows: Vec<SparseRow> = titles.iter().map(|t| v.transform(t)).collect();
        let svm = LinearSvm::train(&rows, &labels, v.n_features(), 3, C, serial);
        let dual = LinearSvm::train_dual(&rows, &labels, 3, C, |f, n| (0..n).map(f).collect());
        for t in ["blue shoe", "kettle", "zzz"] {
            let x = v.transform(t);
            let want = svm.scores(&x);
            for (c, d) in dual.iter().enumerate() {
                let got: f32 = d
                    .iter()
                    .map(|&(i, a)| a * (rows[i as usize].iter().map(|&(f, xv)| x.iter().find(|p| p.0 == f).map_or(0.0, |p| p.1) * xv).sum::<f32>() + 1.0))
                    .sum();
                assert!((got - want[c]).abs() < 1e-5, "{t} class {c}: {got} vs {}", want[c]);
            }
        }
    }

    #[test]
    fn svm_matches_a_hand_solved_problem() {
        // One feature, x = ±1 (plus the bias 1), C = 0.5: by symmetry b = 0 and the primal
        // ½w² + 2C(1 − w)² is least at w = 4C / (1 + 4C) = 2/3 (scikit-learn's
        // LinearSVC(C=0.5).fit([[1], [-1]], [0, 1]) gives coef −0.6667 for the second class).
        let rows: Vec<SparseRow> = vec![vec![(0, 1.0)], vec![(0, -1.0)]];
        let svm = LinearSvm::train(&rows, &[0, 1], 1, 2, 0.5, serial);
        let w = &svm.weights[0];
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-3 && w[1].abs() < 1e-3, "{w:?}");
    }
}
