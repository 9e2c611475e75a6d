#!/usr/bin/env bash
# Reruns issue #16's benchmark commands one after another (docs/benchmarks.md, "Issue #16 targets"), each line
# stamped with the UTC time and the load average. Run it from a checkout nothing else changes while it runs.
# Usage: bash bench/targets.sh > targets.log 2>&1   (about 5 minutes on the 2-core dev box)
set -u
cd "$(dirname "$0")/.."
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
stamp() { echo "## $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }
for i in 1 2; do stamp build "$i"; npx tsx bench/build.ts --n 300 --images 100 2>&1 | tail -6; done
for c in uncompressed snappy zstd gzip; do stamp parquet "$c"; npx tsx bench/parquet-read.ts --compression "$c" --reps 3 2>&1 | tail -6; done
for i in 1 2; do
  stamp loader "$i"
  npx tsx bench/loader.ts --res 256 --images 480 --only f32,u8 --no-micro --rounds 2 --keep "$keep" 2>&1 |
    grep -E "round|PyTorch|mixforge|decoder"
done
for i in 1 2 3; do for r in 64 128; do stamp train "$r" "$i"; npx tsx bench/train.ts --resolution "$r" 2>&1 | tail -4; done; done
stamp done
