"""The Python API against the shipped model's recorded outputs (tests/golden, written by the CLI)
and its error codes."""

import pyarrow as pa
import pytest

import shelfwise
from conftest import SHIPPED, fixture_titles


def path_of(segments):
    return " > ".join(s["name"] for s in segments)


def test_suggest_matches_golden(clf, golden):
    tol = golden["tolerance"]
    for item in golden["items"]:
        want, got = item["decision"], clf.suggest(item["title"], k=golden["k"], threshold=golden["threshold"])
        assert got["abstained"] == want["abstained"], item["title"]
        assert [s["id"] for s in got["suggestions"]] == [s["id"] for s in want["suggestions"]], item["title"]
        for g, w in zip(got["suggestions"], want["suggestions"]):
            assert g["path"] == path_of(w["path"])
            assert g["score"] == pytest.approx(w["score"], abs=tol)
            assert g["level_scores"] == pytest.approx(w["levelScores"], abs=tol)
        if want["backOff"] is None:
            assert got["back_off"] is None, item["title"]
        else:
            assert got["back_off"]["path"] == path_of(want["backOff"]["path"])
            assert got["back_off"]["score"] == pytest.approx(want["backOff"]["score"], abs=tol)


def test_classify_matches_golden(clf, golden):
    titles = [item["title"] for item in golden["items"]]
    table = clf.classify(titles, k=golden["k"], threshold=golden["threshold"], threads=2)
    assert table.schema == shelfwise.SCHEMA
    assert table.num_rows == len(titles)
    for row, item in zip(table.to_pylist(), golden["items"]):
        want = item["decision"]
        assert row["error"] is None
        assert row["abstained"] == want["abstained"]
        assert [t["path"] for t in row["top_k"]] == [path_of(s["path"]) for s in want["suggestions"]]
        assert [t["score"] for t in row["top_k"]] == pytest.approx([s["score"] for s in want["suggestions"]], abs=golden["tolerance"])
        if want["suggestions"]:
            assert row["path"] == path_of(want["suggestions"][0]["path"])
            assert row["score"] == row["top_k"][0]["score"]
        else:
            assert row["path"] is None and row["score"] is None
        assert row["back_off_path"] == (path_of(want["backOff"]["path"]) if want["backOff"] else None)


def test_input_kinds_give_the_same_table(clf):
    import pandas as pd

    titles = fixture_titles()[:20]
    want = clf.classify(titles)
    assert clf.classify(tuple(titles)).equals(want)
    assert clf.classify(pa.array(titles)).equals(want)
    assert clf.classify(pa.array(titles, type=pa.large_string())).equals(want)
    assert clf.classify(pa.chunked_array([titles[:7], titles[7:]])).equals(want)
    assert clf.classify(pd.Series(titles)).equals(want)


def test_threads_do_not_change_results(clf):
    titles = fixture_titles() * 2  # several chunks of 32
    one = clf.classify(titles, threads=1)
    assert clf.classify(titles, threads=2).equals(one)
    assert clf.classify(titles, threads=3).equals(one)


def test_blank_missing_and_too_long_titles(clf):
    import pandas as pd

    long_title = "kettle " * 600  # 4200 bytes
    table = clf.classify(["Pigeon 1.5 L electric kettle", "", "   ", None, long_title, "Nike running shoe"])
    rows = table.to_pylist()
    for r in rows[1:5]:
        assert r["path"] is None and r["score"] is None and r["top_k"] == [] and r["abstained"] is True
    assert [r["error"] for r in rows] == [None, None, None, None, "INPUT_TOO_LONG", None]
    assert rows[0]["path"] is not None and len(rows[0]["top_k"]) == 5
    assert rows[5]["path"] is not None
    # pandas' missing value (NaN) is a missing title too.
    assert clf.classify(pd.Series(["", None, float("nan")])).column("abstained").to_pylist() == [True] * 3
    assert clf.suggest("") == {"suggestions": [], "abstained": True, "back_off": None}
    with pytest.raises(shelfwise.ShelfwiseError) as e:
        clf.suggest(long_title)
    assert e.value.code == "INPUT_TOO_LONG"
    assert "INPUT_TOO_LONG" in str(e.value)


def test_k_and_threshold(clf):
    d = clf.suggest("Pigeon 1.5 L electric kettle", k=2, threshold=1.0)
    assert len(d["suggestions"]) == 2
    assert d["abstained"] is True  # no score reaches 1.0
    t = clf.classify(["Pigeon 1.5 L electric kettle"], k=3, threshold=0.0)
    assert len(t.column("top_k")[0].as_py()) == 3
    assert t.column("abstained")[0].as_py() is False


def test_default_model_is_the_shipped_file(clf):
    from_file = shelfwise.Classifier(str(SHIPPED))
    assert from_file.labels == clf.labels and len(clf.labels) > 100
    titles = fixture_titles()[:10]
    assert from_file.classify(titles).equals(clf.classify(titles))


@pytest.mark.parametrize(
    "corrupt, code",
    [
        (lambda b: b"<!doctype html><html></html>", "MODEL_NOT_A_MODEL"),
        (lambda b: b[: len(b) // 2], "MODEL_TRUNCATED"),
        (lambda b: b[:-100] + bytes([b[-100] ^ 1]) + b[-99:], "MODEL_CORRUPT"),
        (lambda b: b[:8] + bytes([99]) + b[9:], "MODEL_VERSION"),
    ],
)
def test_model_errors_have_stable_codes(tmp_path, corrupt, code):
    bad = tmp_path / "bad.shelfwise"
    bad.write_bytes(corrupt(SHIPPED.read_bytes()))
    with pytest.raises(shelfwise.ShelfwiseError) as e:
        shelfwise.Classifier(bad)
    assert e.value.code == code
    assert str(e.value).startswith(f"[{code}] ")


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        shelfwise.Classifier(tmp_path / "nope.shelfwise")


def test_bad_arguments(clf):
    for call in (
        lambda: clf.classify(["a"], threads=0),
        lambda: clf.classify(["a"], threads=-2),
        lambda: clf.classify("one string"),
        lambda: clf.classify(["a", 3]),
    ):
        with pytest.raises(shelfwise.ShelfwiseError) as e:
            call()
        assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(OverflowError):
        clf.suggest("a", k=-1)

