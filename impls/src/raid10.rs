//! drivers/md/raid10.c, "near" layout with two copies (what lvm's `raid10` creates): what the
//! lifecycle needs — raid10_run / raid10_start_reshape (direct thread registration before
//! ad39c08186f8, and no `start` op, so md_start never wakes that thread), check_reshape, the
//! reshape data path (reshape_request with its metadata checkpoint, end_reshape,
//! raid10_finish_reshape) and the IO path (raid10_read_request / raid10_write_request: a
//! write inside the window reshape_safe..reshape_progress forces a metadata update and waits
//! for it; nothing waits for the reshape itself to move). Both copies of a block are written;
//! a read takes the first readable copy (read_balance); recovery fills the legs not In_sync.
//!
//! The conf is the one raid5.rs uses ([`R5Conf`]): `struct r10conf` keeps the same reshape
//! fields (prev / geo, reshape_progress, reshape_safe).

use crate::enter;
use crate::kernel::Change;
use crate::md::{self, Errno, EBUSY, EINVAL, EIO};
use crate::md_h::*;
use crate::raid5::{geo_size, R5Conf, CHECKPOINT_UNITS};
use crate::sched::{MdId, ThreadFn, K};

/// Copies per block (`near_copies`; lvm's raid10 is `-m 1`).
pub const NEAR_COPIES: u64 = 2;

/// `__raid10_find_phys()` for near copies, far_copies = 1: logical block -> the (member,
/// slot) of each copy. Chunk `c`'s copies take the devices `2c % n` and `2c + 1 % n` of
/// the row `2c / n` (a copy that wraps goes to the next row).
pub fn raid10_find_phys(g: &Geo, b: Sector) -> [(usize, usize); 2] {
    let chunk = g.chunk as u64;
    let (c, o) = (b / chunk, b % chunk);
    let n = g.raid_disks as u64;
    let at = |i: u64| {
        let idx = c * NEAR_COPIES + i;
        (
            (idx % n) as usize,
            (g.data_offset as u64 + idx / n * chunk + o) as usize,
        )
    };
    [at(0), at(1)]
}

/// The inverse of [`raid10_find_phys`]: which logical block (if any) has a copy at
/// (member, slot).
pub fn raid10_unmap_slot(g: &Geo, disk: usize, slot: usize, size: Sector) -> Option<Sector> {
    let (slot, off) = (slot as u64, g.data_offset as u64);
    if slot < off || disk as u32 >= g.raid_disks {
        return None;
    }
    let chunk = g.chunk as u64;
    let (row, o) = ((slot - off) / chunk, (slot - off) % chunk);
    let idx = row * g.raid_disks as u64 + disk as u64;
    let b = idx / NEAR_COPIES * chunk + o;
    (b < size).then_some(b)
}

fn conf<'a>(k: &'a K, m: MdId) -> &'a R5Conf {
    k.mddevs[m].conf.as_ref().expect("raid10 conf")
}
fn conf_mut<'a>(k: &'a mut K, m: MdId) -> &'a mut R5Conf {
    k.mddevs[m].conf.as_mut().expect("raid10 conf")
}

/// `raid10_run()`: set up the conf; an array whose superblock says "reshaping" gets its
/// reshape thread registered right here (before ad39c08186f8), and raid10 has no `start`
/// op for md_start to wake it with.
pub fn raid10_run(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid10_run");
    let md = &k.mddevs[m];
    let dev_data = k.members[md.members].dev_data;
    let reshaping = md.reshape_position != MAX_SECTOR;
    let (prev, geo) = (md.geo, if reshaping { md.new_geo } else { md.geo });
    let (name, pos) = (md.name.clone(), md.reshape_position);
    let wq = k.new_wq(format!("{name}.wait_barrier"));
    k.mddevs[m].conf = Some(R5Conf {
        prev,
        geo,
        reshape_progress: pos,
        reshape_safe: pos,
        generation: 0,
        wait_for_overlap: wq,
        units_since_checkpoint: 0,
        dev_data,
    });
    // `enough()`: every pair of copies (near 2: legs 2i, 2i+1) keeps a working leg.
    let working = |d: usize| {
        k.mddevs[m]
            .rdevs
            .get(d)
            .is_some_and(|r| r.in_sync && !r.faulty && !r.removed)
    };
    let pairs = geo.raid_disks.min(prev.raid_disks) as usize / 2;
    if !reshaping && (0..pairs).any(|i| !working(2 * i) && !working(2 * i + 1)) {
        k.mddevs[m].conf = None;
        return Err(EINVAL);
    }
    let size = geo_size(&prev, dev_data).min(geo_size(&geo, dev_data));
    md::set_array_sectors(k, m, size);
    k.mddevs[m].pers = true;
    if reshaping {
        k.clear_bit(m, MD_RECOVERY_SYNC);
        k.clear_bit(m, MD_RECOVERY_CHECK);
        k.set_bit(m, MD_RECOVERY_RESHAPE);
        if k.k.has(Change::NoDirectReshapeRegistration) {
            // ad39c08186f8 / v2 p4 "md: don't register sync_thread for reshape directly"
            k.set_bit(m, MD_RECOVERY_NEEDED);
        } else {
            k.set_bit(m, MD_RECOVERY_RUNNING);
            let t = md::md_register_thread(k, m, ThreadFn::Sync, "reshape", "raid10_run");
            k.mddevs[m].sync_thread = Some(t);
        }
    }
    Ok(())
}

/// `raid10_check_reshape()`: the copies cannot change; two members at least.
pub fn raid10_check_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    let md = &k.mddevs[m];
    let new_disks = md.geo.raid_disks as i32 + md.delta_disks;
    if new_disks < NEAR_COPIES as i32 || md.new_geo.layout != Layout::Near2 {
        return Err(EINVAL);
    }
    Ok(())
}

/// `raid10_start_reshape()`: the new geometry, progress from the start (or the end when
/// backwards), then the reshape thread: registered and woken here before ad39c08186f8.
pub fn raid10_start_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid10_start_reshape");
    if k.test_bit(m, MD_RECOVERY_RUNNING) {
        return Err(EBUSY);
    }
    let md = &k.mddevs[m];
    let c = conf(k, m).clone();
    let prev = c.geo;
    let geo = Geo {
        raid_disks: (c.geo.raid_disks as i32 + md.delta_disks) as u32,
        layout: Layout::Near2,
        chunk: md.new_geo.chunk,
        data_offset: md.new_geo.data_offset,
    };
    let backwards = md.reshape_backwards;
    let region = geo_size(&prev, c.dev_data).min(geo_size(&geo, c.dev_data));
    let progress = if backwards { region } else { 0 };
    {
        let cf = conf_mut(k, m);
        cf.prev = prev;
        cf.geo = geo;
        cf.generation += 1;
        cf.reshape_progress = progress;
        cf.reshape_safe = progress;
        cf.units_since_checkpoint = 0;
    }
    let md = &mut k.mddevs[m];
    md.geo = prev;
    md.new_geo = geo;
    md.delta_disks = geo.raid_disks as i32 - prev.raid_disks as i32;
    md.reshape_position = progress;
    md.sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    md::set_array_sectors(k, m, region);
    k.clear_bit(m, MD_RECOVERY_SYNC);
    k.clear_bit(m, MD_RECOVERY_CHECK);
    k.clear_bit(m, MD_RECOVERY_DONE);
    k.set_bit(m, MD_RECOVERY_RESHAPE);
    if k.k.has(Change::NoDirectReshapeRegistration) {
        // ad39c08186f8 / v2 p4 "md: don't register sync_thread for reshape directly"
        k.set_bit(m, MD_RECOVERY_NEEDED);
    } else {
        k.set_bit(m, MD_RECOVERY_RUNNING);
        let t = md::md_register_thread(k, m, ThreadFn::Sync, "reshape", "raid10_start_reshape");
        k.mddevs[m].sync_thread = Some(t);
        md::md_wakeup_thread(k, Some(t));
    }
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("{name} reshape started: {prev:?} -> {geo:?}, progress {progress}"));
    Ok(())
}

/// `raid10_sync_request()`: one unit of resync (the kernel reads every leg and rewrites a
/// copy that differs; the model's copies differ only on legs that are not In_sync, which
/// the recovery fills and read_balance avoids until then: nothing moves here), of
/// recovery (the legs not In_sync get their copies), or of reshape; the call at `max` ends
/// a reshape.
pub fn raid10_sync_request(k: &mut K, m: MdId, j: Sector, max: Sector) -> Sector {
    enter!(k, "raid10_sync_request");
    let reshape = k.test_bit(m, MD_RECOVERY_RESHAPE);
    if j >= max {
        if reshape {
            end_reshape(k, m);
        }
        return 0;
    }
    if reshape {
        return reshape_request(k, m, j);
    }
    let unit = (k.mddevs[m].geo.chunk as Sector).min(max - j);
    if !k.test_bit(m, MD_RECOVERY_SYNC) && !k.test_bit(m, MD_RECOVERY_CHECK) {
        recover_unit(k, m, j, unit);
    }
    unit
}

/// raid10_sync_request's recovery branch for device sectors `j..j + unit`: for each leg
/// that is not In_sync, the block stored there (`raid10_find_virt`) is read from a copy on
/// an In_sync leg and written (under raise_barrier: one model step).
fn recover_unit(k: &mut K, m: MdId, j: Sector, unit: Sector) {
    let g = k.mddevs[m].geo;
    let mem = k.mddevs[m].members;
    let size = k.mddevs[m].array_sectors;
    for d in 0..k.mddevs[m].rdevs.len() {
        let r = k.mddevs[m].rdevs[d];
        if r.in_sync || r.faulty || r.removed {
            continue;
        }
        for dev_sector in j..j + unit {
            let slot = (g.data_offset as Sector + dev_sector) as usize;
            let Some(b) = raid10_unmap_slot(&g, d, slot, size) else {
                continue;
            };
            let src = raid10_find_phys(&g, b)
                .into_iter()
                .find(|&(sd, _)| sd != d && k.mddevs[m].rdevs[sd].in_sync);
            if let Some((sd, ss)) = src {
                let (v, o) = (k.members[mem].disks[sd][ss], k.members[mem].origin[sd][ss]);
                k.members[mem].disks[d][slot] = v;
                k.members[mem].origin[d][slot] = o;
            }
        }
    }
}

/// `read_balance()`: the first copy on a leg that is In_sync, or whose recovery passed the
/// copy's device sector.
fn read_balance(k: &K, m: MdId, g: &Geo, copies: &[(usize, usize)]) -> Option<(usize, usize)> {
    copies.iter().copied().find(|&(d, s)| {
        let dev_sector = (s as Sector).saturating_sub(g.data_offset as Sector);
        k.mddevs[m]
            .rdevs
            .get(d)
            .is_some_and(|r| r.readable(dev_sector))
    })
}

/// `raid10_spare_active()`: a leg whose recovery reached MaxSector becomes In_sync (the
/// second copies a takeover from striped added).
pub fn raid10_spare_active(k: &mut K, m: MdId) -> u32 {
    enter!(k, "raid10_spare_active");
    k.mddevs[m].activate_recovered_legs()
}

/// Would writing `blocks` at their new slots overwrite an old-geometry copy of a block a
/// restart from reshape_safe still reads (raid10.c's `need_flush`)?
fn need_flush(k: &K, m: MdId, blocks: &[Sector]) -> bool {
    let c = conf(k, m);
    let old_size = geo_size(&c.prev, c.dev_data);
    let back = k.mddevs[m].reshape_backwards;
    blocks.iter().any(|&b| {
        raid10_find_phys(&c.geo, b).iter().any(|&(d, s)| {
            match raid10_unmap_slot(&c.prev, d, s, old_size) {
                Some(o) if o != b => {
                    if back {
                        o < c.reshape_safe
                    } else {
                        o >= c.reshape_safe
                    }
                }
                _ => false,
            }
        })
    })
}

/// reshape_request's metadata update: reshape_position = reshape_progress, wait for the
/// superblock write, then reshape_safe follows. False if interrupted (INTR).
fn update_reshape_position(k: &mut K, m: MdId) -> bool {
    let progress = conf(k, m).reshape_progress;
    k.mddevs[m].reshape_position = progress;
    k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    let d = k.mddevs[m].thread;
    md::md_wakeup_thread(k, d);
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "raid10 reshape_request: waiting for the superblock write",
        |w| w.mddevs[m].sb_flags == 0 || w.mddevs[m].test(MD_RECOVERY_INTR),
    );
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return false;
    }
    let pos = k.mddevs[m].reshape_position;
    k.mddevs[m].curr_resync_completed = if k.mddevs[m].reshape_backwards {
        let c = conf(k, m);
        geo_size(&c.prev, c.dev_data)
            .min(geo_size(&c.geo, c.dev_data))
            .saturating_sub(pos)
    } else {
        pos
    };
    let cf = conf_mut(k, m);
    cf.reshape_safe = pos;
    cf.units_since_checkpoint = 0;
    let q = cf.wait_for_overlap;
    k.wake_up(q);
    let q = k.sync_completed;
    k.wake_up(q);
    true
}

/// raid10.c `reshape_request()`: copy one unit into the new geometry (both copies), after a
/// metadata update when the copy would overwrite unrecorded old data or 10 s have passed.
fn reshape_request(k: &mut K, m: MdId, j: Sector) -> Sector {
    enter!(k, "raid10 reshape_request");
    let c = conf(k, m).clone();
    let back = k.mddevs[m].reshape_backwards;
    let region = geo_size(&c.prev, c.dev_data).min(geo_size(&c.geo, c.dev_data));
    let progress = c.reshape_progress;
    if j == 0 {
        // A restarted reshape skips to reshape_progress ("sector_nr = conf->reshape_progress").
        let done = if back { region - progress } else { progress };
        if done > 0 {
            k.mddevs[m].curr_resync_completed = done;
            let q = k.sync_completed;
            k.wake_up(q);
            return done;
        }
    }
    let unit = (c.prev.chunk.max(c.geo.chunk) * c.geo.data_disks()) as Sector;
    let (lo, hi) = if back {
        (progress.saturating_sub(unit), progress)
    } else {
        (progress, (progress + unit).min(region))
    };
    if lo >= hi {
        return unit;
    }
    let blocks: Vec<Sector> = (lo..hi).collect();
    if (c.units_since_checkpoint >= CHECKPOINT_UNITS || need_flush(k, m, &blocks))
        && !update_reshape_position(k, m)
    {
        return 0;
    }
    // raise_barrier() ... lower_barrier() (end_reshape_request): regular IO waits in
    // wait_barrier for the whole copy, so the model moves the unit in one step, with
    // reshape_progress.
    {
        let cf = conf_mut(k, m);
        cf.reshape_progress = if back { lo } else { hi };
        cf.units_since_checkpoint += 1;
    }
    let mem = k.mddevs[m].members;
    // read_reshape: the first copy in the previous geometry.
    let moved: Vec<(u64, (usize, u64))> = blocks
        .iter()
        .map(|&b| {
            let (d, s) = raid10_find_phys(&c.prev, b)[0];
            (k.members[mem].disks[d][s], k.members[mem].origin[d][s])
        })
        .collect();
    let who = (k.cx.task, k.steps);
    if k.tracing() {
        let name = k.mddevs[m].name.clone();
        k.trace(|| {
            format!(
                "{name} reshape copies {lo}..{hi} ({}/{} -> {}/{})",
                c.prev.raid_disks, c.prev.data_offset, c.geo.raid_disks, c.geo.data_offset
            )
        });
    }
    for (&b, &(v, _)) in blocks.iter().zip(&moved) {
        for (d, s) in raid10_find_phys(&c.geo, b) {
            k.members[mem].disks[d][s] = v;
            k.members[mem].origin[d][s] = who;
        }
    }
    if j + (hi - lo) >= k.mddevs[m].resync_max && !update_reshape_position(k, m) {
        return 0;
    }
    hi - lo
}

/// raid10.c `end_reshape()`: only if INTR is clear.
fn end_reshape(k: &mut K, m: MdId) {
    enter!(k, "raid10 end_reshape");
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return;
    }
    let c = conf(k, m).clone();
    crate::md::md_finish_reshape(k, m, c.geo.data_offset);
    let md = &mut k.mddevs[m];
    md.geo.raid_disks = c.geo.raid_disks;
    md.reshape_position = MAX_SECTOR;
    md.reshape_ended_unfinished = true;
    let cf = conf_mut(k, m);
    cf.prev = cf.geo;
    cf.reshape_progress = MAX_SECTOR;
    cf.reshape_safe = MAX_SECTOR;
    let q = cf.wait_for_overlap;
    k.wake_up(q);
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("{name} reshape finished"));
}

/// `raid10_finish_reshape()`: only if INTR is clear; the new chunk and layout take over.
pub fn raid10_finish_reshape(k: &mut K, m: MdId) {
    enter!(k, "raid10_finish_reshape");
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return;
    }
    let md = &mut k.mddevs[m];
    md.geo = md.new_geo;
    md.reshape_position = MAX_SECTOR;
    md.delta_disks = 0;
    md.reshape_backwards = false;
    md.reshape_ended_unfinished = false;
}

/// `raid10_quiesce()`: raise / lower the barrier; the model's copies are atomic, so only the
/// waiters need waking.
pub fn raid10_quiesce(k: &mut K, m: MdId) {
    if let Some(c) = k.mddevs[m].conf.as_ref() {
        let q = c.wait_for_overlap;
        k.wake_up(q);
    }
}

/// `raid10d()`: the daemon; for the lifecycle it is md_check_recovery.
pub fn raid10d(k: &mut K, m: MdId) {
    enter!(k, "raid10d");
    md::md_check_recovery(k, m);
}

/// `raid10_make_request()` -> `__make_request()` -> raid10_read_request /
/// raid10_write_request, a block at a time.
pub fn raid10_make_request(k: &mut K, m: MdId, bio: usize) -> bool {
    enter!(k, "raid10_make_request");
    md::md_write_bracket(k, m, bio, raid10_blocks)
}

/// The read or write of each block (raid10_read_request / raid10_write_request's data path).
fn raid10_blocks(k: &mut K, m: MdId, bio: usize) -> bool {
    let (start, len) = (k.bios[bio].start, k.bios[bio].len);
    k.bios[bio].data.clear();
    k.bios[bio].origins.clear();
    for b in start..start + len {
        if k.mddevs[m].conf.is_none() {
            k.bios[bio].status = Some(Err(EIO));
            return true;
        }
        let write = k.bios[bio].write;
        if write {
            raid10_write_wait_reshape(k, m, b);
        }
        let c = conf(k, m).clone();
        let back = k.mddevs[m].reshape_backwards;
        // "(sector >= conf->reshape_progress) != conf->mddev->reshape_backwards": the part
        // the reshape has not reached yet is still in the previous geometry.
        let previous = c.reshape_progress != MAX_SECTOR && ((b >= c.reshape_progress) != back);
        let g = if previous { c.prev } else { c.geo };
        if b >= geo_size(&g, c.dev_data) {
            let why = format!("block {b} is beyond the end of {}", k.mddevs[m].name);
            return md::bio_io_error(k, bio, why);
        }
        let mem = k.mddevs[m].members;
        let copies = raid10_find_phys(&g, b);

        if write {
            let tag = k.bios[bio].tag | b;
            for (d, s) in copies {
                k.members[mem].disks[d][s] = tag;
                k.members[mem].origin[d][s] = (k.cx.task, k.steps);
            }
        } else {
            let Some((d, s)) = read_balance(k, m, &g, &copies) else {
                let why = format!("{}: no copy of block {b} to read", k.mddevs[m].name);
                return md::bio_io_error(k, bio, why);
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

/// raid10_write_request's reshape check: a write into reshape_safe..reshape_progress makes
/// the metadata record reshape_progress first ("Need to update reshape_position in
/// metadata") and waits for MD_SB_CHANGE_PENDING to clear, however long the daemon takes.
fn raid10_write_wait_reshape(k: &mut K, m: MdId, b: Sector) {
    let c = conf(k, m);
    if c.reshape_progress == MAX_SECTOR {
        return;
    }
    let inside = if k.mddevs[m].reshape_backwards {
        b < c.reshape_safe && b >= c.reshape_progress
    } else {
        b >= c.reshape_safe && b < c.reshape_progress
    };
    if !inside {
        return;
    }
    let progress = c.reshape_progress;
    k.mddevs[m].reshape_position = progress;
    k.mddevs[m].sb_flags |= (1 << MD_SB_CHANGE_DEVS) | (1 << MD_SB_CHANGE_PENDING);
    let d = k.mddevs[m].thread;
    md::md_wakeup_thread(k, d);
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "raid10_write_request: waiting for the reshape metadata",
        |w| w.mddevs[m].sb_flags & (1 << MD_SB_CHANGE_PENDING) == 0,
    );
    let pos = k.mddevs[m].reshape_position;
    if let Some(cf) = k.mddevs[m].conf.as_mut() {
        cf.reshape_safe = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_block_has_two_copies_on_different_members_and_unmaps_back() {
        for disks in [4, 6, 8] {
            let g = Geo {
                raid_disks: disks,
                layout: Layout::Near2,
                chunk: 2,
                data_offset: 3,
            };
            let size = geo_size(&g, 8);
            let mut seen = std::collections::BTreeSet::new();
            for b in 0..size {
                let [a, c] = raid10_find_phys(&g, b);
                assert_ne!(
                    a.0, c.0,
                    "{disks} disks, block {b}: both copies on one member"
                );
                for (d, s) in [a, c] {
                    assert!(seen.insert((d, s)), "{disks}: two blocks on ({d},{s})");
                    assert_eq!(raid10_unmap_slot(&g, d, s, size), Some(b));
                }
            }
            // Every member slot of the data area holds a copy of exactly one block.
            assert_eq!(seen.len() as u64, size * NEAR_COPIES);
        }
    }
}
