#!/usr/bin/env bash
# Setup (if needed), classify a few listing titles with the shipped model from the CLI, then serve the
# seller listing-form demo (browser, wasm) on http://127.0.0.1:8080/ until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./target/release/shelfwise classify -k 3 \
  "Nike Air Zoom Pegasus 39 men's running shoe, size 10" \
  "Samsung Galaxy M31 (Ocean Blue, 64 GB) 6 GB RAM" \
  "Rockmantra Ceramic Coffee Mug 350 ml" \
  "Sterling silver heart pendant necklace for women" \
  "Pigeon 1.5 L electric kettle"
exec bash www/scripts/demo.sh
