//! Scenarios from bytes, valid by construction: every byte string decodes to a scenario the
//! runner accepts, and every generated scenario is "complete" in the sense a user would be:
//! a suspended device is resumed before the lvm actor ends, an md array frozen, limited or
//! made read-only through sysfs is released at the end of the admin actor. So a post-fix
//! kernel that hangs on a generated scenario is not waiting for the user.
//!
//! `lvconvert ... ; wait_for_sync` is not generated: a sync the user froze never finishes,
//! and that is not a kernel hang.

use crate::scenario::*;
use arbitrary::{Arbitrary, Result, Unstructured};
use md_model::md_h::Layout;

/// Limits of a generated scenario.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_ops: usize,
    pub max_schedule: usize,
    /// Give dm LVs a second administrator (`mon`: `dmsetup message` / `status` outside lvm's
    /// lock) one time in three.
    pub multi_admin: bool,
    /// Swarm testing (Groce et al., ISSTA 2012): each scenario first draws the subset of op
    /// kinds it may use, and a drawn op of another kind is drawn again (up to
    /// [`SWARM_REDRAWS`] times, then a `sleep`), so rare combinations of a few kinds get
    /// dense instead of being diluted by every other kind.
    pub swarm: bool,
}

/// How often a scenario under swarm testing redraws an op of a kind it left out.
pub const SWARM_REDRAWS: usize = 6;

/// The kind of an op for swarm testing (one bit each; ops that only wait are always kept).
fn swarm_kind(op: &Op) -> Option<u32> {
    Some(match op {
        Op::Load { .. } | Op::Reload { .. } => 0,
        Op::ReloadAtReshapeEnd { .. } | Op::SuspendAtReshapeEnd { .. } => 1,
        Op::Suspend { noflush: false, .. } => 2,
        Op::Suspend { noflush: true, .. } => 3,
        Op::Resume { .. } => 4,
        Op::Remove { .. } | Op::Deactivate { .. } | Op::Activate { .. } => 5,
        Op::Message { .. } => 6,
        Op::Status { .. } => 7,
        Op::Stripes { .. } => 8,
        Op::Stripesize { .. } => 9,
        Op::Retype { .. } => 10,
        Op::Repair { .. } | Op::Refresh { .. } => 11,
        Op::LegDevice { .. } => 12,
        Op::Mirrors { .. } => 13,
        Op::Permission { .. } => 14,
        Op::SyncAction { .. } => 15,
        Op::ArrayState { .. } => 16,
        Op::SyncMax { .. } | Op::RaidDisks { .. } => 17,
        Op::Read { .. } => 18,
        Op::Write { .. } => 19,
        Op::Fsck { .. } => 20,
        Op::Advance { .. } | Op::Delay { .. } | Op::Throttle { .. } => 21,
        Op::WaitForSync { .. } | Op::Sleep | Op::After(_) | Op::AfterOrDeadline(_) => return None,
    })
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops: 24,
            max_schedule: 64,
            multi_admin: true,
            swarm: false,
        }
    }
}

/// A layout of `level` (5 or 6).
fn layout(u: &mut Unstructured, level: u32) -> Result<Layout> {
    Ok(if level == 6 {
        *u.choose(&Layout::RAID6)?
    } else {
        *u.choose(&Layout::ALL)?
    })
}

fn range(u: &mut Unstructured, size: u64) -> Result<Range> {
    let len = u.int_in_range(1..=8)?;
    Ok(match u.int_in_range(0..=3)? {
        0 => Range::Abs {
            start: u.int_in_range(0..=size.saturating_sub(1))?,
            len,
        },
        1 => Range::Across(len),
        2 => Range::Ahead(len),
        _ => Range::Behind(len),
    })
}

const MESSAGES: [&str; 6] = ["idle", "frozen", "resync", "recover", "check", "repair"];

/// lvm-side ops. Raw reshape requests (`dmsetup load` with delta_disks / data_offset) are not
/// generated: dm-raid trusts the table's data_offset, and only lvm knows where the reshape
/// space is; lvm's own macros issue them.
fn dm_lvm_op(u: &mut Unstructured, a: &ArraySpec, legs: &mut u32) -> Result<Op> {
    let dev = a.name.clone();
    Ok(match u.int_in_range(0..=14)? {
        0..=2 => Op::Reload { dev },
        3 => Op::Suspend {
            dev,
            noflush: u.arbitrary()?,
        },
        4 => Op::Resume { dev },
        5 => Op::Message {
            dev,
            word: u.choose(&MESSAGES)?.to_string(),
        },
        6 => Op::Deactivate { dev },
        7 => Op::Activate { dev },
        8 | 9 if a.layout == Layout::Near2 => {
            // raid10: lvm adds a stripe (two images); asking for fewer is refused.
            let data = *legs / 2;
            let stripes = if u.ratio(4, 5)? {
                data + 1
            } else {
                (data - 1).max(2)
            };
            if stripes > data {
                *legs = stripes * 2;
            }
            Op::Stripes {
                dev,
                stripes,
                force: stripes < data,
            }
        }
        8 | 9 if a.layout == Layout::Linear => Op::Mirrors {
            // linear -> raid1 (or nothing: -m 0).
            dev,
            mirrors: u.int_in_range(0..=1)?,
        },
        8 | 9 if a.layout == Layout::Raid1 && u.ratio(1, 6)? => Op::Mirrors { dev, mirrors: 0 },
        8 | 9 if a.layout == Layout::Raid1 => {
            // raid1: an image more (rebuilt) or fewer (the last one dropped), 2 legs at least.
            let mirrors = if u.ratio(2, 3)? {
                *legs
            } else {
                (*legs - 1).saturating_sub(1).max(1)
            };
            if mirrors + 1 > *legs {
                *legs = mirrors + 1;
            }
            Op::Mirrors { dev, mirrors }
        }
        8 | 9 => {
            let parity = 1 + (a.layout.level() == 6) as u32;
            let data = *legs - parity;
            let stripes = if u.arbitrary()? {
                data + 1
            } else {
                data.saturating_sub(1).max(1 + parity)
            };
            let force = stripes < data;
            if stripes > data {
                *legs = stripes + parity;
            }
            Op::Stripes {
                dev,
                stripes,
                force,
            }
        }
        10 => Op::Stripesize {
            dev,
            chunk: u.int_in_range(1..=4)?,
        },
        11 if !a.layout.is_md() || u.ratio(1, 5)? => Op::Retype {
            // A takeover from striped (to raid5_n / raid6_n_6 / raid10; another raid5 / raid6
            // layout is lvm's interim conversion) or to striped.
            layout: if a.layout.is_md() {
                Layout::Striped
            } else {
                *u.choose(&[Layout::N, Layout::N6, Layout::Near2, Layout::Ls, Layout::Zr])?
            },
            dev,
        },
        11 => {
            // One time in three a takeover between raid5 and raid6 (lvm refuses what it
            // cannot take over, e.g. from raid1 / raid10).
            let level = match a.layout.level() {
                5 | 6 if u.ratio(1, 3)? => 11 - a.layout.level(),
                5 | 6 => a.layout.level(),
                _ => 5,
            };
            Op::Retype {
                layout: layout(u, level)?,
                dev,
            }
        }
        12 => Op::Remove { dev },
        13 => Op::Permission {
            dev,
            writable: u.arbitrary()?,
        },
        14 if a.layout == Layout::Raid1 => match u.int_in_range(0..=3)? {
            // A leg's device fails (or comes back), lvm repairs or refreshes.
            0 | 1 => Op::LegDevice {
                dev,
                leg: u.int_in_range(0..=*legs - 1)?,
                works: u.ratio(1, 3)?,
            },
            2 => Op::Repair { dev },
            _ => Op::Refresh { dev },
        },
        _ => Op::Sleep,
    })
}

/// A second administrator on a dm LV, outside lvm's VG lock: `dmsetup message` (what
/// `lvchange --syncaction` sends, or a script) and `dmsetup status` (dmeventd, a monitor).
/// Not a raw `dmsetup suspend` / `resume`: one landing inside an lvm command swaps in a
/// table lvm had loaded but not prepared (its rimages not yet relocated), a user error lvm
/// documents, not a kernel path.
fn monitor_op(u: &mut Unstructured, a: &ArraySpec) -> Result<Op> {
    let dev = a.name.clone();
    Ok(if u.ratio(1, 2)? {
        Op::Message {
            dev,
            word: u.choose(&MESSAGES)?.to_string(),
        }
    } else {
        Op::Status { dev }
    })
}

fn md_admin_op(u: &mut Unstructured, a: &ArraySpec) -> Result<Op> {
    let md = a.name.clone();
    Ok(match u.int_in_range(0..=6)? {
        0 | 1 => Op::SyncAction {
            md,
            word: u
                .choose(&["idle", "frozen", "resync", "check", "repair", "reshape"])?
                .to_string(),
        },
        2 => Op::ArrayState {
            md,
            word: u.choose(&["readonly", "read-auto", "active"])?.to_string(),
        },
        3 => Op::SyncMax {
            md,
            max: if u.arbitrary()? {
                Some(u.int_in_range(0..=(a.dev as u64))?)
            } else {
                None
            },
        },
        4 => Op::RaidDisks {
            md,
            disks: a.disks + u.int_in_range(0..=1)?,
        },
        5 => Op::Sleep,
        _ => Op::SyncAction {
            md,
            word: "idle".into(),
        },
    })
}

fn io_op(u: &mut Unstructured, a: &ArraySpec) -> Result<Op> {
    let data = match a.layout.level() {
        10 => a.disks / 2,
        1 => 1,
        6 => a.disks - 2,
        _ => a.disks - 1,
    };
    let size = u64::from(data) * a.dev as u64;
    let dev = a.name.clone();
    Ok(match u.int_in_range(0..=5)? {
        0 | 1 => Op::Read {
            dev,
            range: range(u, size)?,
        },
        2 | 3 => Op::Write {
            dev,
            range: range(u, size)?,
        },
        4 => Op::Fsck { dev },
        _ => Op::Sleep,
    })
}

/// Decodes a scenario from `u` within `lim`.
pub fn scenario(u: &mut Unstructured, lim: Limits) -> Result<Scenario> {
    let kind = if u.ratio(1, 5)? {
        ArrayKind::Md
    } else {
        ArrayKind::Dm
    };
    let chunk = u.int_in_range(1..=2)?;
    // A dm LV is raid10 (2 or 3 stripes, 2 mirrors) two times in twelve, raid1 (2 or 3 legs),
    // raid6 (3 or 4 stripes), striped (2 to 4 stripes) and linear one in twelve each; md
    // arrays stay raid5 (their sysfs raid_disks +1 would give raid10 an odd member count, and
    // the md raid1 paths are not modelled).
    let pick = if kind == ArrayKind::Dm {
        u.int_in_range(0..=11)?
    } else {
        9
    };
    let (raid10, raid1, raid6) = (pick < 2, pick == 2, pick == 3);
    let (striped, linear) = (pick == 10, pick == 11);
    let a = ArraySpec {
        name: if kind == ArrayKind::Dm {
            "lv".into()
        } else {
            "md0".into()
        },
        kind,
        layout: if raid10 {
            Layout::Near2
        } else if striped {
            Layout::Striped
        } else if linear {
            Layout::Linear
        } else if raid1 {
            Layout::Raid1
        } else {
            layout(u, if raid6 { 6 } else { 5 })?
        },
        disks: if raid10 {
            2 * u.int_in_range(2..=3)?
        } else if striped {
            u.int_in_range(2..=4)?
        } else if linear {
            1
        } else if raid1 {
            u.int_in_range(2..=3)?
        } else if raid6 {
            u.int_in_range(5..=6)?
        } else {
            u.int_in_range(3..=5)?
        },
        chunk,
        dev: chunk * u.int_in_range(4..=12)?,
        state: if u.ratio(1, 3)? {
            InitState::Resync
        } else {
            InitState::Clean
        },
    };
    let admin = if kind == ArrayKind::Dm { "lvm" } else { "adm" };
    let mut ops: Vec<(String, Op)> = Vec::new();
    if kind == ArrayKind::Dm {
        ops.push((
            admin.into(),
            Op::Activate {
                dev: a.name.clone(),
            },
        ));
    }
    let n = u.int_in_range(1..=lim.max_ops.max(1))?;
    let mut legs = a.disks;
    // A dm LV sometimes has a second administrator (`mon`) besides lvm.
    let actors: &[&str] = if lim.multi_admin && kind == ArrayKind::Dm && u.ratio(1, 3)? {
        &[admin, admin, "io0", "io1", "mon"]
    } else {
        &[admin, admin, "io0", "io1"]
    };
    // Swarm testing: the op kinds this scenario may use (at least one in two, on average).
    let kinds: u32 = if lim.swarm {
        u.arbitrary::<u32>()? | 1 << 18
    } else {
        !0
    };
    for _ in 0..n {
        let actor = *u.choose(actors)?;
        let mut draws = 0;
        let op = loop {
            let op = if actor == "mon" {
                monitor_op(u, &a)?
            } else if actor == admin {
                if kind == ArrayKind::Dm {
                    dm_lvm_op(u, &a, &mut legs)?
                } else {
                    md_admin_op(u, &a)?
                }
            } else {
                io_op(u, &a)?
            };
            if swarm_kind(&op).is_none_or(|k| kinds & (1 << k) != 0) {
                break op;
            }
            draws += 1;
            if draws > SWARM_REDRAWS || u.is_empty() {
                break Op::Sleep;
            }
        };
        ops.push((actor.to_string(), op));
    }
    let slen = u.int_in_range(0..=lim.max_schedule)?;
    let mut schedule = Vec::with_capacity(slen);
    for _ in 0..slen {
        schedule.push(u.arbitrary::<u8>()?);
    }
    let mut s = Scenario {
        comments: Vec::new(),
        arrays: vec![a],
        ops,
        schedule,
        expects: Vec::new(),
    };
    complete(&mut s);
    Ok(s)
}

const RELEASE: [&str; 3] = ["sync_max max", "array_state active", "sync_action idle"];

/// Completes the user's story: the admin actor resumes a dm device it left suspended, and
/// releases an md array it may have frozen, limited or made read-only. Idempotent.
pub fn complete(s: &mut Scenario) {
    for a in s.arrays.clone() {
        match a.kind {
            ArrayKind::Dm => {
                // Every actor resumes what it suspended, after its own last suspend: with two
                // administrators the ops interleave in any order, so another actor's resume
                // earlier in the file may run first (a resume of a running device is a
                // no-op). A remove or deactivation does not end a suspension: it can fail
                // (EBUSY while open) and leave the device suspended.
                let mut open: Vec<String> = Vec::new();
                for (who, op) in &s.ops {
                    match op {
                        Op::Suspend { dev, .. } if *dev == a.name && !open.contains(who) => {
                            open.push(who.clone());
                        }
                        Op::Resume { dev } | Op::Activate { dev } if *dev == a.name => {
                            open.retain(|o| o != who)
                        }
                        _ => {}
                    }
                }
                for who in open {
                    s.ops.push((
                        who,
                        Op::Resume {
                            dev: a.name.clone(),
                        },
                    ));
                }
            }
            ArrayKind::Md => {
                let admin = s
                    .ops
                    .iter()
                    .find(|(_, op)| {
                        matches!(
                            op,
                            Op::SyncAction { .. }
                                | Op::ArrayState { .. }
                                | Op::SyncMax { .. }
                                | Op::RaidDisks { .. }
                        )
                    })
                    .map(|(w, _)| w.clone());
                let Some(admin) = admin else { continue };
                let tail: Vec<String> = s
                    .ops
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|(_, op)| op.to_string())
                    .collect();
                let want: Vec<String> = RELEASE
                    .iter()
                    .map(|r| format!("sysfs {} {r}", a.name))
                    .collect();
                if tail != want {
                    let md = a.name.clone();
                    s.ops.push((
                        admin.clone(),
                        Op::SyncMax {
                            md: md.clone(),
                            max: None,
                        },
                    ));
                    s.ops.push((
                        admin.clone(),
                        Op::ArrayState {
                            md: md.clone(),
                            word: "active".into(),
                        },
                    ));
                    s.ops.push((
                        admin,
                        Op::SyncAction {
                            md,
                            word: "idle".into(),
                        },
                    ));
                }
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Scenario {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        scenario(u, Limits::default())
    }
}

/// A small deterministic byte source (xorshift64), one per job or campaign: the
/// same seed gives the same scenarios on every machine.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A fuzz input of 32..512 bytes.
    pub fn bytes(&mut self) -> Vec<u8> {
        let n = 32 + (self.next_u64() % 480) as usize;
        self.bytes_n(n)
    }
    pub fn bytes_n(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 32) as u8).collect()
    }
}

/// Decodes any byte string (a fuzz input) into a scenario.
pub fn from_bytes(data: &[u8], lim: Limits) -> Scenario {
    let mut u = Unstructured::new(data);
    scenario(&mut u, lim).unwrap_or_default()
}

/// A fuzz input: a scenario file if it parses as one (so the corpus seeds a campaign; a
/// mutated one is completed like a generated one), else generator bytes.
pub fn decode_input(data: &[u8]) -> Scenario {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mut s) = crate::text::parse(text) {
            if !s.arrays.is_empty() {
                complete(&mut s);
                return s;
            }
        }
    }
    from_bytes(data, Limits::default())
}
