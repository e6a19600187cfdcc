//! Shared by the adaptation diagnostics (`adapt_probe`, `adapt_folds`).

/// Title and path (the first two columns) of each data row of a labelled CSV.
pub fn csv_rows(text: &str) -> Vec<(String, String)> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.len() >= 2)
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect()
}
