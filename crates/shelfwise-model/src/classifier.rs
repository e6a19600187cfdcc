//! Title in, calibrated category probabilities and suggestions out.

use candle_core::{Device, Tensor};
use shelfwise_core::calibration::softmax;
use shelfwise_core::lexical::{stacked, Lexical, StackBucket, StackGate};
use shelfwise_core::{decide, Decision, LabelSpace};

use crate::backend::{ProbeError, PROBE_TITLE};
use crate::encoder::TitleEncoder;
use crate::error::{ModelError, Result};
use crate::format::{EncoderWeights, Manifest, ModelFile, ModelFileRef};
// The storage layer's tensor I/O, where other crates have always found it.
use crate::head::Head;
pub use crate::storage::{base_encoder_tensors, encoder_tensors, load_tensors, tensors_to_bytes};
use crate::tokenize::{Encoding, TitleTokenizer};

/// Titles longer than this (in UTF-8 bytes) are refused with `INPUT_TOO_LONG` rather than cut
/// silently: a listing title is a line, not a page.
pub const MAX_TITLE_BYTES: usize = 4096;

/// Tokenizer + encoder: titles to mean-pooled embeddings. A classifier holds one with whichever
/// encoder it runs on (`Box<dyn TitleEncoder>`); training holds one of the candle encoder, whose
/// inner blocks it also reads (`train::embed::hidden_all`).
pub struct Embedder<E: TitleEncoder = Box<dyn TitleEncoder>> {
    pub tokenizer: TitleTokenizer,
    pub encoder: E,
}

impl<E: TitleEncoder> Embedder<E> {
    /// Raw mean-pooled embeddings [N, hidden] of one batch.
    pub fn embed(&self, titles: &[&str]) -> Result<Tensor> {
        let encodings = self.encode(titles)?;
        let pooled = self.encoder.embed(&encodings)?;
        Ok(Tensor::from_vec(pooled, (titles.len(), self.encoder.hidden()), &Device::Cpu)?)
    }

    /// Checked (`INPUT_TOO_LONG`), tokenized titles.
    pub fn encode(&self, titles: &[&str]) -> Result<Vec<Encoding>> {
        titles.iter().map(|t| check_title(t).and_then(|_| self.tokenizer.encode(t))).collect()
    }
}

fn check_title(title: &str) -> Result<()> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(ModelError::InputTooLong { len: title.len(), max: MAX_TITLE_BYTES });
    }
    Ok(())
}

pub struct Classifier {
    manifest: Manifest,
    embedder: Embedder,
    head: Head,
    labels: LabelSpace,
    /// The lexical part, the stack's buckets and its gate, when the file has them.
    lexical: Option<(Lexical, Vec<StackBucket>, Option<StackGate>)>,
    /// An adapted file's layer (`crate::adapter`): its labels are the ones suggested.
    adapter: Option<crate::adapter::Adapter>,
}

impl Classifier {
    /// Loads and fully validates a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_file(ModelFileRef::parse(bytes, None)?)
    }

    /// [`Self::from_bytes`] with the file's sha256 digests computed elsewhere (see
    /// [`crate::format::Digests`]).
    pub fn from_bytes_with_digests(bytes: &[u8], digests: &crate::format::Digests) -> Result<Self> {
        Self::from_file(ModelFileRef::parse(bytes, Some(digests))?)
    }

    /// A classifier of a parsed model file (which stays the caller's: its tensors can feed another
    /// encoder, e.g. the GPU's, without a second parse).
    pub fn from_model_file(file: &ModelFile) -> Result<Self> {
        Self::from_file(ModelFileRef { manifest: file.manifest.clone(), tensors: &file.tensors, tokenizer: &file.tokenizer })
    }

    fn from_file(file: ModelFileRef<'_>) -> Result<Self> {
        let m = file.manifest;
        if let EncoderWeights::Base { sha256 } = &m.encoder_weights {
            return Err(ModelError::Incomplete(format!("base model sha256 {sha256}")));
        }
        let labels = LabelSpace::from_raw_paths(m.labels.iter().map(String::as_str)).map_err(|e| ModelError::BadManifest(format!("labels: {e}")))?;
        if labels.len() != m.labels.len() || labels.labels().iter().zip(&m.labels).any(|(a, b)| a.join(" > ") != *b) {
            return Err(ModelError::BadManifest("labels: must be distinct, normalised and sorted".into()));
        }
        let tensors = load_tensors(file.tensors)?;
        crate::validate::check(&m, &tensors)?;
        let encoder = crate::encoder::from_tensors(&m.encoder, &tensors)?;
        let head = Head::from_tensors(&m.head, labels.len(), m.encoder.hidden, &tensors)?;
        let tokenizer = TitleTokenizer::from_bytes(file.tokenizer, m.encoder.max_tokens)?;
        let lexical = match &m.lexical {
            Some(l) => Some((crate::lexical::load(&tensors)?, l.stack.clone(), l.gate.clone())),
            None => None,
        };
        let adapter = m.adaptation.as_ref().map(|a| crate::adapter::Adapter::from_tensors(a, &tensors, m.encoder.hidden, &labels)).transpose()?;
        Ok(Self { manifest: m, embedder: Embedder { tokenizer, encoder }, head, labels, lexical, adapter })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The labels suggested: an adapted file's own, else the head's.
    pub fn labels(&self) -> &LabelSpace {
        self.adapter.as_ref().map_or(&self.labels, |a| a.labels())
    }

    /// The head's labels (the model's own, whether or not the file is adapted).
    pub fn head_labels(&self) -> &LabelSpace {
        &self.labels
    }

    pub fn adapter(&self) -> Option<&crate::adapter::Adapter> {
        self.adapter.as_ref()
    }

    /// The adaptation layer to edit in place (`crate::shop`'s fast path for one correction).
    pub fn adapter_mut(&mut self) -> Option<&mut crate::adapter::Adapter> {
        self.adapter.as_mut()
    }

    /// Replaces the adaptation layer (`crate::shop` builds one from a shop's live state; `None`:
    /// the model's own labels again). Takes effect from the next call.
    pub fn set_adapter(&mut self, adapter: Option<crate::adapter::Adapter>) {
        self.adapter = adapter;
    }

    /// The softmax temperature of [`Self::logits`]: 1 for an adapted file (its combination
    /// weights are fitted by likelihood, so they carry the scale).
    pub fn temperature(&self) -> f32 {
        if self.adapter.is_some() {
            1.0
        } else {
            self.manifest.head.temperature
        }
    }

    /// The model's own logits (the head, stacked with the lexical part where there is one; no
    /// adaptation) for titles with raw pooled embeddings `[N, hidden]`.
    pub fn model_logits(&self, titles: &[&str], pooled: &Tensor) -> Result<Vec<Vec<f32>>> {
        self.logits_from_pooled(titles, pooled)
    }

    /// The scores suggestions are made from: the head's logits, through the adaptation layer
    /// when the file has one.
    fn scores_from_pooled(&self, titles: &[&str], pooled: &Tensor) -> Result<Vec<Vec<f32>>> {
        let head = self.logits_from_pooled(titles, pooled)?;
        match &self.adapter {
            None => Ok(head),
            Some(a) => a.logits(titles, pooled, &head, self.manifest.head.temperature),
        }
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The encoder this classifier runs on.
    pub fn encoder(&self) -> &dyn TitleEncoder {
        &*self.embedder.encoder
    }

    /// Runs on `candidate` (another encoder of this model's weights, e.g. shelfwise-gpu's) from
    /// now on, once its embedding of [`PROBE_TITLE`] agrees with the current encoder's
    /// ([`crate::backend::probe`]): returns that cosine. On a disagreement or a failed forward
    /// the classifier keeps its encoder and `candidate` is dropped.
    pub fn use_encoder(&mut self, candidate: Box<dyn TitleEncoder>) -> std::result::Result<f32, ProbeError> {
        let hidden = self.manifest.encoder.hidden;
        if candidate.hidden() != hidden {
            return Err(ModelError::Compute(format!("{} embeds {} values a title; this model {hidden}", candidate.name(), candidate.hidden())).into());
        }
        let cos = crate::backend::probe(self.encoder(), &*candidate, &self.encode(PROBE_TITLE)?)?;
        self.embedder.encoder = candidate;
        Ok(cos)
    }

    /// Uncalibrated logits for a batch of titles (over [`Self::labels`]; divide by
    /// [`Self::temperature`] for the calibrated softmax).
    pub fn logits(&self, titles: &[&str]) -> Result<Vec<Vec<f32>>> {
        let pooled = self.embedder.embed(titles)?;
        self.scores_from_pooled(titles, &pooled)
    }

    /// The head's logits alone, without the lexical part (what training stacks with it).
    pub fn head_logits(&self, titles: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.head_from_pooled(titles, &self.embedder.embed(titles)?)
    }

    /// The head on given pooled embeddings `[titles.len(), hidden]`: what both the head alone and
    /// the stack read.
    fn head_from_pooled(&self, titles: &[&str], pooled: &Tensor) -> Result<Vec<Vec<f32>>> {
        let ngrams: Vec<Vec<u32>> = titles.iter().map(|t| self.head.ngram_ids(t)).collect();
        self.head.logits(pooled, &ngrams)
    }

    /// The logits on given pooled embeddings `[titles.len(), hidden]` (the encoder's raw output):
    /// the head's, stacked with the lexical part's scores where the model has one. Every backend
    /// comes through here, so all of them score the same.
    fn logits_from_pooled(&self, titles: &[&str], pooled: &Tensor) -> Result<Vec<Vec<f32>>> {
        let head = self.head_from_pooled(titles, pooled)?;
        Ok(match &self.lexical {
            None => head,
            Some((lex, stack, gate)) => head.iter().zip(titles).map(|(h, t)| stacked(h, &lex.scores(t), t, stack, gate.as_ref())).collect(),
        })
    }

    /// The lexical part, when the model has one.
    pub fn lexical(&self) -> Option<&Lexical> {
        self.lexical.as_ref().map(|(l, _, _)| l)
    }

    /// The title's token ids as the encoder reads them (checked: `INPUT_TOO_LONG`; cut at the
    /// model's `max_tokens`). Another encoder (the GPU one) embeds these, and
    /// [`Self::suggest_with_embedding`] finishes the job.
    pub fn encode(&self, title: &str) -> Result<Encoding> {
        check_title(title)?;
        self.embedder.tokenizer.encode(title)
    }

    /// The title's pooled embedding as this classifier's encoder computes it: what
    /// [`Self::suggest_with_embedding`] takes. Another encoder's output is checked against it
    /// (the browser's WebGPU encoder, on a probe title, before it is used). `INPUT_TOO_LONG`.
    pub fn embedding(&self, title: &str) -> Result<Vec<f32>> {
        check_title(title)?;
        Ok(self.embedder.embed(&[title])?.flatten_all()?.to_vec1()?)
    }

    /// Calibrated label probabilities for a batch of titles.
    pub fn probs(&self, titles: &[&str]) -> Result<Vec<Vec<f32>>> {
        let t = self.temperature();
        Ok(self.logits(titles)?.iter().map(|l| softmax(l, t)).collect())
    }

    /// Top-`k` suggestions for one title; abstains (with a back-off) below `threshold`.
    /// An empty or blank title gets no suggestions rather than an error: it is what a form sends
    /// before the seller has typed.
    pub fn suggest(&self, title: &str, k: usize, threshold: f32) -> Result<Decision> {
        // Not suggest_many of one title: its extra vectors measured ~2 % slower a title in wasm.
        check_title(title)?;
        if title.trim().is_empty() {
            return Ok(Decision::empty());
        }
        let probs = self.probs(&[title])?.pop().expect("one title in, one out");
        Ok(decide(self.labels(), &probs, k, threshold.clamp(0.0, 1.0)))
    }

    /// [`Self::suggest`] for many titles in one encoder pass (a catalogue import): the same
    /// decisions as one call a title, up to summation order (`INPUT_TOO_LONG` for the first title
    /// over the limit, before any work; blank titles get the empty decision).
    pub fn suggest_many(&self, titles: &[&str], k: usize, threshold: f32) -> Result<Vec<Decision>> {
        titles.iter().try_for_each(|t| check_title(t))?;
        let real: Vec<&str> = titles.iter().copied().filter(|t| !t.trim().is_empty()).collect();
        let mut probs = if real.is_empty() { Vec::new() } else { self.probs(&real)? }.into_iter();
        let threshold = threshold.clamp(0.0, 1.0);
        Ok(titles
            .iter()
            .map(|t| match t.trim().is_empty() {
                true => Decision::empty(),
                false => probs.next().map_or_else(Decision::empty, |p| decide(self.labels(), &p, k, threshold)),
            })
            .collect())
    }

    /// [`Self::suggest`] with the title's pooled embedding computed elsewhere (by another encoder
    /// of the same weights, e.g. shelfwise-gpu's on [`Self::encode`]'s ids): the head, calibration
    /// and decision are this crate's, shared by every backend. Equals `suggest` when `embedding`
    /// is the CPU encoder's. `INTERNAL` when `embedding` is not `hidden` finite values.
    pub fn suggest_with_embedding(&self, title: &str, embedding: &[f32], k: usize, threshold: f32) -> Result<Decision> {
        check_title(title)?;
        if title.trim().is_empty() {
            return Ok(Decision::empty());
        }
        let hidden = self.manifest.encoder.hidden;
        if embedding.len() != hidden || embedding.iter().any(|x| !x.is_finite()) {
            return Err(ModelError::Compute(format!("embedding must be {hidden} finite values, got {}", embedding.len())));
        }
        let pooled = Tensor::from_slice(embedding, (1, hidden), &Device::Cpu)?;
        let logits = self.scores_from_pooled(&[title], &pooled)?.pop().expect("one title in, one out");
        let probs = softmax(&logits, self.temperature());
        Ok(decide(self.labels(), &probs, k, threshold.clamp(0.0, 1.0)))
    }
}
