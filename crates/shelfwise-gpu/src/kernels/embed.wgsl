// Embeddings, one workgroup per token: word[id] + position[t] + token_type[0], then LayerNorm
// (the row held in registers, hidden <= 1024). Token type is always 0, as in shelfwise-model.
// `embed_f32` reads the word table as f32; `embed_q8` as int8 codes packed four to a u32 (rows
// padded to h4 = ceil(hidden / 4) words) times one f32 scale per (row, block of 32), nb =
// ceil(hidden / 32) a row, dequantized here: code as f32 * scale, exactly the CPU's lookup.
// `ln` holds gamma (hidden values) then beta (hidden values).

struct EmbParams {
    rows: u32,
    seq: u32,
    hidden: u32,
    h4: u32,
    eps: f32,
    nb: u32,
    _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> ep: EmbParams;
@group(0) @binding(1) var<storage, read> eids: array<u32>;
@group(0) @binding(2) var<storage, read> eword: array<f32>;
@group(0) @binding(3) var<storage, read> ewq: array<u32>;
@group(0) @binding(4) var<storage, read> escale: array<f32>;
@group(0) @binding(5) var<storage, read> epos: array<f32>;
@group(0) @binding(6) var<storage, read> etyp: array<f32>;
@group(0) @binding(7) var<storage, read> eln: array<f32>;
@group(0) @binding(8) var<storage, read_write> eout: array<f32>;

fn embed_finish(row: u32, lid: u32, v: ptr<function, array<f32, 8>>) {
    let n = ep.hidden;
    let st = row_mean_inv(v, n, lid, ep.eps);
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        if (c < n) {
            eout[row * n + c] = ((*v)[j] - st.x) * st.y * eln[c] + eln[n + c];
        }
    }
}

@compute @workgroup_size(128)
fn embed_f32(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wg: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wg, nwg);
    if (row >= ep.rows) {
        return;
    }
    let id = eids[row];
    let t = row % ep.seq;
    var v: array<f32, 8>;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        v[j] = 0.0;
        if (c < ep.hidden) {
            v[j] = eword[id * ep.hidden + c] + epos[t * ep.hidden + c] + etyp[c];
        }
    }
    embed_finish(row, lid, &v);
}

@compute @workgroup_size(128)
fn embed_q8(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_group(wg, nwg);
    if (row >= ep.rows) {
        return;
    }
    let id = eids[row];
    let t = row % ep.seq;
    var v: array<f32, 8>;
    for (var j = 0u; j < ROW_PER_THREAD; j++) {
        let c = lid + j * ROW_WG;
        v[j] = 0.0;
        if (c < ep.hidden) {
            let word = ewq[id * ep.h4 + c / 4u];
            let w = f32(extractBits(bitcast<i32>(word), 8u * (c % 4u), 8u)) * escale[id * ep.nb + c / 32u];
            v[j] = w + epos[t * ep.hidden + c] + etyp[c];
        }
    }
    embed_finish(row, lid, &v);
}
