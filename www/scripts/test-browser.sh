#!/usr/bin/env bash
# Builds the wasm and the npm package, then runs the browser tests (node --test, playwright-core,
# Debian chromium). Needs www/scripts/setup-browser.sh once, and the model (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# `npm pack` builds everything first (prepack: the three wasm builds and dist/); the tarball is what
# test/package.test.mjs installs into apps outside the repo.
pack=$(mktemp -d)
trap 'rm -rf "$pack"' EXIT
npm pack --pack-destination "$pack"
export SHELFWISE_TARBALL=$(ls "$pack"/shelfwise-*.tgz)
# The package.json a publish would check: no warnings (npm warns about fields it had to correct),
# other than that this machine is not logged in to the registry.
npm publish --dry-run --ignore-scripts 2>"$pack/publish.log" >/dev/null || { cat "$pack/publish.log"; exit 1; }
if grep -i 'warn' "$pack/publish.log" | grep -v 'requires you to be logged in'; then
  echo "npm publish --dry-run warned (above)" >&2
  exit 1
fi
npx --no-install tsc -p tsconfig.json --noEmit
export PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS=1 # the privacy checks see the service worker's requests too
node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec test/*.test.mjs
