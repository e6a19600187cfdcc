//! How long-running work (embedding many titles, training) reports where it is, without knowing
//! who shows it: the CLI draws progress bars, tests and bindings pass [`Silent`].

/// Receives a job's stages, steps and notes. Every method has a do-nothing default.
pub trait Progress {
    /// A stage of `len` steps begins (`stage` names it, e.g. "embed train").
    fn start(&self, _stage: &str, _len: u64) {}
    /// `n` more steps of the current stage are done.
    fn advance(&self, _n: u64) {}
    /// The current stage is at step `pos`.
    fn set_position(&self, _pos: u64) {}
    /// The current stage is over; `keep`: its record stays on screen.
    fn finish(&self, _keep: bool) {}
    /// A line for the user (the CLI prints it to stderr, above a running bar).
    fn note(&self, _line: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
