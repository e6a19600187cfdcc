"""Classify a catalogue with Spark's mapInArrow: one model a Python worker, loaded on its first
batch and reused for the rest (Spark reuses its Python workers by default).

    python examples/spark_catalogue.py titles.csv out_dir [--master local[2]]

On a cluster: install the shelfwise wheel on every executor (it carries the shipped model; or ship a
venv/conda pack with `--archives`); a model of your own goes with `--files model.shelfwise` (read it
via `SparkFiles.get`) or a path on shared storage. Each executor core runs one Python worker, so
keep `threads=1` and let Spark's cores (spark.executor.cores) be the parallelism.
"""

import argparse

import pyarrow as pa

import shelfwise

_CLF = {}


def out_schema():
    """The rows mapInArrow returns: the input's `id` and `title`, then the classify columns."""
    from pyspark.sql.types import ArrayType, BooleanType, FloatType, StringType, StructField, StructType

    top = StructType([StructField("path", StringType()), StructField("score", FloatType())])
    return StructType(
        [
            StructField("id", StringType()),
            StructField("title", StringType()),
            StructField("path", StringType()),
            StructField("score", FloatType()),
            StructField("abstained", BooleanType()),
            StructField("back_off_path", StringType()),
            StructField("top_k", ArrayType(top)),
            StructField("error", StringType()),
        ]
    )


def classify_batches(batches, model_path=None, threads=1):
    """mapInArrow's function: record batches with `id` and `title` in, classified batches out."""
    clf = _CLF.get(model_path)
    if clf is None:
        clf = _CLF[model_path] = shelfwise.Classifier(model_path)
    for batch in batches:
        out = clf.classify(batch.column("title"), threads=threads)
        table = pa.table({"id": batch.column("id").cast(pa.string()), "title": batch.column("title")})
        for name in out.column_names:
            table = table.append_column(name, out.column(name))
        yield from table.to_batches()


def classify(df, model_path=None, threads=1):
    """The DataFrame `df` (columns `id`, `title`) with the classify columns."""
    return df.select("id", "title").mapInArrow(lambda it: classify_batches(it, model_path, threads), out_schema())


def main():
    from pyspark.sql import SparkSession

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("titles_csv")
    p.add_argument("out_dir")
    p.add_argument("--master", default="local[2]")
    a = p.parse_args()
    spark = SparkSession.builder.master(a.master).appName("shelfwise").getOrCreate()
    df = spark.read.option("header", True).csv(a.titles_csv)
    classify(df).write.mode("overwrite").parquet(a.out_dir)
    spark.stop()


if __name__ == "__main__":
    main()
