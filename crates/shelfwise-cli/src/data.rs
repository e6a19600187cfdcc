//! Labelled CSVs: a title column and a category-path column, by name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A labelled title, as the model crate's trainer takes it.
pub use shelfwise_model::train::Example as Row;

/// A CSV as read for any command: a header row and data rows, each row on its own. Rows are read
/// as bytes, so one row that is not UTF-8 or has the wrong number of cells is that row's problem
/// (an `error` in `classify --batch`, a message naming its line in `train`/`eval`), not the file's.
/// BOM, CRLF and quoted newlines are the csv crate's.
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<CsvRow>,
}

pub struct CsvRow {
    /// Line where the record starts (a quoted newline makes a record span several).
    pub line: u64,
    /// Cells as text (invalid UTF-8 replaced by U+FFFD: what is echoed in `--batch` output).
    pub cells: Vec<String>,
    invalid: Vec<bool>,
}

/// Row-level errors of `classify --batch` (its `error` column).
pub const MISSING_CELL: &str = "MISSING_CELL";
pub const EXTRA_CELLS: &str = "EXTRA_CELLS";
pub const INVALID_UTF8: &str = "INVALID_UTF8";

impl CsvRow {
    /// Cell `i`: `MISSING_CELL` when the row is shorter, `INVALID_UTF8` when its bytes are not text.
    pub fn cell(&self, i: usize) -> std::result::Result<&str, &'static str> {
        match (self.cells.get(i), self.invalid.get(i)) {
            (Some(_), Some(true)) => Err(INVALID_UTF8),
            (Some(c), _) => Ok(c),
            (None, _) => Err(MISSING_CELL),
        }
    }

    /// Cell `i` of a row that must be whole (training and evaluation data), else why not.
    pub fn strict_cell(&self, t: &Table, i: usize) -> Result<&str> {
        let (n, h) = (self.cells.len(), t.headers.len());
        if n != h {
            bail!("{}: line {}: {n} cells, the header has {h} (an unquoted comma, or a missing cell?)", t.path.display(), self.line);
        }
        match self.cell(i) {
            Ok(c) => Ok(c),
            Err(_) => bail!("{}: line {}: column {:?} is not valid UTF-8 (save the file as UTF-8)", t.path.display(), self.line, t.headers[i]),
        }
    }
}

impl Table {
    pub fn read(path: &Path) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
        let raw = rdr.byte_headers().with_context(|| format!("{}: cannot read the header row", path.display()))?.clone();
        let mut headers = Vec::with_capacity(raw.len());
        for h in raw.iter() {
            let h = std::str::from_utf8(h).with_context(|| format!("{}: the header row is not valid UTF-8", path.display()))?;
            headers.push(h.trim_start_matches('\u{feff}').to_string());
        }
        let mut rows = Vec::new();
        for rec in rdr.byte_records() {
            let rec = rec.with_context(|| format!("{}: cannot read row {}", path.display(), rows.len() + 2))?;
            let line = rec.position().map_or(rows.len() as u64 + 2, |p| p.line());
            let invalid: Vec<bool> = rec.iter().map(|c| std::str::from_utf8(c).is_err()).collect();
            let cells = rec.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            rows.push(CsvRow { line, cells, invalid });
        }
        Ok(Self { path: path.to_path_buf(), headers, rows })
    }

    /// The column named `name`: exactly, else ignoring case and surrounding spaces ("Title ").
    pub fn column(&self, name: &str, flag: &str) -> Result<usize> {
        let loose = |h: &String| h.trim().eq_ignore_ascii_case(name.trim());
        self.headers
            .iter()
            .position(|h| h == name)
            .or_else(|| self.headers.iter().position(loose))
            .with_context(|| format!("{}: no column {name:?} (columns: {}); pass {flag} to name another", self.path.display(), self.headers.join(", ")))
    }

    /// The text of one column, rows whose cell is missing or not text left out.
    pub fn texts(&self, col: usize) -> impl Iterator<Item = &str> {
        self.rows.iter().filter_map(move |r| r.cell(col).ok())
    }
}

/// Reads `title` / `category_path` (or the given names) from a CSV with a header. A row that is
/// not whole (cells missing or extra, not UTF-8) stops the read with its line: a training or
/// evaluation set with silently dropped rows measures something else.
pub fn read_labelled(path: &Path, text_col: &str, label_col: &str) -> Result<Vec<Row>> {
    let t = Table::read(path)?;
    let (ti, li) = (t.column(text_col, "--text-col")?, t.column(label_col, "--label-col")?);
    let mut rows = Vec::new();
    let mut blank = 0usize;
    for r in &t.rows {
        let title = r.strict_cell(&t, ti)?.trim().to_string();
        let raw = r.strict_cell(&t, li)?;
        if title.is_empty() {
            // Nothing to learn from or to score: skipped, and said so below.
            blank += 1;
            continue;
        }
        let p = shelfwise_core::parse_path(raw).with_context(|| format!("{}: line {}: bad {label_col} {raw:?}", path.display(), r.line))?;
        rows.push(Row { title, path: p });
    }
    if rows.is_empty() {
        bail!("{}: no labelled rows (the file is empty or every title is blank)", path.display());
    }
    if blank > 0 {
        eprintln!("note: {}: skipped {blank} rows with a blank title", path.display());
    }
    Ok(rows)
}

/// Reads a CSV and finds its text column (for `classify --batch`, calibration and bench titles).
pub fn read_titles(path: &Path, text_col: &str) -> Result<(Table, usize)> {
    let t = Table::read(path)?;
    let ti = t.column(text_col, "--text-col")?;
    Ok((t, ti))
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
        // Lossy: a keep-vocab text that is not all UTF-8 still gives its other lines.
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        out.extend(String::from_utf8_lossy(&bytes).lines().map(String::from));
    }
    Ok(out)
}

/// The files' names (no folders), comma-separated: where a manifest says data came from.
pub fn file_names(files: &[PathBuf]) -> String {
    files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
}
