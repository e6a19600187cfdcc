//! How much of a category's name a title spells out: character n-grams of the title against those
//! of each category's leaf name and path, the adaptation layer's `name_chars` score. A shop's
//! category names are usually written in its titles ("Roadster Men Printed T-shirt" under
//! "Apparel > Topwear > Tshirts"), and matching them by characters needs no example and no
//! encoder that knows the shop: it is what makes a new taxonomy usable before any example.
//!
//! As scikit-learn's `TfidfVectorizer(analyzer='char', ngram_range=(2, 5), sublinear_tf=True)`
//! fitted on the leaf names and paths, with a preprocessor that lower-cases and drops everything
//! but letters, digits and whitespace (so "T-shirt" and "Tshirts" share "tshirt", and n-grams may
//! span words: "sports shoes" matches as a phrase); the score of a category is the title's cosine
//! with its leaf name plus its cosine with its path.

use std::collections::HashMap;

use crate::baseline::{l2_normalize, smooth_idf};
use crate::ngram::fnv1a;

/// Shortest and longest n-gram, in characters.
const MIN_N: usize = 2;
const MAX_N: usize = 5;

/// Lower-cased, letters, digits and single spaces only, trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            // Lower-cased first, then filtered, as Python's `lower()` then `[^\w\s]`: "İ" lowers
            // to "i" and a combining dot, which is dropped.
            out.extend(c.to_lowercase().filter(|l| l.is_alphanumeric()));
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Every character n-gram of a normalized text, n = 2..=5 (repeats included), as its 64-bit
/// FNV-1a hash: no string is kept, and a collision among a taxonomy's n-grams is negligible.
fn for_each_gram(text: &str, mut f: impl FnMut(u64)) {
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let chars = bounds.len() - 1;
    for n in MIN_N..=MAX_N.min(chars) {
        for i in 0..=chars - n {
            f(fnv1a(&text.as_bytes()[bounds[i]..bounds[i + n]]));
        }
    }
}

/// The keys are FNV-1a hashes already: hashing them again (SipHash) only costs time.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(bytes);
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

type GramMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<Prehashed>>;

/// The n-gram counts of a normalized text, sorted by n-gram.
fn counts(text: &str) -> Vec<(u64, f32)> {
    let mut grams = Vec::new();
    for_each_gram(text, |g| grams.push(g));
    grams.sort_unstable();
    let mut out: Vec<(u64, f32)> = Vec::with_capacity(grams.len());
    for g in grams {
        match out.last_mut() {
            Some((h, c)) if *h == g => *c += 1.0,
            _ => out.push((g, 1.0)),
        }
    }
    out
}

/// The category names' n-grams and, for each, the categories whose leaf or path has it.
pub struct NameMatcher {
    vocab: GramMap<u32>,
    idf: Vec<f32>,
    /// For each n-gram: (category, its weight in the leaf's unit vector plus in the path's).
    postings: Vec<Vec<(u32, f32)>>,
    n_labels: usize,
}

impl std::fmt::Debug for NameMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameMatcher").field("grams", &self.vocab.len()).field("labels", &self.n_labels).finish()
    }
}

impl NameMatcher {
    /// Fitted on the categories' paths (segments, root first): the idf is over the 2·L documents
    /// of every leaf name and every path.
    pub fn new(paths: &[Vec<String>]) -> Self {
        let docs: Vec<Vec<(u64, f32)>> =
            paths.iter().flat_map(|p| [counts(&normalize(p.last().map_or("", String::as_str))), counts(&normalize(&p.join(" ")))]).collect();
        let mut df: GramMap<u32> = GramMap::default();
        for d in &docs {
            for &(g, _) in d {
                *df.entry(g).or_default() += 1;
            }
        }
        // Sorted, so ids (and the sums below) do not depend on hash order.
        let mut grams: Vec<(u64, u32)> = df.into_iter().collect();
        grams.sort_unstable();
        let idf: Vec<f32> = grams.iter().map(|&(_, d)| smooth_idf(docs.len(), d)).collect();
        let vocab: GramMap<u32> = grams.iter().enumerate().map(|(i, &(g, _))| (g, i as u32)).collect();
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); idf.len()];
        for (j, pair) in docs.chunks(2).enumerate() {
            let mut merged: Vec<(u32, f32)> = pair.iter().flat_map(|d| unit_row(&vocab, &idf, d)).collect();
            merged.sort_unstable_by_key(|&(id, _)| id);
            for (id, v) in merged {
                match postings[id as usize].last_mut() {
                    Some((l, x)) if *l == j as u32 => *x += v,
                    _ => postings[id as usize].push((j as u32, v)),
                }
            }
        }
        Self { vocab, idf, postings, n_labels: paths.len() }
    }

    /// Each category's cosine with the title by leaf name plus by path, in `0..=2` (0 where no
    /// n-gram is shared, and for a title with none of the names' n-grams).
    pub fn scores(&self, title: &str) -> Vec<f32> {
        let mut out = vec![0f32; self.n_labels];
        for (id, x) in unit_row(&self.vocab, &self.idf, &counts(&normalize(title))) {
            for &(j, y) in &self.postings[id as usize] {
                out[j as usize] += x * y;
            }
        }
        out
    }
}

/// The L2-normalised sublinear TF-IDF of a text's n-gram counts over `vocab` (n-grams outside
/// it ignored), sorted by id.
fn unit_row(vocab: &GramMap<u32>, idf: &[f32], counts: &[(u64, f32)]) -> Vec<(u32, f32)> {
    let mut row: Vec<(u32, f32)> = counts.iter().filter_map(|(g, c)| vocab.get(g).map(|&id| (id, (1.0 + c.ln()) * idf[id as usize]))).collect();
    row.sort_unstable_by_key(|&(id, _)| id);
    l2_normalize(&mut row);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Vec<Vec<String>> {
        p.iter().map(|s| s.split(" > ").map(str::to_string).collect()).collect()
    }

    #[test]
    fn normalize_keeps_letters_digits_and_single_spaces() {
        assert_eq!(normalize("  Roadster Men's T-Shirt,  XL_2 "), "roadster mens tshirt xl2");
        assert_eq!(normalize("Ünïcode — 😀 Straße"), "ünïcode straße");
        assert_eq!(normalize("-_-"), "");
        assert_eq!(normalize("İstanbul"), "istanbul");
    }

    /// Recorded with scikit-learn 1.9.1: `TfidfVectorizer(analyzer='char', ngram_range=(2, 5),
    /// sublinear_tf=True, preprocessor=p)` with `p(s) = ' '.join(re.sub(r'[^\w\s]|_', '', s.lower()).split())`,
    /// fitted on the leaves and paths below; the cosine of each title with each leaf plus with each path.
    #[test]
    fn scores_match_scikit_learn() {
        let m = NameMatcher::new(&paths(&["Apparel > Topwear > Tshirts", "Apparel > Bottomwear > Jeans", "Footwear > Shoes > Sports Shoes"]));
        let expected = [
            ("Roadster Men Navy Blue Printed Round Neck T-shirt", [1.1767949, 0.0474598, 0.1100173]),
            ("Puma Men Black Running Sports Shoes", [0.1307637, 0.0220382, 1.6501801]),
            ("Levis 511 slim jeans", [0.012934, 1.1102818, 0.1730541]),
            ("!!!", [0.0, 0.0, 0.0]),
        ];
        for (title, want) in expected {
            let got = m.scores(title);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5, "{title}: {got:?} against {want:?}");
            }
        }
    }

    proptest::proptest! {
        /// Any Unicode, in titles and names: cosines, so each of the two in 0..=1, never NaN.
        #[test]
        fn scores_are_two_cosines_for_any_text(names in proptest::collection::vec("\\PC{1,12}( > \\PC{1,12}){0,2}", 1..6), title in "\\PC{0,80}") {
            let m = NameMatcher::new(&names.iter().map(|p| p.split(" > ").map(str::to_string).collect()).collect::<Vec<_>>());
            let s = m.scores(&title);
            proptest::prop_assert_eq!(s.len(), names.len());
            proptest::prop_assert!(s.iter().all(|x| x.is_finite() && (-1e-6..=2.0 + 1e-5).contains(x)), "{:?}", s);
            proptest::prop_assert_eq!(normalize(&normalize(&title)), normalize(&title));
        }
    }

    #[test]
    fn a_title_shorter_than_two_characters_shares_nothing() {
        let m = NameMatcher::new(&paths(&["A > B"]));
        assert_eq!(m.scores("b"), vec![0.0]);
        assert_eq!(m.scores(""), vec![0.0]);
    }
}
