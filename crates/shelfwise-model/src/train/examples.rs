//! Training data as the trainer reads it: labelled titles, their typed prefixes, the held-out
//! split, and what can be wrong with the data.

use std::collections::HashSet;

use shelfwise_core::ngram::fnv1a;
use shelfwise_core::{prefix, LabelSpace};

use crate::error::ModelError;

/// One labelled title: its text and its category path (top level first).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub title: String,
    pub path: Vec<String>,
}

impl Example {
    /// The path as a label string, segments joined by ` > `.
    pub fn label(&self) -> String {
        self.path.join(" > ")
    }
}

/// Where a set of examples came from, for the manifest: a file's name (no folders) and sha256.
#[derive(Debug, Clone, Default)]
pub struct DataSource {
    pub file: Option<String>,
    pub sha256: String,
}

/// Why training or calibration cannot go on. The data errors carry no file name: the caller
/// knows which file it passed and says so.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("no training rows left after holding out data")]
    NoTrainingRows,
    #[error("only one category ({0}); a classifier needs at least two")]
    OneCategory(String),
    #[error("{0}")]
    Labels(String),
    #[error("--part stores int8 deltas from the base weights, which would move a QAT model off its grid: drop --part (the quantized file is what ships)")]
    PartWithQat,
    #[error("is quantized: calibrate the f32 model it was made from (shelfwise dequantize gives it for a --qat model), then quantize that")]
    Quantized,
    #[error("the model has a lexical part already")]
    HasLexical,
    #[error("none of its categories is one of the model's {0}")]
    NoKnownCategory(usize),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Model(e.into())
    }
}

/// Without a dev set: the 10 % of `rows` held out (by a hash of the lower-cased title, so that
/// duplicates never straddle the split), and the rest to train on.
pub fn split_heldout(rows: Vec<Example>) -> (Vec<Example>, Vec<Example>) {
    rows.into_iter().partition(|r| !fnv1a(r.title.to_lowercase().as_bytes()).is_multiple_of(10))
}

/// Whole titles plus their prefixes, deduplicated, with labels and whether each is a whole title.
pub fn with_prefixes(rows: &[Example], fractions: &[f64], marker: Option<&str>, labels: &LabelSpace) -> (Vec<String>, Vec<Option<usize>>, Vec<bool>) {
    let mut seen = HashSet::new();
    let (mut texts, mut ys, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let tagged = |p: String| match marker {
        Some(m) => format!("{m} {p}"),
        None => p,
    };
    for r in rows {
        let y = labels.find(&r.label());
        let variants = std::iter::once(r.title.clone()).chain(fractions.iter().map(|&f| tagged(prefix(&r.title, f))));
        for (i, t) in variants.enumerate() {
            if !t.trim().is_empty() && seen.insert((t.clone(), y)) {
                texts.push(t);
                ys.push(y);
                whole.push(i == 0);
            }
        }
    }
    (texts, ys, whole)
}
