//! The model file: one self-describing, versioned, checksummed blob.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "SHLFWISE"
//! 8       4     format version (u32 LE)
//! 12      4     manifest length M (u32 LE)
//! 16      8     tensors length S (u64 LE)
//! 24      4     tokenizer length K (u32 LE)
//! 28      M     manifest (JSON, see [`Manifest`])
//! 28+M    S     tensors (safetensors)
//! ..      K     tokenizer (tokenizer.json)
//! end-32  32    sha256 of every byte before it
//! ```
//! Checks run cheapest first: magic, version, lengths (truncation), whole-file checksum (any flipped
//! bit), manifest, payload hash (tensors + tokenizer, as recorded in the manifest). A file that
//! passes all of them is exactly the file that was written.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

pub const MAGIC: &[u8; 8] = b"SHLFWISE";
/// The newest format version this build reads and writes: 4 for a file whose adaptation weighs the
/// `name_chars` component, 3 for a file whose lexical part has a stack gate
/// (`LexicalConfig::gate`), 2 for a file with a lexical part (`Manifest::lexical`) or an adaptation
/// section (`Manifest::adaptation`), so that a reader from before them refuses the file
/// (`MODEL_VERSION`) instead of scoring without them (or over the model's own labels); every
/// other file is still written as version 1, byte for byte what it was.
pub const FORMAT_VERSION: u32 = 4;
/// The version of a file whose lexical part has a stack gate and whose adaptation, if any, does
/// not weigh `name_chars`.
pub const FORMAT_VERSION_GATE: u32 = 3;
/// The version of a file with a lexical part or an adaptation section, and no stack gate.
pub const FORMAT_VERSION_LEXICAL: u32 = 2;
/// The version of a file with neither.
pub const FORMAT_VERSION_PLAIN: u32 = 1;
const HEADER_LEN: usize = 28;
const CHECKSUM_LEN: usize = 32;

/// Shape of the BERT encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub layer_norm_eps: f64,
    /// Titles are cut to this many word pieces (special tokens included).
    pub max_tokens: usize,
}

impl EncoderConfig {
    /// all-MiniLM-L6-v2.
    pub fn minilm_l6() -> Self {
        Self { vocab_size: 30522, hidden: 384, layers: 6, heads: 12, intermediate: 1536, max_positions: 512, layer_norm_eps: 1e-12, max_tokens: 128 }
    }

    /// The shape a Hugging Face BERT `config.json` describes, titles cut at `max_tokens`. Only
    /// what this encoder computes is accepted (GELU, absolute positions, two token types);
    /// anything else is `MODEL_MANIFEST`.
    pub fn from_hf_config(json: &[u8], max_tokens: usize) -> Result<Self> {
        let bad = |why: String| ModelError::BadManifest(format!("base config.json: {why}"));
        let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        let int = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).map(|n| n as usize).ok_or_else(|| bad(format!("no integer {k:?}")));
        for (k, want) in [("hidden_act", "gelu"), ("position_embedding_type", "absolute")] {
            if let Some(x) = v.get(k).filter(|x| x.as_str() != Some(want)) {
                return Err(bad(format!("{k} is {x}, this encoder computes {want:?}")));
            }
        }
        if let Some(n) = v.get("type_vocab_size").filter(|n| n.as_u64() != Some(2)) {
            return Err(bad(format!("type_vocab_size is {n}, this encoder reads 2")));
        }
        Ok(Self {
            vocab_size: int("vocab_size")?,
            hidden: int("hidden_size")?,
            layers: int("num_hidden_layers")?,
            heads: int("num_attention_heads")?,
            intermediate: int("intermediate_size")?,
            max_positions: int("max_position_embeddings")?,
            layer_norm_eps: v.get("layer_norm_eps").and_then(serde_json::Value::as_f64).unwrap_or(1e-12),
            max_tokens,
        })
    }
}

/// The hybrid head: a linear layer over the sentence embedding plus a bag of hashed n-gram vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    pub ngram: shelfwise_core::ngram::NgramConfig,
    pub buckets: u32,
    pub ngram_dim: usize,
    /// The L2-normalised sentence embedding is multiplied by this before the linear layer.
    pub embed_scale: f32,
    /// Softmax temperature fitted on held-out data.
    pub temperature: f32,
}

/// The lexical part: the baseline's TF-IDF + linear SVM stored compactly (tensors `lexical.*`,
/// see `crate::lexical`), and the stack that combines its scores with the head's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LexicalConfig {
    /// Which n-grams the hashes are of; only [`LEXICAL_ANALYZER`] exists.
    pub analyzer: String,
    /// Stored n-grams (hashes) and SVM weights.
    pub features: usize,
    pub weights: usize,
    /// Per title-length bucket: the weights of the head's log-probabilities and the SVM's scores.
    pub stack: Vec<shelfwise_core::lexical::StackBucket>,
    /// The stack's gate, when training kept one: it then sets the weights and `stack` is unused
    /// (format version 3, so that a reader from before refuses the file instead of scoring it by
    /// the buckets). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<shelfwise_core::lexical::StackGate>,
}

/// scikit-learn's word 1–2-grams (`\b\w\w+\b`) and `char_wb` 2–5-grams, sublinear TF, idf, each
/// family L2-normalised (`shelfwise_core::baseline`).
pub const LEXICAL_ANALYZER: &str = "tfidf-word-1-2+char_wb-2-5";

/// Where the encoder's weights are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EncoderWeights {
    /// In this file's tensors.
    Embedded,
    /// Not in this file: it is a part to be assembled with the base model's safetensors (sha256).
    Base { sha256: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseModel {
    pub name: String,
    pub source: String,
    pub license: String,
    /// sha256 of the base safetensors file.
    pub sha256: String,
}

impl Manifest {
    /// The format version a file of this manifest is written as, and must say when read.
    pub fn format_version(&self) -> u32 {
        if self.adaptation.as_ref().is_some_and(|a| a.features.iter().any(|f| f == NAME_CHARS)) {
            FORMAT_VERSION
        } else if self.lexical.as_ref().is_some_and(|l| l.gate.is_some()) {
            FORMAT_VERSION_GATE
        } else if self.lexical.is_some() || self.adaptation.is_some() {
            FORMAT_VERSION_LEXICAL
        } else {
            FORMAT_VERSION_PLAIN
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub created_by: String,
    pub base_model: BaseModel,
    pub encoder: EncoderConfig,
    pub encoder_weights: EncoderWeights,
    pub head: HeadConfig,
    /// Label paths, `"A > B > C"`, in head order.
    pub labels: Vec<String>,
    /// Free-form: data files and hashes, seed, settings, timings.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Free-form: evaluation results recorded when the model was made.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// sha256 of tensors followed by tokenizer; filled in by [`ModelFile::to_bytes`].
    #[serde(default)]
    pub payload_sha256: String,
    /// Set when some weights are stored quantized (see `crate::quant`). Absent in f32 files, so
    /// their bytes (and hashes) are what they were before quantization existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// Set when the model has a lexical part (format version 2). Absent otherwise, so files
    /// without one are what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<LexicalConfig>,
    /// Set by `shelfwise adapt` (see `crate::adapter`): the shop's label space, scored by the
    /// adaptation layer over this model's encoder and head. Absent otherwise, so other files keep
    /// their bytes and format version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<Adaptation>,
}

/// What an adapted model predicts over and how (its tensors are `adapt.*`, see `crate::adapter`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    /// The shop's label paths, `"A > B > C"`, distinct, normalised and sorted: what the file's
    /// suggestions are over (the head keeps `labels`, the model's own).
    pub labels: Vec<String>,
    /// The component scores the combination weighs, in the order of the `adapt.weights` tensor
    /// (with [`NAME_CHARS`] among them the file is format version 4).
    pub features: Vec<String>,
    /// Titles in the example memory.
    pub examples: usize,
    /// The memory's cap (beyond it the eviction rule of `crate::adapt` applies).
    pub max_examples: usize,
    /// Free-form: how the weights were chosen (cross-validation size, prior), input counts.
    #[serde(default)]
    pub fit: serde_json::Value,
}

/// The adaptation component that came with format version 4 (`crate::adapter::Feature::NameChars`).
pub const NAME_CHARS: &str = "name_chars";

/// Which weights a model file stores quantized, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// `"int8-per-channel"` or `"q4-block32"` (see [`crate::quant`]).
    pub scheme: String,
    /// Names of the quantized tensors (stored as `<name>.q8` + `<name>.scale`, or `<name>.q4` /
    /// `<name>.q3` + `<name>.qscale` + `<name>.qrow`; see `crate::quant`).
    pub tensors: Vec<String>,
    /// Set when the word-embedding table keeps only some tokens' rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_vocab: Option<PrunedVocab>,
    /// Set when the low-bit weights were rounded by GPTQ on calibration titles (what and how
    /// many), rather than to nearest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
}

/// Vocabulary pruning: `kept` of `of` word pieces (embedding rows and tokenizer entries) remain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedVocab {
    pub kept: usize,
    pub of: usize,
    /// What the kept tokens were collected from.
    pub source: String,
}

/// sha256 digests (lower-case hex) of a file's sections, computed by someone else: the browser
/// package hashes with the platform's native SHA-256 (several times faster than this crate's in
/// wasm) and hands the results to [`ModelFile::from_bytes_with_digests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Over every byte before the trailing checksum.
    pub body: String,
    /// Over the tensors and tokenizer sections (see [`payload_range`]). `None` skips the payload
    /// check, for a copy of a file that passed it when it was stored (the browser's cache): the
    /// body's hash covers every payload byte, so damage since then is still caught.
    pub payload: Option<String>,
}

/// Byte range of the payload (tensors followed by tokenizer), when the header is complete.
pub fn payload_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = HEADER_LEN.checked_add(u32_at_checked(bytes, 12)? as usize)?;
    let end = bytes.len().checked_sub(CHECKSUM_LEN)?;
    (start <= end).then_some(start..end)
}

fn u32_at_checked(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A parsed, verified model file.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub manifest: Manifest,
    pub tensors: Vec<u8>,
    pub tokenizer: Vec<u8>,
}

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl ModelFile {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut manifest = self.manifest.clone();
        manifest.payload_sha256 = sha256_hex(&[&self.tensors, &self.tokenizer]);
        let m = serde_json::to_vec(&manifest).map_err(|e| ModelError::BadManifest(e.to_string()))?;
        let too_big = |what: &str| ModelError::BadManifest(format!("{what} section over 4 GiB"));
        let m_len = u32::try_from(m.len()).map_err(|_| too_big("manifest"))?;
        let k_len = u32::try_from(self.tokenizer.len()).map_err(|_| too_big("tokenizer"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + m.len() + self.tensors.len() + self.tokenizer.len() + CHECKSUM_LEN);
        out.extend_from_slice(MAGIC);
        let version = manifest.format_version();
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&m_len.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&k_len.to_le_bytes());
        out.extend_from_slice(&m);
        out.extend_from_slice(&self.tensors);
        out.extend_from_slice(&self.tokenizer);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Parses and verifies a model file. Never panics, whatever the bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        Self::from_bytes_with_digests(b, None)
    }

    /// [`Self::from_bytes`] with the two sha256 digests already computed (of these same bytes);
    /// every check is the same, and wrong digests fail exactly as a damaged file would.
    pub fn from_bytes_with_digests(b: &[u8], digests: Option<&Digests>) -> Result<Self> {
        ModelFileRef::parse(b, digests).map(|f| Self { manifest: f.manifest, tensors: f.tensors.to_vec(), tokenizer: f.tokenizer.to_vec() })
    }
}

/// A parsed, verified model file whose sections borrow the file's bytes: what a load reads
/// without copying them (a browser's memory grows by every copy of a 10 MB file).
#[derive(Debug, Clone)]
pub struct ModelFileRef<'a> {
    pub manifest: Manifest,
    pub tensors: &'a [u8],
    pub tokenizer: &'a [u8],
}

impl<'a> ModelFileRef<'a> {
    /// [`ModelFile::from_bytes_with_digests`] without the copies.
    pub fn parse(b: &'a [u8], digests: Option<&Digests>) -> Result<Self> {
        if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
            return Err(if b.len() < MAGIC.len() && MAGIC.starts_with(b) && !b.is_empty() {
                ModelError::Truncated(format!("{} bytes, shorter than the header", b.len()))
            } else {
                ModelError::NotAModel
            });
        }
        if b.len() < 12 {
            return Err(ModelError::Truncated(format!("{} bytes, shorter than the header", b.len())));
        }
        let version = u32_at(b, 8);
        if !(FORMAT_VERSION_PLAIN..=FORMAT_VERSION).contains(&version) {
            return Err(ModelError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        if b.len() < HEADER_LEN {
            return Err(ModelError::Truncated(format!("{} bytes, shorter than the header", b.len())));
        }
        let m_len = u32_at(b, 12) as u64;
        let s_len = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let k_len = u32_at(b, 24) as u64;
        let expected = (HEADER_LEN as u64)
            .checked_add(m_len)
            .and_then(|x| x.checked_add(s_len))
            .and_then(|x| x.checked_add(k_len))
            .and_then(|x| x.checked_add(CHECKSUM_LEN as u64))
            .ok_or_else(|| ModelError::Truncated("section lengths overflow".into()))?;
        if (b.len() as u64) < expected {
            return Err(ModelError::Truncated(format!("{} bytes, the header announces {expected}", b.len())));
        }
        if (b.len() as u64) > expected {
            return Err(ModelError::ChecksumMismatch { expected: format!("{expected} bytes"), actual: format!("{} bytes (trailing data)", b.len()) });
        }
        let body = &b[..b.len() - CHECKSUM_LEN];
        let actual = digests.map_or_else(|| sha256_hex(&[body]), |d| d.body.to_ascii_lowercase());
        let stored = hex::encode(&b[b.len() - CHECKSUM_LEN..]);
        if actual != stored {
            return Err(ModelError::ChecksumMismatch { expected: stored, actual });
        }
        let (m_end, s_end) = (HEADER_LEN + m_len as usize, HEADER_LEN + (m_len + s_len) as usize);
        // Through serde_path_to_error: a wrong type or a missing field is named by its path.
        let mut json = serde_json::Deserializer::from_slice(&b[HEADER_LEN..m_end]);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut json).map_err(|e| ModelError::BadManifest(e.to_string()))?;
        let payload = match digests {
            None => Some(sha256_hex(&[&b[m_end..body.len()]])),
            Some(d) => d.payload.as_ref().map(|p| p.to_ascii_lowercase()),
        };
        if payload.is_some_and(|p| p != manifest.payload_sha256) {
            return Err(ModelError::PayloadHashMismatch);
        }
        if version != manifest.format_version() {
            return Err(ModelError::BadManifest(format!(
                "lexical/adaptation: a file {} is format version {}, this one says {version}",
                match manifest.format_version() {
                    FORMAT_VERSION_PLAIN => "without a lexical part or an adaptation section",
                    FORMAT_VERSION_LEXICAL => "with a lexical part (no stack gate) or an adaptation section",
                    FORMAT_VERSION_GATE => "whose lexical part has a stack gate",
                    _ => "whose adaptation weighs name_chars",
                },
                manifest.format_version()
            )));
        }
        Ok(Self { manifest, tensors: &b[m_end..s_end], tokenizer: &b[s_end..body.len()] })
    }
}

/// Rewrites a file's trailing checksum so that it matches its body: lets tests build files that
/// are well-formed on the outside but wrong inside (bad manifest, bad payload hash). Test-only API
/// (feature `test-util`, which this crate's own tests turn on).
#[cfg(feature = "test-util")]
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= CHECKSUM_LEN {
        let n = bytes.len() - CHECKSUM_LEN;
        let sum = Sha256::digest(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum);
    }
}

/// Byte offset of the manifest and its length, for tests that tamper with it (feature `test-util`).
#[cfg(feature = "test-util")]
pub fn manifest_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    (bytes.len() >= HEADER_LEN).then(|| HEADER_LEN..HEADER_LEN + u32_at(bytes, 12) as usize)
}
