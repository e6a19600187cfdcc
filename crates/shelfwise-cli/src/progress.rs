//! The CLI's side of the model crate's progress reports: indicatif bars on stderr, and the
//! `--cache-dir` embedding cache as files.

use std::cell::RefCell;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use shelfwise_model::progress::Progress;
use shelfwise_model::train::EmbeddingCache;

pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}").expect("valid template").progress_chars("=> "));
    pb.set_message(msg.to_string());
    pb
}

/// A bar for each stage the model crate reports; notes go above the running bar, or plainly
/// when there is none or no terminal (CI, logs).
#[derive(Default)]
pub struct Bars {
    current: RefCell<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, stage: &str, len: u64) {
        *self.current.borrow_mut() = Some(bar(len, stage));
    }

    fn advance(&self, n: u64) {
        if let Some(pb) = &*self.current.borrow() {
            pb.inc(n);
        }
    }

    fn set_position(&self, pos: u64) {
        if let Some(pb) = &*self.current.borrow() {
            pb.set_position(pos);
        }
    }

    fn finish(&self, keep: bool) {
        if let Some(pb) = self.current.borrow_mut().take() {
            if keep {
                pb.finish();
            } else {
                pb.finish_and_clear();
            }
        }
    }

    fn note(&self, line: &str) {
        match &*self.current.borrow() {
            Some(pb) if !pb.is_hidden() => pb.println(line),
            _ => eprintln!("{line}"),
        }
    }
}

/// Embeddings kept as `<digest>.f32` files in a folder (`--cache-dir`).
pub struct CacheDir(pub PathBuf);

impl EmbeddingCache for CacheDir {
    fn load(&self, digest: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(format!("{digest}.f32"))).ok()
    }

    fn store(&self, digest: &str, bytes: &[u8]) {
        let path = self.0.join(format!("{digest}.f32"));
        // A cache that cannot be written costs the next run time, not this run its result.
        if let Err(e) = std::fs::create_dir_all(&self.0).and_then(|_| std::fs::write(&path, bytes)) {
            eprintln!("warning: cannot write the embedding cache {}: {e}", path.display());
        }
    }
}
