//! Golden outputs of the shipped model (tests/golden/flipkart-minilm.json): the file every CPU path
//! (native, both wasm runtimes) must reproduce — same ranked ids, scores within 1e-4, same
//! abstentions. The WebGPU backend is held to the same top-1 with scores within 5e-2
//! (www/test/webgpu.test.mjs: its float steps between the activation roundings are not the CPU's).
//! Regenerate after a model change, or a change of the kernels' arithmetic, with `scripts/golden.sh`.

mod common;

use common::*;
use shelfwise_model::Classifier;

pub const TOLERANCE: f32 = 1e-4;

#[test]
fn shipped_model_reproduces_golden_outputs() {
    let g = golden();
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

/// Many titles in one call (one encoder pass over all their tokens, blank ones in between) give
/// each title's own decision: same categories and abstentions, scores within 1e-5 (a batch sums
/// in another order); a title over the limit fails the call.
#[test]
fn suggest_many_equals_one_call_a_title() {
    let g = golden();
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    let mut titles: Vec<&str> = g.items.iter().map(|it| it.title.as_str()).collect();
    titles.insert(3, "  ");
    titles.push("");
    let many = clf.suggest_many(&titles, g.k, g.threshold).unwrap();
    assert_eq!(many.len(), titles.len());
    for (t, d) in titles.iter().zip(&many) {
        let one = clf.suggest(t, g.k, g.threshold).unwrap();
        let ids = |d: &shelfwise_core::Decision| d.suggestions.iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(d), ids(&one), "{t:?}");
        assert_eq!((d.abstained, d.back_off.as_ref().map(|b| &b.path)), (one.abstained, one.back_off.as_ref().map(|b| &b.path)), "{t:?}");
        for (a, b) in d.suggestions.iter().zip(&one.suggestions) {
            assert!((a.score - b.score).abs() <= 1e-5, "{t:?}: {} vs {}", a.score, b.score);
        }
    }
    assert!(clf.suggest_many(&[], 5, 0.5).unwrap().is_empty());
    let long = "x".repeat(shelfwise_model::MAX_TITLE_BYTES + 1);
    assert_eq!(clf.suggest_many(&["mug", &long], 5, 0.5).unwrap_err().code(), "INPUT_TOO_LONG");
}
