//! `Classifier::suggest_with_embedding` (the head on an embedding computed by another encoder, as
//! the browser's WebGPU path does) equals `suggest` when given the CPU encoder's embedding
//! (`Classifier::embedding`, the reference the browser checks the GPU's against; that embedding
//! itself is held to an independent numpy forward in tests/quant_reference.rs).

mod common;

use common::*;
use shelfwise_model::classifier::load_tensors;
use shelfwise_model::format::ModelFile;
use shelfwise_model::{Classifier, TitleEncoder};

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

/// An encoder whose answer is another's with each row reversed: the wrong numbers a miscomputing
/// device would give.
struct Reversed(Box<dyn TitleEncoder>);

impl TitleEncoder for Reversed {
    fn embed(&self, encodings: &[shelfwise_model::tokenize::Encoding]) -> shelfwise_model::Result<Vec<f32>> {
        let h = self.0.hidden();
        Ok(self.0.embed(encodings)?.chunks(h).flat_map(|r| r.iter().rev().copied()).collect())
    }
    fn hidden(&self) -> usize {
        self.0.hidden()
    }
    fn name(&self) -> String {
        "reversed".into()
    }
}

/// `use_encoder` swaps in another encoder of the same weights only once it passes the probe: a
/// second CPU encoder of the shipped file passes (cosine 1) and gives `suggest` the same answers;
/// one that computes other numbers is refused with GPU_ERROR, one of another width with INTERNAL,
/// and the classifier keeps answering on its own encoder.
#[test]
fn use_encoder_takes_only_an_encoder_that_passes_the_probe() {
    let bytes = shipped_model_bytes();
    let file = ModelFile::from_bytes(&bytes).unwrap();
    let cpu = || shelfwise_model::encoder::from_tensors(&file.manifest.encoder, &load_tensors(&file.tensors).unwrap()).unwrap();
    let title = "Nike Air Zoom Pegasus 39 men's running shoe";
    let mut clf = Classifier::from_bytes(&bytes).unwrap();
    let before = clf.suggest(title, 5, 0.5).unwrap();

    let err = clf.use_encoder(Box::new(Reversed(cpu()))).unwrap_err();
    assert_eq!(err.code(), "GPU_ERROR", "{err}");
    assert!(err.to_string().contains("disagrees with the CPU encoder's (cosine "), "{err}");
    struct Narrow;
    impl TitleEncoder for Narrow {
        fn embed(&self, e: &[shelfwise_model::tokenize::Encoding]) -> shelfwise_model::Result<Vec<f32>> {
            Ok(vec![1.0; 8 * e.len()])
        }
        fn hidden(&self) -> usize {
            8
        }
        fn name(&self) -> String {
            "narrow".into()
        }
    }
    assert_eq!(clf.use_encoder(Box::new(Narrow)).unwrap_err().code(), "INTERNAL");
    assert_eq!(clf.suggest(title, 5, 0.5).unwrap(), before);

    let cos = clf.use_encoder(cpu()).unwrap();
    assert!((cos - 1.0).abs() < 1e-6, "{cos}");
    assert_eq!(clf.suggest(title, 5, 0.5).unwrap(), before);
}
