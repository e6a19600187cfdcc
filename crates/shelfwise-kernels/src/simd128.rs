//! wasm32 simd128 kernels. Activations arrive as i16 codes; each 16-byte weight load is
//! sign-extended into two i16x8 halves once and multiplied against up to four activation rows
//! with `i32x4.dot_i16x8_s` (8 multiply-adds per instruction), and each activation load against
//! two weight rows. In the interleaved storage (see the crate docs) lane `l` of every product
//! belongs to block `l` of the group, so a group's exact i32 sums accumulate in one vector and
//! are converted and scaled once, by the four blocks' scales.

use core::arch::wasm32::*;

use crate::{ACT_MAX, BLOCK, GROUP, GROUP_BLOCKS};

pub const NAME: &str = "wasm-simd128";

#[inline(always)]
fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v)) + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

/// Loads 16 bytes at `p` (8 i16 codes or 4 f32).
///
/// # Safety
/// `p..p+16 bytes` must be in bounds; wasm loads have no alignment requirement.
#[inline(always)]
unsafe fn ld<T>(p: *const T) -> v128 {
    v128_load(p as *const v128)
}

/// Dot products of `W` weight rows with `R` activation rows, over all groups: `[W][R]`.
#[inline(always)]
fn tile<const W: usize, const R: usize>(a: [&[i16]; R], asc: [&[f32]; R], w: [&[i8]; W], ws: [&[f32]; W]) -> [[f32; R]; W] {
    let len = a[0].len();
    let ng = len / GROUP;
    debug_assert!(a.iter().all(|r| r.len() == len) && w.iter().all(|r| r.len() == len));
    debug_assert!(asc.iter().chain(&ws).all(|s| s.len() == ng * GROUP_BLOCKS));
    let mut acc = [[f32x4_splat(0.0); R]; W];
    for g in 0..ng {
        let o = g * GROUP;
        let mut s = [[i32x4_splat(0); R]; W];
        // SAFETY: every code slice holds ng·GROUP codes and every scale slice ng·4 scales (checked
        // by the caller's slicing); o + GROUP ≤ len and 4g + 4 ≤ scale len.
        unsafe {
            for q in (0..GROUP).step_by(16) {
                let wv: [v128; W] = core::array::from_fn(|c| ld(w[c].as_ptr().add(o + q)));
                let lo = wv.map(|v| i16x8_extend_low_i8x16(v));
                let hi = wv.map(|v| i16x8_extend_high_i8x16(v));
                for r in 0..R {
                    let p = a[r].as_ptr().add(o + q);
                    let (al, ah) = (ld(p), ld(p.add(8)));
                    for c in 0..W {
                        s[c][r] = i32x4_add(s[c][r], i32x4_add(i32x4_dot_i16x8(al, lo[c]), i32x4_dot_i16x8(ah, hi[c])));
                    }
                }
            }
            for c in 0..W {
                let wsc = ld(ws[c].as_ptr().add(g * GROUP_BLOCKS));
                for r in 0..R {
                    let sc = f32x4_mul(ld(asc[r].as_ptr().add(g * GROUP_BLOCKS)), wsc);
                    acc[c][r] = f32x4_add(acc[c][r], f32x4_mul(f32x4_convert_i32x4(s[c][r]), sc));
                }
            }
        }
    }
    acc.map(|a| a.map(hsum))
}

tiled_matmul_t!();

/// [`crate::quantize_group_scalar`] for a whole group in f32x4 (the scalar form's `max` and
/// `round` are libm calls in wasm); partial groups take the scalar form. A NaN makes its block's
/// maximum NaN here, so that block reads as zeros.
pub fn quantize_group(x: &[f32], out: &mut [i16], scales: &mut [f32]) {
    if x.len() != GROUP || out.len() != GROUP || scales.len() != GROUP_BLOCKS {
        return crate::quantize_group_scalar(x, out, scales);
    }
    // Per block: 8 i32 lanes of i16 pairs, as 4 vectors (pairs 4c..4c+4 in vector c).
    let mut pairs = [[i32x4_splat(0); 4]; GROUP_BLOCKS];
    for (b, (p, scale)) in pairs.iter_mut().zip(scales.iter_mut()).enumerate() {
        // SAFETY: x holds GROUP f32 (checked above); block b is x[32b..32b+32].
        let v: [v128; 8] = core::array::from_fn(|i| unsafe { ld(x.as_ptr().add(b * BLOCK + 4 * i)) });
        let m = v.iter().fold(f32x4_splat(0.0), |m, &v| f32x4_max(m, f32x4_abs(v)));
        let m = f32x4_max(m, i32x4_shuffle::<2, 3, 0, 1>(m, m));
        let max = f32x4_extract_lane::<0>(f32x4_max(m, i32x4_shuffle::<1, 0, 3, 2>(m, m)));
        // A zero or non-finite block keeps scale 0 and codes 0.
        let ok = max > 0.0 && max.is_finite();
        *scale = if ok { max / ACT_MAX } else { 0.0 };
        if !ok {
            continue; // `pairs` is already zero
        }
        let inv = f32x4_splat(ACT_MAX / max);
        // Round to the nearest integer, ties to even, by adding 1.5·2²³: for |x| ≤ 2²² the sum's
        // low mantissa bits are that integer (IEEE rounding does the work), so subtracting the
        // constant's bits reads it out. Two operations instead of `nearest` + `trunc_sat` (the
        // latter is a long sequence on x86); |x| ≤ ACT_MAX here, and `narrow` saturates.
        let (magic, bits) = (f32x4_splat(12_582_912.0), i32x4_splat(0x4B40_0000));
        let code = |v: v128| i32x4_sub(f32x4_add(f32x4_mul(v, inv), magic), bits);
        *p = core::array::from_fn(|c| i16x8_narrow_i32x4(code(v[2 * c]), code(v[2 * c + 1])));
    }
    // Stored vector 4c + t holds pair 4c + t of blocks 0..4: a 4x4 transpose of i32 lanes.
    for c in 0..4 {
        let [b0, b1, b2, b3] = pairs.map(|p| p[c]);
        let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(b0, b1), i32x4_shuffle::<2, 6, 3, 7>(b0, b1));
        let (t2, t3) = (i32x4_shuffle::<0, 4, 1, 5>(b2, b3), i32x4_shuffle::<2, 6, 3, 7>(b2, b3));
        let outs = [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ];
        for (t, v) in outs.into_iter().enumerate() {
            // SAFETY: out holds GROUP i16 (checked above); vector 4c + t is out[8(4c+t)..+8].
            unsafe { v128_store(out.as_mut_ptr().add(8 * (4 * c + t)) as *mut v128, v) };
        }
    }
}
