//! `mdfuzz bench`: executions per second, and time / executions to the first input of each
//! known failure class, for the in-process campaign and for a baseline.
//!
//! (a) `mdfuzz fuzz`'s generator: generated ops with a schedule prefix from the input bytes and
//!     the round-robin tail;
//! (c) baseline: the same generated ops, no prefix, every decision uniformly random (seeded).
//! Wall-clock time is measured here (the model itself never reads a clock).

use crate::fuzz::Rng;
use md_model::Kernel;
use md_oracle::gen::{from_bytes, Limits};
use md_oracle::scenario::{Scenario, VerdictKind};
use md_oracle::{run, Outcome, RunOptions, Tail};
use std::time::{Duration, Instant};

struct Class {
    name: &'static str,
    kernel: &'static str,
    hit: fn(&Outcome) -> bool,
}

const CLASSES: &[Class] = &[
    Class {
        name: "H1",
        kernel: "v6.7",
        hit: |o| o.verdict == VerdictKind::Hang && o.token == "H1",
    },
    Class {
        name: "H2",
        kernel: "v6.7+p1,p3",
        hit: |o| o.verdict == VerdictKind::Hang && o.token == "H2",
    },
    Class {
        name: "H3",
        kernel: "v6.7",
        hit: |o| o.verdict == VerdictKind::Hang && o.token == "H3",
    },
    Class {
        name: "H4",
        kernel: "v6.7",
        hit: |o| o.verdict == VerdictKind::Hang && o.token == "H4",
    },
    Class {
        name: "H5",
        kernel: "v6.7",
        hit: |o| o.verdict == VerdictKind::Hang && o.token == "H5",
    },
    Class {
        name: "M1",
        kernel: "v6.7",
        hit: |o| {
            o.verdict == VerdictKind::InvariantViolation && o.token == "reap-without-reconfig-mutex"
        },
    },
    Class {
        name: "p1-p4 corruption",
        kernel: "v6.7+p1,p2,p3,p4",
        hit: |o| o.verdict == VerdictKind::Corruption,
    },
];

fn scenario_with_ops(rng: &mut Rng, ops: usize) -> Scenario {
    let lim = Limits {
        max_ops: ops,
        max_schedule: 64,
    };
    // Try a few inputs for one with the wanted op count (the generator picks 1..=max).
    let mut best = from_bytes(&rng.bytes_n(400), lim);
    for _ in 0..16 {
        if best.ops.len() >= ops {
            break;
        }
        let s = from_bytes(&rng.bytes_n(400), lim);
        if s.ops.len() > best.ops.len() {
            best = s;
        }
    }
    best
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(v[v.len() / 2])
}

/// One search for `class`: returns (seconds, executions) of the first hit within `cap`.
fn time_to_find(class: &Class, seed: u64, cap: Duration, baseline: bool) -> Option<(f64, u64)> {
    let k = Kernel::parse(class.kernel).expect("bench kernel");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let start = Instant::now();
    let mut execs = 0u64;
    while start.elapsed() < cap {
        let mut s = from_bytes(&rng.bytes(), Limits::default());
        let opts = if baseline {
            s.schedule.clear();
            RunOptions {
                tail: Tail::Random(rng.next()),
                ..RunOptions::default()
            }
        } else {
            RunOptions::default()
        };
        execs += 1;
        if run(&s, &k, &opts).is_ok_and(|o| (class.hit)(&o)) {
            return Some((start.elapsed().as_secs_f64(), execs));
        }
    }
    None
}

pub fn bench(seeds: u64, cap: Duration, rate_budget: Duration) -> String {
    let mut out = String::new();
    out.push_str("## Executions per second (one run = one scenario under one kernel)\n\n");
    out.push_str("| ops | v6.7 | v6.7+v2 | v6.9 |\n|---|---|---|---|\n");
    for ops in [8usize, 16, 24] {
        let mut row = format!("| {ops} |");
        for kname in ["v6.7", "v6.7+v2", "v6.9"] {
            let k = Kernel::parse(kname).unwrap();
            let mut rng = Rng(ops as u64 * 7919 + 1);
            let scenarios: Vec<Scenario> =
                (0..64).map(|_| scenario_with_ops(&mut rng, ops)).collect();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < rate_budget {
                let _ = run(&scenarios[(n % 64) as usize], &k, &RunOptions::default());
                n += 1;
            }
            row.push_str(&format!(
                " {:.0} |",
                n as f64 / start.elapsed().as_secs_f64()
            ));
        }
        out.push_str(&row);
        out.push('\n');
    }
    out.push_str(&format!(
        "\n## Time to first find (median of {seeds} seeds, cap {}s per seed)\n\n",
        cap.as_secs_f64()
    ));
    out.push_str(
        "(a) `mdfuzz fuzz`: generated ops, schedule prefix from the input, round-robin tail;\n",
    );
    out.push_str(
        "(c) baseline: the same generated ops, no prefix, every decision uniformly random.\n\n",
    );
    out.push_str("| class | kernel hunted | (a) found | (a) median s | (a) median execs | (c) found | (c) median s |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for class in CLASSES {
        let (mut ta, mut ea, mut tc) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 1..=seeds {
            if let Some((t, e)) = time_to_find(class, seed, cap, false) {
                ta.push(t);
                ea.push(e as f64);
            }
            if let Some((t, _)) = time_to_find(class, seed, cap, true) {
                tc.push(t);
            }
        }
        let (fa, fc) = (ta.len(), tc.len());
        let show = |v: Option<f64>, fmt: &dyn Fn(f64) -> String| {
            v.map(fmt).unwrap_or_else(|| format!(">{}", cap.as_secs()))
        };
        let half = (seeds as usize).div_ceil(2);
        let ma = if fa >= half { median(&mut ta) } else { None };
        let me = if fa >= half { median(&mut ea) } else { None };
        let mc = if fc >= half { median(&mut tc) } else { None };
        out.push_str(&format!(
            "| {} | {} | {fa}/{seeds} | {} | {} | {fc}/{seeds} | {} |\n",
            class.name,
            class.kernel,
            show(ma, &|v| format!("{v:.2}")),
            show(me, &|v| format!("{v:.0}")),
            show(mc, &|v| format!("{v:.2}")),
        ));
    }
    out
}
