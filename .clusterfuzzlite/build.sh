#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build: the standard cargo-fuzz crate in fuzz/, its three targets,
# each with the repro corpus as seed corpus.
cd "$SRC/mdfuzz"
cargo fuzz build -O
for t in postfix differential hunt; do
    cp "fuzz/target/x86_64-unknown-linux-gnu/release/$t" "$OUT/"
    zip -j "$OUT/${t}_seed_corpus.zip" corpus/*.scn
done
