//! The model file parser. The first byte picks how the input is used:
//! - even: the input (after that byte) is the whole file (header, lengths, checksum);
//! - odd: edits of the tiny model's payload, the file rebuilt with a valid payload hash and
//!   checksum so that the tensor and tokenizer parsers see them: 6 bytes an edit, a u32 offset
//!   (into the tensors, then the tokenizer), an operation (set, xor, truncate there) and a byte.
//! A typed model error or probabilities; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shelfwise_fuzz::{answers, check, tiny};
use shelfwise_model::format::ModelFile;

const CODES: [&str; 9] = [
    "MODEL_NOT_A_MODEL",
    "MODEL_VERSION",
    "MODEL_TRUNCATED",
    "MODEL_CORRUPT",
    "MODEL_PAYLOAD_HASH",
    "MODEL_MANIFEST",
    "MODEL_TENSORS",
    "MODEL_TOKENIZER",
    "MODEL_INCOMPLETE",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        check(answers(rest), &CODES);
        return;
    }
    let t = tiny();
    let (mut tensors, mut tokenizer) = (t.tensors.clone(), t.tokenizer.clone());
    for e in rest.chunks_exact(6) {
        let total = tensors.len() + tokenizer.len();
        if total == 0 {
            break;
        }
        let at = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize % total;
        let (part, at) = if at < tensors.len() { (&mut tensors, at) } else { (&mut tokenizer, at - tensors.len()) };
        match e[4] % 3 {
            0 => part[at] = e[5],
            1 => part[at] ^= e[5],
            _ => part.truncate(at),
        }
    }
    let file = ModelFile { manifest: t.manifest.clone(), tensors, tokenizer };
    let Ok(bytes) = file.to_bytes() else { return };
    check(answers(&bytes), &CODES);
});
