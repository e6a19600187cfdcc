//! Training the lexical part: the baseline's TF-IDF + LinearSVC (`shelfwise_core::baseline`, the
//! very code `eval --baseline-train` runs) on the training titles, pruned and quantized to the
//! stored form, then the stack fitted on held-out texts, and the held-out comparison with the
//! baseline that `train` ends by printing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use shelfwise_core::baseline::{self, LinearSvm, SparseRow, TfidfVectorizer};
use shelfwise_core::calibration::{fit_temperature_top1, softmax};
use shelfwise_core::decision::top_k;
use shelfwise_core::lexical::{fit_gate, fit_stack, stacked, word_count, Lexical, Pruned, StackBucket, StackGate, STACK_BOUNDS};
use shelfwise_core::metrics::{ece, Paired};
use shelfwise_core::{prefix, LabelSpace};

use crate::classifier::Classifier;
use crate::error::Result;
use crate::format::{LexicalConfig, ModelFile, LEXICAL_ANALYZER};
use crate::progress::Progress;
use crate::storage::{load_tensors, tensors_to_bytes};
use crate::train::examples::{DataSource, Example, HeldOutTexts, TrainError};

/// How the lexical part is trained and stored.
#[derive(Debug, Clone, Serialize)]
pub struct LexicalOptions {
    /// Keep at most this many SVM weights (largest |w|; 3 bytes each in the file).
    pub max_weights: usize,
    /// Also train on these prefixes of each title (fractions of its words); empty: whole titles,
    /// the baseline's own data.
    pub prefix_fractions: Vec<f64>,
    /// Train the SVM on at most this many texts (an even sample by title hash beyond it): its cost
    /// grows with texts × classes, ~20 s for 10k titles and 900 classes on 2 cores.
    pub max_texts: usize,
    /// When the held-out rows are a split of the training CSV: fit the SVM again on all its rows
    /// once the stack is fitted (the stack's weights stay).
    pub refit_all: bool,
    /// Debugging aid, not for users (`train --dump-stack DIR`, hidden): write the stack's inputs on
    /// the held-out texts there ([`dump_scores`]).
    pub dump_stack: Option<std::path::PathBuf>,
}

impl Default for LexicalOptions {
    fn default() -> Self {
        Self { max_weights: DEFAULT_MAX_WEIGHTS, prefix_fractions: Vec::new(), max_texts: 60_000, refit_all: true, dump_stack: None }
    }
}

/// 500k weights: 1.5 MB of class ids and codes, plus ~11 bytes an n-gram.
pub const DEFAULT_MAX_WEIGHTS: usize = 500_000;

/// What [`fit`] made.
pub struct LexicalFit {
    /// The stored form (pruned, int8; as it reads back from the file).
    pub lexical: Lexical,
    pub pruned: Pruned,
    /// The unpruned vectorizer and SVM: when trained on whole titles, the baseline itself.
    pub vectorizer: TfidfVectorizer,
    pub svm: LinearSvm,
    pub texts: usize,
    pub seconds: f64,
}

/// Runs `f(class)` for `n` classes on all cores, reporting each class done to `progress`.
fn parallel_classes(f: &(dyn Fn(usize) -> Vec<f32> + Sync), n: usize, progress: &dyn Progress) -> Vec<Vec<f32>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.max(1));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Vec<f32>>> = Mutex::new(vec![Vec::new(); n]);
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, out) = (&next, &out);
            s.spawn(move || loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= n {
                    break;
                }
                let w = f(c);
                out.lock().unwrap_or_else(|e| e.into_inner())[c] = w;
                let _ = tx.send(());
            });
        }
        drop(tx);
        // The bars are drawn from this thread: `Progress` need not be `Sync`.
        for () in rx {
            progress.advance(1);
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Trains the TF-IDF + linear SVM on `rows` (whole titles, plus `opts.prefix_fractions` prefixes)
/// with `labels`' ids, and makes its stored form.
pub fn fit(rows: &[Example], labels: &LabelSpace, opts: &LexicalOptions, progress: &dyn Progress) -> Result<LexicalFit> {
    let started = std::time::Instant::now();
    let mut texts: Vec<(String, usize)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        let Some(y) = labels.find(&r.label()) else { continue };
        // Every row's title, repeats included, as the baseline trains; prefixes once each.
        seen.insert((r.title.clone(), y));
        texts.push((r.title.clone(), y));
        for t in opts.prefix_fractions.iter().map(|&f| prefix(&r.title, f)) {
            if !t.trim().is_empty() && seen.insert((t.clone(), y)) {
                texts.push((t, y));
            }
        }
    }
    if texts.len() > opts.max_texts {
        // An even sample by hash, so the same data gives the same model.
        let keep = opts.max_texts as f64 / texts.len() as f64;
        texts.retain(|(t, _)| (shelfwise_core::ngram::fnv1a(t.as_bytes()) % 1_000_000) as f64 / 1e6 < keep);
        progress.note(&format!("lexical part: trained on a sample of {} texts (at most {} by default)", texts.len(), opts.max_texts));
    }
    let refs: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
    let y: Vec<usize> = texts.iter().map(|(_, y)| *y).collect();
    let vectorizer = TfidfVectorizer::fit(&refs);
    let x: Vec<SparseRow> = refs.iter().map(|t| vectorizer.transform(t)).collect();
    progress.start("fit TF-IDF SVM", labels.len() as u64);
    let svm = LinearSvm::train(&x, &y, vectorizer.n_features(), labels.len(), baseline::C, |f, n| parallel_classes(f, n, progress));
    progress.finish(true);
    let (lexical, pruned) = Lexical::from_fitted(&vectorizer, &svm, opts.max_weights);
    let lexical = crate::lexical::as_stored(&lexical)?;
    progress.note(&format!(
        "lexical part: {} n-grams, {} of {} SVM weights kept ({} texts, {:.0} s)",
        lexical.n_features(),
        pruned.kept,
        pruned.nonzero,
        texts.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(LexicalFit { lexical, pruned, vectorizer, svm, texts: texts.len(), seconds: started.elapsed().as_secs_f64() })
}

/// Held-out figures of one scorer: acc@1, acc@5 and ECE on whole titles, acc@1 on 60 % prefixes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HeldOut {
    pub acc_at_1: f64,
    pub acc_at_5: f64,
    pub prefix60_acc_at_1: Option<f64>,
    pub ece: f64,
}

/// [`HeldOut`] of probabilities for whole titles (`whole`) and their 60 % prefixes (`p60`, where
/// known) against `gold` (`None`: a category the model does not have, always wrong).
pub fn held_out(whole: &[Vec<f32>], p60: Option<&[Vec<f32>]>, gold: &[Option<usize>]) -> HeldOut {
    let n = gold.len().max(1) as f64;
    let hit = |p: &[f32], g: &Option<usize>, k: usize| g.is_some_and(|g| top_k(p, k).contains(&g));
    let acc = |probs: &[Vec<f32>], k: usize| probs.iter().zip(gold).filter(|(p, g)| hit(p, g, k)).count() as f64 / n;
    let conf: Vec<f32> = whole.iter().map(|p| p.iter().copied().fold(0.0, f32::max)).collect();
    let right = right_at_1(whole, gold);
    HeldOut { acc_at_1: acc(whole, 1), acc_at_5: acc(whole, 5), prefix60_acc_at_1: p60.map(|p| acc(p, 1)), ece: ece(&conf, &right, 15) }
}

/// Whether each item's top-1 is its gold label (unknown gold: wrong).
fn right_at_1(probs: &[Vec<f32>], gold: &[Option<usize>]) -> Vec<bool> {
    probs.iter().zip(gold).map(|(p, g)| g.is_some_and(|g| top_k(p, 1).contains(&g))).collect()
}

/// The baseline's scores on whole titles and on their 60 % prefixes: softmax of its decision
/// values (as `eval --baseline-train` ranks).
fn baseline_probs(vectorizer: &TfidfVectorizer, svm: &LinearSvm, titles: &[String]) -> [Vec<Vec<f32>>; 2] {
    let probs = |ts: &mut dyn Iterator<Item = String>| -> Vec<Vec<f32>> { ts.map(|t| softmax(&svm.scores(&vectorizer.transform(&t)), 1.0)).collect() };
    [probs(&mut titles.iter().cloned()), probs(&mut titles.iter().map(|t| prefix(t, 0.6)))]
}

/// Held-out texts as training makes them ([`crate::train::with_prefixes`]): whole titles and
/// prefixes (tagged with `marker`, if any), their labels and which are whole.
pub struct HeldTexts<'a> {
    pub texts: &'a [String],
    pub gold: &'a [Option<usize>],
    pub whole: &'a [bool],
    pub marker: Option<&'a str>,
}

/// What a stack fitted on held-out data was fitted on, for the manifest.
pub const HELD_OUT_TEXTS: &str = "held-out titles and prefixes";

/// Folds of the cross-fitted choice between the gate and the length buckets.
const STACK_FOLDS: usize = 5;

/// The stack [`choose_stack`] keeps, and the cross-fitted counts it chose by: texts right
/// `[whole titles, all texts]` with the gate and with the buckets.
#[derive(Debug)]
pub struct StackChoice {
    pub buckets: Vec<StackBucket>,
    pub gate: Option<StackGate>,
    pub right_gate: [usize; 2],
    pub right_buckets: [usize; 2],
}

/// The length buckets fitted on all texts, and the gate fitted on all texts when, cross-fitted
/// (`folds` folds by title: a title's prefixes, which follow it, share its fold; each fold scored
/// by both fitted on the others), it is right on at least as many whole titles and at least as
/// many texts as the buckets. `head`: logits, `lexical`: SVM scores, `whole`: which texts are
/// whole titles, `gold`: labels (`None` counts wrong).
pub fn choose_stack(head: &[Vec<f32>], lexical: &[Vec<f32>], titles: &[&str], gold: &[Option<usize>], whole: &[bool], folds: usize) -> StackChoice {
    let words: Vec<usize> = titles.iter().map(|t| word_count(t)).collect();
    let title_of: Vec<usize> = whole
        .iter()
        .scan(0usize, |n, &w| {
            *n += usize::from(w);
            Some(n.saturating_sub(1))
        })
        .collect();
    fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
        idx.iter().map(|&i| v[i].clone()).collect()
    }
    let folds = folds.max(2);
    let (mut right_b, mut right_g) = ([0usize; 2], [0usize; 2]);
    for f in 0..folds {
        let (fit_idx, test_idx): (Vec<usize>, Vec<usize>) = (0..titles.len()).partition(|&i| title_of[i] % folds != f);
        let (h, s, w, t, g) = (pick(head, &fit_idx), pick(lexical, &fit_idx), pick(&words, &fit_idx), pick(titles, &fit_idx), pick(gold, &fit_idx));
        let buckets = fit_stack(&h, &s, &w, &g, &STACK_BOUNDS);
        let gate = fit_gate(&h, &s, &t, &g);
        for &i in &test_idx {
            let Some(y) = gold[i] else { continue };
            let right = |z: Vec<f32>| usize::from(top_k(&z, 1)[0] == y);
            let b = right(stacked(&head[i], &lexical[i], titles[i], &buckets, None));
            let gg = gate.as_ref().map_or(b, |gate| right(stacked(&head[i], &lexical[i], titles[i], &buckets, Some(gate))));
            for (k, on) in [whole[i], true].into_iter().enumerate() {
                if on {
                    right_b[k] += b;
                    right_g[k] += gg;
                }
            }
        }
    }
    let buckets = fit_stack(head, lexical, &words, gold, &STACK_BOUNDS);
    let wins = right_g[0] >= right_b[0] && right_g[1] >= right_b[1];
    let gate = if wins { fit_gate(head, lexical, titles, gold) } else { None };
    StackChoice { buckets, gate, right_gate: right_g, right_buckets: right_b }
}

/// The stack fitted on `held`'s texts: the length buckets, and the gate where it wins.
pub struct StackFit {
    pub buckets: Vec<StackBucket>,
    pub gate: Option<StackGate>,
    /// The stacked logits of `held`'s texts.
    pub logits: Vec<Vec<f32>>,
    /// The cross-fitted comparison the choice was made on, for the manifest.
    pub choice: Value,
}

/// Fits the stack of `head` logits (of `held`'s texts) with `fit`'s lexical scores: the length
/// buckets ([`fit_stack`]) and the gate ([`fit_gate`]), and keeps the gate when, cross-fitted on
/// the held-out texts (5 folds by title, each fold scored by both fitted on the other four), it
/// is right on at least as many whole titles and at least as many texts (titles and prefixes) as
/// the buckets. The buckets are stored either way (what a file without a gate scores with).
/// `dump`: [`LexicalOptions::dump_stack`].
pub fn stack(held: &HeldTexts, head: &[Vec<f32>], fit: &Lexical, dump: Option<&std::path::Path>, progress: &dyn Progress) -> StackFit {
    let scores: Vec<Vec<f32>> = held.texts.iter().map(|t| fit.scores(t)).collect();
    stack_scores(held, head, &scores, dump, progress)
}

/// [`stack`] on lexical scores already computed (`scores[i]` of `held.texts[i]`): e.g.
/// out-of-fold scores, each from an SVM that did not see that text's title.
pub fn stack_scores(held: &HeldTexts, head: &[Vec<f32>], scores: &[Vec<f32>], dump: Option<&std::path::Path>, progress: &dyn Progress) -> StackFit {
    if let Some(Err(e)) = dump.map(|dir| dump_scores(dir, "heldout", held.texts, held.gold, held.whole, head, scores)) {
        progress.note(&format!("--dump-stack: {e}"));
    }
    let titles: Vec<&str> = held.texts.iter().map(String::as_str).collect();
    let StackChoice { buckets, gate, right_gate: right_g, right_buckets: right_b } = choose_stack(head, scores, &titles, held.gold, held.whole, STACK_FOLDS);
    let logits = (0..head.len()).map(|i| stacked(&head[i], &scores[i], titles[i], &buckets, gate.as_ref())).collect();
    let text: Vec<String> = buckets
        .iter()
        .map(|b| {
            let upto = if b.up_to_words == u32::MAX { "longer".to_string() } else { format!("≤{} words", b.up_to_words) };
            format!("{upto}: {:.2}·head + {:.2}·svm", b.head, b.lexical)
        })
        .collect();
    progress.note(&format!("stack buckets (fitted on {} texts): {}", held.texts.len(), text.join("; ")));
    let n_whole = held.whole.iter().filter(|&&w| w).count();
    progress.note(&format!(
        "stack gate, cross-fitted ({STACK_FOLDS} folds): right on {} / {} whole titles and {} / {} texts, the buckets on {} and {}: {}",
        right_g[0],
        n_whole,
        right_g[1],
        titles.len(),
        right_b[0],
        right_b[1],
        if gate.is_some() { "the gate is used" } else { "the buckets are used" }
    ));
    let choice = json!({
        "folds": STACK_FOLDS,
        "gate_right": { "whole": right_g[0], "texts": right_g[1] },
        "buckets_right": { "whole": right_b[0], "texts": right_b[1] },
        "whole": n_whole,
        "texts": titles.len(),
        "used": if gate.is_some() { "gate" } else { "buckets" },
    });
    StackFit { buckets, gate, logits, choice }
}

/// Debugging aid, not for users (`train --dump-stack DIR`): the stack's inputs on the held-out
/// texts, as `NAME.json` (texts, gold, whole) and row-major f32 `NAME.head.f32` and
/// `NAME.svm.f32`, for experiments with stackers outside Rust (scripts/stack-experiment.py).
pub fn dump_scores(
    dir: &std::path::Path,
    name: &str,
    texts: &[String],
    gold: &[Option<usize>],
    whole: &[bool],
    head: &[Vec<f32>],
    svm: &[Vec<f32>],
) -> std::io::Result<()> {
    let raw = |m: &[Vec<f32>]| m.iter().flatten().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let meta = json!({ "texts": texts, "gold": gold, "whole": whole, "classes": head.first().map_or(0, Vec::len) });
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.json")), meta.to_string())?;
    std::fs::write(dir.join(format!("{name}.head.f32")), raw(head))?;
    std::fs::write(dir.join(format!("{name}.svm.f32")), raw(svm))
}

/// The manifest's section for the lexical part `lex` stacked by `buckets` and `gate`.
pub fn config(lex: &Lexical, buckets: Vec<StackBucket>, gate: Option<StackGate>) -> LexicalConfig {
    LexicalConfig { analyzer: LEXICAL_ANALYZER.into(), features: lex.n_features(), weights: lex.n_weights(), stack: buckets, gate }
}

/// The manifest's record of a lexical part.
/// `fitted_on`: which texts the stack was fitted on (held-out ones, or every row's out of fold).
pub fn record(fit: &LexicalFit, opts: &LexicalOptions, fitted_on: &str, held: usize, choice: &Value) -> Value {
    json!({
        "svm": { "recipe": "TfidfVectorizer word 1-2 + char_wb 2-5 (min_df 2), sublinear TF; LinearSVC C=0.5", "texts": fit.texts, "prefix_fractions": opts.prefix_fractions, "seconds": fit.seconds },
        "pruned": { "kept": fit.pruned.kept, "nonzero": fit.pruned.nonzero, "max_weights": opts.max_weights, "hash_collisions": fit.pruned.collisions },
        "stack": { "fitted_on": format!("{fitted_on} (log-loss; per length bucket the best of both parts / head / svm by acc@1; the gate on confidence features by L2-penalised log-loss, kept when it wins cross-fitted)"), "n": held, "choice": choice },
    })
}

/// The held-out comparison `train` ends with: the model (`logits`, stacked, at `temperature`)
/// against the baseline (the recipe on whole training titles: `fit`'s SVM unpruned when it was
/// trained on whole titles, else one trained for this) on the held-out whole titles and their
/// 60 % prefixes. Printed through `progress` and returned for the manifest. The stack's weights
/// and the temperature were fitted on these same titles (the buckets' eight weights or the gate's sixteen, and one temperature; nothing refitted after),
/// so the model's figures lean slightly optimistic; the note says so.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    held: &HeldTexts,
    logits: &[Vec<f32>],
    temperature: f32,
    fit: &LexicalFit,
    train: &[Example],
    labels: &LabelSpace,
    opts: &LexicalOptions,
    progress: &dyn Progress,
) -> Result<Value> {
    let at: HashMap<(&str, Option<usize>), usize> = held.texts.iter().zip(held.gold).enumerate().map(|(i, (t, &y))| ((t.as_str(), y), i)).collect();
    let whole: Vec<usize> = (0..held.texts.len()).filter(|&i| held.whole[i]).collect();
    let gold: Vec<Option<usize>> = whole.iter().map(|&i| held.gold[i]).collect();
    let probs = |i: usize| softmax(&logits[i], temperature);
    let p60: Option<Vec<Vec<f32>>> = whole
        .iter()
        .map(|&i| {
            let p = prefix(&held.texts[i], 0.6);
            let p = match held.marker {
                Some(m) if p != held.texts[i] => format!("{m} {p}"),
                _ => p,
            };
            at.get(&(p.as_str(), held.gold[i])).map(|&j| probs(j))
        })
        .collect();
    let model_whole: Vec<Vec<f32>> = whole.iter().map(|&i| probs(i)).collect();
    let model = held_out(&model_whole, p60.as_deref(), &gold);
    let titles: Vec<String> = whole.iter().map(|&i| held.texts[i].clone()).collect();
    let [base_whole, base_p60] = if opts.prefix_fractions.is_empty() && fit.texts <= opts.max_texts {
        baseline_probs(&fit.vectorizer, &fit.svm, &titles)
    } else {
        let whole_only = LexicalOptions { prefix_fractions: Vec::new(), ..opts.clone() };
        let b = self::fit(train, labels, &whole_only, progress)?;
        baseline_probs(&b.vectorizer, &b.svm, &titles)
    };
    let base = held_out(&base_whole, Some(&base_p60), &gold);
    // Title by title: which differences are beyond the noise of this many titles.
    let paired_whole = Paired::new(&right_at_1(&model_whole, &gold), &right_at_1(&base_whole, &gold));
    let paired_p60 = p60.as_deref().map(|p| Paired::new(&right_at_1(p, &gold), &right_at_1(&base_p60, &gold)));
    let row = |name: &str, a: f64, b: f64| progress.note(&format!("  {name:<24} {a:>8.4} {b:>12.4}"));
    progress.note(&format!("held out ({} titles; the stack and temperature were fitted on them):", whole.len()));
    progress.note(&format!("  {:<24} {:>8} {:>12}", "", "model", "TF-IDF SVM"));
    row("acc@1", model.acc_at_1, base.acc_at_1);
    row("acc@5", model.acc_at_5, base.acc_at_5);
    if let (Some(a), Some(b)) = (model.prefix60_acc_at_1, base.prefix60_acc_at_1) {
        row("acc@1, 60 % of words", a, b);
    }
    row("ECE", model.ece, base.ece);
    progress.note(&format!("  whole titles: {}", paired_whole.describe("model", "baseline")));
    if let Some(p) = &paired_p60 {
        progress.note(&format!("  60 % of words: {}", p.describe("model", "baseline")));
    }
    Ok(json!({
        "model": model,
        "baseline": base,
        "paired": { "first": "model", "second": "baseline", "whole": paired_whole, "prefix60": paired_p60 },
        "n": whole.len(),
        "note": "the stack's weights and the temperature were fitted on these titles",
    }))
}

/// `shelfwise add-lexical`: a lexical part and its stack added to a model already made (a
/// quantized one too: the stack is fitted on the scores that file computes). The SVM is trained
/// on `train`, the stack and then the temperature fitted on `heldout` (titles and the model's
/// prefix fractions), which must not be `train`. Rows of categories the model lacks are skipped.
pub fn add_to_model(
    file: ModelFile,
    train: &[Example],
    heldout: &[Example],
    heldout_source: &DataSource,
    opts: &LexicalOptions,
    progress: &dyn Progress,
) -> std::result::Result<ModelFile, TrainError> {
    if file.manifest.lexical.is_some() {
        return Err(TrainError::HasLexical);
    }
    if file.manifest.adaptation.is_some() {
        return Err(TrainError::Adapted);
    }
    let clf = Classifier::from_model_file(&file)?;
    let labels = clf.labels();
    let mut manifest = file.manifest.clone();
    let h = HeldOutTexts::as_trained(&manifest.training, heldout, labels)?;
    let head = h.score("score held-out", progress, |t| clf.head_logits(t))?;
    let (texts, gold, whole) = (&h.texts, &h.gold, &h.whole);
    let fit = self::fit(train, labels, opts, progress)?;
    let held = HeldTexts { texts, gold, whole, marker: h.marker.as_deref() };
    let StackFit { buckets, gate, logits, choice } = stack(&held, &head, &fit.lexical, opts.dump_stack.as_deref(), progress);
    let (l, g): (Vec<Vec<f32>>, Vec<Option<usize>>) = (0..texts.len()).filter(|&i| whole[i]).map(|i| (logits[i].clone(), gold[i])).unzip();
    manifest.head.temperature = fit_temperature_top1(&l, &g);
    progress.note(&format!("temperature {:.4} (fitted on {} held-out titles)", manifest.head.temperature, l.len()));
    let comparison = compare(&held, &logits, manifest.head.temperature, &fit, train, labels, opts, progress)?;
    let mut rec = record(&fit, opts, HELD_OUT_TEXTS, texts.len(), &choice);
    rec["added_by"] = json!("shelfwise add-lexical");
    rec["heldout"] = json!({ "file": heldout_source.file, "sha256": heldout_source.sha256, "rows": heldout.len() });
    rec["train_rows"] = json!(train.len());
    manifest.training["lexical"] = rec;
    manifest.training["heldout_comparison"] = comparison;
    manifest.lexical = Some(config(&fit.lexical, buckets, gate));
    let mut tensors = load_tensors(&file.tensors)?;
    tensors.extend(crate::lexical::to_tensors(&fit.lexical)?);
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: file.tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn the_gate_is_chosen_where_it_wins_cross_fitted_and_not_without_labels() {
        // Only a gate is right on every text (shelfwise_core::lexical::gate_fixture's docs).
        let (head, lex, gold) = shelfwise_core::lexical::gate_fixture();
        let titles = vec!["a b c"; 240];
        let c = choose_stack(&head, &lex, &titles, &gold, &[true; 240], 5);
        assert!(c.gate.is_some(), "{c:?}");
        assert_eq!(c.right_gate, [240, 240], "{c:?}");
        assert!(c.right_buckets[0] <= 160 && c.right_buckets[1] == c.right_buckets[0], "{c:?}");
        assert_eq!(c.buckets.len(), STACK_BOUNDS.len());
        // Nothing labelled: no gate, the buckets stay, and nothing was counted right.
        let c = choose_stack(&head, &lex, &titles, &[None; 240], &[true; 240], 5);
        assert!(c.gate.is_none() && c.right_gate == [0, 0] && c.right_buckets == [0, 0], "{c:?}");
    }

    fn shop(n: usize) -> Vec<Example> {
        let kinds = [("kettle", "Home > Kettles"), ("running shoe", "Shoes > Running"), ("phone case", "Mobiles > Cases"), ("saree", "Women > Sarees")];
        (0..n)
            .map(|i| {
                let (k, label) = kinds[i % kinds.len()];
                Example { title: format!("brand{} {k} model {}", i % 997, i), path: label.split(" > ").map(String::from).collect() }
            })
            .collect()
    }

    #[test]
    fn a_200k_row_shop_trains_the_svm_on_a_bounded_even_sample() {
        let rows = shop(200_000);
        let labels = LabelSpace::from_raw_paths(["Home > Kettles", "Shoes > Running", "Mobiles > Cases", "Women > Sarees"]).unwrap();
        let opts = LexicalOptions { max_texts: 4000, ..Default::default() };
        let fit = fit(&rows, &labels, &opts, &Silent).unwrap();
        // An even sample: about max_texts of the 200k, every category in it.
        assert!((3600..=4000 + 400).contains(&fit.texts), "{} texts", fit.texts);
        for (title, want) in [("acme kettle 2 l", "Home > Kettles"), ("trail running shoe", "Shoes > Running"), ("silk saree", "Women > Sarees")] {
            let s = fit.lexical.scores(title);
            assert_eq!(labels.label_string(top_k(&s, 1)[0]), want, "{title}");
        }
    }

    #[test]
    fn held_out_figures_are_hand_countable() {
        // Three titles: right, right at rank 2, unknown category.
        let p = vec![vec![0.7, 0.2, 0.1], vec![0.6, 0.3, 0.1], vec![0.5, 0.25, 0.25]];
        let h = held_out(&p, Some(&p[..]), &[Some(0), Some(1), None]);
        assert!((h.acc_at_1 - 1.0 / 3.0).abs() < 1e-12 && (h.acc_at_5 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(h.prefix60_acc_at_1, Some(h.acc_at_1));
        // ECE, 15 bins: |0.7 − 1|, |0.6 − 0|, |0.5 − 0| each weighing 1/3.
        assert!((h.ece - (0.3 + 0.6 + 0.5) / 3.0).abs() < 1e-6, "{}", h.ece);
    }
}
