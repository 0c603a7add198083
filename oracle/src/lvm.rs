//! What an actor does for each op: dm ioctls, the lvm macros expanded into the ioctls lvm
//! issues (`../shared/spec/lvm2-sequences.md`), md sysfs writes, and bios checked against the
//! shadow copy.
//!
//! lvm expansions (every suspend of a raid LV is a flush suspend, §1.2 b):
//! * `lvchange -ay`: LOAD (ctr) + RESUME. `lvchange -an`: REMOVE (dm runs presuspend and
//!   postsuspend itself, no drain).
//! * update-and-reload(T): LOAD T (skipped when T equals the live table: lvm suppresses
//!   identical reloads) + SUSPEND + RESUME. The rimage tables, which is where reshape space is
//!   relocated, change between the SUSPEND and the top-level RESUME (bottom-up resume).
//! * `lvconvert --stripes M` (M > N, §2): [first reshape: interim reload with the new legs and
//!   no delta_disks; the reshape space is allocated at the end] -> relocation of the space to
//!   the front (when the kernel reports data_offset 0) -> reload with `delta_disks M-N
//!   data_offset R` -> reload without the one-shot flags.
//! * `lvconvert --stripes M --force` (M < N, §3.1): [interim reload, space at the end] ->
//!   relocation to the end if it was at the front -> reload with `delta_disks -(N-M)
//!   data_offset R` (all legs) -> reload without flags. A second `--stripes M` (§3.2) removes
//!   the freed legs with one reload once the kernel finished.
//! * `lvconvert --stripesize C` / `--type raid5_X` (§3.3): [interim reload] -> reload with the
//!   new chunk/layout and `data_offset R` -> reload without it (the kernel toggles direction).
//! * Preconditions lvm checks first (§2): the LV is in sync (STATUS: idle, full ratio, every
//!   health char `A`); otherwise the command fails with no dm op.
//! * `lvconvert -m N` (raid1, §4.2): one reload with `rebuild i` on the new images; fewer
//!   images: a reload without the last ones, then an identical update-and-reload.
//!
//! The raid4/5/6 interim reload's `rebuild` legs are modelled as extra legs the kernel ignores;
//! takeovers and the rmeta wipes are not modelled.

use crate::runner::{user, LvMeta, Target};
use crate::scenario::{Op, Range};
use crate::shadow::{tag, tag_block, tag_writer};
use md_model::dm::{
    dm_remove, dm_submit_bio, dm_suspend, do_resume, table_load, table_load_mode, target_message,
    DmTarget,
};
use md_model::dm_raid::{raid_status, Table};
use md_model::md;
use md_model::md_h::*;
use md_model::sched::{Bio, Cx, K};

type R = Result<(), String>;

/// Runs op `index` of the scenario (an op of this actor); its result goes to the trace, to
/// `User::op_results` (and op errors to the verdict's detail).
pub fn exec(cx: &Cx, index: usize, op: &Op) {
    let mut k = cx.lock();
    let t = k.quiet_ticks;
    user(&mut k).op_started[index] = Some(t);
    k.trace(|| format!("> {op}"));
    let r = exec_op(&mut k, op);
    if matches!(op, Op::Resume { .. }) {
        // dmsetup resume exits only after udev processed the device's change uevent (udev
        // sync): the kworker reissuing the deferred bios (dm_wq_work) may run first, as it
        // did on 6.12 (writer-suspend-cycles.scn: a held write failed during the resume).
        k.pre();
    }
    let result = match &r {
        Ok(()) => "ok".to_string(),
        Err(e) => result_word(e),
    };
    user(&mut k).op_results[index] = Some(result);
    let action = op_array(op).map_or("-", |name| sync_action_of(&mut k, name));
    user(&mut k).op_actions[index] = action.to_string();
    let u = user(&mut k);
    u.ops_returned += 1;
    u.op_order[index] = Some(u.ops_returned);
    let q = user(&mut k).op_done;
    k.wake_up(q);
    match &r {
        Ok(()) => k.trace(|| format!("< {op}: ok")),
        Err(e) => {
            let e = e.clone();
            k.trace(|| format!("< {op}: {e}"));
            let who = k.tasks[k.cx.task].name.clone();
            user(&mut k).op_errors.push(format!("{who}: {op}: {e}"));
        }
    }
    k.progress += 1;
}

/// The array an op addresses.
pub fn op_array(op: &Op) -> Option<&str> {
    match op {
        Op::Load { dev, .. }
        | Op::Reload { dev }
        | Op::ReloadAtReshapeEnd { dev }
        | Op::SuspendAtReshapeEnd { dev, .. }
        | Op::Suspend { dev, .. }
        | Op::Resume { dev }
        | Op::Remove { dev }
        | Op::Message { dev, .. }
        | Op::Status { dev }
        | Op::Advance { dev, .. }
        | Op::Delay { dev, .. }
        | Op::Activate { dev }
        | Op::Deactivate { dev }
        | Op::Stripes { dev, .. }
        | Op::Stripesize { dev, .. }
        | Op::Retype { dev, .. }
        | Op::Mirrors { dev, .. }
        | Op::Repair { dev }
        | Op::Refresh { dev }
        | Op::LegDevice { dev, .. }
        | Op::WaitForSync { dev }
        | Op::Permission { dev, .. }
        | Op::Read { dev, .. }
        | Op::Write { dev, .. }
        | Op::Fsck { dev } => Some(dev),
        Op::SyncAction { md, .. }
        | Op::ArrayState { md, .. }
        | Op::SyncMax { md, .. }
        | Op::RaidDisks { md, .. } => Some(md),
        Op::Sleep | Op::After(_) | Op::AfterOrDeadline(_) | Op::Throttle { .. } => None,
    }
}

/// The sync action `dmsetup status` (or md's sync_action) would show now; `-` without a
/// live instance.
fn sync_action_of(k: &mut K, name: &str) -> &'static str {
    let m = match target(k, name) {
        Target::Dm(d) if k.dms[d].removed => None,
        Target::Dm(d) => k.dms[d].live_md(),
        Target::Md(m) => Some(m),
    };
    m.map_or("-", |m| {
        md_model::dm_raid::decipher_sync_action(&k.mddevs[m])
    })
}

/// An op error as one word: the errno name a kernel op returned (`EINVAL`), or `failed` for
/// a refusal of lvm's own.
fn result_word(e: &str) -> String {
    for word in ["stalled", "missed"] {
        if e.starts_with(word) {
            return word.into();
        }
    }
    let w = e
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    if w.len() > 1 && w.starts_with('E') && w.chars().all(|c| c.is_ascii_uppercase()) {
        w.to_string()
    } else {
        "failed".to_string()
    }
}

fn target(k: &mut K, name: &str) -> Target {
    user(k).targets[name]
}

fn dev(k: &mut K, name: &str) -> usize {
    match target(k, name) {
        Target::Dm(d) => d,
        Target::Md(_) => unreachable!("the parser only lets dm ops name dm arrays"),
    }
}

fn mdid(k: &mut K, name: &str) -> usize {
    match target(k, name) {
        Target::Md(m) => m,
        Target::Dm(_) => unreachable!("the parser only lets sysfs ops name md arrays"),
    }
}

fn errno(r: Result<(), &'static str>) -> R {
    r.map_err(|e| e.to_string())
}

fn exec_op(k: &mut K, op: &Op) -> R {
    match op {
        Op::Load { dev: name, table } => {
            let d = dev(k, name);
            errno(table_load(k, d, table))
        }
        Op::ReloadAtReshapeEnd { dev: name } => {
            let d = dev(k, name);
            let mem = k.dms[d].members;
            // The guest polls the metadata sub-device: the superblock must record an ended,
            // uncommitted reshape (or the end was committed / there is no reshape: missed).
            poll(k, |w| {
                let sb = &w.members[mem].sb;
                sb.ended_unfinished || !sb.reshape_active()
            });
            if !k.members[mem].sb.ended_unfinished {
                return Err("missed (no reshape end in progress)".into());
            }
            exec_op(
                k,
                &Op::Reload {
                    dev: name.to_string(),
                },
            )
        }
        Op::SuspendAtReshapeEnd { dev: name, noflush } => {
            let d = dev(k, name);
            // The guest polls dmsetup status as fast as it can and suspends the moment it
            // reads the reshape ended (end_reshape ran: reshape_position MaxSector, the new
            // data offset; DONE set, or already reaped).
            poll(k, |w| {
                w.dms[d].live_md().is_none_or(|m| {
                    let md = &w.mddevs[m];
                    md.reshape_position == MAX_SECTOR
                        && (md.test(MD_RECOVERY_DONE) || md.sync_thread.is_none())
                })
            });
            errno(dm_suspend(k, d, *noflush))
        }
        Op::Reload { dev: name } => {
            let d = dev(k, name);
            let t = k.dms[d].live_table.clone().ok_or("no live table")?;
            errno(table_load(k, d, &t))
        }
        Op::Suspend { dev: name, noflush } => {
            let d = dev(k, name);
            errno(dm_suspend(k, d, *noflush))
        }
        Op::Resume { dev: name } => {
            let d = dev(k, name);
            errno(do_resume(k, d))
        }
        Op::Remove { dev: name } => {
            let d = dev(k, name);
            errno(dm_remove(k, d))
        }
        Op::Message { dev: name, word } => {
            let d = dev(k, name);
            errno(target_message(k, d, word))
        }
        Op::Status { dev: name } => {
            let d = dev(k, name);
            if k.dms[d].removed {
                return Err("ENXIO (no such device)".into());
            }
            Ok(())
        }
        Op::Advance { dev: name, by } => advance(k, name, *by),
        // Timing only: the model has no time to slow down.
        Op::Delay { .. } => Ok(()),
        Op::Throttle { on } => {
            k.sync_throttled = *on;
            // A sync thread waiting out its speed limit goes on at once.
            let q = k.timer_wq;
            k.wake_up(q);
            Ok(())
        }
        Op::Activate { dev: name } => lvchange_ay(k, name),
        Op::Deactivate { dev: name } => {
            let d = dev(k, name);
            if k.dms[d].removed {
                return Ok(());
            }
            errno(dm_remove(k, d))
        }
        Op::Stripes {
            dev: name,
            stripes,
            force,
        } => lvconvert_stripes(k, name, *stripes, *force),
        Op::Stripesize { dev: name, chunk } => lvconvert_keep_images(k, name, None, Some(*chunk)),
        Op::Retype { dev: name, layout } => lvconvert_keep_images(k, name, Some(*layout), None),
        Op::Mirrors { dev: name, mirrors } => lvconvert_mirrors(k, name, *mirrors),
        Op::Repair { dev: name } => lvconvert_repair(k, name),
        Op::Refresh { dev: name } => {
            // lv_refresh: suspend + resume of the unchanged table (a secondary resume).
            let d = dev(k, name);
            lvm_suspend(k, d)?;
            errno(do_resume(k, d))
        }
        Op::LegDevice {
            dev: name,
            leg,
            works,
        } => {
            if meta(k, name).table.layout != Layout::Raid1 {
                return Err("a failing leg is modelled for raid1 LVs only".into());
            }
            let d = dev(k, name);
            let mem = k.dms[d].members;
            if *works {
                k.members[mem].failing &= !(1 << leg);
            } else {
                k.members[mem].failing |= 1 << leg;
            }
            Ok(())
        }
        Op::WaitForSync { dev: name } => wait_for_sync(k, name),
        Op::Permission {
            dev: name,
            writable,
        } => lvchange_permission(k, name, *writable),
        Op::SyncAction { md: name, word } => {
            let m = mdid(k, name);
            errno(md::action_store(k, m, word))
        }
        Op::ArrayState { md: name, word } => {
            let m = mdid(k, name);
            errno(md::array_state_store(k, m, word))
        }
        Op::SyncMax { md: name, max } => {
            let m = mdid(k, name);
            md::max_sync_store(k, m, *max);
            Ok(())
        }
        Op::RaidDisks { md: name, disks } => {
            let m = mdid(k, name);
            errno(md::update_raid_disks(k, m, *disks))
        }
        Op::Read { dev: name, range } => io(k, name, false, *range),
        Op::Write { dev: name, range } => io(k, name, true, *range),
        Op::Fsck { dev: name } => {
            // `fsck -fn` reads the device to its end as it is when the read starts.
            let Some(len) = lv_size(k, name) else {
                return Err("no live table".into());
            };
            io(k, name, false, Range::Abs { start: 0, len })
        }
        Op::Sleep => {
            let q = k.timer_wq;
            k.sleep_once(q, "sleep: waiting for the timer");
            Ok(())
        }
        Op::AfterOrDeadline(i) => {
            // The deadline runs from the start of the op waited for, as the guest's does.
            let (i, q) = (*i, user(k).op_done);
            k.sleep(q, "after: waiting for an earlier op or its deadline", |w| {
                let u = w
                    .user
                    .as_ref()
                    .and_then(|u| u.downcast_ref::<crate::runner::User>());
                u.is_some_and(|u| {
                    u.op_results[i].is_some()
                        || u.op_started[i].is_some_and(|t0| {
                            let since = w.quiet_ticks.saturating_sub(t0);
                            since >= crate::scenario::STEP_DEADLINE_TICKS
                                || (since >= crate::scenario::ADVANCE_QUIET_TICKS
                                    && w.stalled_ticks >= crate::scenario::ADVANCE_QUIET_TICKS)
                        })
                })
            });
            Ok(())
        }
        Op::After(i) => {
            let (i, q) = (*i, user(k).op_done);
            k.sleep(q, "after: waiting for an earlier op", |w| {
                let u = w
                    .user
                    .as_ref()
                    .and_then(|u| u.downcast_ref::<crate::runner::User>());
                u.is_some_and(|u| u.op_results[i].is_some())
            });
            Ok(())
        }
    }
}

/// A superblock's reshape checkpoint in blocks per member (reshape_position over the new
/// geometry's data disks, counted from where the reshape starts), None without a reshape.
fn sb_checkpoint(sb: &Superblock, dev_data: u32) -> Option<u64> {
    if !sb.reshape_active() {
        return None;
    }
    let g = sb.new_geo();
    let data = u64::from(g.data_disks().max(1));
    Some(if sb.reshape_backwards {
        md_model::raid5::geo_size(&g, dev_data).saturating_sub(sb.reshape_position) / data
    } else {
        sb.reshape_position / data
    })
}

/// The reshape checkpoint of `name`'s members in blocks per member, None without a reshape.
fn checkpoint(k: &mut K, name: &str) -> Option<u64> {
    let m = serving(k, name)?;
    let mem = &k.members[k.mddevs[m].members];
    sb_checkpoint(&mem.sb, mem.dev_data)
}

/// A user-space polling loop (the guest re-reads status or the superblock as fast as it
/// can): runnable at every step until `cond` holds, so it can act inside any window that
/// spans a preemption point.
fn poll(k: &mut K, cond: impl Fn(&md_model::sched::World) -> bool) {
    while !cond(k) {
        k.yield_now();
    }
}

/// `advance LV N`: the guest polls `dmsetup status` until the reshape position moved by N
/// (scaled) or a deadline passes. `stalled` when no reshape ran for the whole deadline.
fn advance(k: &mut K, name: &str, by: u32) -> R {
    let from = checkpoint(k, name).unwrap_or(0);
    let quiet0 = k.quiet_ticks;
    let q = k.sync_completed;
    let name2 = name.to_string();
    let moved = move |w: &md_model::sched::World| -> Option<bool> {
        let u = w.user.as_ref()?.downcast_ref::<crate::runner::User>()?;
        let m = match u.targets.get(&name2)? {
            Target::Dm(d) => w.dms[*d].live_md().filter(|_| !w.dms[*d].removed)?,
            Target::Md(m) => *m,
        };
        let mem = &w.members[w.mddevs[m].members];
        // None: ended (or never started): nothing left to wait for.
        let Some(now) = sb_checkpoint(&mem.sb, mem.dev_data) else {
            return Some(true);
        };
        Some(now >= from + u64::from(by))
    };
    k.sleep(q, "advance: polling the reshape position", |w| {
        moved(w).unwrap_or(true)
            || (w.quiet_ticks >= quiet0 + crate::scenario::ADVANCE_QUIET_TICKS
                && w.stalled_ticks >= crate::scenario::ADVANCE_QUIET_TICKS)
    });
    if moved(&*k).unwrap_or(true) {
        Ok(())
    } else {
        Err("stalled (the reshape did not move)".into())
    }
}

/// The mddev that serves IO for `name` now.
fn serving(k: &mut K, name: &str) -> Option<usize> {
    match target(k, name) {
        Target::Dm(d) => k.dms[d].live_md().filter(|_| !k.dms[d].removed),
        Target::Md(m) => Some(m),
    }
}

/// A striped / linear LV's live target: its length and members.
fn plain_target(k: &mut K, name: &str) -> Option<(u64, usize)> {
    let Target::Dm(d) = target(k, name) else {
        return None;
    };
    match k.dms[d].live.filter(|_| !k.dms[d].removed)? {
        DmTarget::Stripe(sc) => Some((sc.len, sc.members)),
        DmTarget::Linear(lc) => Some((lc.len, lc.members)),
        DmTarget::Raid(_) => None,
    }
}

/// The LV's (or md array's) size now.
fn lv_size(k: &mut K, name: &str) -> Option<u64> {
    match serving(k, name) {
        Some(m) => Some(k.mddevs[m].array_sectors),
        None => plain_target(k, name).map(|(len, _)| len),
    }
}

/// (start, len) of `range` on the array as it is now, cut at its end (relative ranges), and
/// whether an absolute range reaches beyond that end.
fn resolve(k: &mut K, name: &str, range: Range) -> Option<(u64, u64, bool)> {
    let Some(m) = serving(k, name) else {
        // striped / linear: no reshape, relative ranges are around the middle.
        let (size, mem) = plain_target(k, name)?;
        let low = k.members[mem].smallest_array;
        user(k)
            .shadows
            .get_mut(name)
            .expect("shadow")
            .shrink_to(size.min(low));
        return Some(place_range(range, size, size / 2, false));
    };
    let size = k.mddevs[m].array_sectors;
    // A stripe removal loses what lay beyond the smaller size, even when the array has
    // grown again since.
    let low = k.members[k.mddevs[m].members].smallest_array;
    user(k)
        .shadows
        .get_mut(name)
        .expect("shadow")
        .shrink_to(size.min(low));
    let md = &k.mddevs[m];
    let pos = md
        .conf
        .as_ref()
        .map(|c| c.reshape_progress)
        .filter(|&p| p != MAX_SECTOR);
    let back = md.reshape_backwards;
    // raid1 has no reshape: positions are the status position (a recovery's progress, a
    // full ratio when idle), as the VM's guest reads them.
    let p = if md::pers(k, m) == Personality::Raid1 {
        raid_status(k, m).1
    } else {
        pos.unwrap_or(size / 2)
    };
    Some(place_range(range, size, p, back))
}

/// `range` placed on a device of `size` blocks with the reshape (or status) position `p`.
fn place_range(range: Range, size: u64, p: u64, back: bool) -> (u64, u64, bool) {
    let (start, len) = match range {
        Range::Abs { start, len } => (start, len),
        Range::Across(n) => (p.saturating_sub(n / 2), n),
        Range::Ahead(n) if back => (p.saturating_sub(n), n),
        Range::Ahead(n) => (p, n),
        Range::Behind(n) if back => (p, n),
        Range::Behind(n) => (p.saturating_sub(n), n),
    };
    let beyond = matches!(range, Range::Abs { .. }) && start.saturating_add(len) > size;
    let start = start.min(size);
    (start, len.min(size - start), beyond)
}

/// A bio through the device (dm) or the md gendisk, checked against the shadow copy.
fn io(k: &mut K, name: &str, write: bool, range: Range) -> R {
    let Some((start, len, beyond)) = resolve(k, name, range) else {
        return Err("no live table".into());
    };
    if beyond {
        // submit_bio_noacct -> bio_check_eod: "attempt to access beyond end of device", the
        // bio fails with EIO before the target sees it.
        let what = format!(
            "{} {name} {range:?}: EIO (beyond the end of the device)",
            if write { "write" } else { "read" }
        );
        user(k).io_errors.push((what, true));
        return Err("EIO".into());
    }
    if len == 0 {
        return Ok(());
    }
    let writer = if write {
        let u = user(k);
        u.writes += 1;
        u.writes
    } else {
        0
    };
    if let Target::Dm(d) = target(k, name) {
        // open(O_WRONLY) of a read-only disk fails before any bio is issued.
        if write && k.dms[d].read_only && !k.dms[d].removed {
            return Err("EPERM (read-only device)".into());
        }
    }
    let t0 = k.steps;
    if write {
        user(k)
            .shadows
            .get_mut(name)
            .expect("shadow")
            .write_started(writer, start, len, t0);
    }
    let n = k.bios.len();
    let wq = k.new_wq(format!("bio{n}"));
    let b = k.bios.len();
    k.bios.push(Bio {
        write,
        start,
        len,
        tag: tag(writer, 0),
        data: Vec::new(),
        origins: Vec::new(),
        status: None,
        wq,
        requeued: 0,
        served_by: None,
    });
    match target(k, name) {
        Target::Dm(d) => {
            // The reader or writer holds the block device open for the whole bio; opening a
            // device being removed fails.
            if k.dms[d].deleting || k.dms[d].removed {
                return Err("ENXIO".into());
            }
            k.dms[d].open_count += 1;
            dm_submit_bio(k, d, b);
            k.dms[d].open_count -= 1;
        }
        Target::Md(m) => {
            // md_submit_bio(): writes to a read-only array fail (AUTO_READ turns read-write
            // in md_write_start).
            if write && k.mddevs[m].ro == Ro::MdRdonly {
                return Err("EROFS".into());
            }
            // The reader or writer holds the array open for the whole bio (md_open).
            k.mddevs[m].openers += 1;
            md::md_handle_request(k, m, b);
            k.mddevs[m].openers -= 1;
        }
    }
    let t1 = k.steps;
    let requeued = k.bios[b].requeued;
    user(k).requeues += requeued;
    match k.bios[b].status {
        Some(Ok(())) => {
            if write {
                user(k)
                    .shadows
                    .get_mut(name)
                    .expect("shadow")
                    .write_acked(writer, start, len, t1);
                return Ok(());
            }
            let data = k.bios[b].data.clone();
            let origins = k.bios[b].origins.clone();
            let served_by = k.bios[b].served_by;
            check_read(k, name, start, &data, &origins, (t0, t1), served_by);
            Ok(())
        }
        Some(Err(e)) => {
            let refusal = k.io_refusals.iter().rev().find(|r| r.bio == b).cloned();
            let (justified, why) = refusal
                .map(|r| (r.justified, r.why))
                .unwrap_or((false, "no refusal recorded".into()));
            let what = format!(
                "{} {name} {start}+{len}: {e} ({why})",
                if write { "write" } else { "read" }
            );
            user(k).io_errors.push((what.clone(), justified));
            Err(e.to_string())
        }
        None => Err("bio never completed".into()),
    }
}

fn describe(t: u64) -> String {
    match tag_writer(t) {
        0 if t == 0 => "nothing (a never-written slot)".into(),
        0 => format!("the initial data of block {}", tag_block(t - 1)),
        w => format!("write #{w}'s data for block {}", tag_block(t)),
    }
}

fn check_read(
    k: &mut K,
    name: &str,
    start: u64,
    data: &[u64],
    origins: &[(usize, u64)],
    (t0, t1): (u64, u64),
    served_by: Option<usize>,
) {
    let mut err = None;
    let names: Vec<String> = k.tasks.iter().map(|t| t.name.clone()).collect();
    {
        let u = user(k);
        let sh = u.shadows.get(name).expect("shadow");
        for (i, &v) in data.iter().enumerate() {
            let b = start + i as u64;
            if let Some(allowed) = sh.allowed(b, t0, t1) {
                if !allowed.contains(&v) {
                    let exp: Vec<String> = allowed.iter().map(|&t| describe(t)).collect();
                    let (who, step) = origins.get(i).copied().unwrap_or((0, 0));
                    let by = if step == 0 {
                        "the initial layout".to_string()
                    } else {
                        format!("{} at step {step}", names[who])
                    };
                    // Real data (some block's initial content or an issued write: another
                    // block's, or an older version of this one) or a never-written slot, not
                    // garbage: data put in or read from the wrong place.
                    let misplaced = tag_writer(v) <= u.writes;
                    err = Some(DataError {
                        text: format!(
                            "{name} block {b}: read {}, expected {}; the slot was last written by {by}",
                            describe(v),
                            exp.join(" or ")
                        ),
                        writer: (step != 0).then_some(who),
                        served_by,
                        misplaced,
                    });
                    break;
                }
            }
        }
    }
    if let Some(e) = err {
        let e2 = e.text.clone();
        k.trace(|| format!("!! corruption: {e2}"));
        user(k).data_errors.push(e);
    }
}

/// A read that returned data the shadow copy does not allow, with what the verdict needs to
/// put it down to a mechanism: the task that last wrote the slot and the instance that
/// served the read.
#[derive(Clone, Debug)]
pub struct DataError {
    pub text: String,
    pub writer: Option<usize>,
    pub served_by: Option<usize>,
    /// The data read is real data (some block's initial content or an issued write) or a
    /// never-written slot, not garbage.
    pub misplaced: bool,
}

// ---------------------------------------------------------------------------------------
// lvm macros

fn meta(k: &mut K, name: &str) -> LvMeta {
    user(k).lvm[name].clone()
}

fn set_meta(k: &mut K, name: &str, m: LvMeta) {
    user(k).lvm.insert(name.to_string(), m);
}

/// `lvchange -ay`: CREATE (if needed) + LOAD + RESUME; nothing if already active.
fn lvchange_ay(k: &mut K, name: &str) -> R {
    let d = dev(k, name);
    if k.dms[d].removed {
        let dm = &mut k.dms[d];
        dm.removed = false;
        dm.block_io = false;
        dm.suspended = false;
    }
    if k.dms[d].live.is_some() && !k.dms[d].suspended {
        return Ok(());
    }
    let t = meta(k, name).table;
    load(k, name, d, &t)?;
    errno(do_resume(k, d))
}

/// LOAD with the LV's permission (lvm loads a read-only LV's top-level table read-only).
fn load(k: &mut K, name: &str, d: usize, t: &Table) -> R {
    let ro = meta(k, name).read_only;
    errno(table_load_mode(k, d, t, ro))
}

/// `lvchange -pr` / `-prw` (`_lvchange_permission`): flip LVM_WRITE in the metadata, then
/// `lv_update_and_reload` of an active LV: LOAD (same params, the new mode: a real reload, so
/// a new dm-raid instance) + flush SUSPEND + RESUME.
fn lvchange_permission(k: &mut K, name: &str, writable: bool) -> R {
    if meta(k, name).read_only != writable {
        return Err(format!(
            "Logical volume {name} is already {}",
            if writable { "writable" } else { "read only" }
        ));
    }
    user(k).lvm.get_mut(name).expect("lv metadata").read_only = !writable;
    let d = dev(k, name);
    if k.dms[d].removed || k.dms[d].live.is_none() {
        return Ok(());
    }
    let t = meta(k, name).table;
    load(k, name, d, &t)?;
    lvm_suspend(k, d)?;
    errno(do_resume(k, d))
}

/// lvm's SUSPEND of the LV (flush): libdm's dm_tree_suspend_children skips a device whose
/// status says it is suspended already ("if (!info.exists || info.suspended) continue;",
/// libdm/libdm-deptree.c), e.g. by a `dmsetup suspend` before the command; the command's
/// RESUME then resumes it.
fn lvm_suspend(k: &mut K, d: usize) -> R {
    if k.dms[d].suspended {
        return Ok(());
    }
    errno(dm_suspend(k, d, false))
}

/// Moves every leg's content by `shift` slots (the rimage remap of relocated reshape space).
fn relocate(k: &mut K, d: usize, shift: i64) {
    let mem = k.dms[d].members;
    for disk in k.members[mem].disks.iter_mut() {
        let n = disk.len();
        let mut new = vec![0u64; n];
        for (i, &v) in disk.iter().enumerate() {
            let j = i as i64 + shift;
            if (0..n as i64).contains(&j) {
                new[j as usize] = v;
            }
        }
        *disk = new;
    }
    let name = k.dms[d].name.clone();
    k.trace(|| format!("lvm: {name} rimage tables remapped, reshape space moved by {shift}"));
}

/// lvm's `lv_update_and_reload()`: LOAD (suppressed if identical) + flush SUSPEND +
/// [rimage remap] + RESUME.
fn update_and_reload(k: &mut K, name: &str, t: &Table, relocate_by: i64) -> R {
    update_and_reload_with(k, name, t, |k, d| {
        if relocate_by != 0 {
            relocate(k, d, relocate_by);
        }
    })
}

/// `lv_update_and_reload()` whose sub-LV tables change between the SUSPEND and the top-level
/// RESUME (`between`: what the new images map, e.g. a reordered image list).
fn update_and_reload_with(
    k: &mut K,
    name: &str,
    t: &Table,
    between: impl FnOnce(&mut K, usize),
) -> R {
    let d = dev(k, name);
    let live_table = k.dms[d].live_table.clone();
    if live_table.as_ref() != Some(t) {
        load(k, name, d, t)?;
    }
    lvm_suspend(k, d)?;
    between(k, d);
    errno(do_resume(k, d))
}

/// The images' order changes (lvm's `_reorder_raid10_near_seg_areas`, the parity images
/// extracted): new image `i` is old image `from[i]`, or a new blank one (None).
fn reorder_images(k: &mut K, d: usize, from: &[Option<usize>]) {
    let mem = k.dms[d].members;
    let (old_disks, old_origin) = (k.members[mem].disks.clone(), k.members[mem].origin.clone());
    let n = old_disks.len();
    for i in 0..n {
        let src = from.get(i).copied().flatten();
        let m = &mut k.members[mem];
        match src {
            Some(j) => {
                m.disks[i] = old_disks[j].clone();
                m.origin[i] = old_origin[j].clone();
            }
            None => {
                m.disks[i].iter_mut().for_each(|v| *v = 0);
                m.origin[i].iter_mut().for_each(|o| *o = (0, 0));
            }
        }
    }
    let failing = k.members[mem].failing;
    k.members[mem].failing = (0..n).fold(0, |f, i| match from.get(i).copied().flatten() {
        Some(j) if failing & (1 << j) != 0 => f | 1 << i,
        _ => f,
    });
    let name = k.dms[d].name.clone();
    k.trace(|| format!("lvm: {name} images reordered: {from:?}"));
}

/// lvm's in-sync precondition for a reshape (`_raid_in_sync` + `_reshaped_state`).
fn in_sync(k: &mut K, name: &str) -> R {
    let d = dev(k, name);
    let Some(m) = k.dms[d].live_md().filter(|_| !k.dms[d].removed) else {
        return Err("LV is not active".into());
    };
    let (health, progress, total, action) = raid_status(k, m);
    if action != "idle" || progress != total || total == 0 || health.contains('a') {
        return Err(format!(
            "Can't reshape out of sync LV ({health} {progress}/{total} {action})"
        ));
    }
    if health.contains('D') {
        // lv_raid_healthy(): no conversion of an LV with failed images (repair first).
        return Err(format!(
            "{name} has failed images ({health}): repair it first"
        ));
    }
    Ok(())
}

/// The reshape space lvm allocates per image (the members are created with room for it).
fn reshape_space(k: &mut K, name: &str) -> u32 {
    let d = dev(k, name);
    let mem = k.dms[d].members;
    k.members[mem].dev_blocks - k.members[mem].dev_data
}

/// The kernel's current data_offset (STATUS), as lvm reads it before placing reshape space.
fn kernel_data_offset(k: &mut K, name: &str) -> u32 {
    let d = dev(k, name);
    // lv_raid_data_offset(): the `data_offset` field of `dmsetup status`, which dm-raid's
    // raid_status emits from the live instance (rs->dev[0].rdev.data_offset), not the
    // superblock (which the instance may not have written yet after a reshape ended).
    match k.dms[d].live_md().filter(|_| !k.dms[d].removed) {
        Some(m) => k.mddevs[m].geo.data_offset,
        None => k.members[k.dms[d].members].sb.data_offset,
    }
}

fn lvconvert_stripes(k: &mut K, name: &str, stripes: u32, force: bool) -> R {
    let mut mt = meta(k, name);
    let legs = mt.table.legs;
    if mt.table.layout == Layout::Raid1 {
        return Err("Unable to change stripes of raid1 LV (use -m)".into());
    }
    if !mt.table.layout.is_md() {
        return Err(format!(
            "Unable to change stripes of {} LV {name}: convert to raid first",
            mt.table.layout.name()
        ));
    }
    if mt.table.layout == Layout::Near2 {
        // raid10 (2 mirrors): lvm adds stripes (two images each) and never removes them.
        let data = legs / 2;
        if stripes < data {
            return Err("Can't remove stripes from a raid10 LV".into());
        }
        if stripes == data {
            return Ok(());
        }
        let delta = 2 * (stripes as i32 - data as i32);
        return reshape_stripes(k, name, mt, delta, stripes * 2);
    }
    // P (and Q): the members that are not data.
    let parity = 1 + (mt.table.layout.level() == 6) as u32;
    if stripes < parity + 1 {
        return Err(format!(
            "Minimum of {} stripes required for {}",
            parity + 1,
            mt.table.layout.name()
        ));
    }
    if (stripes + parity) as usize > MAX_MEMBERS {
        return Err(format!(
            "the model's arrays have at most {MAX_MEMBERS} legs"
        ));
    }
    let data = legs - parity - mt.freed;
    if mt.freed > 0 {
        // Second step of a removal (§3.2): drop the freed legs once the kernel finished.
        let d = dev(k, name);
        let mem = k.dms[d].members;
        let sb = k.members[mem].sb.clone();
        if stripes != data
            || sb.reshape_position != MAX_SECTOR
            || sb.num_devices != stripes + parity
        {
            return Err("Device count is incorrect. Forgotten \"lvconvert --stripes\"?".into());
        }
        let t = Table {
            legs: stripes + parity,
            ..mt.table.clone()
        };
        update_and_reload(k, name, &t, 0)?;
        mt.table = t;
        mt.freed = 0;
        set_meta(k, name, mt);
        return Ok(());
    }
    if stripes == data {
        return Ok(());
    }
    if stripes < data && !force {
        return Err("Can't remove stripes without --force".into());
    }
    let new_legs = if stripes > data {
        stripes + parity
    } else {
        legs
    };
    reshape_stripes(k, name, mt, stripes as i32 - data as i32, new_legs)
}

/// `--stripes` as a reshape of `delta` members: reshape space, the reload with delta_disks,
/// the reload without (a removal keeps the freed legs until the second `--stripes`).
fn reshape_stripes(k: &mut K, name: &str, mut mt: LvMeta, delta: i32, new_legs: u32) -> R {
    in_sync(k, name)?;
    let r = reshape_space(k, name);
    let mut relocate_by = 0i64;
    if mt.reshape_space == 0 {
        // Allocate reshape space at the end: interim reload with the new legs, no flags.
        let interim = Table {
            legs: new_legs,
            ..mt.table.clone()
        };
        update_and_reload(k, name, &interim, 0)?;
        mt.reshape_space = r;
        mt.table = interim;
    }
    let off = kernel_data_offset(k, name);
    if delta > 0 && off == 0 {
        relocate_by = r as i64; // space to the front
    } else if delta < 0 && off != 0 {
        relocate_by = -(r as i64); // space to the end
    }
    let t2 = Table {
        legs: new_legs,
        delta_disks: delta,
        data_offset: Some(r),
        ..mt.table.clone()
    };
    update_and_reload(k, name, &t2, relocate_by)?;
    let t3 = Table {
        delta_disks: 0,
        data_offset: None,
        ..t2
    };
    update_and_reload(k, name, &t3, 0)?;
    mt.table = t3;
    if delta < 0 {
        mt.freed = delta.unsigned_abs();
    }
    set_meta(k, name, mt);
    Ok(())
}

fn lvconvert_keep_images(k: &mut K, name: &str, layout: Option<Layout>, chunk: Option<u32>) -> R {
    let mut mt = meta(k, name);
    if mt.freed > 0 {
        return Err("Reshape of an LV with freed legs still present is refused".into());
    }
    let (nl, nc) = (
        layout.unwrap_or(mt.table.layout),
        chunk.unwrap_or(mt.table.chunk),
    );
    if !mt.table.layout.is_md() {
        if layout.is_some_and(|l| l.is_md()) {
            return lvconvert_takeover(k, name, mt, nl);
        }
        if nl == mt.table.layout && nc == mt.table.chunk {
            return Ok(());
        }
        return Err(format!(
            "Unable to change the stripe size or type of {} LV {name} without a raid type",
            mt.table.layout.name()
        ));
    }
    if nl.level() != mt.table.layout.level() {
        return lvconvert_takeover(k, name, mt, nl);
    }
    if nl == mt.table.layout && nc == mt.table.chunk {
        return Ok(());
    }
    if nl == Layout::Raid1 {
        return Err("raid1 has no stripe size".into());
    }
    let d = dev(k, name);
    let mem = k.dms[d].members;
    if !k.members[mem].dev_data.is_multiple_of(nc) {
        return Err(format!(
            "stripe size {nc} does not divide the image size {}",
            k.members[mem].dev_data
        ));
    }
    in_sync(k, name)?;
    if mt.reshape_space == 0 {
        let interim = mt.table.clone();
        update_and_reload(k, name, &interim, 0)?;
        mt.reshape_space = reshape_space(k, name);
    }
    let t2 = Table {
        layout: nl,
        chunk: nc,
        data_offset: Some(mt.reshape_space),
        ..mt.table.clone()
    };
    update_and_reload(k, name, &t2, 0)?;
    let t3 = Table {
        data_offset: None,
        ..t2
    };
    update_and_reload(k, name, &t3, 0)?;
    mt.table = t3;
    set_meta(k, name, mt);
    Ok(())
}

/// `_lv_free_reshape_space()`: space at the end is dropped from the metadata only; space at
/// the front is first remapped to the end with a `data_offset 0` reload (the rimages move
/// their extents between the SUSPEND and the RESUME).
fn free_reshape_space(k: &mut K, name: &str, mt: &mut LvMeta) -> R {
    if mt.reshape_space == 0 {
        return Ok(());
    }
    let off = kernel_data_offset(k, name);
    if off != 0 {
        let t = Table {
            data_offset: Some(0),
            ..mt.table.clone()
        };
        update_and_reload(k, name, &t, -i64::from(off))?;
    }
    mt.reshape_space = 0;
    Ok(())
}

/// The rmeta devices of a raid LV that becomes striped / linear are removed, and those of one
/// that becomes raid are new and wiped (C1 + wipe): either way no superblock is left.
fn drop_superblocks(k: &mut K, d: usize) {
    let mem = k.dms[d].members;
    k.members[mem].sb.valid = false;
}

/// `lvconvert --type striped` (`_takeover_downconvert_wrapper` from raid4/5_n, raid6_n_6 or
/// raid10_near; any other raid5 / raid6 layout is first reshaped to raid5_n / raid6_n_6 and
/// lvm asks to repeat the command). In sync, reshape space freed, the parity (or the second
/// copies) extracted; `_lv_update_reload_fns_reset_eliminate_lvs`: a reload to the striped
/// table, the extracted images removed, a second (identical) reload.
fn takeover_to_striped(k: &mut K, name: &str, mut mt: LvMeta) -> R {
    let from = mt.table.layout;
    let legs = mt.table.legs;
    // _raid_convert_define_parms: the types lvm substitutes ("Replaced LV type striped with
    // possible type raid5_n. Repeat this command to convert to striped after an interim
    // conversion has finished."): raid5_* -> raid5_n, raid6_* -> raid6_n_6, raid1 with 2
    // legs -> raid5_n; a raid5_n of 2 legs gets its third leg first.
    let interim = match from {
        Layout::N if legs < 3 => {
            // "Converting raid5_n LV to 3 stripes first."
            return lvconvert_stripes(k, name, 2, false);
        }
        Layout::N | Layout::N6 | Layout::Near2 => None,
        Layout::Raid1 if legs == 2 => Some(Layout::N),
        l if l.level() == 5 => Some(Layout::N),
        l if l.level() == 6 => Some(Layout::N6),
        _ => {
            return Err(format!(
                "Unable to convert {} LV {name} to striped",
                from.name()
            ))
        }
    };
    if let Some(l) = interim {
        return lvconvert_keep_images(k, name, Some(l), None);
    }
    if mt.freed > 0 {
        return Err("Takeover of an LV with freed legs still present is refused".into());
    }
    in_sync(k, name).map_err(|_| format!("Unable to convert {name} while it is not in-sync."))?;
    free_reshape_space(k, name, &mut mt)?;
    let (stripes, order): (u32, Vec<Option<usize>>) = match from {
        // raid10_near -> raid0: the first copy of each stripe (images 0, 2, 4, ...).
        Layout::Near2 => (
            legs / 2,
            (0..legs as usize / 2).map(|i| Some(2 * i)).collect(),
        ),
        l => {
            let data = legs - 1 - (l.level() == 6) as u32;
            (data, (0..data as usize).map(Some).collect())
        }
    };
    let t = Table {
        layout: Layout::Striped,
        legs: stripes,
        chunk: mt.table.chunk,
        delta_disks: 0,
        data_offset: None,
        nosync: false,
        rebuild: 0,
    };
    update_and_reload_with(k, name, &t, |k, d| reorder_images(k, d, &order))?;
    let d = dev(k, name);
    drop_superblocks(k, d);
    update_and_reload(k, name, &t, 0)?;
    mt.table = t;
    set_meta(k, name, mt);
    Ok(())
}

/// `lvconvert --type raid5_n|raid6_n_6|raid10` of a striped LV (`_takeover_upconvert_wrapper`
/// via raid0_meta: an rmeta for every image, the new images flagged LV_REBUILD, all of them
/// wiped; raid10's images reordered so each stripe's copy follows it). Other raid5 / raid6
/// layouts get the interim *_n type (lvm asks to repeat the command). Reload #1 carries the
/// `rebuild` flags over blank superblocks (a new set: resync, and recovery of the new
/// images), reload #2 clears them. `lvconvert -m 1` / `--type raid1` of a linear LV is the
/// raid1 form (`_takeover_from_linear_to_raid1`): one reload, LV_REBUILD cleared by a commit
/// only.
fn takeover_from_striped(k: &mut K, name: &str, mut mt: LvMeta, to: Layout) -> R {
    let from = mt.table.layout;
    let stripes = mt.table.legs;
    let d = dev(k, name);
    if from == Layout::Linear {
        // Any raid type: lvm substitutes raid1 ("Replaced LV type raid5 with possible type
        // raid1"), the first step towards it.
        let t = Table {
            layout: Layout::Raid1,
            legs: 2,
            rebuild: 1 << 1,
            data_offset: None,
            ..mt.table.clone()
        };
        drop_superblocks(k, d);
        wipe_legs(k, d, 1..2);
        update_and_reload(k, name, &t, 0)?;
        mt.table = Table { rebuild: 0, ..t };
        set_meta(k, name, mt);
        return Ok(());
    }
    // raid1 and a raid6 of fewer than 3 stripes: lvm substitutes raid5_n.
    let target = match to {
        Layout::Near2 => Layout::Near2,
        l if l.level() == 6 && stripes >= 3 => Layout::N6,
        _ => Layout::N,
    };
    if !mt.table.chunk.is_power_of_two() {
        return Err(format!(
            "Cannot convert striped LV {name} with non-power of 2 stripe size {}.",
            mt.table.chunk
        ));
    }
    let (legs, rebuild, order): (u32, u32, Vec<Option<usize>>) = match target {
        Layout::Near2 => (
            2 * stripes,
            (0..stripes).fold(0, |b, i| b | 1 << (2 * i + 1)),
            (0..2 * stripes as usize)
                .map(|i| (i % 2 == 0).then_some(i / 2))
                .collect(),
        ),
        l => {
            let parity = 1 + (l.level() == 6) as u32;
            (
                stripes + parity,
                (stripes..stripes + parity).fold(0, |b, i| b | 1 << i),
                (0..stripes as usize).map(Some).collect(),
            )
        }
    };
    if legs as usize > MAX_MEMBERS {
        return Err(format!(
            "the model's arrays have at most {MAX_MEMBERS} legs"
        ));
    }
    drop_superblocks(k, d);
    if target != Layout::Near2 {
        // The new parity images are new extents (the striped table does not map them).
        wipe_legs(k, d, stripes..legs);
    }
    let t1 = Table {
        layout: target,
        legs,
        rebuild,
        delta_disks: 0,
        data_offset: None,
        nosync: false,
        chunk: mt.table.chunk,
    };
    update_and_reload_with(k, name, &t1, |k, d| {
        if target == Layout::Near2 {
            reorder_images(k, d, &order);
        }
    })?;
    let t2 = Table { rebuild: 0, ..t1 };
    update_and_reload(k, name, &t2, 0)?;
    mt.table = t2;
    mt.reshape_space = 0;
    set_meta(k, name, mt);
    if target != to {
        // "Repeat this command to convert to raid5_ls after an interim conversion has
        // finished": the caller's next `lvconvert --type` does the layout reshape.
        k.trace(|| format!("lvm: {name} converted to {} first", target.name()));
    }
    Ok(())
}

/// `lvconvert -m 0` of a raid1 LV: lvm keeps the first image whose health is `A` (swapped to
/// position 0; "is out-of-sync! Please try refreshing first." when there is none, lv.c
/// lv_raid_image_in_sync), extracts the others, and makes the top LV linear over the kept
/// image's extents: reload, removal, identical reload.
fn raid1_to_linear(k: &mut K, name: &str, mut mt: LvMeta) -> R {
    let d = dev(k, name);
    let Some(m) = k.dms[d].live_md().filter(|_| !k.dms[d].removed) else {
        return Err("LV is not active".into());
    };
    let (health, ..) = raid_status(k, m);
    let Some(keep) = health.find('A') else {
        return Err(format!(
            "{name} is out-of-sync! Please try refreshing first."
        ));
    };
    let t = Table {
        layout: Layout::Linear,
        legs: 1,
        rebuild: 0,
        delta_disks: 0,
        data_offset: None,
        nosync: false,
        chunk: mt.table.chunk,
    };
    update_and_reload_with(k, name, &t, |k, d| reorder_images(k, d, &[Some(keep)]))?;
    drop_superblocks(k, d);
    update_and_reload(k, name, &t, 0)?;
    mt.table = t;
    set_meta(k, name, mt);
    Ok(())
}

/// `lvconvert --type` to another level (lvm2-sequences.md §4.1, §4.4): raid5_* -> raid6_*_6
/// (one new image, flagged rebuild: the Q leg; reload #1 with `rebuild`, reload #2 without;
/// a raid6 layout other than the *_6 one needs the command again, as lvm says) and raid6_*_6 ->
/// raid5_* (the last image extracted: a reload with one leg less, then an identical one).
fn lvconvert_takeover(k: &mut K, name: &str, mut mt: LvMeta, to: Layout) -> R {
    let from = mt.table.layout;
    if !from.is_md() {
        return takeover_from_striped(k, name, mt, to);
    }
    if to == Layout::Striped {
        return takeover_to_striped(k, name, mt);
    }
    if to == Layout::Linear {
        return Err(format!(
            "Unable to convert {} LV {name} to linear (use lvconvert -m 0 on raid1)",
            from.name()
        ));
    }
    // raid1 (2 images) -> raid5 (§4.3): no new images, raid5_ls.
    // raid1 -> raid6: lvm substitutes raid5_ls, the first step (linear_to_raid6's step b).
    let to = if from == Layout::Raid1 && to.level() == 6 {
        Layout::Ls
    } else {
        to
    };
    let raid1_pair = (from == Layout::Raid1 && to.level() == 5 && mt.table.legs == 2).then_some(to);
    let Some(pair) = raid1_pair.or(from.takeover_pair().filter(|p| p.level() == to.level())) else {
        return Err(format!(
            "takeover from {} to {} is not modelled",
            from.name(),
            to.name()
        ));
    };
    if mt.freed > 0 {
        return Err("Takeover of an LV with freed legs still present is refused".into());
    }
    in_sync(k, name)?;
    free_reshape_space(k, name, &mut mt)?;
    let legs = mt.table.legs;
    if from == Layout::Raid1 {
        // Reload #1 with the level change only; #2 identical (SUSPEND + RESUME).
        let t = Table {
            layout: pair,
            ..mt.table.clone()
        };
        update_and_reload(k, name, &t, 0)?;
        update_and_reload(k, name, &t, 0)?;
        mt.table = t;
    } else if to.level() == 6 {
        if legs < 4 {
            return Err("raid6 needs at least 3 stripes: add a stripe first".into());
        }
        let d = dev(k, name);
        wipe_legs(k, d, legs..legs + 1);
        let t1 = Table {
            layout: pair,
            legs: legs + 1,
            rebuild: 1 << legs,
            ..mt.table.clone()
        };
        update_and_reload(k, name, &t1, 0)?;
        mt.table = Table { rebuild: 0, ..t1 };
        update_and_reload(k, name, &mt.table.clone(), 0)?;
    } else {
        let t = Table {
            layout: pair,
            legs: legs - 1,
            ..mt.table.clone()
        };
        update_and_reload(k, name, &t, 0)?;
        update_and_reload(k, name, &t, 0)?;
        mt.table = t;
    }
    set_meta(k, name, mt);
    Ok(())
}

/// `lvconvert --repair` (`lv_raid_replace` with the failed images): the images whose health
/// char is `D` get new extents (blank data and superblock, a working device) and one reload
/// carries `rebuild i` for them; as for `-m`, lvm clears the flags in its metadata only.
fn lvconvert_repair(k: &mut K, name: &str) -> R {
    let mut mt = meta(k, name);
    if mt.table.layout != Layout::Raid1 {
        return Err(format!(
            "repair of {} is not modelled (degraded raid4/5/6 reads need parity)",
            mt.table.layout.name()
        ));
    }
    let d = dev(k, name);
    let Some(m) = k.dms[d].live_md().filter(|_| !k.dms[d].removed) else {
        return Err("LV is not active".into());
    };
    let (health, ..) = raid_status(k, m);
    let failed: Vec<u32> = (0..mt.table.legs)
        .filter(|&i| health.as_bytes().get(i as usize) == Some(&b'D'))
        .collect();
    if failed.is_empty() {
        return Err(format!(
            "{name} does not contain devices specified for replacement"
        ));
    }
    if failed.len() as u32 == mt.table.legs {
        return Err("Unable to replace all images of a raid1 LV".into());
    }
    let mem = k.dms[d].members;
    let was_failing = k.members[mem].failing;
    for &i in &failed {
        wipe_legs(k, d, i..i + 1);
        k.members[mem].failing &= !(1 << i);
    }
    let t = Table {
        rebuild: failed.iter().fold(0, |b, &i| b | 1 << i),
        ..mt.table.clone()
    };
    if let Err(e) = update_and_reload(k, name, &t, 0) {
        // lvm reverts its metadata: the images are the old, failed devices again (what the
        // model wiped stands for the new extents, which no table maps now).
        k.members[mem].failing = was_failing;
        return Err(e);
    }
    mt.table = Table { rebuild: 0, ..t };
    set_meta(k, name, mt);
    Ok(())
}

/// `lvconvert -m N` on a raid1 LV (lvm2-sequences.md §4.2 and "raid1 -m -1"). Adding images:
/// in-sync check, one reload with `rebuild i` on each new image (flush suspend), then the
/// flags are cleared in the metadata only: the live table keeps `rebuild` until the next
/// reload. Removing images (the last ones): one reload with fewer legs, then a second
/// update-and-reload (identical: SUSPEND + RESUME only).
fn lvconvert_mirrors(k: &mut K, name: &str, mirrors: u32) -> R {
    let mut mt = meta(k, name);
    if mt.table.layout == Layout::Linear {
        if mirrors == 0 {
            return Ok(());
        }
        if mirrors != 1 {
            // _takeover_from_linear_to_raid1 adds one image; more need a second command.
            return Err("Unable to convert linear LV to more than 2 images at once".into());
        }
        return takeover_from_striped(k, name, mt, Layout::Raid1);
    }
    if mt.table.layout == Layout::Raid1 && mirrors == 0 {
        return raid1_to_linear(k, name, mt);
    }
    if mirrors == 0 {
        return Err(format!(
            "{} LV {name} has no mirrors to remove",
            mt.table.layout.name()
        ));
    }
    if mt.table.layout != Layout::Raid1 {
        return Err(format!(
            "takeover from {} to raid1 is not modelled",
            mt.table.layout.name()
        ));
    }
    let (legs, want) = (mt.table.legs, mirrors + 1);
    if want == legs {
        return Ok(());
    }
    let d = dev(k, name);
    if want as usize > k.members[k.dms[d].members].disks.len() {
        return Err(format!(
            "Unable to add images: at most {} legs",
            MAX_MEMBERS
        ));
    }
    in_sync(k, name).map_err(|_| "Can't change image count of out-of-sync raid1 LV".to_string())?;
    let t = if want > legs {
        Table {
            legs: want,
            rebuild: (legs..want).fold(0, |b, i| b | 1 << i),
            ..mt.table.clone()
        }
    } else {
        Table {
            legs: want,
            rebuild: 0,
            ..mt.table.clone()
        }
    };
    if want > legs {
        // The new rmeta/rimage pairs start blank (C1 + wipe).
        wipe_legs(k, d, legs..want);
    }
    update_and_reload(k, name, &t, 0)?;
    let lvm_table = Table { rebuild: 0, ..t };
    if want < legs {
        update_and_reload(k, name, &lvm_table, 0)?;
    }
    mt.table = lvm_table;
    set_meta(k, name, mt);
    Ok(())
}

/// New images: zeroed data (never written) and no superblock on them.
fn wipe_legs(k: &mut K, d: usize, legs: std::ops::Range<u32>) {
    let mem = k.dms[d].members;
    for leg in legs {
        let disk = &mut k.members[mem].disks[leg as usize];
        disk.iter_mut().for_each(|v| *v = 0);
        let origin = &mut k.members[mem].origin[leg as usize];
        origin.iter_mut().for_each(|o| *o = (0, 0));
        k.members[mem].sb.disk_recovery_offset[leg as usize] = 0;
    }
}

/// The lvm test library's `aux wait_for_sync`: poll STATUS every tick until idle with a full
/// ratio. A sync that never gets there makes this op (and the run) hang.
fn wait_for_sync(k: &mut K, name: &str) -> R {
    loop {
        let d = dev(k, name);
        if k.dms[d].live.is_some_and(|t| t.md().is_none()) {
            // check.sh in_sync: "Unable to get sync ratio for target type 'striped'".
            let t = meta(k, name).table.layout.name();
            return Err(format!("Unable to get sync ratio for target type '{t}'"));
        }
        let Some(m) = k.dms[d].live_md().filter(|_| !k.dms[d].removed) else {
            return Err("LV is not active".into());
        };
        let (health, progress, total, action) = raid_status(k, m);
        if action == "idle" && progress == total && total != 0 {
            if health.contains('a') {
                return Err(format!("in sync but health shows 'a' ({health})"));
            }
            return Ok(());
        }
        let q = k.timer_wq;
        k.sleep_once(q, "wait_for_sync: polling dmsetup status");
    }
}
