//! drivers/md/raid5.c: what the lifecycle needs of raid456 — run / start_reshape (direct
//! thread registration before ad39c08186f8), check_reshape, the reshape data path
//! (reshape_request, its checkpoint, end_reshape, finish_reshape) and the IO path
//! (raid5_make_request / make_stripe_request with the reshape window), all on real data:
//! member slots hold tags, geometries place logical blocks on (disk, slot), the reshape
//! copies blocks from the previous to the new geometry.

use crate::enter;
use crate::kernel::Change;
use crate::md::{self, Errno, EBUSY, EINVAL, EIO};
use crate::md_h::*;
use crate::sched::{MdId, ThreadFn, Wq, K};

/// How many reshape units may pass between two checkpoints (the kernel's "10 seconds since
/// the last metadata update", in work instead of time).
pub const CHECKPOINT_UNITS: u32 = 8;

/// `struct r5conf`, the reshape part.
#[derive(Clone, Debug)]
pub struct R5Conf {
    /// `previous_raid_disks`, `prev_algo`, `prev_chunk_sectors` (+ the old data offset).
    pub prev: Geo,
    pub geo: Geo,
    /// MaxSector when no reshape is in progress.
    pub reshape_progress: Sector,
    pub reshape_safe: Sector,
    pub generation: u32,
    pub wait_for_overlap: Wq,
    pub units_since_checkpoint: u32,
    /// Per-member data blocks (without reshape space).
    pub dev_data: u32,
}

/// Logical size of an array with geometry `g` and `dev_data` data blocks per member.
pub fn geo_size(g: &Geo, dev_data: u32) -> Sector {
    g.data_disks() as Sector * dev_data as Sector
}

/// raid5_compute_sector's parity placement for `stripe`: (pd_idx, qd_idx), and the member
/// that holds data index `idx` (`*dd_idx` after the switch on the algorithm).
fn compute_disks(g: &Geo, stripe: u64, idx: u32) -> (u32, Option<u32>, u32) {
    let n = g.raid_disks;
    let dd = g.data_disks();
    let s = |m: u32| (stripe % m as u64) as u32;
    match g.layout {
        // level 4/5
        Layout::La => {
            let pd = dd - s(n);
            (pd, None, if idx >= pd { idx + 1 } else { idx })
        }
        Layout::Ra => {
            let pd = s(n);
            (pd, None, if idx >= pd { idx + 1 } else { idx })
        }
        Layout::Ls => {
            let pd = dd - s(n);
            (pd, None, (pd + 1 + idx) % n)
        }
        Layout::Rs => {
            let pd = s(n);
            (pd, None, (pd + 1 + idx) % n)
        }
        Layout::N => (dd, None, idx),
        // level 6
        Layout::Zr | Layout::Nr => {
            // ROTATING_ZERO_RESTART is RIGHT_ASYMMETRIC's placement; ROTATING_N_RESTART is
            // LEFT_ASYMMETRIC's with "stripe2 += 1".
            let pd = if g.layout == Layout::Zr {
                s(n)
            } else {
                n - 1 - ((stripe + 1) % n as u64) as u32
            };
            if pd == n - 1 {
                (pd, Some(0), idx + 1) // Q D D D P
            } else {
                (pd, Some(pd + 1), if idx >= pd { idx + 2 } else { idx }) // D D P Q D
            }
        }
        Layout::Nc => {
            let pd = n - 1 - s(n);
            (pd, Some((pd + n - 1) % n), (pd + 1 + idx) % n)
        }
        Layout::La6 | Layout::Ra6 => {
            let pd = if g.layout == Layout::La6 {
                dd - s(n - 1)
            } else {
                s(n - 1)
            };
            (pd, Some(n - 1), if idx >= pd { idx + 1 } else { idx })
        }
        Layout::Ls6 | Layout::Rs6 => {
            let pd = if g.layout == Layout::Ls6 {
                dd - s(n - 1)
            } else {
                s(n - 1)
            };
            (pd, Some(n - 1), (pd + 1 + idx) % (n - 1))
        }
        Layout::N6 => (dd, Some(dd + 1), idx),
        Layout::Near2 | Layout::Raid1 | Layout::Striped | Layout::Linear => {
            unreachable!("not a raid4/5/6 geometry in raid5.c")
        }
    }
}

/// `raid5_compute_sector()`: logical block -> (member, slot).
pub fn map_block(g: &Geo, b: Sector) -> (usize, usize) {
    let chunk = g.chunk as u64;
    let (c, o) = (b / chunk, b % chunk);
    let dd = g.data_disks() as u64;
    let (stripe, idx) = (c / dd, (c % dd) as u32);
    let (_, _, disk) = compute_disks(g, stripe, idx);
    (
        disk as usize,
        (g.data_offset as u64 + stripe * chunk + o) as usize,
    )
}

/// The inverse of [`map_block`]: which logical block (if any) lives at (member, slot).
pub fn unmap_slot(g: &Geo, disk: usize, slot: usize, size: Sector) -> Option<Sector> {
    let slot = slot as u64;
    let off = g.data_offset as u64;
    if slot < off || disk as u32 >= g.raid_disks {
        return None;
    }
    let chunk = g.chunk as u64;
    let (stripe, o) = ((slot - off) / chunk, (slot - off) % chunk);
    let idx = (0..g.data_disks()).find(|&i| compute_disks(g, stripe, i).2 == disk as u32)?;
    let b = (stripe * g.data_disks() as u64 + idx as u64) * chunk + o;
    (b < size).then_some(b)
}

fn conf<'a>(k: &'a K, m: MdId) -> &'a R5Conf {
    k.mddevs[m].conf.as_ref().expect("raid5 conf")
}
fn conf_mut<'a>(k: &'a mut K, m: MdId) -> &'a mut R5Conf {
    k.mddevs[m].conf.as_mut().expect("raid5 conf")
}

/// `raid5_run()`: set up the conf from the mddev; restart an interrupted reshape.
pub fn raid5_run(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid5_run");
    let md = &k.mddevs[m];
    let dev_data = k.members[md.members].dev_data;
    let reshaping = md.reshape_position != MAX_SECTOR;
    let (prev, geo) = (md.geo, if reshaping { md.new_geo } else { md.geo });
    let name = md.name.clone();
    let wq = k.new_wq(format!("{name}.wait_for_overlap"));
    let pos = k.mddevs[m].reshape_position;
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
    if !reshaping {
        // raid5_calc_degraded / has_failed, and "cannot start dirty degraded array" unless
        // the legs to recover only hold parity (dirty_parity_disks; dm-raid never sets
        // ok_start_degraded). The model checks a set that is not reshaping.
        let md = &k.mddevs[m];
        let max_degraded = if geo.layout.level() == 6 { 2 } else { 1 };
        let n = geo.raid_disks as usize;
        let lost = |r: &Rdev| !r.in_sync || r.faulty || r.removed;
        let degraded = md.rdevs.iter().take(n).filter(|r| lost(r)).count();
        let dirty_parity_disks = (0..n)
            .filter(|&d| md.rdevs.get(d).is_some_and(|r| !r.in_sync && !r.faulty))
            .filter(|&d| only_parity(d as u32, &geo, max_degraded))
            .count();
        let dirty = md.recovery_cp != MAX_SECTOR && degraded > dirty_parity_disks;
        if degraded > max_degraded as usize || dirty {
            k.trace(|| {
                format!("md/raid:{name}: cannot start dirty degraded array ({degraded} degraded)")
            });
            k.mddevs[m].conf = None;
            return Err(md::EINVAL);
        }
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
            let t = md::md_register_thread(k, m, ThreadFn::Sync, "reshape", "raid5_run");
            k.mddevs[m].sync_thread = Some(t);
        }
    }
    Ok(())
}

/// `only_parity()`: leg `d` holds nothing but parity in geometry `g` (raid5_n / raid6_n_6:
/// ALGORITHM_PARITY_N's last legs; raid6_*_6: the Q leg).
fn only_parity(d: u32, g: &Geo, max_degraded: u32) -> bool {
    match g.layout {
        Layout::N | Layout::N6 => d >= g.raid_disks - max_degraded,
        Layout::La6 | Layout::Ra6 | Layout::Ls6 | Layout::Rs6 => d == g.raid_disks - 1,
        _ => false,
    }
}

/// `raid5_check_reshape()` / `check_reshape()`: validates a pending change; 0 also for
/// "nothing to change" and for a half-done reshape.
pub fn check_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    let md = &k.mddevs[m];
    // raid5_check_reshape / raid6_check_reshape: a layout of another level is refused
    // (algorithm_valid_raid5 / _raid6); check_reshape(): a shrink that would leave fewer
    // than 2 members (4 for raid6) is refused.
    let level = md.geo.layout.level();
    if md.new_geo.layout.level() != level {
        return Err(EINVAL);
    }
    let min = if level == 6 { 4 } else { 2 };
    if md.delta_disks < 0
        && md.reshape_position == MAX_SECTOR
        && (md.geo.raid_disks as i32 + md.delta_disks) < min
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// `raid5_start_reshape()` (kernel-lifecycle.md §2.11). Re-running it on a half-done
/// reshape re-derives "previous" from the already-new geometry and adds delta_disks again.
pub fn raid5_start_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid5_start_reshape");
    if k.test_bit(m, MD_RECOVERY_RUNNING) {
        return Err(EBUSY);
    }
    if k.mddevs[m].recovery_cp < MAX_SECTOR {
        return Err(EBUSY);
    }
    let md = &k.mddevs[m];
    let c = conf(k, m).clone();
    let prev = c.geo;
    let geo = Geo {
        raid_disks: (c.geo.raid_disks as i32 + md.delta_disks) as u32,
        layout: md.new_geo.layout,
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
    raid5_quiesce(k, m);
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
        let t = md::md_register_thread(k, m, ThreadFn::Sync, "reshape", "raid5_start_reshape");
        k.mddevs[m].sync_thread = Some(t);
        md::md_wakeup_thread(k, Some(t));
    }
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("{name} reshape started: {prev:?} -> {geo:?}, progress {progress}"));
    Ok(())
}

/// `raid5_sync_request()`: one unit of resync or reshape; the call at `max` finishes.
pub fn raid5_sync_request(k: &mut K, m: MdId, j: Sector, max: Sector) -> Sector {
    enter!(k, "raid5_sync_request");
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
    // "if there is too many failed drives and we are trying to resync, then assert that we
    // are finished": a resync of a set degraded by max_degraded legs (the new parity legs of
    // a takeover from striped) skips to the end.
    let md = &k.mddevs[m];
    let max_degraded = if md.geo.layout.level() == 6 { 2 } else { 1 };
    let n = md.geo.raid_disks as usize;
    let degraded = md
        .rdevs
        .iter()
        .take(n)
        .filter(|r| !r.in_sync || r.faulty)
        .count();
    if degraded >= max_degraded && k.test_bit(m, MD_RECOVERY_SYNC) {
        return max - j;
    }
    (k.mddevs[m].geo.chunk as Sector).min(max - j)
}

/// `raid5_spare_active()`: a leg whose recovery reached MaxSector becomes In_sync (the Q leg
/// a raid5 -> raid6 takeover added).
pub fn raid5_spare_active(k: &mut K, m: MdId) -> u32 {
    enter!(k, "raid5_spare_active");
    k.mddevs[m].activate_recovered_legs()
}

/// Would moving `blocks` to their new slots overwrite the old-geometry copy of a block that a
/// restart from `safe` still has to read?
fn clobbers_unrecorded(k: &K, m: MdId, blocks: &[Sector]) -> bool {
    let c = conf(k, m);
    let md = &k.mddevs[m];
    let old_size = geo_size(&c.prev, c.dev_data);
    blocks.iter().any(|&b| {
        let (d, s) = map_block(&c.geo, b);
        match unmap_slot(&c.prev, d, s, old_size) {
            Some(o) if o != b => {
                if md.reshape_backwards {
                    o < c.reshape_safe
                } else {
                    o >= c.reshape_safe
                }
            }
            _ => false,
        }
    })
}

/// Record reshape_position = reshape_progress, wait for the superblock write, then advance
/// reshape_safe and wake the IO waiting for it. False if interrupted (INTR).
fn reshape_checkpoint(k: &mut K, m: MdId) -> bool {
    enter!(k, "reshape_checkpoint");
    let progress = conf(k, m).reshape_progress;
    k.mddevs[m].reshape_position = progress;
    k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    let d = k.mddevs[m].thread;
    md::md_wakeup_thread(k, d);
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "reshape_request: waiting for the superblock write",
        |w| {
            w.mddevs[m].sb_flags & (1 << MD_SB_CHANGE_DEVS) == 0
                || w.mddevs[m].test(MD_RECOVERY_INTR)
        },
    );
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return false;
    }
    let pos = k.mddevs[m].reshape_position;
    // "mddev->curr_resync_completed = sector_nr": what dmsetup status reports.
    k.mddevs[m].curr_resync_completed = reshape_sector_nr(k, m, pos);
    let cf = conf_mut(k, m);
    cf.reshape_safe = pos;
    cf.units_since_checkpoint = 0;
    let q = cf.wait_for_overlap;
    k.wake_up(q);
    let q = k.sync_completed;
    k.wake_up(q);
    true
}

/// The md_do_sync position (`sector_nr`) of reshape position `pos`: counted from where the
/// reshape starts (the end, for a backward reshape).
fn reshape_sector_nr(k: &K, m: MdId, pos: Sector) -> Sector {
    let c = conf(k, m);
    if k.mddevs[m].reshape_backwards {
        let region = geo_size(&c.prev, c.dev_data).min(geo_size(&c.geo, c.dev_data));
        region.saturating_sub(pos)
    } else {
        pos
    }
}

/// `reshape_request()`: move one unit from the previous to the new geometry.
fn reshape_request(k: &mut K, m: MdId, j: Sector) -> Sector {
    enter!(k, "reshape_request");
    let c = conf(k, m).clone();
    let back = k.mddevs[m].reshape_backwards;
    let region = geo_size(&c.prev, c.dev_data).min(geo_size(&c.geo, c.dev_data));
    let progress = c.reshape_progress;
    // A restarted reshape skips ahead to reshape_progress on its first call (and reports
    // that as its progress: curr_resync_completed, sync_completed).
    if j == 0 {
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
    if (c.units_since_checkpoint >= CHECKPOINT_UNITS || clobbers_unrecorded(k, m, &blocks))
        && !reshape_checkpoint(k, m)
    {
        return 0;
    }
    // Advance reshape_progress first (the destination stripes are EXPANDING): from here IO to
    // the unit falls in the window reshape_safe..reshape_progress and waits, so no write can
    // land in a source slot after it was read. raid5d completes the copy even if INTR comes.
    {
        let cf = conf_mut(k, m);
        cf.reshape_progress = if back { lo } else { hi };
        cf.units_since_checkpoint += 1;
    }
    let mem = k.mddevs[m].members;
    let moved: Vec<(u64, (usize, u64))> = blocks
        .iter()
        .map(|&b| {
            let (d, s) = map_block(&c.prev, b);
            (k.members[mem].disks[d][s], k.members[mem].origin[d][s])
        })
        .collect();
    k.pre();
    let who = (k.cx.task, k.steps);
    if k.tracing() {
        let name = k.mddevs[m].name.clone();
        k.trace(|| {
            format!(
                "{name} reshape copies {lo}..{hi} ({:?}/{} -> {:?}/{})",
                c.prev.raid_disks, c.prev.data_offset, c.geo.raid_disks, c.geo.data_offset
            )
        });
    }
    for (&b, &(v, _)) in blocks.iter().zip(&moved) {
        let (d, s) = map_block(&c.geo, b);
        k.members[mem].disks[d][s] = v;
        k.members[mem].origin[d][s] = who;
    }
    // Reaching resync_max (sync_max): record the position before md_do_sync sleeps there.
    if j + (hi - lo) >= k.mddevs[m].resync_max && !reshape_checkpoint(k, m) {
        return 0;
    }
    hi - lo
}

/// `end_reshape()`: only if INTR is clear.
fn end_reshape(k: &mut K, m: MdId) {
    enter!(k, "end_reshape");
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return;
    }
    let c = conf(k, m).clone();
    crate::md::md_finish_reshape(k, m, c.geo.data_offset);
    let md = &mut k.mddevs[m];
    // previous_raid_disks = raid_disks (md_finish_reshape above committed the data offsets).
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

/// `raid5_finish_reshape()` (from md_reap_sync_thread): only if INTR is clear.
pub fn raid5_finish_reshape(k: &mut K, m: MdId) {
    enter!(k, "raid5_finish_reshape");
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

/// `raid5_quiesce()`: IO sleeping for the reshape holds no stripe; both directions wake it.
pub fn raid5_quiesce(k: &mut K, m: MdId) {
    if let Some(c) = k.mddevs[m].conf.as_ref() {
        let q = c.wait_for_overlap;
        k.wake_up(q);
    }
}

/// `raid5_prepare_suspend()` (v2 p11 / 41425f96d7aa): wake the reshape waiters.
pub fn raid5_prepare_suspend(k: &mut K, m: MdId) {
    enter!(k, "raid5_prepare_suspend");
    raid5_quiesce(k, m);
}

/// `raid5d()`: the daemon; for the lifecycle it is md_check_recovery.
pub fn raid5d(k: &mut K, m: MdId) {
    enter!(k, "raid5d");
    md::md_check_recovery(k, m);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StripeResult {
    Success,
    ScheduleAndRetry,
    Fail,
    WaitReshape,
}

/// `stripe_ahead_of_reshape()`: true when the previous-geometry stripe of `b` is NOT entirely
/// ahead of reshape_progress ("mismatch, try again").
fn stripe_ahead_of_reshape(k: &K, m: MdId, b: Sector) -> bool {
    let c = conf(k, m);
    // The stripe head of `b`: the same offset in each data chunk of its row.
    let chunk = c.prev.chunk as Sector;
    let span = chunk * c.prev.data_disks() as Sector;
    let min = b / span * span + b % chunk;
    // Before c467e97f079f the max was accumulated with min(), so it stayed 0.
    let max = if k.k.has(Change::StripeAheadValidSectors) {
        min + span - chunk
    } else {
        0
    };
    if k.mddevs[m].reshape_backwards {
        max >= c.reshape_progress
    } else {
        min < c.reshape_progress
    }
}

fn refused(k: &mut K, m: MdId, bio: usize) {
    let (justified, why) = k.reshape_stalled(m);
    k.io_refusals.push(crate::sched::IoRefusal {
        bio,
        justified,
        why,
    });
}

/// `make_stripe_request()` for one block.
fn make_stripe_request(k: &mut K, m: MdId, bio: usize, b: Sector) -> StripeResult {
    let c = conf(k, m).clone();
    let back = k.mddevs[m].reshape_backwards;
    let mut previous = false;
    let mut result = StripeResult::Success;
    if c.reshape_progress != MAX_SECTOR {
        let ahead = if back {
            b < c.reshape_progress
        } else {
            b >= c.reshape_progress
        };
        let behind_safe = if back {
            b >= c.reshape_safe
        } else {
            b < c.reshape_safe
        };
        if ahead {
            previous = true;
        } else if !behind_safe {
            // Inside the window reshape_safe..reshape_progress: not yet recorded.
            result = StripeResult::ScheduleAndRetry;
        }
    }
    if result == StripeResult::Success && previous && stripe_ahead_of_reshape(k, m, b) {
        result = StripeResult::ScheduleAndRetry;
    }
    if result == StripeResult::ScheduleAndRetry {
        // The common tail the series adds after the stripe release.
        if k.k.has(Change::V2ReshapeDisabledFailsIo)
            && k.mddevs[m].is_dm
            && reshape_disabled(&k.mddevs[m])
        {
            // v2 p11: dm and the reshape cannot progress -> fail the bio.
            refused(k, m, bio);
            k.trace(|| format!("io across reshape position while reshape can't make progress: block {b} -> EIO"));
            return StripeResult::Fail;
        }
        // 1d24d4c1ea1d "dm-raid: only requeue bios when dm is suspending": a dm bio is
        // handed back only while MD_DM_SUSPENDING is set; otherwise it waits for the reshape.
        let may_requeue = !k.k.has(Change::DmSuspendingGatesRefusal)
            || !k.mddevs[m].is_dm
            || k.mddevs[m].dm_suspending;
        if k.k.has(Change::WaitReshapeRequeues) && reshape_interrupted(&k.mddevs[m]) && may_requeue
        {
            // 41425f96d7aa: hand the bio back (BLK_STS_RESOURCE).
            refused(k, m, bio);
            k.trace(|| format!("io across reshape position while reshape can't make progress: block {b} -> WAIT_RESHAPE"));
            return StripeResult::WaitReshape;
        }
        return result;
    }
    let g = if previous { c.prev } else { c.geo };
    if b >= geo_size(&g, c.dev_data) {
        // The array shrank under the bio (bio_check_eod passed at submission): beyond the end.
        let why = format!("block {b} is beyond the end of {}", k.mddevs[m].name);
        k.io_refusals.push(crate::sched::IoRefusal {
            bio,
            justified: true,
            why,
        });
        return StripeResult::Fail;
    }
    let (d, s) = map_block(&g, b);
    let mem = k.mddevs[m].members;
    if k.bios[bio].write {
        let tag = k.bios[bio].tag | b;
        k.members[mem].disks[d][s] = tag;
        k.members[mem].origin[d][s] = (k.cx.task, k.steps);
    } else {
        let v = k.members[mem].disks[d][s];
        let o = k.members[mem].origin[d][s];
        k.bios[bio].data.push(v);
        k.bios[bio].origins.push(o);
    }
    StripeResult::Success
}

/// `raid5_make_request()`: one stripe (here: block) at a time; a stripe that must wait
/// sleeps on wait_for_overlap with no timeout and no condition but a wake-up.
pub fn raid5_make_request(k: &mut K, m: MdId, bio: usize) -> bool {
    enter!(k, "raid5_make_request");
    md::md_write_bracket(k, m, bio, make_stripe_requests)
}

/// raid5_make_request's loop over the bio's stripes (between md_write_start and
/// md_write_end).
fn make_stripe_requests(k: &mut K, m: MdId, bio: usize) -> bool {
    let (start, len) = (k.bios[bio].start, k.bios[bio].len);
    k.bios[bio].data.clear();
    k.bios[bio].origins.clear();
    let mut b = start;
    while b < start + len {
        if k.mddevs[m].conf.is_none() {
            k.bios[bio].status = Some(Err(EIO));
            return true;
        }
        match make_stripe_request(k, m, bio, b) {
            StripeResult::Success => b += 1,
            StripeResult::ScheduleAndRetry => {
                let q = conf(k, m).wait_for_overlap;
                k.sleep_once(q, "raid5_make_request: waiting for reshape");
            }
            StripeResult::Fail => {
                k.bios[bio].status = Some(Err(EIO));
                return true;
            }
            StripeResult::WaitReshape => {
                k.bios[bio].status = Some(Err("BLK_STS_RESOURCE"));
                return false;
            }
        }
        k.pre();
    }
    k.bios[bio].status = Some(Ok(()));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The takeover raid5 -> raid6 (lvm's raid5_ls -> raid6_ls_6) adds a Q member and moves
    /// no data: a *_6 layout over n + 1 members places data as the raid5 layout over n.
    #[test]
    fn raid6_x_6_layouts_place_data_as_their_raid5_layout() {
        for r5 in Layout::ALL {
            let r6 = r5
                .takeover_pair()
                .expect("every raid5 layout has a *_6 one");
            assert_eq!(r6.takeover_pair(), Some(r5));
            for disks in 3..7 {
                let g5 = Geo {
                    raid_disks: disks,
                    layout: r5,
                    chunk: 2,
                    data_offset: 1,
                };
                let g6 = Geo {
                    raid_disks: disks + 1,
                    layout: r6,
                    ..g5
                };
                for b in 0..geo_size(&g5, 8) {
                    assert_eq!(map_block(&g5, b), map_block(&g6, b), "{r6:?} {disks} {b}");
                }
            }
        }
    }

    #[test]
    fn map_and_unmap_are_inverse_for_every_layout() {
        for layout in Layout::ALL.into_iter().chain(Layout::RAID6) {
            for disks in (3 + (layout.level() == 6) as u32)..8 {
                let g = Geo {
                    raid_disks: disks,
                    layout,
                    chunk: 2,
                    data_offset: 3,
                };
                let size = geo_size(&g, 8);
                let mut seen = std::collections::BTreeSet::new();
                for b in 0..size {
                    let (d, s) = map_block(&g, b);
                    assert!(
                        seen.insert((d, s)),
                        "{layout:?} {disks}: two blocks on ({d},{s})"
                    );
                    assert_eq!(
                        unmap_slot(&g, d, s, size),
                        Some(b),
                        "{layout:?} {disks} block {b}"
                    );
                }
                assert_eq!(seen.len() as u64, size);
                // P and Q are on two members of their own, never on a data slot.
                for stripe in 0..disks as u64 {
                    let (pd, qd, _) = compute_disks(&g, stripe, 0);
                    let data: Vec<u32> = (0..g.data_disks())
                        .map(|i| compute_disks(&g, stripe, i).2)
                        .collect();
                    assert!(!data.contains(&pd), "{layout:?} {disks}: P on data");
                    if let Some(q) = qd {
                        assert!(q != pd && !data.contains(&q), "{layout:?} {disks}: Q");
                        assert!(q < disks);
                    }
                }
            }
        }
    }
}
