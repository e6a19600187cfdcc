//! GPU test helpers: skip (with a printed reason) when there is no adapter, unless
//! SHELFWISE_REQUIRE_GPU=1 (CI: scripts/test.sh installs Mesa's lavapipe and sets it).
#![allow(dead_code)]

use std::path::PathBuf;

use shelfwise_gpu::ops::Ops;
use shelfwise_gpu::{Gpu, GpuError};

/// Natively, SHELFWISE_REQUIRE_GPU=1; in the browser always (that run exists to test WebGPU).
pub fn require_gpu() -> bool {
    cfg!(target_arch = "wasm32") || std::env::var("SHELFWISE_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// The device, or `None` (test skipped) when no adapter exists and a GPU is not required.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu_or_skip(test: &str) -> Option<Gpu> {
    pollster::block_on(gpu_or_skip_async(test))
}

pub async fn gpu_or_skip_async(test: &str) -> Option<Gpu> {
    match Gpu::new().await {
        Ok(g) => {
            eprintln!("{test}: on {}", g.describe());
            Some(g)
        }
        Err(e @ GpuError::Unavailable(_)) if !require_gpu() => {
            eprintln!("SKIPPED {test}: no GPU adapter ({e}); install mesa-vulkan-drivers for lavapipe, or set SHELFWISE_REQUIRE_GPU=1 to fail instead");
            None
        }
        Err(e) => panic!("{test}: {e} [{}] (SHELFWISE_REQUIRE_GPU={})", e.code(), require_gpu()),
    }
}

pub async fn ops_or_skip(test: &str) -> Option<Ops> {
    gpu_or_skip_async(test).await.map(Ops::new)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Largest |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}
