//! The classification head: `logits = W_e · (s · ê) + W_n · mean(T[ngrams]) + b`, where ê is the
//! L2-normalised sentence embedding and T a table of hashed n-gram vectors (fastText-style).
//! The embedding carries meaning ("trainers" ≈ "running shoes"); the n-gram bag carries surface
//! form (model numbers, brands, half-typed words). The same functions serve training (with candle
//! `Var`s) and inference, so the two cannot drift apart.

use std::collections::HashMap;

use candle_core::{Tensor, D};

use crate::encoder::kernel_error;
use crate::error::Result;
use crate::format::HeadConfig;
use crate::storage::take;
use shelfwise_kernels::ops::linear_f32;

pub use crate::storage::{BIAS, LABEL_WEIGHT, NGRAM_TABLE, NGRAM_WEIGHT};

/// A head tensor as model files store it: the n-gram table in f16 (half the bytes; its ±0.1-scale
/// values lose nothing that changes a ranking), everything else as it is.
pub fn for_storage(name: &str, t: Tensor) -> candle_core::Result<Tensor> {
    if name == NGRAM_TABLE {
        t.to_dtype(candle_core::DType::F16)
    } else {
        Ok(t)
    }
}

/// `s · x / ‖x‖` row-wise ([N, H]).
pub fn normalize(pooled: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    let norm = pooled.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    pooled.broadcast_div(&norm)? * scale as f64
}

/// Mean of the table rows of each title's n-gram ids ([N, dim]); a title with none gets zeros.
pub fn bag_mean(table: &Tensor, ids: &[Vec<u32>]) -> candle_core::Result<Tensor> {
    let dev = table.device();
    let total: usize = ids.iter().map(Vec::len).sum();
    let dim = table.dim(1)?;
    if total == 0 {
        return Tensor::zeros((ids.len(), dim), table.dtype(), dev);
    }
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    let rows = table.index_select(&Tensor::from_vec(flat, total, dev)?, 0)?;
    // Averaging matrix: row i holds 1/len_i over title i's span. One matmul instead of N slices,
    // and its gradient flows back into the table through index_select.
    let mut avg = vec![0f32; ids.len() * total];
    let mut at = 0;
    for (i, v) in ids.iter().enumerate() {
        for j in at..at + v.len() {
            avg[i * total + j] = 1.0 / v.len() as f32;
        }
        at += v.len();
    }
    Tensor::from_vec(avg, (ids.len(), total), dev)?.matmul(&rows)
}

/// The head's parameters, borrowed: from a loaded model or from trainable `Var`s.
pub struct HeadParams<'a> {
    pub label_weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub ngram_table: &'a Tensor,
    pub ngram_weight: &'a Tensor,
}

impl HeadParams<'_> {
    /// Logits [N, labels] from raw pooled embeddings and per-title n-gram ids.
    pub fn logits(&self, cfg: &HeadConfig, pooled: &Tensor, ngrams: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        logits_with_bag(cfg, pooled, &bag_mean(self.ngram_table, ngrams)?, self.label_weight, self.ngram_weight, self.bias)
    }
}

/// The head's formula once the n-gram bags ([N, dim]) are computed.
fn logits_with_bag(
    cfg: &HeadConfig,
    pooled: &Tensor,
    bag: &Tensor,
    label_weight: &Tensor,
    ngram_weight: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let e = normalize(pooled, cfg.embed_scale)?;
    e.matmul(&label_weight.t()?)?.add(&bag.matmul(&ngram_weight.t()?)?)?.broadcast_add(bias)
}

/// The text of a category that the label-name prior embeds: its path's segments joined by spaces
/// ("Footwear Men's Footwear Sports Shoes"), read by the model's own encoder like a title.
pub fn label_text(path: &[String]) -> String {
    path.join(" ")
}

/// Folds the label-name prior into the label weights: with `label_emb` the L2-normalised
/// embeddings of [`label_text`] (`[labels, hidden]`), `logits += weight · cos(title, label)` is
/// `W_e += weight / s · Ê`, since the head reads `s · ê` (see the module docs). The file and the
/// inference stay as they are; only the weights move.
pub fn fold_label_prior(tensors: &mut HashMap<String, Tensor>, cfg: &HeadConfig, label_emb: &Tensor, weight: f32) -> Result<()> {
    let w = tensors.get(LABEL_WEIGHT).ok_or_else(|| crate::ModelError::BadTensors(format!("missing tensor {LABEL_WEIGHT}")))?;
    if w.dims() != label_emb.dims() {
        return Err(crate::ModelError::BadTensors(format!("label prior {:?} for label weights {:?}", label_emb.dims(), w.dims())));
    }
    let folded = (w + (label_emb.to_dtype(w.dtype())? * (weight / cfg.embed_scale) as f64)?)?;
    tensors.insert(LABEL_WEIGHT.to_string(), folded);
    Ok(())
}

/// The n-gram table of a loaded head: f32 `[buckets, dim]`, or quantized (a title reads ~100 of
/// its 32k rows, so they are dequantized as read: 1 MB of codes in memory instead of 8 MB of f32).
enum NgramTable {
    F32(Vec<f32>),
    Quant(crate::storage::RowTable),
}

/// A loaded head, on plain slices: a title's logits are two small products and a sum, which
/// candle would run through a general GEMM with a thread-count query and tensors made per call
/// (a tenth of a one-title call, measured natively). Training keeps [`HeadParams`] (autograd).
pub struct Head {
    pub cfg: HeadConfig,
    labels: usize,
    /// `[hidden, labels]`: the label weights transposed, as [`linear_f32`] reads them.
    label_t: Vec<f32>,
    bias: Vec<f32>,
    ngram_table: NgramTable,
    /// `[ngram_dim, labels]`.
    ngram_t: Vec<f32>,
}

/// A `[rows, cols]` weight as f32 `[cols, rows]`.
fn transposed(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.t()?.contiguous()?.flatten_all()?.to_vec1()?)
}

impl Head {
    pub fn from_tensors(cfg: &HeadConfig, labels: usize, hidden: usize, t: &HashMap<String, Tensor>) -> Result<Self> {
        let shape = [cfg.buckets as usize, cfg.ngram_dim];
        Ok(Self {
            cfg: cfg.clone(),
            labels,
            label_t: transposed(&take(t, LABEL_WEIGHT, &[labels, hidden])?)?,
            bias: take(t, BIAS, &[labels])?.to_vec1()?,
            ngram_table: match crate::storage::RowTable::load(t, NGRAM_TABLE, shape)? {
                Some(q) => NgramTable::Quant(q),
                None => NgramTable::F32(take(t, NGRAM_TABLE, &shape)?.flatten_all()?.to_vec1()?),
            },
            ngram_t: transposed(&take(t, NGRAM_WEIGHT, &[labels, cfg.ngram_dim])?)?,
        })
    }

    /// Logits `[N][labels]` from raw pooled embeddings `[N, hidden]` and per-title n-gram ids:
    /// the formula of [`HeadParams::logits`] (normalised embedding · label weights + mean n-gram
    /// row · n-gram weights + bias), the same up to summation order.
    pub fn logits(&self, pooled: &Tensor, ngrams: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let (n, hidden) = pooled.dims2()?;
        let mut e: Vec<f32> = pooled.flatten_all()?.to_vec1()?;
        for row in e.chunks_mut(hidden.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v = *v / norm * self.cfg.embed_scale);
        }
        let dim = self.cfg.ngram_dim;
        let (mut bags, mut row) = (vec![0f32; n * dim], vec![0f32; dim]);
        for (bag, ids) in bags.chunks_mut(dim.max(1)).zip(ngrams) {
            for &id in ids {
                // Ids come from hashing into `buckets` rows: always in range.
                let r = match &self.ngram_table {
                    NgramTable::F32(t) => &t[(id as usize % self.cfg.buckets.max(1) as usize) * dim..][..dim],
                    NgramTable::Quant(q) => {
                        q.dequantize_row(id as usize % q.rows().max(1), &mut row);
                        &row
                    }
                };
                bag.iter_mut().zip(r).for_each(|(b, r)| *b += r / ids.len() as f32);
            }
        }
        let l = self.labels;
        let (mut logits, mut from_bags) = (vec![0f32; n * l], vec![0f32; n * l]);
        linear_f32(&e, n, &self.label_t, l, &mut logits).map_err(kernel_error)?;
        linear_f32(&bags, n, &self.ngram_t, l, &mut from_bags).map_err(kernel_error)?;
        for (row, b) in logits.chunks_mut(l.max(1)).zip(from_bags.chunks(l.max(1))) {
            row.iter_mut().zip(b).zip(&self.bias).for_each(|((x, b), bias)| *x = (*x + b) + bias);
        }
        Ok(logits.chunks(l.max(1)).take(n).map(<[f32]>::to_vec).collect())
    }

    pub fn ngram_ids(&self, title: &str) -> Vec<u32> {
        shelfwise_core::ngram::hashed_ngrams(title, &self.cfg.ngram, self.cfg.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_folded_label_prior_adds_weight_times_cosine() {
        let cfg = HeadConfig { ngram: Default::default(), buckets: 8, ngram_dim: 2, embed_scale: 8.0, temperature: 1.0 };
        let t = |v: Vec<f32>, shape: (usize, usize)| Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        let vals = |n: usize, k: u32| (0..n).map(|i| ((i as u32 * 37 + k) % 17) as f32 / 17.0 - 0.5).collect::<Vec<f32>>();
        let mut tensors = HashMap::new();
        tensors.insert(LABEL_WEIGHT.to_string(), t(vals(12, 1), (3, 4)));
        let (bias, table, ngram_w) = (Tensor::from_vec(vals(3, 2), 3, &Device::Cpu).unwrap(), t(vals(16, 3), (8, 2)), t(vals(6, 4), (3, 2)));
        let (pooled, ngrams) = (t(vals(8, 5), (2, 4)), vec![vec![1u32, 5], vec![]]);
        let label_emb = normalize(&t(vals(12, 6), (3, 4)), 1.0).unwrap();
        let logits = |tensors: &HashMap<String, Tensor>| {
            let p = HeadParams { label_weight: &tensors[LABEL_WEIGHT], bias: &bias, ngram_table: &table, ngram_weight: &ngram_w };
            p.logits(&cfg, &pooled, &ngrams).unwrap().to_vec2::<f32>().unwrap()
        };
        let before = logits(&tensors);
        fold_label_prior(&mut tensors, &cfg, &label_emb, 3.0).unwrap();
        let after = logits(&tensors);
        let cos = normalize(&pooled, 1.0).unwrap().matmul(&label_emb.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
        for i in 0..2 {
            for j in 0..3 {
                assert!((after[i][j] - before[i][j] - 3.0 * cos[i][j]).abs() < 1e-5, "[{i}][{j}]");
            }
        }
        assert!(fold_label_prior(&mut tensors, &cfg, &t(vals(8, 7), (2, 4)), 1.0).is_err());
    }
}
