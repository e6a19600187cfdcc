//! Weights on the host (f32, or int8 codes + block scales from any quantized scheme of the model
//! file) and their GPU upload.

use std::collections::HashMap;

use candle_core::Tensor;
use shelfwise_model::quant::{ActBits, BLOCK};

use crate::context::Gpu;
use crate::error::Result;
use crate::kernels::{pack_q8, storage_init};

/// A `[rows, cols]` matrix as stored: f32 values, or int8 codes (u8 bit patterns, row-major) with
/// one f32 scale per (row, block of 32 columns), `[rows, ceil(cols / 32)]`:
/// `w[r][c] = (codes[r][c] as i8) as f32 * scales[r * nb + c / 32]`.
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

    /// int8 codes with one scale per row (`scales.len() == rows`), as block scales.
    pub fn q8_row_scaled(rows: usize, cols: usize, codes: Vec<u8>, row_scales: &[f32]) -> Self {
        HostMatrix::Q8 { rows, cols, codes, scales: shelfwise_model::quant::row_scales_as_blocks(row_scales, cols) }
    }

    /// f32 values (dequantized if int8), row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            HostMatrix::F32 { w, .. } => w.clone(),
            HostMatrix::Q8 { cols, codes, scales, .. } => {
                let nb = cols.div_ceil(BLOCK).max(1);
                codes
                    .chunks((*cols).max(1))
                    .zip(scales.chunks(nb))
                    .flat_map(|(row, s)| row.iter().enumerate().map(move |(c, &q)| q as i8 as f32 * s[c / BLOCK]))
                    .collect()
            }
        }
    }

    /// Stacks matrices with equal column counts row-wise (Q, K, V into one QKV projection). Stays
    /// int8 when all parts are int8 (block scales stack with their rows); otherwise f32.
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

    /// Reads `name` from a model's tensors: int8 codes + block scales when the file holds it
    /// quantized in any scheme (int8, 4- or 3-bit: the checks of the CPU load,
    /// `shelfwise_model::quant::load_codes`), else f32. `rows = None` accepts any row count (a
    /// pruned vocabulary's word table).
    pub fn from_tensors(t: &HashMap<String, Tensor>, name: &str, rows: Option<usize>, cols: usize) -> Result<Self> {
        if let Some(q) = shelfwise_model::quant::load_codes(t, name, rows, cols)? {
            return Ok(HostMatrix::Q8 { rows: q.rows, cols, codes: q.codes.into_iter().map(|c| c as u8).collect(), scales: q.scales });
        }
        let r = match (rows, t.get(name)) {
            (Some(r), _) => r,
            (None, Some(x)) => x.dims().first().copied().unwrap_or(0),
            (None, None) => return Err(shelfwise_model::ModelError::BadTensors(format!("missing tensor {name}")).into()),
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
                act_max: ActBits::of_codes(bytemuck::cast_slice(codes)).max() as u32,
            },
        }
    }
}

/// A matrix on the GPU: f32, or packed int8 codes (4 a word, rows padded to `ceil(cols/4)` words)
/// and block scales (`[rows, ceil(cols / 32)]`), with the largest activation code its matmul
/// quantizes to (63 or 127: the CPU kernels' `ActBits` for these codes).
pub enum GpuMatrix {
    F32 { rows: usize, cols: usize, w: wgpu::Buffer },
    Q8 { rows: usize, cols: usize, packed: wgpu::Buffer, scales: wgpu::Buffer, act_max: u32 },
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

    /// The largest activation code of this matrix's quantized matmul (0 for f32: unused).
    pub fn act_max(&self) -> u32 {
        match self {
            GpuMatrix::F32 { .. } => 0,
            GpuMatrix::Q8 { act_max, .. } => *act_max,
        }
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
