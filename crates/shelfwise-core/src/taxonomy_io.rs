//! Reading a shop's taxonomy file: one category path a line in any of the three forms shops have.
//!
//! - plain: `A > B > C` (blank lines and lines starting with `#` are skipped);
//! - Google's `taxonomy-with-ids`: a `# Google_Product_Taxonomy_Version: …` header, then
//!   `123 - A > B > C`;
//! - Shopify's `categories.txt`: `#` header lines, then `gid://shopify/TaxonomyCategory/aa-1 : A > B`
//!   (the id padded with spaces before the colon).
//!
//! The form is recognised per line (a line with a numeric id and `" - "` is Google's, one starting
//! with `gid://` Shopify's), so a file may mix them. Paths are normalised as [`parse_path`] does and
//! kept in file order, each once.

use std::collections::HashSet;

use crate::taxonomy::{join_path, parse_path};
use crate::CoreError;

/// The category path of one taxonomy line, `None` for a blank or comment line.
fn line_path(line: &str) -> Option<&str> {
    let t = line.trim().trim_start_matches('\u{feff}');
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    if let Some(rest) = t.strip_prefix("gid://") {
        // Shopify: the id has no spaces and ends at the first " : ".
        return Some(rest.split_once(':').map_or("", |(_, p)| p));
    }
    match t.split_once(" - ") {
        Some((id, path)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => Some(path),
        _ => Some(t),
    }
}

/// Every category path of a taxonomy file, in file order, each once. A line whose path has an
/// empty segment (`A > > B`, or a Shopify id with nothing after its colon) is `BadTaxonomyLine`
/// naming its (1-based) line.
pub fn read_taxonomy(text: &str) -> Result<Vec<Vec<String>>, CoreError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(raw) = line_path(line) else { continue };
        let path =
            parse_path(raw).map_err(|_| CoreError::BadTaxonomyLine { line: i + 1, why: format!("{:?} is not a category path (A > B > C)", line.trim()) })?;
        if seen.insert(join_path(&path)) {
            out.push(path);
        }
    }
    Ok(out)
}

/// The paths of `paths` that are no other path's ancestor: the categories a product goes into
/// (Google's and Shopify's files list every inner node as a line of its own), in the given order.
pub fn leaves(paths: &[Vec<String>]) -> Vec<Vec<String>> {
    let inner: HashSet<&[String]> = paths.iter().flat_map(|p| (1..p.len()).map(move |d| &p[..d])).collect();
    paths.iter().filter(|p| !inner.contains(p.as_slice())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn plain_paths_skip_blanks_and_comments_and_dedupe() {
        let got = read_taxonomy("# my shop\n\nShoes > Running\r\n  Shoes >Trail \nShoes > Running\nKitchen\n").unwrap();
        assert_eq!(got, vec![p(&["Shoes", "Running"]), p(&["Shoes", "Trail"]), p(&["Kitchen"])]);
    }

    #[test]
    fn google_ids_are_dropped() {
        let text = "# Google_Product_Taxonomy_Version: 2021-09-21\n1 - Animals & Pet Supplies\n3237 - Animals & Pet Supplies > Live Animals\n";
        assert_eq!(read_taxonomy(text).unwrap(), vec![p(&["Animals & Pet Supplies"]), p(&["Animals & Pet Supplies", "Live Animals"])]);
        // A dash inside a name is not an id separator unless a number stands before it.
        assert_eq!(read_taxonomy("T-Shirts - Men > Polo\n").unwrap(), vec![p(&["T-Shirts - Men", "Polo"])]);
    }

    #[test]
    fn shopify_gids_are_dropped() {
        let text = "# Shopify Product Taxonomy - Categories: 2025-08-unstable\n# Format: {GID} : {Ancestor name} > ... > {Category name}\n\n\
                    gid://shopify/TaxonomyCategory/ap                : Animals & Pet Supplies\n\
                    gid://shopify/TaxonomyCategory/ap-2-1            : Animals & Pet Supplies > Pet Supplies > Bird Supplies\n";
        assert_eq!(read_taxonomy(text).unwrap(), vec![p(&["Animals & Pet Supplies"]), p(&["Animals & Pet Supplies", "Pet Supplies", "Bird Supplies"])]);
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            read_taxonomy("A > B\nA > > C\n"),
            Err(CoreError::BadTaxonomyLine { line: 2, why: "\"A > > C\" is not a category path (A > B > C)".into() })
        );
        assert!(matches!(read_taxonomy("gid://shopify/TaxonomyCategory/x\n"), Err(CoreError::BadTaxonomyLine { line: 1, .. })));
    }

    #[test]
    fn leaves_are_paths_with_no_child() {
        let all = vec![p(&["A"]), p(&["A", "B"]), p(&["A", "B", "C"]), p(&["A", "D"]), p(&["E"])];
        assert_eq!(leaves(&all), vec![p(&["A", "B", "C"]), p(&["A", "D"]), p(&["E"])]);
    }
}
