//! Manifest validation: every field of a model file's manifest range-checked, and checked against
//! the tensors the file actually holds, before any of them sizes an allocation, a loop or a
//! kernel. A checksum is not a signature: a resealed file saying `char_min: 0`, `layers: 0` or
//! `embed_scale: -1` is untrusted input like any other, and gets `MODEL_MANIFEST` naming the field
//! rather than a panic or silently wrong answers.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use crate::encoder::{WORD_EMBEDDINGS, WORD_ROWS};
use crate::error::{ModelError, Result};
use shelfwise_core::lexical::{GATE_FEATURES, MAX_STACK_VALUE};

use crate::format::{Adaptation, EncoderConfig, HeadConfig, LexicalConfig, Manifest, Quantization, LEXICAL_ANALYZER};
use crate::head::{BIAS, NGRAM_TABLE, NGRAM_WEIGHT};
use crate::quant::{lowbit_suffix, CODES_SUFFIX, INT8_BLOCK32, INT8_PER_CHANNEL, Q4_BLOCK32};

/// Bounds on fields that nothing in the file pins down but that size loops (n-gram lengths) or
/// that no fitted model comes near (temperatures are fitted in [0.05, 20]).
const MAX_NGRAM_LEN: usize = 32;
const MAX_FEATURES: usize = 1 << 16;
const TEMPERATURE: (f32, f32) = (1e-3, 1e3);
const MAX_EMBED_SCALE: f32 = 1e4;
const MAX_LAYER_NORM_EPS: f64 = 1e-2;
/// The lexical part: n-grams and weights far beyond any shop's (a 1,000-class shop keeps ~10^5 of
/// each), stack buckets and weights far beyond what a fit gives.
const MAX_LEXICAL_FEATURES: usize = 1 << 24;
const MAX_LEXICAL_WEIGHTS: usize = 1 << 28;
const MAX_STACK_BUCKETS: usize = 16;

fn bad(field: &str, why: impl std::fmt::Display) -> ModelError {
    ModelError::BadManifest(format!("{field}: {why}"))
}

/// Checks `m` against the (parsed, not yet loaded) tensors `t`. Tensors the manifest does not size
/// are left to the loaders (`MODEL_TENSORS` for a missing or misshapen one).
pub fn check(m: &Manifest, t: &HashMap<String, Tensor>) -> Result<()> {
    check_encoder(&m.encoder, t)?;
    check_head(&m.head, t)?;
    check_labels(&m.labels, t)?;
    if let Some(q) = &m.quantization {
        check_quantization(q, &m.encoder, t)?;
    }
    match &m.lexical {
        Some(l) => check_lexical(l, m.labels.len(), t)?,
        None if crate::lexical::NAMES.iter().any(|n| t.contains_key(*n)) => return Err(bad("lexical", "missing, but the file holds lexical tensors")),
        None => {}
    }
    if let Some(a) = &m.adaptation {
        check_adaptation(a, t)?;
    }
    Ok(())
}

fn check_lexical(l: &LexicalConfig, labels: usize, t: &HashMap<String, Tensor>) -> Result<()> {
    if l.analyzer != LEXICAL_ANALYZER {
        return Err(bad("lexical.analyzer", format!("{:?} is not {LEXICAL_ANALYZER:?}", l.analyzer)));
    }
    if l.features > MAX_LEXICAL_FEATURES {
        return Err(bad("lexical.features", format!("{} is over {MAX_LEXICAL_FEATURES}", l.features)));
    }
    if l.weights > MAX_LEXICAL_WEIGHTS {
        return Err(bad("lexical.weights", format!("{} is over {MAX_LEXICAL_WEIGHTS}", l.weights)));
    }
    use crate::lexical::{BIAS as LEX_BIAS, CLASSES, CODES, COUNTS, HASHES, IDF, SCALES};
    for name in [HASHES, IDF, COUNTS] {
        agrees("lexical.features", l.features, vec_len(t, name), &format!("{name} has entries:"))?;
    }
    for name in [CLASSES, CODES] {
        agrees("lexical.weights", l.weights, vec_len(t, name), &format!("{name} has entries:"))?;
    }
    for name in [SCALES, LEX_BIAS] {
        agrees("labels", labels, vec_len(t, name), &format!("{name} has entries:"))?;
    }
    // The hashes are binary-searched: they must be sorted (checked again, with the rest, when the
    // part is loaded; here so that the manifest's field is named).
    if let Some(h) = t.get(HASHES).filter(|h| h.dtype() == DType::I64 && h.rank() == 1) {
        let h: Vec<u64> = h.to_vec1::<i64>()?.into_iter().map(|x| x as u64).collect();
        if h.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("lexical.features", "the n-gram hashes are not sorted and distinct"));
        }
    }
    if l.stack.is_empty() || l.stack.len() > MAX_STACK_BUCKETS {
        return Err(bad("lexical.stack", format!("{} buckets, must be between 1 and {MAX_STACK_BUCKETS}", l.stack.len())));
    }
    if l.stack.windows(2).any(|w| w[0].up_to_words >= w[1].up_to_words) || l.stack[0].up_to_words == 0 {
        return Err(bad("lexical.stack.up_to_words", "must be positive and strictly increasing"));
    }
    if l.stack.iter().any(|b| !(b.head.is_finite() && b.lexical.is_finite() && b.head.abs() <= MAX_STACK_VALUE && b.lexical.abs() <= MAX_STACK_VALUE)) {
        return Err(bad("lexical.stack", format!("weights must be finite and at most {MAX_STACK_VALUE} in magnitude")));
    }
    if l.gate.as_ref().is_some_and(|g| !g.is_valid()) {
        return Err(bad(
            "lexical.gate",
            format!(
                "needs {} means and positive scales and {} weights a part, finite, all at most {MAX_STACK_VALUE} in magnitude",
                GATE_FEATURES,
                GATE_FEATURES + 1
            ),
        ));
    }
    Ok(())
}

/// Caps on an adaptation section's sizes: far beyond any shop (20,000-path taxonomies are the
/// largest asked for), so a resealed file cannot make a load size a huge allocation by them.
pub const MAX_ADAPT_LABELS: usize = 1 << 20;
pub const MAX_ADAPT_EXAMPLES: usize = 1 << 22;

fn check_adaptation(a: &Adaptation, t: &HashMap<String, Tensor>) -> Result<()> {
    use crate::adapter::{Feature, EXAMPLE_LABEL, PATH_EMB, WEIGHTS};
    if a.labels.is_empty() || a.labels.len() > MAX_ADAPT_LABELS {
        return Err(bad("adaptation.labels", format!("{} labels, must be between 1 and {MAX_ADAPT_LABELS}", a.labels.len())));
    }
    let space = shelfwise_core::LabelSpace::from_raw_paths(a.labels.iter().map(String::as_str)).map_err(|e| bad("adaptation.labels", e))?;
    if space.len() != a.labels.len() || space.labels().iter().zip(&a.labels).any(|(p, s)| shelfwise_core::taxonomy::join_path(p) != *s) {
        return Err(bad("adaptation.labels", "must be distinct, normalised and sorted"));
    }
    agrees("adaptation.labels", a.labels.len(), stored_2d(t, PATH_EMB).map(|(r, _)| r), "the label embeddings have rows:")?;
    if a.features.is_empty() {
        return Err(bad("adaptation.features", "no features"));
    }
    for (i, f) in a.features.iter().enumerate() {
        if Feature::from_name(f).is_none() {
            return Err(bad("adaptation.features", format!("unknown feature {f:?}")));
        }
        if a.features[..i].contains(f) {
            return Err(bad("adaptation.features", format!("{f:?} twice")));
        }
    }
    agrees("adaptation.features", a.features.len(), vec_len(t, WEIGHTS), "the combination weights have entries:")?;
    if a.max_examples == 0 || a.max_examples > MAX_ADAPT_EXAMPLES {
        return Err(bad("adaptation.max_examples", format!("{} must be between 1 and {MAX_ADAPT_EXAMPLES}", a.max_examples)));
    }
    if a.examples > a.max_examples {
        return Err(bad("adaptation.examples", format!("{} is over max_examples {}", a.examples, a.max_examples)));
    }
    let stored = if t.contains_key(EXAMPLE_LABEL) { vec_len(t, EXAMPLE_LABEL) } else { Some(0) };
    agrees("adaptation.examples", a.examples, stored, "the example labels have entries:")
}

/// Rows (and columns, where the stored form tells them exactly) of a 2-D weight in whatever form
/// the file holds it: plain, int8 codes, or packed 3- / 4-bit codes (columns unknown).
fn stored_2d(t: &HashMap<String, Tensor>, name: &str) -> Option<(usize, Option<usize>)> {
    if let Some(x) = t.get(name).or_else(|| t.get(&format!("{name}{CODES_SUFFIX}"))) {
        return match *x.dims() {
            [r, c] => Some((r, Some(c))),
            _ => None,
        };
    }
    [4, 3].iter().find_map(|&b| t.get(&format!("{name}{}", lowbit_suffix(b)))).and_then(|x| x.dims().first().map(|&r| (r, None)))
}

/// Length of a stored vector (biases, LayerNorm parameters: never quantized).
fn vec_len(t: &HashMap<String, Tensor>, name: &str) -> Option<usize> {
    match *t.get(name)?.dims() {
        [n] => Some(n),
        _ => None,
    }
}

/// `value` must be `want` (what the tensors say) when the tensors say anything.
fn agrees(field: &str, value: usize, want: Option<usize>, what: &str) -> Result<()> {
    match want {
        Some(w) if w != value => Err(bad(field, format!("{value}, but {what} {w}"))),
        _ => Ok(()),
    }
}

fn at_least_one(field: &str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(bad(field, "must be at least 1"));
    }
    Ok(())
}

fn check_encoder(e: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<()> {
    at_least_one("encoder.hidden", e.hidden)?;
    agrees("encoder.hidden", e.hidden, vec_len(t, "embeddings.LayerNorm.weight"), "the embedding LayerNorm has width")?;
    if e.heads == 0 || !e.hidden.is_multiple_of(e.heads) {
        return Err(bad("encoder.heads", format!("{} does not divide hidden {}", e.heads, e.hidden)));
    }
    at_least_one("encoder.layers", e.layers)?;
    // Blocks actually present: the manifest's count must be exactly that (fewer would silently
    // skip blocks, more would fail deep in the loader, after sizing a list by it).
    let present = (0..).take_while(|l| t.contains_key(&format!("encoder.layer.{l}.output.LayerNorm.weight"))).count();
    agrees("encoder.layers", e.layers, Some(present), "the file holds encoder blocks:")?;
    at_least_one("encoder.intermediate", e.intermediate)?;
    agrees("encoder.intermediate", e.intermediate, vec_len(t, "encoder.layer.0.intermediate.dense.bias"), "the feed-forward bias has width")?;
    at_least_one("encoder.max_positions", e.max_positions)?;
    let positions = stored_2d(t, "embeddings.position_embeddings.weight").map(|(r, _)| r);
    agrees("encoder.max_positions", e.max_positions, positions, "the position table has rows:")?;
    if !(2..=e.max_positions).contains(&e.max_tokens) {
        return Err(bad("encoder.max_tokens", format!("{} must be between 2 ([CLS] and [SEP]) and max_positions {}", e.max_tokens, e.max_positions)));
    }
    at_least_one("encoder.vocab_size", e.vocab_size)?;
    let vocab = match t.get(WORD_ROWS) {
        Some(r) => Some(r.dims().first().copied().unwrap_or(0)),
        None => stored_2d(t, WORD_EMBEDDINGS).map(|(r, _)| r),
    };
    agrees("encoder.vocab_size", e.vocab_size, vocab, "the word-embedding table covers ids:")?;
    let eps = e.layer_norm_eps;
    if !(eps.is_finite() && eps > 0.0 && eps <= MAX_LAYER_NORM_EPS && (eps as f32) > 0.0) {
        return Err(bad("encoder.layer_norm_eps", format!("{eps} must be positive, finite and at most {MAX_LAYER_NORM_EPS}")));
    }
    Ok(())
}

fn check_head(h: &HeadConfig, t: &HashMap<String, Tensor>) -> Result<()> {
    let n = &h.ngram;
    if n.word_max == 0 || n.word_max > MAX_NGRAM_LEN {
        return Err(bad("head.ngram.word_max", format!("{} must be between 1 and {MAX_NGRAM_LEN}", n.word_max)));
    }
    if n.char_min == 0 || n.char_min > n.char_max {
        return Err(bad("head.ngram.char_min", format!("{} must be between 1 and char_max {}", n.char_min, n.char_max)));
    }
    if n.char_max > MAX_NGRAM_LEN {
        return Err(bad("head.ngram.char_max", format!("{} is over {MAX_NGRAM_LEN}", n.char_max)));
    }
    if n.max_features == 0 || n.max_features > MAX_FEATURES {
        return Err(bad("head.ngram.max_features", format!("{} must be between 1 and {MAX_FEATURES}", n.max_features)));
    }
    at_least_one("head.buckets", h.buckets as usize)?;
    let table = stored_2d(t, NGRAM_TABLE);
    agrees("head.buckets", h.buckets as usize, table.map(|(r, _)| r), "the n-gram table has rows:")?;
    at_least_one("head.ngram_dim", h.ngram_dim)?;
    // Only where the tensors agree among themselves: a tensor that disagrees with the others is
    // the tensor's fault (MODEL_TENSORS, from the loader), not the manifest's.
    let width = match (stored_2d(t, NGRAM_WEIGHT).and_then(|(_, c)| c), table.and_then(|(_, c)| c)) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => a.or(b),
    };
    agrees("head.ngram_dim", h.ngram_dim, width, "the n-gram weights have columns:")?;
    if !(h.embed_scale.is_finite() && h.embed_scale > 0.0 && h.embed_scale <= MAX_EMBED_SCALE) {
        return Err(bad("head.embed_scale", format!("{} must be positive, finite and at most {MAX_EMBED_SCALE}", h.embed_scale)));
    }
    let (lo, hi) = TEMPERATURE;
    if !(lo..=hi).contains(&h.temperature) {
        return Err(bad("head.temperature", format!("{} must be between {lo} and {hi}", h.temperature)));
    }
    Ok(())
}

fn check_labels(labels: &[String], t: &HashMap<String, Tensor>) -> Result<()> {
    if labels.is_empty() {
        return Err(bad("labels", "no labels"));
    }
    agrees("labels", labels.len(), vec_len(t, BIAS), "the head's bias has entries:")
}

fn check_quantization(q: &Quantization, e: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<()> {
    if ![INT8_PER_CHANNEL, INT8_BLOCK32, Q4_BLOCK32].contains(&q.scheme.as_str()) {
        return Err(bad("quantization.scheme", format!("unknown scheme {:?}", q.scheme)));
    }
    if let Some(p) = &q.pruned_vocab {
        agrees("quantization.pruned_vocab.of", p.of, Some(e.vocab_size), "encoder.vocab_size is")?;
        // The kept rows are the word table's rows (only checkable when the map is there).
        let rows = t.get(WORD_ROWS).filter(|r| r.dtype() == DType::U32).and_then(|_| stored_2d(t, WORD_EMBEDDINGS)).map(|(r, _)| r);
        agrees("quantization.pruned_vocab.kept", p.kept, rows, "the word-embedding table has rows:")?;
    }
    Ok(())
}
