//! Weight quantization of a model file (int8 and 4- / 3-bit with a scale per block of 32; see
//! [`crate::codec`] for the codes and [`crate::storage`] for how a file stores them), vocabulary
//! pruning of the word-embedding table (and of the tokenizer with it), and putting weights on a
//! scheme's grid for quantization-aware training.

use std::collections::{BTreeSet, HashMap};

use candle_core::{DType, Device, Tensor};
use shelfwise_kernels::padded;

// The codec and storage names this module's callers have always found here.
use crate::codec::packed_cols;
pub use crate::codec::{dequantize_i8_per_row, fake_quant, pack_bits, quantize_i8_per_block, quantize_i8_per_row, quantize_lowbit, snap, unpack_bits, LowBit};
use crate::error::{ModelError, Result};
use crate::format::{EncoderConfig, EncoderWeights, ModelFile, PrunedVocab, Quantization};
use crate::storage::{flat_f32, load_tensors, take, tensors_to_bytes, POSITIONS, WORD_EMBEDDINGS, WORD_ROWS};
pub use crate::storage::{
    load_codes, lowbit_suffix, row_scales_as_blocks, targets, targets_for, ActBits, Codes, Scheme, BLOCK, BLOCK_SCALE_SUFFIX, CODES_SUFFIX, INT8_BLOCK32,
    INT8_PER_CHANNEL, Q4_BLOCK32, ROW_STEP_SUFFIX, SCALE_SUFFIX,
};
use crate::tokenize::TitleTokenizer;

/// [`snap`] on every tensor of `targets` that `t` holds, at its stored shape (a pruned word
/// table has fewer rows than the vocabulary).
pub fn snap_tensors(t: &mut HashMap<String, Tensor>, targets: &[(String, Vec<usize>, u32)]) -> Result<()> {
    for (name, _, bits) in targets {
        let Some(x) = t.get(name) else { continue };
        let (rows, cols) = x.dims2()?;
        let w = flat_f32(x)?;
        t.insert(name.clone(), Tensor::from_vec(snap(&w, rows, cols, *bits), (rows, cols), &Device::Cpu)?);
    }
    Ok(())
}

/// Cuts the word-embedding table down to the rows of `keep` (plus special tokens, `[UNK]` and
/// every single-character piece, so any word still splits into kept pieces) and adds the id →
/// row map; returns the tokenizer pruned the same way.
pub fn prune_vocab(
    cfg: &EncoderConfig,
    t: &mut HashMap<String, Tensor>,
    tok: &TitleTokenizer,
    keep: &BTreeSet<u32>,
    source: &str,
) -> Result<(Vec<u8>, PrunedVocab)> {
    if t.contains_key(WORD_ROWS) {
        return Err(ModelError::BadManifest("the vocabulary is already pruned".into()));
    }
    let mut keep = keep.clone();
    keep.extend(tok.single_char_ids());
    let (rows, table_rows) = prune_map(cfg.vocab_size, &keep, &tok.special_ids(), tok.unk_id())?;
    let tokenizer = tok.pruned_json(&table_rows.iter().copied().collect())?;
    let table = take(t, WORD_EMBEDDINGS, &[cfg.vocab_size, cfg.hidden])?;
    let idx = Tensor::from_vec(table_rows.clone(), table_rows.len(), &Device::Cpu)?;
    t.insert(WORD_EMBEDDINGS.into(), table.index_select(&idx, 0)?);
    t.insert(WORD_ROWS.into(), Tensor::from_vec(rows, cfg.vocab_size, &Device::Cpu)?);
    Ok((tokenizer, PrunedVocab { kept: table_rows.len(), of: cfg.vocab_size, source: source.into() }))
}

/// Options of [`quantize`].
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub scheme: Scheme,
    /// Token ids whose embeddings are kept (special tokens are always kept); `None` keeps all.
    pub keep_tokens: Option<BTreeSet<u32>>,
    /// Where the kept tokens came from, for the manifest.
    pub vocab_source: String,
    /// Titles to calibrate the 3/4-bit encoder weights on (GPTQ, see [`crate::gptq`]); empty:
    /// round to nearest.
    pub calibration: Vec<String>,
    /// Where the calibration titles came from, for the manifest.
    pub calibration_source: String,
}

/// Quantizes a full model file's weights and records it in the manifest. A part file has no
/// encoder to quantize (`MODEL_INCOMPLETE`); an already quantized file is refused.
pub fn quantize(file: ModelFile, opts: &QuantizeOptions) -> Result<ModelFile> {
    if let EncoderWeights::Base { sha256 } = &file.manifest.encoder_weights {
        return Err(ModelError::Incomplete(format!("base model sha256 {sha256}")));
    }
    if let Some(q) = &file.manifest.quantization {
        return Err(ModelError::BadManifest(format!("already quantized ({}); quantize the f32 model", q.scheme)));
    }
    // The adaptation's example embeddings and fitted weights are the f32 encoder's: quantize the
    // model first, then adapt the quantized one.
    if file.manifest.adaptation.is_some() {
        return Err(ModelError::BadManifest("adaptation: quantize the model it was adapted from, then adapt the quantized model".into()));
    }
    let mut tensors = load_tensors(&file.tensors)?;
    let mut manifest = file.manifest;
    let mut pruned = None;
    let mut tokenizer = file.tokenizer;
    let tok = crate::tokenize::TitleTokenizer::from_bytes(&tokenizer, manifest.encoder.max_tokens)?;
    // Calibrate on the f32 model as it is, before the vocabulary is pruned.
    let hessians = if opts.scheme == Scheme::Q4 && !opts.calibration.is_empty() {
        let titles: Vec<&str> = opts.calibration.iter().map(String::as_str).filter(|t| !t.trim().is_empty()).collect();
        crate::gptq::input_hessians(&manifest.encoder, &tensors, &tok, &titles)?
    } else {
        Default::default()
    };
    if let Some(keep) = &opts.keep_tokens {
        let (json, p) = prune_vocab(&manifest.encoder, &mut tensors, &tok, keep, &opts.vocab_source)?;
        tokenizer = json;
        pruned = Some(p);
    } else if tensors.contains_key(WORD_ROWS) {
        // Pruned in training (QAT) or a dequantized file: keep its table as it is.
        let kept = tensors.get(WORD_EMBEDDINGS).map_or(Ok(0), |x| x.dim(0))?;
        pruned = Some(PrunedVocab { kept, of: manifest.encoder.vocab_size, source: "already pruned in the f32 model".into() });
    }
    // Positions past the token limit are never read: drop their rows.
    let (max_pos, h) = (manifest.encoder.max_positions, manifest.encoder.hidden);
    if manifest.encoder.max_tokens < max_pos {
        let pos = take(&tensors, POSITIONS, &[max_pos, h])?.narrow(0, 0, manifest.encoder.max_tokens)?;
        tensors.insert(POSITIONS.into(), pos);
        manifest.encoder.max_positions = manifest.encoder.max_tokens;
    }
    let word_rows = pruned.as_ref().map_or(manifest.encoder.vocab_size, |p| p.kept);
    let mut names = Vec::new();
    for (name, mut shape, bits) in targets(&manifest, opts.scheme) {
        if name == WORD_EMBEDDINGS {
            shape[0] = word_rows;
        } else if name == POSITIONS {
            shape[0] = manifest.encoder.max_positions;
        }
        let (rows, cols) = (shape[0], shape[1]);
        let w = take(&tensors, &name, &shape)?.flatten_all()?.to_vec1::<f32>()?;
        tensors.remove(&name);
        let nb = padded(cols) / BLOCK;
        if bits < 8 {
            let lb = match hessians.get(&name) {
                Some((d, h)) if *d == cols => crate::gptq::quantize_lowbit_gptq(&w, rows, cols, bits, h)?,
                _ => quantize_lowbit(&w, rows, cols, bits),
            };
            let packed = pack_bits(&lb.codes, rows, cols, bits);
            tensors.insert(format!("{name}{}", lowbit_suffix(bits)), Tensor::from_vec(packed, (rows, packed_cols(cols, bits)), &Device::Cpu)?);
            let block: Vec<u8> = lb.block_scales.iter().map(|&c| c as u8).collect();
            tensors.insert(format!("{name}{BLOCK_SCALE_SUFFIX}"), Tensor::from_vec(block, (rows, nb), &Device::Cpu)?);
            tensors.insert(format!("{name}{ROW_STEP_SUFFIX}"), Tensor::from_vec(lb.row_steps, rows, &Device::Cpu)?.to_dtype(DType::F16)?);
        } else {
            let (codes, scales) = quantize_i8_per_block(&w, rows, cols);
            let codes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
            tensors.insert(format!("{name}{CODES_SUFFIX}"), Tensor::from_vec(codes, (rows, cols), &Device::Cpu)?);
            tensors.insert(format!("{name}{SCALE_SUFFIX}"), Tensor::from_vec(scales, (rows, nb), &Device::Cpu)?);
        }
        names.push(name);
    }
    let calibration = (!hessians.is_empty()).then(|| format!("GPTQ on {} titles from {}", opts.calibration.len(), opts.calibration_source));
    manifest.quantization = Some(Quantization { scheme: opts.scheme.manifest_name().into(), tensors: names, pruned_vocab: pruned, calibration });
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer })
}

/// The f32 model a quantized file computes: every quantized weight as it reads back, everything
/// else as stored (a pruned vocabulary stays pruned). For a model trained with QAT these are the
/// trained weights exactly, so this is its f32 model; for others, the f32 reference of runtime
/// parity tests.
pub fn dequantize(file: ModelFile) -> Result<ModelFile> {
    let Some(q) = file.manifest.quantization.clone() else {
        return Err(ModelError::BadManifest("not quantized: nothing to dequantize".into()));
    };
    let mut tensors = load_tensors(&file.tensors)?;
    let mut manifest = file.manifest;
    let cols: HashMap<String, usize> = targets(&manifest, Scheme::Q4).into_iter().map(|(n, s, _)| (n, s[1])).collect();
    for name in &q.tensors {
        let Some(&c) = cols.get(name) else {
            return Err(ModelError::BadManifest(format!("quantized tensor {name} is not one a scheme quantizes")));
        };
        // Rows as stored (a pruned word table, positions cut to the token limit): the codes' rows.
        let codes = [CODES_SUFFIX.to_string(), lowbit_suffix(4), lowbit_suffix(3)].into_iter().find_map(|s| tensors.get(&format!("{name}{s}")));
        let rows = codes.ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))?.dim(0)?;
        let w = take(&tensors, name, &[rows, c])?;
        for s in [CODES_SUFFIX.to_string(), SCALE_SUFFIX.into(), lowbit_suffix(4), lowbit_suffix(3), BLOCK_SCALE_SUFFIX.into(), ROW_STEP_SUFFIX.into()] {
            tensors.remove(&format!("{name}{s}"));
        }
        tensors.insert(name.clone(), w);
    }
    manifest.training["dequantized_from"] =
        serde_json::json!({ "scheme": q.scheme, "payload_sha256": manifest.payload_sha256, "pruned_vocab": q.pruned_vocab });
    manifest.quantization = None;
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}

/// int8 (block 32), full vocabulary.
pub fn quantize_int8(file: ModelFile) -> Result<ModelFile> {
    quantize(
        file,
        &QuantizeOptions { scheme: Scheme::Int8, keep_tokens: None, vocab_source: String::new(), calibration: Vec::new(), calibration_source: String::new() },
    )
}

/// For each vocabulary id, its row in the pruned table, and the kept ids in row order. Kept: the
/// requested ids, the special tokens and `[UNK]`; everything else reads the `[UNK]` row.
fn prune_map(vocab: usize, keep: &BTreeSet<u32>, special: &[u32], unk: u32) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut ids: BTreeSet<u32> = keep.iter().copied().filter(|&i| (i as usize) < vocab).collect();
    ids.extend(special.iter().copied().filter(|&i| (i as usize) < vocab));
    if unk as usize >= vocab {
        return Err(ModelError::BadTokenizer(format!("[UNK] id {unk} outside the vocabulary of {vocab}")));
    }
    ids.insert(unk);
    let kept: Vec<u32> = ids.into_iter().collect();
    let unk_row = kept.binary_search(&unk).expect("inserted above") as u32;
    let mut rows = vec![unk_row; vocab];
    for (r, &id) in kept.iter().enumerate() {
        rows[id as usize] = r as u32;
    }
    Ok((rows, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_map_sends_dropped_ids_to_unk() {
        let keep: BTreeSet<u32> = [5, 7, 99].into_iter().collect();
        let (rows, kept) = prune_map(10, &keep, &[0, 2], 1).unwrap();
        assert_eq!(kept, vec![0, 1, 2, 5, 7]);
        assert_eq!(rows, vec![0, 1, 2, 1, 1, 3, 1, 4, 1, 1]);
        assert!(prune_map(10, &keep, &[], 10).is_err());
    }
}
