//! Does the WebGPU path decide like the CPU (wasm) path? For every title of a CSV (column `title`):
//! the CPU `Classifier::suggest` against the GPU path the browser's `'webgpu'` backend takes (token
//! ids from `Classifier::encode`, pooled embeddings from `GpuEncoder::embed` in batches of 64, the
//! decision from `Classifier::suggest_with_embedding`). Prints top-1 / top-5 agreement and the
//! largest score difference; exits 1 if top-1 agreement is under 99.9 % (issue #6's bar).
//!
//!     cargo run --release -p shelfwise-gpu --example agreement [-- MODEL.shelfwise [TITLES.csv [N]]]
//!
//! Defaults: the shipped model, ../shared/data/flipkart/dev.csv (else tests/fixtures/titles.txt,
//! one title a line), every title (N: the first N only; lavapipe takes a few seconds a batch).

use std::time::Instant;

use shelfwise_gpu::GpuEncoder;
use shelfwise_model::classifier::load_tensors;
use shelfwise_model::format::ModelFile;
use shelfwise_model::Classifier;

/// The fields of one CSV record (RFC 4180 quoting), and the rest of the text.
fn record(mut s: &str) -> (Vec<String>, &str) {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    while let Some(c) = s.chars().next() {
        s = &s[c.len_utf8()..];
        let f = fields.last_mut().unwrap();
        match (quoted, c) {
            (true, '"') if s.starts_with('"') => {
                f.push('"');
                s = &s[1..];
            }
            (true, '"') => quoted = false,
            (true, c) => f.push(c),
            (false, '"') => quoted = true,
            (false, ',') => fields.push(String::new()),
            (false, '\n') => return (fields, s),
            (false, '\r') => {}
            (false, c) => f.push(c),
        }
    }
    (fields, s)
}

fn titles(path: &std::path::Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "txt") {
        return Ok(text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect());
    }
    let (header, mut rest) = record(&text);
    let col = header.iter().position(|h| h == "title").ok_or("no `title` column")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (fields, r) = record(rest);
        rest = r;
        if let Some(t) = fields.get(col).filter(|t| !t.trim().is_empty()) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map(Into::into).unwrap_or_else(|| root.join("models/flipkart-minilm/model.shelfwise"));
    let csv = args.get(1).map(Into::into).unwrap_or_else(|| {
        let dev = root.join("../shared/data/flipkart/dev.csv");
        if dev.exists() {
            dev
        } else {
            root.join("tests/fixtures/titles.txt")
        }
    });
    let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
    let clf = Classifier::from_bytes(&bytes)?;
    let file = ModelFile::from_bytes(&bytes)?;
    let gpu = GpuEncoder::new(&file.manifest.encoder, &load_tensors(&file.tensors)?).map_err(|e| format!("{e} [{}]", e.code()))?;
    let mut titles = titles(&csv)?;
    if let Some(n) = args.get(2) {
        titles.truncate(n.parse()?);
    }
    println!("model {}, {} titles from {}, GPU {}", model.display(), titles.len(), csv.display(), gpu.gpu().describe());

    let h = file.manifest.encoder.hidden;
    let t0 = Instant::now();
    let mut via_gpu = Vec::with_capacity(titles.len());
    for chunk in titles.chunks(64) {
        let enc = chunk.iter().map(|t| clf.encode(t)).collect::<Result<Vec<_>, _>>()?;
        let pooled = gpu.embed_blocking(&enc).map_err(|e| format!("{e} [{}]", e.code()))?;
        for (i, t) in chunk.iter().enumerate() {
            via_gpu.push(clf.suggest_with_embedding(t, &pooled[i * h..(i + 1) * h], 5, 0.5)?);
        }
        eprint!("\rGPU: {}/{} titles, {:.0} s", via_gpu.len(), titles.len(), t0.elapsed().as_secs_f64());
    }
    let gpu_s = t0.elapsed().as_secs_f64();
    eprintln!();
    let t0 = Instant::now();
    let on_cpu = titles.iter().map(|t| clf.suggest(t, 5, 0.5)).collect::<Result<Vec<_>, _>>()?;
    let cpu_s = t0.elapsed().as_secs_f64();

    let (mut top1, mut top5, mut worst) = (0usize, 0usize, 0f32);
    for (g, c) in via_gpu.iter().zip(&on_cpu) {
        let gi: Vec<usize> = g.suggestions.iter().map(|s| s.id).collect();
        let ci: Vec<usize> = c.suggestions.iter().map(|s| s.id).collect();
        top1 += usize::from(gi.first() == ci.first());
        top5 += usize::from(gi == ci);
        for (a, b) in g.suggestions.iter().zip(&c.suggestions).filter(|(a, b)| a.id == b.id) {
            worst = worst.max((a.score - b.score).abs());
        }
    }
    let n = titles.len().max(1) as f64;
    let agree = 100.0 * top1 as f64 / n;
    println!("top-1 identical: {top1}/{} ({agree:.2} %); top-5 ids identical: {top5} ({:.2} %)", titles.len(), 100.0 * top5 as f64 / n);
    println!("max abs score difference (same id, same rank): {worst:.2e}");
    println!("time: GPU path {gpu_s:.1} s (batches of 64), CPU path {cpu_s:.1} s (one title a call)");
    if agree < 99.9 {
        return Err(format!("top-1 agreement {agree:.2} % is under 99.9 %").into());
    }
    Ok(())
}
