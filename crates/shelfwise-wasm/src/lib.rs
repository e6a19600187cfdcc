//! Browser bindings of [`shelfwise_model::Classifier`] (wasm-bindgen). No logic of its own: load
//! bytes, suggest, read the manifest; for the WebGPU backend, tokenize (`encode`) and decide from an
//! embedding computed by the separate GPU bundle (`suggestWithEmbedding`). Every failure is returned as a JS `Error` whose `code` is the
//! model's stable error code (`MODEL_CORRUPT`, `INPUT_TOO_LONG`, ...); nothing here panics on any
//! input. A panic hook is installed for diagnostics only (a panic is a bug in the model crate).

/// Crate version, as shipped in the npm package's metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// The bindings exist only in the browser build; natively this crate is (almost) empty, so that
// `cargo test --workspace` needs none of the wasm dependencies.
#[cfg(target_arch = "wasm32")]
pub use bindings::*;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::VERSION;
    use serde::Serialize;
    use wasm_bindgen::prelude::*;

    /// The bindings' version (the workspace version).
    #[wasm_bindgen]
    pub fn version() -> String {
        VERSION.to_string()
    }

    /// The quantized-matmul kernels this module was built with: "wasm-relaxed-simd" (the relaxed
    /// SIMD build) or "wasm-simd128".
    #[wasm_bindgen]
    pub fn kernels() -> String {
        shelfwise_model::kernels().to_string()
    }

    /// The matmul inner loops this module can switch between (`shelfwise_kernels::variants`;
    /// empty for a build with one), to be timed with [`KernelProbe`].
    #[wasm_bindgen(js_name = kernelVariants)]
    pub fn kernel_variants() -> Vec<String> {
        shelfwise_model::kernel_variants().iter().map(|v| v.to_string()).collect()
    }

    /// The inner loop that runs now (`undefined` for a build with one).
    #[wasm_bindgen(js_name = kernelVariant)]
    pub fn kernel_variant() -> Option<String> {
        shelfwise_model::kernel_variant().map(str::to_string)
    }

    /// Switches the inner loop for every later product; `false` for an unknown name. All give the
    /// same results.
    #[wasm_bindgen(js_name = setKernelVariant)]
    pub fn set_kernel_variant(name: &str) -> bool {
        shelfwise_model::set_kernel_variant(name)
    }

    /// A representative encoder product (`shelfwise_model::warm::KernelProbe`) for the package to
    /// time each kernel variant on.
    #[wasm_bindgen]
    pub struct KernelProbe(shelfwise_model::warm::KernelProbe);

    #[wasm_bindgen]
    impl KernelProbe {
        #[wasm_bindgen(constructor)]
        pub fn new() -> KernelProbe {
            KernelProbe(shelfwise_model::warm::KernelProbe::new())
        }

        /// `reps` products; a checksum, the same under every variant.
        pub fn run(&mut self, reps: u32) -> f32 {
            self.0.run(reps)
        }
    }

    impl Default for KernelProbe {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The code a failure of the WebGPU backend is reported with (`info.fallback` /
    /// `meta.fallback`): `GPU_UNAVAILABLE` and `GPU_DEVICE_LOST` as they are, anything else
    /// (`GPU_ERROR`, another code, none) `GPU_ERROR` (`shelfwise_model::backend::Fallback`, the
    /// CLI's `--backend auto` rule).
    #[wasm_bindgen(js_name = fallbackCode)]
    pub fn fallback_code(code: Option<String>) -> String {
        shelfwise_model::backend::Fallback::from_failure(code.as_deref(), "").code.to_string()
    }

    /// The category paths of a taxonomy file (one path per line, Google's `taxonomy-with-ids`,
    /// Shopify's `categories.txt`), parsed as `shelfwise adapt --taxonomy` parses it: `"A > B"`
    /// each, in file order, once. Throws `Error{code}` (`LABELS`, naming the line).
    #[wasm_bindgen(js_name = readTaxonomy)]
    pub fn read_taxonomy(text: &str) -> Result<Vec<String>, JsValue> {
        shelfwise_model::shop::read_taxonomy(text).map_err(model_error)
    }

    /// Runs the model-load and inference code on small inputs, in many short calls, so that the
    /// engine optimises it before a real load (`shelfwise_model::warm`); with `checksum`, the
    /// model-file checksum code too, for a page without native SHA-256 where the wasm hashes the
    /// file itself (one long call: without this it runs entirely in the baseline tier, about 6x
    /// slower: 4 s instead of 0.7 s for a 100 MB file). Call it right after instantiating the
    /// module, while the model bytes are being read.
    #[wasm_bindgen(js_name = warmUp)]
    pub fn warm_up(checksum: bool) {
        shelfwise_model::warm::warm_up();
        if !checksum {
            return;
        }
        let buf = vec![0x5au8; 16 * 1024];
        for _ in 0..256 {
            std::hint::black_box(shelfwise_model::format::sha256_hex(&[std::hint::black_box(&buf)]));
        }
    }

    fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| std::panic::set_hook(Box::new(console_error_panic_hook::hook)));
    }

    /// A JS `Error` with `name = "ShelfwiseError"` and a stable `code`.
    fn js_error(code: &str, message: &str) -> JsValue {
        let err = js_sys::Error::new(message);
        err.set_name("ShelfwiseError");
        // Reflect.set on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
        err.into()
    }

    fn model_error(e: shelfwise_model::ModelError) -> JsValue {
        js_error(e.code(), &e.to_string())
    }

    /// Plain JS objects (not Maps), `null` for `None`: what `JSON.parse` of the CLI's output gives.
    fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
        value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| js_error("INTERNAL", &format!("cannot convert result to JS: {e}")))
    }

    /// Set by [`trap_for_tests`]: this instance trapped, and loads no model again.
    static TRAPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Test hook of the package's browser tests: traps this wasm instance (a
    /// `WebAssembly.RuntimeError`, as a bug would) and marks it unusable, standing in for what a
    /// real trap can leave behind (an allocator or a borrow caught mid-update): `Classifier.load`
    /// then fails with `INTERNAL`. The package must restart on a fresh instance.
    #[wasm_bindgen(js_name = trapForTests)]
    pub fn trap_for_tests() {
        TRAPPED.store(true, std::sync::atomic::Ordering::SeqCst);
        core::arch::wasm32::unreachable()
    }

    fn usable() -> Result<(), JsValue> {
        match TRAPPED.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(js_error("INTERNAL", "this wasm instance trapped earlier: start a new one")),
            false => Ok(()),
        }
    }

    /// A loaded, verified model, and its shop's adaptation state once one is set
    /// (`shelfwise_model::shop`).
    #[wasm_bindgen]
    pub struct Classifier {
        inner: shelfwise_model::Classifier,
        shop: Option<Shop>,
    }

    use shelfwise_model::progress::Silent;
    use shelfwise_model::shop::{self, Shop};

    impl Classifier {
        fn new(inner: shelfwise_model::Classifier) -> Self {
            Classifier { inner, shop: None }
        }

        /// Runs `f` on the shop state (the file's own, at first), then makes the classifier
        /// suggest through it. On an error nothing changes.
        fn edit<T>(&mut self, f: impl FnOnce(&mut Shop, &shelfwise_model::Classifier) -> shelfwise_model::Result<T>) -> Result<T, JsValue> {
            let mut next = self.shop.clone().unwrap_or_else(|| Shop::new(&self.inner));
            let out = f(&mut next, &self.inner).map_err(model_error)?;
            next.apply(&mut self.inner).map_err(model_error)?;
            self.shop = Some(next);
            Ok(out)
        }

        fn shop(&self) -> Shop {
            self.shop.clone().unwrap_or_else(|| Shop::new(&self.inner))
        }
    }

    #[wasm_bindgen]
    impl Classifier {
        /// Parses and fully verifies a model file (checksums included). Throws `Error{code}`.
        pub fn load(bytes: &[u8]) -> Result<Classifier, JsValue> {
            install_panic_hook();
            usable()?;
            shelfwise_model::Classifier::from_bytes(bytes).map(Classifier::new).map_err(model_error)
        }

        /// [`Classifier::load`] with the sha256 digests (hex) of the file's body (every byte before
        /// the trailing checksum) and payload (tensors + tokenizer: from byte `28 + manifest length`
        /// to the checksum) computed by the caller, e.g. with `crypto.subtle.digest`. Wrong digests
        /// fail as a damaged file would (`MODEL_CORRUPT`, `MODEL_PAYLOAD_HASH`). `payload_sha256`
        /// null skips the payload check: only for a copy of a file that passed it when stored
        /// (the body's digest covers the payload bytes, so later damage is still caught).
        #[wasm_bindgen(js_name = loadWithDigests)]
        pub fn load_with_digests(bytes: &[u8], body_sha256: String, payload_sha256: Option<String>) -> Result<Classifier, JsValue> {
            install_panic_hook();
            usable()?;
            let d = shelfwise_model::format::Digests { body: body_sha256, payload: payload_sha256 };
            shelfwise_model::Classifier::from_bytes_with_digests(bytes, &d).map(Classifier::new).map_err(model_error)
        }

        /// Top-`k` suggestions for `title`: `{ suggestions, abstained, backOff }`. Throws `Error{code}`
        /// (`INPUT_TOO_LONG` for titles over 4096 UTF-8 bytes).
        pub fn suggest(&self, title: &str, k: usize, threshold: f32) -> Result<JsValue, JsValue> {
            let decision = self.inner.suggest(title, k, threshold).map_err(model_error)?;
            to_js(&decision)
        }

        /// `suggest` for many titles in one encoder pass (a catalogue import): an array of
        /// decisions, one a title, in order. Throws `Error{code}` (`INPUT_TOO_LONG` when any title
        /// is over the limit, before any work).
        #[wasm_bindgen(js_name = suggestMany)]
        pub fn suggest_many(&self, titles: Vec<String>, k: usize, threshold: f32) -> Result<JsValue, JsValue> {
            let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
            let decisions = self.inner.suggest_many(&titles, k, threshold).map_err(model_error)?;
            to_js(&decisions)
        }

        /// The title's token ids as the encoder reads them (for another encoder: the WebGPU bundle's
        /// `GpuEncoder.embed`). Throws `Error{code}` (`INPUT_TOO_LONG`).
        pub fn encode(&self, title: &str) -> Result<Vec<u32>, JsValue> {
            self.inner.encode(title).map(|e| e.ids).map_err(model_error)
        }

        /// The title's pooled embedding from this (wasm) encoder: the reference the WebGPU
        /// encoder's output is checked against. Throws `Error{code}` (`INPUT_TOO_LONG`).
        pub fn embedding(&self, title: &str) -> Result<Vec<f32>, JsValue> {
            self.inner.embedding(title).map_err(model_error)
        }

        /// [`Classifier::suggest`] on the title's pooled embedding computed elsewhere (the WebGPU
        /// encoder): the same head and decision as `suggest`. Throws `Error{code}`.
        #[wasm_bindgen(js_name = suggestWithEmbedding)]
        pub fn suggest_with_embedding(&self, title: &str, embedding: &[f32], k: usize, threshold: f32) -> Result<JsValue, JsValue> {
            let decision = self.inner.suggest_with_embedding(title, embedding, k, threshold).map_err(model_error)?;
            to_js(&decision)
        }

        /// Width of the encoder's embeddings.
        #[wasm_bindgen(getter)]
        pub fn hidden(&self) -> usize {
            self.inner.manifest().encoder.hidden
        }

        /// The model's manifest (name, labels, payload_sha256, encoder/head settings, metrics, ...).
        pub fn manifest(&self) -> Result<JsValue, JsValue> {
            to_js(self.inner.manifest())
        }

        /// Number of categories the model can suggest (an adapted model's: its shop's).
        #[wasm_bindgen(getter, js_name = labelCount)]
        pub fn label_count(&self) -> usize {
            self.inner.labels().len()
        }

        /// Sets the shop's taxonomy (`"A > B > C"` paths, inner nodes included: the leaves become
        /// the categories) and refits: the adapt report. Throws `Error{code}` (`LABELS`).
        #[wasm_bindgen(js_name = setTaxonomy)]
        pub fn set_taxonomy(&mut self, paths: Vec<String>) -> Result<JsValue, JsValue> {
            let paths = shop::parse_paths(&paths).map_err(model_error)?;
            let report = self.edit(|s, c| s.set_taxonomy(c, &paths, &Silent))?;
            to_js(&report)
        }

        /// Adds labelled examples (`titles[i]` in `paths[i]`, oldest first) and refits: the adapt
        /// report. Throws `Error{code}` (`LABELS`, `INPUT_TOO_LONG`).
        #[wasm_bindgen(js_name = addExamples)]
        pub fn add_examples(&mut self, titles: Vec<String>, paths: Vec<String>) -> Result<JsValue, JsValue> {
            let examples = shop::examples_of(&titles, &paths).map_err(model_error)?;
            let report = self.edit(|s, c| s.add_examples(c, examples, &Silent))?;
            to_js(&report)
        }

        /// One seller correction (takes effect from the next call). Throws `Error{code}`.
        pub fn learn(&mut self, title: &str, path: &str) -> Result<(), JsValue> {
            // In place, not through `edit`: learn_live appends to the live scores when it can
            // (no clone of the memory, no rebuild) and changes nothing on an error.
            if self.shop.is_none() {
                self.shop = Some(Shop::new(&self.inner));
            }
            let shop = self.shop.as_mut().expect("set above");
            shop.learn_live(&mut self.inner, title, path).map_err(model_error)
        }

        /// Forgets the examples of a title; how many.
        #[wasm_bindgen(js_name = forgetTitle)]
        pub fn forget_title(&mut self, title: &str) -> Result<usize, JsValue> {
            self.edit(|s, _| Ok(s.forget_title(title)))
        }

        /// Forgets the examples of a path (and the path, if examples had added it); how many.
        #[wasm_bindgen(js_name = forgetPath)]
        pub fn forget_path(&mut self, path: &str) -> Result<usize, JsValue> {
            self.edit(|s, _| s.forget_path(path))
        }

        /// Sets the memory's cap (applies from the next change).
        #[wasm_bindgen(js_name = setMaxExamples)]
        pub fn set_max_examples(&mut self, cap: usize) {
            let mut s = self.shop();
            s.set_max_examples(cap);
            self.shop = Some(s);
        }

        /// The `k` remembered titles nearest to `title`: `[{ title, path, score }]`.
        pub fn similar(&self, title: &str, k: usize) -> Result<JsValue, JsValue> {
            let found = match &self.shop {
                Some(s) => s.similar(&self.inner, title, k),
                None => Shop::new(&self.inner).similar(&self.inner, title, k),
            };
            to_js(&found.map_err(model_error)?)
        }

        /// Each word's contribution to category `category`'s score: `{ category, score, words }`.
        pub fn explain(&self, title: &str, category: usize) -> Result<JsValue, JsValue> {
            to_js(&Shop::explain(&self.inner, title, category).map_err(model_error)?)
        }

        /// The shop state as bytes (for `importMemory`, IndexedDB, a file).
        #[wasm_bindgen(js_name = exportMemory)]
        pub fn export_memory(&self) -> Result<Vec<u8>, JsValue> {
            match &self.shop {
                Some(s) => s.export(),
                None => Shop::new(&self.inner).export(),
            }
            .map_err(model_error)
        }

        /// Replaces the shop state with an exported one. Throws `Error{code}`
        /// (`MEMORY_MODEL_MISMATCH`, `MEMORY_CORRUPT`); on an error nothing changes.
        #[wasm_bindgen(js_name = importMemory)]
        pub fn import_memory(&mut self, bytes: &[u8]) -> Result<(), JsValue> {
            let mut next = Shop::import(&self.inner, bytes).map_err(model_error)?;
            next.apply(&mut self.inner).map_err(model_error)?;
            self.shop = Some(next);
            Ok(())
        }

        /// `{ examples, categories, added_categories, bytes, cap, method }`.
        #[wasm_bindgen(js_name = memoryInfo)]
        pub fn memory_info(&self) -> Result<JsValue, JsValue> {
            let info = match &self.shop {
                Some(s) => s.memory_info(&self.inner),
                None => Shop::new(&self.inner).memory_info(&self.inner),
            };
            to_js(&info.map_err(model_error)?)
        }

        /// The categories suggested now (after a taxonomy or an added path: the shop's).
        pub fn labels(&self) -> Vec<String> {
            self.inner.labels().label_strings()
        }

        /// Longest title accepted, in UTF-8 bytes.
        #[wasm_bindgen(getter, js_name = maxTitleBytes)]
        pub fn max_title_bytes(&self) -> usize {
            shelfwise_model::MAX_TITLE_BYTES
        }
    }
}

#[cfg(test)]
mod tests {
    /// `version()` is reported next to the npm package's own version: the package that ships
    /// these bindings must carry their version (www/package.json, a file this crate does not
    /// write), so a release that bumps one and not the other fails here.
    #[test]
    fn version_is_the_npm_package_version() {
        let package = include_str!("../../../www/package.json");
        let at = package.find("\"version\"").expect("www/package.json has a version") + "\"version\"".len();
        let npm = package[at..].split('"').nth(1).expect("a quoted version");
        assert_eq!(super::VERSION, npm);
    }

    /// The bindings pass the model's stable codes through as `Error.code`; the browser tests check
    /// them end to end, this pins the ones they rely on.
    #[test]
    fn model_errors_carry_stable_codes() {
        let code = |b: &[u8]| shelfwise_model::Classifier::from_bytes(b).err().map(|e| e.code());
        assert_eq!(code(b"<!doctype html>"), Some("MODEL_NOT_A_MODEL"));
        assert_eq!(code(b"SHLFWISE\x01\x00\x00\x00"), Some("MODEL_TRUNCATED"));
        assert_eq!(code(b"SHLFWISE\x09\x00\x00\x00"), Some("MODEL_VERSION"));
    }
}
