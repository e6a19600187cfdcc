//! wasm32 simd128 kernels. Activations arrive as i16 codes; each 16-byte weight load is
//! sign-extended into two i16x8 halves once and multiplied against up to four activation rows
//! with `i32x4.dot_i16x8_s` (8 multiply-adds per instruction), and each activation load against
//! two weight rows. In the interleaved storage (see the crate docs) lane `l` of every product
//! belongs to block `l` of the group, so a group's exact i32 sums accumulate in one vector and
//! are converted and scaled once, by the four blocks' scales.
//!
//! With `+relaxed-simd` (the second browser build) the tiles multiply bytes directly with
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s`: 16 multiply-adds and the accumulation in one
//! instruction, no widening. Its second operand must be 7-bit unsigned: against int8 weights that
//! is the 7-bit activation codes shifted to 0..=127 (`QRows::digits`), against narrow (4-bit)
//! weights the weight codes shifted to 0..=127 (stored so by `QMatrix`), the activations then
//! being 8-bit. Lane `l` of that product sums four bytes, so the storage interleaves runs of 4
//! values a block (`crate::RUN`). In 0..=127 the relaxed instruction has one defined result on
//! every engine, and its i16 pair sums cannot saturate (2 · 128 · 127 < 2¹⁵).
//!
//! That instruction is one `vpdpbusd` only where V8 has AVX-VNNI (or ARM's dot product); on other
//! x86-64 CPUs (AMD Zen 4 among them) it becomes `pmaddubsw`, `pmaddwd` by ones and `paddd`. For
//! matrices of 4-bit codes (-8..=7, the shipped q4 model), stored plus 8 (0..=15), the `sum16`
//! loop uses `i16x8.relaxed_dot_i8x16_i7x16_s` (one `pmaddubsw`) and sums a group's eight results
//! in i16 before widening once: |pair| ≤ 2 · 127 · 15, eight of them ≤ 30,480 < 2¹⁵. Same integer
//! sums; 1.25× the multiply-adds per second of the i32 loop on the encoder's shapes in Chromium 156
//! on AMD EPYC Zen 4 (42 vs 34 G/s, both looped as below; 24.8 G/s for the i32 loop before). Which loop runs is chosen at run time by measurement
//! ([`crate::variants`], see www/src/engine.ts).

use core::arch::wasm32::*;

use crate::{QMatrix, QRows, BLOCK, GROUP, GROUP_BLOCKS};

#[cfg(not(target_feature = "relaxed-simd"))]
pub const NAME: &str = "wasm-simd128";
#[cfg(target_feature = "relaxed-simd")]
pub const NAME: &str = "wasm-relaxed-simd";

pub fn name() -> &'static str {
    NAME
}

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

/// Pointers to rows `first..first + N` of `len` values each in `base`.
///
/// # Safety
/// `(first + N) · len ≤ base.len()`.
#[inline(always)]
unsafe fn rows<T, const N: usize>(base: &[T], first: usize, len: usize) -> [*const T; N] {
    core::array::from_fn(|t| base.as_ptr().add((first + t) * len))
}

/// Adds one group's integer sums `s` (`[W][R]`, four blocks a vector) into `acc`, each scaled by
/// its activation block scale × weight block scale (scale rows `asc`, `ws`, at block `b`): the
/// epilogue of both tiles below.
///
/// Not a fused multiply-add: the same f32 operations, in the same order, as the other paths. A
/// last-bit difference here can move the next layer's 7-bit code by a whole step (and compound
/// over the layers), so every CPU path computes bit-identical results instead of results within a
/// tolerance.
///
/// # Safety
/// `asc[r] + b .. + 4` and `ws[c] + b .. + 4` must be in bounds.
#[inline(always)]
unsafe fn scale_into<const W: usize, const R: usize>(acc: &mut [[v128; R]; W], s: &[[v128; R]; W], asc: &[*const f32; R], ws: &[*const f32; W], b: usize) {
    let a: [v128; R] = core::array::from_fn(|r| ld(asc[r].add(b)));
    for c in 0..W {
        let wb = ld(ws[c].add(b));
        for r in 0..R {
            acc[c][r] = f32x4_add(acc[c][r], f32x4_mul(f32x4_convert_i32x4(s[c][r]), f32x4_mul(a[r], wb)));
        }
    }
}

/// Dot products of weight rows `j..j + W` with activation rows `i..i + R`, over all groups: `[W][R]`.
/// Rows are addressed by pointer arithmetic: at K = 384 a tile is only three groups, and building
/// and checking eight slices a tile held the relaxed form at 34 G multiply-adds/s instead of 46
/// (Chromium 156, the encoder's shapes).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    let kg = crate::grouped(x.cols());
    let nbg = kg / BLOCK;
    let ng = kg / GROUP;
    let (xc, xs) = x.all();
    let (wc, wsc) = wm.all();
    assert!(x.cols() == wm.cols() && (i + R) * kg <= xc.len() && (j + W) * kg <= wc.len() && (i + R) * nbg <= xs.len() && (j + W) * nbg <= wsc.len());
    // SAFETY: the assert above bounds every row this tile reads: code rows of kg values and scale
    // rows of nbg, at rows i..i + R and j..j + W; each group reads o..o + GROUP of a row and
    // g·4..g·4 + 4 of its scales (o + GROUP ≤ kg, 4g + 4 ≤ nbg).
    unsafe {
        let (a, asc): ([*const i16; R], [*const f32; R]) = (rows(xc, i, kg), rows(xs, i, nbg));
        let (w, ws): ([*const i8; W], [*const f32; W]) = (rows(wc, j, kg), rows(wsc, j, nbg));
        let mut acc = [[f32x4_splat(0.0); R]; W];
        for g in 0..ng {
            let o = g * GROUP;
            let mut s = [[i32x4_splat(0); R]; W];
            for q in (0..GROUP).step_by(16) {
                let wv: [v128; W] = core::array::from_fn(|c| ld(w[c].add(o + q)));
                let lo = wv.map(|v| i16x8_extend_low_i8x16(v));
                let hi = wv.map(|v| i16x8_extend_high_i8x16(v));
                for r in 0..R {
                    let p = a[r].add(o + q);
                    let (al, ah) = (ld(p), ld(p.add(8)));
                    for c in 0..W {
                        s[c][r] = i32x4_add(s[c][r], i32x4_add(i32x4_dot_i16x8(al, lo[c]), i32x4_dot_i16x8(ah, hi[c])));
                    }
                }
            }
            scale_into(&mut acc, &s, &asc, &ws, g * GROUP_BLOCKS);
        }
        acc.map(|a| a.map(hsum))
    }
}

/// The relaxed SIMD inner loops ([`crate::variants`]): `dot32`, else `sum16` (the default:
/// faster wherever the engine has no one-instruction form of the i32 dot product, e.g. x86-64
/// without AVX-VNNI; the browser package measures both and keeps the faster, see engine.ts).
#[cfg(target_feature = "relaxed-simd")]
pub const VARIANTS: &[&str] = &["sum16", "dot32"];

/// Whether `dot32` runs (wasm has one thread per instance: a relaxed load and store suffice).
#[cfg(target_feature = "relaxed-simd")]
static DOT32: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

#[cfg(target_feature = "relaxed-simd")]
pub fn variant() -> &'static str {
    VARIANTS[usize::from(DOT32.load(core::sync::atomic::Ordering::Relaxed))]
}

#[cfg(target_feature = "relaxed-simd")]
pub fn set_variant(name: &str) -> bool {
    let Some(i) = VARIANTS.iter().position(|v| *v == name) else { return false };
    DOT32.store(i == 1, core::sync::atomic::Ordering::Relaxed);
    true
}

/// The relaxed SIMD form of [`tile`], for the matrix's operand order and stored shift (see the
/// module docs) and the chosen inner loop.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    if !wm.is_narrow() {
        relaxed_tile::<W, R, false, false, false>(x, wm, i, j)
    } else if !wm.is_nibble() {
        relaxed_tile::<W, R, true, false, false>(x, wm, i, j)
    } else if DOT32.load(core::sync::atomic::Ordering::Relaxed) {
        relaxed_tile::<W, R, true, true, false>(x, wm, i, j)
    } else {
        relaxed_tile::<W, R, true, true, true>(x, wm, i, j)
    }
}

/// Per group, the int8 operand against the shifted 7-bit one, starting from minus the shift's
/// share (the 7-bit side's partner's `offsets`: the weights' when the activations are shifted,
/// `NARROW = false`; the activations' when the weights are, `NARROW = true`, an eighth of them
/// for a `NIBBLE` matrix, shifted by 8 instead of 64), then scaled into f32 as the i16 form does.
/// `SUM16` (nibble matrices): each 16 bytes give i16 pair sums (|·| ≤ 2 · 127 · 15), a group's
/// eight of them add up in i16 (≤ 30,480) and widen to i32 once: two x86 instructions per 16
/// multiply-adds instead of three or four, the same integer sums. Rows are addressed by
/// pointer, as there.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn relaxed_tile<const W: usize, const R: usize, const NARROW: bool, const NIBBLE: bool, const SUM16: bool>(
    x: &QRows,
    wm: &QMatrix,
    i: usize,
    j: usize,
) -> [[f32; R]; W] {
    let kg = crate::grouped(x.cols());
    let nbg = kg / BLOCK;
    let ng = kg / GROUP;
    let (xd, xs, xo) = x.digit_parts();
    let (wc, wsc, wo) = wm.relaxed_parts();
    assert!(x.cols() == wm.cols() && (i + R) * kg <= xd.len() && (j + W) * kg <= wc.len() && (i + R) * nbg <= xs.len());
    assert!((j + W) * nbg <= wsc.len() && if NARROW { (i + R) * nbg <= xo.len() } else { (j + W) * nbg <= wo.len() });
    // SAFETY: the asserts above bound every row this tile reads: digit and code rows of kg bytes,
    // scale and offset rows of nbg values, at rows i..i + R and j..j + W (offsets: of the side
    // NARROW reads); each group reads o..o + GROUP of a row and g·4..g·4 + 4 of its scales
    // (o + GROUP ≤ kg, 4g + 4 ≤ nbg).
    unsafe {
        let (d, asc): ([*const u8; R], [*const f32; R]) = (rows(xd, i, kg), rows(xs, i, nbg));
        let (w, ws): ([*const i8; W], [*const f32; W]) = (rows(wc, j, kg), rows(wsc, j, nbg));
        let mut acc = [[f32x4_splat(0.0); R]; W];
        // Minus the shift's share of group g's four block sums, `[W][R]`.
        let init = |g: usize| -> [[v128; R]; W] {
            let b = g * GROUP_BLOCKS;
            if NARROW {
                let xoff: [*const i32; R] = rows(xo, i, nbg);
                let shift = |v: v128| if NIBBLE { i32x4_shr(v, 3) } else { v };
                [core::array::from_fn(|r| i32x4_neg(shift(ld(xoff[r].add(b))))); W]
            } else {
                let woff: [*const i32; W] = rows(wo, j, nbg);
                core::array::from_fn(|c| [i32x4_neg(ld(woff[c].add(b))); R])
            }
        };
        // The 16-byte chunks of a group run in a loop whose trip count LLVM cannot see
        // (`black_box`): unrolled, LLVM orders the work chain by chain, (c, r) after (c, r), with
        // every load of the group kept for the next chain, which V8 then spills (x86-64 has 16
        // vector registers); looped, W·R accumulators and W + 3 loads are live. On the probe
        // product (Chromium 156, AMD Zen 4): sum16 35 → 42, dot32 25 → 34 G multiply-adds/s.
        if SUM16 {
            for g in 0..ng {
                let o = g * GROUP;
                let mut h = [[i16x8_splat(0); R]; W];
                for ch in 0..core::hint::black_box(GROUP / 16) {
                    let q = ch * 16;
                    let wv: [v128; W] = core::array::from_fn(|c| ld(w[c].add(o + q)));
                    for r in 0..R {
                        let dv = ld(d[r].add(o + q));
                        for c in 0..W {
                            // Saturating (it never saturates, see above), so that LLVM cannot
                            // regroup the chain's adds into a tree either.
                            h[c][r] = i16x8_add_sat(h[c][r], i16x8_relaxed_dot_i8x16_i7x16(dv, wv[c]));
                        }
                    }
                }
                let mut s = init(g);
                for c in 0..W {
                    for r in 0..R {
                        s[c][r] = i32x4_add(s[c][r], i32x4_extadd_pairwise_i16x8(h[c][r]));
                    }
                }
                scale_into(&mut acc, &s, &asc, &ws, g * GROUP_BLOCKS);
            }
        } else {
            for g in 0..ng {
                let o = g * GROUP;
                let mut s = init(g);
                for ch in 0..core::hint::black_box(GROUP / 16) {
                    let q = ch * 16;
                    let wv: [v128; W] = core::array::from_fn(|c| ld(w[c].add(o + q)));
                    for r in 0..R {
                        let dv = ld(d[r].add(o + q));
                        for c in 0..W {
                            s[c][r] = if NARROW {
                                i32x4_relaxed_dot_i8x16_i7x16_add(dv, wv[c], s[c][r])
                            } else {
                                i32x4_relaxed_dot_i8x16_i7x16_add(wv[c], dv, s[c][r])
                            };
                        }
                    }
                }
                scale_into(&mut acc, &s, &asc, &ws, g * GROUP_BLOCKS);
            }
        }
        acc.map(|a| a.map(hsum))
    }
}

tiled_matmul_t!();

/// A group's stored 7-bit codes (in ±63) plus `DIGIT_OFFSET`, as bytes (see `QRows::digits`).
#[cfg(target_feature = "relaxed-simd")]
pub fn to_digits(codes: &[i16], out: &mut [u8]) {
    assert!(codes.len() == GROUP && out.len() == GROUP, "to_digits: {} codes, {} digits", codes.len(), out.len());
    let off = i16x8_splat(crate::DIGIT_OFFSET as i16);
    for v in 0..GROUP / 16 {
        // SAFETY: codes holds GROUP i16 and out GROUP bytes (asserted); vector v reads codes
        // 16v..16v + 16 and writes out[16v..16v + 16].
        unsafe {
            let p = codes.as_ptr().add(16 * v);
            let (u0, u1) = (i16x8_add(ld(p), off), i16x8_add(ld(p.add(8)), off));
            v128_store(out.as_mut_ptr().add(16 * v) as *mut v128, u8x16_narrow_i16x8(u0, u1));
        }
    }
}

/// A group's stored 8-bit codes (in ±127) as bytes, and their `DIGIT_OFFSET · Σ` per block into
/// `offsets` (see `QRows::digits`).
#[cfg(target_feature = "relaxed-simd")]
pub fn to_bytes(codes: &[i16], out: &mut [u8], offsets: &mut [i32]) {
    assert!(codes.len() == GROUP && out.len() == GROUP, "to_bytes: {} codes, {} bytes", codes.len(), out.len());
    for v in 0..GROUP / 16 {
        // SAFETY: as in `to_digits`.
        unsafe {
            let p = codes.as_ptr().add(16 * v);
            v128_store(out.as_mut_ptr().add(16 * v) as *mut v128, i8x16_narrow_i16x8(ld(p), ld(p.add(8))));
        }
    }
    // SAFETY: u8 and i8 have one layout; `out` is borrowed for no longer than this call.
    group_offsets(unsafe { core::slice::from_raw_parts(out.as_ptr() as *const i8, GROUP) }, offsets);
}

/// `DIGIT_OFFSET · Σ` of each block of one stored group of int8 codes into `out` (4 values): four
/// block sums a 16-byte load, by the relaxed dot product against ones.
#[cfg(target_feature = "relaxed-simd")]
fn group_offsets(g: &[i8], out: &mut [i32]) {
    assert!(g.len() == GROUP && out.len() == GROUP_BLOCKS, "group_offsets: {} codes, {} sums", g.len(), out.len());
    let ones = i8x16_splat(1);
    let mut s = i32x4_splat(0);
    for q in (0..GROUP).step_by(16) {
        // SAFETY: g holds GROUP bytes (asserted); q + 16 ≤ GROUP.
        s = i32x4_relaxed_dot_i8x16_i7x16_add(unsafe { ld(g.as_ptr().add(q)) }, ones, s);
    }
    s = i32x4_mul(s, i32x4_splat(crate::DIGIT_OFFSET));
    // SAFETY: out holds GROUP_BLOCKS = 4 i32 (asserted).
    unsafe { v128_store(out.as_mut_ptr() as *mut v128, s) };
}

/// `DIGIT_OFFSET · Σ codes` of every (row, block) of stored weight codes (whole groups a row), in
/// the scales' layout.
#[cfg(target_feature = "relaxed-simd")]
pub fn offsets(codes: &[i8]) -> Vec<i32> {
    let mut out = vec![0i32; codes.len() / BLOCK];
    for (g, o) in codes.chunks_exact(GROUP).zip(out.chunks_exact_mut(GROUP_BLOCKS)) {
        group_offsets(g, o);
    }
    out
}

/// [`crate::quantize_group_scalar`] for a whole group in f32x4 (the scalar form's `max` and
/// `round` are libm calls in wasm); partial groups take the scalar form. A NaN makes its block's
/// maximum NaN here, so that block reads as zeros.
pub fn quantize_group(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
    if x.len() != GROUP || out.len() != GROUP || scales.len() != GROUP_BLOCKS {
        return crate::quantize_group_scalar(x, out, scales, act_max);
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
        *scale = if ok { max / act_max } else { 0.0 };
        if !ok {
            continue; // `pairs` is already zero
        }
        let inv = f32x4_splat(act_max / max);
        // Round to the nearest integer, ties to even, by adding 1.5·2²³: for |x| ≤ 2²² the sum's
        // low mantissa bits are that integer (IEEE rounding does the work), so subtracting the
        // constant's bits reads it out. Two operations instead of `nearest` + `trunc_sat` (the
        // latter is a long sequence on x86); |x| ≤ act_max here, and `narrow` saturates.
        let (magic, bits) = (f32x4_splat(12_582_912.0), i32x4_splat(0x4B40_0000));
        let code = |v: v128| i32x4_sub(f32x4_add(f32x4_mul(v, inv), magic), bits);
        *p = core::array::from_fn(|c| i16x8_narrow_i32x4(code(v[2 * c]), code(v[2 * c + 1])));
    }
    store(&pairs, out);
}

/// Stores a group's codes, given per block as 4 i16x8 vectors (values 8c..8c + 8 in vector c), in
/// the interleaved layout.
#[cfg(not(target_feature = "relaxed-simd"))]
fn store(pairs: &[[v128; 4]; GROUP_BLOCKS], out: &mut [i16]) {
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
            // SAFETY: out holds GROUP i16 (checked by the caller); vector 4c + t is out[8(4c+t)..+8].
            unsafe { v128_store(out.as_mut_ptr().add(8 * (4 * c + t)) as *mut v128, v) };
        }
    }
}

/// Runs of 4 (relaxed SIMD): stored vector 2p + h holds run p of blocks 2h and 2h + 1, i.e. one
/// i64 lane of each block's vector p / 2.
#[cfg(target_feature = "relaxed-simd")]
fn store(pairs: &[[v128; 4]; GROUP_BLOCKS], out: &mut [i16]) {
    for p in 0..BLOCK / 4 {
        for h in 0..2 {
            let (a, b) = (pairs[2 * h][p / 2], pairs[2 * h + 1][p / 2]);
            let v = if p % 2 == 0 { i64x2_shuffle::<0, 2>(a, b) } else { i64x2_shuffle::<1, 3>(a, b) };
            // SAFETY: out holds GROUP i16 (checked by the caller); vector 2p + h is out[8(2p+h)..+8].
            unsafe { v128_store(out.as_mut_ptr().add(8 * (2 * p + h)) as *mut v128, v) };
        }
    }
}
