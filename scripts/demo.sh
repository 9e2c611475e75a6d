#!/usr/bin/env bash
# Sets up mixforge and runs the main job on bundled demo data (local disk, in-process executor).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
exec npx tsx cli/main.ts demo "$@"
