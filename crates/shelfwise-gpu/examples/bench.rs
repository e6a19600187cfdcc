//! Throughput of the GPU encoder against the CPU (candle) encoder on the fixture titles, batches
//! of 1, 8 and 64:
//!
//!     cargo run --release -p shelfwise-gpu --example bench [-- MODEL.shelfwise] [--int8]
//!
//! MODEL defaults to the shipped model. `--int8` quantizes it in memory first (int8 per row, the
//! GPU keeping the weights int8). On lavapipe (Mesa's CPU Vulkan driver) the GPU numbers say only
//! that it runs, nothing about speed.

use std::time::{Duration, Instant};

use shelfwise_gpu::GpuEncoder;
use shelfwise_model::classifier::load_tensors;
use shelfwise_model::TitleEncoder;

use shelfwise_model::format::ModelFile;
use shelfwise_model::tokenize::{Encoding, TitleTokenizer};

fn rate(mut run: impl FnMut(), titles: usize) -> (f64, usize) {
    run(); // warm-up (pipeline creation, workspace growth)
    let (start, mut iters) = (Instant::now(), 0);
    while iters < 3 || (start.elapsed() < Duration::from_secs(2) && iters < 200) {
        run();
        iters += 1;
    }
    (titles as f64 * iters as f64 / start.elapsed().as_secs_f64(), iters)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let int8 = args.iter().any(|a| a == "--int8");
    let path = args.iter().find(|a| !a.starts_with("--")).map(Into::into).unwrap_or_else(|| root.join("models/flipkart-minilm/model.f32.shelfwise"));
    let mut file = ModelFile::from_bytes(&std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?)?;
    if int8 {
        file = shelfwise_model::quant::quantize_int8(file)?;
    }
    let cfg = file.manifest.encoder.clone();
    let tensors = load_tensors(&file.tensors)?;
    let tok = TitleTokenizer::from_bytes(&file.tokenizer, cfg.max_tokens)?;
    let titles = std::fs::read_to_string(root.join("tests/fixtures/titles.txt"))?;
    let encodings: Vec<Encoding> = titles.lines().filter(|l| !l.trim().is_empty()).map(|t| tok.encode(t)).collect::<Result<_, _>>()?;

    let gpu = match GpuEncoder::new(&cfg, &tensors) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("no GPU encoder: {e} [{}]; CPU numbers only", e.code());
            None
        }
    };
    let cpu = shelfwise_model::encoder::from_tensors(&cfg, &tensors)?;
    println!("model {} ({}), {} fixture titles", path.display(), if int8 { "int8" } else { "as stored" }, encodings.len());
    if let Some(g) = &gpu {
        println!("GPU: {} (weights {})", g.gpu().describe(), if g.is_int8() { "int8" } else { "f32" });
    }
    println!("{:>6} {:>14} {:>14}", "batch", "GPU titles/s", "CPU titles/s");
    for batch in [1usize, 8, 64] {
        let batch_enc: Vec<Encoding> = encodings.iter().cycle().take(batch).cloned().collect();
        let (c, _) = rate(|| drop(cpu.embed(&batch_enc).unwrap()), batch);
        let g = gpu.as_ref().map(|g| rate(|| drop(g.embed_blocking(&batch_enc).unwrap()), batch).0);
        println!("{batch:>6} {:>14} {c:>14.1}", g.map_or("-".to_string(), |g| format!("{g:.1}")));
    }
    Ok(())
}
