#!/usr/bin/env bash
# The Python package's tests (called by scripts/test.sh, after setup): builds crates/shelfwise-py
# with maturin into a venv under .cache/ (reusing the workspace's target/ build), installs the
# pinned test dependencies (pyarrow, pandas, pytest, Ray, PySpark) and runs pytest: the API, its
# error codes, parity with `shelfwise classify --batch`, Ray Data and Spark (local, Java 17 from setup).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SHELFWISE_PY_VENV:-.cache/py}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -r crates/shelfwise-py/requirements-test.txt
# What a user does (`pip install ./crates/shelfwise-py`), sharing the workspace's target/.
CARGO_TARGET_DIR="$PWD/target" "$VENV/bin/pip" install --quiet --force-reinstall --no-deps ./crates/shelfwise-py
"$VENV/bin/python" -m pytest -q -p no:cacheprovider crates/shelfwise-py/tests
