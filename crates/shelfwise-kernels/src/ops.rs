//! The float ops of a BERT encoder forward around the quantized linears: residual + LayerNorm,
//! GELU (erf form), and self-attention of one sequence. Plain f32 slices, buffers owned by the
//! caller; wasm simd128 where it pays (the reductions and the transcendental functions, which
//! are libm calls in scalar wasm), the same arithmetic in portable Rust elsewhere. The f64
//! definitions they are tested against are in [`crate::reference`].

use crate::{check, ShapeError};

/// `x = LayerNorm(x + residual) · w + b` for each row of `w.len()` values, in place (`residual`
/// optional, same shape as `x`). Mean and variance in two passes, as candle's kernel does.
pub fn add_layer_norm(x: &mut [f32], residual: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) -> Result<(), ShapeError> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2.
        return unsafe { x86::add_layer_norm(x, residual, w, b, eps) };
    }
    add_layer_norm_any(x, residual, w, b, eps)
}

#[inline(always)]
fn add_layer_norm_any(x: &mut [f32], residual: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) -> Result<(), ShapeError> {
    let h = w.len();
    check(h > 0 && b.len() == h && x.len().is_multiple_of(h), || format!("layer norm of {} values with {h} weights, {} biases", x.len(), b.len()))?;
    if let Some(r) = residual {
        check(r.len() == x.len(), || format!("residual has {} values for {}", r.len(), x.len()))?;
        x.iter_mut().zip(r).for_each(|(x, r)| *x += r);
    }
    for row in x.chunks_exact_mut(h) {
        let mean = imp::sum(row) / h as f32;
        let var = imp::centered_sq_sum(row, mean) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        row.iter_mut().zip(w.iter().zip(b)).for_each(|(x, (w, b))| *x = (*x - mean) * inv * w + b);
    }
    Ok(())
}

/// `x = x · (1 + erf(x / √2)) / 2` in place. `erf` is a rational approximation (|error| < 4e-7
/// against the exact function, see the tests), so the result matches candle's `gelu_erf` to about
/// 1e-6 (2e-7 relative).
pub fn gelu_erf(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2.
        return unsafe { x86::gelu_erf(x) };
    }
    imp::gelu_erf(x)
}

/// `out = x · w` for `x` `[m, k]` and `w` `[k, n]` (a linear layer's weight stored transposed),
/// `out` `[m, n]` overwritten. Each output is summed over `k` in order (`x₀·w₀ + x₁·w₁ + …`, no
/// fused multiply-add), one lane an output, so every lane width gives the same bits. Rows a pass
/// over `w`: up to four, so that each row of `w` is read once from memory for four of `x`'s.
pub fn linear_f32(x: &[f32], m: usize, w: &[f32], n: usize, out: &mut [f32]) -> Result<(), ShapeError> {
    let k = x.len().checked_div(m).unwrap_or(0);
    check(k * m == x.len() && w.len() == k * n && out.len() == m * n, || {
        format!("{} activations in {m} rows, {} weights for {n} outputs, {} outputs", x.len(), w.len(), out.len())
    })?;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2.
        unsafe { x86::linear_f32(x, k, w, n, out) };
        return Ok(());
    }
    linear_f32_any(x, k, w, n, out);
    Ok(())
}

#[inline(always)]
fn linear_f32_any(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (x, out) in x.chunks(4 * k.max(1)).zip(out.chunks_mut(4 * n.max(1))) {
        for (d, w) in w.chunks_exact(n.max(1)).enumerate().take(k) {
            for (x, out) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
                imp::axpy(out, x[d], w);
            }
        }
    }
}

/// Scaled dot-product self-attention of one sequence of `t` tokens with no padding (drop padded
/// tokens before: a masked key gets exactly zero weight, and a masked query is never read).
/// `qkv`: `[t, 3·heads·head_dim]`, each row the token's query, key and value, heads side by side
/// in each. `out`: `[t, heads·head_dim]`. `scores` is scratch, resized as needed. The softmax
/// subtracts each row's maximum first, so large scores cannot overflow.
pub fn attention(qkv: &[f32], t: usize, heads: usize, head_dim: usize, scores: &mut Vec<f32>, out: &mut [f32]) -> Result<(), ShapeError> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2.
        return unsafe { x86::attention(qkv, t, heads, head_dim, scores, out) };
    }
    attention_any(qkv, t, heads, head_dim, scores, out)
}

/// [`attention`] on the baseline code whatever this CPU has, so that the tests can hold the
/// x86-64 AVX2 form to it bit for bit.
#[doc(hidden)]
pub fn attention_baseline(qkv: &[f32], t: usize, heads: usize, head_dim: usize, scores: &mut Vec<f32>, out: &mut [f32]) -> Result<(), ShapeError> {
    attention_any(qkv, t, heads, head_dim, scores, out)
}

#[inline(always)]
fn attention_any(qkv: &[f32], t: usize, heads: usize, head_dim: usize, scores: &mut Vec<f32>, out: &mut [f32]) -> Result<(), ShapeError> {
    let h = heads * head_dim;
    check(qkv.len() == t * 3 * h && out.len() == t * h, || {
        format!("attention of {t} tokens, {heads}x{head_dim}: qkv has {} values, out {}", qkv.len(), out.len())
    })?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scores.resize(t, 0.0);
    out.fill(0.0);
    let row = |i: usize| &qkv[i * 3 * h..(i + 1) * 3 * h];
    for hd in 0..heads {
        let cols = hd * head_dim..(hd + 1) * head_dim;
        for i in 0..t {
            let q = &row(i)[cols.clone()];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = imp::dot(q, &row(j)[h + cols.start..h + cols.end]) * scale;
            }
            let max = scores.iter().fold(f32::NEG_INFINITY, |a, &s| if s > a { s } else { a });
            imp::exp_shifted(scores, max);
            let inv = 1.0 / imp::sum(scores);
            let o = &mut out[i * h + cols.start..i * h + cols.end];
            for (j, &p) in scores.iter().enumerate() {
                imp::axpy(o, p * inv, &row(j)[2 * h + cols.start..2 * h + cols.end]);
            }
        }
    }
    Ok(())
}

// exp(x) = 2^n · e^r with n = round(x / ln 2), r = x − n·ln 2 in two parts (Cody–Waite), and e^r
// from its degree-6 Taylor polynomial on |r| ≤ ln2/2 (relative error < 2e-7, about 2 ulp).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
const EXP_POLY: [f32; 7] = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0];

// erf(x) = x·P(x²)/Q(x²), the rational approximation Eigen and XNNPACK use for f32 (|error| <
// 4e-7), on |x| ≤ 3.8325; beyond, erf is within half an ulp of ±1 in f32, and the clamp keeps the
// approximation's larger error near 4 out.
const ERF_CLAMP: f32 = 3.832_507;
#[allow(clippy::excessive_precision)] // the published coefficients, as published
const ERF_P: [f32; 7] = [-1.609_603_3e-2, -2.954_599_8e-3, -7.349_906_3e-4, -5.692_506_4e-5, -2.101_024e-6, 2.770_681_4e-8, -2.726_142_3e-10];
const ERF_Q: [f32; 5] = [-1.426_473_9e-2, -7.373_329_2e-3, -1.682_827e-3, -2.133_740_6e-4, -1.456_607_2e-5];

/// x86-64: the same code compiled with AVX2 enabled (where the CPU has it), so that LLVM widens
/// the element-wise loops to 8 lanes and rounds with `vroundps` instead of calling `rintf`. Rust
/// never fuses a multiply and an add on its own, and the reductions keep their four partial sums,
/// so every value is the baseline build's, bit for bit.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ShapeError;

    #[target_feature(enable = "avx2")]
    pub fn add_layer_norm(x: &mut [f32], residual: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) -> Result<(), ShapeError> {
        super::add_layer_norm_any(x, residual, w, b, eps)
    }

    #[target_feature(enable = "avx2")]
    pub fn gelu_erf(x: &mut [f32]) {
        super::imp::gelu_erf(x)
    }

    #[target_feature(enable = "avx2")]
    pub fn linear_f32(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        super::linear_f32_any(x, k, w, n, out)
    }

    /// Keys a step of the scores: one 256-bit register of f32.
    const KEYS: usize = 8;

    /// [`super::attention`] with each head's keys transposed first (`[head_dim][t]`, padded to
    /// whole [`KEYS`]), so that a query's scores are computed eight keys at a time, one lane a
    /// key: lane `j` runs exactly the portable `dot`'s steps for key `j` (four partial sums over
    /// the dimensions in order, `(s0 + s1) + (s2 + s3)`, the tail after), so the scores, and all
    /// that follows, are the same bits.
    #[target_feature(enable = "avx2")]
    pub fn attention(qkv: &[f32], t: usize, heads: usize, head_dim: usize, scores: &mut Vec<f32>, out: &mut [f32]) -> Result<(), ShapeError> {
        use super::imp;
        let h = heads * head_dim;
        super::check(qkv.len() == t * 3 * h && out.len() == t * h, || {
            format!("attention of {t} tokens, {heads}x{head_dim}: qkv has {} values, out {}", qkv.len(), out.len())
        })?;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let tp = t.div_ceil(KEYS) * KEYS;
        // One buffer: the scores (tp), then the transposed keys.
        scores.resize(tp + head_dim * tp, 0.0);
        let (sc, kt) = scores.split_at_mut(tp);
        out.fill(0.0);
        let row = |i: usize| &qkv[i * 3 * h..(i + 1) * 3 * h];
        let whole = head_dim / 4 * 4;
        for hd in 0..heads {
            let cols = hd * head_dim..(hd + 1) * head_dim;
            for j in 0..t {
                for (e, &k) in row(j)[h + cols.start..h + cols.end].iter().enumerate() {
                    kt[e * tp + j] = k;
                }
            }
            for i in 0..t {
                let q = &row(i)[cols.clone()];
                for jb in (0..tp).step_by(KEYS) {
                    // Four named accumulators (an indexed array of them lives on the stack).
                    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; KEYS], [0f32; KEYS], [0f32; KEYS], [0f32; KEYS]);
                    for e in (0..whole).step_by(4) {
                        let k = |d: usize| -> &[f32; KEYS] { kt[(e + d) * tp + jb..(e + d) * tp + jb + KEYS].try_into().expect("KEYS values") };
                        let (k0, k1, k2, k3) = (k(0), k(1), k(2), k(3));
                        for l in 0..KEYS {
                            a0[l] += q[e] * k0[l];
                            a1[l] += q[e + 1] * k1[l];
                            a2[l] += q[e + 2] * k2[l];
                            a3[l] += q[e + 3] * k3[l];
                        }
                    }
                    let acc = [a0, a1, a2, a3];
                    for l in 0..KEYS {
                        let mut s = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
                        for e in whole..head_dim {
                            s += q[e] * kt[e * tp + jb + l];
                        }
                        sc[jb + l] = s * scale;
                    }
                }
                let sc = &mut sc[..t];
                let max = sc.iter().fold(f32::NEG_INFINITY, |a, &s| if s > a { s } else { a });
                imp::exp_shifted(sc, max);
                let inv = 1.0 / imp::sum(sc);
                let o = &mut out[i * h + cols.start..i * h + cols.end];
                let v = |j: usize| &row(j)[2 * h + cols.start..2 * h + cols.end];
                match head_dim {
                    32 => weighted_sum::<32>(o, sc, inv, v),
                    64 => weighted_sum::<64>(o, sc, inv, v),
                    _ => {
                        for (j, &p) in sc.iter().enumerate() {
                            imp::axpy(o, p * inv, v(j));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `o += (p_j · inv) · v(j)` for each j in order (the portable `axpy`'s steps), with `o` in
    /// registers across the values instead of loaded and stored once a value.
    #[inline(always)]
    fn weighted_sum<'a, const D: usize>(o: &mut [f32], p: &[f32], inv: f32, v: impl Fn(usize) -> &'a [f32]) {
        let o: &mut [f32; D] = o.try_into().expect("D outputs");
        let mut acc = *o;
        for (j, &p) in p.iter().enumerate() {
            let (a, x): (f32, &[f32; D]) = (p * inv, v(j).try_into().expect("D values"));
            for d in 0..D {
                acc[d] += a * x[d];
            }
        }
        *o = acc;
    }
}

/// Scalar forms of the vector code, shared by the portable path and the simd128 tails.
mod scalar {
    use super::*;

    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        let x = x.clamp(EXP_LO, EXP_HI);
        let n = (x * std::f32::consts::LOG2_E).round_ties_even();
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = EXP_POLY.iter().rev().fold(0.0, |acc, &c| acc * r + c);
        p * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }

    #[inline(always)]
    pub fn erf(x: f32) -> f32 {
        let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
        let x2 = x * x;
        let p = ERF_P.iter().rev().fold(0.0, |acc, &c| acc * x2 + c);
        let q = ERF_Q.iter().rev().fold(0.0, |acc, &c| acc * x2 + c);
        x * p / q
    }

    #[inline(always)]
    pub fn gelu(x: f32) -> f32 {
        0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
    }
}

/// The exact-function approximations, for the tests.
pub fn approx_exp(x: f32) -> f32 {
    scalar::exp(x)
}

/// See [`approx_exp`].
pub fn approx_erf(x: f32) -> f32 {
    scalar::erf(x)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd as imp;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable as imp;

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
mod portable {
    use super::scalar;

    /// Four partial sums, so the loops vectorise natively without reassociation flags.
    #[inline(always)]
    fn sum4(n: usize, f: impl Fn(usize) -> f32) -> f32 {
        let mut acc = [0f32; 4];
        let whole = n / 4 * 4;
        for i in (0..whole).step_by(4) {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += f(i + l);
            }
        }
        (whole..n).fold((acc[0] + acc[1]) + (acc[2] + acc[3]), |s, i| s + f(i))
    }

    #[inline(always)]
    pub fn sum(x: &[f32]) -> f32 {
        sum4(x.len(), |i| x[i])
    }

    #[inline(always)]
    pub fn centered_sq_sum(x: &[f32], mean: f32) -> f32 {
        sum4(x.len(), |i| (x[i] - mean) * (x[i] - mean))
    }

    #[inline(always)]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let b = &b[..a.len()];
        sum4(a.len(), |i| a[i] * b[i])
    }

    #[inline(always)]
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
    }

    #[inline(always)]
    pub fn exp_shifted(x: &mut [f32], shift: f32) {
        x.iter_mut().for_each(|v| *v = scalar::exp(*v - shift));
    }

    #[inline(always)]
    pub fn gelu_erf(x: &mut [f32]) {
        x.iter_mut().for_each(|v| *v = scalar::gelu(*v));
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::*;

    #[inline(always)]
    fn hsum(v: v128) -> f32 {
        (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v)) + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
    }

    /// Σ f(lanes) over whole f32x4 chunks of `n`, then the scalar tail.
    #[inline(always)]
    fn sum4(n: usize, f: impl Fn(usize) -> v128, tail: impl Fn(usize) -> f32) -> f32 {
        let whole = n / 4 * 4;
        let mut acc = f32x4_splat(0.0);
        for i in (0..whole).step_by(4) {
            acc = f32x4_add(acc, f(i));
        }
        (whole..n).fold(hsum(acc), |s, i| s + tail(i))
    }

    /// # Safety
    /// `x[i..i + 4]` must be in bounds (wasm loads have no alignment requirement).
    #[inline(always)]
    unsafe fn ld(x: &[f32], i: usize) -> v128 {
        v128_load(x.as_ptr().add(i) as *const v128)
    }

    pub fn sum(x: &[f32]) -> f32 {
        // SAFETY: sum4 calls f only with i + 4 ≤ len.
        sum4(x.len(), |i| unsafe { ld(x, i) }, |i| x[i])
    }

    pub fn centered_sq_sum(x: &[f32], mean: f32) -> f32 {
        let m = f32x4_splat(mean);
        // SAFETY: as in sum.
        sum4(
            x.len(),
            |i| {
                let d = f32x4_sub(unsafe { ld(x, i) }, m);
                f32x4_mul(d, d)
            },
            |i| (x[i] - mean) * (x[i] - mean),
        )
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let b = &b[..a.len()];
        // SAFETY: as in sum; b is as long as a.
        sum4(a.len(), |i| unsafe { f32x4_mul(ld(a, i), ld(b, i)) }, |i| a[i] * b[i])
    }

    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let x = &x[..y.len()];
        let whole = y.len() / 4 * 4;
        let av = f32x4_splat(a);
        for i in (0..whole).step_by(4) {
            // SAFETY: i + 4 ≤ whole ≤ len of both.
            unsafe {
                let p = y.as_mut_ptr().add(i) as *mut v128;
                v128_store(p, f32x4_add(v128_load(p), f32x4_mul(av, ld(x, i))));
            }
        }
        for i in whole..y.len() {
            y[i] += a * x[i];
        }
    }

    /// Horner's rule over `c` (lowest degree first).
    #[inline(always)]
    fn poly(x: v128, c: &[f32]) -> v128 {
        c.iter().rev().fold(f32x4_splat(0.0), |acc, &c| f32x4_add(f32x4_mul(acc, x), f32x4_splat(c)))
    }

    #[inline(always)]
    fn exp4(x: v128) -> v128 {
        let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(EXP_LO)), f32x4_splat(EXP_HI));
        let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(std::f32::consts::LOG2_E)));
        let r = f32x4_sub(f32x4_sub(x, f32x4_mul(n, f32x4_splat(LN2_HI))), f32x4_mul(n, f32x4_splat(LN2_LO)));
        let pow2 = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
        f32x4_mul(poly(r, &EXP_POLY), pow2)
    }

    #[inline(always)]
    fn gelu4(x: v128) -> v128 {
        let z = f32x4_mul(x, f32x4_splat(std::f32::consts::FRAC_1_SQRT_2));
        let z = f32x4_pmin(f32x4_pmax(z, f32x4_splat(-ERF_CLAMP)), f32x4_splat(ERF_CLAMP));
        let z2 = f32x4_mul(z, z);
        let erf = f32x4_div(f32x4_mul(z, poly(z2, &ERF_P)), poly(z2, &ERF_Q));
        f32x4_mul(f32x4_mul(f32x4_splat(0.5), x), f32x4_add(f32x4_splat(1.0), erf))
    }

    #[inline(always)]
    fn map4(x: &mut [f32], f: impl Fn(v128) -> v128, tail: impl Fn(f32) -> f32) {
        let whole = x.len() / 4 * 4;
        for i in (0..whole).step_by(4) {
            // SAFETY: i + 4 ≤ whole ≤ len.
            unsafe {
                let p = x.as_mut_ptr().add(i) as *mut v128;
                v128_store(p, f(v128_load(p)));
            }
        }
        x[whole..].iter_mut().for_each(|v| *v = tail(*v));
    }

    pub fn exp_shifted(x: &mut [f32], shift: f32) {
        let s = f32x4_splat(shift);
        map4(x, |v| exp4(f32x4_sub(v, s)), |v| scalar::exp(v - shift));
    }

    pub fn gelu_erf(x: &mut [f32]) {
        map4(x, gelu4, scalar::gelu);
    }
}
