//! Property tests (native only: proptest needs std features wasm lacks).
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use shelfwise_kernels::{matmul_t, padded, quantize_rows, reference, QMatrix, BLOCK};

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
        let q = quantize_rows(&x, m, k).unwrap();
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
