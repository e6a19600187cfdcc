#!/usr/bin/env bash
# Builds the wasm and the npm package, then runs the browser tests (node --test, playwright-core,
# Debian chromium). Needs www/scripts/setup-browser.sh once, and the model (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
bash scripts/build-wasm.sh relaxed
bash scripts/build-wasm.sh gpu
npm run --silent build
npx --no-install tsc -p tsconfig.json --noEmit
export PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS=1 # the privacy checks see the service worker's requests too
node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec test/*.test.mjs
