//! int8 quantization of a model file: it loads, ranks like the f32 model, and bad quantized
//! tensors are rejected like any other bad tensor.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use shelfwise_model::classifier::{load_tensors, tensors_to_bytes};
use shelfwise_model::format::{EncoderWeights, ModelFile};
use shelfwise_model::quant::{quantize, quantize_int8, QuantizeOptions, Scheme, INT8_BLOCK32, Q4_BLOCK32};
use shelfwise_model::Classifier;

const TITLES: [&str; 5] = ["red running shoe", "stainless steel kettle 1.5 l", "kids sandals", "Nike Air", "non-stick frying pan"];

fn argmax(p: &[f32]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
}

#[test]
fn quantized_tiny_model_loads_and_ranks_like_f32() {
    let q = quantize_int8(tiny_file()).unwrap();
    let quant = q.manifest.quantization.as_ref().unwrap();
    assert_eq!(quant.scheme, INT8_BLOCK32);
    // 1 layer × 6 Linear weights + word and position embeddings + 3 head matrices.
    assert_eq!(quant.tensors.len(), 11, "{:?}", quant.tensors);
    let names = load_tensors(&q.tensors).unwrap();
    assert!(!names.contains_key("head.label_weight") && names.contains_key("head.label_weight.q8"));
    assert!(names.contains_key("head.bias") && names.contains_key("embeddings.token_type_embeddings.weight"));
    // Positions past the token limit are dropped.
    let cfg = &q.manifest.encoder;
    assert_eq!(cfg.max_positions, cfg.max_tokens);
    assert_eq!(names["embeddings.position_embeddings.weight.q8"].dims(), [cfg.max_tokens, cfg.hidden]);

    let bytes = q.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&bytes).unwrap().manifest.quantization, q.manifest.quantization, "manifest round trip");
    let (f32_clf, q_clf) = (Classifier::from_bytes(&tiny_bytes()).unwrap(), Classifier::from_bytes(&bytes).unwrap());
    let (a, b) = (f32_clf.probs(&TITLES).unwrap(), q_clf.probs(&TITLES).unwrap());
    let mut max_delta = 0f32;
    for (pa, pb) in a.iter().zip(&b) {
        assert_eq!(argmax(pa), argmax(pb));
        max_delta = pa.iter().zip(pb).map(|(x, y)| (x - y).abs()).fold(max_delta, f32::max);
    }
    eprintln!("max |Δprob| = {max_delta:e}");
    // Measured: max |Δprob| = 2.6e-4 on these titles; allow about 4×.
    assert!(max_delta < 1e-3, "max |Δprob| = {max_delta}");
}

#[test]
fn f32_files_have_no_quantization_field() {
    let bytes = tiny_bytes();
    let r = shelfwise_model::format::manifest_range(&bytes).unwrap();
    assert!(!String::from_utf8_lossy(&bytes[r]).contains("quantization"));
}

#[test]
fn quantized_tensors_with_bad_shapes_or_dtypes_are_rejected() {
    let q = quantize_int8(tiny_file()).unwrap();
    let with = |name: &str, t: Tensor| {
        let mut all = load_tensors(&q.tensors).unwrap();
        all.insert(name.to_string(), t);
        let f = ModelFile { manifest: q.manifest.clone(), tensors: tensors_to_bytes(&all).unwrap(), tokenizer: q.tokenizer.clone() };
        Classifier::from_bytes(&f.to_bytes().unwrap()).err().map(|e| e.code())
    };
    let cpu = &Device::Cpu;
    // head.label_weight is [3 labels, 8 hidden].
    assert_eq!(with("head.label_weight.scale", Tensor::ones(4, candle_core::DType::F32, cpu).unwrap()), Some("MODEL_TENSORS"));
    assert_eq!(with("head.label_weight.scale", Tensor::ones((3, 2), candle_core::DType::F32, cpu).unwrap()), Some("MODEL_TENSORS"));
    // Both scale layouts load: one per row (first int8 files) and one per block of 32.
    assert_eq!(with("head.label_weight.scale", Tensor::ones(3, candle_core::DType::F32, cpu).unwrap()), None);
    assert_eq!(with("head.label_weight.scale", Tensor::ones((3, 1), candle_core::DType::F32, cpu).unwrap()), None);
    assert_eq!(with("head.label_weight.q8", Tensor::zeros((3, 7), candle_core::DType::U8, cpu).unwrap()), Some("MODEL_TENSORS"));
    assert_eq!(with("head.label_weight.q8", Tensor::zeros((3, 8), candle_core::DType::F32, cpu).unwrap()), Some("MODEL_TENSORS"));
    assert_eq!(with("head.label_weight.scale", Tensor::new(&[1f32, f32::NAN, 1.0], cpu).unwrap()), Some("MODEL_TENSORS"));
    // A 1-D tensor stored as codes is not something the loader reads quantized.
    assert_eq!(with("head.bias.q8", Tensor::zeros(3, candle_core::DType::U8, cpu).unwrap()), None, "head.bias itself is still there");

    // Scale missing: the tensor is missing.
    let mut all = load_tensors(&q.tensors).unwrap();
    all.remove("head.ngram_table.scale");
    let f = ModelFile { manifest: q.manifest.clone(), tensors: tensors_to_bytes(&all).unwrap(), tokenizer: q.tokenizer.clone() };
    assert_eq!(Classifier::from_bytes(&f.to_bytes().unwrap()).err().map(|e| e.code()), Some("MODEL_TENSORS"));
}

#[test]
fn part_files_are_not_quantized() {
    let mut f = tiny_file();
    f.manifest.encoder_weights = EncoderWeights::Base { sha256: "ab".repeat(32) };
    assert_eq!(quantize_int8(f).unwrap_err().code(), "MODEL_INCOMPLETE");
}

#[test]
fn no_part_file_from_a_quantized_model() {
    let q = quantize_int8(tiny_file()).unwrap();
    let err = shelfwise_model::part::split_part(q, b"").unwrap_err();
    assert_eq!(err.code(), "MODEL_MANIFEST", "{err}");
}

fn opts(scheme: Scheme, keep: Option<&[&str]>) -> QuantizeOptions {
    let keep_tokens = keep.map(|lines| {
        let tok = shelfwise_model::tokenize::TitleTokenizer::from_bytes(&tiny_file().tokenizer, 128).unwrap();
        tok.ids_of(lines.iter().copied()).unwrap()
    });
    QuantizeOptions { scheme, keep_tokens, vocab_source: "test".into(), calibration: Vec::new(), calibration_source: String::new() }
}

#[test]
fn q4_tiny_model_loads_and_ranks_like_f32() {
    let q = quantize(tiny_file(), &opts(Scheme::Q4, None)).unwrap();
    assert_eq!(q.manifest.quantization.as_ref().unwrap().scheme, Q4_BLOCK32);
    let names = load_tensors(&q.tensors).unwrap();
    assert!(names.contains_key("encoder.layer.0.intermediate.dense.weight.q4") && names.contains_key("head.label_weight.q8"));
    assert!(names.contains_key("embeddings.word_embeddings.weight.q3") && names.contains_key("head.ngram_table.q4"));
    let (a, b) = (Classifier::from_bytes(&tiny_bytes()).unwrap(), Classifier::from_bytes(&q.to_bytes().unwrap()).unwrap());
    let (pa, pb) = (a.probs(&TITLES).unwrap(), b.probs(&TITLES).unwrap());
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(argmax(x), argmax(y));
    }
    // The lookup tables (kept packed: quant::RowTable) check their tensors like the matrices do.
    let with = |name: &str, t: Option<Tensor>| {
        let mut all = load_tensors(&q.tensors).unwrap();
        match t {
            Some(t) => all.insert(name.to_string(), t),
            None => all.remove(name),
        };
        let f = ModelFile { manifest: q.manifest.clone(), tensors: tensors_to_bytes(&all).unwrap(), tokenizer: q.tokenizer.clone() };
        Classifier::from_bytes(&f.to_bytes().unwrap()).err().map(|e| e.code())
    };
    let cpu = &Device::Cpu;
    for table in ["head.ngram_table", "embeddings.word_embeddings.weight"] {
        let (suffix, codes) =
            if table.starts_with("head") { ("q4", &names["head.ngram_table.q4"]) } else { ("q3", &names["embeddings.word_embeddings.weight.q3"]) };
        let (rows, bytes) = codes.dims2().unwrap();
        assert_eq!(
            with(&format!("{table}.{suffix}"), Some(Tensor::zeros((rows, bytes + 1), candle_core::DType::U8, cpu).unwrap())),
            Some("MODEL_TENSORS"),
            "{table}"
        );
        assert_eq!(
            with(&format!("{table}.{suffix}"), Some(Tensor::zeros((rows, bytes), candle_core::DType::F32, cpu).unwrap())),
            Some("MODEL_TENSORS"),
            "{table}"
        );
        assert_eq!(with(&format!("{table}.qrow"), Some(Tensor::new(vec![f32::INFINITY; rows], cpu).unwrap())), Some("MODEL_TENSORS"), "{table}");
        assert_eq!(with(&format!("{table}.qscale"), None), Some("MODEL_TENSORS"), "{table}");
    }
    assert!(quantize(q, &opts(Scheme::Int8, None)).is_err(), "quantizing twice is refused");
}

#[test]
fn pruned_vocabulary_changes_nothing_for_kept_tokens_and_splits_other_words_into_kept_pieces() {
    let full = Classifier::from_bytes(&quantize(tiny_file(), &opts(Scheme::Int8, None)).unwrap().to_bytes().unwrap()).unwrap();
    let file = quantize(tiny_file(), &opts(Scheme::Int8, Some(&TITLES))).unwrap();
    let pv = file.manifest.quantization.as_ref().unwrap().pruned_vocab.clone().unwrap();
    let tok = |f: &ModelFile| shelfwise_model::tokenize::TitleTokenizer::from_bytes(&f.tokenizer, 128).unwrap();
    let (full_tok, pruned_tok) = (tok(&tiny_file()), tok(&file));
    let chars = full_tok.single_char_ids().len();
    // The titles' pieces, the single characters (with and without "##") and the special tokens.
    assert!(pv.kept > chars && pv.kept < chars + 40 && pv.of == 30522, "{pv:?}, {chars} single characters");
    let pruned = Classifier::from_bytes(&file.to_bytes().unwrap()).unwrap();
    // Every token of these titles was kept: identical tokens and probabilities.
    assert_eq!(full.probs(&TITLES).unwrap(), pruned.probs(&TITLES).unwrap());
    // "zebra" was not: the pruned tokenizer splits it into kept pieces, never [UNK].
    let (a, b) = (full_tok.encode("red zebra shoe").unwrap().ids, pruned_tok.encode("red zebra shoe").unwrap().ids);
    assert_eq!(a.len(), 5, "[CLS] red zebra shoe [SEP]: {a:?}");
    assert!(b.len() > 5 && !b.contains(&full_tok.unk_id()), "{b:?}");
    let rows = load_tensors(&file.tensors).unwrap()["embeddings.word_embeddings.rows"].to_vec1::<u32>().unwrap();
    let unk_row = rows[full_tok.unk_id() as usize];
    assert!(b.iter().all(|&id| rows[id as usize] != unk_row), "every piece has its own row");

    // A row map pointing past the table is a bad tensor, not a panic.
    let mut all = load_tensors(&file.tensors).unwrap();
    let mut rows = all["embeddings.word_embeddings.rows"].to_vec1::<u32>().unwrap();
    rows[5] = 10_000;
    all.insert("embeddings.word_embeddings.rows".into(), Tensor::new(rows.as_slice(), &Device::Cpu).unwrap());
    let f = ModelFile { manifest: file.manifest.clone(), tensors: tensors_to_bytes(&all).unwrap(), tokenizer: file.tokenizer.clone() };
    assert_eq!(Classifier::from_bytes(&f.to_bytes().unwrap()).err().map(|e| e.code()), Some("MODEL_TENSORS"));
}

/// GPTQ's calibration forward is the encoder's: the inputs it records for block 1's query layer
/// are block 0's outputs as the encoder computes them. And a GPTQ-rounded file loads, ranks like
/// the f32 model, and says how it was made.
#[test]
fn gptq_calibration_sees_the_encoders_activations() {
    let file = tiny_file();
    let tensors = load_tensors(&file.tensors).unwrap();
    let tok = shelfwise_model::tokenize::TitleTokenizer::from_bytes(&file.tokenizer, 128).unwrap();
    let cfg = file.manifest.encoder.clone();
    let mut two = cfg.clone();
    two.layers = 2;
    // The tiny model has one block: run block 0's weights twice (as blocks 0 and 1).
    let mut t2 = tensors.clone();
    for (n, x) in &tensors {
        if let Some(rest) = n.strip_prefix("encoder.layer.0.") {
            t2.insert(format!("encoder.layer.1.{rest}"), x.clone());
        }
    }
    let h = shelfwise_model::gptq::input_hessians(&two, &t2, &tok, &TITLES).unwrap();
    let clf = Classifier::from_bytes(&tiny_bytes()).unwrap();
    // Block 0's outputs from the candle encoder of the same file, as training reads them.
    let candle = shelfwise_model::Embedder { tokenizer: tok, encoder: shelfwise_model::encoder::CandleEncoder::from_tensors(&cfg, &tensors).unwrap() };
    let xs = shelfwise_model::train::embed::hidden_states(&candle, &TITLES, 1).unwrap();
    let x = Tensor::cat(&xs, 0).unwrap();
    let want = x.t().unwrap().matmul(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (d, got) = &h["encoder.layer.1.attention.self.query.weight"];
    assert_eq!(*d, cfg.hidden);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - *b as f64).abs()).fold(0f64, f64::max);
    assert!(worst < 1e-3, "max |ΔXᵀX| = {worst}");
    assert_eq!(h.len(), 12, "6 linear layers a block");

    let mut o = opts(Scheme::Q4, None);
    o.calibration = TITLES.iter().map(|t| t.to_string()).collect();
    o.calibration_source = "test titles".into();
    let q = quantize(tiny_file(), &o).unwrap();
    assert_eq!(q.manifest.quantization.as_ref().unwrap().calibration.as_deref(), Some("GPTQ on 5 titles from test titles"));
    let qc = Classifier::from_bytes(&q.to_bytes().unwrap()).unwrap();
    for (x, y) in clf.probs(&TITLES).unwrap().iter().zip(&qc.probs(&TITLES).unwrap()) {
        assert_eq!(argmax(x), argmax(y));
    }
}
