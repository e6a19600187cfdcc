//! Our WGSL kernels (src/kernels/*.wgsl), compiled once per device into compute pipelines, and the
//! small helpers that bind buffers and record dispatches.

use wgpu::util::DeviceExt;

use crate::context::Gpu;

const COMMON: &str = include_str!("kernels/common.wgsl");
const MATMUL: &str = include_str!("kernels/matmul.wgsl");
const LAYER_NORM: &str = include_str!("kernels/layer_norm.wgsl");
const GELU: &str = include_str!("kernels/gelu.wgsl");
const ATTENTION: &str = include_str!("kernels/attention.wgsl");
const EMBED: &str = include_str!("kernels/embed.wgsl");
const POOL: &str = include_str!("kernels/pool.wgsl");

/// Matmul tile (rows of x, rows of W) computed by one workgroup: see matmul.wgsl.
pub const MM_TILE: u32 = 64;
/// Widest row the row kernels (layer norm, embeddings) hold in registers: 128 invocations × 8.
pub const MAX_ROW: usize = 1024;
/// Longest sequence and widest head the attention kernel's workgroup arrays hold.
pub const MAX_SEQ: usize = 512;
pub const MAX_HEAD_DIM: usize = 256;
/// Most workgroups along one dispatch dimension (WebGPU's default limit).
const MAX_GROUPS: u32 = 65535;

/// Every kernel reads one 32-byte uniform of eight 4-byte words.
pub type Params = [u32; 8];

pub struct Kernels {
    pub matmul_f32: wgpu::ComputePipeline,
    pub matmul_q8: wgpu::ComputePipeline,
    pub layer_norm: wgpu::ComputePipeline,
    pub add_layer_norm: wgpu::ComputePipeline,
    pub gelu: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub embed_f32: wgpu::ComputePipeline,
    pub embed_q8: wgpu::ComputePipeline,
    pub mean_pool: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn new(gpu: &Gpu) -> Self {
        let d = &gpu.device;
        let module = |name: &str, src: &str| {
            d.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{src}").into()) })
        };
        let pipeline = |m: &wgpu::ShaderModule, entry: &str| {
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let mm = module("matmul.wgsl", MATMUL);
        let ln = module("layer_norm.wgsl", LAYER_NORM);
        let ge = module("gelu.wgsl", GELU);
        let at = module("attention.wgsl", ATTENTION);
        let em = module("embed.wgsl", EMBED);
        let po = module("pool.wgsl", POOL);
        Self {
            matmul_f32: pipeline(&mm, "matmul_f32"),
            matmul_q8: pipeline(&mm, "matmul_q8"),
            layer_norm: pipeline(&ln, "layer_norm"),
            add_layer_norm: pipeline(&ln, "add_layer_norm"),
            gelu: pipeline(&ge, "gelu"),
            attention: pipeline(&at, "attention"),
            embed_f32: pipeline(&em, "embed_f32"),
            embed_q8: pipeline(&em, "embed_q8"),
            mean_pool: pipeline(&po, "mean_pool"),
        }
    }
}

/// A bound dispatch: pipeline, its bind group, and the workgroup counts.
pub struct Step {
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl Step {
    /// Binds `(binding, buffer range)` pairs to `pipeline`'s group 0. A range is
    /// `(buffer, offset, size)`; size `None` is "to the end".
    pub fn new(gpu: &Gpu, pipeline: &wgpu::ComputePipeline, entries: &[(u32, BufRange<'_>)], groups: [u32; 3]) -> Self {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|(binding, r)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: r.0, offset: r.1, size: r.2.and_then(wgpu::BufferSize::new) }),
            })
            .collect();
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipeline.get_bind_group_layout(0), entries: &entries });
        Self { pipeline: pipeline.clone(), bind, groups }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_with(pass, self.groups);
    }

    /// Records the dispatch with other workgroup counts (same bindings, another batch shape).
    pub fn record_with(&self, pass: &mut wgpu::ComputePass<'_>, groups: [u32; 3]) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
}

/// `(buffer, offset, size)`: a binding range.
pub type BufRange<'a> = (&'a wgpu::Buffer, u64, Option<u64>);

/// Whole buffer.
pub fn all(b: &wgpu::Buffer) -> BufRange<'_> {
    (b, 0, None)
}

/// `n` workgroups of a 1-D launch, wrapped into y past 65535 (kernels undo it with `flat_group`;
/// the extra groups of the last y row exit early).
pub fn groups_1d(n: u32) -> [u32; 3] {
    if n <= MAX_GROUPS {
        [n.max(1), 1, 1]
    } else {
        [MAX_GROUPS, n.div_ceil(MAX_GROUPS), 1]
    }
}

pub fn matmul_groups(m: usize, n: usize) -> [u32; 3] {
    [(n as u32).div_ceil(MM_TILE).max(1), (m as u32).div_ceil(MM_TILE).max(1), 1]
}

/// Packs int8 codes (as their u8 bit patterns, row-major `[rows, cols]`) four to a u32, low byte
/// first, each row padded with zero codes to `ceil(cols / 4)` words.
pub fn pack_q8(codes: &[u8], rows: usize, cols: usize) -> Vec<u32> {
    assert_eq!(codes.len(), rows * cols);
    let c4 = cols.div_ceil(4);
    let mut out = vec![0u32; rows * c4];
    for (r, row) in codes.chunks(cols.max(1)).take(rows).enumerate() {
        for (c, &b) in row.iter().enumerate() {
            out[r * c4 + c / 4] |= (b as u32) << (8 * (c % 4));
        }
    }
    out
}

/// A buffer with initial contents (storage, copyable). Empty data gets one zero word: wgpu
/// bindings may not be empty.
pub fn storage_init<T: bytemuck::Pod>(gpu: &Gpu, label: &str, data: &[T]) -> wgpu::Buffer {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let zero = [0u8; 4];
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: if bytes.is_empty() { &zero } else { bytes },
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    })
}

/// An uninitialised storage buffer of `words` 4-byte words (at least one).
pub fn storage(gpu: &Gpu, label: &str, words: usize) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (words.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// A MAP_READ buffer for `words` 4-byte words.
pub fn readback(gpu: &Gpu, words: usize) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: (words.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A uniform buffer holding one `Params`.
pub fn uniform(gpu: &Gpu, p: &Params) -> wgpu::Buffer {
    gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::cast_slice(p),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

pub fn f(x: f32) -> u32 {
    x.to_bits()
}
