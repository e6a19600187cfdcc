#!/usr/bin/env bash
# The test command: setup (if needed), then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked 2>&1
