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

pub fn quantize_group(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
    crate::quantize_group_scalar(x, out, scales, act_max)
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
        "x86-64-avx2" if std::is_x86_feature_detected!("avx2") => unsafe { crate::avx2::matmul_t(x, w, out) },
        "x86-64-sse2" => matmul_t_baseline(x, w, out),
        _ => return false,
    }
    true
}
