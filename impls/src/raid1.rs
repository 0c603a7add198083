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
use crate::sched::{IoRefusal, MdId, K};

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
    k.mddevs[m]
        .rdevs
        .iter()
        .position(|r| r.in_sync || r.recovery_offset > b)
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
    let Some(src) = k.mddevs[m].rdevs.iter().position(|r| r.in_sync) else {
        // No leg to read from: "if (read_targets == 0) ... conf->recovery_disabled".
        return 0;
    };
    if check {
        // check: compare, never write (the model's legs agree where In_sync).
        return unit;
    }
    let targets: Vec<usize> = (0..k.mddevs[m].rdevs.len())
        .filter(|&d| d != src && (!recover || !k.mddevs[m].rdevs[d].in_sync))
        .collect();
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

/// `bio_io_error()` for a reason the kernel has too (the oracle counts it as justified).
fn bio_io_error(k: &mut K, bio: usize, why: String) -> bool {
    k.io_refusals.push(IoRefusal {
        bio,
        justified: true,
        why,
    });
    k.bios[bio].status = Some(Err(EIO));
    true
}

/// `raid1_make_request()`: raid1_write_request writes every leg (a leg being rebuilt too:
/// only Faulty legs are skipped); raid1_read_request reads the leg read_balance picks.
pub fn raid1_make_request(k: &mut K, m: MdId, bio: usize) -> bool {
    enter!(k, "raid1_make_request");
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
            return bio_io_error(k, bio, why);
        }
        let mem = k.mddevs[m].members;
        let s = k.mddevs[m].geo.data_offset as usize + b as usize;
        if write {
            let tag = k.bios[bio].tag | b;
            for d in 0..k.mddevs[m].rdevs.len() {
                k.members[mem].disks[d][s] = tag;
                k.members[mem].origin[d][s] = (k.cx.task, k.steps);
            }
        } else {
            let Some(d) = read_balance(k, m, b) else {
                // "raid1: %s: unrecoverable I/O read error": no leg holds the block.
                let why = format!("{}: no leg to read block {b} from", k.mddevs[m].name);
                return bio_io_error(k, bio, why);
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
