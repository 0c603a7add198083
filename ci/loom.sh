#!/usr/bin/env bash
# loom: exhaustive interleavings (preemption bound LOOM_MAX_PREEMPTIONS, default 2 or 1 per test)
# of small set-ups, in their own workspace (the model's `loom` feature must not unify with the
# shuttle default). Post-fix kernels: no deadlock, no broken invariant; pre-fix: the expected
# deadlock (H1, H2, H3) or broken invariant (M1) must be found.
set -euo pipefail
cd "$(dirname "$0")/../loomtests"
cargo test --release -- --test-threads 1 --nocapture 2>&1 | grep -v "^Box<dyn Any>$\|^$\|generator-0.8.12\|^panicked at\|^thread .* panicked\|^stack backtrace\|^note: \|^ *[0-9]*: \|^ *at "
