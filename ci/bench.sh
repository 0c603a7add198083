#!/usr/bin/env bash
# The benchmark of issue 4: executions per second (8/16/24 ops, each kernel) and time to the
# first find of each failure class for the in-process campaign vs a random-schedule baseline.
# Writes bench/latest.md (committed: the figures of the machine that last ran it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
mkdir -p bench
{ echo "# mdfuzz bench ($(nproc) cores, $(date -u +%Y-%m-%d))"; echo;
  ./target/release/mdfuzz bench --seeds "${SEEDS:-5}" --budget "${BUDGET:-10s}" --rate "${RATE:-2s}"; } | tee bench/latest.md
