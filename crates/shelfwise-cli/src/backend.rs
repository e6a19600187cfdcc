//! Where the encoder runs: on the CPU (candle, or our int8 kernels for a quantized file) or on the
//! GPU (shelfwise-gpu's WGSL kernels through wgpu, Vulkan natively). The head, the calibration and
//! the decision are the model crate's either way, as in the browser's `'webgpu'` backend.

use anyhow::Result;
use shelfwise_core::Decision;
use shelfwise_gpu::{GpuEncoder, GpuError, PROBE_TITLE};
use shelfwise_model::classifier::load_tensors;
use shelfwise_model::format::ModelFile;
use shelfwise_model::Classifier;

/// Token rows the GPU gets in one call (the browser's WebGPU backend embeds one title a call; a
/// catalogue goes in batches).
pub const GPU_BATCH: usize = 64;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The CPU, every core for a batch.
    Cpu,
    /// The GPU; fails with GPU_UNAVAILABLE when there is no usable adapter, GPU_ERROR when it
    /// disagrees with the CPU on a probe title.
    Gpu,
    /// The GPU when there is a usable adapter that agrees with the CPU on a probe title, else the
    /// CPU (the reason is printed).
    Auto,
}

/// A loaded model on its backend.
pub struct Engine {
    pub clf: Classifier,
    gpu: Option<GpuEncoder>,
    /// Why `auto` fell back to the CPU.
    pub fallback: Option<String>,
}

impl Engine {
    pub fn load(bytes: &[u8], backend: Backend) -> Result<Self> {
        if backend == Backend::Cpu {
            return Ok(Self { clf: Classifier::from_bytes(bytes)?, gpu: None, fallback: None });
        }
        // One parse (and one hash) of the file for the classifier and the GPU's weights; the
        // classifier first, so a broken file gets the CPU path's error code.
        let file = ModelFile::from_bytes(bytes)?;
        let clf = Classifier::from_model_file(&file)?;
        // The GPU is used only once its embedding of a probe title agrees with the CPU's (as in
        // the browser); auto falls back when it has no adapter or disagrees.
        let opened = GpuEncoder::new(&file.manifest.encoder, &load_tensors(&file.tensors)?).and_then(|g| {
            g.check_blocking(&clf.encode(PROBE_TITLE)?, &clf.embedding(PROBE_TITLE)?)?;
            Ok(g)
        });
        let (gpu, fallback) = match opened {
            Ok(g) => (Some(g), None),
            Err(e @ (GpuError::Unavailable(_) | GpuError::Gpu(_))) if backend == Backend::Auto => (None, Some(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        Ok(Self { clf, gpu, fallback })
    }

    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// "cpu", or "gpu: <adapter>".
    pub fn describe(&self) -> String {
        self.gpu.as_ref().map_or_else(|| "cpu".to_string(), |g| format!("gpu: {}", g.gpu().describe()))
    }

    /// [`Classifier::suggest_many`] on this backend (on the GPU: one embedding pass for the batch).
    pub fn suggest_many(&self, titles: &[&str], k: usize, threshold: f32) -> Result<Vec<Decision>> {
        let Some(gpu) = &self.gpu else {
            return Ok(self.clf.suggest_many(titles, k, threshold)?);
        };
        // `encode` checks every title's length before any GPU work, as suggest_many does.
        let mut encodings = Vec::with_capacity(titles.len());
        for t in titles {
            let e = self.clf.encode(t)?;
            if !t.trim().is_empty() {
                encodings.push(e);
            }
        }
        let pooled = if encodings.is_empty() { Vec::new() } else { gpu.embed_blocking(&encodings)? };
        let h = self.clf.manifest().encoder.hidden;
        let mut rows = pooled.chunks_exact(h);
        titles
            .iter()
            .map(|t| match t.trim().is_empty() {
                true => Ok(Decision::empty()),
                false => Ok(self.clf.suggest_with_embedding(t, rows.next().expect("one embedding a title"), k, threshold)?),
            })
            .collect()
    }

    /// One title, as a keystroke asks for it.
    pub fn suggest(&self, title: &str, k: usize, threshold: f32) -> Result<Decision> {
        match &self.gpu {
            None => Ok(self.clf.suggest(title, k, threshold)?),
            Some(_) => Ok(self.suggest_many(&[title], k, threshold)?.pop().expect("one title in, one out")),
        }
    }
}
