//! A model with a lexical part: its scores are the head's and the SVM's stacked as the manifest
//! says (checked against a formula computed here, for length buckets and for a gate), it is
//! written as format version 2 (3 with a stack gate) while a file without one stays version 1,
//! and every lexical field or tensor that is wrong is a typed error naming it.

mod common;

use common::{tiny_bytes, tiny_manifest, tiny_tensors};
use shelfwise_core::baseline::{LinearSvm, SparseRow, TfidfVectorizer, C};
use shelfwise_core::lexical::{Lexical, StackBucket, StackGate};
use shelfwise_model::classifier::tensors_to_bytes;
use shelfwise_model::format::{reseal, LexicalConfig, ModelFile, LEXICAL_ANALYZER};
use shelfwise_model::{Classifier, ModelError};

fn serial(f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize) -> Vec<Vec<f32>> {
    (0..n).map(f).collect()
}

/// The tiny model's labels: 0 Home > Kitchen, 1 Shoes > Kids, 2 Shoes > Running.
fn lexical() -> Lexical {
    let titles = ["steel kettle 1.5 l", "electric kettle", "kids school shoes", "velcro kids sandals", "running shoe men", "trail running shoes"];
    let v = TfidfVectorizer::fit(&titles);
    let rows: Vec<SparseRow> = titles.iter().map(|t| v.transform(t)).collect();
    let svm = LinearSvm::train(&rows, &[0, 0, 1, 1, 2, 2], v.n_features(), 3, C, serial);
    shelfwise_model::lexical::as_stored(&Lexical::from_fitted(&v, &svm, usize::MAX).0).unwrap()
}

const STACK: [StackBucket; 2] = [StackBucket { up_to_words: 2, head: 1.0, lexical: 0.5 }, StackBucket { up_to_words: u32::MAX, head: 0.25, lexical: 3.0 }];

fn lexical_file(lex: &Lexical) -> ModelFile {
    let mut m = tiny_manifest();
    let mut t = tiny_tensors(&m);
    t.extend(shelfwise_model::lexical::to_tensors(lex).unwrap());
    m.lexical =
        Some(LexicalConfig { analyzer: LEXICAL_ANALYZER.into(), features: lex.n_features(), weights: lex.n_weights(), stack: STACK.to_vec(), gate: None });
    ModelFile { manifest: m, tensors: tensors_to_bytes(&t).unwrap(), tokenizer: common::base_tokenizer() }
}

/// The reference log-softmax of a head's logits, in f64 (independent of the crate's f32 one).
fn log_softmax_f64(head: &[f32]) -> Vec<f64> {
    let max = head.iter().copied().fold(f32::MIN, f32::max) as f64;
    let lse = max + head.iter().map(|&h| (h as f64 - max).exp()).sum::<f64>().ln();
    head.iter().map(|&h| h as f64 - lse).collect()
}

#[test]
fn logits_are_the_head_and_the_svm_stacked_per_length_bucket() {
    let lex = lexical();
    let bytes = lexical_file(&lex).to_bytes().unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2, "a lexical part is format version 2");
    assert_eq!(u32::from_le_bytes(tiny_bytes()[8..12].try_into().unwrap()), 1, "a file without one stays version 1");
    let (plain, stacked) = (Classifier::from_bytes(&tiny_bytes()).unwrap(), Classifier::from_bytes(&bytes).unwrap());
    for title in ["kettle", "kids running shoes for school", "Steel KETTLE 2 l", "zzz"] {
        let head = &plain.logits(&[title]).unwrap()[0];
        let svm = lex.scores(title);
        // log_softmax in f64, then the bucket's weights (by whitespace words).
        let lp = log_softmax_f64(head);
        let b = if title.split_whitespace().count() <= 2 { STACK[0] } else { STACK[1] };
        let want: Vec<f64> = lp.iter().zip(&svm).map(|(&l, &s)| b.head as f64 * l + b.lexical as f64 * s as f64).collect();
        let got = &stacked.logits(&[title]).unwrap()[0];
        for (w, g) in want.iter().zip(got) {
            assert!((w - *g as f64).abs() < 1e-5, "{title}: {want:?} vs {got:?}");
        }
        // The GPU path's entry point (an embedding computed elsewhere) gives the same decision.
        let e = stacked.embedding(title).unwrap();
        let (a, c) = (stacked.suggest(title, 3, 0.0).unwrap(), stacked.suggest_with_embedding(title, &e, 3, 0.0).unwrap());
        assert_eq!(format!("{a:?}"), format!("{c:?}"));
    }
    // With a strong SVM weight, the kettle is the kitchen's on a long title.
    let top = &stacked.suggest("a steel kettle for the kitchen", 1, 0.0).unwrap().suggestions[0];
    assert_eq!(top.path.last().map(|p| p.name.as_str()), Some("Kitchen"));
}

/// A gate whose head weight grows with the head's margin and whose SVM weight is 2 when the
/// parts agree, 0.5 when not (features standardised by mean 0 and scale 1, except the margin's
/// scale 2).
fn gate() -> StackGate {
    StackGate {
        mean: vec![0.0; 7],
        scale: vec![1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0],
        head: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        lexical: vec![0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5],
    }
}

#[test]
fn logits_are_the_head_and_the_svm_stacked_by_the_gate() {
    let lex = lexical();
    let mut file = lexical_file(&lex);
    file.manifest.lexical.as_mut().unwrap().gate = Some(gate());
    let bytes = file.to_bytes().unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 3, "a stack gate is format version 3");
    let (plain, stacked) = (Classifier::from_bytes(&tiny_bytes()).unwrap(), Classifier::from_bytes(&bytes).unwrap());
    for title in ["kettle", "kids running shoes for school", "Steel KETTLE 2 l", "zzz"] {
        let head = &plain.logits(&[title]).unwrap()[0];
        let svm = lex.scores(title);
        let lp = log_softmax_f64(head);
        let top2 = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(|a, b| b.total_cmp(a));
            (s[0], s[1])
        };
        let argmax = |v: &[f64]| (0..v.len()).fold(0, |m, k| if v[k] > v[m] { k } else { m });
        let sv: Vec<f64> = svm.iter().map(|&s| s as f64).collect();
        let (h1, h2) = top2(&lp);
        let a = 1.0 + (h1 - h2) / 2.0;
        let b = if argmax(&lp) == argmax(&sv) { 2.0 } else { 0.5 };
        let want: Vec<f64> = lp.iter().zip(&sv).map(|(h, s)| a * h + b * s).collect();
        let got = &stacked.logits(&[title]).unwrap()[0];
        for (w, g) in want.iter().zip(got) {
            assert!((w - *g as f64).abs() < 1e-4, "{title}: {want:?} vs {got:?}");
        }
    }
    // A version 2 header on it is refused, not scored by the buckets.
    let mut b2 = bytes.clone();
    b2[8] = 2;
    reseal(&mut b2);
    let e = code_of(Classifier::from_bytes(&b2));
    assert!(e.starts_with("MODEL_MANIFEST") && e.contains("gate"), "{e}");
    // Malformed gates are typed errors naming the field.
    type Change = Box<dyn Fn(&mut StackGate)>;
    let cases: Vec<Change> = vec![
        Box::new(|g| g.mean.pop().map(drop).unwrap_or(())),
        Box::new(|g| g.scale[2] = 0.0),
        Box::new(|g| g.head[3] = f32::NAN),
        Box::new(|g| g.lexical[0] = 1e9),
    ];
    for change in cases {
        let mut f = lexical_file(&lex);
        let mut g = gate();
        change(&mut g);
        f.manifest.lexical.as_mut().unwrap().gate = Some(g);
        let e = code_of(Classifier::from_bytes(&f.to_bytes().unwrap()));
        assert!(e.starts_with("MODEL_MANIFEST") && e.contains("lexical.gate"), "{e}");
    }
}

fn code_of(r: Result<Classifier, ModelError>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(e) => format!("{}: {e}", e.code()),
    }
}

#[test]
fn a_version_1_header_on_a_lexical_file_is_refused() {
    let mut bytes = lexical_file(&lexical()).to_bytes().unwrap();
    bytes[8] = 1;
    reseal(&mut bytes);
    let e = code_of(Classifier::from_bytes(&bytes));
    assert!(e.starts_with("MODEL_MANIFEST") && e.contains("lexical"), "{e}");
}

#[test]
fn wrong_lexical_fields_and_tensors_are_typed_errors_naming_them() {
    let lex = lexical();
    let load = |f: &dyn Fn(&mut ModelFile)| {
        let mut file = lexical_file(&lex);
        f(&mut file);
        code_of(Classifier::from_bytes(&file.to_bytes().unwrap()))
    };
    type Change = Box<dyn Fn(&mut LexicalConfig)>;
    let manifest_cases: Vec<(&str, Change)> = vec![
        ("lexical.features", Box::new(|l| l.features += 1)),
        ("lexical.weights", Box::new(|l| l.weights = 1 << 30)),
        ("lexical.analyzer", Box::new(|l| l.analyzer = "word-1".into())),
        ("lexical.stack", Box::new(|l| l.stack.clear())),
        ("lexical.stack", Box::new(|l| l.stack[1].lexical = 1e9)),
        ("lexical.stack.up_to_words", Box::new(|l| l.stack[1].up_to_words = 2)),
        ("lexical.stack.up_to_words", Box::new(|l| l.stack[0].up_to_words = 0)),
    ];
    for (field, change) in manifest_cases {
        let e = load(&|f| change(f.manifest.lexical.as_mut().unwrap()));
        assert!(e.starts_with("MODEL_MANIFEST") && e.contains(field), "{field}: {e}");
    }
    let e = load(&|f| f.manifest.lexical = None);
    assert!(e.starts_with("MODEL_MANIFEST") && e.contains("lexical"), "tensors without the field: {e}");
    // Tensors: unsorted hashes, a class id out of range, a missing tensor, a wrong type.
    let with_tensor = |name: &'static str, change: &dyn Fn(&candle_core::Tensor) -> Option<candle_core::Tensor>| {
        load(&|f| {
            let mut t = shelfwise_model::classifier::load_tensors(&f.tensors).unwrap();
            match change(&t[name]) {
                Some(x) => t.insert(name.to_string(), x),
                None => t.remove(name),
            };
            f.tensors = tensors_to_bytes(&t).unwrap();
        })
    };
    use shelfwise_model::lexical::{CLASSES, CODES, HASHES, SCALES};
    let e = with_tensor(HASHES, &|x| {
        let mut v = x.to_vec1::<i64>().unwrap();
        v.swap(0, 1);
        Some(candle_core::Tensor::new(v, &candle_core::Device::Cpu).unwrap())
    });
    assert!(e.starts_with("MODEL_MANIFEST") && e.contains("lexical.features") && e.contains("sorted"), "{e}");
    let e = with_tensor(CLASSES, &|x| Some(x.ones_like().unwrap().affine(0.0, 3.0).unwrap()));
    assert!(e.starts_with("MODEL_TENSORS") && e.contains("class id"), "{e}");
    let e = with_tensor(CODES, &|_| None);
    assert!(e.starts_with("MODEL_MANIFEST") || e.starts_with("MODEL_TENSORS"), "{e}");
    assert!(e.contains(CODES), "{e}");
    let e = with_tensor(SCALES, &|x| Some(x.to_dtype(candle_core::DType::F16).unwrap()));
    assert!(e.starts_with("MODEL_TENSORS") && e.contains(SCALES), "{e}");
    assert_eq!(load(&|_| {}), "OK");
}
