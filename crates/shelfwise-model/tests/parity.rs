//! Parity with independent references recorded by tests/reference/record_fixtures.py:
//! token ids from the Python `tokenizers` library, pooled embeddings from a float64 numpy BERT.

mod common;

use common::*;
use serde::Deserialize;
use shelfwise_model::classifier::base_encoder_tensors;
use shelfwise_model::encoder::CandleEncoder;
use shelfwise_model::format::EncoderConfig;
use shelfwise_model::tokenize::TitleTokenizer;
use shelfwise_model::Embedder;

#[derive(Deserialize)]
struct TokItem {
    title: String,
    ids: Vec<u32>,
    attention_mask: Vec<u32>,
}

#[derive(Deserialize)]
struct EncRef {
    model_sha256: String,
    items: Vec<EncItem>,
}

#[derive(Deserialize)]
struct EncItem {
    title: String,
    ids: Vec<u32>,
    pooled: Vec<f32>,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap()
}

fn tokenizer() -> TitleTokenizer {
    TitleTokenizer::from_bytes(&base_tokenizer(), 128).unwrap()
}

#[test]
fn token_ids_match_reference() {
    let tok = tokenizer();
    let items: Vec<TokItem> = serde_json::from_str(&fixture("tokenizer_ids.json")).unwrap();
    assert!(items.len() >= 30);
    for it in items {
        let e = tok.encode(&it.title).unwrap();
        assert_eq!(e.ids, it.ids, "{:?}", it.title);
        assert_eq!(e.mask, it.attention_mask, "{:?}", it.title);
    }
}

#[test]
fn pooled_embeddings_match_reference() {
    let r: EncRef = serde_json::from_str(&fixture("encoder_reference.json")).unwrap();
    let base_dir = base_dir();
    let bytes = std::fs::read(base_dir.join("model.safetensors")).unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup.sh", base_dir.display()));
    let cfg = EncoderConfig::minilm_l6();
    let encoder = CandleEncoder::from_tensors(&cfg, &base_encoder_tensors(&cfg, &bytes, &r.model_sha256).unwrap()).unwrap();
    let emb = Embedder { tokenizer: tokenizer(), encoder };
    let mut worst = 0f32;
    for it in &r.items {
        assert_eq!(emb.tokenizer.encode(&it.title).unwrap().ids, it.ids);
        let got = emb.embed(&[&it.title]).unwrap().to_vec2::<f32>().unwrap().remove(0);
        let diff = got.iter().zip(&it.pooled).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(diff);
        assert!(diff <= 1e-4, "{:?}: max abs diff {diff}", it.title);
    }
    // A padded batch gives the same embeddings as one title at a time.
    let titles: Vec<&str> = r.items.iter().map(|i| i.title.as_str()).collect();
    let batch = emb.embed(&titles).unwrap().to_vec2::<f32>().unwrap();
    for (row, it) in batch.iter().zip(&r.items) {
        let diff = row.iter().zip(&it.pooled).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= 1e-4, "batched {:?}: {diff}", it.title);
    }
    eprintln!("worst single-title diff {worst:e}");
}
