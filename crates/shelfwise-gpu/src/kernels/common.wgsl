// Shared by every shelfwise-gpu kernel (prepended to each kernel's source by kernels.rs).
//
// Each kernel reads its parameters from one 32-byte uniform: eight 4-byte words whose meaning the
// kernel's own struct gives. A 1-D launch over more than 65535 workgroups wraps into y:
// `flat_group` undoes that.

fn flat_group(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// erf with Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7 over the whole line), odd-extended.
fn erf_f32(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-a * a);
    return select(y, -y, x < 0.0);
}

// GELU, erf form (candle's gelu_erf): x/2 * (1 + erf(x/sqrt(2))).
fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}

// Workgroup-wide sum and max over ROW_WG (128) invocations, for the row kernels (layer norm,
// embeddings). Must be called in uniform control flow by every invocation of the workgroup.
const ROW_WG: u32 = 128u;
// Row kernels keep a row in registers: ROW_WG * ROW_PER_THREAD is the widest row (hidden) allowed.
const ROW_PER_THREAD: u32 = 8u;
var<workgroup> red: array<f32, 128>;

fn wg_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = ROW_WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Mean and 1 / sqrt(variance + eps) of a row of n values held ROW_PER_THREAD to an invocation
// (column lid + j * ROW_WG in v[j]; entries past n are zero), two-pass: mean, then the centred
// variance. Uniform control flow, like wg_sum.
fn row_mean_inv(v: ptr<function, array<f32, 8>>, n: u32, lid: u32, eps: f32) -> vec2<f32> {
    var s = 0.0;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        s += (*v)[j];
    }
    let mean = wg_sum(s, lid) / f32(n);
    var q = 0.0;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        if (lid + j * ROW_WG < n) {
            let d = (*v)[j] - mean;
            q += d * d;
        }
    }
    return vec2<f32>(mean, 1.0 / sqrt(wg_sum(q, lid) / f32(n) + eps));
}

fn wg_max(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = ROW_WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
