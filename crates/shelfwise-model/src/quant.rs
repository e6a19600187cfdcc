//! int8 weight quantization, per output channel (one scale per row), symmetric.
//!
//! For a row `w_r` of a 2-D `[out, in]` weight (or of an embedding table):
//! `scale_r = max_j |w_rj| / 127` and `q_rj = round(w_rj / scale_r)` clamped to `[-127, 127]`, so
//! `|q·scale − w| ≤ scale / 2`. A zero row gets scale 1 and all-zero codes.
//!
//! In a model file's safetensors a quantized tensor `<name>` is absent and stored as `<name>.q8`
//! (the codes, same shape; U8 holding the i8 bit pattern, because candle 0.11 has no I8 dtype) and
//! `<name>.scale` (F32, `[rows]`). [`crate::encoder::take`] dequantizes on load, so inference
//! runs the f32 math unchanged; int8 kernels can come later without changing the file.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::classifier::{load_tensors, tensors_to_bytes};
use crate::encoder::{take, tensor_shapes};
use crate::error::{ModelError, Result};
use crate::format::{EncoderWeights, Manifest, ModelFile, Quantization};

/// Manifest name of the scheme written by [`quantize_int8`].
pub const INT8_PER_CHANNEL: &str = "int8-per-channel";
pub const CODES_SUFFIX: &str = ".q8";
pub const SCALE_SUFFIX: &str = ".scale";

/// Quantizes a row-major `[rows, cols]` matrix: returns the codes (row-major) and one scale per
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

/// The inverse of [`quantize_rows`]: `w_rj = q_rj · scale_r`. `codes.len()` must be
/// `scales.len() * cols`.
pub fn dequantize_rows(codes: &[i8], scales: &[f32], cols: usize) -> Vec<f32> {
    assert_eq!(codes.len(), scales.len() * cols, "dequantize_rows: {} codes for {} rows of {cols}", codes.len(), scales.len());
    codes.chunks(cols.max(1)).zip(scales).flat_map(|(row, &s)| row.iter().map(move |&q| q as f32 * s)).collect()
}

/// The fallback of [`take`] when `<name>` is absent: the dequantized `<name>.q8` × `<name>.scale`,
/// after checking dtypes and shapes (codes `shape`, scale `[rows]`, finite scales).
pub(crate) fn take_quantized(t: &HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Tensor> {
    let bad = |why: String| Err(ModelError::BadTensors(format!("quantized tensor {name}: {why}")));
    let (Some(q), Some(s)) = (t.get(&format!("{name}{CODES_SUFFIX}")), t.get(&format!("{name}{SCALE_SUFFIX}"))) else {
        return Err(ModelError::BadTensors(format!("missing tensor {name}")));
    };
    let &[rows, cols] = shape else {
        return bad(format!("only 2-D tensors are quantized, this one has shape {shape:?}"));
    };
    if q.dtype() != DType::U8 || q.dims() != shape {
        return bad(format!("codes are {:?} {:?}, expected U8 {shape:?}", q.dtype(), q.dims()));
    }
    if s.dims() != [rows] {
        return bad(format!("scale has shape {:?}, expected [{rows}]", s.dims()));
    }
    let scales = s.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    if scales.iter().any(|x| !x.is_finite()) {
        return bad("non-finite scale".into());
    }
    let codes: Vec<i8> = q.flatten_all()?.to_vec1::<u8>()?.into_iter().map(|b| b as i8).collect();
    Ok(Tensor::from_vec(dequantize_rows(&codes, &scales, cols), (rows, cols), q.device())?)
}

/// The tensors the int8 scheme quantizes, with their shapes: every encoder Linear weight, the
/// word-embedding table and the head's matrices. Biases, LayerNorms and the small position and
/// token-type tables stay f32: they are a rounding error of the file's size.
pub fn int8_targets(m: &Manifest) -> Vec<(String, Vec<usize>)> {
    let (labels, hidden) = (m.labels.len(), m.encoder.hidden);
    let mut v: Vec<_> = tensor_shapes(&m.encoder)
        .into_iter()
        .filter(|(n, s)| s.len() == 2 && !n.contains("position_embeddings") && !n.contains("token_type_embeddings"))
        .collect();
    v.push((crate::head::LABEL_WEIGHT.into(), vec![labels, hidden]));
    v.push((crate::head::NGRAM_WEIGHT.into(), vec![labels, m.head.ngram_dim]));
    v.push((crate::head::NGRAM_TABLE.into(), vec![m.head.buckets as usize, m.head.ngram_dim]));
    v
}

/// Quantizes a full model file's weights to int8 per channel ([`int8_targets`]) and records it in
/// the manifest. A part file has no encoder to quantize: `MODEL_INCOMPLETE`.
pub fn quantize_int8(file: ModelFile) -> Result<ModelFile> {
    if let EncoderWeights::Base { sha256 } = &file.manifest.encoder_weights {
        return Err(ModelError::Incomplete(format!("base model sha256 {sha256}")));
    }
    let mut tensors = load_tensors(&file.tensors)?;
    let mut names = Vec::new();
    for (name, shape) in int8_targets(&file.manifest) {
        let (rows, cols) = (shape[0], shape[1]);
        let w = take(&tensors, &name, &shape)?.flatten_all()?.to_vec1::<f32>()?;
        let (codes, scales) = quantize_rows(&w, rows, cols);
        let codes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
        tensors.remove(&name);
        tensors.insert(format!("{name}{CODES_SUFFIX}"), Tensor::from_vec(codes, (rows, cols), &Device::Cpu)?);
        tensors.insert(format!("{name}{SCALE_SUFFIX}"), Tensor::from_vec(scales, rows, &Device::Cpu)?);
        names.push(name);
    }
    let mut manifest = file.manifest;
    manifest.quantization = Some(Quantization { scheme: INT8_PER_CHANNEL.into(), tensors: names });
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows of mixed magnitudes: each row has its own exponent (tiny to huge), some rows are zero.
    fn matrix() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
        (1usize..7, 1usize..41).prop_flat_map(|(rows, cols)| {
            let row = (prop_oneof![Just(0i32), -40i32..38], proptest::collection::vec(-1f32..1f32, cols))
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
    }

    #[test]
    fn zero_row_gets_scale_one_and_zero_codes() {
        let (codes, scales) = quantize_rows(&[0.0, 0.0, 0.0, 50.0, -127.0, 0.2], 2, 3);
        assert_eq!(scales, vec![1.0, 1.0]);
        assert_eq!(codes, vec![0, 0, 0, 50, -127, 0]);
        assert_eq!(dequantize_rows(&codes, &scales, 3), vec![0.0, 0.0, 0.0, 50.0, -127.0, 0.0]);
    }
}
