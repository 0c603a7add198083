#!/usr/bin/env bash
# Fuzz smoke for CI: install cargo-fuzz if missing, build the three targets on stable (no
# sanitizer: `-s none`), seed their corpora from the repro corpus, replay the seeds, then run
# each target briefly. Red on any crash. hunt hunts v6.9 here (a fixed kernel: it must not
# crash); on a campaign it hunts v6.7 (MDFUZZ_KERNEL) and every crash is a corpus candidate.
# `-len_control=0 -max_len=512`: full-size inputs from the start (libFuzzer's default starts
# at a few bytes, which decode to scenarios too small for most bugs; see bench/latest.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${FUZZ_SECS:-20}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
for t in postfix differential hunt; do
    mkdir -p "fuzz/corpus/$t"
    cp corpus/*.scn "fuzz/corpus/$t/"
done
cargo fuzz build -s none
for t in postfix differential hunt; do
    MDFUZZ_KERNEL=v6.9 cargo fuzz run -s none "$t" "fuzz/corpus/$t" -- -runs=0
    MDFUZZ_KERNEL=v6.9 cargo fuzz run -s none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -len_control=0 -max_len=512
done
echo "fuzz smoke: 3 targets built, seeds replayed, ${SECS}s each, no crash"
