//! `shelfwise adapt`: reads the taxonomy and example files, hands them to
//! `shelfwise_model::adapt`, writes the adapted model and says what it did.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use shelfwise_model::ModelFile;

use crate::data::read_labelled;
use crate::progress::Bars;

#[derive(Args)]
pub struct AdaptArgs {
    #[arg(long, default_value_os_t = crate::default_model())]
    pub model: PathBuf,
    /// The shop's taxonomy: one path a line ('A > B > C'), Google's taxonomy-with-ids or
    /// Shopify's categories.txt. Its leaves become the labels. Without it: the labels the model
    /// (or the adapted file) already has.
    #[arg(long)]
    pub taxonomy: Option<PathBuf>,
    /// Labelled titles (title, category_path), oldest first: the example memory. A path the
    /// taxonomy lacks is added as a category.
    #[arg(long)]
    pub examples: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// The memory's cap; beyond it the oldest example of the category with the most is evicted.
    #[arg(long, default_value_t = shelfwise_model::adapt::DEFAULT_MAX_EXAMPLES, value_parser = crate::args::count(1, 1 << 22))]
    pub max_examples: usize,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    #[arg(long, default_value = "category_path")]
    pub label_col: String,
}

pub fn run(a: AdaptArgs) -> Result<()> {
    let start = Instant::now();
    let file = ModelFile::from_bytes(&std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?)?;
    let taxonomy = match &a.taxonomy {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {} as UTF-8 text", p.display()))?;
            Some(shelfwise_core::taxonomy_io::read_taxonomy(&text).with_context(|| p.display().to_string())?)
        }
    };
    let examples = match &a.examples {
        None => Vec::new(),
        Some(p) => read_labelled(p, &a.text_col, &a.label_col)?,
    };
    let (out, report) = shelfwise_model::shop::adapt(file, taxonomy.as_deref(), examples, a.max_examples, &Bars::default())?;
    let bytes = out.to_bytes()?;
    // Prove the result loads before writing it.
    shelfwise_model::Classifier::from_bytes(&bytes)?;
    crate::train::write(&a.out, &bytes)?;
    eprintln!(
        "{} labels ({} added from examples); {} examples read, {} remembered ({} empty, {} duplicates, {} contradicting: the latest kept, {} evicted)",
        report.labels, report.added_labels, report.examples_in, report.remembered, report.empty, report.duplicates, report.contradictions, report.evicted
    );
    let w: Vec<String> = report.weights.iter().map(|(n, w)| format!("{n} {w:.3}")).collect();
    eprintln!("weights ({}, {} held-out examples): {}", report.method, report.fit_samples, w.join(", "));
    eprintln!("adapt took {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
