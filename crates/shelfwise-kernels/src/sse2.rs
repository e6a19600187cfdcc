//! x86-64 SSE2 (every x86-64 CPU has it) block dot products: the simd128 path's loop with
//! `pmaddwd`. The portable loop cannot get there on its own: the interleaved storage makes each
//! block's sum strided, which LLVM does not turn into `pmaddwd` at the x86-64 baseline.

use core::arch::x86_64::*;

use crate::vnni::Vnni;
use crate::{QMatrix, QRows, GROUP, GROUP_BLOCKS};

pub fn name() -> &'static str {
    match crate::vnni::detect() {
        Some(Vnni::Avx512) => "x86-64-avx512-vnni",
        Some(Vnni::Avx) => "x86-64-avx-vnni",
        None if std::is_x86_feature_detected!("avx2") => "x86-64-avx2",
        None => "x86-64-sse2",
    }
}

/// With SSE4.1 (whole groups), the scalar form in 128-bit vectors; its `round_ties_even` is a
/// libm call a value at the x86-64 baseline, which cost as much as the VNNI products themselves.
pub fn quantize_group(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
    if x.len() == GROUP && out.len() == GROUP && scales.len() == GROUP_BLOCKS && std::is_x86_feature_detected!("sse4.1") {
        // SAFETY: this CPU has SSE4.1, checked just above; the lengths too.
        unsafe { quantize_group_sse41(x, out, scales, act_max) }
    } else {
        crate::quantize_group_scalar(x, out, scales, act_max)
    }
}

/// [`crate::quantize_group_scalar`] for a whole group, bit for bit (NaNs included: the maximum
/// skips them, their code is 0), as simd128's form does it otherwise: per block 8 vectors of
/// codes, then a 4x4 transpose of i16 pairs into the stored layout.
#[target_feature(enable = "sse4.1")]
fn quantize_group_sse41(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
    assert!(x.len() == GROUP && out.len() == GROUP && scales.len() == GROUP_BLOCKS);
    let abs = _mm_castsi128_ps(_mm_set1_epi32(i32::MAX));
    let (hi, lo) = (_mm_set1_ps(act_max), _mm_set1_ps(-act_max));
    // Per block: 16 i32 lanes of i16 pairs, as 4 vectors (pairs 4c..4c+4 in vector c).
    let mut pairs = [[_mm_setzero_si128(); 4]; GROUP_BLOCKS];
    for (b, (p, scale)) in pairs.iter_mut().zip(scales.iter_mut()).enumerate() {
        let mut v = [_mm_setzero_ps(); 8];
        for (i, v) in v.iter_mut().enumerate() {
            // SAFETY: x holds GROUP f32 (asserted); block b is x[32b..32b+32].
            *v = unsafe { _mm_loadu_ps(x.as_ptr().add(b * crate::BLOCK + 4 * i)) };
        }
        // max_ps(a, b) returns b when either is NaN: NaNs drop out, as in f32::max.
        let m = v.iter().fold(_mm_setzero_ps(), |m, &v| _mm_max_ps(_mm_and_ps(v, abs), m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let max = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
        // A zero or non-finite block keeps scale 0 and codes 0.
        let ok = max > 0.0 && max.is_finite();
        *scale = if ok { max / act_max } else { 0.0 };
        if !ok {
            continue; // `pairs` is already zero
        }
        let inv = _mm_set1_ps(act_max / max);
        let code = |v: __m128| {
            let y = _mm_mul_ps(v, inv);
            let r = _mm_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
            // Clamped, and a NaN's code 0 (what `NaN as i16` gives).
            _mm_cvtps_epi32(_mm_and_ps(_mm_min_ps(_mm_max_ps(r, lo), hi), _mm_cmpord_ps(y, y)))
        };
        for (c, p) in p.iter_mut().enumerate() {
            *p = _mm_packs_epi32(code(v[2 * c]), code(v[2 * c + 1]));
        }
    }
    // Stored vector 4c + t holds pair 4c + t of blocks 0..4: a 4x4 transpose of i32 lanes.
    for c in 0..4 {
        let [b0, b1, b2, b3] = pairs.map(|p| p[c]);
        let (t0, t1) = (_mm_unpacklo_epi32(b0, b1), _mm_unpackhi_epi32(b0, b1));
        let (t2, t3) = (_mm_unpacklo_epi32(b2, b3), _mm_unpackhi_epi32(b2, b3));
        let outs = [_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2), _mm_unpacklo_epi64(t1, t3), _mm_unpackhi_epi64(t1, t3)];
        for (t, v) in outs.into_iter().enumerate() {
            // SAFETY: out holds GROUP i16 (asserted); vector 4c + t is out[8(4c+t)..+8].
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(8 * (4 * c + t)) as *mut __m128i, v) };
        }
    }
}

/// Dot products of `W` weight rows with `R` activation rows, over all groups: `[W][R]`.
#[inline(always)]
fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    let kg = crate::grouped(x.cols());
    let nbg = kg / crate::BLOCK;
    let ((xc, xs), (wc, wsc)) = (x.all(), wm.all());
    let a: [&[i16]; R] = core::array::from_fn(|t| &xc[(i + t) * kg..(i + t + 1) * kg]);
    let asc: [&[f32]; R] = core::array::from_fn(|t| &xs[(i + t) * nbg..(i + t + 1) * nbg]);
    let w: [&[i8]; W] = core::array::from_fn(|c| &wc[(j + c) * kg..(j + c + 1) * kg]);
    let ws: [&[f32]; W] = core::array::from_fn(|c| &wsc[(j + c) * nbg..(j + c + 1) * nbg]);
    let len = a[0].len();
    let ng = len / GROUP;
    assert!(a.iter().all(|r| r.len() == len) && w.iter().all(|r| r.len() == len));
    assert!(asc.iter().chain(&ws).all(|s| s.len() == ng * GROUP_BLOCKS));
    // SAFETY: SSE2 is part of x86-64; every load below is in bounds (lengths asserted above:
    // o + GROUP ≤ len, 4g + 4 ≤ scale len) and the unaligned load forms are used.
    unsafe {
        let mut acc = [[_mm_setzero_ps(); R]; W];
        for g in 0..ng {
            let o = g * GROUP;
            let mut s = [[_mm_setzero_si128(); R]; W];
            for q in (0..GROUP).step_by(16) {
                let wv: [__m128i; W] = core::array::from_fn(|c| _mm_loadu_si128(w[c].as_ptr().add(o + q) as *const __m128i));
                // Sign-extend i8 to i16: each byte into the high half, then shift it down.
                let lo = wv.map(|v| _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8));
                let hi = wv.map(|v| _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8));
                for r in 0..R {
                    let p = a[r].as_ptr().add(o + q);
                    let (al, ah) = (_mm_loadu_si128(p as *const __m128i), _mm_loadu_si128(p.add(8) as *const __m128i));
                    for c in 0..W {
                        s[c][r] = _mm_add_epi32(s[c][r], _mm_add_epi32(_mm_madd_epi16(al, lo[c]), _mm_madd_epi16(ah, hi[c])));
                    }
                }
            }
            for c in 0..W {
                let wsc = _mm_loadu_ps(ws[c].as_ptr().add(g * GROUP_BLOCKS));
                for r in 0..R {
                    let sc = _mm_mul_ps(_mm_loadu_ps(asc[r].as_ptr().add(g * GROUP_BLOCKS)), wsc);
                    acc[c][r] = _mm_add_ps(acc[c][r], _mm_mul_ps(_mm_cvtepi32_ps(s[c][r]), sc));
                }
            }
        }
        acc.map(|a| {
            a.map(|v| {
                let mut l = [0f32; 4];
                _mm_storeu_ps(l.as_mut_ptr(), v);
                (l[0] + l[1]) + (l[2] + l[3])
            })
        })
    }
}

mod baseline {
    use super::tile;
    tiled_matmul_t!();
}

pub use baseline::matmul_t as matmul_t_baseline;

/// The widest path this CPU has: VNNI (`vpdpbusd`, AVX-512 first), else AVX2's tiles (the same
/// sums, twice SSE2's multiply-adds an instruction), else SSE2's. `is_x86_feature_detected!`
/// caches its answer: a load and a test a call.
pub fn matmul_t(x: &QRows, w: &QMatrix, out: &mut [f32]) {
    matmul_t_on(name(), x, w, out);
}

/// `matmul_t` on the path [`name`] calls `path`, if this CPU has it: whether it ran.
pub fn matmul_t_on(path: &str, x: &QRows, w: &QMatrix, out: &mut [f32]) -> bool {
    let vnni = crate::vnni::detect();
    match path {
        // SAFETY: this CPU has the path's instructions, checked in the same arm; `x` and `w`
        // carry their VNNI parts wherever `detect` finds VNNI.
        "x86-64-avx512-vnni" if vnni == Some(Vnni::Avx512) => unsafe { crate::vnni::matmul_t(Vnni::Avx512, x, w, out) },
        "x86-64-avx-vnni" if vnni.is_some() && std::is_x86_feature_detected!("avxvnni") => unsafe { crate::vnni::matmul_t(Vnni::Avx, x, w, out) },
        // SAFETY: this CPU has AVX2, checked in the same arm.
        // 4-bit matrices on the byte form (`vpmaddubsw`), others on 16-bit codes (`vpmaddwd`).
        "x86-64-avx2" if std::is_x86_feature_detected!("avx2") => {
            if !crate::vnni::matmul_t_bytes(x, w, out) {
                unsafe { crate::avx2::matmul_t(x, w, out) }
            }
        }
        "x86-64-sse2" => matmul_t_baseline(x, w, out),
        _ => return false,
    }
    true
}
