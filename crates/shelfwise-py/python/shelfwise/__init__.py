"""Product-category suggestions from listing titles, for pandas, Arrow, Ray Data and Spark.

>>> import shelfwise
>>> clf = shelfwise.Classifier()            # the shipped model, inside the wheel
>>> clf.suggest("Nike Air Zoom Pegasus 39 men's running shoe")["suggestions"][0]["path"]
"Footwear > Men's Footwear > Sports Shoes"
>>> table = clf.classify(["Nike Air Zoom Pegasus 39 men's running shoe", "Pigeon 1.5 L electric kettle"], threads=2)

The work is the Rust model crate's (the same code as ``shelfwise classify --batch``); this package
converts types. Every failure is a :class:`ShelfwiseError` with a stable ``.code``.
"""

from __future__ import annotations

from ._shelfwise import MAX_TITLE_BYTES, ShelfwiseError, _Classifier, kernels

__all__ = ["Classifier", "ShelfwiseError", "MAX_TITLE_BYTES", "SCHEMA", "kernels"]


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("score", pa.float32()),
            ("abstained", pa.bool_()),
            ("back_off_path", pa.string()),
            ("top_k", pa.list_(pa.struct([("path", pa.string()), ("score", pa.float32())]))),
            ("error", pa.string()),
        ]
    )


def __getattr__(name):
    # SCHEMA imports pyarrow on first use, so that `import shelfwise` stays cheap.
    if name == "SCHEMA":
        return _schema()
    raise AttributeError(name)


def _error(code, message):
    """A ShelfwiseError raised on the Python side (argument checks), shaped like the Rust side's."""
    err = ShelfwiseError(f"[{code}] {message}")
    err.code = code
    return err


def _titles(titles):
    """A list of str/None from a list, tuple, pyarrow (chunked) string array or pandas Series."""
    if isinstance(titles, str):
        raise _error("INVALID_ARGUMENT", "titles must be a sequence of strings, not one string")
    to_pylist = getattr(titles, "to_pylist", None)  # pyarrow Array / ChunkedArray
    if to_pylist is not None:
        titles = to_pylist()
    elif hasattr(titles, "tolist"):  # pandas Series, numpy array
        titles = titles.tolist()
    out = list(titles)
    for t in out:
        if t is not None and not isinstance(t, str):
            # pandas marks a missing value with NaN (a float): treat it as None.
            if isinstance(t, float) and t != t:
                continue
            raise _error("INVALID_ARGUMENT", f"titles must be strings or None, got {type(t).__name__}")
    return [t if isinstance(t, str) else None for t in out]


class Classifier(_Classifier):
    """A loaded, verified model. Load it once (per process, Ray actor or Spark task) and reuse it.

    ``path=None`` loads the shipped model (``models/flipkart-minilm/model.shelfwise``, carried by
    the wheel); otherwise a ``.shelfwise`` file made by ``shelfwise train``/``quantize``. A bad file
    raises :class:`ShelfwiseError` (``MODEL_CORRUPT``, ``MODEL_NOT_A_MODEL``, ...); a missing one
    ``FileNotFoundError``.

    Methods release the GIL, so one instance may be shared by Python threads.
    """

    def suggest(self, title, k=5, threshold=0.5):
        """Top-``k`` suggestions for one title.

        Returns ``{"suggestions": [{"id", "path", "score", "level_scores"}, ...], "abstained": bool,
        "back_off": {"path", "score"} | None}``. Below ``threshold`` the answer abstains and backs off
        to the deepest confident parent. A blank title gets no suggestions; one over
        ``MAX_TITLE_BYTES`` UTF-8 bytes raises ``ShelfwiseError`` with code ``INPUT_TOO_LONG``.
        """
        return super().suggest(title, k, threshold)

    def classify(self, titles, k=5, threshold=0.5, threads=None):
        """Classifies a catalogue on ``threads`` threads (``None``: all cores), GIL released.

        ``titles``: a list of str, a ``pyarrow`` string array (or chunked array) or a pandas Series;
        a missing value is a blank title. Returns a ``pyarrow.Table`` with one row a title, in order,
        and the columns of :data:`SCHEMA`: ``path`` and ``score`` (the top suggestion; null when
        there is none), ``abstained``, ``back_off_path``, ``top_k`` (list of ``{path, score}``) and
        ``error`` (``INPUT_TOO_LONG`` for a title over the limit, which gets no suggestions, else
        null): one bad row does not fail the catalogue. The scores are those of
        ``shelfwise classify --batch``.
        """
        import pyarrow as pa

        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise _error("INVALID_ARGUMENT", f"threads must be a positive int or None, got {threads!r}")
        cols = self._classify_columns(_titles(titles), k, threshold, threads)
        schema = _schema()
        return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)
