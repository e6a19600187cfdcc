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
//! them are SSE2's, so every x86-64 path returns the same bits. AVX-512 VNNI runs on [`Quads`]
//! (four weight rows a register, nothing to fold); AVX-VNNI on the stored rows ([`tile`]); AVX2
//! without VNNI reads the same digits and block sums for 4-bit matrices ([`YmmBytes`]), which is
//! why they are made wherever the CPU has AVX2 ([`bytes_forms`]).

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

/// AVX-512 VNNI's copy of a weight matrix, four rows a 512-bit register: 16 bytes of each of rows
/// `4q..4q + 4` side by side, already reordered by [`PERM`], so that one `vpdpbusd` against one
/// activation row's 16 bytes broadcast to the four 128-bit lanes sums the four rows' four blocks
/// at once (lane `4c + b`: row `4q + c`, block `b`). Those sums need no fold across lanes: each
/// 16-byte lane holds one row's four block sums, in the order SSE2 has them, and they are
/// converted and scaled one group at a time with the same f32 operations, so the result is the
/// same bits. Few activation rows (one title, M ≈ 14) read every weight byte once a tile of four
/// rows, with a quarter of the fold and scale instructions of [`tile`]'s 512-bit form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quads {
    /// `[quad][group][vector p of GROUP / 16][row c of 4][16 bytes]`, rows past `n` zeros.
    codes: Vec<i8>,
    /// `[quad][group][row c][block b]`: the scales.
    scales: Vec<f32>,
    /// Laid out like `scales`: `−SHIFT · Σ codes` of each (row, block), the accumulators' start.
    sums: Vec<i32>,
    groups: usize,
}

/// Rows a quad.
const QUAD: usize = 4;

impl Quads {
    /// The quads of stored codes, padded scales and [`block_sums`] of `n` rows of `kg` stored
    /// codes each; empty where this CPU has no AVX-512 VNNI.
    pub fn of(codes: &[i8], scales: &[f32], sums: &[i32], n: usize, kg: usize) -> Self {
        if detect() != Some(Vnni::Avx512) || kg == 0 {
            return Self::default();
        }
        let (groups, nbg, nq) = (kg / GROUP, kg / BLOCK, n.div_ceil(QUAD));
        let mut q = Self { codes: vec![0; nq * groups * GROUP * QUAD], scales: vec![0.0; nq * groups * 16], sums: vec![0; nq * groups * 16], groups };
        for r in 0..n {
            let (qd, c) = (r / QUAD, r % QUAD);
            for g in 0..groups {
                let at = (qd * groups + g) * GROUP * QUAD;
                for p in 0..GROUP / 16 {
                    let src = &codes[r * kg + g * GROUP + 16 * p..][..16];
                    let dst = &mut q.codes[at + 64 * p + 16 * c..][..16];
                    dst.iter_mut().zip(PERM).for_each(|(d, i)| *d = src[i as usize]);
                }
                let (from, to) = (r * nbg + g * GROUP_BLOCKS, (qd * groups + g) * 16 + c * GROUP_BLOCKS);
                q.scales[to..to + GROUP_BLOCKS].copy_from_slice(&scales[from..from + GROUP_BLOCKS]);
                q.sums[to..to + GROUP_BLOCKS].copy_from_slice(&sums[from..from + GROUP_BLOCKS]);
            }
        }
        q
    }

    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * (self.scales.len() + self.sums.len())
    }
}

/// Dot products of weight quads `q0..q0 + Q` (rows `4q0..4(q0 + Q)`) with activation rows
/// `i..i + R`, written into `out` (`[m, n]`) where the row exists. With `ahead` > 0 it also
/// prefetches the quads' bytes that far further on (only a hint: past the end it fetches nothing).
///
/// # Safety
/// The CPU has AVX-512 F, BW and VNNI; `wq` are `w`'s quads (`Quads::of` of its rows).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // r and q index several arrays and pointers at once
unsafe fn quad_tile<const Q: usize, const R: usize>(x: &QRows, wq: &Quads, n: usize, i: usize, q0: usize, ahead: usize, out: &mut [f32]) {
    let kg = crate::grouped(x.cols());
    let (groups, nbg) = (kg / GROUP, kg / BLOCK);
    let (xd, xs) = x.vnni_parts();
    assert!(groups == wq.groups && (i + R) * kg <= xd.len() && (i + R) * nbg <= xs.len());
    assert!((q0 + Q) * groups * GROUP * QUAD <= wq.codes.len() && (q0 + Q) * groups * 16 <= wq.scales.len().min(wq.sums.len()));
    assert!((i + R) * n <= out.len());
    // SAFETY: every read below is inside the lengths asserted above (group g < groups, vector
    // p < GROUP / 16, row r < R, quad q < Q); the instructions: the caller's contract.
    unsafe {
        let (d, asc) = (xd.as_ptr(), xs.as_ptr());
        let (wc, wsc, wsum) = (wq.codes.as_ptr(), wq.scales.as_ptr(), wq.sums.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); R]; Q];
        for g in 0..groups {
            let mut s = [[_mm512_setzero_si512(); R]; Q];
            for (q, s) in s.iter_mut().enumerate() {
                *s = [_mm512_loadu_si512(wsum.add(((q0 + q) * groups + g) * 16) as *const __m512i); R];
            }
            if ahead != 0 {
                for q in 0..Q {
                    // 16 scales and sums a (quad, group) against its GROUP · QUAD code bytes.
                    let at = ((q0 + q) * groups + g) * 16 + ahead / (GROUP * QUAD / 16);
                    _mm_prefetch::<_MM_HINT_T0>(wsum.wrapping_add(at) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(wsc.wrapping_add(at) as *const i8);
                }
            }
            for p in 0..GROUP / 16 {
                if ahead != 0 {
                    for q in 0..Q {
                        _mm_prefetch::<_MM_HINT_T1>(wc.wrapping_add((((q0 + q) * groups + g) * (GROUP / 16) + p) * 64 + ahead));
                    }
                }
                let w: [__m512i; Q] = core::array::from_fn(|q| _mm512_loadu_si512(wc.add((((q0 + q) * groups + g) * (GROUP / 16) + p) * 64) as *const __m512i));
                for r in 0..R {
                    let a = _mm512_broadcast_i32x4(_mm_loadu_si128(d.add((i + r) * kg + g * GROUP + 16 * p) as *const __m128i));
                    for q in 0..Q {
                        s[q][r] = _mm512_dpbusd_epi32(s[q][r], a, w[q]);
                    }
                }
            }
            // SSE2's steps per lane: scale = activation scale · weight scale, acc += sum · scale.
            for r in 0..R {
                let a = _mm512_broadcast_f32x4(_mm_loadu_ps(asc.add((i + r) * nbg + g * GROUP_BLOCKS)));
                for q in 0..Q {
                    let sc = _mm512_mul_ps(a, _mm512_loadu_ps(wsc.add(((q0 + q) * groups + g) * 16)));
                    acc[q][r] = _mm512_add_ps(acc[q][r], _mm512_mul_ps(_mm512_cvtepi32_ps(s[q][r]), sc));
                }
            }
        }
        // Each 128-bit lane's [`hsum4`], in its order ((b0 + b1) + (b2 + b3)), for the four
        // rows at once, then lanes 0, 4, 8, 12 side by side: four adjacent outputs.
        let firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        for (q, acc) in acc.iter().enumerate() {
            let col = (q0 + q) * QUAD;
            for (r, &acc) in acc.iter().enumerate() {
                let pairs = _mm512_add_ps(acc, _mm512_permute_ps::<0xB1>(acc));
                let sums = _mm512_add_ps(pairs, _mm512_permute_ps::<0x4E>(pairs));
                let four = _mm512_castps512_ps128(_mm512_permutexvar_ps(firsts, sums));
                let o = &mut out[(i + r) * n + col..];
                if col + QUAD <= n {
                    _mm_storeu_ps(o.as_mut_ptr(), four);
                } else {
                    let mut l = [0f32; 4];
                    _mm_storeu_ps(l.as_mut_ptr(), four);
                    o[..n - col].copy_from_slice(&l[..n - col]);
                }
            }
        }
    }
}

/// `matmul_t` on [`Quads`]: weight quads three at a time (24 of the 32 registers hold their
/// sums and accumulators for four activation rows), activation rows in tiles of at most four,
/// as even as possible (as `tiled_matmul_t!`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn matmul_quads(x: &QRows, w: &QMatrix, out: &mut [f32]) {
    let wq = w.vnni_quads();
    let (m, n) = (x.rows(), w.rows());
    let (nq, tiles) = (n.div_ceil(QUAD), m.div_ceil(4));
    let mut q = 0;
    while q < nq {
        let qn = [3, 2, 1].into_iter().find(|&qn| q + qn <= nq).unwrap_or(1);
        let mut i = 0;
        // The first tile reads this quad run from memory; it also asks for the next run's bytes
        // (as far ahead as this run is long), so that they arrive while this one is summed.
        let ahead = qn * wq.groups * GROUP * QUAD;
        for t in 0..tiles {
            let ahead = if t == 0 { ahead } else { 0 };
            let rn = m / tiles + usize::from(t < m % tiles);
            macro_rules! run {
                ($($q:literal),+) => {
                    // SAFETY: this function's target features; `wq` is `w`'s.
                    unsafe {
                        match (qn, rn) {
                            $(
                                ($q, 4) => quad_tile::<$q, 4>(x, wq, n, i, q, ahead, out),
                                ($q, 3) => quad_tile::<$q, 3>(x, wq, n, i, q, ahead, out),
                                ($q, 2) => quad_tile::<$q, 2>(x, wq, n, i, q, ahead, out),
                                ($q, _) => quad_tile::<$q, 1>(x, wq, n, i, q, ahead, out),
                            )+
                            _ => unreachable!("quads a tile: 3, 2 or 1"),
                        }
                    }
                };
            }
            run!(3, 2, 1);
            i += rn;
        }
        q += qn;
    }
}

/// The register width a tile works in (AVX-VNNI's 256 bits; AVX-512 VNNI has [`Quads`]).
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
    /// Group `g`'s integer sums of a tile (see [`Rows::sums`], which this is unless a width
    /// sums otherwise).
    ///
    /// # Safety
    /// As [`Rows::sums`].
    #[inline(always)]
    unsafe fn group_sums<const W: usize, const R: usize>(rows: &Rows<W, R>, g: usize, perm: Self::V) -> [[Self::V; R]; W]
    where
        Self: Sized,
    {
        // SAFETY: the caller's contract.
        unsafe { rows.sums::<Self>(g, perm) }
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

/// AVX2 without VNNI, on matrices whose codes are all in -8..=7 (4-bit files): `vpmaddubsw`
/// multiplies the same unsigned digits by the same reordered signed codes in pairs, into i16
/// lanes (|pair| ≤ 2 · 255 · 8 = 4080, so it never saturates), and a group's four 32-byte steps
/// add up in i16 (≤ 16,320) before one `vpmaddwd` by ones widens each lane pair: the i32 lane
/// then holds the same four byte products as `vpdpbusd`'s, so the same block sums and bits, at
/// two instructions a 32 bytes instead of the 16-bit path's four.
struct YmmBytes;

impl Width for YmmBytes {
    type V = __m256i;
    const BYTES: usize = 32;
    #[inline(always)]
    unsafe fn perm() -> __m256i {
        unsafe { Ymm::perm() }
    }
    #[inline(always)]
    unsafe fn start(start: __m128i) -> __m256i {
        unsafe { Ymm::start(start) }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        unsafe { Ymm::load(p) }
    }
    #[inline(always)]
    unsafe fn shuffle(v: __m256i, perm: __m256i) -> __m256i {
        unsafe { Ymm::shuffle(v, perm) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }
    #[inline(always)]
    unsafe fn fold(v: __m256i) -> __m128i {
        unsafe { Ymm::fold(v) }
    }
    #[inline(always)]
    unsafe fn group_sums<const W: usize, const R: usize>(t: &Rows<W, R>, g: usize, perm: __m256i) -> [[__m256i; R]; W] {
        let (o, b) = (g * GROUP, g * GROUP_BLOCKS);
        // SAFETY: as `Rows::sums` (the same reads).
        unsafe {
            let mut h = [[_mm256_setzero_si256(); R]; W];
            for q in (0..GROUP).step_by(32) {
                t.prefetch_next(o + q);
                let mut wv = [perm; W];
                for (v, w) in wv.iter_mut().zip(&t.w) {
                    *v = _mm256_shuffle_epi8(_mm256_loadu_si256(w.add(o + q) as *const __m256i), perm);
                }
                for (r, d) in t.d.iter().enumerate() {
                    let dv = _mm256_loadu_si256(d.add(o + q) as *const __m256i);
                    for (hc, &wv) in h.iter_mut().zip(&wv) {
                        hc[r] = _mm256_add_epi16(hc[r], _mm256_maddubs_epi16(dv, wv));
                    }
                }
            }
            let ones = _mm256_set1_epi16(1);
            let mut s = [[perm; R]; W];
            for ((sc, hc), wsum) in s.iter_mut().zip(&h).zip(&t.wsum) {
                let start = Ymm::start(_mm_loadu_si128(wsum.add(b) as *const __m128i));
                for (s, &h) in sc.iter_mut().zip(hc) {
                    *s = _mm256_add_epi32(start, _mm256_madd_epi16(h, ones));
                }
            }
            s
        }
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
    /// The first tile of these weight rows: the one that reads them from memory.
    first: bool,
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
        Self { d, asc, w, ws, wsum, groups: kg / GROUP, first: i == 0 }
    }

    /// One title streams every matrix once: the first tile of these weight rows, which reads them
    /// from memory, asks for the next `W` rows' bytes at offset `at` (rows are contiguous) while it
    /// sums these, as the AVX2 and quad tiles do. Only a hint: past the matrix it fetches nothing.
    #[inline(always)]
    fn prefetch_next(&self, at: usize) {
        if self.first {
            for w in &self.w {
                // SAFETY: a prefetch reads nothing the program sees and faults on no address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(at + W * self.groups * GROUP)) };
            }
        }
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
                self.prefetch_next(o + q);
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
            let s = L::group_sums(&t, g, perm);
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

mod bytes {
    use super::{QMatrix, QRows, YmmBytes};

    #[inline]
    #[target_feature(enable = "avx2")]
    fn tile<const W: usize, const R: usize>(x: &QRows, wm: &QMatrix, i: usize, j: usize) -> [[f32; R]; W] {
        // SAFETY: this function's target features are YmmBytes's instructions.
        unsafe { super::tile::<YmmBytes, W, R>(x, wm, i, j) }
    }

    tiled_matmul_t!(#[target_feature(enable = "avx2")]);
}

/// [`YmmBytes`]'s `matmul_t`, where it applies: `w`'s codes all in -8..=7 and both sides carrying
/// their byte forms (digits and block sums, made wherever the CPU has AVX2). Whether it ran.
pub fn matmul_t_bytes(x: &QRows, w: &QMatrix, out: &mut [f32]) -> bool {
    let ready = bytes_forms() && w.is_nibble() && !x.vnni_parts().0.is_empty() && !w.vnni_parts().2.is_empty();
    if ready {
        // SAFETY: AVX2 checked by bytes_forms; the tiles assert the parts' lengths.
        unsafe { bytes::matmul_t(x, w, out) };
    }
    ready
}

/// Whether activations and weights carry the byte forms (digits, block sums): where some byte
/// path can read them, VNNI or AVX2's [`YmmBytes`].
pub fn bytes_forms() -> bool {
    detect().is_some() || is_x86_feature_detected!("avx2")
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
            Vnni::Avx512 => matmul_quads(x, w, out),
            Vnni::Avx => avx::matmul_t(x, w, out),
        }
    }
}
