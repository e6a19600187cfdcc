//! Criterion bench of the quantized linear layer at MiniLM shapes (tokens × 384 → 384 / 1536),
//! against the same product in plain f32 loops, and (x86-64) the product alone on every path the
//! CPU has. `cargo bench -p shelfwise-kernels`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shelfwise_kernels::{linear, padded, QMatrix, BLOCK};

fn f32_linear(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = x[i * k..(i + 1) * k].iter().zip(&w[j * k..(j + 1) * k]).map(|(a, b)| a * b).sum();
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("linear/{}", shelfwise_kernels::implementation()));
    for &(m, n, k) in &[(16usize, 384usize, 384usize), (16, 1536, 384), (16, 384, 1536), (64, 1536, 384)] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
        let codes: Vec<i8> = wf.iter().map(|v| (v * 1270.0).round().clamp(-127.0, 127.0) as i8).collect();
        let w = QMatrix::from_block_scaled(n, k, &codes, &vec![1.0 / 1270.0; n * padded(k) / BLOCK]).unwrap();
        g.throughput(Throughput::Elements((m * n * k) as u64));
        let id = format!("{m}x{n}x{k}");
        g.bench_with_input(BenchmarkId::new("int8", &id), &(), |b, _| b.iter(|| linear(black_box(&x), m, &w, None).unwrap()));
        g.bench_with_input(BenchmarkId::new("f32-loop", &id), &(), |b, _| b.iter(|| f32_linear(black_box(&x), m, &wf, n, k)));
        // Every x86-64 path this CPU has, on the same quantized activations (the product alone).
        #[cfg(target_arch = "x86_64")]
        {
            let q = shelfwise_kernels::quantize_rows(&x, m, k, w.act_bits()).unwrap();
            let mut out = vec![0f32; m * n];
            for path in ["x86-64-sse2", "x86-64-avx2", "x86-64-avx-vnni", "x86-64-avx512-vnni"] {
                if shelfwise_kernels::matmul_t_x86(path, &q, &w, &mut out).unwrap() {
                    g.bench_with_input(BenchmarkId::new(path, &id), &(), |b, _| {
                        b.iter(|| shelfwise_kernels::matmul_t_x86(path, black_box(&q), &w, &mut out).unwrap())
                    });
                }
            }
        }
    }
    g.finish();
}

/// One title through MiniLM's 24 matrices (6 blocks of q, k, v, out, up, down), each read once as
/// a forward reads them: 10.6 MB of weights, more than L2 holds, so this is the streamed case
/// (the product alone, quantized activations of 13 tokens as one Flipkart title has on average).
fn bench_title(c: &mut Criterion) {
    let m = 13;
    let shapes = [(384usize, 384usize), (384, 384), (384, 384), (384, 384), (1536, 384), (384, 1536)];
    let mats: Vec<QMatrix> = (0..6)
        .flat_map(|l| shapes.iter().enumerate().map(move |(s, &(n, k))| (l, s, n, k)))
        .map(|(l, s, n, k)| {
            let codes: Vec<i8> = (0..n * k).map(|i| ((i * 104729 + l * 7 + s) % 15) as i8 - 7).collect();
            QMatrix::from_block_scaled(n, k, &codes, &vec![1.0 / 1270.0; n * padded(k) / BLOCK]).unwrap()
        })
        .collect();
    let acts = |k: usize| {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        shelfwise_kernels::quantize_rows(&x, m, k, mats[0].act_bits()).unwrap()
    };
    let (q384, q1536) = (acts(384), acts(1536));
    let mut g = c.benchmark_group(format!("title/{}", shelfwise_kernels::implementation()));
    g.throughput(Throughput::Elements((m * mats.iter().map(|w| w.rows() * w.cols()).sum::<usize>()) as u64));
    g.bench_function("13 tokens x 24 matrices", |b| {
        b.iter(|| {
            for w in &mats {
                let mut out = vec![0f32; m * w.rows()];
                shelfwise_kernels::matmul_t(if w.cols() == 384 { &q384 } else { &q1536 }, w, None, &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_title);
criterion_main!(benches);
