#!/usr/bin/env bash
# Catalogue throughput on this machine (issue #23): shelfwise's CLI batch, Python classify (1 and 2
# threads), Ray Data (1 and 2 actors), Spark (local[1], local[2]) and, as peers, onnxruntime for
# Python embedding the same MiniLM (weight-only int8 file, and q8 = dynamic quantization). After
# scripts/setup.sh; uses the test venv of scripts/test-python.sh plus the peers' packages (pinned).
# Extra arguments go to crates/shelfwise-py/bench/bench.py (--titles N, --only CONFIG ..., --data CSV).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SHELFWISE_PY_VENV:-.cache/py}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet -r crates/shelfwise-py/requirements-test.txt onnxruntime==1.32.0 onnx==1.23.2 tokenizers==0.23.3
CARGO_TARGET_DIR="$PWD/target" "$VENV/bin/pip" install --quiet --force-reinstall --no-deps ./crates/shelfwise-py
bash www/scripts/setup-bench.sh
"$VENV/bin/python" crates/shelfwise-py/bench/bench.py "$@"
