//! Title in, calibrated category probabilities and suggestions out.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use shelfwise_core::calibration::softmax;
use shelfwise_core::{decide, Decision, LabelSpace};

use crate::encoder::{pad_batch, Encoder};
use crate::error::{ModelError, Result};
use crate::format::{EncoderWeights, Manifest, ModelFile, ModelFileRef};
use crate::head::Head;
use crate::tokenize::{Encoding, TitleTokenizer};

/// Titles longer than this (in UTF-8 bytes) are refused with `INPUT_TOO_LONG` rather than cut
/// silently: a listing title is a line, not a page.
pub const MAX_TITLE_BYTES: usize = 4096;

/// Tokenizer + encoder: titles to mean-pooled embeddings. Training uses it on the base model alone.
pub struct Embedder {
    pub tokenizer: TitleTokenizer,
    pub encoder: Encoder,
}

impl Embedder {
    /// Raw mean-pooled embeddings [N, hidden] of one batch (titles padded to the longest).
    pub fn embed(&self, titles: &[&str]) -> Result<Tensor> {
        let (_, ids, mask) = self.batch(titles)?;
        self.encoder.forward(&ids, &mask)
    }

    /// Checked, tokenized titles and their padded [batch, seq] ids and mask.
    fn batch(&self, titles: &[&str]) -> Result<(Vec<Encoding>, Tensor, Tensor)> {
        let encodings = titles
            .iter()
            .map(|t| check_title(t).and_then(|_| self.tokenizer.encode(t)))
            .collect::<Result<Vec<_>>>()?;
        let (ids, mask) = pad_batch(&encodings, &Device::Cpu)?;
        Ok((encodings, ids, mask))
    }

    /// Hidden states after the first `upto` blocks, one [tokens, hidden] tensor per title
    /// (padding removed): the frozen part of the encoder when fine-tuning the blocks above.
    pub fn hidden(&self, titles: &[&str], upto: usize) -> Result<Vec<Tensor>> {
        let (encodings, ids, mask) = self.batch(titles)?;
        let x = self.encoder.run_layers(self.encoder.embeddings(&ids)?, &mask, 0..upto)?;
        encodings
            .iter()
            .enumerate()
            .map(|(i, e)| Ok(x.get(i)?.narrow(0, 0, e.ids.len())?.contiguous()?))
            .collect()
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
}

/// Reads the tensors section of a model file.
pub fn load_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| ModelError::BadTensors(e.to_string()))
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
        let labels = LabelSpace::from_raw_paths(m.labels.iter().map(String::as_str))
            .map_err(|e| ModelError::BadManifest(format!("labels: {e}")))?;
        if labels.len() != m.labels.len() || labels.labels().iter().zip(&m.labels).any(|(a, b)| a.join(" > ") != *b) {
            return Err(ModelError::BadManifest("labels: must be distinct, normalised and sorted".into()));
        }
        let tensors = load_tensors(file.tensors)?;
        crate::validate::check(&m, &tensors)?;
        let encoder = Encoder::from_tensors(&m.encoder, &tensors)?;
        let head = Head::from_tensors(&m.head, labels.len(), m.encoder.hidden, &tensors)?;
        let tokenizer = TitleTokenizer::from_bytes(file.tokenizer, m.encoder.max_tokens)?;
        Ok(Self { manifest: m, embedder: Embedder { tokenizer, encoder }, head, labels })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn labels(&self) -> &LabelSpace {
        &self.labels
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Uncalibrated logits for a batch of titles.
    pub fn logits(&self, titles: &[&str]) -> Result<Vec<Vec<f32>>> {
        let pooled = self.embedder.embed(titles)?;
        self.logits_from_pooled(titles, &pooled)
    }

    /// The head on given pooled embeddings `[titles.len(), hidden]` (the encoder's raw output).
    fn logits_from_pooled(&self, titles: &[&str], pooled: &Tensor) -> Result<Vec<Vec<f32>>> {
        let ngrams: Vec<Vec<u32>> = titles.iter().map(|t| self.head.ngram_ids(t)).collect();
        Ok(self.head.logits(pooled, &ngrams)?.to_vec2()?)
    }

    /// The title's token ids as the encoder reads them (checked: `INPUT_TOO_LONG`; cut at the
    /// model's `max_tokens`). Another encoder (the GPU one) embeds these, and
    /// [`Self::suggest_with_embedding`] finishes the job.
    pub fn encode(&self, title: &str) -> Result<Encoding> {
        check_title(title)?;
        self.embedder.tokenizer.encode(title)
    }

    /// The title's pooled embedding as this (CPU) encoder computes it: what
    /// [`Self::suggest_with_embedding`] takes. Another encoder's output is checked against it
    /// (the browser's WebGPU encoder, on a probe title, before it is used). `INPUT_TOO_LONG`.
    pub fn embedding(&self, title: &str) -> Result<Vec<f32>> {
        check_title(title)?;
        Ok(self.embedder.embed(&[title])?.flatten_all()?.to_vec1()?)
    }

    /// Calibrated label probabilities for a batch of titles.
    pub fn probs(&self, titles: &[&str]) -> Result<Vec<Vec<f32>>> {
        let t = self.manifest.head.temperature;
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
        Ok(decide(&self.labels, &probs, k, threshold.clamp(0.0, 1.0)))
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
                false => probs.next().map_or_else(Decision::empty, |p| decide(&self.labels, &p, k, threshold)),
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
        let logits = self.logits_from_pooled(&[title], &pooled)?.pop().expect("one title in, one out");
        let probs = softmax(&logits, self.manifest.head.temperature);
        Ok(decide(&self.labels, &probs, k, threshold.clamp(0.0, 1.0)))
    }
}

/// Serialises named tensors as safetensors (names sorted, so the bytes are reproducible).
pub fn tensors_to_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let sorted: std::collections::BTreeMap<&String, &Tensor> = tensors.iter().collect();
    safetensors::tensor::serialize(sorted, None).map_err(|e| ModelError::BadTensors(e.to_string()))
}

/// The encoder's tensors from a base model's safetensors file (checked against its sha256).
pub fn base_encoder_tensors(cfg: &crate::format::EncoderConfig, base: &[u8], sha256: &str) -> Result<HashMap<String, Tensor>> {
    let actual = crate::format::sha256_hex(&[base]);
    if actual != sha256 {
        return Err(ModelError::Incomplete(format!("base model sha256 is {actual}, expected {sha256}")));
    }
    encoder_tensors(cfg, &load_tensors(base)?)
}

/// The encoder's tensors (f32, shapes checked) out of a larger set, e.g. a whole BERT checkpoint.
pub fn encoder_tensors(cfg: &crate::format::EncoderConfig, all: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    crate::encoder::tensor_shapes(cfg)
        .into_iter()
        .map(|(name, shape)| Ok((name.clone(), crate::encoder::take(all, &name, &shape)?)))
        .collect()
}

/// Suffixes of a fine-tuned matrix stored in a part file as its difference from the base model's:
/// int8 codes (U8 bytes, the matrix's shape) and one f32 scale per row.
pub const DELTA_CODES_SUFFIX: &str = ".delta.q8";
pub const DELTA_SCALE_SUFFIX: &str = ".delta.scale";

/// Completes a part file (head only, `encoder_weights: base`) with the base model's encoder.
pub fn assemble(part: ModelFile, base: &[u8]) -> Result<ModelFile> {
    let EncoderWeights::Base { sha256 } = &part.manifest.encoder_weights else {
        return Ok(part);
    };
    let tensors = merge_part(base_encoder_tensors(&part.manifest.encoder, base, sha256)?, load_tensors(&part.tensors)?)?;
    let mut manifest = part.manifest;
    manifest.encoder_weights = EncoderWeights::Embedded;
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&tensors)?, tokenizer: part.tokenizer })
}

/// The inverse of [`assemble`]: keeps only the tensors that differ from the base model's (the head
/// and any fine-tuned blocks; see [`part_tensors`]), as a part file.
pub fn split_part(full: ModelFile, base: &[u8]) -> Result<ModelFile> {
    if full.manifest.quantization.is_some() {
        // Its tensors differ from the base's by rounding alone: cut the part from the f32 model.
        return Err(ModelError::BadManifest("cannot cut a part file from a quantized model".into()));
    }
    // Verified against the manifest's base sha256 here, which the part then refers to.
    let base_tensors = base_encoder_tensors(&full.manifest.encoder, base, &full.manifest.base_model.sha256)?;
    let kept = part_tensors(load_tensors(&full.tensors)?, &base_tensors)?;
    let mut manifest = full.manifest;
    manifest.encoder_weights = EncoderWeights::Base { sha256: manifest.base_model.sha256.clone() };
    Ok(ModelFile { manifest, tensors: tensors_to_bytes(&kept)?, tokenizer: full.tokenizer })
}

/// What a part file stores of a model's tensors: those the base lacks (the head, n-gram table in
/// f16), and fine-tuned base tensors that differ from the base's. A fine-tuned matrix is stored
/// as its delta from the base in int8 with one scale per row: fine-tuning moves weights by a few
/// percent, so the delta keeps ~1 % of its own size as rounding error while the part stays a
/// quarter of an f32 copy (~11 MB instead of ~42 MB for six MiniLM blocks). Vectors (biases,
/// LayerNorms) stay f32. [`merge_part`] of the result is the model as it is then stored: the
/// trainer writes that, so its full file and its assembled part are the same bytes.
pub fn part_tensors(full: HashMap<String, Tensor>, base: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let mut kept = HashMap::new();
    for (name, t) in full {
        let Some(b) = base.get(&name).filter(|b| b.dims() == t.dims()) else {
            kept.insert(name.clone(), crate::head::for_storage(&name, t)?);
            continue;
        };
        let (w, w0) = (flat_f32(&t)?, flat_f32(b)?);
        if w == w0 {
            continue;
        }
        match *t.dims() {
            [rows, cols] => {
                let delta: Vec<f32> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
                let (codes, scales) = crate::quant::quantize_rows(&delta, rows, cols);
                let bytes: Vec<u8> = codes.into_iter().map(|c| c as u8).collect();
                kept.insert(format!("{name}{DELTA_CODES_SUFFIX}"), Tensor::from_vec(bytes, (rows, cols), &Device::Cpu)?);
                kept.insert(format!("{name}{DELTA_SCALE_SUFFIX}"), Tensor::from_vec(scales, rows, &Device::Cpu)?);
            }
            _ => {
                kept.insert(name, t);
            }
        }
    }
    Ok(kept)
}

/// A tensor's values as f32, row-major (an f16 n-gram table widened).
pub(crate) fn flat_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// The base model's tensors completed by a part's (see [`part_tensors`]): plain tensors replace
/// the base's, int8 deltas are added to them. `MODEL_TENSORS` for a delta without its scales, of
/// the wrong shape or type, or for a tensor the base does not have.
pub fn merge_part(mut base: HashMap<String, Tensor>, part: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let bad = |m: String| ModelError::BadTensors(m);
    let mut scales: HashMap<String, Tensor> = HashMap::new();
    let mut deltas = Vec::new();
    for (name, t) in part {
        if let Some(n) = name.strip_suffix(DELTA_SCALE_SUFFIX) {
            scales.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_suffix(DELTA_CODES_SUFFIX) {
            deltas.push((n.to_string(), t));
        } else {
            base.insert(name, t);
        }
    }
    for (name, codes) in deltas {
        let w0 = base.get(&name).ok_or_else(|| bad(format!("delta for {name}, which the base model does not have")))?;
        let s = scales.remove(&name).ok_or_else(|| bad(format!("delta for {name} has no {DELTA_SCALE_SUFFIX}")))?;
        let &[rows, cols] = w0.dims() else {
            return Err(bad(format!("delta for {name}, which is not a matrix")));
        };
        if codes.dtype() != candle_core::DType::U8 || codes.dims() != [rows, cols] {
            return Err(bad(format!("delta for {name}: codes are {:?} {:?}, expected U8 [{rows}, {cols}]", codes.dtype(), codes.dims())));
        }
        let s = flat_f32(&s)?;
        if s.len() != rows || s.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("delta for {name}: {} scales (finite ones expected, one per row of {rows})", s.len())));
        }
        let codes: Vec<i8> = codes.flatten_all()?.to_vec1::<u8>()?.into_iter().map(|c| c as i8).collect();
        let delta = crate::quant::dequantize_rows(&codes, &s, cols);
        let w0 = flat_f32(w0)?;
        let w: Vec<f32> = w0.iter().zip(&delta).map(|(a, d)| a + d).collect();
        base.insert(name, Tensor::from_vec(w, (rows, cols), &Device::Cpu)?);
    }
    if let Some(name) = scales.keys().next() {
        return Err(bad(format!("{name}{DELTA_SCALE_SUFFIX} without its delta")));
    }
    Ok(base)
}
