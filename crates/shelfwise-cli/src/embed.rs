//! Embedding many titles with the encoder: length-sorted batches (little padding), a progress
//! bar, and an on-disk cache keyed by the encoder and the exact texts, so re-training with other
//! head settings does not pay for the encoder again.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use shelfwise_model::Embedder;

pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Prints a line above the bar, or plainly when there is no terminal (CI, logs).
pub fn log(pb: &ProgressBar, msg: String) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// Mean-pooled embeddings [texts.len(), hidden], in the order given.
pub fn embed_all(embedder: &Embedder, key: &str, texts: &[String], cache_dir: Option<&Path>, msg: &str) -> Result<Tensor> {
    let hidden = embedder.encoder.config().hidden;
    let digest = {
        let mut parts: Vec<&[u8]> = vec![key.as_bytes()];
        for t in texts {
            parts.push(t.as_bytes());
            parts.push(b"\n");
        }
        shelfwise_model::format::sha256_hex(&parts)
    };
    let cache = cache_dir.map(|d| d.join(format!("{digest}.f32")));
    if let Some(c) = &cache {
        if let Ok(bytes) = std::fs::read(c) {
            if bytes.len() == texts.len() * hidden * 4 {
                let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
                return Ok(Tensor::from_vec(v, (texts.len(), hidden), &Device::Cpu)?);
            }
        }
    }
    let mut out = vec![0f32; texts.len() * hidden];
    in_length_batches(texts, msg, |idx, batch| {
        let e = embedder.embed(batch)?.to_vec2::<f32>()?;
        for (&i, row) in idx.iter().zip(e) {
            out[i * hidden..(i + 1) * hidden].copy_from_slice(&row);
        }
        Ok(())
    })?;
    if let Some(c) = &cache {
        if let Some(dir) = c.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(c, bytes)?;
    }
    Ok(Tensor::from_vec(out, (texts.len(), hidden), &Device::Cpu)?)
}

/// Runs `f` over batches of texts of similar length (little padding in the encoder), with a
/// progress bar; `f` gets each batch's indices into `texts` and the texts themselves.
pub fn in_length_batches(texts: &[String], msg: &str, mut f: impl FnMut(&[usize], &[&str]) -> Result<()>) -> Result<()> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (texts[i].len(), i));
    let pb = bar(texts.len() as u64, msg);
    for chunk in order.chunks(64) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        f(chunk, &batch)?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(())
}

/// Hidden states after the first `upto` encoder blocks, per text ([tokens, hidden] each).
pub fn hidden_all(embedder: &Embedder, texts: &[String], upto: usize, msg: &str) -> Result<Vec<Tensor>> {
    let mut out: Vec<Option<Tensor>> = vec![None; texts.len()];
    in_length_batches(texts, msg, |idx, batch| {
        for (&i, h) in idx.iter().zip(embedder.hidden(batch, upto)?) {
            out[i] = Some(h);
        }
        Ok(())
    })?;
    Ok(out.into_iter().map(|h| h.expect("every text embedded")).collect())
}
