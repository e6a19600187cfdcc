//! Where the encoder runs, decided once for every caller: the check another encoder of the same
//! weights (the GPU's) passes before a classifier uses it ([`probe`], [`check_probe`]), and what
//! becomes of a failure ([`settle`], [`Fallback`]). The CLI's `--backend` runs it natively; in the
//! browser, where the GPU forward is async and lives in a wasm bundle of its own, the GPU bundle's
//! `check` is [`check_probe`] on its embedding and the main bundle's `fallbackCode` is
//! [`Fallback::from_failure`]'s code, so `www/src/engine.ts` only wires them.

use crate::encoder::TitleEncoder;
use crate::error::ModelError;
use crate::tokenize::Encoding;

/// A title any model can read: the candidate encoder's first forward, compared with the CPU
/// encoder's (natively and in the browser).
pub const PROBE_TITLE: &str = "Stainless steel insulated water bottle, 1 litre, blue";

/// The least cosine between the candidate's and the CPU's embedding of [`PROBE_TITLE`] for the
/// candidate to be used. The GPU computes the same quantized products as the CPU and differs only
/// in the last bits of LayerNorm, softmax and GELU: with the shipped model the two agree to a
/// cosine of 0.99993 on lavapipe, while the CPU's embeddings of the 40 fixture titles reach at most
/// 0.64 with the probe's (shelfwise-gpu's tests/encoder.rs), so a GPU embedding the wrong tokens,
/// or garbage, lands far below.
pub const PROBE_MIN_COSINE: f32 = 0.99;

/// Cosine of two vectors (NaN when their lengths differ or either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
    (dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()) as f32
}

/// Why a candidate encoder is not used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Its embedding of the probe title is not the CPU's (a driver that miscomputes).
    #[error("GPU error: the GPU's embedding of a probe title disagrees with the CPU encoder's (cosine {cosine:.4}, below {PROBE_MIN_COSINE}): not using it")]
    Disagrees { cosine: f32 },
    /// Its forward (or the CPU's) failed.
    #[error(transparent)]
    Encoder(#[from] ModelError),
}

impl ProbeError {
    /// Stable code: `GPU_ERROR` for a disagreement, else the failure's own.
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::Disagrees { .. } => "GPU_ERROR",
            ProbeError::Encoder(e) => e.code(),
        }
    }
}

impl From<ProbeError> for ModelError {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Encoder(e) => e,
            d @ ProbeError::Disagrees { .. } => ModelError::Device { code: d.code(), message: d.to_string() },
        }
    }
}

/// The verdict on a candidate's embedding `got` of the probe title against the CPU's,
/// `reference`: their cosine, or [`ProbeError::Disagrees`] under [`PROBE_MIN_COSINE`] (also for
/// vectors of other lengths, or NaN).
pub fn check_probe(reference: &[f32], got: &[f32]) -> Result<f32, ProbeError> {
    let cos = cosine(got, reference);
    if cos.is_nan() || cos < PROBE_MIN_COSINE {
        return Err(ProbeError::Disagrees { cosine: cos });
    }
    Ok(cos)
}

/// Embeds `probe` (the tokenized [`PROBE_TITLE`]) with both encoders and judges `candidate` by
/// [`check_probe`]. Run before first use, it is also the candidate's first forward, so whatever a
/// driver sets up on first use is not paid on a seller's first title.
pub fn probe(reference: &dyn TitleEncoder, candidate: &dyn TitleEncoder, probe: &Encoding) -> Result<f32, ProbeError> {
    let want = reference.embed(std::slice::from_ref(probe))?;
    check_probe(&want, &candidate.embed(std::slice::from_ref(probe))?)
}

/// How much the caller wants the candidate encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// Only the candidate will do: its failure is the caller's (`--backend gpu`).
    Required,
    /// The candidate where it works, else the CPU, saying why (`--backend auto`, the browser's
    /// `'webgpu'`).
    Preferred,
}

/// Why the CPU encoder answers instead of the candidate: a stable code and the failure's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub code: &'static str,
    pub reason: String,
}

impl Fallback {
    /// A failure as a fallback record: the device codes (`GPU_UNAVAILABLE`, `GPU_DEVICE_LOST`,
    /// `GPU_ERROR`) pass through; anything else (a model shape the device does not support, a
    /// trap, no code at all) is `GPU_ERROR`.
    pub fn from_failure(code: Option<&str>, reason: impl Into<String>) -> Self {
        let code = match code {
            Some("GPU_UNAVAILABLE") => "GPU_UNAVAILABLE",
            Some("GPU_DEVICE_LOST") => "GPU_DEVICE_LOST",
            _ => "GPU_ERROR",
        };
        Self { code, reason: reason.into() }
    }
}

/// The decision once the candidate has been tried (opened and probed): `Ok(None)` to use it,
/// `Ok(Some(fallback))` to answer on the CPU, or the failure itself when it was
/// [`Preference::Required`].
pub fn settle<T>(preference: Preference, tried: Result<T, ModelError>) -> Result<Option<Fallback>, ModelError> {
    match (tried, preference) {
        (Ok(_), _) => Ok(None),
        (Err(e), Preference::Required) => Err(e),
        (Err(e), Preference::Preferred) => Ok(Some(Fallback::from_failure(Some(e.code()), e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed answer, or a failure with a code.
    struct Fixed(Result<Vec<f32>, &'static str>);

    impl TitleEncoder for Fixed {
        fn embed(&self, encodings: &[Encoding]) -> crate::Result<Vec<f32>> {
            assert_eq!(encodings.len(), 1, "the probe is one title");
            self.0.clone().map_err(|code| ModelError::Device { code, message: format!("{code} from the test") })
        }
        fn hidden(&self) -> usize {
            3
        }
        fn name(&self) -> String {
            "fixed".into()
        }
    }

    #[test]
    fn cosine_by_hand() {
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 2.0]), 0.0);
        assert!((cosine(&[3.0, 4.0], &[4.0, 3.0]) - 24.0 / 25.0).abs() < 1e-7);
        assert!(cosine(&[1.0], &[1.0, 0.0]).is_nan());
        assert!(cosine(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }

    #[test]
    fn probe_passes_a_near_copy_and_names_a_disagreement() {
        let cpu = Fixed(Ok(vec![1.0, 2.0, 3.0]));
        let e = Encoding { ids: vec![101, 102], mask: vec![1, 1] };
        // cos([1,2,3],[1,2,3.1]) = 14.3 / sqrt(14 · 14.61) = 14.3 / 14.3017 = 0.99988
        let cos = probe(&cpu, &Fixed(Ok(vec![1.0, 2.0, 3.1])), &e).unwrap();
        assert!((cos - 0.99988).abs() < 1e-5, "{cos}");
        // cos([1,2,3],[3,2,1]) = 10 / 14 = 0.714: below the bar.
        let err = probe(&cpu, &Fixed(Ok(vec![3.0, 2.0, 1.0])), &e).unwrap_err();
        assert_eq!(err.code(), "GPU_ERROR");
        assert!(err.to_string().contains("disagrees with the CPU encoder's (cosine 0.7143, below 0.99)"), "{err}");
        // Wrong length, NaN, zeros: disagreements, not panics.
        for got in [vec![1.0, 2.0], vec![f32::NAN, 1.0, 1.0], vec![0.0; 3]] {
            assert_eq!(check_probe(&[1.0, 2.0, 3.0], &got).unwrap_err().code(), "GPU_ERROR");
        }
        // The candidate's own failure keeps its code.
        assert_eq!(probe(&cpu, &Fixed(Err("GPU_DEVICE_LOST")), &e).unwrap_err().code(), "GPU_DEVICE_LOST");
        assert_eq!(ModelError::from(probe(&cpu, &Fixed(Err("GPU_DEVICE_LOST")), &e).unwrap_err()).code(), "GPU_DEVICE_LOST");
        assert_eq!(ModelError::from(err).code(), "GPU_ERROR");
    }

    #[test]
    fn settle_uses_falls_back_or_fails_by_preference() {
        let lost = || Err::<(), _>(ModelError::Device { code: "GPU_DEVICE_LOST", message: "GPU device lost: reset".into() });
        assert_eq!(settle(Preference::Required, Ok(())).unwrap(), None);
        assert_eq!(settle(Preference::Preferred, Ok(())).unwrap(), None);
        assert_eq!(settle(Preference::Required, lost()).unwrap_err().code(), "GPU_DEVICE_LOST");
        let f = settle(Preference::Preferred, lost()).unwrap().unwrap();
        assert_eq!(f, Fallback { code: "GPU_DEVICE_LOST", reason: "GPU device lost: reset".into() });
        // A failure that is not the device's own is GPU_ERROR, with its message.
        let shape = Err::<(), _>(ModelError::BadManifest("encoder shape unsupported on the GPU".into()));
        let f = settle(Preference::Preferred, shape).unwrap().unwrap();
        assert_eq!((f.code, f.reason.as_str()), ("GPU_ERROR", "model manifest is invalid: encoder shape unsupported on the GPU"));
        assert_eq!(Fallback::from_failure(Some("GPU_UNAVAILABLE"), "none").code, "GPU_UNAVAILABLE");
        assert_eq!(Fallback::from_failure(None, "RuntimeError: unreachable").code, "GPU_ERROR");
        assert_eq!(Fallback::from_failure(Some("INTERNAL"), "NaN").code, "GPU_ERROR");
    }
}
