// Elementwise GELU (erf form): y[i] = gelu_erf(x[i]). The encoder fuses the same function into the
// intermediate matmul's epilogue (matmul.wgsl, act = 1); this standalone kernel is its reference
// point and is tested on its own.

struct GeluParams {
    n: u32,
    _p1: u32, _p2: u32, _p3: u32, _p4: u32, _p5: u32, _p6: u32, _p7: u32,
}

@group(0) @binding(0) var<uniform> gp: GeluParams;
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read_write> gy: array<f32>;

@compute @workgroup_size(256)
fn gelu(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_group(wg, nwg) * 256u + lid;
    if (i < gp.n) {
        gy[i] = gelu_erf(gx[i]);
    }
}
