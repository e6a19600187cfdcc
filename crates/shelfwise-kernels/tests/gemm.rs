//! Kernel vs reference on random shapes (odd sizes, k not a multiple of the block, zero and
//! outlier rows). Runs natively (`cargo test`) and in wasm with simd128, and with relaxed SIMD
//! (`cargo test --target wasm32-unknown-unknown`, wasm-bindgen-test in Node; scripts/test.sh).

use shelfwise_kernels::{linear, matmul_t, matmul_t_portable, padded, quantize_rows, reference, ActBits, QMatrix, BLOCK};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Small deterministic generator (no dependency, same numbers on every platform).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f(&mut self) -> f32 {
        (self.next() as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
}

/// Random activations with a few outliers and an all-zero row, as encoder activations have.
fn acts(g: &mut Lcg, m: usize, k: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * k).map(|_| g.f() * 3.0).collect();
    for _ in 0..(m * k / 50) {
        let i = g.below(m * k);
        x[i] *= 40.0;
    }
    if m > 2 {
        x[k..2 * k].fill(0.0);
    }
    x
}

/// A seeded generator after drawing a random shape (m < 10, n < 24, k ≤ `max_k`) and its
/// activations.
fn random_case(seed: u64, max_k: usize) -> (Lcg, (usize, usize, usize), Vec<f32>) {
    let mut g = Lcg(seed);
    let (m, n, k) = (1 + g.below(9), 1 + g.below(23), 1 + g.below(max_k));
    let x = acts(&mut g, m, k);
    (g, (m, n, k), x)
}

fn weights(g: &mut Lcg, n: usize, k: usize) -> QMatrix {
    if g.below(2) == 0 {
        let codes: Vec<i8> = (0..n * k).map(|_| (g.below(255) as i32 - 127) as i8).collect();
        let scales: Vec<f32> = (0..n).map(|_| g.f().abs() * 0.01 + 1e-4).collect();
        QMatrix::from_row_scaled(n, k, &codes, &scales).unwrap()
    } else {
        // 4-bit codes with a scale per block.
        let codes: Vec<i8> = (0..n * k).map(|_| (g.below(16) as i32 - 8) as i8).collect();
        let scales: Vec<f32> = (0..n * padded(k) / BLOCK).map(|_| g.f().abs() * 0.05 + 1e-4).collect();
        QMatrix::from_block_scaled(n, k, &codes, &scales).unwrap()
    }
}

/// Fast path equals the reference up to f32 summation order: |Δ| ≤ 1e-5 · Σ|block terms| + 1e-6.
fn check_case(seed: u64) {
    let mut g = Lcg(seed);
    let (m, n, k) = (1 + g.below(9), 1 + g.below(23), 1 + g.below(130));
    let x = acts(&mut g, m, k);
    let w = weights(&mut g, n, k);
    let q = quantize_rows(&x, m, k, w.act_bits()).unwrap();
    let mut got = vec![0f32; m * n];
    matmul_t(&q, &w, None, &mut got).unwrap();
    // Every inner loop this build can switch to (relaxed SIMD's dot32 and sum16) gives the same
    // bits: the integer sums are exact and the epilogue is shared.
    for v in shelfwise_kernels::variants() {
        let before = shelfwise_kernels::variant().unwrap();
        assert!(shelfwise_kernels::set_variant(v));
        let mut other = vec![0f32; m * n];
        matmul_t(&q, &w, None, &mut other).unwrap();
        assert!(shelfwise_kernels::set_variant(before));
        assert_eq!(other.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "seed {seed}: {v} vs {before}");
    }
    let want = reference::matmul_t(&q, &w);
    let mut portable = vec![0f32; m * n];
    matmul_t_portable(&q, &w, &mut portable).unwrap();
    // Scale for the tolerance: the same product with absolute values.
    let (xa, wa): (Vec<f32>, Vec<f32>) = (x.iter().map(|v| v.abs()).collect(), w.dequantize().iter().map(|v| v.abs()).collect());
    let mag = reference::matmul_t_f32(&xa, m, &wa, n, k);
    for i in 0..m * n {
        let tol = 1e-5 * mag[i] + 1e-6;
        assert!((got[i] - want[i]).abs() <= tol, "seed {seed} {m}x{n}x{k} [{i}]: kernel {} reference {} tol {tol}", got[i], want[i]);
        assert!((portable[i] - want[i]).abs() <= tol, "seed {seed} {m}x{n}x{k} [{i}]: portable {} reference {} tol {tol}", portable[i], want[i]);
    }
    // And the quantized product is close to the f32 one: per block, activation rounding error is
    // at most half a step (max|x| / 2·act_max) times Σ|w|.
    let f = reference::matmul_t_f32(&x, m, &w.dequantize(), n, k);
    let bound = reference::matmul_t_f32(&vec![1.0; m * k], m, &wa, n, k);
    let xmax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let act_max = w.act_bits().max();
    for i in 0..m * n {
        assert!((got[i] - f[i]).abs() <= xmax / (2.0 * act_max) * bound[i] * 1.001 + 1e-4, "seed {seed}: quantized {} vs f32 {}", got[i], f[i]);
    }
}

#[test]
fn kernel_matches_reference_on_random_shapes() {
    for seed in 0..200 {
        check_case(seed);
    }
}

#[test]
fn this_build_uses_the_expected_implementation() {
    let want = if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
        "wasm-relaxed-simd"
    } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        "wasm-simd128"
    } else if cfg!(target_arch = "x86_64") {
        // The widest path the CPU has (tests/vnni.rs checks the VNNI choice).
        #[cfg(target_arch = "x86_64")]
        let (avx512_vnni, avx_vnni, avx2) = (
            std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vnni"),
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni"),
            std::is_x86_feature_detected!("avx2"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (avx512_vnni, avx_vnni, avx2) = (false, false, false);
        if avx512_vnni {
            "x86-64-avx512-vnni"
        } else if avx_vnni {
            "x86-64-avx-vnni"
        } else if avx2 {
            "x86-64-avx2"
        } else {
            "x86-64-sse2"
        }
    } else {
        "portable"
    };
    assert_eq!(shelfwise_kernels::implementation(), want);
    let variants: &[&str] = if want == "wasm-relaxed-simd" { &["sum16", "dot32"] } else { &[] };
    assert_eq!(shelfwise_kernels::variants(), variants);
    assert_eq!(shelfwise_kernels::variant(), variants.first().copied());
    assert!(!shelfwise_kernels::set_variant("no such loop"));
}

#[test]
fn linear_adds_bias_and_checks_shapes() {
    let w = QMatrix::from_row_scaled(2, 3, &[1, 2, 3, -1, 0, 127], &[0.5, 1.0]).unwrap();
    let y = linear(&[1.0, 1.0, 1.0], 1, &w, Some(&[10.0, -10.0])).unwrap();
    // x is all ones: codes 63 (int8 weights: 7-bit activations) with scale 1/63, exact.
    assert_eq!(w.act_bits(), ActBits::Seven);
    assert!((y[0] - 13.0).abs() < 1e-5 && (y[1] - 116.0).abs() < 1e-4, "{y:?}");
    assert!(linear(&[1.0, 1.0], 1, &w, None).is_err());
    assert!(linear(&[1.0, 1.0, 1.0], 1, &w, Some(&[1.0])).is_err());
    assert!(QMatrix::from_row_scaled(2, 3, &[0; 5], &[1.0, 1.0]).is_err());
    assert!(QMatrix::from_block_scaled(2, 40, &[0; 80], &[1.0; 3]).is_err());
}

/// 4-bit-range weights take 8-bit activations, int8 ones 7-bit; activations quantized for the
/// other precision are refused (on relaxed SIMD they would be the wrong operand), and so is a
/// stack of both kinds.
#[test]
fn activation_precision_follows_the_weights() {
    let narrow = QMatrix::from_block_scaled(1, 32, &[-64; 32], &[1.0]).unwrap();
    let wide = QMatrix::from_block_scaled(1, 32, &[-65; 32], &[1.0]).unwrap();
    assert_eq!((narrow.act_bits(), wide.act_bits()), (ActBits::Eight, ActBits::Seven));
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 15.5).collect();
    // 8 bits: the steps of x (scale 16 / 127) are finer than at 7 bits (16 / 63).
    let q8 = quantize_rows(&x, 1, 32, ActBits::Eight).unwrap();
    let mut y = [0f32];
    matmul_t(&q8, &narrow, None, &mut y).unwrap();
    let exact: f32 = x.iter().map(|v| v * -64.0).sum();
    assert!((y[0] - exact).abs() <= 16.0 / 127.0 / 2.0 * 64.0 * 32.0, "{} vs {exact}", y[0]);
    assert!(matmul_t(&q8, &wide, None, &mut y).is_err());
    assert!(matmul_t(&quantize_rows(&x, 1, 32, ActBits::Seven).unwrap(), &narrow, None, &mut y).is_err());
    assert!(QMatrix::stack_rows(&[&narrow, &wide]).is_err());
    let both = QMatrix::stack_rows(&[&narrow, &narrow]).unwrap();
    assert_eq!((both.act_bits(), both.dequantize()), (ActBits::Eight, vec![-64.0; 64]));
    // A 4-bit-range matrix (relaxed SIMD stores it shifted by 8, not 64) stacked with a wider
    // narrow one: the stack's codes and products are the parts', on every build and variant.
    let nibble = QMatrix::from_block_scaled(1, 32, &(0..32).map(|i| (i % 16) as i8 - 8).collect::<Vec<_>>(), &[0.5]).unwrap();
    let mixed = QMatrix::stack_rows(&[&nibble, &narrow, &nibble]).unwrap();
    let rows: Vec<f32> = [nibble.dequantize(), narrow.dequantize(), nibble.dequantize()].concat();
    assert_eq!(mixed.dequantize(), rows);
    let (mut parts, mut stacked) = ([0f32; 2], [0f32; 3]);
    matmul_t(&q8, &nibble, None, &mut parts[..1]).unwrap();
    matmul_t(&q8, &narrow, None, &mut parts[1..]).unwrap();
    for v in shelfwise_kernels::variants().iter().copied().chain([""]) {
        if !v.is_empty() {
            assert!(shelfwise_kernels::set_variant(v));
        }
        matmul_t(&q8, &mixed, None, &mut stacked).unwrap();
        assert_eq!(stacked.map(f32::to_bits), [parts[0], parts[1], parts[0]].map(f32::to_bits), "{v}");
    }
    if let Some(first) = shelfwise_kernels::variants().first() {
        assert!(shelfwise_kernels::set_variant(first));
    }
}

#[test]
fn zero_and_non_finite_inputs_do_not_panic() {
    let w = QMatrix::from_row_scaled(1, 4, &[1, 1, 1, 1], &[1.0]).unwrap();
    assert_eq!(linear(&[0.0; 4], 1, &w, None).unwrap(), vec![0.0]);
    let y = linear(&[f32::NAN, f32::INFINITY, 1.0, 1.0], 1, &w, None).unwrap();
    assert_eq!(y.len(), 1);
}

/// A reused `QRows` (the encoder's buffers) gives what a fresh one does, whatever it held before.
#[test]
fn reused_activation_buffers_match_fresh_ones() {
    let mut g = Lcg(42);
    let mut q = shelfwise_kernels::QRows::default();
    for (m, k) in [(5usize, 300usize), (2, 40), (7, 384), (1, 1), (3, 130)] {
        let x = acts(&mut g, m, k);
        let w = weights(&mut g, 3, k);
        q.quantize(&x, m, k, w.act_bits()).unwrap();
        let (mut reused, mut fresh) = (vec![0f32; m * 3], vec![0f32; m * 3]);
        matmul_t(&q, &w, None, &mut reused).unwrap();
        matmul_t(&quantize_rows(&x, m, k, w.act_bits()).unwrap(), &w, None, &mut fresh).unwrap();
        assert_eq!(reused, fresh, "{m}x{k}");
    }
}

/// The stored (interleaved) layout is private: what goes in row-major comes back row-major, for
/// whole groups of 128, a group plus a tail, and a short row.
#[test]
fn codes_and_scales_round_trip_through_the_stored_layout() {
    for (n, k) in [(3usize, 128usize), (2, 261), (4, 7)] {
        let codes: Vec<i8> = (0..n * k).map(|i| ((i * 37) % 255) as i8).collect();
        let nb = shelfwise_kernels::padded(k) / shelfwise_kernels::BLOCK;
        let scales: Vec<f32> = (0..n * nb).map(|i| 0.5 + i as f32).collect();
        let w = QMatrix::from_block_scaled(n, k, &codes, &scales).unwrap();
        let want: Vec<f32> = (0..n * k).map(|i| codes[i] as f32 * scales[(i / k) * nb + (i % k) / shelfwise_kernels::BLOCK]).collect();
        assert_eq!(w.dequantize(), want, "{n}x{k}");
        let mut row = vec![0f32; k];
        w.dequantize_row(n - 1, &mut row);
        assert_eq!(row, want[(n - 1) * k..], "{n}x{k} last row");
    }
}

/// On x86-64 the path this CPU takes (AVX2 where it has it) returns SSE2's bits exactly: the same
/// integer block sums, the same f32 steps after them.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_paths_agree_bit_for_bit() {
    for seed in 0..200 {
        let (mut g, (m, n, k), x) = random_case(1000 + seed, 1600);
        let w = weights(&mut g, n, k);
        let q = quantize_rows(&x, m, k, w.act_bits()).unwrap();
        let (mut fast, mut base) = (vec![0f32; m * n], vec![0f32; m * n]);
        matmul_t(&q, &w, None, &mut fast).unwrap();
        shelfwise_kernels::matmul_t_sse2(&q, &w, &mut base).unwrap();
        assert_eq!(fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), base.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "seed {seed} {m}x{n}x{k}");
    }
}

/// `linear` (the kernels' own activation quantization, then the fast product) against
/// `reference::linear_q8`, which quantizes the activations itself: the same codes and scales give
/// the same block sums, so only f32 summation order differs (|Δ| ≤ 1e-5 · Σ|terms| + 1e-6). One
/// activation code rounded differently moves an output by ~1/(30·k) of Σ|terms|, well outside.
#[test]
fn linear_matches_the_independent_reference() {
    for seed in 0..100 {
        let (mut g, (m, n, k), x) = random_case(5000 + seed, 300);
        let nb = padded(k) / BLOCK;
        let narrow = g.below(2) == 0;
        let codes: Vec<i8> = (0..n * k).map(|_| if narrow { g.below(16) as i8 - 8 } else { (g.below(255) as i32 - 127) as i8 }).collect();
        let scales: Vec<f32> = (0..n * nb).map(|_| g.f().abs() * 0.05 + 1e-4).collect();
        let bias: Vec<f32> = (0..n).map(|_| g.f()).collect();
        let w = QMatrix::from_block_scaled(n, k, &codes, &scales).unwrap();
        let got = linear(&x, m, &w, Some(&bias)).unwrap();
        let (want, mag) = reference::linear_q8(&x, m, &codes, &scales, n, k, &bias, false);
        for i in 0..m * n {
            let tol = 1e-5 * mag[i] + 1e-6;
            assert!((got[i] - want[i]).abs() <= tol, "seed {seed} {m}x{n}x{k} [{i}]: kernel {} reference {} tol {tol}", got[i], want[i]);
        }
    }
}

// The reference's activation quantization on known values: ties round to even, the clamp, an
// all-zero block, a partial last block, and blocks quantized independently; at 7 bits and, against
// 4-bit weight codes, at 8.
#[test]
fn reference_quantizes_activations_to_7_or_8_bits() {
    let mut x = vec![0f32; 32 + 32 + 3];
    x[0] = 63.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.4;
    x[4] = -62.5;
    x[64] = -0.5; // partial block: max 0.5, inverse 126
    x[65] = 0.25;
    x[66] = 0.001;
    assert_eq!(reference::act_max_for(&[-128, 127]), 63.0);
    assert_eq!(reference::act_max_for(&[-64, 63]), 127.0);
    let (codes, scales) = reference::quantize_activations(&x, 1, x.len(), 63.0);
    assert_eq!(&codes[..5], &[63, 2, -4, 0, -62]);
    assert!(codes[5..64].iter().all(|&c| c == 0));
    assert_eq!(&codes[64..], &[-63, 32, 0]);
    assert_eq!(scales, vec![1.0, 0.0, 0.5 / 63.0]);
    // 8 bits: inverse 127 / 63 in the first block, 254 in the last.
    let (codes, scales) = reference::quantize_activations(&x, 1, x.len(), 127.0);
    assert_eq!(&codes[..5], &[127, 5, -7, 1, -126]);
    assert_eq!(&codes[64..], &[-127, 64, 0]);
    assert_eq!(scales, vec![63.0 / 127.0, 0.0, 0.5 / 127.0]);
}
