//! Word-piece tokenization with the base model's own tokenizer.json (HF `tokenizers`), padding
//! off (a keystroke costs only the tokens typed) and truncation at the model's token limit.

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};

pub struct TitleTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
}

/// Token ids and attention mask of one title.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
}

impl TitleTokenizer {
    pub fn from_bytes(json: &[u8], max_tokens: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        inner.with_padding(None);
        inner.with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() })).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        Ok(Self { inner, max_tokens })
    }

    pub fn encode(&self, title: &str) -> Result<Encoding> {
        let e = self.inner.encode(title, true).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        Ok(Encoding { ids: e.get_ids().to_vec(), mask: e.get_attention_mask().to_vec() })
    }

    /// Ids of the special tokens ([CLS], [SEP], [PAD], ...).
    pub fn special_ids(&self) -> Vec<u32> {
        self.inner.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(&id, _)| id).collect()
    }

    /// The id unknown word pieces get (`[UNK]` for BERT); 100 when the tokenizer names none.
    pub fn unk_id(&self) -> u32 {
        self.inner.token_to_id("[UNK]").unwrap_or(100)
    }

    /// How often each token id occurs when `lines` are tokenized (no special tokens).
    pub fn id_counts<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Result<std::collections::BTreeMap<u32, usize>> {
        let mut out = std::collections::BTreeMap::new();
        for l in lines {
            let e = self.inner.encode(l, false).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
            for &id in e.get_ids() {
                *out.entry(id).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// The token ids that `lines` tokenize to at least `min_count` times in all (no special
    /// tokens): the word pieces whose embedding rows a pruned vocabulary keeps.
    pub fn ids_at_least<'a>(&self, lines: impl IntoIterator<Item = &'a str>, min_count: usize) -> Result<std::collections::BTreeSet<u32>> {
        Ok(self.id_counts(lines)?.into_iter().filter(|&(_, n)| n >= min_count).map(|(id, _)| id).collect())
    }

    /// Every token id that `lines` tokenize to (no special tokens).
    pub fn ids_of<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Result<std::collections::BTreeSet<u32>> {
        Ok(self.id_counts(lines)?.into_keys().collect())
    }

    /// Ids of the single-character word pieces (`a`, `##a`, ...): kept by vocabulary pruning so
    /// that any word still splits into known pieces instead of becoming `[UNK]`.
    pub fn single_char_ids(&self) -> Vec<u32> {
        let prefix = self.continuing_prefix();
        self.inner.get_vocab(false).into_iter().filter(|(t, _)| t.strip_prefix(prefix.as_str()).unwrap_or(t).chars().count() == 1).map(|(_, id)| id).collect()
    }

    fn continuing_prefix(&self) -> String {
        match self.inner.get_model() {
            tokenizers::ModelWrapper::WordPiece(w) => w.continuing_subword_prefix.clone(),
            _ => "##".into(),
        }
    }

    /// The tokenizer.json with a word-piece vocabulary cut down to `keep` (ids unchanged): a
    /// dropped word is split into the longest kept pieces, as a word the base model never saw
    /// would be. Only WordPiece models can be pruned.
    pub fn pruned_json(&self, keep: &std::collections::BTreeSet<u32>) -> Result<Vec<u8>> {
        let mut v: serde_json::Value = serde_json::from_slice(&self.to_json()?).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        let model = &mut v["model"];
        if model["type"] != "WordPiece" {
            return Err(ModelError::BadTokenizer(format!("cannot prune a {} vocabulary", model["type"])));
        }
        let Some(vocab) = model["vocab"].as_object_mut() else {
            return Err(ModelError::BadTokenizer("tokenizer.json has no model.vocab".into()));
        };
        vocab.retain(|_, id| id.as_u64().is_some_and(|i| keep.contains(&(i as u32))));
        let json = serde_json::to_vec(&v).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        Self::from_bytes(&json, self.max_tokens)?; // prove it loads
        Ok(json)
    }

    /// The tokenizer.json with padding disabled, as stored in model files.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.inner.to_string(false).map(String::into_bytes).map_err(|e| ModelError::BadTokenizer(e.to_string()))
    }
}
