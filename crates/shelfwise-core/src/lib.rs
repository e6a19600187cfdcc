//! shelfwise-core: the pure logic of product-category suggestion: taxonomy and label space,
//! decision rules (top-k, back-off), n-gram features, calibration, metrics and the TF-IDF
//! baseline. No tensors, no JS: everything here runs the same natively and in wasm.

pub mod baseline;
pub mod calibration;
pub mod decision;
pub mod lexical;
pub mod linalg;
pub mod metrics;
pub mod names;
pub mod ngram;
pub mod taxonomy;
pub mod taxonomy_io;

pub use decision::{decide, Decision, Suggestion};
pub use taxonomy::{parse_path, LabelSpace};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CoreError {
    #[error("bad category path {0:?}: segments are joined by ' > ' and none may be empty")]
    BadPath(String),
    #[error("label space is empty")]
    EmptyLabelSpace,
    #[error("duplicate label {0:?}")]
    DuplicateLabel(String),
    #[error("taxonomy line {line}: {why}")]
    BadTaxonomyLine { line: usize, why: String },
}

/// The first `ceil(fraction * n)` whitespace-separated words of a title (at least one): what a
/// seller has typed so far. Used for prefix training and the prefix metrics.
pub fn prefix(title: &str, fraction: f64) -> String {
    let words: Vec<&str> = title.split_whitespace().collect();
    let k = ((fraction * words.len() as f64).ceil() as usize).clamp(1.min(words.len()), words.len());
    words[..k].join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_takes_ceil_of_words() {
        assert_eq!(super::prefix("a b c d e", 0.6), "a b c");
        assert_eq!(super::prefix("a b c d e", 0.3), "a b");
        assert_eq!(super::prefix("single", 0.3), "single");
        assert_eq!(super::prefix("   ", 0.5), "");
    }
}
