//! Property tests (native only: proptest needs std features wasm lacks).
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use shelfwise_kernels::{matmul_t, ops, padded, quantize_rows, reference, QMatrix, BLOCK};

proptest! {
    #[test]
    fn kernel_matches_reference(
        (m, n, k) in (1usize..7, 1usize..19, 1usize..100),
        seed in any::<u64>(),
    ) {
        let mut s = seed;
        let mut f = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 };
        let x: Vec<f32> = (0..m * k).map(|_| f() * 5.0).collect();
        let codes: Vec<i8> = (0..n * k).map(|_| (f() * 127.0) as i8).collect();
        let scales: Vec<f32> = (0..n * padded(k) / BLOCK).map(|_| f().abs() + 1e-3).collect();
        let w = QMatrix::from_block_scaled(n, k, &codes, &scales).unwrap();
        let q = quantize_rows(&x, m, k, w.act_bits()).unwrap();
        let mut got = vec![0f32; m * n];
        matmul_t(&q, &w, None, &mut got).unwrap();
        let want = reference::matmul_t(&q, &w);
        let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let wa: Vec<f32> = w.dequantize().iter().map(|v| v.abs()).collect();
        let mag = reference::matmul_t_f32(&xa, m, &wa, n, k);
        for i in 0..m * n {
            prop_assert!((got[i] - want[i]).abs() <= 1e-5 * mag[i] + 1e-6);
        }
    }
}

proptest! {
    #[test]
    fn layer_norm_matches_reference(
        (rows, h) in (1usize..5, 1usize..70),
        seed in any::<u64>(),
        offset in -100f32..100.0,
        with_residual in any::<bool>(),
    ) {
        let mut s = seed;
        let mut f = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 };
        let x: Vec<f32> = (0..rows * h).map(|_| f() * 10.0 + offset).collect();
        let res: Vec<f32> = (0..rows * h).map(|_| f()).collect();
        let (w, b): (Vec<f32>, Vec<f32>) = ((0..h).map(|_| f()).collect(), (0..h).map(|_| f()).collect());
        let residual = with_residual.then_some(&res[..]);
        let mut got = x.clone();
        ops::add_layer_norm(&mut got, residual, &w, &b, 1e-12).unwrap();
        let want = reference::add_layer_norm(&x, residual, &w, &b, 1e-12);
        for (g, r) in got.iter().zip(&want) {
            // f32 mean and variance of values around `offset`: relative to the row's spread.
            prop_assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()) * (1.0 + offset.abs() / 10.0), "{g} vs {r}");
        }
    }

    #[test]
    fn gelu_matches_reference(x in -30f32..30.0) {
        let mut y = [x];
        ops::gelu_erf(&mut y);
        let want = reference::gelu_erf(x);
        prop_assert!((y[0] - want).abs() <= 2e-7 * x.abs() + 1e-6, "gelu({x}) = {} want {want}", y[0]);
    }

    #[test]
    fn attention_matches_reference(
        (t, heads, hd) in (1usize..9, 1usize..4, 1usize..20),
        seed in any::<u64>(),
        scale in 0.1f32..20.0,
    ) {
        let mut s = seed;
        let mut f = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 };
        let h = heads * hd;
        let qkv: Vec<f32> = (0..t * 3 * h).map(|_| f() * scale).collect();
        let mut got = vec![0f32; t * h];
        ops::attention(&qkv, t, heads, hd, &mut Vec::new(), &mut got).unwrap();
        let want = reference::attention(&qkv, t, heads, hd, &vec![1; t]);
        for (g, r) in got.iter().zip(&want) {
            prop_assert!((g - r).abs() <= 1e-5 * scale * (1.0 + r.abs()), "{g} vs {r}");
        }
    }
}
