// y[M, N] = x[M, K] · W[N, K]^T + bias[N], optionally followed by GELU (act = 1).
//
// `matmul_f32` reads W as f32 and multiplies f32 activations by it. Tiled in workgroup memory: a
// 16x16 workgroup computes a 64x64 tile of y, each invocation a 4x4 block (rows ty + 16i, cols
// tx + 16j), stepping through K 16 at a time. Tiles past the edges of M, N or K are zero-filled,
// so any shape works.
//
// `matmul_q8` computes what the CPU kernels (crates/shelfwise-kernels: `quantize_rows` then
// `matmul_t`) compute, so that a quantized model gives one result on every backend. The CPU
// quantizes the activations too, to 7 bits against int8 weights and to 8 bits against 4-bit ones
// (in the browser, relaxed SIMD's 8-bit dot products take one 7-bit operand: `ActBits` in the
// kernels crate), so this kernel does the same, with A = `mp.act_max` (63 or 127, set by the
// host from the weight codes' range):
// - W: int8 codes packed four to a u32 (little end first: code k of a row is byte k % 4 of word
//   k / 4; rows padded to K4 = ceil(K / 4) words with zero codes) and one f32 scale per (row,
//   block of 32 along K), `mscale[n * NB + b]` (NB = ceil(K / 32)).
// - x: each row's block b (values 32b..32b + 32, missing ones 0) gets `max = max |x|`; if max is
//   0 (or not finite) its codes and scale are 0, else `inv = A / max`, `code = round(x * inv)`
//   (ties to even) clamped to [-A, A], and `ascale = max / A`, both divisions correctly rounded
//   f32 as on the CPU.
// - y[r][n] = Σ_b s_b · (ascale[r][b] · wscale[n][b]) + bias[n], with s_b = Σ code_x · code_w over
//   the block: an integer of at most 32 · 63 · 128 (or 32 · 127 · 64) < 2^24, so its f32 sum is
//   exact in any order.
//   The f32 sum over blocks is the only rounding that differs from the CPU's (order only).
// Same 64x64 tile and 4x4 block per invocation, stepping through K one block (32) at a time: the
// 4 invocations of each of the tile's 64 rows load 8 of its block's values each, share their
// partial maxima through workgroup memory, and write codes; weights stay packed in the tile and
// are unpacked as they are multiplied. Each invocation sums a block's products exactly, then folds
// them into its f32 accumulators with the block's scales.
//
// WGSL only promises 2.5 ULP for f32 division (real GPUs divide through an approximate
// reciprocal), and a quotient one ULP off can round a code near a tie (x · inv ≈ n + 0.5) the
// other way. So `act_inv` and `act_scale` divide exactly in integer arithmetic on the mantissas;
// only multiplication, which WGSL requires to be correctly rounded, and `round` remain. What can
// still differ from the CPU: blocks whose max |x| is below ~2^-120 (subnormal scales or an
// infinite inverse: GPUs may flush subnormals; an encoder's activations are O(1) after LayerNorm),
// and non-finite activations (WGSL leaves their arithmetic undefined).

struct MmParams {
    m: u32,
    n: u32,
    k: u32,
    k4: u32,
    act: u32,
    nb: u32,
    act_max: u32, // A: the largest activation code, 63 or 127 (matmul_q8 only)
    _p7: u32,
}

@group(0) @binding(0) var<uniform> mp: MmParams;
@group(0) @binding(1) var<storage, read> mx: array<f32>;
@group(0) @binding(2) var<storage, read> mw: array<f32>;
@group(0) @binding(3) var<storage, read> mwq: array<u32>;
@group(0) @binding(4) var<storage, read> mscale: array<f32>;
@group(0) @binding(5) var<storage, read> mbias: array<f32>;
@group(0) @binding(6) var<storage, read_write> my: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [TK][TM]
var<workgroup> tile_b: array<f32, 1024>; // [TK][TN]
var<private> acc: array<array<f32, 4>, 4>;

fn load_a(m0: u32, k0: u32, t: u32) {
    for (var i = 0u; i < 4u; i++) {
        let e = t + 256u * i;
        let r = e / TK;
        let kk = e % TK;
        let gr = m0 + r;
        let gk = k0 + kk;
        var v = 0.0;
        if (gr < mp.m && gk < mp.k) {
            v = mx[gr * mp.k + gk];
        }
        tile_a[kk * TM + r] = v;
    }
}

fn multiply_tile(tx: u32, ty: u32) {
    for (var kk = 0u; kk < TK; kk++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = tile_a[kk * TM + ty + 16u * i];
            b[i] = tile_b[kk * TN + tx + 16u * i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                acc[i][j] = fma(a[i], b[j], acc[i][j]);
            }
        }
    }
}

fn store(m0: u32, n0: u32, tx: u32, ty: u32) {
    for (var i = 0u; i < 4u; i++) {
        let r = m0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let c = n0 + tx + 16u * j;
            if (r < mp.m && c < mp.n) {
                var v = acc[i][j] + mbias[c];
                if (mp.act == 1u) {
                    v = gelu_erf(v);
                }
                my[r * mp.n + c] = v;
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_f32(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    for (var k0 = 0u; k0 < mp.k; k0 += TK) {
        load_a(m0, k0, t);
        for (var i = 0u; i < 4u; i++) {
            let e = t + 256u * i;
            let r = e / TK;
            let kk = e % TK;
            let gn = n0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if (gn < mp.n && gk < mp.k) {
                v = mw[gn * mp.k + gk];
            }
            tile_b[kk * TN + r] = v;
        }
        workgroupBarrier();
        multiply_tile(tx, ty);
        workgroupBarrier();
    }
    store(m0, n0, tx, ty);
}

// ---- matmul_q8 ----

const QB: u32 = 32u; // values per quantization block: the K step of matmul_q8

var<workgroup> qa: array<f32, 2048>; // [QB][TM]: activation codes of one block, as f32
var<workgroup> qb: array<u32, 512>; // [QB / 4][TN]: packed weight codes of one block
var<workgroup> qpart: array<f32, 256>; // each invocation's partial max |x| (row t / 4)
var<workgroup> qascale: array<f32, 64>; // the block's activation scale per tile row
var<workgroup> qwscale: array<f32, 64>; // the block's weight scale per tile column

// fl(A / amax), correctly rounded (ties to even), for a finite amax > 0. Long division of the
// mantissas in u32 (every partial dividend < 2^32). -1 when the quotient overflows f32 (amax
// below ~1.9e-37; the CPU's inverse is then +inf).
fn act_inv(amax: f32) -> f32 {
    let bits = bitcast<u32>(amax);
    let e = (bits >> 23u) & 0xffu;
    if (e == 0u) {
        return -1.0; // subnormal amax: A / amax overflows
    }
    let m = (bits & 0x7fffffu) | 0x800000u; // amax = m · 2^(e - 150), m in [2^23, 2^24)
    // q = floor(A · 2^(t0 + 18) / m) (26 or 27 bits), r its remainder: A · 2^t0 / m first (in
    // (252, 508]; t0 = 26 for A = 63, 25 for 127, so that A · 2^t0 < 2^32), then 8, 8 and 2 more
    // quotient bits.
    let t0 = select(26u, 25u, mp.act_max > 63u);
    var r = mp.act_max << t0;
    var q = r / m;
    r -= q * m;
    r <<= 8u;
    var d = r / m;
    q = (q << 8u) | d;
    r -= d * m;
    r <<= 8u;
    d = r / m;
    q = (q << 8u) | d;
    r -= d * m;
    r <<= 2u;
    d = r / m;
    q = (q << 2u) | d;
    r -= d * m;
    // A / amax = q' · 2^(132 - t0 - e), q' the exact quotient.
    let rm = round_to_24(q, r != 0u);
    let ex = rm.y + 282u - t0 - e; // biased exponent of mant · 2^(shift + 132 - t0 - e)
    if (ex >= 255u) {
        return -1.0;
    }
    return bitcast<f32>((ex << 23u) | rm.x);
}

// A quotient q of 25 to 27 bits (`inexact`: a nonzero remainder lies beyond it) rounded to 24
// bits, ties to even: (its mantissa field, without the implicit bit; how far q was shifted down,
// plus 1 when the rounding carried into a 25th bit). The shared tail of act_inv and act_scale.
fn round_to_24(q: u32, inexact: bool) -> vec2<u32> {
    var s = select(select(1u, 2u, q >= (1u << 25u)), 3u, q >= (1u << 26u));
    var mant = q >> s;
    let rest = q & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rest > half || (rest == half && (inexact || (mant & 1u) == 1u))) {
        mant += 1u;
    }
    if (mant == (1u << 24u)) {
        mant = 1u << 23u;
        s += 1u;
    }
    return vec2<u32>(mant & 0x7fffffu, s);
}

// fl(amax / A), correctly rounded (ties to even), for a finite amax > 0; 0 for amax below
// 2^-120 (2^-119 for A = 127), where the CPU's result is at or near the subnormal range.
fn act_scale(amax: f32) -> f32 {
    let bits = bitcast<u32>(amax);
    let e = (bits >> 23u) & 0xffu;
    if (e < select(7u, 8u, mp.act_max > 63u)) {
        return 0.0;
    }
    let m = (bits & 0x7fffffu) | 0x800000u;
    // q = floor(m · 2^8 / A): 26 or 27 bits for 63, 25 or 26 for 127.
    let n = m << 8u;
    let q = n / mp.act_max;
    let r = n - q * mp.act_max;
    let rm = round_to_24(q, r != 0u);
    let ex = rm.y + e - 8u; // >= 1: biased exponent of mant · 2^(shift + e - 158)
    return bitcast<f32>((ex << 23u) | rm.x);
}

// The code of x for a block with inverse scale `inv` (-1: infinite, as act_inv returns).
fn act_code(x: f32, inv: f32) -> f32 {
    let a = f32(mp.act_max);
    if (inv < 0.0) {
        return sign(x) * a; // x · inf clamped; 0 stays 0 (the CPU's NaN casts to 0)
    }
    return clamp(round(x * inv), -a, a);
}

@compute @workgroup_size(16, 16)
fn matmul_q8(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    // This invocation's share of the activations: row ar of the tile, values p + 4i of a block.
    let ar = t / 4u;
    let p = t % 4u;
    let gr = m0 + ar;
    for (var k0 = 0u; k0 < mp.k; k0 += QB) {
        let blk = k0 / QB;
        var xv: array<f32, 8>;
        var pmax = 0.0;
        for (var i = 0u; i < 8u; i++) {
            let gk = k0 + p + 4u * i;
            var v = 0.0;
            if (gr < mp.m && gk < mp.k) {
                v = mx[gr * mp.k + gk];
            }
            xv[i] = v;
            pmax = max(pmax, abs(v));
        }
        qpart[t] = pmax;
        // 64 columns x 8 words (32 codes) of W, two words per invocation, and the columns' scales.
        for (var i = 0u; i < 2u; i++) {
            let e = t + 256u * i;
            let c = e / 8u;
            let w = e % 8u;
            let gn = n0 + c;
            let gw = k0 / 4u + w;
            var word = 0u;
            if (gn < mp.n && gw < mp.k4) {
                word = mwq[gn * mp.k4 + gw];
            }
            qb[w * TN + c] = word;
        }
        if (t < TN) {
            var s = 0.0;
            if (n0 + t < mp.n) {
                s = mscale[(n0 + t) * mp.nb + blk];
            }
            qwscale[t] = s;
        }
        workgroupBarrier();
        // The row's block max from its 4 partials; each of the 4 quantizes its own 8 values.
        let rmax = max(max(qpart[ar * 4u], qpart[ar * 4u + 1u]), max(qpart[ar * 4u + 2u], qpart[ar * 4u + 3u]));
        let is_finite = ((bitcast<u32>(rmax) >> 23u) & 0xffu) != 0xffu;
        let live = rmax > 0.0 && is_finite;
        var inv = 0.0;
        if (live) {
            inv = act_inv(rmax);
        }
        for (var i = 0u; i < 8u; i++) {
            var code = 0.0;
            if (live) {
                code = act_code(xv[i], inv);
            }
            qa[(p + 4u * i) * TM + ar] = code;
        }
        if (p == 0u) {
            var sc = 0.0;
            if (live) {
                sc = act_scale(rmax);
            }
            qascale[ar] = sc;
        }
        workgroupBarrier();
        // Exact integer block sums (f32 holds them exactly), then one scaled add per output.
        // Zeroed explicitly. A declaration without initializer zeroes it too, on every iteration,
        // but headless Chromium's WebGPU (Tint + SwiftShader) was seen to carry the previous
        // block's sums over in that form.
        var bs = array<array<f32, 4>, 4>();
        for (var w = 0u; w < QB / 4u; w++) {
            var bw: array<i32, 4>;
            for (var j = 0u; j < 4u; j++) {
                bw[j] = bitcast<i32>(qb[w * TN + tx + 16u * j]);
            }
            for (var bi = 0u; bi < 4u; bi++) {
                let kk = 4u * w + bi;
                var a: array<f32, 4>;
                var b: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    a[i] = qa[kk * TM + ty + 16u * i];
                    b[i] = f32(extractBits(bw[i], 8u * bi, 8u));
                }
                for (var i = 0u; i < 4u; i++) {
                    for (var j = 0u; j < 4u; j++) {
                        bs[i][j] = fma(a[i], b[j], bs[i][j]);
                    }
                }
            }
        }
        for (var i = 0u; i < 4u; i++) {
            let sa = qascale[ty + 16u * i];
            for (var j = 0u; j < 4u; j++) {
                acc[i][j] += bs[i][j] * (sa * qwscale[tx + 16u * j]);
            }
        }
        workgroupBarrier();
    }
    store(m0, n0, tx, ty);
}
