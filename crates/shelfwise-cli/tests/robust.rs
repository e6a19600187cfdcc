//! Bad input to the `shelfwise` binary: every numeric argument range-checked at parse time (a
//! usage error naming it, never a panic), and CSVs as merchants' tools write them (BOM, CRLF,
//! quoted newlines, a row that is not UTF-8, missing or extra cells, a title column named `Title`).

mod common;

use common::{repo, shelfwise};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    common::scratch("shelfwise-robust", name)
}

fn s(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn every_numeric_argument_is_range_checked_before_any_work() {
    let train = s(&repo().join("tests/fixtures/shop_train.csv"));
    let out = s(&tmp("never-written.shelfwise"));
    // `--flag=value`: a negative value is then the flag's, not an unknown option.
    let train_with = |flag: &str, v: &str| vec!["train".to_string(), "--train".into(), train.clone(), "--out".into(), out.clone(), format!("{flag}={v}")];
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    let huge = "99999999999999999999999";
    for (flag, bad) in [
        ("--batch-size", &["0", "-1", huge][..]),
        ("--buckets", &["0", "-1", huge, "4294967296"]),
        ("--epochs", &["0", "-3", huge]),
        ("--ngram-dim", &["0", huge]),
        ("--finetune-layers", &["-1", "65", huge]),
        ("--min-count", &["0", "-1"]),
        ("--lr", &["0", "-0.1", "NaN", "inf", "x"]),
        ("--encoder-lr", &["-1", "NaN"]),
        ("--weight-decay", &["-1", "inf"]),
        ("--embed-scale", &["0", "-1", "1e30", "NaN"]),
        ("--prefix-weight", &["-1", "NaN"]),
        ("--prefix-fractions", &["0", "1.5", "-0.3"]),
    ] {
        for v in bad {
            cases.push((train_with(flag, v), flag));
        }
    }
    let classify = |flag: &str, v: &str| vec!["classify".to_string(), format!("{flag}={v}"), "shoe".into()];
    for (flag, bad) in [("-k", &["0", "-1", huge][..]), ("--threshold", &["-0.1", "1.5", "NaN", "inf"])] {
        for v in bad {
            cases.push((classify(flag, v), flag));
        }
    }
    let q = |flag: &str, v: &str| vec!["quantize".to_string(), "--in".into(), "x".into(), "--out".into(), "y".into(), format!("{flag}={v}")];
    cases.push((q("--min-count", "0"), "--min-count"));
    cases.push((q("--calibration-titles", "0"), "--calibration-titles"));
    for (flag, v) in [("--titles", "0"), ("--loads", "0"), ("--typed", "-1"), ("--warmup", huge)] {
        cases.push((vec!["bench".into(), format!("{flag}={v}")], flag));
    }
    for (args, flag) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = shelfwise(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: expected a usage error, got {:?}:\n{err}", o.status.code());
        assert!(err.contains(flag.trim_start_matches('-')) && err.contains("invalid value"), "{args:?}: the error does not name {flag}:\n{err}");
    }
    assert!(!std::path::Path::new(&out).exists(), "nothing was trained");
}

/// Predictions file rows as (first column, predicted_path, error).
fn read_predictions(path: &std::path::Path) -> Vec<(String, String, String)> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap_or_else(|| panic!("no {name} in {h:?}"));
    let (p, e) = (col("predicted_path"), col("error"));
    rdr.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[p].to_string(), r[e].to_string())).collect()
}

fn top_path(title: &str) -> String {
    let o = shelfwise(&["classify", "--json", title]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v[0]["decision"]["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.join(" > ")
}

#[test]
fn batch_gives_each_bad_row_its_own_error_and_classifies_the_rest() {
    let csv = tmp("catalogue.csv");
    let mut bytes = b"\xef\xbb\xbfsku,Title ,price\r\n".to_vec(); // BOM, CRLF, a column named "Title "
    bytes.extend_from_slice(b"A1,Pigeon 1.5 L electric kettle,999\r\n");
    bytes.extend_from_slice(b"A2,\"Nike running\r\nshoe for men\",4999\r\n"); // quoted newline
    bytes.extend_from_slice(b"A3,Pr\xffstige pressure cooker,1299\r\n"); // not UTF-8
    bytes.extend_from_slice(b"A4\r\n"); // no title cell
    bytes.extend_from_slice(b"A5,Red, blue running shoe,1,2\r\n"); // unquoted comma: extra cells
    bytes.extend_from_slice(b"A6,,10\r\n"); // blank title: no suggestions, no error
    bytes.extend_from_slice(b"A7,Samsung Galaxy M14 5G mobile phone,12999"); // no final newline
    std::fs::write(&csv, bytes).unwrap();
    let preds = tmp("predictions.csv");
    let o = shelfwise(&["classify", "--batch", &s(&csv), "--out", &s(&preds)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = read_predictions(&preds);
    let skus: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(skus, ["A1", "A2", "A3", "A4", "A5", "A6", "A7"]);
    let errors: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(errors, ["", "", "INVALID_UTF8", "MISSING_CELL", "EXTRA_CELLS", "", ""]);
    // Good rows get what the title alone gets (the quoted title with its line break inside).
    assert_eq!(rows[0].1, top_path("Pigeon 1.5 L electric kettle"));
    assert_eq!(rows[1].1, top_path("Nike running\r\nshoe for men"));
    assert_eq!(rows[6].1, top_path("Samsung Galaxy M14 5G mobile phone"));
    assert!(rows[2..6].iter().all(|r| r.1.is_empty()), "{rows:?}");
}

#[test]
fn train_and_eval_read_the_same_files_and_name_the_bad_line() {
    // eval on the shipped model: BOM, CRLF, a quoted newline and differently cased column names.
    let good = tmp("held_out.csv");
    let mut bytes = b"\xef\xbb\xbfTitle,Category_Path\r\n".to_vec();
    bytes.extend_from_slice("Pigeon 1.5 L electric kettle,Home & Kitchen > Kitchen Appliances\r\n".as_bytes());
    bytes.extend_from_slice("\"Nike running\nshoe\",Footwear > Men's Footwear > Sports Shoes\r\n".as_bytes());
    std::fs::write(&good, &bytes).unwrap();
    let json = tmp("eval.json");
    let o = shelfwise(&["eval", "--data", &s(&good), "--json", &s(&json)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["n"], 2);

    for (name, row, needle) in [
        ("bad-utf8.csv", &b"Pr\xffstige cooker,Kitchen > Cookers\n"[..], "line 3: column \"title\" is not valid UTF-8"),
        ("short.csv", b"just a title\n", "line 3: 1 cells, the header has 2"),
        ("long.csv", b"red, blue shoe,Footwear > Shoes\n", "line 3: 3 cells, the header has 2"),
    ] {
        let p = tmp(name);
        let mut bytes = b"title,category_path\nred shoe,Footwear > Shoes\n".to_vec();
        bytes.extend_from_slice(row);
        std::fs::write(&p, bytes).unwrap();
        for args in [vec!["eval", "--data", &s(&p)], vec!["train", "--train", &s(&p), "--out", &s(&tmp("x.shelfwise"))]] {
            let o = shelfwise(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}:\n{err}");
            assert!(err.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{err}");
        }
    }
}

#[test]
fn a_training_csv_with_a_bom_crlf_blank_titles_and_conflicting_duplicates_trains_and_says_so() {
    // The fixture shop with a BOM and CRLF line ends, two rows with a blank title, and one of its
    // titles again under another category.
    let src = std::fs::read_to_string(repo().join("tests/fixtures/shop_train.csv")).unwrap();
    let mut text = String::from("\u{feff}");
    for line in src.lines() {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("b1,   ,Kitchen > Tableware > Mugs\r\nb2,,Electronics > Mobiles\r\n");
    text.push_str("d1,Pioneer travel mug insulated 10ml,Electronics > Mobiles\r\n");
    let csv = tmp("edge_train.csv");
    std::fs::write(&csv, text).unwrap();
    let model = tmp("edge.shelfwise");
    let dev = s(&repo().join("tests/fixtures/shop_dev.csv"));
    let o = shelfwise(&["train", "--train", &s(&csv), "--dev", &dev, "--out", &s(&model), "--epochs", "3", "--buckets", "4096"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("skipped 2 rows with a blank title"), "{err}");
    assert!(err.contains("note: 1 titles appear under more than one category: every row is kept"), "{err}");
    let file = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    // 51 fixture rows + the duplicate; the blank ones are not counted.
    assert_eq!(file.manifest.training["train_csv"]["rows"], 52);
    // The header was found through the BOM, and no label carries a '\r'.
    let plain: std::collections::BTreeSet<String> = src.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().to_string()).collect();
    let got: std::collections::BTreeSet<String> = file.manifest.labels.iter().cloned().collect();
    assert_eq!(got, plain);
}
