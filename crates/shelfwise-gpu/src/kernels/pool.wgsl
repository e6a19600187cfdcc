// Masked mean pooling: pooled[b, c] = sum_t x[b, t, c] * mask[b, t] / max(sum_t mask[b, t], 1)
// (shelfwise-model's mean_pool). One invocation per (b, c).

struct PoolParams {
    batch: u32,
    seq: u32,
    hidden: u32,
    _p3: u32, _p4: u32, _p5: u32, _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> pp: PoolParams;
@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> pmask: array<u32>;
@group(0) @binding(3) var<storage, read_write> pout: array<f32>;

@compute @workgroup_size(64)
fn mean_pool(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let b = gid.y;
    if (c >= pp.hidden || b >= pp.batch) {
        return;
    }
    var s = 0.0;
    var count = 0.0;
    for (var t = 0u; t < pp.seq; t++) {
        let m = f32(pmask[b * pp.seq + t]);
        s += px[(b * pp.seq + t) * pp.hidden + c] * m;
        count += m;
    }
    pout[b * pp.hidden + c] = s / max(count, 1.0);
}
