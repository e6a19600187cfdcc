//! Making a model: `run` takes labelled examples, a base encoder and options, and returns the
//! model file (and a head-only part file). It augments titles with their typed prefixes, sets up
//! quantization-aware training (vocabulary pruning, weights on the scheme's grid), trains the head
//! and any fine-tuned blocks ([`head`]), selects the epoch, fits the label-name prior ([`prior`])
//! and the temperature on held-out data. Reading and writing files is the caller's.

pub mod embed;
pub mod examples;
pub mod head;
pub mod lexical;
pub mod prior;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use candle_core::Tensor;
use serde_json::json;
use shelfwise_core::calibration::fit_temperature_top1;
use shelfwise_core::ngram::{hashed_ngrams, NgramConfig};
use shelfwise_core::LabelSpace;

pub use self::embed::EmbeddingCache;
pub use self::examples::{split_heldout, with_prefixes, DataSource, Example, TrainError};
pub use self::head::{train_head, EpochReport, Inputs, Samples, TrainConfig, TrainedHead};
pub use self::lexical::LexicalOptions;
use crate::classifier::Embedder;
use crate::encoder::CandleEncoder;
use crate::error::Result;
use crate::format::{BaseModel, EncoderConfig, EncoderWeights, HeadConfig, Manifest, ModelFile, PrunedVocab};
use crate::part::{merge_part, part_tensors};
use crate::progress::Progress;
use crate::quant::{prune_vocab, snap_tensors};
use crate::storage::{encoder_tensors, load_tensors, targets_for, tensors_to_bytes, Scheme};
use crate::tokenize::TitleTokenizer;

/// The base encoder training starts from: its weights, tokenizer and config, as read from its
/// folder (`model.safetensors`, `tokenizer.json`, `config.json`).
pub struct Base {
    pub embedder: Embedder<CandleEncoder>,
    pub cfg: EncoderConfig,
    pub info: BaseModel,
    pub tokenizer_json: Vec<u8>,
    pub tensors: HashMap<String, Tensor>,
}

/// What a manifest records of a base model besides its hash.
#[derive(Debug, Clone)]
pub struct BaseProvenance {
    pub name: String,
    pub source: String,
    pub license: String,
}

impl Base {
    /// The base from its files' bytes: the encoder's shape from `config_json` (a Hugging Face
    /// BERT config), titles cut at `max_tokens` word pieces.
    pub fn from_bytes(weights: &[u8], tokenizer_json: &[u8], config_json: &[u8], max_tokens: usize, provenance: BaseProvenance) -> Result<Self> {
        let cfg = EncoderConfig::from_hf_config(config_json, max_tokens)?;
        let tensors = encoder_tensors(&cfg, &load_tensors(weights)?)?;
        let tokenizer = TitleTokenizer::from_bytes(tokenizer_json, cfg.max_tokens)?;
        let tokenizer_json = tokenizer.to_json()?;
        let encoder = CandleEncoder::from_tensors(&cfg, &tensors)?;
        let BaseProvenance { name, source, license } = provenance;
        let info = BaseModel { name, source, license, sha256: crate::format::sha256_hex(&[weights]) };
        Ok(Base { embedder: Embedder { tokenizer, encoder }, cfg, info, tokenizer_json, tensors })
    }
}

/// Texts whose word pieces a pruned vocabulary keeps (`--keep-vocab`).
#[derive(Debug, Clone)]
pub struct KeepVocab {
    /// Lines of text (titles, category paths).
    pub lines: Vec<String>,
    /// Keep a piece only if it occurs at least this often.
    pub min_count: usize,
    /// Where the lines came from, for the manifest.
    pub source: String,
}

/// Everything [`run`] needs besides the data and the base.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model name recorded in the manifest.
    pub name: String,
    pub train: TrainConfig,
    /// Hash buckets and width of the n-gram table, and the scale of the normalised embedding.
    pub buckets: u32,
    pub ngram_dim: usize,
    pub embed_scale: f32,
    /// Prefixes (fractions of a title's words) trained on besides whole titles, their loss
    /// weight, and a word put before each (tagged augmentation; `None`: untagged).
    pub prefix_fractions: Vec<f64>,
    pub prefix_weight: f32,
    pub prefix_marker: Option<String>,
    /// With `train.qat`: prune the vocabulary to these texts' pieces before training.
    pub keep_vocab: Option<KeepVocab>,
    /// Fit the label-name prior on the held-out data.
    pub label_prior: bool,
    /// Also make the head-only part file (not with QAT).
    pub part: bool,
    /// The lexical part (TF-IDF + linear SVM) and its stack with the head, fitted on held-out
    /// data; `None`: the head alone, as before.
    pub lexical: Option<LexicalOptions>,
}

/// Labelled data: what to train on, and held-out data for epoch selection and calibration
/// (`None`: 10 % of `train`, see [`split_heldout`]).
pub struct TrainData {
    pub train: Vec<Example>,
    pub train_source: DataSource,
    pub dev: Option<(Vec<Example>, DataSource)>,
}

/// What [`run`] made.
pub struct Trained {
    pub model: ModelFile,
    /// The head-only part file, when asked for.
    pub part: Option<ModelFile>,
    /// Seconds spent embedding and training.
    pub embed_secs: f64,
    pub train_secs: f64,
}

/// The starting point of quantization-aware training: the base encoder on the scheme's grid.
struct Qat {
    scheme: Scheme,
    tensors: HashMap<String, Tensor>,
    tokenizer_json: Vec<u8>,
    pruned: Option<PrunedVocab>,
    embedder: Embedder<CandleEncoder>,
}

/// One score vector per text.
type Scores = Vec<Vec<f32>>;

/// Folds of the out-of-fold stacking data.
const OOF_FOLDS: u64 = 5;
/// Below this many held-out titles (shops under ~20k rows) the stack is fitted out of fold.
const OOF_BELOW_HELDOUT_TITLES: usize = 2000;

/// Every training text (train and held-out rows' titles and prefixes) with its frozen embedding.
struct OofData {
    texts: Vec<String>,
    gold: Vec<Option<usize>>,
    whole: Vec<bool>,
    pooled: Tensor,
    ngrams: Vec<Vec<u32>>,
    weights: Vec<f32>,
}

/// A title's fold: by a hash of the lower-cased title (independent of the held-out split's
/// `% 10`), so duplicates and a title's prefixes share one.
fn oof_fold(title: &str) -> u64 {
    shelfwise_core::ngram::fnv1a(title.to_lowercase().as_bytes()) / 10 % OOF_FOLDS
}

/// Out-of-fold stack inputs for every text of `all`: the head's logits (plus the label-name
/// prior at its fitted weight) and the lexical part's scores, each from a head and an SVM trained
/// on the other folds' rows. A prefix goes with its title's fold. Each head trains for at most
/// `tcfg.epochs` (the main run's kept count) and keeps the epoch its fold scores best: an epoch
/// choice is all a fold's own titles decide, a mild optimism.
#[allow(clippy::too_many_arguments)]
fn out_of_fold(
    all: &OofData,
    rows: &[Example],
    labels: &LabelSpace,
    head_cfg: &HeadConfig,
    tcfg: &TrainConfig,
    encoder: (&EncoderConfig, &HashMap<String, Tensor>),
    prior: Option<&(f32, Tensor)>,
    lopts: &LexicalOptions,
    progress: &dyn Progress,
) -> Result<[Scores; 2]> {
    let mut fold = Vec::with_capacity(all.texts.len());
    let mut current = 0;
    for (t, &w) in all.texts.iter().zip(&all.whole) {
        if w {
            current = oof_fold(t);
        }
        fold.push(current);
    }
    let (mut head, mut svm) = (vec![Vec::new(); all.texts.len()], vec![Vec::new(); all.texts.len()]);
    let silent = crate::progress::Silent;
    for k in 0..OOF_FOLDS {
        let (fit_idx, score_idx): (Vec<usize>, Vec<usize>) = (0..all.texts.len()).partition(|&i| fold[i] != k);
        let fit_idx: Vec<usize> = fit_idx.into_iter().filter(|&i| all.gold[i].is_some()).collect();
        if fit_idx.is_empty() || score_idx.is_empty() {
            continue;
        }
        let subset = |idx: &[usize]| -> Result<Samples> {
            let ids = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect::<Vec<u32>>(), idx.len(), all.pooled.device())?;
            Ok(Samples {
                inputs: Inputs::Pooled(all.pooled.index_select(&ids, 0)?),
                ngrams: idx.iter().map(|&i| all.ngrams[i].clone()).collect(),
                labels: idx.iter().map(|&i| all.gold[i]).collect(),
                weights: idx.iter().map(|&i| all.weights[i]).collect(),
            })
        };
        let (fit_s, score_s) = (subset(&fit_idx)?, subset(&score_idx)?);
        progress.start(&format!("out-of-fold {}/{OOF_FOLDS}", k + 1), 1000);
        let t = train_head(head_cfg, tcfg, encoder, labels.len(), &fit_s, Some(&score_s), |_| {}, |p| progress.set_position(p as u64))?;
        progress.finish(true);
        let mut logits = t.heldout_logits.unwrap_or_default();
        if let (Some((weight, label_emb)), Inputs::Pooled(x)) = (prior, &score_s.inputs) {
            let sims: Vec<Vec<f32>> = crate::head::normalize(x, 1.0)?.matmul(&label_emb.t()?)?.to_vec2()?;
            logits = shelfwise_core::calibration::with_prior(&logits, &sims, *weight);
        }
        let fold_rows: Vec<Example> = rows.iter().filter(|r| oof_fold(&r.title) != k).cloned().collect();
        let lex = self::lexical::fit(&fold_rows, labels, lopts, &silent)?;
        for (j, &i) in score_idx.iter().enumerate() {
            head[i] = logits.get(j).cloned().unwrap_or_default();
            svm[i] = lex.lexical.scores(&all.texts[i]);
        }
    }
    // A text no fold could score (a fold with no labelled row elsewhere): zeros, a tie.
    for v in head.iter_mut().chain(svm.iter_mut()) {
        if v.is_empty() {
            *v = vec![0.0; labels.len()];
        }
    }
    Ok([head, svm])
}

/// Trains a model on `data` from `base`; see the module docs.
pub fn run(
    data: TrainData,
    base: &Base,
    opts: &TrainOptions,
    cache: Option<&dyn EmbeddingCache>,
    progress: &dyn Progress,
) -> std::result::Result<Trained, TrainError> {
    let started = Instant::now();
    if opts.train.qat.is_some() && opts.part {
        return Err(TrainError::PartWithQat);
    }
    let TrainData { train: all, train_source, dev } = data;
    let (train_rows, heldout_rows, dev_source) = match dev {
        Some((rows, source)) => (all, rows, Some(source)),
        None => {
            let (t, h) = split_heldout(all);
            (t, h, None)
        }
    };
    if train_rows.is_empty() {
        return Err(TrainError::NoTrainingRows);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &train_rows {
        *counts.entry(r.label()).or_default() += 1;
    }
    let labels = LabelSpace::from_raw_paths(counts.keys().map(String::as_str)).map_err(|e| TrainError::Labels(e.to_string()))?;
    let singletons = counts.values().filter(|&&c| c == 1).count();
    if labels.len() < 2 {
        return Err(TrainError::OneCategory(labels.label_string(0)));
    }
    // The same title under different categories: every row is kept (each is a training example,
    // so the model learns that the title is ambiguous and scores both), and said so.
    let mut by_title: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in &train_rows {
        by_title.entry(r.title.to_lowercase()).or_default().insert(r.label());
    }
    let conflicting = by_title.values().filter(|l| l.len() > 1).count();
    if conflicting > 0 {
        progress.note(&format!("note: {conflicting} titles appear under more than one category: every row is kept, each a training example"));
    }
    if singletons > 0 {
        progress
            .note(&format!("note: {singletons} of {} categories have a single example: they are learned, but their scores rest on one title", labels.len()));
    }
    progress.note(&format!(
        "train: {} rows, {} categories (depth ≤ {}); held out: {} rows",
        train_rows.len(),
        labels.len(),
        labels.max_depth(),
        heldout_rows.len()
    ));

    let enc_cfg = &base.cfg;
    let mut head_cfg =
        HeadConfig { ngram: NgramConfig::default(), buckets: opts.buckets, ngram_dim: opts.ngram_dim, embed_scale: opts.embed_scale, temperature: 1.0 };
    // QAT starts from the base encoder as the scheme stores it (vocabulary pruned first), so the
    // frozen layers' outputs the training caches are the quantized model's.
    let qat = match opts.train.qat {
        None => None,
        Some(scheme) => {
            let mut tensors = base.tensors.clone();
            let (tokenizer_json, pruned) = match &opts.keep_vocab {
                None => (base.tokenizer_json.clone(), None),
                Some(k) => {
                    let keep: BTreeSet<u32> = base.embedder.tokenizer.ids_at_least(k.lines.iter().map(String::as_str), k.min_count)?;
                    let (json, p) = prune_vocab(enc_cfg, &mut tensors, &base.embedder.tokenizer, &keep, &k.source)?;
                    progress.note(&format!("vocabulary: kept {} of {} word pieces", p.kept, p.of));
                    (json, Some(p))
                }
            };
            snap_tensors(&mut tensors, &targets_for(enc_cfg, &head_cfg, labels.len(), scheme))?;
            let embedder = Embedder {
                tokenizer: TitleTokenizer::from_bytes(&tokenizer_json, enc_cfg.max_tokens)?,
                encoder: CandleEncoder::from_tensors(enc_cfg, &tensors)?,
            };
            Some(Qat { scheme, tensors, tokenizer_json, pruned, embedder })
        }
    };
    let (embedder, start_tensors) = match &qat {
        Some(q) => (&q.embedder, &q.tensors),
        None => (&base.embedder, &base.tensors),
    };
    let marker = opts.prefix_marker.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let (train_texts, train_y, train_whole) = with_prefixes(&train_rows, &opts.prefix_fractions, marker, &labels);
    let (held_texts, held_y, held_whole) = with_prefixes(&heldout_rows, &opts.prefix_fractions, marker, &labels);
    let key = match &qat {
        None => format!("{}:{}", base.info.sha256, enc_cfg.max_tokens),
        Some(q) => format!("{}:{}:qat-{:?}:{}", base.info.sha256, enc_cfg.max_tokens, q.scheme, crate::format::sha256_hex(&[&q.tokenizer_json])),
    };
    let finetune = opts.train.finetune_layers;
    let frozen_upto = enc_cfg.layers - finetune.min(enc_cfg.layers);
    let t_embed = Instant::now();
    let samples = |texts: &[String], y: Vec<Option<usize>>, whole: &[bool], msg: &str| -> Result<Samples> {
        let inputs = if finetune == 0 {
            Inputs::Pooled(embed::embed_all(embedder, &key, texts, cache, msg, progress)?)
        } else {
            Inputs::Hidden(embed::hidden_all(embedder, texts, frozen_upto, msg, progress)?)
        };
        Ok(Samples {
            weights: whole.iter().map(|&w| if w { 1.0 } else { opts.prefix_weight }).collect(),
            inputs,
            ngrams: texts.iter().map(|t| hashed_ngrams(t, &head_cfg.ngram, head_cfg.buckets)).collect(),
            labels: y,
        })
    };
    let train = samples(&train_texts, train_y, &train_whole, "embed train")?;
    let held = if held_texts.is_empty() { None } else { Some(samples(&held_texts, held_y, &held_whole, "embed dev")?) };
    let embed_secs = t_embed.elapsed().as_secs_f64();

    let tcfg = &opts.train;
    let t_train = Instant::now();
    progress.start("train head", 1000);
    let mut trained = train_head(
        &head_cfg,
        tcfg,
        (enc_cfg, start_tensors),
        labels.len(),
        &train,
        held.as_ref(),
        |r| {
            progress.note(&format!(
                "epoch {:>2}: loss {:.4}{}",
                r.epoch,
                r.train_loss,
                r.heldout_acc.map(|x| format!(", held-out acc@1 {x:.4}")).unwrap_or_default()
            ))
        },
        |p| progress.set_position(p as u64),
    )?;
    progress.finish(true);
    let train_secs = t_train.elapsed().as_secs_f64();

    // The label-name prior, read through the final encoder (the base one when it was frozen: its
    // held-out embeddings are then in the cache already).
    let mut prior = json!(null);
    let mut held_logits = trained.heldout_logits.take();
    let mut prior_fit: Option<(f32, Tensor)> = None;
    if let (Some(h), Some(logits), true) = (&held, &held_logits, opts.label_prior) {
        let tokenizer_json = qat.as_ref().map_or(&base.tokenizer_json, |q| &q.tokenizer_json);
        let tuned;
        let (final_embedder, prior_cache) = if finetune == 0 {
            (embedder, cache.map(|c| (key.as_str(), c)))
        } else {
            let mut t = start_tensors.clone();
            t.extend(trained.tensors.iter().map(|(k, v)| (k.clone(), v.clone())));
            tuned = Embedder { tokenizer: TitleTokenizer::from_bytes(tokenizer_json, enc_cfg.max_tokens)?, encoder: CandleEncoder::from_tensors(enc_cfg, &t)? };
            (&tuned, None)
        };
        let qat_grid = qat.as_ref().map(|q| (q.scheme, enc_cfg));
        let fit =
            prior::fit_and_fold(final_embedder, &labels, &head_cfg, &held_texts, logits, &h.labels, &mut trained.tensors, qat_grid, prior_cache, progress)?;
        progress.note(&format!("label prior: weight {} (fitted on {} held-out texts)", fit.weight, held_texts.len()));
        prior = prior::record(fit.weight, held_texts.len());
        held_logits = Some(fit.logits);
        prior_fit = Some((fit.weight, fit.label_emb));
    }

    // The lexical part, and its stack with the head fitted on the held-out texts (titles and
    // prefixes): the head's logits become the stacked ones, which the temperature calibrates.
    // Where the encoder is frozen, a head trains in seconds to minutes: for a shop whose held-out
    // split is small (under OOF_BELOW_HELDOUT_TITLES titles) the stack is then fitted on
    // out-of-fold scores of every row (each row scored by a head and an SVM trained on the other
    // folds), ten times the held-out texts, which a small shop's stack and temperature need. A
    // larger held-out split is data enough, and five more heads would cost a large shop the most.
    // Fine-tuned or QAT training keeps the held-out split (a head each fold would cost the whole
    // training again).
    let mut lexical = None;
    let mut lexical_record = json!(null);
    let mut calib_on: Option<(Scores, Vec<Option<usize>>)> = None;
    if let (Some(lopts), Some(h), Some(logits)) = (&opts.lexical, &held, &held_logits) {
        let fit = self::lexical::fit(&train_rows, &labels, lopts, progress)?;
        let texts = self::lexical::HeldTexts { texts: &held_texts, gold: &h.labels, whole: &held_whole, marker };
        let few = held_whole.iter().filter(|&&w| w).count() < OOF_BELOW_HELDOUT_TITLES;
        let oof = match (finetune, &qat, &train.inputs, &h.inputs) {
            (0, None, Inputs::Pooled(a), Inputs::Pooled(b)) if few => {
                let rows: Vec<Example> = train_rows.iter().chain(&heldout_rows).cloned().collect();
                let all = OofData {
                    texts: train_texts.iter().chain(&held_texts).cloned().collect(),
                    gold: train.labels.iter().chain(&h.labels).copied().collect(),
                    whole: train_whole.iter().chain(&held_whole).copied().collect(),
                    pooled: Tensor::cat(&[a, b], 0)?,
                    ngrams: train.ngrams.iter().chain(&h.ngrams).cloned().collect(),
                    weights: train.weights.iter().chain(&h.weights).copied().collect(),
                };
                let epochs = trained.best_epoch.max(1);
                Some((
                    out_of_fold(
                        &all,
                        &rows,
                        &labels,
                        &head_cfg,
                        &TrainConfig { epochs, ..tcfg.clone() },
                        (enc_cfg, start_tensors),
                        prior_fit.as_ref(),
                        lopts,
                        progress,
                    )?,
                    all,
                ))
            }
            _ => None,
        };
        let s = match &oof {
            Some(([head_oof, svm_oof], all)) => {
                let on = self::lexical::HeldTexts { texts: &all.texts, gold: &all.gold, whole: &all.whole, marker };
                let s = self::lexical::stack_scores(&on, head_oof, svm_oof, lopts.dump_stack.as_deref(), progress);
                // The temperature on every row's whole title, out of fold.
                calib_on = Some((0..all.texts.len()).filter(|&i| all.whole[i]).map(|i| (s.logits[i].clone(), all.gold[i])).unzip());
                // The held-out texts as the model scores them: its head, its SVM, this stack.
                let logits = held_texts
                    .iter()
                    .zip(logits)
                    .map(|(t, l)| shelfwise_core::lexical::stacked(l, &fit.lexical.scores(t), t, &s.buckets, s.gate.as_ref()))
                    .collect();
                self::lexical::StackFit { logits, ..s }
            }
            None => self::lexical::stack(&texts, logits, &fit.lexical, lopts.dump_stack.as_deref(), progress),
        };
        let (on, n_stack) = match &oof {
            Some((_, all)) => (format!("out-of-fold scores of every row's title and prefixes ({OOF_FOLDS} folds by title; each fold scored by a head and an SVM trained on the others), the temperature on the whole titles"), all.texts.len()),
            None => (self::lexical::HELD_OUT_TEXTS.to_string(), held_texts.len()),
        };
        lexical_record = self::lexical::record(&fit, lopts, &on, n_stack, &s.choice);
        let cfg = self::lexical::config(&fit.lexical, s.buckets, s.gate);
        held_logits = Some(s.logits);
        lexical = Some((cfg, crate::lexical::to_tensors(&fit.lexical)?, fit));
    } else if opts.lexical.is_some() {
        progress.note("no held-out texts: no lexical part (its stack is fitted on held-out data)");
    }

    // Calibrate on whole held-out titles: the confidence ECE is measured on.
    let mut calib = json!(null);
    if let (Some(h), Some(logits)) = (&held, &held_logits) {
        let (on, (l, g)) = match calib_on.take() {
            Some(lg) => ("whole titles, out of fold", lg),
            None => ("held-out whole titles", (0..h.len()).filter(|&i| held_whole[i]).map(|i| (logits[i].clone(), h.labels[i])).unzip()),
        };
        head_cfg.temperature = fit_temperature_top1(&l, &g);
        calib = json!({ "temperature": head_cfg.temperature, "on": on, "n": l.len() });
        progress.note(&format!("temperature {:.4} (fitted on {} {on})", head_cfg.temperature, l.len()));
    }

    // The held-out comparison with the baseline, so a merchant sees at once whether the model
    // beats TF-IDF on their data.
    let mut comparison = json!(null);
    if let (Some(h), Some(logits), Some((_, _, fit))) = (&held, &held_logits, &lexical) {
        let lopts = opts.lexical.clone().unwrap_or_default();
        let held = self::lexical::HeldTexts { texts: &held_texts, gold: &h.labels, whole: &held_whole, marker };
        comparison = self::lexical::compare(&held, logits, head_cfg.temperature, fit, &train_rows, &labels, &lopts, progress)?;
    }
    // The held-out rows came from the training CSV: the SVM is fitted again on all its rows (the
    // baseline's own data), under the stack's weights as fitted. The comparison above was made
    // before, so it does not see this; the SVM of the file has seen those held-out titles.
    if let (Some(lopts), Some((cfg, tensors, _)), None) = (&opts.lexical, &mut lexical, &dev_source) {
        if lopts.refit_all && !heldout_rows.is_empty() {
            let all: Vec<Example> = train_rows.iter().chain(&heldout_rows).cloned().collect();
            let fit = self::lexical::fit(&all, &labels, lopts, progress)?;
            progress.note(&format!("lexical part refitted on all {} rows (held-out figures above are from before)", all.len()));
            (cfg.features, cfg.weights) = (fit.lexical.n_features(), fit.lexical.n_weights());
            *tensors = crate::lexical::to_tensors(&fit.lexical)?;
            lexical_record["refit"] = json!({ "rows": all.len(), "texts": fit.texts, "kept": fit.pruned.kept, "nonzero": fit.pruned.nonzero, "note": "SVM refitted on train + held-out rows after the stack was fitted and the comparison made" });
        }
    }

    let training = json!({
        "train_csv": { "file": train_source.file, "sha256": train_source.sha256, "rows": train_rows.len() },
        "heldout": match &dev_source {
            Some(d) => json!({ "file": d.file, "sha256": d.sha256, "rows": heldout_rows.len() }),
            None => json!({ "split": "10% of train by fnv1a(lowercase title) % 10 == 0", "rows": heldout_rows.len() }),
        },
        "samples": train.len(),
        "prefix_fractions": opts.prefix_fractions,
        "prefix_weight": opts.prefix_weight,
        "prefix_marker": marker,
        "singleton_categories": singletons,
        "config": tcfg,
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "calibration": calib,
        "label_prior": prior,
        "lexical": lexical_record,
        "heldout_comparison": comparison,
        "seconds": { "embed": embed_secs, "train_head": train_secs, "total": started.elapsed().as_secs_f64() },
        "encoder": if finetune == 0 { "frozen".to_string() } else { format!("top {finetune} blocks fine-tuned") },
        "machine": format!("{} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        "qat": qat.as_ref().map(|q| json!({ "scheme": q.scheme.manifest_name(), "pruned_vocab": q.pruned })),
    });
    let manifest = Manifest {
        name: opts.name.clone(),
        created_by: format!("shelfwise {}", env!("CARGO_PKG_VERSION")),
        base_model: base.info.clone(),
        encoder: enc_cfg.clone(),
        encoder_weights: EncoderWeights::Embedded,
        head: head_cfg,
        labels: labels.label_strings(),
        training,
        metrics: json!({}),
        payload_sha256: String::new(),
        quantization: None,
        lexical: lexical.as_ref().map(|(cfg, _, _)| cfg.clone()),
        adaptation: None,
    };
    if let Some((_, t, _)) = lexical {
        trained.tensors.extend(t);
    }
    let (tensors, tokenizer, part) = match qat {
        // Every weight already on the scheme's grid: the file holds them as they are.
        Some(q) => {
            let mut tensors = q.tensors;
            tensors.extend(trained.tensors);
            (tensors, q.tokenizer_json, None)
        }
        // Both files below hold exactly the stored values (f16 n-gram table, int8 encoder
        // deltas): the full model is the part as `assemble` completes it.
        None => {
            let part_tensors = part_tensors(trained.tensors, &base.tensors)?;
            let tensors = merge_part(base.tensors.clone(), part_tensors.clone())?;
            let part = match opts.part {
                false => None,
                true => Some(ModelFile {
                    manifest: Manifest { encoder_weights: EncoderWeights::Base { sha256: base.info.sha256.clone() }, ..manifest.clone() },
                    tensors: tensors_to_bytes(&part_tensors)?,
                    tokenizer: base.tokenizer_json.clone(),
                }),
            };
            (tensors, base.tokenizer_json.clone(), part)
        }
    };
    let model = ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer };
    Ok(Trained { model, part, embed_secs, train_secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_and_its_case_variants_share_a_fold_and_every_fold_is_used() {
        assert_eq!(oof_fold("Red Cotton Shirt"), oof_fold("red cotton shirt"));
        // Folds are used: 200 titles fall in all five.
        let used: BTreeSet<u64> = (0..200).map(|i| oof_fold(&format!("title {i}"))).collect();
        assert_eq!(used.len() as u64, OOF_FOLDS);
    }
}
