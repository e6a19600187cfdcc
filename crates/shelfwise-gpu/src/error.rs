use shelfwise_model::ModelError;

/// What can go wrong on the GPU path. Each variant has a stable [`GpuError::code`], in the style of
/// [`ModelError::code`], so that callers (the CLI, JS) can fall back to the CPU encoder on
/// `GPU_UNAVAILABLE` / `GPU_DEVICE_LOST` and report the rest.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter, or the adapter refused a device with the limits the kernels need.
    #[error("no usable GPU: {0}")]
    Unavailable(String),
    /// The device was lost (driver reset, tab backgrounded, GPU removed); make a new encoder.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// A validation, out-of-memory or mapping error reported by wgpu (a bug, or memory pressure).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The model's tensors or config do not fit this encoder (missing tensor, bad shape, a config
    /// the kernels do not support).
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl GpuError {
    /// Stable, documented error code.
    pub fn code(&self) -> &'static str {
        match self {
            GpuError::Unavailable(_) => "GPU_UNAVAILABLE",
            GpuError::DeviceLost(_) => "GPU_DEVICE_LOST",
            GpuError::Gpu(_) => "GPU_ERROR",
            GpuError::Model(e) => e.code(),
        }
    }
}

impl From<candle_core::Error> for GpuError {
    fn from(e: candle_core::Error) -> Self {
        GpuError::Model(ModelError::from(e))
    }
}

/// A GPU failure through the encoder trait's error type: the model's own errors as they were,
/// the GPU's with their codes (`ModelError::Device`).
impl From<GpuError> for ModelError {
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::Model(m) => m,
            e => ModelError::Device { code: e.code(), message: e.to_string() },
        }
    }
}

pub type Result<T> = std::result::Result<T, GpuError>;
