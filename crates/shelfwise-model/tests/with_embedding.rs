//! `Classifier::suggest_with_embedding` (the head on an embedding computed by another encoder, as
//! the browser's WebGPU path does) equals `suggest` when given the CPU encoder's embedding
//! (`Classifier::embedding`, the reference the browser checks the GPU's against; that embedding
//! itself is held to an independent numpy forward in tests/quant_reference.rs).

mod common;

use common::*;
use shelfwise_model::Classifier;

#[test]
fn suggest_with_the_cpu_embedding_equals_suggest() {
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    let titles = std::fs::read_to_string(repo().join("tests/fixtures/titles.txt")).unwrap();
    let titles: Vec<&str> = titles.lines().filter(|l| !l.trim().is_empty()).take(12).collect();
    assert!(titles.len() >= 10);
    for t in titles {
        let enc = clf.encode(t).unwrap();
        assert_eq!(enc.ids.len(), enc.mask.len());
        let pooled = clf.embedding(t).unwrap();
        let via = clf.suggest_with_embedding(t, &pooled, 5, 0.5).unwrap();
        let direct = clf.suggest(t, 5, 0.5).unwrap();
        assert_eq!(via, direct, "{t:?}");
    }
}

#[test]
fn suggest_with_embedding_checks_its_input() {
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    let h = clf.manifest().encoder.hidden;
    assert!(clf.suggest_with_embedding("   ", &[], 5, 0.5).unwrap().suggestions.is_empty());
    let e = clf.suggest_with_embedding("mug", &vec![0.0; h - 1], 5, 0.5).unwrap_err();
    assert_eq!(e.code(), "INTERNAL");
    let mut nan = vec![0.0; h];
    nan[3] = f32::NAN;
    assert_eq!(clf.suggest_with_embedding("mug", &nan, 5, 0.5).unwrap_err().code(), "INTERNAL");
    let long = "x".repeat(shelfwise_model::MAX_TITLE_BYTES + 1);
    assert_eq!(clf.suggest_with_embedding(&long, &vec![0.0; h], 5, 0.5).unwrap_err().code(), "INPUT_TOO_LONG");
    assert_eq!(clf.encode(&long).unwrap_err().code(), "INPUT_TOO_LONG");
    assert_eq!(clf.embedding(&long).unwrap_err().code(), "INPUT_TOO_LONG");
}
