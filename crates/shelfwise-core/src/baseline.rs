//! The TF-IDF baseline every model is measured against: word 1–2 and char 2–5 n-grams, sublinear
//! TF, smoothed IDF, each family L2-normalised (scikit-learn's two `TfidfVectorizer`s stacked),
//! and a one-vs-rest L2-regularised squared-hinge linear SVM solved by dual coordinate descent
//! (the liblinear solver behind scikit-learn's `LinearSVC`, C = 1, bias feature 1).

use std::collections::HashMap;

use crate::ngram::{for_each_ngram, Family, NgramConfig};

/// A sparse row: (feature, value) sorted by feature.
pub type SparseRow = Vec<(u32, f32)>;

pub struct TfidfVectorizer {
    cfg: NgramConfig,
    vocab: HashMap<String, u32>,
    family: Vec<Family>,
    idf: Vec<f32>,
}

impl TfidfVectorizer {
    pub fn fit(titles: &[&str], cfg: NgramConfig) -> Self {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut family = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        for t in titles {
            let mut seen = std::collections::HashSet::new();
            for_each_ngram(t, &cfg, |fam, k| {
                let id = *vocab.entry(k.to_string()).or_insert_with(|| {
                    family.push(fam);
                    df.push(0);
                    (family.len() - 1) as u32
                });
                if seen.insert(id) {
                    df[id as usize] += 1;
                }
            });
        }
        let n = titles.len() as f32;
        let idf = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0).collect();
        Self { cfg, vocab, family, idf }
    }

    pub fn n_features(&self) -> usize {
        self.idf.len()
    }

    pub fn transform(&self, title: &str) -> SparseRow {
        let mut tf: HashMap<u32, f32> = HashMap::new();
        for_each_ngram(title, &self.cfg, |_, k| {
            if let Some(&id) = self.vocab.get(k) {
                *tf.entry(id).or_default() += 1.0;
            }
        });
        let mut row: SparseRow = tf.into_iter().map(|(id, c)| (id, (1.0 + c.ln()) * self.idf[id as usize])).collect();
        row.sort_unstable_by_key(|&(id, _)| id);
        for fam in [Family::Word, Family::Char] {
            let norm = row
                .iter()
                .filter(|(id, _)| self.family[*id as usize] == fam)
                .map(|(_, v)| v * v)
                .sum::<f32>()
                .sqrt();
            if norm > 0.0 {
                for (id, v) in row.iter_mut() {
                    if self.family[*id as usize] == fam {
                        *v /= norm;
                    }
                }
            }
        }
        row
    }
}

/// One-vs-rest linear SVM; `weights[c]` has one entry per feature plus the bias last.
pub struct LinearSvm {
    n_features: usize,
    weights: Vec<Vec<f32>>,
}

fn dot(w: &[f32], row: &SparseRow, bias_idx: usize) -> f32 {
    row.iter().map(|&(i, v)| w[i as usize] * v).sum::<f32>() + w[bias_idx]
}

impl LinearSvm {
    /// Trains class `c` against the rest for every class; `labels[i] < n_classes`.
    /// Runs the classes in parallel through `map`, which the caller provides (rayon in the CLI),
    /// so the core stays free of threading choices.
    pub fn train<M>(rows: &[SparseRow], labels: &[usize], n_features: usize, n_classes: usize, c: f32, map: M) -> Self
    where
        M: FnOnce(&(dyn Fn(usize) -> Vec<f32> + Sync), usize) -> Vec<Vec<f32>>,
    {
        let sq_norms: Vec<f32> = rows.iter().map(|r| r.iter().map(|(_, v)| v * v).sum::<f32>() + 1.0).collect();
        let train_one = |class: usize| -> Vec<f32> {
            let d = 0.5 / c; // squared hinge: D_ii = 1 / (2C)
            let mut w = vec![0.0f32; n_features + 1];
            let mut alpha = vec![0.0f32; rows.len()];
            for _pass in 0..50 {
                let mut max_pg = 0.0f32;
                for (i, row) in rows.iter().enumerate() {
                    let y = if labels[i] == class { 1.0 } else { -1.0 };
                    let g = y * dot(&w, row, n_features) - 1.0 + d * alpha[i];
                    let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
                    max_pg = max_pg.max(pg.abs());
                    if pg.abs() > 1e-12 {
                        let old = alpha[i];
                        alpha[i] = (old - g / (sq_norms[i] + d)).max(0.0);
                        let delta = (alpha[i] - old) * y;
                        for &(j, v) in row {
                            w[j as usize] += delta * v;
                        }
                        w[n_features] += delta;
                    }
                }
                if max_pg < 0.1 {
                    break;
                }
            }
            w
        };
        let weights = map(&train_one, n_classes);
        Self { n_features, weights }
    }

    /// Decision values for every class.
    pub fn scores(&self, row: &SparseRow) -> Vec<f32> {
        self.weights.iter().map(|w| dot(w, row, self.n_features)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize) -> Vec<Vec<f32>> {
        (0..n).map(f).collect()
    }

    #[test]
    fn tfidf_rows_are_normalised_per_family() {
        let v = TfidfVectorizer::fit(&["red shoe", "blue shoe"], NgramConfig::default());
        let row = v.transform("red shoe");
        let word: f32 = row.iter().filter(|(i, _)| v.family[*i as usize] == Family::Word).map(|(_, x)| x * x).sum();
        let chr: f32 = row.iter().filter(|(i, _)| v.family[*i as usize] == Family::Char).map(|(_, x)| x * x).sum();
        assert!((word - 1.0).abs() < 1e-5 && (chr - 1.0).abs() < 1e-5);
        assert!(v.transform("zzz qqq").is_empty(), "unknown n-grams are dropped");
    }

    #[test]
    fn svm_separates_a_toy_problem() {
        let titles = ["red running shoe", "trail running shoe", "steel kettle", "electric kettle 2l"];
        let labels = [0, 0, 1, 1];
        let v = TfidfVectorizer::fit(&titles, NgramConfig::default());
        let rows: Vec<SparseRow> = titles.iter().map(|t| v.transform(t)).collect();
        let svm = LinearSvm::train(&rows, &labels, v.n_features(), 2, 1.0, serial);
        let s = svm.scores(&v.transform("blue shoe"));
        assert!(s[0] > s[1]);
        let s = svm.scores(&v.transform("kettle"));
        assert!(s[1] > s[0]);
    }
}
