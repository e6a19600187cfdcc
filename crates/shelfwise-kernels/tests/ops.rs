//! The encoder's float ops against their f64 references. Runs natively and in wasm with simd128
//! (see tests/gemm.rs), where the SIMD paths and their scalar tails both get exercised.

use shelfwise_kernels::ops::{add_layer_norm, approx_erf, approx_exp, attention, gelu_erf, linear_f32};
use shelfwise_kernels::reference;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Small deterministic generator (no dependency, same numbers on every platform).
struct Lcg(u64);

impl Lcg {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

#[test]
fn erf_and_exp_approximations_are_accurate() {
    for i in -100_000..=100_000 {
        let x = i as f32 * 6e-5;
        let want = reference::erf(x as f64);
        assert!((approx_erf(x) as f64 - want).abs() < 4e-7, "erf({x}) = {} want {want}", approx_erf(x));
        let x = i as f32 * 87e-5;
        let want = (x as f64).exp();
        assert!(((approx_exp(x) as f64 - want) / want).abs() < 4e-7, "exp({x}) = {} want {want}", approx_exp(x));
    }
    assert_eq!(approx_erf(f32::INFINITY), approx_erf(100.0));
    assert_eq!(approx_exp(f32::NEG_INFINITY), approx_exp(-87.0));
}

#[test]
fn gelu_matches_the_exact_erf_form() {
    let mut g = Lcg(7);
    // Odd length: SIMD chunks and the scalar tail.
    for n in [1usize, 3, 4, 37, 1543] {
        let x: Vec<f32> = g.vec(n, 8.0);
        let mut y = x.clone();
        gelu_erf(&mut y);
        for (x, y) in x.iter().zip(&y) {
            let want = reference::gelu_erf(*x);
            assert!((y - want).abs() <= 2e-7 * x.abs() + 1e-6, "gelu({x}) = {y} want {want}");
        }
    }
}

#[test]
fn layer_norm_matches_reference() {
    let mut g = Lcg(11);
    for (rows, h) in [(1usize, 1usize), (3, 7), (5, 384), (2, 1537)] {
        // An offset mean and outliers, as residual streams have.
        let mut x = g.vec(rows * h, 3.0);
        x.iter_mut().step_by(17).for_each(|v| *v = *v * 50.0 + 20.0);
        let res = g.vec(rows * h, 1.0);
        let (w, b) = (g.vec(h, 2.0), g.vec(h, 1.0));
        for residual in [None, Some(&res[..])] {
            let mut got = x.clone();
            add_layer_norm(&mut got, residual, &w, &b, 1e-12).unwrap();
            let want = reference::add_layer_norm(&x, residual, &w, &b, 1e-12);
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!((g - r).abs() <= 2e-5 * (1.0 + r.abs()), "{rows}x{h} [{i}]: {g} want {r}");
            }
        }
    }
    let mut x = vec![0.0; 6];
    assert!(add_layer_norm(&mut x, None, &[1.0; 4], &[0.0; 4], 1e-5).is_err());
    assert!(add_layer_norm(&mut x, Some(&[0.0; 5]), &[1.0; 3], &[0.0; 3], 1e-5).is_err());
    // A constant row normalises to the bias, not NaN.
    let mut x = vec![5.0; 3];
    add_layer_norm(&mut x, None, &[1.0; 3], &[0.5; 3], 1e-12).unwrap();
    assert_eq!(x, vec![0.5; 3]);
}

/// Attention on the unpadded tokens equals the masked attention on the padded sequence.
#[test]
fn attention_matches_masked_reference() {
    let mut g = Lcg(3);
    let mut scores = Vec::new();
    for (t, pad, heads, hd) in [(1usize, 0usize, 1usize, 1usize), (5, 2, 3, 8), (17, 3, 12, 32), (3, 0, 2, 33)] {
        let h = heads * hd;
        // Large scores too: the softmax must subtract its maximum.
        let qkv = g.vec((t + pad) * 3 * h, 4.0);
        let mask: Vec<u32> = (0..t + pad).map(|i| (i < t) as u32).collect();
        let want = reference::attention(&qkv, t + pad, heads, hd, &mask);
        let mut got = vec![f32::NAN; t * h];
        attention(&qkv[..t * 3 * h], t, heads, hd, &mut scores, &mut got).unwrap();
        for (i, (g, r)) in got.iter().zip(&want[..t * h]).enumerate() {
            assert!((g - r).abs() <= 1e-5 * (1.0 + r.abs()), "t={t} {heads}x{hd} [{i}]: {g} want {r}");
        }
    }
    assert!(attention(&[0.0; 5], 1, 1, 2, &mut scores, &mut [0.0; 2]).is_err());
    let mut out = [];
    attention(&[], 0, 12, 32, &mut scores, &mut out).unwrap();
}

/// The reference's f64 erf against known values (A&S tables / high-precision values).
#[test]
fn reference_erf_is_accurate() {
    for (x, want) in [
        (0.0, 0.0),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
        (4.0, 0.9999999845827421),
        (5.5, 0.9999999999999927),
        (-1.0, -0.8427007929497149),
    ] {
        assert!((reference::erf(x) - want).abs() < 1e-14, "erf({x}) = {} vs {want}", reference::erf(x));
    }
}

/// The attention this CPU runs (x86-64 with AVX2: keys transposed, eight scores a step) returns
/// the baseline code's bits: head sizes on the fast path (32, 64) and off it (8, 33), sequences
/// shorter and longer than a step, a reused scores buffer.
#[test]
fn attention_equals_the_baseline_bit_for_bit() {
    let mut seed = 3u32;
    let mut scores = Vec::new();
    for (t, heads, hd) in [(1usize, 1usize, 32usize), (7, 2, 32), (8, 12, 32), (14, 12, 32), (23, 3, 64), (5, 2, 8), (9, 2, 33)] {
        let h = heads * hd;
        let qkv: Vec<f32> = (0..t * 3 * h)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * 3.0
            })
            .collect();
        let (mut got, mut want) = (vec![0f32; t * h], vec![0f32; t * h]);
        attention(&qkv, t, heads, hd, &mut scores, &mut got).unwrap();
        shelfwise_kernels::ops::attention_baseline(&qkv, t, heads, hd, &mut Vec::new(), &mut want).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "t={t} {heads}x{hd}");
    }
}

/// `x · w` (w stored `[k, n]`) is each output's in-order f32 sum, bit for bit (row counts around
/// the four-row pass, widths around the SIMD lanes), and close to the f64 product; a shape that
/// does not add up is an error, not a panic.
#[test]
fn linear_f32_is_the_in_order_sum() {
    let mut g = Lcg(11);
    for (m, k, n) in [(1usize, 384usize, 922usize), (3, 7, 5), (4, 64, 13), (9, 33, 8), (6, 1, 1)] {
        let (x, w) = (g.vec(m * k, 2.0), g.vec(k * n, 0.5));
        let mut got = vec![f32::NAN; m * n];
        linear_f32(&x, m, &w, n, &mut got).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want = (0..k).fold(0f32, |s, d| s + x[i * k + d] * w[d * n + j]);
                assert_eq!(got[i * n + j].to_bits(), want.to_bits(), "{m}x{k}x{n} at ({i}, {j})");
                let exact: f64 = (0..k).map(|d| x[i * k + d] as f64 * w[d * n + j] as f64).sum();
                assert!((got[i * n + j] as f64 - exact).abs() < 1e-4, "{m}x{k}x{n}: {} vs {exact}", got[i * n + j]);
            }
        }
    }
    assert!(linear_f32(&[1.0; 6], 2, &[1.0; 4], 2, &mut [0.0; 4]).is_err());
    assert!(linear_f32(&[1.0; 6], 2, &[1.0; 6], 2, &mut [0.0; 3]).is_err());
}
