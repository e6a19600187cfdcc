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

use shelfwise_kernels::{matmul_t, ops, QMatrix, QRows};

use super::{kernel_error, CandleEncoder, Embeddings, Layer, Linear, Norm, Qkv, TitleEncoder, Weight};
use crate::error::{ModelError, Result};
use crate::format::EncoderConfig;
use crate::tokenize::Encoding;

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
struct Pool(Mutex<Vec<Scratch>>);

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

/// A quantized linear layer: the kernels' matrix and its bias.
struct QLinear {
    w: QMatrix,
    b: Vec<f32>,
}

impl QLinear {
    fn of(l: Linear) -> Option<Self> {
        match l.w {
            Weight::Quant(w, b) => Some(Self { w, b }),
            Weight::F32(_) => None,
        }
    }

    /// `out = x · Wᵀ + b` for the rows of `x`, through `q`'s buffers.
    fn forward(&self, x: &[f32], q: &mut QRows, out: &mut Vec<f32>) -> Result<()> {
        let rows = x.len() / self.w.cols();
        q.quantize(x, rows, self.w.cols(), self.w.act_bits()).map_err(kernel_error)?;
        out.resize(rows * self.w.rows(), 0.0);
        matmul_t(q, &self.w, Some(&self.b), out).map_err(kernel_error)
    }
}

/// One transformer block with every linear on the kernels (Q/K/V fused).
struct PlainLayer {
    qkv: QLinear,
    o: QLinear,
    ln1: Norm,
    ff1: QLinear,
    ff2: QLinear,
    ln2: Norm,
}

impl Layer {
    /// Whether this block can run on the kernels alone: every linear quantized, Q/K/V fused.
    pub(super) fn is_plain(&self) -> bool {
        matches!(&self.qkv, Qkv::Fused(l) if matches!(l.w, Weight::Quant(..)))
            && [&self.o, &self.ff1, &self.ff2].iter().all(|l| matches!(l.w, Weight::Quant(..)))
    }
}

impl PlainLayer {
    /// The block's kernel matrices, or `None` when it is not [`Layer::is_plain`].
    fn of(l: Layer) -> Option<Self> {
        let Qkv::Fused(qkv) = l.qkv else { return None };
        Some(Self { qkv: QLinear::of(qkv)?, o: QLinear::of(l.o)?, ln1: l.ln1, ff1: QLinear::of(l.ff1)?, ff2: QLinear::of(l.ff2)?, ln2: l.ln2 })
    }

    /// `s.x` (the stacked tokens of sequences `s.lens`) through this block.
    fn forward(&self, cfg: &EncoderConfig, s: &mut Scratch) -> Result<()> {
        let (h, heads) = (cfg.hidden, cfg.heads);
        self.qkv.forward(&s.x, &mut s.q, &mut s.qkv)?;
        s.ctx.resize(s.x.len(), 0.0);
        let mut at = 0;
        for &t in &s.lens {
            let (qkv, ctx) = (&s.qkv[at * 3 * h..(at + t) * 3 * h], &mut s.ctx[at * h..(at + t) * h]);
            ops::attention(qkv, t, heads, h / heads, &mut s.scores, ctx).map_err(kernel_error)?;
            at += t;
        }
        self.o.forward(&s.ctx, &mut s.q, &mut s.y)?;
        self.ln1.forward_plain(&mut s.y, Some(&s.x))?;
        std::mem::swap(&mut s.x, &mut s.y);
        self.ff1.forward(&s.x, &mut s.q, &mut s.ff)?;
        ops::gelu_erf(&mut s.ff);
        self.ff2.forward(&s.ff, &mut s.q, &mut s.y)?;
        self.ln2.forward_plain(&mut s.y, Some(&s.x))?;
        std::mem::swap(&mut s.x, &mut s.y);
        Ok(())
    }
}

/// The inference encoder of a file whose every block is quantized: [`CandleEncoder`]'s forward
/// (same inputs, same result up to f32 summation order) on the kernels and plain slices.
pub struct PlainEncoder {
    cfg: EncoderConfig,
    emb: Embeddings,
    layers: Vec<PlainLayer>,
    /// Buffers of the forward, one set per concurrent caller, reused across calls.
    scratch: Pool,
}

impl PlainEncoder {
    /// Builds the encoder from named tensors; `MODEL_TENSORS` unless every block is quantized
    /// with one activation precision for Q, K and V (see [`super::from_tensors`] for either).
    pub fn from_tensors(cfg: &EncoderConfig, t: &std::collections::HashMap<String, candle_core::Tensor>) -> Result<Self> {
        Self::from_candle(CandleEncoder::from_tensors(cfg, t)?)
    }

    /// The same weights (moved, not copied) on the kernels.
    pub(super) fn from_candle(enc: CandleEncoder) -> Result<Self> {
        let CandleEncoder { cfg, emb, layers } = enc;
        let n = layers.len();
        let layers: Vec<PlainLayer> = layers.into_iter().map_while(PlainLayer::of).collect();
        if layers.len() != n {
            return Err(ModelError::BadTensors(format!("block {} is not quantized throughout: it needs the candle encoder", layers.len())));
        }
        Ok(Self { cfg, emb, layers, scratch: Pool::default() })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    fn run(&self, encodings: &[Encoding], s: &mut Scratch) -> Result<Vec<f32>> {
        let h = self.cfg.hidden;
        s.ids.clear();
        s.positions.clear();
        s.lens.clear();
        for e in encodings {
            if e.ids.len() > self.cfg.max_tokens {
                return Err(ModelError::Compute(format!("sequence of {} tokens over the limit {}", e.ids.len(), self.cfg.max_tokens)));
            }
            // Positions past the mask are padding, as in a padded batch.
            let kept = (0..e.ids.len()).filter(|&c| e.mask.get(c).is_some_and(|&m| m != 0));
            let before = s.ids.len();
            for c in kept {
                s.ids.push(e.ids[c]);
                s.positions.push(c);
            }
            s.lens.push(s.ids.len() - before);
        }
        // Embeddings: word (ids checked there) + position + token type 0, LayerNorm.
        s.x.resize(s.ids.len() * h, 0.0);
        self.emb.word_rows(&self.cfg, &s.ids, &mut s.x)?;
        for (x, &p) in s.x.chunks_exact_mut(h).zip(&s.positions) {
            let (pos, typ) = (&self.emb.pos[p * h..(p + 1) * h], &self.emb.typ[..h]);
            x.iter_mut().zip(pos.iter().zip(typ)).for_each(|(x, (p, t))| *x = *x + p + t);
        }
        self.emb.ln.forward_plain(&mut s.x, None)?;
        for layer in &self.layers {
            layer.forward(&self.cfg, s)?;
        }
        // Masked mean pooling; a sequence with no token pools to zeros.
        let mut out = vec![0f32; encodings.len() * h];
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

impl TitleEncoder for PlainEncoder {
    fn embed(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        let mut s = self.scratch.take();
        let pooled = self.run(encodings, &mut s);
        self.scratch.give(s);
        pooled
    }

    fn hidden(&self) -> usize {
        self.cfg.hidden
    }

    fn name(&self) -> String {
        format!("cpu: int8 kernels ({})", shelfwise_kernels::implementation())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};

    use crate::encoder::{mean_pool, CandleEncoder, PlainEncoder, TitleEncoder};
    use crate::format::EncoderConfig;
    use crate::storage::{tensor_shapes, CODES_SUFFIX, SCALE_SUFFIX};
    use crate::tokenize::Encoding;

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
    fn quantized_tensors(cfg: &EncoderConfig) -> HashMap<String, Tensor> {
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
        t
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "[{i}]: {x} vs {y}");
        }
    }

    fn encoding(ids: &[u32], mask: &[u32]) -> Encoding {
        Encoding { ids: ids.to_vec(), mask: mask.to_vec() }
    }

    /// The plain forward against candle's on the same quantized blocks (the same kernel matmuls,
    /// so only the float ops differ; their rounding can flip an activation code, hence the golden
    /// tolerance), on a padded batch, and a batch against its titles alone.
    #[test]
    fn plain_forward_matches_candle_forward() {
        let cfg =
            EncoderConfig { vocab_size: 50, hidden: 64, layers: 2, heads: 4, intermediate: 256, max_positions: 16, layer_norm_eps: 1e-12, max_tokens: 16 };
        let t = quantized_tensors(&cfg);
        let plain = PlainEncoder::from_tensors(&cfg, &t).unwrap();
        let candle = CandleEncoder::from_tensors(&cfg, &t).unwrap();
        // The loader picks the plain forward for a file quantized throughout.
        assert!(crate::encoder::from_tensors(&cfg, &t).unwrap().name().starts_with("cpu: int8 kernels"));
        // Five tokens; three, padded by their mask; none.
        let batch = [encoding(&[2, 7, 9, 4, 3], &[1; 5]), encoding(&[2, 11, 3, 0, 0], &[1, 1, 1, 0, 0]), encoding(&[], &[])];
        let got = plain.embed(&batch).unwrap();
        let ids = Tensor::from_vec(vec![2u32, 7, 9, 4, 3, 2, 11, 3, 0, 0, 0, 0, 0, 0, 0], (3, 5), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1u32, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], (3, 5), &Device::Cpu).unwrap();
        let x = candle.run_layers(candle.embeddings(&ids).unwrap(), &mask, 0..cfg.layers).unwrap();
        close(&got, &mean_pool(&x, &mask).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), 1e-4);
        // ... and through the trait, which pads the batch itself.
        close(&got, &candle.embed(&batch).unwrap(), 1e-4);
        // The sequence with no token pools to zeros, as candle's does.
        close(&got[128..], &[0.0; 64], 0.0);
        close(&got[..64], &plain.embed(&[encoding(&[2, 7, 9, 4, 3], &[1; 5])]).unwrap(), 1e-6);
        close(&got[64..128], &plain.embed(&[encoding(&[2, 11, 3], &[1; 3])]).unwrap(), 1e-6);
        // Bad input is an error, not a panic: an id outside the vocabulary, a title over max_tokens.
        assert_eq!(plain.embed(&[encoding(&[2, 50], &[1, 1])]).unwrap_err().code(), "INTERNAL");
        assert_eq!(plain.embed(&[encoding(&[2; 17], &[1; 17])]).unwrap_err().code(), "INTERNAL");
        assert_eq!(candle.embed(&[encoding(&[2, 50], &[1, 1])]).unwrap_err().code(), "INTERNAL");
        // An f32 block cannot run on the kernels.
        let mut f32_block = t.clone();
        let w = "encoder.layer.1.output.dense.weight";
        f32_block.remove(&format!("{w}{CODES_SUFFIX}"));
        f32_block.remove(&format!("{w}{SCALE_SUFFIX}"));
        f32_block.insert(w.into(), Tensor::zeros((64, 256), candle_core::DType::F32, &Device::Cpu).unwrap());
        assert_eq!(PlainEncoder::from_tensors(&cfg, &f32_block).err().map(|e| e.code()), Some("MODEL_TENSORS"));
        assert_eq!(crate::encoder::from_tensors(&cfg, &f32_block).unwrap().name(), "cpu: candle");
    }
}
