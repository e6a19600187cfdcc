//! shelfwise-gpu: the BERT encoder of shelfwise-model on the GPU, with our own WGSL kernels
//! (src/kernels/*.wgsl) on wgpu — Vulkan natively, WebGPU in the browser.
//!
//! - [`GpuEncoder`]: uploads an encoder's weights once (f32, or int8 codes with block scales for
//!   any quantized scheme of the model file) and embeds batches of tokenized titles into
//!   mean-pooled `[batch, hidden]` vectors, reading back only those. Natively it is a
//!   `shelfwise_model::TitleEncoder`, which a `Classifier` takes once it passes the probe of
//!   `shelfwise_model::backend`.
//! - Quantized weights are multiplied as the CPU kernels (shelfwise-kernels) multiply them: the
//!   activations are quantized to 7 bits (8 against 4-bit codes) per (row, block of 32) before
//!   every quantized matmul,
//!   block products summed exactly, then scaled (see src/kernels/matmul.wgsl). The CPU does that
//!   so the browser can use relaxed SIMD's 8-bit dot products; the GPU follows so that a model
//!   gives one result on every backend (up to f32 summation order), not one per backend.
//! - [`ops::Ops`]: single kernels on host data, which the tests hold to
//!   `shelfwise_kernels::reference` (the plain f64 definitions the CPU kernels are held to).
//!
//! Errors carry stable codes ([`GpuError::code`]): `GPU_UNAVAILABLE`, `GPU_DEVICE_LOST`,
//! `GPU_ERROR`, or the model's own codes for bad tensors.

pub mod context;
pub mod encoder;
pub mod error;
pub mod kernels;
pub mod ops;
pub mod weights;

pub use context::Gpu;
pub use encoder::GpuEncoder;
pub use error::{GpuError, Result};
