//! The `shelfwise` binary end to end on a small fixture shop (tests/fixtures/shop_*.csv) and on
//! the shipped model; error messages for bad input files.

mod common;

use common::{repo, shelfwise};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn ok(args: &[&str]) -> String {
    let out = shelfwise(args);
    assert!(out.status.success(), "shelfwise {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = shelfwise(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(err.contains(needle), "stderr of {args:?} lacks {needle:?}:\n{err}");
}

fn tmp(name: &str) -> PathBuf {
    common::scratch("shelfwise-cli-test", name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_eval_classify_on_a_fixture_shop() {
    let (model, part, json, preds) = (tmp("shop.shelfwise"), tmp("shop.swpart"), tmp("eval.json"), tmp("preds.csv"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    ok(&["train", "--train", s(&train), "--dev", s(&dev), "--out", s(&model), "--part", s(&part), "--epochs", "30", "--buckets", "4096", "--seed", "7"]);

    // Same seed, same bytes: training is deterministic.
    let again = tmp("shop2.shelfwise");
    ok(&["train", "--train", s(&train), "--dev", s(&dev), "--out", s(&again), "--epochs", "30", "--buckets", "4096", "--seed", "7"]);
    let (a, b) = (
        shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap(),
        shelfwise_model::ModelFile::from_bytes(&std::fs::read(&again).unwrap()).unwrap(),
    );
    assert_eq!(a.tensors, b.tensors, "same seed must give the same weights");

    // The part file assembles into the same model.
    let assembled = tmp("assembled.shelfwise");
    ok(&["assemble", "--part", s(&part), "--out", s(&assembled)]);
    let c = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&assembled).unwrap()).unwrap();
    assert_eq!(c.manifest.payload_sha256, a.manifest.payload_sha256);

    // A frozen encoder: the stack and the temperature are fitted on out-of-fold scores of every
    // row (train and dev), not on the dev texts alone.
    let t = &a.manifest.training;
    assert!(t["lexical"]["stack"]["fitted_on"].as_str().unwrap().starts_with("out-of-fold"), "{}", t["lexical"]["stack"]);
    assert_eq!(t["calibration"]["on"], "whole titles, out of fold");
    let dev_rows = csv::Reader::from_path(&dev).unwrap().records().count() as u64;
    let train_rows = csv::Reader::from_path(&train).unwrap().records().count() as u64;
    assert!(t["calibration"]["n"].as_u64().unwrap() > dev_rows, "every row's title, not the dev's {dev_rows}: {}", t["calibration"]);
    assert!(t["calibration"]["n"].as_u64().unwrap() <= dev_rows + train_rows, "{}", t["calibration"]);

    let table = ok(&["eval", "--model", s(&model), "--data", s(&dev), "--baseline-train", s(&train), "--json", s(&json)]);
    assert!(table.contains("acc_at_1") && table.contains("baseline"), "{table}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for k in [
        "n",
        "acc_at_1",
        "acc_at_3",
        "acc_at_5",
        "level_acc",
        "hier_precision",
        "hier_recall",
        "hier_f1",
        "macro_f1",
        "weighted_f1",
        "ece",
        "prefix_acc_at_1",
        "thresholds",
    ] {
        assert!(j.get(k).is_some(), "missing {k}");
        assert!(j["baseline"].get(k).is_some(), "baseline missing {k}");
    }
    assert_eq!(j["n"], 17);
    assert!(j["prefix_acc_at_1"]["0.6"].is_number() && j["prefix_acc_at_1"]["0.3"].is_number());
    assert_eq!(j["level_acc"].as_array().unwrap().len(), 3);
    // Six well-separated categories: both models must get nearly all of them.
    assert!(j["acc_at_1"].as_f64().unwrap() >= 0.9, "{}", j["acc_at_1"]);
    assert!(j["baseline"]["acc_at_1"].as_f64().unwrap() >= 0.8, "{}", j["baseline"]["acc_at_1"]);
    // Title by title: the titles only one of the two gets right differ by exactly the accuracy
    // difference (counted separately from the metrics above), and the table says so.
    for (pair, acc) in [("whole", &j["acc_at_1"]), ("prefix60", &j["prefix_acc_at_1"]["0.6"])] {
        let p = &j["paired"][pair];
        let base = if pair == "whole" { &j["baseline"]["acc_at_1"] } else { &j["baseline"]["prefix_acc_at_1"]["0.6"] };
        let diff = p["only_first"].as_i64().unwrap() - p["only_second"].as_i64().unwrap();
        assert_eq!(diff, ((acc.as_f64().unwrap() - base.as_f64().unwrap()) * 17.0).round() as i64, "{pair}: {p}");
        assert!((0.0..=1.0).contains(&p["p_value"].as_f64().unwrap()), "{p}");
    }
    assert_eq!(j["paired"]["first"], "model");
    assert!(table.contains("whole titles: only the model right on"), "{table}");

    let out = ok(&["classify", "--model", s(&model), "--json", "-k", "2", "Orbit 1.5 litre electric kettle", ""]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &v[0]["decision"];
    assert_eq!(d["suggestions"].as_array().unwrap().len(), 2);
    let top: Vec<&str> = d["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(top, vec!["Kitchen", "Cookware", "Kettles"]);
    assert_eq!(d["suggestions"][0]["levelScores"].as_array().unwrap().len(), 3);
    assert_eq!(v[1]["decision"]["suggestions"].as_array().unwrap().len(), 0, "empty title: no suggestions");

    ok(&["classify", "--model", s(&model), "--batch", s(&dev), "--out", s(&preds), "-k", "3"]);
    let mut rdr = csv::Reader::from_path(&preds).unwrap();
    let h = rdr.headers().unwrap().clone();
    assert!(h.iter().any(|c| c == "predicted_path") && h.iter().any(|c| c == "top_k"));
    assert_eq!(rdr.records().count(), 17);
}

#[test]
fn fine_tuned_blocks_go_into_the_part_as_int8_deltas_and_assemble_to_the_same_model() {
    let (model, part, assembled) = (tmp("ft.shelfwise"), tmp("ft.swpart"), tmp("ft-assembled.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    ok(&[
        "train",
        "--train",
        s(&train),
        "--dev",
        s(&dev),
        "--out",
        s(&model),
        "--part",
        s(&part),
        "--epochs",
        "3",
        "--buckets",
        "4096",
        "--seed",
        "7",
        "--finetune-layers",
        "1",
    ]);

    let p = shelfwise_model::ModelFile::from_bytes(&std::fs::read(&part).unwrap()).unwrap();
    let names: Vec<String> = shelfwise_model::classifier::load_tensors(&p.tensors).unwrap().into_keys().collect();
    // The top block's six matrices as deltas; the blocks below are the base's.
    let deltas: Vec<&String> = names.iter().filter(|n| n.ends_with(shelfwise_model::part::DELTA_CODES_SUFFIX)).collect();
    assert_eq!(deltas.len(), 6, "{names:?}");
    assert!(deltas.iter().all(|n| n.starts_with("encoder.layer.5.")), "{deltas:?}");
    assert!(!names.iter().any(|n| n.starts_with("encoder.layer.4.")), "{names:?}");
    // int8 deltas: the part is far smaller than the full file's f32 copy of that block would make it.
    assert!(std::fs::metadata(&part).unwrap().len() < 4_000_000, "{}", std::fs::metadata(&part).unwrap().len());

    // What train wrote as the full model is exactly what assemble makes of the part.
    ok(&["assemble", "--part", s(&part), "--out", s(&assembled)]);
    let (a, c) = (
        shelfwise_model::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap(),
        shelfwise_model::ModelFile::from_bytes(&std::fs::read(&assembled).unwrap()).unwrap(),
    );
    assert_eq!(c.manifest.payload_sha256, a.manifest.payload_sha256);
    // Fine-tuned: a head per fold would cost the training again; the stack stays on the dev texts.
    assert_eq!(a.manifest.training["calibration"]["on"], "held-out whole titles");

    let out = ok(&["classify", "--model", s(&assembled), "--json", "-k", "2", "Orbit 1.5 litre electric kettle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top: Vec<&str> = v[0]["decision"]["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(top, vec!["Kitchen", "Cookware", "Kettles"]);
}

#[test]
fn a_prefix_marker_tags_the_prefix_samples_and_is_recorded() {
    let (plain, tagged) = (tmp("plain.shelfwise"), tmp("tagged.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    let common = ["--train", s(&train), "--dev", s(&dev), "--epochs", "2", "--buckets", "1024", "--seed", "7"];
    ok(&[&["train", "--out", s(&plain)][..], &common].concat());
    ok(&[&["train", "--out", s(&tagged), "--prefix-marker", "…"][..], &common].concat());
    let manifest = |p: &Path| shelfwise_model::ModelFile::from_bytes(&std::fs::read(p).unwrap()).unwrap().manifest;
    let (a, b) = (manifest(&plain), manifest(&tagged));
    assert_eq!(a.training["prefix_marker"], serde_json::Value::Null);
    assert_eq!(b.training["prefix_marker"], "…");
    // Tagged prefixes are other texts (so other weights); a prefix that is the whole title is no
    // longer a duplicate of it once tagged, so there are at least as many samples.
    assert!(b.training["samples"].as_u64() >= a.training["samples"].as_u64(), "{} vs {}", b.training["samples"], a.training["samples"]);
    assert_ne!(a.payload_sha256, b.payload_sha256);
}

#[test]
fn quantization_aware_training_saves_the_weights_that_q4_stores() {
    let (model, q4) = (tmp("qat.shelfwise"), tmp("qat-q4.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    let common = ["--train", s(&train), "--dev", s(&dev), "--epochs", "2", "--buckets", "1024", "--seed", "7", "--finetune-layers", "1", "--qat", "q4"];
    ok(&[&["train", "--out", s(&model), "--keep-vocab", s(&train)][..], &common].concat());
    ok(&["quantize", "--in", s(&model), "--out", s(&q4), "--scheme", "q4"]);

    let read = |p: &Path| shelfwise_model::ModelFile::from_bytes(&std::fs::read(p).unwrap()).unwrap();
    let (f, q) = (read(&model), read(&q4));
    assert_eq!(f.manifest.training["qat"]["scheme"], "q4-block32");
    assert_eq!(q.manifest.quantization.as_ref().unwrap().pruned_vocab.as_ref().unwrap().source, "already pruned in the f32 model");
    assert_eq!(f.tokenizer, q.tokenizer, "the vocabulary was pruned once, in training");
    // Every weight the q4 file quantizes reads back exactly as the f32 model holds it.
    let (ft, qt) = (shelfwise_model::classifier::load_tensors(&f.tensors).unwrap(), shelfwise_model::classifier::load_tensors(&q.tensors).unwrap());
    let targets = shelfwise_model::quant::targets(&f.manifest, shelfwise_model::quant::Scheme::Q4);
    assert!(targets.len() > 30);
    for (name, _, _) in &targets {
        let dims = ft[name].dims().to_vec();
        // `quantize` drops the position rows past the token limit.
        let stored = if name.contains("position_embeddings") { vec![q.manifest.encoder.max_positions, dims[1]] } else { dims.clone() };
        let a = shelfwise_model::encoder::take(&ft, name, &dims).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = shelfwise_model::encoder::take(&qt, name, &stored).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(a[..b.len()] == b[..], "{name}: the q4 file stores other values than the QAT model");
    }
    // Dequantizing gives the QAT model's weights back, and quantizing that again the same file.
    let (back, again) = (tmp("qat-back.shelfwise"), tmp("qat-again.shelfwise"));
    ok(&["dequantize", "--in", s(&q4), "--out", s(&back)]);
    ok(&["quantize", "--in", s(&back), "--out", s(&again), "--scheme", "q4"]);
    assert_eq!(read(&again).tensors, q.tensors);
    let bt = shelfwise_model::classifier::load_tensors(&read(&back).tensors).unwrap();
    assert_eq!(
        bt["encoder.layer.5.output.dense.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        ft["encoder.layer.5.output.dense.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    fails_with(&["dequantize", "--in", s(&model), "--out", s(&tmp("x.shelfwise"))], "not quantized");

    let out = ok(&["classify", "--model", s(&q4), "--json", "-k", "1", "Orbit 1.5 litre electric kettle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top: Vec<&str> = v[0]["decision"]["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(top, vec!["Kitchen", "Cookware", "Kettles"]);

    // A part file's int8 deltas would move the weights off the grid.
    fails_with(&[&["train", "--out", s(&tmp("x.shelfwise")), "--part", s(&tmp("x.swpart"))][..], &common].concat(), "--part");
    fails_with(&["train", "--train", s(&train), "--out", s(&tmp("x.shelfwise")), "--keep-vocab", s(&train)], "--qat");
}

#[test]
fn calibrate_fits_the_label_prior_once_and_the_temperature() {
    let (plain, cal, cal2, q8) = (tmp("noprior.shelfwise"), tmp("cal.shelfwise"), tmp("cal2.shelfwise"), tmp("cal-q8.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    // The head alone: the prior is the head's (a lexical part's stack is fitted after it).
    let common = ["--train", s(&train), "--dev", s(&dev), "--epochs", "5", "--buckets", "1024", "--seed", "7", "--no-lexical"];
    ok(&[&["train", "--out", s(&plain), "--no-label-prior"][..], &common].concat());
    let read = |p: &Path| shelfwise_model::ModelFile::from_bytes(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(read(&plain).manifest.training["label_prior"], serde_json::Value::Null);

    ok(&["calibrate", "--model", s(&plain), "--data", s(&dev), "--out", s(&cal)]);
    let (a, b) = (read(&plain), read(&cal));
    let w = b.manifest.training["label_prior"]["weight"].as_f64().unwrap() as f32;
    // The fixture shop's category names say what its titles are ("Kettles", "Running Shoes"), so
    // the held-out fit must give the prior some weight (0 would mean no prior at all).
    assert!(w > 0.0 && shelfwise_core::calibration::PRIOR_WEIGHTS.contains(&w), "{w}");
    assert_eq!(b.manifest.training["calibration"]["by"], "shelfwise calibrate");
    assert!(b.manifest.head.temperature > 0.0);
    // The prior lives in the label weights: nothing else moves.
    let (at, bt) = (shelfwise_model::classifier::load_tensors(&a.tensors).unwrap(), shelfwise_model::classifier::load_tensors(&b.tensors).unwrap());
    let f32s = |t| shelfwise_model::storage::flat_f32(t).unwrap();
    for (name, t) in &at {
        assert_eq!(f32s(t) == f32s(&bt[name]), name != shelfwise_model::head::LABEL_WEIGHT, "{name}");
    }
    // ... and moves them by its definition, logits += w · cos(title, category path read as a
    // title): each label's row by w / embed_scale times the unit embedding of its path's segments
    // joined by spaces, embedded here by the uncalibrated model's own encoder.
    let lw = shelfwise_model::head::LABEL_WEIGHT;
    let (before, after) = (f32s(&at[lw]), f32s(&bt[lw]));
    let encoder = shelfwise_model::Classifier::from_bytes(&std::fs::read(&plain).unwrap()).unwrap();
    let (h, scale) = (a.manifest.encoder.hidden, a.manifest.head.embed_scale);
    for (i, label) in a.manifest.labels.iter().enumerate() {
        let e = encoder.embedding(&label.split(" > ").collect::<Vec<_>>().join(" ")).unwrap();
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        for j in 0..h {
            let (moved, want) = (after[i * h + j] - before[i * h + j], w / scale * e[j] / norm);
            assert!((moved - want).abs() <= 1e-5, "{label} [{j}]: moved {moved}, w/s·ê = {want}");
        }
    }
    let out = ok(&["classify", "--model", s(&cal), "--json", "-k", "1", "Orbit 1.5 litre electric kettle"]);
    assert!(out.contains("Kettles"), "{out}");

    // Calibrating again refits the temperature only: the prior is not added twice.
    ok(&["calibrate", "--model", s(&cal), "--data", s(&dev), "--out", s(&cal2)]);
    let c = read(&cal2);
    assert_eq!(c.tensors, b.tensors);
    assert_eq!(c.manifest.training["label_prior"], b.manifest.training["label_prior"]);

    // Errors: a quantized model (calibrate its f32 model), and held-out data of other categories.
    ok(&["quantize", "--in", s(&cal), "--out", s(&q8)]);
    fails_with(&["calibrate", "--model", s(&q8), "--data", s(&dev), "--out", s(&tmp("x.shelfwise"))], "is quantized");
    let other = tmp("other.csv");
    std::fs::write(&other, "title,category_path\nA red bicycle,Sports > Cycling\n").unwrap();
    fails_with(&["calibrate", "--model", s(&cal), "--data", s(&other), "--out", s(&tmp("x.shelfwise"))], "none of its categories");

    // train fits the prior by default.
    let default = tmp("prior-default.shelfwise");
    ok(&[&["train", "--out", s(&default)][..], &common].concat());
    assert!(read(&default).manifest.training["label_prior"]["weight"].is_number());
}

#[test]
fn quantized_model_still_ranks_the_kettle_first() {
    let (model, part, q8) = (tmp("qshop.shelfwise"), tmp("qshop.swpart"), tmp("qshop-q8.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    ok(&["train", "--train", s(&train), "--dev", s(&dev), "--out", s(&model), "--part", s(&part), "--epochs", "30", "--buckets", "4096", "--seed", "7"]);
    let sizes = ok(&["quantize", "--in", s(&model), "--out", s(&q8), "--scheme", "int8"]);
    assert!(sizes.contains("MB ->"), "{sizes}");
    assert!(std::fs::metadata(&q8).unwrap().len() < std::fs::metadata(&model).unwrap().len() / 3);

    let out = ok(&["classify", "--model", s(&q8), "--json", "-k", "2", "Orbit 1.5 litre electric kettle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top: Vec<&str> = v[0]["decision"]["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(top, vec!["Kitchen", "Cookware", "Kettles"]);

    fails_with(&["quantize", "--in", s(&model), "--out", s(&tmp("x.shelfwise")), "--scheme", "q3"], "unknown scheme");
    fails_with(&["quantize", "--in", s(&part), "--out", s(&tmp("x.shelfwise"))], "MODEL_INCOMPLETE");
    fails_with(&["quantize", "--in", s(&q8), "--out", s(&tmp("x.shelfwise"))], "already quantized");
}

#[test]
fn clear_errors_for_bad_input_files() {
    let empty = tmp("empty.csv");
    std::fs::write(&empty, "title,category_path\n").unwrap();
    fails_with(&["train", "--train", s(&empty), "--out", s(&tmp("x.shelfwise"))], "no labelled rows");
    let nocol = tmp("nocol.csv");
    std::fs::write(&nocol, "name,category\nshoe,A > B\n").unwrap();
    fails_with(&["train", "--train", s(&nocol), "--out", s(&tmp("x.shelfwise"))], "no column \"title\"");
    fails_with(&["train", "--train", s(&nocol), "--out", s(&tmp("x.shelfwise")), "--text-col", "name"], "no column \"category_path\"");
    let one = tmp("one.csv");
    std::fs::write(&one, "title,category_path\nred shoe,A > B\nblue shoe,A > B\n").unwrap();
    fails_with(&["train", "--train", s(&one), "--dev", s(&one), "--out", s(&tmp("x.shelfwise"))], "only one category");
    let badpath = tmp("badpath.csv");
    std::fs::write(&badpath, "title,category_path\nred shoe,A >  > B\n").unwrap();
    fails_with(&["train", "--train", s(&badpath), "--out", s(&tmp("x.shelfwise"))], "bad category_path");
    let junk = tmp("junk.shelfwise");
    std::fs::write(&junk, b"<html>not a model</html>").unwrap();
    fails_with(&["classify", "--model", s(&junk), "shoe"], "MODEL_NOT_A_MODEL");
    fails_with(&["classify", "--model", s(&tmp("missing.shelfwise")), "shoe"], "cannot read model");
}

#[test]
fn shipped_model_classifies_example_titles() {
    let out = ok(&["classify", "--json", "-k", "3", "Sterling silver heart pendant necklace for women", "Pigeon 1.5 L electric kettle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let top = |i: usize| -> String {
        v[i]["decision"]["suggestions"][0]["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>().join(" > ")
    };
    assert!(top(0).starts_with("Jewellery"), "{}", top(0));
    assert!(top(1).starts_with("Home & Kitchen") || top(1).starts_with("Kitchen"), "{}", top(1));
}

#[test]
fn bench_times_models_side_by_side() {
    let (q4, json) = (repo().join("models/flipkart-minilm/model.shelfwise"), tmp("bench.json"));
    let titles = fixture("shop_dev.csv");
    let table = ok(&[
        "bench",
        "--model",
        s(&q4),
        "--model",
        s(&q4),
        "--data",
        s(&titles),
        "--titles",
        "5",
        "--typed",
        "2",
        "--warmup",
        "1",
        "--loads",
        "1",
        "--json",
        s(&json),
    ]);
    assert!(table.contains("model.shelfwise") && table.contains("q4"), "{table}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["titles"], 5, "at most --titles, spread over the file");
    let r = j["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["file_bytes"], std::fs::metadata(&q4).unwrap().len());
    assert_eq!(r[0]["scheme"], "q4-block32");
    assert_eq!(r[0]["title_ms"]["n"], 5);
    // Every character prefix of the first two titles, each timed once.
    let rows: Vec<String> = csv::Reader::from_path(&titles).unwrap().records().map(|r| r.unwrap()[1].to_string()).collect();
    let typed: usize = (0..2).map(|i| rows[i * rows.len() / 5].trim().chars().count()).sum();
    assert_eq!(r[0]["keystroke_ms"]["n"], typed);
    // Ratios are to the first row's own times: the second row's are its times over the first's
    // (two timings of the same file, so nothing says they are 1).
    let f = |row: usize, k: &str, q: &str| r[row][k][q].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
    assert!(close(r[1]["title_p50_ratio"].as_f64().unwrap(), f(1, "title_ms", "p50") / f(0, "title_ms", "p50")), "{}", r[1]);
    assert!(close(r[1]["keystroke_p50_ratio"].as_f64().unwrap(), f(1, "keystroke_ms", "p50") / f(0, "keystroke_ms", "p50")), "{}", r[1]);
    let tput = |row: usize| r[row]["batch_titles_per_s"].as_f64().unwrap();
    assert!(close(r[1]["throughput_ratio"].as_f64().unwrap(), tput(1) / tput(0)), "{}", r[1]);
    for k in ["load_ms", "tokens_mean", "batch_titles_per_s", "throughput_ratio"] {
        assert!(r[1][k].as_f64().unwrap() > 0.0, "{k}: {}", r[1][k]);
    }
    let l = &r[1]["title_ms"];
    assert!(l["p50"].as_f64().unwrap() <= l["p95"].as_f64().unwrap() && l["p95"].as_f64().unwrap() <= l["p99"].as_f64().unwrap());
    fails_with(&["bench", "--model", s(&q4), "--data", s(&tmp("no-titles.txt"))], "cannot read");
}

/// `classify --batch` of `csv` with the shipped model on `backend`: (predicted_path, error) a row.
fn batch_predictions(csv: &Path, backend: &str, env: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
    let preds = tmp(&format!("preds-{backend}.csv"));
    let out = Command::new(env!("CARGO_BIN_EXE_shelfwise"))
        .args(["classify", "--backend", backend, "--batch", s(csv), "--out", s(&preds)])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut rdr = csv::Reader::from_path(&preds).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (p, e) = (col("predicted_path"), col("error"));
    Ok(rdr.records().map(|r| r.unwrap()).map(|r| (r[p].to_string(), r[e].to_string())).collect())
}

#[test]
fn batch_flags_a_title_over_the_limit_and_classifies_the_rest() {
    let csv = tmp("long.csv");
    let mut text = std::fs::read_to_string(fixture("shop_dev.csv")).unwrap();
    text.push_str(&format!("long,{},Kitchen > Cookware > Kettles\n", "kettle ".repeat(700)));
    std::fs::write(&csv, text).unwrap();
    let rows = batch_predictions(&csv, "cpu", &[]).unwrap();
    assert_eq!(rows.len(), 18);
    assert_eq!(rows[17], (String::new(), "INPUT_TOO_LONG".to_string()));
    assert!(rows[..17].iter().all(|(p, e)| !p.is_empty() && e.is_empty()), "{rows:?}");
}

#[test]
fn gpu_backend_decides_like_the_cpu_and_auto_falls_back_without_an_adapter() {
    let csv = fixture("shop_dev.csv");
    let cpu = batch_predictions(&csv, "cpu", &[]).unwrap();
    // No Vulkan driver to be found: `gpu` is GPU_UNAVAILABLE, `auto` answers on the CPU.
    let no_gpu = [("VK_ICD_FILENAMES", "/nonexistent/icd.json"), ("VK_DRIVER_FILES", "/nonexistent/icd.json")];
    let err = batch_predictions(&csv, "gpu", &no_gpu).unwrap_err();
    assert!(err.contains("error [GPU_UNAVAILABLE]"), "{err}");
    assert_eq!(batch_predictions(&csv, "auto", &no_gpu).unwrap(), cpu);
    match batch_predictions(&csv, "gpu", &[]) {
        // The GPU encoder's own tests hold its embeddings to the CPU's; here the whole path
        // (encode, GPU embedding, the shared head) must give the CPU's top-1 on every title.
        Ok(gpu) => assert_eq!(gpu, cpu),
        Err(e) if e.contains("GPU_UNAVAILABLE") && std::env::var_os("SHELFWISE_REQUIRE_GPU").is_none() => {
            eprintln!("SKIPPED: no GPU adapter ({e})")
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn add_lexical_gives_a_quantized_model_a_lexical_part_once() {
    let (plain, q8, lex) = (tmp("nolex.shelfwise"), tmp("nolex-q8.shelfwise"), tmp("lex-q8.shelfwise"));
    let (train, dev) = (fixture("shop_train.csv"), fixture("shop_dev.csv"));
    ok(&["train", "--train", s(&train), "--dev", s(&dev), "--out", s(&plain), "--epochs", "10", "--buckets", "4096", "--no-lexical"]);
    let read = |p: &Path| shelfwise_model::ModelFile::from_bytes(&std::fs::read(p).unwrap()).unwrap();
    assert!(read(&plain).manifest.lexical.is_none());
    ok(&["quantize", "--in", s(&plain), "--out", s(&q8), "--scheme", "int8"]);
    let out = shelfwise(&["add-lexical", "--model", s(&q8), "--train", s(&train), "--heldout", s(&dev), "--out", s(&lex)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("held out (17 titles") && err.contains("TF-IDF SVM"), "the comparison is printed:\n{err}");
    assert!(err.contains("whole titles: only the model right on") && err.contains("exact McNemar"), "the paired split too:\n{err}");
    let file = read(&lex);
    let cmp = &file.manifest.training["heldout_comparison"];
    let p = &cmp["paired"]["whole"];
    let diff = p["only_first"].as_i64().unwrap() - p["only_second"].as_i64().unwrap();
    let acc_diff = cmp["model"]["acc_at_1"].as_f64().unwrap() - cmp["baseline"]["acc_at_1"].as_f64().unwrap();
    assert_eq!(diff, (acc_diff * 17.0).round() as i64, "{cmp}");
    let l = file.manifest.lexical.as_ref().expect("a lexical part");
    assert_eq!(l.stack.len(), 4);
    assert!(file.manifest.quantization.is_some(), "still the quantized model");
    assert_eq!(file.manifest.training["lexical"]["added_by"], "shelfwise add-lexical");
    let bytes = std::fs::read(&lex).unwrap();
    // The gate replaces the buckets only where it won the cross-fitted comparison (format 3).
    let used = if l.gate.is_some() { "gate" } else { "buckets" };
    assert_eq!(file.manifest.training["lexical"]["stack"]["choice"]["used"], used);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), if l.gate.is_some() { 3 } else { 2 });
    // It classifies; a second lexical part is refused.
    let v: serde_json::Value = serde_json::from_str(&ok(&["classify", "--model", s(&lex), "--json", "-k", "1", "Orbit 1.5 litre electric kettle"])).unwrap();
    assert_eq!(v[0]["decision"]["suggestions"][0]["path"][2]["name"], "Kettles");
    fails_with(&["add-lexical", "--model", s(&lex), "--train", s(&train), "--heldout", s(&dev), "--out", s(&tmp("x.shelfwise"))], "has a lexical part already");
}
