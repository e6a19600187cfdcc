//! Helpers of the `shelfwise` binary's test files (each compiles its own copy: not every one uses all).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn shelfwise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shelfwise")).args(args).output().expect("run shelfwise")
}

/// `name` in this test binary's scratch folder `folder` under the target dir, emptied once a run:
/// the models these tests write are over a gigabyte in all, and a folder a process under /tmp was
/// never removed.
pub fn scratch(folder: &str, name: &str) -> PathBuf {
    static FRESH: std::sync::Once = std::sync::Once::new();
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    FRESH.call_once(|| {
        let _ = std::fs::remove_dir_all(&d);
    });
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}
