//! Weights on the host (f32, or int8 codes + per-row scales as the model file holds them) and
//! their GPU upload.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use shelfwise_model::ModelError;

use crate::context::Gpu;
use crate::error::Result;
use crate::kernels::{pack_q8, storage_init};

/// Suffixes of an int8 per-row tensor in a model file (see shelfwise_model::quant).
pub const CODES_SUFFIX: &str = ".q8";
pub const SCALE_SUFFIX: &str = ".scale";

/// A `[rows, cols]` matrix as stored: f32 values, or int8 codes (u8 bit patterns, row-major) with
/// one f32 scale per row, `w[r][c] = (codes[r][c] as i8) as f32 * scales[r]`.
#[derive(Debug, Clone, PartialEq)]
pub enum HostMatrix {
    F32 { rows: usize, cols: usize, w: Vec<f32> },
    Q8 { rows: usize, cols: usize, codes: Vec<u8>, scales: Vec<f32> },
}

impl HostMatrix {
    pub fn rows(&self) -> usize {
        match self {
            HostMatrix::F32 { rows, .. } | HostMatrix::Q8 { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            HostMatrix::F32 { cols, .. } | HostMatrix::Q8 { cols, .. } => *cols,
        }
    }

    /// f32 values (dequantized if int8), row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HostMatrix::F32 { w, .. } => w.clone(),
            HostMatrix::Q8 { cols, codes, scales, .. } => codes
                .chunks((*cols).max(1))
                .zip(scales)
                .flat_map(|(row, &s)| row.iter().map(move |&q| q as i8 as f32 * s))
                .collect(),
        }
    }

    /// Stacks matrices with equal column counts row-wise (Q, K, V into one QKV projection). Stays
    /// int8 when all parts are int8 (per-row scales stack with their rows); otherwise f32.
    pub fn stack(parts: &[HostMatrix]) -> HostMatrix {
        let cols = parts[0].cols();
        assert!(parts.iter().all(|p| p.cols() == cols), "stack: column counts differ");
        let rows = parts.iter().map(HostMatrix::rows).sum();
        if parts.iter().all(|p| matches!(p, HostMatrix::Q8 { .. })) {
            let (mut codes, mut scales) = (Vec::new(), Vec::new());
            for p in parts {
                if let HostMatrix::Q8 { codes: c, scales: s, .. } = p {
                    codes.extend_from_slice(c);
                    scales.extend_from_slice(s);
                }
            }
            HostMatrix::Q8 { rows, cols, codes, scales }
        } else {
            HostMatrix::F32 { rows, cols, w: parts.iter().flat_map(HostMatrix::to_f32).collect() }
        }
    }

    /// Reads `name` from a model's tensors: int8 when the file holds `<name>.q8` + `<name>.scale`
    /// (shapes and finiteness checked), else f32 through shelfwise_model's `take` (which also
    /// dequantizes any other scheme it knows). `rows = None` accepts any row count (a pruned
    /// vocabulary's word table).
    pub fn from_tensors(t: &HashMap<String, Tensor>, name: &str, rows: Option<usize>, cols: usize) -> Result<Self> {
        let bad = |why: String| ModelError::BadTensors(format!("tensor {name}: {why}"));
        // Per-row scales only: block-scaled int8 (scale [rows, blocks], the current int8 scheme)
        // and q4 are dequantized to f32 below until the kernels read block scales.
        let row_scaled = t.get(&format!("{name}{SCALE_SUFFIX}")).is_some_and(|s| s.rank() == 1);
        if let (Some(q), Some(s), true) = (t.get(&format!("{name}{CODES_SUFFIX}")), t.get(&format!("{name}{SCALE_SUFFIX}")), row_scaled) {
            let &[r, c] = q.dims() else { return Err(bad(format!("codes have shape {:?}", q.dims())).into()) };
            if q.dtype() != DType::U8 || c != cols || rows.is_some_and(|n| n != r) {
                return Err(bad(format!("codes are {:?} {:?}, expected U8 [{rows:?}, {cols}]", q.dtype(), q.dims())).into());
            }
            if s.dims() != [r] {
                return Err(bad(format!("scale has shape {:?}, expected [{r}]", s.dims())).into());
            }
            let scales = s.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            if scales.iter().any(|x| !x.is_finite()) {
                return Err(bad("non-finite scale".into()).into());
            }
            let codes = q.flatten_all()?.to_vec1::<u8>()?;
            return Ok(HostMatrix::Q8 { rows: r, cols, codes, scales });
        }
        let r = match (rows, t.get(name)) {
            (Some(r), _) => r,
            (None, Some(x)) => x.dims().first().copied().unwrap_or(0),
            (None, None) => return Err(ModelError::BadTensors(format!("missing tensor {name}")).into()),
        };
        let w = shelfwise_model::encoder::take(t, name, &[r, cols])?.flatten_all()?.to_vec1::<f32>()?;
        Ok(HostMatrix::F32 { rows: r, cols, w })
    }

    pub fn upload(&self, gpu: &Gpu, label: &str) -> GpuMatrix {
        match self {
            HostMatrix::F32 { rows, cols, w } => GpuMatrix::F32 { rows: *rows, cols: *cols, w: storage_init(gpu, label, w) },
            HostMatrix::Q8 { rows, cols, codes, scales } => GpuMatrix::Q8 {
                rows: *rows,
                cols: *cols,
                packed: storage_init(gpu, label, &pack_q8(codes, *rows, *cols)),
                scales: storage_init(gpu, label, scales),
            },
        }
    }
}

/// A matrix on the GPU: f32, or packed int8 codes (4 a word, rows padded to `ceil(cols/4)` words)
/// and per-row scales.
pub enum GpuMatrix {
    F32 { rows: usize, cols: usize, w: wgpu::Buffer },
    Q8 { rows: usize, cols: usize, packed: wgpu::Buffer, scales: wgpu::Buffer },
}

impl GpuMatrix {
    pub fn rows(&self) -> usize {
        match self {
            GpuMatrix::F32 { rows, .. } | GpuMatrix::Q8 { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            GpuMatrix::F32 { cols, .. } | GpuMatrix::Q8 { cols, .. } => *cols,
        }
    }

    pub fn is_q8(&self) -> bool {
        matches!(self, GpuMatrix::Q8 { .. })
    }
}

/// `y = x Wᵀ + b` on the GPU.
pub struct GpuLinear {
    pub w: GpuMatrix,
    pub b: wgpu::Buffer,
}

/// A 1-D f32 tensor (bias, LayerNorm parameter) by name, with its length checked.
pub fn vector(t: &HashMap<String, Tensor>, name: &str, len: usize) -> Result<Vec<f32>> {
    Ok(shelfwise_model::encoder::take(t, name, &[len])?.to_vec1::<f32>()?)
}
