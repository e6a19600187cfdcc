//! Weight quantization of a model file: int8 per output channel, 4-bit with a scale per block of
//! 32, and vocabulary pruning of the word-embedding table.
//!
//! Storage in a model file's safetensors: a quantized tensor `<name>` is absent and stored as
//! - int8: `<name>.q8` (codes, same shape; U8 holding the i8 bit pattern, because candle 0.11 has
//!   no I8 dtype) and `<name>.scale` (F32 `[rows, ceil(cols/32)]`, one per block of 32; or `[rows]`,
//!   one per row, in files of the first int8 scheme). `scale = max |w| / 127` over the block,
//!   `q = round(w / scale)` in `[-127, 127]`, so `|q·scale − w| ≤ scale / 2`.
//! - q4: `<name>.q4` (U8 `[rows, ceil(cols/2)]`, two codes a byte, low nibble first, code + 8) and
//!   `<name>.q4scale` (F16 `[rows, ceil(cols/32)]`). Per block, the scale is chosen from a few
//!   candidates around `max / 8` to minimise the block's squared error (codes in `[-8, 7]`), and
//!   codes are rounded against the f16-rounded scale, so what is stored is what was optimised.
//! - pruned vocabulary: `embeddings.word_embeddings.rows` (U32 `[vocab]`) maps every token id to a
//!   row of a smaller table; pruned ids map to the `[UNK]` row.
//!
//! Linear weights load as [`QMatrix`] for the int8 kernels of `shelfwise-kernels`; everything
//! else is dequantized to f32 on load by [`crate::encoder::take`].

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use half::f16;
use shelfwise_kernels::{padded, QMatrix, BLOCK};

use crate::classifier::{load_tensors, tensors_to_bytes};
use crate::encoder::{take, tensor_shapes, WORD_EMBEDDINGS, WORD_ROWS};
use crate::error::{ModelError, Result};
use crate::format::{EncoderWeights, Manifest, ModelFile, PrunedVocab, Quantization};

/// Manifest names of the schemes. Files of the first int8 scheme (one scale per row) still load.
pub const INT8_PER_CHANNEL: &str = "int8-per-channel";
pub const INT8_BLOCK32: &str = "int8-block32";
pub const Q4_BLOCK32: &str = "q4-block32";
pub const CODES_SUFFIX: &str = ".q8";
pub const SCALE_SUFFIX: &str = ".scale";
pub const Q4_SUFFIX: &str = ".q4";
pub const Q4_SCALE_SUFFIX: &str = ".q4scale";

/// What `shelfwise quantize --scheme` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Every 2-D weight int8 with a scale per 32 values (per-row scales cost 3× the top-1
    /// disagreements with the f32 model on Flipkart dev: 7 vs 4 of 1197).
    Int8,
    /// Encoder linear weights and the word-embedding table in 4 bits (block 32); the head's
    /// matrices int8 per channel (they are small and decide the ranking directly).
    Q4,
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "int8" => Ok(Self::Int8),
            "q4" => Ok(Self::Q4),
            other => Err(format!("unknown scheme {other:?}: use int8 or q4")),
        }
    }
}

impl Scheme {
    pub fn manifest_name(self) -> &'static str {
        match self {
            Self::Int8 => INT8_BLOCK32,
            Self::Q4 => Q4_BLOCK32,
        }
    }
}

/// Quantizes a row-major `[rows, cols]` matrix to int8: the codes (row-major) and one scale per
/// row. `w.len()` must be `rows * cols`.
pub fn quantize_rows(w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), rows * cols, "quantize_rows: {} values for {rows}x{cols}", w.len());
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks(cols.max(1)).take(rows) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = max / 127.0;
        // Zero rows (and rows so tiny that the scale underflows) get scale 1: their codes round to 0.
        let s = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        scales.push(s);
        codes.extend(row.iter().map(|x| (x / s).round().clamp(-127.0, 127.0) as i8));
    }
    (codes, scales)
}

/// int8 with one scale per (row, block of 32): the row-wise rule applied to each block.
/// Returns codes (row-major) and scales `[rows, ceil(cols/32)]`.
pub fn quantize_blocks_i8(w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), rows * cols, "quantize_blocks_i8: {} values for {rows}x{cols}", w.len());
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows * padded(cols) / BLOCK);
    for row in w.chunks(cols.max(1)).take(rows) {
        for blk in row.chunks(BLOCK) {
            let (c, s) = quantize_rows(blk, 1, blk.len());
            codes.extend(c);
            scales.push(s[0]);
        }
    }
    (codes, scales)
}

/// The inverse of [`quantize_rows`]: `w_rj = q_rj · scale_r`.
pub fn dequantize_rows(codes: &[i8], scales: &[f32], cols: usize) -> Vec<f32> {
    assert_eq!(codes.len(), scales.len() * cols, "dequantize_rows: {} codes for {} rows of {cols}", codes.len(), scales.len());
    codes.chunks(cols.max(1)).zip(scales).flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s)).collect()
}

/// 4-bit quantization of a row-major `[rows, cols]` matrix: codes in `[-8, 7]` (one i8 each,
/// row-major) and one f16-representable scale per (row, block of 32). Scales live in f16, so
/// blocks must stay within f16 range (|w| < 65504 · 8; network weights are far below) and tiny
/// blocks (|w| < 1e-6) lose precision to f16 subnormals.
pub fn quantize_q4(w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), rows * cols, "quantize_q4: {} values for {rows}x{cols}", w.len());
    let nb = padded(cols) / BLOCK;
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows * nb);
    for row in w.chunks(cols.max(1)).take(rows) {
        for blk in row.chunks(BLOCK) {
            let (s, c) = q4_block(blk);
            scales.push(s);
            codes.extend(c);
        }
    }
    (codes, scales)
}

/// One block: the signed value of largest magnitude maps to −8 (the asymmetric end of the code
/// range, one more level than ±7); a few finer scales are also tried, which clip that value but
/// give the rest of the block smaller steps, keeping the one with the smallest squared error.
fn q4_block(blk: &[f32]) -> (f32, Vec<i8>) {
    let amax = blk.iter().copied().fold(0f32, |m, x| if x.abs() > m.abs() { x } else { m });
    if !(amax != 0.0 && amax.is_finite()) {
        return (0.0, vec![0; blk.len()]);
    }
    let code = |x: f32, s: f32| (x / s).round().clamp(-8.0, 7.0) as i8;
    let mut best = (f32::INFINITY, 0f32);
    for step in 0..9 {
        let s = f16::from_f32(amax / -(8.0 + 0.25 * step as f32)).to_f32();
        if s == 0.0 || !s.is_finite() {
            continue;
        }
        let err: f32 = blk.iter().map(|&x| (x - code(x, s) as f32 * s).powi(2)).sum();
        if err < best.0 {
            best = (err, s);
        }
    }
    let s = best.1;
    (s, blk.iter().map(|&x| if s == 0.0 { 0 } else { code(x, s) }).collect())
}

/// Two 4-bit codes a byte (low nibble = even column), rows padded to whole bytes.
pub fn pack_q4(codes: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let bpr = cols.div_ceil(2);
    let mut out = vec![0u8; rows * bpr];
    for r in 0..rows {
        for c in 0..cols {
            let nib = (codes[r * cols + c] + 8) as u8 & 0x0f;
            out[r * bpr + c / 2] |= if c % 2 == 0 { nib } else { nib << 4 };
        }
    }
    out
}

pub fn unpack_q4(packed: &[u8], rows: usize, cols: usize) -> Vec<i8> {
    let bpr = cols.div_ceil(2);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let b = packed[r * bpr + c / 2];
            let nib = if c % 2 == 0 { b & 0x0f } else { b >> 4 };
            out.push(nib as i8 - 8);
        }
    }
    out
}

/// A 2-D weight stored in any quantized form, as a kernel matrix; `None` when the file holds it
/// in plain f32/f16 under its own name.
pub(crate) fn load_qmatrix(t: &HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Option<QMatrix>> {
    if t.contains_key(name) {
        return Ok(None);
    }
    let bad = |why: String| ModelError::BadTensors(format!("quantized tensor {name}: {why}"));
    let &[rows, cols] = shape else {
        return Err(bad(format!("only 2-D tensors are quantized, this one has shape {shape:?}")));
    };
    let finite = |s: &[f32]| if s.iter().all(|x| x.is_finite()) { Ok(()) } else { Err(bad("non-finite scale".into())) };
    let u8s = |x: &Tensor, want: &[usize]| -> Result<Vec<u8>> {
        if x.dtype() != DType::U8 || x.dims() != want {
            return Err(bad(format!("codes are {:?} {:?}, expected U8 {want:?}", x.dtype(), x.dims())));
        }
        Ok(x.flatten_all()?.to_vec1::<u8>()?)
    };
    if let (Some(q), Some(s)) = (t.get(&format!("{name}{CODES_SUFFIX}")), t.get(&format!("{name}{SCALE_SUFFIX}"))) {
        let codes: Vec<i8> = u8s(q, shape)?.into_iter().map(|b| b as i8).collect();
        let scales = s.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        finite(&scales)?;
        let nb = padded(cols) / BLOCK;
        // One scale per row (the first int8 files) or one per (row, block of 32).
        let m = if s.dims() == [rows] {
            QMatrix::from_row_scaled(rows, cols, &codes, &scales)
        } else if s.dims() == [rows, nb] {
            QMatrix::from_block_scaled(rows, cols, &codes, &scales)
        } else {
            return Err(bad(format!("scale has shape {:?}, expected [{rows}] or [{rows}, {nb}]", s.dims())));
        };
        return Ok(Some(m.map_err(|e| bad(e.to_string()))?));
    }
    if let (Some(q), Some(s)) = (t.get(&format!("{name}{Q4_SUFFIX}")), t.get(&format!("{name}{Q4_SCALE_SUFFIX}"))) {
        let packed = u8s(q, &[rows, cols.div_ceil(2)])?;
        let nb = padded(cols) / BLOCK;
        if s.dims() != [rows, nb] {
            return Err(bad(format!("q4 scale has shape {:?}, expected [{rows}, {nb}]", s.dims())));
        }
        let scales = s.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        finite(&scales)?;
        let codes = unpack_q4(&packed, rows, cols);
        return Ok(Some(QMatrix::from_block_scaled(rows, cols, &codes, &scales).map_err(|e| bad(e.to_string()))?));
    }
    Err(ModelError::BadTensors(format!("missing tensor {name}")))
}

/// The fallback of [`take`] when `<name>` is absent: the dequantized f32 weight.
pub(crate) fn take_quantized(t: &HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Tensor> {
    let q = load_qmatrix(t, name, shape)?.ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))?;
    Ok(Tensor::from_vec(q.dequantize(), shape, &Device::Cpu)?)
}

/// The 2-D weights a scheme quantizes, with their shapes and whether they go to 4 bits.
/// Biases, LayerNorms and the small position / token-type tables stay f32: a rounding error of
/// the file's size.
pub fn targets(m: &Manifest, scheme: Scheme) -> Vec<(String, Vec<usize>, bool)> {
    let (labels, hidden) = (m.labels.len(), m.encoder.hidden);
    let mut v: Vec<_> = tensor_shapes(&m.encoder)
        .into_iter()
        .filter(|(n, s)| s.len() == 2 && !n.contains("position_embeddings") && !n.contains("token_type_embeddings"))
        .map(|(n, s)| (n, s, scheme == Scheme::Q4))
        .collect();
    v.push((crate::head::LABEL_WEIGHT.into(), vec![labels, hidden], false));
    v.push((crate::head::NGRAM_WEIGHT.into(), vec![labels, m.head.ngram_dim], false));
    v.push((crate::head::NGRAM_TABLE.into(), vec![m.head.buckets as usize, m.head.ngram_dim], false));
    v
}

/// Options of [`quantize`].
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub scheme: Scheme,
    /// Token ids whose embeddings are kept (special tokens are always kept); `None` keeps all.
    pub keep_tokens: Option<BTreeSet<u32>>,
    /// Where the kept tokens came from, for the manifest.
    pub vocab_source: String,
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
    let mut tensors = load_tensors(&file.tensors)?;
    let mut manifest = file.manifest;
    let mut pruned = None;
    if let Some(keep) = &opts.keep_tokens {
        let tok = crate::tokenize::TitleTokenizer::from_bytes(&file.tokenizer, manifest.encoder.max_tokens)?;
        let (rows, table_rows) = prune_map(manifest.encoder.vocab_size, keep, &tok.special_ids(), tok.unk_id())?;
        let table = take(&tensors, WORD_EMBEDDINGS, &[manifest.encoder.vocab_size, manifest.encoder.hidden])?;
        let idx = Tensor::from_vec(table_rows.clone(), table_rows.len(), &Device::Cpu)?;
        tensors.insert(WORD_EMBEDDINGS.into(), table.index_select(&idx, 0)?);
        tensors.insert(WORD_ROWS.into(), Tensor::from_vec(rows, manifest.encoder.vocab_size, &Device::Cpu)?);
        pruned = Some(PrunedVocab { kept: table_rows.len(), of: manifest.encoder.vocab_size, source: opts.vocab_source.clone() });
    }
    let word_rows = pruned.as_ref().map_or(manifest.encoder.vocab_size, |p| p.kept);
    let mut names = Vec::new();
    for (name, mut shape, four_bit) in targets(&manifest, opts.scheme) {
        if name == WORD_EMBEDDINGS {
            shape[0] = word_rows;
        }
        let (rows, cols) = (shape[0], shape[1]);
        let w = take(&tensors, &name, &shape)?.flatten_all()?.to_vec1::<f32>()?;
        tensors.remove(&name);
        if four_bit {
            let (codes, scales) = quantize_q4(&w, rows, cols);
            let packed = pack_q4(&codes, rows, cols);
            tensors.insert(format!("{name}{Q4_SUFFIX}"), Tensor::from_vec(packed, (rows, cols.div_ceil(2)), &Device::Cpu)?);
            let s = Tensor::from_vec(scales, (rows, padded(cols) / BLOCK), &Device::Cpu)?.to_dtype(DType::F16)?;
            tensors.insert(format!("{name}{Q4_SCALE_SUFFIX}"), s);
        } else {
            let (codes, scales) = quantize_blocks_i8(&w, rows, cols);
            let codes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
            tensors.insert(format!("{name}{CODES_SUFFIX}"), Tensor::from_vec(codes, (rows, cols), &Device::Cpu)?);
            tensors.insert(format!("{name}{SCALE_SUFFIX}"), Tensor::from_vec(scales, (rows, padded(cols) / BLOCK), &Device::Cpu)?);
        }
        names.push(name);
    }
    manifest.quantization = Some(Quantization { scheme: opts.scheme.manifest_name().into(), tensors: names, pruned_vocab: pruned });
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}

/// int8 (block 32), full vocabulary.
pub fn quantize_int8(file: ModelFile) -> Result<ModelFile> {
    quantize(file, &QuantizeOptions { scheme: Scheme::Int8, keep_tokens: None, vocab_source: String::new() })
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
    use proptest::prelude::*;

    /// Rows of mixed magnitudes: each row has its own exponent (tiny to huge), some rows are zero.
    fn matrix() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
        (1usize..7, 1usize..71).prop_flat_map(|(rows, cols)| {
            let row = (prop_oneof![Just(0i32), -30i32..30], proptest::collection::vec(-1f32..1f32, cols))
                .prop_map(|(e, v)| if e == 0 { vec![0.0; v.len()] } else { v.iter().map(|x| x * 10f32.powi(e)).collect::<Vec<_>>() });
            (Just(rows), Just(cols), proptest::collection::vec(row, rows).prop_map(|r| r.concat()))
        })
    }

    proptest! {
        #[test]
        fn round_trip_error_is_at_most_half_a_step((rows, cols, w) in matrix()) {
            let (codes, scales) = quantize_rows(&w, rows, cols);
            prop_assert_eq!(codes.len(), w.len());
            prop_assert_eq!(scales.len(), rows);
            prop_assert!(codes.iter().all(|&c| (-127..=127).contains(&c)));
            let back = dequantize_rows(&codes, &scales, cols);
            for (i, (a, b)) in w.iter().zip(&back).enumerate() {
                let s = scales[i / cols];
                // Half a step, plus f32 rounding of w/s and q·s (relative ~1e-7 of the step).
                prop_assert!((a - b).abs() <= s / 2.0 * (1.0 + 1e-5) + 1e-6, "w={a} back={b} scale={s}");
            }
        }

        #[test]
        fn q4_round_trip_and_packing((rows, cols, w) in matrix().prop_filter("f16 scale range", |(_, _, w)| w.iter().all(|x| x.abs() < 1e4))) {
            let (codes, scales) = quantize_q4(&w, rows, cols);
            prop_assert!(codes.iter().all(|&c| (-8..=7).contains(&c)));
            prop_assert_eq!(unpack_q4(&pack_q4(&codes, rows, cols), rows, cols), codes.clone());
            let nb = padded(cols) / BLOCK;
            for r in 0..rows {
                for c in 0..cols {
                    let (x, s) = (w[r * cols + c], scales[r * nb + c / BLOCK]);
                    let back = codes[r * cols + c] as f32 * s;
                    // Clipping the block's largest value costs at most 2/10 of it, rounding at
                    // most half a step (max/16): 0.3·max bounds both. Scales are f16 values.
                    let blk = &w[r * cols + c / BLOCK * BLOCK..r * cols + ((c / BLOCK + 1) * BLOCK).min(cols)];
                    let max = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // f16 subnormal scales (step 6e-8) add up to 8 steps.
                    prop_assert!((x - back).abs() <= 0.3 * max + 5e-7, "x={x} back={back} max={max}");
                    prop_assert_eq!(f16::from_f32(s).to_f32(), s);
                }
            }
        }
    }

    #[test]
    fn q4_block_is_exact_on_representable_values() {
        let w: Vec<f32> = (-8..8).map(|c| c as f32 * 0.5).collect();
        let (codes, scales) = quantize_q4(&w, 1, 16);
        assert_eq!(dequantize_rows(&codes, &[scales[0]], 16), w);
    }

    #[test]
    fn zero_row_gets_scale_one_and_zero_codes() {
        let (codes, scales) = quantize_rows(&[0.0, 0.0, 0.0, 50.0, -127.0, 0.2], 2, 3);
        assert_eq!(scales, vec![1.0, 1.0]);
        assert_eq!(codes, vec![0, 0, 0, 50, -127, 0]);
        assert_eq!(dequantize_rows(&codes, &scales, 3), vec![0.0, 0.0, 0.0, 50.0, -127.0, 0.0]);
    }

    #[test]
    fn prune_map_sends_dropped_ids_to_unk() {
        let keep: BTreeSet<u32> = [5, 7, 99].into_iter().collect();
        let (rows, kept) = prune_map(10, &keep, &[0, 2], 1).unwrap();
        assert_eq!(kept, vec![0, 1, 2, 5, 7]);
        assert_eq!(rows, vec![0, 1, 2, 1, 1, 3, 1, 4, 1, 1]);
        assert!(prune_map(10, &keep, &[], 10).is_err());
    }
}
