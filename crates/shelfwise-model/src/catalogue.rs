//! A whole catalogue through one classifier: what `shelfwise classify --batch` and the Python
//! package's `classify` both call, so that they cut, schedule and decide a catalogue the same way
//! and give the same scores bit for bit. The callers only parse titles in and convert decisions
//! out.

use rayon::prelude::*;
use shelfwise_core::Decision;

use crate::classifier::{Classifier, MAX_TITLE_BYTES};
use crate::error::{ModelError, Result};

/// Titles a chunk on the CPU: each chunk is one encoder batch (its tokens stacked, padding
/// dropped), small enough that the chunks of a catalogue keep every core busy to the end.
pub const CHUNK: usize = 32;

/// Where a catalogue's chunks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// rayon's current pool (the global one: `RAYON_NUM_THREADS` or every core), chunks of
    /// [`CHUNK`].
    Pool,
    /// A pool of this many threads for this call, chunks of [`CHUNK`]. 0 is `INTERNAL`.
    Threads(usize),
    /// One chunk of this many titles at a time on the calling thread: for an encoder that is
    /// parallel inside (the GPU's).
    Serial(usize),
}

/// Decisions for every title of a catalogue, in order, one result a title: a title over
/// [`MAX_TITLE_BYTES`] is its own `INPUT_TOO_LONG` (the rest of the catalogue is classified), a
/// blank one gets the empty decision. `done(n)` hears of every finished chunk of `n` titles (from
/// the worker threads). The outer error is the run's (a failed forward, no threads): `INTERNAL`
/// or the encoder's own code.
impl Classifier {
    pub fn classify_catalogue(
        &self,
        titles: &[&str],
        k: usize,
        threshold: f32,
        workers: Workers,
        done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Result<Decision>>> {
        let run = |chunk: &[&str]| {
            let out = classify_chunk(self, chunk, k, threshold);
            done(chunk.len());
            out
        };
        let chunks: Vec<Vec<Result<Decision>>> = match workers {
            Workers::Serial(n) => titles.chunks(n.max(1)).map(run).collect::<Result<_>>()?,
            Workers::Pool => titles.par_chunks(CHUNK).map(run).collect::<Result<_>>()?,
            Workers::Threads(n) => {
                if n == 0 {
                    return Err(ModelError::Compute("a catalogue needs at least 1 thread".into()));
                }
                let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| ModelError::Compute(format!("cannot start {n} threads: {e}")))?;
                pool.install(|| titles.par_chunks(CHUNK).map(run).collect::<Result<_>>())?
            }
        };
        Ok(chunks.into_iter().flatten().collect())
    }
}

/// One encoder batch of the titles that fit, the over-long ones answered in their places.
fn classify_chunk(clf: &Classifier, chunk: &[&str], k: usize, threshold: f32) -> Result<Vec<Result<Decision>>> {
    let fits = |t: &str| t.len() <= MAX_TITLE_BYTES;
    let fitting: Vec<&str> = chunk.iter().copied().filter(|t| fits(t)).collect();
    let mut decided = clf.suggest_many(&fitting, k, threshold)?.into_iter();
    Ok(chunk
        .iter()
        .map(|t| match fits(t) {
            true => decided.next().ok_or_else(|| ModelError::Compute("one decision a title".into())),
            false => Err(ModelError::InputTooLong { len: t.len(), max: MAX_TITLE_BYTES }),
        })
        .collect())
}
