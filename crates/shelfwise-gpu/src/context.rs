//! The wgpu device and queue, with errors captured (not panicking) and device loss tracked.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{GpuError, Result};

/// A device and queue, plus the first uncaptured wgpu error and the device-lost message, if any.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    error: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
}

/// The limits the kernels need: WebGPU's defaults (8 storage buffers per stage, 128 MiB storage
/// bindings, 16 KiB of workgroup memory, 256 invocations per workgroup).
fn required_limits() -> wgpu::Limits {
    wgpu::Limits::default()
}

impl Gpu {
    /// Finds an adapter (Vulkan natively, WebGPU in the browser) and opens a device on it.
    /// `GPU_UNAVAILABLE` when there is none or it refuses the limits.
    pub async fn new() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| GpuError::Unavailable(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("shelfwise-gpu"),
                required_features: wgpu::Features::empty(),
                required_limits: required_limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Unavailable(format!("{} ({:?}): {e}", info.name, info.backend)))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let lost = Arc::new(Mutex::new(None::<String>));
        {
            let error = error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.to_string());
            }));
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| format!("{reason:?}: {msg}"));
            });
        }
        Ok(Self { device, queue, info, error, lost })
    }

    /// [`Gpu::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// A short description of the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Fails with `GPU_DEVICE_LOST` or `GPU_ERROR` if the device was lost or wgpu reported an
    /// error since the last check (which clears it).
    pub fn check(&self) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(GpuError::DeviceLost(m));
        }
        if let Some(m) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(GpuError::Gpu(m));
        }
        Ok(())
    }

    fn lost_or(&self, other: String) -> GpuError {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(m) => GpuError::DeviceLost(m),
            None => GpuError::Gpu(other),
        }
    }

    /// Maps the first `len` f32 values of a MAP_READ buffer and copies them out. Natively this
    /// waits on the device; in the browser it awaits the mapping promise.
    pub async fn read_f32(&self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = (len * 4) as u64;
        let (tx, rx) = oneshot();
        buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| tx.send(r));
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| self.lost_or(e.to_string()))?;
        let mapped = rx.await;
        self.check()?;
        mapped.map_err(|e| self.lost_or(format!("mapping the result buffer: {e}")))?;
        let out = {
            let view = buf.get_mapped_range(0..bytes).map_err(|e| GpuError::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        buf.unmap();
        Ok(out)
    }
}

/// A one-value channel whose receiver is a future (no executor dependency): the map_async
/// callback sends, `read_f32` awaits.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

struct Sender<T>(Arc<Mutex<Slot<T>>>);
struct Receiver<T>(Arc<Mutex<Slot<T>>>);

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Mutex::new(Slot { value: None, waker: None }));
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    fn send(self, v: T) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.value = Some(v);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
