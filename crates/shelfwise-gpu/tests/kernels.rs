//! Every kernel against its plain CPU reference (shelfwise_kernels::reference, the one f64
//! reference the CPU kernels are held to as well) over seeded
//! random shapes, including 1, odd sizes, and sizes just off the 64-row/64-column/16-deep matmul
//! tile (32-deep, one quantization block, for the quantized matmul) and the 128-wide row-kernel
//! workgroup. Tolerances are stated per test.
//!
//! The same tests run natively (Vulkan; lavapipe in CI) and in a browser's WebGPU
//! (`wasm-bindgen-test-runner` driving headless chromium with `--enable-unsafe-webgpu`: SwiftShader
//! in CI; see scripts/test.sh): each body is async, and `gpu_test!` makes it a test for both.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shelfwise_gpu::weights::HostMatrix;
use shelfwise_kernels::reference;

const U: f64 = 1.0 / (1u64 << 24) as f64; // f32 unit roundoff

fn vals(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1f32..1f32) * scale).collect()
}

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// `gpu_test!(name, body)`: `async fn body()` as a native test and as a browser test.
macro_rules! gpu_test {
    ($name:ident, $body:ident) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on($body())
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body().await
        }
    };
}

/// Matmul shapes: edge cases around the tiles, then random ones.
fn matmul_shapes(rng: &mut StdRng) -> Vec<(usize, usize, usize)> {
    let mut v = vec![(1, 1, 1), (1, 384, 384), (64, 64, 16), (65, 63, 17), (63, 65, 15), (3, 130, 33), (128, 1, 5), (7, 5, 1)];
    for _ in 0..14 {
        v.push((rng.random_range(1..150), rng.random_range(1..200), rng.random_range(1..300)));
    }
    v
}

/// Asserts |got − want| ≤ (K + extra)·u·mag + 1e-6 for every output of an m×n×k matmul; returns
/// the worst error / tolerance.
fn check_matmul(got: &[f32], want: &[f32], mag: &[f32], (m, n, k): (usize, usize, usize), extra: f64) -> f64 {
    let mut worst = 0f64;
    for i in 0..m * n {
        let err = (got[i] - want[i]).abs() as f64;
        let tol = (k as f64 + extra) * U * mag[i] as f64 + 1e-6;
        assert!(err <= tol, "m={m} n={n} k={k} at {i}: {} vs {} (err {err:e} > {tol:e})", got[i], want[i]);
        worst = worst.max(err / tol);
    }
    worst
}

// f32 matmul: |gpu − ref| ≤ (K + 2)·u·Σ_k|x·w| + 1e-6 (the standard bound for a K-term
// accumulation), per output.
gpu_test!(matmul_f32_matches_reference, matmul_f32_matches_reference_body);
async fn matmul_f32_matches_reference_body() {
    let Some(ops) = ops_or_skip("matmul_f32").await else { return };
    let mut rng = StdRng::seed_from_u64(1);
    let mut worst = 0f64;
    for (m, n, k) in matmul_shapes(&mut rng) {
        let x = vals(&mut rng, m * k, 1.0);
        let w = vals(&mut rng, n * k, 1.0);
        let b = vals(&mut rng, n, 1.0);
        let got = ops.matmul(&x, m, &HostMatrix::F32 { rows: n, cols: k, w: w.clone() }, &b, false).await.unwrap();
        let (want, mag) = reference::linear_f32(&x, m, &w, n, k, &b, false);
        worst = worst.max(check_matmul(&got, &want, &mag, (m, n, k), 2.0));
    }
    eprintln!("matmul_f32: worst error / tolerance = {worst:.3}");
}

/// Activations for the quantized matmul: rows of random values in [-1, 1] scaled by a random
/// power of ten per block of 32 (blocks of one row of very different magnitudes), plus special
/// rows: all zeros (scale 0), half-integers up to ±63 (inverse scale exactly 1, so every code
/// is a tie that must round to even), and one block zero in an otherwise live row.
fn q8_activations(rng: &mut StdRng, m: usize, k: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(m * k);
    for r in 0..m {
        let row: Vec<f32> = match r % 7 {
            3 => vec![0.0; k],
            5 => (0..k).map(|c| if c % 32 == 0 { 63.0 } else { (rng.random_range(-126..=126) as f32) / 2.0 }).collect(),
            _ => {
                let mut row = Vec::with_capacity(k);
                for b in 0..k.div_ceil(32) {
                    let s = if r % 7 == 6 && b == 1 { 0.0 } else { 10f32.powi(rng.random_range(-3..3)) };
                    row.extend(vals(rng, (k - 32 * b).min(32), s));
                }
                row
            }
        };
        x.extend(row);
    }
    x
}

// Quantized weights: int8 with per-row scales (codec.rs's quantize_i8_per_row) and 4-bit codes with
// block scales (quantize_lowbit), odd K so rows end mid-word and mid-block, with and without the
// GELU epilogue. Against the reference of the CPU kernels' computation (activations quantized to
// 7 bits per block of 32, 8 against the 4-bit codes, exact integer block sums, then Σ_b s_b·(ascale·wscale) + b): the codes,
// scales and block sums are the same, only the f32 sum over the NB = ceil(K/32) blocks rounds
// differently, so |gpu − ref| ≤ (NB + 3)·u·Σ_b|s_b·ascale·wscale| (times GELU's slope < 1.13, plus
// 2e-7·(1 + |y|) with GELU) + 1e-9. A single activation code rounded differently would be off by
// a whole code step (relative ~1e-2 of such a sum), far outside that.
gpu_test!(matmul_q8_matches_quantized_reference, matmul_q8_matches_quantized_reference_body);
async fn matmul_q8_matches_quantized_reference_body() {
    let Some(ops) = ops_or_skip("matmul_q8").await else { return };
    let mut rng = StdRng::seed_from_u64(2);
    let mut worst = 0f64;
    let mut shapes = matmul_shapes(&mut rng);
    shapes.extend([(70, 130, 384), (9, 1, 64), (2, 7, 31), (64, 64, 32), (66, 66, 65)]);
    for (m, n, k) in shapes {
        let x = q8_activations(&mut rng, m, k);
        // Rows of different magnitudes, and one all-zero row (scale 1, zero codes).
        let mut w = Vec::with_capacity(n * k);
        for r in 0..n {
            let s = if r == n / 2 && n > 2 { 0.0 } else { 10f32.powi(rng.random_range(-3..2)) };
            w.extend(vals(&mut rng, k, s));
        }
        let (codes, scales) = shelfwise_model::quant::quantize_i8_per_row(&w, n, k);
        let per_row = HostMatrix::q8_row_scaled(n, k, codes.iter().map(|&c| c as u8).collect(), &scales);
        let lb = shelfwise_model::quant::quantize_lowbit(&w, n, k, 4);
        let blocks = HostMatrix::Q8 { rows: n, cols: k, codes: lb.codes.iter().map(|&c| c as u8).collect(), scales: lb.scales() };
        for (q, gelu) in [(per_row, false), (blocks, false), (random_q8(&mut rng, n, k), true)] {
            let HostMatrix::Q8 { codes, scales, .. } = &q else { unreachable!() };
            let b = vals(&mut rng, n, 1.0);
            let got = ops.matmul(&x, m, &q, &b, gelu).await.unwrap();
            let (want, mag) = reference::linear_q8(&x, m, bytemuck::cast_slice(codes), scales, n, k, &b, gelu);
            let nb = k.div_ceil(32) as f64;
            for i in 0..m * n {
                let err = (got[i] - want[i]).abs() as f64;
                let sum = (nb + 3.0) * U * mag[i] as f64;
                let tol = if gelu { 1.13 * sum + 2e-7 * (1.0 + want[i].abs() as f64) } else { sum } + 1e-9;
                assert!(err <= tol, "m={m} n={n} k={k} gelu={gelu} at {i}: {} vs {} (err {err:e} > {tol:e})", got[i], want[i]);
                worst = worst.max(err / tol);
            }
        }
    }
    eprintln!("matmul_q8: worst error / tolerance = {worst:.3}");
}

/// Random int8 codes (the full range -128..=127) with random block scales.
fn random_q8(rng: &mut StdRng, n: usize, k: usize) -> HostMatrix {
    let codes = (0..n * k).map(|_| rng.random_range(-128i32..=127) as i8 as u8).collect();
    let scales = (0..n * k.div_ceil(32)).map(|_| rng.random_range(0.5f32..2.0) * 10f32.powi(rng.random_range(-4..0))).collect();
    HostMatrix::Q8 { rows: n, cols: k, codes, scales }
}

// Matmul with the GELU epilogue (the encoder's intermediate layer): the matmul bound above
// times GELU's slope (< 1.13), plus 2e-7·(1 + |y|) for the erf approximation.
gpu_test!(matmul_gelu_epilogue_matches_reference, matmul_gelu_epilogue_matches_reference_body);
async fn matmul_gelu_epilogue_matches_reference_body() {
    let Some(ops) = ops_or_skip("matmul_gelu").await else { return };
    let mut rng = StdRng::seed_from_u64(3);
    for (m, n, k) in matmul_shapes(&mut rng).into_iter().take(12) {
        let x = vals(&mut rng, m * k, 1.0);
        let w = vals(&mut rng, n * k, 0.5);
        let b = vals(&mut rng, n, 1.0);
        let got = ops.matmul(&x, m, &HostMatrix::F32 { rows: n, cols: k, w: w.clone() }, &b, true).await.unwrap();
        let (want, mag) = reference::linear_f32(&x, m, &w, n, k, &b, true);
        for i in 0..m * n {
            let err = (got[i] - want[i]).abs() as f64;
            let tol = 1.13 * ((k as f64 + 2.0) * U * mag[i] as f64 + 1e-6) + 2e-7 * (1.0 + want[i].abs() as f64);
            assert!(err <= tol, "m={m} n={n} k={k} at {i}: {} vs {} (err {err:e} > {tol:e})", got[i], want[i]);
        }
    }
}

// GELU alone, over [-12, 12] and exact zeros: |gpu − ref| ≤ 2e-7·(1 + |x|) (A&S 7.1.26's
// 1.5e-7 erf error, halved by x/2, plus f32 rounding). Also the reference against candle's
// gelu_erf (what the CPU encoder runs): ≤ 1e-6·(1 + |x|). Includes a launch wider than 65535
// workgroups (2-D dispatch).
gpu_test!(gelu_matches_reference_and_candle, gelu_matches_reference_and_candle_body);
async fn gelu_matches_reference_and_candle_body() {
    let Some(ops) = ops_or_skip("gelu").await else { return };
    let mut rng = StdRng::seed_from_u64(4);
    let mut x = vals(&mut rng, 100_003, 12.0);
    x.extend([0.0, -0.0, 1e-30, -1e-30, 12.0, -12.0, 3.0, -3.0]);
    let got = ops.gelu(&x).await.unwrap();
    let candle = candle_core::Tensor::from_vec(x.clone(), x.len(), &candle_core::Device::Cpu).unwrap().gelu_erf().unwrap().to_vec1::<f32>().unwrap();
    let mut worst = 0f64;
    for i in 0..x.len() {
        let want = reference::gelu_erf_f64(x[i] as f64);
        let err = (got[i] as f64 - want).abs();
        let tol = 2e-7 * (1.0 + x[i].abs() as f64);
        assert!(err <= tol, "gelu({}) = {} vs {want} (err {err:e})", x[i], got[i]);
        worst = worst.max(err);
        let cerr = (candle[i] as f64 - want).abs();
        assert!(cerr <= 1e-6 * (1.0 + x[i].abs() as f64), "candle gelu_erf({}) = {} vs {want}", x[i], candle[i]);
    }
    eprintln!("gelu: max abs error {worst:e}");
    // 2-D dispatch: 256 · 65535 + 300 values need 65537 workgroups.
    let big: Vec<f32> = (0..256 * 65535 + 300).map(|i| ((i % 2001) as f32 - 1000.0) / 100.0).collect();
    let got = ops.gelu(&big).await.unwrap();
    for i in (0..big.len()).step_by(997).chain(big.len() - 300..big.len()) {
        let want = reference::gelu_erf_f64(big[i] as f64);
        assert!((got[i] as f64 - want).abs() <= 2e-7 * (1.0 + big[i].abs() as f64), "big gelu at {i}");
    }
}

// LayerNorm (and add + LayerNorm) over widths 1..1024 including 127/128/129 and 384:
// |gpu − ref| ≤ 1e-5·(1 + |y|) (ref in f64; inputs of scale up to 10, gamma/beta ~ 1).
gpu_test!(layer_norm_matches_reference, layer_norm_matches_reference_body);
async fn layer_norm_matches_reference_body() {
    let Some(ops) = ops_or_skip("layer_norm").await else { return };
    let mut rng = StdRng::seed_from_u64(5);
    let mut shapes = vec![(1, 1), (3, 2), (2, 127), (5, 128), (4, 129), (7, 384), (2, 1024), (1, 1000)];
    for _ in 0..10 {
        shapes.push((rng.random_range(1..40), rng.random_range(1..=1024)));
    }
    let mut worst = 0f32;
    for (rows, n) in shapes {
        let a = vals(&mut rng, rows * n, 10.0);
        let res = vals(&mut rng, rows * n, 3.0);
        let gamma: Vec<f32> = vals(&mut rng, n, 0.5).iter().map(|g| g + 1.0).collect();
        let beta = vals(&mut rng, n, 0.5);
        for eps in [1e-12f32, 1e-5] {
            for with_res in [false, true] {
                let r = with_res.then_some(res.as_slice());
                let got = ops.layer_norm(&a, r, &gamma, &beta, rows, n, eps).await.unwrap();
                let want = reference::add_layer_norm(&a, r, &gamma, &beta, eps);
                for i in 0..rows * n {
                    let err = (got[i] - want[i]).abs();
                    assert!(err <= 1e-5 * (1.0 + want[i].abs()), "rows={rows} n={n} res={with_res} at {i}: {} vs {}", got[i], want[i]);
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("layer_norm: max abs error {worst:e}");
}

// Attention (several sequences, padding masked out, seq 1..130 around the 64-wide workgroup,
// head dims 1..64): |gpu − ref| ≤ 2e-6 for q, k, v in [-1, 1] (outputs are convex combinations
// of v). Padded keys must get exactly no weight: a masked position's v never leaks.
gpu_test!(attention_matches_reference, attention_matches_reference_body);
async fn attention_matches_reference_body() {
    let Some(ops) = ops_or_skip("attention").await else { return };
    let mut rng = StdRng::seed_from_u64(6);
    let mut shapes = vec![(1, 1, 1, 1), (2, 3, 8, 2), (1, 64, 384, 12), (3, 65, 24, 3), (2, 128, 64, 1), (1, 130, 12, 4)];
    for _ in 0..8 {
        let heads = rng.random_range(1..6);
        shapes.push((rng.random_range(1..5), rng.random_range(1..100), heads * rng.random_range(1..40), heads));
    }
    let mut worst = 0f32;
    for (batch, seq, hidden, heads) in shapes {
        let mut qkv = vals(&mut rng, batch * seq * 3 * hidden, 1.0);
        // Each sequence has a random real length (≥ 1), the rest is padding.
        let mut mask = vec![0u32; batch * seq];
        for b in 0..batch {
            let len = rng.random_range(1..=seq);
            mask[b * seq..b * seq + len].iter_mut().for_each(|m| *m = 1);
            // Poison padded values: if any weight reached them, the output would be huge.
            for t in len..seq {
                for c in 2 * hidden..3 * hidden {
                    qkv[(b * seq + t) * 3 * hidden + c] = 1e6;
                }
            }
        }
        let got = ops.attention(&qkv, &mask, batch, seq, hidden, heads).await.unwrap();
        let want = reference::attention_batch(&qkv, &mask, batch, seq, hidden, heads);
        let err = max_abs_diff(&got, &want);
        assert!(err <= 2e-6, "batch={batch} seq={seq} hidden={hidden} heads={heads}: max err {err:e}");
        worst = worst.max(err);
    }
    eprintln!("attention: max abs error {worst:e}");
}

// Embedding gather + LayerNorm, word table f32, int8 (per-row scales) and 3-bit codes (block
// scales) (odd hidden sizes: rows end mid-word and mid-block):
// |gpu − ref| ≤ 1e-5·(1 + |y|), the int8 reference gathering the dequantized table.
gpu_test!(embed_matches_reference, embed_matches_reference_body);
async fn embed_matches_reference_body() {
    let Some(ops) = ops_or_skip("embed").await else { return };
    let mut rng = StdRng::seed_from_u64(7);
    let mut worst = 0f32;
    for (vocab, hidden, batch, seq) in [(1, 1, 1, 1), (50, 384, 2, 9), (7, 3, 3, 5), (100, 129, 4, 17), (30, 1024, 1, 2), (13, 77, 5, 33)] {
        let w = vals(&mut rng, vocab * hidden, 1.0);
        let pos = vals(&mut rng, seq * hidden, 0.3);
        let typ = vals(&mut rng, 2 * hidden, 0.3);
        let gamma: Vec<f32> = vals(&mut rng, hidden, 0.5).iter().map(|g| g + 1.0).collect();
        let beta = vals(&mut rng, hidden, 0.5);
        let ids: Vec<u32> = (0..batch * seq).map(|_| rng.random_range(0..vocab as u32)).collect();
        let (codes, scales) = shelfwise_model::quant::quantize_i8_per_row(&w, vocab, hidden);
        let q = HostMatrix::q8_row_scaled(vocab, hidden, codes.iter().map(|&c| c as u8).collect(), &scales);
        let lb = shelfwise_model::quant::quantize_lowbit(&w, vocab, hidden, 3);
        let q3 = HostMatrix::Q8 { rows: vocab, cols: hidden, codes: lb.codes.iter().map(|&c| c as u8).collect(), scales: lb.scales() };
        for table in [HostMatrix::F32 { rows: vocab, cols: hidden, w: w.clone() }, q, q3] {
            let got = ops.embed(&ids, seq, &table, &pos, &typ, &gamma, &beta, 1e-12).await.unwrap();
            let want = reference::embed(&ids, seq, &table.to_f32(), hidden, &pos, &typ, &gamma, &beta, 1e-12);
            for i in 0..got.len() {
                let err = (got[i] - want[i]).abs();
                assert!(err <= 1e-5 * (1.0 + want[i].abs()), "vocab={vocab} hidden={hidden} at {i}: {} vs {}", got[i], want[i]);
                worst = worst.max(err);
            }
        }
    }
    eprintln!("embed: max abs error {worst:e}");
}

// Masked mean pooling, including an all-padding row (divides by 1, gives 0):
// |gpu − ref| ≤ 1e-6·(1 + |y|)·seq/8.
gpu_test!(mean_pool_matches_reference, mean_pool_matches_reference_body);
async fn mean_pool_matches_reference_body() {
    let Some(ops) = ops_or_skip("mean_pool").await else { return };
    let mut rng = StdRng::seed_from_u64(8);
    let mut worst = 0f32;
    for (batch, seq, hidden) in [(1, 1, 1), (3, 7, 65), (4, 128, 384), (2, 33, 63), (5, 2, 200)] {
        let x = vals(&mut rng, batch * seq * hidden, 2.0);
        let mut mask: Vec<u32> = (0..batch * seq).map(|_| rng.random_range(0..2)).collect();
        if batch > 1 {
            mask[seq..2 * seq].iter_mut().for_each(|m| *m = 0);
        }
        let got = ops.mean_pool(&x, &mask, batch, seq, hidden).await.unwrap();
        let want = reference::mean_pool(&x, &mask, batch, seq, hidden);
        for i in 0..got.len() {
            let err = (got[i] - want[i]).abs();
            assert!(err <= 1e-6 * (1.0 + want[i].abs()) * (seq as f32 / 8.0).max(1.0), "batch={batch} seq={seq} at {i}: {} vs {}", got[i], want[i]);
            worst = worst.max(err);
        }
    }
    eprintln!("mean_pool: max abs error {worst:e}");
}
