//! The model file: round trip, and every kind of damage rejected with its own error, never a panic.

mod common;

use common::*;
use proptest::prelude::*;
use shelfwise_model::format::{manifest_range, reseal, EncoderWeights, ModelFile};
use shelfwise_model::{Classifier, ModelError};

fn code(bytes: &[u8]) -> &'static str {
    match Classifier::from_bytes(bytes) {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

#[test]
fn round_trip_loads_and_classifies() {
    let bytes = tiny_bytes();
    let back = ModelFile::from_bytes(&bytes).unwrap();
    assert_eq!(back.manifest.labels, tiny_manifest().labels);
    assert_eq!(back.to_bytes().unwrap(), bytes, "writing is deterministic");
    let clf = Classifier::from_bytes(&bytes).unwrap();
    let d = clf.suggest("red running shoe", 3, 0.0).unwrap();
    assert_eq!(d.suggestions.len(), 3);
    let total: f32 = clf.probs(&["red running shoe"]).unwrap()[0].iter().sum();
    assert!((total - 1.0).abs() < 1e-5);
}

#[test]
fn truncated_files() {
    let bytes = tiny_bytes();
    for cut in [1, 4, 8, 11, 20, 27, 28, 100, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(code(&bytes[..cut]), "MODEL_TRUNCATED", "cut at {cut}");
    }
}

#[test]
fn not_a_model() {
    assert_eq!(code(b""), "MODEL_NOT_A_MODEL");
    assert_eq!(code(b"<!doctype html><html>404</html>"), "MODEL_NOT_A_MODEL");
    let mut b = tiny_bytes();
    b[0] = b'X';
    assert_eq!(code(&b), "MODEL_NOT_A_MODEL");
}

#[test]
fn wrong_version() {
    let mut b = tiny_bytes();
    b[8] = 5;
    match Classifier::from_bytes(&b) {
        Err(ModelError::UnsupportedVersion { found: 5, supported: 4 }) => {}
        other => panic!("{:?}", other.err()),
    }
    // Version 2 is a file with a lexical part or an adaptation: a plain manifest under it is refused, not misread.
    let mut b = tiny_bytes();
    b[8] = 2;
    shelfwise_model::format::reseal(&mut b);
    match Classifier::from_bytes(&b) {
        Err(ModelError::BadManifest(m)) => assert!(m.starts_with("lexical/adaptation:"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn flipped_bits_anywhere_after_the_header() {
    let b = tiny_bytes();
    for at in [30, b.len() / 3, b.len() / 2, b.len() - 40, b.len() - 1] {
        let mut c = b.clone();
        c[at] ^= 0x10;
        assert_eq!(code(&c), "MODEL_CORRUPT", "flip at {at}");
    }
    let mut c = b.clone();
    c.push(0);
    assert_eq!(code(&c), "MODEL_CORRUPT", "trailing byte");
}

#[test]
fn resealed_but_inconsistent_inside() {
    let b = tiny_bytes();
    // Payload changed but the manifest's payload hash not: caught by the payload hash.
    let mut c = b.clone();
    let at = manifest_range(&c).unwrap().end + 10;
    c[at] ^= 1;
    reseal(&mut c);
    assert_eq!(code(&c), "MODEL_PAYLOAD_HASH");
    // Manifest not JSON.
    let mut c = b.clone();
    let r = manifest_range(&c).unwrap();
    c[r.start] = b'!';
    reseal(&mut c);
    assert_eq!(code(&c), "MODEL_MANIFEST");
}

#[test]
fn missing_tensor_bad_tokenizer_and_part_files() {
    let mut f = tiny_file();
    let mut t = tiny_tensors(&f.manifest);
    t.remove("head.bias");
    f.tensors = shelfwise_model::classifier::tensors_to_bytes(&t).unwrap();
    assert_eq!(code(&f.to_bytes().unwrap()), "MODEL_TENSORS");

    let mut f = tiny_file();
    f.tokenizer = b"{not json".to_vec();
    assert_eq!(code(&f.to_bytes().unwrap()), "MODEL_TOKENIZER");

    let mut f = tiny_file();
    f.manifest.encoder_weights = EncoderWeights::Base { sha256: "ab".repeat(32) };
    assert_eq!(code(&f.to_bytes().unwrap()), "MODEL_INCOMPLETE");

    let mut f = tiny_file();
    f.manifest.labels.reverse();
    assert_eq!(code(&f.to_bytes().unwrap()), "MODEL_MANIFEST");
}

#[test]
fn bad_titles() {
    let clf = Classifier::from_bytes(&tiny_bytes()).unwrap();
    let d = clf.suggest("", 5, 0.5).unwrap();
    assert!(d.suggestions.is_empty() && d.abstained);
    assert!(clf.suggest(" \t\n ", 5, 0.5).unwrap().suggestions.is_empty());
    let long = "a".repeat(100_000);
    assert_eq!(clf.suggest(&long, 5, 0.5).unwrap_err().code(), "INPUT_TOO_LONG");
    for odd in ["👟🔥", "\u{0}\u{1}", "<script>alert(1)</script>", "\u{202e}rtl", "ǅ Ⅻ ﬁ", "\u{fffd}"] {
        assert_eq!(clf.suggest(odd, 2, 0.5).unwrap().suggestions.len(), 2, "{odd:?}");
    }
    // Exactly at the limit still works, and tokens are truncated to the model's maximum.
    let at_limit = "shoe ".repeat(shelfwise_model::MAX_TITLE_BYTES / 5);
    assert!(clf.suggest(&at_limit, 1, 0.0).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(Classifier::from_bytes(&bytes).is_err());
    }

    #[test]
    fn damaged_files_never_load(cut in 0usize..1000, at in 0usize..1_000_000, bit in 0u8..8) {
        let b = tiny_bytes();
        let mut c = b.clone();
        let at = at % c.len();
        c[at] ^= 1 << bit;
        prop_assert!(Classifier::from_bytes(&c).is_err());
        let cut = cut * b.len() / 1000;
        prop_assert!(Classifier::from_bytes(&b[..cut]).is_err());
    }

    #[test]
    fn any_title_gives_a_result_or_too_long(title in "\\PC{0,200}") {
        let clf = Classifier::from_bytes(&tiny_bytes()).unwrap();
        prop_assert!(clf.suggest(&title, 3, 0.5).is_ok());
    }
}

/// Digests computed outside (the browser's native SHA-256) stand in for the crate's own, with the
/// same verdicts: right ones load the same model, wrong ones fail as a damaged file does.
#[test]
fn digests_from_outside_give_the_same_verdicts() {
    use shelfwise_model::format::{payload_range, sha256_hex, Digests};
    let bytes = tiny_bytes();
    let range = payload_range(&bytes).unwrap();
    let body = &bytes[..bytes.len() - 32];
    let right = Digests { body: sha256_hex(&[body]).to_uppercase(), payload: Some(sha256_hex(&[&bytes[range.clone()]])) };
    let with = |d: &Digests| Classifier::from_bytes_with_digests(&bytes, d).map(|c| c.manifest().payload_sha256.clone()).map_err(|e| e.code());
    assert_eq!(with(&right), Ok(Classifier::from_bytes(&bytes).unwrap().manifest().payload_sha256.clone()));
    assert_eq!(with(&Digests { body: "00".repeat(32), ..right.clone() }), Err("MODEL_CORRUPT"));
    assert_eq!(with(&Digests { payload: Some("00".repeat(32)), ..right.clone() }), Err("MODEL_PAYLOAD_HASH"));
    // A cached copy: the body's digest alone, which still catches a flipped payload bit.
    let body_only = Digests { payload: None, ..right.clone() };
    assert_eq!(with(&body_only), with(&right));
    let mut flipped = bytes.clone();
    flipped[range.start + 7] ^= 4;
    let body_of = Digests { body: sha256_hex(&[&flipped[..flipped.len() - 32]]), payload: None };
    assert_eq!(Classifier::from_bytes_with_digests(&flipped, &body_of).err().map(|e| e.code()), Some("MODEL_CORRUPT"));
    // Damage is still caught before any digest is consulted.
    assert_eq!(Classifier::from_bytes_with_digests(&bytes[..100], &right).err().map(|e| e.code()), Some("MODEL_TRUNCATED"));
    assert_eq!(payload_range(&bytes[..20]), None);
    assert_eq!(payload_range(&bytes[..40]), None, "manifest longer than the file");
}
