//! Manifest mutations for the reliability tests, native and wasm (shelfwise-wasm includes this file
//! by path): a model file's manifest edited as JSON and the file resealed, so that every checksum
//! is valid and only the loader's own checks stand between the edit and the classifier.
#![allow(dead_code)]

use serde_json::{json, Value};
use shelfwise_model::format::{manifest_range, reseal};
use shelfwise_model::Classifier;

/// One step of a path into the manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Field(String),
    Index(usize),
}

pub type Path = Vec<Key>;

pub fn show(path: &Path) -> String {
    path.iter()
        .map(|k| match k {
            Key::Field(f) => format!(".{f}"),
            Key::Index(i) => format!("[{i}]"),
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// What a field can be set to; `None` removes it.
pub fn values() -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("0", Some(json!(0))),
        ("-1", Some(json!(-1))),
        ("-0.5", Some(json!(-0.5))),
        ("2^32", Some(json!(4_294_967_296u64))),
        ("u64::MAX", Some(json!(u64::MAX))),
        ("1e300", Some(json!(1e300))),
        ("\"x\"", Some(json!("x"))),
        ("true", Some(json!(true))),
        ("[]", Some(json!([]))),
        ("removed", None),
    ]
}

/// Every field of `m`, objects included (their leaves after them); arrays as a whole and their
/// first element; the free-form `training` and `metrics` as a whole.
pub fn paths(m: &Value) -> Vec<Path> {
    fn walk(v: &Value, at: &Path, out: &mut Vec<Path>) {
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    let mut p = at.clone();
                    p.push(Key::Field(k.clone()));
                    out.push(p.clone());
                    if k != "training" && k != "metrics" {
                        walk(child, &p, out);
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let mut p = at.clone();
                p.push(Key::Index(0));
                out.push(p.clone());
                walk(&a[0], &p, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(m, &Vec::new(), &mut out);
    out
}

/// `m` with the field at `path` set to `value` (`None`: removed); unchanged when the path no
/// longer leads anywhere (an earlier mutation removed or replaced a parent).
pub fn mutated(m: &Value, path: &Path, value: Option<&Value>) -> Value {
    let mut m = m.clone();
    let (last, parent) = path.split_last().expect("a non-empty path");
    let mut at = Some(&mut m);
    for k in parent {
        at = at.and_then(|v| match k {
            Key::Field(f) => v.get_mut(f.as_str()),
            Key::Index(i) => v.get_mut(*i),
        });
    }
    match (last, value, at) {
        (Key::Field(f), Some(v), Some(Value::Object(o))) => drop(o.insert(f.clone(), v.clone())),
        (Key::Field(f), None, Some(Value::Object(o))) => drop(o.remove(f)),
        (Key::Index(i), Some(v), Some(Value::Array(a))) if *i < a.len() => a[*i] = v.clone(),
        (Key::Index(i), None, Some(Value::Array(a))) if *i < a.len() => drop(a.remove(*i)),
        _ => {}
    }
    m
}

/// The manifest of a model file, as JSON.
pub fn manifest_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(&bytes[manifest_range(bytes).expect("a header")]).expect("a JSON manifest")
}

/// The file with its manifest replaced by `m` (any bytes), the header's length and the trailing
/// checksum rewritten: a well-formed file on the outside.
pub fn with_manifest_bytes(bytes: &[u8], m: &[u8]) -> Vec<u8> {
    let r = manifest_range(bytes).expect("a header");
    let mut out = Vec::with_capacity(bytes.len() + m.len());
    out.extend_from_slice(&bytes[..12]);
    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes[16..r.start]);
    out.extend_from_slice(m);
    out.extend_from_slice(&bytes[r.end..]);
    reseal(&mut out);
    out
}

pub fn with_manifest(bytes: &[u8], m: &Value) -> Vec<u8> {
    with_manifest_bytes(bytes, &serde_json::to_vec(m).expect("serialisable"))
}

/// The typed errors a damaged manifest may get.
pub const MANIFEST_CODES: [&str; 5] = ["MODEL_MANIFEST", "MODEL_TENSORS", "MODEL_TOKENIZER", "MODEL_PAYLOAD_HASH", "MODEL_INCOMPLETE"];

pub const TITLES: [&str; 3] = ["red running shoe for men", "Pigeon 1.5 L electric kettle", "x"];

/// Top-3 labels and scores of [`TITLES`] (one call a title, and one batch), or the error code.
pub fn answers(bytes: &[u8]) -> Result<Vec<(String, f32)>, &'static str> {
    let clf = Classifier::from_bytes(bytes).map_err(|e| e.code())?;
    let mut decisions = Vec::new();
    for t in TITLES {
        decisions.push(clf.suggest(t, 3, 0.0).map_err(|e| e.code())?);
    }
    decisions.extend(clf.suggest_many(&TITLES, 3, 0.0).map_err(|e| e.code())?);
    // Read through JSON: the wasm tests reach the decision types only through the model crate.
    let mut out = Vec::new();
    for d in decisions {
        let d = serde_json::to_value(&d).expect("serialisable");
        for s in d["suggestions"].as_array().into_iter().flatten() {
            let names: Vec<&str> = s["path"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
            out.push((names.join(" > "), s["score"].as_f64().unwrap_or(f64::NAN) as f32));
        }
    }
    Ok(out)
}

/// A mutated file's verdict against the original's answers: `None` when it is a typed error or
/// the same answers, else what is wrong.
pub fn judge(original: &[(String, f32)], got: Result<Vec<(String, f32)>, &'static str>) -> Option<String> {
    match got {
        Err(code) if MANIFEST_CODES.contains(&code) => None,
        Err(code) => Some(format!("unexpected error code {code}")),
        Ok(a) if a.len() == original.len() && a.iter().zip(original).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= 1e-5) => None,
        Ok(a) => Some(format!("loaded and answered differently: {:?} instead of {:?}", &a[..a.len().min(3)], &original[..original.len().min(3)])),
    }
}

/// The stack's fitted numbers (bucket weights, the gate's weights and means): every finite value
/// up to the validator's bound is a model. The gate's scales are not among them (0 and -1 are
/// invalid), and a huge value of any of them must still be refused.
fn is_parameter(path: &Path) -> bool {
    let f = |i: usize, names: &[&str]| matches!(path.get(i), Some(Key::Field(k)) if names.contains(&k.as_str()));
    let index = |i: usize| matches!(path.get(i), Some(Key::Index(_)));
    f(0, &["lexical"])
        && ((f(1, &["gate"]) && f(2, &["head", "lexical", "mean"]) && index(3) && path.len() == 4)
            || (f(1, &["stack"]) && index(2) && f(3, &["head", "lexical"]) && path.len() == 4))
}

/// Every field of `bytes`' manifest set to each of [`values`] in turn: the failures, one line
/// each (a panic fails the caller's test where it happens).
pub fn every_field(bytes: &[u8], values: &[(&'static str, Option<Value>)]) -> (usize, Vec<String>) {
    let original = answers(bytes).expect("the unmutated file loads and answers");
    let m = manifest_json(bytes);
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in paths(&m) {
        for (name, v) in values {
            cases += 1;
            let got = answers(&with_manifest(bytes, &mutated(&m, &path, v.as_ref())));
            let why = match got {
                // A fitted weight or mean set to another in-range number is another model, not a
                // damaged one: it may answer differently, but with probabilities.
                Ok(a) if is_parameter(&path) && ["0", "-1"].contains(name) => {
                    (!a.iter().all(|(_, s)| (0.0..=1.0).contains(s))).then(|| format!("scores that are not probabilities: {a:?}"))
                }
                got => judge(&original, got),
            };
            if let Some(why) = why {
                failures.push(format!("{} = {name}: {why}", show(&path)));
            }
        }
    }
    (cases, failures)
}
