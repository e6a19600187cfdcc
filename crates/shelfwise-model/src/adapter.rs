//! The adaptation layer at classification time: scores over a shop's own taxonomy from the
//! model's encoder and head, with no gradient training (`crate::adapt` builds it).
//!
//! For a title with unit embedding ê, and for every label j of the shop's label space, component
//! scores ([`Feature`]):
//! - `name_path`, `name_leaf`: cos(ê, the label's path text / its last segment, embedded by the
//!   same encoder) — what works with no example at all;
//! - `head`: the model's own head, log-probability of the head label with the same path (labels
//!   the head does not know get the lowest value the title gave a known one);
//! - `emb_centroid`, `emb_nearest`: cos to the mean embedding of j's remembered examples, and to
//!   the nearest one;
//! - `tfidf_centroid`, `tfidf_nearest`: the same on the examples' TF-IDF rows (the baseline's
//!   vectorizer, `shelfwise_core::baseline`, fitted on the remembered titles): model numbers,
//!   brand spellings;
//! - `tfidf_svm`: the baseline's linear SVM (scikit-learn's `LinearSVC` recipe) trained on the
//!   remembered titles, kept in its dual form (`adapt.svm_pair` / `adapt.svm_coef`: label,
//!   example, `αᵢ yᵢ`), so the file holds no weight per feature and label;
//! - `name_chars`: how much of the label's leaf name and path the title spells out, by character
//!   n-grams (`shelfwise_core::names`, rebuilt from the labels when a file loads): a shop's titles
//!   usually name its categories, which an encoder tuned on another shop's labels can miss.
//!
//! A label with no value for a component (no example; no head label) gets the lowest value any
//! label got for that title (the TF-IDF scores: 0, no word in common), and each component is then z-scored over the labels (per title), so
//! that components of different scales and spreads are comparable and a component that is the
//! same for every label (no head match at all) contributes nothing. The logits are
//! `Σ_c w_c · z_c`, with `w` fitted by `crate::adapt` on held-out examples by likelihood, so
//! `softmax(logits)` (temperature 1) is the calibrated probability that feeds the usual per-level
//! scores and back-off (`shelfwise_core::decide`).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use shelfwise_core::baseline::{SparseRow, TfidfVectorizer};
use shelfwise_core::names::NameMatcher;
use shelfwise_core::LabelSpace;

use crate::error::{ModelError, Result};
use crate::format::Adaptation;
use crate::head::normalize;
use crate::storage::take;

pub const PATH_EMB: &str = "adapt.path_emb";
pub const LEAF_EMB: &str = "adapt.leaf_emb";
pub const EXAMPLE_CODES: &str = "adapt.example_emb";
pub const EXAMPLE_SCALE: &str = "adapt.example_scale";
pub const EXAMPLE_LABEL: &str = "adapt.example_label";
pub const EXAMPLE_TEXT: &str = "adapt.example_text";
pub const EXAMPLE_OFFSET: &str = "adapt.example_offset";
pub const WEIGHTS: &str = "adapt.weights";
pub const SVM_PAIR: &str = "adapt.svm_pair";
pub const SVM_COEF: &str = "adapt.svm_coef";

/// One component score (see the module docs); the manifest names them in weight order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    NamePath,
    NameLeaf,
    Head,
    EmbCentroid,
    EmbNearest,
    TfidfCentroid,
    TfidfNearest,
    TfidfSvm,
    NameChars,
}

impl Feature {
    pub const ALL: [Feature; 9] = [
        Feature::NamePath,
        Feature::NameLeaf,
        Feature::Head,
        Feature::EmbCentroid,
        Feature::EmbNearest,
        Feature::TfidfCentroid,
        Feature::TfidfNearest,
        Feature::TfidfSvm,
        Feature::NameChars,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::NamePath => "name_path",
            Feature::NameLeaf => "name_leaf",
            Feature::Head => "head",
            Feature::EmbCentroid => "emb_centroid",
            Feature::EmbNearest => "emb_nearest",
            Feature::TfidfCentroid => "tfidf_centroid",
            Feature::TfidfNearest => "tfidf_nearest",
            Feature::TfidfSvm => "tfidf_svm",
            Feature::NameChars => crate::format::NAME_CHARS,
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Weights in [`Self::ALL`] order from weights of `features`: 0 for a component they lack (a
    /// file or memory from before `name_chars`), so it scores as it did until the next refit.
    pub fn weights_of_all(features: &[Feature], weights: &[f32]) -> Vec<f32> {
        Self::ALL.iter().map(|f| features.iter().position(|g| g == f).map_or(0.0, |i| weights[i])).collect()
    }
}

/// The key under which two titles are the same example: lower-cased, whitespace collapsed.
pub fn title_key(title: &str) -> String {
    title.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// How far above the best other label a remembered title's own label is put: ln 100, so it is
/// suggested first with ≥ 99 % of the two's probability ([`Adapter::logits`]).
pub const REMEMBERED_MARGIN: f32 = 4.605_17;

/// Example embeddings are stored as int8 codes (+128, in a U8 tensor) with one f32 scale a row:
/// a quarter of f32's bytes, and unit vectors lose ~0.4 % of a component to the rounding.
pub fn quantize_rows(unit: &[f32], hidden: usize) -> (Vec<u8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(unit.len());
    let mut scales = Vec::with_capacity(unit.len() / hidden.max(1));
    for row in unit.chunks(hidden) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        codes.extend(row.iter().map(|x| ((x / s).round().clamp(-127.0, 127.0) as i32 + 128) as u8));
        scales.push(s);
    }
    (codes, scales)
}

/// One stored row (int8 codes + 128 and a scale) as the scores read it: dequantized, then unit length.
pub fn unit_row(codes: &[u8], scale: f32) -> Vec<f32> {
    let mut row: Vec<f32> = codes.iter().map(|&q| (q as i32 - 128) as f32 * scale).collect();
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    row.iter_mut().for_each(|x| *x /= norm);
    row
}

/// The remembered examples, as the scores read them.
pub struct Memory {
    pub titles: Vec<String>,
    pub labels: Vec<usize>,
    /// [N, H] unit rows (dequantized from the file), or `None` with no examples.
    emb: Option<Tensor>,
    rows: Vec<Vec<f32>>,
    /// Per label: Σ of its examples' unit embeddings (zeros for none) and their count.
    sums: Vec<Vec<f32>>,
    sums_sq: Vec<f32>,
    counts: Vec<usize>,
    tfidf: Option<Lexical>,
    /// [`title_key`] → the example (the latest, were there two).
    by_key: HashMap<String, usize>,
}

/// The TF-IDF side of the memory: rows, per-feature postings of examples and of label sums.
struct Lexical {
    vectorizer: Arc<TfidfVectorizer>,
    /// The number of examples (the next one's index in the postings).
    len: usize,
    example_postings: Vec<Vec<(u32, f32)>>,
    /// Per feature: (label, its examples' summed value), sorted by label.
    label_postings: Vec<Vec<(u32, f32)>>,
    label_sums: Vec<HashMap<u32, f32>>,
    label_sq: Vec<f32>,
    /// The SVM's dual: (label, example, αᵢ yᵢ).
    svm: Vec<(u32, u32, f32)>,
}

impl Lexical {
    /// `vectorizer`: one fitted before (a shop's, frozen between refits); `None`: fitted on `titles`.
    fn new(titles: &[String], labels: &[usize], n_labels: usize, svm: Vec<(u32, u32, f32)>, vectorizer: Option<Arc<TfidfVectorizer>>) -> Self {
        let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        let vectorizer = vectorizer.unwrap_or_else(|| Arc::new(TfidfVectorizer::fit(&refs)));
        let rows: Vec<SparseRow> = refs.iter().map(|t| vectorizer.transform(t)).collect();
        let n = vectorizer.n_features();
        let mut example_postings = vec![Vec::new(); n];
        let mut sums: Vec<HashMap<u32, f32>> = vec![HashMap::new(); n_labels];
        for (i, (row, &l)) in rows.iter().zip(labels).enumerate() {
            for &(f, v) in row {
                example_postings[f as usize].push((i as u32, v));
                *sums[l].entry(f).or_default() += v;
            }
        }
        let label_sq = sums.iter().map(|s| s.values().map(|v| v * v).sum()).collect();
        let mut label_postings = vec![Vec::new(); n];
        for (l, s) in sums.iter().enumerate() {
            let mut s: Vec<(u32, f32)> = s.iter().map(|(&f, &v)| (f, v)).collect();
            s.sort_unstable_by_key(|&(f, _)| f);
            for (f, v) in s {
                label_postings[f as usize].push((l as u32, v));
            }
        }
        Self { vectorizer, len: rows.len(), example_postings, label_postings, label_sums: sums, label_sq, svm }
    }

    /// Appends example `i` (= the number of rows) of label `l`: its row, postings, and label
    /// `l`'s sum and norm; the vectorizer and the SVM stay as they are.
    fn remember(&mut self, title: &str, l: usize) {
        let row = self.vectorizer.transform(title);
        let i = self.len as u32;
        for &(f, v) in &row {
            self.example_postings[f as usize].push((i, v));
            let sum = self.label_sums[l].entry(f).or_default();
            *sum += v;
            let post = &mut self.label_postings[f as usize];
            match post.binary_search_by_key(&(l as u32), |&(lab, _)| lab) {
                Ok(at) => post[at].1 = *sum,
                Err(at) => post.insert(at, (l as u32, *sum)),
            }
        }
        self.len += 1;
        self.label_sq[l] = self.label_sums[l].values().map(|v| v * v).sum();
    }
}

impl Memory {
    /// `vectorizer`: the TF-IDF vectorizer to use (a shop's, frozen between refits); `None`: one
    /// fitted on `titles`.
    pub fn new(
        titles: Vec<String>,
        labels: Vec<usize>,
        unit: Vec<f32>,
        hidden: usize,
        n_labels: usize,
        svm: Vec<(u32, u32, f32)>,
        vectorizer: Option<Arc<TfidfVectorizer>>,
    ) -> Result<Self> {
        let n = titles.len();
        let rows: Vec<Vec<f32>> = unit.chunks(hidden).map(<[f32]>::to_vec).collect();
        let mut sums = vec![vec![0f32; hidden]; n_labels];
        let mut counts = vec![0usize; n_labels];
        for (r, &l) in rows.iter().zip(&labels) {
            sums[l].iter_mut().zip(r).for_each(|(s, x)| *s += x);
            counts[l] += 1;
        }
        let sums_sq = sums.iter().map(|s| dot(s, s)).collect();
        let emb = if n == 0 { None } else { Some(Tensor::from_vec(unit, (n, hidden), &Device::Cpu)?) };
        let tfidf = (n > 0).then(|| Lexical::new(&titles, &labels, n_labels, svm, vectorizer));
        let by_key = titles.iter().enumerate().map(|(i, t)| (title_key(t), i)).collect();
        Ok(Self { titles, labels, emb, rows, sums, sums_sq, counts, tfidf, by_key })
    }

    pub fn len(&self) -> usize {
        self.titles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }

    /// Examples remembered for each label.
    pub fn counts(&self) -> &[usize] {
        &self.counts
    }

    /// Example `i`'s unit embedding (as stored).
    pub fn embedding(&self, i: usize) -> &[f32] {
        &self.rows[i]
    }

    /// Whether a title of this [`title_key`] is remembered.
    pub fn remembers(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Appends one example of label `l` with unit row `unit` (as [`Self::new`] would have it last):
    /// its label's sums and the TF-IDF postings are updated, the rest is kept. Needs a non-empty
    /// memory (a vectorizer to transform with).
    fn remember(&mut self, title: String, l: usize, unit: Vec<f32>) -> Result<()> {
        let (Some(emb), Some(lex)) = (&self.emb, &mut self.tfidf) else {
            return Err(ModelError::Compute("remember: an empty memory is rebuilt, not appended to".into()));
        };
        let hidden = unit.len();
        self.emb = Some(Tensor::cat(&[emb, &Tensor::from_slice(&unit, (1, hidden), &Device::Cpu)?], 0)?);
        self.labels.push(l);
        lex.remember(&title, l);
        self.sums[l].iter_mut().zip(&unit).for_each(|(s, x)| *s += x);
        self.counts[l] += 1;
        self.sums_sq[l] = dot(&self.sums[l], &self.sums[l]);
        self.rows.push(unit);
        self.by_key.insert(title_key(&title), self.titles.len());
        self.titles.push(title);
        Ok(())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The adaptation layer of a loaded model.
pub struct Adapter {
    labels: LabelSpace,
    features: Vec<Feature>,
    weights: Vec<f32>,
    /// [H, L] each: the label texts' unit embeddings, transposed for the matmul.
    path_t: Tensor,
    leaf_t: Tensor,
    /// For each label, the head label with the same path.
    head_map: Vec<Option<usize>>,
    sums_t: Option<Tensor>,
    memory: Memory,
    /// The names' character n-grams, where [`Feature::NameChars`] is a component.
    name_chars: Option<Arc<NameMatcher>>,
}

impl Adapter {
    /// The layer of a file's `adaptation` section (validated by `crate::validate` beforehand);
    /// `head_labels` are the model's own. Tensors of the wrong shape or content are `MODEL_TENSORS`.
    pub fn from_tensors(a: &Adaptation, t: &HashMap<String, Tensor>, hidden: usize, head_labels: &LabelSpace) -> Result<Self> {
        Self::from_tensors_with(a, t, hidden, head_labels, None, None)
    }

    /// [`Self::from_tensors`] with the TF-IDF vectorizer given (a shop's frozen one) rather than
    /// fitted on the remembered titles, and the labels' `name_chars` n-grams when already built
    /// (for these labels, in this order).
    pub fn from_tensors_with(
        a: &Adaptation,
        t: &HashMap<String, Tensor>,
        hidden: usize,
        head_labels: &LabelSpace,
        vectorizer: Option<Arc<TfidfVectorizer>>,
        names: Option<Arc<NameMatcher>>,
    ) -> Result<Self> {
        let labels = LabelSpace::from_raw_paths(a.labels.iter().map(String::as_str)).map_err(|e| ModelError::BadManifest(format!("adaptation.labels: {e}")))?;
        let l = labels.len();
        let bad = |why: String| ModelError::BadTensors(why);
        let f32_of = |name: &str, shape: &[usize]| -> Result<Tensor> { take(t, name, shape) };
        // As stored (ids, codes, bytes): `take` would convert them to f32.
        let raw = |name: &str, shape: &[usize], dtype: DType| -> Result<Tensor> {
            let x = t.get(name).ok_or_else(|| bad(format!("missing tensor {name}")))?;
            if x.dtype() != dtype || x.dims() != shape {
                return Err(bad(format!("tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}", x.dtype(), x.dims())));
            }
            Ok(x.clone())
        };
        let path_t = normalize(&f32_of(PATH_EMB, &[l, hidden])?, 1.0)?.t()?.contiguous()?;
        let leaf_t = normalize(&f32_of(LEAF_EMB, &[l, hidden])?, 1.0)?.t()?.contiguous()?;
        let features: Vec<Feature> = a
            .features
            .iter()
            .map(|f| Feature::from_name(f).ok_or_else(|| ModelError::BadManifest(format!("adaptation.features: unknown {f:?}"))))
            .collect::<Result<_>>()?;
        let weights = f32_of(WEIGHTS, &[features.len()])?.to_vec1::<f32>()?;
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(bad(format!("{WEIGHTS}: not finite")));
        }
        let head_map = labels.labels().iter().map(|p| head_labels.find(&shelfwise_core::taxonomy::join_path(p))).collect();
        let n = a.examples;
        let memory = if n == 0 {
            Memory::new(Vec::new(), Vec::new(), Vec::new(), hidden, l, Vec::new(), None)?
        } else {
            let codes = raw(EXAMPLE_CODES, &[n, hidden], DType::U8)?.flatten_all()?.to_vec1::<u8>()?;
            let scales = f32_of(EXAMPLE_SCALE, &[n])?.to_vec1::<f32>()?;
            if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(bad(format!("{EXAMPLE_SCALE}: a scale is not positive and finite")));
            }
            let unit: Vec<f32> = codes.chunks(hidden).zip(&scales).flat_map(|(c, &s)| unit_row(c, s)).collect();
            let ids: Vec<usize> = raw(EXAMPLE_LABEL, &[n], DType::U32)?.to_vec1::<u32>()?.into_iter().map(|x| x as usize).collect();
            if let Some(x) = ids.iter().find(|&&x| x >= l) {
                return Err(bad(format!("{EXAMPLE_LABEL}: label {x} of {l}")));
            }
            let offsets: Vec<usize> = raw(EXAMPLE_OFFSET, &[n + 1], DType::U32)?.to_vec1::<u32>()?.into_iter().map(|x| x as usize).collect();
            let text = t.get(EXAMPLE_TEXT).ok_or_else(|| bad(format!("missing tensor {EXAMPLE_TEXT}")))?;
            if text.dtype() != DType::U8 || text.rank() != 1 {
                return Err(bad(format!("{EXAMPLE_TEXT}: {:?} {:?}, expected U8 [bytes]", text.dtype(), text.dims())));
            }
            let text = text.to_vec1::<u8>()?;
            if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) || offsets[n] != text.len() {
                return Err(bad(format!("{EXAMPLE_OFFSET}: not increasing from 0 to the text's {} bytes", text.len())));
            }
            let titles = offsets
                .windows(2)
                .map(|w| std::str::from_utf8(&text[w[0]..w[1]]).map(str::to_string).map_err(|_| bad(format!("{EXAMPLE_TEXT}: a title is not UTF-8"))))
                .collect::<Result<Vec<_>>>()?;
            let svm = match t.get(SVM_COEF) {
                None => Vec::new(),
                Some(c) => {
                    let nnz = c.dims().first().copied().unwrap_or(0);
                    let coef = f32_of(SVM_COEF, &[nnz])?.to_vec1::<f32>()?;
                    let pair = raw(SVM_PAIR, &[nnz, 2], DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
                    let svm: Vec<(u32, u32, f32)> = pair.chunks(2).zip(coef).map(|(p, c)| (p[0], p[1], c)).collect();
                    if svm.iter().any(|&(lab, i, c)| lab as usize >= l || i as usize >= n || !c.is_finite()) {
                        return Err(bad(format!("{SVM_PAIR}: a label or example out of range, or a coefficient not finite")));
                    }
                    svm
                }
            };
            Memory::new(titles, ids, unit, hidden, l, svm, vectorizer)?
        };
        let sums_t = match memory.is_empty() {
            true => None,
            false => Some(Tensor::from_vec(memory.sums.concat(), (l, hidden), &Device::Cpu)?.t()?.contiguous()?),
        };
        let name_chars = features.contains(&Feature::NameChars).then(|| names.unwrap_or_else(|| Arc::new(NameMatcher::new(labels.labels()))));
        Ok(Self { labels, features, weights, path_t, leaf_t, head_map, sums_t, memory, name_chars })
    }

    pub fn labels(&self) -> &LabelSpace {
        &self.labels
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The labels' `name_chars` n-grams, where that is a component (a shop starting from this
    /// layer reuses them).
    pub fn name_matcher(&self) -> Option<&Arc<NameMatcher>> {
        self.name_chars.as_ref()
    }

    /// The TF-IDF vectorizer of the memory (`None` with no examples).
    pub fn vectorizer(&self) -> Option<&Arc<TfidfVectorizer>> {
        self.memory.tfidf.as_ref().map(|l| &l.vectorizer)
    }

    /// Appends a remembered example of label `l` (its unit embedding `unit`, as stored: see
    /// [`Memory::remember`]); the labels, name embeddings, weights and SVM are kept. The cost is
    /// the label's examples and the title's n-grams, plus copying the embedding matrix and the
    /// [H, L] label sums, not a refit over the memory.
    pub fn remember(&mut self, title: String, l: usize, unit: Vec<f32>) -> Result<()> {
        if l >= self.labels.len() || unit.len() != self.path_t.dims()[0] {
            return Err(ModelError::Compute(format!("remember: label {l} of {}, a row of {}", self.labels.len(), unit.len())));
        }
        self.memory.remember(title, l, unit)?;
        let hidden = self.path_t.dims()[0];
        self.sums_t = Some(Tensor::from_vec(self.memory.sums.concat(), (self.labels.len(), hidden), &Device::Cpu)?.t()?.contiguous()?);
        Ok(())
    }

    /// The TF-IDF SVM's dual: (label, example, αᵢ yᵢ).
    pub fn svm(&self) -> &[(u32, u32, f32)] {
        self.memory.tfidf.as_ref().map_or(&[], |l| &l.svm)
    }

    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    pub fn set_weights(&mut self, w: Vec<f32>) {
        self.weights = w;
    }

    /// Logits over [`Self::labels`] for titles with raw pooled embeddings `[B, H]` and the head's
    /// logits (temperature `head_t`). A title the memory holds (same [`title_key`]) is answered
    /// from memory: a seller said where it goes (a correction takes effect from the next call),
    /// so its label is raised to [`REMEMBERED_MARGIN`] above the best other one when it is not
    /// already that far ahead. Titles near it get the example scores' pull, no more.
    pub fn logits(&self, titles: &[&str], pooled: &Tensor, head_logits: &[Vec<f32>], head_t: f32) -> Result<Vec<Vec<f32>>> {
        let unit = normalize(pooled, 1.0)?;
        let z = self.features_z(titles, &unit, head_logits, head_t)?;
        Ok(z.iter()
            .zip(titles)
            .map(|(f, t)| {
                let mut l = self.combine(f);
                if let Some(&i) = self.memory.by_key.get(&title_key(t)) {
                    let own = self.memory.labels[i];
                    let best_other = l.iter().enumerate().filter(|&(j, _)| j != own).map(|(_, &x)| x).fold(f32::NEG_INFINITY, f32::max);
                    if best_other.is_finite() {
                        l[own] = l[own].max(best_other + REMEMBERED_MARGIN);
                    }
                }
                l
            })
            .collect())
    }

    /// `Σ_c w_c · z_c` of one title's z-scored components ([C][L]).
    pub fn combine(&self, z: &[Vec<f32>]) -> Vec<f32> {
        let mut out = vec![0f32; self.labels.len()];
        for (w, zc) in self.weights.iter().zip(z) {
            out.iter_mut().zip(zc).for_each(|(o, x)| *o += w * x);
        }
        out
    }

    /// Every title's z-scored components, `[B][C][L]` in [`Self::features`] order. `unit` are the
    /// titles' unit embeddings `[B, H]`. (The weights' fit scores an example with a memory that
    /// does not hold it: `crate::shop`'s refit.)
    pub fn features_z(&self, titles: &[&str], unit: &Tensor, head_logits: &[Vec<f32>], head_t: f32) -> Result<Vec<Vec<Vec<f32>>>> {
        let l = self.labels.len();
        let name_path: Vec<Vec<f32>> = unit.matmul(&self.path_t)?.to_vec2()?;
        let name_leaf: Vec<Vec<f32>> = unit.matmul(&self.leaf_t)?.to_vec2()?;
        let (sims, cent): (Vec<Vec<f32>>, Vec<Vec<f32>>) = match (&self.memory.emb, &self.sums_t) {
            (Some(e), Some(s)) => (unit.matmul(&e.t()?)?.to_vec2()?, unit.matmul(s)?.to_vec2()?),
            _ => (vec![Vec::new(); titles.len()], vec![Vec::new(); titles.len()]),
        };
        let m = &self.memory;
        let mut out = Vec::with_capacity(titles.len());
        for b in 0..titles.len() {
            let mut z = Vec::with_capacity(self.features.len());
            let lex = m.tfidf.as_ref().map(|lex| {
                let row = lex.vectorizer.transform(titles[b]);
                let mut dots = vec![0f32; m.len()];
                for &(feat, x) in &row {
                    for &(i, y) in &lex.example_postings[feat as usize] {
                        dots[i as usize] += x * y;
                    }
                }
                (lex, row, dots)
            });
            for &f in &self.features {
                let mut v = vec![f32::NAN; l];
                match f {
                    Feature::NamePath => v.copy_from_slice(&name_path[b]),
                    Feature::NameLeaf => v.copy_from_slice(&name_leaf[b]),
                    Feature::NameChars => {
                        if let Some(nm) = &self.name_chars {
                            v.copy_from_slice(&nm.scores(titles[b]));
                        }
                    }
                    Feature::Head => {
                        let lp = log_softmax(&head_logits[b], head_t);
                        for (j, h) in self.head_map.iter().enumerate() {
                            if let Some(h) = h {
                                v[j] = lp[*h];
                            }
                        }
                    }
                    Feature::EmbCentroid if !m.is_empty() => {
                        for j in 0..l {
                            let (d, sq) = (cent[b][j], m.sums_sq[j]);
                            if m.counts[j] > 0 && sq > 1e-12 {
                                v[j] = d / sq.sqrt();
                            }
                        }
                    }
                    Feature::EmbNearest if !m.is_empty() => {
                        for (&s, &lab) in sims[b].iter().zip(&m.labels) {
                            if v[lab].is_nan() || s > v[lab] {
                                v[lab] = s;
                            }
                        }
                    }
                    Feature::TfidfSvm => {
                        if let Some((lex, _, dots)) = &lex {
                            for &(lab, i, c) in &lex.svm {
                                let x = &mut v[lab as usize];
                                *x = if x.is_nan() { 0.0 } else { *x } + c * (dots[i as usize] + 1.0);
                            }
                        }
                    }
                    Feature::TfidfCentroid | Feature::TfidfNearest => {
                        if let Some((lex, row, dots)) = &lex {
                            lexical(lex, m, row, dots, f, &mut v);
                            // TF-IDF cosines are ≥ 0, and 0 is "no word in common": what a label
                            // without examples has. (The lowest present value would make a memory
                            // of one category all one value: a first correction would do nothing.)
                            v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = 0.0);
                        }
                    }
                    _ => {}
                }
                standardize(&mut v);
                z.push(v);
            }
            out.push(z);
        }
        Ok(out)
    }
}

/// One title's TF-IDF centroid or nearest-example scores into `v` (NaN where a label has none).
fn lexical(lex: &Lexical, m: &Memory, row: &SparseRow, dots: &[f32], f: Feature, v: &mut [f32]) {
    if f == Feature::TfidfNearest {
        for (&d, &lab) in dots.iter().zip(&m.labels) {
            if v[lab].is_nan() || d > v[lab] {
                v[lab] = d;
            }
        }
        return;
    }
    let mut cdots = vec![0f32; v.len()];
    for &(feat, x) in row {
        for &(j, y) in &lex.label_postings[feat as usize] {
            cdots[j as usize] += x * y;
        }
    }
    for (j, out) in v.iter_mut().enumerate() {
        let (d, sq) = (cdots[j], lex.label_sq[j]);
        if m.counts[j] > 0 && sq > 1e-12 {
            *out = d / sq.sqrt();
        }
    }
}

fn log_softmax(logits: &[f32], t: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = logits.iter().map(|&x| ((x - max) / t).exp()).sum::<f32>().ln();
    logits.iter().map(|&x| (x - max) / t - lse).collect()
}

/// Fills missing values (NaN) with the lowest present one, then z-scores over the labels; a
/// component with no spread (or nothing present) becomes all zeros: it cannot tell labels apart.
pub fn standardize(v: &mut [f32]) {
    let min = v.iter().copied().filter(|x| !x.is_nan()).fold(f32::INFINITY, f32::min);
    let fill = if min.is_finite() { min } else { 0.0 };
    v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = fill);
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    if var.sqrt() < 1e-6 {
        v.iter_mut().for_each(|x| *x = 0.0);
    } else {
        let sd = var.sqrt();
        v.iter_mut().for_each(|x| *x = ((*x as f64 - mean) / sd) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_fills_missing_with_the_minimum_and_z_scores() {
        let mut v = [1.0, f32::NAN, 3.0];
        standardize(&mut v);
        // Filled: [1, 1, 3]; mean 5/3, population sd sqrt(8/9).
        let sd = (8.0f32 / 9.0).sqrt();
        let want = [(1.0 - 5.0 / 3.0) / sd, (1.0 - 5.0 / 3.0) / sd, (3.0 - 5.0 / 3.0) / sd];
        v.iter().zip(want).for_each(|(a, b)| assert!((a - b).abs() < 1e-6, "{v:?}"));
        let mut flat = [f32::NAN, f32::NAN];
        standardize(&mut flat);
        assert_eq!(flat, [0.0, 0.0]);
    }

    #[test]
    fn int8_rows_round_trip_within_half_a_step() {
        let row = [0.6f32, -0.8, 0.0, 0.1];
        let (codes, scales) = quantize_rows(&row, 4);
        assert_eq!(codes[1], 1, "the largest magnitude maps to ∓127 (+128)");
        for (c, x) in codes.iter().zip(row) {
            assert!(((*c as i32 - 128) as f32 * scales[0] - x).abs() <= scales[0] / 2.0 + 1e-7);
        }
    }
}
