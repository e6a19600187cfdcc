//! The storage layer under every model: safetensors I/O, the tensor names and shapes of the
//! encoder and head, the quantization schemes' names, and reading quantized tensors back (the
//! codes themselves are [`crate::codec`]'s). Encoders, head, classifier and transforms all read
//! and write tensors through here.

use std::collections::HashMap;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use shelfwise_kernels::{padded, QMatrix};
pub use shelfwise_kernels::{row_scales_as_blocks, ActBits, BLOCK};

use crate::codec::{decode_codes, packed_cols, scale_codes, unpack_bits, LowBit};
use crate::error::{ModelError, Result};
use crate::format::{EncoderConfig, HeadConfig, Manifest};

/// Manifest names of the schemes. Files of the first int8 scheme (one scale per row) still load.
pub const INT8_PER_CHANNEL: &str = "int8-per-channel";
pub const INT8_BLOCK32: &str = "int8-block32";
pub const Q4_BLOCK32: &str = "q4-block32";
pub const CODES_SUFFIX: &str = ".q8";
pub const SCALE_SUFFIX: &str = ".scale";
pub const BLOCK_SCALE_SUFFIX: &str = ".qscale";
pub const ROW_STEP_SUFFIX: &str = ".qrow";
/// Code suffix of a `bits`-bit tensor.
pub fn lowbit_suffix(bits: u32) -> String {
    format!(".q{bits}")
}
pub(crate) const POSITIONS: &str = "embeddings.position_embeddings.weight";

/// What `shelfwise quantize --scheme` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Every 2-D weight int8 with a scale per 32 values (per-row scales cost 3× the top-1
    /// disagreements with the f32 model on Flipkart dev: 7 vs 4 of 1197).
    Int8,
    /// Encoder linear weights and the hashed n-gram table in 4 bits, the (pruned) word-embedding
    /// table in 3 (LayerNorm follows it, and it is the largest table left), all with a scale per
    /// 32 values; the head's matrices and the position table int8 (small, and the head decides
    /// the ranking directly).
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

    /// The scheme a manifest names ([`Self::manifest_name`]).
    pub fn from_manifest_name(name: &str) -> Result<Self> {
        [Self::Int8, Self::Q4]
            .into_iter()
            .find(|s| s.manifest_name() == name)
            .ok_or_else(|| ModelError::BadManifest(format!("unknown quantization scheme {name:?}")))
    }
}

pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
/// Optional U32 `[vocab]`: the row of each token id in a pruned word-embedding table.
pub const WORD_ROWS: &str = "embeddings.word_embeddings.rows";

pub const LABEL_WEIGHT: &str = "head.label_weight";
pub const BIAS: &str = "head.bias";
pub const NGRAM_TABLE: &str = "head.ngram_table";
pub const NGRAM_WEIGHT: &str = "head.ngram_weight";

/// Reads the tensors section of a model file.
pub fn load_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| ModelError::BadTensors(e.to_string()))
}

/// Serialises named tensors as safetensors (names sorted, so the bytes are reproducible).
pub fn tensors_to_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let sorted: std::collections::BTreeMap<&String, &Tensor> = tensors.iter().collect();
    safetensors::tensor::serialize(sorted, None).map_err(|e| ModelError::BadTensors(e.to_string()))
}

/// A tensor's values as f32, row-major (an f16 n-gram table widened).
pub fn flat_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// The encoder's tensors from a base model's safetensors file (checked against its sha256).
pub fn base_encoder_tensors(cfg: &EncoderConfig, base: &[u8], sha256: &str) -> Result<HashMap<String, Tensor>> {
    let actual = crate::format::sha256_hex(&[base]);
    if actual != sha256 {
        return Err(ModelError::Incomplete(format!("base model sha256 is {actual}, expected {sha256}")));
    }
    encoder_tensors(cfg, &load_tensors(base)?)
}

/// The encoder's tensors (f32, shapes checked) out of a larger set, e.g. a whole BERT checkpoint.
pub fn encoder_tensors(cfg: &EncoderConfig, all: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    tensor_shapes(cfg).into_iter().map(|(name, shape)| Ok((name.clone(), take(all, &name, &shape)?))).collect()
}

/// Tensor names the encoder reads (BERT/HF names), with their shapes.
pub fn tensor_shapes(cfg: &EncoderConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let mut v = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![cfg.vocab_size, h]),
        ("embeddings.position_embeddings.weight".into(), vec![cfg.max_positions, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..cfg.layers {
        let p = format!("encoder.layer.{l}.");
        for (name, shape) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.query.bias", vec![h]),
            ("attention.self.key.weight", vec![h, h]),
            ("attention.self.key.bias", vec![h]),
            ("attention.self.value.weight", vec![h, h]),
            ("attention.self.value.bias", vec![h]),
            ("attention.output.dense.weight", vec![h, h]),
            ("attention.output.dense.bias", vec![h]),
            ("attention.output.LayerNorm.weight", vec![h]),
            ("attention.output.LayerNorm.bias", vec![h]),
            ("intermediate.dense.weight", vec![i, h]),
            ("intermediate.dense.bias", vec![i]),
            ("output.dense.weight", vec![h, i]),
            ("output.dense.bias", vec![h]),
            ("output.LayerNorm.weight", vec![h]),
            ("output.LayerNorm.bias", vec![h]),
        ] {
            v.push((format!("{p}{name}"), shape));
        }
    }
    v
}

/// Looks a tensor up by name and checks its shape; converts to f32. A tensor stored quantized
/// (`<name>.q8` + `<name>.scale`, see [`crate::codec`]) is dequantized here, so every loader reads
/// f32 weights whatever the file holds.
pub fn take(t: &HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Tensor> {
    let Some(x) = t.get(name) else {
        return take_quantized(t, name, shape);
    };
    if x.dims() != shape {
        return Err(ModelError::BadTensors(format!("tensor {name} has shape {:?}, expected {shape:?}", x.dims())));
    }
    Ok(x.to_dtype(DType::F32)?)
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
    let Some(c) = load_codes(t, name, Some(rows), cols)? else {
        return Ok(None);
    };
    QMatrix::from_block_scaled(rows, cols, &c.codes, &c.scales).map(Some).map_err(|e| bad(e.to_string()))
}

/// A quantized matrix as [`load_codes`] reads it.
pub struct Codes {
    pub rows: usize,
    /// Row-major int8 codes, `[rows, cols]`.
    pub codes: Vec<i8>,
    /// One scale per (row, block of [`BLOCK`]).
    pub scales: Vec<f32>,
}

/// `name`'s codes as int8, row-major (3- and 4-bit ones widened), with one f32 scale per (row,
/// block of [`BLOCK`]), `[rows, ceil(cols / 32)]`, when the file holds `name` quantized in any
/// scheme (`None` when it is plain f32/f16): what the CPU kernels and another backend (the GPU)
/// load. `rows = None` takes the row count from the file (a pruned vocabulary's word table).
pub fn load_codes(t: &HashMap<String, Tensor>, name: &str, rows: Option<usize>, cols: usize) -> Result<Option<Codes>> {
    if t.contains_key(name) {
        return Ok(None);
    }
    let rows = match rows {
        Some(r) => r,
        None => [CODES_SUFFIX.to_string(), lowbit_suffix(4), lowbit_suffix(3)]
            .iter()
            .find_map(|suffix| t.get(&format!("{name}{suffix}")))
            .and_then(|x| x.dims().first().copied())
            .ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))?,
    };
    let (bits, q, scales) = read_quantized(t, name, rows, cols)?;
    let codes = with_codes(q, name, &[rows, packed_cols(cols, bits)], |b| Ok(decode_codes(b, rows, cols, bits)))?;
    Ok(Some(Codes { rows, codes, scales }))
}

/// The codes tensor of `name`'s quantized form, its bits (8: two's complement bytes; 4 or 3:
/// packed by [`pack_bits`]) and its (row, block) scales; `missing tensor` when the file holds
/// neither form.
fn read_quantized<'t>(t: &'t HashMap<String, Tensor>, name: &str, rows: usize, cols: usize) -> Result<(u32, &'t Tensor, Vec<f32>)> {
    if let Some((q, scales)) = read_q8(t, name, rows, cols)? {
        return Ok((8, q, scales));
    }
    read_lowbit(t, name, rows, cols)?.ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))
}

/// Runs `f` on the bytes of the U8 tensor `x` (codes of `name`, of shape `want`): in place when
/// they are contiguous, as the loaded file's are (a load's memory is what a browser pays for).
fn with_codes<T>(x: &Tensor, name: &str, want: &[usize], f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    if x.dtype() != DType::U8 || x.dims() != want {
        return Err(ModelError::BadTensors(format!("quantized tensor {name}: codes are {:?} {:?}, expected U8 {want:?}", x.dtype(), x.dims())));
    }
    let (storage, layout) = x.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(candle_core::CpuStorage::U8(v)), Some((a, b))) => f(&v[a..b]),
        _ => f(&x.flatten_all()?.to_vec1::<u8>()?),
    }
}

/// The codes tensor and (row, block) scales of `name`'s int8 form, when the file holds it in that
/// form: one scale per row (the first int8 files) or per (row, block of 32).
fn read_q8<'t>(t: &'t HashMap<String, Tensor>, name: &str, rows: usize, cols: usize) -> Result<Option<(&'t Tensor, Vec<f32>)>> {
    let (Some(q), Some(s)) = (t.get(&format!("{name}{CODES_SUFFIX}")), t.get(&format!("{name}{SCALE_SUFFIX}"))) else {
        return Ok(None);
    };
    let bad = |why: String| ModelError::BadTensors(format!("quantized tensor {name}: {why}"));
    let scales = flat_f32(s)?;
    if !scales.iter().all(|x| x.is_finite()) {
        return Err(bad("non-finite scale".into()));
    }
    let nb = padded(cols) / BLOCK;
    if s.dims() == [rows] {
        Ok(Some((q, row_scales_as_blocks(&scales, cols))))
    } else if s.dims() == [rows, nb] {
        Ok(Some((q, scales)))
    } else {
        Err(bad(format!("scale has shape {:?}, expected [{rows}] or [{rows}, {nb}]", s.dims())))
    }
}

/// The bits, packed-codes tensor and (row, block) scales of `name`'s 3- or 4-bit form, when the
/// file holds it in that form.
fn read_lowbit<'t>(t: &'t HashMap<String, Tensor>, name: &str, rows: usize, cols: usize) -> Result<Option<(u32, &'t Tensor, Vec<f32>)>> {
    let bad = |why: String| ModelError::BadTensors(format!("quantized tensor {name}: {why}"));
    for bits in [4, 3] {
        let (Some(q), Some(bs), Some(rs)) =
            (t.get(&format!("{name}{}", lowbit_suffix(bits))), t.get(&format!("{name}{BLOCK_SCALE_SUFFIX}")), t.get(&format!("{name}{ROW_STEP_SUFFIX}")))
        else {
            continue;
        };
        let nb = padded(cols) / BLOCK;
        if bs.dtype() != DType::U8 || bs.dims() != [rows, nb] {
            return Err(bad(format!("block scales are {:?} {:?}, expected U8 [{rows}, {nb}]", bs.dtype(), bs.dims())));
        }
        let block: Vec<i8> = bs.flatten_all()?.to_vec1::<u8>()?.into_iter().map(|b| b as i8).collect();
        if rs.dims() != [rows] {
            return Err(bad(format!("row steps have shape {:?}, expected [{rows}]", rs.dims())));
        }
        let steps = rs.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if !steps.iter().all(|x| x.is_finite()) {
            return Err(bad("non-finite scale".into()));
        }
        return Ok(Some((bits, q, LowBit { bits, codes: Vec::new(), block_scales: block, row_steps: steps }.scales())));
    }
    Ok(None)
}

/// A quantized lookup table (word embeddings, n-gram buckets): read a row at a time, never
/// multiplied, so its codes stay as the file stores them, row-major (3- and 4-bit ones packed: a
/// third of the memory of unpacked codes), and are decoded per row: no unpacking or interleaving
/// at load, and a row read is a plain loop.
#[derive(Debug, Clone)]
pub(crate) struct RowTable {
    /// 3 or 4 (packed, offset binary as [`pack_bits`] writes them) or 8 (two's complement bytes).
    bits: u32,
    rows: usize,
    cols: usize,
    packed: Vec<u8>,
    /// `[rows, ceil(cols / 32)]`.
    scales: Vec<f32>,
}

impl RowTable {
    /// `name` as a row table, in whatever quantized form the file holds it; `None` when it is
    /// stored as plain f32/f16.
    pub(crate) fn load(t: &HashMap<String, Tensor>, name: &str, shape: [usize; 2]) -> Result<Option<Self>> {
        let [rows, cols] = shape;
        if t.contains_key(name) {
            return Ok(None);
        }
        let (bits, q, scales) = read_quantized(t, name, rows, cols)?;
        let packed = with_codes(q, name, &[rows, packed_cols(cols, bits)], |b| Ok(b.to_vec()))?;
        Ok(Some(Self { bits, rows, cols, packed, scales }))
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    #[cfg(test)]
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` as f32 into `out` (`cols` values): exactly what the codes times their block's
    /// scale give (as the kernels' matrices do). Panics if `r` is out of range or `out` has the
    /// wrong length (callers check ids first).
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows, self.cols);
        assert!(r < rows && out.len() == cols, "dequantize_row: row {r} of {rows}, {} outputs", out.len());
        let bpr = packed_cols(cols, self.bits);
        let row = &self.packed[r * bpr..(r + 1) * bpr];
        let nb = padded(cols) / BLOCK;
        let scales = &self.scales[r * nb..(r + 1) * nb];
        // Rows are read in place where the width allows (no allocation: the head reads ~100 rows
        // a title, the encoder a row a token).
        if self.bits == 8 {
            scale_codes(out, scales, row.iter().map(|&b| b as i8));
        } else if self.bits == 4 && cols.is_multiple_of(2) {
            // Two codes a byte, low nibble first (as `unpack_bits`), a block's 16 bytes at a time.
            for ((o, bytes), &s) in out.chunks_mut(BLOCK).zip(row.chunks(BLOCK / 2)).zip(scales) {
                for (o, &b) in o.chunks_exact_mut(2).zip(bytes) {
                    o[0] = ((b & 15) as i8 - 8) as f32 * s;
                    o[1] = ((b >> 4) as i8 - 8) as f32 * s;
                }
            }
        } else {
            scale_codes(out, scales, unpack_bits(row, 1, cols, self.bits).into_iter());
        }
    }
}

/// The fallback of [`take`] when `<name>` is absent: the dequantized f32 weight.
pub(crate) fn take_quantized(t: &HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Tensor> {
    let q = load_qmatrix(t, name, shape)?.ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))?;
    Ok(Tensor::from_vec(q.dequantize(), shape, &Device::Cpu)?)
}

/// The 2-D weights a scheme quantizes, with their shapes and bits (8, 4 or 3). Biases,
/// LayerNorms and the token-type table stay f32: a rounding error of the file's size.
pub fn targets(m: &Manifest, scheme: Scheme) -> Vec<(String, Vec<usize>, u32)> {
    targets_for(&m.encoder, &m.head, m.labels.len(), scheme)
}

/// [`targets`] from the parts of a manifest (training has no manifest yet).
pub fn targets_for(enc: &EncoderConfig, head: &HeadConfig, labels: usize, scheme: Scheme) -> Vec<(String, Vec<usize>, u32)> {
    let hidden = enc.hidden;
    let low = |bits: u32| if scheme == Scheme::Q4 { bits } else { 8 };
    let mut v: Vec<_> = tensor_shapes(enc)
        .into_iter()
        .filter(|(n, s)| s.len() == 2 && !n.contains("token_type_embeddings"))
        .map(|(n, s)| {
            let bits = match n.as_str() {
                WORD_EMBEDDINGS => low(3),
                POSITIONS => 8,
                _ => low(4),
            };
            (n, s, bits)
        })
        .collect();
    v.push((LABEL_WEIGHT.into(), vec![labels, hidden], 8));
    v.push((NGRAM_WEIGHT.into(), vec![labels, head.ngram_dim], 8));
    // Summed over many rows per title, so 4-bit noise averages out (no top-1 change on dev).
    v.push((NGRAM_TABLE.into(), vec![head.buckets as usize, head.ngram_dim], low(4)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{pack_bits, quantize_i8_per_row, quantize_lowbit};

    /// A row table reads every row exactly as the kernel matrix of the same codes does (odd widths,
    /// 3, 4 and 8 bits: the general and the fast unpacking paths, a last block part full).
    #[test]
    fn packed_row_table_reads_what_the_kernel_matrix_does() {
        for (bits, rows, cols) in [(3u32, 5usize, 384usize), (4, 3, 64), (4, 2, 48), (3, 2, 37), (4, 4, 33), (8, 3, 70)] {
            let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let (codes, scales, packed) = if bits == 8 {
                let (codes, row_scales) = quantize_i8_per_row(&w, rows, cols);
                let scales = row_scales_as_blocks(&row_scales, cols);
                let bytes = codes.iter().map(|&c| c as u8).collect();
                (codes, scales, bytes)
            } else {
                let lb = quantize_lowbit(&w, rows, cols, bits);
                let packed = pack_bits(&lb.codes, rows, cols, bits);
                (lb.codes.clone(), lb.scales(), packed)
            };
            let kernel = QMatrix::from_block_scaled(rows, cols, &codes, &scales).unwrap();
            let packed = RowTable { bits, rows, cols, packed, scales };
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                kernel.dequantize_row(r, &mut a);
                packed.dequantize_row(r, &mut b);
                assert_eq!(a, b, "{bits} bits, {rows}x{cols}, row {r}");
            }
            assert_eq!((packed.rows(), packed.cols()), (rows, cols));
        }
    }
}
