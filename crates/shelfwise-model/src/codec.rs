//! Quantized codecs: the arithmetic of a model file's quantized weights, on plain slices (no
//! tensors, no names): int8 codes with a scale per row or per block of 32, 3- and 4-bit codes with
//! two-level block scales, their bit packing, and what a weight reads back as ([`fake_quant`]).
//! Which tensors are stored this way, and under which names, is [`crate::storage`]'s.
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
//! Linear weights load as `QMatrix` for the int8 kernels of `shelfwise-kernels`; everything
//! else is dequantized to f32 on load by `crate::storage::take`.

use half::f16;
use shelfwise_kernels::{padded, BLOCK};

/// Quantizes a row-major `[rows, cols]` weight matrix to int8: the codes (row-major) and one scale
/// per row. `w.len()` must be `rows * cols`. (Activations are quantized at run time by
/// `shelfwise_kernels::quantize_rows`, per token and block.)
pub fn quantize_i8_per_row(w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), rows * cols, "quantize_i8_per_row: {} values for {rows}x{cols}", w.len());
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
pub fn quantize_i8_per_block(w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), rows * cols, "quantize_i8_per_block: {} values for {rows}x{cols}", w.len());
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows * padded(cols) / BLOCK);
    for row in w.chunks(cols.max(1)).take(rows) {
        for blk in row.chunks(BLOCK) {
            let (c, s) = quantize_i8_per_row(blk, 1, blk.len());
            codes.extend(c);
            scales.push(s[0]);
        }
    }
    (codes, scales)
}

/// The inverse of [`quantize_i8_per_row`]: `w_rj = q_rj · scale_r`.
pub fn dequantize_i8_per_row(codes: &[i8], scales: &[f32], cols: usize) -> Vec<f32> {
    assert_eq!(codes.len(), scales.len() * cols, "dequantize_i8_per_row: {} codes for {} rows of {cols}", codes.len(), scales.len());
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
    if step.is_finite() {
        step
    } else {
        0.0
    }
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

/// Stored bytes per row of `cols` codes of `bits` bits.
pub(crate) fn packed_cols(cols: usize, bits: u32) -> usize {
    (cols * bits as usize).div_ceil(8)
}

/// Codes as i8 from their stored bytes (`rows` rows; 8 bits: two's complement bytes, 3 or 4: [`pack_bits`]).
pub(crate) fn decode_codes(bytes: &[u8], rows: usize, cols: usize, bits: u32) -> Vec<i8> {
    if bits == 8 {
        bytes.iter().map(|&b| b as i8).collect()
    } else {
        unpack_bits(bytes, rows, cols, bits)
    }
}

/// `out[c] = code c · scale of its block of 32`.
pub(crate) fn scale_codes(out: &mut [f32], scales: &[f32], mut codes: impl Iterator<Item = i8>) {
    for (blk, &s) in out.chunks_mut(BLOCK).zip(scales) {
        for (x, q) in blk.iter_mut().zip(&mut codes) {
            *x = q as f32 * s;
        }
    }
}

/// What a `[rows, cols]` weight reads back as once stored in `bits` bits (8: int8, block 32):
/// quantized and dequantized with the loader's arithmetic. Quantization-aware training runs its
/// forward pass through this.
pub fn fake_quant(w: &[f32], rows: usize, cols: usize, bits: u32) -> Vec<f32> {
    let (codes, scales) = if bits >= 8 {
        quantize_i8_per_block(w, rows, cols)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shelfwise_kernels::padded;

    /// Rows of mixed magnitudes: each row has its own exponent (tiny to huge), some rows are zero.
    fn matrix() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
        (1usize..7, 1usize..71).prop_flat_map(|(rows, cols)| {
            let row = (prop_oneof![Just(0i32), -30i32..30], proptest::collection::vec(-1f32..1f32, cols)).prop_map(|(e, v)| {
                if e == 0 {
                    vec![0.0; v.len()]
                } else {
                    v.iter().map(|x| x * 10f32.powi(e)).collect::<Vec<_>>()
                }
            });
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
            let (codes, scales) = quantize_i8_per_row(&w, rows, cols);
            prop_assert_eq!(codes.len(), w.len());
            prop_assert_eq!(scales.len(), rows);
            prop_assert!(codes.iter().all(|&c| (-127..=127).contains(&c)));
            let back = dequantize_i8_per_row(&codes, &scales, cols);
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
        let (codes, scales) = quantize_i8_per_row(&[0.0, 0.0, 0.0, 50.0, -127.0, 0.2], 2, 3);
        assert_eq!(scales, vec![1.0, 1.0]);
        assert_eq!(codes, vec![0, 0, 0, 50, -127, 0]);
        assert_eq!(dequantize_i8_per_row(&codes, &scales, 3), vec![0.0, 0.0, 0.0, 50.0, -127.0, 0.0]);
    }
}
