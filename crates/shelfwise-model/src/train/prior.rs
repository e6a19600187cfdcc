//! The label-name prior: `logits += weight · cos(title, category text)`, with each category's path
//! embedded by the model's own encoder and the weight fitted on held-out titles
//! (`shelfwise_core::calibration::fit_prior_weight`), then folded into the head's label weights
//! ([`crate::head::fold_label_prior`]). It gives a category with one or two training titles
//! the meaning of its name to lean on. Training fits it at the end; [`calibrate`] fits it (once)
//! and the temperature on another held-out set for a model already trained.

use std::collections::HashMap;

use candle_core::Tensor;
use serde_json::{json, Value};
use shelfwise_core::calibration::{fit_prior_weight, fit_temperature_top1, with_prior};
use shelfwise_core::taxonomy::LabelSpace;

use crate::classifier::{Classifier, Embedder};
use crate::encoder::TitleEncoder;
use crate::error::Result;
use crate::format::{EncoderConfig, HeadConfig, ModelFile};
use crate::head::{fold_label_prior, label_text, normalize, LABEL_WEIGHT};
use crate::progress::Progress;
use crate::quant::snap_tensors;
use crate::storage::{load_tensors, targets_for, tensors_to_bytes, Scheme};
use crate::train::embed::{embed_all, EmbeddingCache};
use crate::train::examples::{DataSource, Example, HeldOutTexts, TrainError};

/// Where the encoder's embeddings of the held-out texts may come from the training cache: the
/// frozen encoder's cache key and the cache.
pub type Cache<'a> = Option<(&'a str, &'a dyn EmbeddingCache)>;

/// What the prior fit chose, for the manifest and the temperature fit.
pub struct PriorFit {
    pub weight: f32,
    /// The held-out logits with the prior added.
    pub logits: Vec<Vec<f32>>,
    /// The categories' texts embedded and L2-normalised ([labels, hidden]): the prior of other
    /// texts is `weight ·` their normalised embeddings times these.
    pub label_emb: Tensor,
}

/// Embeds the category texts and `texts` (held-out titles and prefixes, `gold` their labels,
/// `logits` the head's logits for them) with `embedder`, the model's final encoder; picks the
/// prior's weight by held-out NLL and folds it into `tensors`. A model trained quantization-aware
/// (`qat`) gets its label weights put back on the scheme's grid, so that `quantize` still stores
/// them exactly.
#[allow(clippy::too_many_arguments)]
pub fn fit_and_fold<E: TitleEncoder>(
    embedder: &Embedder<E>,
    labels: &LabelSpace,
    head: &HeadConfig,
    texts: &[String],
    logits: &[Vec<f32>],
    gold: &[Option<usize>],
    tensors: &mut HashMap<String, Tensor>,
    qat: Option<(Scheme, &EncoderConfig)>,
    cache: Cache,
    progress: &dyn Progress,
) -> Result<PriorFit> {
    let label_texts: Vec<String> = (0..labels.len()).map(|i| label_text(labels.label(i))).collect();
    let unit = |t: &[String], cache: Cache, msg: &str| -> Result<Tensor> {
        let (key, c) = cache.map_or(("", None), |(k, c)| (k, Some(c)));
        Ok(normalize(&embed_all(embedder, key, t, c, msg, progress)?, 1.0)?)
    };
    let label_emb = unit(&label_texts, None, "embed labels")?;
    let sims: Vec<Vec<f32>> = unit(texts, cache, "embed held-out")?.matmul(&label_emb.t()?)?.to_vec2()?;
    let weight = fit_prior_weight(logits, &sims, gold);
    if weight > 0.0 {
        fold_label_prior(tensors, head, &label_emb, weight)?;
        if let Some((scheme, enc)) = qat {
            let targets: Vec<_> = targets_for(enc, head, labels.len(), scheme).into_iter().filter(|(n, _, _)| n == LABEL_WEIGHT).collect();
            snap_tensors(tensors, &targets)?;
        }
    }
    Ok(PriorFit { weight, logits: with_prior(logits, &sims, weight), label_emb })
}

/// The manifest's record of a fit.
pub fn record(weight: f32, n: usize) -> Value {
    json!({ "weight": weight, "text": "category path, segments joined by spaces", "fitted_on": "held-out titles and prefixes (NLL)", "n": n })
}

/// `shelfwise calibrate`: the label-name prior (when the model has none yet, and `label_prior`)
/// and the temperature, fitted on held-out `rows` (from `source`), as a new model file. For an
/// f32 model: a quantized one is refused (`MODEL_MANIFEST`).
pub fn calibrate(
    file: ModelFile,
    rows: &[Example],
    source: &DataSource,
    label_prior: bool,
    progress: &dyn Progress,
) -> std::result::Result<ModelFile, TrainError> {
    if file.manifest.adaptation.is_some() {
        return Err(TrainError::Adapted);
    }
    if file.manifest.quantization.is_some() {
        return Err(TrainError::Quantized);
    }
    let mut tensors = load_tensors(&file.tensors)?;
    let clf = Classifier::from_model_file(&file)?;
    let mut manifest = file.manifest.clone();
    let labels = clf.labels();
    // The held-out texts as training made them: whole titles and the model's prefix fractions.
    let training = &manifest.training;
    let h = HeldOutTexts::as_trained(training, rows, labels)?;
    let mut logits = h.score("score", progress, |t| clf.logits(t))?;
    let (texts, gold, whole) = (&h.texts, &h.gold, &h.whole);
    let before = training.get("label_prior").filter(|v| !v.is_null()).cloned();
    if let (true, None, Some(_)) = (label_prior, &before, &manifest.lexical) {
        // The stack's weights were fitted to the head as it is: a prior added to it now would
        // move the head under them. Train with the prior instead (the default).
        progress.note("a model with a lexical part: refitting the temperature only (its stack was fitted without a label prior)");
    } else if let (true, None) = (label_prior, &before) {
        let qat = match training.get("qat").and_then(|q| q.get("scheme")).and_then(Value::as_str) {
            Some(name) => Some((Scheme::from_manifest_name(name)?, &manifest.encoder)),
            None => None,
        };
        let fit = fit_and_fold(clf.embedder(), labels, &manifest.head, texts, &logits, gold, &mut tensors, qat, None, progress)?;
        progress.note(&format!("label prior: weight {} (fitted on {} held-out texts)", fit.weight, texts.len()));
        manifest.training["label_prior"] = record(fit.weight, texts.len());
        logits = fit.logits;
    } else if let Some(b) = before {
        progress.note(&format!("label prior already fitted (weight {}): refitting the temperature only", b["weight"]));
    }
    let (l, g): (Vec<Vec<f32>>, Vec<Option<usize>>) = (0..texts.len()).filter(|&i| whole[i]).map(|i| (logits[i].clone(), gold[i])).unzip();
    manifest.head.temperature = fit_temperature_top1(&l, &g);
    manifest.training["calibration"] = json!({
        "temperature": manifest.head.temperature, "on": "held-out whole titles", "n": l.len(),
        "file": source.file, "sha256": source.sha256,
        "by": "shelfwise calibrate",
    });
    progress.note(&format!("temperature {:.4} (fitted on {} held-out titles)", manifest.head.temperature, l.len()));
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}
