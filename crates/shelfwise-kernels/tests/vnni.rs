//! x86-64 only: every path this CPU has (SSE2, AVX2, AVX-VNNI, AVX-512 VNNI) returns the same
//! bits as the others, and integer block sums that are exact where `vpmaddubsw` would saturate.
//! A path the CPU lacks is reported and skipped (AVX-VNNI on AMD Zen 4 and on AVX-512 Xeons
//! without it; run-time detection must then never pick it, checked below).
#![cfg(target_arch = "x86_64")]

use proptest::prelude::*;
use shelfwise_kernels::{matmul_t_x86, padded, quantize_rows, ActBits, QMatrix, BLOCK};

const PATHS: [&str; 4] = ["x86-64-sse2", "x86-64-avx2", "x86-64-avx-vnni", "x86-64-avx512-vnni"];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Each path this CPU has, on `x` (`[m, k]`) times `w`: (path, output).
fn every_path(x: &[f32], m: usize, w: &QMatrix) -> Vec<(&'static str, Vec<f32>)> {
    let q = quantize_rows(x, m, w.cols(), w.act_bits()).unwrap();
    PATHS
        .iter()
        .filter_map(|&p| {
            let mut out = vec![0f32; m * w.rows()];
            matmul_t_x86(p, &q, w, &mut out).unwrap().then_some((p, out))
        })
        .collect()
}

fn same_bits_on_every_path(x: &[f32], m: usize, w: &QMatrix) -> Result<(), TestCaseError> {
    let outs = every_path(x, m, w);
    prop_assert_eq!(outs[0].0, "x86-64-sse2");
    for (p, out) in &outs[1..] {
        prop_assert_eq!(bits(out), bits(&outs[0].1), "{} against SSE2, {}x{}x{}", p, m, w.rows(), w.cols());
    }
    Ok(())
}

/// Weights of one of three kinds: int8 over the whole i8 range (7-bit activations), 4-bit codes
/// (8-bit activations, the operand swap of relaxed SIMD), or -64..=63 at the edges.
fn weights(kind: u8, n: usize, k: usize, f: &mut impl FnMut() -> f32) -> QMatrix {
    let codes: Vec<i8> = (0..n * k)
        .map(|_| match kind {
            0 => (f() * 128.0).floor().clamp(-128.0, 127.0) as i8,
            1 => (f() * 8.0).floor().clamp(-8.0, 7.0) as i8,
            _ => {
                if f() < 0.0 {
                    -64
                } else {
                    63
                }
            }
        })
        .collect();
    let scales: Vec<f32> = (0..n * padded(k) / BLOCK).map(|_| f().abs() * 0.05 + 1e-4).collect();
    QMatrix::from_block_scaled(n, k, &codes, &scales).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random shapes (k across group and block edges, up to the encoder's 1536 and past it; rows
    /// past every tile size), outliers that push other codes of their block to 0.
    #[test]
    fn every_x86_path_returns_the_same_bits(
        (m, n, k) in (1usize..14, 1usize..40, 1usize..1700),
        kind in 0u8..3,
        seed in any::<u64>(),
    ) {
        let mut s = seed;
        let mut f = move || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 };
        let w = weights(kind, n, k, &mut f);
        let mut x: Vec<f32> = (0..m * k).map(|_| f() * 4.0).collect();
        for i in (0..m * k).step_by(37) {
            x[i] *= 50.0;
        }
        same_bits_on_every_path(&x, m, &w)?;
    }
}

/// The largest products of both activation widths: pairs of them overflow i16 (what
/// `vpmaddubsw` would saturate), `vpdpbusd` sums them in 32 bits. Every path gives the exact sum.
#[test]
fn extreme_codes_sum_exactly() {
    let k = 2 * 128 + 40;
    // x = 1 everywhere: every activation code is the largest (63 or 127), scale 1 / that.
    let x = vec![1.0f32; 3 * k];
    for (code, act) in [(-128i8, ActBits::Seven), (127, ActBits::Seven), (-64, ActBits::Eight), (63, ActBits::Eight)] {
        let w = QMatrix::from_block_scaled(2, k, &vec![code; 2 * k], &vec![1.0; 2 * padded(k) / BLOCK]).unwrap();
        assert_eq!(w.act_bits(), act);
        // Per block: max · code · 32 (or 8 in the last) times (1 / max): within f32 rounding of
        // code · 32 a block.
        let want = code as f32 * k as f32;
        for (p, out) in every_path(&x, 3, &w) {
            for v in &out {
                assert!((v - want).abs() <= 1e-5 * want.abs(), "{p}, code {code}: {v} vs {want}");
            }
        }
    }
}

/// Run-time detection picks the widest path the CPU has, and AVX-VNNI only where the CPU
/// reports it (never on AMD Zen 4, which has AVX-512 VNNI and no AVX-VNNI); the paths it lacks
/// refuse to run.
#[test]
fn detection_picks_only_what_the_cpu_has() {
    let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni");
    let avx_vnni = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni");
    let has = [true, is_x86_feature_detected!("avx2"), avx_vnni, avx512];
    let q = quantize_rows(&[0.5; 64], 1, 64, ActBits::Seven).unwrap();
    let w = QMatrix::from_row_scaled(1, 64, &[-100; 64], &[1.0]).unwrap();
    for (p, has) in PATHS.iter().zip(has) {
        let mut out = [f32::NAN];
        assert_eq!(matmul_t_x86(p, &q, &w, &mut out).unwrap(), has, "{p}");
        assert_eq!(out[0].is_nan(), !has, "{p}: {out:?}");
        if !has {
            eprintln!("{p}: not on this CPU, not run");
        }
    }
    // The last path it has: AVX-512 VNNI before AVX-VNNI where a CPU has both.
    let best = *PATHS.iter().zip(has).rev().find(|(_, h)| *h).unwrap().0;
    assert_eq!(shelfwise_kernels::implementation(), best);
    assert!(!matmul_t_x86("x86-64-avx1024", &q, &w, &mut [0.0]).unwrap());
}

/// A stack of matrices whose row counts are not multiples of four (AVX-512 VNNI's quads straddle
/// the parts, so the stack builds its own): every path gives the same bits, and each part's
/// columns are that part's own product.
#[test]
fn stacked_rows_return_the_same_bits_as_their_parts() {
    let mut s = 11u64;
    let mut f = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let (m, k) = (6, 300);
    let parts = [weights(0, 5, k, &mut f), weights(0, 7, k, &mut f), weights(0, 2, k, &mut f)];
    let stack = QMatrix::stack_rows(&parts.iter().collect::<Vec<_>>()).unwrap();
    let x: Vec<f32> = (0..m * k).map(|_| f()).collect();
    same_bits_on_every_path(&x, m, &stack).unwrap();
    let whole = every_path(&x, m, &stack);
    let mut at = 0;
    for p in &parts {
        for (path, out) in every_path(&x, m, p) {
            let got = whole.iter().find(|(q, _)| *q == path).unwrap();
            for r in 0..m {
                assert_eq!(bits(&got.1[r * 14 + at..r * 14 + at + p.rows()]), bits(&out[r * p.rows()..(r + 1) * p.rows()]), "{path}");
            }
        }
        at += p.rows();
    }
}
