//! x86-64 VNNI block dot products, chosen at run time (`sse2::matmul_t`) where the CPU has them:
//! `vpdpbusd` multiplies 4 unsigned bytes by 4 signed ones and adds the four products to an i32
//! lane in one instruction (64 multiply-adds on 512-bit registers with AVX-512 VNNI, 32 with
//! AVX-VNNI's 256-bit VEX form), against AVX2's 16 for `vpmaddwd` on widened codes.
//!
//! The unsigned operand is the activations: codes (±63 or ±127, [`crate::ActBits`]) plus
//! [`SHIFT`] = 128, in 1..=255 (`QRows::digits`). A block's sum is then
//! `Σ w·(a + 128) − 128 · Σ w`, and the weights' share, `128 · Σ w` of each (row, block), is
//! precomputed at load (`QMatrix::vnni_sums`, stored negated: it starts the accumulator). Unlike
//! `vpmaddubsw`, `vpdpbusd` does not saturate: its byte products (|·| ≤ 255 · 128) are summed in
//! 32 bits, so the block sums are exact and equal the i16 paths' (`tests/vnni.rs` checks the bits).
//!
//! One i32 lane sums four bytes, so they must belong to one block. The stored layout pairs the
//! values (`crate::RUN` = 2, for `pmaddwd`); each 16 bytes of weights are reordered in-register
//! with one `vpshufb` ([`PERM`]) into runs of four a block, and the activation digits are written
//! in that order when they are quantized. Lane `l` of a 16-byte lane then sums block `l % 4` of
//! the group; folding the lanes gives the SSE2 path's four block sums, and the f32 steps after
//! them are SSE2's, so every x86-64 path returns the same bits.

use core::arch::x86_64::*;

use crate::{QMatrix, QRows, BLOCK, GROUP, GROUP_BLOCKS, RUN};

/// The VNNI form this CPU has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vnni {
    /// AVX-512 VNNI (with AVX-512 BW for the byte shuffle): 512-bit `vpdpbusd`.
    Avx512,
    /// AVX-VNNI: 256-bit VEX `vpdpbusd` (Alder Lake and later without AVX-512).
    Avx,
}

/// The VNNI form to use, if any: AVX-512 first. `is_x86_feature_detected!` caches its answer.
pub fn detect() -> Option<Vnni> {
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni") {
        Some(Vnni::Avx512)
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni") {
        Some(Vnni::Avx)
    } else {
        None
    }
}

/// What the activation codes get added to become `vpdpbusd`'s unsigned operand.
pub const SHIFT: i32 = 128;

/// Byte `d` of every reordered 16 bytes is stored byte `PERM[d]`: run of four `d / 4` is block
/// `d / 4`'s values `2p, 2p + 1` (stored bytes `2b..2b + 2`) and `2p + 2, 2p + 3` (the next pair
/// vector's, 8 bytes on).
const PERM: [u8; 16] = {
    let mut p = [0u8; 16];
    let mut d = 0;
    while d < 16 {
        let (b, u) = (d / 4, d % 4);
        p[d] = ((u / 2) * 8 + b * 2 + u % 2) as u8;
        d += 1;
    }
    p
};

const _: () = assert!(RUN == 2 && GROUP_BLOCKS == 4, "PERM reorders pairs of four blocks");

/// A group's stored codes (`GROUP` i16 in ±127) as digits: plus [`SHIFT`], as bytes, reordered by
/// [`PERM`].
pub fn to_digits(codes: &[i16], out: &mut [u8]) {
    assert!(codes.len() == GROUP && out.len() == GROUP, "to_digits: {} codes, {} digits", codes.len(), out.len());
    // SAFETY: every CPU with VNNI has SSSE3; this path only runs where `detect` found VNNI.
    unsafe { to_digits_ssse3(codes, out) }
}

#[target_feature(enable = "ssse3")]
fn to_digits_ssse3(codes: &[i16], out: &mut [u8]) {
    // SAFETY: PERM is 16 bytes.
    let perm = unsafe { _mm_loadu_si128(PERM.as_ptr() as *const __m128i) };
    let bias = _mm_set1_epi8(SHIFT as u8 as i8);
    for v in 0..GROUP / 16 {
        // SAFETY: codes holds GROUP i16 and out GROUP bytes (asserted by the caller); vector v
        // reads codes 16v..16v + 16 and writes out[16v..16v + 16].
        unsafe {
            let p = codes.as_ptr().add(16 * v);
            // Codes are within ±127: the saturating pack is exact; + 128 is a flip of the top bit.
            let b = _mm_packs_epi16(_mm_loadu_si128(p as *const __m128i), _mm_loadu_si128(p.add(8) as *const __m128i));
            _mm_storeu_si128(out.as_mut_ptr().add(16 * v) as *mut __m128i, _mm_xor_si128(_mm_shuffle_epi8(b, perm), bias));
        }
    }
}

/// `−SHIFT · Σ codes` of every (row, block) of stored weight codes (whole groups a row), in the
/// scales' layout: the start of each block's accumulator.
pub fn block_sums(codes: &[i8]) -> Vec<i32> {
    let mut out = vec![0i32; codes.len() / BLOCK];
    for (g, o) in codes.chunks_exact(GROUP).zip(out.chunks_exact_mut(GROUP_BLOCKS)) {
        for (t, &c) in g.iter().enumerate() {
            o[t % (RUN * GROUP_BLOCKS) / RUN] -= SHIFT * c as i32;
        }
    }
    out
}

/// The register width a tile works in: the same tile for AVX-512 VNNI and AVX-VNNI.
trait Width {
    type V: Copy;
    /// Bytes a register holds.
    const BYTES: usize;
    /// [`PERM`] in every 16-byte lane.
    unsafe fn perm() -> Self::V;
    /// A register with `start` (four i32) in its lowest 16-byte lane, zeros elsewhere.
    unsafe fn start(start: __m128i) -> Self::V;
    unsafe fn load(p: *const u8) -> Self::V;
    unsafe fn shuffle(v: Self::V, perm: Self::V) -> Self::V;
    /// `acc + Σ` of four unsigned bytes of `u` times four signed bytes of `s`, per i32 lane.
    unsafe fn dot(acc: Self::V, u: Self::V, s: Self::V) -> Self::V;
    /// The sum of the 16-byte lanes: four block sums.
    unsafe fn fold(v: Self::V) -> __m128i;
}

struct Zmm;

impl Width for Zmm {
    type V = __m512i;
    const BYTES: usize = 64;
    #[inline(always)]
    unsafe fn perm() -> __m512i {
        _mm512_broadcast_i32x4(_mm_loadu_si128(PERM.as_ptr() as *const __m128i))
    }
    #[inline(always)]
    unsafe fn start(start: __m128i) -> __m512i {
        _mm512_zextsi128_si512(start)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        _mm512_loadu_si512(p as *const __m512i)
    }
    #[inline(always)]
    unsafe fn shuffle(v: __m512i, perm: __m512i) -> __m512i {
        _mm512_shuffle_epi8(v, perm)
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, u: __m512i, s: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, u, s)
    }
    #[inline(always)]
    unsafe fn fold(v: __m512i) -> __m128i {
        let h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
    }
}

struct Ymm;

impl Width for Ymm {
    type V = __m256i;
    const BYTES: usize = 32;
    #[inline(always)]
    unsafe fn perm() -> __m256i {
        _mm256_broadcastsi128_si256(_mm_loadu_si128(PERM.as_ptr() as *const __m128i))
    }
    #[inline(always)]
    unsafe fn start(start: __m128i) -> __m256i {
        _mm256_zextsi128_si256(start)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }
    #[inline(always)]
    unsafe fn shuffle(v: __m256i, perm: __m256i) -> __m256i {
        _mm256_shuffle_epi8(v, perm)
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    }
    #[inline(always)]
    unsafe fn fold(v: __m256i) -> __m128i {
        _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
    }
}

/// A tile's rows, by pointer (as in the wasm tiles): activation digits and scales of rows
/// `i..i + R`, weight codes, scales and block sums of rows `j..j + W`.
struct Rows<const W: usize, const R: usize> {
    d: [*const u8; R],
    asc: [*const f32; R],
    w: [*const i8; W],
    ws: [*const f32; W],
    wsum: [*const i32; W],
    groups: usize,
}

impl<const W: usize, const R: usize> Rows<W, R> {
    #[inline(always)]
    fn new(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> Self {
        let kg = crate::grouped(x.cols());
        let nbg = kg / BLOCK;
        let (xd, xs) = x.vnni_parts();
        let (wc, wsc, wo) = wm.vnni_parts();
        assert!(x.cols() == wm.cols() && (i + R) * kg <= xd.len() && (j + W) * kg <= wc.len() && (i + R) * nbg <= xs.len());
        assert!((j + W) * nbg <= wsc.len() && (j + W) * nbg <= wo.len());
        // wrapping_add: no unsafe here; in bounds by the asserts above.
        let (mut d, mut asc) = ([xd.as_ptr(); R], [xs.as_ptr(); R]);
        for r in 0..R {
            d[r] = xd.as_ptr().wrapping_add((i + r) * kg);
            asc[r] = xs.as_ptr().wrapping_add((i + r) * nbg);
        }
        let (mut w, mut ws, mut wsum) = ([wc.as_ptr(); W], [wsc.as_ptr(); W], [wo.as_ptr(); W]);
        for c in 0..W {
            w[c] = wc.as_ptr().wrapping_add((j + c) * kg);
            ws[c] = wsc.as_ptr().wrapping_add((j + c) * nbg);
            wsum[c] = wo.as_ptr().wrapping_add((j + c) * nbg);
        }
        Self { d, asc, w, ws, wsum, groups: kg / GROUP }
    }

    /// Group `g`'s integer sums, `[W][R]`, each in 16-byte lanes of four block sums to fold
    /// (the weights' share in the lowest).
    ///
    /// # Safety
    /// `g < self.groups` (then every read is inside the rows `new` checked: o + GROUP ≤ kg,
    /// GROUP a multiple of `L::BYTES`, 4g + 4 ≤ nbg), and the CPU has `L`'s instructions.
    #[inline(always)]
    unsafe fn sums<L: Width>(&self, g: usize, perm: L::V) -> [[L::V; R]; W] {
        let (o, b) = (g * GROUP, g * GROUP_BLOCKS);
        // SAFETY: the caller's contract.
        unsafe {
            let mut s = [[perm; R]; W];
            for (sc, wsum) in s.iter_mut().zip(&self.wsum) {
                *sc = [L::start(_mm_loadu_si128(wsum.add(b) as *const __m128i)); R];
            }
            for q in (0..GROUP).step_by(L::BYTES) {
                let mut wv = [perm; W];
                for (v, w) in wv.iter_mut().zip(&self.w) {
                    *v = L::shuffle(L::load(w.add(o + q) as *const u8), perm);
                }
                for (r, d) in self.d.iter().enumerate() {
                    let dv = L::load(d.add(o + q));
                    for (sc, &wv) in s.iter_mut().zip(&wv) {
                        sc[r] = L::dot(sc[r], dv, wv);
                    }
                }
            }
            s
        }
    }
}

/// `(l0 + l1) + (l2 + l3)` of each four f32 in `v`: SSE2's last step.
#[inline(always)]
fn hsum4<const N: usize>(v: &[f32; N], at: usize) -> f32 {
    (v[at] + v[at + 1]) + (v[at + 2] + v[at + 3])
}

/// Dot products of weight rows `j..j + W` with activation rows `i..i + R`, over all groups:
/// `[W][R]`, each group's four block sums folded and scaled one (weight row, activation row) at a
/// time, as SSE2 does.
///
/// # Safety
/// The CPU must have the instructions `L` uses (the callers' `target_feature`s).
#[inline(always)]
unsafe fn tile<L: Width, const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    let t = Rows::<W, R>::new(x, wm, i, j);
    // SAFETY: g < t.groups; scale reads at 4g..4g + 4 < nbg (see `Rows::sums`); the
    // instructions: the caller's contract.
    unsafe {
        let perm = L::perm();
        let mut acc = [[_mm_setzero_ps(); R]; W];
        for g in 0..t.groups {
            let s = t.sums::<L>(g, perm);
            let b = g * GROUP_BLOCKS;
            for c in 0..W {
                let wb = _mm_loadu_ps(t.ws[c].add(b));
                for r in 0..R {
                    let sc = _mm_mul_ps(_mm_loadu_ps(t.asc[r].add(b)), wb);
                    acc[c][r] = _mm_add_ps(acc[c][r], _mm_mul_ps(_mm_cvtepi32_ps(L::fold(s[c][r])), sc));
                }
            }
        }
        let mut out = [[0f32; R]; W];
        for c in 0..W {
            for r in 0..R {
                let mut l = [0f32; 4];
                _mm_storeu_ps(l.as_mut_ptr(), acc[c][r]);
                out[c][r] = hsum4(&l, 0);
            }
        }
        out
    }
}

/// [`tile`] on 512-bit registers for tiles of four activation rows: the four rows' sums with one
/// weight row are folded together (two rounds of 128-bit lane shuffles, a register of four rows'
/// four block sums) and scaled in one 512-bit multiply: the same f32 operations per lane, a
/// quarter of the instructions.
///
/// # Safety
/// `R == 4`, and the CPU has AVX-512 F, BW and VNNI.
#[inline(always)]
unsafe fn tile_zmm4<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
    debug_assert_eq!(R, 4);
    let t = Rows::<W, R>::new(x, wm, i, j);
    // SAFETY: as in `tile`; activation scale reads at rows 0..4 (R == 4).
    unsafe {
        let perm = Zmm::perm();
        let mut acc = [_mm512_setzero_ps(); W];
        for g in 0..t.groups {
            let s = t.sums::<Zmm>(g, perm);
            let b = g * GROUP_BLOCKS;
            // Lane r: row r's four block scales.
            let asc = _mm512_insertf32x4::<3>(
                _mm512_insertf32x4::<2>(
                    _mm512_insertf32x4::<1>(_mm512_castps128_ps512(_mm_loadu_ps(t.asc[0].add(b))), _mm_loadu_ps(t.asc[1].add(b))),
                    _mm_loadu_ps(t.asc[2].add(b)),
                ),
                _mm_loadu_ps(t.asc[3].add(b)),
            );
            for c in 0..W {
                let [s0, s1, s2, s3] = [s[c][0], s[c][1], s[c][2], s[c][3]];
                // (s0 lanes 0+2, 1+3, s1 lanes 0+2, 1+3), then each pair: rows 0..4 in order.
                let t01 = _mm512_add_epi32(_mm512_shuffle_i64x2::<0x44>(s0, s1), _mm512_shuffle_i64x2::<0xEE>(s0, s1));
                let t23 = _mm512_add_epi32(_mm512_shuffle_i64x2::<0x44>(s2, s3), _mm512_shuffle_i64x2::<0xEE>(s2, s3));
                let sums = _mm512_add_epi32(_mm512_shuffle_i64x2::<0x88>(t01, t23), _mm512_shuffle_i64x2::<0xDD>(t01, t23));
                let wb = _mm512_broadcast_f32x4(_mm_loadu_ps(t.ws[c].add(b)));
                acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(asc, wb)));
            }
        }
        let mut out = [[0f32; R]; W];
        for (o, acc) in out.iter_mut().zip(acc) {
            let mut l = [0f32; 16];
            _mm512_storeu_ps(l.as_mut_ptr(), acc);
            for (r, o) in o.iter_mut().enumerate() {
                *o = hsum4(&l, 4 * r);
            }
        }
        out
    }
}

mod avx512 {
    use super::{QMatrix, QRows, Zmm};

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
        // SAFETY: this function's target features are Zmm's instructions; tile_zmm4 gets R == 4.
        unsafe {
            if R == 4 {
                super::tile_zmm4::<W, R>(x, wm, i, j)
            } else {
                super::tile::<Zmm, W, R>(x, wm, i, j)
            }
        }
    }

    // Four weight rows a tile: 32 registers hold their 16 sums.
    tiled_matmul_t!(4, 2, 1; #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]);
}

mod avx {
    use super::{QMatrix, QRows, Ymm};

    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
        // SAFETY: this function's target features are Ymm's instructions.
        unsafe { super::tile::<Ymm, W, R>(x, wm, i, j) }
    }

    tiled_matmul_t!(#[target_feature(enable = "avx2,avxvnni")]);
}

/// `matmul_t` on `form`.
///
/// # Safety
/// The CPU must have `form` ([`detect`]); `x` and `w` must carry their VNNI parts (built where
/// [`detect`] finds VNNI; the tiles assert their lengths).
pub unsafe fn matmul_t(form: Vnni, x: &QRows, w: &QMatrix, out: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        match form {
            Vnni::Avx512 => avx512::matmul_t(x, w, out),
            Vnni::Avx => avx::matmul_t(x, w, out),
        }
    }
}
