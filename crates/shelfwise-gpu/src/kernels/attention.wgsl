// Fused self-attention for one query row and one head per workgroup:
// ctx[b, i, h] = softmax_j(q_i · k_j / sqrt(hd) + (mask[b, j] - 1) · 1e9) · v_j
// (the additive mask of shelfwise-model's attention_bias: padded keys get no weight).
//
// `qkv` is [batch * seq, 3 * hidden]: q, k and v side by side (the encoder fuses the three
// projections into one matmul); head h owns columns h*hd .. (h+1)*hd of each. `ctx` is
// [batch * seq, hidden]. Limits (checked on the host): seq <= 512, hd <= 256.

struct AttnParams {
    batch: u32,
    seq: u32,
    hidden: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
    _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> ap: AttnParams;
@group(0) @binding(1) var<storage, read> aqkv: array<f32>;
@group(0) @binding(2) var<storage, read> amask: array<u32>;
@group(0) @binding(3) var<storage, read_write> actx: array<f32>;

const ATT_WG: u32 = 64u;
var<workgroup> scores: array<f32, 512>;
var<workgroup> qrow: array<f32, 256>;
var<workgroup> ared: array<f32, 64>;

fn att_reduce(v: f32, lid: u32, is_max: bool) -> f32 {
    ared[lid] = v;
    workgroupBarrier();
    for (var s = ATT_WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            if (is_max) {
                ared[lid] = max(ared[lid], ared[lid + s]);
            } else {
                ared[lid] = ared[lid] + ared[lid + s];
            }
        }
        workgroupBarrier();
    }
    let r = ared[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn attention(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wg.x;          // b * seq + i
    let h = wg.y;
    if (row >= ap.batch * ap.seq || h >= ap.heads) {
        return;
    }
    let t = ap.seq;
    let b = row / t;
    let stride = 3u * ap.hidden;
    let hd = ap.head_dim;
    let col = h * hd;
    for (var d = lid; d < hd; d += ATT_WG) {
        qrow[d] = aqkv[row * stride + col + d];
    }
    workgroupBarrier();
    var local_max = -3.402823e38;
    for (var j = lid; j < t; j += ATT_WG) {
        let kbase = (b * t + j) * stride + ap.hidden + col;
        var s = 0.0;
        for (var d = 0u; d < hd; d++) {
            s = fma(qrow[d], aqkv[kbase + d], s);
        }
        s = s * ap.scale + (f32(amask[b * t + j]) - 1.0) * 1e9;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    let m = att_reduce(local_max, lid, true);
    var local_sum = 0.0;
    for (var j = lid; j < t; j += ATT_WG) {
        let e = exp(scores[j] - m);
        scores[j] = e;
        local_sum += e;
    }
    let total = att_reduce(local_sum, lid, false);
    for (var d = lid; d < hd; d += ATT_WG) {
        var o = 0.0;
        for (var j = 0u; j < t; j++) {
            o = fma(scores[j], aqkv[(b * t + j) * stride + 2u * ap.hidden + col + d], o);
        }
        actx[row * ap.hidden + col + d] = o / total;
    }
}
