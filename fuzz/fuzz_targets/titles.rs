//! Titles on the shipped model: any bytes (as UTF-8, invalid sequences replaced), k from the first
//! byte, the threshold from the second. The title alone, and in a batch after its first half: at
//! most k suggestions, probabilities; the only error a title over the limit (INPUT_TOO_LONG).
//! Never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shelfwise_fuzz::SHIPPED;
use shelfwise_model::Classifier;

fn clf() -> &'static Classifier {
    static CLF: OnceLock<Classifier> = OnceLock::new();
    CLF.get_or_init(|| Classifier::from_bytes(SHIPPED).expect("the shipped model loads"))
}

fuzz_target!(|data: &[u8]| {
    let [k, t, rest @ ..] = data else { return };
    let (k, threshold) = (*k as usize % 12, *t as f32 / 255.0);
    let title = String::from_utf8_lossy(rest);
    let one = match clf().suggest(&title, k, threshold) {
        Ok(d) => d,
        Err(e) => return assert_eq!(e.code(), "INPUT_TOO_LONG", "{e}"),
    };
    let ok = |d: &shelfwise_core::decision::Decision| d.suggestions.len() <= k && d.suggestions.iter().all(|s| (0.0..=1.0).contains(&s.score));
    assert!(ok(&one), "{one:?}");
    let cut = title.char_indices().map(|(i, _)| i).nth(title.chars().count() / 2).unwrap_or(0);
    let batch = clf().suggest_many(&[&title[..cut], &title], k, threshold).expect("the whole title passed alone");
    assert!(batch.len() == 2 && batch.iter().all(ok), "{batch:?}");
});
