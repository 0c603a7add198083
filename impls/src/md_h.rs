//! drivers/md/md.h: the mddev, its recovery bits and the inline helpers.

use crate::raid5::R5Conf;
use crate::sched::{TaskId, ThreadId, Wq};

/// `enum recovery_flags`, in kernel bit order.
pub const MD_RECOVERY_RUNNING: u32 = 0;
pub const MD_RECOVERY_SYNC: u32 = 1;
pub const MD_RECOVERY_RECOVER: u32 = 2;
pub const MD_RECOVERY_INTR: u32 = 3;
pub const MD_RECOVERY_DONE: u32 = 4;
pub const MD_RECOVERY_NEEDED: u32 = 5;
pub const MD_RECOVERY_REQUESTED: u32 = 6;
pub const MD_RECOVERY_CHECK: u32 = 7;
pub const MD_RECOVERY_RESHAPE: u32 = 8;
pub const MD_RECOVERY_FROZEN: u32 = 9;
pub const MD_RECOVERY_ERROR: u32 = 10;
pub const MD_RECOVERY_WAIT: u32 = 11;

const RECOVERY_NAMES: [&str; 12] = [
    "RUNNING",
    "SYNC",
    "RECOVER",
    "INTR",
    "DONE",
    "NEEDED",
    "REQUESTED",
    "CHECK",
    "RESHAPE",
    "FROZEN",
    "ERROR",
    "WAIT",
];

/// `recovery` printed as `RUNNING|INTR|…` (or `-`).
pub fn recovery_str(r: u32) -> String {
    let s: Vec<&str> = (0..12)
        .filter(|b| r & (1 << b) != 0)
        .map(|b| RECOVERY_NAMES[b as usize])
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join("|")
    }
}

/// `mddev->sb_flags` bits.
pub const MD_SB_CHANGE_DEVS: u32 = 0;
pub const MD_SB_CHANGE_CLEAN: u32 = 1;
pub const MD_SB_CHANGE_PENDING: u32 = 2;

/// `MaxSector`: no reshape / clean array.
pub const MAX_SECTOR: u64 = u64::MAX;

/// Member devices an array's superblock describes (lvm allows 64 legs; the model 16).
pub const MAX_MEMBERS: usize = 16;

/// `struct md_rdev`, the per-instance state of one leg the lifecycle reads: `In_sync`,
/// `recovery_offset` (rebuilt up to here; reads below it may use the leg), `Faulty`,
/// `Blocked` (a failure the superblock has not recorded yet) and `raid_disk < 0` (removed
/// from the personality by remove_spares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rdev {
    pub in_sync: bool,
    pub recovery_offset: Sector,
    pub faulty: bool,
    pub blocked: bool,
    pub removed: bool,
}

impl Rdev {
    pub const IN_SYNC: Rdev = Rdev {
        in_sync: true,
        recovery_offset: MAX_SECTOR,
        faulty: false,
        blocked: false,
        removed: false,
    };
    /// A leg to rebuild from the start (`rebuild i`, a new device, or one that came back).
    pub const REBUILD: Rdev = Rdev {
        in_sync: false,
        recovery_offset: 0,
        faulty: false,
        blocked: false,
        removed: false,
    };
    /// A leg whose device cannot be read (its superblock neither): Faulty, out of the array.
    pub const FAILED: Rdev = Rdev {
        in_sync: false,
        recovery_offset: 0,
        faulty: true,
        blocked: false,
        removed: true,
    };
    /// `rdev_removeable()`: in the array, no IO pending, not Blocked, and Faulty or not
    /// In_sync.
    pub fn removeable(&self) -> bool {
        !self.removed && !self.blocked && (self.faulty || !self.in_sync)
    }
    /// `rdev_is_spare()`: in the array, neither In_sync nor Faulty.
    pub fn is_spare(&self) -> bool {
        !self.removed && !self.in_sync && !self.faulty
    }
    /// Holds current data for block `b` (read_balance's test).
    pub fn readable(&self, b: Sector) -> bool {
        !self.faulty && !self.removed && (self.in_sync || self.recovery_offset > b)
    }
}

/// `mddev->ro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ro {
    MdRdwr,
    MdRdonly,
    MdAutoRead,
}

/// One logical block of the array is the model's sector; chunks are counted in blocks.
pub type Sector = u64;

/// raid5 parity placement (`ALGORITHM_*`): which disk of a stripe holds parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    /// ALGORITHM_LEFT_ASYMMETRIC (raid5_la)
    La,
    /// ALGORITHM_RIGHT_ASYMMETRIC (raid5_ra)
    Ra,
    /// ALGORITHM_LEFT_SYMMETRIC (raid5_ls, lvm's default)
    Ls,
    /// ALGORITHM_RIGHT_SYMMETRIC (raid5_rs)
    Rs,
    /// ALGORITHM_PARITY_N (raid5_n)
    N,
    /// raid6, P and Q rotating: ALGORITHM_ROTATING_ZERO_RESTART (raid6_zr, lvm's `raid6`).
    Zr,
    /// ALGORITHM_ROTATING_N_RESTART (raid6_nr).
    Nr,
    /// ALGORITHM_ROTATING_N_CONTINUE (raid6_nc).
    Nc,
    /// raid6 with Q on the last device and P as the raid5 layout over the others
    /// (ALGORITHM_*_6, the takeover layouts): raid6_la_6, raid6_ra_6, raid6_ls_6, raid6_rs_6,
    /// raid6_n_6.
    La6,
    Ra6,
    Ls6,
    Rs6,
    N6,
    /// raid10 "near", two copies (md layout 0x102): lvm's `raid10` (`raid10_near`). Not a
    /// raid456 layout: the array is run by the raid10 personality.
    Near2,
    /// raid1: every leg a full copy (no layout, chunk 0 in the table; the model's chunk is
    /// only the unit a resync / recovery step copies).
    Raid1,
    /// lvm's `striped` segment: a dm-stripe table over the images (no md array). Data is
    /// placed as raid0 places it, which is why raid5_n / raid6_n_6 / raid10 take it over.
    Striped,
    /// lvm's `linear` segment: a dm-linear table over one image (no md array).
    Linear,
}

impl Layout {
    /// The raid5 layouts (a takeover between them and raid10 is not modelled).
    pub const ALL: [Layout; 5] = [Layout::La, Layout::Ra, Layout::Ls, Layout::Rs, Layout::N];
    /// The raid6 layouts.
    pub const RAID6: [Layout; 8] = [
        Layout::Zr,
        Layout::Nr,
        Layout::Nc,
        Layout::La6,
        Layout::Ra6,
        Layout::Ls6,
        Layout::Rs6,
        Layout::N6,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Layout::La => "raid5_la",
            Layout::Ra => "raid5_ra",
            Layout::Ls => "raid5_ls",
            Layout::Rs => "raid5_rs",
            Layout::N => "raid5_n",
            Layout::Zr => "raid6_zr",
            Layout::Nr => "raid6_nr",
            Layout::Nc => "raid6_nc",
            Layout::La6 => "raid6_la_6",
            Layout::Ra6 => "raid6_ra_6",
            Layout::Ls6 => "raid6_ls_6",
            Layout::Rs6 => "raid6_rs_6",
            Layout::N6 => "raid6_n_6",
            Layout::Near2 => "raid10",
            Layout::Raid1 => "raid1",
            Layout::Striped => "striped",
            Layout::Linear => "linear",
        }
    }
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "raid10" | "raid10_near" => return Some(Layout::Near2),
            "raid1" => return Some(Layout::Raid1),
            "striped" => return Some(Layout::Striped),
            "linear" => return Some(Layout::Linear),
            _ => {}
        }
        Layout::ALL.into_iter().chain(Layout::RAID6).find(|l| {
            l.name() == s
                || (s == "raid5" && *l == Layout::Ls)
                || (s == "raid6" && *l == Layout::Zr)
        })
    }
    /// The raid6 layout with Q on the last member that places data as this raid5 layout over
    /// one member less (rs_check_takeover's raid5_* -> raid6_*_6), and back.
    pub fn takeover_pair(self) -> Option<Layout> {
        let pairs = [
            (Layout::La, Layout::La6),
            (Layout::Ra, Layout::Ra6),
            (Layout::Ls, Layout::Ls6),
            (Layout::Rs, Layout::Rs6),
            (Layout::N, Layout::N6),
        ];
        pairs.iter().find_map(|&(a, b)| {
            if a == self {
                Some(b)
            } else if b == self {
                Some(a)
            } else {
                None
            }
        })
    }
    /// `mddev->level`: 1, 5, 6 or 10 (a change of level is a takeover); 0 for the dm targets
    /// that are not md arrays.
    pub fn level(self) -> u32 {
        match self {
            Layout::Striped | Layout::Linear => 0,
            Layout::Raid1 => 1,
            Layout::Near2 => 10,
            l if Layout::RAID6.contains(&l) => 6,
            _ => 5,
        }
    }
    /// A dm-raid (md) layout, as opposed to the dm-stripe / dm-linear segments.
    pub fn is_md(self) -> bool {
        !matches!(self, Layout::Striped | Layout::Linear)
    }
    /// `mddev->pers`: the personality an array of this layout runs.
    pub fn personality(self) -> Personality {
        match self {
            Layout::Near2 => Personality::Raid10,
            Layout::Raid1 => Personality::Raid1,
            Layout::Striped | Layout::Linear => unreachable!("{} is not an md array", self.name()),
            _ => Personality::Raid456,
        }
    }
}

/// `struct md_personality`: which personality's functions an array calls (md.c's
/// `mddev->pers->...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// raid5.c (raid4/5/6): has a `start` op (raid5_start).
    Raid456,
    /// raid10.c: no `start` op, so md_start does nothing for it.
    Raid10,
    /// raid1.c: no `start` op, no reshape thread (raid1_reshape changes the leg count at
    /// once); resync and recovery through md_do_sync.
    Raid1,
}

/// What raid456 needs to place data: disk count, parity layout, chunk (blocks), and where data
/// starts on each member (blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geo {
    pub raid_disks: u32,
    pub layout: Layout,
    pub chunk: u32,
    pub data_offset: u32,
}

impl Geo {
    /// Members' worth of data: raid_disks - 1 (raid5), raid_disks / 2 (raid10 near, 2 copies).
    pub fn data_disks(&self) -> u32 {
        match self.layout {
            Layout::Near2 => self.raid_disks / 2,
            Layout::Raid1 | Layout::Linear => 1,
            Layout::Striped => self.raid_disks,
            l if l.level() == 6 => self.raid_disks - 2,
            _ => self.raid_disks - 1,
        }
    }
}

/// The on-disk superblock every member carries: dm-raid's `struct dm_raid_superblock`
/// (dm-raid.c), the lifecycle fields, as `super_sync()` writes them and
/// `super_init_validation()` / `super_validate()` read them. Shared by every instance over
/// the same members: it is how a new table instance learns the geometry and the reshape
/// position. The current and the new layout / chunk are separate fields, and `delta_disks`
/// is written whether or not a reshape is active, as the kernel does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// False until the first `md_update_sb` of a new array (no magic: `FirstUse`).
    pub valid: bool,
    pub events: u64,
    /// `num_devices` = `mddev->raid_disks` (the new count while reshaping).
    pub num_devices: u32,
    /// `layout`, `stripe_sectors`: the current geometry.
    pub layout: Layout,
    pub chunk: u32,
    /// `new_layout`, `new_stripe_sectors`.
    pub new_layout: Layout,
    pub new_chunk: u32,
    pub delta_disks: i32,
    /// `data_offset` / `new_data_offset` (per rdev in the kernel; the same on every member
    /// here).
    pub data_offset: u32,
    pub new_data_offset: u32,
    /// `sectors`: rdev->sectors as super_sync writes it (the same on every leg here). After a
    /// backward reshape md_finish_reshape left it short of the table's per-leg size by the
    /// reshape space, so the next ctr sees a grow.
    pub sectors: u32,
    /// `reshape_position`; `SB_FLAG_RESHAPE_ACTIVE` is `!= MaxSector`.
    pub reshape_position: Sector,
    /// `SB_FLAG_RESHAPE_BACKWARDS`.
    pub reshape_backwards: bool,
    /// `array_resync_offset` (`recovery_cp`; MaxSector = clean).
    pub recovery_cp: Sector,
    /// `failed_devices`: the legs recorded as failed (super_sync sets a bit for every Faulty
    /// or missing leg; the next ctr takes them as Faulty, and super_validate re-adds one
    /// whose device is readable again for a full recovery).
    pub failed_devices: u32,
    /// `disk_recovery_offset` of each member's superblock (super_sync writes the rdev's
    /// `recovery_offset`; MaxSector = In_sync). Index = member.
    pub disk_recovery_offset: [Sector; MAX_MEMBERS],
    /// Model bookkeeping, not on disk: written by an instance whose end_reshape ran and whose
    /// raid5_finish_reshape did not (yet): "no reshape", yet layout / chunk still the
    /// previous ones over data in the new geometry (finding `sb-before-finish-reshape`).
    pub ended_unfinished: bool,
}

impl Superblock {
    /// The superblock of an assembled array with geometry `geo` and `sectors` per leg, in
    /// sync or needing its initial resync.
    pub fn new(geo: Geo, sectors: u32, needs_resync: bool) -> Superblock {
        Superblock {
            valid: true,
            events: 1,
            num_devices: geo.raid_disks,
            layout: geo.layout,
            chunk: geo.chunk,
            new_layout: geo.layout,
            new_chunk: geo.chunk,
            delta_disks: 0,
            data_offset: geo.data_offset,
            new_data_offset: geo.data_offset,
            sectors,
            reshape_position: MAX_SECTOR,
            reshape_backwards: false,
            recovery_cp: if needs_resync { 0 } else { MAX_SECTOR },
            disk_recovery_offset: [MAX_SECTOR; MAX_MEMBERS],
            failed_devices: 0,
            ended_unfinished: false,
        }
    }

    pub fn reshape_active(&self) -> bool {
        self.reshape_position != MAX_SECTOR
    }

    /// The geometry the data is in before the reshape position (the current one).
    pub fn cur_geo(&self) -> Geo {
        Geo {
            raid_disks: if self.reshape_active() {
                (self.num_devices as i32 - self.delta_disks) as u32
            } else {
                self.num_devices
            },
            layout: self.layout,
            chunk: self.chunk,
            data_offset: self.data_offset,
        }
    }

    /// The geometry being reshaped to (the only one when no reshape is active and nothing is
    /// inconclusive).
    pub fn new_geo(&self) -> Geo {
        Geo {
            raid_disks: self.num_devices,
            layout: self.new_layout,
            chunk: self.new_chunk,
            data_offset: self.new_data_offset,
        }
    }
}

/// The member devices of one array: superblock and data, shared by every mddev (table
/// instance) built over them.
#[derive(Clone, Debug)]
pub struct Members {
    pub name: String,
    pub sb: Superblock,
    /// Data blocks per member (the array's size is data_disks * dev_data).
    pub dev_data: u32,
    /// Blocks each member can hold (data area + reshape space).
    pub dev_blocks: u32,
    /// `disks[d][slot]`: the tag of what is stored there (0 = never written).
    pub disks: Vec<Vec<u64>>,
    /// `origin[d][slot]`: which task wrote that slot last, at which step (for corruption
    /// reports; task 0 and step 0 = the initial content).
    pub origin: Vec<Vec<(usize, u64)>>,
    /// A known model finding whose effect the superblock now carries (set by the instance the
    /// finding hit; a later ctr that reads it inherits the finding).
    pub sb_taint: Option<&'static str>,
    /// The smallest array_sectors any instance on these members has set (a stripe removal):
    /// the oracle forgets what lay beyond, even if the array grew again before anyone read.
    pub smallest_array: u64,
    /// Legs whose device fails every IO (a pulled disk, dm-flakey's error mode: lvm2's
    /// `aux disable_dev`), bit = member.
    pub failing: u32,
}

/// `struct mddev`, reduced to what the lifecycle touches.
pub struct Mddev {
    pub name: String,
    pub members: usize,
    /// `mddev->gendisk == NULL`: a dm-raid instance (`mddev_is_dm`).
    pub is_dm: bool,
    pub recovery: u32,
    pub ro: Ro,
    pub in_sync: bool,
    pub sb_flags: u32,
    /// `suspended` counter and the `active_io` percpu ref (live count + dying).
    pub suspended: u32,
    pub active_io: u32,
    pub active_io_dying: bool,
    pub suspend_mutex: Option<TaskId>,
    pub reconfig_mutex: Option<TaskId>,
    pub sync_mutex: Option<TaskId>,
    pub open_mutex_users: u32,
    pub thread: Option<ThreadId>,
    pub sync_thread: Option<ThreadId>,
    pub sync_work_pending: bool,
    pub sync_work_running: bool,
    pub sync_work_worker: Option<ThreadId>,
    /// `mddev->event_work` queued on md_misc_wq (dm-raid's do_table_event); the model runs
    /// it on the same worker as sync_work.
    pub event_work_pending: bool,
    pub sync_seq: u64,
    /// `mddev->disks`: one rdev per leg, index = raid_disk.
    pub rdevs: Vec<Rdev>,
    /// `MD_BROKEN`: the last In_sync leg failed; md stops recovery.
    pub broken: bool,
    /// `mddev->pers` (raid456 only) and its private `r5conf`.
    pub pers: bool,
    pub conf: Option<R5Conf>,
    pub geo: Geo,
    pub new_geo: Geo,
    pub delta_disks: i32,
    pub reshape_position: Sector,
    pub reshape_backwards: bool,
    /// Model bookkeeping: end_reshape ran (INTR clear), raid5_finish_reshape has not
    /// committed layout / chunk / delta_disks yet (or skipped it: INTR came in between).
    pub reshape_ended_unfinished: bool,
    /// `MD_DM_SUSPENDING` in `mddev->flags` (1d24d4c1ea1d): set by raid_presuspend, cleared
    /// by raid_postsuspend.
    pub dm_suspending: bool,
    pub recovery_cp: Sector,
    /// `rdev->sectors` of every leg (dm-raid keeps them equal).
    pub rdev_sectors: u32,
    pub resync_min: Sector,
    pub resync_max: Sector,
    pub curr_resync: Sector,
    pub curr_resync_completed: Sector,
    pub array_sectors: Sector,
    pub bitmap_loaded: bool,
    pub safemode: u32,
    /// `openers`: md arrays opened by a reader or writer (the block device of an md array;
    /// md_set_readonly refuses while anyone else has it open, so no write reaches a
    /// read-only array: md_write_start's BUG_ON).
    pub openers: u32,
    /// `writes_pending`: writes between md_write_start and md_write_end.
    pub writes_pending: u32,
    /// `safemode_timer` armed by md_write_end (safemode_delay, 200 ms: it fires at the next
    /// timer tick, which the runner gives every periodic wakeup).
    pub safemode_timer: bool,
    /// Set once md_stop / __md_stop ran (the instance is gone).
    pub stopped: bool,
    pub sb_wait: Wq,
    pub recovery_wait: Wq,
    pub mutex_wait: Wq,
}

impl Mddev {
    #[inline]
    pub fn test(&self, bit: u32) -> bool {
        self.recovery & (1 << bit) != 0
    }

    /// The loop of raid1_spare_active / raid5_spare_active: a leg that is not In_sync and
    /// whose recovery_offset reached MaxSector becomes In_sync; returns how many did.
    pub fn activate_recovered_legs(&mut self) -> u32 {
        let mut count = 0;
        for r in self.rdevs.iter_mut() {
            if r.is_spare() && r.recovery_offset == MAX_SECTOR {
                r.in_sync = true;
                count += 1;
            }
        }
        count
    }
}

/// `md_is_rdwr()` (md.h since 314e9af06551; static in md.c before).
pub fn md_is_rdwr(m: &Mddev) -> bool {
    m.ro == Ro::MdRdwr
}

/// `reshape_interrupted()` (503f9d43790f).
pub fn reshape_interrupted(m: &Mddev) -> bool {
    if m.reshape_position == MAX_SECTOR {
        return false;
    }
    if !m.test(MD_RECOVERY_RUNNING) {
        return true;
    }
    m.test(MD_RECOVERY_WAIT) || m.test(MD_RECOVERY_INTR) || m.test(MD_RECOVERY_FROZEN)
}

/// raid5.c `reshape_disabled()` of v2 p11: the array cannot make reshape progress.
pub fn reshape_disabled(m: &Mddev) -> bool {
    !md_is_rdwr(m) || m.test(MD_RECOVERY_WAIT) || m.test(MD_RECOVERY_FROZEN)
}
