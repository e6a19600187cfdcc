//! x86-64 AVX2 block dot products, chosen at run time where the CPU has AVX2 (`sse2::matmul_t`
//! checks): the SSE2 tiles with 256-bit `vpmaddwd`, one instruction for the sixteen codes that
//! SSE2 widens in two halves. Lanes `t` and `t + 4` of a 256-bit sum hold the same block (the
//! interleave puts two values of each of the four blocks in every eight codes), so folding the
//! halves gives exactly SSE2's four block sums, and the f32 steps after it are SSE2's: the two
//! paths return the same bits.

use core::arch::x86_64::*;

use crate::{QMatrix, QRows, GROUP, GROUP_BLOCKS};

/// Dot products of `W` weight rows with `R` activation rows, over all groups: `[W][R]`.
#[inline]
#[target_feature(enable = "avx2")]
fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    let kg = crate::grouped(x.cols());
    let nbg = kg / crate::BLOCK;
    let ((xc, xs), (wc, wsc)) = (x.all(), wm.all());
    // Plain loops, not closures: the intrinsics stay in this function's AVX2 context.
    let (mut a, mut asc) = ([&xc[..0]; R], [&xs[..0]; R]);
    for t in 0..R {
        a[t] = &xc[(i + t) * kg..(i + t + 1) * kg];
        asc[t] = &xs[(i + t) * nbg..(i + t + 1) * nbg];
    }
    let (mut w, mut ws) = ([&wc[..0]; W], [&wsc[..0]; W]);
    for c in 0..W {
        w[c] = &wc[(j + c) * kg..(j + c + 1) * kg];
        ws[c] = &wsc[(j + c) * nbg..(j + c + 1) * nbg];
    }
    let len = a[0].len();
    let ng = len / GROUP;
    assert!(a.iter().all(|r| r.len() == len) && w.iter().all(|r| r.len() == len));
    assert!(asc.iter().chain(&ws).all(|s| s.len() == ng * GROUP_BLOCKS));
    let mut acc = [[_mm_setzero_ps(); R]; W];
    for g in 0..ng {
        let o = g * GROUP;
        let mut s = [[_mm256_setzero_si256(); R]; W];
        for q in (0..GROUP).step_by(16) {
            let mut wv = [_mm256_setzero_si256(); W];
            // The first tile of these weight rows reads them from memory (one title streams
            // every matrix once): it also asks for the next rows' bytes (rows are contiguous), so
            // they arrive while these are summed. Only a hint: past the matrix it fetches nothing.
            if i == 0 {
                for row in &w {
                    _mm_prefetch::<_MM_HINT_T0>(row.as_ptr().wrapping_add(o + q + W * kg));
                }
            }
            for c in 0..W {
                // SAFETY: o + q + 16 ≤ len (asserted above); unaligned load.
                wv[c] = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(w[c].as_ptr().add(o + q) as *const __m128i) });
            }
            for r in 0..R {
                // SAFETY: sixteen i16 from o + q, in bounds as above.
                let av = unsafe { _mm256_loadu_si256(a[r].as_ptr().add(o + q) as *const __m256i) };
                for c in 0..W {
                    s[c][r] = _mm256_add_epi32(s[c][r], _mm256_madd_epi16(av, wv[c]));
                }
            }
        }
        for c in 0..W {
            // SAFETY: 4g + 4 ≤ the scales' length (asserted above).
            let wsc = unsafe { _mm_loadu_ps(ws[c].as_ptr().add(g * GROUP_BLOCKS)) };
            for r in 0..R {
                let s4 = _mm_add_epi32(_mm256_castsi256_si128(s[c][r]), _mm256_extracti128_si256::<1>(s[c][r]));
                // SAFETY: as for wsc.
                let sc = _mm_mul_ps(unsafe { _mm_loadu_ps(asc[r].as_ptr().add(g * GROUP_BLOCKS)) }, wsc);
                acc[c][r] = _mm_add_ps(acc[c][r], _mm_mul_ps(_mm_cvtepi32_ps(s4), sc));
            }
        }
    }
    let mut out = [[0f32; R]; W];
    for c in 0..W {
        for r in 0..R {
            let mut l = [0f32; 4];
            // SAFETY: four f32 into a four-element array.
            unsafe { _mm_storeu_ps(l.as_mut_ptr(), acc[c][r]) };
            out[c][r] = (l[0] + l[1]) + (l[2] + l[3]);
        }
    }
    out
}

tiled_matmul_t!(#[target_feature(enable = "avx2")]);
