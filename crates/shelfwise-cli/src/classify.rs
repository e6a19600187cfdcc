//! `shelfwise classify`: suggestions for titles given on the command line, or a whole catalogue
//! CSV in parallel.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use shelfwise_core::Decision;
use shelfwise_model::catalogue::Workers;

use crate::backend::{Backend, Engine, GPU_BATCH};
use crate::data::CsvRow;
use crate::progress::bar;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[arg(long, default_value_os_t = crate::default_model())]
    pub model: PathBuf,
    /// How many categories to suggest.
    #[arg(short, long, default_value_t = 5, value_parser = crate::args::count(1, 100_000))]
    pub k: usize,
    /// Below this score the top category is not trusted and the answer backs off to a parent.
    #[arg(long, default_value_t = 0.5, value_parser = crate::args::unit)]
    pub threshold: f32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Classify every row of this CSV instead (written to --out).
    #[arg(long, requires = "out")]
    pub batch: Option<PathBuf>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    /// Where the encoder runs (auto: the GPU if there is a usable one, else the CPU).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Titles to classify.
    pub titles: Vec<String>,
}

fn path_string(d: &Decision, i: usize) -> String {
    d.suggestions[i].path.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" > ")
}

fn print_text(title: &str, d: &Decision) {
    println!("{title:?}");
    if d.suggestions.is_empty() {
        println!("  (nothing to suggest for an empty title)");
    }
    for (i, s) in d.suggestions.iter().enumerate() {
        let levels: Vec<String> = s.level_scores.iter().map(|x| format!("{x:.3}")).collect();
        println!("  {}. {:.3}  {}   [levels {}]", i + 1, s.score, path_string(d, i), levels.join(" "));
    }
    if let Some(b) = &d.back_off {
        let p: Vec<&str> = b.path.iter().map(|s| s.name.as_str()).collect();
        println!("  → not sure of the leaf; confident up to: {} ({:.3})", p.join(" > "), b.score);
    } else if d.abstained && !d.suggestions.is_empty() {
        println!("  → not confident in any category");
    }
}

pub fn run(a: ClassifyArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).map_err(|e| anyhow::anyhow!("cannot read model {}: {e}", a.model.display()))?;
    let engine = Engine::load(&bytes, a.backend)?;
    if let Some(why) = &engine.fallback {
        eprintln!("note: on the CPU ({why})");
    }
    if let Some(input) = &a.batch {
        return batch(&engine, &a, input);
    }
    if a.titles.is_empty() {
        bail!("give titles to classify, or --batch in.csv --out out.csv");
    }
    let mut all = Vec::new();
    for t in &a.titles {
        let d = engine.suggest(t, a.k, a.threshold)?;
        if a.json {
            all.push(serde_json::json!({ "title": t, "decision": d }));
        } else {
            print_text(t, &d);
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// A row's title (column `ti` of a header `width` wide), or its error code for the `error`
/// column: one pasted description, broken row or non-UTF-8 cell must not cost the rest of the
/// catalogue.
fn row_title(r: &CsvRow, ti: usize, width: usize) -> std::result::Result<&str, &'static str> {
    if r.cells.len() > width {
        return Err(crate::data::EXTRA_CELLS); // an unquoted comma: the title may be cut
    }
    r.cell(ti)
}

fn batch(engine: &Engine, a: &ClassifyArgs, input: &std::path::Path) -> Result<()> {
    let (table, ti) = crate::data::read_titles(input, &a.text_col)?;
    let width = table.headers.len();
    let rows = &table.rows;
    let parsed: Vec<_> = rows.iter().map(|r| row_title(r, ti, width)).collect();
    // A row that cannot be read goes through as a blank title (the empty decision) and keeps its
    // own error code.
    let titles: Vec<&str> = parsed.iter().map(|t| t.unwrap_or("")).collect();
    let pb = bar(rows.len() as u64, "classify");
    // On the CPU, chunks run on all cores; the GPU takes larger batches, one at a time.
    let workers = if engine.on_gpu() { Workers::Serial(GPU_BATCH) } else { Workers::Pool };
    let decided = engine.clf.classify_catalogue(&titles, a.k, a.threshold, workers, &|n| pb.inc(n as u64))?;
    pb.finish();
    let out = a.out.as_ref().expect("clap requires --out with --batch");
    let mut w = csv::Writer::from_path(out)?;
    let mut h = table.headers.clone();
    h.extend(["predicted_path", "score", "abstained", "back_off_path", "back_off_score", "top_k", "error"].map(String::from));
    w.write_record(&h)?;
    for ((row, parsed), decided) in rows.iter().zip(&parsed).zip(decided) {
        let (d, error) = match (parsed, decided) {
            (Err(code), _) => (Decision::empty(), *code),
            (Ok(_), Err(e)) => (Decision::empty(), e.code()),
            (Ok(_), Ok(d)) => (d, ""),
        };
        // The row's own cells, as many as the header has (a short row padded).
        let mut r: Vec<String> = row.cells.iter().take(width).cloned().collect();
        r.resize(width, String::new());
        r.push(if d.suggestions.is_empty() { String::new() } else { path_string(&d, 0) });
        r.push(d.suggestions.first().map(|s| format!("{:.6}", s.score)).unwrap_or_default());
        r.push(d.abstained.to_string());
        let (bp, bs) = d
            .back_off
            .as_ref()
            .map(|b| (b.path.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" > "), format!("{:.6}", b.score)))
            .unwrap_or_default();
        r.push(bp);
        r.push(bs);
        let topk: Vec<String> = (0..d.suggestions.len()).map(|i| format!("{}|{:.6}", path_string(&d, i), d.suggestions[i].score)).collect();
        r.push(topk.join(";"));
        r.push(error.to_string());
        w.write_record(&r)?;
    }
    w.flush()?;
    eprintln!("wrote {} ({} rows)", out.display(), rows.len());
    Ok(())
}
