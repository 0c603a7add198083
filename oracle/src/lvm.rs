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
        Target::Dm(d) => k.dms[d].live,
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
                w.dms[d].live.is_none_or(|m| {
                    let md = &w.mddevs[m];
                    md.reshape_position == MAX_SECTOR
                        && (md.test(MD_RECOVERY_DONE) || md.sync_thread.is_none())
                })
            });
            errno(dm_suspend(k, d, *noflush))
        }
        Op::Reload { dev: name } => {
            let d = dev(k, name);
            let live = k.dms[d].live.ok_or("no live table")?;
            let t = k.raid_sets[live]
                .as_ref()
                .expect("dm-raid instance")
                .table
                .clone();
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
            errno(dm_suspend(k, d, false))?;
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
            let Some(m) = serving(k, name) else {
                return Err("no live table".into());
            };
            let len = k.mddevs[m].array_sectors;
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
            Target::Dm(d) => w.dms[*d].live.filter(|_| !w.dms[*d].removed)?,
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
        Target::Dm(d) => k.dms[d].live.filter(|_| !k.dms[d].removed),
        Target::Md(m) => Some(m),
    }
}

/// (start, len) of `range` on the array as it is now, cut at its end (relative ranges), and
/// whether an absolute range reaches beyond that end.
fn resolve(k: &mut K, name: &str, range: Range) -> Option<(u64, u64, bool)> {
    let m = serving(k, name)?;
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
    Some((start, len.min(size - start), beyond))
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
    errno(dm_suspend(k, d, false))?;
    errno(do_resume(k, d))
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
    let d = dev(k, name);
    let live_table = k.dms[d]
        .live
        .and_then(|m| k.raid_sets[m].as_ref())
        .map(|rs| rs.table.clone());
    if live_table.as_ref() != Some(t) {
        load(k, name, d, t)?;
    }
    errno(dm_suspend(k, d, false))?;
    if relocate_by != 0 {
        relocate(k, d, relocate_by);
    }
    errno(do_resume(k, d))
}

/// lvm's in-sync precondition for a reshape (`_raid_in_sync` + `_reshaped_state`).
fn in_sync(k: &mut K, name: &str) -> R {
    let d = dev(k, name);
    let Some(m) = k.dms[d].live.filter(|_| !k.dms[d].removed) else {
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
    let mem = k.dms[d].members;
    k.members[mem].sb.data_offset
}

fn lvconvert_stripes(k: &mut K, name: &str, stripes: u32, force: bool) -> R {
    let mut mt = meta(k, name);
    let legs = mt.table.legs;
    if mt.table.layout == Layout::Raid1 {
        return Err("Unable to change stripes of raid1 LV (use -m)".into());
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

/// `lvconvert --type` to another level (lvm2-sequences.md §4.1, §4.4): raid5_* -> raid6_*_6
/// (one new image, flagged rebuild: the Q leg; reload #1 with `rebuild`, reload #2 without;
/// a raid6 layout other than the *_6 one needs the command again, as lvm says) and raid6_*_6 ->
/// raid5_* (the last image extracted: a reload with one leg less, then an identical one).
fn lvconvert_takeover(k: &mut K, name: &str, mut mt: LvMeta, to: Layout) -> R {
    let from = mt.table.layout;
    // raid1 (2 images) -> raid5 (§4.3): no new images, raid5_ls.
    let raid1_pair =
        (from == Layout::Raid1 && to.level() == 5 && mt.table.legs == 2).then_some(Layout::Ls);
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
    if mt.reshape_space != 0 && kernel_data_offset(k, name) != 0 {
        // _lv_free_reshape_space from the start needs a data_offset reload first.
        return Err("takeover with the reshape space at the front is not modelled".into());
    }
    // The reshape space at the end is freed in the metadata only.
    mt.reshape_space = 0;
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
    let Some(m) = k.dms[d].live.filter(|_| !k.dms[d].removed) else {
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
        let Some(m) = k.dms[d].live.filter(|_| !k.dms[d].removed) else {
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
