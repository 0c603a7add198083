#!/usr/bin/env bash
# The test command (README): formatting, lints, every test in release mode, then the corpus
# replay against v6.7, v6.7+v2, v6.9 and every kernel a scenario names.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"   # insta: a missing or changed snapshot fails instead of being written
cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings
BOLERO_RANDOM_ITERATIONS="${BOLERO_RANDOM_ITERATIONS:-300}" cargo test --workspace --release
cargo build --release
./target/release/mdfuzz replay corpus/
