//! Word and character n-grams of a title: the surface features that the encoder misses (model
//! numbers, brand spellings, partial words while typing). Used hashed by the model's head and with
//! a vocabulary by the TF-IDF baseline, so both read titles the same way.

/// Which n-grams to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NgramConfig {
    /// Word n-grams of length 1..=word_max.
    pub word_max: usize,
    /// Character n-grams of length char_min..=char_max inside each word padded with spaces
    /// (like scikit-learn's `char_wb`).
    pub char_min: usize,
    pub char_max: usize,
    /// Bound on features per title, so a pasted essay costs no more than a long title.
    pub max_features: usize,
}

impl Default for NgramConfig {
    fn default() -> Self {
        Self { word_max: 2, char_min: 2, char_max: 5, max_features: 2048 }
    }
}

/// Lower-cased alphanumeric words of a title.
pub fn words(title: &str) -> Vec<String> {
    title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// Which family a feature belongs to (the baseline normalises each family separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Word,
    Char,
}

/// Calls `f` with every n-gram key of the title, in a fixed order.
pub fn for_each_ngram(title: &str, cfg: &NgramConfig, mut f: impl FnMut(Family, &str)) {
    let ws = words(title);
    let mut count = 0usize;
    let mut key = String::new();
    for n in 1..=cfg.word_max {
        for win in ws.windows(n) {
            if count >= cfg.max_features {
                return;
            }
            key.clear();
            key.push_str("w:");
            key.push_str(&win.join(" "));
            f(Family::Word, &key);
            count += 1;
        }
    }
    for w in &ws {
        let chars: Vec<char> = std::iter::once(' ').chain(w.chars()).chain(std::iter::once(' ')).collect();
        for n in cfg.char_min..=cfg.char_max {
            for win in chars.windows(n) {
                if count >= cfg.max_features {
                    return;
                }
                key.clear();
                key.push_str("c:");
                key.extend(win.iter());
                f(Family::Char, &key);
                count += 1;
            }
        }
    }
}

/// FNV-1a 64: a fixed hash, so buckets are identical on every platform and in every version.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Hashed n-gram bucket ids of a title (with repeats, so frequent n-grams weigh more).
pub fn hashed_ngrams(title: &str, cfg: &NgramConfig, buckets: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for_each_ngram(title, cfg, |_, k| out.push((fnv1a(k.as_bytes()) % buckets as u64) as u32));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_lowercase_and_split_on_punctuation() {
        assert_eq!(words("Nike Air-Zoom, SIZE 10!"), vec!["nike", "air", "zoom", "size", "10"]);
        assert_eq!(words("Café 👟 日本製"), vec!["café", "日本製"]);
        assert!(words("  -- !! ").is_empty());
    }

    #[test]
    fn ngrams_are_exact() {
        let cfg = NgramConfig { word_max: 2, char_min: 2, char_max: 3, max_features: 100 };
        let mut keys = Vec::new();
        for_each_ngram("Ab cd", &cfg, |_, k| keys.push(k.to_string()));
        assert_eq!(keys, vec!["w:ab", "w:cd", "w:ab cd", "c: a", "c:ab", "c:b ", "c: ab", "c:ab ", "c: c", "c:cd", "c:d ", "c: cd", "c:cd "]);
    }

    #[test]
    fn feature_count_is_bounded() {
        let cfg = NgramConfig { max_features: 7, ..Default::default() };
        let long = "word ".repeat(10_000);
        assert_eq!(hashed_ngrams(&long, &cfg, 1 << 10).len(), 7);
    }

    #[test]
    fn hash_is_stable() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
