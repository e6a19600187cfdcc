//! Shared by the fuzz targets: the tiny model of shelfwise-model's tests (its tokenizer taken from
//! the shipped model, so that no download is needed), the shipped model, and the verdict on a load.
use std::sync::OnceLock;

use shelfwise_model::classifier::tensors_to_bytes;
use shelfwise_model::format::ModelFile;

#[path = "../../crates/shelfwise-model/tests/common/mod.rs"]
mod common;

pub use common::mutate::{answers, with_manifest_bytes, MANIFEST_CODES};

/// The shipped (quantized) model.
pub const SHIPPED: &[u8] = include_bytes!("../../models/flipkart-minilm/model.shelfwise");

/// The tests' tiny model (hidden 8, one layer, 3 labels): loads in milliseconds.
pub fn tiny() -> &'static ModelFile {
    static TINY: OnceLock<ModelFile> = OnceLock::new();
    TINY.get_or_init(|| {
        let tokenizer = ModelFile::from_bytes(SHIPPED).expect("the shipped model loads").tokenizer;
        let manifest = common::tiny_manifest();
        let tensors = tensors_to_bytes(&common::tiny_tensors(&manifest)).expect("tiny tensors");
        let file = ModelFile { manifest, tensors, tokenizer };
        ModelFile::from_bytes(&file.to_bytes().expect("serialisable")).expect("the tiny model loads")
    })
}

pub fn tiny_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| tiny().to_bytes().expect("serialisable"))
}

/// A finding (a panic, which libFuzzer reports with the input) unless `got` is a typed model
/// error or answers whose scores are probabilities.
pub fn check(got: Result<Vec<(String, f32)>, &'static str>, codes: &[&str]) {
    match got {
        Err(code) => assert!(codes.contains(&code), "unexpected error code {code}"),
        Ok(a) => assert!(a.iter().all(|(_, s)| (0.0..=1.0).contains(s)), "scores outside [0, 1]: {a:?}"),
    }
}
