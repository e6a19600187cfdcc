//! `shelfwise eval`: every metric on a labelled CSV, on whole titles and on typed prefixes,
//! optionally beside the TF-IDF linear SVM baseline trained on a given CSV.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rayon::prelude::*;
use serde_json::{json, Value};
use shelfwise_core::baseline::{self, LinearSvm, TfidfVectorizer};
use shelfwise_core::calibration::softmax;
use shelfwise_core::decision::top_k;
use shelfwise_core::metrics::{confusions, evaluate, per_category, reliability, Example, Paired, DEFAULT_THRESHOLDS};
use shelfwise_core::{prefix, LabelSpace};
use shelfwise_model::train::embed::in_length_batches;
use shelfwise_model::Classifier;

use crate::data::{read_labelled, sha256_file, Row};
use crate::progress::Bars;

pub const PREFIX_FRACTIONS: [f64; 2] = [0.3, 0.6];
/// The report's typing curve: acc@1 on the first 10 %, 20 %, … of each title's words.
const CURVE_FRACTIONS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[arg(long, default_value_os_t = crate::default_model())]
    pub model: PathBuf,
    /// Labelled CSV to evaluate on.
    #[arg(long)]
    pub data: PathBuf,
    /// Also train the TF-IDF (word 1–2 + char_wb 2–5) LinearSVC baseline, scikit-learn's recipe, on this CSV and evaluate it.
    #[arg(long)]
    pub baseline_train: Option<PathBuf>,
    /// Write all results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report here (tables and charts; it loads nothing).
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    #[arg(long, default_value = "category_path")]
    pub label_col: String,
}

/// Probabilities for a batch of texts, one row per text.
type Probs = Result<Vec<Vec<f32>>>;
type Scorer<'a> = dyn Fn(&[String]) -> Probs + 'a;

/// Which rows a scorer gets right at top-1: on whole titles and on their 60 % prefixes (for the
/// paired comparison of model and baseline).
struct Right {
    whole: Vec<bool>,
    prefix60: Vec<bool>,
}

fn right_at_1(space: &LabelSpace, rows: &[Row], probs: &[Vec<f32>]) -> Vec<bool> {
    rows.iter().zip(probs).map(|(r, p)| top_k(p, 1).first().is_some_and(|&t| space.label_string(t) == r.label())).collect()
}

/// Metrics JSON for one scorer: whole titles plus prefix accuracy; with `detailed`, also what
/// the HTML report draws (reliability bins, per-category scores, confusions, the typing curve).
fn report(space: &LabelSpace, rows: &[Row], score: &Scorer, detailed: bool) -> Result<(Value, Right)> {
    let whole: Vec<String> = rows.iter().map(|r| r.title.clone()).collect();
    let probs = score(&whole)?;
    let mut right = Right { whole: right_at_1(space, rows, &probs), prefix60: Vec::new() };
    let examples: Vec<Example> = rows.iter().zip(&probs).map(|(r, p)| Example { gold: &r.path, probs: p }).collect();
    let m = evaluate(space, &examples, &DEFAULT_THRESHOLDS);
    let mut v = serde_json::to_value(&m)?;
    let prefix_scores = |f: f64| -> Result<(f64, Vec<Vec<f32>>)> {
        let texts: Vec<String> = rows.iter().map(|r| prefix(&r.title, f)).collect();
        let probs = score(&texts)?;
        let ex: Vec<Example> = rows.iter().zip(&probs).map(|(r, p)| Example { gold: &r.path, probs: p }).collect();
        Ok((evaluate(space, &ex, &[]).acc_at_1, probs))
    };
    let prefix_acc = |f: f64| -> Result<f64> { Ok(prefix_scores(f)?.0) };
    let mut pre = serde_json::Map::new();
    for f in PREFIX_FRACTIONS {
        let (acc, probs) = prefix_scores(f)?;
        if f == 0.6 {
            right.prefix60 = right_at_1(space, rows, &probs);
        }
        pre.insert(f.to_string(), json!(acc));
    }
    v["prefix_acc_at_1"] = Value::Object(pre.clone());
    if detailed {
        let top: Vec<usize> = probs.iter().map(|p| top_k(p, 1)[0]).collect();
        let gold: Vec<String> = rows.iter().map(Row::label).collect();
        let pred: Vec<String> = top.iter().map(|&t| space.label_string(t)).collect();
        let conf: Vec<f32> = probs.iter().zip(&top).map(|(p, &t)| p[t]).collect();
        let curve = CURVE_FRACTIONS
            .iter()
            .map(|&f| {
                // Whole titles and the table's prefixes are scored already: not twice.
                let acc = match pre.get(&f.to_string()) {
                    Some(a) => a.clone(),
                    None if f == 1.0 => json!(m.acc_at_1),
                    None => json!(prefix_acc(f)?),
                };
                Ok(json!({ "fraction": f, "acc_at_1": acc }))
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<Value> = confusions(&gold, &pred, 20, 3)
            .into_iter()
            .map(|c| {
                let titles: Vec<&str> = c.examples.iter().map(|&i| rows[i].title.as_str()).collect();
                json!({ "gold": c.gold, "predicted": c.predicted, "count": c.count, "examples": titles })
            })
            .collect();
        v["details"] = json!({
            "reliability": reliability(&conf, &right.whole, 10),
            "per_category": per_category(&gold, &pred),
            "confusions": pairs,
            "typing_curve": curve,
        });
    }
    Ok((v, right))
}

/// Calibrated probabilities for many titles, in length-sorted batches.
pub fn model_probs(clf: &Classifier, texts: &[String], msg: &str) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); texts.len()];
    in_length_batches(texts, msg, &Bars::default(), |idx, batch| {
        for (&i, p) in idx.iter().zip(clf.probs(batch)?) {
            out[i] = p;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Trains one baseline class: its index in, its weights out.
type PerClass<'a> = dyn Fn(usize) -> Vec<f32> + Sync + 'a;

pub fn parallel_classes(f: &PerClass<'_>, n: usize) -> Vec<Vec<f32>> {
    (0..n).into_par_iter().map(f).collect()
}

/// Trains the baseline; returns its label space and a scorer (softmax of SVM decision values,
/// used for ranking; the baseline is not calibrated).
pub fn baseline(rows: &[Row]) -> Result<(LabelSpace, impl Fn(&[String]) -> Probs)> {
    let labels: Vec<String> = rows.iter().map(Row::label).collect();
    let space = LabelSpace::from_raw_paths(labels.iter().map(String::as_str))?;
    let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
    let vec = TfidfVectorizer::fit(&titles);
    let x: Vec<_> = titles.par_iter().map(|t| vec.transform(t)).collect();
    let y: Vec<usize> = labels.iter().map(|l| space.find(l).expect("label from these rows")).collect();
    eprintln!("baseline: {} features, {} classes", vec.n_features(), space.len());
    let svm = LinearSvm::train(&x, &y, vec.n_features(), space.len(), baseline::C, parallel_classes);
    let score = move |texts: &[String]| -> Result<Vec<Vec<f32>>> { Ok(texts.par_iter().map(|t| softmax(&svm.scores(&vec.transform(t)), 1.0)).collect()) };
    Ok((space, score))
}

const KEYS: [&str; 11] = ["n", "acc_at_1", "acc_at_3", "acc_at_5", "hier_precision", "hier_recall", "hier_f1", "macro_f1", "weighted_f1", "ece", "unseen_gold"];

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(" "),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn run(a: EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).map_err(|e| anyhow::anyhow!("cannot read model {}: {e}", a.model.display()))?;
    let clf = Classifier::from_bytes(&bytes)?;
    let rows = read_labelled(&a.data, &a.text_col, &a.label_col)?;
    let detailed = a.report.is_some();
    let (mut out, right) = report(clf.labels(), &rows, &|t| model_probs(&clf, t, "eval"), detailed)?;
    let mut paired = Vec::new();
    if let Some(bt) = &a.baseline_train {
        let brows = read_labelled(bt, &a.text_col, &a.label_col)?;
        let (space, score) = baseline(&brows)?;
        let (base, base_right) = report(&space, &rows, &score, detailed)?;
        out["baseline"] = base;
        out["baseline"]["train_csv"] = json!({ "file": bt.display().to_string(), "sha256": sha256_file(bt)? });
        // Title by title, on the same rows: is the difference beyond the noise of this many titles?
        paired = vec![("whole titles", Paired::new(&right.whole, &base_right.whole)), ("60 % of words", Paired::new(&right.prefix60, &base_right.prefix60))];
        out["paired"] = json!({ "first": "model", "second": "baseline", "whole": paired[0].1, "prefix60": paired[1].1 });
    }
    out["model"] = json!({ "name": clf.manifest().name, "file_sha256": shelfwise_model::format::sha256_hex(&[&bytes]) });
    out["data"] = json!({ "file": a.data.display().to_string(), "sha256": sha256_file(&a.data)?, "rows": rows.len() });

    let has_base = out.get("baseline").is_some();
    println!("{:<22} {:>12}{}", "metric", "model", if has_base { format!(" {:>12}", "baseline") } else { String::new() });
    let mut keys: Vec<String> = KEYS.iter().map(|s| s.to_string()).collect();
    keys.push("level_acc".into());
    for f in PREFIX_FRACTIONS {
        keys.push(format!("prefix_acc_at_1@{f}"));
    }
    for k in keys {
        let get = |v: &Value| match k.split_once('@') {
            Some((a, b)) => v[a][b].clone(),
            None => v[&k].clone(),
        };
        let b = if has_base { format!(" {:>12}", cell(&get(&out["baseline"]))) } else { String::new() };
        println!("{:<22} {:>12}{}", k, cell(&get(&out)), b);
    }
    if !paired.is_empty() {
        println!("\nmodel against baseline, title by title:");
        for (what, p) in &paired {
            println!("  {what}: {}", p.describe("model", "baseline"));
        }
    }
    println!("\nthreshold  coverage  accuracy  decision_precision");
    for t in out["thresholds"].as_array().into_iter().flatten() {
        println!("{:>9} {:>9} {:>9} {:>19}", cell(&t["threshold"]), cell(&t["coverage"]), cell(&t["accuracy"]), cell(&t["decision_precision"]));
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &a.report {
        std::fs::write(p, crate::report::html(&out))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
