//! shelfwise-gpu: the BERT encoder of shelfwise-model on the GPU, with our own WGSL kernels
//! (src/kernels/*.wgsl) on wgpu — Vulkan natively, WebGPU in the browser.
//!
//! - [`GpuEncoder`]: uploads an encoder's weights once (f32, or int8 codes with block scales for
//!   any quantized scheme of the model file, dequantized inside the kernels) and embeds batches
//!   of tokenized titles into mean-pooled `[batch, hidden]` vectors, reading back only those.
//! - [`ops::Ops`]: single kernels on host data; [`reference`]: their plain CPU definitions.
//!
//! Errors carry stable codes ([`GpuError::code`]): `GPU_UNAVAILABLE`, `GPU_DEVICE_LOST`,
//! `GPU_ERROR`, or the model's own codes for bad tensors.

pub mod context;
pub mod encoder;
pub mod error;
pub mod kernels;
pub mod ops;
pub mod reference;
pub mod weights;

pub use context::Gpu;
pub use encoder::GpuEncoder;
pub use error::{GpuError, Result};
