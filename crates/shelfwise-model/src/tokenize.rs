//! Word-piece tokenization with the base model's own tokenizer.json (HF `tokenizers`), padding
//! off (a keystroke costs only the tokens typed) and truncation at the model's token limit.

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};

pub struct TitleTokenizer {
    inner: Tokenizer,
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
        inner
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
        Ok(Self { inner })
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

    /// Every token id that `lines` tokenize to (no special tokens).
    pub fn ids_of<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Result<std::collections::BTreeSet<u32>> {
        let mut out = std::collections::BTreeSet::new();
        for l in lines {
            let e = self.inner.encode(l, false).map_err(|e| ModelError::BadTokenizer(e.to_string()))?;
            out.extend(e.get_ids().iter().copied());
        }
        Ok(out)
    }

    /// The tokenizer.json with padding disabled, as stored in model files.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        self.inner.to_string(false).map(String::into_bytes).map_err(|e| ModelError::BadTokenizer(e.to_string()))
    }
}
