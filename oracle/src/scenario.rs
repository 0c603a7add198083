//! A scenario: the arrays, the ops each actor issues (in order; actors run concurrently), the
//! schedule prefix, and the verdict expected under each kernel.

use md_model::md_h::Layout;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayKind {
    /// An lvm raid LV: a dm device whose raid table lvm manages.
    Dm,
    /// An md array assembled with mdadm, driven through sysfs.
    Md,
}

/// What the members hold at the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// In sync (recovery_cp = MaxSector).
    Clean,
    /// Needs its initial resync (recovery_cp = 0).
    Resync,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArraySpec {
    pub name: String,
    pub kind: ArrayKind,
    pub layout: Layout,
    pub disks: u32,
    /// Chunk size in blocks.
    pub chunk: u32,
    /// Data blocks per member.
    pub dev: u32,
    pub state: InitState,
}

/// A bio's range: absolute, or relative to the reshape position when the bio is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Abs {
        start: u64,
        len: u64,
    },
    /// Not yet reshaped, right at the position.
    Ahead(u64),
    /// Straddling the position.
    Across(u64),
    /// Already reshaped, right behind the position.
    Behind(u64),
}

/// A `dmsetup load` table line is the dm-raid target's own `Table`.
pub use md_model::dm_raid::Table as TableArgs;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    // dmsetup
    Load {
        dev: String,
        table: TableArgs,
    },
    /// `dmsetup table DEV | dmsetup load DEV` (the same table again).
    Reload {
        dev: String,
    },
    /// The same load, issued while the reshape's end is on disk but not committed: after
    /// end_reshape's superblock write and before raid5_finish_reshape's (the window of
    /// finding `sb-before-finish-reshape`). It waits for that window; `missed` if the
    /// reshape committed its end first, or there is no reshape to end.
    ReloadAtReshapeEnd {
        dev: String,
    },
    /// `dmsetup suspend` issued as soon as the status reads the reshape ended (end_reshape
    /// ran, DONE is set: idle with the new data offset), racing the daemon's reap (the window
    /// of finding `intr-after-end-reshape`); immediately if there is no reshape.
    SuspendAtReshapeEnd {
        dev: String,
        noflush: bool,
    },
    Suspend {
        dev: String,
        noflush: bool,
    },
    Resume {
        dev: String,
    },
    Remove {
        dev: String,
    },
    Message {
        dev: String,
        word: String,
    },
    /// `dmsetup status DEV`: reads the sync action (another process polling, as a monitor
    /// or lvm's wait_for_sync does).
    Status {
        dev: String,
    },
    // lvm (expanded at run time into the dm sequence lvm issues; see lvm.rs)
    Activate {
        dev: String,
    },
    Deactivate {
        dev: String,
    },
    Stripes {
        dev: String,
        stripes: u32,
        force: bool,
    },
    Stripesize {
        dev: String,
        chunk: u32,
    },
    Retype {
        dev: String,
        layout: Layout,
    },
    /// `lvconvert --repair`: failed images replaced by new ones, rebuilt.
    Repair {
        dev: String,
    },
    /// `lvchange --refresh`: suspend and resume the LV (dm-raid then re-adds failed legs whose
    /// devices read again).
    Refresh {
        dev: String,
    },
    /// lvm2's test library `aux disable_dev` (every IO to the leg's device fails from now on)
    /// and `aux enable_dev` (it works again).
    LegDevice {
        dev: String,
        leg: u32,
        works: bool,
    },
    /// `lvconvert -m N` on a raid1 LV: N + 1 images.
    Mirrors {
        dev: String,
        mirrors: u32,
    },
    WaitForSync {
        dev: String,
    },
    /// `lvchange -pr` (writable false) / `lvchange -prw`.
    Permission {
        dev: String,
        writable: bool,
    },
    // md sysfs
    SyncAction {
        md: String,
        word: String,
    },
    ArrayState {
        md: String,
        word: String,
    },
    SyncMax {
        md: String,
        max: Option<u64>,
    },
    RaidDisks {
        md: String,
        disks: u32,
    },
    // IO
    Read {
        dev: String,
        range: Range,
    },
    Write {
        dev: String,
        range: Range,
    },
    /// `fsck -fn`: a full read, checked against the shadow copy.
    Fsck {
        dev: String,
    },
    /// Wait until the reshape's checkpoint (the superblock's reshape_position) has moved by
    /// `by` blocks per member, the reshape has ended, or [`ADVANCE_QUIET_TICKS`] quiescent
    /// ticks passed without that (the reshape is stalled): the window a real script opens by
    /// waiting on `dmsetup status` between two commands.
    Advance {
        dev: String,
        by: u32,
    },
    /// Slow the writes of the array's member devices to `ms` milliseconds each (dm-delay under
    /// the PVs in the VM, as lvm2's `aux delay_dev`): a timing knob that widens windows on a
    /// real kernel. The model has no time: a no-op there.
    Delay {
        dev: String,
        ms: u32,
    },
    /// `throttle on|off`: `/proc/sys/dev/raid/speed_limit_max` low (500 KiB/s) or back up:
    /// while on, a sync thread does one unit per timer tick (the conformance guest throttles
    /// the reshape while ops land; the model's runs for a real run do the same).
    Throttle {
        on: bool,
    },
    /// Wait for the next timer tick.
    Sleep,
    /// Wait until op N (0-based here, 1-based in the text) of any actor has returned: the
    /// order of a script that starts a background job after a command.
    After(usize),
    /// `after N deadline`: the same, or until [`ADVANCE_QUIET_TICKS`] quiescent ticks passed
    /// with op N still blocked: a script that polls a background step against a deadline
    /// and goes on without it (the conformance guest's `step`).
    AfterOrDeadline(usize),
}

/// Quiescent ticks in a row with nothing progressing after which an `advance` or a step
/// deadline (`after N deadline`) gives up on a stalled reshape / a blocked step.
pub const ADVANCE_QUIET_TICKS: u64 = 2;
/// Ticks after which `after N deadline` gives up on a step even while the (throttled) sync
/// progresses: the guest's 20 s step deadline, at about a throttled reshape unit per 0.5 s.
pub const STEP_DEADLINE_TICKS: u64 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    Pass,
    Hang,
    Corruption,
    UnexpectedIoError,
    InvariantViolation,
}

impl VerdictKind {
    pub const ALL: [VerdictKind; 5] = [
        VerdictKind::Pass,
        VerdictKind::Hang,
        VerdictKind::Corruption,
        VerdictKind::UnexpectedIoError,
        VerdictKind::InvariantViolation,
    ];
    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::Pass => "pass",
            VerdictKind::Hang => "hang",
            VerdictKind::Corruption => "corruption",
            VerdictKind::UnexpectedIoError => "unexpected-io-error",
            VerdictKind::InvariantViolation => "invariant-violation",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `expect KERNEL VERDICT [TOKEN]`: the token (a mechanism like H3, an invariant name, `eio`)
/// must match too when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub kernel: String,
    pub verdict: VerdictKind,
    pub token: Option<String>,
}

impl Expect {
    /// `VERDICT [TOKEN]` (e.g. `hang H1`, `corruption`) for `kernel`.
    pub fn parse_verdict(kernel: &str, spec: &str) -> Result<Expect, String> {
        let mut words = spec.split_whitespace();
        let v = words.next().unwrap_or("");
        let verdict = VerdictKind::ALL
            .into_iter()
            .find(|x| x.name() == v)
            .ok_or_else(|| {
                let names: Vec<&str> = VerdictKind::ALL.iter().map(|x| x.name()).collect();
                format!(
                    "unknown verdict `{v}` (expected one of {})",
                    names.join(", ")
                )
            })?;
        let token = words.next().map(|t| t.to_string());
        if let Some(extra) = words.next() {
            return Err(format!("unexpected `{extra}` after the verdict token"));
        }
        if let Some(t) = &token {
            let known = crate::verdict::tokens(verdict);
            if !known.contains(&t.as_str()) {
                return Err(format!(
                    "unknown token `{}` for `{}` (expected one of: {})",
                    crate::text::cut(t),
                    verdict.name(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(Expect {
            kernel: kernel.to_string(),
            verdict,
            token,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scenario {
    /// Leading comment lines (without `# `), kept for printing.
    pub comments: Vec<String>,
    pub arrays: Vec<ArraySpec>,
    pub ops: Vec<(String, Op)>,
    pub schedule: Vec<u8>,
    pub expects: Vec<Expect>,
}

impl Scenario {
    /// Actor names in order of first appearance.
    pub fn actors(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for (a, _) in &self.ops {
            if !v.contains(a) {
                v.push(a.clone());
            }
        }
        v
    }

    pub fn array(&self, name: &str) -> Option<&ArraySpec> {
        self.arrays.iter().find(|a| a.name == name)
    }
}
