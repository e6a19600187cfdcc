//! The shop-state parity case (issue #19: native and browser adaptation give the same scores):
//! one taxonomy, examples, a correction and queries, run natively (tests/shop.rs, which writes
//! and checks tests/fixtures/shop_parity.json) and in wasm (shelfwise-wasm's tests/adapt.rs,
//! which checks the same file).

use shelfwise_model::progress::Silent;
use shelfwise_model::shop::{self, Shop};
use shelfwise_model::Classifier;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Case {
    pub taxonomy: Vec<String>,
    pub titles: Vec<String>,
    pub paths: Vec<String>,
    /// A correction after the examples: (title, path).
    pub learn: (String, String),
    pub queries: Vec<String>,
    /// Outputs: the labels, each query's probabilities, the top-3 similar scores of each query
    /// and each query's word contributions to its top category.
    pub labels: Vec<String>,
    pub probs: Vec<Vec<f32>>,
    pub similar: Vec<Vec<f32>>,
    pub explain: Vec<Vec<f32>>,
}

/// Runs the case's inputs on `model`: the case with its outputs filled in.
pub fn run(model: &[u8], case: &Case) -> Case {
    let mut clf = Classifier::from_bytes(model).unwrap();
    let mut s = Shop::new(&clf);
    s.set_taxonomy(&clf, &shop::parse_paths(&case.taxonomy).unwrap(), &Silent).unwrap();
    s.add_examples(&clf, shop::examples_of(&case.titles, &case.paths).unwrap(), &Silent).unwrap();
    s.learn(&clf, &case.learn.0, &case.learn.1).unwrap();
    s.apply(&mut clf).unwrap();
    let queries: Vec<&str> = case.queries.iter().map(String::as_str).collect();
    let probs = clf.probs(&queries).unwrap();
    let similar = queries.iter().map(|q| s.similar(&clf, q, 3).unwrap().iter().map(|x| x.score).collect()).collect();
    let explain = queries
        .iter()
        .zip(&probs)
        .map(|(q, p)| {
            let top = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            Shop::explain(&clf, q, top).unwrap().words.iter().map(|w| w.contribution).collect()
        })
        .collect();
    Case {
        taxonomy: case.taxonomy.clone(),
        titles: case.titles.clone(),
        paths: case.paths.clone(),
        learn: case.learn.clone(),
        queries: case.queries.clone(),
        labels: clf.labels().label_strings(),
        probs,
        similar,
        explain,
    }
}

/// Where `got` differs from `want` by more than `tol` (empty: the same).
pub fn differences(got: &Case, want: &Case, tol: f32) -> Vec<String> {
    let mut out = Vec::new();
    if got.labels != want.labels {
        out.push(format!("labels {:?} vs {:?}", got.labels, want.labels));
    }
    for (name, a, b) in [("probs", &got.probs, &want.probs), ("similar", &got.similar, &want.similar), ("explain", &got.explain, &want.explain)] {
        if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
            out.push(format!("{name}: shapes differ"));
            continue;
        }
        for (q, (x, y)) in a.iter().zip(b).enumerate() {
            for (j, (u, v)) in x.iter().zip(y).enumerate() {
                if (u - v).abs() > tol {
                    out.push(format!("{name}[{q}][{j}]: {u} vs {v}"));
                }
            }
        }
    }
    out
}
