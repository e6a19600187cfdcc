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

/// A representative product of the encoder (16 tokens through a 1536 × 384 feed-forward matrix of
/// 4-bit-range codes, the shipped model's kind) to time the kernel variants on
/// ([`crate::kernel_variants`]): a caller times [`KernelProbe::run`] under each and keeps the
/// faster. Every variant computes the same sums, so [`KernelProbe::run`]'s checksum is the same.
pub struct KernelProbe {
    w: QMatrix,
    q: QRows,
    out: Vec<f32>,
}

impl KernelProbe {
    pub const TOKENS: usize = 16;
    pub const ROWS: usize = 1536;
    pub const COLS: usize = 384;

    pub fn new() -> Self {
        let (m, n, k) = (Self::TOKENS, Self::ROWS, Self::COLS);
        let codes: Vec<i8> = (0..n * k).map(|i| ((i * 7919) % 16) as i8 - 8).collect();
        let scales: Vec<f32> = (0..n * k / BLOCK).map(|i| 0.01 + (i % 5) as f32 * 1e-3).collect();
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 19) as f32 / 19.0 - 0.5).collect();
        let w = QMatrix::from_block_scaled(n, k, &codes, &scales).expect("the probe's shapes agree");
        let mut q = QRows::default();
        q.quantize(&x, m, k, w.act_bits()).expect("the probe's shapes agree");
        Self { w, q, out: vec![0f32; m * n] }
    }

    /// `reps` products; returns a checksum of the last (the same under every variant).
    pub fn run(&mut self, reps: u32) -> f32 {
        for _ in 0..reps {
            if matmul_t(&self.q, &self.w, None, &mut self.out).is_err() {
                return f32::NAN;
            }
        }
        self.out.iter().sum()
    }
}

impl Default for KernelProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn warm_up_runs() {
        super::warm_up();
    }

    /// The probe's product against the f64 one of its dequantized weights and f32 activations
    /// (recomputed here from the formula), within the 8-bit activation rounding (half a step,
    /// max|x| / 254, times Σ|w| of the row), and the same checksum under every variant.
    #[test]
    fn kernel_probe_is_the_product_it_stands_for() {
        let mut p = super::KernelProbe::new();
        let sum = p.run(2);
        let (m, n, k) = (super::KernelProbe::TOKENS, super::KernelProbe::ROWS, super::KernelProbe::COLS);
        let w = p.w.dequantize();
        let x: Vec<f64> = (0..m * k).map(|i| ((i * 37) % 19) as f64 / 19.0 - 0.5).collect();
        for r in 0..m {
            for c in 0..n {
                let want: f64 = (0..k).map(|i| x[r * k + i] * w[c * k + i] as f64).sum();
                let bound: f64 = (0..k).map(|i| (w[c * k + i] as f64).abs()).sum::<f64>() * 0.5 / 254.0 + 1e-5;
                let got = p.out[r * n + c] as f64;
                assert!((got - want).abs() <= bound, "[{r}, {c}]: {got} vs {want} (bound {bound})");
            }
        }
        for v in crate::kernel_variants() {
            assert!(crate::set_kernel_variant(v));
            assert_eq!(p.run(1).to_bits(), sum.to_bits(), "{v}");
        }
        assert!(!crate::set_kernel_variant("no such loop"));
    }
}
