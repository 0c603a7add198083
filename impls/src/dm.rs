//! drivers/md/dm.c + dm-ioctl.c: a mapped device with a live and an inactive table, table
//! load (the new target instance is constructed while the old one is live), suspend
//! (presuspend, block new IO, drain in-flight bios, postsuspend), resume (swap, preresume,
//! resume, reissue deferred IO, old dtr), remove, message, and DM_MAPIO_REQUEUE.
//!
//! Deferred bios are reissued by the submitting context once the device unblocks (dm's
//! `dm_wq_work` does it in a worker in the kernel; the blocking structure is the same: the
//! bio is not in flight while deferred, and is mapped again against the live table).

use crate::dm_linear::{self, LinearC};
use crate::dm_raid::{self, MapResult, Table};
use crate::dm_stripe::{self, StripeC};
use crate::enter;
use crate::md::{Errno, EBUSY, EINVAL, EIO, ENXIO};
use crate::md_h::Layout;
use crate::sched::{Bio, BioId, DevId, MdId, TaskId, Wq, K};

/// A table's target (one per table here): its type and the instance `ctr` built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmTarget {
    /// dm-raid: the raid_set / mddev instance.
    Raid(MdId),
    /// dm-stripe.
    Stripe(StripeC),
    /// dm-linear.
    Linear(LinearC),
}

impl DmTarget {
    /// The dm-raid instance, if this is a raid target.
    pub fn md(self) -> Option<MdId> {
        match self {
            DmTarget::Raid(m) => Some(m),
            _ => None,
        }
    }
}

/// `struct mapped_device`, reduced.
#[derive(Clone, Debug)]
pub struct MappedDevice {
    pub name: String,
    pub members: usize,
    /// The target of the live and of the inactive table.
    pub live: Option<DmTarget>,
    pub inactive: Option<DmTarget>,
    /// The tables themselves (`struct dm_table`'s target line), live and inactive.
    pub live_table: Option<Table>,
    pub inactive_table: Option<Table>,
    /// DMF_SUSPENDED.
    pub suspended: bool,
    /// DMF_BLOCK_IO_FOR_SUSPEND: new bios are deferred.
    pub block_io: bool,
    /// DMF_NOFLUSH_SUSPENDING.
    pub noflush_suspending: bool,
    /// Bios inside the target's map function.
    pub in_flight: u32,
    pub removed: bool,
    /// `md->suspend_lock` (dm ioctls that suspend/resume serialize on it).
    pub suspend_lock: Option<TaskId>,
    pub wait: Wq,
    /// Instances constructed for this device so far (names `lv#1`, `lv#2`, ...).
    pub instances: u32,
    /// Openers of the block device (`dm_open_count`): a remove is refused while open.
    pub open_count: u32,
    /// DMF_DELETING: a remove passed its open check; new opens fail.
    pub deleting: bool,
    /// The live table's mode lacks FMODE_WRITE (`dmsetup load --readonly`, lvm's
    /// `lvchange -pr`): `__bind` marks the disk read-only, so opens for writing fail.
    pub read_only: bool,
    /// The same for the inactive table, applied when it is swapped in.
    pub inactive_read_only: bool,
    /// Readers of a table under `dm_get_live_table()` (the SRCU read side md->io_barrier):
    /// a message or a bio being mapped. `dm_sync_table()` waits for them before a table is
    /// destroyed and in `__dm_suspend()`.
    pub table_readers: u32,
}

impl MappedDevice {
    /// The dm-raid instance of the live table (none for a striped / linear table).
    pub fn live_md(&self) -> Option<MdId> {
        self.live.and_then(DmTarget::md)
    }
}

/// `dm_table_destroy()` -> the target's `dtr` (dm-stripe and dm-linear only drop their
/// device references).
fn dm_table_destroy(k: &mut K, t: DmTarget) {
    if let DmTarget::Raid(m) = t {
        dm_raid::raid_dtr(k, m);
    }
}

/// `dm_table_create()` + the target's `ctr`, by the table's target type.
fn dm_table_ctr(k: &mut K, d: DevId, table: &Table) -> Result<DmTarget, Errno> {
    let off = table.data_offset.unwrap_or(0);
    match table.layout {
        Layout::Striped => {
            dm_stripe::stripe_ctr(k, d, table.legs, table.chunk, off).map(DmTarget::Stripe)
        }
        Layout::Linear if table.legs == 1 => dm_linear::linear_ctr(k, d, off).map(DmTarget::Linear),
        Layout::Linear => Err(EINVAL),
        _ => dm_raid::raid_ctr(k, d, table).map(DmTarget::Raid),
    }
}

/// `dm_sync_table()` (synchronize_srcu on md->io_barrier): wait until no reader holds a table
/// it got from dm_get_live_table.
fn dm_sync_table(k: &mut K, d: DevId) {
    let q = k.dms[d].wait;
    k.sleep(
        q,
        "synchronize_srcu(io_barrier): waiting for table readers",
        |w| w.dms[d].table_readers == 0,
    );
}

/// `dm_create()` (`dmsetup create` without a table, or lvm's CREATE).
pub fn dm_create(k: &mut K, name: &str, members: usize) -> DevId {
    let wait = k.new_wq(format!("{name}.wait"));
    k.dms.push(MappedDevice {
        name: name.to_string(),
        members,
        live: None,
        inactive: None,
        live_table: None,
        inactive_table: None,
        suspended: false,
        block_io: false,
        noflush_suspending: false,
        in_flight: 0,
        removed: false,
        suspend_lock: None,
        wait,
        instances: 0,
        open_count: 0,
        deleting: false,
        read_only: false,
        inactive_read_only: false,
        table_readers: 0,
    });
    k.dms.len() - 1
}

fn suspend_lock(k: &mut K, d: DevId) {
    let q = k.dms[d].wait;
    k.sleep(q, "dm: waiting for suspend_lock", |w| {
        w.dms[d].suspend_lock.is_none()
    });
    k.dms[d].suspend_lock = Some(k.cx.task);
}

fn suspend_unlock(k: &mut K, d: DevId) {
    k.dms[d].suspend_lock = None;
    let q = k.dms[d].wait;
    k.wake_up(q);
}

/// `table_load()`: construct the new target instance while the old table stays live. A
/// previous inactive table is destroyed.
pub fn table_load(k: &mut K, d: DevId, table: &Table) -> Result<(), Errno> {
    table_load_mode(k, d, table, false)
}

/// `table_load()` with the table's mode: `read_only` = DM_READONLY_FLAG (no FMODE_WRITE).
/// dm-raid's constructor does not look at the mode.
pub fn table_load_mode(k: &mut K, d: DevId, table: &Table, read_only: bool) -> Result<(), Errno> {
    enter!(k, "table_load");
    if k.dms[d].removed {
        return Err(ENXIO);
    }
    let t = dm_table_ctr(k, d, table)?;
    if let Some(old) = k.dms[d].inactive.replace(t) {
        dm_table_destroy(k, old);
    }
    k.dms[d].inactive_table = Some(table.clone());
    k.dms[d].inactive_read_only = read_only;
    Ok(())
}

/// `dm_suspend()`.
pub fn dm_suspend(k: &mut K, d: DevId, noflush: bool) -> Result<(), Errno> {
    enter!(k, "dm_suspend");
    if k.dms[d].removed {
        return Err(ENXIO);
    }
    suspend_lock(k, d);
    let r = __dm_suspend(k, d, noflush);
    suspend_unlock(k, d);
    r
}

fn __dm_suspend(k: &mut K, d: DevId, noflush: bool) -> Result<(), Errno> {
    enter!(k, "__dm_suspend");
    if k.dms[d].suspended {
        return Err(EINVAL);
    }
    let Some(t) = k.dms[d].live else {
        k.dms[d].suspended = true;
        return Ok(());
    };
    let m = t.md();
    // DMF_NOFLUSH_SUSPENDING is set before presuspend (a bio the presuspend wakes may be
    // requeued already).
    k.dms[d].noflush_suspending = noflush;
    if let Some(m) = m {
        dm_raid::raid_presuspend(k, m);
    }
    k.pre();
    k.dms[d].block_io = true;
    // synchronize_srcu(&md->io_barrier): a message (target_message holds the live table)
    // or a bio still in dm_submit_bio finishes before the postsuspend runs.
    dm_sync_table(k, d);
    k.pre();
    let q = k.dms[d].wait;
    k.sleep(q, "dm_suspend: waiting for in-flight bios", |w| {
        w.dms[d].in_flight == 0
    });
    k.dms[d].noflush_suspending = false;
    dm_sync_table(k, d);
    if let Some(m) = m {
        dm_raid::raid_postsuspend(k, m);
    }
    k.dms[d].suspended = true;
    let name = k.dms[d].name.clone();
    k.trace(|| {
        format!(
            "dm {name} suspended{}",
            if noflush { " (noflush)" } else { "" }
        )
    });
    Ok(())
}

/// `do_resume()`: swap in the inactive table (suspending first if needed), preresume and
/// resume the live target, let deferred IO go, then destroy the old table.
pub fn do_resume(k: &mut K, d: DevId) -> Result<(), Errno> {
    enter!(k, "do_resume");
    if k.dms[d].removed {
        return Err(ENXIO);
    }
    suspend_lock(k, d);
    let mut old = None;
    if let Some(new) = k.dms[d].inactive {
        if !k.dms[d].suspended {
            // The implicit suspend uses the RESUME ioctl's flags: flush.
            if let Err(e) = __dm_suspend(k, d, false) {
                suspend_unlock(k, d);
                return Err(e);
            }
        }
        k.dms[d].inactive = None;
        old = k.dms[d].live.replace(new);
        k.dms[d].live_table = k.dms[d].inactive_table.take();
        // dm_swap_table -> __bind: the disk takes the new table's mode.
        k.dms[d].read_only = k.dms[d].inactive_read_only;
    } else if !k.dms[d].suspended {
        suspend_unlock(k, d);
        return Ok(());
    }
    let Some(t) = k.dms[d].live else {
        // A device suspended without a table: nothing to resume but the flags.
        k.dms[d].suspended = false;
        k.dms[d].block_io = false;
        suspend_unlock(k, d);
        return Ok(());
    };
    if let Some(m) = t.md() {
        if let Err(e) = dm_raid::raid_preresume(k, m) {
            // dm_table_resume_targets failed: the device stays suspended.
            suspend_unlock(k, d);
            if let Some(o) = old {
                dm_table_destroy(k, o);
            }
            return Err(e);
        }
        dm_raid::raid_resume(k, m);
    }
    k.dms[d].suspended = false;
    k.dms[d].block_io = false;
    let q = k.dms[d].wait;
    k.wake_up(q);
    let name = k.dms[d].name.clone();
    k.trace(|| format!("dm {name} resumed"));
    suspend_unlock(k, d);
    if let Some(o) = old {
        // __bind() synced the table readers before the old table goes.
        dm_sync_table(k, d);
        dm_table_destroy(k, o);
    }
    Ok(())
}

/// `dev_remove()` -> `__dm_destroy()`: presuspend + postsuspend of an unsuspended device (no
/// drain in between), then the destructors.
pub fn dm_remove(k: &mut K, d: DevId) -> Result<(), Errno> {
    enter!(k, "dm_remove");
    if k.dms[d].removed {
        return Err(ENXIO);
    }
    // dm_lock_for_deletion(): refused while the device is open.
    if k.dms[d].open_count > 0 || k.dms[d].in_flight > 0 {
        return Err(EBUSY);
    }
    k.dms[d].deleting = true;
    // __hash_remove() destroys the inactive table first; dm_destroy() then suspends and
    // destroys the live one.
    if let Some(t) = k.dms[d].inactive.take() {
        dm_table_destroy(k, t);
    }
    k.dms[d].inactive_table = None;
    suspend_lock(k, d);
    if let Some(m) = k.dms[d].live_md() {
        if !k.dms[d].suspended {
            dm_raid::raid_presuspend(k, m);
            k.pre();
            dm_raid::raid_postsuspend(k, m);
        }
    }
    k.dms[d].removed = true;
    k.dms[d].deleting = false;
    k.dms[d].block_io = true;
    suspend_unlock(k, d);
    dm_sync_table(k, d);
    if let Some(t) = k.dms[d].live.take() {
        dm_table_destroy(k, t);
    }
    k.dms[d].live_table = None;
    let q = k.dms[d].wait;
    k.wake_up(q);
    Ok(())
}

/// `target_message()`.
pub fn target_message(k: &mut K, d: DevId, word: &str) -> Result<(), Errno> {
    enter!(k, "target_message");
    // A target without a `message` op: "Target does not support messages" (-EINVAL).
    let Some(m) = k.dms[d].live_md().filter(|_| !k.dms[d].removed) else {
        return Err(EINVAL);
    };
    // dm_get_live_table() ... dm_put_live_table(): the table (and its raid_set) cannot be
    // destroyed while the message runs.
    k.dms[d].table_readers += 1;
    let r = dm_raid::raid_message(k, m, word);
    k.dms[d].table_readers -= 1;
    let q = k.dms[d].wait;
    k.wake_up(q);
    r
}

/// `dm_submit_bio()` for a bio the caller waits on (`submit_bio_wait`): as
/// `dm_split_and_process_bio()`, one clone of at most `max_io_len` (dm-raid: the table's
/// chunk, aligned) is mapped per pass, and the remainder goes back through
/// `submit_bio_noacct()`, i.e. through the suspend check again: a part not yet mapped when a
/// suspend begins is deferred until the resume. The bio ends when its last part does, with
/// the first error of any part.
pub fn dm_submit_bio(k: &mut K, d: DevId, bio: BioId) {
    enter!(k, "dm_submit_bio");
    let (start, len) = (k.bios[bio].start, k.bios[bio].len);
    let end = start + len;
    k.bios[bio].data.clear();
    k.bios[bio].origins.clear();
    let mut status: Result<(), &'static str> = Ok(());
    let mut off = start;
    while off < end {
        // The clone: up to the next chunk boundary of the table live when it is mapped.
        let n = k.bios.len();
        let wq = k.new_wq(format!("bio{n}"));
        let b = &k.bios[bio];
        let part = Bio {
            write: b.write,
            start: off,
            len: end - off,
            tag: b.tag,
            data: Vec::new(),
            origins: Vec::new(),
            status: None,
            wq,
            requeued: 0,
            served_by: None,
        };
        k.bios.push(part);
        map_bio_part(k, d, n);
        let p = k.bios[n].clone();
        let b = &mut k.bios[bio];
        b.data.extend(p.data);
        b.origins.extend(p.origins);
        b.requeued += p.requeued;
        if p.served_by.is_some() {
            b.served_by = p.served_by;
        }
        if let (Some(Err(e)), true) = (p.status, status.is_ok()) {
            status = Err(e);
            // The refusal of the part is the bio's.
            if let Some(r) = k.io_refusals.iter().rev().find(|r| r.bio == n).cloned() {
                k.io_refusals.push(crate::sched::IoRefusal { bio, ..r });
            }
        }
        off = p.start + p.len;
    }
    k.bios[bio].status = Some(status);
}

/// One pass of `dm_submit_bio()`: wait while the device is suspended (`queue_io`), trim
/// the part to `max_io_len`, map it; `DM_MAPIO_REQUEUE` pushes it back only under a noflush
/// suspend (`dm_handle_requeue`).
fn map_bio_part(k: &mut K, d: DevId, bio: BioId) {
    loop {
        let q = k.dms[d].wait;
        k.sleep(
            q,
            "dm_submit_bio: deferred while the device is suspended",
            |w| !w.dms[d].block_io || w.dms[d].removed,
        );
        if k.dms[d].removed {
            // The device went away under a deferred bio: failing it is expected.
            k.io_refusals.push(crate::sched::IoRefusal {
                bio,
                justified: true,
                why: "device removed".into(),
            });
            k.bios[bio].status = Some(Err(EIO));
            return;
        }
        let t = k.dms[d].live.expect("a live device has a table");
        // max_io_len: the chunk of the table the clone is mapped by (dm-raid and dm-stripe
        // set it; dm-linear has none).
        let chunk = match t {
            DmTarget::Raid(m) => k.raid_sets[m]
                .as_ref()
                .map_or(1, |rs| u64::from(rs.table.chunk.max(1))),
            DmTarget::Stripe(sc) => u64::from(sc.geo.chunk),
            DmTarget::Linear(_) => u64::MAX / 2,
        };
        let b = &mut k.bios[bio];
        let boundary = (b.start / chunk + 1) * chunk;
        b.len = b.len.min(boundary - b.start);
        // dm_get_live_table() in dm_submit_bio and the dm_io accounting, both held while
        // the target maps the clone.
        k.dms[d].in_flight += 1;
        k.dms[d].table_readers += 1;
        let r = match t {
            DmTarget::Raid(m) => dm_raid::raid_map(k, m, bio),
            DmTarget::Stripe(sc) => {
                dm_stripe::stripe_map(k, &sc, bio);
                MapResult::Submitted
            }
            DmTarget::Linear(lc) => {
                dm_linear::linear_map(k, &lc, bio);
                MapResult::Submitted
            }
        };
        k.dms[d].table_readers -= 1;
        k.dms[d].in_flight -= 1;
        let q = k.dms[d].wait;
        k.wake_up(q);
        match r {
            MapResult::Submitted => return,
            MapResult::Requeue => {
                // dm_handle_requeue(): only a noflush suspend pushes the bio back.
                if k.dms[d].noflush_suspending {
                    k.bios[bio].requeued += 1;
                    k.bios[bio].status = None;
                    k.trace(|| format!("bio {bio} requeued (noflush suspend in progress)"));
                    k.pre();
                    continue;
                }
                k.bios[bio].status = Some(Err(EIO));
                k.trace(|| {
                    format!("bio {bio} DM_MAPIO_REQUEUE without a noflush suspend -> BLK_STS_IOERR")
                });
                return;
            }
        }
    }
}
