//! Plain CPU references of every kernel, in f64 where it matters, written for clarity rather than
//! speed: what the kernel tests compare the GPU against. Layouts are the kernels' (row-major).
//! The quantized matmul's reference ([`matmul_q8`]) quantizes the activations to 7 or 8 bits
//! exactly as the CPU kernels of shelfwise-kernels do (written out again here, independently).

use shelfwise_model::quant::BLOCK;

/// `y[m][n] = Σ_k x[m][k] · w[n][k] + b[n]` (then GELU if `gelu`), accumulated in f64.
/// Also returns `Σ_k |x[m][k] · w[n][k]|` per output, the scale of its rounding error.
pub fn matmul(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32], gelu: bool) -> (Vec<f32>, Vec<f32>) {
    outputs(m, n, b, gelu, |r, c| {
        (0..k).map(|i| x[r * k + i] as f64 * w[c * k + i] as f64).fold((0.0, 0.0), |(s, a), p| (s + p, a + p.abs()))
    })
}

/// `y[r][c] = sum + b[c]` (then GELU if `gelu`) and `mag[r][c] = |terms| + |b[c]|`, with
/// `(sum, |terms|) = terms(r, c)` in f64: the part the matmul references share.
fn outputs(m: usize, n: usize, b: &[f32], gelu: bool, terms: impl Fn(usize, usize) -> (f64, f64)) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for r in 0..m {
        for c in 0..n {
            let (s, a) = terms(r, c);
            let s = s + b[c] as f64;
            y[r * n + c] = if gelu { gelu_erf(s) as f32 } else { s as f32 };
            mag[r * n + c] = (a + (b[c] as f64).abs()) as f32;
        }
    }
    (y, mag)
}

/// The largest activation code against these weight codes (u8 bit patterns of int8), as the CPU
/// kernels choose it: 127 (8 bits) when every code is in -64..=63 (4-bit weights), else 63.
pub fn act_max_for(codes: &[u8]) -> f32 {
    if codes.iter().all(|&c| (-64..=63).contains(&(c as i8))) {
        127.0
    } else {
        63.0
    }
}

/// Symmetric quantization of each block of 32 of each row of `x [m, k]` (the last block partial,
/// its missing values 0) to codes in ±`act_max`, exactly the CPU kernels'
/// (`shelfwise_kernels::quantize_rows`): `max = max |x|`; a block with
/// `!(max > 0 && max.is_finite())` gets scale 0 and zero codes, else
/// `code = round_ties_even(x · (act_max / max))` clamped to ±act_max and `scale = max / act_max`,
/// all in f32. Returns codes `[m, k]` and scales `[m, ceil(k / 32)]`.
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

/// The quantized matmul of the CPU kernels and of `matmul_q8`: `x [m, k]` quantized by
/// [`quantize_activations`] (to [`act_max_for`] the codes), W as int8 codes (`[n, k]`, u8 bit patterns) with one scale per (row,
/// block of 32), `[n, ceil(k / 32)]`; `y[r][c] = Σ_b s_b · (ascale[r][b] · wscale[c][b]) + b[c]`
/// (then GELU if `gelu`) with `s_b` the block's exact integer dot product of codes, the scale
/// product rounded to f32 as the kernels do and everything else in f64. Also returns
/// `Σ_b |s_b · ascale · wscale| + |b[c]|` per output, the scale of the f32 rounding error.
#[allow(clippy::too_many_arguments)]
pub fn matmul_q8(x: &[f32], m: usize, codes: &[u8], scales: &[f32], n: usize, k: usize, b: &[f32], gelu: bool) -> (Vec<f32>, Vec<f32>) {
    let nb = k.div_ceil(BLOCK);
    let (xq, xs) = quantize_activations(x, m, k, act_max_for(codes));
    outputs(m, n, b, gelu, |r, c| {
        (0..nb).fold((0.0, 0.0), |(acc, a), blk| {
            let s: i64 = (blk * BLOCK..((blk + 1) * BLOCK).min(k)).map(|i| xq[r * k + i] as i64 * codes[c * k + i] as i8 as i64).sum();
            let p = s as f64 * (xs[r * nb + blk] * scales[c * nb + blk]) as f64;
            (acc + p, a + p.abs())
        })
    })
}

/// LayerNorm of each row of `n` (of `a + res`), f64 two-pass.
pub fn layer_norm(a: &[f32], res: Option<&[f32]>, gamma: &[f32], beta: &[f32], n: usize, eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    for (r, row) in a.chunks(n).enumerate() {
        let v: Vec<f64> = (0..n).map(|c| row[c] as f64 + res.map_or(0.0, |x| x[r * n + c] as f64)).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for c in 0..n {
            out[r * n + c] = ((v[c] - mean) * inv * gamma[c] as f64 + beta[c] as f64) as f32;
        }
    }
    out
}

/// erf in f64: Maclaurin series below 2.5 (terms fall fast enough there for ~1e-15), Laplace's
/// continued fraction for erfc above. Accurate to ~1e-14, far below f32's resolution.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let y = if a < 2.5 {
        // erf(a) = 2/√π Σ (-1)^n a^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, mut n) = (a, a, 0f64);
        loop {
            n += 1.0;
            term *= -a * a / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() || n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a > 27.0 {
        1.0
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …))))), evaluated bottom-up.
        let mut f = 0f64;
        for k in (1..=120).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
    };
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// GELU, erf form: x/2 · (1 + erf(x/√2)).
pub fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Attention over `qkv [batch*seq, 3*hidden]` (q | k | v, head h at columns h·hd..), additive mask
/// `(mask - 1) · 1e9`, f64. Returns `ctx [batch*seq, hidden]`.
pub fn attention(qkv: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize, heads: usize) -> Vec<f32> {
    let hd = hidden / heads;
    let stride = 3 * hidden;
    let scale = 1.0 / (hd as f64).sqrt();
    let mut ctx = vec![0f32; batch * seq * hidden];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                let q = &qkv[(b * seq + i) * stride + h * hd..][..hd];
                let scores: Vec<f64> = (0..seq)
                    .map(|j| {
                        let k = &qkv[(b * seq + j) * stride + hidden + h * hd..][..hd];
                        let dot: f64 = q.iter().zip(k).map(|(a, b)| *a as f64 * *b as f64).sum();
                        dot * scale + (mask[b * seq + j] as f64 - 1.0) * 1e9
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    let o: f64 = (0..seq).map(|j| e[j] * qkv[(b * seq + j) * stride + 2 * hidden + h * hd + d] as f64).sum();
                    ctx[(b * seq + i) * hidden + h * hd + d] = (o / total) as f32;
                }
            }
        }
    }
    ctx
}

/// `word[ids[i]] + pos[i % seq] + typ[0]`, then LayerNorm (f64). `word` f32 `[rows, hidden]`.
#[allow(clippy::too_many_arguments)]
pub fn embed(ids: &[u32], seq: usize, word: &[f32], hidden: usize, pos: &[f32], typ: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut sum = vec![0f32; ids.len() * hidden];
    for (i, &id) in ids.iter().enumerate() {
        let t = i % seq;
        for c in 0..hidden {
            sum[i * hidden + c] = word[id as usize * hidden + c] + pos[t * hidden + c] + typ[c];
        }
    }
    layer_norm(&sum, None, gamma, beta, hidden, eps)
}

/// Σ_t x[b,t,:]·mask[b,t] / max(Σ_t mask[b,t], 1), f64.
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
