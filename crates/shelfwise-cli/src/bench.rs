//! `shelfwise bench`: what a model costs on this machine, several models side by side in one run
//! (compare them as ratios: absolute times move with the machine and its load).
//!
//! Per model: file size, load time (bytes → verified, ready classifier), one title at a time on
//! one thread (what the browser's worker does on a keystroke), every prefix of a few titles as
//! typed character by character, a catalogue's throughput on all cores, and resident memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use crate::backend::{Backend, Engine, GPU_BATCH};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Models to measure, in this order; the first is the reference of the ratios. Repeat the flag.
    #[arg(long = "model", default_values_os_t = vec![crate::default_model()])]
    pub models: Vec<PathBuf>,
    /// Where the encoder runs; repeat for several (each model is timed on each backend).
    #[arg(long = "backend", value_enum, default_values_t = vec![Backend::Cpu])]
    pub backends: Vec<Backend>,
    /// Titles: a CSV (by --text-col) or a text file with one title a line. Defaults to the
    /// checkout's tests/fixtures/titles.txt.
    #[arg(long, default_value_os_t = crate::repo_root().join("tests/fixtures/titles.txt"))]
    pub data: PathBuf,
    #[arg(long, default_value = "title")]
    pub text_col: String,
    /// At most this many titles (spread evenly over the file).
    #[arg(long, default_value_t = 500, value_parser = crate::args::count(1, crate::args::MAX_COUNT))]
    pub titles: usize,
    /// Titles typed character by character (every prefix classified, as a listing form does).
    #[arg(long, default_value_t = 10, value_parser = crate::args::count(0, crate::args::MAX_COUNT))]
    pub typed: usize,
    /// Untimed calls before timing each model (caches, allocator, branch predictors).
    #[arg(long, default_value_t = 20, value_parser = crate::args::count(0, crate::args::MAX_COUNT))]
    pub warmup: usize,
    /// Times each model is loaded (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = crate::args::count(1, 1000))]
    pub loads: usize,
    /// Also write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Milliseconds: median, 95th and 99th percentile, mean, of `n` timed calls.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct Latency {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Latency {
    /// Nearest-rank percentiles of the samples (ms).
    fn of(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let rank = |q: f64| ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Latency { n, p50: rank(0.50), p95: rank(0.95), p99: rank(0.99), mean: ms.iter().sum::<f64>() / n as f64 }
    }
}

#[derive(Serialize, Debug)]
pub struct ModelBench {
    pub model: String,
    /// "cpu", or "gpu: <adapter>".
    pub backend: String,
    pub file_bytes: u64,
    /// The manifest's quantization scheme, `"f32"` when there is none.
    pub scheme: String,
    /// Bytes to a verified classifier (and, on the GPU, its weights uploaded).
    pub load_ms: f64,
    /// Word pieces the encoder reads, mean over the titles.
    pub tokens_mean: f64,
    /// One whole title a call, one thread.
    pub title_ms: Latency,
    /// Every character prefix of the first `--typed` titles, one a call, one thread.
    pub keystroke_ms: Latency,
    /// Titles a second over the whole set: batches of 32 on all cores, or of 64 on the GPU.
    pub batch_titles_per_s: f64,
    /// Resident memory added by loading the model and running it, the file's bytes not counted
    /// (Linux; null elsewhere).
    pub rss_bytes: Option<u64>,
    /// This model's p50s and throughput over the first model's.
    pub title_p50_ratio: f64,
    pub keystroke_p50_ratio: f64,
    pub throughput_ratio: f64,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub data: String,
    pub titles: usize,
    pub threads_batch: usize,
    pub cpu: String,
    pub results: Vec<ModelBench>,
}

/// The titles to time: a CSV's `text_col`, or one a line; blanks dropped, at most `max` spread evenly.
fn read_titles(path: &Path, text_col: &str, max: usize) -> Result<Vec<String>> {
    let all: Vec<String> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        let (table, ti) = crate::data::read_titles(path, text_col)?;
        table.texts(ti).map(|t| t.trim().to_string()).collect()
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?.lines().map(|t| t.trim().to_string()).collect()
    };
    let all: Vec<String> = all.into_iter().filter(|t| !t.is_empty()).collect();
    if all.is_empty() {
        bail!("{}: no titles to time", path.display());
    }
    let (n, k) = (all.len(), max.clamp(1, all.len()));
    Ok((0..k).map(|i| all[i * n / k].clone()).collect())
}

/// Every prefix of `title` ending at a character boundary, as a seller types it.
fn keystrokes(title: &str) -> impl Iterator<Item = &str> {
    title.char_indices().skip(1).map(|(i, _)| &title[..i]).chain(std::iter::once(title))
}

/// Resident set size of this process (bytes), from /proc on Linux.
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|n| n.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn time_each<'a>(engine: &Engine, titles: impl Iterator<Item = &'a str>) -> Result<Latency> {
    let mut ms = Vec::new();
    for t in titles {
        let start = Instant::now();
        std::hint::black_box(engine.suggest(t, 5, 0.5)?);
        ms.push(ms_since(start));
    }
    Ok(Latency::of(ms))
}

fn bench_one(path: &Path, backend: Backend, titles: &[String], a: &BenchArgs, one_thread: &rayon::ThreadPool) -> Result<ModelBench> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    let rss_before = rss();
    let mut loads = Vec::new();
    let mut engine = None;
    for _ in 0..a.loads.max(1) {
        drop(engine.take());
        let start = Instant::now();
        engine = Some(Engine::load(&bytes, backend)?);
        loads.push(ms_since(start));
    }
    let engine = engine.expect("loaded at least once");
    if let Some(why) = &engine.fallback {
        eprintln!("note: on the CPU ({why})");
    }
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();

    // One thread, as in the browser: candle's f32 matmuls would otherwise spread over every core.
    let (title_ms, keystroke_ms) = one_thread.install(|| -> Result<_> {
        for t in refs.iter().cycle().take(a.warmup) {
            engine.suggest(t, 5, 0.5)?;
        }
        let title_ms = time_each(&engine, refs.iter().copied())?;
        let keystroke_ms = time_each(&engine, refs.iter().take(a.typed.max(1)).flat_map(|t| keystrokes(t)))?;
        Ok((title_ms, keystroke_ms))
    })?;

    let start = Instant::now();
    let run = |c: &[&str]| engine.suggest_many(c, 5, 0.5).map(|d| drop(std::hint::black_box(d)));
    match engine.on_gpu() {
        true => refs.chunks(GPU_BATCH).try_for_each(run)?,
        false => refs.par_chunks(32).try_for_each(run)?,
    }
    let batch_titles_per_s = refs.len() as f64 / start.elapsed().as_secs_f64();

    let mut tokens = 0usize;
    for t in &refs {
        tokens += engine.clf.encode(t)?.ids.len();
    }
    let rss_bytes = rss().zip(rss_before).map(|(after, before)| after.saturating_sub(before));
    Ok(ModelBench {
        model: path.display().to_string(),
        backend: engine.describe(),
        file_bytes: bytes.len() as u64,
        scheme: engine.clf.manifest().quantization.as_ref().map_or_else(|| "f32".to_string(), |q| q.scheme.clone()),
        load_ms: Latency::of(loads).p50,
        tokens_mean: tokens as f64 / refs.len() as f64,
        title_ms,
        keystroke_ms,
        batch_titles_per_s,
        rss_bytes,
        title_p50_ratio: 1.0,
        keystroke_p50_ratio: 1.0,
        throughput_ratio: 1.0,
    })
}

pub fn run(a: BenchArgs) -> Result<()> {
    let titles = read_titles(&a.data, &a.text_col, a.titles)?;
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut results = Vec::new();
    for m in &a.models {
        for &backend in &a.backends {
            eprintln!("timing {} ({backend:?}) on {} titles ...", m.display(), titles.len());
            results.push(bench_one(m, backend, &titles, &a, &one_thread)?);
        }
    }
    let (t0, k0, b0) = (results[0].title_ms.p50, results[0].keystroke_ms.p50, results[0].batch_titles_per_s);
    for r in &mut results {
        r.title_p50_ratio = r.title_ms.p50 / t0;
        r.keystroke_p50_ratio = r.keystroke_ms.p50 / k0;
        r.throughput_ratio = r.batch_titles_per_s / b0;
    }
    let data = std::fs::canonicalize(&a.data).unwrap_or_else(|_| a.data.clone());
    let report = BenchReport { data: data.display().to_string(), titles: titles.len(), threads_batch: rayon::current_num_threads(), cpu: cpu_name(), results };
    print_table(&report);
    if let Some(out) = &a.json {
        std::fs::write(out, serde_json::to_string_pretty(&report)?).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    println!("{} titles from {} · {} · batch on {} threads", r.titles, r.data, r.cpu, r.threads_batch);
    println!(
        "{:<32} {:>4} {:>6} {:>8} {:>8} {:>18} {:>18} {:>10} {:>7} {:>6}",
        "model", "on", "scheme", "size MB", "load ms", "title p50/p95 ms", "keystroke p50/p95", "titles/s", "RSS MB", "ratio"
    );
    for m in &r.results {
        let name = Path::new(&m.model).file_name().map_or_else(|| m.model.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{:<32} {:>4} {:>6} {:>8.2} {:>8.1} {:>18} {:>18} {:>10.1} {:>7} {:>6.2}",
            name,
            &m.backend[..3],
            m.scheme.split('-').next().unwrap_or(&m.scheme),
            m.file_bytes as f64 / 1e6,
            m.load_ms,
            format!("{:.2} / {:.2}", m.title_ms.p50, m.title_ms.p95),
            format!("{:.2} / {:.2}", m.keystroke_ms.p50, m.keystroke_ms.p95),
            m.batch_titles_per_s,
            m.rss_bytes.map_or_else(|| "-".to_string(), |b| format!("{:.0}", b as f64 / 1e6)),
            m.title_p50_ratio,
        );
    }
    for m in r.results.iter().filter(|m| m.backend != "cpu") {
        println!("{}", m.backend);
    }
    println!("ratio: title p50 over the first row's (mean {:.1} word pieces a title)", r.results[0].tokens_mean);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.n, l.p50, l.p95, l.p99, l.mean), (100, 50.0, 95.0, 99.0, 50.5));
        let one = Latency::of(vec![3.0]);
        assert_eq!((one.p50, one.p99), (3.0, 3.0));
    }

    #[test]
    fn keystrokes_are_every_char_prefix() {
        assert_eq!(keystrokes("añb").collect::<Vec<_>>(), vec!["a", "añ", "añb"]);
        assert_eq!(keystrokes("x").collect::<Vec<_>>(), vec!["x"]);
    }
}
