//! Golden outputs of the shipped model (tests/golden/flipkart-minilm.json): the file every platform
//! (native, wasm, WebGPU) must reproduce — same ranked ids, scores within 1e-4, same abstentions.
//! Regenerate after a model change with `scripts/golden.sh`.

mod common;

use common::*;
use serde::Deserialize;
use shelfwise_model::Classifier;

#[derive(Deserialize)]
struct Golden {
    model_payload_sha256: String,
    k: usize,
    threshold: f32,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    title: String,
    decision: shelfwise_core::Decision,
}

pub const TOLERANCE: f32 = 1e-4;

#[test]
fn shipped_model_reproduces_golden_outputs() {
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(repo().join("tests/golden/flipkart-minilm.json")).unwrap()).unwrap();
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    assert_eq!(clf.manifest().payload_sha256, g.model_payload_sha256, "golden file is for another model: regenerate it");
    assert!(g.items.len() >= 30);
    for it in &g.items {
        let d = clf.suggest(&it.title, g.k, g.threshold).unwrap();
        let ids: Vec<usize> = d.suggestions.iter().map(|s| s.id).collect();
        let want: Vec<usize> = it.decision.suggestions.iter().map(|s| s.id).collect();
        assert_eq!(ids, want, "{:?}", it.title);
        for (a, b) in d.suggestions.iter().zip(&it.decision.suggestions) {
            assert!((a.score - b.score).abs() <= TOLERANCE, "{:?}: {} vs {}", it.title, a.score, b.score);
            assert_eq!(a.path, b.path);
            for (x, y) in a.level_scores.iter().zip(&b.level_scores) {
                assert!((x - y).abs() <= TOLERANCE, "{:?}", it.title);
            }
        }
        assert_eq!(d.abstained, it.decision.abstained, "{:?}", it.title);
        assert_eq!(d.back_off.map(|b| b.path), it.decision.back_off.clone().map(|b| b.path), "{:?}", it.title);
    }
}
