//! The inference forward of a quantized encoder on plain f32 slices: the kernels of
//! `shelfwise-kernels` for every op, no candle tensor inside the loop, buffers kept between calls.
//! In wasm, candle's per-op tensors, copies and scalar libm calls cost about as much as the int8
//! matmuls themselves. Training never comes here: it builds its own (differentiable) blocks.
//!
//! Padding is dropped before the first block: a padded key gets exactly zero attention weight and
//! a padded query only feeds its own row, which pooling ignores, so the batch's sequences become
//! one stack of real tokens (the linears then see every token of the batch at once) and attention
//! runs per sequence.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use shelfwise_kernels::{matmul_t, ops, QRows};

use super::{kernel_error, Encoder, Layer, Linear, Qkv};
use crate::error::{ModelError, Result};
use crate::format::EncoderConfig;

/// Buffers of one forward pass; they only grow.
#[derive(Default)]
struct Scratch {
    /// Kept tokens: (id, position), and each sequence's count.
    ids: Vec<u32>,
    positions: Vec<usize>,
    lens: Vec<usize>,
    /// Hidden states `[tokens, hidden]`, and the next ones.
    x: Vec<f32>,
    y: Vec<f32>,
    /// Fused query/key/value projections, attention context, feed-forward activations.
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    ff: Vec<f32>,
    scores: Vec<f32>,
    q: QRows,
}

/// Scratch sets for concurrent callers (rayon in the CLI; one in the browser).
#[derive(Default)]
pub(super) struct Pool(Mutex<Vec<Scratch>>);

impl Pool {
    fn take(&self) -> Scratch {
        self.0.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default()
    }

    fn give(&self, s: Scratch) {
        if let Ok(mut v) = self.0.lock() {
            v.push(s);
        }
    }
}

/// `out = x · Wᵀ + b` for the rows of `x`, through `q`'s buffers.
fn linear(l: &Linear, x: &[f32], q: &mut QRows, out: &mut Vec<f32>) -> Result<()> {
    let (w, b) = l.quantized().ok_or_else(|| ModelError::Compute("plain forward of an f32 layer".into()))?;
    let rows = x.len() / w.cols();
    q.quantize(x, rows, w.cols(), w.act_bits()).map_err(kernel_error)?;
    out.resize(rows * w.rows(), 0.0);
    matmul_t(q, w, Some(b), out).map_err(kernel_error)
}

impl Layer {
    /// Whether [`Layer::forward_plain`] can run this block: every linear on the kernels.
    pub(super) fn is_plain(&self) -> bool {
        matches!(self.qkv, Qkv::Fused(_)) && [&self.o, &self.ff1, &self.ff2].iter().all(|l| l.quantized().is_some())
    }

    /// `s.x` (the stacked tokens of sequences `s.lens`) through this block.
    fn forward_plain(&self, cfg: &EncoderConfig, s: &mut Scratch) -> Result<()> {
        let Qkv::Fused(qkv) = &self.qkv else {
            return Err(ModelError::Compute("plain forward of a block with split attention weights".into()));
        };
        let (h, heads) = (cfg.hidden, cfg.heads);
        linear(qkv, &s.x, &mut s.q, &mut s.qkv)?;
        s.ctx.resize(s.x.len(), 0.0);
        let mut at = 0;
        for &t in &s.lens {
            let (qkv, ctx) = (&s.qkv[at * 3 * h..(at + t) * 3 * h], &mut s.ctx[at * h..(at + t) * h]);
            ops::attention(qkv, t, heads, h / heads, &mut s.scores, ctx).map_err(kernel_error)?;
            at += t;
        }
        linear(&self.o, &s.ctx, &mut s.q, &mut s.y)?;
        self.ln1.forward_plain(&mut s.y, Some(&s.x))?;
        std::mem::swap(&mut s.x, &mut s.y);
        linear(&self.ff1, &s.x, &mut s.q, &mut s.ff)?;
        ops::gelu_erf(&mut s.ff);
        linear(&self.ff2, &s.ff, &mut s.q, &mut s.y)?;
        self.ln2.forward_plain(&mut s.y, Some(&s.x))?;
        std::mem::swap(&mut s.x, &mut s.y);
        Ok(())
    }
}

impl Encoder {
    /// [`Encoder::forward`] when every block is quantized: same inputs, same result (up to f32
    /// summation order).
    pub(super) fn forward_plain(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if mask.dims() != [b, t] {
            return Err(ModelError::Compute(format!("mask of shape {:?} for ids of shape {:?}", mask.dims(), [b, t])));
        }
        if t > self.cfg.max_tokens {
            return Err(ModelError::Compute(format!("sequence of {t} tokens over the limit {}", self.cfg.max_tokens)));
        }
        let mut s = self.scratch.take();
        let pooled = self.run_plain(&ids.flatten_all()?.to_vec1()?, &mask.flatten_all()?.to_vec1()?, b, t, &mut s);
        self.scratch.give(s);
        Ok(Tensor::from_vec(pooled?, (b, self.cfg.hidden), &Device::Cpu)?)
    }

    fn run_plain(&self, ids: &[u32], mask: &[u32], b: usize, t: usize, s: &mut Scratch) -> Result<Vec<f32>> {
        let h = self.cfg.hidden;
        s.ids.clear();
        s.positions.clear();
        s.lens.clear();
        for r in 0..b {
            let kept = (0..t).filter(|&c| mask[r * t + c] != 0);
            let before = s.ids.len();
            for c in kept {
                s.ids.push(ids[r * t + c]);
                s.positions.push(c);
            }
            s.lens.push(s.ids.len() - before);
        }
        // Embeddings: word (ids checked there) + position + token type 0, LayerNorm.
        s.x.resize(s.ids.len() * h, 0.0);
        self.word_rows(&s.ids, &mut s.x)?;
        for (x, &p) in s.x.chunks_exact_mut(h).zip(&s.positions) {
            let (pos, typ) = (&self.pos[p * h..(p + 1) * h], &self.typ[..h]);
            x.iter_mut().zip(pos.iter().zip(typ)).for_each(|(x, (p, t))| *x = *x + p + t);
        }
        self.emb_ln.forward_plain(&mut s.x, None)?;
        for layer in &self.layers {
            layer.forward_plain(&self.cfg, s)?;
        }
        // Masked mean pooling; a sequence with no token pools to zeros.
        let mut out = vec![0f32; b * h];
        let mut at = 0;
        for (o, &n) in out.chunks_exact_mut(h).zip(&s.lens) {
            for row in s.x[at * h..(at + n) * h].chunks_exact(h) {
                o.iter_mut().zip(row).for_each(|(o, x)| *o += x);
            }
            o.iter_mut().for_each(|o| *o /= n.max(1) as f32);
            at += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};

    use crate::encoder::{mean_pool, Encoder};
    use crate::format::EncoderConfig;
    use crate::storage::{tensor_shapes, CODES_SUFFIX, SCALE_SUFFIX};

    fn det(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Encoder weights of `cfg`, the block linears int8 (one scale per row), the rest f32.
    fn quantized_encoder(cfg: &EncoderConfig) -> Encoder {
        let mut t = HashMap::new();
        for (i, (name, shape)) in tensor_shapes(cfg).into_iter().enumerate() {
            let mut v = det(shape.iter().product(), i as u64);
            if name.contains("LayerNorm.weight") {
                v.iter_mut().for_each(|x| *x += 1.0);
            }
            if shape.len() == 2 && name.starts_with("encoder.") {
                let codes: Vec<u8> = v.iter().map(|x| (x * 127.0).round() as i8 as u8).collect();
                t.insert(format!("{name}{CODES_SUFFIX}"), Tensor::from_vec(codes, shape.clone(), &Device::Cpu).unwrap());
                t.insert(format!("{name}{SCALE_SUFFIX}"), Tensor::from_vec(vec![0.08f32; shape[0]], shape[0], &Device::Cpu).unwrap());
            } else {
                t.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
            }
        }
        Encoder::from_tensors(cfg, &t).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol, "[{i}]: {x} vs {y}");
        }
    }

    /// The plain forward against candle's on the same quantized blocks (the same kernel matmuls,
    /// so only the float ops differ; their rounding can flip an activation code, hence the golden
    /// tolerance), on a padded batch, and a batch against its titles alone.
    #[test]
    fn plain_forward_matches_candle_forward() {
        let cfg =
            EncoderConfig { vocab_size: 50, hidden: 64, layers: 2, heads: 4, intermediate: 256, max_positions: 16, layer_norm_eps: 1e-12, max_tokens: 16 };
        let enc = quantized_encoder(&cfg);
        assert!(enc.plain);
        let ids = Tensor::from_vec(vec![2u32, 7, 9, 4, 3, 2, 11, 3, 0, 0, 0, 0, 0, 0, 0], (3, 5), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1u32, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], (3, 5), &Device::Cpu).unwrap();
        let plain = enc.forward(&ids, &mask).unwrap();
        let x = enc.run_layers(enc.embeddings(&ids).unwrap(), &mask, 0..cfg.layers).unwrap();
        close(&plain, &mean_pool(&x, &mask).unwrap(), 1e-4);
        // The sequence with no token pools to zeros, as candle's does.
        close(&plain.get(2).unwrap(), &Tensor::zeros(64, candle_core::DType::F32, &Device::Cpu).unwrap(), 0.0);
        let one = |r: usize, n: usize| {
            let ids = ids.get(r).unwrap().narrow(0, 0, n).unwrap().unsqueeze(0).unwrap();
            enc.forward(&ids, &Tensor::ones((1, n), candle_core::DType::U32, &Device::Cpu).unwrap()).unwrap()
        };
        close(&plain.narrow(0, 0, 1).unwrap(), &one(0, 5), 1e-6);
        close(&plain.narrow(0, 1, 1).unwrap(), &one(1, 3), 1e-6);
        // Bad input is an error, not a panic.
        let bad = Tensor::from_vec(vec![2u32, 50], (1, 2), &Device::Cpu).unwrap();
        assert!(enc.forward(&bad, &Tensor::ones((1, 2), candle_core::DType::U32, &Device::Cpu).unwrap()).is_err());
        assert!(enc.forward(&ids, &Tensor::ones((3, 4), candle_core::DType::U32, &Device::Cpu).unwrap()).is_err());
    }
}
