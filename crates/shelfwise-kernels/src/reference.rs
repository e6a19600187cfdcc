//! The one f64 reference of the encoder's arithmetic: plain scalar loops, written for clarity
//! rather than speed, that the CPU kernels (this crate's tests) and the GPU's WGSL kernels
//! (shelfwise-gpu's tests) must both reproduce, up to f32 summation order. Layouts are the
//! kernels' (row-major).
//!
//! The quantized products come in two forms: [`matmul_t`] reads the kernels' own quantized
//! operands (so it checks the SIMD sums alone), while [`linear_q8`] quantizes the activations
//! itself ([`quantize_activations`], written out independently of [`crate::quantize_rows`]), so it
//! checks the rounding too.

use crate::{padded, QMatrix, QRows, BLOCK};

/// `out[i][j] = Σ_blocks (Σ_t a[i][t]·w[j][t]) · a_scale[i][b] · w_scale[j][b]`, in f64.
pub fn matmul_t(x: &QRows, w: &QMatrix) -> Vec<f32> {
    let (m, k, n) = (x.rows(), x.cols(), w.rows());
    assert_eq!(k, w.cols(), "reference::matmul_t: k mismatch");
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f64;
            for b in 0..padded(k) / BLOCK {
                let mut s = 0i64;
                for t in b * BLOCK..((b + 1) * BLOCK).min(k) {
                    s += x.code(i, t) as i64 * w.code(j, t) as i64;
                }
                acc += s as f64 * x.scale(i, b) as f64 * w.scale(j, b) as f64;
            }
            out[i * n + j] = acc as f32;
        }
    }
    out
}

/// Unquantized `x · Wᵀ` in f64, for bounding the quantization error itself.
pub fn matmul_t_f32(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum::<f64>() as f32;
        }
    }
    out
}

/// `y[m][n] = Σ_k x[m][k] · w[n][k] + b[n]` (then GELU if `gelu`), accumulated in f64.
/// Also returns `Σ_k |x[m][k] · w[n][k]| + |b[n]|` per output, the scale of its rounding error.
pub fn linear_f32(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32], gelu: bool) -> (Vec<f32>, Vec<f32>) {
    outputs(m, n, b, gelu, |r, c| (0..k).map(|i| x[r * k + i] as f64 * w[c * k + i] as f64).fold((0.0, 0.0), |(s, a), p| (s + p, a + p.abs())))
}

/// `y[r][c] = sum + b[c]` (then GELU if `gelu`) and `mag[r][c] = |terms| + |b[c]|`, with
/// `(sum, |terms|) = terms(r, c)` in f64: the part the linear references share.
fn outputs(m: usize, n: usize, b: &[f32], gelu: bool, terms: impl Fn(usize, usize) -> (f64, f64)) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for r in 0..m {
        for c in 0..n {
            let (s, a) = terms(r, c);
            let s = s + b[c] as f64;
            y[r * n + c] = if gelu { gelu_erf_f64(s) as f32 } else { s as f32 };
            mag[r * n + c] = (a + (b[c] as f64).abs()) as f32;
        }
    }
    (y, mag)
}

/// The largest activation code against these weight codes: 127 (8 bits) when every code is in
/// -64..=63 (4-bit weights), else 63 (see [`crate::ActBits`] for why).
pub fn act_max_for(codes: &[i8]) -> f32 {
    if codes.iter().all(|&c| (-64..=63).contains(&c)) {
        127.0
    } else {
        63.0
    }
}

/// Symmetric quantization of each block of 32 of each row of `x [m, k]` (the last block partial)
/// to codes in ±`act_max`: `max = max |x|`; a block with `!(max > 0 && max.is_finite())` gets
/// scale 0 and zero codes, else `code = round_ties_even(x · (act_max / max))` clamped to
/// ±act_max and `scale = max / act_max`, all in f32 (the rounding every path must reproduce bit
/// for bit). Returns codes `[m, k]` and scales `[m, ceil(k / 32)]`.
pub fn quantize_activations(x: &[f32], m: usize, k: usize, act_max: f32) -> (Vec<i32>, Vec<f32>) {
    let nb = k.div_ceil(BLOCK);
    let mut codes = vec![0i32; m * k];
    let mut scales = vec![0f32; m * nb];
    for r in 0..m {
        for b in 0..nb {
            let blk = &x[r * k + b * BLOCK..r * k + ((b + 1) * BLOCK).min(k)];
            let max = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
            if !(max > 0.0 && max.is_finite()) {
                continue;
            }
            let inv = act_max / max;
            for (c, v) in blk.iter().enumerate() {
                codes[r * k + b * BLOCK + c] = (v * inv).round_ties_even().clamp(-act_max, act_max) as i32;
            }
            scales[r * nb + b] = max / act_max;
        }
    }
    (codes, scales)
}

/// The quantized linear layer: `x [m, k]` quantized by [`quantize_activations`] (to
/// [`act_max_for`] the codes), W as int8 codes `[n, k]` with one scale per (row, block of 32),
/// `[n, ceil(k / 32)]`; `y[r][c] = Σ_b s_b · (ascale[r][b] · wscale[c][b]) + b[c]` (then GELU if
/// `gelu`) with `s_b` the block's exact integer dot product of codes, the scale product rounded to
/// f32 as the kernels do and everything else in f64. Also returns
/// `Σ_b |s_b · ascale · wscale| + |b[c]|` per output, the scale of the f32 rounding error.
#[allow(clippy::too_many_arguments)]
pub fn linear_q8(x: &[f32], m: usize, codes: &[i8], scales: &[f32], n: usize, k: usize, b: &[f32], gelu: bool) -> (Vec<f32>, Vec<f32>) {
    let nb = k.div_ceil(BLOCK);
    let (xq, xs) = quantize_activations(x, m, k, act_max_for(codes));
    outputs(m, n, b, gelu, |r, c| {
        (0..nb).fold((0.0, 0.0), |(acc, a), blk| {
            let s: i64 = (blk * BLOCK..((blk + 1) * BLOCK).min(k)).map(|i| xq[r * k + i] as i64 * codes[c * k + i] as i64).sum();
            let p = s as f64 * (xs[r * nb + blk] * scales[c * nb + blk]) as f64;
            (acc + p, a + p.abs())
        })
    })
}

/// `LayerNorm(x + residual) · w + b` per row, in f64 (two passes).
pub fn add_layer_norm(x: &[f32], residual: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let h = w.len();
    let mut out = Vec::with_capacity(x.len());
    for (r, row) in x.chunks(h).enumerate() {
        let v: Vec<f64> = row.iter().enumerate().map(|(c, &x)| x as f64 + residual.map_or(0.0, |res| res[r * h + c] as f64)).collect();
        let mean = v.iter().sum::<f64>() / h as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / h as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        out.extend(v.iter().enumerate().map(|(c, x)| ((x - mean) * inv * w[c] as f64 + b[c] as f64) as f32));
    }
    out
}

/// erf in f64 from `erf(x) = 2/√π · e^(−x²) · Σ (2x²)ⁿ·x / (2n+1)!!`: all terms positive, so no
/// cancellation; 1 beyond |x| = 6, where 1 − erf < 1e-17.
pub fn erf(x: f64) -> f64 {
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, 0f64, 0f64);
    while term.abs() > 1e-17 * sum.abs().max(1e-300) {
        sum += term;
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
}

/// `x · (1 + erf(x / √2)) / 2`, in f64.
pub fn gelu_erf_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// [`gelu_erf_f64`] of an f32, rounded to f32.
pub fn gelu_erf(x: f32) -> f32 {
    gelu_erf_f64(x as f64) as f32
}

/// Self-attention of one sequence (`qkv`: `[t, 3·heads·head_dim]`, q | k | v, head h at columns
/// h·head_dim.., see [`crate::ops::attention`]) with a key mask: `mask[j] == 0` marks padding,
/// which gets no weight (a row with no attended key gets zeros). Returns `[t, heads·head_dim]`,
/// in f64.
pub fn attention(qkv: &[f32], t: usize, heads: usize, head_dim: usize, mask: &[u32]) -> Vec<f32> {
    let h = heads * head_dim;
    let at = |i: usize, c: usize| qkv[i * 3 * h + c] as f64;
    let mut out = vec![0f32; t * h];
    for hd in 0..heads {
        for i in 0..t {
            let s: Vec<Option<f64>> = (0..t)
                .map(|j| {
                    (mask[j] != 0)
                        .then(|| (0..head_dim).map(|d| at(i, hd * head_dim + d) * at(j, h + hd * head_dim + d)).sum::<f64>() / (head_dim as f64).sqrt())
                })
                .collect();
            let max = s.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let e: Vec<f64> = s.iter().map(|s| s.map_or(0.0, |s| (s - max).exp())).collect();
            let total: f64 = e.iter().sum();
            for d in 0..head_dim {
                let v: f64 = (0..t).map(|j| e[j] * at(j, 2 * h + hd * head_dim + d)).sum();
                out[i * h + hd * head_dim + d] = if total > 0.0 { (v / total) as f32 } else { 0.0 };
            }
        }
    }
    out
}

/// [`attention`] of `batch` padded sequences of `seq` rows each (`qkv [batch·seq, 3·hidden]`,
/// `mask [batch·seq]`): the GPU's layout. Returns `[batch·seq, hidden]`.
pub fn attention_batch(qkv: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize, heads: usize) -> Vec<f32> {
    (0..batch)
        .flat_map(|b| attention(&qkv[b * seq * 3 * hidden..(b + 1) * seq * 3 * hidden], seq, heads, hidden / heads, &mask[b * seq..(b + 1) * seq]))
        .collect()
}

/// `word[ids[i]] + pos[i % seq] + typ[0]` (summed in f32, as every path does), then LayerNorm
/// (f64). `word` is `[rows, hidden]`.
#[allow(clippy::too_many_arguments)]
pub fn embed(ids: &[u32], seq: usize, word: &[f32], hidden: usize, pos: &[f32], typ: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut sum = vec![0f32; ids.len() * hidden];
    for (i, &id) in ids.iter().enumerate() {
        let t = i % seq;
        for c in 0..hidden {
            sum[i * hidden + c] = word[id as usize * hidden + c] + pos[t * hidden + c] + typ[c];
        }
    }
    add_layer_norm(&sum, None, gamma, beta, eps)
}

/// `Σ_t x[b,t,:]·mask[b,t] / max(Σ_t mask[b,t], 1)`, in f64.
pub fn mean_pool(x: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize) -> Vec<f32> {
    let mut out = vec![0f32; batch * hidden];
    for b in 0..batch {
        let count = (0..seq).map(|t| mask[b * seq + t] as f64).sum::<f64>().max(1.0);
        for c in 0..hidden {
            let s: f64 = (0..seq).map(|t| x[(b * seq + t) * hidden + c] as f64 * mask[b * seq + t] as f64).sum();
            out[b * hidden + c] = (s / count) as f32;
        }
    }
    out
}
