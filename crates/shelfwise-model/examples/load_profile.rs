//! Where a model load's time goes: `cargo run --release -p shelfwise-model --example load_profile -- MODEL`.
use std::time::Instant;

use shelfwise_model::{classifier::load_tensors, tokenize::TitleTokenizer, Classifier, ModelFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: load_profile MODEL")?;
    let bytes = std::fs::read(&path)?;
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let file = ModelFile::from_bytes(&bytes)?;
    println!("verify (2× sha256) + split  {:7.1} ms", ms(t));
    let t = Instant::now();
    let tensors = load_tensors(&file.tensors)?;
    println!("safetensors → tensors       {:7.1} ms ({} tensors)", ms(t), tensors.len());
    let t = Instant::now();
    TitleTokenizer::from_bytes(&file.tokenizer, file.manifest.encoder.max_tokens)?;
    println!("tokenizer from JSON         {:7.1} ms", ms(t));
    let t = Instant::now();
    let clf = Classifier::from_model_file(&file)?;
    println!("whole classifier build      {:7.1} ms", ms(t));
    let t = Instant::now();
    clf.suggest("Pigeon 1.5 L electric kettle", 5, 0.5)?;
    println!("first suggestion            {:7.1} ms", ms(t));
    Ok(())
}
