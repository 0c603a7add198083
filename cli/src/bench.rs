//! `mdfuzz bench`: executions per second, and time / executions to the first input of each
//! known failure class (`hunt`'s property restricted to the class), from an empty corpus:
//!
//! (a) `mdfuzz fuzz`'s generator: generated ops with a schedule prefix from the input bytes and
//!     the round-robin tail;
//! (b) `cargo fuzz run hunt` (the libFuzzer binary, `MDFUZZ_CLASS` set) with [`LIBFUZZER_LEN`];
//!     (b0) libFuzzer's default length control (inputs start at a few bytes and grow slowly:
//!     short inputs decode to scenarios too small for most bugs);
//! (c) baselines: the same generated ops, no prefix, scheduled by shuttle's `RandomScheduler`
//!     (as `check_random`), and by shuttle's `PctScheduler` (depth 3, each scenario run
//!     [`PCT_RUNS`] times with one scheduler, as `check_pct`).
//! Wall-clock time is measured here (the model itself never reads a clock).

use crate::fuzz::Rng;
use md_model::md_h::Layout;
use md_model::Kernel;
use md_oracle::campaign::hunt_failed;
use md_oracle::gen::{from_bytes, Limits};
use md_oracle::scenario::{ArrayKind, Expect, Scenario};
use md_oracle::{run, RunOptions, Tail};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A known failure class: the kernel hunted and the verdict (as in an `expect` line).
struct Class {
    name: &'static str,
    kernel: &'static str,
    verdict: &'static str,
}

const CLASSES: &[Class] = &[
    Class {
        name: "H1",
        kernel: "v6.7",
        verdict: "hang H1",
    },
    Class {
        name: "H2",
        kernel: "v6.7+p1,p3",
        verdict: "hang H2",
    },
    Class {
        name: "H3",
        kernel: "v6.7",
        verdict: "hang H3",
    },
    Class {
        // Where v2 04/11's trace was taken: the series without patch 4 (raid10 LVs; pure
        // v6.7 stops at H3 first on that route).
        name: "H4",
        kernel: "v6.7+v2-p4",
        verdict: "hang H4",
    },
    Class {
        name: "H5",
        kernel: "v6.7",
        verdict: "hang H5",
    },
    Class {
        name: "M1",
        kernel: "v6.7",
        verdict: "invariant-violation reap-without-reconfig-mutex",
    },
    Class {
        name: "p1-p4 corruption",
        kernel: "v6.7+p1,p2,p3,p4",
        verdict: "corruption",
    },
    Class {
        // The real 6.1 / 6.12 / 7.3 bug (findings/stale-ctr-position.md), from nothing.
        name: "stale-ctr-position",
        kernel: "v6.9",
        verdict: "corruption stale-ctr-position",
    },
];

/// PCT learns the run length from a scenario's first run: each scenario gets this many.
const PCT_RUNS: u64 = 4;
const PCT_DEPTH: usize = 3;

/// The libFuzzer options a hunt campaign should use: full-size inputs from the start.
pub const LIBFUZZER_LEN: &[&str] = &["-len_control=0", "-max_len=512"];

#[derive(Clone, Copy, PartialEq)]
enum Lib {
    Default,
    Len,
}

#[derive(Clone, Copy, PartialEq)]
enum How {
    Fuzz,
    Random,
    Pct,
    /// (a) with swarm testing (each scenario draws the op kinds it uses).
    Swarm,
}

fn scenario_with_ops(rng: &mut Rng, ops: usize) -> Scenario {
    let lim = Limits {
        max_ops: ops,
        max_schedule: 64,
        // One administrator, as when the exec/s figures in bench/latest.md were first taken.
        multi_admin: false,
        swarm: false,
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

/// One in-process search for `class`: (seconds, executions) of the first hit within `cap`.
fn time_to_find(class: &Class, seed: u64, cap: Duration, how: How) -> Option<(f64, u64)> {
    let k = Kernel::parse(class.kernel).expect("bench kernel");
    let want = Expect::parse_verdict(class.kernel, class.verdict).expect("bench class");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let start = Instant::now();
    let mut execs = 0u64;
    while start.elapsed() < cap {
        let lim = Limits {
            swarm: how == How::Swarm,
            ..Limits::default()
        };
        let mut s = from_bytes(&rng.bytes(), lim);
        let (tail, runs) = match how {
            How::Fuzz | How::Swarm => (Tail::RoundRobin, 1),
            How::Random => (Tail::random(rng.next_u64()), 1),
            How::Pct => (Tail::pct(rng.next_u64(), PCT_DEPTH), PCT_RUNS),
        };
        if matches!(how, How::Random | How::Pct) {
            s.schedule.clear();
        }
        let opts = RunOptions {
            tail,
            ..RunOptions::default()
        };
        for _ in 0..runs {
            execs += 1;
            // A class that names its token counts it even when it is a known finding
            // (stale-ctr-position); a bare `corruption` class counts only unexplained ones.
            let counts = |o: &md_oracle::Outcome| {
                (hunt_failed(o) || want.token.is_some()) && o.matches(&want)
            };
            if run(&s, &k, &opts).is_ok_and(|o| counts(&o)) {
                return Some((start.elapsed().as_secs_f64(), execs));
            }
        }
    }
    None
}

/// One `cargo fuzz run hunt` campaign from an empty corpus (the built libFuzzer binary run
/// directly): (seconds, executions) when it crashes on `class` within `cap`.
fn cargo_fuzz_time(
    bin: &Path,
    class: &Class,
    seed: u64,
    cap: Duration,
    lib: Lib,
) -> Result<Option<(f64, u64)>, String> {
    let dir = std::env::temp_dir().join(format!("mdfuzz-bench-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let start = Instant::now();
    let out = Command::new(bin)
        .arg(&corpus)
        .arg(format!("-seed={seed}"))
        .arg(format!("-max_total_time={}", cap.as_secs().max(1)))
        .arg(format!("-artifact_prefix={}/", dir.display()))
        .args(["-timeout=20", "-rss_limit_mb=4096", "-print_final_stats=1"])
        .args(if lib == Lib::Default {
            &[][..]
        } else {
            LIBFUZZER_LEN
        })
        .env("MDFUZZ_KERNEL", class.kernel)
        .env("MDFUZZ_CLASS", class.verdict)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    let execs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let crashed = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("crash-"));
    let _ = std::fs::remove_dir_all(&dir);
    if !crashed && !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(format!(
            "{} failed without a crash: {tail:?}",
            bin.display()
        ));
    }
    Ok(crashed.then_some((secs, execs)))
}

/// Runs `scenarios` round-robin under `k` for `budget`: executions per second.
fn exec_rate(scenarios: &[Scenario], k: &Kernel, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let s = &scenarios[n as usize % scenarios.len()];
        let _ = run(s, k, &RunOptions::default());
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn bench(
    seeds: u64,
    cap: Duration,
    rate_budget: Duration,
    cargo_fuzz: Option<&Path>,
    rate_only: bool,
    only: Option<&str>,
) -> Result<String, String> {
    if let Some(c) = only.filter(|c| !CLASSES.iter().any(|k| k.name == *c)) {
        let names: Vec<&str> = CLASSES.iter().map(|k| k.name).collect();
        return Err(format!("--class {c}: expected one of {}", names.join(", ")));
    }
    let mut out = String::new();
    if only.is_some() {
        return time_to_find_table(&mut out, seeds, cap, cargo_fuzz, only).map(|()| out);
    }
    out.push_str("## Executions per second (one run = one scenario under one kernel)\n\n");
    out.push_str("| ops | v6.7 | v6.7+v2 | v6.9 |\n|---|---|---|---|\n");
    for ops in [8usize, 16, 24] {
        let mut row = format!("| {ops} |");
        for kname in ["v6.7", "v6.7+v2", "v6.9"] {
            let k = Kernel::parse(kname).unwrap();
            let mut rng = Rng(ops as u64 * 7919 + 1);
            let scenarios: Vec<Scenario> =
                (0..64).map(|_| scenario_with_ops(&mut rng, ops)).collect();
            row.push_str(&format!(" {:.0} |", exec_rate(&scenarios, &k, rate_budget)));
        }
        out.push_str(&row);
        out.push('\n');
    }
    // By raid type: 16-op generated scenarios whose LV is of that type (the generator's own
    // draw, kept when it matches).
    out.push_str("\n16-op scenarios by raid type (dm LVs):\n\n");
    out.push_str("| type | v6.7 | v6.9 | v7.3 |\n|---|---|---|---|\n");
    type IsType = fn(Layout) -> bool;
    let types: [(&str, u64, IsType); 6] = [
        ("raid5", 5, |l| l.level() == 5),
        ("raid6", 6, |l| l.level() == 6),
        ("raid10", 10, |l| l.level() == 10),
        ("raid1", 1, |l| l.level() == 1),
        ("striped", 20, |l| l == Layout::Striped),
        ("linear", 21, |l| l == Layout::Linear),
    ];
    for (name, seed, is_type) in types {
        let mut rng = Rng(seed * 104_729 + 3);
        let mut scenarios = Vec::new();
        for _ in 0..20_000 {
            let s = scenario_with_ops(&mut rng, 16);
            let a = &s.arrays[0];
            if a.kind == ArrayKind::Dm && is_type(a.layout) {
                scenarios.push(s);
                if scenarios.len() == 32 {
                    break;
                }
            }
        }
        if scenarios.is_empty() {
            return Err(format!("bench: the generator drew no {name} LV"));
        }
        let mut row = format!("| {name} |");
        for kname in ["v6.7", "v6.9", "v7.3"] {
            let k = Kernel::parse(kname).unwrap();
            row.push_str(&format!(" {:.0} |", exec_rate(&scenarios, &k, rate_budget)));
        }
        out.push_str(&row);
        out.push('\n');
    }
    if rate_only {
        return Ok(out);
    }
    time_to_find_table(&mut out, seeds, cap, cargo_fuzz, only)?;
    Ok(out)
}

/// The time-to-first-find table (every class, or `only`).
fn time_to_find_table(
    out: &mut String,
    seeds: u64,
    cap: Duration,
    cargo_fuzz: Option<&Path>,
    only: Option<&str>,
) -> Result<(), String> {
    out.push_str(&format!(
        "\n## Time to first find (median of {seeds} seeds, cap {}s per seed; found = seeds that found it)\n\n",
        cap.as_secs_f64()
    ));
    out.push_str(
        "(a) `mdfuzz fuzz`: generated ops, schedule prefix from the input, round-robin tail; \
         (b) `cargo fuzz run hunt` from an empty corpus with `-len_control=0 -max_len=512`; \
         (b0) `cargo fuzz run hunt` with libFuzzer's default length control; \
         (c) the same generated ops as (a), no prefix, shuttle's RandomScheduler; \
         (d) the same with shuttle's PctScheduler (depth 3, 4 runs per scenario); \
         (e) (a) with swarm testing (each scenario draws the subset of op kinds it uses).\n\n",
    );
    out.push_str("| class | kernel hunted | (a) found | (a) s | (a) execs | (b) found | (b) s | (b) execs | (b0) found | (b0) s | (c) random found | (c) s | (d) PCT found | (d) s | (e) swarm found | (e) s |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let half = (seeds as usize).div_ceil(2);
    let cell = |v: &mut Vec<(f64, u64)>| -> [String; 3] {
        let found = format!("{}/{seeds}", v.len());
        if v.len() < half {
            let over = format!(">{}", cap.as_secs());
            return [found, over.clone(), over];
        }
        let mut t: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut e: Vec<f64> = v.iter().map(|x| x.1 as f64).collect();
        let (mt, me) = (median(&mut t).unwrap(), median(&mut e).unwrap());
        [found, format!("{mt:.2}"), format!("{me:.0}")]
    };
    for class in CLASSES.iter().filter(|c| only.is_none_or(|o| o == c.name)) {
        // (a), (b), (b0), (c), (d), (e)
        let mut cols: Vec<Vec<(f64, u64)>> = vec![Vec::new(); 6];
        for seed in 1..=seeds {
            let hows = [How::Fuzz, How::Random, How::Pct, How::Swarm];
            for (i, how) in hows.into_iter().enumerate() {
                let col = [0, 3, 4, 5][i];
                cols[col].extend(time_to_find(class, seed, cap, how));
            }
            if let Some(bin) = cargo_fuzz {
                for (col, lib) in [(1, Lib::Len), (2, Lib::Default)] {
                    match cargo_fuzz_time(bin, class, seed, cap, lib) {
                        Ok(hit) => cols[col].extend(hit),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let [af, at, ae] = cell(&mut cols[0]);
        let mut lib_cell = |i: usize| {
            if cargo_fuzz.is_some() {
                cell(&mut cols[i])
            } else {
                ["-".into(), "-".into(), "-".into()]
            }
        };
        let ([bf, bt, be], [of, ot, _]) = (lib_cell(1), lib_cell(2));
        let [cf, ct, _] = cell(&mut cols[3]);
        let [df, dt, _] = cell(&mut cols[4]);
        let [ef, et, _] = cell(&mut cols[5]);
        out.push_str(&format!(
            "| {} | {} | {af} | {at} | {ae} | {bf} | {bt} | {be} | {of} | {ot} | {cf} | {ct} | {df} | {dt} | {ef} | {et} |\n",
            class.name, class.kernel
        ));
    }
    if cargo_fuzz.is_none() {
        out.push_str(
            "\n(b) needs the built libFuzzer binary: `ci/bench.sh` passes `--cargo-fuzz`.\n",
        );
    }
    Ok(())
}
