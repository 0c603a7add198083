//! drivers/md/dm-raid.c: the dm-raid target (ctr, dtr, map, message, presuspend,
//! postsuspend, preresume with rs_start_reshape / rs_update_sbs, resume, status) and the
//! RT_FLAG_* bits it keeps per table instance.

use crate::enter;
use crate::kernel::Change;
use crate::md::{self, Errno, EBUSY, EINVAL};
use crate::md_h::*;
use crate::raid5;
use crate::sched::{BioId, DevId, MdId, K};

pub const RT_FLAG_RS_PRERESUMED: u32 = 0;
pub const RT_FLAG_RS_RESUMED: u32 = 1;
pub const RT_FLAG_RS_BITMAP_LOADED: u32 = 2;
pub const RT_FLAG_UPDATE_SBS: u32 = 3;
pub const RT_FLAG_RESHAPE_RS: u32 = 4;
pub const RT_FLAG_RS_SUSPENDED: u32 = 5;
/// Added by 41425f96d7aa.
pub const RT_FLAG_RS_FROZEN: u32 = 9;

/// A dm-raid table line: `raid5_ls <chunk> [rebuild i]... [delta_disks N] [data_offset S]
/// [nosync] <legs>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub layout: Layout,
    pub legs: u32,
    pub chunk: u32,
    pub delta_disks: i32,
    pub data_offset: Option<u32>,
    pub nosync: bool,
    /// `rebuild i` for each bit i (lvm emits it for every rimage flagged LV_REBUILD).
    pub rebuild: u32,
}

impl Table {
    /// The geometry the table asks for (after any reshape it requests).
    pub fn new_raid_disks(&self) -> u32 {
        if self.delta_disks < 0 {
            (self.legs as i32 + self.delta_disks) as u32
        } else {
            self.legs
        }
    }
}

/// `struct raid_set`, reduced.
#[derive(Clone, Debug)]
pub struct RaidSet {
    pub dev: DevId,
    pub table: Table,
    pub runtime_flags: u32,
    /// `rs->delta_disks`: what the table asks for (rs_setup_reshape hands it to md).
    pub delta_disks: i32,
    /// `rs->raid_disks` and `rs->array_sectors`: the disk count and size the table asks for
    /// (do_table_event grows the array to it once a grow reshape is done).
    pub raid_disks: u32,
    pub array_sectors: Sector,
}

pub enum MapResult {
    Submitted,
    Requeue,
}

fn rs_test(k: &K, m: MdId, f: u32) -> bool {
    k.raid_sets[m]
        .as_ref()
        .is_some_and(|rs| rs.runtime_flags & (1 << f) != 0)
}
fn rs_set(k: &mut K, m: MdId, f: u32) {
    if let Some(rs) = k.raid_sets[m].as_mut() {
        rs.runtime_flags |= 1 << f;
    }
}
fn rs_clear(k: &mut K, m: MdId, f: u32) {
    if let Some(rs) = k.raid_sets[m].as_mut() {
        rs.runtime_flags &= !(1 << f);
    }
}
fn rs_test_and_set(k: &mut K, m: MdId, f: u32) -> bool {
    let was = rs_test(k, m, f);
    rs_set(k, m, f);
    was
}
fn rs_test_and_clear(k: &mut K, m: MdId, f: u32) -> bool {
    let was = rs_test(k, m, f);
    rs_clear(k, m, f);
    was
}

/// The kernel has one of the "really frozen" fixes (v2 p6 or 16c4770c75b1).
fn really_frozen(k: &K) -> bool {
    k.k.has(Change::V2ReallyFrozen) || k.k.has(Change::MergedReallyFrozen)
}

/// `raid_ctr()`: a new table instance over the members, built while the old one is live.
pub fn raid_ctr(k: &mut K, d: DevId, t: &Table) -> Result<MdId, Errno> {
    enter!(k, "raid_ctr");
    let mem = k.dms[d].members;
    let (dev_data, dev_blocks) = (k.members[mem].dev_data, k.members[mem].dev_blocks);
    // The sizes must work out: the chunk divides the data area, and data plus the requested
    // offset fit in each member.
    // raid5 runs on 2 members (one data stripe: what a raid1 takeover gives).
    let min_disks = match t.layout.level() {
        1 | 5 => 2,
        6 => 4,
        _ => 3,
    };
    if t.legs as usize > k.members[mem].disks.len()
        || t.legs as usize > MAX_MEMBERS
        || t.new_raid_disks() < min_disks
        || t.rebuild >> t.legs != 0
        || t.chunk == 0
        || dev_data % t.chunk != 0
        || t.data_offset.unwrap_or(0) + dev_data > dev_blocks
    {
        return Err(EINVAL);
    }
    // parse_raid_params: "sync/nosync and rebuild are mutually exclusive".
    if t.nosync && t.rebuild != 0 {
        return Err(EINVAL);
    }
    let sb = k.members[mem].sb.clone();
    let mut flags = 0u32;
    // analyse_superblocks(): no magic on the members -> FirstUse (a new raid set).
    let first_use = !sb.valid;
    // A level change is a takeover: rs_takeover_requested -> rs_check_takeover. Modelled:
    // raid5_* -> raid6_*_6 with one more leg (flagged `rebuild`, the Q leg) and raid6_*_6 ->
    // raid5_* with one leg less, both placing data as before; anything else (raid456 <->
    // raid1 / raid10) is refused as most takeovers are: -EINVAL ("takeover not possible").
    let takeover = !first_use && t.layout.level() != sb.layout.level();
    if takeover {
        if sb.reshape_active() {
            // "Can't takeover a reshaping raid set".
            return Err(crate::md::EPERM);
        }
        // "if (rs->md.degraded)": over the legs of this table (an extracted leg, such as the
        // Q leg of raid6 -> raid5, does not count; a new one is not in the superblock yet).
        // A leg recorded failed, or whose device fails (its superblock cannot be read: the
        // ctr makes it Faulty), degrades the set too.
        let kept = t.legs.min(sb.num_devices) as usize;
        let lost = sb.failed_devices | k.members[mem].failing;
        let degraded =
            (0..kept).any(|d| sb.disk_recovery_offset[d] != MAX_SECTOR || lost & (1 << d) != 0);
        // "raid1 with 2 disks -> raid4/5": both legs hold every block, as raid5 with one data
        // stripe places it (data and its parity copy). The way back needs the parity copy,
        // which the model does not store: not modelled.
        let raid1_to_raid5 = sb.layout == Layout::Raid1
            && t.layout.level() == 5
            && sb.num_devices == 2
            && t.legs == 2;
        // "if (rs->md.degraded) ... takeover not possible", before any level pair.
        let legal = !degraded
            && (raid1_to_raid5
                || sb.layout.takeover_pair() == Some(t.layout)
                    && t.delta_disks == 0
                    && if t.layout.level() == 6 {
                        t.legs == sb.num_devices + 1 && t.rebuild & (1 << sb.num_devices) != 0
                    } else {
                        t.legs + 1 == sb.num_devices
                    });
        if !legal {
            return Err(EINVAL);
        }
    }
    // The model's raid10 is lvm's: an even member count (md also runs odd near layouts).
    if t.layout == Layout::Near2 && !t.new_raid_disks().is_multiple_of(2) {
        return Err(EINVAL);
    }
    // super_init_validation(): a table asking for delta_disks while the superblock records an
    // active reshape is refused ("Reshape in progress" -> -EINVAL).
    if !first_use && sb.reshape_active() && t.delta_disks != 0 {
        return Err(EINVAL);
    }
    // f1 (candidate fix for stale-ctr-position), its ctr half: likewise refuse a table that
    // asks for another layout / chunk than the reshape the superblock records is going to
    // (lvm issues one only when the status said the reshape ended; the superblock saying it
    // still runs is then stale, and nothing at preresume can make this table's set-up right).
    // raid4/5/6 and raid10 (whose chunk lvm changes too); raid1 has no reshape.
    if k.k.has(Change::PreresumeRereadsReshapePosition)
        && t.layout.personality() != Personality::Raid1
        && !first_use
        && sb.reshape_active()
        && (t.layout != sb.new_layout || t.chunk != sb.new_chunk)
    {
        return Err(EINVAL);
    }
    // raid1 and a takeover set the leg count from the table (no delta_disks): `table_legs`.
    let table_legs = t.layout == Layout::Raid1 || takeover;
    if table_legs && !first_use {
        // super_init_validation(): a leg without a superblock is a new device; one injected
        // without `rebuild` (or delta_disks) is refused.
        let new_devs = (sb.num_devices..t.legs).filter(|&d| t.rebuild & (1 << d) == 0);
        if new_devs.count() > 0 || t.delta_disks != 0 {
            return Err(EINVAL);
        }
    }
    // Legs beyond the superblock's count without delta_disks are rebuild legs (lvm's interim
    // reload, or freed legs not yet removed): the array keeps its disk count. raid1 takes the
    // table's count ("Historical case to support raid1 reshape without delta disks":
    // rs_prepare_reshape sets raid_disks, no reshape).
    let sb_disks = sb.cur_geo().raid_disks;
    let extra_legs = !table_legs && t.delta_disks == 0 && !first_use && t.legs > sb.num_devices;
    let old_disks = if t.delta_disks > 0 {
        t.legs - t.delta_disks as u32
    } else if extra_legs || sb.reshape_active() {
        sb_disks
    } else {
        t.legs
    };
    let new_disks = if extra_legs || sb.reshape_active() {
        sb.num_devices
    } else {
        t.new_raid_disks()
    };
    if !table_legs && !first_use && !sb.reshape_active() && old_disks != sb.num_devices {
        // A table whose legs do not match the superblocks (and no delta_disks).
        return Err(EINVAL);
    }
    // The size test after analyse_superblocks(): rs->dev_sectors (the table's size per data
    // stripe) against __rdev_sectors() (the superblocks' `sectors`) less
    // _get_reshape_sectors() (the superblocks' offset difference, or the table's
    // data_offset).
    let reshape_sectors = sb
        .data_offset
        .abs_diff(sb.new_data_offset)
        .max(t.data_offset.unwrap_or(0));
    let sized = !first_use && dev_data != sb.sectors;
    let resize = sized && dev_data != sb.sectors.saturating_sub(reshape_sectors);
    let grow = sized && dev_data > sb.sectors.saturating_sub(reshape_sectors);
    // rs_is_recovering() (recovery_cp short of dev_sectors), checked before rs_is_reshaping().
    let recovering = !t.nosync && sb.recovery_cp < raid5::geo_size(&sb.cur_geo(), dev_data);
    if sized {
        let name = k.dms[d].name.clone();
        k.trace(|| {
            format!(
                "raid_ctr {name}: {dev_data} sectors per leg in the table, {} in the superblocks, \
                 reshape space {reshape_sectors}{}",
                sb.sectors,
                if grow { ": grow" } else { "" }
            )
        });
    }
    if !first_use && !recovering && sb.reshape_active() && resize {
        // "Can't resize a reshaping raid set".
        return Err(crate::md::EPERM);
    }
    if first_use && t.nosync && t.layout.level() == 6 {
        // "'nosync' not allowed for new raid6 set": its parity has to be computed.
        return Err(EINVAL);
    }
    k.dms[d].instances += 1;
    let name = format!("{}#{}", k.dms[d].name, k.dms[d].instances);
    let m = md::mddev_alloc(k, name, mem, true);
    // parse_raid_params() / raid_set_alloc(): the table's layout and chunk.
    let table_geo = Geo {
        raid_disks: new_disks,
        layout: t.layout,
        chunk: t.chunk,
        data_offset: 0,
    };
    // Known model findings this instance inherits from the superblock it is built from.
    let mut inherited: Vec<(&'static str, String)> = Vec::new();
    if first_use {
        // A new array: build it from the table; resync unless nosync (rs_setup_recovery(0),
        // rs_set_new()).
        let g = Geo {
            raid_disks: t.legs,
            data_offset: t.data_offset.unwrap_or(0),
            ..table_geo
        };
        let md = &mut k.mddevs[m];
        md.geo = g;
        md.new_geo = g;
        md.recovery_cp = if t.nosync { MAX_SECTOR } else { 0 };
        flags |= 1 << RT_FLAG_UPDATE_SBS;
    } else {
        // super_init_validation() + super_validate(): the array from the superblock.
        let (mut cur, mut new) = (sb.cur_geo(), sb.new_geo());
        if takeover {
            // rs_set_new(): level and layout are the table's, no reshape.
            (cur.layout, new.layout) = (t.layout, t.layout);
        }
        cur.raid_disks = old_disks;
        new.raid_disks = new_disks;
        let reshaping = sb.reshape_active();
        let mut delta = sb.delta_disks;
        let mut backwards = reshaping && sb.reshape_backwards;
        let mut recovery_cp = if t.nosync { MAX_SECTOR } else { sb.recovery_cp };
        if sb.ended_unfinished
            && !reshaping
            && (sb.layout != sb.new_layout || sb.chunk != sb.new_chunk)
        {
            // The superblock was written after end_reshape and before raid5_finish_reshape:
            // it says "no reshape" with the previous layout / chunk over data in the new one
            // (durable when INTR came in between: intr-after-end-reshape).
            let rule = k.members[mem]
                .sb_taint
                .unwrap_or("sb-before-finish-reshape");
            let detail = format!(
                "{}: ctr reads a superblock written between end_reshape and \
                 raid5_finish_reshape (layout/chunk {:?}/{} over data in {:?}/{})",
                k.dms[d].name, sb.layout, sb.chunk, sb.new_layout, sb.new_chunk
            );
            k.trace(|| format!("model finding {rule}: {detail}"));
            inherited.push((rule, detail));
        } else if let Some(rule) = k.members[mem].sb_taint {
            inherited.push((
                rule,
                format!("{}: ctr reads the superblock {rule} left", k.dms[d].name),
            ));
        }
        // rs_config_restore(): the table's layout / chunk are the requested new ones.
        new.layout = t.layout;
        new.chunk = t.chunk;
        // rs_set_cur(): new := current (layout, chunk).
        let set_cur = |cur: &Geo, new: &mut Geo| {
            new.layout = cur.layout;
            new.chunk = cur.chunk;
        };
        // size_check: "May not set recovery when a device rebuild is requested" (the legs
        // keep the superblocks' size); otherwise the legs take the table's size (the model's
        // array size never changes, so a grow's superblock size is the table's too) and a
        // grow recovers the grown part, from recovery_cp if that is lower.
        let size_check = |grow: bool, recovery_cp: &mut Sector| {
            if t.rebuild != 0 {
                // No rs_set_dev_and_array_sectors: the legs keep the superblocks' size.
                return sb.sectors;
            }
            if grow && !t.nosync {
                // rs_setup_recovery(): MaxSector under nosync.
                *recovery_cp = (*recovery_cp).min(raid5::geo_size(&cur, dev_data));
            }
            dev_data
        };
        let mut rdev_sectors = sb.sectors;
        if recovering {
            // rs_is_recovering(): checked before rs_is_reshaping; size_check, no reshape.
            rdev_sectors = size_check(grow, &mut recovery_cp);
            set_cur(&cur, &mut new);
        } else if reshaping {
            // rs_is_reshaping(): skip set-up; the new layout / chunk stay the table's.
        } else if takeover {
            // rs_takeover_requested(): rs_setup_takeover, rs_set_new (the table's level and
            // layout, set above); recovery disabled below.
            set_cur(&cur, &mut new);
        } else if t.delta_disks != 0 || t.layout != cur.layout || t.chunk != cur.chunk {
            // rs_reshape_requested(): set up only with out-of-place reshape space
            // (`reshape_sectors`, computed for the size test above). "Only request grow on
            // raid set size extensions, not on reshapes": no size_check on this branch.
            if reshape_sectors != 0 {
                // rs_prepare_reshape(); rs_setup_recovery(MaxSector)
                flags |= (1 << RT_FLAG_RESHAPE_RS) | (1 << RT_FLAG_UPDATE_SBS);
                recovery_cp = MAX_SECTOR;
            }
            set_cur(&cur, &mut new);
        } else {
            rdev_sectors = size_check(grow, &mut recovery_cp);
            set_cur(&cur, &mut new);
        }
        k.mddevs[m].rdev_sectors = rdev_sectors;
        // rs_adjust_data_offsets(): a table data_offset overrides the superblock's offsets.
        if let Some(space) = t.data_offset {
            let (o, n) = if t.delta_disks < 0 {
                (0, space)
            } else if t.delta_disks > 0 {
                (space, 0)
            } else {
                // Layout / chunk only: toggle, and record it (UPDATE_SBS).
                flags |= 1 << RT_FLAG_UPDATE_SBS;
                let o = if space != 0 { cur.data_offset } else { 0 };
                (o, if o != 0 { 0 } else { space })
            };
            cur.data_offset = o;
            new.data_offset = n;
        }
        // rs_reset_inconclusive_reshape(): a superblock from between end_reshape and
        // raid5_finish_reshape (no reshape, yet a layout change or delta_disks) is reset to
        // its *current* layout / chunk (rs_set_cur), delta_disks 0.
        if !reshaping && (delta != 0 || new.layout != cur.layout || new.chunk != cur.chunk) {
            set_cur(&cur, &mut new);
            delta = 0;
            backwards = false;
        }
        if !reshaping {
            // Not reshaping: raid5_run runs one geometry (its BUG_ONs want new == current).
            new.data_offset = if flags & (1 << RT_FLAG_RESHAPE_RS) != 0 {
                new.data_offset
            } else {
                cur.data_offset
            };
        }
        let md = &mut k.mddevs[m];
        md.geo = cur;
        md.new_geo = new;
        md.delta_disks = delta;
        md.reshape_position = sb.reshape_position;
        md.reshape_backwards = backwards;
        md.recovery_cp = recovery_cp;
    }
    if takeover {
        // "Takeover ain't recovery, so disable recovery"; the superblocks get the new level.
        k.mddevs[m].recovery_cp = MAX_SECTOR;
        flags |= 1 << RT_FLAG_UPDATE_SBS;
    }
    // parse_raid_params(): every leg In_sync, `rebuild` legs not (recovery_offset 0);
    // super_validate(): an existing leg takes its superblock's disk_recovery_offset, and one
    // short of MaxSector is not In_sync unless a reshape is in progress. (raid4/5/6 `rebuild`
    // legs beyond the superblock's count, lvm's interim reload, stay outside the array.)
    // A leg whose device fails IO has no readable superblock: Faulty, out of the array
    // (raid1; the other personalities of the model never lose a leg). One the superblocks
    // record as failed that reads again "comes back": not In_sync, recovered from 0.
    let reshaping = sb.reshape_active();
    let legs = if table_legs { t.legs } else { new_disks };
    let failing = k.members[mem].failing;
    let mirror = t.layout == Layout::Raid1;
    k.mddevs[m].rdevs = (0..legs as usize)
        .map(|d| {
            let rebuild = t.rebuild & (1 << d) != 0 || d >= sb.num_devices as usize;
            if mirror && failing & (1 << d) != 0 {
                Rdev::FAILED
            } else if first_use && t.rebuild & (1 << d) != 0 {
                // parse_raid_params: a `rebuild` leg is not In_sync, recovery_offset 0, on a
                // new set too (lvm's takeovers from striped / linear load blank superblocks
                // with the new images flagged).
                Rdev::REBUILD
            } else if first_use {
                Rdev::IN_SYNC
            } else if table_legs && rebuild || mirror && sb.failed_devices & (1 << d) != 0 {
                Rdev::REBUILD
            } else if d < sb.num_devices as usize {
                let off = sb.disk_recovery_offset[d];
                Rdev {
                    in_sync: off == MAX_SECTOR || reshaping,
                    recovery_offset: off,
                    ..Rdev::IN_SYNC
                }
            } else {
                Rdev::IN_SYNC
            }
        })
        .collect();
    if table_legs && !first_use && t.rebuild != 0 {
        // size_check: "May not set recovery when a device rebuild is requested".
        k.mddevs[m].recovery_cp = MAX_SECTOR;
        flags |= 1 << RT_FLAG_UPDATE_SBS;
    }
    if table_legs && !first_use && t.legs > sb.num_devices {
        // "Create new superblocks and bitmaps, if any new disks".
        flags |= 1 << RT_FLAG_UPDATE_SBS;
    }
    for (rule, detail) in inherited {
        k.findings.push(crate::sched::Finding {
            rule,
            detail,
            mddev: m,
        });
    }
    if first_use {
        // rs_set_dev_and_array_sectors(ti->len): every leg the table's size.
        k.mddevs[m].rdev_sectors = dev_data;
    }
    k.raid_sets[m] = Some(RaidSet {
        dev: d,
        table: t.clone(),
        runtime_flags: flags,
        delta_disks: new_disks as i32 - old_disks as i32,
        raid_disks: new_disks,
        array_sectors: raid5::geo_size(&table_geo, dev_data),
    });
    k.mddevs[m].ro = Ro::MdRdonly;
    k.mddevs[m].in_sync = true;
    if !really_frozen(k) {
        // v6.7: intent "frozen until resume" — md_run wipes it.
        k.set_bit(m, MD_RECOVERY_FROZEN);
    }
    // v2 p8 "dm-raid: remove mddev_suspend/resume()"
    if k.k.has(Change::V2NoMddevSuspend) {
        md::mddev_lock(k, m);
    } else {
        md::mddev_suspend_and_lock_nointr(k, m);
    }
    if really_frozen(k) {
        // v2 p6 / 16c4770c75b1 "dm-raid: really frozen sync_thread during suspend"
        md::md_frozen_sync_thread(k, m);
    }
    if let Err(e) = md::md_run(k, m) {
        md::mddev_unlock(k, m);
        md::mddev_free(k, m);
        return Err(e);
    }
    k.mddevs[m].in_sync = false;
    md::md_start(k, m);
    rs_set(k, m, RT_FLAG_RS_SUSPENDED);
    if rs_test(k, m, RT_FLAG_RESHAPE_RS) {
        // rs_config_restore(): the requested layout / chunk again, for the reshape check and
        // rs_start_reshape at preresume.
        let md = &mut k.mddevs[m];
        md.new_geo.layout = t.layout;
        md.new_geo.chunk = t.chunk;
        md.new_geo.raid_disks = new_disks;
        if let Err(e) = md::pers_check_reshape(k, m) {
            // bad_unlock: md_stop, unlock.
            md::md_stop(k, m);
            md::mddev_unlock(k, m);
            md::mddev_free(k, m);
            return Err(e);
        }
    }
    md::mddev_unlock(k, m);
    let (name, rec) = (k.mddevs[m].name.clone(), recovery_str(k.mddevs[m].recovery));
    k.trace(|| format!("raid_ctr: {name} constructed ({rec})"));
    Ok(m)
}

/// `raid_dtr()`.
pub fn raid_dtr(k: &mut K, m: MdId) {
    enter!(k, "raid_dtr");
    md::mddev_lock(k, m);
    md::md_stop(k, m);
    md::mddev_unlock(k, m);
    md::mddev_free(k, m);
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("raid_dtr: {name} destroyed"));
}

/// `raid_map()`.
pub fn raid_map(k: &mut K, m: MdId, bio: BioId) -> MapResult {
    enter!(k, "raid_map");
    let end = k.bios[bio].start + k.bios[bio].len;
    if end > k.mddevs[m].array_sectors {
        let why = format!(
            "bio ends at {end}, beyond the array ({})",
            k.mddevs[m].array_sectors
        );
        // Pre-fix and post-fix alike: IO beyond a shrunk array fails.
        k.io_refusals.push(crate::sched::IoRefusal {
            bio,
            justified: true,
            why,
        });
        return MapResult::Requeue;
    }
    // 41425f96d7aa: md_handle_request hands back a bio that crossed a stalled reshape.
    if !md::md_handle_request(k, m, bio) {
        return MapResult::Requeue;
    }
    MapResult::Submitted
}

/// `do_table_event()` (event_work, queued at the end of md_reap_sync_thread): once no
/// reshape is left and md committed its disk count, grow the array to the size the table
/// asks for (rs_set_capacity) and raise a dm table event.
pub fn do_table_event(k: &mut K, m: MdId) {
    enter!(k, "do_table_event");
    let Some(rs) = k.raid_sets[m].as_ref() else {
        return;
    };
    let (size, disks) = (rs.array_sectors, rs.raid_disks);
    let md = &mut k.mddevs[m];
    if md.reshape_position == MAX_SECTOR
        && size > md.array_sectors
        && md.delta_disks == 0
        && md.geo.raid_disks == disks
    {
        md.array_sectors = size;
        let name = md.name.clone();
        k.trace(|| format!("do_table_event: {name} grows to {size}"));
    }
}

/// `decipher_sync_action()`, in the kernel's test order.
pub fn decipher_sync_action(md: &Mddev) -> &'static str {
    if md.test(MD_RECOVERY_FROZEN) {
        return "frozen";
    }
    // The sync thread can be done with IO or interrupted but still be running.
    if !md.test(MD_RECOVERY_DONE)
        && (md.test(MD_RECOVERY_RUNNING) || (md_is_rdwr(md) && md.test(MD_RECOVERY_NEEDED)))
    {
        if md.test(MD_RECOVERY_RESHAPE) {
            return "reshape";
        }
        if md.test(MD_RECOVERY_SYNC) {
            return if !md.test(MD_RECOVERY_REQUESTED) {
                "resync"
            } else if md.test(MD_RECOVERY_CHECK) {
                "check"
            } else {
                "repair"
            };
        }
        if md.test(MD_RECOVERY_RECOVER) {
            return "recover";
        }
        if md.reshape_position != MAX_SECTOR {
            return "reshape";
        }
    }
    "idle"
}

/// `raid_message()`.
pub fn raid_message(k: &mut K, m: MdId, word: &str) -> Result<(), Errno> {
    enter!(k, "raid_message");
    if !k.mddevs[m].pers {
        return Err(EINVAL);
    }
    // v2 p6 / 16c4770c75b1: refuse while suspended; 41425f96d7aa: also from presuspend on.
    if (really_frozen(k) && rs_test(k, m, RT_FLAG_RS_SUSPENDED))
        || (k.k.has(Change::WaitReshapeRequeues) && rs_test(k, m, RT_FLAG_RS_FROZEN))
    {
        return Err(EBUSY);
    }
    let idle_or_frozen = word == "idle" || word == "frozen";
    if k.k.has(Change::MessageUsesStopHelpers) {
        // cd32b27a66db / v2 p7 "md/dm-raid: don't call md_reap_sync_thread() directly"
        if word == "frozen" {
            md::mddev_lock(k, m);
            md::md_frozen_sync_thread(k, m);
            md::mddev_unlock(k, m);
        } else if word == "idle" {
            md::mddev_lock(k, m);
            md::md_idle_sync_thread(k, m);
            md::mddev_unlock(k, m);
        }
        if k.k.has(Change::MessageKeepsFrozenRestartsIdle) && idle_or_frozen {
            // f2 (candidate fix for orphaned-reshape): "frozen" keeps FROZEN (the pass stays
            // stopped until "idle" or the resume); "idle" clears it, and the NEEDED set
            // below lets the daemon continue an interrupted reshape. Both succeed.
            if word == "idle" {
                k.clear_bit(m, MD_RECOVERY_FROZEN);
            }
        } else {
            k.clear_bit(m, MD_RECOVERY_FROZEN);
            message_chain(k, m, word)?;
        }
    } else {
        if word == "frozen" {
            k.set_bit(m, MD_RECOVERY_FROZEN);
        } else {
            k.clear_bit(m, MD_RECOVERY_FROZEN);
        }
        if idle_or_frozen {
            if k.mddevs[m].sync_thread.is_some() {
                k.set_bit(m, MD_RECOVERY_INTR);
                md::md_reap_sync_thread(k, m);
            }
        } else {
            message_chain(k, m, word)?;
        }
    }
    if k.mddevs[m].ro == Ro::MdAutoRead {
        k.mddevs[m].ro = Ro::MdRdwr;
        if k.mddevs[m].suspended == 0 {
            let st = k.mddevs[m].sync_thread;
            md::md_wakeup_thread(k, st);
        }
    }
    k.set_bit(m, MD_RECOVERY_NEEDED);
    if k.mddevs[m].suspended == 0 {
        let d = k.mddevs[m].thread;
        md::md_wakeup_thread(k, d);
    }
    Ok(())
}

/// The `decipher_sync_action() != idle -> -EBUSY`, resync/recover/check/repair/else chain.
fn message_chain(k: &mut K, m: MdId, word: &str) -> Result<(), Errno> {
    if decipher_sync_action(&k.mddevs[m]) != "idle" {
        return Err(EBUSY);
    }
    match word {
        "resync" => {}
        "recover" => k.set_bit(m, MD_RECOVERY_RECOVER),
        "check" | "repair" => {
            if word == "check" {
                k.set_bit(m, MD_RECOVERY_CHECK);
            }
            k.set_bit(m, MD_RECOVERY_REQUESTED);
            k.set_bit(m, MD_RECOVERY_SYNC);
        }
        // cd32b27a66db as merged: "idle"/"frozen" end here too (kernel-lifecycle.md §3.2 #7).
        _ => return Err(EINVAL),
    }
    Ok(())
}

/// `raid_presuspend()`: absent in v6.7.
pub fn raid_presuspend(k: &mut K, m: MdId) {
    enter!(k, "raid_presuspend");
    if k.k.has(Change::V2ReallyFrozen) {
        // v2 p6: freeze and stop the sync thread before dm drains IO.
        md::mddev_lock(k, m);
        md::md_frozen_sync_thread(k, m);
        md::mddev_unlock(k, m);
    }
    if k.k.has(Change::V2PresuspendPrepares) && k.k.has(Change::V2ReshapeDisabledFailsIo) {
        // v2 p9 calls pers->prepare_suspend unconditionally; raid456's is added by v2 p11.
        md::pers_prepare_suspend(k, m);
    }
    if k.k.has(Change::WaitReshapeRequeues) {
        // 41425f96d7aa: raid_message refuses from here on.
        rs_set(k, m, RT_FLAG_RS_FROZEN);
    }
    if k.k.has(Change::DmSuspendingGatesRefusal) {
        // 1d24d4c1ea1d "dm-raid: only requeue bios when dm is suspending": set before the
        // reshape_interrupted test below, so the woken waiters are handed back.
        k.mddevs[m].dm_suspending = true;
    }
    // 5625ff8b72b0: wake the reshape waiters only if the reshape is interrupted right now;
    // raid456's prepare_suspend comes with 41425f96d7aa.
    if k.k.has(Change::MergedPresuspendPrepares)
        && k.k.has(Change::WaitReshapeRequeues)
        && reshape_interrupted(&k.mddevs[m])
    {
        md::pers_prepare_suspend(k, m);
    }
}

/// `raid_postsuspend()`.
pub fn raid_postsuspend(k: &mut K, m: MdId) {
    enter!(k, "raid_postsuspend");
    if !rs_test_and_set(k, m, RT_FLAG_RS_SUSPENDED) {
        if really_frozen(k) || !k.test_bit(m, MD_RECOVERY_FROZEN) {
            // v6.7 stops writes only if FROZEN is clear; v2 p6 / 16c4770c75b1 always.
            md::md_stop_writes(k, m);
        }
        if !k.k.has(Change::V2NoMddevSuspend) {
            md::mddev_suspend(k, m, false);
        }
        if k.k.has(Change::PostsuspendReadOnly) {
            // 55dcfdf8af9c "dm raid: use proper md_ro_state enumerators"
            k.mddevs[m].ro = Ro::MdRdonly;
        }
    }
    if k.k.has(Change::DmSuspendingGatesRefusal) {
        // 1d24d4c1ea1d: cleared on every postsuspend.
        k.mddevs[m].dm_suspending = false;
    }
    if really_frozen(k) && k.mddevs[m].sync_thread.is_some() {
        let name = k.mddevs[m].name.clone();
        k.violation(
            "sync-thread-after-postsuspend",
            format!("{name} is suspended with a registered sync thread"),
        );
    }
}

/// `rs_update_sbs()`: a transient read-write window around md_update_sb.
fn rs_update_sbs(k: &mut K, m: MdId) {
    enter!(k, "rs_update_sbs");
    k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    let ro = k.mddevs[m].ro;
    k.mddevs[m].ro = Ro::MdRdwr;
    k.pre();
    md::md_update_sb(k, m, false);
    k.pre();
    k.mddevs[m].ro = ro;
}

/// `rs_setup_reshape()`: delta_disks, direction and sizes of the requested reshape.
fn rs_setup_reshape(k: &mut K, m: MdId) {
    let delta = k.raid_sets[m].as_ref().map_or(0, |rs| rs.delta_disks);
    let md = &mut k.mddevs[m];
    md.delta_disks = delta;
    if delta != 0 && md.new_geo.layout != md.geo.layout {
        // "Ignoring invalid layout change with delta_disks"
        md.new_geo.layout = md.geo.layout;
    }
    md.reshape_backwards = match md.delta_disks {
        d if d > 0 => false,
        d if d < 0 => true,
        _ => md.new_geo.data_offset != 0,
    };
    // "Adjust device size for forward reshape because md_finish_reshape() reduces it."
    // (raid_preresume set every leg to the table's size just before.)
    if !md.reshape_backwards {
        let space = md.geo.data_offset.abs_diff(md.new_geo.data_offset);
        md.rdev_sectors += space;
    }
}

/// `rs_start_reshape()` (reconfig_mutex held): this instance never runs the reshape (WAIT).
fn rs_start_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "rs_start_reshape");
    k.set_bit(m, MD_RECOVERY_WAIT);
    rs_setup_reshape(k, m);
    md::pers_check_reshape(k, m)?;
    md::pers_start_reshape(k, m)?;
    rs_update_sbs(k, m);
    Ok(())
}

/// Candidate fix f1: an instance whose ctr found a reshape in progress takes the position
/// from the superblocks again at its first preresume. The instance it replaces is
/// postsuspended by then (sync thread stopped, frozen) and wrote its last checkpoint in
/// md_stop_writes, so that position is final; the ctr-time one may be stale. If that
/// instance even finished the reshape, adopt the finished geometry (what end_reshape and
/// raid5_finish_reshape would have done here).
fn rs_reread_reshape_position(k: &mut K, m: MdId) {
    enter!(k, "rs_reread_reshape_position");
    let md = &k.mddevs[m];
    // raid4/5/6 and raid10 (the patch's rs_adopt_*_raid456 / _raid10: r5conf and r10conf
    // keep the same reshape_progress / reshape_safe; the model's conf is one struct).
    if md.reshape_position == MAX_SECTOR || rs_test(k, m, RT_FLAG_RESHAPE_RS) {
        return;
    }
    let sb = k.members[md.members].sb.clone();
    let mine = md.reshape_position;
    let back = md.reshape_backwards;
    let name = md.name.clone();
    if sb.reshape_active() {
        let ahead = if back {
            sb.reshape_position < mine
        } else {
            sb.reshape_position > mine
        };
        if !ahead {
            return;
        }
        let pos = sb.reshape_position;
        k.mddevs[m].reshape_position = pos;
        if let Some(c) = k.mddevs[m].conf.as_mut() {
            c.reshape_progress = pos;
            c.reshape_safe = pos;
        }
        k.trace(|| format!("{name}: reshape position {mine} -> {pos} from the superblock"));
    } else {
        // Finished under the previous instance: take over its end, if this instance was set
        // up to reshape to the geometry the superblock now records (else leave it: a table
        // asking for yet another geometry is not this fix's to sort out).
        // The superblock's new layout / chunk: the same as its current ones after a clean
        // end, the geometry the data is in after an end written before raid5_finish_reshape.
        let done = sb.new_geo();
        let target = k.mddevs[m].conf.as_ref().map(|c| c.geo);
        if target.is_none_or(|g| {
            (g.raid_disks, g.layout, g.chunk) != (done.raid_disks, done.layout, done.chunk)
        }) {
            return;
        }
        // rs_adopt_end_raid456 / rs_adopt_end_raid10: only raid5's end sets the array size
        // (md_set_array_sectors); a raid10 set grows as raid10's own end leaves it to.
        let raid456 = md::pers(k, m) == Personality::Raid456;
        // The patch's md_finish_reshape: the legs' size follows the data offset.
        let new_offset = k.mddevs[m].new_geo.data_offset;
        md::md_finish_reshape(k, m, new_offset);
        let md = &mut k.mddevs[m];
        md.geo = md.new_geo;
        md.delta_disks = 0;
        md.reshape_position = MAX_SECTOR;
        md.reshape_backwards = false;
        if let Some(c) = md.conf.as_mut() {
            c.prev = c.geo;
            c.reshape_progress = MAX_SECTOR;
            c.reshape_safe = MAX_SECTOR;
            if raid456 {
                md.array_sectors = raid5::geo_size(&c.geo, c.dev_data);
            }
        }
        k.clear_bit(m, MD_RECOVERY_RESHAPE);
        k.trace(|| format!("{name}: the reshape finished meanwhile (superblock)"));
    }
}

/// f3's `rs_fail_legs_failed_since_ctr()`: the superblocks read again; every leg still
/// working here that they record as failed goes through md_error, as the ctr would have
/// failed it.
fn rs_fail_legs_failed_since_ctr(k: &mut K, m: MdId) {
    for d in md::legs_failed_since_ctr(k, m) {
        let name = k.mddevs[m].name.clone();
        k.trace(|| format!("{name}: device #{d} failed after this table was loaded"));
        md::md_error(k, m, d);
    }
}

/// `raid_preresume()`: only the first preresume of an instance works.
pub fn raid_preresume(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "raid_preresume");
    if rs_test_and_set(k, m, RT_FLAG_RS_PRERESUMED) {
        return Ok(());
    }
    if k.k.has(Change::PreresumeFailsLegsFailedSinceCtr) {
        // f3 (candidate fix for stale-ctr-legs; findings/stale-ctr-legs.md)
        rs_fail_legs_failed_since_ctr(k, m);
    }
    if k.k.has(Change::PreresumeRereadsReshapePosition) {
        // f1 (candidate fix for stale-ctr-position; findings/stale-ctr-position.md)
        rs_reread_reshape_position(k, m);
    }
    // Model check: the instance replaced is postsuspended now; its last checkpoint is on
    // disk. Checked before rs_update_sbs could write this instance's own position over it.
    md::stale_position_check(k, m);
    md::stale_legs_check(k, m);
    if rs_test(k, m, RT_FLAG_UPDATE_SBS) {
        rs_update_sbs(k, m);
    }
    md::md_bitmap_load(k, m);
    rs_set(k, m, RT_FLAG_RS_BITMAP_LOADED);
    if !really_frozen(k) {
        // v6.7 (removed by 16c4770c75b1 / v2 p6): no sync start before raid_resume.
        k.set_bit(m, MD_RECOVERY_FROZEN);
    }
    let cp = k.mddevs[m].recovery_cp;
    if cp > 0 && cp < MAX_SECTOR {
        k.set_bit(m, MD_RECOVERY_REQUESTED);
        k.mddevs[m].resync_min = cp;
    }
    if rs_test(k, m, RT_FLAG_RESHAPE_RS) {
        // rs_set_rdev_sectors(): every leg at the table's size before the reshape's own
        // adjustment (rs_setup_reshape).
        k.mddevs[m].rdev_sectors = k.members[k.mddevs[m].members].dev_data;
        md::mddev_lock(k, m);
        let r = rs_start_reshape(k, m);
        md::mddev_unlock(k, m);
        if let Err(e) = r {
            let name = k.mddevs[m].name.clone();
            k.trace(|| format!("{name}: rs_start_reshape failed: {e} (only warned)"));
        }
    }
    Ok(())
}

/// raid_resume's `WARN_ON_ONCE(!test_bit(MD_RECOVERY_FROZEN, &mddev->recovery))`.
fn resume_warn_not_frozen(k: &mut K, m: MdId) {
    if !k.test_bit(m, MD_RECOVERY_FROZEN) {
        let cond = "!test_bit(MD_RECOVERY_FROZEN, &mddev->recovery)";
        k.warn_on("warn-resume-not-frozen", cond, "raid_resume");
    }
}

/// `raid_resume()`.
pub fn raid_resume(k: &mut K, m: MdId) {
    enter!(k, "raid_resume");
    if rs_test_and_set(k, m, RT_FLAG_RS_RESUMED) {
        // A secondary resume: are failed devices reachable again? 95009ae904b1 takes
        // reconfig_mutex around it.
        let locked = k.k.has(Change::ResumeLocksRestore);
        if locked {
            md::mddev_lock(k, m);
        }
        attempt_restore_of_faulty_devices(k, m);
        if locked {
            md::mddev_unlock(k, m);
        }
    }
    if !rs_test_and_clear(k, m, RT_FLAG_RS_SUSPENDED) {
        return;
    }
    md::stale_position_check(k, m);
    // 3199a34bfaf7 "dm-raid: Fix WARN_ON_ONCE check for sync_thread in raid_resume": the
    // checks move under reconfig_mutex and test the thread, not MD_RECOVERY_RUNNING (which
    // md_check_recovery sets before md_start_sync registers anything).
    let under_lock = k.k.has(Change::ResumeWarnsOnSyncThread);
    if k.k.has(Change::MergedReallyFrozen) && !under_lock {
        // 16c4770c75b1: a suspended instance is frozen with no sync thread.
        resume_warn_not_frozen(k, m);
        if k.test_bit(m, MD_RECOVERY_RUNNING) {
            let cond = "test_bit(MD_RECOVERY_RUNNING, &mddev->recovery)";
            k.warn_on("warn-resume-running", cond, "raid_resume");
        }
    }
    if k.k.has(Change::WaitReshapeRequeues) && !under_lock {
        rs_clear(k, m, RT_FLAG_RS_FROZEN);
    }
    md::mddev_lock(k, m);
    if k.k.has(Change::MergedReallyFrozen) && under_lock {
        resume_warn_not_frozen(k, m);
        if k.mddevs[m].sync_thread.is_some() {
            let cond = "rcu_dereference_protected(mddev->sync_thread, ...)";
            k.warn_on("warn-resume-sync-thread", cond, "raid_resume");
        }
    }
    if k.k.has(Change::WaitReshapeRequeues) && under_lock {
        // 3199a34bfaf7 also moved this below the lock: raid_message keeps refusing until
        // the checks are done.
        rs_clear(k, m, RT_FLAG_RS_FROZEN);
    }
    if !really_frozen(k) {
        k.clear_bit(m, MD_RECOVERY_FROZEN);
    }
    k.mddevs[m].ro = Ro::MdRdwr;
    k.mddevs[m].in_sync = false;
    if really_frozen(k) {
        // v2 p6 / 16c4770c75b1
        md::md_unfrozen_sync_thread(k, m);
    }
    if k.k.has(Change::V2NoMddevSuspend) {
        md::mddev_unlock(k, m);
    } else {
        md::mddev_unlock_and_resume(k, m);
    }
}

/// `attempt_restore_of_faulty_devices()` (raid_resume, under reconfig_mutex): a Faulty leg
/// whose device reads again is re-added (hot_add_disk) to be recovered from the start, and
/// the superblocks rewritten.
fn attempt_restore_of_faulty_devices(k: &mut K, m: MdId) {
    let failing = k.members[k.mddevs[m].members].failing;
    let mut restored = 0;
    for d in 0..k.mddevs[m].rdevs.len() {
        if k.mddevs[m].rdevs[d].faulty && failing & (1 << d) == 0 {
            k.mddevs[m].rdevs[d] = Rdev::REBUILD;
            restored += 1;
        }
    }
    if restored > 0 {
        let name = k.mddevs[m].name.clone();
        k.trace(|| format!("{name}: {restored} faulty leg(s) restored"));
        k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
        k.set_bit(m, MD_RECOVERY_NEEDED);
    }
}

/// `raid_status()` (STATUSTYPE_INFO) with `rs_get_progress()`, the fields lvm's
/// `wait_for_sync` reads: health chars, `progress/total`, action. The model counts progress
/// in the units of its md_do_sync (array blocks) where the kernel counts sectors per member;
/// the ratios compare the same way.
///
/// As the kernel: the numerator is `recovery_cp` when idle and not interrupted (so an idle
/// array, a stalled reshape included, reads a full ratio), else `curr_resync_completed`
/// (the last reshape checkpoint while reshaping; 0 while frozen or suspended).
/// `__raid_dev_status()`: a leg reads `a` while the set resyncs or reshapes (or is idle with
/// NEEDED set: RT_FLAG_RS_RESYNCING), or when it is not In_sync and the set is not known to
/// be in sync (RT_FLAG_RS_IN_SYNC: a finished recovery, check / repair, or every leg
/// In_sync); `A` otherwise.
pub fn raid_status(k: &K, m: MdId) -> (String, Sector, Sector, &'static str) {
    let md = &k.mddevs[m];
    let action = decipher_sync_action(md);
    // resync_max_sectors: the model counts a resync / reshape in array blocks and a recovery
    // in device blocks (md_do_sync's max for each), so the ratio's total follows the action.
    let total = if action == "recover" {
        k.members[md.members].dev_data as Sector
    } else {
        md.array_sectors
    };
    let r = if action == "idle" && !md.test(MD_RECOVERY_INTR) {
        md.recovery_cp
    } else {
        md.curr_resync_completed
    };
    let all_in_sync = md.rdevs.iter().all(|r| r.in_sync);
    let (resyncing, in_sync) = if action == "idle" && r >= total {
        (false, md.test(MD_RECOVERY_RECOVER))
    } else {
        match action {
            "resync" | "reshape" => (true, false),
            "check" | "repair" => (false, true),
            "recover" => (false, false),
            _ if md.test(MD_RECOVERY_NEEDED) => (true, false),
            _ => (false, all_in_sync),
        }
    };
    let legs = k.raid_sets[m]
        .as_ref()
        .map_or(md.geo.raid_disks, |rs| rs.table.legs);
    let health = (0..legs as usize)
        .map(|d| {
            let leg_in_sync = md.rdevs.get(d).is_none_or(|r| r.in_sync);
            if md.rdevs.get(d).is_some_and(|r| r.faulty) {
                'D'
            } else if resyncing || (!in_sync && !leg_in_sync) {
                'a'
            } else {
                'A'
            }
        })
        .collect();
    (health, r.min(total), total, action)
}
