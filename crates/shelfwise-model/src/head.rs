//! The classification head: `logits = W_e · (s · ê) + W_n · mean(T[ngrams]) + b`, where ê is the
//! L2-normalised sentence embedding and T a table of hashed n-gram vectors (fastText-style).
//! The embedding carries meaning ("trainers" ≈ "running shoes"); the n-gram bag carries surface
//! form (model numbers, brands, half-typed words). The same functions serve training (with candle
//! `Var`s) and inference, so the two cannot drift apart.

use std::collections::HashMap;

use candle_core::{Tensor, D};


use crate::encoder::take;
use crate::error::Result;
use crate::format::HeadConfig;

pub const LABEL_WEIGHT: &str = "head.label_weight";
pub const BIAS: &str = "head.bias";
pub const NGRAM_TABLE: &str = "head.ngram_table";
pub const NGRAM_WEIGHT: &str = "head.ngram_weight";

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
fn logits_with_bag(cfg: &HeadConfig, pooled: &Tensor, bag: &Tensor, label_weight: &Tensor, ngram_weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let e = normalize(pooled, cfg.embed_scale)?;
    e.matmul(&label_weight.t()?)?.add(&bag.matmul(&ngram_weight.t()?)?)?.broadcast_add(bias)
}

/// The n-gram table of a loaded head: f32, or quantized (a title reads ~100 of its 32k rows, so
/// they are dequantized as read: 1 MB of codes in memory instead of 8 MB of f32).
enum NgramTable {
    F32(Tensor),
    Quant(crate::quant::RowTable),
}

/// A loaded head.
pub struct Head {
    pub cfg: HeadConfig,
    label_weight: Tensor,
    bias: Tensor,
    ngram_table: NgramTable,
    ngram_weight: Tensor,
}

impl Head {
    pub fn from_tensors(cfg: &HeadConfig, labels: usize, hidden: usize, t: &HashMap<String, Tensor>) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            label_weight: take(t, LABEL_WEIGHT, &[labels, hidden])?,
            bias: take(t, BIAS, &[labels])?,
            ngram_table: {
                let shape = [cfg.buckets as usize, cfg.ngram_dim];
                match crate::quant::RowTable::load(t, NGRAM_TABLE, shape)? {
                    Some(q) => NgramTable::Quant(q),
                    None => NgramTable::F32(take(t, NGRAM_TABLE, &shape)?),
                }
            },
            ngram_weight: take(t, NGRAM_WEIGHT, &[labels, cfg.ngram_dim])?,
        })
    }

    /// Logits [N, labels] from raw pooled embeddings and per-title n-gram ids: the formula of
    /// [`HeadParams::logits`], with the bags read from a quantized table where there is one.
    pub fn logits(&self, pooled: &Tensor, ngrams: &[Vec<u32>]) -> Result<Tensor> {
        let bag = match &self.ngram_table {
            NgramTable::F32(t) => bag_mean(t, ngrams)?,
            NgramTable::Quant(q) => {
                let dim = q.cols();
                let (mut bags, mut row) = (vec![0f32; ngrams.len() * dim], vec![0f32; dim]);
                for (bag, ids) in bags.chunks_mut(dim).zip(ngrams) {
                    for &id in ids {
                        // Ids come from hashing into `buckets` rows: always in range.
                        q.dequantize_row(id as usize % q.rows().max(1), &mut row);
                        bag.iter_mut().zip(&row).for_each(|(b, r)| *b += r / ids.len() as f32);
                    }
                }
                Tensor::from_vec(bags, (ngrams.len(), dim), pooled.device())?
            }
        };
        Ok(logits_with_bag(&self.cfg, pooled, &bag, &self.label_weight, &self.ngram_weight, &self.bias)?)
    }

    pub fn ngram_ids(&self, title: &str) -> Vec<u32> {
        shelfwise_core::ngram::hashed_ngrams(title, &self.cfg.ngram, self.cfg.buckets)
    }
}
