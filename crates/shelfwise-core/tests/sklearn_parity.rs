//! The Rust baseline against scikit-learn's: `scripts/sklearn-baseline.py --record` trained the
//! recipe on the synthetic fixture shop (tests/reference/make_synthetic_shop.py) and recorded its
//! top-1 path for every test title and its 60 % prefix; ours must agree on at least 98 % of them.

use std::collections::HashMap;

use shelfwise_core::baseline::{LinearSvm, SparseRow, TfidfVectorizer, C};

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(fixture(name)).unwrap();
    r.deserialize::<HashMap<String, String>>()
        .map(|row| {
            let row = row.unwrap();
            (row["title"].clone(), row["category_path"].clone())
        })
        .collect()
}

#[test]
fn agrees_with_scikit_learn_on_the_synthetic_shop() {
    let train = read("synthetic_shop_train.csv");
    let mut classes: Vec<String> = train.iter().map(|(_, l)| l.clone()).collect();
    classes.sort();
    classes.dedup();
    let titles: Vec<&str> = train.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<usize> = train.iter().map(|(_, l)| classes.binary_search(l).unwrap()).collect();
    let vec = TfidfVectorizer::fit(&titles);
    let rows: Vec<SparseRow> = titles.iter().map(|t| vec.transform(t)).collect();
    let serial = |f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize| (0..n).map(f).collect();
    let svm = LinearSvm::train(&rows, &labels, vec.n_features(), classes.len(), C, serial);

    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("synthetic_shop_sklearn.json")).unwrap()).unwrap();
    let predictions = recorded["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2 * 288, "whole test titles and their 60 % prefixes");
    let mut same = 0;
    for p in predictions {
        let s = svm.scores(&vec.transform(p["title"].as_str().unwrap()));
        let best = (0..s.len()).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
        same += usize::from(classes[best] == p["top1"].as_str().unwrap());
    }
    let agreement = same as f64 / predictions.len() as f64;
    eprintln!("top-1 agreement with scikit-learn: {same} / {} ({agreement:.4})", predictions.len());
    assert!(agreement >= 0.98, "{same} / {}", predictions.len());
}
