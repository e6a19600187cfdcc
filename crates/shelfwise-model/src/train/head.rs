//! Training the head with candle autograd on frozen-encoder embeddings, optionally fine-tuning the
//! top encoder blocks on cached hidden states of the blocks below (`finetune_layers`).
//!
//! Deterministic for a seed: the n-gram table is initialised and the samples shuffled from a
//! seeded RNG, and candle's CPU kernels reduce in a fixed order.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::codec::fake_quant;
use crate::encoder::{attention_bias, mean_pool, Layer};
use crate::error::Result;
use crate::format::{EncoderConfig, HeadConfig};
use crate::head::{HeadParams, BIAS, LABEL_WEIGHT, NGRAM_TABLE, NGRAM_WEIGHT};
use crate::quant::snap_tensors;
use crate::storage::{take, targets_for, tensor_shapes, Scheme};

/// Bits of each weight under quantization-aware training (empty: plain training).
type QatBits = HashMap<String, u32>;

/// `x` as its stored form reads back in the forward pass, with the gradient of `x` itself
/// (straight-through estimator): `x + (fq(x) − x)`, the difference a constant.
fn through_quant(x: &Tensor, bits: Option<u32>) -> candle_core::Result<Tensor> {
    let Some(bits) = bits else { return Ok(x.clone()) };
    let (rows, cols) = x.dims2()?;
    let w = x.flatten_all()?.to_vec1::<f32>()?;
    let delta: Vec<f32> = fake_quant(&w, rows, cols, bits).iter().zip(&w).map(|(q, w)| q - w).collect();
    x + Tensor::from_vec(delta, (rows, cols), x.device())?
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Fine-tune this many top encoder blocks (0: frozen encoder).
    pub finetune_layers: usize,
    /// Learning rate of the fine-tuned blocks.
    pub encoder_lr: f64,
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Quantization-aware training for this scheme: the forward pass reads every weight the
    /// scheme quantizes as it will be stored (straight-through gradients), and the weights are
    /// saved on that grid, so `quantize` with the scheme changes none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qat: Option<Scheme>,
}

/// Mean cross-entropy with per-sample weights: `Σ w_i · (−log p_i[y_i]) / Σ w_i`.
fn weighted_cross_entropy(logits: &Tensor, target: &Tensor, weights: &Tensor) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let picked = logp.gather(&target.unsqueeze(1)?, 1)?.squeeze(1)?;
    (picked * weights)?.sum_all()?.neg()? / weights.sum_all()?.to_scalar::<f32>()? as f64
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { finetune_layers: 0, encoder_lr: 1e-4, seed: 42, epochs: 12, batch_size: 64, lr: 2e-3, weight_decay: 0.0, qat: None }
    }
}

/// What the trainer sees of each sample's text.
pub enum Inputs {
    /// Frozen encoder: raw mean-pooled embeddings [N, hidden].
    Pooled(Tensor),
    /// Top blocks fine-tuned: each sample's hidden states [tokens, hidden] below those blocks.
    Hidden(Vec<Tensor>),
}

/// Samples with their encoder inputs.
pub struct Samples {
    pub inputs: Inputs,
    pub ngrams: Vec<Vec<u32>>,
    /// `None`: a category unknown to the label space (held-out data only).
    pub labels: Vec<Option<usize>>,
    /// Loss weight of each sample (e.g. lower for prefixes than for whole titles).
    pub weights: Vec<f32>,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy@1 on the held-out samples, if any.
    pub heldout_acc: Option<f64>,
}

pub struct TrainedHead {
    /// Head tensors, and the fine-tuned encoder blocks' tensors (BERT names) if any.
    pub tensors: HashMap<String, Tensor>,
    pub best_epoch: usize,
    pub history: Vec<EpochReport>,
    /// Logits of the held-out samples under the kept epoch (for calibration).
    pub heldout_logits: Option<Vec<Vec<f32>>>,
}

/// The dense parameters live in candle `Var`s (AdamW); the n-gram table is updated sparsely (lazy
/// Adam: only the rows a batch touches), which keeps a step at microseconds instead of rewriting
/// millions of floats per step.
struct Vars {
    label_weight: Var,
    bias: Var,
    ngram_weight: Var,
    table: SparseAdamTable,
}

struct SparseAdamTable {
    dim: usize,
    w: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    lr: f64,
    step: i32,
}

impl SparseAdamTable {
    /// Rows `ids` of the table, as a tensor [ids.len(), dim].
    fn gather(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        for &i in ids {
            out.extend_from_slice(&self.w[i as usize * self.dim..(i as usize + 1) * self.dim]);
        }
        Tensor::from_vec(out, (ids.len(), self.dim), &Device::Cpu)
    }

    /// One Adam step on rows `ids` with gradient `grad` [ids.len(), dim].
    fn update(&mut self, ids: &[u32], grad: &[f32]) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        self.step += 1;
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for (r, &id) in ids.iter().enumerate() {
            for k in 0..self.dim {
                let at = id as usize * self.dim + k;
                let g = grad[r * self.dim + k] as f64;
                let m = b1 * self.m[at] as f64 + (1.0 - b1) * g;
                let v = b2 * self.v[at] as f64 + (1.0 - b2) * g * g;
                self.m[at] = m as f32;
                self.v[at] = v as f32;
                self.w[at] -= (self.lr * (m / c1) / ((v / c2).sqrt() + eps)) as f32;
            }
        }
    }
}

impl Vars {
    fn snapshot(&self, buckets: usize) -> Result<HashMap<String, Tensor>> {
        let copy = |v: &Var| v.as_tensor().copy();
        Ok(HashMap::from([
            (LABEL_WEIGHT.to_string(), copy(&self.label_weight)?),
            (BIAS.to_string(), copy(&self.bias)?),
            (NGRAM_TABLE.to_string(), Tensor::from_vec(self.table.w.clone(), (buckets, self.table.dim), &Device::Cpu)?),
            (NGRAM_WEIGHT.to_string(), copy(&self.ngram_weight)?),
        ]))
    }
}

/// Distinct ids of a batch and each title's ids remapped into that list.
fn localise(ngrams: &[&Vec<u32>]) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut index: HashMap<u32, u32> = HashMap::new();
    let mut uniq = Vec::new();
    let local = ngrams
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|&i| {
                    *index.entry(i).or_insert_with(|| {
                        uniq.push(i);
                        (uniq.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    (uniq, local)
}

/// Weighted accuracy@1 (the same weights as the loss).
fn accuracy(logits: &[Vec<f32>], s: &Samples) -> f64 {
    let (mut hit, mut total) = (0.0, 0.0);
    for ((l, g), w) in logits.iter().zip(&s.labels).zip(&s.weights) {
        total += *w as f64;
        if *g == Some(shelfwise_core::decision::top_k(l, 1)[0]) {
            hit += *w as f64;
        }
    }
    hit / total.max(f64::MIN_POSITIVE)
}

/// The trainable encoder blocks, as candle `Var`s under their BERT names.
struct Blocks {
    cfg: EncoderConfig,
    first: usize,
    vars: Vec<(String, Var)>,
    qat: QatBits,
}

impl Blocks {
    fn new(cfg: &EncoderConfig, base: &HashMap<String, Tensor>, n: usize, qat: &QatBits) -> Result<Self> {
        let first = cfg.layers - n.min(cfg.layers);
        let vars = tensor_shapes(cfg)
            .into_iter()
            .filter(|(name, _)| (first..cfg.layers).any(|l| name.starts_with(&format!("encoder.layer.{l}."))))
            .map(|(name, shape)| Ok((name.clone(), Var::from_tensor(&take(base, &name, &shape)?)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg: cfg.clone(), first, vars, qat: qat.clone() })
    }

    /// The blocks' weights as the forward pass reads them: as they are, or under QAT through their
    /// quantization (rounded on two threads, as that is a good part of a step's time).
    fn map(&self) -> Result<HashMap<String, Tensor>> {
        if self.qat.is_empty() {
            return Ok(self.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect());
        }
        let quant = |(n, v): &(String, Var)| through_quant(v.as_tensor(), self.qat.get(n).copied()).map(|t| (n.clone(), t));
        let (a, b) = self.vars.split_at(self.vars.len() / 2);
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| a.iter().map(quant).collect::<candle_core::Result<Vec<_>>>());
            let rb = b.iter().map(quant).collect::<candle_core::Result<Vec<_>>>();
            (h.join().expect("quantization thread"), rb)
        });
        Ok(ra?.into_iter().chain(rb?).collect())
    }

    /// Pads the samples' hidden states, runs the blocks, mean-pools: [batch, hidden].
    fn pooled(&self, seqs: &[&Tensor]) -> Result<Tensor> {
        let t = seqs.iter().map(|s| s.dim(0)).collect::<candle_core::Result<Vec<_>>>()?;
        let max = t.iter().copied().max().unwrap_or(1);
        let h = self.cfg.hidden;
        let padded = seqs
            .iter()
            .zip(&t)
            .map(|(s, &n)| if n == max { Ok((*s).clone()) } else { Tensor::cat(&[*s, &Tensor::zeros((max - n, h), DType::F32, &Device::Cpu)?], 0) })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let x = Tensor::stack(&padded, 0)?;
        let mask: Vec<u32> = t.iter().flat_map(|&n| (0..max).map(move |j| (j < n) as u32)).collect();
        let mask = Tensor::from_vec(mask, (seqs.len(), max), &Device::Cpu)?;
        let bias = attention_bias(&mask)?;
        let map = self.map()?;
        let mut x = x;
        for l in self.first..self.cfg.layers {
            let layer = Layer::from_tensors(&self.cfg, &map, l)?;
            x = layer.forward_differentiable(&self.cfg, &x, &bias)?;
        }
        Ok(mean_pool(&x, &mask)?)
    }
}

/// Pooled embeddings of samples `idx`, through the trainable blocks when fine-tuning.
fn pooled_of(s: &Samples, idx: &[usize], blocks: Option<&Blocks>) -> Result<Tensor> {
    match (&s.inputs, blocks) {
        (Inputs::Pooled(p), _) => {
            let ids = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect::<Vec<_>>(), idx.len(), &Device::Cpu)?;
            Ok(p.index_select(&ids, 0)?)
        }
        (Inputs::Hidden(seqs), Some(b)) => b.pooled(&idx.iter().map(|&i| &seqs[i]).collect::<Vec<_>>()),
        (Inputs::Hidden(_), None) => Err(crate::ModelError::Compute("hidden-state samples need fine-tuned blocks".into())),
    }
}

/// Trains the head (and the top encoder blocks with `finetune_layers > 0`, from `base` encoder
/// tensors); keeps the epoch with the best held-out accuracy (the last one without held-out data).
#[allow(clippy::too_many_arguments)]
pub fn train_head(
    head: &HeadConfig,
    cfg: &TrainConfig,
    encoder: (&EncoderConfig, &HashMap<String, Tensor>),
    n_labels: usize,
    train: &Samples,
    heldout: Option<&Samples>,
    mut on_epoch: impl FnMut(&EpochReport),
    mut on_step: impl FnMut(usize),
) -> Result<TrainedHead> {
    let dev = Device::Cpu;
    let hidden = encoder.0.hidden;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    // fastText's initialisation: input vectors uniform in ±1/dim, output layer zero.
    let bound = 1.0 / head.ngram_dim as f32;
    let table: Vec<f32> = (0..head.buckets as usize * head.ngram_dim).map(|_| rng.random_range(-bound..bound)).collect();
    let mut vars = Vars {
        label_weight: Var::zeros((n_labels, hidden), DType::F32, &dev)?,
        bias: Var::zeros(n_labels, DType::F32, &dev)?,
        ngram_weight: Var::zeros((n_labels, head.ngram_dim), DType::F32, &dev)?,
        table: SparseAdamTable { dim: head.ngram_dim, m: vec![0.0; table.len()], v: vec![0.0; table.len()], w: table, lr: cfg.lr, step: 0 },
    };
    let mut opt = AdamW::new(
        vec![vars.label_weight.clone(), vars.bias.clone(), vars.ngram_weight.clone()],
        ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..Default::default() },
    )?;
    let targets = cfg.qat.map(|q| targets_for(encoder.0, head, n_labels, q)).unwrap_or_default();
    let qat: QatBits = targets.iter().map(|(n, _, b)| (n.clone(), *b)).collect();
    let blocks = match cfg.finetune_layers {
        0 => None,
        n => Some(Blocks::new(encoder.0, encoder.1, n, &qat)?),
    };
    let mut block_opt = match &blocks {
        Some(b) => {
            Some(AdamW::new(b.vars.iter().map(|(_, v)| v.clone()).collect(), ParamsAdamW { lr: cfg.encoder_lr, weight_decay: 0.01, ..Default::default() })?)
        }
        None => None,
    };
    let labelled: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i].is_some()).collect();
    let mut best: Option<Kept> = None;
    let mut history = Vec::new();
    let total_steps = cfg.epochs * labelled.len().div_ceil(cfg.batch_size);
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let mut order = labelled.clone();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let pooled = pooled_of(train, chunk, blocks.as_ref())?;
            let (uniq, local) = localise(&chunk.iter().map(|&i| &train.ngrams[i]).collect::<Vec<_>>());
            let rows = Var::from_tensor(&vars.table.gather(&uniq)?)?;
            let target: Vec<u32> = chunk.iter().map(|&i| train.labels[i].expect("labelled") as u32).collect();
            // Under QAT each table row is rounded on its own (its scales are the row's), so the
            // gathered rows read exactly as the stored table's would.
            let (label_weight, ngram_table, ngram_weight) = (
                through_quant(vars.label_weight.as_tensor(), qat.get(LABEL_WEIGHT).copied())?,
                through_quant(rows.as_tensor(), qat.get(NGRAM_TABLE).copied())?,
                through_quant(vars.ngram_weight.as_tensor(), qat.get(NGRAM_WEIGHT).copied())?,
            );
            let params = HeadParams { label_weight: &label_weight, bias: vars.bias.as_tensor(), ngram_table: &ngram_table, ngram_weight: &ngram_weight };
            let logits = params.logits(head, &pooled, &local)?;
            let w: Vec<f32> = chunk.iter().map(|&i| train.weights[i]).collect();
            let loss = weighted_cross_entropy(&logits, &Tensor::from_vec(target, chunk.len(), &dev)?, &Tensor::from_vec(w, chunk.len(), &dev)?)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if let Some(o) = block_opt.as_mut() {
                o.step(&grads)?;
            }
            if let Some(g) = grads.get(rows.as_tensor()) {
                vars.table.update(&uniq, &g.flatten_all()?.to_vec1::<f32>()?);
            }
            loss_sum += loss.to_scalar::<f32>()? as f64;
            batches += 1;
            step += 1;
            on_step(step * 1000 / total_steps.max(1));
        }
        let held = match heldout {
            Some(h) => {
                let logits = logits_all(head, &vars, blocks.as_ref(), h, &qat)?;
                Some((accuracy(&logits, h), logits))
            }
            None => None,
        };
        let report = EpochReport { epoch, train_loss: loss_sum / batches.max(1) as f64, heldout_acc: held.as_ref().map(|h| h.0) };
        on_epoch(&report);
        let score = report.heldout_acc.unwrap_or(epoch as f64);
        if best.as_ref().is_none_or(|b| score > b.score) {
            let mut tensors = vars.snapshot(head.buckets as usize)?;
            if let Some(b) = &blocks {
                for (n, v) in &b.vars {
                    tensors.insert(n.clone(), v.as_tensor().copy()?);
                }
            }
            best = Some(Kept { score, epoch, tensors, heldout_logits: held.map(|h| h.1) });
        }
        history.push(report);
    }
    let mut out = match best {
        Some(k) => TrainedHead { tensors: k.tensors, best_epoch: k.epoch, history, heldout_logits: k.heldout_logits },
        None => TrainedHead { tensors: vars.snapshot(head.buckets as usize)?, best_epoch: 0, history, heldout_logits: None },
    };
    // QAT: the weights the forward pass read, as `quantize` will store them.
    snap_tensors(&mut out.tensors, &targets)?;
    Ok(out)
}

/// The best epoch so far: its held-out score, parameters and held-out logits.
struct Kept {
    score: f64,
    epoch: usize,
    tensors: HashMap<String, Tensor>,
    heldout_logits: Option<Vec<Vec<f32>>>,
}

/// Logits of every sample under the current parameters (no gradient kept).
fn logits_all(head: &HeadConfig, vars: &Vars, blocks: Option<&Blocks>, s: &Samples, qat: &QatBits) -> Result<Vec<Vec<f32>>> {
    let table = Tensor::from_vec(vars.table.w.clone(), (head.buckets as usize, head.ngram_dim), &Device::Cpu)?;
    let table = through_quant(&table, qat.get(NGRAM_TABLE).copied())?;
    let label_weight = through_quant(vars.label_weight.as_tensor(), qat.get(LABEL_WEIGHT).copied())?;
    let ngram_weight = through_quant(vars.ngram_weight.as_tensor(), qat.get(NGRAM_WEIGHT).copied())?;
    let params = HeadParams { label_weight: &label_weight, bias: vars.bias.as_tensor(), ngram_table: &table, ngram_weight: &ngram_weight };
    let idx: Vec<usize> = (0..s.len()).collect();
    let mut out = Vec::with_capacity(s.len());
    for chunk in idx.chunks(256) {
        let pooled = pooled_of(s, chunk, blocks)?.detach();
        let ngrams: Vec<Vec<u32>> = chunk.iter().map(|&i| s.ngrams[i].clone()).collect();
        out.extend(params.logits(head, &pooled, &ngrams)?.to_vec2::<f32>()?);
    }
    Ok(out)
}
