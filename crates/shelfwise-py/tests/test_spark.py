"""Spark local[2] with mapInArrow (examples/spark_catalogue.py): every row, the same as classify in
this process."""

import os
import sys
from pathlib import Path

import pytest

from conftest import assert_same_rows, fixture_titles

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    sys.path.insert(0, str(EXAMPLES))
    # Spark's Python workers import the example module by name.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])
    os.environ["PYSPARK_PYTHON"] = sys.executable
    s = (
        SparkSession.builder.master("local[2]")
        .appName("shelfwise-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield s
    s.stop()


def test_spark_map_in_arrow(spark, clf):
    import spark_catalogue

    titles = fixture_titles() * 3
    df = spark.createDataFrame([(str(i), t) for i, t in enumerate(titles)], "id string, title string").repartition(2)
    rows = {r["id"]: r for r in spark_catalogue.classify(df).collect()}
    assert len(rows) == len(titles)
    got = [rows[str(i)].asDict(recursive=True) for i in range(len(titles))]
    assert [r["title"] for r in got] == titles
    assert_same_rows(got, clf.classify(titles).to_pylist())
