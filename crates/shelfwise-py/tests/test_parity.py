"""Parity with `shelfwise classify --batch` (the CLI, run as a subprocess): top-1 identical, scores
within 1e-5, on the fixture catalogue, on Flipkart's dev titles and on Myntra titles, another shop
whose titles the model never saw in training (../shared/data, when present)."""

import csv

import pytest

from conftest import CLI, FLIPKART_DEV, MYNTRA, cli_batch, fixture_titles

TOL = 1e-5  # the CLI writes scores with 6 decimals


def assert_parity(clf, titles, tmp_path, threads):
    cli = cli_batch(titles, tmp_path)
    ours = clf.classify(titles, threads=threads).to_pylist()
    assert len(cli) == len(ours) == len(titles)
    for title, c, o in zip(titles, cli, ours):
        assert (o["path"] or "") == c["predicted_path"], title
        if c["score"]:
            assert abs(o["score"] - float(c["score"])) <= TOL, title
        else:
            assert o["score"] is None
        assert str(o["abstained"]).lower() == c["abstained"], title
        assert (o["back_off_path"] or "") == c["back_off_path"], title
        cli_top = [p.rsplit("|", 1) for p in c["top_k"].split(";")] if c["top_k"] else []
        assert [t["path"] for t in o["top_k"]] == [p for p, _ in cli_top], title
        for t, (_, s) in zip(o["top_k"], cli_top):
            assert abs(t["score"] - float(s)) <= TOL, title
        assert (o["error"] or "") == c["error"], title


@pytest.fixture(autouse=True)
def need_cli():
    if not CLI.exists():
        pytest.fail(f"{CLI} not built: run scripts/setup.sh (or set SHELFWISE_CLI)")


def test_parity_on_fixture_catalogue(clf, tmp_path):
    titles = fixture_titles() + ["", "kettle " * 600]  # a blank and an over-long row
    assert_parity(clf, titles, tmp_path, threads=2)


@pytest.mark.skipif(not FLIPKART_DEV.exists(), reason="../shared/data/flipkart/dev.csv not present")
def test_parity_on_flipkart_dev(clf, tmp_path):
    with open(FLIPKART_DEV, newline="") as f:
        titles = [row["title"] for row in csv.DictReader(f)]
    assert len(titles) > 1000
    assert_parity(clf, titles, tmp_path, threads=None)


@pytest.mark.skipif(not MYNTRA.exists(), reason="../shared/data/myntra/products.csv not present")
def test_parity_on_myntra_titles(clf, tmp_path):
    with open(MYNTRA, newline="") as f:
        titles = [row["title"] for row in csv.DictReader(f)]
    titles = titles[:: len(titles) // 1000][:1000]  # 1,000 titles spread over the file
    assert_parity(clf, titles, tmp_path, threads=1)
