//! Shared test helpers: the repo's paths and a tiny random model that loads in milliseconds.
#![allow(dead_code)]

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

pub fn shipped_part() -> PathBuf {
    repo().join("models/flipkart-minilm/head.swpart")
}

/// The shipped (quantized, committed) model.
pub fn shipped_model_bytes() -> Vec<u8> {
    let p = repo().join("models/flipkart-minilm/model.shelfwise");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}: the shipped model is committed", p.display()))
}

/// The tokenizer.json stored in the shipped part file.
pub fn shipped_tokenizer() -> Vec<u8> {
    let bytes = std::fs::read(shipped_part()).expect("shipped part file is committed");
    ModelFile::from_bytes(&bytes).expect("valid part").tokenizer
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
        encoder: EncoderConfig { vocab_size: 30522, hidden: 8, layers: 1, heads: 2, intermediate: 16, max_positions: 64, layer_norm_eps: 1e-12, max_tokens: 32 },
        encoder_weights: EncoderWeights::Embedded,
        head: HeadConfig { ngram: NgramConfig::default(), buckets: 64, ngram_dim: 4, embed_scale: 4.0, temperature: 1.0 },
        labels: vec!["Home > Kitchen".into(), "Shoes > Kids".into(), "Shoes > Running".into()],
        training: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
        payload_sha256: String::new(),
        quantization: None,
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
    ModelFile { manifest: m, tensors, tokenizer: shipped_tokenizer() }
}

pub fn tiny_bytes() -> Vec<u8> {
    tiny_file().to_bytes().unwrap()
}
