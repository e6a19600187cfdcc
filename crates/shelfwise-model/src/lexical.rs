//! The lexical part's tensors: a [`shelfwise_core::lexical::Lexical`] (TF-IDF n-gram hashes, idf,
//! pruned int8 SVM weights) as a model file stores it, next to the head. The stack's weights
//! are in the manifest (`Manifest::lexical`); `crate::classifier` applies both.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use shelfwise_core::lexical::Lexical;

use crate::error::{ModelError, Result};

/// Sorted n-gram hashes (i64 holding the u64 bits) `[features]`.
pub const HASHES: &str = "lexical.hashes";
/// idf per feature, f16 `[features]`.
pub const IDF: &str = "lexical.idf";
/// Kept weights per feature, i16 `[features]`.
pub const COUNTS: &str = "lexical.counts";
/// Class of each kept weight, i16 `[weights]`.
pub const CLASSES: &str = "lexical.classes";
/// int8 code of each kept weight (stored as u8) `[weights]`.
pub const CODES: &str = "lexical.codes";
/// Per class: the codes' scale and the bias, f32 `[labels]`.
pub const SCALES: &str = "lexical.scales";
pub const BIAS: &str = "lexical.bias";

/// Every lexical tensor name.
pub const NAMES: [&str; 7] = [HASHES, IDF, COUNTS, CLASSES, CODES, SCALES, BIAS];

/// The tensors that store `lex` (idf rounded to f16: the scores move by ~1e-3 of themselves).
pub fn to_tensors(lex: &Lexical) -> Result<HashMap<String, Tensor>> {
    let dev = &Device::Cpu;
    let (f, w) = (lex.n_features(), lex.n_weights());
    let mut t = HashMap::new();
    t.insert(HASHES.into(), Tensor::from_vec(lex.hashes().iter().map(|&h| h as i64).collect::<Vec<i64>>(), f, dev)?);
    t.insert(IDF.into(), Tensor::from_slice(lex.idf(), f, dev)?.to_dtype(DType::F16)?);
    t.insert(COUNTS.into(), Tensor::from_vec(lex.counts().into_iter().map(|c| c as i16).collect::<Vec<i16>>(), f, dev)?);
    t.insert(CLASSES.into(), Tensor::from_vec(lex.classes().iter().map(|&c| c as i16).collect::<Vec<i16>>(), w, dev)?);
    t.insert(CODES.into(), Tensor::from_vec(lex.codes().iter().map(|&c| c as u8).collect::<Vec<u8>>(), w, dev)?);
    t.insert(SCALES.into(), Tensor::from_slice(lex.scales(), lex.n_classes(), dev)?);
    t.insert(BIAS.into(), Tensor::from_slice(lex.bias(), lex.n_classes(), dev)?);
    Ok(t)
}

/// `lex` as it reads back from its tensors (the f16 idf): what training fits the stack on, so that
/// the stack's weights are fitted to the scores the file gives.
pub fn as_stored(lex: &Lexical) -> Result<Lexical> {
    load(&to_tensors(lex)?)
}

fn vector<T: candle_core::WithDType>(t: &HashMap<String, Tensor>, name: &str, dtype: DType) -> Result<Vec<T>> {
    let x = t.get(name).ok_or_else(|| ModelError::BadTensors(format!("missing tensor {name}")))?;
    if x.dtype() != dtype || x.rank() != 1 {
        return Err(ModelError::BadTensors(format!("{name} is {:?} {:?}, expected a {dtype:?} vector", x.dtype(), x.dims())));
    }
    Ok(x.to_vec1::<T>()?)
}

/// The lexical part of a file's tensors (`MODEL_TENSORS` if one is missing, of the wrong type, or
/// they disagree among themselves).
pub fn load(t: &HashMap<String, Tensor>) -> Result<Lexical> {
    let hashes: Vec<u64> = vector::<i64>(t, HASHES, DType::I64)?.into_iter().map(|h| h as u64).collect();
    let idf = vector::<half::f16>(t, IDF, DType::F16)?.into_iter().map(f32::from).collect();
    let counts: Vec<u16> = vector::<i16>(t, COUNTS, DType::I16)?.into_iter().map(|c| c.max(0) as u16).collect();
    let classes: Vec<u16> = vector::<i16>(t, CLASSES, DType::I16)?.into_iter().map(|c| c.max(0) as u16).collect();
    let codes = vector::<u8>(t, CODES, DType::U8)?.into_iter().map(|c| c as i8).collect();
    let scales = vector::<f32>(t, SCALES, DType::F32)?;
    let bias = vector::<f32>(t, BIAS, DType::F32)?;
    Lexical::from_parts(hashes, idf, &counts, classes, codes, scales, bias).map_err(|e| ModelError::BadTensors(format!("lexical: {e}")))
}
