#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian 12 machine, then runs it.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npx tsc --noEmit
npx biome check .
# Structure: DESIGN.md's layer order and no import cycle (.dependency-cruiser.json, from scripts/layers.mjs).
npx depcruise --config .dependency-cruiser.json --output-type err core sources transforms manifests pipelines workers \
  train-bridge cli demo dev bench test
# No copied block of code in the product, the demo, dev helpers or benchmarks (.jscpd.json: 6 lines / 50 tokens).
npx jscpd
node scripts/run-tests.mjs "$@"
