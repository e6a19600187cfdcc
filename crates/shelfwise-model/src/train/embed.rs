//! Embedding many titles with the encoder: length-sorted batches (little padding), progress, and
//! an optional cache keyed by the encoder and the exact texts, so re-training with other head
//! settings does not pay for the encoder again.

use candle_core::{Device, Tensor};

use crate::classifier::Embedder;
use crate::encoder::{pad_batch, CandleEncoder, TitleEncoder};
use crate::error::Result;
use crate::progress::Progress;

/// Where embeddings of a set of texts are kept between runs (the CLI's `--cache-dir`), by the
/// sha256 of the encoder key and the texts.
pub trait EmbeddingCache {
    /// The stored bytes for `digest`, if any (the caller checks their length).
    fn load(&self, digest: &str) -> Option<Vec<u8>>;
    /// Keeps `bytes` for `digest`; a cache that cannot store says so its own way.
    fn store(&self, digest: &str, bytes: &[u8]);
}

/// Mean-pooled embeddings [texts.len(), hidden], in the order given.
pub fn embed_all<E: TitleEncoder>(
    embedder: &Embedder<E>,
    key: &str,
    texts: &[String],
    cache: Option<&dyn EmbeddingCache>,
    msg: &str,
    progress: &dyn Progress,
) -> Result<Tensor> {
    let hidden = embedder.encoder.hidden();
    let digest = {
        let mut parts: Vec<&[u8]> = vec![key.as_bytes()];
        for t in texts {
            parts.push(t.as_bytes());
            parts.push(b"\n");
        }
        crate::format::sha256_hex(&parts)
    };
    if let Some(bytes) = cache.and_then(|c| c.load(&digest)) {
        if bytes.len() == texts.len() * hidden * 4 {
            let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            return Ok(Tensor::from_vec(v, (texts.len(), hidden), &Device::Cpu)?);
        }
    }
    let mut out = vec![0f32; texts.len() * hidden];
    in_length_batches(texts, msg, progress, |idx, batch| {
        let e = embedder.embed(batch)?.to_vec2::<f32>()?;
        for (&i, row) in idx.iter().zip(e) {
            out[i * hidden..(i + 1) * hidden].copy_from_slice(&row);
        }
        Ok(())
    })?;
    if let Some(c) = cache {
        let bytes: Vec<u8> = out.iter().flat_map(|x| x.to_le_bytes()).collect();
        c.store(&digest, &bytes);
    }
    Ok(Tensor::from_vec(out, (texts.len(), hidden), &Device::Cpu)?)
}

/// Runs `f` over batches of texts of similar length (little padding in the encoder), reporting
/// progress; `f` gets each batch's indices into `texts` and the texts themselves.
pub fn in_length_batches(texts: &[String], msg: &str, progress: &dyn Progress, mut f: impl FnMut(&[usize], &[&str]) -> Result<()>) -> Result<()> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (texts[i].len(), i));
    progress.start(msg, texts.len() as u64);
    for chunk in order.chunks(64) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        f(chunk, &batch)?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish(false);
    Ok(())
}

/// Hidden states after the first `upto` blocks, one [tokens, hidden] tensor per title (padding
/// removed): the frozen part of the encoder when fine-tuning the blocks above.
pub fn hidden_states(embedder: &Embedder<CandleEncoder>, titles: &[&str], upto: usize) -> Result<Vec<Tensor>> {
    let encodings = embedder.encode(titles)?;
    let (ids, mask) = pad_batch(&encodings, &Device::Cpu)?;
    let x = embedder.encoder.run_layers(embedder.encoder.embeddings(&ids)?, &mask, 0..upto)?;
    encodings.iter().enumerate().map(|(i, e)| Ok(x.get(i)?.narrow(0, 0, e.ids.len())?.contiguous()?)).collect()
}

/// [`hidden_states`] of many texts, in length-sorted batches.
pub fn hidden_all(embedder: &Embedder<CandleEncoder>, texts: &[String], upto: usize, msg: &str, progress: &dyn Progress) -> Result<Vec<Tensor>> {
    let mut out: Vec<Option<Tensor>> = vec![None; texts.len()];
    in_length_batches(texts, msg, progress, |idx, batch| {
        for (&i, h) in idx.iter().zip(hidden_states(embedder, batch, upto)?) {
            out[i] = Some(h);
        }
        Ok(())
    })?;
    Ok(out.into_iter().map(|h| h.expect("every text embedded")).collect())
}
