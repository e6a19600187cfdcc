// y[M, N] = x[M, K] · W[N, K]^T + bias[N], optionally followed by GELU (act = 1).
//
// Tiled in workgroup memory: a 16x16 workgroup computes a 64x64 tile of y, each invocation a 4x4
// block (rows ty + 16i, cols tx + 16j), stepping through K 16 at a time. Tiles past the edges of
// M, N or K are zero-filled, so any shape works.
//
// `matmul_f32` reads W as f32. `matmul_q8` reads int8 codes packed four to a u32 (little end
// first: code k of a row is byte k % 4 of word k / 4; rows padded to K4 = ceil(K / 4) words with
// zero codes) and one f32 scale per output row (quant.rs's per-row layout): it dequantizes in the
// kernel, accumulating x·q and multiplying by the row's scale once at the end.

struct MmParams {
    m: u32,
    n: u32,
    k: u32,
    k4: u32,
    act: u32,
    nb: u32,
    _p6: u32, _p7: u32,
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

@compute @workgroup_size(16, 16)
fn matmul_q8(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    for (var k0 = 0u; k0 < mp.k; k0 += TK) {
        load_a(m0, k0, t);
        // 64 rows x 4 words (16 codes) of W: one word per invocation.
        let r = t / 4u;
        let w4 = t % 4u;
        let gn = n0 + r;
        let gw = k0 / 4u + w4;
        var word = 0u;
        var s = 0.0;
        if (gn < mp.n && gw < mp.k4) {
            word = mwq[gn * mp.k4 + gw];
            // 4·gw < K: the block exists.
            s = mscale[gn * mp.nb + gw / 8u];
        }
        for (var b = 0u; b < 4u; b++) {
            tile_b[(w4 * 4u + b) * TN + r] = f32(extractBits(bitcast<i32>(word), 8u * b, 8u)) * s;
        }
        workgroupBarrier();
        multiply_tile(tx, ty);
        workgroupBarrier();
    }
    store(m0, n0, tx, ty);
}
