//! Part files: a model stored as its difference from the base encoder (head, and fine-tuned
//! matrices as int8 deltas), and what `merge_part` refuses.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use shelfwise_model::head::{BIAS, LABEL_WEIGHT, NGRAM_TABLE, NGRAM_WEIGHT};
use shelfwise_model::part::{merge_part, part_tensors, DELTA_CODES_SUFFIX, DELTA_SCALE_SUFFIX};

const QUERY: &str = "encoder.layer.0.attention.self.query.weight";
const QUERY_BIAS: &str = "encoder.layer.0.attention.self.query.bias";
const FFN_OUT: &str = "encoder.layer.0.output.dense.weight";

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The tiny model's encoder as the "base", and a "fine-tuned" copy: two matrices and a bias moved
/// by a few percent, as training moves them, plus the head the base does not have.
fn base_and_tuned() -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let all = tiny_tensors(&tiny_manifest());
    let base: HashMap<String, Tensor> = all.iter().filter(|(n, _)| !n.starts_with("head.")).map(|(n, t)| (n.clone(), t.clone())).collect();
    let mut tuned = all;
    for (i, name) in [QUERY, FFN_OUT, QUERY_BIAS].into_iter().enumerate() {
        let t = &base[name];
        let moved: Vec<f32> = flat(t).iter().enumerate().map(|(j, w)| w + 0.004 * (((j * 7 + i) % 11) as f32 - 5.0) / 5.0).collect();
        tuned.insert(name.to_string(), Tensor::from_vec(moved, t.dims(), &Device::Cpu).unwrap());
    }
    (base, tuned)
}

#[test]
fn fine_tuned_matrices_are_stored_as_int8_deltas_and_merge_back_within_half_a_step() {
    let (base, tuned) = base_and_tuned();
    let part = part_tensors(tuned.clone(), &base).unwrap();

    // Unchanged encoder tensors are left to the base; the head is kept (n-gram table in f16).
    let mut names: Vec<&str> = part.keys().map(String::as_str).collect();
    names.sort();
    let want = [
        QUERY_BIAS.to_string(),
        format!("{QUERY}{DELTA_CODES_SUFFIX}"),
        format!("{QUERY}{DELTA_SCALE_SUFFIX}"),
        format!("{FFN_OUT}{DELTA_CODES_SUFFIX}"),
        format!("{FFN_OUT}{DELTA_SCALE_SUFFIX}"),
        BIAS.into(),
        LABEL_WEIGHT.into(),
        NGRAM_TABLE.into(),
        NGRAM_WEIGHT.into(),
    ];
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(part[&format!("{QUERY}{DELTA_CODES_SUFFIX}")].dtype(), DType::U8);
    assert_eq!(part[NGRAM_TABLE].dtype(), DType::F16);
    assert_eq!(flat(&part[QUERY_BIAS]), flat(&tuned[QUERY_BIAS]), "vectors are stored as they are");

    let merged = merge_part(base.clone(), part.clone()).unwrap();
    assert_eq!(merged.len(), tuned.len());
    for name in [QUERY, FFN_OUT] {
        let cols = tuned[name].dim(1).unwrap();
        let scales = flat(&part[&format!("{name}{DELTA_SCALE_SUFFIX}")]);
        let (got, want) = (flat(&merged[name]), flat(&tuned[name]));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Half a rounding step of the row's delta, plus f32 rounding of the sum.
            let tol = scales[i / cols] * 0.5 + 1e-6;
            assert!((g - w).abs() <= tol, "{name}[{i}]: {g} vs {w} (tol {tol})");
        }
    }
    for (name, t) in &base {
        if ![QUERY, FFN_OUT, QUERY_BIAS].contains(&name.as_str()) {
            assert_eq!(flat(&merged[name]), flat(t), "{name} is the base's");
        }
    }
    // Merging is a pure function of (base, part): the trainer writes this, and assemble gives it back.
    let again = merge_part(base, part).unwrap();
    for (name, t) in &merged {
        assert_eq!(flat(t), flat(&again[name]), "{name}");
    }
}

#[test]
fn an_untouched_encoder_gives_a_head_only_part() {
    let (base, _) = base_and_tuned();
    let all = tiny_tensors(&tiny_manifest());
    let part = part_tensors(all, &base).unwrap();
    assert!(part.keys().all(|n| n.starts_with("head.")), "{:?}", part.keys().collect::<Vec<_>>());
}

#[test]
fn broken_deltas_are_refused_with_model_tensors() {
    let (base, tuned) = base_and_tuned();
    let part = part_tensors(tuned, &base).unwrap();
    let codes = format!("{QUERY}{DELTA_CODES_SUFFIX}");
    let scale = format!("{QUERY}{DELTA_SCALE_SUFFIX}");
    let refused = |edit: &dyn Fn(&mut HashMap<String, Tensor>)| {
        let mut p = part.clone();
        edit(&mut p);
        merge_part(base.clone(), p).err().map(|e| (e.code(), e.to_string()))
    };

    let (code, msg) = refused(&|p| {
        p.remove(&scale);
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");
    assert!(msg.contains("has no .delta.scale"), "{msg}");

    let (code, msg) = refused(&|p| {
        p.remove(&codes);
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");
    assert!(msg.contains("without its delta"), "{msg}");

    let (code, msg) = refused(&|p| {
        let t = p.remove(&codes).unwrap();
        p.insert(format!("encoder.layer.9.nope.weight{DELTA_CODES_SUFFIX}"), t);
        let s = p.remove(&scale).unwrap();
        p.insert(format!("encoder.layer.9.nope.weight{DELTA_SCALE_SUFFIX}"), s);
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");
    assert!(msg.contains("does not have"), "{msg}");

    let (code, _) = refused(&|p| {
        let t = p[&codes].to_dtype(DType::F32).unwrap();
        p.insert(codes.clone(), t);
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");

    let (code, _) = refused(&|p| {
        let t = p[&codes].narrow(0, 0, 2).unwrap();
        p.insert(codes.clone(), t);
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");

    let (code, msg) = refused(&|p| {
        let mut s = flat(&p[&scale]);
        s[0] = f32::NAN;
        let n = s.len();
        p.insert(scale.clone(), Tensor::from_vec(s, n, &Device::Cpu).unwrap());
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");
    assert!(msg.contains("finite"), "{msg}");

    let (code, msg) = refused(&|p| {
        p.insert(format!("{QUERY_BIAS}{DELTA_CODES_SUFFIX}"), Tensor::zeros(8, DType::U8, &Device::Cpu).unwrap());
        p.insert(format!("{QUERY_BIAS}{DELTA_SCALE_SUFFIX}"), Tensor::ones(1, DType::F32, &Device::Cpu).unwrap());
    })
    .unwrap();
    assert_eq!(code, "MODEL_TENSORS");
    assert!(msg.contains("not a matrix"), "{msg}");
}

/// The shipped model's manifest names the files it was made from: the committed quantized file,
/// the f32 model `scripts/setup.sh` makes (from the committed part, if there is one, or by
/// dequantizing a QAT model). Their hashes must match, or setup did not rebuild what was shipped.
#[test]
fn shipped_files_match_their_manifest() {
    let dir = repo().join("models/flipkart-minilm");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_object().unwrap();
    assert!(files.contains_key("model.shelfwise") && files.contains_key("model.f32.shelfwise"), "{files:?}");
    for name in files.keys() {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}; run scripts/setup.sh"));
        let want = &manifest["files"][name];
        assert_eq!(bytes.len() as u64, want["bytes"].as_u64().unwrap(), "{name} size");
        assert_eq!(shelfwise_model::format::sha256_hex(&[&bytes]), want["sha256"].as_str().unwrap(), "{name} sha256");
    }
}
