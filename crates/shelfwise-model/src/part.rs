//! Part files and their assembly: a model cut down to what differs from its base encoder (the
//! head, fine-tuned blocks as int8 deltas), and completed again with the base's weights.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::codec::{dequantize_i8_per_row, quantize_i8_per_row};
use crate::error::{ModelError, Result};
use crate::format::{EncoderWeights, ModelFile};
use crate::storage::{base_encoder_tensors, flat_f32, load_tensors, tensors_to_bytes};

/// Suffixes of a fine-tuned matrix stored in a part file as its difference from the base model's:
/// int8 codes (U8 bytes, the matrix's shape) and one f32 scale per row.
pub const DELTA_CODES_SUFFIX: &str = ".delta.q8";
pub const DELTA_SCALE_SUFFIX: &str = ".delta.scale";

/// Completes a part file (head only, `encoder_weights: base`) with the base model's encoder.
pub fn assemble(part: ModelFile, base: &[u8]) -> Result<ModelFile> {
    let EncoderWeights::Base { sha256 } = &part.manifest.encoder_weights else {
        return Ok(part);
    };
    let tensors = merge_part(base_encoder_tensors(&part.manifest.encoder, base, sha256)?, load_tensors(&part.tensors)?)?;
    let mut manifest = part.manifest;
    manifest.encoder_weights = EncoderWeights::Embedded;
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: part.tokenizer })
}

/// The inverse of [`assemble`]: keeps only the tensors that differ from the base model's (the head
/// and any fine-tuned blocks; see [`part_tensors`]), as a part file.
pub fn split_part(full: ModelFile, base: &[u8]) -> Result<ModelFile> {
    if full.manifest.quantization.is_some() {
        // Its tensors differ from the base's by rounding alone: cut the part from the f32 model.
        return Err(ModelError::BadManifest("cannot cut a part file from a quantized model".into()));
    }
    // Verified against the manifest's base sha256 here, which the part then refers to.
    let base_tensors = base_encoder_tensors(&full.manifest.encoder, base, &full.manifest.base_model.sha256)?;
    let kept = part_tensors(load_tensors(&full.tensors)?, &base_tensors)?;
    let mut manifest = full.manifest;
    manifest.encoder_weights = EncoderWeights::Base { sha256: manifest.base_model.sha256.clone() };
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&kept)?, tokenizer: full.tokenizer })
}

/// What a part file stores of a model's tensors: those the base lacks (the head, n-gram table in
/// f16), and fine-tuned base tensors that differ from the base's. A fine-tuned matrix is stored
/// as its delta from the base in int8 with one scale per row: fine-tuning moves weights by a few
/// percent, so the delta keeps ~1 % of its own size as rounding error while the part stays a
/// quarter of an f32 copy (~11 MB instead of ~42 MB for six MiniLM blocks). Vectors (biases,
/// LayerNorms) stay f32. [`merge_part`] of the result is the model as it is then stored: the
/// trainer writes that, so its full file and its assembled part are the same bytes.
pub fn part_tensors(full: HashMap<String, Tensor>, base: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let mut kept = HashMap::new();
    for (name, t) in full {
        let Some(b) = base.get(&name).filter(|b| b.dims() == t.dims()) else {
            kept.insert(name.clone(), crate::head::for_storage(&name, t)?);
            continue;
        };
        let (w, w0) = (flat_f32(&t)?, flat_f32(b)?);
        if w == w0 {
            continue;
        }
        match *t.dims() {
            [rows, cols] => {
                let delta: Vec<f32> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
                let (codes, scales) = quantize_i8_per_row(&delta, rows, cols);
                let bytes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
                kept.insert(format!("{name}{DELTA_CODES_SUFFIX}"), Tensor::from_vec(bytes, (rows, cols), &Device::Cpu)?);
                kept.insert(format!("{name}{DELTA_SCALE_SUFFIX}"), Tensor::from_vec(scales, rows, &Device::Cpu)?);
            }
            _ => {
                kept.insert(name, t);
            }
        }
    }
    Ok(kept)
}

/// The base model's tensors completed by a part's (see [`part_tensors`]): plain tensors replace
/// the base's, int8 deltas are added to them. `MODEL_TENSORS` for a delta without its scales, of
/// the wrong shape or type, or for a tensor the base does not have.
pub fn merge_part(mut base: HashMap<String, Tensor>, part: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let bad = |m: String| ModelError::BadTensors(m);
    let mut scales: HashMap<String, Tensor> = HashMap::new();
    let mut deltas = Vec::new();
    for (name, t) in part {
        if let Some(n) = name.strip_suffix(DELTA_SCALE_SUFFIX) {
            scales.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_suffix(DELTA_CODES_SUFFIX) {
            deltas.push((n.to_string(), t));
        } else {
            base.insert(name, t);
        }
    }
    for (name, codes) in deltas {
        let w0 = base.get(&name).ok_or_else(|| bad(format!("delta for {name}, which the base model does not have")))?;
        let s = scales.remove(&name).ok_or_else(|| bad(format!("delta for {name} has no {DELTA_SCALE_SUFFIX}")))?;
        let &[rows, cols] = w0.dims() else {
            return Err(bad(format!("delta for {name}, which is not a matrix")));
        };
        if codes.dtype() != candle_core::DType::U8 || codes.dims() != [rows, cols] {
            return Err(bad(format!("delta for {name}: codes are {:?} {:?}, expected U8 [{rows}, {cols}]", codes.dtype(), codes.dims())));
        }
        let s = flat_f32(&s)?;
        if s.len() != rows || s.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("delta for {name}: {} scales (finite ones expected, one per row of {rows})", s.len())));
        }
        let codes: Vec<i8> = codes.flatten_all()?.to_vec1::<u8>()?.into_iter().map(|c| c as i8).collect();
        let delta = dequantize_i8_per_row(&codes, &s, cols);
        let w0 = flat_f32(w0)?;
        let w: Vec<f32> = w0.iter().zip(&delta).map(|(a, d)| a + d).collect();
        base.insert(name, Tensor::from_vec(w, (rows, cols), &Device::Cpu)?);
    }
    if let Some(name) = scales.keys().next() {
        return Err(bad(format!("{name}{DELTA_SCALE_SUFFIX} without its delta")));
    }
    Ok(base)
}
