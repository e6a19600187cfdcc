//! The adaptation layer (issue #19): component scores on hand-built embeddings, the file it
//! writes, its rules for the shop's input, and its manifest checks.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use shelfwise_core::LabelSpace;
use shelfwise_model::adapt::title_key;
use shelfwise_model::adapter::{self, Adapter, Feature};
use shelfwise_model::format::{Adaptation, ModelFile};
use shelfwise_model::progress::Silent;
use shelfwise_model::shop::adapt;
use shelfwise_model::train::examples::Example;
use shelfwise_model::{Classifier, ModelError};

const H: usize = 4;
const LABELS: [&str; 3] = ["A > x", "B > y", "C > z"];

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// z-scores of hand-computed raw values (population sd), written out independently of the crate.
fn z(raw: &[f64]) -> Vec<f64> {
    let n = raw.len() as f64;
    let mean = raw.iter().sum::<f64>() / n;
    let sd = (raw.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    raw.iter().map(|x| (x - mean) / sd).collect()
}

/// An adapter over 3 labels whose path and leaf embeddings are the unit axes e0, e1, e2, with
/// `examples` (unit embedding, label) and one weight per feature of `weights`.
fn adapter(examples: &[([f32; H], usize)], weights: &[(Feature, f32)], head_labels: &[&str]) -> Adapter {
    let mut tensors = HashMap::new();
    let axes: Vec<f32> = (0..3).flat_map(|i| (0..H).map(move |j| if i == j { 1.0 } else { 0.0 })).collect();
    tensors.insert(adapter::PATH_EMB.to_string(), t(axes.clone(), &[3, H]).to_dtype(DType::F16).unwrap());
    tensors.insert(adapter::LEAF_EMB.to_string(), t(axes, &[3, H]).to_dtype(DType::F16).unwrap());
    tensors.insert(adapter::WEIGHTS.to_string(), t(weights.iter().map(|w| w.1).collect(), &[weights.len()]));
    let n = examples.len();
    if n > 0 {
        let unit: Vec<f32> = examples.iter().flat_map(|e| e.0).collect();
        let (codes, scales) = adapter::quantize_rows(&unit, H);
        tensors.insert(adapter::EXAMPLE_CODES.to_string(), Tensor::from_vec(codes, (n, H), &Device::Cpu).unwrap());
        tensors.insert(adapter::EXAMPLE_SCALE.to_string(), t(scales, &[n]));
        tensors
            .insert(adapter::EXAMPLE_LABEL.to_string(), Tensor::from_vec(examples.iter().map(|e| e.1 as u32).collect::<Vec<u32>>(), n, &Device::Cpu).unwrap());
        let titles: Vec<String> = (0..n).map(|i| format!("title{i}")).collect();
        let mut offsets = vec![0u32];
        titles.iter().for_each(|s| offsets.push(offsets.last().unwrap() + s.len() as u32));
        let text: Vec<u8> = titles.concat().into_bytes();
        let len = text.len();
        tensors.insert(adapter::EXAMPLE_OFFSET.to_string(), Tensor::from_vec(offsets, n + 1, &Device::Cpu).unwrap());
        tensors.insert(adapter::EXAMPLE_TEXT.to_string(), Tensor::from_vec(text, len, &Device::Cpu).unwrap());
    }
    let a = Adaptation {
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        features: weights.iter().map(|w| w.0.name().to_string()).collect(),
        examples: n,
        max_examples: 10,
        fit: serde_json::Value::Null,
    };
    Adapter::from_tensors(&a, &tensors, H, &LabelSpace::from_raw_paths(head_labels.iter().copied()).unwrap()).unwrap()
}

fn close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 2e-3, "{got:?} vs {want:?}");
    }
}

#[test]
fn names_and_head_on_orthogonal_embeddings() {
    // Title embedding 2·e0 + e1 (unit: (2, 1)/√5): cos to the axes 2/√5, 1/√5, 0.
    let a = adapter(&[], &[(Feature::NamePath, 1.0), (Feature::Head, 2.0)], &["A > x", "Q > q"]);
    let pooled = t(vec![2.0, 1.0, 0.0, 0.0], &[1, H]);
    let s5 = 5f64.sqrt();
    // Head logits (ln 0.8, ln 0.2) at temperature 1: label "A > x" gets ln 0.8; "B > y" and
    // "C > z" are not head labels and get the lowest present value, ln 0.8 too: no spread.
    let logits = a.logits(&["t"], &pooled, &[vec![0.8f32.ln(), 0.2f32.ln()]], 1.0).unwrap();
    close(&logits[0], &z(&[2.0 / s5, 1.0 / s5, 0.0]));
    // With two head labels mapped, the head tells them apart: raw (ln .8, ln .2, ln .2 filled).
    let a = adapter(&[], &[(Feature::NamePath, 1.0), (Feature::Head, 2.0)], &["A > x", "B > y"]);
    let logits = a.logits(&["t"], &pooled, &[vec![0.8f32.ln(), 0.2f32.ln()]], 1.0).unwrap();
    let (zn, zh) = (z(&[2.0 / s5, 1.0 / s5, 0.0]), z(&[0.8f64.ln(), 0.2f64.ln(), 0.2f64.ln()]));
    close(&logits[0], &(0..3).map(|j| zn[j] + 2.0 * zh[j]).collect::<Vec<_>>());
}

#[test]
fn example_centroids_and_neighbours() {
    let r = std::f32::consts::FRAC_1_SQRT_2;
    // Label 1 ("B > y"): e1 and (e1 + e3)/√2; label 0: e0; label 2: none.
    let ex = [([0.0, 1.0, 0.0, 0.0], 1), ([0.0, r, 0.0, r], 1), ([1.0, 0.0, 0.0, 0.0], 0)];
    let a = adapter(&ex, &[(Feature::EmbCentroid, 1.0), (Feature::EmbNearest, 1.0)], &["Q > q"]);
    let title = t(vec![0.0, 1.0, 0.0, 0.0], &[1, H]);
    let zs = a.features_z(&["t"], &title, &[vec![0.0]], 1.0).unwrap();
    // Centroid of label 1: e1 + (e1+e3)/√2 = (0, 1.7071, 0, 0.7071), |·| = 1.8478: cos 0.92388.
    // Label 0: cos(e1, e0) = 0; label 2 has no example: the lowest present value, 0.
    let c = (1.0 + 0.5f64.sqrt()) / ((1.0 + 0.5f64.sqrt()).powi(2) + 0.5).sqrt();
    close(&zs[0][0], &z(&[0.0, c, 0.0]));
    // Nearest: label 1's best is e1 itself (1).
    close(&zs[0][1], &z(&[0.0, 1.0, 0.0]));
    // A title off the axes: label 1's nearest is e1 (0.8), above label 0's 0.6; label 2 filled 0.6.
    let title = t(vec![0.6, 0.8, 0.0, 0.0], &[1, H]);
    let zs = a.features_z(&["t"], &title, &[vec![0.0]], 1.0).unwrap();
    close(&zs[0][1], &z(&[0.6, 0.8, 0.6]));
}

#[test]
fn name_chars_is_the_titles_character_match_with_leaf_and_path() {
    // Normalised, "B-y!" is "by" and "b y" is the path "B > y" exactly (its n-grams "b ", " y",
    // "b y": cosine 1); one-letter leaves have no 2-gram, and the other paths share none: raw
    // (0, 1, 0). A title of no shared n-gram is 0 everywhere: no spread, z 0.
    let a = adapter(&[], &[(Feature::NameChars, 1.0)], &["Q > q"]);
    let pooled = t(vec![1.0, 0.0, 0.0, 0.0], &[1, H]);
    let zs = a.features_z(&["b y"], &pooled, &[vec![0.0]], 1.0).unwrap();
    close(&zs[0][0], &z(&[0.0, 1.0, 0.0]));
    let zs = a.features_z(&["qq"], &pooled, &[vec![0.0]], 1.0).unwrap();
    close(&zs[0][0], &[0.0, 0.0, 0.0]);
}

#[test]
fn weights_of_a_file_from_before_name_chars_give_it_zero() {
    let old = &Feature::ALL[..8];
    let w: Vec<f32> = (1..=8).map(|i| i as f32).collect();
    assert_eq!(Feature::weights_of_all(old, &w), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.0]);
    assert_eq!(Feature::weights_of_all(&[Feature::NameChars, Feature::Head], &[0.5, 2.0]), vec![0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]);
    // Such a file is still written as version 2: an older reader loads it.
    let mut m = ModelFile::from_bytes(&adapted_bytes()).unwrap().manifest;
    assert_eq!(m.format_version(), 4);
    m.adaptation.as_mut().unwrap().features.retain(|f| f != "name_chars");
    assert_eq!(m.format_version(), 2);
}

fn ex(title: &str, path: &str) -> Example {
    Example { title: title.into(), path: path.split(" > ").map(String::from).collect() }
}

fn paths(v: &[&str]) -> Vec<Vec<String>> {
    v.iter().map(|p| p.split(" > ").map(String::from).collect()).collect()
}

#[test]
fn an_adapted_file_is_version_4_and_classifies_over_the_shops_labels() {
    let tax = paths(&["Phones", "Phones > Smartphones", "Phones > Cases", "Garden > Hoses"]);
    let examples = vec![
        ex("iphone 15 pro 128gb", "Phones > Smartphones"),
        ex("galaxy s24 ultra", "Phones > Smartphones"),
        ex("silicone case for iphone", "Phones > Cases"),
        ex("leather case galaxy", "Phones > Cases"),
        ex("garden hose 20 m", "Garden > Hoses"),
        // Not in the taxonomy: added.
        ex("rose seeds", "Garden > Seeds"),
        // Same title as the first, another path: the latest wins.
        ex("iPhone 15  Pro 128GB", "Phones > Cases"),
    ];
    let (file, report) = adapt(tiny_file(), Some(&tax), examples, 100, &Silent).unwrap();
    assert_eq!((report.labels, report.added_labels, report.contradictions, report.remembered), (4, 1, 1, 6));
    let bytes = file.to_bytes().unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 4, "its components include name_chars");
    let clf = Classifier::from_bytes(&bytes).unwrap();
    let labels: Vec<String> = clf.labels().label_strings();
    // Leaves only ("Phones" has children), sorted, plus the added path.
    assert_eq!(labels, ["Garden > Hoses", "Garden > Seeds", "Phones > Cases", "Phones > Smartphones"]);
    assert_eq!(clf.head_labels().len(), 3, "the head keeps the model's own labels");
    let d = clf.suggest("galaxy s24 ultra", 4, 0.0).unwrap();
    assert_eq!(d.suggestions.len(), 4);
    let total: f32 = d.suggestions.iter().map(|s| s.score).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities over the shop's labels: {total}");
    let m = clf.adapter().unwrap().memory();
    let at = m.titles.iter().position(|t| title_key(t) == title_key("iphone 15 pro 128gb")).unwrap();
    assert_eq!(clf.labels().label_string(m.labels[at]), "Phones > Cases");

    // Adapting the adapted file again keeps its memory (oldest) and labels; a new example is added.
    let (again, report) = adapt(ModelFile::from_bytes(&bytes).unwrap(), None, vec![ex("tulip bulbs", "Garden > Seeds")], 100, &Silent).unwrap();
    assert_eq!((report.labels, report.remembered), (4, 7));
    // A cap of 5: two evictions, by the rule (checked on the counts below).
    let (capped, report) = adapt(again, None, vec![], 5, &Silent).unwrap();
    assert_eq!((report.remembered, report.evicted), (5, 2));
    let clf = Classifier::from_bytes(&capped.to_bytes().unwrap()).unwrap();
    let counts = clf.adapter().unwrap().memory().counts().to_vec();
    // Before: Hoses 1, Seeds 2, Cases 3, Smartphones 1. Evict from Cases (3 → 2), then the lowest
    // id among the labels with 2 (Seeds, id 1): 1, 1, 2, 1.
    assert_eq!(counts, vec![1, 1, 2, 1]);
}

#[test]
fn no_examples_is_zero_shot_over_the_taxonomy() {
    let tax = paths(&["Garden > Hoses", "Phones > Cases"]);
    let (file, report) = adapt(tiny_file(), Some(&tax), vec![], 100, &Silent).unwrap();
    assert_eq!((report.remembered, report.method.as_str()), (0, "prior"));
    let clf = Classifier::from_bytes(&file.to_bytes().unwrap()).unwrap();
    assert_eq!(clf.labels().len(), 2);
    assert_eq!(clf.suggest("a hose", 2, 0.0).unwrap().suggestions.len(), 2);
}

#[test]
fn a_bad_example_path_is_labels() {
    let bad = Example { title: "x".into(), path: vec!["A".into(), " ".into()] };
    let err = adapt(tiny_file(), None, vec![bad], 10, &Silent).err().unwrap();
    assert_eq!(err.code(), "LABELS");
}

fn adapted_bytes() -> Vec<u8> {
    let tax = paths(&["Garden > Hoses", "Phones > Cases"]);
    adapt(tiny_file(), Some(&tax), vec![ex("hose", "Garden > Hoses"), ex("case", "Phones > Cases")], 100, &Silent).unwrap().0.to_bytes().unwrap()
}

/// The manifest of `bytes` with `edit` applied to its `adaptation`, resealed.
fn with_adaptation(bytes: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let f = ModelFile::from_bytes(bytes).unwrap();
    let mut m = serde_json::to_value(&f.manifest).unwrap();
    edit(&mut m["adaptation"]);
    let f = ModelFile { manifest: serde_json::from_value(m).unwrap(), ..f };
    f.to_bytes().unwrap()
}

#[test]
fn every_adaptation_field_is_checked() {
    let b = adapted_bytes();
    Classifier::from_bytes(&b).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("adaptation.labels", Box::new(|a| a["labels"] = serde_json::json!([]))),
        ("adaptation.labels", Box::new(|a| a["labels"] = serde_json::json!(["Phones > Cases", "Garden > Hoses"]))),
        ("adaptation.labels", Box::new(|a| a["labels"] = serde_json::json!(["Garden > Hoses", "Phones > Cases", "Z"]))),
        ("adaptation.features", Box::new(|a| a["features"][0] = serde_json::json!("nope"))),
        ("adaptation.features", Box::new(|a| a["features"] = serde_json::json!(["name_path", "name_path"]))),
        ("adaptation.max_examples", Box::new(|a| a["max_examples"] = serde_json::json!(0))),
        ("adaptation.examples", Box::new(|a| a["examples"] = serde_json::json!(3))),
        ("adaptation.examples", Box::new(|a| a["examples"] = serde_json::json!(1))),
    ];
    for (field, edit) in cases {
        match Classifier::from_bytes(&with_adaptation(&b, edit)) {
            Err(ModelError::BadManifest(m)) => assert!(m.starts_with(field), "{field}: {m}"),
            other => panic!("{field}: {:?}", other.err()),
        }
    }
}

#[test]
fn an_adapted_file_is_not_calibrated_relexicalised_or_quantized_under_its_adaptation() {
    use shelfwise_model::quant::{quantize, QuantizeOptions};
    use shelfwise_model::storage::Scheme;
    use shelfwise_model::train::examples::{DataSource, TrainError};
    let file = ModelFile::from_bytes(&adapted_bytes()).unwrap();
    let rows = vec![ex("hose", "Garden > Hoses"), ex("case", "Phones > Cases")];
    let src = DataSource { file: Some("x.csv".into()), sha256: String::new() };
    let cal = shelfwise_model::train::prior::calibrate(file.clone(), &rows, &src, true, &Silent);
    assert!(matches!(cal, Err(TrainError::Adapted)), "{:?}", cal.err());
    let opts =
        shelfwise_model::train::lexical::LexicalOptions { max_weights: 1000, prefix_fractions: vec![], max_texts: 100, refit_all: false, ..Default::default() };
    let lex = shelfwise_model::train::lexical::add_to_model(file.clone(), &rows, &rows, &src, &opts, &Silent);
    assert!(matches!(lex, Err(TrainError::Adapted)), "{:?}", lex.err());
    let q = QuantizeOptions { scheme: Scheme::Int8, keep_tokens: None, vocab_source: String::new(), calibration: vec![], calibration_source: String::new() };
    match quantize(file, &q) {
        Err(ModelError::BadManifest(m)) => assert!(m.starts_with("adaptation:"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}
