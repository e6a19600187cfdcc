"""Classify a catalogue with Ray Data: one model a Ray actor, loaded once, reused for every batch.

    python examples/ray_catalogue.py titles.csv out.parquet [--actors 2] [--threads 1]

On a cluster, the same code runs after `ray.init(address="auto")`: every node needs the shelfwise
wheel (which carries the shipped model; pass `runtime_env={"pip": [...]}` or bake it into the image).
A model of your own travels as a path on shared storage, or as bytes in the object store
(`ray.put`) written to a local file in `__init__`. Give each actor as many threads as the CPUs it
asks for (`num_cpus=` in map_batches, `threads=` here): the classifier uses exactly that many.
"""

import argparse
import os

import pyarrow as pa

import shelfwise

# How many times this process built a classifier: the test checks it is once an actor.
LOADS = 0


class ClassifyBatch:
    """A Ray Data callable class: `ds.map_batches(ClassifyBatch, batch_format="pyarrow", ...)`.

    Appends the classify columns to each batch (which needs a `title` column), plus `worker` (this
    process's id) so that a run can show how the work was spread."""

    def __init__(self, model_path=None, k=5, threshold=0.5, threads=1):
        global LOADS
        LOADS += 1
        self.clf = shelfwise.Classifier(model_path)
        self.k, self.threshold, self.threads = k, threshold, threads

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = self.clf.classify(batch.column("title"), k=self.k, threshold=self.threshold, threads=self.threads)
        for name in out.column_names:
            batch = batch.append_column(name, out.column(name))
        n = batch.num_rows
        batch = batch.append_column("worker", pa.array([os.getpid()] * n, pa.int64()))
        return batch.append_column("loads", pa.array([LOADS] * n, pa.int64()))


def classify(ds, actors=2, threads=1, batch_size=256, model_path=None):
    """The catalogue `ds` (a Ray Dataset with a `title` column) with the classify columns added."""
    return ds.map_batches(
        ClassifyBatch,
        fn_constructor_kwargs={"model_path": model_path, "threads": threads},
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=actors,
        num_cpus=threads,
    )


def main():
    import ray

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("titles_csv")
    p.add_argument("out_parquet")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    ray.init(num_cpus=a.actors * a.threads)
    classify(ray.data.read_csv(a.titles_csv), a.actors, a.threads).write_parquet(a.out_parquet)


if __name__ == "__main__":
    main()
