#!/usr/bin/env bash
# The 100,000-scenario post-fix campaign of issue 3: generated scenarios of up to 24 ops with
# random schedule prefixes, each run under v6.7+v2 and v6.9 (or under KERNEL alone, e.g.
# KERNEL=v7.3 or KERNEL=v6.9+f1). Known model findings (corpus finding-*.scn) are counted by
# name but are not failures; anything else is minimized, saved to fuzz-findings/ and makes
# this script exit 1. EXECS, JOBS, SEED override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
./target/release/mdfuzz fuzz --target postfix ${KERNEL:+-k "$KERNEL"} --execs "${EXECS:-100000}" \
    --time 1h --jobs "${JOBS:-2}" --seed "${SEED:-1}" --max-ops 24
