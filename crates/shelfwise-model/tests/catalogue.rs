//! `Classifier::classify_catalogue`, what the CLI's `classify --batch` and Python's `classify`
//! both run: the golden decisions of the shipped model (tests/golden/flipkart-minilm.json) title
//! by title, over several chunks, with the over-long titles answered `INPUT_TOO_LONG` in their
//! places and blank ones with no suggestions; the same bits on any number of threads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use shelfwise_core::Decision;
use shelfwise_model::catalogue::{Workers, CHUNK};
use shelfwise_model::{Classifier, MAX_TITLE_BYTES};

#[test]
fn catalogue_gives_golden_decisions_in_place_on_any_threads() {
    let g = golden();
    let clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    let long = "x".repeat(MAX_TITLE_BYTES + 1);
    let empty = Decision::empty();
    // The golden titles three times over (several chunks), with blank and over-long ones between.
    let mut titles: Vec<&str> = Vec::new();
    let mut want: Vec<Option<&Decision>> = Vec::new();
    for round in 0..3 {
        for (i, it) in g.items.iter().enumerate() {
            titles.push(&it.title);
            want.push(Some(&it.decision));
            if (i + round) % 17 == 5 {
                titles.push(if round == 1 { "   " } else { "" });
                want.push(Some(&empty));
            }
            if (i + round) % 23 == 2 {
                titles.push(&long);
                want.push(None);
            }
        }
    }
    assert!(titles.len() > 3 * CHUNK);
    let done = AtomicUsize::new(0);
    let pool = clf.classify_catalogue(&titles, g.k, g.threshold, Workers::Pool, &|n| _ = done.fetch_add(n, Ordering::Relaxed)).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), titles.len(), "every chunk reported");
    assert_eq!(pool.len(), titles.len());
    for ((t, got), want) in titles.iter().zip(&pool).zip(&want) {
        match (got, want) {
            (Err(e), None) => assert_eq!(e.code(), "INPUT_TOO_LONG"),
            (Ok(d), Some(w)) => {
                let ids = |d: &Decision| d.suggestions.iter().map(|s| s.id).collect::<Vec<_>>();
                assert_eq!(ids(d), ids(w), "{t:?}");
                assert_eq!((d.abstained, d.back_off.as_ref().map(|b| &b.path)), (w.abstained, w.back_off.as_ref().map(|b| &b.path)), "{t:?}");
                for (a, b) in d.suggestions.iter().zip(&w.suggestions) {
                    assert!((a.score - b.score).abs() <= 1e-4, "{t:?}: {} vs {}", a.score, b.score);
                }
            }
            (got, want) => panic!("{t:?}: got {:?}, want {want:?}", got.as_ref().map_err(|e| e.code())),
        }
    }
    // The same chunks on one thread or two: the same bits.
    let bits = |r: &[shelfwise_model::Result<Decision>]| {
        r.iter().map(|d| d.as_ref().map(|d| serde_json::to_string(d).unwrap()).map_err(|e| e.code())).collect::<Vec<_>>()
    };
    for n in [1, 2] {
        let threads = clf.classify_catalogue(&titles, g.k, g.threshold, Workers::Threads(n), &|_| {}).unwrap();
        assert_eq!(bits(&threads), bits(&pool), "{n} threads");
    }
    // Serial chunks of another size: the same decisions (scores up to the head's summation order).
    let serial = clf.classify_catalogue(&titles, g.k, g.threshold, Workers::Serial(7), &|_| {}).unwrap();
    for (a, b) in serial.iter().zip(&pool) {
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a.suggestions.iter().map(|s| s.id).collect::<Vec<_>>(), b.suggestions.iter().map(|s| s.id).collect::<Vec<_>>()),
            (Err(a), Err(b)) => assert_eq!(a.code(), b.code()),
            _ => panic!("serial and pooled disagree on a title's error"),
        }
    }
    assert!(clf.classify_catalogue(&[], 5, 0.5, Workers::Pool, &|_| {}).unwrap().is_empty());
    assert_eq!(clf.classify_catalogue(&["mug"], 5, 0.5, Workers::Threads(0), &|_| {}).unwrap_err().code(), "INTERNAL");
}
