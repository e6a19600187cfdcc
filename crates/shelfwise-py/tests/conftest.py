"""Shared fixtures: the repository's files, the CLI binary, and one loaded classifier a session."""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "models" / "flipkart-minilm" / "model.shelfwise"
GOLDEN = ROOT / "tests" / "golden" / "flipkart-minilm.json"
SHOP_DEV = ROOT / "tests" / "fixtures" / "shop_dev.csv"
# The project reads its datasets from ../shared/data beside the repository (never committed).
FLIPKART_DEV = ROOT.parent / "shared" / "data" / "flipkart" / "dev.csv"
MYNTRA = ROOT.parent / "shared" / "data" / "myntra" / "products.csv"
CLI = Path(os.environ.get("SHELFWISE_CLI", ROOT / "target" / "release" / "shelfwise"))


@pytest.fixture(scope="session")
def clf():
    import shelfwise

    return shelfwise.Classifier()


@pytest.fixture(scope="session")
def golden():
    return json.loads(GOLDEN.read_text())


def fixture_titles():
    """The fixture catalogue: the golden titles (shipped model's recorded outputs) and the shop's dev titles."""
    titles = [item["title"] for item in json.loads(GOLDEN.read_text())["items"]]
    with open(SHOP_DEV, newline="") as f:
        titles += [row["title"] for row in csv.DictReader(f)]
    return titles


def cli_batch(titles, tmp_path, k=5, threshold=0.5):
    """`shelfwise classify --batch` on these titles: its output rows, in order."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title"])
        w.writerows([i, t] for i, t in enumerate(titles))
    subprocess.run(
        [str(CLI), "classify", "--model", str(SHIPPED), "-k", str(k), "--threshold", str(threshold), "--batch", str(src), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_rows(got, want, tol=1e-5):
    """Rows of classify's table (dicts) equal up to `tol` on scores: other batch boundaries pad the
    encoder's batches differently, which may move scores by rounding, never the paths."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for name in ("path", "abstained", "back_off_path", "error"):
            assert g[name] == w[name], (name, g, w)
        assert (g["score"] is None) == (w["score"] is None)
        if w["score"] is not None:
            assert abs(g["score"] - w["score"]) <= tol
        assert [t["path"] for t in g["top_k"]] == [t["path"] for t in w["top_k"]]
        assert all(abs(a["score"] - b["score"]) <= tol for a, b in zip(g["top_k"], w["top_k"]))
