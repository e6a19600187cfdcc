//! Manifest validation: a resealed file (valid checksums) whose manifest says something its
//! tensors do not, or something out of range, gets a typed error naming the field, or loads and
//! answers exactly as before; never a panic, a hang or an unbounded allocation.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::mutate::*;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use shelfwise_model::Classifier;

/// Bounded memory: an allocation over 1 GiB, or more than 4 GiB live, fails (the test process
/// then aborts) instead of being granted, whatever a manifest asks for.
struct Capped;
static LIVE: AtomicUsize = AtomicUsize::new(0);
const MAX_ONE: usize = 1 << 30;
const MAX_LIVE: usize = 4 << 30;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ONE || LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size() > MAX_LIVE {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

fn set(bytes: &[u8], path: &str, v: Value) -> Vec<u8> {
    let m = manifest_json(bytes);
    let p: Path = path.split('.').map(|k| Key::Field(k.to_string())).collect();
    with_manifest(bytes, &mutated(&m, &p, Some(&v)))
}

/// The error of loading `bytes`, as code and message.
fn load_error(bytes: &[u8]) -> (String, String) {
    match Classifier::from_bytes(bytes) {
        Ok(_) => ("OK".into(), String::new()),
        Err(e) => (e.code().into(), e.to_string()),
    }
}

/// The defects the issue names, one by one: each loaded (and panicked or answered garbage)
/// before validation.
#[test]
fn named_defects_get_model_manifest_naming_the_field() {
    let b = tiny_bytes();
    for (field, v) in [
        ("head.ngram.char_min", json!(0)),
        ("encoder.layers", json!(0)),
        ("encoder.layer_norm_eps", json!(-1.0)),
        ("head.embed_scale", json!(-1.0)),
        ("head.embed_scale", json!(0.0)),
        ("head.temperature", json!(1e30)),
        ("head.buckets", json!(63)),
        ("head.ngram.char_max", json!(u64::MAX)),
        ("head.ngram.word_max", json!(u64::MAX)),
        ("head.ngram.max_features", json!(0)),
        ("encoder.heads", json!(3)),
        ("encoder.vocab_size", json!(30521)),
        ("encoder.max_positions", json!(65)),
        ("encoder.max_tokens", json!(65)),
        ("encoder.intermediate", json!(u64::MAX)),
        ("encoder.hidden", json!(16)),
        ("labels", json!([])),
    ] {
        let (code, msg) = load_error(&set(&b, field, v.clone()));
        assert_eq!(code, "MODEL_MANIFEST", "{field} = {v}: {msg}");
        let named = field.rsplit('.').next().unwrap();
        assert!(msg.contains(named), "{field} = {v}: the message does not name the field: {msg}");
    }
    // Wrong types and removed fields name the field too (serde's path).
    let (code, msg) = load_error(&set(&b, "encoder.layers", json!("6")));
    assert_eq!((code.as_str(), msg.contains("encoder.layers")), ("MODEL_MANIFEST", true), "{msg}");
    let mut m = manifest_json(&b);
    m["head"].as_object_mut().unwrap().remove("temperature");
    let (code, msg) = load_error(&with_manifest(&b, &m));
    assert_eq!((code.as_str(), msg.contains("temperature")), ("MODEL_MANIFEST", true), "{msg}");
}

/// The shipped model and the tiny one still load: validation accepts real files.
#[test]
fn real_files_pass() {
    assert!(answers(&tiny_bytes()).is_ok());
    assert!(answers(&shipped_model_bytes()).is_ok());
}

#[test]
fn every_field_of_the_tiny_model_set_to_anything_gets_a_typed_error_or_the_same_answers() {
    let (cases, failures) = every_field(&tiny_bytes(), &values());
    assert!(cases > 200, "{cases} cases");
    assert!(failures.is_empty(), "{} of {cases} mutations:\n{}", failures.len(), failures.join("\n"));
}

/// The same on the shipped (quantized, pruned vocabulary) model, with the mutations.
#[test]
fn every_field_of_the_shipped_model_too() {
    let some: Vec<_> = values().into_iter().filter(|(n, _)| ["0", "-1", "u64::MAX", "1e300", "\"x\"", "removed"].contains(n)).collect();
    let (cases, failures) = every_field(&shipped_model_bytes(), &some);
    assert!(failures.is_empty(), "{} of {cases} mutations:\n{}", failures.len(), failures.join("\n"));
}

/// Up to three random fields of the manifest changed at once.
fn check_random_mutation(bytes: &[u8], picks: &[(usize, Option<Value>)]) -> Result<(), TestCaseError> {
    let m = manifest_json(bytes);
    let paths = paths(&m);
    let mut edited = m.clone();
    for (i, v) in picks {
        edited = mutated(&edited, &paths[i % paths.len()], v.as_ref());
    }
    // Anything may happen but a panic (which fails the test here), an untyped error or scores
    // that are not probabilities.
    match answers(&with_manifest(bytes, &edited)) {
        Err(code) => prop_assert!(MANIFEST_CODES.contains(&code), "{code}"),
        Ok(a) => prop_assert!(a.iter().all(|(_, s)| (0.0..=1.0).contains(s)), "{a:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn random_manifest_mutations_never_panic(picks in proptest::collection::vec((any::<usize>(), any_value()), 1..4)) {
        check_random_mutation(&tiny_bytes(), &picks)?;
    }

    /// Not JSON at all, or JSON of any shape, in a resealed file.
    #[test]
    fn random_manifest_bytes_never_panic(m in proptest::collection::vec(any::<u8>(), 0..256)) {
        let got = answers(&with_manifest_bytes(&tiny_bytes(), &m));
        prop_assert!(matches!(got, Err(c) if MANIFEST_CODES.contains(&c)));
    }
}
