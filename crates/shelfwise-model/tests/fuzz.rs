//! Long randomized runs (not in CI; `#[ignore]`): the model-file parser on mutated manifests and
//! raw manifest bytes, and titles on the shipped model. Cases from `FUZZ_CASES` (default 1000):
//!
//! ```sh
//! FUZZ_CASES=100000 cargo test --release -p shelfwise-model --test fuzz -- --ignored --nocapture
//! ```
//! A panic anywhere fails the run with the shrunk input; untyped errors and scores that are not
//! probabilities fail it too.

mod common;

use common::mutate::*;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shelfwise_model::Classifier;

fn runner() -> (TestRunner, u32) {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    (TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() }), cases)
}

#[test]
#[ignore]
fn fuzz_manifests() {
    let (mut r, cases) = runner();
    let bytes = tiny_bytes();
    let m = manifest_json(&bytes);
    let all = paths(&m);
    let (typed, loaded) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    r.run(&proptest::collection::vec((any::<prop::sample::Index>(), any_value()), 1..4), |picks| {
        let mut edited = m.clone();
        for (i, v) in &picks {
            edited = mutated(&edited, i.get(&all), v.as_ref());
        }
        match answers(&with_manifest(&bytes, &edited)) {
            Err(code) => {
                prop_assert!(MANIFEST_CODES.contains(&code), "{code}");
                typed.set(typed.get() + 1);
            }
            Ok(a) => {
                prop_assert!(a.iter().all(|(_, s)| (0.0..=1.0).contains(s)), "{a:?}");
                loaded.set(loaded.get() + 1);
            }
        }
        Ok(())
    })
    .unwrap();
    eprintln!("fuzz_manifests: {cases} cases, {} typed errors, {} loaded and answered", typed.get(), loaded.get());
}

#[test]
#[ignore]
fn fuzz_manifest_bytes() {
    let (mut r, cases) = runner();
    let bytes = tiny_bytes();
    r.run(&proptest::collection::vec(any::<u8>(), 0..512), |m| {
        prop_assert!(matches!(answers(&with_manifest_bytes(&bytes, &m)), Err(c) if MANIFEST_CODES.contains(&c)));
        Ok(())
    })
    .unwrap();
    eprintln!("fuzz_manifest_bytes: {cases} cases");
}

#[test]
#[ignore]
fn fuzz_titles() {
    let (mut r, cases) = runner();
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    r.run(&("\\PC{0,300}", 0usize..8, 0.0f32..=1.0), |(title, k, threshold)| {
        let d = clf.suggest(&title, k, threshold).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(d.suggestions.len() <= k && d.suggestions.iter().all(|s| (0.0..=1.0).contains(&s.score)));
        Ok(())
    })
    .unwrap();
    eprintln!("fuzz_titles: {cases} cases");
}
