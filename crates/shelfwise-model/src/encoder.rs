//! BERT sentence encoders (all-MiniLM-L6-v2 shape) with masked mean pooling, behind one trait,
//! [`TitleEncoder`]: [`CandleEncoder`] (candle ops; f32 weights, what training differentiates) and
//! [`PlainEncoder`] (a file whose every block is quantized: our kernels on plain slices); the GPU
//! encoder of shelfwise-gpu implements it too. [`from_tensors`] picks the CPU one a file needs.
//! Written out rather than taken from candle-transformers so that the quantized and GPU forwards
//! can mirror it layer for layer.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use shelfwise_kernels::{ops, QMatrix};

use crate::error::{ModelError, Result};
use crate::format::EncoderConfig;
// Where these always were for other crates; they belong to the storage layer.
pub use crate::storage::{take, tensor_shapes, WORD_EMBEDDINGS, WORD_ROWS};
use crate::tokenize::Encoding;

mod plain;

pub use plain::PlainEncoder;

/// Token ids in, mean-pooled sentence embeddings out: what a classifier needs of an encoder, the
/// contract every backend (candle, the int8 kernels, the GPU) implements for the same weights.
/// Synchronous: natively a GPU blocks on its queue; the browser's GPU, which cannot block, is not
/// held behind this trait (see ARCHITECTURE.md, "GPU encoder").
pub trait TitleEncoder: Send + Sync {
    /// Pooled embeddings `[encodings.len(), hidden]`, row-major, of tokenized titles: a title's
    /// row is the mean of its final hidden states over the positions its mask marks (positions
    /// past the mask count as padding), zeros for a title with none. Token ids outside the
    /// vocabulary or a title over `max_tokens` are errors.
    fn embed(&self, encodings: &[Encoding]) -> Result<Vec<f32>>;
    /// Width of one embedding.
    fn hidden(&self) -> usize;
    /// Where it runs, for reports: "cpu: candle", "cpu: int8 kernels (…)", "gpu: <adapter>".
    fn name(&self) -> String;
}

impl<E: TitleEncoder + ?Sized> TitleEncoder for Box<E> {
    fn embed(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        (**self).embed(encodings)
    }

    fn hidden(&self) -> usize {
        (**self).hidden()
    }

    fn name(&self) -> String {
        (**self).name()
    }
}

/// The CPU encoder of a model's tensors: [`PlainEncoder`] when every block is quantized (fused
/// Q/K/V on the kernels), else [`CandleEncoder`] (f32, or a file that quantized only some layers).
pub fn from_tensors(cfg: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<Box<dyn TitleEncoder>> {
    let candle = CandleEncoder::from_tensors(cfg, t)?;
    Ok(match candle.layers.iter().all(Layer::is_plain) {
        true => Box::new(PlainEncoder::from_candle(candle)?),
        false => Box::new(candle),
    })
}

/// A kernel's shape complaint: a bug of ours, not of the caller's input.
pub(crate) fn kernel_error(e: shelfwise_kernels::ShapeError) -> ModelError {
    ModelError::Compute(e.to_string())
}

/// `y = x W^T + b` over the last dim, flattening leading dims into one matmul. An f32 weight is
/// held as `W` itself (not a transposed copy) so that a layer built from trainable `Var`s sees
/// their updates; a quantized one runs on the int8 kernels of `shelfwise-kernels`.
pub struct Linear {
    w: Weight,
    b: Tensor,
}

enum Weight {
    F32(Tensor),
    /// Codes and scales, plus the bias as a slice for the kernel.
    Quant(QMatrix, Vec<f32>),
}

impl Linear {
    fn new(w: &Tensor, b: &Tensor) -> Self {
        Self { w: Weight::F32(w.clone()), b: b.clone() }
    }

    /// `<prefix>.weight` (f32 or quantized) and `<prefix>.bias` of shape `[out, in]` / `[out]`.
    fn load(t: &HashMap<String, Tensor>, prefix: &str, out: usize, inp: usize) -> Result<Self> {
        let name = format!("{prefix}.weight");
        let b = take(t, &format!("{prefix}.bias"), &[out])?;
        match crate::storage::load_qmatrix(t, &name, &[out, inp])? {
            Some(q) => Ok(Self { w: Weight::Quant(q, b.to_vec1()?), b }),
            None => Ok(Self::new(&take(t, &name, &[out, inp])?, &b)),
        }
    }

    /// The query, key and value projections of block `p`: one `[3h, h]` kernel matrix when all
    /// three are quantized with one activation precision (their input is then quantized and read
    /// once), else three layers.
    fn load_qkv(t: &HashMap<String, Tensor>, p: &str, h: usize) -> Result<Qkv> {
        let [q, k, v] = ["query", "key", "value"].map(|n| Linear::load(t, &format!("{p}.attention.self.{n}"), h, h));
        let (q, k, v) = (q?, k?, v?);
        match (&q.w, &k.w, &v.w) {
            (Weight::Quant(qw, qb), Weight::Quant(kw, kb), Weight::Quant(vw, vb)) if qw.act_bits() == kw.act_bits() && kw.act_bits() == vw.act_bits() => {
                let w = QMatrix::stack_rows(&[qw, kw, vw]).map_err(|e| ModelError::BadTensors(e.to_string()))?;
                let bias = [qb, kb, vb].into_iter().flatten().copied().collect::<Vec<_>>();
                let b = Tensor::from_slice(&bias, 3 * h, &Device::Cpu)?;
                Ok(Qkv::Fused(Linear { w: Weight::Quant(w, bias), b }))
            }
            _ => Ok(Qkv::Split { q, k, v }),
        }
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let (rows, k) = (dims[..dims.len() - 1].iter().product::<usize>(), dims[dims.len() - 1]);
        let (y, n) = match &self.w {
            Weight::F32(w) => (x.reshape((rows, k))?.matmul(&w.t()?)?.broadcast_add(&self.b)?, w.dim(0)?),
            Weight::Quant(q, bias) => {
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                let y = shelfwise_kernels::linear(&xs, rows, q, Some(bias)).map_err(candle_core::Error::wrap)?;
                (Tensor::from_vec(y, (rows, q.rows()), x.device())?, q.rows())
            }
        };
        let mut out = dims;
        *out.last_mut().expect("non-empty") = n;
        y.reshape(out)
    }
}

/// LayerNorm that picks candle's fused kernel for inference and the composed (differentiable)
/// form for training: the fused CPU kernels (layer norm, last-dim softmax) have no backward pass.
pub struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f32,
    /// `w` and `b` as slices, for the plain forward.
    wv: Vec<f32>,
    bv: Vec<f32>,
}

impl Norm {
    fn load(t: &HashMap<String, Tensor>, p: &str, h: usize, eps: f64) -> Result<Self> {
        let (w, b) = (take(t, &format!("{p}.weight"), &[h])?, take(t, &format!("{p}.bias"), &[h])?);
        Ok(Norm { wv: w.to_vec1()?, bv: b.to_vec1()?, w, b, eps: eps as f32 })
    }

    /// In place on rows of `x`, after adding `residual`.
    fn forward_plain(&self, x: &mut [f32], residual: Option<&[f32]>) -> Result<()> {
        ops::add_layer_norm(x, residual, &self.wv, &self.bv, self.eps).map_err(kernel_error)
    }

    fn forward(&self, x: &Tensor, differentiable: bool) -> candle_core::Result<Tensor> {
        if differentiable {
            candle_nn::ops::layer_norm_slow(x, &self.w, &self.b, self.eps)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.w, &self.b, self.eps)
        }
    }
}

/// The attention's input projections.
#[allow(clippy::large_enum_variant)] // one per layer: boxing would save bytes nobody misses
enum Qkv {
    /// f32 (trainable) weights, or a file that quantized only some of them.
    Split { q: Linear, k: Linear, v: Linear },
    /// One quantized `[3h, h]` layer: query, key and value rows.
    Fused(Linear),
}

/// One transformer block: self-attention and feed-forward, each with residual and LayerNorm.
pub struct Layer {
    qkv: Qkv,
    o: Linear,
    ln1: Norm,
    ff1: Linear,
    ff2: Linear,
    ln2: Norm,
}

/// Which candle ops a block's forward uses: the fused kernels for inference, or only ops with a
/// backward pass, for training (the fused CPU layer norm and last-dim softmax have none). The
/// trainer asks for the latter; the inference types hold no training state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ops {
    Fused,
    Differentiable,
}

impl Layer {
    /// Builds block `l` from named tensors (BERT names; weights f32 or quantized), checking shapes.
    pub fn from_tensors(cfg: &EncoderConfig, t: &HashMap<String, Tensor>, l: usize) -> Result<Self> {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let ln = |p: &str| Norm::load(t, p, h, cfg.layer_norm_eps);
        let p = format!("encoder.layer.{l}");
        Ok(Layer {
            qkv: Linear::load_qkv(t, &p, h)?,
            o: Linear::load(t, &format!("{p}.attention.output.dense"), h, h)?,
            ln1: ln(&format!("{p}.attention.output.LayerNorm"))?,
            ff1: Linear::load(t, &format!("{p}.intermediate.dense"), i, h)?,
            ff2: Linear::load(t, &format!("{p}.output.dense"), h, i)?,
            ln2: ln(&format!("{p}.output.LayerNorm"))?,
        })
    }

    /// `x`: [batch, seq, hidden]; `bias`: [batch, 1, 1, seq] additive attention mask.
    pub fn forward(&self, cfg: &EncoderConfig, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_recording(cfg, x, bias, None, Ops::Fused)
    }

    /// [`Self::forward`] through ops with a backward pass only: what training differentiates.
    pub fn forward_differentiable(&self, cfg: &EncoderConfig, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_recording(cfg, x, bias, None, Ops::Differentiable)
    }

    /// [`Self::forward`], also handing `record` the inputs of the block's Q/K/V, output,
    /// intermediate and output-dense layers, in that order: what GPTQ calibrates on.
    fn forward_recording(&self, cfg: &EncoderConfig, x: &Tensor, bias: &Tensor, mut record: Option<&mut Vec<Tensor>>, ops: Ops) -> candle_core::Result<Tensor> {
        let differentiable = ops == Ops::Differentiable;
        let (b, t, h) = x.dims3()?;
        let (nh, hd) = (cfg.heads, h / cfg.heads);
        let split = |y: Tensor| y.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = match &self.qkv {
            Qkv::Split { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            Qkv::Fused(qkv) => {
                let y = qkv.forward(x)?;
                (y.narrow(2, 0, h)?, y.narrow(2, h, h)?, y.narrow(2, 2 * h, h)?)
            }
        };
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(bias)?;
        let probs = if differentiable { candle_nn::ops::softmax(&scores, candle_core::D::Minus1)? } else { candle_nn::ops::softmax_last_dim(&scores)? };
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        if let Some(r) = record.as_deref_mut() {
            r.extend([x.clone(), ctx.clone()]);
        }
        let x = self.ln1.forward(&(self.o.forward(&ctx)? + x)?, differentiable)?;
        let g = self.ff1.forward(&x)?.gelu_erf()?;
        if let Some(r) = record {
            r.extend([x.clone(), g.clone()]);
        }
        let ff = self.ff2.forward(&g)?;
        self.ln2.forward(&(ff + &x)?, differentiable)
    }
}

/// Additive attention bias from a [batch, seq] 0/1 mask: 0 where attended, a large negative
/// number where padded, so softmax gives padding no weight. Shape [batch, 1, 1, seq].
pub fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t) = mask.dims2()?;
    ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, t))
}

/// Mean of the hidden states over attended positions: [batch, seq, hidden] → [batch, hidden].
pub fn mean_pool(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let counts = m.sum(1)?.clamp(1.0, f64::MAX)?;
    x.broadcast_mul(&m)?.sum(1)?.broadcast_div(&counts)
}

/// The word-embedding table: f32, or quantized (rows dequantized as they are gathered), with an
/// optional id → row map when the vocabulary was pruned.
enum WordTable {
    F32(Tensor),
    Quant(crate::storage::RowTable),
}

/// The embedding layer both CPU encoders share: word rows + position + token type 0, LayerNorm.
struct Embeddings {
    word: WordTable,
    rows: Option<Vec<u32>>,
    /// Position and token-type embeddings, `[max_positions, hidden]` and `[2, hidden]`.
    pos: Vec<f32>,
    typ: Vec<f32>,
    ln: Norm,
}

impl Embeddings {
    fn load(cfg: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<Self> {
        let shapes: HashMap<String, Vec<usize>> = tensor_shapes(cfg).into_iter().collect();
        let get = |n: &str| take(t, n, &shapes[n]);
        let rows = match t.get(WORD_ROWS) {
            None => None,
            Some(r) if r.dtype() == DType::U32 && r.dims() == [cfg.vocab_size] => Some(r.to_vec1::<u32>()?),
            Some(r) => return Err(ModelError::BadTensors(format!("{WORD_ROWS} is {:?} {:?}, expected U32 [{}]", r.dtype(), r.dims(), cfg.vocab_size))),
        };
        let table_rows = match &rows {
            None => cfg.vocab_size,
            // A row per kept token: the map's largest entry + 1, and every row must be used.
            Some(r) => r.iter().max().map_or(0, |&m| m as usize + 1),
        };
        let shape = [table_rows, cfg.hidden];
        let word = match crate::storage::RowTable::load(t, WORD_EMBEDDINGS, shape)? {
            Some(q) => WordTable::Quant(q),
            None => WordTable::F32(take(t, WORD_EMBEDDINGS, &shape)?),
        };
        Ok(Self {
            word,
            rows,
            pos: get("embeddings.position_embeddings.weight")?.flatten_all()?.to_vec1()?,
            typ: get("embeddings.token_type_embeddings.weight")?.flatten_all()?.to_vec1()?,
            ln: Norm::load(t, "embeddings.LayerNorm", cfg.hidden, cfg.layer_norm_eps)?,
        })
    }

    /// Word-embedding rows of `ids` into `out` (`[ids.len(), hidden]`).
    fn word_rows(&self, cfg: &EncoderConfig, ids: &[u32], out: &mut [f32]) -> Result<()> {
        if let Some(i) = ids.iter().find(|&&i| i as usize >= cfg.vocab_size) {
            return Err(ModelError::Compute(format!("token id {i} outside the vocabulary of {}", cfg.vocab_size)));
        }
        let row = |i: u32| self.rows.as_ref().map_or(i, |map| map[i as usize]);
        match &self.word {
            WordTable::F32(t) => {
                let rows = Tensor::from_iter(ids.iter().map(|&i| row(i)), t.device())?;
                out.copy_from_slice(&t.index_select(&rows, 0)?.flatten_all()?.to_vec1::<f32>()?);
            }
            WordTable::Quant(q) => {
                for (o, &i) in out.chunks_mut(cfg.hidden).zip(ids) {
                    q.dequantize_row(row(i) as usize, o);
                }
            }
        }
        Ok(())
    }
}

/// The encoder on candle ops: f32 weights (the ones training reads and differentiates), or a file
/// that quantized only some layers (those run on the int8 kernels inside the candle forward).
pub struct CandleEncoder {
    cfg: EncoderConfig,
    emb: Embeddings,
    layers: Vec<Layer>,
}

impl CandleEncoder {
    /// Builds the encoder from named tensors (BERT names), checking the config and every shape.
    pub fn from_tensors(cfg: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<Self> {
        if !cfg.hidden.is_multiple_of(cfg.heads) || cfg.max_tokens > cfg.max_positions || cfg.max_tokens < 2 {
            return Err(ModelError::BadManifest(format!("inconsistent encoder config {cfg:?}")));
        }
        let emb = Embeddings::load(cfg, t)?;
        let layers = (0..cfg.layers).map(|l| Layer::from_tensors(cfg, t, l)).collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg: cfg.clone(), emb, layers })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Hidden states after the embedding LayerNorm: [batch, seq, hidden].
    pub fn embeddings(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_tokens {
            return Err(ModelError::Compute(format!("sequence of {t} tokens over the limit {}", self.cfg.max_tokens)));
        }
        let h = self.cfg.hidden;
        let mut word = vec![0f32; b * t * h];
        self.emb.word_rows(&self.cfg, &ids.flatten_all()?.to_vec1()?, &mut word)?;
        let word = Tensor::from_vec(word, (b, t, h), &Device::Cpu)?;
        let pos = Tensor::from_slice(&self.emb.pos[..t * h], (t, h), &Device::Cpu)?;
        let typ = Tensor::from_slice(&self.emb.typ[..h], h, &Device::Cpu)?;
        Ok(self.emb.ln.forward(&word.broadcast_add(&pos)?.broadcast_add(&typ)?, false)?)
    }

    /// Runs blocks `layers` (a range of block indices) over hidden states `x`.
    pub fn run_layers(&self, mut x: Tensor, mask: &Tensor, layers: std::ops::Range<usize>) -> Result<Tensor> {
        let bias = attention_bias(mask)?;
        for layer in &self.layers[layers] {
            x = layer.forward(&self.cfg, &x, &bias)?;
        }
        Ok(x)
    }

    /// Block `l` on one unpadded sequence `x` (`[1, tokens, hidden]`): its output, and the inputs
    /// of its linear layers (Q/K/V, output, intermediate, output-dense; see [`crate::gptq`]).
    pub(crate) fn block_with_inputs(&self, l: usize, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let layer = self.layers.get(l).ok_or_else(|| ModelError::Compute(format!("no block {l}")))?;
        let bias = Tensor::zeros((1, 1, 1, x.dim(1)?), DType::F32, x.device())?;
        let mut inputs = Vec::with_capacity(4);
        let y = layer.forward_recording(&self.cfg, x, &bias, Some(&mut inputs), Ops::Fused)?;
        Ok((y, inputs))
    }

    /// Mean-pooled hidden states for a batch of equal-length (padded) sequences.
    /// `ids`, `mask`: [batch, seq] u32; returns [batch, hidden].
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = self.run_layers(self.embeddings(ids)?, mask, 0..self.cfg.layers)?;
        Ok(mean_pool(&x, mask)?)
    }
}

impl TitleEncoder for CandleEncoder {
    /// The titles padded to the longest, through [`CandleEncoder::forward`].
    fn embed(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        let (ids, mask) = pad_batch(encodings, &Device::Cpu)?;
        Ok(self.forward(&ids, &mask)?.flatten_all()?.to_vec1()?)
    }

    fn hidden(&self) -> usize {
        self.cfg.hidden
    }

    fn name(&self) -> String {
        "cpu: candle".into()
    }
}

/// Builds padded [batch, seq] id and mask tensors from per-title encodings.
pub fn pad_batch(encodings: &[crate::tokenize::Encoding], device: &Device) -> Result<(Tensor, Tensor)> {
    let t = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![0u32; encodings.len() * t];
    let mut mask = vec![0u32; encodings.len() * t];
    for (i, e) in encodings.iter().enumerate() {
        ids[i * t..i * t + e.ids.len()].copy_from_slice(&e.ids);
        mask[i * t..i * t + e.mask.len()].copy_from_slice(&e.mask);
    }
    Ok((Tensor::from_vec(ids, (encodings.len(), t), device)?, Tensor::from_vec(mask, (encodings.len(), t), device)?))
}
