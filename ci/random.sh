#!/usr/bin/env bash
# The 100,000-scenario post-fix campaign of issue 3: generated scenarios of up to 24 ops and
# random schedule prefixes, each run under v6.7+v2 and v6.9. Known model findings (corpus
# finding-*.scn) are counted but are not failures; anything else is saved, minimized, to
# fuzz-findings/ and makes this script fail. Override the count's stand-in (time) with $TIME.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
./target/release/mdfuzz fuzz --target postfix --time "${TIME:-120s}" --jobs "${JOBS:-2}" --seed "${SEED:-1}" --max-ops 24
