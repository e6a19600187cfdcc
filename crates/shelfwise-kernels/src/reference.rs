//! Plain scalar definitions of the kernels, in f64: what the fast paths must reproduce (up to f32
//! summation order) and what the tests compare them against.

use crate::{padded, QMatrix, QRows, BLOCK};

/// `out[i][j] = Σ_blocks (Σ_t a[i][t]·w[j][t]) · a_scale[i][b] · w_scale[j][b]`, in f64.
pub fn matmul_t(x: &QRows, w: &QMatrix) -> Vec<f32> {
    let (m, k, a, asc) = x.parts();
    let (n, wk, q, wsc) = w.parts();
    assert_eq!(k, wk, "reference::matmul_t: k mismatch");
    let (kp, nb) = (padded(k), padded(k) / BLOCK);
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f64;
            for b in 0..nb {
                let mut s = 0i64;
                for t in b * BLOCK..(b + 1) * BLOCK {
                    s += a[i * kp + t] as i64 * q[j * kp + t] as i64;
                }
                acc += s as f64 * asc[i * nb + b] as f64 * wsc[j * nb + b] as f64;
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
