//! Plain scalar definitions of the kernels, in f64: what the fast paths must reproduce (up to f32
//! summation order) and what the tests compare them against.

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

/// `LayerNorm(x + residual) · w + b` per row, in f64.
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
pub fn gelu_erf(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// Self-attention of one sequence (`qkv`: `[t, 3·heads·head_dim]`, see [`crate::ops::attention`])
/// with a key mask: `mask[j] == 0` marks padding, which gets no weight (a row with no attended key
/// gets zeros). Returns `[t, heads·head_dim]`, in f64.
pub fn attention(qkv: &[f32], t: usize, heads: usize, head_dim: usize, mask: &[u32]) -> Vec<f32> {
    let h = heads * head_dim;
    let at = |i: usize, c: usize| qkv[i * 3 * h + c] as f64;
    let mut out = vec![0f32; t * h];
    for hd in 0..heads {
        for i in 0..t {
            let s: Vec<Option<f64>> = (0..t)
                .map(|j| (mask[j] != 0).then(|| (0..head_dim).map(|d| at(i, hd * head_dim + d) * at(j, h + hd * head_dim + d)).sum::<f64>() / (head_dim as f64).sqrt()))
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
