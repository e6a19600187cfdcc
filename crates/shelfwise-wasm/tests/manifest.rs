//! The manifest mutations of shelfwise-model's tests/manifest.rs, in wasm (Node, where a panic
//! is an abort that kills the worker): every field of the shipped model's manifest set to 0, -1,
//! a huge number, the wrong type, or removed, in a resealed file, gets a typed error or the same
//! answers as the untouched file.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::wasm_bindgen_test;

#[path = "../../shelfwise-model/tests/common/mutate.rs"]
mod mutate;

const SHIPPED: &[u8] = include_bytes!("../../../models/flipkart-minilm/model.shelfwise");

#[wasm_bindgen_test]
fn every_field_of_the_shipped_model_gets_a_typed_error_or_the_same_answers() {
    let some: Vec<_> = mutate::values().into_iter().filter(|(n, _)| ["0", "-1", "u64::MAX", "\"x\"", "removed"].contains(n)).collect();
    let (cases, failures) = mutate::every_field(SHIPPED, &some);
    assert!(cases > 200, "{cases} cases");
    assert!(failures.is_empty(), "{} of {cases} mutations:\n{}", failures.len(), failures.join("\n"));
}
