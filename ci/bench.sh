#!/usr/bin/env bash
# The benchmark of issue 4: executions per second (8/16/24 ops, each kernel) and time to the
# first find of each failure class: in-process campaign, `cargo fuzz run hunt` (with and
# without lifecycle extra counters) and shuttle random / PCT baselines.
# Writes bench/latest.md (committed: the figures of the machine that last ran it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
cargo build --release
cargo fuzz build -s none hunt
HUNT=fuzz/target/x86_64-unknown-linux-gnu/release/hunt
mkdir -p bench
{ echo "# mdfuzz bench ($(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%Y-%m-%d))"; echo;
  ./target/release/mdfuzz bench --seeds "${SEEDS:-5}" --budget "${BUDGET:-15s}" --rate "${RATE:-2s}" \
      --cargo-fuzz "$HUNT"; } | tee bench/latest.md
