//! The adaptation as an owned, editable state next to a [`Classifier`]: what the browser's
//! `setTaxonomy`, `addExamples`, `learn`, `forget`, `similar`, `explain` and
//! `exportMemory`/`importMemory` run on, and what `crate::adapt` (the CLI's `shelfwise adapt`)
//! writes into a file. Scoring is `crate::adapter`'s: every change ends in
//! [`Shop::adapter`], which builds the same `adapt.*` tensors a file holds and loads them with
//! [`Adapter::from_tensors`], so a shop built here scores exactly as the file `adapt` writes.
//!
//! What each change recomputes (all on the next call; nothing is scored mid-change):
//! - [`Shop::set_taxonomy`], [`Shop::add_examples`]: everything (a full refit): labels, the names
//!   of new labels embedded (names already embedded are kept), new titles embedded, the eviction
//!   rule, the TF-IDF vectorizer fitted on the whole memory, the TF-IDF SVM retrained and the
//!   combination weights refitted on the memory (cross-fitted), as `adapt` does;
//! - [`Shop::learn`] (one seller correction) and [`Shop::forget_title`] / [`Shop::forget_path`]:
//!   the memory only: the title embedded, per-label sums and the TF-IDF postings. Kept as they
//!   were at the last full refit: the combination weights, the SVM's support vectors (the SVM
//!   loses a forgotten or replaced example's terms; a learned title joins it at the next
//!   `add_examples` or `set_taxonomy`) and the TF-IDF vectorizer (vocabulary and idf: a learned
//!   title's n-grams the vectorizer lacks count for nothing, and the document frequencies do not
//!   count it). The one exception: `learn` refits the vectorizer alone when the memory has grown
//!   past twice the titles it was fitted on (so a memory grown from corrections alone, from
//!   empty, learns its words: refits at 1, 3, 7, ... titles, an amortised constant cost).
//!   [`Shop::learn_live`] appends a new title of a known category to the classifier's scoring
//!   layer in place: one encoder pass and the label's sums, no cost that grows with the memory
//!   beyond copying the embedding matrix.
//!
//! The live state is exactly its export: [`Shop::export`] stores the frozen vectorizer and the
//! category names' embeddings, so an import scores as the state it was exported from (tested),
//! with nothing refitted or embedded again. A full refit after corrections scores differently
//! from the live state (SVM, weights and idf then count the corrections).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::TensorView;
use serde_json::json;
use shelfwise_core::baseline::{Family, TfidfVectorizer};
use shelfwise_core::calibration::softmax;
use shelfwise_core::names::NameMatcher;
use shelfwise_core::taxonomy::join_path;
use shelfwise_core::taxonomy_io::leaves;
use shelfwise_core::{CoreError, LabelSpace};

use crate::adapt::{dedupe, evict, fit_weights, svm_dual, Report, DEFAULT_MAX_EXAMPLES, PRIOR_STRENGTH, PRIOR_WEIGHTS};
use crate::adapter::{self, Adapter, Feature};
use crate::classifier::{load_tensors, tensors_to_bytes, Classifier};
use crate::error::{ModelError, Result};
use crate::format::{Adaptation, ModelFile};
use crate::head::{label_text, normalize};
use crate::progress::{Progress, Silent};
use crate::train::embed::embed_all;
use crate::train::examples::Example;

/// Cross-fitted scores of at most this many examples (evenly spread) fit the weights, fewer for
/// a large taxonomy (their component scores are held in memory: examples × labels × 8 floats).
/// (3,000 halved Flipkart's k = 20 memory to 1,950 samples: 0.8513 acc@1 on dev against 0.8596
/// with all 3,900.)
const MAX_FIT_SAMPLES: usize = 10_000;
const FIT_BUDGET: usize = 40_000_000;
/// Below this many held-out examples the prior weights are used as they are.
const MIN_FIT_SAMPLES: usize = 10;
/// The first bytes of an exported memory (then a safetensors file). Version 2 adds the frozen
/// TF-IDF vectorizer and the category names' embeddings; a version 1 export still imports (the
/// vectorizer fitted on its titles, the names embedded again).
const MEMORY_MAGIC: &[u8; 8] = b"SWMEMRY2";
const MEMORY_MAGIC_V1: &[u8; 8] = b"SWMEMRY1";

/// One remembered title: its path and its unit embedding as int8 codes (+128) and one scale.
#[derive(Debug, Clone)]
struct Remembered {
    /// Identity for the SVM's support vectors (stable across edits of the memory).
    id: u64,
    title: String,
    path: String,
    codes: Vec<u8>,
    scale: f32,
}

/// A nearest remembered title ([`Shop::similar`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Similar {
    pub title: String,
    pub path: String,
    /// Cosine of the two titles' embeddings.
    pub score: f32,
}

/// One word's part in a category's score ([`Shop::explain`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WordContribution {
    pub word: String,
    /// score(full title) − score(title without this word): positive when the word supports the category.
    pub contribution: f32,
}

/// [`Shop::explain`]'s answer: the category's score for the whole title and each word's part.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub category: String,
    pub score: f32,
    pub words: Vec<WordContribution>,
}

/// [`Shop::memory_info`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemoryInfo {
    pub examples: usize,
    pub categories: usize,
    /// Categories added by examples or corrections (not in the taxonomy).
    pub added_categories: usize,
    /// Bytes the remembered titles take (embedding codes, scales, titles, paths).
    pub bytes: usize,
    pub cap: usize,
    /// How the combination weights were chosen: "cross-fitted" or "prior" ("leave-one-out" in a
    /// memory exported by an earlier version).
    pub method: String,
}

/// A shop's taxonomy, example memory and combination weights over one model.
#[derive(Debug, Clone)]
pub struct Shop {
    /// The model's identity ([`model_id`]): an exported memory is refused by another model.
    model: String,
    hidden: usize,
    /// The taxonomy's leaves (`None`: the model's own labels).
    taxonomy: Option<Vec<String>>,
    /// Paths that examples brought in and the taxonomy lacks (kept until forgotten).
    added: BTreeSet<String>,
    examples: Vec<Remembered>,
    next_id: u64,
    weights: Vec<f32>,
    method: String,
    /// The SVM's dual: (label path, example id, αᵢ yᵢ).
    svm: Vec<(String, u64, f32)>,
    max_examples: usize,
    /// Label text → its unit embedding as stored (f16-rounded), so a label is embedded once.
    names: HashMap<String, Vec<f32>>,
    /// The TF-IDF vectorizer of the last refit (idf frozen until the next: module docs) and the
    /// number of titles it was fitted on.
    vectorizer: Option<Arc<TfidfVectorizer>>,
    vectorizer_docs: usize,
    /// The `name_chars` n-grams of the labels (as paths) they were built for: a refit builds six
    /// scoring layers over the same labels, and a 20,000-path taxonomy takes ~1 s to index.
    name_matcher: Option<(Vec<String>, Arc<NameMatcher>)>,
}

/// How many of `ex_labels` each of `n` labels has.
fn label_counts(ex_labels: &[usize], n: usize) -> Vec<usize> {
    let mut counts = vec![0usize; n];
    ex_labels.iter().for_each(|&l| counts[l] += 1);
    counts
}

/// A model's identity for its memories: the sha256 of its manifest, which holds the payload's
/// sha256 (encoder, head, tokenizer) and the labels, so two files that embed or label
/// differently never share a memory.
pub fn model_id(clf: &Classifier) -> String {
    let json = serde_json::to_vec(clf.manifest()).unwrap_or_default();
    crate::format::sha256_hex(&[&json])
}

/// `"A > B"` strings (as the bindings and CSVs give them) to paths; a blank segment is `LABELS`.
pub fn parse_paths(raw: &[String]) -> Result<Vec<Vec<String>>> {
    raw.iter().map(|p| Ok(shelfwise_core::taxonomy::parse_path(p)?)).collect()
}

/// The category paths of a taxonomy file as `shelfwise adapt --taxonomy` reads it (one path per
/// line, Google's `taxonomy-with-ids`, Shopify's `categories.txt`: `shelfwise_core::taxonomy_io`),
/// as `"A > B"` strings in file order, each once; a bad line is `LABELS` naming it.
pub fn read_taxonomy(text: &str) -> Result<Vec<String>> {
    Ok(shelfwise_core::taxonomy_io::read_taxonomy(text)?.iter().map(|p| join_path(p)).collect())
}

/// Labelled examples from parallel titles and `"A > B"` paths (`LABELS` for a bad path).
pub fn examples_of(titles: &[String], paths: &[String]) -> Result<Vec<Example>> {
    if titles.len() != paths.len() {
        return Err(CoreError::BadPath(format!("{} titles for {} paths", titles.len(), paths.len())).into());
    }
    titles.iter().zip(parse_paths(paths)?).map(|(t, p)| Ok(Example { title: t.clone(), path: p })).collect()
}

fn parse(path: &str) -> Result<String> {
    let ls = LabelSpace::from_raw_paths([path])?;
    Ok(ls.label_string(0))
}

impl Shop {
    /// The state of `clf`'s file: an adapted file's taxonomy, memory (oldest first) and weights;
    /// a plain model's labels with an empty memory and the prior weights.
    pub fn new(clf: &Classifier) -> Self {
        let m = clf.manifest();
        let mut shop = Shop {
            model: model_id(clf),
            hidden: m.encoder.hidden,
            taxonomy: None,
            added: BTreeSet::new(),
            examples: Vec::new(),
            next_id: 0,
            weights: PRIOR_WEIGHTS.to_vec(),
            method: "prior".into(),
            svm: Vec::new(),
            max_examples: DEFAULT_MAX_EXAMPLES,
            names: HashMap::new(),
            vectorizer: None,
            vectorizer_docs: 0,
            name_matcher: None,
        };
        if let (Some(a), Some(ad)) = (clf.adapter(), m.adaptation.as_ref()) {
            let labels = a.labels();
            shop.taxonomy = Some(ad.labels.clone());
            shop.max_examples = ad.max_examples;
            shop.method = ad.fit.get("method").and_then(|v| v.as_str()).unwrap_or("prior").to_string();
            shop.weights = Feature::weights_of_all(a.features(), a.weights());
            let mem = a.memory();
            for i in 0..mem.len() {
                let (codes, scales) = adapter::quantize_rows(mem.embedding(i), shop.hidden);
                let id = shop.fresh_id();
                shop.examples.push(Remembered { id, title: mem.titles[i].clone(), path: labels.label_string(mem.labels[i]), codes, scale: scales[0] });
            }
            shop.svm = a.svm().iter().map(|&(l, i, c)| (labels.label_string(l as usize), shop.examples[i as usize].id, c)).collect();
            shop.vectorizer = a.vectorizer().cloned();
            shop.vectorizer_docs = mem.len();
            // The file's index over these labels: the first change would otherwise build it again.
            shop.name_matcher = a.name_matcher().map(|m| (labels.label_strings(), m.clone()));
        }
        shop
    }

    /// Fits the TF-IDF vectorizer on the whole memory.
    fn refit_vectorizer(&mut self) {
        let titles: Vec<&str> = self.examples.iter().map(|e| e.title.as_str()).collect();
        self.vectorizer = Some(Arc::new(TfidfVectorizer::fit(&titles)));
        self.vectorizer_docs = titles.len();
    }

    /// Between full refits the vectorizer is refitted only once the memory has outgrown twice the
    /// titles it was fitted on (a first correction in an empty memory, then 2, 4, 8, ...), so the
    /// words of a memory grown from corrections alone are known, at an amortised constant cost.
    fn vectorizer_outgrown(&self, n: usize) -> bool {
        n > 0 && (self.vectorizer.is_none() || n > 2 * self.vectorizer_docs)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sets the memory's cap (clamped to 1..=`MAX_ADAPT_EXAMPLES`); applies on the next change.
    pub fn set_max_examples(&mut self, cap: usize) {
        self.max_examples = cap.clamp(1, crate::validate::MAX_ADAPT_EXAMPLES);
    }

    /// The label space: the taxonomy's leaves (or the model's labels), the added paths.
    fn label_space(&self, clf: &Classifier) -> Result<LabelSpace> {
        let base: Vec<String> = match &self.taxonomy {
            Some(t) => t.clone(),
            None => clf.head_labels().label_strings(),
        };
        Ok(LabelSpace::from_raw_paths(base.iter().chain(&self.added).map(String::as_str))?)
    }

    /// Replaces the taxonomy (every path of it, inner nodes included: its leaves become the
    /// labels), then refits. Examples whose path the new taxonomy lacks keep it as an added label.
    pub fn set_taxonomy(&mut self, clf: &Classifier, paths: &[Vec<String>], progress: &dyn Progress) -> Result<Report> {
        self.replace_taxonomy(paths)?;
        self.add_examples(clf, Vec::new(), progress)
    }

    /// [`Self::set_taxonomy`] without the refit (`adapt` refits once, after its examples).
    pub(crate) fn replace_taxonomy(&mut self, paths: &[Vec<String>]) -> Result<()> {
        let norm: Vec<Vec<String>> = paths.iter().map(|p| p.iter().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).collect()).collect();
        let tax: Vec<String> = leaves(&norm).iter().map(|p| join_path(p)).collect();
        // Validated as a label space before anything changes.
        let ls = LabelSpace::from_raw_paths(tax.iter().map(String::as_str))?;
        let set: HashSet<String> = ls.label_strings().into_iter().collect();
        self.taxonomy = Some(set.iter().cloned().collect());
        self.added = self.examples.iter().map(|e| e.path.clone()).filter(|p| !set.contains(p)).collect();
        Ok(())
    }

    /// Adds labelled examples (oldest first, after the memory's) by `crate::adapt`'s rules (the
    /// latest of equal titles wins; a path not in the taxonomy is added; the cap's eviction
    /// rule), then refits the SVM and the combination weights on the whole memory.
    pub fn add_examples(&mut self, clf: &Classifier, examples: Vec<Example>, progress: &dyn Progress) -> Result<Report> {
        let examples_in = examples.len();
        let counts = self.insert(clf, examples, progress)?;
        let labels = self.label_space(clf)?;
        self.ensure_names(clf, &labels, progress)?;
        self.refit(clf, &labels, progress)?;
        let fit_samples = if self.method == "prior" { 0 } else { self.fit_samples(&labels) };
        Ok(Report {
            labels: labels.len(),
            added_labels: self.added.len(),
            examples_in,
            empty: counts.0,
            duplicates: counts.1,
            contradictions: counts.2,
            evicted: counts.3,
            remembered: self.examples.len(),
            fit_samples,
            method: self.method.clone(),
            weights: Feature::ALL.iter().map(|f| f.name().to_string()).zip(self.weights.iter().copied()).collect(),
        })
    }

    /// One seller correction: `title` is in `path` (added to the labels when new). Replaces any
    /// remembered example of the same title; the weights, SVM and (mostly) the TF-IDF vectorizer
    /// are kept (module docs). [`Self::learn_live`] applies it to a classifier as well.
    pub fn learn(&mut self, clf: &Classifier, title: &str, path: &str) -> Result<()> {
        let path: Vec<String> = parse(path)?.split(" > ").map(String::from).collect();
        // A blank title is skipped, as `adapt` skips one.
        self.insert(clf, vec![Example { title: title.to_string(), path }], &Silent)?;
        if self.vectorizer_outgrown(self.examples.len()) {
            self.refit_vectorizer();
        }
        let labels = self.label_space(clf)?;
        self.ensure_names(clf, &labels, &Silent)
    }

    /// [`Self::learn`] then [`Self::apply`], for a `clf` that suggests through this state (after
    /// `apply`). A new title of a known category, below the cap and without outgrowing the
    /// vectorizer, is appended to `clf`'s scoring layer in place (one encoder pass, its label's
    /// sums, its n-grams' postings: no cost that grows with the memory but two copies, of the
    /// embedding matrix and of the label sums); any other correction rebuilds the layer from this
    /// state with the frozen vectorizer. Either way the scores are the rebuilt ones (a test
    /// compares them). On an error nothing changes.
    pub fn learn_live(&mut self, clf: &mut Classifier, title: &str, path: &str) -> Result<()> {
        let p = parse(path)?;
        let t = title.trim();
        let n = self.examples.len();
        let label = clf.adapter().and_then(|a| {
            let in_sync = a.memory().len() == n
                && matches!((&self.vectorizer, a.vectorizer()), (Some(v), Some(w)) if Arc::ptr_eq(v, w))
                && !a.memory().remembers(&crate::adapt::title_key(t));
            (in_sync && !t.is_empty() && n < self.max_examples && !self.vectorizer_outgrown(n + 1)).then(|| a.labels().find(&p)).flatten()
        });
        let Some(label) = label else {
            let mut next = self.clone();
            next.learn(clf, title, path)?;
            next.apply(clf)?;
            *self = next;
            return Ok(());
        };
        let (codes, scale) = self.embed_examples(clf, &[t.to_string()], &Silent)?.pop().expect("one embedding a title");
        let row = adapter::unit_row(&codes, scale);
        if let Err(e) = clf.adapter_mut().expect("checked above").remember(t.to_string(), label, row) {
            // A half-appended layer is rebuilt from the unchanged state.
            self.apply(clf)?;
            return Err(e);
        }
        let id = self.fresh_id();
        self.examples.push(Remembered { id, title: t.to_string(), path: p, codes, scale });
        Ok(())
    }

    /// Forgets every remembered example of `title` (by [`crate::adapt::title_key`]); the number forgotten.
    pub fn forget_title(&mut self, title: &str) -> usize {
        let key = crate::adapt::title_key(title);
        self.remove(|e| crate::adapt::title_key(&e.title) == key)
    }

    /// Forgets every example of `path` and, if examples had added it, the category itself.
    pub fn forget_path(&mut self, path: &str) -> Result<usize> {
        let p = parse(path)?;
        self.added.remove(&p);
        Ok(self.remove(|e| e.path == p))
    }

    fn remove(&mut self, f: impl Fn(&Remembered) -> bool) -> usize {
        let n = self.examples.len();
        self.examples.retain(|e| !f(e));
        let kept: HashSet<u64> = self.examples.iter().map(|e| e.id).collect();
        self.svm.retain(|s| kept.contains(&s.1));
        n - self.examples.len()
    }

    /// Dedupes `new` against the memory, embeds the new titles, applies the cap. Returns
    /// (empty, duplicates, contradictions, evicted).
    fn insert(&mut self, clf: &Classifier, new: Vec<Example>, progress: &dyn Progress) -> Result<(usize, usize, usize, usize)> {
        let old = self.examples.len();
        let all: Vec<Example> = self
            .examples
            .iter()
            .map(|e| Example { title: e.title.clone(), path: e.path.split(" > ").map(String::from).collect() })
            .chain(new.iter().cloned())
            .collect();
        let (kept, empty, dup, contra) = dedupe(&all)?;
        // Normalised paths (as labels), checked before the memory changes.
        let paths: Vec<String> =
            kept.iter().map(|&i| if i < old { Ok(self.examples[i].path.clone()) } else { parse(&join_path(&all[i].path)) }).collect::<Result<_>>()?;
        let fresh: Vec<String> = kept.iter().filter(|&&i| i >= old).map(|&i| all[i].title.trim().to_string()).collect();
        let codes = if fresh.is_empty() { Vec::new() } else { self.embed_examples(clf, &fresh, progress)? };
        let mut codes = codes.into_iter();
        let mut next = Vec::with_capacity(kept.len());
        for (&i, path) in kept.iter().zip(paths) {
            if i < old {
                next.push(self.examples[i].clone());
            } else {
                let (c, s) = codes.next().expect("one embedding a new title");
                let id = self.fresh_id();
                next.push(Remembered { id, title: all[i].title.trim().to_string(), path, codes: c, scale: s });
            }
        }
        let known: HashSet<String> = match &self.taxonomy {
            Some(t) => t.iter().cloned().collect(),
            None => clf.head_labels().label_strings().into_iter().collect(),
        };
        self.added.extend(next.iter().map(|e| e.path.clone()).filter(|p| !known.contains(p)));
        self.examples = next;
        let labels = self.label_space(clf)?;
        let label_of: Vec<usize> = self.examples.iter().map(|e| labels.find(&e.path).expect("every example path is a label")).collect();
        let keep = evict(&label_of, self.max_examples);
        let evicted = self.examples.len() - keep.len();
        if evicted > 0 {
            let keep: HashSet<usize> = keep.into_iter().collect();
            let mut i = 0;
            self.examples.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
        }
        let ids: HashSet<u64> = self.examples.iter().map(|e| e.id).collect();
        self.svm.retain(|s| ids.contains(&s.1));
        Ok((empty, dup, contra, evicted))
    }

    /// Titles to int8 unit-embedding rows (what the memory stores).
    fn embed_examples(&self, clf: &Classifier, titles: &[String], progress: &dyn Progress) -> Result<Vec<(Vec<u8>, f32)>> {
        let pooled = embed_all(clf.embedder(), "", titles, None, "embed examples", progress)?;
        let unit: Vec<f32> = normalize(&pooled, 1.0)?.flatten_all()?.to_vec1()?;
        let (codes, scales) = adapter::quantize_rows(&unit, self.hidden);
        Ok(codes.chunks(self.hidden).map(<[u8]>::to_vec).zip(scales).collect())
    }

    /// Embeds the path and leaf texts of `labels` not embedded yet (stored f16-rounded, as a file).
    fn ensure_names(&mut self, clf: &Classifier, labels: &LabelSpace, progress: &dyn Progress) -> Result<()> {
        let key = labels.label_strings();
        if self.name_matcher.as_ref().is_none_or(|(k, _)| *k != key) {
            self.name_matcher = Some((key, Arc::new(NameMatcher::new(labels.labels()))));
        }
        let mut missing: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for p in labels.labels() {
            for t in [label_text(p), p.last().cloned().unwrap_or_default()] {
                if !self.names.contains_key(&t) && seen.insert(t.clone()) {
                    missing.push(t);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let emb = normalize(&embed_all(clf.embedder(), "", &missing, None, "embed category names", progress)?, 1.0)?;
        let rows: Vec<Vec<f32>> = emb.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec2()?;
        self.names.extend(missing.into_iter().zip(rows));
        Ok(())
    }

    /// The `adapt.*` tensors and the manifest section of this state (labels and names must be
    /// current: after [`Self::ensure_names`]).
    pub fn tensors(&self, clf: &Classifier) -> Result<(HashMap<String, Tensor>, Adaptation)> {
        let labels = self.label_space(clf)?;
        let (h, l, n) = (self.hidden, labels.len(), self.examples.len());
        let name_rows = |f: &dyn Fn(&[String]) -> String| -> Result<Tensor> {
            let mut v = Vec::with_capacity(l * h);
            for p in labels.labels() {
                let row = self.names.get(&f(p)).ok_or_else(|| ModelError::Compute(format!("category name {:?} not embedded", f(p))))?;
                v.extend_from_slice(row);
            }
            Ok(Tensor::from_vec(v, (l, h), &Device::Cpu)?.to_dtype(DType::F16)?)
        };
        let mut t = HashMap::new();
        t.insert(adapter::PATH_EMB.to_string(), name_rows(&|p| label_text(p))?);
        t.insert(adapter::LEAF_EMB.to_string(), name_rows(&|p| p.last().cloned().unwrap_or_default())?);
        t.insert(adapter::WEIGHTS.to_string(), Tensor::from_slice(&self.weights, self.weights.len(), &Device::Cpu)?);
        if n > 0 {
            let codes: Vec<u8> = self.examples.iter().flat_map(|e| e.codes.iter().copied()).collect();
            t.insert(adapter::EXAMPLE_CODES.into(), Tensor::from_vec(codes, (n, h), &Device::Cpu)?);
            t.insert(adapter::EXAMPLE_SCALE.into(), Tensor::from_vec(self.examples.iter().map(|e| e.scale).collect::<Vec<f32>>(), n, &Device::Cpu)?);
            let ids: Vec<u32> = self.examples.iter().map(|e| labels.find(&e.path).expect("every example path is a label") as u32).collect();
            t.insert(adapter::EXAMPLE_LABEL.into(), Tensor::from_vec(ids, n, &Device::Cpu)?);
            let mut text = Vec::new();
            let mut offsets = vec![0u32];
            for e in &self.examples {
                text.extend_from_slice(e.title.as_bytes());
                offsets.push(u32::try_from(text.len()).map_err(|_| ModelError::BadManifest("adaptation: example titles over 4 GiB".into()))?);
            }
            t.insert(adapter::EXAMPLE_OFFSET.into(), Tensor::from_vec(offsets, n + 1, &Device::Cpu)?);
            let len = text.len();
            t.insert(adapter::EXAMPLE_TEXT.into(), Tensor::from_vec(text, len, &Device::Cpu)?);
            let at: HashMap<u64, u32> = self.examples.iter().enumerate().map(|(i, e)| (e.id, i as u32)).collect();
            let svm: Vec<(u32, u32, f32)> = self.svm.iter().filter_map(|(p, id, c)| Some((labels.find(p)? as u32, *at.get(id)?, *c))).collect();
            let nnz = svm.len();
            t.insert(adapter::SVM_PAIR.into(), Tensor::from_vec(svm.iter().flat_map(|&(a, b, _)| [a, b]).collect::<Vec<u32>>(), (nnz, 2), &Device::Cpu)?);
            t.insert(adapter::SVM_COEF.into(), Tensor::from_vec(svm.iter().map(|s| s.2).collect::<Vec<f32>>(), nnz, &Device::Cpu)?);
        }
        let a = Adaptation {
            labels: labels.label_strings(),
            features: Feature::ALL.iter().map(|f| f.name().to_string()).collect(),
            examples: n,
            max_examples: self.max_examples,
            fit: serde_json::Value::Null,
        };
        Ok((t, a))
    }

    /// The scoring layer of this state, as a file of [`Self::tensors`] would load it.
    pub fn adapter(&self, clf: &Classifier) -> Result<Adapter> {
        let (t, a) = self.tensors(clf)?;
        let names = self.name_matcher.as_ref().filter(|(k, _)| *k == a.labels).map(|(_, m)| m.clone());
        Adapter::from_tensors_with(&a, &t, self.hidden, clf.head_labels(), self.vectorizer.clone(), names)
    }

    /// Makes `clf` suggest through this state from its next call (embedding any category name
    /// not embedded yet).
    pub fn apply(&mut self, clf: &mut Classifier) -> Result<()> {
        let labels = self.label_space(clf)?;
        self.ensure_names(clf, &labels, &Silent)?;
        let a = self.adapter(clf)?;
        clf.set_adapter(Some(a));
        Ok(())
    }

    fn fit_sample_ids(&self, labels: &LabelSpace, counts: &[usize], ex_labels: &[usize]) -> Vec<usize> {
        let n = ex_labels.len();
        let eligible: Vec<usize> = (0..n).filter(|&i| counts[ex_labels[i]] >= 2).collect();
        let cap = MAX_FIT_SAMPLES.min((FIT_BUDGET / (labels.len() * Feature::ALL.len()).max(1)).max(MIN_FIT_SAMPLES * 20));
        if eligible.len() <= cap {
            return eligible;
        }
        (0..cap).map(|j| eligible[j * eligible.len() / cap]).collect()
    }

    fn fit_samples(&self, labels: &LabelSpace) -> usize {
        let ex_labels: Vec<usize> = self.examples.iter().filter_map(|e| labels.find(&e.path)).collect();
        let counts = label_counts(&ex_labels, labels.len());
        self.fit_sample_ids(labels, &counts, &ex_labels).len()
    }

    /// The TF-IDF SVM (one-vs-rest, the baseline's) on the whole memory with the current
    /// vectorizer, as (label path, example id, αᵢ yᵢ).
    fn fit_svm(&self, labels: &LabelSpace) -> Vec<(String, u64, f32)> {
        let Some(v) = self.vectorizer.as_ref().filter(|_| !self.examples.is_empty()) else {
            return Vec::new();
        };
        let rows: Vec<_> = self.examples.iter().map(|e| v.transform(&e.title)).collect();
        let ex_labels: Vec<usize> = self.examples.iter().map(|e| labels.find(&e.path).expect("every example path is a label")).collect();
        let all: Vec<usize> = (0..rows.len()).collect();
        svm_dual(&rows, &ex_labels, &all).into_iter().map(|(l, i, c)| (labels.label_string(l as usize), self.examples[i as usize].id, c)).collect()
    }

    /// The scoring layer of the memory without the examples `leave_out` says (vectorizer and SVM
    /// refitted on the rest; names, taxonomy and added labels as they are, so the label space is
    /// this shop's). The shop is left as it was.
    fn adapter_without(&mut self, clf: &Classifier, labels: &LabelSpace, leave_out: &dyn Fn(usize) -> bool) -> Result<Adapter> {
        let kept: Vec<Remembered> = self.examples.iter().enumerate().filter(|(i, _)| !leave_out(*i)).map(|(_, e)| e.clone()).collect();
        let saved = (std::mem::replace(&mut self.examples, kept), std::mem::take(&mut self.svm), self.vectorizer.take(), self.vectorizer_docs);
        self.refit_vectorizer();
        self.svm = self.fit_svm(labels);
        let a = self.adapter(clf);
        (self.examples, self.svm, self.vectorizer, self.vectorizer_docs) = saved;
        a
    }

    /// Retrains the SVM on the whole memory and refits the weights (`crate::adapt`'s method):
    /// every sampled example is scored by a memory that does not hold it, for all components
    /// alike (5 folds by the example's rank within its label, so a label with two or more examples
    /// keeps one in every fold's memory; each fold's vectorizer and SVM fitted on the other four).
    /// (Before: leave-one-out for the memory's components, folds for the SVM alone, the vectorizer
    /// fitted on all, at most 1,950 of Flipkart k = 20's 3,900 examples: 0.8521 acc@1 on dev; now
    /// 0.8596, mostly from fitting on all of them. models/flipkart-minilm/NOTES.md.)
    fn refit(&mut self, clf: &Classifier, labels: &LabelSpace, progress: &dyn Progress) -> Result<()> {
        const FOLDS: usize = 5;
        let ex_labels: Vec<usize> = self.examples.iter().map(|e| labels.find(&e.path).expect("every example path is a label")).collect();
        self.refit_vectorizer();
        self.svm = self.fit_svm(labels);
        self.weights = PRIOR_WEIGHTS.to_vec();
        let counts = label_counts(&ex_labels, labels.len());
        let samples = self.fit_sample_ids(labels, &counts, &ex_labels);
        if samples.len() < MIN_FIT_SAMPLES {
            self.method = "prior".into();
            return Ok(());
        }
        let mut rank = vec![0usize; labels.len()];
        let fold: Vec<usize> = ex_labels
            .iter()
            .map(|&l| {
                rank[l] += 1;
                (rank[l] - 1) % FOLDS
            })
            .collect();
        progress.start("fit weights (5-fold cross-fitted)", samples.len() as u64);
        let (mut z, mut gold) = (Vec::with_capacity(samples.len()), Vec::with_capacity(samples.len()));
        let head_t = clf.manifest().head.temperature;
        for k in 0..FOLDS {
            let held: Vec<usize> = samples.iter().copied().filter(|&i| fold[i] == k).collect();
            if held.is_empty() {
                continue;
            }
            // Every sample's label has ≥ 2 examples, so it keeps one in this fold's memory.
            let sub = self.adapter_without(clf, labels, &|i| fold[i] == k && counts[ex_labels[i]] >= 2)?;
            for chunk in held.chunks(64) {
                let titles: Vec<&str> = chunk.iter().map(|&i| self.examples[i].title.as_str()).collect();
                // The head reads the embedding's direction only: the stored unit rows stand in for
                // the raw pooled ones, read as every later load of the memory reads them.
                let unit = Tensor::from_vec(
                    chunk.iter().flat_map(|&i| adapter::unit_row(&self.examples[i].codes, self.examples[i].scale)).collect::<Vec<f32>>(),
                    (chunk.len(), self.hidden),
                    &Device::Cpu,
                )?;
                let head = clf.model_logits(&titles, &unit)?;
                z.extend(sub.features_z(&titles, &unit, &head, head_t)?);
                gold.extend(chunk.iter().map(|&i| ex_labels[i]));
                progress.advance(chunk.len() as u64);
            }
        }
        progress.finish(false);
        self.weights = fit_weights(&z, &gold, &PRIOR_WEIGHTS, PRIOR_STRENGTH);
        self.method = "cross-fitted".into();
        Ok(())
    }

    /// The `k` remembered titles nearest to `title` by the cosine of their embeddings, best first
    /// (ties: the older first). `INPUT_TOO_LONG`.
    pub fn similar(&self, clf: &Classifier, title: &str, k: usize) -> Result<Vec<Similar>> {
        if self.examples.is_empty() || k == 0 || title.trim().is_empty() {
            clf.embedder().encode(&[title])?;
            return Ok(Vec::new());
        }
        let q = normalize(&clf.embedder().embed(&[title])?, 1.0)?.flatten_all()?.to_vec1::<f32>()?;
        let mut scored: Vec<(f32, usize)> = self
            .examples
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (mut dot, mut sq) = (0f32, 0f32);
                for (&c, &x) in e.codes.iter().zip(&q) {
                    let v = (c as i32 - 128) as f32;
                    dot += v * x;
                    sq += v * v;
                }
                (if sq > 0.0 { dot / sq.sqrt() } else { 0.0 }, i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(scored.into_iter().take(k).map(|(s, i)| Similar { title: self.examples[i].title.clone(), path: self.examples[i].path.clone(), score: s }).collect())
    }

    /// Leave-one-word-out: for each whitespace-separated word of `title`, the category's
    /// calibrated probability for the whole title minus that for the title without the word, so
    /// a positive contribution means the word raised the score. `category` is a label index of
    /// `clf.labels()`; `LABELS` when out of range, `INPUT_TOO_LONG` for a long title.
    pub fn explain(clf: &Classifier, title: &str, category: usize) -> Result<Explanation> {
        if category >= clf.labels().len() {
            return Err(CoreError::BadPath(format!("category id {category} of {}", clf.labels().len())).into());
        }
        let words: Vec<&str> = title.split_whitespace().collect();
        let mut texts: Vec<String> = vec![words.join(" ")];
        texts.extend((0..words.len()).map(|w| words.iter().enumerate().filter(|&(i, _)| i != w).map(|(_, s)| *s).collect::<Vec<_>>().join(" ")));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let t = clf.temperature();
        let scores: Vec<f32> = clf.logits(&refs)?.iter().map(|l| softmax(l, t)[category]).collect();
        Ok(Explanation {
            category: clf.labels().label_string(category),
            score: scores[0],
            words: words.iter().zip(&scores[1..]).map(|(w, s)| WordContribution { word: w.to_string(), contribution: scores[0] - s }).collect(),
        })
    }

    pub fn memory_info(&self, clf: &Classifier) -> Result<MemoryInfo> {
        let labels = self.label_space(clf)?;
        Ok(MemoryInfo {
            examples: self.examples.len(),
            categories: labels.len(),
            added_categories: self.added.len(),
            bytes: self.examples.iter().map(|e| e.codes.len() + 4 + e.title.len() + e.path.len()).sum(),
            cap: self.max_examples,
            method: self.method.clone(),
        })
    }

    /// The state as bytes: `SWMEMRY2` then a safetensors file whose metadata holds the model's
    /// identity and the JSON of taxonomy, titles, paths, settings, the vectorizer's n-grams and
    /// the category name texts; its tensors the example codes, the weights, the SVM, the
    /// vectorizer's idf and the names' embeddings (f16: they are f16-rounded when embedded, so
    /// the export is exact). [`Self::import`] gives back this state, scores included.
    pub fn export(&self) -> Result<Vec<u8>> {
        let n = self.examples.len();
        let feats = self.vectorizer.as_ref().map(|v| v.features()).unwrap_or_default();
        // The names of the current labels only (a replaced taxonomy's stay behind).
        // (The model's own labels, without a taxonomy: every name embedded, by text.)
        let mut name_texts: Vec<&String> = Vec::new();
        match &self.taxonomy {
            Some(t) => {
                let labels = LabelSpace::from_raw_paths(t.iter().chain(&self.added).map(String::as_str))?;
                let mut seen = HashSet::new();
                for p in labels.labels() {
                    for t in [label_text(p), p.last().cloned().unwrap_or_default()] {
                        if let Some((k, _)) = self.names.get_key_value(&t) {
                            if seen.insert(k) {
                                name_texts.push(k);
                            }
                        }
                    }
                }
            }
            None => {
                name_texts = self.names.keys().collect();
                name_texts.sort();
            }
        }
        let header = serde_json::json!({
            "vectorizer": self.vectorizer.is_some(),
            "vectorizer_docs": self.vectorizer_docs,
            "grams": feats.iter().map(|f| f.1).collect::<Vec<_>>(),
            "names": name_texts,
            "taxonomy": self.taxonomy,
            "added": self.added,
            "titles": self.examples.iter().map(|e| &e.title).collect::<Vec<_>>(),
            "paths": self.examples.iter().map(|e| &e.path).collect::<Vec<_>>(),
            "svm_labels": self.svm.iter().map(|s| &s.0).collect::<Vec<_>>(),
            "max_examples": self.max_examples,
            "method": self.method,
        });
        let codes: Vec<u8> = self.examples.iter().flat_map(|e| e.codes.iter().copied()).collect();
        let scales: Vec<u8> = self.examples.iter().flat_map(|e| e.scale.to_le_bytes()).collect();
        let weights: Vec<u8> = self.weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        let at: HashMap<u64, u32> = self.examples.iter().enumerate().map(|(i, e)| (e.id, i as u32)).collect();
        let svm_ex: Vec<u8> = self.svm.iter().flat_map(|s| at[&s.1].to_le_bytes()).collect();
        let svm_coef: Vec<u8> = self.svm.iter().flat_map(|s| s.2.to_le_bytes()).collect();
        let family: Vec<u8> = feats.iter().map(|f| u8::from(f.0 == Family::Char)).collect();
        let idf: Vec<u8> = feats.iter().flat_map(|f| f.2.to_le_bytes()).collect();
        let names: Vec<u8> = name_texts.iter().flat_map(|t| self.names[*t].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes())).collect();
        let bad = |e: safetensors::SafeTensorError| ModelError::Compute(format!("export memory: {e}"));
        let views = vec![
            ("codes", TensorView::new(safetensors::Dtype::U8, vec![n, self.hidden], &codes).map_err(bad)?),
            ("scales", TensorView::new(safetensors::Dtype::F32, vec![n], &scales).map_err(bad)?),
            ("weights", TensorView::new(safetensors::Dtype::F32, vec![self.weights.len()], &weights).map_err(bad)?),
            ("svm_example", TensorView::new(safetensors::Dtype::U32, vec![self.svm.len()], &svm_ex).map_err(bad)?),
            ("svm_coef", TensorView::new(safetensors::Dtype::F32, vec![self.svm.len()], &svm_coef).map_err(bad)?),
            ("vectorizer_family", TensorView::new(safetensors::Dtype::U8, vec![feats.len()], &family).map_err(bad)?),
            ("vectorizer_idf", TensorView::new(safetensors::Dtype::F32, vec![feats.len()], &idf).map_err(bad)?),
            ("names", TensorView::new(safetensors::Dtype::F16, vec![name_texts.len(), self.hidden], &names).map_err(bad)?),
        ];
        let meta = HashMap::from([("model".to_string(), self.model.clone()), ("shop".to_string(), header.to_string())]);
        let mut out = MEMORY_MAGIC.to_vec();
        out.extend(safetensors::serialize(views, Some(meta)).map_err(bad)?);
        Ok(out)
    }

    /// A state exported by [`Self::export`], for `clf`'s model: `MEMORY_MODEL_MISMATCH` when it
    /// was exported from another model, `MEMORY_CORRUPT` when the bytes are not a whole, valid
    /// export. The state is then applied as it was (no refit). A version 1 export (`SWMEMRY1`:
    /// no vectorizer, no names) gets the vectorizer fitted on its titles and its names embedded.
    pub fn import(clf: &Classifier, bytes: &[u8]) -> Result<Self> {
        let corrupt = |why: String| ModelError::BadMemory(why);
        let (v2, body) = match (bytes.strip_prefix(MEMORY_MAGIC.as_slice()), bytes.strip_prefix(MEMORY_MAGIC_V1.as_slice())) {
            (Some(b), _) => (true, b),
            (None, Some(b)) => (false, b),
            _ => return Err(corrupt("not an exported shelfwise memory (bad magic bytes)".into())),
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(body).map_err(|e| corrupt(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(body).map_err(|e| corrupt(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let model = meta.get("model").ok_or_else(|| corrupt("no model in the metadata".into()))?;
        let expected = &model_id(clf);
        if model != expected {
            return Err(ModelError::MemoryModelMismatch { expected: expected.clone(), found: model.clone() });
        }
        #[derive(serde::Deserialize)]
        struct Header {
            taxonomy: Option<Vec<String>>,
            added: Vec<String>,
            titles: Vec<String>,
            paths: Vec<String>,
            svm_labels: Vec<String>,
            max_examples: usize,
            method: String,
            #[serde(default)]
            vectorizer: bool,
            #[serde(default)]
            vectorizer_docs: usize,
            #[serde(default)]
            grams: Vec<String>,
            #[serde(default)]
            names: Vec<String>,
        }
        let h: Header = serde_json::from_str(meta.get("shop").ok_or_else(|| corrupt("no shop in the metadata".into()))?).map_err(|e| corrupt(e.to_string()))?;
        let hidden = clf.manifest().encoder.hidden;
        let n = h.titles.len();
        let get = |name: &str, dtype: safetensors::Dtype, shape: &[usize]| -> Result<Vec<u8>> {
            let t = st.tensor(name).map_err(|e| corrupt(e.to_string()))?;
            if t.dtype() != dtype || t.shape() != shape {
                return Err(corrupt(format!("{name} is {:?} {:?}, expected {dtype:?} {shape:?}", t.dtype(), t.shape())));
            }
            Ok(t.data().to_vec())
        };
        let f32s = |b: Vec<u8>| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect() };
        if h.paths.len() != n {
            return Err(corrupt("titles and paths differ in number".into()));
        }
        let codes = get("codes", safetensors::Dtype::U8, &[n, hidden])?;
        let scales = f32s(get("scales", safetensors::Dtype::F32, &[n])?);
        // Eight weights: a memory exported before `name_chars` (last in `Feature::ALL`).
        let old = st.tensor("weights").is_ok_and(|t| t.shape() == [Feature::ALL.len() - 1]);
        let weights = f32s(get("weights", safetensors::Dtype::F32, &[Feature::ALL.len() - usize::from(old)])?);
        let weights = Feature::weights_of_all(&Feature::ALL[..weights.len()], &weights);
        let s = h.svm_labels.len();
        let svm_ex: Vec<u32> =
            get("svm_example", safetensors::Dtype::U32, &[s])?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let svm_coef = f32s(get("svm_coef", safetensors::Dtype::F32, &[s])?);
        if scales.iter().any(|x| !(x.is_finite() && *x > 0.0)) || weights.iter().any(|w| !w.is_finite()) || svm_coef.iter().any(|c| !c.is_finite()) {
            return Err(corrupt("a scale, weight or coefficient is not finite".into()));
        }
        if svm_ex.iter().any(|&i| i as usize >= n) {
            return Err(corrupt("an SVM support vector out of range".into()));
        }
        if n > crate::validate::MAX_ADAPT_EXAMPLES || h.max_examples == 0 || h.max_examples > crate::validate::MAX_ADAPT_EXAMPLES || n > h.max_examples {
            return Err(corrupt(format!("{n} examples for a cap of {}", h.max_examples)));
        }
        if h.titles.iter().any(|t| t.trim().is_empty() || t.len() > crate::MAX_TITLE_BYTES) {
            return Err(corrupt("an empty or over-long title".into()));
        }
        let norm = |p: &String| parse(p).map_err(|e| corrupt(format!("path {p:?}: {e}")));
        let mut shop = Shop::new(clf);
        shop.taxonomy = h.taxonomy.map(|t| t.iter().map(norm).collect::<Result<Vec<_>>>()).transpose()?;
        shop.added = h.added.iter().map(norm).collect::<Result<_>>()?;
        let paths: Vec<String> = h.paths.iter().map(norm).collect::<Result<_>>()?;
        shop.examples = Vec::with_capacity(n);
        for (i, (title, path)) in h.titles.into_iter().zip(paths).enumerate() {
            let id = shop.fresh_id();
            shop.examples.push(Remembered { id, title, path, codes: codes[i * hidden..(i + 1) * hidden].to_vec(), scale: scales[i] });
        }
        let known: HashSet<String> = match &shop.taxonomy {
            Some(t) => t.iter().cloned().collect(),
            None => clf.head_labels().label_strings().into_iter().collect(),
        };
        shop.added.extend(shop.examples.iter().map(|e| e.path.clone()).filter(|p| !known.contains(p)));
        shop.svm = h
            .svm_labels
            .iter()
            .map(norm)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .zip(svm_ex)
            .zip(svm_coef)
            .map(|((l, i), c)| (l, shop.examples[i as usize].id, c))
            .collect();
        if v2 {
            let f = h.grams.len();
            let family = get("vectorizer_family", safetensors::Dtype::U8, &[f])?;
            let idf = f32s(get("vectorizer_idf", safetensors::Dtype::F32, &[f])?);
            if h.vectorizer {
                let feats = family.iter().zip(h.grams).zip(idf).map(|((&c, g), w)| (if c == 1 { Family::Char } else { Family::Word }, g, w)).collect();
                let v = TfidfVectorizer::from_features(feats).ok_or_else(|| corrupt("the vectorizer repeats an n-gram or has a bad idf".into()))?;
                shop.vectorizer = Some(Arc::new(v));
                shop.vectorizer_docs = h.vectorizer_docs;
            }
            let k = h.names.len();
            let names = get("names", safetensors::Dtype::F16, &[k, hidden])?;
            let rows: Vec<f32> = names.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
            if rows.iter().any(|x| !x.is_finite()) {
                return Err(corrupt("a category name's embedding is not finite".into()));
            }
            shop.names = h.names.into_iter().zip(rows.chunks(hidden).map(<[f32]>::to_vec)).collect();
        }
        if shop.vectorizer.is_none() && n > 0 {
            shop.refit_vectorizer();
        }
        shop.weights = weights;
        shop.max_examples = h.max_examples;
        // "leave-one-out": weights of a memory exported before the cross-fitted fit, kept as they are.
        shop.method = if ["cross-fitted", "leave-one-out"].contains(&h.method.as_str()) { h.method } else { "prior".into() };
        let labels = shop.label_space(clf).map_err(|e| corrupt(e.to_string()))?;
        if labels.len() > crate::validate::MAX_ADAPT_LABELS {
            return Err(corrupt(format!("{} categories", labels.len())));
        }
        shop.ensure_names(clf, &labels, &Silent)?;
        Ok(shop)
    }
}

/// Removes an adapted file's adaptation: the plain model, the old memory (oldest first) and labels.
/// A plain model file, the adapted file's memory (oldest first) and its labels.
type Stripped = (ModelFile, Vec<Example>, Option<Vec<Vec<String>>>);

fn strip(mut file: ModelFile) -> Result<Stripped> {
    if file.manifest.adaptation.is_none() {
        return Ok((file, Vec::new(), None));
    }
    let clf = Classifier::from_model_file(&file)?;
    let adapter = clf.adapter().expect("an adapted file loads its adapter");
    let (m, labels) = (adapter.memory(), adapter.labels());
    let old = m.titles.iter().zip(&m.labels).map(|(t, &l)| Example { title: t.clone(), path: labels.label(l).to_vec() }).collect();
    let old_labels = labels.labels().to_vec();
    let mut tensors = load_tensors(&file.tensors)?;
    tensors.retain(|k, _| !k.starts_with("adapt."));
    file.tensors = tensors_to_bytes(&tensors)?;
    file.manifest.adaptation = None;
    Ok((file, old, Some(old_labels)))
}

/// Adapts `file` (plain or already adapted) to a taxonomy (every path of the file, inner nodes
/// included; `None`: keep the current labels) and examples (oldest first): a
/// [`crate::shop::Shop`] of the file's state, given the taxonomy and the examples, written out.
pub fn adapt(
    file: ModelFile,
    taxonomy: Option<&[Vec<String>]>,
    examples: Vec<Example>,
    max_examples: usize,
    progress: &dyn Progress,
) -> Result<(ModelFile, Report)> {
    let (base, old, old_labels) = strip(file)?;
    let clf = Classifier::from_model_file(&base)?;
    let mut shop = Shop::new(&clf);
    shop.set_max_examples(max_examples);
    let examples_in = examples.len();
    let mut all = old;
    all.extend(examples);
    let tax: Option<Vec<Vec<String>>> = match (taxonomy, old_labels) {
        (Some(t), _) => Some(t.to_vec()),
        (None, Some(old)) => Some(old),
        (None, None) => None,
    };
    if let Some(t) = &tax {
        shop.replace_taxonomy(t)?;
    }
    let mut report = shop.add_examples(&clf, all, progress)?;
    report.examples_in = examples_in;
    let (adapt_tensors, mut adaptation) = shop.tensors(&clf)?;
    let mut tensors = load_tensors(&base.tensors)?;
    tensors.extend(adapt_tensors);
    adaptation.fit = json!({
        "method": report.method, "samples": report.fit_samples, "prior": PRIOR_WEIGHTS, "prior_strength": PRIOR_STRENGTH,
        "examples_in": report.examples_in, "empty": report.empty, "duplicates": report.duplicates, "contradictions": report.contradictions,
        "evicted": report.evicted, "added_labels": report.added_labels, "rule": "latest of equal titles wins; evict the oldest of the label with the most",
    });
    let mut manifest = base.manifest.clone();
    manifest.adaptation = Some(adaptation);
    let out = ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: base.tokenizer.clone() };
    Ok((out, report))
}
