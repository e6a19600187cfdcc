//! The BERT encoder forward on the GPU, layer for layer as shelfwise_model::encoder: embeddings +
//! LayerNorm, `layers` × [fused QKV projection, attention, output projection, add + LayerNorm,
//! intermediate projection + GELU, output projection, add + LayerNorm], masked mean pooling.
//! Weights are uploaded once; activation buffers are kept between calls and grown on demand; only
//! the pooled `[batch, hidden]` result is read back.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Tensor};
use shelfwise_model::encoder::{WORD_EMBEDDINGS, WORD_ROWS};
use shelfwise_model::format::EncoderConfig;
use shelfwise_model::tokenize::Encoding;
use shelfwise_model::ModelError;

use crate::context::Gpu;
use crate::error::Result;
use crate::kernels::{all, readback, storage, storage_init, BufRange, Kernels, Step, MAX_HEAD_DIM, MAX_ROW, MAX_SEQ};
use crate::ops::{matmul_bindings, Launch};
use crate::weights::{vector, GpuLinear, GpuMatrix, HostMatrix};

/// Most token rows (batch × padded length) one GPU pass holds; longer batches are split.
pub const MAX_PASS_ROWS: usize = 8192;

struct GpuLayer {
    qkv: GpuLinear,
    o: GpuLinear,
    ln1: wgpu::Buffer,
    ff1: GpuLinear,
    ff2: GpuLinear,
    ln2: wgpu::Buffer,
}

/// Activation buffers for up to `cap` token rows, with every dispatch of the forward bound to them.
struct Workspace {
    cap: usize,
    ids: wgpu::Buffer,
    mask: wgpu::Buffer,
    pooled: wgpu::Buffer,
    staging: wgpu::Buffer,
    params: wgpu::Buffer,
    slot: u64,
    steps: Vec<(Step, Launch)>,
    // Kept alive for the bind groups.
    _acts: Vec<wgpu::Buffer>,
}

pub struct GpuEncoder {
    gpu: Gpu,
    kernels: Kernels,
    cfg: EncoderConfig,
    /// Token id → word-table row, when the vocabulary was pruned.
    word_rows: Option<Vec<u32>>,
    word: GpuMatrix,
    pos: wgpu::Buffer,
    typ: wgpu::Buffer,
    emb_ln: wgpu::Buffer,
    layers: Vec<GpuLayer>,
    max_rows: usize,
    workspace: Mutex<Option<Workspace>>,
}

fn linear(gpu: &Gpu, t: &HashMap<String, Tensor>, names: &[String], cols: usize) -> Result<GpuLinear> {
    let mut ws = Vec::new();
    let mut bs = Vec::new();
    for p in names {
        let rows = t
            .get(&format!("{p}.bias"))
            .map(|b| b.dims().first().copied().unwrap_or(0))
            .ok_or_else(|| ModelError::BadTensors(format!("missing tensor {p}.bias")))?;
        ws.push(HostMatrix::from_tensors(t, &format!("{p}.weight"), Some(rows), cols)?);
        bs.extend(vector(t, &format!("{p}.bias"), rows)?);
    }
    let w = HostMatrix::stack(&ws);
    Ok(GpuLinear { w: w.upload(gpu, &names[0]), b: storage_init(gpu, "bias", &bs) })
}

fn ln_params(gpu: &Gpu, t: &HashMap<String, Tensor>, p: &str, n: usize) -> Result<wgpu::Buffer> {
    let mut v = vector(t, &format!("{p}.weight"), n)?;
    v.extend(vector(t, &format!("{p}.bias"), n)?);
    Ok(storage_init(gpu, p, &v))
}

impl GpuEncoder {
    /// Opens the GPU and uploads the encoder's weights (blocking; native only). `GPU_UNAVAILABLE`
    /// without an adapter.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(cfg: &EncoderConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        Self::with_gpu(Gpu::new_blocking()?, cfg, tensors)
    }

    /// [`GpuEncoder::new`] for the browser (or any async context).
    pub async fn new_async(cfg: &EncoderConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        Self::with_gpu(Gpu::new().await?, cfg, tensors)
    }

    /// Uploads the encoder's weights to an opened device: f32, or int8 codes + block scales (kept
    /// int8 on the GPU) for tensors the file holds quantized (int8, 4- or 3-bit).
    pub fn with_gpu(gpu: Gpu, cfg: &EncoderConfig, t: &HashMap<String, Tensor>) -> Result<Self> {
        let (h, i) = (cfg.hidden, cfg.intermediate);
        if cfg.heads == 0 || h % cfg.heads != 0 || cfg.max_tokens > cfg.max_positions || cfg.max_tokens < 2 {
            return Err(ModelError::BadManifest(format!("inconsistent encoder config {cfg:?}")).into());
        }
        if h > MAX_ROW || cfg.max_tokens > MAX_SEQ || h / cfg.heads > MAX_HEAD_DIM {
            return Err(ModelError::BadManifest(format!(
                "encoder shape unsupported on the GPU (hidden <= {MAX_ROW}, max_tokens <= {MAX_SEQ}, head dim <= {MAX_HEAD_DIM}): {cfg:?}"
            ))
            .into());
        }
        let word_rows = match t.get(WORD_ROWS) {
            None => None,
            Some(r) if r.dtype() == DType::U32 && r.dims() == [cfg.vocab_size] => Some(r.to_vec1::<u32>()?),
            Some(r) => return Err(ModelError::BadTensors(format!("{WORD_ROWS} is {:?} {:?}, expected U32 [{}]", r.dtype(), r.dims(), cfg.vocab_size)).into()),
        };
        let table_rows = match &word_rows {
            None => cfg.vocab_size,
            Some(r) => r.iter().max().map_or(0, |&m| m as usize + 1),
        };
        let word = HostMatrix::from_tensors(t, WORD_EMBEDDINGS, Some(table_rows), h)?.upload(&gpu, "word");
        let pos = shelfwise_model::encoder::take(t, "embeddings.position_embeddings.weight", &[cfg.max_positions, h])?;
        let typ = shelfwise_model::encoder::take(t, "embeddings.token_type_embeddings.weight", &[2, h])?;
        let pos = storage_init(&gpu, "pos", &pos.flatten_all()?.to_vec1::<f32>()?);
        let typ = storage_init(&gpu, "typ", &typ.flatten_all()?.to_vec1::<f32>()?);
        let emb_ln = ln_params(&gpu, t, "embeddings.LayerNorm", h)?;
        let mut layers = Vec::new();
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}");
            let names = |s: &[&str]| s.iter().map(|n| format!("{p}.{n}")).collect::<Vec<_>>();
            let layer = GpuLayer {
                qkv: linear(&gpu, t, &names(&["attention.self.query", "attention.self.key", "attention.self.value"]), h)?,
                o: linear(&gpu, t, &names(&["attention.output.dense"]), h)?,
                ln1: ln_params(&gpu, t, &format!("{p}.attention.output.LayerNorm"), h)?,
                ff1: linear(&gpu, t, &names(&["intermediate.dense"]), h)?,
                ff2: linear(&gpu, t, &names(&["output.dense"]), i)?,
                ln2: ln_params(&gpu, t, &format!("{p}.output.LayerNorm"), h)?,
            };
            let shapes = [(&layer.qkv, 3 * h, h), (&layer.o, h, h), (&layer.ff1, i, h), (&layer.ff2, h, i)];
            if shapes.iter().any(|(lin, r, c)| lin.w.rows() != *r || lin.w.cols() != *c) {
                return Err(ModelError::BadTensors(format!("layer {l}: projection shapes do not match {cfg:?}")).into());
            }
            layers.push(layer);
        }
        let kernels = Kernels::new(&gpu);
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize;
        let widest = (3 * h).max(i) * 4;
        let max_rows = MAX_PASS_ROWS.min(limit / widest).max(cfg.max_tokens);
        gpu.check()?;
        Ok(Self { gpu, kernels, cfg: cfg.clone(), word_rows, word, pos, typ, emb_ln, layers, max_rows, workspace: Mutex::new(None) })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Whether the weights are held as int8 on the GPU (the first layer's query projection).
    pub fn is_int8(&self) -> bool {
        self.layers.first().is_some_and(|l| l.qkv.w.is_q8())
    }

    /// Mean-pooled embeddings `[batch, hidden]` (row-major) of tokenized titles, as the CPU
    /// encoder's `forward` on the same titles padded to the longest. Long batches run in several
    /// passes of at most [`MAX_PASS_ROWS`] token rows.
    pub async fn embed(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        self.gpu.check()?;
        let limit = self.cfg.max_tokens;
        let table_rows = self.word.rows();
        for e in encodings {
            if e.ids.len() > limit {
                return Err(ModelError::Compute(format!("sequence of {} tokens over the limit {limit}", e.ids.len())).into());
            }
            if e.mask.len() > e.ids.len() {
                return Err(ModelError::Compute("attention mask longer than the token ids".into()).into());
            }
            let out_of_range = match &self.word_rows {
                None => e.ids.iter().any(|&id| id as usize >= table_rows),
                Some(map) => e.ids.iter().any(|&id| id as usize >= map.len()),
            };
            if out_of_range {
                return Err(ModelError::Compute("token id outside the vocabulary".into()).into());
            }
        }
        let mut out = Vec::with_capacity(encodings.len() * self.cfg.hidden);
        let mut start = 0;
        while start < encodings.len() {
            let (mut end, mut t) = (start, 1);
            while end < encodings.len() {
                let t2 = t.max(encodings[end].ids.len());
                if (end + 1 - start) * t2 > self.max_rows {
                    break;
                }
                t = t2;
                end += 1;
            }
            out.extend(self.embed_pass(&encodings[start..end], t).await?);
            start = end;
        }
        Ok(out)
    }

    /// [`GpuEncoder::embed`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_blocking(&self, encodings: &[Encoding]) -> Result<Vec<f32>> {
        pollster::block_on(self.embed(encodings))
    }

    async fn embed_pass(&self, encodings: &[Encoding], t: usize) -> Result<Vec<f32>> {
        let (b, h) = (encodings.len(), self.cfg.hidden);
        let rows = b * t;
        // Take the workspace out for the duration (no lock held across the await); a concurrent
        // call finds none and builds its own.
        let taken = self.workspace.lock().unwrap_or_else(|p| p.into_inner()).take();
        let ws = match taken {
            Some(ws) if ws.cap >= rows => ws,
            _ => self.workspace_for(rows.max(256).next_power_of_two().min(self.max_rows).max(rows)),
        };
        let mut ids = vec![0u32; rows];
        let mut mask = vec![0u32; rows];
        for (i, e) in encodings.iter().enumerate() {
            for (j, &id) in e.ids.iter().enumerate() {
                ids[i * t + j] = self.word_rows.as_ref().map_or(id, |m| m[id as usize]);
            }
            mask[i * t..i * t + e.mask.len()].copy_from_slice(&e.mask);
        }
        let q = &self.gpu.queue;
        q.write_buffer(&ws.ids, 0, bytemuck::cast_slice(&ids));
        q.write_buffer(&ws.mask, 0, bytemuck::cast_slice(&mask));
        let mut params = vec![0u8; ws.params.size() as usize];
        let mut groups = Vec::with_capacity(ws.steps.len());
        for (k, (_, launch)) in ws.steps.iter().enumerate() {
            let (p, g) = launch.shape(b, t);
            let at = k * ws.slot as usize;
            params[at..at + 32].copy_from_slice(bytemuck::cast_slice(&p));
            groups.push(g);
        }
        q.write_buffer(&ws.params, 0, &params);
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("encoder forward") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("encoder forward"), timestamp_writes: None });
            for ((step, _), g) in ws.steps.iter().zip(groups) {
                step.record_with(&mut pass, g);
            }
        }
        enc.copy_buffer_to_buffer(&ws.pooled, 0, &ws.staging, 0, (b * h * 4) as u64);
        q.submit([enc.finish()]);
        let out = self.gpu.read_f32(&ws.staging, b * h).await?;
        let mut slot = self.workspace.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|w| w.cap < ws.cap) {
            *slot = Some(ws);
        }
        Ok(out)
    }

    /// Allocates activations for `cap` token rows and binds every step of the forward to them.
    fn workspace_for(&self, cap: usize) -> Workspace {
        let g = &self.gpu;
        let (h, i) = (self.cfg.hidden, self.cfg.intermediate);
        let ids = storage(g, "ids", cap);
        let mask = storage(g, "mask", cap);
        let x = storage(g, "x", cap * h);
        let x2 = storage(g, "x2", cap * h);
        let tmp = storage(g, "tmp", cap * h);
        let ctx = storage(g, "ctx", cap * h);
        let qkv = storage(g, "qkv", cap * 3 * h);
        let inter = storage(g, "inter", cap * i);
        let pooled = storage(g, "pooled", cap * h);
        let staging = readback(g, cap * h);
        let slot = (g.device.limits().min_uniform_buffer_offset_alignment as u64).max(32);
        let n_steps = 2 + 7 * self.layers.len();
        let params = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: slot * n_steps as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let k = &self.kernels;
        let mut steps: Vec<(Step, Launch)> = Vec::with_capacity(n_steps);
        fn push<'a>(
            g: &Gpu,
            steps: &mut Vec<(Step, Launch)>,
            params: &'a wgpu::Buffer,
            slot: u64,
            pipeline: &wgpu::ComputePipeline,
            mut entries: Vec<(u32, BufRange<'a>)>,
            launch: Launch,
        ) {
            let at = steps.len() as u64 * slot;
            entries.push((0, (params, at, Some(32))));
            steps.push((Step::new(g, pipeline, &entries, [1, 1, 1]), launch));
        }
        let mut add =
            |pipeline: &wgpu::ComputePipeline, entries: Vec<(u32, BufRange<'_>)>, launch: Launch| push(g, &mut steps, &params, slot, pipeline, entries, launch);
        let eps = self.cfg.layer_norm_eps as f32;
        let (embed, mut entries) = match &self.word {
            GpuMatrix::F32 { w, .. } => (&k.embed_f32, vec![(2, all(w))]),
            GpuMatrix::Q8 { packed, scales, .. } => (&k.embed_q8, vec![(3, all(packed)), (4, all(scales))]),
        };
        entries.extend([(1, all(&ids)), (5, all(&self.pos)), (6, all(&self.typ)), (7, all(&self.emb_ln)), (8, all(&x))]);
        add(embed, entries, Launch::Embed { hidden: h, h4: h.div_ceil(4), eps });
        for layer in &self.layers {
            {
                let (pipeline, mut e) = matmul_bindings(k, &layer.qkv.w);
                e.extend([(1, all(&x)), (5, all(&layer.qkv.b)), (6, all(&qkv))]);
                add(pipeline, e, Launch::Matmul { n: 3 * h, k: h, gelu: false, act_max: layer.qkv.w.act_max() });
            }
            add(&k.attention, vec![(1, all(&qkv)), (2, all(&mask)), (3, all(&ctx))], Launch::Attention { hidden: h, heads: self.cfg.heads });
            {
                let (pipeline, mut e) = matmul_bindings(k, &layer.o.w);
                e.extend([(1, all(&ctx)), (5, all(&layer.o.b)), (6, all(&tmp))]);
                add(pipeline, e, Launch::Matmul { n: h, k: h, gelu: false, act_max: layer.o.w.act_max() });
            }
            add(&k.add_layer_norm, vec![(1, all(&tmp)), (2, all(&x)), (3, all(&layer.ln1)), (4, all(&x2))], Launch::LayerNorm { n: h, eps });
            {
                let (pipeline, mut e) = matmul_bindings(k, &layer.ff1.w);
                e.extend([(1, all(&x2)), (5, all(&layer.ff1.b)), (6, all(&inter))]);
                add(pipeline, e, Launch::Matmul { n: i, k: h, gelu: true, act_max: layer.ff1.w.act_max() });
            }
            {
                let (pipeline, mut e) = matmul_bindings(k, &layer.ff2.w);
                e.extend([(1, all(&inter)), (5, all(&layer.ff2.b)), (6, all(&tmp))]);
                add(pipeline, e, Launch::Matmul { n: h, k: i, gelu: false, act_max: layer.ff2.w.act_max() });
            }
            add(&k.add_layer_norm, vec![(1, all(&tmp)), (2, all(&x2)), (3, all(&layer.ln2)), (4, all(&x))], Launch::LayerNorm { n: h, eps });
        }
        add(&k.mean_pool, vec![(1, all(&x)), (2, all(&mask)), (3, all(&pooled))], Launch::Pool { hidden: h });
        Workspace { cap, ids, mask, pooled, staging, params, slot, steps, _acts: vec![x, x2, tmp, ctx, qkv, inter] }
    }
}

/// The GPU behind the CPU encoders' trait, natively (blocking on the queue), so that a
/// `Classifier` can run on it (`Classifier::use_encoder`, after the probe). In the browser the
/// forward is async and the bundle exports [`GpuEncoder::embed`] itself.
#[cfg(not(target_arch = "wasm32"))]
impl shelfwise_model::TitleEncoder for GpuEncoder {
    fn embed(&self, encodings: &[Encoding]) -> shelfwise_model::Result<Vec<f32>> {
        Ok(self.embed_blocking(encodings)?)
    }

    fn hidden(&self) -> usize {
        self.cfg.hidden
    }

    fn name(&self) -> String {
        format!("gpu: {}", self.gpu.describe())
    }
}
