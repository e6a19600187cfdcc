//! Weight quantization of a model file: int8 and 4- / 3-bit with a scale per block of 32, and
//! vocabulary pruning of the word-embedding table (and of the tokenizer with it).
//!
//! Storage in a model file's safetensors: a quantized tensor `<name>` is absent and stored as
//! - int8: `<name>.q8` (codes, same shape; U8 holding the i8 bit pattern, because candle 0.11 has
//!   no I8 dtype) and `<name>.scale` (F32 `[rows, ceil(cols/32)]`, one per block of 32; or `[rows]`,
//!   one per row, in files of the first int8 scheme). `scale = max |w| / 127` over the block,
//!   `q = round(w / scale)` in `[-127, 127]`, so `|q·scale − w| ≤ scale / 2`.
//! - low-bit (4 or 3 bits): `<name>.q4` / `<name>.q3` (U8 `[rows, ceil(cols·bits/8)]`: each
//!   code + 2^(bits−1) as a `bits`-wide field, little-endian bit order, rows padded to whole
//!   bytes), `<name>.qscale` (U8 holding i8 `[rows, ceil(cols/32)]`) and `<name>.qrow` (F16
//!   `[rows]`): block `b` of row `r` has scale `qrow[r] · qscale[r, b]`, one byte a block instead
//!   of two for an f16 scale. Each block's scale is chosen from a few candidates around
//!   `max / 2^(bits−1)` *on that grid* to minimise the block's squared error, and codes are
//!   rounded against it, so what is stored is what was optimised.
//! - pruned vocabulary: `embeddings.word_embeddings.rows` (U32 `[vocab]`) maps every token id to a
//!   row of a smaller table. The stored tokenizer's vocabulary is pruned the same way, so pruned
//!   ids are never produced; the map sends them to the `[UNK]` row all the same.
//!
//! Linear weights load as [`QMatrix`] for the int8 kernels of `shelfwise-kernels`; everything
//! else is dequantized to f32 on load by [`crate::encoder::take`].

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use half::f16;
pub use shelfwise_kernels::{row_scales_as_blocks, ActBits, BLOCK};
use shelfwise_kernels::{padded, QMatrix};

use crate::classifier::{load_tensors, tensors_to_bytes};
use crate::encoder::{take, tensor_shapes, WORD_EMBEDDINGS, WORD_ROWS};
use crate::error::{ModelError, Result};
use crate::format::{EncoderConfig, EncoderWeights, HeadConfig, Manifest, ModelFile, PrunedVocab, Quantization};
use crate::tokenize::TitleTokenizer;

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
const POSITIONS: &str = "embeddings.position_embeddings.weight";

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

/// A matrix quantized to `bits` (3 or 4) with two-level block scales; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct LowBit {
    pub bits: u32,
    /// Row-major codes in `[-2^(bits-1), 2^(bits-1) - 1]`.
    pub codes: Vec<i8>,
    /// `[rows, ceil(cols/32)]`, each in `[-127, 127]`.
    pub block_scales: Vec<i8>,
    /// `[rows]`, f16-representable.
    pub row_steps: Vec<f32>,
}

impl LowBit {
    /// The f32 scale of every (row, block).
    pub fn scales(&self) -> Vec<f32> {
        let nb = self.block_scales.len() / self.row_steps.len().max(1);
        self.block_scales.iter().enumerate().map(|(i, &c)| self.row_steps[i / nb.max(1)] * c as f32).collect()
    }
}

/// `bits`-bit quantization of a row-major `[rows, cols]` matrix. Scales live in f16 × i8, so
/// values must stay within f16 range (|w| < 65504; network weights are far below) and rows
/// whose largest value is under ~1e-5 lose precision to f16 subnormals.
pub fn quantize_lowbit(w: &[f32], rows: usize, cols: usize, bits: u32) -> LowBit {
    assert!((2..=8).contains(&bits), "quantize_lowbit: {bits} bits");
    assert_eq!(w.len(), rows * cols, "quantize_lowbit: {} values for {rows}x{cols}", w.len());
    let lo = -(1i32 << (bits - 1)) as f32;
    let mut out = LowBit { bits, codes: Vec::with_capacity(w.len()), block_scales: Vec::new(), row_steps: Vec::with_capacity(rows) };
    for row in w.chunks(cols.max(1)).take(rows) {
        let step = row_step(row, lo);
        out.row_steps.push(step);
        for blk in row.chunks(BLOCK) {
            let (c, codes) = lowbit_block(blk, step, lo);
            out.block_scales.push(c);
            out.codes.extend(codes);
        }
    }
    out
}

/// A row's f16 step: 127 of them are the largest block scale any block of the row can want (its
/// signed max on the code range's long end, `lo`).
pub(crate) fn row_step(row: &[f32], lo: f32) -> f32 {
    let widest = row.chunks(BLOCK).map(|b| signed_max(b).abs() / -lo).fold(0f32, f32::max);
    let step = f16::from_f32(widest / 127.0).to_f32();
    // A step under half the smallest f16 would round to zero and zero a row of small but nonzero
    // weights (max |w| under ~3e-5 at 4 bits): the smallest subnormal keeps them.
    let step = if step == 0.0 && widest > 0.0 { f16::from_bits(1).to_f32() } else { step };
    if step.is_finite() { step } else { 0.0 }
}

fn signed_max(blk: &[f32]) -> f32 {
    blk.iter().copied().fold(0f32, |m, x| if x.abs() > m.abs() { x } else { m })
}

/// One block: the signed value of largest magnitude maps to the long end of the code range (one
/// more level than the other side); a few finer scales are also tried, which clip that value but
/// give the rest of the block smaller steps. Scales are multiples of the row's `step`.
pub(crate) fn lowbit_block(blk: &[f32], step: f32, lo: f32) -> (i8, Vec<i8>) {
    let amax = signed_max(blk);
    if !(amax != 0.0 && amax.is_finite() && step > 0.0) {
        return (0, vec![0; blk.len()]);
    }
    let code = |x: f32, s: f32| (x / s).round().clamp(lo, -lo - 1.0) as i8;
    let mut best = (f32::INFINITY, 0i8);
    for k in 0..9 {
        let c = (amax / (lo - 0.25 * k as f32) / step).round().clamp(-127.0, 127.0) as i8;
        let s = c as f32 * step;
        if c == 0 {
            continue;
        }
        let err: f32 = blk.iter().map(|&x| (x - code(x, s) as f32 * s).powi(2)).sum();
        if err < best.0 {
            best = (err, c);
        }
    }
    let s = best.1 as f32 * step;
    (best.1, blk.iter().map(|&x| if best.1 == 0 { 0 } else { code(x, s) }).collect())
}

/// `bits`-wide fields (code + 2^(bits−1)), little-endian bit order, each row padded to whole bytes.
pub fn pack_bits(codes: &[i8], rows: usize, cols: usize, bits: u32) -> Vec<u8> {
    let bpr = packed_cols(cols, bits);
    let (off, mask) = (1i32 << (bits - 1), (1u32 << bits) - 1);
    let mut out = vec![0u8; rows * bpr];
    for r in 0..rows {
        let row = &mut out[r * bpr..(r + 1) * bpr];
        for c in 0..cols {
            let v = ((codes[r * cols + c] as i32 + off) as u32 & mask) << ((c * bits as usize) % 8);
            let at = c * bits as usize / 8;
            for (i, byte) in v.to_le_bytes().iter().enumerate().take(2) {
                if at + i < bpr {
                    row[at + i] |= byte;
                }
            }
        }
    }
    out
}

pub fn unpack_bits(packed: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<i8> {
    let bpr = packed_cols(cols, bits);
    // Whole bytes (4 bits) or whole 3-byte groups (3 bits) a row: the loops a model load runs
    // over millions of codes, without per-code index arithmetic.
    if bits == 4 && cols.is_multiple_of(2) {
        let mut out = vec![0i8; rows * cols];
        for (o, &b) in out.chunks_exact_mut(2).zip(&packed[..rows * bpr]) {
            o[0] = (b & 15) as i8 - 8;
            o[1] = (b >> 4) as i8 - 8;
        }
        return out;
    }
    if bits == 3 && cols.is_multiple_of(8) {
        let mut out = vec![0i8; rows * cols];
        for (o, g) in out.chunks_exact_mut(8).zip(packed[..rows * bpr].chunks_exact(3)) {
            let v = g[0] as u32 | (g[1] as u32) << 8 | (g[2] as u32) << 16;
            for (i, c) in o.iter_mut().enumerate() {
                *c = ((v >> (3 * i)) & 7) as i8 - 4;
            }
        }
        return out;
    }
    let (off, mask) = (1i32 << (bits - 1), (1u32 << bits) - 1);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &packed[r * bpr..(r + 1) * bpr];
        for c in 0..cols {
            let at = c * bits as usize / 8;
            let two = row[at] as u32 | row.get(at + 1).map_or(0, |&b| (b as u32) << 8);
            out.push(((two >> ((c * bits as usize) % 8)) & mask) as i32 as i8 - off as i8);
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

/// Stored bytes per row of `cols` codes of `bits` bits.
fn packed_cols(cols: usize, bits: u32) -> usize {
    (cols * bits as usize).div_ceil(8)
}

/// Codes as i8 from their stored bytes (`rows` rows; see [`read_quantized`] for the encodings).
fn decode_codes(bytes: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<i8> {
    if bits == 8 {
        bytes.iter().map(|&b| b as i8).collect()
    } else {
        unpack_bits(bytes, rows, cols, bits)
    }
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
    let scales = crate::classifier::flat_f32(s)?;
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
        let (Some(q), Some(bs), Some(rs)) = (
            t.get(&format!("{name}{}", lowbit_suffix(bits))),
            t.get(&format!("{name}{BLOCK_SCALE_SUFFIX}")),
            t.get(&format!("{name}{ROW_STEP_SUFFIX}")),
        ) else {
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
        // int8 rows are read in place (no allocation: the head reads ~100 rows a title).
        if self.bits == 8 {
            scale_codes(out, scales, row.iter().map(|&b| b as i8));
        } else {
            scale_codes(out, scales, unpack_bits(row, 1, cols, self.bits).into_iter());
        }
    }
}

/// `out[c] = code c · scale of its block of 32`.
fn scale_codes(out: &mut [f32], scales: &[f32], mut codes: impl Iterator<Item = i8>) {
    for (blk, &s) in out.chunks_mut(BLOCK).zip(scales) {
        for (x, q) in blk.iter_mut().zip(&mut codes) {
            *x = q as f32 * s;
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
    v.push((crate::head::LABEL_WEIGHT.into(), vec![labels, hidden], 8));
    v.push((crate::head::NGRAM_WEIGHT.into(), vec![labels, head.ngram_dim], 8));
    // Summed over many rows per title, so 4-bit noise averages out (no top-1 change on dev).
    v.push((crate::head::NGRAM_TABLE.into(), vec![head.buckets as usize, head.ngram_dim], low(4)));
    v
}

/// What a `[rows, cols]` weight reads back as once stored in `bits` bits (8: int8, block 32):
/// quantized and dequantized with the loader's arithmetic. Quantization-aware training runs its
/// forward pass through this.
pub fn fake_quant(w: &[f32], rows: usize, cols: usize, bits: u32) -> Vec<f32> {
    let (codes, scales) = if bits >= 8 {
        quantize_blocks_i8(w, rows, cols)
    } else {
        let lb = quantize_lowbit(w, rows, cols, bits);
        let s = lb.scales();
        (lb.codes, s)
    };
    let nb = padded(cols) / BLOCK;
    let mut out = vec![0f32; rows * cols];
    for (r, row) in out.chunks_mut(cols.max(1)).enumerate().take(rows) {
        scale_codes(row, &scales[r * nb..(r + 1) * nb], codes[r * cols..(r + 1) * cols].iter().copied());
    }
    out
}

/// [`fake_quant`] repeated until nothing moves (a block's scale can shift once after its
/// largest value is rounded), so that `quantize` of the result stores exactly the same values:
/// where a quantization-aware model's weights end.
pub fn snap(w: &[f32], rows: usize, cols: usize, bits: u32) -> Vec<f32> {
    let mut cur = fake_quant(w, rows, cols, bits);
    for _ in 0..8 {
        let next = fake_quant(&cur, rows, cols, bits);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// [`snap`] on every tensor of `targets` that `t` holds, at its stored shape (a pruned word
/// table has fewer rows than the vocabulary).
pub fn snap_tensors(t: &mut HashMap<String, Tensor>, targets: &[(String, Vec<usize>, u32)]) -> Result<()> {
    for (name, _, bits) in targets {
        let Some(x) = t.get(name) else { continue };
        let (rows, cols) = x.dims2()?;
        let w = crate::classifier::flat_f32(x)?;
        t.insert(name.clone(), Tensor::from_vec(snap(&w, rows, cols, *bits), (rows, cols), &Device::Cpu)?);
    }
    Ok(())
}

/// Cuts the word-embedding table down to the rows of `keep` (plus special tokens, `[UNK]` and
/// every single-character piece, so any word still splits into kept pieces) and adds the id →
/// row map; returns the tokenizer pruned the same way.
pub fn prune_vocab(cfg: &EncoderConfig, t: &mut HashMap<String, Tensor>, tok: &TitleTokenizer, keep: &BTreeSet<u32>, source: &str) -> Result<(Vec<u8>, PrunedVocab)> {
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
            let (codes, scales) = quantize_blocks_i8(&w, rows, cols);
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
    manifest.training["dequantized_from"] = serde_json::json!({ "scheme": q.scheme, "payload_sha256": manifest.payload_sha256, "pruned_vocab": q.pruned_vocab });
    manifest.quantization = None;
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}

/// int8 (block 32), full vocabulary.
pub fn quantize_int8(file: ModelFile) -> Result<ModelFile> {
    quantize(file, &QuantizeOptions { scheme: Scheme::Int8, keep_tokens: None, vocab_source: String::new(), calibration: Vec::new(), calibration_source: String::new() })
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
        fn snapped_weights_quantize_to_themselves((rows, cols, w) in matrix().prop_filter("f16 scale range", |(_, _, w)| w.iter().all(|x| x.abs() < 1e4 && (*x == 0.0 || x.abs() > 1e-3))), bits in prop_oneof![Just(3u32), Just(4), Just(8)]) {
            // What QAT saves is what `quantize` stores: no weight moves a second time.
            let s = snap(&w, rows, cols, bits);
            prop_assert_eq!(fake_quant(&s, rows, cols, bits), s);
        }

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
        fn lowbit_round_trip_and_packing((rows, cols, w) in matrix().prop_filter("f16 scale range", |(_, _, w)| w.iter().all(|x| x.abs() < 1e4)), bits in 3u32..5) {
            let lb = quantize_lowbit(&w, rows, cols, bits);
            let half = 1i8 << (bits - 1);
            prop_assert!(lb.codes.iter().all(|&c| (-half..half).contains(&c)));
            prop_assert_eq!(unpack_bits(&pack_bits(&lb.codes, rows, cols, bits), rows, cols, bits), lb.codes.clone());
            let scales = lb.scales();
            let nb = padded(cols) / BLOCK;
            for r in 0..rows {
                prop_assert_eq!(f16::from_f32(lb.row_steps[r]).to_f32(), lb.row_steps[r]);
                let row_max = w[r * cols..(r + 1) * cols].iter().fold(0f32, |m, v| m.max(v.abs()));
                for c in 0..cols {
                    let (x, s) = (w[r * cols + c], scales[r * nb + c / BLOCK]);
                    let back = lb.codes[r * cols + c] as f32 * s;
                    // Clipping the block's largest value costs at most 2/(2^bits+2) of it, rounding
                    // at most half a step (max/2^bits), and the scale grid (row max/127 steps) a
                    // few hundredths of the row's max: 0.3·max + 0.04·row max bounds them all.
                    let blk = &w[r * cols + c / BLOCK * BLOCK..r * cols + ((c / BLOCK + 1) * BLOCK).min(cols)];
                    let max = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // f16 subnormal steps (6e-8) times 127 add a little more.
                    prop_assert!((x - back).abs() <= 0.3 * max + 0.04 * row_max + 1e-5, "x={x} back={back} max={max}");
                }
            }
        }
    }

    /// A row table reads every row exactly as the kernel matrix of the same codes does (odd widths,
    /// 3, 4 and 8 bits: the general and the fast unpacking paths).
    #[test]
    fn packed_row_table_reads_what_the_kernel_matrix_does() {
        for (bits, rows, cols) in [(3u32, 5usize, 384usize), (4, 3, 64), (3, 2, 37), (4, 4, 33), (8, 3, 70)] {
            let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
            let (codes, scales, packed) = if bits == 8 {
                let (codes, row_scales) = quantize_rows(&w, rows, cols);
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

    #[test]
    fn lowbit_block_is_exact_on_representable_values() {
        for bits in [3u32, 4] {
            let half = 1i32 << (bits - 1);
            let w: Vec<f32> = (-half..half).map(|c| c as f32 * 0.5).collect();
            let lb = quantize_lowbit(&w, 1, w.len(), bits);
            assert_eq!(lb.codes, (-half..half).map(|c| c as i8).collect::<Vec<_>>(), "{bits} bits");
            // The scale is 127 f16 row steps: 0.5 to within f16 rounding.
            assert!((lb.scales()[0] - 0.5).abs() < 5e-4, "{bits} bits: scale {}", lb.scales()[0]);
        }
    }

    #[test]
    fn three_bit_fields_cross_byte_boundaries() {
        let codes: Vec<i8> = (0..11).map(|i| (i % 8) as i8 - 4).collect();
        let packed = pack_bits(&codes, 1, 11, 3);
        assert_eq!(packed.len(), 5);
        assert_eq!(unpack_bits(&packed, 1, 11, 3), codes);
    }

    /// The whole-byte / whole-group fast paths read exactly what the general path does.
    #[test]
    fn unpack_fast_paths_match_the_general_path() {
        for (bits, cols) in [(3u32, 16usize), (4, 6)] {
            let half = 1i32 << (bits - 1);
            let codes: Vec<i8> = (0..3 * cols as i32).map(|i| ((i * 7) % (2 * half) - half) as i8).collect();
            let packed = pack_bits(&codes, 3, cols, bits);
            assert_eq!(unpack_bits(&packed, 3, cols, bits), codes, "{bits} bits");
        }
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
