//! wasm32 simd128 block dot products. Activations arrive as i16 codes; each 16-byte weight load is
//! sign-extended into two i16x8 halves once and multiplied against up to four activation rows
//! with `i32x4.dot_i16x8_s` (8 multiply-adds per instruction). Block sums are exact i32; they are
//! converted and scaled into an f32x4 accumulator, reduced horizontally once per output.

use core::arch::wasm32::*;

use crate::{padded, QMatrix, QRows, BLOCK};

pub const NAME: &str = "wasm-simd128";

#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

/// Loads 8 i16 activation codes.
///
/// # Safety
/// `p..p+8` must be in bounds; wasm loads have no alignment requirement.
#[inline(always)]
unsafe fn ld(p: *const i16) -> v128 {
    v128_load(p as *const v128)
}

/// Dot products of one weight row with `R` activation rows, over all blocks.
#[inline(always)]
fn rows<const R: usize>(a: [&[i16]; R], asc: [&[f32]; R], w: &[i8], ws: &[f32]) -> [f32; R] {
    let nb = ws.len();
    debug_assert!(w.len() == nb * BLOCK && a.iter().all(|r| r.len() == nb * BLOCK));
    let mut acc = [f32x4_splat(0.0); R];
    for b in 0..nb {
        let o = b * BLOCK;
        // SAFETY: every slice holds nb·BLOCK codes (checked by the caller's slicing); o+32 ≤ len.
        unsafe {
            let w0 = v128_load(w.as_ptr().add(o) as *const v128);
            let w1 = v128_load(w.as_ptr().add(o + 16) as *const v128);
            let (w0l, w0h) = (i16x8_extend_low_i8x16(w0), i16x8_extend_high_i8x16(w0));
            let (w1l, w1h) = (i16x8_extend_low_i8x16(w1), i16x8_extend_high_i8x16(w1));
            for r in 0..R {
                let p = a[r].as_ptr().add(o);
                let s = i32x4_add(
                    i32x4_add(i32x4_dot_i16x8(ld(p), w0l), i32x4_dot_i16x8(ld(p.add(8)), w0h)),
                    i32x4_add(i32x4_dot_i16x8(ld(p.add(16)), w1l), i32x4_dot_i16x8(ld(p.add(24)), w1h)),
                );
                acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(s), f32x4_splat(asc[r][b] * ws[b])));
            }
        }
    }
    acc.map(hsum)
}

pub fn matmul_t(x: &QRows, w: &QMatrix, out: &mut [f32]) {
    let (m, k, a, asc) = x.parts();
    let (n, _, q, wsc) = w.parts();
    let (kp, nb) = (padded(k), padded(k) / BLOCK);
    let arow = |i: usize| &a[i * kp..(i + 1) * kp];
    let srow = |i: usize| &asc[i * nb..(i + 1) * nb];
    for j in 0..n {
        let (wr, ws) = (&q[j * kp..(j + 1) * kp], &wsc[j * nb..(j + 1) * nb]);
        let mut i = 0;
        while i + 4 <= m {
            let r = rows::<4>([arow(i), arow(i + 1), arow(i + 2), arow(i + 3)], [srow(i), srow(i + 1), srow(i + 2), srow(i + 3)], wr, ws);
            for (t, v) in r.into_iter().enumerate() {
                out[(i + t) * n + j] = v;
            }
            i += 4;
        }
        while i < m {
            out[i * n + j] = rows::<1>([arow(i)], [srow(i)], wr, ws)[0];
            i += 1;
        }
    }
}
