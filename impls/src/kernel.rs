//! Kernels as configurations of the one model.
//!
//! A kernel is the v6.7 base plus a set of patches. Every patch brings zero or more
//! behavioural [`Change`]s; the model tests a `Change` at the exact place the patch's hunk
//! lands, with the commit id and title beside the test. Patches that carry the same hunk
//! (v2 patch 1 and merged 1baae052cccd, say) bring the same `Change`.
//!
//! Names: `v6.7`, `v6.7+v2`, `v6.9`, `v7.3`, and any base with `+name,name` / `-name` edits, where a
//! name is a v2 patch (`p1`..`p11`, ranges `p1-p4`) or a commit id (12 hex digits) of the
//! merged series or of the v6.7 base (`-c467e97f079f` removes that base commit).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One behavioural delta, tested where its hunk lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Base (in v6.7): c467e97f079f "md/raid6: use valid sector values to determine if an I/O
    /// should wait on the reshape" — stripe_ahead_of_reshape computes a real min/max.
    StripeAheadValidSectors,
    /// Base (in v6.7): f52f5c71f3d4 "md: fix stopping sync thread" — stop paths wait for the
    /// daemon to reap instead of reaping synchronously in __md_stop_writes.
    StopSyncThreadViaDaemon,
    /// v2 p1 / 1baae052cccd "md: don't ignore suspended array in md_check_recovery()".
    CheckRecoveryServesSuspended,
    /// v2 p2 / 55a48ad2db64 "md: don't ignore read-only array in md_check_recovery()".
    CheckRecoveryReapsReadOnly,
    /// v2 p3 / 82ec0ae59d02 "md: make sure md_do_sync() will set MD_RECOVERY_DONE".
    DoSyncAlwaysSetsDone,
    /// v2 p4 / ad39c08186f8 "md: don't register sync_thread for reshape directly".
    NoDirectReshapeRegistration,
    /// v2 p5 "md: export helpers to stop sync_thread": the v2 helpers also take sync_mutex
    /// (under reconfig_mutex). The merged 7a2347e284d7 helpers do not.
    V2HelpersTakeSyncMutex,
    /// v2 p6 "dm-raid: really frozen sync_thread during suspend" (v2 form: presuspend freezes).
    V2ReallyFrozen,
    /// v2 p7 / cd32b27a66db "md/dm-raid: don't call md_reap_sync_thread() directly".
    MessageUsesStopHelpers,
    /// v2 p8 "dm-raid: remove mddev_suspend/resume()" (not merged).
    V2NoMddevSuspend,
    /// v2 p9 "dm-raid: add a new helper prepare_suspend() in md_personality" (v2 form:
    /// presuspend calls prepare_suspend unconditionally).
    V2PresuspendPrepares,
    /// v2 p11 "md/raid456: fix a deadlock for dm-raid456 while io concurrent with reshape"
    /// (v2 form: dm and reshape_disabled -> BLK_STS_IOERR).
    V2ReshapeDisabledFailsIo,
    /// 9e46c70e829b "md: Don't suspend the array for interrupted reshape".
    NoSuspendForInterruptedReshape,
    /// 2f03d0c2cd45 "md: don't clear MD_RECOVERY_FROZEN for new dm-raid until resume".
    MdRunKeepsDmFrozen,
    /// 16c4770c75b1 "dm-raid: really frozen sync_thread during suspend" (merged form:
    /// md_stop_writes freezes and stops; postsuspend always calls it).
    MergedReallyFrozen,
    /// 5625ff8b72b0 "dm-raid: add a new helper prepare_suspend() in md_personality" (merged:
    /// presuspend calls it only if reshape_interrupted).
    MergedPresuspendPrepares,
    /// 41425f96d7aa "dm-raid456, md/raid456: fix a deadlock for dm-raid456 while io
    /// concurrent with reshape" (STRIPE_WAIT_RESHAPE -> DM_MAPIO_REQUEUE, RT_FLAG_RS_FROZEN).
    WaitReshapeRequeues,
    /// 95009ae904b1 "dm-raid: fix lockdep waring in "pers->hot_add_disk"".
    ResumeLocksRestore,
    /// 1d24d4c1ea1d / 97cb8be0fd4c "dm-raid: only requeue bios when dm is suspending" (v7.2):
    /// MD_DM_SUSPENDING from raid_presuspend to raid_postsuspend; make_stripe_request hands a
    /// dm bio across an interrupted reshape back only while it is set, else the bio waits.
    DmSuspendingGatesRefusal,
    /// 55dcfdf8af9c "dm raid: use proper md_ro_state enumerators" (v6.18): raid_postsuspend
    /// sets ro = MD_RDONLY after mddev_suspend (raid_resume sets MD_RDWR again).
    PostsuspendReadOnly,
    /// cefcb9297fbd "md raid: fix hang when stopping arrays with metadata through dm-raid"
    /// (v7.0): __md_stop_writes quiesces only an array that is read-write or not dm.
    StopWritesSkipsQuiesceForDmRo,
    /// 8ff59a72478d "md: move finish_reshape to md_finish_sync()" (v7.0): pers->finish_reshape
    /// runs at the end of md_do_sync (the sync thread, no reconfig_mutex), interrupted or not,
    /// not in md_reap_sync_thread.
    FinishReshapeInSyncThread,
    /// b7ee30f0efd1 "md: fix sync_action incorrect display during resync" (v6.17; in
    /// Debian's 6.12.118 as a stable backport): md_sync_action says resync while
    /// resync_offset < MaxSector, so md_do_sync starts such a requested sync where a resync
    /// starts (0 with a bitmap), not at resync_min.
    SyncActionResyncFirst,
    /// 3199a34bfaf7 "dm-raid: Fix WARN_ON_ONCE check for sync_thread in raid_resume" (v6.11,
    /// Benjamin Marzinski, after lvm2's lvconvert-raid-takeover.sh hit the WARN): raid_resume
    /// warns on a registered sync thread, under reconfig_mutex, not on MD_RECOVERY_RUNNING.
    ResumeWarnsOnSyncThread,
    /// Candidate fix f1 for the finding stale-ctr-position (this project, not upstream):
    /// raid_preresume re-reads the superblock of an instance whose ctr found a reshape in
    /// progress and adopts the position the previous instance checkpointed at its
    /// postsuspend (or the finished geometry when that instance completed the reshape); the
    /// ctr refuses a table asking for another layout / chunk than the recorded reshape's.
    PreresumeRereadsReshapePosition,
    /// Candidate fix f2 for the finding orphaned-reshape (this project, not upstream):
    /// raid_message "frozen" keeps MD_RECOVERY_FROZEN set and "idle" clears it and lets the
    /// daemon continue an interrupted reshape (NEEDED); both return 0 (the 6.1 behaviour).
    MessageKeepsFrozenRestartsIdle,
    /// Candidate fix f3 for the finding stale-ctr-legs (this project, not upstream): the
    /// first raid_preresume re-reads the legs' superblocks and fails (md_error) every leg the
    /// freshest one records as failed since the ctr read them.
    PreresumeFailsLegsFailedSinceCtr,
}

/// Where a patch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// Part of the v6.7 tag (removable with `-id` to see what it changed).
    Base,
    /// "[PATCH v2 NN/11] dm-raid: fix v6.7 regressions" (2024-01-24).
    V2,
    /// Merged for 6.8 (md-6.8-20240216, v6.8-rc5).
    Merged68,
    /// Merged for 6.9 (dmraid-fix-6.9, v6.9-rc1).
    Merged69,
    /// A later lifecycle change, merged for the release named (the road to v7.3).
    Later(&'static str),
    /// A candidate fix for a finding of this project (findings/), not upstream.
    Candidate,
}

pub struct Patch {
    /// `p1`..`p11` for v2, the 12-digit commit id otherwise.
    pub name: &'static str,
    pub title: &'static str,
    pub series: Series,
    pub changes: &'static [Change],
    /// Why a patch without behavioural changes has none in this model.
    pub note: &'static str,
}

impl Patch {
    /// The changes this patch brings, one bit per [`Change`].
    pub fn mask(&self) -> u64 {
        self.changes.iter().fold(0, |acc, c| acc | 1 << (*c as u32))
    }
}

use Change as C;
use Series as S;

pub const PATCHES: &[Patch] = &[
    Patch {
        name: "c467e97f079f",
        title:
            "md/raid6: use valid sector values to determine if an I/O should wait on the reshape",
        series: S::Base,
        changes: &[C::StripeAheadValidSectors],
        note: "",
    },
    Patch {
        name: "f52f5c71f3d4",
        title: "md: fix stopping sync thread",
        series: S::Base,
        changes: &[C::StopSyncThreadViaDaemon],
        note: "",
    },
    Patch {
        name: "p1",
        title: "md: don't ignore suspended array in md_check_recovery()",
        series: S::V2,
        changes: &[C::CheckRecoveryServesSuspended],
        note: "",
    },
    Patch {
        name: "p2",
        title: "md: don't ignore read-only array in md_check_recovery()",
        series: S::V2,
        changes: &[C::CheckRecoveryReapsReadOnly],
        note: "",
    },
    Patch {
        name: "p3",
        title: "md: make sure md_do_sync() will set MD_RECOVERY_DONE",
        series: S::V2,
        changes: &[C::DoSyncAlwaysSetsDone],
        note: "",
    },
    Patch {
        name: "p4",
        title: "md: don't register sync_thread for reshape directly",
        series: S::V2,
        changes: &[C::NoDirectReshapeRegistration],
        note: "",
    },
    Patch {
        name: "p5",
        title: "md: export helpers to stop sync_thread",
        series: S::V2,
        changes: &[C::V2HelpersTakeSyncMutex],
        note: "the helpers are used by p6/p7; on their own they change nothing but the lock order",
    },
    Patch {
        name: "p6",
        title: "dm-raid: really frozen sync_thread during suspend",
        series: S::V2,
        changes: &[C::V2ReallyFrozen],
        note: "",
    },
    Patch {
        name: "p7",
        title: "md/dm-raid: don't call md_reap_sync_thread() directly",
        series: S::V2,
        changes: &[C::MessageUsesStopHelpers],
        note: "",
    },
    Patch {
        name: "p8",
        title: "dm-raid: remove mddev_suspend/resume()",
        series: S::V2,
        changes: &[C::V2NoMddevSuspend],
        note: "",
    },
    Patch {
        name: "p9",
        title: "dm-raid: add a new helper prepare_suspend() in md_personality",
        series: S::V2,
        changes: &[C::V2PresuspendPrepares],
        note: "",
    },
    Patch {
        name: "p10",
        title: "md: export helper md_is_rdwr()",
        series: S::V2,
        changes: &[],
        note: "moves an inline helper to md.h; no behaviour",
    },
    Patch {
        name: "p11",
        title: "md/raid456: fix a deadlock for dm-raid456 while io concurrent with reshape",
        series: S::V2,
        changes: &[C::V2ReshapeDisabledFailsIo],
        note: "",
    },
    Patch {
        name: "855678ed8534",
        title: "md: Fix missing release of 'active_io' for flush",
        series: S::Merged68,
        changes: &[],
        note: "flush bios are not modelled (no REQ_PREFLUSH in scenarios)",
    },
    Patch {
        name: "1baae052cccd",
        title: "md: Don't ignore suspended array in md_check_recovery()",
        series: S::Merged68,
        changes: &[C::CheckRecoveryServesSuspended],
        note: "",
    },
    Patch {
        name: "55a48ad2db64",
        title: "md: Don't ignore read-only array in md_check_recovery()",
        series: S::Merged68,
        changes: &[C::CheckRecoveryReapsReadOnly],
        note: "",
    },
    Patch {
        name: "82ec0ae59d02",
        title: "md: Make sure md_do_sync() will set MD_RECOVERY_DONE",
        series: S::Merged68,
        changes: &[C::DoSyncAlwaysSetsDone],
        note: "",
    },
    Patch {
        name: "ad39c08186f8",
        title: "md: Don't register sync_thread for reshape directly",
        series: S::Merged68,
        changes: &[C::NoDirectReshapeRegistration],
        note: "",
    },
    Patch {
        name: "9e46c70e829b",
        title: "md: Don't suspend the array for interrupted reshape",
        series: S::Merged68,
        changes: &[C::NoSuspendForInterruptedReshape],
        note: "",
    },
    Patch {
        name: "2f03d0c2cd45",
        title: "md: don't clear MD_RECOVERY_FROZEN for new dm-raid until resume",
        series: S::Merged69,
        changes: &[C::MdRunKeepsDmFrozen],
        note: "",
    },
    Patch {
        name: "7a2347e284d7",
        title: "md: export helpers to stop sync_thread",
        series: S::Merged69,
        changes: &[],
        note: "merged helpers take no sync_mutex; used by 16c4770c75b1/cd32b27a66db",
    },
    Patch {
        name: "314e9af06551",
        title: "md: export helper md_is_rdwr()",
        series: S::Merged69,
        changes: &[],
        note: "moves an inline helper to md.h; no behaviour",
    },
    Patch {
        name: "503f9d43790f",
        title: "md: add a new helper reshape_interrupted()",
        series: S::Merged69,
        changes: &[],
        note: "a helper; used by 5625ff8b72b0/41425f96d7aa",
    },
    Patch {
        name: "16c4770c75b1",
        title: "dm-raid: really frozen sync_thread during suspend",
        series: S::Merged69,
        changes: &[C::MergedReallyFrozen],
        note: "",
    },
    Patch {
        name: "cd32b27a66db",
        title: "md/dm-raid: don't call md_reap_sync_thread() directly",
        series: S::Merged69,
        changes: &[C::MessageUsesStopHelpers],
        note: "",
    },
    Patch {
        name: "5625ff8b72b0",
        title: "dm-raid: add a new helper prepare_suspend() in md_personality",
        series: S::Merged69,
        changes: &[C::MergedPresuspendPrepares],
        note: "",
    },
    Patch {
        name: "41425f96d7aa",
        title:
            "dm-raid456, md/raid456: fix a deadlock for dm-raid456 while io concurrent with reshape",
        series: S::Merged69,
        changes: &[C::WaitReshapeRequeues],
        note: "",
    },
    Patch {
        name: "95009ae904b1",
        title: "dm-raid: fix lockdep waring in \"pers->hot_add_disk\"",
        series: S::Merged69,
        changes: &[C::ResumeLocksRestore],
        note: "",
    },
    // --- after v6.9, up to 7.3.4 (Debian's linux-source-7.3 against linux-source-6.12) ---
    Patch {
        name: "3199a34bfaf7",
        title: "dm-raid: Fix WARN_ON_ONCE check for sync_thread in raid_resume",
        series: S::Later("v6.11"),
        changes: &[C::ResumeWarnsOnSyncThread],
        note: "",
    },
    Patch {
        name: "b7ee30f0efd1",
        title: "md: fix sync_action incorrect display during resync",
        series: S::Later("v6.17"),
        changes: &[C::SyncActionResyncFirst],
        note: "",
    },
    Patch {
        name: "55dcfdf8af9c",
        title: "dm raid: use proper md_ro_state enumerators",
        series: S::Later("v6.18"),
        changes: &[C::PostsuspendReadOnly],
        note: "",
    },
    Patch {
        name: "082d680faf26",
        title: "Factor out code into md_should_do_recovery()",
        series: S::Later("v6.19"),
        changes: &[],
        note: "md_check_recovery's early return moved into a helper, term by term the same",
    },
    Patch {
        name: "be4addb1914f",
        title: "dm: Fix deadlock when reloading a multipath table",
        series: S::Later("v6.19"),
        changes: &[],
        note: "DMF_NOFLUSH_SUSPENDING now lasts until resume; no dm-raid bio is mapped in between",
    },
    Patch {
        name: "cefcb9297fbd",
        title: "md raid: fix hang when stopping arrays with metadata through dm-raid",
        series: S::Later("v7.0"),
        changes: &[C::StopWritesSkipsQuiesceForDmRo],
        note: "",
    },
    Patch {
        name: "6dd3aa08e83b",
        title: "md: factor out sync completion update into helper",
        series: S::Later("v7.0"),
        changes: &[],
        note: "md_finish_sync() as a helper; the behaviour moves with 8ff59a72478d",
    },
    Patch {
        name: "8ff59a72478d",
        title: "md: move finish_reshape to md_finish_sync()",
        series: S::Later("v7.0"),
        changes: &[C::FinishReshapeInSyncThread],
        note: "",
    },
    Patch {
        name: "cc0dab317acb",
        title: "md: update curr_resync_completed even when MD_RECOVERY_INTR is set",
        series: S::Later("v7.0"),
        changes: &[],
        note: "the model's resync already records its position at every step",
    },
    Patch {
        name: "af9c40ff5aed",
        title: "md: remove MD_RECOVERY_ERROR handling and simplify resync_offset update",
        series: S::Later("v7.0"),
        changes: &[],
        note: "sync IO errors are not modelled (no failing legs)",
    },
    Patch {
        name: "418b3e64e445",
        title: "md/raid5: Fix UAF on IO across the reshape position",
        series: S::Later("v7.1"),
        changes: &[],
        note: "a refused bio now waits for its attached stripes first; requeue or EIO as before",
    },
    Patch {
        name: "1d24d4c1ea1d",
        title: "dm-raid: only requeue bios when dm is suspending",
        series: S::Later("v7.2"),
        changes: &[C::DmSuspendingGatesRefusal],
        note: "",
    },
    Patch {
        name: "97cb8be0fd4c",
        title: "dm-raid: only requeue bios when dm is suspending",
        series: S::Later("v7.2"),
        changes: &[C::DmSuspendingGatesRefusal],
        note: "",
    },
    Patch {
        name: "ffd3e73d6e0c",
        title: "md: add helper to split bios at reshape offset",
        series: S::Later("v7.3"),
        changes: &[],
        note: "dm-raid bios never straddle reshape_position (chunk-sized, position moves in units)",
    },
    Patch {
        name: "661102bb87e4",
        title: "md/raid5: split reshape bios before bitmap accounting",
        series: S::Later("v7.3"),
        changes: &[],
        note: "as ffd3e73d6e0c",
    },
    Patch {
        name: "788e4139463f",
        title: "md/raid5: fix reshape deadlock while failed devices more than max degraded",
        series: S::Later("v7.3"),
        changes: &[],
        note: "failing legs are not modelled",
    },
    Patch {
        name: "85764f475f3b",
        title: "md/raid5: complete discard bios while reshape is active",
        series: S::Later("v7.3"),
        changes: &[],
        note: "discards are not modelled",
    },
    Patch {
        name: "3fe5b7c9fb72",
        title: "md: remove REQ_NOWAIT support from raid1/10/456",
        series: S::Later("v7.3"),
        changes: &[],
        note: "REQ_NOWAIT bios are not modelled",
    },
    Patch {
        name: "798d79a7e4b0",
        title: "md: suspend array when sync_action=reshape",
        series: S::Later("v7.3"),
        changes: &[],
        note: "md sysfs only; the model starts md reshapes through raid_disks",
    },
    // --- candidate fixes for this project's findings (findings/*.md); add with +fN ---
    Patch {
        name: "f1",
        title: "dm-raid: take the reshape position from the superblocks at preresume",
        series: S::Candidate,
        changes: &[C::PreresumeRereadsReshapePosition],
        note: "",
    },
    Patch {
        name: "f2",
        title: "dm-raid: keep a frozen sync action frozen, restart it on idle",
        series: S::Candidate,
        changes: &[C::MessageKeepsFrozenRestartsIdle],
        note: "",
    },
    Patch {
        name: "f3",
        title: "dm-raid: fail legs at preresume that failed after the ctr read the superblocks",
        series: S::Candidate,
        changes: &[C::PreresumeFailsLegsFailedSinceCtr],
        note: "",
    },
];

/// The named kernels `mdfuzz kernels` lists.
pub const NAMED: &[(&str, &str)] = &[
    ("v6.7", "pre-fix: the v6.7 tag (includes c467e97f079f and f52f5c71f3d4)"),
    ("v6.7+v2", "v6.7 + the 11 patches of \"[PATCH v2 00/11] dm-raid: fix v6.7 regressions\""),
    ("v6.9", "v6.7 + the 6 commits merged for 6.8 + the 9 of \"fix v6.7 regressions part2\" merged for 6.9"),
    ("v7.3", "v6.9 + the lifecycle changes up to 7.3.4 (Debian's linux-source-7.3 against 6.12)"),
];

pub struct Kernel {
    name: String,
    patches: Vec<&'static Patch>,
    changes: u64,
    /// The changes whose gate a run consulted (`has`), whatever the answer: a run that never
    /// consults a change's gate runs the same without it (`mdfuzz revert-matrix` and
    /// `attribute` skip such runs, and say a gate was never reached).
    reached: AtomicU64,
}

impl Clone for Kernel {
    fn clone(&self) -> Kernel {
        Kernel {
            name: self.name.clone(),
            patches: self.patches.clone(),
            changes: self.changes,
            reached: AtomicU64::new(self.reached()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for KernelError {}

fn patch(name: &str) -> Option<&'static Patch> {
    PATCHES.iter().find(|p| p.name == name)
}

fn base_patches() -> Vec<&'static Patch> {
    PATCHES.iter().filter(|p| p.series == S::Base).collect()
}

impl Kernel {
    /// Parses `v6.7`, `v6.7+v2`, `v6.9`, `v6.7+p1,p2,p3-p4`, `v6.9-41425f96d7aa`,
    /// `v6.7-c467e97f079f`.
    pub fn parse(spec: &str) -> Result<Kernel, KernelError> {
        let spec = spec.trim();
        let cut = spec.find(['+', '-']).unwrap_or(spec.len());
        let (base, rest) = spec.split_at(cut);
        let mut set: Vec<&'static Patch> = base_patches();
        match base {
            "v6.7" => {}
            "v6.9" => set.extend(PATCHES.iter().filter(|p| matches!(p.series, S::Merged68 | S::Merged69))),
            "v7.3" => set.extend(
                PATCHES
                    .iter()
                    .filter(|p| matches!(p.series, S::Merged68 | S::Merged69 | S::Later(_))),
            ),
            _ => {
                return Err(KernelError(format!(
                    "unknown kernel `{spec}`: expected v6.7, v6.9 or v7.3, optionally followed by +patches or -patches (see `mdfuzz kernels`)"
                )))
            }
        }
        for (add, list) in groups(rest) {
            if list.is_empty() {
                return Err(KernelError(format!(
                    "kernel `{spec}`: expected a patch name after `{}`",
                    if add { '+' } else { '-' }
                )));
            }
            for item in list.split(',').map(str::trim) {
                let names =
                    expand(item).map_err(|e| KernelError(format!("kernel `{spec}`: {e}")))?;
                for n in names {
                    let p = patch(&n).ok_or_else(|| {
                        KernelError(format!(
                            "kernel `{spec}`: unknown patch `{n}`: expected v2, p1..p11, a candidate fix f1/f2/f3, or a commit id listed by `mdfuzz kernels`"
                        ))
                    })?;
                    if add {
                        if !set.iter().any(|q| q.name == p.name) {
                            set.push(p);
                        }
                    } else {
                        set.retain(|q| q.name != p.name);
                    }
                }
            }
        }
        Ok(Kernel::of(spec.to_string(), set))
    }

    fn of(name: String, patches: Vec<&'static Patch>) -> Kernel {
        let changes = patches.iter().fold(0, |acc, p| acc | p.mask());
        Kernel {
            name,
            patches,
            changes,
            reached: AtomicU64::new(0),
        }
    }

    /// This kernel without the patches `drop` and with `add`, named by the edit
    /// (`v6.9-16c4770c75b1`, `v6.7+p1,p4`).
    pub fn edit(&self, drop: &[&'static Patch], add: &[&'static Patch]) -> Kernel {
        let mut name = self.name.clone();
        let names = |ps: &[&Patch]| ps.iter().map(|p| p.name).collect::<Vec<_>>().join(",");
        let mut set: Vec<&'static Patch> = self
            .patches
            .iter()
            .copied()
            .filter(|p| !drop.iter().any(|d| d.name == p.name))
            .collect();
        if !drop.is_empty() {
            // `+p1,p2-p3` would read as the range p2-p3: a space ends the pN token first.
            let last = name.rsplit([',', '+', '-']).next().unwrap_or("");
            let pn = |t: &str| {
                t.len() > 1 && t.starts_with('p') && t[1..].bytes().all(|b| b.is_ascii_digit())
            };
            let sep = if pn(last) && drop[0].name.starts_with('p') {
                " -"
            } else {
                "-"
            };
            name = format!("{name}{sep}{}", names(drop));
        }
        let add: Vec<&'static Patch> = add
            .iter()
            .copied()
            .filter(|p| !set.iter().any(|q| q.name == p.name))
            .collect();
        if !add.is_empty() {
            name = format!("{name}+{}", names(&add));
            set.extend(add);
        }
        Kernel::of(name, set)
    }

    /// The changes this kernel carries, one bit per [`Change`].
    pub fn change_mask(&self) -> u64 {
        self.changes
    }

    /// The changes whose gates were consulted since the last [`Kernel::reset_reached`].
    pub fn reached(&self) -> u64 {
        self.reached.load(Relaxed)
    }

    pub fn reset_reached(&self) {
        self.reached.store(0, Relaxed);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn patches(&self) -> &[&'static Patch] {
        &self.patches
    }

    /// Does this kernel carry the hunk that makes `c`?
    #[inline]
    pub fn has(&self, c: Change) -> bool {
        let bit = 1 << (c as u32);
        // A plain load first: the locked OR only the first time a gate is consulted.
        if self.reached.load(Relaxed) & bit == 0 {
            self.reached.fetch_or(bit, Relaxed);
        }
        self.changes & bit != 0
    }
}

/// Splits `+a,b-c+p1-p4` into (add?, list) groups; a `-` between `pN` and `pM` is a range.
fn groups(rest: &str) -> Vec<(bool, String)> {
    let chars: Vec<char> = rest.chars().collect();
    let mut out: Vec<(bool, String)> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let in_range = c == '-'
            && chars.get(i + 1) == Some(&'p')
            && out
                .last()
                .and_then(|(_, s)| s.rsplit(',').next())
                .is_some_and(|t| {
                    t.len() > 1 && t.starts_with('p') && t[1..].chars().all(|d| d.is_ascii_digit())
                });
        match (c, out.last_mut()) {
            ('+' | '-', _) if !in_range => out.push((c == '+', String::new())),
            (_, Some((_, s))) => s.push(c),
            (_, None) => unreachable!("groups() starts at a + or -"),
        }
    }
    out
}

fn expand(item: &str) -> Result<Vec<String>, String> {
    if item == "v2" {
        return Ok((1..=11).map(|i| format!("p{i}")).collect());
    }
    if let Some((a, b)) = item.split_once('-') {
        let num = |s: &str| s.strip_prefix('p').and_then(|n| n.parse::<u32>().ok());
        return match (num(a), num(b)) {
            (Some(x), Some(y)) if x <= y => Ok((x..=y).map(|i| format!("p{i}")).collect()),
            _ => Err(format!(
                "bad patch range `{item}`: expected pN-pM with N <= M"
            )),
        };
    }
    Ok(vec![item.to_string()])
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An edited kernel's name parses back to the same patch set (`v6.7+p1,p2` without p2
    /// must not read as the range p1-p2).
    #[test]
    fn edited_names_parse_back() {
        for base in [
            "v6.7",
            "v6.9",
            "v7.3",
            "v6.7+v2",
            "v6.7+p1,p2",
            "v6.7+p1-p6",
            "v6.9-f52f5c71f3d4",
        ] {
            let k = Kernel::parse(base).unwrap();
            for drop in k.patches().iter().copied() {
                for add in PATCHES.iter().filter(|p| p.name != drop.name) {
                    let e = k.edit(&[drop], &[add]);
                    let back =
                        Kernel::parse(e.name()).unwrap_or_else(|err| panic!("{}: {err}", e.name()));
                    let names = |k: &Kernel| {
                        let mut v: Vec<&str> = k.patches().iter().map(|p| p.name).collect();
                        v.sort();
                        v
                    };
                    assert_eq!(names(&back), names(&e), "{}", e.name());
                }
            }
        }
    }

    #[test]
    fn named_kernels_carry_their_series() {
        let v67 = Kernel::parse("v6.7").unwrap();
        assert!(v67.has(C::StopSyncThreadViaDaemon) && v67.has(C::StripeAheadValidSectors));
        assert!(!v67.has(C::CheckRecoveryServesSuspended));
        let v2 = Kernel::parse("v6.7+v2").unwrap();
        assert!(v2.has(C::V2ReallyFrozen) && v2.has(C::V2ReshapeDisabledFailsIo));
        assert!(!v2.has(C::WaitReshapeRequeues) && !v2.has(C::MdRunKeepsDmFrozen));
        let v69 = Kernel::parse("v6.9").unwrap();
        assert!(v69.has(C::WaitReshapeRequeues) && v69.has(C::MergedReallyFrozen));
        assert!(!v69.has(C::V2ReallyFrozen) && !v69.has(C::V2NoMddevSuspend));
        assert_eq!(v69.patches().len(), 2 + 15);
    }

    #[test]
    fn v7_3_is_v6_9_plus_the_later_gates() {
        let v73 = Kernel::parse("v7.3").unwrap();
        assert!(v73.has(C::WaitReshapeRequeues) && v73.has(C::MergedReallyFrozen));
        assert!(v73.has(C::DmSuspendingGatesRefusal) && v73.has(C::FinishReshapeInSyncThread));
        assert!(v73.has(C::PostsuspendReadOnly) && v73.has(C::StopWritesSkipsQuiesceForDmRo));
        assert!(!Kernel::parse("v6.9")
            .unwrap()
            .has(C::DmSuspendingGatesRefusal));
        // Both commits carry the same hunk: dropping one keeps the gate.
        assert!(Kernel::parse("v7.3-1d24d4c1ea1d")
            .unwrap()
            .has(C::DmSuspendingGatesRefusal));
        assert!(!Kernel::parse("v7.3-1d24d4c1ea1d-97cb8be0fd4c")
            .unwrap()
            .has(C::DmSuspendingGatesRefusal));
        assert!(Kernel::parse("v6.9+8ff59a72478d")
            .unwrap()
            .has(C::FinishReshapeInSyncThread));
    }

    #[test]
    fn subsets_ranges_and_removals() {
        let k = Kernel::parse("v6.7+p1,p2,p3-p4").unwrap();
        assert!(k.has(C::NoDirectReshapeRegistration) && !k.has(C::V2ReallyFrozen));
        let k = Kernel::parse("v6.7-c467e97f079f").unwrap();
        assert!(!k.has(C::StripeAheadValidSectors));
        let k = Kernel::parse("v6.9-41425f96d7aa+p11").unwrap();
        assert!(!k.has(C::WaitReshapeRequeues) && k.has(C::V2ReshapeDisabledFailsIo));
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(Kernel::parse("v6.8")
            .unwrap_err()
            .0
            .contains("unknown kernel"));
        assert!(Kernel::parse("v6.7+p12")
            .unwrap_err()
            .0
            .contains("unknown patch `p12`"));
        assert!(Kernel::parse("v6.7+p4-p1")
            .unwrap_err()
            .0
            .contains("bad patch range"));
        assert!(Kernel::parse("v6.7+")
            .unwrap_err()
            .0
            .contains("expected a patch name"));
    }
}
