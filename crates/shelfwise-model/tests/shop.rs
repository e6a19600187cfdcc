//! A shop's live adaptation state (`shelfwise_model::shop`, issue #19's browser API): the same
//! scores as the file `adapt` writes, corrections, forgetting, similar titles, explanations and
//! the exported memory, on the tiny model.

mod common;

use common::*;
use shelfwise_model::progress::Silent;
use shelfwise_model::shop::adapt;
use shelfwise_model::shop::Shop;
use shelfwise_model::train::examples::Example;
use shelfwise_model::{Classifier, ModelError};

fn ex(title: &str, path: &str) -> Example {
    Example { title: title.into(), path: path.split(" > ").map(String::from).collect() }
}

fn paths(v: &[&str]) -> Vec<Vec<String>> {
    v.iter().map(|p| p.split(" > ").map(String::from).collect()).collect()
}

fn tiny() -> Classifier {
    Classifier::from_bytes(&tiny_file().to_bytes().unwrap()).unwrap()
}

const TAX: [&str; 4] = ["Phones", "Phones > Smartphones", "Phones > Cases", "Garden > Hoses"];

fn examples() -> Vec<Example> {
    vec![
        ex("iphone 15 pro 128gb", "Phones > Smartphones"),
        ex("galaxy s24 ultra", "Phones > Smartphones"),
        ex("silicone case for iphone", "Phones > Cases"),
        ex("leather case galaxy", "Phones > Cases"),
        ex("garden hose 20 m", "Garden > Hoses"),
        ex("rose seeds", "Garden > Seeds"),
        ex("iPhone 15  Pro 128GB", "Phones > Cases"),
    ]
}

fn label_strings(clf: &Classifier) -> Vec<String> {
    clf.labels().label_strings()
}

const TITLES: [&str; 4] = ["iphone 15 case", "garden hose", "galaxy s24", "tulip bulbs"];

#[test]
fn a_shop_scores_exactly_as_the_file_adapt_writes() {
    let (file, report) = adapt(tiny_file(), Some(&paths(&TAX)), examples(), 100, &Silent).unwrap();
    let from_file = Classifier::from_bytes(&file.to_bytes().unwrap()).unwrap();
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    let r = shop.add_examples(&clf, examples(), &Silent).unwrap();
    assert_eq!((r.labels, r.added_labels, r.contradictions, r.remembered), (report.labels, report.added_labels, report.contradictions, report.remembered));
    shop.apply(&mut clf).unwrap();
    assert_eq!(label_strings(&clf), label_strings(&from_file));
    let (a, b) = (clf.logits(&TITLES).unwrap(), from_file.logits(&TITLES).unwrap());
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() <= 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn learn_replaces_the_title_adds_the_path_and_keeps_the_weights() {
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.add_examples(&clf, examples(), &Silent).unwrap();
    let before = shop.memory_info(&clf).unwrap();
    // 7 in, the 7th replaces the 1st: 6 remembered over 4 labels (3 leaves + Garden > Seeds).
    assert_eq!((before.examples, before.categories, before.added_categories), (6, 4, 1));
    shop.apply(&mut clf).unwrap();
    let weights = clf.adapter().unwrap().weights().to_vec();
    // A correction to a new path: a 5th label; a blank title is skipped.
    shop.learn(&clf, "IPHONE 15 pro 128gb", "Phones > Refurbished").unwrap();
    shop.learn(&clf, "   ", "Phones > Cases").unwrap();
    shop.apply(&mut clf).unwrap();
    let info = shop.memory_info(&clf).unwrap();
    assert_eq!((info.examples, info.categories, info.added_categories), (6, 5, 2));
    assert_eq!(clf.adapter().unwrap().weights(), weights.as_slice(), "learn keeps the fitted weights");
    let m = clf.adapter().unwrap().memory();
    let at = m.titles.iter().position(|t| t == "IPHONE 15 pro 128gb").expect("the correction is remembered");
    assert_eq!(clf.labels().label_string(m.labels[at]), "Phones > Refurbished");
    assert_eq!(m.titles.len(), 6, "the correction replaced the old example of that title");
    // A bad path is LABELS and changes nothing.
    assert_eq!(shop.learn(&clf, "x", "A >  > B").unwrap_err().code(), "LABELS");
    assert_eq!(shop.memory_info(&clf).unwrap().examples, 6);
    // Forget: a title (case and spaces do not matter), then a path the examples had added.
    assert_eq!(shop.forget_title("Garden  HOSE 20 m"), 1);
    assert_eq!(shop.forget_path("Phones > Refurbished").unwrap(), 1);
    shop.apply(&mut clf).unwrap();
    let info = shop.memory_info(&clf).unwrap();
    assert_eq!((info.examples, info.categories), (4, 4));
    assert!(!label_strings(&clf).contains(&"Phones > Refurbished".to_string()));
    // A taxonomy path keeps its label when its examples are forgotten (Garden > Hoses has none now).
    assert!(label_strings(&clf).contains(&"Garden > Hoses".to_string()));
}

#[test]
fn learning_over_the_cap_evicts_the_oldest_of_the_largest_category() {
    let clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_max_examples(3);
    shop.set_taxonomy(&clf, &paths(&["A > x", "B > y"]), &Silent).unwrap();
    shop.add_examples(&clf, vec![ex("a1", "A > x"), ex("a2", "A > x"), ex("b1", "B > y")], &Silent).unwrap();
    // A 4th: A > x has the most (2): its oldest, a1, goes.
    shop.learn(&clf, "b2", "B > y").unwrap();
    let mut c2 = tiny();
    shop.apply(&mut c2).unwrap();
    assert_eq!(c2.adapter().unwrap().memory().titles, ["a2", "b1", "b2"]);
    // a3 makes 2 and 2: the tie goes to the lower label id (A > x), whose oldest is a2.
    shop.learn(&clf, "a3", "A > x").unwrap();
    shop.apply(&mut c2).unwrap();
    assert_eq!(c2.adapter().unwrap().memory().titles, ["b1", "b2", "a3"]);
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[test]
fn similar_ranks_remembered_titles_by_cosine() {
    let clf = tiny();
    let mut shop = Shop::new(&clf);
    let ex_titles = ["red running shoe", "steel kettle 1.5 l", "kids sandal blue", "running shoe red"];
    shop.add_examples(&clf, ex_titles.iter().map(|t| ex(t, "Shoes > Running")).collect(), &Silent).unwrap();
    let q = "red running shoes";
    let got = shop.similar(&clf, q, 3).unwrap();
    assert_eq!(got.len(), 3);
    // The reference: cosines of the encoder's own f32 embeddings (no int8 codes).
    let qe = unit(clf.embedding(q).unwrap());
    let mut want: Vec<(f32, &str)> = ex_titles.iter().map(|t| (unit(clf.embedding(t).unwrap()).iter().zip(&qe).map(|(a, b)| a * b).sum::<f32>(), *t)).collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.title, w.1);
        assert_eq!(g.path, "Shoes > Running");
        // int8 rows: within 1 % of the f32 cosine.
        assert!((g.score - w.0).abs() < 0.01, "{} vs {}", g.score, w.0);
    }
    // A remembered title is its own nearest, at cosine ~1.
    let own = shop.similar(&clf, "steel kettle 1.5 l", 1).unwrap();
    assert_eq!(own[0].title, "steel kettle 1.5 l");
    assert!((own[0].score - 1.0).abs() < 1e-3);
    assert!(shop.similar(&clf, "x", 0).unwrap().is_empty());
    assert_eq!(shop.similar(&clf, &"x".repeat(5000), 3).unwrap_err().code(), "INPUT_TOO_LONG");
}

#[test]
fn explain_is_the_score_change_when_each_word_is_left_out() {
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.add_examples(&clf, examples(), &Silent).unwrap();
    shop.apply(&mut clf).unwrap();
    let title = "silicone  case for galaxy";
    let cat = clf.labels().find("Phones > Cases").unwrap();
    let e = Shop::explain(&clf, title, cat).unwrap();
    assert_eq!(e.category, "Phones > Cases");
    let words: Vec<&str> = e.words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(words, ["silicone", "case", "for", "galaxy"]);
    // Reference: the calibrated probability of each text, from the classifier's own probs.
    let p = |t: &str| clf.probs(&[t]).unwrap()[0][cat];
    assert!((e.score - p("silicone case for galaxy")).abs() < 1e-6);
    for (w, without) in e.words.iter().zip(["case for galaxy", "silicone for galaxy", "silicone case galaxy", "silicone case for"]) {
        let real = p("silicone case for galaxy") - p(without);
        assert!((w.contribution - real).abs() < 1e-6, "{}: {} vs {real}", w.word, w.contribution);
    }
    assert_eq!(Shop::explain(&clf, title, 99).unwrap_err().code(), "LABELS");
}

fn other_model() -> Classifier {
    let mut f = tiny_file();
    f.manifest.labels = vec!["Home > Garden".into(), "Shoes > Kids".into(), "Shoes > Running".into()];
    Classifier::from_bytes(&f.to_bytes().unwrap()).unwrap()
}

#[test]
fn an_exported_memory_imports_into_its_model_only_and_hostile_bytes_are_typed_errors() {
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.add_examples(&clf, examples(), &Silent).unwrap();
    shop.learn(&clf, "tulip bulbs", "Garden > Bulbs").unwrap();
    let bytes = shop.export().unwrap();
    shop.apply(&mut clf).unwrap();
    let want = clf.logits(&TITLES).unwrap();

    let mut fresh = tiny();
    let mut back = Shop::import(&fresh, &bytes).unwrap();
    back.apply(&mut fresh).unwrap();
    assert_eq!(label_strings(&fresh), label_strings(&clf));
    // The same state, the same scores (category names are embedded again, in other batches).
    for (x, y) in fresh.logits(&TITLES).unwrap().iter().flatten().zip(want.iter().flatten()) {
        assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
    }
    assert_eq!(back.memory_info(&fresh).unwrap(), shop.memory_info(&clf).unwrap());

    match Shop::import(&other_model(), &bytes) {
        Err(e @ ModelError::MemoryModelMismatch { .. }) => assert_eq!(e.code(), "MEMORY_MODEL_MISMATCH"),
        other => panic!("{:?}", other.err()),
    }
    // Every truncation, and a byte changed anywhere: a typed error or a valid memory, never a panic.
    for n in 0..bytes.len() {
        let e = Shop::import(&fresh, &bytes[..n]).expect_err("a truncated memory is refused");
        assert_eq!(e.code(), "MEMORY_CORRUPT", "at {n}: {e}");
    }
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        if let Err(e) = Shop::import(&fresh, &b) {
            assert!(["MEMORY_CORRUPT", "MEMORY_MODEL_MISMATCH"].contains(&e.code()), "byte {i}: {}: {e}", e.code());
        }
    }
}

/// A memory exported before `name_chars` (eight weights) imports with its weights as they were
/// and 0 for the new component, so it scores as it did until its next refit.
#[test]
fn a_memory_exported_with_eight_weights_imports_with_name_chars_at_zero() {
    let clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.add_examples(&clf, examples(), &Silent).unwrap();
    let bytes = shop.export().unwrap();
    let (magic, body) = bytes.split_at(8);
    let st = safetensors::SafeTensors::deserialize(body).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(body).unwrap();
    let weights: Vec<f32> = st.tensor("weights").unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(weights.len(), 9);
    // The same export with its first `n` weights only.
    let with_weights = |n: usize| -> Vec<u8> {
        let w: Vec<u8> = weights[..n].iter().flat_map(|w| w.to_le_bytes()).collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = st
            .tensors()
            .into_iter()
            .map(|(name, v)| match name.as_str() {
                "weights" => (name, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n], &w).unwrap()),
                _ => (name, v),
            })
            .collect();
        let mut out = magic.to_vec();
        out.extend(safetensors::serialize(views, meta.metadata().clone()).unwrap());
        out
    };

    let mut fresh = tiny();
    Shop::import(&fresh, &with_weights(8)).unwrap().apply(&mut fresh).unwrap();
    let mut want = weights[..8].to_vec();
    want.push(0.0);
    assert_eq!(fresh.adapter().unwrap().weights(), want.as_slice());
    // Seven weights is no memory this build or an older one wrote.
    let bad = with_weights(7);
    assert_eq!(Shop::import(&fresh, &bad).err().map(|e| e.code()), Some("MEMORY_CORRUPT"));
}

/// A shop started from an adapted file keeps the file's `name_chars` index: applying it with the
/// same labels does not build another (it is the same `Arc`), and new labels get a new one.
#[test]
fn a_shop_reuses_the_files_name_index_until_its_labels_change() {
    let (file, _) = adapt(tiny_file(), Some(&paths(&TAX)), examples(), 100, &Silent).unwrap();
    let mut clf = Classifier::from_bytes(&file.to_bytes().unwrap()).unwrap();
    let loaded = clf.adapter().unwrap().name_matcher().unwrap().clone();
    let mut shop = Shop::new(&clf);
    shop.apply(&mut clf).unwrap();
    assert!(std::sync::Arc::ptr_eq(clf.adapter().unwrap().name_matcher().unwrap(), &loaded));
    shop.learn(&clf, "a brand new thing", "Garden > Sheds").unwrap();
    shop.apply(&mut clf).unwrap();
    assert!(!std::sync::Arc::ptr_eq(clf.adapter().unwrap().name_matcher().unwrap(), &loaded), "a new label, a new index");
}

#[path = "common/shop_parity.rs"]
mod shop_parity;

/// The parity case on the shipped model: this build's scores against the committed fixture, which
/// the wasm build checks too (shelfwise-wasm tests/adapt.rs). `SHELFWISE_UPDATE_PARITY=1` rewrites it.
#[test]
fn the_shipped_model_adapts_as_the_committed_parity_fixture_says() {
    let fixture = repo().join("tests/fixtures/shop_parity.json");
    let csv = |name: &str| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap();
        text.lines().skip(1).map(|l| l.splitn(3, ',').collect::<Vec<_>>()).map(|f| (f[1].to_string(), f[2].to_string())).collect()
    };
    let train = csv("shop_train.csv");
    let mut taxonomy: Vec<String> = train.iter().map(|r| r.1.clone()).collect();
    taxonomy.sort();
    taxonomy.dedup();
    // A category with no example: zero-shot from its name.
    taxonomy.push("Garden > Hoses".into());
    let inputs = shop_parity::Case {
        taxonomy,
        titles: train.iter().map(|r| r.0.clone()).collect(),
        paths: train.iter().map(|r| r.1.clone()).collect(),
        learn: ("Orbit travel mug insulated 2ml".into(), "Kitchen > Flasks".into()),
        queries: csv("shop_dev.csv").into_iter().map(|r| r.0).chain(["green garden hose 15 m".to_string()]).collect(),
        labels: vec![],
        probs: vec![],
        similar: vec![],
        explain: vec![],
    };
    let got = shop_parity::run(&shipped_model_bytes(), &inputs);
    if std::env::var_os("SHELFWISE_UPDATE_PARITY").is_some() {
        std::fs::write(&fixture, serde_json::to_string(&got).unwrap() + "\n").unwrap();
    }
    let want: shop_parity::Case = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let diff = shop_parity::differences(&got, &want, 1e-4);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    // The correction is a category of its own, and the corrected title's top suggestion.
    let flasks = got.labels.iter().position(|l| l == "Kitchen > Flasks").expect("the corrected path is added");
    let q = got.queries.iter().position(|q| *q == got.learn.0).unwrap();
    let best = (0..got.labels.len()).max_by(|&a, &b| got.probs[q][a].total_cmp(&got.probs[q][b])).unwrap();
    assert_eq!(best, flasks);
}

/// The issue's own example on the shipped model: a phone gets a computer category. One correction
/// answers that title from memory; with a second remembered category the example scores can tell
/// categories apart, and a near-identical title follows too.
#[test]
fn a_correction_changes_the_next_suggestion_for_the_title_and_then_its_neighbours() {
    let mut clf = Classifier::from_bytes(&shipped_model_bytes()).unwrap();
    let top = |clf: &Classifier, t: &str| {
        let d = clf.suggest(t, 1, 0.0).unwrap();
        (d.suggestions[0].path.iter().map(|p| p.name.clone()).collect::<Vec<_>>().join(" > "), d.suggestions[0].score)
    };
    let (title, near) = ("apple iphone 15 pro 128gb", "apple iphone 15 pro 256gb");
    assert!(top(&clf, title).0.starts_with("Computers"), "{:?}", top(&clf, title));
    let mut shop = Shop::new(&clf);
    shop.learn(&clf, title, "Mobiles > Smartphones").unwrap();
    shop.apply(&mut clf).unwrap();
    let (path, score) = top(&clf, title);
    assert_eq!(path, "Mobiles > Smartphones");
    assert!(score >= 0.98, "{score}: at least ln 100 above the next");
    shop.learn(&clf, "casio analog watch for men", "Watches > Wrist Watches").unwrap();
    shop.apply(&mut clf).unwrap();
    assert_eq!(top(&clf, near).0, "Mobiles > Smartphones");
    assert_eq!(top(&clf, "casio analog watch for women").0, "Watches > Wrist Watches");
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() <= tol, "{what}: {x} vs {y}\n{a:?}\nvs\n{b:?}");
    }
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn corrections_applied_in_place_score_as_a_rebuild_and_as_their_export_reloaded() {
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.add_examples(&clf, examples(), &Silent).unwrap();
    shop.apply(&mut clf).unwrap();
    // New titles of known categories (appended in place), then a remembered title corrected, a
    // new category and a blank title (rebuilt): each step scores as the state rebuilt from scratch.
    let steps = [
        ("pixel 8 case clear", "Phones > Cases"),
        ("hose reel 30 m", "Garden > Hoses"),
        ("galaxy s24 ultra", "Phones > Cases"),
        ("tulip bulbs", "Garden > Bulbs"),
        ("   ", "Phones > Cases"),
        ("moto g power", "Phones > Smartphones"),
    ];
    for (title, path) in steps {
        shop.learn_live(&mut clf, title, path).unwrap();
        let mut rebuilt = tiny();
        shop.apply(&mut rebuilt).unwrap();
        assert_eq!(label_strings(&clf), label_strings(&rebuilt), "after {title:?}");
        assert_eq!(clf.adapter().unwrap().memory().titles, rebuilt.adapter().unwrap().memory().titles);
        // Not bit for bit: a label's TF-IDF norm sums a hash map's values, in its own order.
        assert_close(&clf.logits(&TITLES).unwrap(), &rebuilt.logits(&TITLES).unwrap(), 1e-5, title);
    }
    // The correction decides its own title's suggestion from the next call.
    let top = |c: &Classifier, t: &str| c.labels().label_string(c.suggest(t, 1, 0.0).unwrap().suggestions[0].id);
    assert_eq!(top(&clf, "Moto G Power"), "Phones > Smartphones");
    assert_eq!(top(&clf, "galaxy s24 ultra"), "Phones > Cases");

    // Exported and imported: the same state, the same scores (the frozen vectorizer and the
    // category names travel with it; nothing is refitted or embedded again).
    let bytes = shop.export().unwrap();
    assert_eq!(&bytes[..8], b"SWMEMRY2");
    let live = clf.logits(&TITLES).unwrap();
    let mut fresh = tiny();
    Shop::import(&fresh, &bytes).unwrap().apply(&mut fresh).unwrap();
    assert_close(&fresh.logits(&TITLES).unwrap(), &live, 1e-5, "export → import");

    // A version 1 memory (the same bytes under the old magic: it reads neither the vectorizer nor
    // the names) still imports, with the vectorizer fitted on the memory's titles: that moves the
    // TF-IDF scores, which shows the stored one above is the one used.
    let mut v1 = bytes.clone();
    v1[..8].copy_from_slice(b"SWMEMRY1");
    let mut old = tiny();
    Shop::import(&old, &v1).unwrap().apply(&mut old).unwrap();
    assert_eq!(label_strings(&old), label_strings(&clf));
    assert!(max_diff(&old.logits(&TITLES).unwrap(), &live) > 1e-3, "a refitted vectorizer scores differently");
}

#[test]
fn an_imported_memory_uses_the_category_name_embeddings_it_stores() {
    let mut clf = tiny();
    let mut shop = Shop::new(&clf);
    shop.set_taxonomy(&clf, &paths(&TAX), &Silent).unwrap();
    shop.apply(&mut clf).unwrap();
    let bytes = shop.export().unwrap();
    // The same export with every stored name embedding zeroed: names score 0 for every label, so
    // with no examples and no head label in common the suggestions are flat.
    let st = safetensors::SafeTensors::deserialize(&bytes[8..]).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes[8..]).unwrap();
    let zeros = vec![0u8; st.tensor("names").unwrap().data().len()];
    assert!(!zeros.is_empty(), "the names are stored");
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let data = if name == "names" { zeros.as_slice() } else { t.data() };
            (name, safetensors::tensor::TensorView::new(t.dtype(), t.shape().to_vec(), data).unwrap())
        })
        .collect();
    let mut tampered = b"SWMEMRY2".to_vec();
    tampered.extend(safetensors::serialize(views, meta.metadata().clone()).unwrap());
    let mut back = tiny();
    Shop::import(&back, &bytes).unwrap().apply(&mut back).unwrap();
    assert_close(&back.logits(&TITLES).unwrap(), &clf.logits(&TITLES).unwrap(), 1e-6, "names as stored");
    let mut zeroed = tiny();
    Shop::import(&zeroed, &tampered).unwrap().apply(&mut zeroed).unwrap();
    assert!(max_diff(&zeroed.logits(&TITLES).unwrap(), &clf.logits(&TITLES).unwrap()) > 1e-3, "the stored names are read, not embedded again");
}

#[test]
fn a_taxonomy_file_reads_as_the_cli_reads_it_for_the_browser() {
    let text = "# Shopify\ngid://shopify/TaxonomyCategory/hg : Home & Garden\ngid://shopify/TaxonomyCategory/hg-1 : Home & Garden >  Kettles\n\n12 - Electronics > Phones\nPlain > Path\n";
    assert_eq!(shelfwise_model::shop::read_taxonomy(text).unwrap(), ["Home & Garden", "Home & Garden > Kettles", "Electronics > Phones", "Plain > Path"]);
    let e = shelfwise_model::shop::read_taxonomy("A > B\nA >  > C\n").unwrap_err();
    assert_eq!(e.code(), "LABELS");
    assert!(e.to_string().contains("line 2"), "{e}");
}
