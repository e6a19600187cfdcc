//! `--backend`: where the encoder runs. The CPU (candle, or our int8 kernels for a quantized file)
//! or the GPU (shelfwise-gpu's WGSL kernels through wgpu, Vulkan natively), which the classifier
//! takes in place of its CPU encoder once it passes the probe (`Classifier::use_encoder`); what a
//! failure becomes is `shelfwise_model::backend::settle`'s, as in the browser's `'webgpu'`
//! backend. The head, the calibration and the decision are the classifier's either way.

use anyhow::Result;
use shelfwise_core::Decision;
use shelfwise_gpu::GpuEncoder;
use shelfwise_model::backend::{settle, Preference};
use shelfwise_model::classifier::load_tensors;
use shelfwise_model::format::ModelFile;
use shelfwise_model::{Classifier, ModelError};

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
    on_gpu: bool,
    /// Why `auto` fell back to the CPU.
    pub fallback: Option<String>,
}

impl Engine {
    pub fn load(bytes: &[u8], backend: Backend) -> Result<Self> {
        let preference = match backend {
            Backend::Cpu => return Ok(Self { clf: Classifier::from_bytes(bytes)?, on_gpu: false, fallback: None }),
            Backend::Gpu => Preference::Required,
            Backend::Auto => Preference::Preferred,
        };
        // One parse (and one hash) of the file for the classifier and the GPU's weights; the
        // classifier first, so a broken file gets the CPU path's error code.
        let file = ModelFile::from_bytes(bytes)?;
        let mut clf = Classifier::from_model_file(&file)?;
        let tried = GpuEncoder::new(&file.manifest.encoder, &load_tensors(&file.tensors)?)
            .map_err(ModelError::from)
            .and_then(|gpu| clf.use_encoder(Box::new(gpu)).map_err(ModelError::from));
        let fallback = settle(preference, tried)?;
        Ok(Self { clf, on_gpu: fallback.is_none(), fallback: fallback.map(|f| f.reason) })
    }

    pub fn on_gpu(&self) -> bool {
        self.on_gpu
    }

    /// "cpu", or "gpu: <adapter>".
    pub fn describe(&self) -> String {
        if self.on_gpu {
            self.clf.encoder().name()
        } else {
            "cpu".into()
        }
    }

    /// [`Classifier::suggest_many`] on this backend (on the GPU: one embedding pass for the batch).
    pub fn suggest_many(&self, titles: &[&str], k: usize, threshold: f32) -> Result<Vec<Decision>> {
        Ok(self.clf.suggest_many(titles, k, threshold)?)
    }

    /// One title, as a keystroke asks for it.
    pub fn suggest(&self, title: &str, k: usize, threshold: f32) -> Result<Decision> {
        Ok(self.clf.suggest(title, k, threshold)?)
    }
}
