//! The tiny model with its manifest replaced by the input, the file resealed (header length and
//! checksum valid), loaded and, when it loads, asked for three titles: a typed manifest error or
//! probabilities, never a panic. The first byte: even, the rest is parsed as JSON and, if it is an
//! object, its payload_sha256 set to the payload's (so that the loader's checks past the payload
//! hash are reached); odd, the rest is the manifest as it is (any bytes).
//! Seeds: fuzz/seeds/manifest; dictionary: fuzz/manifest.dict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shelfwise_fuzz::{answers, check, tiny, tiny_bytes, with_manifest_bytes, MANIFEST_CODES};
use shelfwise_model::format::sha256_hex;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let manifest = match serde_json::from_slice::<serde_json::Value>(rest) {
        Ok(serde_json::Value::Object(mut m)) if mode % 2 == 0 => {
            let t = tiny();
            m.insert("payload_sha256".into(), sha256_hex(&[&t.tensors, &t.tokenizer]).into());
            serde_json::to_vec(&m).expect("serialisable")
        }
        _ => rest.to_vec(),
    };
    check(answers(&with_manifest_bytes(tiny_bytes(), &manifest)), &MANIFEST_CODES);
});
