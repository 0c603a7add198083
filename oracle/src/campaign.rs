//! The properties a campaign checks (shared by `mdfuzz fuzz`, the cargo-fuzz targets and the
//! tests), and the minimizer.
//!
//! * `postfix`: every scenario passes under `v6.7+v2` and `v6.9` (a pass may carry the
//!   expected IO error or requeue).
//! * `differential`: `v6.7`, `v6.7+v2`, `v6.9` on the same scenario and schedule; a fixed
//!   kernel may turn a hang (or the M1 invariant violation) into a pass, nothing else may
//!   change.
//! * `hunt`: the hunted kernel (default `v6.7`) hangs, corrupts or breaks an invariant — a
//!   finding for the repro corpus.

use crate::runner::{run, RunOptions};
use crate::scenario::{Expect, Op, Scenario, VerdictKind};
use crate::verdict::Outcome;
use md_model::Kernel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Postfix,
    Differential,
    Hunt,
}

impl Target {
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "postfix" => Some(Target::Postfix),
            "differential" => Some(Target::Differential),
            "hunt" => Some(Target::Hunt),
            _ => None,
        }
    }
}

/// Verdict tokens of known model findings (explained by `corpus/finding-*.scn`): a campaign
/// counts them but does not report them as new failures.
pub const KNOWN_FINDINGS: &[&str] = &[
    "stale-ctr-position",
    "stale-ctr-legs",
    "intr-after-end-reshape",
    "sb-before-finish-reshape",
    "orphaned-reshape",
    "sync-mutex-abba",
    "warn-resume-running",
];

pub fn is_known(o: &Outcome) -> bool {
    KNOWN_FINDINGS.contains(&o.token.as_str())
}

/// `hunt`'s property: a hang, corruption or broken invariant that is not a known finding.
pub fn hunt_failed(o: &Outcome) -> bool {
    o.verdict != VerdictKind::Pass && o.verdict != VerdictKind::UnexpectedIoError && !is_known(o)
}

/// A property failure: which kernel, what verdict, and a signature for de-duplication.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kernel: String,
    pub outcome: Outcome,
    pub signature: String,
    pub why: String,
}

pub fn kernels_for(target: Target, hunted: &Kernel) -> Vec<Kernel> {
    let k = |n: &str| Kernel::parse(n).expect("named kernel");
    match target {
        // `-k` names one post-fix kernel to check instead of the pair (e.g. v7.3, v6.9+f1).
        Target::Postfix if hunted.name() != "v6.7" => vec![hunted.clone()],
        Target::Postfix => vec![k("v6.7+v2"), k("v6.9")],
        Target::Differential => vec![k("v6.7"), k("v6.7+v2"), k("v6.9")],
        Target::Hunt => vec![hunted.clone()],
    }
}

fn run_ok(s: &Scenario, k: &Kernel) -> Result<Outcome, Box<Failure>> {
    run(s, k, &RunOptions::default()).map_err(|e| {
        Box::new(Failure {
            kernel: k.name().to_string(),
            outcome: Outcome {
                verdict: VerdictKind::Hang,
                token: "model-panic".into(),
                detail: e.clone(),
                trace: Vec::new(),
                steps: 0,
                ticks: 0,
                op_results: Vec::new(),
                op_actions: Vec::new(),
                op_order: Vec::new(),
                gates_reached: 0,
            },
            signature: format!("{} model-panic", k.name()),
            why: format!("the model panicked: {e}"),
        })
    })
}

/// Checks one scenario; returns the runs' outcomes (for statistics) and the first failure.
pub fn check(target: Target, hunted: &Kernel, s: &Scenario) -> (Vec<Outcome>, Option<Failure>) {
    let mut outs = Vec::new();
    match target {
        Target::Postfix | Target::Hunt => {
            for k in kernels_for(target, hunted) {
                let o = match run_ok(s, &k) {
                    Ok(o) => o,
                    Err(f) => return (outs, Some(*f)),
                };
                let failed = match target {
                    Target::Postfix => o.verdict != VerdictKind::Pass && !is_known(&o),
                    _ => hunt_failed(&o),
                };
                outs.push(o.clone());
                if failed {
                    let signature = format!("{} {}", k.name(), o.short());
                    let why = format!("{} under {}", o.short(), k.name());
                    return (
                        outs,
                        Some(Failure {
                            kernel: k.name().to_string(),
                            outcome: o,
                            signature,
                            why,
                        }),
                    );
                }
            }
            (outs, None)
        }
        Target::Differential => {
            let ks = kernels_for(target, hunted);
            let pre = match run_ok(s, &ks[0]) {
                Ok(o) => o,
                Err(f) => return (outs, Some(*f)),
            };
            outs.push(pre.clone());
            for k in &ks[1..] {
                let post = match run_ok(s, k) {
                    Ok(o) => o,
                    Err(f) => return (outs, Some(*f)),
                };
                outs.push(post.clone());
                if !allowed_change(&pre, &post) && !is_known(&post) {
                    let signature = format!("{} -> {} {}", pre.short(), k.name(), post.short());
                    let why = format!("v6.7 {} but {} {}", pre.short(), k.name(), post.short());
                    return (
                        outs,
                        Some(Failure {
                            kernel: k.name().to_string(),
                            outcome: post,
                            signature,
                            why,
                        }),
                    );
                }
            }
            (outs, None)
        }
    }
}

/// What the fix may change (architecture.md §4): a hang or the M1 invariant violation may
/// become a pass (possibly with the expected IO error / requeue); otherwise the verdict must
/// stay the same.
pub fn allowed_change(pre: &Outcome, post: &Outcome) -> bool {
    if post.verdict == VerdictKind::Pass {
        return matches!(
            pre.verdict,
            VerdictKind::Pass | VerdictKind::Hang | VerdictKind::InvariantViolation
        );
    }
    pre.verdict == post.verdict && pre.verdict != VerdictKind::Corruption
}

/// Removes op `i` and keeps every `after N` pointing at the op it named: later indices
/// shift down, and an `after` whose op is gone goes too (it would wait for another op, or
/// for itself).
pub fn remove_op(s: &mut Scenario, i: usize) {
    let mut gone = vec![i];
    while let Some(i) = gone.pop() {
        s.ops.remove(i);
        for g in gone.iter_mut() {
            if *g > i {
                *g -= 1;
            }
        }
        for (j, (_, op)) in s.ops.iter_mut().enumerate() {
            if let Op::After(n) | Op::AfterOrDeadline(n) = op {
                if *n == i {
                    if !gone.contains(&j) {
                        gone.push(j);
                    }
                } else if *n > i {
                    *n -= 1;
                }
            }
        }
    }
}

/// Shrinks `s` while `keep` holds: drop ops (keeping the story complete, see
/// [`crate::gen::complete`]), shorten and zero the schedule.
pub fn minimize(s: &Scenario, keep: &dyn Fn(&Scenario) -> bool) -> Scenario {
    let mut best = s.clone();
    loop {
        let mut improved = false;
        // Drop one op at a time (from the end, so later ops go first).
        let mut i = best.ops.len();
        while i > 0 {
            i -= 1;
            let mut c = best.clone();
            remove_op(&mut c, i);
            crate::gen::complete(&mut c);
            if c.ops.len() < best.ops.len() && keep(&c) {
                best = c;
                improved = true;
            }
            i = i.min(best.ops.len());
        }
        // Halve the schedule, then drop its tail one decision at a time.
        while !best.schedule.is_empty() {
            let mut c = best.clone();
            c.schedule.truncate(best.schedule.len() / 2);
            if keep(&c) {
                best = c;
                improved = true;
            } else {
                break;
            }
        }
        while !best.schedule.is_empty() {
            let mut c = best.clone();
            c.schedule.pop();
            if keep(&c) {
                best = c;
                improved = true;
            } else {
                break;
            }
        }
        // Zero decisions (the round-robin-like choice).
        for j in 0..best.schedule.len() {
            if best.schedule[j] != 0 {
                let mut c = best.clone();
                c.schedule[j] = 0;
                if keep(&c) {
                    best = c;
                    improved = true;
                }
            }
        }
        if !improved {
            return best;
        }
    }
}

/// Does `s` still get verdict `e` (with the same token) under `k`?
pub fn same_verdict<'a>(k: &'a Kernel, e: &'a Expect) -> impl Fn(&Scenario) -> bool + 'a {
    move |c: &Scenario| run(c, k, &RunOptions::default()).is_ok_and(|o| o.matches(e))
}
