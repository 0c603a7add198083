//! Verdicts (architecture.md §4) and the classification of a hang by the mechanism
//! (kernel-lifecycle.md §2.13) its end state matches.
//!
//! Order of precedence when a run shows several failures: Corruption, UnexpectedIoError,
//! Hang (the broken invariants are listed in its detail), InvariantViolation (the first rule
//! broken). A verdict carries a token: the hang
//! mechanism (`H1`..`H5`, `orphaned-reshape`, `livelock`, `other`), the invariant's name, or for a pass `eio` /
//! `requeued` when the post-fix kernels failed or requeued IO across a stalled reshape.

use crate::scenario::{Expect, VerdictKind};
use md_model::md_h::*;
use md_model::sched::World;
use md_model::Change;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub verdict: VerdictKind,
    pub token: String,
    pub detail: String,
    #[serde(skip)]
    pub trace: Vec<String>,
    pub steps: u64,
    pub ticks: u64,
    /// Each op's result (`ok`, an errno name, `failed`, or `blocked` if it never returned).
    pub op_results: Vec<String>,
    /// The array's sync action when each op returned (what `dmsetup status` shows).
    pub op_actions: Vec<String>,
    /// Each op's place in the order the ops returned (None: it never returned).
    pub op_order: Vec<Option<u32>>,
    /// The kernel changes whose gates this run consulted (`Kernel::reached`).
    #[serde(skip)]
    pub gates_reached: u64,
}

impl Outcome {
    pub fn matches(&self, e: &Expect) -> bool {
        self.verdict == e.verdict && e.token.as_ref().is_none_or(|t| *t == self.token)
    }
    /// `hang H1`, `pass`, `invariant-violation reap-without-reconfig-mutex`.
    pub fn short(&self) -> String {
        if self.token.is_empty() {
            self.verdict.to_string()
        } else {
            format!("{} {}", self.verdict, self.token)
        }
    }
}

/// Which §2.13 mechanism a hang's end state matches.
/// Every token a verdict of `kind` can carry (what `expect`, `--want` and `--keep` accept).
pub fn tokens(kind: VerdictKind) -> Vec<&'static str> {
    let invariants = md_model::sched::INVARIANTS.iter().copied();
    match kind {
        VerdictKind::Pass => vec!["eio", "requeued"],
        VerdictKind::Hang => vec![
            "H1",
            "H2",
            "H3",
            "H4",
            "H5",
            "other",
            "livelock",
            "orphaned-reshape",
            "sync-mutex-abba",
        ],
        VerdictKind::Corruption => [
            "stale-ctr-position",
            "stale-ctr-legs",
            "intr-after-end-reshape",
            "sb-before-finish-reshape",
        ]
        .into_iter()
        .chain(invariants)
        .collect(),
        VerdictKind::UnexpectedIoError => vec![],
        VerdictKind::InvariantViolation => invariants.collect(),
    }
}

pub fn classify_hang(w: &World) -> &'static str {
    // The posted v2's stop helpers take sync_mutex under reconfig_mutex (kernel-lifecycle.md
    // §3.2 p5; the merged ones do not): the sync_mutex holder is inside stop_sync_thread (its
    // reconfig_mutex dropped: waiting for RUNNING to clear, which md_start_sync can do only
    // with reconfig_mutex, or waiting to take reconfig_mutex back), which a second stopper
    // holds while it waits for sync_mutex.
    let asleep = |t: Option<usize>| t.and_then(|t| w.tasks[t].sleep.as_ref());
    if w.mddevs.iter().any(|md| {
        asleep(md.sync_mutex).is_some_and(|s| s.stack.contains(&"stop_sync_thread"))
            && asleep(md.reconfig_mutex).is_some_and(|s| s.what.contains("waiting for sync_mutex"))
    }) {
        return "sync-mutex-abba";
    }
    let sleeping = |what: &str| {
        w.tasks
            .iter()
            .any(|t| !t.finished && t.sleep.as_ref().is_some_and(|s| s.what.contains(what)))
    };
    if sleeping("raid5_make_request: waiting for reshape")
        && (sleeping("dm_suspend: waiting for in-flight bios")
            || sleeping("synchronize_srcu(io_barrier): waiting for table readers")
            || sleeping("mddev_suspend: waiting for active_io"))
    {
        return "H5";
    }
    if !sleeping("stop_sync_thread: waiting for MD_RECOVERY_RUNNING") && !sleeping("kthread_stop") {
        if !sleeping("raid5_make_request: waiting for reshape") {
            // H4 without a stop yet: a sync thread registered directly (RUNNING) that
            // nothing ever woke, so the sync everyone waits for never starts.
            let never_ran = w.mddevs.iter().any(|md| {
                !md.stopped
                    && md.test(MD_RECOVERY_RUNNING)
                    && !md.test(MD_RECOVERY_DONE)
                    && md
                        .sync_thread
                        .is_some_and(|t| w.threads[t].runs == 0 && !w.threads[t].in_fn)
            });
            return if never_ran { "H4" } else { "other" };
        }
        // IO waits for a reshape that was interrupted and that nothing will restart: no
        // thread, RUNNING / NEEDED / FROZEN / WAIT all clear, read-write, no suspend coming
        // (a `frozen` / `idle` message that returned -EINVAL leaves this). 7.2's
        // 1d24d4c1ea1d makes such IO wait instead of failing: a hang of its own cause.
        let orphaned = w.mddevs.iter().any(|md| {
            !md.stopped
                && md.reshape_position != MAX_SECTOR
                && md.sync_thread.is_none()
                && md_is_rdwr(md)
                && md.suspended == 0
                && !md.dm_suspending
                && !md.test(MD_RECOVERY_RUNNING)
                && !md.test(MD_RECOVERY_NEEDED)
                && !md.test(MD_RECOVERY_FROZEN)
                && !md.test(MD_RECOVERY_WAIT)
        });
        return if orphaned { "orphaned-reshape" } else { "H5" };
    }
    for md in w.mddevs.iter().filter(|m| m.test(MD_RECOVERY_RUNNING)) {
        let done = md.test(MD_RECOVERY_DONE);
        if done && md.suspended > 0 && !w.k.has(Change::CheckRecoveryServesSuspended) {
            return "H1";
        }
        if done
            && !md_is_rdwr(md)
            && !md.test(MD_RECOVERY_NEEDED)
            && !w.k.has(Change::CheckRecoveryReapsReadOnly)
        {
            return "H2";
        }
        if !done {
            match md.sync_thread.map(|t| &w.threads[t]) {
                Some(t)
                    if !t.in_fn
                        && (t.last_exit.starts_with("E2") || t.last_exit.starts_with("E3")) =>
                {
                    return "H3"
                }
                Some(t) if t.runs == 0 => return "H4",
                None => return "H4",
                _ => {}
            }
        }
    }
    "other"
}
