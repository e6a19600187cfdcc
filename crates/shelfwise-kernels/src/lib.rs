//! CPU kernels for quantized inference: `y = x · Wᵀ + b` with block-quantized int8 (or 4-bit)
//! weights and 16-bit activations, accumulated exactly in i32 inside each block and in f32 across
//! blocks.
//!
//! Layout (the llama.cpp "q8_0 × q8_0" idea, with our own code): the reduction dimension `k` is cut
//! into blocks of [`BLOCK`] values; every block of every weight row and of every activation row has
//! its own f32 scale. A weight row stored per channel (one scale for the whole row, see
//! `shelfwise_model::quant`) or as 4-bit codes with a scale per group of 32 becomes the same
//! [`QMatrix`]; activations are quantized per (row, block) at run time by [`quantize_rows`], so
//! one outlier cannot flatten a whole 1536-wide row.
//!
//! Three implementations of the block dot product, one result:
//! - [`reference`]: plain scalar loops, the definition the tests compare against;
//! - `simd128` (wasm32 with `+simd128`): `i32x4.dot_i16x8_s` on sign-extended codes, four
//!   activation rows per weight row so every weight block is loaded and widened once;
//! - portable (everything else): the same loop shape in scalar Rust, which LLVM turns into
//!   `pmaddwd`-style code natively.
//!
//! Integer sums are exact (a block's |sum| ≤ 32·32767·128 < 2³¹), so the SIMD and portable paths
//! differ from the reference only by f32 summation order across blocks.

pub mod reference;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// Values per quantization block along `k`.
pub const BLOCK: usize = 32;

/// Largest activation code. Activations are quantized to 16 bits, not 8: the SIMD dot product
/// widens codes to i16 anyway, so the extra precision is free, and 8-bit activations alone cost
/// measurable top-1 agreement with the f32 model. Sums stay exact: 32 · 32767 · 128 < 2³¹.
pub const ACT_MAX: f32 = 32767.0;

/// Rounds `k` up to whole blocks.
pub fn padded(k: usize) -> usize {
    k.div_ceil(BLOCK) * BLOCK
}

/// Errors for inconsistent shapes: the caller's bug, reported instead of a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel shape error: {}", self.0)
    }
}

impl std::error::Error for ShapeError {}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError(why()))
    }
}

/// A `[n, k]` weight matrix as int8 codes (rows padded with zeros to whole blocks) and one f32
/// scale per (row, block): `w[r][c] ≈ codes[r][c] · scales[r][c / BLOCK]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QMatrix {
    n: usize,
    k: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

impl QMatrix {
    /// From per-row int8 codes (`[n, k]` row-major) and one scale per row.
    pub fn from_row_scaled(n: usize, k: usize, codes: &[i8], row_scales: &[f32]) -> Result<Self, ShapeError> {
        check(codes.len() == n * k && row_scales.len() == n, || {
            format!("{} codes and {} scales for a {n}x{k} matrix", codes.len(), row_scales.len())
        })?;
        let nb = padded(k) / BLOCK;
        let scales = row_scales.iter().flat_map(|&s| std::iter::repeat_n(s, nb)).collect();
        Ok(Self { n, k, codes: pad_rows(codes, n, k), scales })
    }

    /// From codes (`[n, k]` row-major, any i8 values, e.g. 4-bit codes in -8..=7) and one scale
    /// per (row, block of [`BLOCK`]) — `[n, ceil(k / BLOCK)]`.
    pub fn from_block_scaled(n: usize, k: usize, codes: &[i8], block_scales: &[f32]) -> Result<Self, ShapeError> {
        let nb = padded(k) / BLOCK;
        check(codes.len() == n * k && block_scales.len() == n * nb, || {
            format!("{} codes and {} block scales for a {n}x{k} matrix ({nb} blocks a row)", codes.len(), block_scales.len())
        })?;
        Ok(Self { n, k, codes: pad_rows(codes, n, k), scales: block_scales.to_vec() })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// The f32 matrix these codes stand for, `[n, k]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let (kp, nb) = (padded(self.k), padded(self.k) / BLOCK);
        let mut out = Vec::with_capacity(self.n * self.k);
        for r in 0..self.n {
            for c in 0..self.k {
                out.push(self.codes[r * kp + c] as f32 * self.scales[r * nb + c / BLOCK]);
            }
        }
        out
    }

    /// Row `r` as f32 into `out` (`cols` values): an embedding-table lookup. Panics if `r` is out
    /// of range or `out` has the wrong length (callers check ids first).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (kp, nb) = (padded(self.k), padded(self.k) / BLOCK);
        assert!(r < self.n && out.len() == self.k, "dequantize_row: row {r} of {}, {} outputs", self.n, out.len());
        let (codes, scales) = (&self.codes[r * kp..r * kp + self.k], &self.scales[r * nb..(r + 1) * nb]);
        for (c, (o, &q)) in out.iter_mut().zip(codes).enumerate() {
            *o = q as f32 * scales[c / BLOCK];
        }
    }

    /// Bytes held (codes and scales), for memory reports.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.scales.len()
    }
}

fn pad_rows(codes: &[i8], n: usize, k: usize) -> Vec<i8> {
    let kp = padded(k);
    if kp == k {
        return codes.to_vec();
    }
    let mut out = vec![0i8; n * kp];
    for r in 0..n {
        out[r * kp..r * kp + k].copy_from_slice(&codes[r * k..(r + 1) * k]);
    }
    out
}

/// `m` activation rows quantized per (row, block) to i16 codes.
#[derive(Debug, Clone)]
pub struct QRows {
    m: usize,
    k: usize,
    codes: Vec<i16>,
    scales: Vec<f32>,
}

impl QRows {
    pub fn rows(&self) -> usize {
        self.m
    }
}

/// Symmetric 16-bit quantization of each block of each row of `x` (`[m, k]` row-major):
/// `scale = max|x| / ACT_MAX`, `code = round(x / scale)`. An all-zero block gets scale 0 and zero
/// codes; non-finite inputs are the caller's problem upstream (the encoder never produces them
/// from finite weights), but they cannot make this panic.
pub fn quantize_rows(x: &[f32], m: usize, k: usize) -> Result<QRows, ShapeError> {
    check(x.len() == m * k, || format!("{} values for {m}x{k} activations", x.len()))?;
    let (kp, nb) = (padded(k), padded(k) / BLOCK);
    let mut codes = vec![0i16; m * kp];
    let mut scales = vec![0f32; m * nb];
    for r in 0..m {
        let row = &x[r * k..(r + 1) * k];
        for b in 0..nb {
            let blk = &row[b * BLOCK..((b + 1) * BLOCK).min(k)];
            let max = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
            if !(max > 0.0 && max.is_finite()) {
                continue;
            }
            let inv = ACT_MAX / max;
            scales[r * nb + b] = max / ACT_MAX;
            let out = &mut codes[r * kp + b * BLOCK..];
            for (o, v) in out.iter_mut().zip(blk) {
                *o = (v * inv).round().clamp(-ACT_MAX, ACT_MAX) as i16;
            }
        }
    }
    Ok(QRows { m, k, codes, scales })
}

/// `out[m, n] = x · Wᵀ (+ bias)` for quantized activations `x` and weights `w`.
pub fn matmul_t(x: &QRows, w: &QMatrix, bias: Option<&[f32]>, out: &mut [f32]) -> Result<(), ShapeError> {
    check(x.k == w.k, || format!("activations have k={}, weights k={}", x.k, w.k))?;
    check(out.len() == x.m * w.n, || format!("output has {} values for {}x{}", out.len(), x.m, w.n))?;
    if let Some(b) = bias {
        check(b.len() == w.n, || format!("bias has {} values for {} outputs", b.len(), w.n))?;
    }
    imp::matmul_t(x, w, out);
    if let Some(b) = bias {
        for row in out.chunks_mut(w.n) {
            row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
        }
    }
    Ok(())
}

/// Quantizes `x` (`[m, k]`) and multiplies: the one call the encoder makes per linear layer.
pub fn linear(x: &[f32], m: usize, w: &QMatrix, bias: Option<&[f32]>) -> Result<Vec<f32>, ShapeError> {
    let q = quantize_rows(x, m, w.k)?;
    let mut out = vec![0f32; m * w.n];
    matmul_t(&q, w, bias, &mut out)?;
    Ok(out)
}

/// Which block-dot implementation this build uses, for benchmark reports.
pub fn implementation() -> &'static str {
    imp::NAME
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd128 as imp;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable as imp;

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
mod portable {
    use super::{padded, QMatrix, QRows, BLOCK};

    pub const NAME: &str = "portable";

    /// Weight row outer, activation rows inner: the weight row stays in L1 while every token
    /// row passes over it.
    pub fn matmul_t(x: &QRows, w: &QMatrix, out: &mut [f32]) {
        let (kp, nb) = (padded(w.k), padded(w.k) / BLOCK);
        for j in 0..w.n {
            let wr = &w.codes[j * kp..(j + 1) * kp];
            let ws = &w.scales[j * nb..(j + 1) * nb];
            for i in 0..x.m {
                let ar = &x.codes[i * kp..(i + 1) * kp];
                let asc = &x.scales[i * nb..(i + 1) * nb];
                let mut acc = 0f32;
                for b in 0..nb {
                    let (a, q) = (&ar[b * BLOCK..(b + 1) * BLOCK], &wr[b * BLOCK..(b + 1) * BLOCK]);
                    let s: i32 = a.iter().zip(q).map(|(&a, &q)| a as i32 * q as i32).sum();
                    acc += s as f32 * (asc[b] * ws[b]);
                }
                out[i * w.n + j] = acc;
            }
        }
    }
}

/// Raw access for the reference implementation and the SIMD path.
impl QRows {
    pub(crate) fn parts(&self) -> (usize, usize, &[i16], &[f32]) {
        (self.m, self.k, &self.codes, &self.scales)
    }
}

impl QMatrix {
    pub(crate) fn parts(&self) -> (usize, usize, &[i8], &[f32]) {
        (self.n, self.k, &self.codes, &self.scales)
    }
}
