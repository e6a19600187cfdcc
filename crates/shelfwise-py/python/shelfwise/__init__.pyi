"""Type stubs for shelfwise (the Python package of the shelfwise classifier)."""

from os import PathLike
from typing import Iterable, Optional, TypedDict, Union

import pyarrow as pa

MAX_TITLE_BYTES: int
"""Titles longer than this (UTF-8 bytes) get INPUT_TOO_LONG."""

SCHEMA: pa.Schema
"""The columns of Classifier.classify's table."""

class ShelfwiseError(Exception):
    """A shelfwise failure. ``code`` is stable: MODEL_CORRUPT, MODEL_NOT_A_MODEL, MODEL_VERSION,
    MODEL_TRUNCATED, MODEL_PAYLOAD_HASH, MODEL_MANIFEST, MODEL_TENSORS, MODEL_TOKENIZER,
    MODEL_INCOMPLETE, INPUT_TOO_LONG, INTERNAL, LABELS, INVALID_ARGUMENT."""

    code: str

class SuggestionDict(TypedDict):
    id: int
    path: str
    score: float
    level_scores: list[float]

class BackOffDict(TypedDict):
    path: str
    score: float

class DecisionDict(TypedDict):
    suggestions: list[SuggestionDict]
    abstained: bool
    back_off: Optional[BackOffDict]

Titles = Union[Iterable[Optional[str]], pa.Array, pa.ChunkedArray]

class Classifier:
    """A loaded, verified model (path=None: the shipped one). Methods release the GIL."""

    def __init__(self, path: Union[str, PathLike[str], None] = None) -> None: ...
    def suggest(self, title: str, k: int = 5, threshold: float = 0.5) -> DecisionDict: ...
    def classify(self, titles: Titles, k: int = 5, threshold: float = 0.5, threads: Optional[int] = None) -> pa.Table: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def name(self) -> str: ...

def kernels() -> str:
    """The quantized-matmul implementation this build runs (e.g. "x86-64-avx2")."""
