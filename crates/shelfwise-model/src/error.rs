/// Everything that can go wrong when loading a model or classifying a title. Each variant has a
/// stable `code()`: the bindings expose it to JS and the CLI prints it, so callers can branch on it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a shelfwise model file (bad magic bytes)")]
    NotAModel,
    #[error("model file format version {found} is not supported (this build reads versions up to {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("model file is truncated: {0}")]
    Truncated(String),
    #[error("model file is corrupt: checksum mismatch (expected {expected}, got {actual})")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("model payload hash does not match its manifest")]
    PayloadHashMismatch,
    #[error("model manifest is invalid: {0}")]
    BadManifest(String),
    #[error("model tensors are invalid: {0}")]
    BadTensors(String),
    #[error("model tokenizer is invalid: {0}")]
    BadTokenizer(String),
    #[error("model has no encoder weights: assemble it with its base model first ({0})")]
    Incomplete(String),
    #[error("title is {len} bytes long; the limit is {max}")]
    InputTooLong { len: usize, max: usize },
    #[error("tensor computation failed: {0}")]
    Compute(String),
    /// An exported example memory (`crate::shop`) made from another model: its embeddings mean
    /// nothing to this one.
    #[error("this memory was exported from another model (model id {found}; this model's is {expected})")]
    MemoryModelMismatch { expected: String, found: String },
    #[error("not a valid exported memory: {0}")]
    BadMemory(String),
    #[error(transparent)]
    Core(#[from] shelfwise_core::CoreError),
    /// An encoder on another device failed (shelfwise-gpu's `GPU_UNAVAILABLE`, `GPU_DEVICE_LOST`,
    /// `GPU_ERROR`): its own stable code and message, through the one error type of
    /// [`crate::encoder::TitleEncoder`].
    #[error("{message}")]
    Device { code: &'static str, message: String },
}

impl ModelError {
    /// Stable, documented error code (see README "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::NotAModel => "MODEL_NOT_A_MODEL",
            ModelError::UnsupportedVersion { .. } => "MODEL_VERSION",
            ModelError::Truncated(_) => "MODEL_TRUNCATED",
            ModelError::ChecksumMismatch { .. } => "MODEL_CORRUPT",
            ModelError::PayloadHashMismatch => "MODEL_PAYLOAD_HASH",
            ModelError::BadManifest(_) => "MODEL_MANIFEST",
            ModelError::BadTensors(_) => "MODEL_TENSORS",
            ModelError::BadTokenizer(_) => "MODEL_TOKENIZER",
            ModelError::Incomplete(_) => "MODEL_INCOMPLETE",
            ModelError::InputTooLong { .. } => "INPUT_TOO_LONG",
            ModelError::Compute(_) => "INTERNAL",
            ModelError::MemoryModelMismatch { .. } => "MEMORY_MODEL_MISMATCH",
            ModelError::BadMemory(_) => "MEMORY_CORRUPT",
            ModelError::Core(_) => "LABELS",
            ModelError::Device { code, .. } => code,
        }
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Compute(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
