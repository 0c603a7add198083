//! Real-kernel conformance: a scenario becomes a guest script for the conformance VM
//! (`conformance/guest/conform.sh` gives the functions and the line protocol), the VM's
//! console log is parsed back into the model's vocabulary, and the real outcome is held to
//! the set of outcomes the model reaches over many schedules of the same ops.
//!
//! What a real run can do differs from a model run in three ways, all by design:
//! * the first actor's ops run one after another in file order, each other actor's ops in a
//!   background shell started where its first op appears (each blocking op runs in the
//!   background and is polled against a deadline; a blocked op is recorded as blocked and the
//!   script goes on): one of the interleavings the model explores;
//! * the real LV is fixed (48 MiB raid5, 64 KiB chunks, lvm's reshape space), the model's is
//!   tiny; only the shape is carried over: the stripes, the layout, the ops, and IO positions
//!   relative to the reshape position (`ahead`, `across`, `behind`);
//! * the reshape is throttled while ops land and unthrottled for `wait_for_sync`, `fsck` and
//!   the end of the run, which waits for the reshape and checks the whole LV.

use crate::runner::{run, RunOptions, Tail};
use crate::scenario::{ArrayKind, InitState, Op, Range, Scenario, VerdictKind};
use md_model::md_h::Layout;
use md_model::Kernel;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The real kernels the conformance VM boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Real {
    V6_12,
    V6_1,
    /// The newest kernel of Debian's backports (7.3.4 when this was written).
    V7_3,
}

impl Real {
    pub fn parse(s: &str) -> Result<Real, String> {
        match s {
            "6.12" => Ok(Real::V6_12),
            "6.1" => Ok(Real::V6_1),
            "7.3" => Ok(Real::V7_3),
            _ => Err(format!(
                "unknown real kernel `{s}` (expected 6.12, 6.1 or 7.3)"
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Real::V6_12 => "6.12",
            Real::V6_1 => "6.1",
            Real::V7_3 => "7.3",
        }
    }
    /// The model kernel whose lifecycle the real one has: 6.12 carries the v6.9 rework, plus
    /// 3199a34bfaf7 (v6.11) and, in Debian's 6.12.118, the stable backport of b7ee30f0efd1;
    /// 7.3 the later changes of v7.3; 6.1 predates the v6.7 rework the model starts from, so
    /// it is a reference only.
    pub fn model(self) -> Option<&'static str> {
        match self {
            Real::V6_12 => Some("v6.9+3199a34bfaf7,b7ee30f0efd1"),
            Real::V6_1 => None,
            Real::V7_3 => Some("v7.3"),
        }
    }
}

/// Guest step name of op `i`.
fn step(i: usize) -> String {
    format!("op{i}")
}

fn where_(r: &Range) -> Result<&'static str, String> {
    match r {
        Range::Ahead(_) => Ok("ahead"),
        Range::Across(_) => Ok("across"),
        Range::Behind(_) => Ok("behind"),
        Range::Abs { .. } => Err(
            "absolute IO ranges are not translated (model blocks are not LV sectors): \
                 use ahead/across/behind"
                .into(),
        ),
    }
}

/// The guest's `throttle` line before the first throttled op since the last `unthrottle`.
fn throttle_once(throttled: &mut bool) -> &'static str {
    if std::mem::replace(throttled, true) {
        ""
    } else {
        "throttle\n"
    }
}

/// Translates `s` into a guest script, or says why a real kernel cannot run it.
pub fn translate(s: &Scenario) -> Result<String, String> {
    let [a] = s.arrays.as_slice() else {
        return Err(format!(
            "the VM runs one LV; the scenario has {} arrays",
            s.arrays.len()
        ));
    };
    if a.kind != ArrayKind::Dm {
        return Err(format!(
            "array {}: md arrays (sysfs) are not translated, only dm-raid LVs",
            a.name
        ));
    }
    if ![
        Layout::Ls,
        Layout::Zr,
        Layout::Near2,
        Layout::Raid1,
        Layout::Striped,
        Layout::Linear,
    ]
    .contains(&a.layout)
    {
        return Err(format!(
            "array {}: layout {:?}: lvcreate --type raid5 makes raid5_ls (--type raid6 \
             raid6_zr, --type raid10 raid10 near, --type raid1 raid1, --type striped / linear \
             those); other layouts are not translated",
            a.name, a.layout
        ));
    }
    if a.layout == Layout::Striped && !(2..=3).contains(&a.disks) {
        return Err(format!(
            "array {}: striped with {} stripes; the VM has 6 loop devices: 2 or 3 (room for \
             raid10's copies or raid6's P and Q)",
            a.name, a.disks
        ));
    }
    if a.layout == Layout::Near2 && a.disks != 4 {
        return Err(format!(
            "array {}: raid10 with {} disks; the VM has 6 loop devices: 2 stripes, grown to 3",
            a.name, a.disks
        ));
    }
    if a.state == InitState::Resync {
        return Err(format!(
            "array {}: `resync` (an LV activated before its initial sync) is not translated",
            a.name
        ));
    }
    if a.layout == Layout::Raid1 && !(2..=3).contains(&a.disks) {
        return Err(format!(
            "array {}: raid1 with {} legs; the VM has 6 loop devices: 2 or 3, and room to add",
            a.name, a.disks
        ));
    }
    if a.layout == Layout::Zr && a.disks != 5 {
        return Err(format!(
            "array {}: raid6 with {} disks; the VM has 6 loop devices: 3 stripes, grown to 4",
            a.name, a.disks
        ));
    }
    if a.layout.is_md() && a.layout != Layout::Raid1 && !(3..=5).contains(&a.disks) {
        return Err(format!(
            "array {}: {} disks; the VM has 6 loop devices and lvm needs one spare for a grow",
            a.name, a.disks
        ));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# generated by mdfuzz conform from a scenario; ops run in file order"
    );
    // The PVs on dm-delay devices when the scenario slows writes down.
    if s.ops.iter().any(|(_, o)| matches!(o, Op::Delay { .. })) {
        let _ = writeln!(out, "USE_DELAY=1");
    }
    // The scenario's writes carry a second generation of the pattern, so reading what they
    // replaced shows as a mismatch (the first generation alone cannot tell a lost write from
    // a done one): whenever the reference can follow them, i.e. every write is the first
    // actor's (done before its next op starts), or a leg fails (where writes get lost). The
    // first actor's ops run in the script's own shell (below).
    let main = s.ops.first().map(|(a, _)| a.as_str()).unwrap_or("");
    let writes_in_order = s
        .ops
        .iter()
        .all(|(a, o)| !matches!(o, Op::Write { .. }) || a == main);
    let writes = s.ops.iter().any(|(_, o)| matches!(o, Op::Write { .. }));
    if writes && writes_in_order || s.ops.iter().any(|(_, o)| matches!(o, Op::LegDevice { .. })) {
        let _ = writeln!(out, "GEN_WRITES=1");
    }
    // raid5 with the scenario's data stripes, 64 KiB chunks, 48 MiB, in sync.
    let create = match a.layout {
        Layout::Near2 => format!("create_lv raid10 {}", a.disks / 2),
        Layout::Raid1 => format!("create_lv_mirrors {}", a.disks - 1),
        Layout::Zr => format!("create_lv raid6 {}", a.disks - 2),
        Layout::Striped => format!("create_lv striped {}", a.disks),
        Layout::Linear => "create_lv_linear".to_string(),
        _ => format!("create_lv raid5 {}", a.disks - 1),
    };
    // A striped / linear LV has no sync to wait for (and no raid status to poll).
    let wait = if a.layout.is_md() { "\nwait_sync" } else { "" };
    let _ = writeln!(out, "setup_vg\n{create}{wait}");
    let _ = writeln!(out, "write_all setup_write");
    // The model's LV starts inactive: lvm activates it as the scenario's first op.
    let _ = writeln!(out, "step setup_deactivate lvchange -an vg/lv");
    let mut throttled = false;
    // The LV's raid level as the ops so far left it (a takeover changes it).
    let mut level = a.layout.level();
    let mut legs = a.disks;
    // Whether the LV is a raid LV now (a takeover to striped / linear and back changes it).
    let mut raid = a.layout.is_md();
    let mut lines = Vec::new();
    for (i, (_, op)) in s.ops.iter().enumerate() {
        let n = step(i);
        let dev = crate::lvm::op_array(op);
        if dev.is_some_and(|d| d != a.name) {
            return Err(format!("op {}: unknown device", i + 1));
        }
        let line = match op {
            Op::Activate { .. } => format!("step {n} lvchange -ay vg/lv"),
            Op::Deactivate { .. } => format!("step {n} lvchange -an vg/lv"),
            Op::Permission { writable, .. } => format!(
                "step {n} lvchange -p{} vg/lv",
                if *writable { "rw" } else { "r" }
            ),
            Op::Stripes { stripes, force, .. } => {
                let mut l = throttle_once(&mut throttled).to_string();
                if *force {
                    let _ = write!(l, "step {n} lvconvert -y --force --stripes {stripes} vg/lv");
                } else {
                    let _ = write!(l, "reshape_stripes {stripes} {n}");
                }
                // IO positions are relative to a reshape that has really started.
                let _ = write!(l, "\nwait_progress {n}_progress");
                l
            }
            Op::Mirrors { mirrors, .. } if *mirrors < legs => {
                // Images removed: nothing to rebuild, nothing to wait for (-m 0: linear).
                legs = mirrors + 1;
                raid = *mirrors > 0;
                level = if raid { 1 } else { 0 };
                format!("step -t 60 {n} lvconvert -y -m {mirrors} vg/lv")
            }
            Op::Mirrors { mirrors, .. } => {
                legs = mirrors + 1;
                raid = true;
                level = 1;
                let mut l = throttle_once(&mut throttled).to_string();
                // IO positions are relative to the recovery (raid1's status position).
                let _ = write!(
                    l,
                    "step -t 60 {n} lvconvert -y -m {mirrors} vg/lv\nwait_progress {n}_progress 15 recover"
                );
                l
            }
            Op::WaitForSync { .. } if !raid => {
                return Err(format!(
                    "op {}: wait_for_sync of a striped / linear LV (lvm's test library dies: \
                     no sync ratio)",
                    i + 1
                ))
            }
            Op::WaitForSync { .. } => {
                throttled = false;
                format!("unthrottle\nwait_reshape 60 {n}")
            }
            Op::Suspend { noflush, .. } => {
                format!("dm_suspend {n}{}", if *noflush { " --noflush" } else { "" })
            }
            Op::Resume { .. } => format!("dm_resume {n}"),
            Op::Message { word, .. } => format!("dm_message {n} {word}"),
            Op::Status { .. } => format!("step {n} dmsetup status vg-lv\nstatus {n}"),
            // The model's blocks per member scale to the real per-member sectors (the
            // status total M) in proportion: N of `dev` -> N * M / dev.
            Op::Advance { by, .. } => format!("advance {n} {by} {}", a.dev),
            Op::Delay { ms, .. } => format!("set_write_delay {n} {ms}"),
            Op::Stripesize { chunk, .. } => {
                // The VM's LV has 64 KiB chunks where the model's array has `a.chunk` blocks:
                // the same ratio.
                let kib = 64 * *chunk / a.chunk;
                if 64 * *chunk % a.chunk != 0 || !kib.is_power_of_two() || kib < 8 {
                    return Err(format!(
                        "op {}: stripe size {chunk} of {} blocks is no power-of-two multiple of \
                         the VM's 64 KiB",
                        i + 1,
                        a.chunk
                    ));
                }
                let mut l = throttle_once(&mut throttled).to_string();
                let _ = write!(
                    l,
                    "step -t 60 {n} lvconvert -y --stripesize {kib}k vg/lv\nwait_progress {n}_progress"
                );
                l
            }
            Op::Retype { layout, .. } if layout.level() != level => {
                // A takeover (raid5 <-> raid6, to or from striped / linear): lvm adds or
                // extracts images; no reshape to wait for (the new legs' recovery is what
                // wait_for_sync waits for).
                level = layout.level();
                raid = layout.is_md();
                format!("step -t 60 {n} lvconvert -y --type {} vg/lv", layout.name())
            }
            Op::Retype { layout, .. } => {
                let mut l = throttle_once(&mut throttled).to_string();
                let _ = write!(
                    l,
                    "step -t 60 {n} lvconvert -y --type {} vg/lv\nwait_progress {n}_progress",
                    layout.name()
                );
                l
            }
            Op::ReloadAtReshapeEnd { .. } => format!("reload_at_reshape_end {n}"),
            Op::SuspendAtReshapeEnd { noflush, .. } => format!(
                "suspend_at_reshape_end {n}{}",
                if *noflush { " --noflush" } else { "" }
            ),
            Op::Reload { .. } => {
                format!("step {n} sh -c 'dmsetup table vg-lv | dmsetup load vg-lv'")
            }
            Op::Refresh { .. } => format!("step {n} lvchange --refresh vg/lv"),
            Op::Repair { .. } => format!("step {n} lvconvert -y --repair vg/lv"),
            Op::LegDevice { leg, works, .. } => format!(
                "leg_device {n} {leg} {}",
                if *works { "work" } else { "fail" }
            ),
            Op::Read { range, .. } => format!("io_read {n} {}", where_(range)?),
            Op::Write { range, .. } => format!("io_write {n} {}", where_(range)?),
            Op::Fsck { .. } if !raid => format!("checksum {n}"),
            Op::Fsck { .. } => {
                throttled = false;
                format!("unthrottle\nwait_reshape 60 {n}_wait\nchecksum {n}")
            }
            Op::Sleep => format!("step {n} sleep 1"),
            Op::After(_) => {
                return Err(format!(
                    "op {}: `after` is model-only (the VM starts another actor's shell where its \
                     first op appears; the model is given the same order by itself)",
                    i + 1
                ))
            }
            other => {
                return Err(format!(
                    "op {} `{other}`: not translated (raw table loads, removes and md sysfs have \
                     no real counterpart in the VM's lvm set-up)",
                    i + 1
                ))
            }
        };
        lines.push(line);
    }
    // The first actor's ops run in the script's own shell; every other actor runs its ops in
    // a background shell started where its first op appears in the file (one of the orders
    // the model explores: an actor may be delayed).
    let mut started = BTreeSet::new();
    for (i, (actor, _)) in s.ops.iter().enumerate() {
        if actor == main {
            let _ = writeln!(out, "{}", lines[i]);
            // The status and the on-disk superblock after each op (= before the next).
            let _ = writeln!(out, "status {}\nsb {}", step(i), step(i));
        } else if started.insert(actor.as_str()) {
            let _ = writeln!(out, "( # actor {actor}");
            for (j, (a, _)) in s.ops.iter().enumerate() {
                if a == actor {
                    let _ = writeln!(out, "{}", lines[j]);
                }
            }
            let _ = writeln!(out, ") &\nactors=\"$actors $!\"");
        }
    }
    if !started.is_empty() {
        // Every step in them has a deadline, so the shells end. (A bare `wait` would also wait
        // for a blocked step's command, which may never return.)
        let _ = writeln!(out, "for p in $actors; do wait \"$p\"; done");
    }
    let _ = writeln!(out, "recheck 10");
    let _ = writeln!(out, "unthrottle");
    let _ = writeln!(out, "wait_reshape 60 final_wait");
    let _ = writeln!(out, "checksum final");
    let _ = writeln!(out, "sb final");
    let _ = writeln!(out, "recheck 5");
    // Kernel warnings, bugs, lockdep reports and hung tasks of the whole run.
    let _ = writeln!(out, "kmsg final '{KMSG_RE}'");
    Ok(out)
}

/// The kernel log lines a run reports (`KMSG final`): what the kernel itself flags.
const KMSG_RE: &str = "WARNING:|BUG:|Oops|circular locking|possible recursive locking|\
                       blocked for more than|io across reshape position|hung_task";

/// The guest steps of the fixed set-up before the scenario's first op.
const SETUP_STEPS: [&str; 4] = ["pvcreate", "vgcreate", "lvcreate", "setup_deactivate"];

/// What one real run showed, in the model's words.
#[derive(Clone, Debug, Default)]
pub struct RealRun {
    /// Per op: `ok`, an errno name, `failed` (another non-zero exit), `blocked` (never
    /// returned), with ` (late)` when it returned only after the step deadline.
    pub ops: Vec<String>,
    /// Per op of the first actor: `dmsetup status` right after it returned (or gave up).
    pub status: Vec<Option<String>>,
    /// The verdict: `pass`, `pass eio`, `hang`, `corruption`.
    pub verdict: String,
    /// Why (the lines that decided the verdict).
    pub evidence: Vec<String>,
    pub uptime_ms: Option<u64>,
    /// Per op of the first actor: the on-disk superblock after it (`events=.. reshape_position=..`).
    pub sb: Vec<Option<String>>,
    /// `BADMAP` of a mismatching checksum: runs of bad LV sectors and whose data they hold.
    pub badmap: Vec<String>,
    /// Kernel WARNING / BUG / Oops / lockdep lines: the kernel's own verdict on itself.
    pub warnings: Vec<String>,
    /// Hung-task reports (`INFO: task X blocked for more than N seconds`).
    pub hung_tasks: Vec<String>,
    /// `io across reshape position while reshape can't make progress` (6.12 raid456).
    pub io_across_refused: u32,
    /// `advance` ops: how far the reshape moved (`ok from=.. to=.. want=..`).
    pub advances: Vec<String>,
    /// Per op: guest uptime (ms) when it returned (late ones included), if it did.
    pub end_ms: Vec<Option<u64>>,
}

/// How many of the first actor's ops had returned when op `i` (of another actor) returned,
/// from a per-op order key (time or sequence): how long the op blocked, in the script's
/// own clock. Timing ops (`sleep`, `advance`, `delay`) do not count: when they end depends
/// on speeds the model does not share. None for ops of the first actor or an op that never
/// returned.
pub fn returned_after<T: PartialOrd + Copy>(
    s: &Scenario,
    order: &[Option<T>],
    i: usize,
) -> Option<usize> {
    let main = s.ops.first().map(|(a, _)| a.as_str())?;
    if s.ops[i].0 == main {
        return None;
    }
    let t = order.get(i).copied().flatten()?;
    Some(
        s.ops
            .iter()
            .enumerate()
            .filter(|(j, (a, o))| {
                a == main
                    && !matches!(o, Op::Sleep | Op::Advance { .. } | Op::Delay { .. })
                    && order.get(*j).copied().flatten().is_some_and(|u| u < t)
            })
            .count(),
    )
}

fn field<'a>(words: &'a [&str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses the console log of a run of `s`'s translation.
pub fn parse_log(s: &Scenario, log: &str) -> Result<RealRun, String> {
    let n = s.ops.len();
    let mut rc: Vec<Option<String>> = vec![None; n];
    let mut errno: Vec<Option<String>> = vec![None; n];
    let mut io: Vec<Option<String>> = vec![None; n];
    let mut late: BTreeMap<usize, String> = BTreeMap::new();
    let mut run = RealRun {
        status: vec![None; n],
        sb: vec![None; n],
        end_ms: vec![None; n],
        ..RealRun::default()
    };
    let mut done = false;
    let mut boot: Option<String> = None;
    let mut setup_failed: Vec<String> = Vec::new();
    let mut corrupt = Vec::new();
    let index = |name: &str| -> Option<usize> {
        name.strip_prefix("op")?
            .parse::<usize>()
            .ok()
            .filter(|&i| i < n)
    };
    for line in log.lines() {
        let line = line.trim_end_matches('\r');
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["BOOT", rest @ ..] => {
                if let Some(f) = field(rest, "modfail").filter(|f| *f != "0") {
                    setup_failed.push(format!("{f} kernel modules failed to load"));
                }
                boot = Some(rest.join(" "));
            }
            // The set-up (pvcreate, vgcreate, lvcreate, the pattern, the deactivation): a
            // failure there is the harness's, not the kernel's answer to the scenario.
            ["STEP", name, rest @ ..]
                if SETUP_STEPS.contains(name) && field(rest, "rc") != Some("0") =>
            {
                setup_failed.push(format!("set-up step {name}: {}", rest.join(" ")));
            }
            ["RESULT", "wait_sync", r, ..] if *r != "ok" => {
                setup_failed.push(format!("set-up: the new LV did not sync ({r})"));
            }
            ["IO", "setup_write", r, ..] if *r != "ok" => {
                setup_failed.push(format!("set-up: writing the pattern gave {r}"));
            }
            ["STEP", name, rest @ ..] => {
                if let Some(i) = index(name) {
                    if let Some(e) = field(rest, "end_ms").and_then(|v| v.parse().ok()) {
                        run.end_ms[i] = Some(e);
                    }
                    rc[i] = Some(if field(rest, "blocked") == Some("1") {
                        "blocked".into()
                    } else {
                        field(rest, "rc").unwrap_or("-").to_string()
                    });
                }
            }
            ["ERRNO", name, e, ..] => {
                if let Some(i) = index(name) {
                    errno[i] = Some(e.to_string());
                }
            }
            ["IO", name, result, ..] => {
                if *result == "mismatch" {
                    corrupt.push(line.to_string());
                }
                if let Some(i) = index(name) {
                    io[i] = Some(result.to_string());
                }
            }
            ["LATE", name, rest @ ..] => {
                if let Some(i) = index(name) {
                    if let Some(e) = field(rest, "end_ms").and_then(|v| v.parse().ok()) {
                        run.end_ms[i] = Some(e);
                    }
                    let r = if rest.first() == Some(&"still-blocked") {
                        "blocked".to_string()
                    } else {
                        field(rest, "rc").unwrap_or("-").to_string()
                    };
                    late.insert(i, r);
                }
            }
            ["RESULT", _, "mismatch", ..] => corrupt.push(line.to_string()),
            // wait_reshape's verdict for a wait_for_sync op (it has no STEP line).
            ["RESULT", name, r @ ("ok" | "timeout"), rest @ ..] => {
                if let Some(i) = index(name) {
                    if let Some(e) = field(rest, "end_ms").and_then(|v| v.parse().ok()) {
                        run.end_ms[i].get_or_insert(e);
                    }
                    rc[i].get_or_insert_with(|| {
                        if *r == "ok" { "0" } else { "blocked" }.to_string()
                    });
                }
            }
            ["RESULT", name, r, ..]
                if r.starts_with("rc=") && *r != "rc=0" && name.contains("fsck") =>
            {
                corrupt.push(line.to_string());
            }
            ["SB", name, rest @ ..] => {
                if let Some(i) = index(name) {
                    run.sb[i] = Some(rest.join(" "));
                }
            }
            ["BADMAP", name, rest @ ..] => run.badmap.push(format!("{name}: {}", rest.join(" "))),
            ["ADVANCE", name, result, rest @ ..] => {
                run.advances
                    .push(format!("{name} {result} {}", rest.join(" ")));
            }
            ["KMSG", _, rest @ ..] => {
                let l = rest.join(" ");
                if l.contains("blocked for more than") {
                    run.hung_tasks.push(l);
                } else if l.contains("io across reshape position") {
                    run.io_across_refused += 1;
                } else if [
                    "WARNING:",
                    "BUG:",
                    "Oops",
                    "circular locking",
                    "recursive locking",
                ]
                .iter()
                .any(|w| l.contains(w))
                {
                    run.warnings.push(l);
                }
            }
            ["STATUS", name, rest @ ..] => {
                if let Some(i) = index(name) {
                    run.status[i] = Some(rest.join(" "));
                }
            }
            ["DONE", rest @ ..] => {
                done = true;
                run.uptime_ms = field(rest, "uptime_ms").and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }
    if boot.is_none() {
        return Err("the VM log has no BOOT line (the guest never reached /init)".into());
    }
    if !done {
        return Err("the VM log has no DONE line (the guest did not finish)".into());
    }
    if !setup_failed.is_empty() {
        return Err(format!("harness: {}", setup_failed.join("; ")));
    }
    let mut hang = Vec::new();
    let mut eio = Vec::new();
    for i in 0..n {
        let word = |code: &str, i: usize| -> String {
            match code {
                "0" => "ok".into(),
                "blocked" => "blocked".into(),
                // advance's deadline passed with the reshape not moving, a window op found
                // no window (the model's words).
                _ if matches!(s.ops[i].1, Op::Advance { .. }) => "stalled".into(),
                _ if matches!(
                    s.ops[i].1,
                    Op::ReloadAtReshapeEnd { .. } | Op::SuspendAtReshapeEnd { .. }
                ) =>
                {
                    "missed".into()
                }
                _ => errno[i].clone().unwrap_or_else(|| "failed".into()),
            }
        };
        // The last IO line is the final one (a late IO prints a second one).
        let now = match (&io[i], &rc[i]) {
            (Some(r), _) if r == "blocked" => "blocked".to_string(),
            (Some(r), _) if r == "ok" || r == "mismatch" => "ok".to_string(),
            (Some(r), _) if r == "eio" => "EIO".to_string(),
            (Some(r), _) => r.to_uppercase(),
            (None, Some(code)) => word(code, i),
            (None, None) => "not-run".to_string(),
        };
        let result = if rc[i].as_deref() == Some("blocked") || now == "blocked" {
            match late.get(&i) {
                Some(code) if code == "blocked" || code == "-" => "blocked".to_string(),
                Some(_) if io[i].is_some() && now != "blocked" => format!("{now} (late)"),
                Some(code) => format!("{} (late)", word(code, i)),
                None => "blocked".to_string(),
            }
        } else {
            now
        };
        if result == "blocked" {
            hang.push(format!("op {} `{}` never returned", i + 1, s.ops[i].1));
        }
        if result.starts_with("EIO") && matches!(s.ops[i].1, Op::Read { .. } | Op::Write { .. }) {
            eio.push(format!("op {} `{}`: EIO", i + 1, s.ops[i].1));
        }
        run.ops.push(result);
    }
    (run.verdict, run.evidence) = if !corrupt.is_empty() {
        corrupt.extend(run.badmap.iter().map(|b| format!("BADMAP {b}")));
        ("corruption".into(), corrupt)
    } else if !hang.is_empty() {
        ("hang".into(), hang)
    } else if !eio.is_empty() {
        ("pass eio".into(), eio)
    } else {
        ("pass".into(), Vec::new())
    };
    Ok(run)
}

/// The outcomes the model reaches for `s` under `kernel` over the round-robin schedule, and
/// `runs` runs each of shuttle's random and PCT schedulers, for each of [`STEP_GAPS`].
#[derive(Clone, Debug, Default)]
pub struct ModelSet {
    /// Verdict in the real run's words (`pass`, `pass eio`, `hang`, `corruption`, or the
    /// model's own word for the rest) -> runs.
    pub verdicts: BTreeMap<String, u32>,
    /// The full model verdicts seen (`hang H1`, `pass eio`, ...).
    pub detailed: BTreeSet<String>,
    /// Per op: every result seen.
    pub ops: Vec<BTreeSet<String>>,
    /// Per op: every sync action seen when it returned.
    pub actions: Vec<BTreeSet<String>>,
    /// Per op of another actor than the first: how many of the first actor's ops had
    /// returned when it returned (`returned_after`), over the runs where it returned.
    pub after_main: Vec<BTreeSet<usize>>,
    /// Per verdict (real words), the first model run that gave it: its schedule tail and
    /// its detail (what hung where, what was read) - what a debt or a disagreement is about.
    pub examples: BTreeMap<String, (String, String)>,
}

pub fn real_words(v: VerdictKind, token: &str) -> String {
    match (v, token) {
        (VerdictKind::Pass, "eio") => "pass eio".into(),
        (VerdictKind::Pass, _) => "pass".into(),
        (VerdictKind::Hang, _) => "hang".into(),
        (VerdictKind::Corruption, _) => "corruption".into(),
        (other, _) => other.to_string(),
    }
}

/// Timer ticks the model puts between one of the first actor's steps and the next step: the
/// guest logs status and superblock after each (0.5-2 s of VM time, a throttled reshape
/// unit being about 0.5 s), and the model has no clock to say how many units that is, so
/// the outcome set is the union over these gaps. With no gap the model never let the
/// reshape reach a checkpoint between a reload and the suspend after it, which 6.12 did
/// (reload-during-reshape.scn corrupted, 2026-12-03).
pub const STEP_GAPS: [u32; 4] = [0, 1, 2, 4];

/// The scenario the model runs for a real run's outcome set, with the VM script's order:
/// every op is a step the guest runs in the background and polls against a deadline, so
/// each op runs as its own task that starts when the step before it in the script returned
/// or was given up on (`after N deadline`): the previous op of its actor, or, for the first
/// op of an actor other than the first, the first actor's op before it in the file (where
/// the script starts that actor's background shell), `gap` timer ticks later when that
/// step was the first actor's. Also returns, for each op of the result, the index of the
/// original op (None for an inserted `after`, `sleep` or `throttle`).
pub fn as_run_in_vm(s: &Scenario, gap: u32) -> (Scenario, Vec<Option<usize>>) {
    let mut out = s.clone();
    out.ops.clear();
    out.schedule.clear();
    let mut map: Vec<Option<usize>> = Vec::new();
    let main = s.ops.first().map(|(a, _)| a.clone()).unwrap_or_default();
    let mut last_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_main: Option<usize> = None;
    let mut throttled = false;
    for (i, (actor, op)) in s.ops.iter().enumerate() {
        let prev = last_of
            .get(actor)
            .copied()
            .or(if *actor == main { None } else { last_main });
        let task = format!("{actor}_{}", i + 1);
        if let Some(p) = prev {
            // `after` counts ops of the new list: p's new index.
            let new_p = map.iter().position(|&x| x == Some(p)).expect("mapped");
            out.ops.push((task.clone(), Op::AfterOrDeadline(new_p)));
            map.push(None);
            if s.ops[p].0 == main {
                for _ in 0..gap {
                    out.ops.push((task.clone(), Op::Sleep));
                    map.push(None);
                }
            }
        }
        // The guest's throttle, where `translate` puts it.
        let throttle = match op {
            Op::Stripes { .. } | Op::Stripesize { .. } if !throttled => Some(true),
            Op::WaitForSync { .. } | Op::Fsck { .. } if throttled => Some(false),
            _ => None,
        };
        if let Some(on) = throttle {
            throttled = on;
            out.ops.push((task.clone(), Op::Throttle { on }));
            map.push(None);
        }
        out.ops.push((task, op.clone()));
        map.push(Some(i));
        last_of.insert(actor.clone(), i);
        if *actor == main {
            last_main = Some(i);
        }
    }
    (out, map)
}

pub fn model_set(s: &Scenario, kernel: &Kernel, runs: u32) -> Result<ModelSet, String> {
    let mut set = ModelSet {
        ops: vec![BTreeSet::new(); s.ops.len()],
        actions: vec![BTreeSet::new(); s.ops.len()],
        after_main: vec![BTreeSet::new(); s.ops.len()],
        ..ModelSet::default()
    };
    let orig = s;
    let pct = Tail::pct(1, 3);
    let mut tails = vec![("round-robin".to_string(), Tail::RoundRobin)];
    for r in 0..runs {
        let seed = u64::from(r) + 1;
        tails.push((format!("shuttle random (seed {seed})"), Tail::random(seed)));
        tails.push((format!("shuttle PCT (run {})", r + 1), pct.clone()));
    }
    // The real run issues the ops in file order: no schedule prefix.
    let variants = STEP_GAPS.iter().map(|&g| (g, as_run_in_vm(orig, g)));
    let runs = variants.flat_map(|(g, (s, map))| {
        tails.iter().map(move |(what, tail)| {
            (
                format!("{what}, gap {g}"),
                tail.clone(),
                s.clone(),
                map.clone(),
            )
        })
    });
    for (what, tail, s, map) in runs {
        let o = run(
            &s,
            kernel,
            &RunOptions {
                tail,
                ..RunOptions::default()
            },
        )?;
        let words = real_words(o.verdict, &o.token);
        set.examples
            .entry(words.clone())
            .or_insert_with(|| (what, format!("{}: {}", o.short(), o.detail)));
        *set.verdicts.entry(words).or_default() += 1;
        set.detailed.insert(o.short());
        // The original ops' return order (inserted `after`s dropped).
        let mut order = vec![None; orig.ops.len()];
        for ((r, a), (o_idx, ord)) in o
            .op_results
            .iter()
            .zip(&o.op_actions)
            .zip(map.iter().zip(&o.op_order))
        {
            if let Some(i) = o_idx {
                set.ops[*i].insert(r.clone());
                set.actions[*i].insert(a.clone());
                order[*i] = *ord;
            }
        }
        for i in 0..orig.ops.len() {
            if let Some(n) = returned_after(orig, &order, i) {
                set.after_main[i].insert(n);
            }
        }
    }
    Ok(set)
}

/// The ops of one model run (round-robin tail) as trace lines, for a side-by-side report.
pub fn model_op_trace(s: &Scenario, kernel: &Kernel) -> Result<Vec<String>, String> {
    let (s, _) = as_run_in_vm(s, 0);
    let opts = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    let o = run(&s, kernel, &opts)?;
    Ok(o.trace
        .into_iter()
        .filter(|l| l.contains(" > ") || l.contains(" < ") || l.contains("EIO"))
        .collect())
}

const SYNC_ACTIONS: [&str; 7] = [
    "idle", "frozen", "reshape", "resync", "recover", "check", "repair",
];

/// Ops whose results the kernel itself returns (lvm's commands report through lvm, and their
/// exit codes are not the model's).
fn kernel_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Message { .. }
            | Op::Read { .. }
            | Op::Write { .. }
            | Op::Suspend { .. }
            | Op::Resume { .. }
            | Op::Status { .. }
    )
}

/// Open debts: outcomes the model reaches that no real run of the scenario has shown (a
/// verdict, or a kernel op's result). Each stays open until a real run shows it, or the
/// model is shown wrong.
pub fn debts(s: &Scenario, reals: &[&RealRun], model: &ModelSet) -> Vec<String> {
    let mut out = Vec::new();
    for v in model.verdicts.keys() {
        if !reals.iter().any(|r| &r.verdict == v) {
            out.push(format!("verdict `{v}` ({} model runs)", model.verdicts[v]));
        }
    }
    for (i, (_, op)) in s.ops.iter().enumerate() {
        if !kernel_op(op) {
            continue;
        }
        for r in &model.ops[i] {
            let seen = reals
                .iter()
                .any(|x| x.ops.get(i).map(|o| o.trim_end_matches(" (late)")) == Some(r.as_str()));
            if !seen {
                out.push(format!("op {} `{op}`: {r}", i + 1));
            }
        }
    }
    out
}

/// The disagreements of a real run with the model's set (empty: they agree).
pub fn compare(s: &Scenario, real: &RealRun, model: &ModelSet) -> Vec<String> {
    let mut out = Vec::new();
    if !model.verdicts.contains_key(&real.verdict) {
        out.push(format!(
            "verdict: real `{}` ({}) is not among the model's {:?}",
            real.verdict,
            real.evidence.join("; "),
            model.verdicts
        ));
    }
    if !real.warnings.is_empty() && !model.verdicts.contains_key("invariant-violation") {
        out.push(format!(
            "the kernel warned ({}); no model run broke an invariant",
            real.warnings.join("; ")
        ));
    }
    for (i, (_, op)) in s.ops.iter().enumerate() {
        let r = real.ops[i].trim_end_matches(" (late)");
        // What `dmsetup status` showed right after the op returned (first actor's ops; not
        // after a step the script gave up on).
        // (Ops with no array of their own, e.g. `sleep`: the model has nothing to say.)
        let action = real.status[i]
            .as_deref()
            // Timing ops (advance, delay) end wherever the reshape's speed puts them: the
            // model's reshape is not the real one's speed, so the action after them is
            // not the model's to predict.
            .filter(|_| {
                crate::lvm::op_array(op).is_some()
                    && !matches!(op, Op::Advance { .. } | Op::Delay { .. })
            })
            .and_then(|st| st.split_whitespace().nth(7))
            .filter(|a| SYNC_ACTIONS.contains(a));
        if let Some(a) = action {
            if real.ops[i] == r && r != "blocked" && !model.actions[i].contains(a) {
                out.push(format!(
                    "op {} `{op}`: real status `{a}` afterwards is not among the model's {:?}",
                    i + 1,
                    model.actions[i]
                ));
            }
        }
        // How long it blocked, in the first actor's ops that returned meanwhile.
        if let Some(n) = returned_after(s, &real.end_ms, i) {
            if kernel_op(op) && !model.after_main[i].is_empty() && !model.after_main[i].contains(&n)
            {
                out.push(format!(
                    "op {} `{op}` returned after {n} of the first actor's ops; the model's: {:?}",
                    i + 1,
                    model.after_main[i]
                ));
            }
        }
        if kernel_op(op) && !model.ops[i].contains(r) {
            out.push(format!(
                "op {} `{op}`: real {} is not among the model's {:?}",
                i + 1,
                real.ops[i],
                model.ops[i]
            ));
        }
    }
    out
}
