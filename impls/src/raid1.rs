//! drivers/md/raid1.c: what the lifecycle needs — raid1_run (no `start` op and no reshape
//! thread: md_start does nothing, and a leg count change is raid1_reshape's, at once),
//! raid1_sync_request for resync and for the recovery of a leg that is not In_sync,
//! raid1_spare_active, and the IO path: a write goes to every leg (In_sync or being
//! rebuilt), a read to the first leg read_balance allows (In_sync, or rebuilt past the block).
//!
//! The conf is the one raid5.rs uses ([`R5Conf`]) with no reshape: raid1 keeps no
//! reshape_progress, and dm-raid's reshape paths never run for it.

use crate::enter;
use crate::md::{self, Errno, EIO};
use crate::md_h::*;
use crate::raid5::R5Conf;
use crate::sched::{MdId, K};

/// `raid1_run()`: the conf over the legs; the array is one leg's data. A leg that is not
/// In_sync only makes the array degraded; md_check_recovery starts its recovery.
pub fn raid1_run(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid1_run");
    let md = &k.mddevs[m];
    let dev_data = k.members[md.members].dev_data;
    let geo = md.geo;
    let name = md.name.clone();
    if md.reshape_position != MAX_SECTOR {
        // raid1 has no reshape: setup_conf refuses "reshape_position != MaxSector".
        return Err(crate::md::EINVAL);
    }
    let wq = k.new_wq(format!("{name}.wait_barrier"));
    k.mddevs[m].conf = Some(R5Conf {
        prev: geo,
        geo,
        reshape_progress: MAX_SECTOR,
        reshape_safe: MAX_SECTOR,
        generation: 0,
        wait_for_overlap: wq,
        units_since_checkpoint: 0,
        dev_data,
    });
    md::set_array_sectors(k, m, dev_data as Sector);
    // "RAID1 needs at least one disk in active"; with exactly one there is nothing to resync
    // from (a new set from linear: only the recovery of the new leg runs).
    let working = k.mddevs[m]
        .rdevs
        .iter()
        .filter(|r| r.in_sync && !r.faulty && !r.removed)
        .count();
    if working < 1 {
        k.mddevs[m].conf = None;
        return Err(crate::md::EINVAL);
    }
    if working == 1 {
        k.mddevs[m].recovery_cp = MAX_SECTOR;
    }
    k.mddevs[m].pers = true;
    let degraded = k.mddevs[m].rdevs.iter().filter(|r| !r.in_sync).count();
    if degraded > 0 {
        k.trace(|| format!("{name}: raid1_run with {degraded} leg(s) to recover"));
    }
    Ok(())
}

/// The leg read_balance picks for block `b`: the first that is In_sync or whose recovery
/// has passed `b` ("!test_bit(In_sync) && rdev->recovery_offset < this_sector + sectors"
/// excludes the others).
fn read_balance(k: &K, m: MdId, b: Sector) -> Option<usize> {
    k.mddevs[m].rdevs.iter().position(|r| r.readable(b))
}

/// The member device of `leg` fails IO (the model's pulled disk).
fn failing(k: &K, m: MdId, leg: usize) -> bool {
    k.members[k.mddevs[m].members].failing & (1 << leg) != 0
}

/// `raid1_error()`: the last In_sync leg is not failed (MD_BROKEN; dm-raid never sets
/// MD_FAILLAST_DEV); any other leg becomes Faulty and Blocked until the superblock records it
/// (MD_SB_CHANGE_PENDING).
pub fn raid1_error(k: &mut K, m: MdId, leg: usize) {
    enter!(k, "raid1_error");
    let md = &k.mddevs[m];
    let working = md.rdevs.iter().filter(|r| r.in_sync).count();
    let name = md.name.clone();
    if md.rdevs[leg].in_sync && working == 1 {
        k.mddevs[m].broken = true;
        k.trace(|| format!("{name}: leg {leg} is the last In_sync leg: MD_BROKEN"));
        return;
    }
    let r = &mut k.mddevs[m].rdevs[leg];
    r.blocked = true;
    r.in_sync = false;
    r.faulty = true;
    k.set_bit(m, MD_RECOVERY_INTR);
    k.mddevs[m].sb_flags |= (1 << MD_SB_CHANGE_DEVS) | (1 << MD_SB_CHANGE_PENDING);
    k.trace(|| format!("md/raid1:{name}: Disk failure on leg {leg}, disabling device."));
}

/// `raid1_remove_disk()` for remove_spares: only a Faulty leg goes (one that is only not
/// In_sync is -EBUSY).
pub fn raid1_remove_disk(k: &mut K, m: MdId, leg: usize) -> bool {
    let r = &mut k.mddevs[m].rdevs[leg];
    if !r.faulty {
        return false;
    }
    r.removed = true;
    true
}

/// `raid1_sync_request()`: one unit of resync or recovery. With raise_barrier held the
/// unit is read from a leg that is In_sync and written to the legs that need it (recovery:
/// those not In_sync; resync: every other leg), so the model copies it in one step. The
/// call at `max` is close_sync.
pub fn raid1_sync_request(k: &mut K, m: MdId, j: Sector, max: Sector) -> Sector {
    enter!(k, "raid1_sync_request");
    if j >= max {
        return 0;
    }
    let unit = (k.mddevs[m].geo.chunk as Sector).min(max - j);
    let recover = !k.test_bit(m, MD_RECOVERY_SYNC);
    let check = k.test_bit(m, MD_RECOVERY_CHECK);
    // The read: a leg that fails it is failed (end_sync_read -> md_error) and the next one
    // tried; a write that fails fails its leg (end_sync_write), which interrupts the pass.
    let src = loop {
        let Some(src) = k.mddevs[m]
            .rdevs
            .iter()
            .position(|r| r.in_sync && !r.faulty)
        else {
            // No leg to read from: "if (read_targets == 0) ... conf->recovery_disabled".
            return 0;
        };
        if !failing(k, m, src) {
            break src;
        }
        md::md_error(k, m, src);
        if k.mddevs[m].broken {
            return 0;
        }
    };
    if check {
        // check: compare, never write (the model's legs agree where In_sync).
        return unit;
    }
    let targets: Vec<usize> = (0..k.mddevs[m].rdevs.len())
        .filter(|&d| {
            let r = k.mddevs[m].rdevs[d];
            d != src && !r.faulty && !r.removed && (!recover || !r.in_sync)
        })
        .collect();
    let (targets, failed): (Vec<usize>, Vec<usize>) =
        targets.into_iter().partition(|&d| !failing(k, m, d));
    for d in failed {
        md::md_error(k, m, d);
    }
    let mem = k.mddevs[m].members;
    let off = k.mddevs[m].geo.data_offset as usize;
    for b in j..j + unit {
        let s = off + b as usize;
        let (v, o) = (k.members[mem].disks[src][s], k.members[mem].origin[src][s]);
        for &d in &targets {
            k.members[mem].disks[d][s] = v;
            k.members[mem].origin[d][s] = o;
        }
    }
    unit
}

/// `raid1_spare_active()`: a leg whose recovery reached MaxSector becomes In_sync.
pub fn raid1_spare_active(k: &mut K, m: MdId) -> u32 {
    enter!(k, "raid1_spare_active");
    k.mddevs[m].activate_recovered_legs()
}

/// `raid1_quiesce()`: freeze_array / unfreeze_array; the model's sync units are atomic.
pub fn raid1_quiesce(k: &mut K, m: MdId) {
    if let Some(c) = k.mddevs[m].conf.as_ref() {
        let q = c.wait_for_overlap;
        k.wake_up(q);
    }
}

/// `raid1d()`: the daemon; for the lifecycle it is md_check_recovery.
pub fn raid1d(k: &mut K, m: MdId) {
    enter!(k, "raid1d");
    md::md_check_recovery(k, m);
}

/// raid1d's bio_end_io_list: a write that failed a leg completes only once the superblock
/// records the failure (MD_SB_CHANGE_PENDING clear), which md_check_recovery writes.
fn wait_fault_recorded(k: &mut K, m: MdId) {
    if !k.mddevs[m].rdevs.iter().any(|r| r.blocked) {
        return;
    }
    let d = k.mddevs[m].thread;
    md::md_wakeup_thread(k, d);
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "raid1d: write waits for the failure to be recorded (MD_SB_CHANGE_PENDING)",
        |w| w.mddevs[m].sb_flags & (1 << MD_SB_CHANGE_PENDING) == 0,
    );
}

/// `raid1_make_request()`: raid1_write_request writes every leg (a leg being rebuilt too:
/// only Faulty legs are skipped); raid1_read_request reads the leg read_balance picks.
pub fn raid1_make_request(k: &mut K, m: MdId, bio: usize) -> bool {
    enter!(k, "raid1_make_request");
    md::md_write_bracket(k, m, bio, raid1_blocks)
}

/// The read or write of each block (raid1_read_request / raid1_write_request's data path).
fn raid1_blocks(k: &mut K, m: MdId, bio: usize) -> bool {
    let (start, len, write) = (k.bios[bio].start, k.bios[bio].len, k.bios[bio].write);
    k.bios[bio].data.clear();
    k.bios[bio].origins.clear();
    for b in start..start + len {
        if k.mddevs[m].conf.is_none() {
            k.bios[bio].status = Some(Err(EIO));
            return true;
        }
        let size = k.mddevs[m].array_sectors;
        if b >= size {
            let why = format!("block {b} is beyond the end of {}", k.mddevs[m].name);
            return md::bio_io_error(k, bio, why);
        }
        let mem = k.mddevs[m].members;
        let s = k.mddevs[m].geo.data_offset as usize + b as usize;
        if write {
            let tag = k.bios[bio].tag | b;
            let mut written = 0;
            for d in 0..k.mddevs[m].rdevs.len() {
                let r = k.mddevs[m].rdevs[d];
                if r.faulty || r.removed {
                    continue;
                }
                if failing(k, m, d) {
                    // raid1_end_write_request: the leg is failed; the bio still succeeds
                    // if another leg took the data.
                    md::md_error(k, m, d);
                    continue;
                }
                k.members[mem].disks[d][s] = tag;
                k.members[mem].origin[d][s] = (k.cx.task, k.steps);
                written += 1;
            }
            if written == 0 {
                let why = format!("{}: no leg took block {b}", k.mddevs[m].name);
                return md::bio_io_error(k, bio, why);
            }
            wait_fault_recorded(k, m);
        } else {
            let d = loop {
                let Some(d) = read_balance(k, m, b) else {
                    // "raid1: %s: unrecoverable I/O read error": no leg holds the block.
                    let why = format!("{}: no leg to read block {b} from", k.mddevs[m].name);
                    return md::bio_io_error(k, bio, why);
                };
                if !failing(k, m, d) {
                    break d;
                }
                // handle_read_error: the leg is failed, the read retried on another one.
                md::md_error(k, m, d);
                if k.mddevs[m].broken && !k.mddevs[m].rdevs[d].faulty {
                    let why = format!("{}: the last leg fails block {b}", k.mddevs[m].name);
                    return md::bio_io_error(k, bio, why);
                }
            };
            let (v, o) = (k.members[mem].disks[d][s], k.members[mem].origin[d][s]);
            k.bios[bio].data.push(v);
            k.bios[bio].origins.push(o);
        }
        k.pre();
    }
    k.bios[bio].status = Some(Ok(()));
    true
}
