//! Training data as the trainer reads it: labelled titles, their typed prefixes, the held-out
//! split, and what can be wrong with the data.

use std::collections::HashSet;

use shelfwise_core::ngram::fnv1a;
use shelfwise_core::{prefix, LabelSpace};

use crate::error::ModelError;
use crate::progress::Progress;

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
    #[error("is adapted (shelfwise adapt): its scores are fitted over the model as it was; change the model it was adapted from, then adapt that again")]
    Adapted,
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

/// Held-out rows as a model's training made them: whole titles and their prefixes at the
/// fractions (default 0.3 and 0.6) and with the marker that the manifest's `training` record
/// names, each text with its category (`None`: unknown to `labels`) and whether it is whole.
/// `NoKnownCategory` when no row's category is one of `labels`.
pub struct HeldOutTexts {
    pub texts: Vec<String>,
    pub gold: Vec<Option<usize>>,
    pub whole: Vec<bool>,
    pub marker: Option<String>,
}

impl HeldOutTexts {
    pub fn as_trained(training: &serde_json::Value, rows: &[Example], labels: &LabelSpace) -> Result<Self, TrainError> {
        let fractions: Vec<f64> = match training.get("prefix_fractions").and_then(serde_json::Value::as_array) {
            Some(v) => v.iter().filter_map(serde_json::Value::as_f64).collect(),
            None => vec![0.3, 0.6],
        };
        let marker = training.get("prefix_marker").and_then(serde_json::Value::as_str).map(str::to_string);
        let (texts, gold, whole) = with_prefixes(rows, &fractions, marker.as_deref(), labels);
        if gold.iter().all(Option::is_none) {
            return Err(TrainError::NoKnownCategory(labels.len()));
        }
        Ok(Self { texts, gold, whole, marker })
    }

    /// `score` on every text, 64 at a time, with a progress bar named `msg`.
    pub fn score(
        &self,
        msg: &str,
        progress: &dyn Progress,
        score: impl Fn(&[&str]) -> crate::error::Result<Vec<Vec<f32>>>,
    ) -> crate::error::Result<Vec<Vec<f32>>> {
        progress.start(msg, self.texts.len() as u64);
        let mut out = Vec::with_capacity(self.texts.len());
        for chunk in self.texts.chunks(64) {
            out.extend(score(&chunk.iter().map(String::as_str).collect::<Vec<_>>())?);
            progress.advance(chunk.len() as u64);
        }
        progress.finish(false);
        Ok(out)
    }
}
