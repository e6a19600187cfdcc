//! The taxonomy readers on small files in each format (`tests/fixtures/taxonomy/`), with the exact
//! paths and leaves each must give.

use shelfwise_core::taxonomy_io::{leaves, read_taxonomy};

fn read(name: &str) -> Vec<Vec<String>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/taxonomy").join(name);
    read_taxonomy(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn p(s: &str) -> Vec<String> {
    s.split(" > ").map(String::from).collect()
}

#[test]
fn one_path_a_line() {
    let got = read("paths.txt");
    assert_eq!(got, vec![p("Home > Kitchen > Kettles"), p("Home > Kitchen"), p("Shoes > Running")]);
    assert_eq!(leaves(&got), vec![p("Home > Kitchen > Kettles"), p("Shoes > Running")]);
}

#[test]
fn google_taxonomy_with_ids() {
    let got = read("google.txt");
    let want = [
        "Animals & Pet Supplies",
        "Animals & Pet Supplies > Live Animals",
        "Animals & Pet Supplies > Pet Supplies",
        "Animals & Pet Supplies > Pet Supplies > Bird Supplies",
    ];
    assert_eq!(got, want.iter().map(|s| p(s)).collect::<Vec<_>>());
    assert_eq!(leaves(&got), vec![p("Animals & Pet Supplies > Live Animals"), p("Animals & Pet Supplies > Pet Supplies > Bird Supplies")]);
}

#[test]
fn shopify_categories_txt() {
    let got = read("shopify.txt");
    assert_eq!(
        got,
        vec![p("Animals & Pet Supplies"), p("Animals & Pet Supplies > Live Animals"), p("Electronics > Communications > Telephony > Mobile Phones")]
    );
    assert_eq!(leaves(&got), vec![p("Animals & Pet Supplies > Live Animals"), p("Electronics > Communications > Telephony > Mobile Phones")]);
}
