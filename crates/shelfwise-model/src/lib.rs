//! shelfwise-model: the model file format, tokenizer, candle BERT encoder and hybrid
//! classification head, the [`Classifier`] that ties them together, and the transforms and
//! training that make model files.
//!
//! Layers, bottom up (a module imports only from the layers below it, plus `error` and
//! `progress`): storage ([`format`], [`codec`], [`storage`], [`tokenize`]) ← [`encoder`] (the
//! [`encoder::TitleEncoder`] trait and the CPU encoders), [`head`], [`lexical`] and [`adapter`] (an adapted
//! file's scoring) ← [`backend`] (the probe and fallback rules for another encoder) ←
//! [`classifier`] ← `catalogue` (a whole catalogue on every core, native only), transforms
//! ([`quant`], [`gptq`], [`part`]), [`adapt`] and [`shop`] (a shop's live adaptation state) and
//! [`train`].

pub mod adapt;
pub mod adapter;
pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod catalogue;
pub mod classifier;
pub mod codec;
pub mod encoder;
pub mod error;
pub mod format;
pub mod gptq;
pub mod head;
pub mod lexical;
pub mod part;
pub mod progress;
pub mod quant;
pub mod shop;
pub mod storage;
pub mod tokenize;
pub mod train;
pub mod validate;
pub mod warm;

pub use classifier::{Classifier, Embedder, MAX_TITLE_BYTES};
pub use encoder::TitleEncoder;
pub use error::{ModelError, Result};
pub use format::{Manifest, ModelFile, ModelFileRef, Quantization};

/// The quantized-matmul implementation this build runs ("wasm-relaxed-simd", "wasm-simd128",
/// "x86-64-sse2" or "portable"), for reports.
pub fn kernels() -> &'static str {
    shelfwise_kernels::implementation()
}

pub use shelfwise_kernels::{set_variant as set_kernel_variant, variant as kernel_variant, variants as kernel_variants};
