#!/usr/bin/env bash
# The main job (README): build mdfuzz, list the kernels, replay the repro corpus against every
# kernel and print the verdict table. Exit 0 when every verdict matches its `expect` line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
./target/release/mdfuzz kernels
echo
./target/release/mdfuzz replay corpus/
