//! Browser bindings of [`shelfwise_gpu::GpuEncoder`] (wasm-bindgen), built into their own bundle
//! (`www/pkg-gpu/`, `www/scripts/build-wasm.sh gpu`) that the npm package loads only when the
//! WebGPU backend is chosen: the main runtime (`shelfwise-wasm`) stays small.
//!
//! No logic of its own: load the encoder's weights from a model file onto the GPU, and embed
//! batches of token ids (from the main bundle's `Classifier.encode`) into mean-pooled vectors,
//! which the main bundle's `Classifier.suggestWithEmbedding` turns into decisions (the head is
//! shared with the wasm path); `check` is `shelfwise_model::backend::check_probe` on this GPU's
//! embedding of the probe title, the CLI's own check. Every failure is a JS `Error` with a stable `code`:
//! `GPU_UNAVAILABLE`, `GPU_DEVICE_LOST`, `GPU_ERROR`, or the model's codes.

/// Crate version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_arch = "wasm32")]
pub use bindings::*;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::VERSION;
    use shelfwise_gpu::GpuError;
    use shelfwise_model::format::{Digests, ModelFileRef};
    use shelfwise_model::tokenize::Encoding;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    pub fn version() -> String {
        VERSION.to_string()
    }

    /// The title a GPU is checked on before it is used (`GpuEncoder.check`).
    #[wasm_bindgen(js_name = probeTitle)]
    pub fn probe_title() -> String {
        shelfwise_model::backend::PROBE_TITLE.to_string()
    }

    fn js_error(code: &str, message: &str) -> JsValue {
        let err = js_sys::Error::new(message);
        err.set_name("ShelfwiseError");
        let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
        err.into()
    }

    fn gpu_error(e: GpuError) -> JsValue {
        js_error(e.code(), &e.to_string())
    }

    fn model_error(e: shelfwise_model::ModelError) -> JsValue {
        js_error(e.code(), &e.to_string())
    }

    /// The encoder of one model file, on the browser's WebGPU device.
    #[wasm_bindgen]
    pub struct GpuEncoder {
        inner: shelfwise_gpu::GpuEncoder,
    }

    #[wasm_bindgen]
    impl GpuEncoder {
        /// Opens a WebGPU device and uploads the encoder's weights of a model file (quantized
        /// weights are dequantized on upload). With the file's sha256 digests (body, and payload
        /// unless the bytes are a cached copy; see the main bundle's `Classifier.loadWithDigests`)
        /// the file is not hashed again. Throws `Error{code}`: `GPU_UNAVAILABLE` without an adapter
        /// or device, the model's codes for a bad file.
        pub async fn load(bytes: Vec<u8>, body_sha256: Option<String>, payload_sha256: Option<String>) -> Result<GpuEncoder, JsValue> {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| std::panic::set_hook(Box::new(console_error_panic_hook::hook)));
            let digests = body_sha256.map(|body| Digests { body, payload: payload_sha256 });
            let file = ModelFileRef::parse(&bytes, digests.as_ref()).map_err(model_error)?;
            let tensors = shelfwise_model::classifier::load_tensors(file.tensors).map_err(model_error)?;
            let inner = shelfwise_gpu::GpuEncoder::new_async(&file.manifest.encoder, &tensors).await.map_err(gpu_error)?;
            Ok(GpuEncoder { inner })
        }

        /// Mean-pooled embeddings, `[titles, hidden]` row-major, of a batch of tokenized titles:
        /// `ids` holds every title's token ids one after the other, `lengths` how many each has.
        /// Throws `Error{code}` (`GPU_DEVICE_LOST`, `GPU_ERROR`, ...).
        pub async fn embed(&self, ids: Vec<u32>, lengths: Vec<u32>) -> Result<js_sys::Float32Array, JsValue> {
            let total: usize = lengths.iter().map(|&n| n as usize).sum();
            if total != ids.len() {
                return Err(js_error("INVALID_ARGUMENT", "embed: lengths do not add up to the number of ids"));
            }
            let mut encodings = Vec::with_capacity(lengths.len());
            let mut at = 0;
            for &n in &lengths {
                let n = n as usize;
                encodings.push(Encoding { ids: ids[at..at + n].to_vec(), mask: vec![1; n] });
                at += n;
            }
            let out = self.inner.embed(&encodings).await.map_err(gpu_error)?;
            Ok(js_sys::Float32Array::from(&out[..]))
        }

        /// The check before first use (`shelfwise_model::backend::check_probe`): embeds `ids`
        /// (the main bundle's `Classifier.encode` of `probeTitle()`) and compares the result with
        /// `reference` (its `Classifier.embedding` of the same title). Resolves to their cosine;
        /// throws `Error{code}`: `GPU_ERROR` when they disagree, or the forward's own code.
        pub async fn check(&self, ids: Vec<u32>, reference: Vec<f32>) -> Result<f32, JsValue> {
            let n = ids.len();
            let probe = Encoding { ids, mask: vec![1; n] };
            let got = self.inner.embed(std::slice::from_ref(&probe)).await.map_err(gpu_error)?;
            shelfwise_model::backend::check_probe(&reference, &got).map_err(|e| js_error(e.code(), &e.to_string()))
        }

        /// Destroys the device: a forward in flight fails (`GPU_DEVICE_LOST`) instead of running
        /// on, so a forward given up on (too slow) stops using the machine. Safe to call during
        /// `embed`, unlike `free`.
        pub fn destroy(&self) {
            self.inner.gpu().device.destroy();
        }

        /// Width of one embedding.
        #[wasm_bindgen(getter)]
        pub fn hidden(&self) -> usize {
            self.inner.config().hidden
        }

        /// The adapter, e.g. "SwiftShader Device (BrowserWebGpu, Cpu)".
        #[wasm_bindgen(getter)]
        pub fn adapter(&self) -> String {
            self.inner.gpu().describe()
        }
    }
}
