// LayerNorm over the last dim, one workgroup per row, the row held in registers (n <= 1024):
// y = (a - mean) / sqrt(var + eps) * gamma + beta, two-pass (mean, then centred variance).
// `add_layer_norm` normalises a + res (the residual connection of a transformer block).
// `ln` holds gamma (n values) then beta (n values).

struct LnParams {
    rows: u32,
    n: u32,
    eps: f32,
    _p3: u32, _p4: u32, _p5: u32, _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> lp: LnParams;
@group(0) @binding(1) var<storage, read> la: array<f32>;
@group(0) @binding(2) var<storage, read> lres: array<f32>;
@group(0) @binding(3) var<storage, read> lln: array<f32>;
@group(0) @binding(4) var<storage, read_write> ly: array<f32>;

// The row in v (see row_mean_inv), normalised into row `row` of y.
fn normalise_row(row: u32, lid: u32, v: ptr<function, array<f32, 8>>) {
    let n = lp.n;
    let st = row_mean_inv(v, n, lid, lp.eps);
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        if (c < n) {
            ly[row * n + c] = ((*v)[j] - st.x) * st.y * lln[c] + lln[n + c];
        }
    }
}

// The two entry points load their rows separately: one that read `res` at all would need it bound.
@compute @workgroup_size(128)
fn layer_norm(@builtin(local_invocation_index) lid: u32,
              @builtin(workgroup_id) wg: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wg, nwg);
    if (row >= lp.rows) {
        return;
    }
    var v: array<f32, 8>;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        v[j] = 0.0;
        if (c < lp.n) {
            v[j] = la[row * lp.n + c];
        }
    }
    normalise_row(row, lid, &v);
}

@compute @workgroup_size(128)
fn add_layer_norm(@builtin(local_invocation_index) lid: u32,
                  @builtin(workgroup_id) wg: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wg, nwg);
    if (row >= lp.rows) {
        return;
    }
    var v: array<f32, 8>;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        v[j] = 0.0;
        if (c < lp.n) {
            v[j] = la[row * lp.n + c] + lres[row * lp.n + c];
        }
    }
    normalise_row(row, lid, &v);
}
