//! Kernel launches: the parameters and workgroup counts of each kernel for a (batch, seq) shape,
//! shared by the encoder, and [`Ops`], one-shot runs of single kernels on host data (what the
//! kernel tests compare with the CPU references in `shelfwise_kernels::reference`).

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::kernels::{all, f, groups_1d, matmul_groups, readback, storage_init, uniform, Kernels, Params, Step, MAX_HEAD_DIM, MAX_ROW, MAX_SEQ};
use crate::weights::{GpuMatrix, HostMatrix};
use shelfwise_model::quant::BLOCK;

/// One kernel launch, described independently of the batch shape.
#[derive(Debug, Clone, Copy)]
pub enum Launch {
    /// Embedding gather + LayerNorm over `batch * seq` tokens.
    Embed { hidden: usize, h4: usize, eps: f32 },
    /// `[batch * seq, k] · [n, k]ᵀ + b`, then GELU if `gelu`; `act_max`: the weight's
    /// [`GpuMatrix::act_max`].
    Matmul { n: usize, k: usize, gelu: bool, act_max: u32 },
    /// Fused attention, one workgroup per (token, head).
    Attention { hidden: usize, heads: usize },
    /// (Add +) LayerNorm of `batch * seq` rows of `n`.
    LayerNorm { n: usize, eps: f32 },
    /// GELU of `batch * seq * width` values.
    Gelu { width: usize },
    /// Masked mean over `seq`, one invocation per (sequence, column).
    Pool { hidden: usize },
}

impl Launch {
    /// The kernel's uniform words and workgroup counts for `batch` sequences of `seq` tokens.
    pub fn shape(&self, batch: usize, seq: usize) -> (Params, [u32; 3]) {
        let rows = (batch * seq) as u32;
        let u = |x: usize| x as u32;
        match *self {
            Launch::Embed { hidden, h4, eps } => ([rows, u(seq), u(hidden), u(h4), f(eps), u(hidden.div_ceil(BLOCK)), 0, 0], groups_1d(rows)),
            Launch::Matmul { n, k, gelu, act_max } => {
                ([rows, u(n), u(k), u(k.div_ceil(4)), gelu as u32, u(k.div_ceil(BLOCK)), act_max, 0], matmul_groups(rows as usize, n))
            }
            Launch::Attention { hidden, heads } => {
                let hd = hidden / heads;
                ([u(batch), u(seq), u(hidden), u(heads), u(hd), f(1.0 / (hd as f32).sqrt()), 0, 0], [rows.max(1), u(heads), 1])
            }
            Launch::LayerNorm { n, eps } => ([rows, u(n), f(eps), 0, 0, 0, 0, 0], groups_1d(rows)),
            Launch::Gelu { width } => {
                let n = rows * u(width);
                ([n, 0, 0, 0, 0, 0, 0, 0], groups_1d(n.div_ceil(256)))
            }
            Launch::Pool { hidden } => ([u(batch), u(seq), u(hidden), 0, 0, 0, 0, 0], [u(hidden).div_ceil(64).max(1), u(batch).max(1), 1]),
        }
    }
}

/// The matmul pipeline and bindings for a weight: `(pipeline, weight bindings)`.
pub fn matmul_bindings<'a>(k: &'a Kernels, w: &'a GpuMatrix) -> (&'a wgpu::ComputePipeline, Vec<(u32, crate::kernels::BufRange<'a>)>) {
    match w {
        GpuMatrix::F32 { w, .. } => (&k.matmul_f32, vec![(2, all(w))]),
        GpuMatrix::Q8 { packed, scales, .. } => (&k.matmul_q8, vec![(3, all(packed)), (4, all(scales))]),
    }
}

/// Single kernels on host data, for tests and debugging: uploads, runs one launch, reads back.
pub struct Ops {
    pub gpu: Gpu,
    pub kernels: Kernels,
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(GpuError::Gpu(format!("{what}: {got} values, expected {want}")));
    }
    Ok(())
}

impl Ops {
    pub fn new(gpu: Gpu) -> Self {
        let kernels = Kernels::new(&gpu);
        Self { gpu, kernels }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        Ok(Self::new(Gpu::new_blocking()?))
    }

    async fn run(
        &self,
        pipeline: &wgpu::ComputePipeline,
        launch: Launch,
        batch: usize,
        seq: usize,
        mut entries: Vec<(u32, crate::kernels::BufRange<'_>)>,
        out_words: usize,
    ) -> Result<Vec<f32>> {
        self.gpu.check()?;
        let (params, groups) = launch.shape(batch, seq);
        let pbuf = uniform(&self.gpu, &params);
        let out = crate::kernels::storage(&self.gpu, "out", out_words);
        let read = readback(&self.gpu, out_words);
        entries.push((0, all(&pbuf)));
        let out_binding = match launch {
            Launch::Matmul { .. } => 6,
            Launch::Embed { .. } => 8,
            Launch::LayerNorm { .. } => 4,
            Launch::Gelu { .. } => 2,
            Launch::Attention { .. } | Launch::Pool { .. } => 3,
        };
        entries.push((out_binding, all(&out)));
        let step = Step::new(&self.gpu, pipeline, &entries, groups);
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            step.record(&mut pass);
        }
        enc.copy_buffer_to_buffer(&out, 0, &read, 0, (out_words.max(1) * 4) as u64);
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.read_f32(&read, out_words).await
    }

    /// `x [m, k] · Wᵀ + bias`, then GELU if `gelu`; W `[n, k]` f32 or int8.
    pub async fn matmul(&self, x: &[f32], m: usize, w: &HostMatrix, bias: &[f32], gelu: bool) -> Result<Vec<f32>> {
        let (n, k) = (w.rows(), w.cols());
        check_len("x", x.len(), m * k)?;
        check_len("bias", bias.len(), n)?;
        let gw = w.upload(&self.gpu, "w");
        let xb = storage_init(&self.gpu, "x", x);
        let bb = storage_init(&self.gpu, "bias", bias);
        let (pipeline, mut entries) = matmul_bindings(&self.kernels, &gw);
        entries.extend([(1, all(&xb)), (5, all(&bb))]);
        self.run(pipeline, Launch::Matmul { n, k, gelu, act_max: gw.act_max() }, 1, m, entries, m * n).await
    }

    /// LayerNorm of `rows` rows of `n` (of `a + res` when `res` is given).
    #[allow(clippy::too_many_arguments)]
    pub async fn layer_norm(&self, a: &[f32], res: Option<&[f32]>, gamma: &[f32], beta: &[f32], rows: usize, n: usize, eps: f32) -> Result<Vec<f32>> {
        if n > MAX_ROW {
            return Err(GpuError::Gpu(format!("layer norm over {n} > {MAX_ROW} columns")));
        }
        check_len("a", a.len(), rows * n)?;
        let ab = storage_init(&self.gpu, "a", a);
        let ln: Vec<f32> = gamma.iter().chain(beta).copied().collect();
        check_len("gamma+beta", ln.len(), 2 * n)?;
        let lnb = storage_init(&self.gpu, "ln", &ln);
        let rb = res.map(|r| storage_init(&self.gpu, "res", r));
        let mut entries = vec![(1, all(&ab)), (3, all(&lnb))];
        let pipeline = match &rb {
            Some(rb) => {
                check_len("res", res.unwrap_or_default().len(), rows * n)?;
                entries.push((2, all(rb)));
                &self.kernels.add_layer_norm
            }
            None => &self.kernels.layer_norm,
        };
        self.run(pipeline, Launch::LayerNorm { n, eps }, 1, rows, entries, rows * n).await
    }

    pub async fn gelu(&self, x: &[f32]) -> Result<Vec<f32>> {
        let xb = storage_init(&self.gpu, "x", x);
        self.run(&self.kernels.gelu, Launch::Gelu { width: 1 }, 1, x.len(), vec![(1, all(&xb))], x.len()).await
    }

    /// Attention over `qkv [batch * seq, 3 * hidden]` with a `[batch * seq]` 0/1 mask; returns
    /// `ctx [batch * seq, hidden]`.
    pub async fn attention(&self, qkv: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize, heads: usize) -> Result<Vec<f32>> {
        if seq > MAX_SEQ || !hidden.is_multiple_of(heads) || hidden / heads > MAX_HEAD_DIM {
            return Err(GpuError::Gpu(format!("attention shape seq {seq}, hidden {hidden}, heads {heads} unsupported")));
        }
        check_len("qkv", qkv.len(), batch * seq * 3 * hidden)?;
        check_len("mask", mask.len(), batch * seq)?;
        let qb = storage_init(&self.gpu, "qkv", qkv);
        let mb = storage_init(&self.gpu, "mask", mask);
        self.run(&self.kernels.attention, Launch::Attention { hidden, heads }, batch, seq, vec![(1, all(&qb)), (2, all(&mb))], batch * seq * hidden).await
    }

    /// Embeddings + LayerNorm of `ids` (already mapped to word-table rows), `ids.len() / seq`
    /// sequences of `seq`.
    #[allow(clippy::too_many_arguments)]
    pub async fn embed(&self, ids: &[u32], seq: usize, word: &HostMatrix, pos: &[f32], typ: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Result<Vec<f32>> {
        let hidden = word.cols();
        if hidden > MAX_ROW
            || !ids.len().is_multiple_of(seq.max(1))
            || ids.iter().any(|&i| i as usize >= word.rows())
            || pos.len() < seq * hidden
            || typ.len() < hidden
        {
            return Err(GpuError::Gpu("embed: inconsistent shapes or ids".into()));
        }
        let gw = word.upload(&self.gpu, "word");
        let ib = storage_init(&self.gpu, "ids", ids);
        let pb = storage_init(&self.gpu, "pos", pos);
        let tb = storage_init(&self.gpu, "typ", typ);
        let ln: Vec<f32> = gamma.iter().chain(beta).copied().collect();
        let lnb = storage_init(&self.gpu, "ln", &ln);
        let mut entries = vec![(1, all(&ib)), (5, all(&pb)), (6, all(&tb)), (7, all(&lnb))];
        let pipeline = match &gw {
            GpuMatrix::F32 { w, .. } => {
                entries.push((2, all(w)));
                &self.kernels.embed_f32
            }
            GpuMatrix::Q8 { packed, scales, .. } => {
                entries.extend([(3, all(packed)), (4, all(scales))]);
                &self.kernels.embed_q8
            }
        };
        let batch = ids.len() / seq.max(1);
        let launch = Launch::Embed { hidden, h4: hidden.div_ceil(4), eps };
        self.run(pipeline, launch, batch, seq, entries, ids.len() * hidden).await
    }

    /// Masked mean of `x [batch, seq, hidden]` over seq.
    pub async fn mean_pool(&self, x: &[f32], mask: &[u32], batch: usize, seq: usize, hidden: usize) -> Result<Vec<f32>> {
        check_len("x", x.len(), batch * seq * hidden)?;
        check_len("mask", mask.len(), batch * seq)?;
        let xb = storage_init(&self.gpu, "x", x);
        let mb = storage_init(&self.gpu, "mask", mask);
        self.run(&self.kernels.mean_pool, Launch::Pool { hidden }, batch, seq, vec![(1, all(&xb)), (2, all(&mb))], batch * hidden).await
    }
}
