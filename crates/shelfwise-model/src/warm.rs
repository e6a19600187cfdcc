//! Runs the model-load and inference code on small inputs, in many short calls, so that a JIT
//! engine (V8's wasm tiers) has optimised it before the real load and the first title: V8 cannot
//! swap optimised code into a call that is already running, and a load is a few long calls.
//! Measured in Node (V8, 10 MB q4 model): the first load takes 189 ms without this, 61–93 ms
//! once warm.

use shelfwise_kernels::{matmul_t, ops, QMatrix, QRows, BLOCK};

use crate::codec::{pack_bits, unpack_bits, LowBit};

/// A few milliseconds of work; call it while the model bytes are being read.
pub fn warm_up() {
    let (n, k, t, heads) = (8usize, 4 * BLOCK, 4usize, 2usize);
    let codes: Vec<i8> = (0..n * k).map(|i| (i % 7) as i8 - 3).collect();
    let packed = [3u32, 4].map(|bits| (bits, pack_bits(&codes, n, k, bits)));
    let x: Vec<f32> = (0..t * k).map(|i| ((i * 37) % 19) as f32 / 19.0 - 0.5).collect();
    let (w, b) = (vec![1f32; k], vec![0f32; k]);
    let (mut q, mut out, mut row, mut scores) = (QRows::default(), vec![0f32; t * n], vec![0f32; k], Vec::new());
    let mut ctx = vec![0f32; t * k / 3];
    for _ in 0..64 {
        for (bits, p) in &packed {
            let lb = LowBit { bits: *bits, codes: unpack_bits(p, n, k, *bits), block_scales: vec![3; n * k / BLOCK], row_steps: vec![0.01; n] };
            let Ok(m) = QMatrix::from_block_scaled(n, k, &lb.codes, &lb.scales()) else { return };
            m.dequantize_row(0, &mut row);
            if q.quantize(&x, t, k, m.act_bits()).is_err() || matmul_t(&q, &m, Some(&row[..n]), &mut out).is_err() {
                return;
            }
        }
        let mut h = x.clone();
        let _ = ops::add_layer_norm(&mut h, Some(&x), &w, &b, 1e-12);
        ops::gelu_erf(&mut h);
        // `h` read as the fused Q/K/V rows of `t` tokens.
        let hidden = k / 3 / heads * heads;
        let _ = ops::attention(&h[..t * 3 * hidden], t, heads, hidden / heads, &mut scores, &mut ctx[..t * hidden]);
        std::hint::black_box((&out, &ctx));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn warm_up_runs() {
        super::warm_up();
    }
}
