//! CPU kernels for quantized inference: `y = x · Wᵀ + b` with block-quantized int8 (or 4-bit)
//! weights and 7-bit (against int8 weights) or 8-bit (against 4-bit weights) activations, see
//! [`ActBits`], accumulated exactly in i32 inside each block and in f32 across blocks.
//!
//! Layout (the llama.cpp "q8_0 × q8_0" idea, with our own code): the reduction dimension `k` is cut
//! into blocks of [`BLOCK`] values; every block of every weight row and of every activation row has
//! its own f32 scale. A weight row stored per channel (one scale for the whole row, see
//! `shelfwise_model::quant`) or as 4-bit codes with a scale per group of 32 becomes the same
//! [`QMatrix`]; activations are quantized per (row, block) at run time by [`quantize_rows`], so
//! one outlier cannot flatten a whole 1536-wide row.
//!
//! Storage interleaves each group of four blocks (128 values of `k`): the eight codes a 16-byte
//! i16 load sees hold two consecutive values of each of the four blocks, so the four i32 lanes of
//! `i32x4.dot_i16x8_s` sum the four blocks separately. A group's products then accumulate in one
//! i32x4 and are converted and scaled once, by the four blocks' scales in one f32x4 multiply,
//! instead of a convert, a splat and a scale per block.
//!
//! Five implementations of the block dot product, one result:
//! - [`reference`]: plain scalar loops over the logical codes, the definition the tests compare
//!   against;
//! - `simd128` (wasm32 with `+simd128`): `i32x4.dot_i16x8_s` on sign-extended codes, two weight
//!   rows by up to four activation rows a tile, so every weight load is widened once for four
//!   rows and every activation load serves two weight rows;
//! - `simd128` with `+relaxed-simd` (a second browser build, chosen when the browser validates
//!   relaxed SIMD): `i32x4.relaxed_dot_i8x16_i7x16_add_s` (16 multiply-adds per instruction, no
//!   widening) on one 8-bit and one 7-bit unsigned operand: int8 weights against 7-bit
//!   activation codes shifted to 0..=127, or 8-bit activation codes against narrow (4-bit)
//!   weight codes shifted to 0..=127; runs of 4 values a block in the interleave instead of 2;
//! - `sse2` (x86-64): the same tiles with `pmaddwd`, with 256-bit `vpmaddwd` (`avx2`) where the
//!   CPU has AVX2, or with `vpdpbusd` (`vnni`: AVX-512 VNNI on 512-bit registers, else AVX-VNNI
//!   on 256-bit ones) on activation codes + 128 as bytes (checked at run time, widest first; the
//!   same bits on every path);
//! - portable (everything else): scalar Rust, per group.
//!
//! Integer sums are exact (a block's |sum| ≤ 32·32767·128 < 2³¹), so the SIMD and portable paths
//! differ from the reference only by f32 summation order across blocks.

pub mod ops;
pub mod reference;

/// `matmul_t` over a `tile::<W, R>(x, w, i, j) -> [[f32; R]; W]` in scope (the SIMD paths' dot
/// products of weight rows `j..j + W` with activation rows `i..i + R`): weight rows `W` at a time
/// (the widest of the listed widths that fits, default `2, 1`), so they share every activation
/// load, and activation rows in tiles of at most 4, as even as possible (13 = 4+3+3+3, not
/// 4+4+4+1: a lone row would widen every weight load for one row).
#[cfg(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"))]
macro_rules! tiled_matmul_t {
    ($(#[$attr:meta])*) => {
        tiled_matmul_t!(2, 1; $(#[$attr])*);
    };
    ($($w:literal),+; $(#[$attr:meta])*) => {
        $(#[$attr])*
        pub fn matmul_t(x: &$crate::QRows, w: &$crate::QMatrix, out: &mut [f32]) {
            let (m, n) = (x.rows(), w.rows());
            let tiles = m.div_ceil(4);
            let mut j = 0;
            while j < n {
                let wn = [$($w),+].into_iter().find(|&wn| j + wn <= n).unwrap_or(1);
                let mut i = 0;
                for t in 0..tiles {
                    let rn = m / tiles + usize::from(t < m % tiles);
                    macro_rules! run {
                        ($tw:literal, $tr:literal) => {{
                            let t = tile::<$tw, $tr>(x, w, i, j);
                            for (c, col) in t.iter().enumerate() {
                                for (r, v) in col.iter().enumerate() {
                                    out[(i + r) * n + j + c] = *v;
                                }
                            }
                        }};
                    }
                    $(
                        if wn == $w {
                            match rn {
                                4 => run!($w, 4),
                                3 => run!($w, 3),
                                2 => run!($w, 2),
                                _ => run!($w, 1),
                            }
                        }
                    )+
                    i += rn;
                }
                j += wn;
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(target_arch = "x86_64")]
mod sse2;
#[cfg(target_arch = "x86_64")]
mod vnni;

/// Values per quantization block along `k`.
pub const BLOCK: usize = 32;

/// How many bits the activation codes get, one scale per (row, block of 32): chosen by the weight
/// matrix they multiply ([`QMatrix::act_bits`]).
///
/// Relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies an int8 operand by a 7-bit
/// unsigned one, 16 multiply-adds an instruction (about 1.5× the i16 path's throughput: 46 vs 30
/// G multiply-adds/s in Chromium 156). Against int8 weights the activations must be the 7-bit
/// side: codes in ±63, shifted by [`DIGIT_OFFSET`]. Weight codes in -64..=63 (every 4-bit
/// matrix) fit the 7-bit side themselves once shifted, so the activations take the int8 side with
/// codes in ±127. The i16 paths compute the same integer sums for both.
///
/// Measured on the Flipkart dev set (`shelfwise classify --batch`, 1197 titles, same top-1 as the
/// f32 model): a QAT q4 model whose weights are exactly its f32 model's keeps 1190 at 7 bits, 1193
/// at 8 bits and 1197 at 16; the int8 model 1189 at 7 bits, 1192 at 14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActBits {
    /// Codes in ±63: against int8 weights.
    #[default]
    Seven,
    /// Codes in ±127: against narrow weights (codes in -64..=63).
    Eight,
}

impl ActBits {
    /// What weight codes take: [`ActBits::Eight`] when every code is in -64..=63 (a 4-bit
    /// matrix's), else [`ActBits::Seven`]. The GPU's quantized matmul decides by the same rule.
    pub fn of_codes(codes: &[i8]) -> Self {
        if code_range(codes).is_some_and(|(lo, hi)| lo >= -64 && hi <= 63) {
            ActBits::Eight
        } else {
            ActBits::Seven
        }
    }

    /// The largest code.
    pub fn max(self) -> f32 {
        match self {
            ActBits::Seven => 63.0,
            ActBits::Eight => 127.0,
        }
    }
}

/// The smallest and largest code (`None` for none), in one pass without an early exit, which the
/// compiler vectorises: a model load scans millions of codes (in wasm, `all` with a range check
/// took several ms a scan).
fn code_range(codes: &[i8]) -> Option<(i8, i8)> {
    let (lo, hi) = codes.iter().fold((i8::MAX, i8::MIN), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    (!codes.is_empty()).then_some((lo, hi))
}

/// What relaxed SIMD adds to a code to make it a 7-bit unsigned operand: `code + 64` is in 0..=127
/// for codes in -64..=63. The other operand's side of that shift, `64 · Σ` its codes a block, is
/// subtracted once per block.
pub const DIGIT_OFFSET: i32 = 64;

/// What relaxed SIMD adds to the codes of a 4-bit-range matrix (every code in -8..=7, see
/// [`QMatrix`]'s `nibble`): `code + 8` in 0..=15 keeps a pair of 8-bit activation products under
/// 2 · 127 · 15, so eight of `i16x8.relaxed_dot_i8x16_i7x16_s`'s pair sums add up in i16 without
/// overflow (the `sum16` inner loop). The activations' side is `8 · Σ` codes, their
/// `DIGIT_OFFSET · Σ` shifted right by 3.
pub const NIBBLE_OFFSET: i32 = 8;

/// One scale per row (`[n]`) as one per (row, block) of a row of `k` values, `[n, ceil(k / BLOCK)]`:
/// the per-channel int8 layout in the block layout every kernel and loader reads.
pub fn row_scales_as_blocks(row_scales: &[f32], k: usize) -> Vec<f32> {
    let nb = padded(k) / BLOCK;
    row_scales.iter().flat_map(|&s| std::iter::repeat_n(s, nb)).collect()
}

/// Rounds `k` up to whole blocks.
pub fn padded(k: usize) -> usize {
    k.div_ceil(BLOCK) * BLOCK
}

/// Blocks a storage group interleaves (see the module docs), and its values.
const GROUP_BLOCKS: usize = 4;
const GROUP: usize = GROUP_BLOCKS * BLOCK;

/// Stored values of a row of `k`: whole groups, zero padded.
fn grouped(k: usize) -> usize {
    k.div_ceil(GROUP) * GROUP
}

/// Consecutive values of one block that a stored vector holds side by side: 2 for the i16 dot
/// products (one i32 lane sums a pair), 4 for relaxed SIMD's 8-bit dot product (one i32 lane sums
/// four bytes).
#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
const RUN: usize = 2;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
const RUN: usize = 4;

/// Where logical column `c` of a row is stored. Within its group, run `p = (c % BLOCK) / RUN` of
/// block `b = (c % GROUP) / BLOCK` is stored run `p · GROUP_BLOCKS + b`: with RUN = 2 that is i16x8
/// vector `p` of the group, lanes `2b` and `2b + 1`; with RUN = 4, bytes `4b..4b + 4` of byte
/// vector `p`.
fn slot(c: usize) -> usize {
    let (g, o) = (c / GROUP, c % GROUP);
    g * GROUP + (o % BLOCK) / RUN * (RUN * GROUP_BLOCKS) + (o / BLOCK) * RUN + o % RUN
}

/// Errors for inconsistent shapes: the caller's bug, reported instead of a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel shape error: {}", self.0)
    }
}

impl std::error::Error for ShapeError {}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError(why()))
    }
}

/// A `[n, k]` weight matrix as int8 codes and one f32 scale per (row, block):
/// `w[r][c] ≈ code(r, c) · scale(r, c / BLOCK)`. Rows are stored in interleaved groups (codes at
/// [`slot`], zero padded to whole groups; scales padded with zeros to whole groups).
#[derive(Debug, Clone, PartialEq)]
pub struct QMatrix {
    n: usize,
    k: usize,
    /// Every code in -64..=63 (4-bit matrices): the activations get [`ActBits::Eight`].
    narrow: bool,
    /// Every code in -8..=7 (4-bit codes as the files store them): with relaxed SIMD, stored plus
    /// [`NIBBLE_OFFSET`] instead of [`DIGIT_OFFSET`], for the `sum16` inner loop.
    nibble: bool,
    /// The stored codes; with relaxed SIMD, a narrow matrix's plus [`DIGIT_OFFSET`] (its 7-bit
    /// operand), a nibble matrix's plus [`NIBBLE_OFFSET`].
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// Relaxed SIMD, wide matrices only: `DIGIT_OFFSET · Σ codes` of each (row, block), laid out
    /// like `scales`: what the activations' offset adds to a block's sum (see `QRows::digits`).
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    offsets: Vec<i32>,
    /// x86-64 with VNNI only (else empty): `−128 · Σ codes` of each (row, block), laid out like
    /// `scales`: the activations' shift's share (see `vnni.rs`).
    #[cfg(target_arch = "x86_64")]
    vnni_sums: Vec<i32>,
    /// x86-64 with AVX-512 VNNI only (else empty): the rows again, four a register (`vnni::Quads`).
    #[cfg(target_arch = "x86_64")]
    vnni_quads: vnni::Quads,
}

impl QMatrix {
    /// From per-row int8 codes (`[n, k]` row-major) and one scale per row.
    pub fn from_row_scaled(n: usize, k: usize, codes: &[i8], row_scales: &[f32]) -> Result<Self, ShapeError> {
        check(codes.len() == n * k && row_scales.len() == n, || format!("{} codes and {} scales for a {n}x{k} matrix", codes.len(), row_scales.len()))?;
        Ok(Self::assemble(n, k, codes, pad_scales(&row_scales_as_blocks(row_scales, k), n, padded(k) / BLOCK)))
    }

    /// From codes (`[n, k]` row-major, any i8 values, e.g. 4-bit codes in -8..=7) and one scale
    /// per (row, block of [`BLOCK`]) — `[n, ceil(k / BLOCK)]`.
    pub fn from_block_scaled(n: usize, k: usize, codes: &[i8], block_scales: &[f32]) -> Result<Self, ShapeError> {
        let nb = padded(k) / BLOCK;
        check(codes.len() == n * k && block_scales.len() == n * nb, || {
            format!("{} codes and {} block scales for a {n}x{k} matrix ({nb} blocks a row)", codes.len(), block_scales.len())
        })?;
        Ok(Self::assemble(n, k, codes, pad_scales(block_scales, n, nb)))
    }

    /// From row-major codes and padded scales: the codes stored (interleaved, shifted where
    /// relaxed SIMD wants them shifted) in one pass after one scan of their range.
    fn assemble(n: usize, k: usize, codes: &[i8], scales: Vec<f32>) -> Self {
        // Padding codes are 0, inside every range below.
        let (lo, hi) = code_range(codes).unwrap_or((0, 0));
        let narrow = lo >= -64 && hi <= 63;
        let nibble = lo >= -8 && hi <= 7;
        let shift = match (cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) && narrow, nibble) {
            (false, _) => 0,
            (true, true) => NIBBLE_OFFSET as i8,
            (true, false) => DIGIT_OFFSET as i8,
        };
        let codes = interleave(codes, n, k, shift);
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        let offsets = if narrow { Vec::new() } else { imp::offsets(&codes) };
        #[cfg(target_arch = "x86_64")]
        let vnni_sums = if vnni::detect().is_some() || (nibble && vnni::bytes_forms()) { vnni::block_sums(&codes) } else { Vec::new() };
        #[cfg(target_arch = "x86_64")]
        let vnni_quads = vnni::Quads::of(&codes, &scales, &vnni_sums, n, grouped(k));
        Self {
            n,
            k,
            narrow,
            nibble,
            codes,
            scales,
            #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
            offsets,
            #[cfg(target_arch = "x86_64")]
            vnni_sums,
            #[cfg(target_arch = "x86_64")]
            vnni_quads,
        }
    }

    /// The activation precision this matrix multiplies: 8 bits when every code is in -64..=63.
    pub fn act_bits(&self) -> ActBits {
        if self.narrow {
            ActBits::Eight
        } else {
            ActBits::Seven
        }
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Code of row `r`, logical column `c`.
    pub(crate) fn code(&self, r: usize, c: usize) -> i8 {
        (self.codes[r * grouped(self.k) + slot(c)] as i32 - self.stored_shift()) as i8
    }

    /// What the stored codes add to the logical ones: with relaxed SIMD, [`NIBBLE_OFFSET`] for a
    /// nibble matrix and [`DIGIT_OFFSET`] for another narrow one; else 0.
    fn stored_shift(&self) -> i32 {
        if !cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) || !self.narrow {
            0
        } else if self.nibble {
            NIBBLE_OFFSET
        } else {
            DIGIT_OFFSET
        }
    }

    /// Scale of row `r`, block `b`.
    pub(crate) fn scale(&self, r: usize, b: usize) -> f32 {
        self.scales[r * grouped(self.k) / BLOCK + b]
    }

    /// The f32 matrix these codes stand for, `[n, k]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n * self.k];
        for (r, row) in out.chunks_exact_mut(self.k.max(1)).enumerate().take(self.n) {
            self.dequantize_row(r, row);
        }
        out
    }

    /// Row `r` as f32 into `out` (`cols` values): an embedding-table lookup. Panics if `r` is out
    /// of range or `out` has the wrong length (callers check ids first).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.n && out.len() == self.k, "dequantize_row: row {r} of {}, {} outputs", self.n, out.len());
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.code(r, c) as f32 * self.scale(r, c / BLOCK);
        }
    }

    /// The rows of `parts` one after another (all with the same `k`): e.g. the query, key and
    /// value projections as one matrix, so their input is quantized and read once.
    pub fn stack_rows(parts: &[&QMatrix]) -> Result<Self, ShapeError> {
        let k = parts.first().map_or(0, |p| p.k);
        check(parts.iter().all(|p| p.k == k), || format!("stacking matrices of k {:?}", parts.iter().map(|p| p.k).collect::<Vec<_>>()))?;
        // One activation precision for the stack (its codes are stored for it).
        let narrow = parts.iter().all(|p| p.narrow);
        check(narrow || parts.iter().all(|p| !p.narrow), || "stacking 4-bit-range and int8-range matrices".into())?;
        let nibble = parts.iter().all(|p| p.nibble);
        let n = parts.iter().map(|p| p.n).sum();
        // One stored shift for the stack: a nibble part stacked with wider narrow parts is stored
        // as they are (relaxed SIMD only; elsewhere nothing is shifted).
        let mut codes = Vec::with_capacity(parts.iter().map(|p| p.codes.len()).sum());
        for p in parts {
            let at = codes.len();
            codes.extend_from_slice(&p.codes);
            if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) && narrow && p.nibble && !nibble {
                codes[at..].iter_mut().for_each(|c| *c += (DIGIT_OFFSET - NIBBLE_OFFSET) as i8);
            }
        }
        let scales = parts.iter().map(|p| p.scales.as_slice()).collect::<Vec<_>>().concat();
        // Every part's block sums, or none (AVX2 without VNNI makes them for 4-bit parts only).
        #[cfg(target_arch = "x86_64")]
        let vnni_sums = match parts.iter().all(|p| !p.vnni_sums.is_empty()) {
            true => parts.iter().map(|p| p.vnni_sums.as_slice()).collect::<Vec<_>>().concat(),
            false => Vec::new(),
        };
        Ok(Self {
            n,
            k,
            narrow,
            nibble,
            #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
            offsets: parts.iter().map(|p| p.offsets.as_slice()).collect::<Vec<_>>().concat(),
            // The quads straddle the parts' rows: built again.
            #[cfg(target_arch = "x86_64")]
            vnni_quads: vnni::Quads::of(&codes, &scales, &vnni_sums, n, grouped(k)),
            #[cfg(target_arch = "x86_64")]
            vnni_sums,
            codes,
            scales,
        })
    }

    /// Bytes held (codes, scales and relaxed SIMD's offsets), for memory reports.
    pub fn bytes(&self) -> usize {
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        let offsets = 4 * self.offsets.len();
        #[cfg(target_arch = "x86_64")]
        let offsets = 4 * self.vnni_sums.len() + self.vnni_quads.bytes();
        #[cfg(not(any(all(target_arch = "wasm32", target_feature = "relaxed-simd"), target_arch = "x86_64")))]
        let offsets = 0;
        self.codes.len() + 4 * self.scales.len() + offsets
    }
}

/// Row-major `[n, k]` codes into the stored layout, each plus `shift` (padding too).
fn interleave(codes: &[i8], n: usize, k: usize, shift: i8) -> Vec<i8> {
    let kg = grouped(k);
    let mut out = vec![shift; n * kg];
    if k == 0 {
        return out;
    }
    for (src, dst) in codes.chunks_exact(k).zip(out.chunks_exact_mut(kg)).take(n) {
        // Whole groups (every MiniLM shape) in store order, the inverse of `slot` within a group:
        // a model load runs this over millions of codes.
        let whole = k / GROUP * GROUP;
        // Fixed-size groups: constant indices, no bounds checks (the load's hottest loop in wasm).
        for (s, d) in src[..whole].chunks_exact(GROUP).zip(dst.chunks_exact_mut(GROUP)) {
            let s: &[i8; GROUP] = s.try_into().expect("chunks_exact(GROUP)");
            let d: &mut [i8; GROUP] = d.try_into().expect("chunks_exact_mut(GROUP)");
            for p in 0..BLOCK / RUN {
                for b in 0..GROUP_BLOCKS {
                    for t in 0..RUN {
                        d[(p * GROUP_BLOCKS + b) * RUN + t] = s[b * BLOCK + p * RUN + t].wrapping_add(shift);
                    }
                }
            }
        }
        for c in whole..k {
            dst[slot(c)] = src[c].wrapping_add(shift);
        }
    }
    out
}

/// `[n, nb]` block scales padded with zeros to whole groups.
fn pad_scales(scales: &[f32], n: usize, nb: usize) -> Vec<f32> {
    let nbg = nb.div_ceil(GROUP_BLOCKS) * GROUP_BLOCKS;
    let mut out = vec![0f32; n * nbg];
    for r in 0..n {
        out[r * nbg..r * nbg + nb].copy_from_slice(&scales[r * nb..(r + 1) * nb]);
    }
    out
}

/// `m` activation rows quantized per (row, block) to i16 codes of [`ActBits`], stored like
/// [`QMatrix`] rows.
#[derive(Debug, Clone, Default)]
pub struct QRows {
    m: usize,
    k: usize,
    bits: ActBits,
    codes: Vec<i16>,
    scales: Vec<f32>,
    /// Relaxed SIMD only, the codes as bytes in their stored order. 7-bit codes: plus
    /// [`DIGIT_OFFSET`], the 7-bit operand of `i32x4.relaxed_dot_i8x16_i7x16_add_s` (in 0..=127,
    /// where it has one defined result on every engine); a block's sum is then
    /// `Σ w·digit − DIGIT_OFFSET · Σ w`, exact. 8-bit codes: as they are (i8 bit patterns), the
    /// int8 operand against a narrow matrix's shifted codes, and `offsets` holds their side.
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    digits: Vec<u8>,
    /// Relaxed SIMD, 8-bit codes only: `DIGIT_OFFSET · Σ codes` of each (row, block), laid out
    /// like `scales`.
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    offsets: Vec<i32>,
    /// x86-64 with VNNI only (else empty): the codes plus 128 as bytes, each 16 reordered into
    /// runs of four a block (`vnni::to_digits`).
    #[cfg(target_arch = "x86_64")]
    digits: Vec<u8>,
}

impl QRows {
    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Code of row `r`, logical column `c`.
    pub(crate) fn code(&self, r: usize, c: usize) -> i16 {
        self.codes[r * grouped(self.k) + slot(c)]
    }

    /// Scale of row `r`, block `b`.
    pub(crate) fn scale(&self, r: usize, b: usize) -> f32 {
        self.scales[r * grouped(self.k) / BLOCK + b]
    }

    /// [`quantize_rows`] into these buffers, which only grow: the allocation-free form for a
    /// forward pass that quantizes the same shapes again and again.
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize, bits: ActBits) -> Result<(), ShapeError> {
        check(x.len() == m * k, || format!("{} values for {m}x{k} activations", x.len()))?;
        let kg = grouped(k);
        (self.m, self.k, self.bits) = (m, k, bits);
        // No clearing: every group below writes all its codes and scales.
        self.codes.resize(m * kg, 0);
        self.scales.resize(m * kg / BLOCK, 0.0);
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        {
            self.digits.resize(m * kg, 0);
            self.offsets.resize(if bits == ActBits::Eight { m * kg / BLOCK } else { 0 }, 0);
        }
        #[cfg(target_arch = "x86_64")]
        let vnni = vnni::bytes_forms();
        #[cfg(target_arch = "x86_64")]
        self.digits.resize(if vnni { m * kg } else { 0 }, 0);
        for (r, row) in x.chunks_exact(k.max(1)).take(m).enumerate() {
            for g in 0..kg / GROUP {
                let vals = &row[g * GROUP..((g + 1) * GROUP).min(k)];
                let at = r * kg + g * GROUP;
                let sc = r * kg / BLOCK + g * GROUP_BLOCKS;
                imp::quantize_group(vals, &mut self.codes[at..at + GROUP], &mut self.scales[sc..sc + GROUP_BLOCKS], bits.max());
                #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
                match bits {
                    ActBits::Seven => imp::to_digits(&self.codes[at..at + GROUP], &mut self.digits[at..at + GROUP]),
                    ActBits::Eight => imp::to_bytes(&self.codes[at..at + GROUP], &mut self.digits[at..at + GROUP], &mut self.offsets[sc..sc + GROUP_BLOCKS]),
                }
                #[cfg(target_arch = "x86_64")]
                if vnni {
                    vnni::to_digits(&self.codes[at..at + GROUP], &mut self.digits[at..at + GROUP]);
                }
            }
        }
        Ok(())
    }

    /// The precision these codes were quantized to.
    pub fn act_bits(&self) -> ActBits {
        self.bits
    }
}

/// Symmetric quantization of each block of each row of `x` (`[m, k]` row-major) to `bits`:
/// `scale = max|x| / bits.max()`, `code = round(x / scale)` (ties to even, which wasm rounds in
/// one instruction). An all-zero block gets scale 0 and zero codes; non-finite inputs are the
/// caller's problem upstream (the encoder never produces them from finite weights), but they
/// cannot make this panic.
pub fn quantize_rows(x: &[f32], m: usize, k: usize, bits: ActBits) -> Result<QRows, ShapeError> {
    let mut q = QRows::default();
    q.quantize(x, m, k, bits)?;
    Ok(q)
}

/// One group (`x`: up to [`GROUP`] values of a row) into `out` ([`GROUP`] codes, stored layout)
/// and `scales` (its four blocks'), zeros where `x` has no values. Shared by the portable path and
/// the SIMD paths' partial groups. `act_max`: [`ActBits::max`].
pub(crate) fn quantize_group_scalar(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
    out.fill(0);
    scales.fill(0.0);
    for (b, blk) in x.chunks(BLOCK).enumerate() {
        let max = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        if !(max > 0.0 && max.is_finite()) {
            continue;
        }
        let inv = act_max / max;
        for (c, v) in blk.iter().enumerate() {
            out[slot(b * BLOCK + c)] = (v * inv).round_ties_even().clamp(-act_max, act_max) as i16;
        }
        scales[b] = max / act_max;
    }
}

/// `out[m, n] = x · Wᵀ (+ bias)` for quantized activations `x` and weights `w`.
pub fn matmul_t(x: &QRows, w: &QMatrix, bias: Option<&[f32]>, out: &mut [f32]) -> Result<(), ShapeError> {
    check(x.k == w.k, || format!("activations have k={}, weights k={}", x.k, w.k))?;
    check(x.bits == w.act_bits(), || format!("activations quantized to {:?} bits for weights that take {:?}", x.bits, w.act_bits()))?;
    check(out.len() == x.m * w.n, || format!("output has {} values for {}x{}", out.len(), x.m, w.n))?;
    if let Some(b) = bias {
        check(b.len() == w.n, || format!("bias has {} values for {} outputs", b.len(), w.n))?;
    }
    imp::matmul_t(x, w, out);
    if let Some(b) = bias {
        for row in out.chunks_mut(w.n) {
            row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
        }
    }
    Ok(())
}

/// Quantizes `x` (`[m, k]`) and multiplies, into a new vector. A forward pass that runs many
/// layers reuses its buffers instead: [`QRows::quantize`], then [`matmul_t`].
pub fn linear(x: &[f32], m: usize, w: &QMatrix, bias: Option<&[f32]>) -> Result<Vec<f32>, ShapeError> {
    let q = quantize_rows(x, m, w.k, w.act_bits())?;
    let mut out = vec![0f32; m * w.n];
    matmul_t(&q, w, bias, &mut out)?;
    Ok(out)
}

/// The shapes a plain (no bias) product of `x` and `w` into `out` needs.
fn check_plain(x: &QRows, w: &QMatrix, out: &[f32]) -> Result<(), ShapeError> {
    check(x.k == w.k && x.bits == w.act_bits() && out.len() == x.m * w.n, || {
        format!("{}x{} activations, {}x{} weights, {} outputs", x.m, x.k, w.n, w.k, out.len())
    })
}

/// [`matmul_t`] (no bias) on the portable path whatever this build uses, so that the tests check
/// it on every target.
#[doc(hidden)]
pub fn matmul_t_portable(x: &QRows, w: &QMatrix, out: &mut [f32]) -> Result<(), ShapeError> {
    check_plain(x, w, out)?;
    portable::matmul_t(x, w, out);
    Ok(())
}

/// Which block-dot implementation this build uses (on x86-64: this CPU), for benchmark reports.
pub fn implementation() -> &'static str {
    imp::name()
}

/// The inner loops this build can choose between at run time, which compute the same integer
/// sums (so the same results, bit for bit) at speeds that depend on the CPU: relaxed SIMD's
/// `dot32` (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, one instruction where the engine has a VNNI
/// or dot-product instruction for it) and `sum16` (`i16x8.relaxed_dot_i8x16_i7x16_s`, one
/// `pmaddubsw` on any x86-64, summed in i16 over a group; 4-bit-range matrices only). Empty for
/// other builds, which have one. The browser package times them once and keeps the faster.
pub fn variants() -> &'static [&'static str] {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    return simd128::VARIANTS;
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    &[]
}

/// The variant [`matmul_t`] runs (one of [`variants`]), `None` in a build without a choice.
pub fn variant() -> Option<&'static str> {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    return Some(simd128::variant());
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    None
}

/// Makes [`matmul_t`] run `name` (one of [`variants`]) from the next call on; `false` (nothing
/// changed) for another name. Every variant gives the same results, so switching is safe at any
/// time, between any two calls.
pub fn set_variant(name: &str) -> bool {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    return simd128::set_variant(name);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    {
        let _ = name;
        false
    }
}

/// [`matmul_t`] (no bias) on the x86-64 baseline (SSE2) whatever this CPU has, so that the tests
/// can hold the AVX2 path to it bit for bit.
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub fn matmul_t_sse2(x: &QRows, w: &QMatrix, out: &mut [f32]) -> Result<(), ShapeError> {
    check_plain(x, w, out)?;
    sse2::matmul_t_baseline(x, w, out);
    Ok(())
}

/// [`matmul_t`] (no bias) on the x86-64 path named as [`implementation`] names it
/// (`"x86-64-sse2"`, `"x86-64-avx2"`, `"x86-64-avx-vnni"`, `"x86-64-avx512-vnni"`), so that the
/// tests hold every path this CPU has to the others bit for bit: `Ok(false)`, untouched `out`,
/// where this CPU lacks it (or an unknown name).
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub fn matmul_t_x86(path: &str, x: &QRows, w: &QMatrix, out: &mut [f32]) -> Result<bool, ShapeError> {
    check_plain(x, w, out)?;
    Ok(sse2::matmul_t_on(path, x, w, out))
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd128 as imp;

#[cfg(target_arch = "x86_64")]
use sse2 as imp;

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
use portable as imp;

#[cfg_attr(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"), allow(dead_code))]
mod portable {
    use super::{grouped, QMatrix, QRows, BLOCK, GROUP, GROUP_BLOCKS, RUN};

    pub fn name() -> &'static str {
        "portable"
    }

    pub fn quantize_group(x: &[f32], out: &mut [i16], scales: &mut [f32], act_max: f32) {
        super::quantize_group_scalar(x, out, scales, act_max)
    }

    /// Weight row outer, activation rows inner: the weight row stays in L1 while every token
    /// row passes over it. Per group, lanes `RUN·l..RUN·(l + 1)` of every `RUN·GROUP_BLOCKS`
    /// stored values belong to block `l`.
    pub fn matmul_t(x: &QRows, w: &QMatrix, out: &mut [f32]) {
        let (kg, nbg) = (grouped(w.k), grouped(w.k) / BLOCK);
        let shift = w.stored_shift();
        for j in 0..w.n {
            let wr = &w.codes[j * kg..(j + 1) * kg];
            let ws = &w.scales[j * nbg..(j + 1) * nbg];
            for i in 0..x.m {
                let ar = &x.codes[i * kg..(i + 1) * kg];
                let asc = &x.scales[i * nbg..(i + 1) * nbg];
                let mut acc = 0f32;
                for g in 0..kg / GROUP {
                    let (a, q) = (&ar[g * GROUP..(g + 1) * GROUP], &wr[g * GROUP..(g + 1) * GROUP]);
                    // Sum the lanes (a plain vertical loop, which LLVM vectorises), then each
                    // block's run of lanes.
                    let mut s = [0i32; RUN * GROUP_BLOCKS];
                    for (a, q) in a.chunks_exact(RUN * GROUP_BLOCKS).zip(q.chunks_exact(RUN * GROUP_BLOCKS)) {
                        for t in 0..RUN * GROUP_BLOCKS {
                            s[t] += a[t] as i32 * (q[t] as i32 - shift);
                        }
                    }
                    for l in 0..GROUP_BLOCKS {
                        let b = g * GROUP_BLOCKS + l;
                        acc += s[RUN * l..RUN * (l + 1)].iter().sum::<i32>() as f32 * (asc[b] * ws[b]);
                    }
                }
                out[i * w.n + j] = acc;
            }
        }
    }
}

/// Raw access for the SIMD paths: all rows at once (a tile addresses its rows by pointer).
#[cfg_attr(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")), allow(dead_code))]
impl QRows {
    /// Codes and scales of every row (`grouped(k)` codes and `grouped(k) / BLOCK` scales a row).
    #[cfg_attr(all(target_arch = "wasm32", target_feature = "relaxed-simd"), allow(dead_code))] // reads digits instead
    pub(crate) fn all(&self) -> (&[i16], &[f32]) {
        (&self.codes, &self.scales)
    }

    /// Every row's VNNI digits and scales (see `QRows::digits`; empty digits without VNNI).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn vnni_parts(&self) -> (&[u8], &[f32]) {
        (&self.digits, &self.scales)
    }

    /// Every row's relaxed SIMD operands, scales and (8-bit codes) offset corrections (see
    /// `QRows::digits`).
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    pub(crate) fn digit_parts(&self) -> (&[u8], &[f32], &[i32]) {
        (&self.digits, &self.scales, &self.offsets)
    }
}

#[cfg_attr(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")), allow(dead_code))]
impl QMatrix {
    /// Codes and scales of every row, laid out like [`QRows::all`]'s.
    #[cfg_attr(all(target_arch = "wasm32", target_feature = "relaxed-simd"), allow(dead_code))] // relaxed_parts instead
    pub(crate) fn all(&self) -> (&[i8], &[f32]) {
        (&self.codes, &self.scales)
    }

    /// The AVX-512 VNNI quads (empty without AVX-512 VNNI).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn vnni_quads(&self) -> &vnni::Quads {
        &self.vnni_quads
    }

    /// Every row's stored codes, scales and VNNI block sums (see `QMatrix::vnni_sums`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn vnni_parts(&self) -> (&[i8], &[f32], &[i32]) {
        (&self.codes, &self.scales, &self.vnni_sums)
    }

    /// Every row's stored codes, scales and (wide matrices) offset corrections (see
    /// `QMatrix::offsets`).
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    pub(crate) fn relaxed_parts(&self) -> (&[i8], &[f32], &[i32]) {
        (&self.codes, &self.scales, &self.offsets)
    }

    /// Whether the codes are narrow (stored shifted, with relaxed SIMD).
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    pub(crate) fn is_narrow(&self) -> bool {
        self.narrow
    }

    /// Whether the codes are in -8..=7 (stored plus [`NIBBLE_OFFSET`], with relaxed SIMD).
    #[cfg(any(all(target_arch = "wasm32", target_feature = "relaxed-simd"), target_arch = "x86_64"))]
    pub(crate) fn is_nibble(&self) -> bool {
        self.narrow && self.nibble
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The active path's group quantizer (simd128 in wasm) writes exactly the scalar form's codes
    /// and scales: ties (x.5 steps, rounded to even), the block maximum, tiny and zero blocks, and
    /// a block with an infinity (all zeros). (A NaN zeroes its whole block in simd128, only itself
    /// in the scalar form: both documented, neither panics.)
    #[test]
    fn group_quantization_equals_the_scalar_form() {
        let mut x = vec![0f32; GROUP];
        let mut seed = 7u32;
        for case in 0..64 {
            for (i, v) in x.iter_mut().enumerate() {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                if case % 4 == 1 {
                    // Exact ties once scaled: max 32767 and integers + 0.5 below it.
                    *v = if i % BLOCK == 0 { 32767.0 } else { ((seed >> 20) as f32 - 2048.0) + 0.5 };
                }
            }
            if case % 8 == 2 {
                x[..BLOCK].fill(0.0);
                x[2 * BLOCK + 3] = f32::INFINITY;
                x[3 * BLOCK..].iter_mut().for_each(|v| *v *= 1e-30);
            }
            // x86-64's form matches the scalar one on NaNs too (simd128's zeroes the block).
            if cfg!(target_arch = "x86_64") && case % 8 == 5 {
                x[BLOCK + 7] = f32::NAN;
            }
            for bits in [ActBits::Seven, ActBits::Eight] {
                let (mut a, mut sa) = (vec![1i16; GROUP], vec![1f32; GROUP_BLOCKS]);
                let (mut b, mut sb) = (vec![2i16; GROUP], vec![2f32; GROUP_BLOCKS]);
                imp::quantize_group(&x, &mut a, &mut sa, bits.max());
                quantize_group_scalar(&x, &mut b, &mut sb, bits.max());
                assert_eq!(sa, sb, "case {case} {bits:?}: scales");
                assert_eq!(a, b, "case {case} {bits:?}: codes");
            }
        }
    }
}
