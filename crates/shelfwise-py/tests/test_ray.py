"""Ray Data (examples/ray_catalogue.py): two actors, the model loaded once an actor, the same rows
as classify in this process."""

import os
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import assert_same_rows, fixture_titles

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    sys.path.insert(0, str(EXAMPLES))
    # Actors import the example module by name: give them the folder too.
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}})
    yield ray
    ray.shutdown()


def test_ray_map_batches_two_actors(ray_local, clf):
    import ray_catalogue

    titles = fixture_titles() * 3
    table = pa.table({"id": list(range(len(titles))), "title": titles})
    # Four blocks, so that both actors get work.
    step = -(-len(titles) // 4)
    ds = ray_local.data.from_arrow([table.slice(i, step) for i in range(0, len(titles), step)])
    out = ray_catalogue.classify(ds, actors=2, threads=1, batch_size=16).to_arrow_refs()
    table = pa.concat_tables(ray_local.get(out)).sort_by("id")
    assert table.num_rows == len(titles)
    # Several batches, at most two actors, each of which built its classifier exactly once.
    assert len(set(table.column("worker").to_pylist())) <= 2
    assert set(table.column("loads").to_pylist()) == {1}
    assert table.column("title").to_pylist() == titles
    assert_same_rows(table.to_pylist(), clf.classify(titles).to_pylist())
