//! Labelled CSVs: a title column and a category-path column, by name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A labelled title, as the model crate's trainer takes it.
pub use shelfwise_model::train::Example as Row;

/// Reads `title` / `category_path` (or the given names) from a CSV with a header.
pub fn read_labelled(path: &Path, text_col: &str, label_col: &str) -> Result<Vec<Row>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let headers = rdr.headers().with_context(|| format!("{}: cannot read the header row", path.display()))?.clone();
    let find = |name: &str, flag: &str| {
        headers.iter().position(|h| h.trim_start_matches('\u{feff}') == name).with_context(|| {
            format!(
                "{}: no column {name:?} (columns: {}); pass {flag} to name another",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (ti, li) = (find(text_col, "--text-col")?, find(label_col, "--label-col")?);
    let mut rows = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: bad CSV record {}", path.display(), n + 2))?;
        let title = rec.get(ti).unwrap_or("").trim().to_string();
        let raw = rec.get(li).unwrap_or("");
        if title.is_empty() {
            continue;
        }
        let p = shelfwise_core::parse_path(raw)
            .with_context(|| format!("{}: line {}: bad {label_col} {raw:?}", path.display(), n + 2))?;
        rows.push(Row { title, path: p });
    }
    if rows.is_empty() {
        bail!("{}: no labelled rows (the file is empty or every title is blank)", path.display());
    }
    Ok(rows)
}

/// Reads one text column of an unlabelled CSV (for `classify --batch`).
pub fn read_titles(path: &Path, text_col: &str) -> Result<(csv::StringRecord, Vec<csv::StringRecord>, usize)> {
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let ti = headers
        .iter()
        .position(|h| h == text_col)
        .with_context(|| format!("{}: no column {text_col:?}; pass --text-col", path.display()))?;
    let recs = rdr.records().collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((headers, recs, ti))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(shelfwise_model::format::sha256_hex(&[&bytes]))
}

/// Token ids that the lines of `files` tokenize to at least `min_count` times in all
/// (`--keep-vocab`: the word pieces whose embedding rows a pruned model keeps).
pub fn keep_tokens(tok: &shelfwise_model::tokenize::TitleTokenizer, files: &[PathBuf], min_count: usize) -> Result<std::collections::BTreeSet<u32>> {
    let lines = read_lines(files)?;
    Ok(tok.ids_at_least(lines.iter().map(String::as_str), min_count)?)
}

/// Every line of `files`, in order.
pub fn read_lines(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        out.extend(text.lines().map(String::from));
    }
    Ok(out)
}

/// The files' names (no folders), comma-separated: where a manifest says data came from.
pub fn file_names(files: &[PathBuf]) -> String {
    files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
}
