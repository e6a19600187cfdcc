//! GPTQ (Frantar et al., 2022) for the encoder's linear layers. Plain rounding minimises each
//! weight's own error; GPTQ rounds one input column at a time and spreads that column's rounding
//! error over the columns not yet rounded, weighted by the inverse of `H = XᵀX` (the layer's
//! inputs on calibration titles), so that the layer's *outputs* on real inputs move least.
//!
//! [`input_hessians`] runs the f32 encoder over calibration titles and sums `XᵀX` for every
//! linear layer's input; [`quantize_lowbit_gptq`] quantizes one matrix with it into the same
//! [`LowBit`] form (and file format) as [`crate::codec::quantize_lowbit`].

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::codec::{lowbit_block, row_step, LowBit};
use crate::encoder::CandleEncoder;
use crate::error::{ModelError, Result};
use crate::format::EncoderConfig;
use crate::tokenize::TitleTokenizer;
use shelfwise_kernels::{padded, BLOCK};

/// `XᵀX` (row-major, f64) of the inputs of every encoder linear weight, keyed by the weight's name.
pub type Hessians = HashMap<String, (usize, Vec<f64>)>;

/// Inputs of every linear layer of an f32 model over `titles` (one at a time: no padding to
/// mask), summed as `XᵀX`: the encoder's own forward ([`CandleEncoder::block_with_inputs`]) records
/// them block by block.
pub fn input_hessians(cfg: &EncoderConfig, t: &HashMap<String, Tensor>, tok: &TitleTokenizer, titles: &[&str]) -> Result<Hessians> {
    let enc = CandleEncoder::from_tensors(cfg, t)?;
    let mut xs = titles
        .iter()
        .map(|title| {
            let ids = tok.encode(title)?.ids;
            let n = ids.len();
            enc.embeddings(&Tensor::from_vec(ids, (1, n), &Device::Cpu)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Hessians::new();
    for l in 0..cfg.layers {
        let mut inputs: [Vec<Tensor>; 4] = Default::default();
        for x in xs.iter_mut() {
            let (y, ins) = enc.block_with_inputs(l, x)?;
            for (rows, input) in inputs.iter_mut().zip(ins) {
                rows.push(input.squeeze(0)?);
            }
            *x = y;
        }
        let p = format!("encoder.layer.{l}");
        let names: [&[&str]; 4] =
            [&["attention.self.query", "attention.self.key", "attention.self.value"], &["attention.output.dense"], &["intermediate.dense"], &["output.dense"]];
        for (rows, names) in inputs.iter().zip(names) {
            let x = Tensor::cat(rows, 0)?;
            let d = x.dim(1)?;
            let xtx: Vec<f64> = x.t()?.matmul(&x)?.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
            for n in names {
                out.insert(format!("{p}.{n}.weight"), (d, xtx.clone()));
            }
        }
    }
    Ok(out)
}

/// The upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = Uᵀ U`), as GPTQ uses it: row `i` of `U`, divided
/// by `U[i][i]`, is how the error of column `i` spreads over the later columns.
fn inverse_upper_factor(h: &[f64], n: usize) -> Result<Vec<f64>> {
    // With J the index reversal, J H J = L Lᵀ gives H⁻¹ = (J L⁻ᵀ J)(J L⁻¹ J) where J L⁻¹ J is
    // upper triangular: U = J L⁻¹ J, no explicit inverse of H needed.
    let mut a: Vec<f64> = (0..n * n).map(|x| h[(n - 1 - x / n) * n + (n - 1 - x % n)]).collect();
    shelfwise_core::linalg::cholesky(&mut a, n).map_err(|j| ModelError::Compute(format!("GPTQ: calibration Hessian not positive definite at column {j}")))?;
    // L⁻¹ row by row from L X = I: X[r] = (e_r − Σ_{k<r} L[r][k] X[k]) / L[r][r] (row updates).
    let mut inv = vec![0f64; n * n];
    for r in 0..n {
        let (done, rest) = inv.split_at_mut(r * n);
        let row = &mut rest[..n];
        for k in 0..r {
            let l = a[r * n + k];
            for (x, &y) in row[..=k].iter_mut().zip(&done[k * n..k * n + k + 1]) {
                *x -= l * y;
            }
        }
        row[r] += 1.0;
        let d = a[r * n + r];
        row[..=r].iter_mut().for_each(|x| *x /= d);
    }
    Ok((0..n * n).map(|x| inv[(n - 1 - x / n) * n + (n - 1 - x % n)]).collect())
}

/// GPTQ to `bits` with the block-32, two-level scales of [`crate::codec::quantize_lowbit`]: a
/// block's scale is chosen (by the same search) when the sweep reaches it, from the weights as
/// the earlier columns' errors have updated them. `hessian`: `XᵀX` over the layer's inputs
/// (`cols × cols`). Dampened by 1 % of its mean diagonal, as in the paper.
pub fn quantize_lowbit_gptq(w: &[f32], rows: usize, cols: usize, bits: u32, hessian: &[f64]) -> Result<LowBit> {
    assert_eq!(w.len(), rows * cols, "quantize_lowbit_gptq: {} values for {rows}x{cols}", w.len());
    assert_eq!(hessian.len(), cols * cols, "quantize_lowbit_gptq: Hessian of {} values for {cols} columns", hessian.len());
    let lo = -(1i32 << (bits - 1)) as f32;
    let mut h = hessian.to_vec();
    let mut w = w.to_vec();
    // Inputs that were always zero carry no information: their weights go to zero.
    for i in 0..cols {
        if h[i * cols + i] == 0.0 {
            h[i * cols + i] = 1.0;
            (0..rows).for_each(|r| w[r * cols + i] = 0.0);
        }
    }
    let damp = 0.01 * (0..cols).map(|i| h[i * cols + i]).sum::<f64>() / cols.max(1) as f64;
    (0..cols).for_each(|i| h[i * cols + i] += damp);
    let u = inverse_upper_factor(&h, cols)?;
    // Row steps from the weights before any update; updated blocks that outgrow them clip.
    let steps: Vec<f32> = w.chunks(cols.max(1)).take(rows).map(|row| row_step(row, lo)).collect();
    let nb = padded(cols) / BLOCK;
    let mut out = LowBit { bits, codes: vec![0; rows * cols], block_scales: vec![0; rows * nb], row_steps: steps.clone() };
    let urow: Vec<f32> = u.iter().map(|&x| x as f32).collect();
    for b in 0..nb {
        let (c0, c1) = (b * BLOCK, ((b + 1) * BLOCK).min(cols));
        for r in 0..rows {
            out.block_scales[r * nb + b] = lowbit_block(&w[r * cols + c0..r * cols + c1], steps[r], lo).0;
        }
        for i in c0..c1 {
            let d = urow[i * cols + i];
            let tail = &urow[i * cols + i + 1..(i + 1) * cols];
            for r in 0..rows {
                let s = out.block_scales[r * nb + b] as f32 * steps[r];
                let row = &mut w[r * cols..(r + 1) * cols];
                let q = if s == 0.0 { 0 } else { (row[i] / s).round().clamp(lo, -lo - 1.0) as i8 };
                out.codes[r * cols + i] = q;
                let err = (row[i] - q as f32 * s) / d;
                for (x, &uu) in row[i + 1..].iter_mut().zip(tail) {
                    *x -= err * uu;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::quantize_lowbit;

    fn det(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn inverse_upper_factor_factors_the_inverse() {
        let n = 5;
        let a = det(n * n, 3);
        // H = A Aᵀ + I: symmetric positive definite.
        let h: Vec<f64> = (0..n * n)
            .map(|x| (0..n).map(|k| a[(x / n) * n + k] as f64 * a[(x % n) * n + k] as f64).sum::<f64>() + if x / n == x % n { 1.0 } else { 0.0 })
            .collect();
        let u = inverse_upper_factor(&h, n).unwrap();
        for r in 0..n {
            for c in 0..r {
                assert_eq!(u[r * n + c], 0.0, "upper triangular");
            }
        }
        // H · (Uᵀ U) = I.
        for r in 0..n {
            for c in 0..n {
                let hinv_kc = |k: usize| (0..n).map(|m| u[m * n + k] * u[m * n + c]).sum::<f64>();
                let v: f64 = (0..n).map(|k| h[r * n + k] * hinv_kc(k)).sum();
                assert!((v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-9, "({r},{c}) = {v}");
            }
        }
    }

    /// On inputs with correlated features, GPTQ's outputs are closer to the f32 layer's than plain
    /// rounding's (what it is for), and its codes and scales are in range.
    #[test]
    fn gptq_beats_rounding_on_the_layers_outputs() {
        let (rows, cols, n) = (24, 96, 400);
        let w = det(rows * cols, 1);
        // Inputs: 8 latent factors mixed into 96 features, plus a little noise.
        let (z, mix, noise) = (det(n * 8, 2), det(8 * cols, 3), det(n * cols, 4));
        let x: Vec<f32> = (0..n * cols).map(|i| (0..8).map(|k| z[(i / cols) * 8 + k] * mix[k * cols + i % cols]).sum::<f32>() + 0.05 * noise[i]).collect();
        let h: Vec<f64> = (0..cols * cols).map(|ij| (0..n).map(|s| x[s * cols + ij / cols] as f64 * x[s * cols + ij % cols] as f64).sum()).collect();
        let out_err = |lb: &LowBit| -> f64 {
            let sc = lb.scales();
            let nb = padded(cols) / BLOCK;
            let wq: Vec<f32> = (0..rows * cols).map(|i| lb.codes[i] as f32 * sc[(i / cols) * nb + (i % cols) / BLOCK]).collect();
            (0..n)
                .flat_map(|s| (0..rows).map(move |r| (s, r)))
                .map(|(s, r)| {
                    let d: f32 = (0..cols).map(|c| x[s * cols + c] * (w[r * cols + c] - wq[r * cols + c])).sum();
                    (d as f64).powi(2)
                })
                .sum()
        };
        for bits in [3u32, 4] {
            let g = quantize_lowbit_gptq(&w, rows, cols, bits, &h).unwrap();
            let half = 1i8 << (bits - 1);
            assert!(g.codes.iter().all(|&c| (-half..half).contains(&c)));
            let (eg, er) = (out_err(&g), out_err(&quantize_lowbit(&w, rows, cols, bits)));
            assert!(eg < 0.7 * er, "{bits} bits: GPTQ output error {eg} vs rounding {er}");
        }
    }
}
